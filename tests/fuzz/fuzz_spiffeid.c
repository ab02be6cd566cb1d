/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for mf_spiffeid: feeds arbitrary bytes to
 * mf_spiffeid_parse and mf_td_parse. Beyond "no crash, no sanitizer report",
 * it checks the parser's promises on every input:
 *   - a refusal carries an ID_* (or usage) code, leaves the output cleared,
 *     and its detail is printable ASCII (safe to log);
 *   - an accepted ID is the input byte for byte (nothing is repaired), is at
 *     most 2048 bytes with a 1-255 byte trust domain, re-parses to an equal
 *     ID, rebuilds from its parts, belongs to its own trust domain, and its
 *     path has no empty, "." or ".." segment and no trailing '/'.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_spiffeid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)     \
    do {             \
        if (!(c)) {  \
            abort(); \
        }            \
    } while (0)

static bool is_id_error(enum mf_err e)
{
    return (e >= MF_ERR_ID_EMPTY && e <= MF_ERR_ID_WRONG_TD) || e == MF_ERR_USAGE_NULL;
}

static void check_refusal(mf_res r)
{
    CHECK(is_id_error(r.err));
    const char *d = mf_err_detail();
    CHECK(d[0] != '\0');
    for (const char *p = d; *p != '\0'; p++) {
        CHECK(*p >= 0x20 && *p < 0x7f);
    }
}

static bool td_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static void check_path(const char *p)
{
    if (*p == '\0') {
        return;
    }
    CHECK(*p == '/');
    while (*p == '/') {
        const char *seg = p + 1;
        const char *end = seg;
        while (*end != '\0' && *end != '/') {
            unsigned char c = (unsigned char)*end;
            CHECK(td_byte(c) || (c >= 'A' && c <= 'Z'));
            end++;
        }
        size_t n = (size_t)(end - seg);
        CHECK(n > 0);
        CHECK(!(n == 1 && seg[0] == '.'));
        CHECK(!(n == 2 && seg[0] == '.' && seg[1] == '.'));
        p = end;
    }
    CHECK(*p == '\0');
}

static void check_id(const uint8_t *data, size_t size, const struct mf_spiffe_id *id)
{
    static struct mf_spiffe_id again, built;
    CHECK(id->len == size && size <= MF_SPIFFE_ID_MAX);
    CHECK(memcmp(id->str, data, size) == 0 && id->str[size] == '\0');
    CHECK(strlen(id->str) == size);
    CHECK(id->td_len >= 1 && id->td_len <= MF_TD_MAX);
    CHECK(memcmp(id->str, MF_SPIFFE_SCHEME, MF_SPIFFE_SCHEME_LEN) == 0);
    for (size_t i = 0; i < id->td_len; i++) {
        CHECK(td_byte((unsigned char)id->str[MF_SPIFFE_SCHEME_LEN + i]));
    }
    const char *path = mf_spiffeid_path(id);
    CHECK(path == id->str + MF_SPIFFE_SCHEME_LEN + id->td_len);
    check_path(path);
    CHECK(mf_spiffeid_is_td(id) == (path[0] == '\0'));

    /* round trip through the C-string form */
    CHECK(mf_ok(mf_spiffeid_parse_cstr(id->str, &again)));
    CHECK(mf_spiffeid_eq(id, &again));

    /* the trust domain, in both its forms */
    char td[MF_TD_MAX + 1], td2[MF_TD_MAX + 1];
    mf_spiffeid_td(id, td);
    CHECK(strlen(td) == id->td_len);
    CHECK(mf_spiffeid_member_of(id, td));
    CHECK(mf_ok(mf_td_parse(td, strlen(td), td2)) && strcmp(td, td2) == 0);
    CHECK(mf_ok(mf_td_parse(id->str, MF_SPIFFE_SCHEME_LEN + id->td_len, td2)));
    CHECK(strcmp(td, td2) == 0);

    /* rebuilding from the parts gives the same ID */
    CHECK(mf_ok(mf_spiffeid_from_parts(td, path, &built)));
    CHECK(mf_spiffeid_eq(id, &built));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mf_spiffe_id id;
    mf_err_clear();
    mf_res r = mf_spiffeid_parse((const char *)data, size, &id);
    if (mf_ok(r)) {
        check_id(data, size, &id);
    } else {
        check_refusal(r);
        CHECK(id.len == 0 && id.td_len == 0 && id.str[0] == '\0');
    }

    char td[MF_TD_MAX + 1];
    r = mf_td_parse((const char *)data, size, td);
    if (mf_ok(r)) {
        size_t n = strlen(td);
        CHECK(n >= 1 && n <= MF_TD_MAX);
        for (size_t i = 0; i < n; i++) {
            CHECK(td_byte((unsigned char)td[i]));
        }
        /* either the input was the bare name or "spiffe://" + name */
        CHECK(
            (n == size && memcmp(td, data, n) == 0) ||
            (size == MF_SPIFFE_SCHEME_LEN + n && memcmp(data + MF_SPIFFE_SCHEME_LEN, td, n) == 0));
    } else {
        check_refusal(r);
        CHECK(td[0] == '\0');
    }
    return 0;
}
