/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_spiffeid: the SPIFFE ID parser (SPIFFE.md section A). See mf_spiffeid.h.
 *
 * The parser is a single left-to-right pass over at most 2048 bytes: the
 * length cap is checked before any byte is looked at, so the work an attacker
 * can cause is bounded. Nothing is normalised: the only accepted spelling of
 * an ID is its canonical one, which makes byte equality the same as ID
 * equality (A17) and lets a parsed ID be used as a map key.
 *
 * Every refusal names the rule's error code and, in the detail, the offset in
 * the input (counted from 0, "spiffe://" included) and the offending byte,
 * printed as \xNN when it is not a plain printable character, so the detail
 * is always safe to log.
 */
#include "api/pki/mf_spiffeid.h"

#include <string.h>

#include "api/core/mf_text.h"

/* A4: trust domain bytes are a-z, 0-9, '.', '-' and '_' (three literal
 * characters, not the range from '.' to '_'). */
static bool td_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* A11: path segment bytes add A-Z to the trust domain set. */
static bool path_char_ok(unsigned char c)
{
    return td_char_ok(c) || (c >= 'A' && c <= 'Z');
}

/* Writes c quoted for an error detail: 'a' for a plain printable byte, and
 * '\xNN' for anything else (controls, space, DEL, non-ASCII, and the quote
 * and backslash that would make the detail ambiguous). */
static void show_byte(unsigned char c, char out[8])
{
    if (c > 0x20 && c < 0x7f && c != '\'' && c != '\\') {
        out[0] = '\'';
        out[1] = (char)c;
        out[2] = '\'';
        out[3] = '\0';
        return;
    }
    out[0] = '\'';
    out[1] = '\\';
    out[2] = 'x';
    mf_hex_byte(c, out + 3);
    out[5] = '\'';
    out[6] = '\0';
}

/* Why a byte is refused in a trust domain, for the detail line. */
static const char *td_char_hint(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return " (uppercase is not allowed, A4/A17)";
    }
    switch (c) {
    case ':':
        return " (a port or ':' is not allowed, A3)";
    case '@':
        return " (userinfo is not allowed, A3)";
    case '%':
        return " (percent-encoding is not allowed, A5)";
    case '?':
        return " (a query is not allowed, A7)";
    case '#':
        return " (a fragment is not allowed, A7)";
    case '[':
    case ']':
        return " (IP literals are not allowed, A6)";
    case '\0':
        return " (embedded NUL)";
    default:
        return "";
    }
}

static const char *path_char_hint(unsigned char c)
{
    switch (c) {
    case '%':
        return " (percent-encoding is not allowed, A12)";
    case '?':
        return " (a query is not allowed, A7)";
    case '#':
        return " (a fragment is not allowed, A7)";
    case '\0':
        return " (embedded NUL)";
    default:
        return "";
    }
}

/* Checks the trust domain bytes s[0..n), whose first byte sits at offset base
 * of the caller's input. */
static mf_res check_td(const char *s, size_t n, size_t base)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!td_char_ok(c)) {
            char shown[8];
            show_byte(c, shown);
            MF_BAIL_MSG(MF_ERR_ID_TD_CHAR, "trust domain character %s at offset %zu%s", shown,
                        base + i, td_char_hint(c));
        }
    }
    MF_ENSURE_MSG(n <= MF_TD_MAX, MF_ERR_ID_TD_TOO_LONG,
                  "trust domain is %zu bytes, over the %d-byte limit (A15)", n, MF_TD_MAX);
    return MF_RES_OK;
}

/* Checks a path (s[0..n), empty or starting with '/') that starts at offset
 * base of the input: every segment is non-empty, not "." or "..", and made of
 * A11 characters. */
static mf_res check_path(const char *s, size_t n, size_t base)
{
    size_t seg = 0; /* 1-based number of the segment being read */
    size_t i = 0;
    while (i < n) {
        /* s[i] is the '/' that opens a segment */
        size_t start = i + 1;
        size_t end = start;
        seg++;
        while (end < n && s[end] != '/') {
            unsigned char c = (unsigned char)s[end];
            if (!path_char_ok(c)) {
                char shown[8];
                show_byte(c, shown);
                MF_BAIL_MSG(MF_ERR_ID_PATH_CHAR, "path character %s at offset %zu (segment %zu)%s",
                            shown, base + end, seg, path_char_hint(c));
            }
            end++;
        }
        size_t len = end - start;
        if (len == 0) {
            if (end == n) {
                MF_BAIL_MSG(MF_ERR_ID_TRAILING_SLASH, "path ends with '/' at offset %zu (A9)",
                            base + i);
            }
            MF_BAIL_MSG(MF_ERR_ID_PATH_EMPTY_SEGMENT,
                        "path segment %zu is empty (\"//\" at offset %zu, A9)", seg, base + i);
        }
        if ((len == 1 && s[start] == '.') || (len == 2 && s[start] == '.' && s[start + 1] == '.')) {
            MF_BAIL_MSG(MF_ERR_ID_DOT_SEGMENT, "path segment %zu is '%.*s' at offset %zu (A10)",
                        seg, (int)len, s + start, base + start);
        }
        i = end;
    }
    return MF_RES_OK;
}

/* see mf_spiffeid.h */
mf_res mf_spiffeid_parse(const char *s, size_t len, struct mf_spiffe_id *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE(s != NULL || len == 0, MF_ERR_USAGE_NULL);
    MF_ENSURE_MSG(len > 0, MF_ERR_ID_EMPTY, "SPIFFE ID is empty");
    /* A13/A14: bound the work before reading the input. */
    MF_ENSURE_MSG(len <= MF_SPIFFE_ID_MAX, MF_ERR_ID_TOO_LONG,
                  "SPIFFE ID is %zu bytes, over the %d-byte limit (A13)", len, MF_SPIFFE_ID_MAX);

    /* A1, A17: exactly "spiffe://", lowercase. */
    for (size_t i = 0; i < MF_SPIFFE_SCHEME_LEN; i++) {
        if (i == len) {
            MF_BAIL_MSG(MF_ERR_ID_SCHEME, "input ends at offset %zu before \"spiffe://\" (A1)", i);
        }
        if (s[i] != MF_SPIFFE_SCHEME[i]) {
            char shown[8];
            show_byte((unsigned char)s[i], shown);
            MF_BAIL_MSG(MF_ERR_ID_SCHEME,
                        "character %s at offset %zu where \"spiffe://\" needs '%c' (A1)", shown, i,
                        MF_SPIFFE_SCHEME[i]);
        }
    }

    /* A2-A7, A15: the trust domain runs up to the first '/' or the end. */
    const char *td = s + MF_SPIFFE_SCHEME_LEN;
    size_t rest = len - MF_SPIFFE_SCHEME_LEN;
    const char *slash = memchr(td, '/', rest);
    size_t td_len = slash != NULL ? (size_t)(slash - td) : rest;
    MF_ENSURE_MSG(td_len > 0, MF_ERR_ID_TD_EMPTY, "trust domain is empty at offset %d (A2)",
                  MF_SPIFFE_SCHEME_LEN);
    MF_TRY(check_td(td, td_len, MF_SPIFFE_SCHEME_LEN));

    /* A8-A12, A16: the path is kept as written (case-sensitive). */
    MF_TRY(check_path(td + td_len, rest - td_len, MF_SPIFFE_SCHEME_LEN + td_len));

    memcpy(out->str, s, len);
    out->str[len] = '\0';
    out->len = len;
    out->td_len = td_len;
    return MF_RES_OK;
}

/* see mf_spiffeid.h */
mf_res mf_spiffeid_parse_cstr(const char *s, struct mf_spiffe_id *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE_REF(s);
    /* strnlen keeps the scan bounded; anything longer is refused by parse. */
    return mf_spiffeid_parse(s, strnlen(s, MF_SPIFFE_ID_MAX + 1), out);
}

/* True when s[0..len) should be read as a trust domain ID rather than a bare
 * name: it names a scheme. A bare name never contains ':' (A3), so "x://" or a
 * "spiffe:" prefix can only be an attempt at the ID form, and is reported as
 * a scheme error rather than as a stray character. */
static bool looks_like_id(const char *s, size_t len)
{
    if (len >= 7 && memcmp(s, "spiffe:", 7) == 0) {
        return true;
    }
    for (size_t i = 0; i + 2 < len; i++) {
        if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
            return true;
        }
    }
    return false;
}

/* see mf_spiffeid.h */
mf_res mf_td_parse(const char *s, size_t len, char out[MF_TD_MAX + 1])
{
    MF_ENSURE_REF(out);
    out[0] = '\0';
    MF_ENSURE(s != NULL || len == 0, MF_ERR_USAGE_NULL);
    MF_ENSURE_MSG(len > 0, MF_ERR_ID_TD_EMPTY, "trust domain is empty");
    if (looks_like_id(s, len)) {
        struct mf_spiffe_id id;
        MF_TRY(mf_spiffeid_parse(s, len, &id));
        MF_ENSURE_MSG(mf_spiffeid_is_td(&id), MF_ERR_ID_HAS_PATH,
                      "a trust domain ID has no path, found one at offset %zu",
                      MF_SPIFFE_SCHEME_LEN + id.td_len);
        mf_spiffeid_td(&id, out);
        return MF_RES_OK;
    }
    /* A bare name: offsets in details count from its first byte. Checking the
     * length first keeps the scan bounded. */
    MF_ENSURE_MSG(len <= MF_TD_MAX, MF_ERR_ID_TD_TOO_LONG,
                  "trust domain is %zu bytes, over the %d-byte limit (A15)", len, MF_TD_MAX);
    MF_TRY(check_td(s, len, 0));
    memcpy(out, s, len);
    out[len] = '\0';
    return MF_RES_OK;
}

/* see mf_spiffeid.h */
mf_res mf_spiffeid_from_parts(const char *td, const char *path, struct mf_spiffe_id *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE_REF(td);
    MF_ENSURE_REF(path);

    char name[MF_TD_MAX + 1];
    MF_TRY(mf_td_parse(td, strnlen(td, MF_SPIFFE_ID_MAX + 1), name));
    size_t td_len = strlen(name);
    size_t path_len = strnlen(path, MF_SPIFFE_ID_MAX + 1);
    if (path_len > 0 && path[0] != '/') {
        char shown[8];
        show_byte((unsigned char)path[0], shown);
        MF_BAIL_MSG(MF_ERR_ID_PATH_CHAR, "path must be empty or start with '/', not %s (A8)",
                    shown);
    }
    /* Both lengths are capped above, so the sum cannot overflow; it can still
     * pass the ID limit. */
    size_t total = MF_SPIFFE_SCHEME_LEN + td_len + path_len;
    MF_ENSURE_MSG(total <= MF_SPIFFE_ID_MAX, MF_ERR_ID_TOO_LONG,
                  "SPIFFE ID would be %zu bytes, over the %d-byte limit (A14)", total,
                  MF_SPIFFE_ID_MAX);

    char buf[MF_SPIFFE_ID_MAX];
    memcpy(buf, MF_SPIFFE_SCHEME, MF_SPIFFE_SCHEME_LEN);
    memcpy(buf + MF_SPIFFE_SCHEME_LEN, name, td_len);
    memcpy(buf + MF_SPIFFE_SCHEME_LEN + td_len, path, path_len);
    /* The one parser decides; details name offsets in the assembled ID. */
    return mf_spiffeid_parse(buf, total, out);
}

/* see mf_spiffeid.h */
bool mf_spiffeid_is_td(const struct mf_spiffe_id *id)
{
    return id != NULL && id->td_len > 0 && id->len == MF_SPIFFE_SCHEME_LEN + id->td_len;
}

/* see mf_spiffeid.h */
void mf_spiffeid_td(const struct mf_spiffe_id *id, char out[MF_TD_MAX + 1])
{
    if (id == NULL || id->td_len == 0 || id->td_len > MF_TD_MAX) {
        out[0] = '\0';
        return;
    }
    memcpy(out, id->str + MF_SPIFFE_SCHEME_LEN, id->td_len);
    out[id->td_len] = '\0';
}

/* see mf_spiffeid.h */
const char *mf_spiffeid_path(const struct mf_spiffe_id *id)
{
    if (id == NULL || id->td_len == 0) {
        return "";
    }
    return id->str + MF_SPIFFE_SCHEME_LEN + id->td_len;
}

/* see mf_spiffeid.h */
bool mf_spiffeid_member_of(const struct mf_spiffe_id *id, const char *td)
{
    /* A zeroed (never parsed) ID belongs to no trust domain, not even "". */
    if (id == NULL || td == NULL || id->td_len == 0) {
        return false;
    }
    size_t n = strnlen(td, MF_TD_MAX + 1);
    return n == id->td_len && memcmp(td, id->str + MF_SPIFFE_SCHEME_LEN, n) == 0;
}

/* see mf_spiffeid.h */
bool mf_spiffeid_eq(const struct mf_spiffe_id *a, const struct mf_spiffe_id *b)
{
    /* Zeroed IDs are equal to nothing, so that a failed parse on both sides
     * of an authorization check can never compare equal. */
    if (a == NULL || b == NULL || a->len == 0 || a->len != b->len) {
        return false;
    }
    return memcmp(a->str, b->str, a->len) == 0;
}
