/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_json: strict JSON on top of jansson. See mf_json.h.
 *
 * Invariants: the size cap is checked before jansson sees a byte; decoding
 * always uses JSON_REJECT_DUPLICATES (a duplicate member is how one JSON text
 * can mean two different things to two parsers, D13); the getters never
 * coerce (a number is not a string, a real is not an integer, null is only
 * "absent" for optional members). Every error detail that quotes input goes
 * through clean_text() so that a detail can be logged as it is.
 */
#include "api/core/mf_json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"

/* Longest piece of untrusted text (a member name, jansson's "near '...'")
 * copied into an error detail. */
#define DETAIL_TEXT_MAX 64

/* Copies at most DETAIL_TEXT_MAX bytes of s into out, replacing every byte
 * outside printable ASCII with '?', so that details are safe to log. */
static void clean_text(const char *s, char out[DETAIL_TEXT_MAX + 4])
{
    size_t i = 0;
    for (; s[i] != '\0' && i < DETAIL_TEXT_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s[i] != '\0') {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* jansson's object iterator takes a non-const json_t although it only reads.
 * We never write through the result; the round trip through uintptr_t keeps
 * -Wcast-qual quiet without hiding any other conversion. */
static json_t *unconst(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

static mf_res parse(const char *buf, size_t len, size_t max, size_t flags, json_t **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(buf);
    MF_ENSURE_MSG(len <= max, MF_ERR_PROTO_TOO_LARGE, "JSON text of %zu bytes exceeds %zu", len,
                  max);

    json_error_t jerr;
    memset(&jerr, 0, sizeof(jerr));
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | flags, &jerr);
    if (v == NULL) {
        char text[DETAIL_TEXT_MAX + 4];
        jerr.text[JSON_ERROR_TEXT_LENGTH - 1] = '\0';
        clean_text(jerr.text, text);
        MF_BAIL_MSG(MF_ERR_PROTO_JSON, "line %d column %d: %s", jerr.line, jerr.column, text);
    }
    *out = v;
    return MF_RES_OK;
}

/* see mf_json.h */
mf_res mf_json_parse(const char *buf, size_t len, size_t max, json_t **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    json_t *v = NULL;
    MF_TRY(parse(buf, len, max, 0, &v));
    if (!json_is_object(v)) {
        json_decref(v);
        MF_BAIL_MSG(MF_ERR_PROTO_JSON, "top-level value is not an object");
    }
    *out = v;
    return MF_RES_OK;
}

/* see mf_json.h */
mf_res mf_json_parse_any(const char *buf, size_t len, size_t max, json_t **out)
{
    return parse(buf, len, max, JSON_DECODE_ANY, out);
}

/* see mf_json.h */
mf_res mf_json_only_keys(const json_t *obj, const char *const *allowed)
{
    MF_ENSURE_REF(obj);
    MF_ENSURE_REF(allowed);
    MF_ENSURE_MSG(json_is_object(obj), MF_ERR_PROTO_JSON, "not an object");

    const char *key;
    json_t *val;
    json_object_foreach(unconst(obj), key, val)
    {
        (void)val;
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            char name[DETAIL_TEXT_MAX + 4];
            clean_text(key, name);
            MF_BAIL_MSG(MF_ERR_PROTO_JSON, "unknown member \"%s\"", name);
        }
    }
    return MF_RES_OK;
}

/* Looks up key in obj. Sets *out to NULL when the member is absent or null
 * (refused when required). */
static mf_res member(const json_t *obj, const char *key, bool required, json_t **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(obj);
    MF_ENSURE_REF(key);
    MF_ENSURE_MSG(json_is_object(obj), MF_ERR_PROTO_JSON, "\"%s\": parent is not an object", key);
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        MF_ENSURE_MSG(!required, MF_ERR_PROTO_JSON, "\"%s\" is required", key);
        return MF_RES_OK;
    }
    *out = v;
    return MF_RES_OK;
}

/* see mf_json.h */
mf_res mf_json_str(const json_t *obj, const char *key, bool required, size_t max, const char **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    json_t *v;
    MF_TRY(member(obj, key, required, &v));
    if (v == NULL) {
        return MF_RES_OK;
    }
    MF_ENSURE_MSG(json_is_string(v), MF_ERR_PROTO_JSON, "\"%s\" must be a string", key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    /* jansson refuses \u0000 while decoding, but a value built with
     * json_stringn() may still hold one: a C string would stop early. */
    MF_ENSURE_MSG(strlen(s) == n, MF_ERR_PROTO_JSON, "\"%s\" contains a NUL", key);
    MF_ENSURE_MSG(n <= max, MF_ERR_PROTO_TOO_LARGE, "\"%s\" is longer than %zu bytes", key, max);
    *out = s;
    return MF_RES_OK;
}

/* see mf_json.h */
mf_res mf_json_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                   int64_t *out)
{
    MF_ENSURE_REF(out);
    json_t *v;
    MF_TRY(member(obj, key, required, &v));
    if (v == NULL) {
        return MF_RES_OK;
    }
    MF_ENSURE_MSG(json_is_integer(v), MF_ERR_PROTO_JSON, "\"%s\" must be an integer", key);
    json_int_t i = json_integer_value(v);
    MF_ENSURE_MSG(i >= min && i <= max, MF_ERR_PROTO_JSON, "\"%s\" is out of range [%lld, %lld]",
                  key, (long long)min, (long long)max);
    *out = (int64_t)i;
    return MF_RES_OK;
}

/* see mf_json.h */
mf_res mf_json_bool(const json_t *obj, const char *key, bool required, bool *out)
{
    MF_ENSURE_REF(out);
    json_t *v;
    MF_TRY(member(obj, key, required, &v));
    if (v == NULL) {
        return MF_RES_OK;
    }
    MF_ENSURE_MSG(json_is_boolean(v), MF_ERR_PROTO_JSON, "\"%s\" must be true or false", key);
    *out = json_is_true(v);
    return MF_RES_OK;
}

/* see mf_json.h */
mf_res mf_json_array(const json_t *obj, const char *key, bool required, size_t max_items,
                     const json_t **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    json_t *v;
    MF_TRY(member(obj, key, required, &v));
    if (v == NULL) {
        return MF_RES_OK;
    }
    MF_ENSURE_MSG(json_is_array(v), MF_ERR_PROTO_JSON, "\"%s\" must be an array", key);
    MF_ENSURE_MSG(json_array_size(v) <= max_items, MF_ERR_PROTO_TOO_LARGE,
                  "\"%s\" has more than %zu items", key, max_items);
    *out = v;
    return MF_RES_OK;
}

/* see mf_json.h */
mf_res mf_json_object(const json_t *obj, const char *key, bool required, const json_t **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    json_t *v;
    MF_TRY(member(obj, key, required, &v));
    if (v == NULL) {
        return MF_RES_OK;
    }
    MF_ENSURE_MSG(json_is_object(v), MF_ERR_PROTO_JSON, "\"%s\" must be an object", key);
    *out = v;
    return MF_RES_OK;
}

struct dump_ctx {
    struct mf_buf *out;
    mf_res rc;
};

static int dump_cb(const char *buffer, size_t size, void *data)
{
    struct dump_ctx *ctx = data;
    ctx->rc = mf_buf_append(ctx->out, buffer, size);
    return mf_ok(ctx->rc) ? 0 : -1;
}

/* see mf_json.h */
mf_res mf_json_dump(const json_t *v, struct mf_buf *out)
{
    MF_ENSURE_REF(v);
    MF_ENSURE_REF(out);
    size_t start = out->len;
    struct dump_ctx ctx = {out, MF_RES_OK};
    if (json_dump_callback(v, dump_cb, &ctx, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        /* leave the buffer as it was, like a refused mf_buf_append */
        if (out->data != NULL) {
            if (out->flags & MF_BUF_SECRET) {
                mf_wipe(out->data + start, out->len - start);
            }
            out->data[start] = '\0';
        }
        out->len = start;
        if (!mf_ok(ctx.rc)) {
            return ctx.rc;
        }
        MF_BAIL_MSG(MF_ERR_PROTO_JSON, "value cannot be encoded");
    }
    return MF_RES_OK;
}

/* see mf_json.h */
mf_res mf_json_put_str(struct mf_buf *out, const char *s)
{
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(s);
    MF_TRY(mf_buf_append_u8(out, '"'));
    const unsigned char *p = (const unsigned char *)s;
    for (;;) {
        /* the longest run that needs no escape goes in one append */
        const unsigned char *run = p;
        while (*p >= 0x20 && *p != '"' && *p != '\\' && *p != 0x7f) {
            p++;
        }
        if (p > run) {
            MF_TRY(mf_buf_append(out, run, (size_t)(p - run)));
        }
        if (*p == '\0') {
            break;
        }
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            MF_TRY(mf_buf_append(out, esc, sizeof(esc)));
        } else if (*p == '\n') {
            MF_TRY(mf_buf_append(out, "\\n", 2));
        } else {
            char esc[6] = {'\\', 'u', '0', '0', 0, 0};
            mf_hex_byte(*p, esc + 4);
            MF_TRY(mf_buf_append(out, esc, sizeof(esc)));
        }
        p++;
    }
    return mf_buf_append_u8(out, '"');
}
