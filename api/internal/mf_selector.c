/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_selector: parsing, validation, formatting and matching of the unix
 * workload selectors. See mf_selector.h.
 *
 * Selectors arrive from an administrator (entry create) and are compared with
 * the ones the agent discovers for a process, so every value has exactly one
 * accepted spelling: no sign or leading zero in a number, no uppercase hex,
 * no "." or ".." or empty component in a path. Two selectors are the same
 * exactly when their kinds and value bytes are equal.
 *
 * Error details quote the offending text with control and non-ASCII bytes
 * shown as \xNN and cut to a few dozen bytes, so they are safe to log.
 */
#include "api/internal/mf_selector.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"

#define UID_MAX_VALUE 4294967294ULL /* (uid_t)-1 is "no user" and never valid */
#define NAME_MAX_LEN  32
#define SHA256_HEX    64

struct kind_desc {
    enum mf_sel_kind kind;
    const char *key; /* the part after "unix:" */
    const char *name;
};

static const struct kind_desc kinds[] = {
    {MF_SEL_UNIX_UID, "uid", "unix:uid"},
    {MF_SEL_UNIX_USER, "user", "unix:user"},
    {MF_SEL_UNIX_GID, "gid", "unix:gid"},
    {MF_SEL_UNIX_GROUP, "group", "unix:group"},
    {MF_SEL_UNIX_SUPPLEMENTARY_GID, "supplementary_gid", "unix:supplementary_gid"},
    {MF_SEL_UNIX_PATH, "path", "unix:path"},
    {MF_SEL_UNIX_SHA256, "sha256", "unix:sha256"},
};

#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static const struct kind_desc *find_kind(enum mf_sel_kind kind)
{
    for (size_t i = 0; i < N_KINDS; i++) {
        if (kinds[i].kind == kind) {
            return &kinds[i];
        }
    }
    return NULL;
}

/* Renders n bytes at s for an error detail: printable ASCII as is, the rest
 * as \xNN, at most 40 input bytes (then "..."). */
static void quote(const char *s, size_t n, char out[200])
{
    size_t o = 0;
    size_t shown = n < 40 ? n : 40;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            mf_hex_byte(c, out + o);
            o += 2;
        }
    }
    if (shown < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* uid, gid, supplementary_gid: canonical decimal up to UID_MAX_VALUE. */
static mf_res check_id_number(const struct kind_desc *k, const char *v, size_t n)
{
    char shown[200];
    quote(v, n, shown);
    MF_ENSURE_MSG(n > 0, MF_ERR_PROTO_SELECTOR, "%s needs a number", k->name);
    MF_ENSURE_MSG(n <= 10, MF_ERR_PROTO_SELECTOR, "%s value '%s' is too long", k->name, shown);
    uint64_t val = 0;
    for (size_t i = 0; i < n; i++) {
        MF_ENSURE_MSG(v[i] >= '0' && v[i] <= '9', MF_ERR_PROTO_SELECTOR,
                      "%s value '%s' must be a decimal number (offset %zu)", k->name, shown, i);
        val = val * 10 + (uint64_t)(v[i] - '0');
    }
    MF_ENSURE_MSG(n == 1 || v[0] != '0', MF_ERR_PROTO_SELECTOR, "%s value '%s' has a leading zero",
                  k->name, shown);
    MF_ENSURE_MSG(val <= UID_MAX_VALUE, MF_ERR_PROTO_SELECTOR, "%s value '%s' is over %llu",
                  k->name, shown, UID_MAX_VALUE);
    return MF_RES_OK;
}

/* user, group: the POSIX portable filename set, 1-32 bytes, no leading '-'. */
static mf_res check_name(const struct kind_desc *k, const char *v, size_t n)
{
    char shown[200];
    quote(v, n, shown);
    MF_ENSURE_MSG(n > 0, MF_ERR_PROTO_SELECTOR, "%s needs a name", k->name);
    MF_ENSURE_MSG(n <= NAME_MAX_LEN, MF_ERR_PROTO_SELECTOR, "%s value '%s' is %zu bytes, over %d",
                  k->name, shown, n, NAME_MAX_LEN);
    MF_ENSURE_MSG(v[0] != '-', MF_ERR_PROTO_SELECTOR, "%s value '%s' starts with '-'", k->name,
                  shown);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        MF_ENSURE_MSG(ok, MF_ERR_PROTO_SELECTOR,
                      "%s value '%s' has a character outside [A-Za-z0-9._-] at offset %zu", k->name,
                      shown, i);
    }
    return MF_RES_OK;
}

/* path: absolute, no NUL, no empty, "." or ".." component. A final "/." or
 * "/.." is refused like "/./" and "/../": each names a path that differs from
 * its own spelling, and the agent only ever discovers canonical paths. */
static mf_res check_path(const struct kind_desc *k, const char *v, size_t n)
{
    char shown[200];
    quote(v, n, shown);
    MF_ENSURE_MSG(n > 0, MF_ERR_PROTO_SELECTOR, "%s needs a path", k->name);
    MF_ENSURE_MSG(n <= MF_SELECTOR_VALUE_MAX, MF_ERR_PROTO_SELECTOR,
                  "%s value is %zu bytes, over %d", k->name, n, MF_SELECTOR_VALUE_MAX);
    MF_ENSURE_MSG(v[0] == '/', MF_ERR_PROTO_SELECTOR, "%s value '%s' is not an absolute path",
                  k->name, shown);
    const char *nul = memchr(v, '\0', n);
    MF_ENSURE_MSG(nul == NULL, MF_ERR_PROTO_SELECTOR, "%s value has a NUL byte at offset %zu",
                  k->name, nul != NULL ? (size_t)(nul - v) : 0);
    /* Walk the components between slashes. */
    size_t i = 0;
    while (i < n) {
        size_t start = i + 1;
        size_t end = start;
        while (end < n && v[end] != '/') {
            end++;
        }
        size_t len = end - start;
        if (len == 0 && end < n) {
            MF_BAIL_MSG(MF_ERR_PROTO_SELECTOR, "%s value '%s' has \"//\" at offset %zu", k->name,
                        shown, i);
        }
        bool dot =
            (len == 1 && v[start] == '.') || (len == 2 && v[start] == '.' && v[start + 1] == '.');
        MF_ENSURE_MSG(!dot, MF_ERR_PROTO_SELECTOR,
                      "%s value '%s' has a '.' or '..' component at offset %zu", k->name, shown,
                      start);
        i = end;
    }
    return MF_RES_OK;
}

/* sha256: 64 lowercase hex digits. */
static mf_res check_sha256(const struct kind_desc *k, const char *v, size_t n)
{
    char shown[200];
    quote(v, n, shown);
    MF_ENSURE_MSG(n == SHA256_HEX, MF_ERR_PROTO_SELECTOR, "%s value '%s' is %zu characters, not %d",
                  k->name, shown, n, SHA256_HEX);
    for (size_t i = 0; i < n; i++) {
        bool ok = (v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f');
        MF_ENSURE_MSG(ok, MF_ERR_PROTO_SELECTOR,
                      "%s value '%s' has a character other than 0-9a-f at offset %zu", k->name,
                      shown, i);
    }
    return MF_RES_OK;
}

static mf_res check_value(const struct kind_desc *k, const char *v, size_t n)
{
    switch (k->kind) {
    case MF_SEL_UNIX_UID:
    case MF_SEL_UNIX_GID:
    case MF_SEL_UNIX_SUPPLEMENTARY_GID:
        return check_id_number(k, v, n);
    case MF_SEL_UNIX_USER:
    case MF_SEL_UNIX_GROUP:
        return check_name(k, v, n);
    case MF_SEL_UNIX_PATH:
        return check_path(k, v, n);
    case MF_SEL_UNIX_SHA256:
        return check_sha256(k, v, n);
    default:
        MF_BAIL_MSG(MF_ERR_PROTO_SELECTOR, "unknown selector kind %d", (int)k->kind);
    }
}

/* Validates v[0..n) for k and stores a copy in out. */
static mf_res build(const struct kind_desc *k, const char *v, size_t n, struct mf_selector *out)
{
    MF_TRY(check_value(k, v, n));
    char *copy = malloc(n + 1);
    MF_TRY_PTR(copy, MF_ERR_NOMEM);
    memcpy(copy, v, n);
    copy[n] = '\0';
    out->kind = k->kind;
    out->value = copy;
    out->value_len = n;
    return MF_RES_OK;
}

/* see mf_selector.h */
void mf_selector_cleanup(struct mf_selector *sel)
{
    if (sel == NULL) {
        return;
    }
    free(sel->value);
    memset(sel, 0, sizeof(*sel));
}

/* see mf_selector.h */
void mf_selectors_free(struct mf_selector *sels, size_t n)
{
    if (sels == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        mf_selector_cleanup(&sels[i]);
    }
    free(sels);
}

/* see mf_selector.h */
mf_res mf_selector_copy(const struct mf_selector *src, struct mf_selector *dst)
{
    MF_ENSURE_REF(src);
    MF_ENSURE_REF(dst);
    if (src->value == NULL) {
        memset(dst, 0, sizeof(*dst));
        dst->kind = src->kind;
        return MF_RES_OK;
    }
    char *copy = malloc(src->value_len + 1);
    MF_TRY_PTR(copy, MF_ERR_NOMEM);
    memcpy(copy, src->value, src->value_len);
    copy[src->value_len] = '\0';
    dst->kind = src->kind;
    dst->value = copy;
    dst->value_len = src->value_len;
    return MF_RES_OK;
}

/* see mf_selector.h */
mf_res mf_selector_parse(const char *s, size_t len, struct mf_selector *out)
{
    MF_ENSURE_REF(out);
    MF_ENSURE(s != NULL || len == 0, MF_ERR_USAGE_NULL);
    char shown[200];
    quote(s, len, shown);
    MF_ENSURE_MSG(len > 0, MF_ERR_PROTO_SELECTOR, "selector is empty");
    MF_ENSURE_MSG(len <= MF_SELECTOR_STR_MAX, MF_ERR_PROTO_SELECTOR,
                  "selector is %zu bytes, over %d", len, MF_SELECTOR_STR_MAX);

    const char *c1 = memchr(s, ':', len);
    MF_ENSURE_MSG(c1 != NULL, MF_ERR_PROTO_SELECTOR, "selector '%s' is not type:key:value", shown);
    size_t type_len = (size_t)(c1 - s);
    if (type_len != 4 || memcmp(s, "unix", 4) != 0) {
        quote(s, type_len, shown);
        MF_BAIL_MSG(MF_ERR_PROTO_SELECTOR, "unknown selector type '%s' (only unix)", shown);
    }
    const char *key = c1 + 1;
    size_t after = len - type_len - 1;
    const char *c2 = memchr(key, ':', after);
    MF_ENSURE_MSG(c2 != NULL, MF_ERR_PROTO_SELECTOR, "selector '%s' is not type:key:value", shown);
    size_t key_len = (size_t)(c2 - key);
    const struct kind_desc *k = NULL;
    for (size_t i = 0; i < N_KINDS; i++) {
        if (strlen(kinds[i].key) == key_len && memcmp(kinds[i].key, key, key_len) == 0) {
            k = &kinds[i];
            break;
        }
    }
    if (k == NULL) {
        quote(key, key_len, shown);
        MF_BAIL_MSG(MF_ERR_PROTO_SELECTOR, "unknown unix selector key '%s'", shown);
    }
    const char *value = c2 + 1;
    /* The value is everything after the second ':' and may hold more. */
    return build(k, value, after - key_len - 1, out);
}

/* see mf_selector.h */
mf_res mf_selector_make(enum mf_sel_kind kind, const char *value, struct mf_selector *out)
{
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(value);
    const struct kind_desc *k = find_kind(kind);
    MF_ENSURE_MSG(k != NULL, MF_ERR_PROTO_SELECTOR, "unknown selector kind %d", (int)kind);
    /* strnlen keeps the scan bounded; an over-long value is refused below. */
    return build(k, value, strnlen(value, MF_SELECTOR_VALUE_MAX + 1), out);
}

/* see mf_selector.h */
mf_res mf_selector_format(const struct mf_selector *sel, char *out, size_t cap)
{
    MF_ENSURE_REF(out);
    MF_ENSURE(cap > 0, MF_ERR_USAGE_ARG);
    out[0] = '\0';
    MF_ENSURE_REF(sel);
    const struct kind_desc *k = find_kind(sel->kind);
    MF_ENSURE_MSG(k != NULL, MF_ERR_PROTO_SELECTOR, "unknown selector kind %d", (int)sel->kind);
    MF_ENSURE_MSG(sel->value != NULL, MF_ERR_STATE, "%s selector has no value", k->name);
    size_t name_len = strlen(k->name);
    size_t need;
    MF_ENSURE(mf_add_size(name_len + 2, sel->value_len, &need), MF_ERR_OVERFLOW);
    MF_ENSURE_MSG(need <= cap, MF_ERR_USAGE_ARG,
                  "%zu bytes needed to format a %s selector, %zu given", need, k->name, cap);
    memcpy(out, k->name, name_len);
    out[name_len] = ':';
    memcpy(out + name_len + 1, sel->value, sel->value_len);
    out[name_len + 1 + sel->value_len] = '\0';
    return MF_RES_OK;
}

/* see mf_selector.h */
const char *mf_selector_kind_name(enum mf_sel_kind kind)
{
    const struct kind_desc *k = find_kind(kind);
    return k != NULL ? k->name : "unknown";
}

/* see mf_selector.h */
int mf_selector_cmp(const struct mf_selector *a, const struct mf_selector *b)
{
    if (a->kind != b->kind) {
        return (int)a->kind < (int)b->kind ? -1 : 1;
    }
    size_t na = a->value != NULL ? a->value_len : 0;
    size_t nb = b->value != NULL ? b->value_len : 0;
    size_t n = na < nb ? na : nb;
    int r = n > 0 ? memcmp(a->value, b->value, n) : 0;
    if (r != 0) {
        return r < 0 ? -1 : 1;
    }
    if (na != nb) {
        return na < nb ? -1 : 1;
    }
    return 0;
}

/* see mf_selector.h */
bool mf_selectors_match(const struct mf_selector *want, size_t n_want,
                        const struct mf_selector *have, size_t n_have)
{
    if (want == NULL || n_want == 0) {
        return false;
    }
    if (have == NULL) {
        return false;
    }
    for (size_t i = 0; i < n_want; i++) {
        /* An empty selector (no value) is never satisfied. */
        if (want[i].value == NULL) {
            return false;
        }
        bool found = false;
        for (size_t j = 0; j < n_have && !found; j++) {
            found = have[j].value != NULL && mf_selector_cmp(&want[i], &have[j]) == 0;
        }
        if (!found) {
            return false;
        }
    }
    return true;
}
