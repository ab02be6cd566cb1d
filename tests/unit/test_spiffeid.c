/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_spiffeid: every rule of SPIFFE.md section A (A1-A17),
 * byte sweeps over the trust domain and path character sets, the 2048/255
 * byte limits at the limit and one past it, embedded NUL, the trust domain
 * forms of mf_td_parse, mf_spiffeid_from_parts, the accessors, and the
 * conformance table in tests/data/spiffeid_cases.txt (gathered from the
 * specification's examples and the public SPIFFE libraries' test suites).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/core/mf_err.h"
#include "api/core/mf_text.h"
#include "api/pki/mf_spiffeid.h"
#include "mf_test.h"

#define CASES_FILE "tests/data/spiffeid_cases.txt"

/* One parse result per test is enough; static keeps the 2 KiB struct off the
 * cmocka stack frames. */
static struct mf_spiffe_id g_id;

static mf_res parse(const char *s)
{
    return mf_spiffeid_parse(s, strlen(s), &g_id);
}

/* Asserts that parsing len bytes at s fails with want, and that the output
 * was cleared. Prints the input on failure. */
static void expect_refused_n(const char *s, size_t len, enum mf_err want)
{
    memset(&g_id, 0x5a, sizeof(g_id));
    mf_res r = mf_spiffeid_parse(s, len, &g_id);
    if (r.err != want) {
        print_error("input \"%.*s\": got %s, want %s (%s)\n", (int)len, s, mf_err_name(r.err),
                    mf_err_name(want), mf_err_detail());
        fail();
    }
    assert_int_equal(g_id.len, 0);
    assert_int_equal(g_id.td_len, 0);
    assert_int_equal(g_id.str[0], '\0');
}

static void expect_refused(const char *s, enum mf_err want)
{
    expect_refused_n(s, strlen(s), want);
}

static void expect_ok(const char *s)
{
    mf_res r = parse(s);
    if (!mf_ok(r)) {
        print_error("input \"%s\": got %s (%s), want OK\n", s, mf_err_name(r.err), mf_err_detail());
        fail();
    }
    assert_string_equal(g_id.str, s);
    assert_int_equal(g_id.len, strlen(s));
}

/* Fills out with "spiffe://" + td_len x 'a' + path_len bytes of path made of
 * "/b" segments (path_len even, or an odd tail ending in 'b'). */
static size_t build_id(char *out, size_t td_len, size_t path_len)
{
    memcpy(out, "spiffe://", 9);
    memset(out + 9, 'a', td_len);
    for (size_t i = 0; i < path_len; i++) {
        out[9 + td_len + i] = (i % 2 == 0) ? '/' : 'b';
    }
    if (path_len % 2 == 1) {
        out[9 + td_len + path_len - 1] = 'b';
        if (path_len == 1) {
            out[9 + td_len] = '/'; /* a lone "/" would be a trailing slash */
        }
    }
    out[9 + td_len + path_len] = '\0';
    return 9 + td_len + path_len;
}

static bool in_td_set(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool in_path_set(int c)
{
    return in_td_set(c) || (c >= 'A' && c <= 'Z');
}

/* ------------------------------------------------------------------ */
/* Happy paths, accessors                                              */

/* A1, A8: scheme, trust domain, path; accessors split them. */
static void test_mf_spiffeid_parse_typical_ok(void **state)
{
    (void)state;
    expect_ok("spiffe://example.org/ns/prod/sa/api");
    assert_int_equal(g_id.td_len, strlen("example.org"));
    assert_string_equal(mf_spiffeid_path(&g_id), "/ns/prod/sa/api");
    char td[MF_TD_MAX + 1];
    mf_spiffeid_td(&g_id, td);
    assert_string_equal(td, "example.org");
    assert_false(mf_spiffeid_is_td(&g_id));
}

/* A8: the path is optional; an ID without one names the trust domain. */
static void test_mf_spiffeid_parse_no_path_ok(void **state)
{
    (void)state;
    expect_ok("spiffe://example.org");
    assert_true(mf_spiffeid_is_td(&g_id));
    assert_string_equal(mf_spiffeid_path(&g_id), "");
    assert_int_equal(g_id.td_len, 11);
}

static void test_mf_spiffeid_parse_cstr_ok(void **state)
{
    (void)state;
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://td/x", &g_id));
    assert_string_equal(g_id.str, "spiffe://td/x");
    /* A C string ends at its NUL: what follows is not part of it. */
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://td\0/junk", &g_id));
    assert_string_equal(g_id.str, "spiffe://td");
    ASSERT_ERR(mf_spiffeid_parse_cstr("", &g_id), MF_ERR_ID_EMPTY);
    ASSERT_ERR(mf_spiffeid_parse_cstr(NULL, &g_id), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_spiffeid_parse_cstr("spiffe://td", NULL), MF_ERR_USAGE_NULL);
}

static void test_mf_spiffeid_parse_null_args_refused(void **state)
{
    (void)state;
    ASSERT_ERR(mf_spiffeid_parse(NULL, 5, &g_id), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_spiffeid_parse("spiffe://td", 11, NULL), MF_ERR_USAGE_NULL);
    /* (NULL, 0) is just an empty input */
    ASSERT_ERR(mf_spiffeid_parse(NULL, 0, &g_id), MF_ERR_ID_EMPTY);
}

static void test_mf_spiffeid_parse_empty_refused(void **state)
{
    (void)state;
    expect_refused("", MF_ERR_ID_EMPTY);
}

/* ------------------------------------------------------------------ */
/* A1: scheme                                                          */

static void test_mf_spiffeid_parse_scheme_wrong_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "http://example.org/a",
        "https://example.org",
        "spiffe:/example.org",
        "spiffe:example.org",
        "spiffe:",
        "spiffe",
        "s",
        "spiffe//example.org",
        "spiffe::/example.org",
        "://example.org",
        "example.org",
        "/example.org",
        " spiffe://example.org",
        "spiffex://example.org",
        "spiff://example.org",
        "urn:spiffe:example.org",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused(bad[i], MF_ERR_ID_SCHEME);
    }
}

/* A17: the scheme is never case-folded. */
static void test_mf_spiffeid_parse_scheme_uppercase_refused(void **state)
{
    (void)state;
    expect_refused("SPIFFE://example.org/a", MF_ERR_ID_SCHEME);
    expect_refused("Spiffe://example.org/a", MF_ERR_ID_SCHEME);
    expect_refused("spiffE://example.org/a", MF_ERR_ID_SCHEME);
    assert_non_null(strstr(mf_err_detail(), "'E' at offset 5"));
}

/* ------------------------------------------------------------------ */
/* A2: trust domain present                                            */

static void test_mf_spiffeid_parse_td_empty_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://", MF_ERR_ID_TD_EMPTY);
    expect_refused("spiffe:///", MF_ERR_ID_TD_EMPTY);
    expect_refused("spiffe:///a", MF_ERR_ID_TD_EMPTY);
    expect_refused("spiffe:///path/element", MF_ERR_ID_TD_EMPTY);
}

/* A3: no userinfo, no port, no ':' at all. */
static void test_mf_spiffeid_parse_td_port_userinfo_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://example.org:8080/a", MF_ERR_ID_TD_CHAR);
    expect_refused("spiffe://example.org:/a", MF_ERR_ID_TD_CHAR);
    expect_refused("spiffe://example.org:", MF_ERR_ID_TD_CHAR);
    expect_refused("spiffe://user@example.org/a", MF_ERR_ID_TD_CHAR);
    expect_refused("spiffe://user:pw@example.org/a", MF_ERR_ID_TD_CHAR);
    expect_refused("spiffe://@example.org", MF_ERR_ID_TD_CHAR);
    expect_refused("spiffe://:80", MF_ERR_ID_TD_CHAR);
}

/* A4, A17: lowercase only; the set is three literal punctuation characters,
 * not the ASCII range '.'..'_' (which would let '/', ':', '=', 'A', '[', '^'
 * in). */
static void test_mf_spiffeid_parse_td_uppercase_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://Example.org", MF_ERR_ID_TD_CHAR);
    assert_string_equal(
        mf_err_detail(),
        "trust domain character 'E' at offset 9 (uppercase is not allowed, A4/A17)");
    expect_refused("spiffe://example.ORG/a", MF_ERR_ID_TD_CHAR);
}

static void test_mf_spiffeid_parse_td_range_misreading_refused(void **state)
{
    (void)state;
    const char *bad[] = {"spiffe://a=b", "spiffe://a;b", "spiffe://a<b",  "spiffe://a>b",
                         "spiffe://a^b", "spiffe://a[b", "spiffe://a\\b", "spiffe://a]b",
                         "spiffe://a,b", "spiffe://a+b", "spiffe://a*b",  "spiffe://a~b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused(bad[i], MF_ERR_ID_TD_CHAR);
    }
    expect_ok("spiffe://a.b-c_d");
}

/* A5: no percent-encoding in the trust domain. */
static void test_mf_spiffeid_parse_td_percent_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://ex%41mple.org", MF_ERR_ID_TD_CHAR);
    assert_non_null(strstr(mf_err_detail(), "'%' at offset 11"));
    expect_refused("spiffe://%65xample.org/a", MF_ERR_ID_TD_CHAR);
}

/* A6: no special handling of IP-looking or DNS-looking names. */
static void test_mf_spiffeid_parse_td_ip_and_odd_names_ok(void **state)
{
    (void)state;
    expect_ok("spiffe://192.168.1.1/a");
    expect_ok("spiffe://10.0.0.1");
    expect_ok("spiffe://-");
    expect_ok("spiffe://_");
    expect_ok("spiffe://.");
    expect_ok("spiffe://-leading-dash.");
    expect_ok("spiffe://a..b");
    expect_ok("spiffe://1");
}

static void test_mf_spiffeid_parse_td_ipv6_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://[::1]/a", MF_ERR_ID_TD_CHAR);
    expect_refused("spiffe://[2001:db8::1]", MF_ERR_ID_TD_CHAR);
}

/* A7: no query or fragment, wherever they appear. */
static void test_mf_spiffeid_parse_query_fragment_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://example.org?x=1", MF_ERR_ID_TD_CHAR);
    expect_refused("spiffe://example.org#frag", MF_ERR_ID_TD_CHAR);
    expect_refused("spiffe://example.org/a?x=1", MF_ERR_ID_PATH_CHAR);
    expect_refused("spiffe://example.org/a#frag", MF_ERR_ID_PATH_CHAR);
    expect_refused("spiffe://example.org/a?#f", MF_ERR_ID_PATH_CHAR);
    expect_refused("spiffe://example.org/?", MF_ERR_ID_PATH_CHAR);
}

/* ------------------------------------------------------------------ */
/* A8-A12: the path                                                    */

static void test_mf_spiffeid_parse_path_segments_ok(void **state)
{
    (void)state;
    expect_ok("spiffe://td/a");
    expect_ok("spiffe://td/a/b/c/d/e/f/g");
    expect_ok("spiffe://td/A-Z_a.z-0_9");
    expect_ok("spiffe://td/9eebccd2-12bf-40a6-b262-65fe0487d453");
}

/* A9: empty segments, trailing slash. */
static void test_mf_spiffeid_parse_path_trailing_slash_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://td/", MF_ERR_ID_TRAILING_SLASH);
    expect_refused("spiffe://td/a/", MF_ERR_ID_TRAILING_SLASH);
    expect_refused("spiffe://td/a/b/", MF_ERR_ID_TRAILING_SLASH);
    assert_non_null(strstr(mf_err_detail(), "offset 15"));
}

static void test_mf_spiffeid_parse_path_empty_segment_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://td//", MF_ERR_ID_PATH_EMPTY_SEGMENT);
    expect_refused("spiffe://td//a", MF_ERR_ID_PATH_EMPTY_SEGMENT);
    expect_refused("spiffe://td/a//b", MF_ERR_ID_PATH_EMPTY_SEGMENT);
    assert_non_null(strstr(mf_err_detail(), "segment 2"));
    expect_refused("spiffe://td/a///", MF_ERR_ID_PATH_EMPTY_SEGMENT);
}

/* A10: "." and ".." are refused; other dotted names are ordinary. */
static void test_mf_spiffeid_parse_path_dot_segment_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://td/.", MF_ERR_ID_DOT_SEGMENT);
    expect_refused("spiffe://td/..", MF_ERR_ID_DOT_SEGMENT);
    expect_refused("spiffe://td/./a", MF_ERR_ID_DOT_SEGMENT);
    expect_refused("spiffe://td/../a", MF_ERR_ID_DOT_SEGMENT);
    expect_refused("spiffe://td/a/.", MF_ERR_ID_DOT_SEGMENT);
    expect_refused("spiffe://td/a/..", MF_ERR_ID_DOT_SEGMENT);
    assert_string_equal(mf_err_detail(), "path segment 2 is '..' at offset 14 (A10)");
    expect_refused("spiffe://td/a/../b", MF_ERR_ID_DOT_SEGMENT);
}

static void test_mf_spiffeid_parse_path_dotted_names_ok(void **state)
{
    (void)state;
    expect_ok("spiffe://td/.a");
    expect_ok("spiffe://td/..a");
    expect_ok("spiffe://td/...");
    expect_ok("spiffe://td/a.");
    expect_ok("spiffe://td/a../b.");
    expect_ok("spiffe://td/..../x");
}

/* A11, A12: path characters, no percent-encoding. */
static void test_mf_spiffeid_parse_path_char_refused(void **state)
{
    (void)state;
    expect_refused("spiffe://td/a%2Fb", MF_ERR_ID_PATH_CHAR);
    assert_string_equal(mf_err_detail(),
                        "path character '%' at offset 13 (segment 1) (percent-encoding is not "
                        "allowed, A12)");
    expect_refused("spiffe://td/%2e%2e", MF_ERR_ID_PATH_CHAR);
    expect_refused("spiffe://td/a b", MF_ERR_ID_PATH_CHAR);
    expect_refused("spiffe://td/a:b", MF_ERR_ID_PATH_CHAR);
    expect_refused("spiffe://td/a@b", MF_ERR_ID_PATH_CHAR);
    expect_refused("spiffe://td/a\\b", MF_ERR_ID_PATH_CHAR);
    expect_refused("spiffe://td/x/a\nb", MF_ERR_ID_PATH_CHAR);
    assert_string_equal(mf_err_detail(), "path character '\\x0a' at offset 15 (segment 2)");
    expect_refused("spiffe://td/caf\xc3\xa9", MF_ERR_ID_PATH_CHAR);
}

/* A16: the path is case-sensitive and kept as written. */
static void test_mf_spiffeid_eq_path_case_differs(void **state)
{
    (void)state;
    struct mf_spiffe_id a, b;
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://td/A", &a));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://td/a", &b));
    assert_false(mf_spiffeid_eq(&a, &b));
    assert_string_equal(mf_spiffeid_path(&a), "/A");
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://td/A", &b));
    assert_true(mf_spiffeid_eq(&a, &b));
}

/* ------------------------------------------------------------------ */
/* Embedded NUL                                                        */

static void test_mf_spiffeid_parse_embedded_nul_refused(void **state)
{
    (void)state;
    expect_refused_n("spiffe://td\0x", 13, MF_ERR_ID_TD_CHAR);
    assert_string_equal(mf_err_detail(),
                        "trust domain character '\\x00' at offset 11 (embedded NUL)");
    expect_refused_n("spiffe://td/a\0b", 15, MF_ERR_ID_PATH_CHAR);
    expect_refused_n("spiffe://td/a\0", 14, MF_ERR_ID_PATH_CHAR);
    expect_refused_n("spif\0fe://td", 12, MF_ERR_ID_SCHEME);
    expect_refused_n("\0", 1, MF_ERR_ID_SCHEME);
    expect_refused_n("spiffe://\0", 10, MF_ERR_ID_TD_CHAR);
}

/* ------------------------------------------------------------------ */
/* A13-A15: limits                                                     */

/* A13: IDs of exactly 2048 bytes are accepted. */
static void test_mf_spiffeid_parse_len_2048_ok(void **state)
{
    (void)state;
    static char buf[MF_SPIFFE_ID_MAX + 64];
    size_t n = build_id(buf, 20, MF_SPIFFE_ID_MAX - 9 - 20);
    assert_int_equal(n, 2048);
    expect_ok(buf);
    assert_int_equal(g_id.len, 2048);
    assert_int_equal(g_id.str[2048], '\0');
}

/* A14 [policy]: one byte more is refused. */
static void test_mf_spiffeid_parse_len_2049_refused(void **state)
{
    (void)state;
    static char buf[MF_SPIFFE_ID_MAX + 64];
    size_t n = build_id(buf, 20, MF_SPIFFE_ID_MAX - 9 - 20 + 1);
    assert_int_equal(n, 2049);
    expect_refused(buf, MF_ERR_ID_TOO_LONG);
    assert_non_null(strstr(mf_err_detail(), "2049 bytes"));
    /* parse_cstr must refuse the same way (it bounds its strlen) */
    ASSERT_ERR(mf_spiffeid_parse_cstr(buf, &g_id), MF_ERR_ID_TOO_LONG);
}

/* The length cap is checked before any byte is read: a wild length over a
 * short buffer is refused without touching it (ASan would catch a read). */
static void test_mf_spiffeid_parse_huge_len_refused(void **state)
{
    (void)state;
    static const char small[] = "spiffe://td";
    expect_refused_n(small, SIZE_MAX, MF_ERR_ID_TOO_LONG);
    expect_refused_n(small, 1u << 20, MF_ERR_ID_TOO_LONG);
}

/* A15: a 255-byte trust domain is accepted, also inside a 2048-byte ID. */
static void test_mf_spiffeid_parse_td_255_ok(void **state)
{
    (void)state;
    static char buf[MF_SPIFFE_ID_MAX + 64];
    build_id(buf, MF_TD_MAX, 0);
    expect_ok(buf);
    assert_int_equal(g_id.td_len, 255);
    build_id(buf, MF_TD_MAX, 4);
    expect_ok(buf);
    /* the largest ID with the largest trust domain */
    size_t n = build_id(buf, MF_TD_MAX, MF_SPIFFE_ID_MAX - 9 - MF_TD_MAX);
    assert_int_equal(n, 2048);
    expect_ok(buf);
}

/* A15 [policy]: a 256-byte trust domain is refused. */
static void test_mf_spiffeid_parse_td_256_refused(void **state)
{
    (void)state;
    static char buf[MF_SPIFFE_ID_MAX + 64];
    build_id(buf, MF_TD_MAX + 1, 0);
    expect_refused(buf, MF_ERR_ID_TD_TOO_LONG);
    assert_non_null(strstr(mf_err_detail(), "256 bytes"));
    build_id(buf, MF_TD_MAX + 1, 2);
    expect_refused(buf, MF_ERR_ID_TD_TOO_LONG);
}

/* ------------------------------------------------------------------ */
/* Byte sweeps: only the allowed sets pass                             */

/* A4/A5/A7: all 256 byte values in the trust domain, in three positions. */
static void test_mf_spiffeid_parse_td_byte_sweep_only_set_ok(void **state)
{
    (void)state;
    size_t accepted = 0;
    for (int c = 0; c < 256; c++) {
        if (c == '/') {
            continue; /* the separator ends the trust domain */
        }
        /* the byte in the middle, first and last position */
        char mid[] = "spiffe://ab?cd/x";
        char first[] = "spiffe://?ab";
        char last[] = "spiffe://ab?";
        mid[11] = (char)c;
        first[9] = (char)c;
        last[11] = (char)c;
        char *forms[] = {mid, first, last};
        size_t lens[] = {sizeof(mid) - 1, sizeof(first) - 1, sizeof(last) - 1};
        size_t offs[] = {11, 9, 11};
        for (size_t f = 0; f < 3; f++) {
            mf_res r = mf_spiffeid_parse(forms[f], lens[f], &g_id);
            if (in_td_set(c)) {
                if (!mf_ok(r)) {
                    print_error("byte 0x%02x refused in trust domain: %s\n", c, mf_err_detail());
                    fail();
                }
                accepted++;
            } else {
                if (r.err != MF_ERR_ID_TD_CHAR) {
                    print_error("byte 0x%02x in trust domain: got %s\n", c, mf_err_name(r.err));
                    fail();
                }
                char where[32];
                (void)snprintf(where, sizeof(where), "at offset %zu", offs[f]);
                assert_non_null(strstr(mf_err_detail(), where));
            }
        }
    }
    /* 26 + 10 + 3 bytes, in three positions */
    assert_int_equal(accepted, 39 * 3);
}

/* A11/A12/A7: all 256 byte values in a path segment, in two positions. */
static void test_mf_spiffeid_parse_path_byte_sweep_only_set_ok(void **state)
{
    (void)state;
    size_t accepted = 0;
    for (int c = 0; c < 256; c++) {
        if (c == '/') {
            continue; /* the separator, covered by the segment tests */
        }
        char mid[] = "spiffe://td/ab?cd/x";
        char first[] = "spiffe://td/x/?";
        mid[14] = (char)c;
        first[14] = (char)c;
        char *forms[] = {mid, first};
        size_t lens[] = {sizeof(mid) - 1, sizeof(first) - 1};
        for (size_t f = 0; f < 2; f++) {
            mf_res r = mf_spiffeid_parse(forms[f], lens[f], &g_id);
            bool ok = in_path_set(c);
            /* a lone "." segment is a dot segment, not a bad character */
            if (f == 1 && c == '.') {
                assert_int_equal(r.err, MF_ERR_ID_DOT_SEGMENT);
                continue;
            }
            if (ok) {
                if (!mf_ok(r)) {
                    print_error("byte 0x%02x refused in path: %s\n", c, mf_err_detail());
                    fail();
                }
                accepted++;
            } else {
                if (r.err != MF_ERR_ID_PATH_CHAR) {
                    print_error("byte 0x%02x in path: got %s\n", c, mf_err_name(r.err));
                    fail();
                }
                assert_non_null(strstr(mf_err_detail(), "at offset 14"));
            }
        }
    }
    /* 52 + 10 + 3 bytes in two positions, less the lone "." */
    assert_int_equal(accepted, 65 * 2 - 1);
}

/* ------------------------------------------------------------------ */
/* Error details                                                       */

static void test_mf_spiffeid_parse_details_name_offset_ok(void **state)
{
    (void)state;
    expect_refused("spiffe://td:8080/a", MF_ERR_ID_TD_CHAR);
    assert_string_equal(
        mf_err_detail(),
        "trust domain character ':' at offset 11 (a port or ':' is not allowed, A3)");
    expect_refused("spiffe://u@td", MF_ERR_ID_TD_CHAR);
    assert_non_null(strstr(mf_err_detail(), "'@' at offset 10 (userinfo"));
    expect_refused("spiffe://td\x7f", MF_ERR_ID_TD_CHAR);
    assert_string_equal(mf_err_detail(), "trust domain character '\\x7f' at offset 11");
    expect_refused("spiffe://t d", MF_ERR_ID_TD_CHAR);
    assert_string_equal(mf_err_detail(), "trust domain character '\\x20' at offset 10");
    expect_refused("spiffe://td/a'b", MF_ERR_ID_PATH_CHAR);
    assert_non_null(strstr(mf_err_detail(), "'\\x27' at offset 13"));
    expect_refused("http://td", MF_ERR_ID_SCHEME);
    assert_non_null(strstr(mf_err_detail(), "at offset 0"));
    expect_refused("spiffe:/", MF_ERR_ID_SCHEME);
    assert_non_null(strstr(mf_err_detail(), "ends at offset 8"));
    expect_refused("spiffe://td/a//b", MF_ERR_ID_PATH_EMPTY_SEGMENT);
    assert_string_equal(mf_err_detail(), "path segment 2 is empty (\"//\" at offset 13, A9)");

    /* and mf_err_format prints sentence plus detail */
    mf_res r = parse("spiffe://Td");
    char line[256];
    mf_err_format(r, line, sizeof(line));
    assert_non_null(strstr(line, "trust domain may contain only"));
    assert_non_null(strstr(line, "'T' at offset 9"));
}

/* A failed parse clears a previously good output. */
static void test_mf_spiffeid_parse_failure_clears_out_ok(void **state)
{
    (void)state;
    expect_ok("spiffe://td/a");
    assert_false(mf_ok(parse("spiffe://td/a/")));
    assert_int_equal(g_id.len, 0);
    assert_string_equal(g_id.str, "");
}

/* ------------------------------------------------------------------ */
/* mf_td_parse                                                         */

static void test_mf_td_parse_bare_ok(void **state)
{
    (void)state;
    char td[MF_TD_MAX + 1];
    ASSERT_OK(mf_td_parse("example.org", 11, td));
    assert_string_equal(td, "example.org");
    ASSERT_OK(mf_td_parse("a-b_c.d", 7, td));
    assert_string_equal(td, "a-b_c.d");
}

static void test_mf_td_parse_id_form_ok(void **state)
{
    (void)state;
    char td[MF_TD_MAX + 1];
    ASSERT_OK(mf_td_parse("spiffe://example.org", 20, td));
    assert_string_equal(td, "example.org");
}

static void test_mf_td_parse_id_with_path_refused(void **state)
{
    (void)state;
    char td[MF_TD_MAX + 1] = "stale";
    ASSERT_ERR(mf_td_parse("spiffe://example.org/a", 22, td), MF_ERR_ID_HAS_PATH);
    assert_string_equal(td, "");
    assert_non_null(strstr(mf_err_detail(), "offset 20"));
    /* an invalid path is reported as such */
    ASSERT_ERR(mf_td_parse("spiffe://example.org/", 21, td), MF_ERR_ID_TRAILING_SLASH);
}

static void test_mf_td_parse_bad_refused(void **state)
{
    (void)state;
    char td[MF_TD_MAX + 1];
    struct {
        const char *s;
        enum mf_err e;
    } cases[] = {
        {"", MF_ERR_ID_TD_EMPTY},
        {"Example.org", MF_ERR_ID_TD_CHAR},
        {"example.org:80", MF_ERR_ID_TD_CHAR},
        {"user@example.org", MF_ERR_ID_TD_CHAR},
        {"example.org/a", MF_ERR_ID_TD_CHAR},
        {"exa%6dple.org", MF_ERR_ID_TD_CHAR},
        {" example.org", MF_ERR_ID_TD_CHAR},
        {"http://example.org", MF_ERR_ID_SCHEME},
        {"SPIFFE://example.org", MF_ERR_ID_SCHEME},
        {"spiffe:/example.org", MF_ERR_ID_SCHEME},
        {"spiffe:example.org", MF_ERR_ID_SCHEME},
        {"spiffe://", MF_ERR_ID_TD_EMPTY},
        {"spiffe://Example.org", MF_ERR_ID_TD_CHAR},
        {"spiffe://example.org:80", MF_ERR_ID_TD_CHAR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(td, "stale", 6);
        mf_res r = mf_td_parse(cases[i].s, strlen(cases[i].s), td);
        if (r.err != cases[i].e) {
            print_error("td \"%s\": got %s, want %s\n", cases[i].s, mf_err_name(r.err),
                        mf_err_name(cases[i].e));
            fail();
        }
        assert_string_equal(td, "");
    }
    ASSERT_ERR(mf_td_parse("Example.org", 11, td), MF_ERR_ID_TD_CHAR);
    assert_non_null(strstr(mf_err_detail(), "'E' at offset 0"));
}

static void test_mf_td_parse_embedded_nul_refused(void **state)
{
    (void)state;
    char td[MF_TD_MAX + 1];
    ASSERT_ERR(mf_td_parse("exam\0ple", 8, td), MF_ERR_ID_TD_CHAR);
    ASSERT_ERR(mf_td_parse("spiffe://exam\0ple", 17, td), MF_ERR_ID_TD_CHAR);
    ASSERT_ERR(mf_td_parse(NULL, 3, td), MF_ERR_USAGE_NULL);
}

static void test_mf_td_parse_len_255_256_limits(void **state)
{
    (void)state;
    static char buf[MF_SPIFFE_ID_MAX + 64];
    char td[MF_TD_MAX + 1];
    memset(buf, 'z', MF_TD_MAX + 1);
    ASSERT_OK(mf_td_parse(buf, MF_TD_MAX, td));
    assert_int_equal(strlen(td), 255);
    ASSERT_ERR(mf_td_parse(buf, MF_TD_MAX + 1, td), MF_ERR_ID_TD_TOO_LONG);
    /* same limits in the ID form */
    build_id(buf, MF_TD_MAX, 0);
    ASSERT_OK(mf_td_parse(buf, strlen(buf), td));
    assert_int_equal(strlen(td), 255);
    build_id(buf, MF_TD_MAX + 1, 0);
    ASSERT_ERR(mf_td_parse(buf, strlen(buf), td), MF_ERR_ID_TD_TOO_LONG);
}

/* ------------------------------------------------------------------ */
/* mf_spiffeid_from_parts                                              */

static void test_mf_spiffeid_from_parts_ok(void **state)
{
    (void)state;
    struct mf_spiffe_id id;
    ASSERT_OK(mf_spiffeid_from_parts("example.org", "/ns/prod", &id));
    assert_string_equal(id.str, "spiffe://example.org/ns/prod");
    assert_int_equal(id.td_len, 11);
    ASSERT_OK(mf_spiffeid_from_parts("example.org", "", &id));
    assert_string_equal(id.str, "spiffe://example.org");
    assert_true(mf_spiffeid_is_td(&id));
    /* the trust domain may be given in its ID form too */
    ASSERT_OK(mf_spiffeid_from_parts("spiffe://example.org", "/a", &id));
    assert_string_equal(id.str, "spiffe://example.org/a");
}

static void test_mf_spiffeid_from_parts_bad_refused(void **state)
{
    (void)state;
    struct mf_spiffe_id id;
    ASSERT_ERR(mf_spiffeid_from_parts("example.org", "a/b", &id), MF_ERR_ID_PATH_CHAR);
    assert_non_null(strstr(mf_err_detail(), "start with '/'"));
    ASSERT_ERR(mf_spiffeid_from_parts("example.org", "/a/", &id), MF_ERR_ID_TRAILING_SLASH);
    ASSERT_ERR(mf_spiffeid_from_parts("example.org", "/", &id), MF_ERR_ID_TRAILING_SLASH);
    ASSERT_ERR(mf_spiffeid_from_parts("example.org", "//a", &id), MF_ERR_ID_PATH_EMPTY_SEGMENT);
    ASSERT_ERR(mf_spiffeid_from_parts("example.org", "/a/../b", &id), MF_ERR_ID_DOT_SEGMENT);
    ASSERT_ERR(mf_spiffeid_from_parts("example.org", "/a?b", &id), MF_ERR_ID_PATH_CHAR);
    ASSERT_ERR(mf_spiffeid_from_parts("Example.org", "/a", &id), MF_ERR_ID_TD_CHAR);
    ASSERT_ERR(mf_spiffeid_from_parts("", "/a", &id), MF_ERR_ID_TD_EMPTY);
    ASSERT_ERR(mf_spiffeid_from_parts("spiffe://example.org/x", "/a", &id), MF_ERR_ID_HAS_PATH);
    ASSERT_ERR(mf_spiffeid_from_parts(NULL, "/a", &id), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_spiffeid_from_parts("td", NULL, &id), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_spiffeid_from_parts("td", "/a", NULL), MF_ERR_USAGE_NULL);
    assert_int_equal(id.len, 0);
}

static void test_mf_spiffeid_from_parts_limits(void **state)
{
    (void)state;
    static char td[MF_TD_MAX + 2];
    static char path[MF_SPIFFE_ID_MAX + 2];
    struct mf_spiffe_id id;
    memset(td, 'a', MF_TD_MAX);
    td[MF_TD_MAX] = '\0';
    size_t plen = MF_SPIFFE_ID_MAX - 9 - MF_TD_MAX; /* 1784, even */
    for (size_t i = 0; i < plen; i++) {
        path[i] = (i % 2 == 0) ? '/' : 'p';
    }
    path[plen] = '\0';
    ASSERT_OK(mf_spiffeid_from_parts(td, path, &id));
    assert_int_equal(id.len, 2048);
    path[plen] = 'q';
    path[plen + 1] = '\0';
    ASSERT_ERR(mf_spiffeid_from_parts(td, path, &id), MF_ERR_ID_TOO_LONG);
    td[MF_TD_MAX] = 'a';
    td[MF_TD_MAX + 1] = '\0';
    ASSERT_ERR(mf_spiffeid_from_parts(td, "/a", &id), MF_ERR_ID_TD_TOO_LONG);
}

/* ------------------------------------------------------------------ */
/* member_of, eq, accessors                                            */

static void test_mf_spiffeid_member_of_exact_only(void **state)
{
    (void)state;
    struct mf_spiffe_id id;
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/w", &id));
    assert_true(mf_spiffeid_member_of(&id, "example.org"));
    assert_false(mf_spiffeid_member_of(&id, "org"));
    assert_false(mf_spiffeid_member_of(&id, "example.or"));
    assert_false(mf_spiffeid_member_of(&id, "example.org.evil"));
    assert_false(mf_spiffeid_member_of(&id, "xexample.org"));
    assert_false(mf_spiffeid_member_of(&id, "Example.org"));
    assert_false(mf_spiffeid_member_of(&id, "spiffe://example.org"));
    assert_false(mf_spiffeid_member_of(&id, "example.org/w"));
    assert_false(mf_spiffeid_member_of(&id, ""));
    assert_false(mf_spiffeid_member_of(&id, NULL));
    assert_false(mf_spiffeid_member_of(NULL, "example.org"));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://evil.example.org/w", &id));
    assert_false(mf_spiffeid_member_of(&id, "example.org"));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org", &id));
    assert_true(mf_spiffeid_member_of(&id, "example.org"));
    /* a zeroed ID is a member of nothing */
    struct mf_spiffe_id zero;
    memset(&zero, 0, sizeof(zero));
    assert_false(mf_spiffeid_member_of(&zero, ""));
}

static void test_mf_spiffeid_eq_byte_equality(void **state)
{
    (void)state;
    struct mf_spiffe_id a, b, zero1, zero2;
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://td/a/b", &a));
    ASSERT_OK(mf_spiffeid_from_parts("td", "/a/b", &b));
    assert_true(mf_spiffeid_eq(&a, &b));
    assert_true(mf_spiffeid_eq(&a, &a));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://td/a/bc", &b));
    assert_false(mf_spiffeid_eq(&a, &b));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://td", &b));
    assert_false(mf_spiffeid_eq(&a, &b));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://tc/a/b", &b));
    assert_false(mf_spiffeid_eq(&a, &b));
    /* two failed parses never compare equal */
    assert_false(mf_ok(mf_spiffeid_parse_cstr("bad", &zero1)));
    assert_false(mf_ok(mf_spiffeid_parse_cstr("worse", &zero2)));
    assert_false(mf_spiffeid_eq(&zero1, &zero2));
    assert_false(mf_spiffeid_eq(NULL, &a));
    assert_false(mf_spiffeid_eq(&a, NULL));
}

static void test_mf_spiffeid_accessors_zeroed_safe(void **state)
{
    (void)state;
    struct mf_spiffe_id zero;
    memset(&zero, 0, sizeof(zero));
    char td[MF_TD_MAX + 1] = "stale";
    mf_spiffeid_td(&zero, td);
    assert_string_equal(td, "");
    assert_string_equal(mf_spiffeid_path(&zero), "");
    assert_false(mf_spiffeid_is_td(&zero));
    assert_false(mf_spiffeid_is_td(NULL));
    assert_string_equal(mf_spiffeid_path(NULL), "");
}

/* ------------------------------------------------------------------ */
/* Conformance table                                                   */

/* Decodes \xNN escapes in s into out; returns the length, or -1 on a
 * malformed escape (a lone backslash is written as \x5c in the table). */
static long unescape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (o >= cap) {
            return -1;
        }
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        if (s[i + 1] != 'x') {
            return -1;
        }
        int hi = mf_hex_value(s[i + 2]);
        int lo = hi < 0 ? -1 : mf_hex_value(s[i + 3]);
        if (lo < 0) {
            return -1;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 3;
    }
    return (long)o;
}

static void test_mf_spiffeid_parse_conformance_table_matches(void **state)
{
    (void)state;
    FILE *f = fopen(CASES_FILE, "r");
    if (f == NULL) {
        print_error("cannot open %s (tests run from the repo root)\n", CASES_FILE);
        fail();
    }
    static char line[16384];
    static char raw[16384];
    size_t lineno = 0, n_valid = 0, n_invalid = 0, failures = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t n = strlen(line);
        assert_true(n > 0 && (line[n - 1] == '\n' || feof(f)));
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (n == 0 || line[0] == '#') {
            continue;
        }
        char *tab = strchr(line, '\t');
        if (tab == NULL) {
            print_error("%s:%zu: no tab\n", CASES_FILE, lineno);
            fail();
        }
        *tab = '\0';
        bool want_ok = false;
        if (strcmp(line, "valid") == 0) {
            want_ok = true;
            n_valid++;
        } else if (strcmp(line, "invalid") == 0) {
            want_ok = false;
            n_invalid++;
        } else {
            print_error("%s:%zu: verdict '%s'\n", CASES_FILE, lineno, line);
            fail();
        }
        long len = unescape(tab + 1, raw, sizeof(raw));
        if (len < 0) {
            print_error("%s:%zu: bad escape\n", CASES_FILE, lineno);
            fail();
        }
        mf_res r = mf_spiffeid_parse(raw, (size_t)len, &g_id);
        if (mf_ok(r) != want_ok) {
            print_error("%s:%zu: %s '%s' but parser says %s (%s)\n", CASES_FILE, lineno,
                        want_ok ? "valid" : "invalid", tab + 1, mf_err_name(r.err),
                        mf_ok(r) ? "" : mf_err_detail());
            failures++;
            continue;
        }
        if (want_ok) {
            /* canonical: the parsed ID is the input, byte for byte */
            assert_int_equal(g_id.len, (size_t)len);
            assert_memory_equal(g_id.str, raw, (size_t)len);
        }
    }
    fclose(f);
    assert_int_equal(failures, 0);
    assert_true(n_valid >= 20);
    assert_true(n_invalid >= 40);
    assert_true(n_valid + n_invalid >= 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_spiffeid_parse_typical_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_no_path_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_cstr_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_null_args_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_empty_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_scheme_wrong_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_scheme_uppercase_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_td_empty_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_td_port_userinfo_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_td_uppercase_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_td_range_misreading_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_td_percent_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_td_ip_and_odd_names_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_td_ipv6_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_query_fragment_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_path_segments_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_path_trailing_slash_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_path_empty_segment_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_path_dot_segment_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_path_dotted_names_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_path_char_refused),
        cmocka_unit_test(test_mf_spiffeid_eq_path_case_differs),
        cmocka_unit_test(test_mf_spiffeid_parse_embedded_nul_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_len_2048_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_len_2049_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_huge_len_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_td_255_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_td_256_refused),
        cmocka_unit_test(test_mf_spiffeid_parse_td_byte_sweep_only_set_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_path_byte_sweep_only_set_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_details_name_offset_ok),
        cmocka_unit_test(test_mf_spiffeid_parse_failure_clears_out_ok),
        cmocka_unit_test(test_mf_td_parse_bare_ok),
        cmocka_unit_test(test_mf_td_parse_id_form_ok),
        cmocka_unit_test(test_mf_td_parse_id_with_path_refused),
        cmocka_unit_test(test_mf_td_parse_bad_refused),
        cmocka_unit_test(test_mf_td_parse_embedded_nul_refused),
        cmocka_unit_test(test_mf_td_parse_len_255_256_limits),
        cmocka_unit_test(test_mf_spiffeid_from_parts_ok),
        cmocka_unit_test(test_mf_spiffeid_from_parts_bad_refused),
        cmocka_unit_test(test_mf_spiffeid_from_parts_limits),
        cmocka_unit_test(test_mf_spiffeid_member_of_exact_only),
        cmocka_unit_test(test_mf_spiffeid_eq_byte_equality),
        cmocka_unit_test(test_mf_spiffeid_accessors_zeroed_safe),
        cmocka_unit_test(test_mf_spiffeid_parse_conformance_table_matches),
    };
    return cmocka_run_group_tests_name("mf_spiffeid", tests, NULL, NULL);
}
