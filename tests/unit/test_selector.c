/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_selector: each unix selector kind with valid and invalid
 * values, value caps at the limit and one past it, embedded NUL, unknown
 * types and keys, the canonical text round trip, copying, ordering, and the
 * matching rule (every wanted selector present; empty want never matches).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/core/mf_err.h"
#include "api/internal/mf_selector.h"
#include "mf_test.h"

static mf_res parse(const char *s, struct mf_selector *out)
{
    return mf_selector_parse(s, strlen(s), out);
}

static void expect_ok(const char *s, enum mf_sel_kind kind, const char *value)
{
    struct mf_selector sel = {0};
    mf_res r = parse(s, &sel);
    if (!mf_ok(r)) {
        print_error("selector \"%s\": got %s (%s), want OK\n", s, mf_err_name(r.err),
                    mf_err_detail());
        fail();
    }
    assert_int_equal(sel.kind, kind);
    assert_string_equal(sel.value, value);
    assert_int_equal(sel.value_len, strlen(value));
    mf_selector_cleanup(&sel);
}

static void expect_bad_n(const char *s, size_t len)
{
    struct mf_selector sel = {0};
    mf_res r = mf_selector_parse(s, len, &sel);
    if (r.err != MF_ERR_PROTO_SELECTOR) {
        print_error("selector \"%.*s\": got %s, want PROTO_SELECTOR\n", (int)len, s,
                    mf_err_name(r.err));
        fail();
    }
    /* out is untouched on failure */
    assert_null(sel.value);
}

static void expect_bad(const char *s)
{
    expect_bad_n(s, strlen(s));
}

/* "unix:path:" + "/" + n-1 bytes of 'p' (a single long component) */
static char *long_path_selector(size_t n)
{
    char *s = malloc(10 + n + 1);
    assert_non_null(s);
    memcpy(s, "unix:path:/", 11);
    memset(s + 11, 'p', n - 1);
    s[10 + n] = '\0';
    return s;
}

/* ------------------------------------------------------------------ */
/* uid, gid, supplementary_gid                                         */

static void test_mf_selector_parse_uid_valid_ok(void **state)
{
    (void)state;
    expect_ok("unix:uid:0", MF_SEL_UNIX_UID, "0");
    expect_ok("unix:uid:1000", MF_SEL_UNIX_UID, "1000");
    expect_ok("unix:uid:4294967294", MF_SEL_UNIX_UID, "4294967294");
    expect_ok("unix:gid:0", MF_SEL_UNIX_GID, "0");
    expect_ok("unix:gid:65534", MF_SEL_UNIX_GID, "65534");
    expect_ok("unix:supplementary_gid:27", MF_SEL_UNIX_SUPPLEMENTARY_GID, "27");
}

static void test_mf_selector_parse_uid_invalid_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "unix:uid:",
        "unix:uid:-1",
        "unix:uid:+1",
        "unix:uid:01",
        "unix:uid:00",
        "unix:uid:4294967295", /* (uid_t)-1: cap + 1 */
        "unix:uid:4294967296",
        "unix:uid:99999999999",
        "unix:uid:12345678901234567890",
        "unix:uid:1e3",
        "unix:uid:0x10",
        "unix:uid: 1",
        "unix:uid:1 ",
        "unix:uid:root",
        "unix:gid:-5",
        "unix:gid:4294967295",
        "unix:supplementary_gid:",
        "unix:supplementary_gid:07",
        "unix:uid:1:2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_bad(bad[i]);
    }
    expect_bad("unix:uid:4294967295");
    assert_non_null(strstr(mf_err_detail(), "unix:uid value '4294967295' is over 4294967294"));
    expect_bad("unix:gid:007");
    assert_non_null(strstr(mf_err_detail(), "leading zero"));
}

/* ------------------------------------------------------------------ */
/* user, group                                                         */

static void test_mf_selector_parse_name_valid_ok(void **state)
{
    (void)state;
    expect_ok("unix:user:root", MF_SEL_UNIX_USER, "root");
    expect_ok("unix:user:www-data", MF_SEL_UNIX_USER, "www-data");
    expect_ok("unix:user:_apt", MF_SEL_UNIX_USER, "_apt");
    expect_ok("unix:user:Svc.01", MF_SEL_UNIX_USER, "Svc.01");
    expect_ok("unix:group:docker", MF_SEL_UNIX_GROUP, "docker");
    /* 32 bytes: at the cap */
    expect_ok("unix:user:abcdefghijklmnopqrstuvwxyz012345", MF_SEL_UNIX_USER,
              "abcdefghijklmnopqrstuvwxyz012345");
}

static void test_mf_selector_parse_name_invalid_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "unix:user:",
        "unix:user:-root",
        "unix:user:a b",
        "unix:user:a:b",
        "unix:user:a/b",
        "unix:user:caf\xc3\xa9",
        "unix:user:a$",
        "unix:user:a\n",
        "unix:group:-",
        "unix:group:",
        "unix:group:a@b",
        /* 33 bytes: cap + 1 */
        "unix:user:abcdefghijklmnopqrstuvwxyz0123456",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_bad(bad[i]);
    }
    expect_bad("unix:user:a\nb");
    /* the detail escapes the newline so the log line stays one line */
    assert_non_null(strstr(mf_err_detail(), "'a\\x0ab'"));
    assert_null(strchr(mf_err_detail(), '\n'));
}

/* ------------------------------------------------------------------ */
/* path                                                                */

static void test_mf_selector_parse_path_valid_ok(void **state)
{
    (void)state;
    expect_ok("unix:path:/usr/bin/curl", MF_SEL_UNIX_PATH, "/usr/bin/curl");
    expect_ok("unix:path:/", MF_SEL_UNIX_PATH, "/");
    expect_ok("unix:path:/opt/a:b/c d", MF_SEL_UNIX_PATH, "/opt/a:b/c d");
    expect_ok("unix:path:/x/.hidden/..a/...", MF_SEL_UNIX_PATH, "/x/.hidden/..a/...");
}

static void test_mf_selector_parse_path_invalid_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "unix:path:",
        "unix:path:usr/bin/curl",
        "unix:path:./curl",
        "unix:path://usr/bin",
        "unix:path:/usr//bin",
        "unix:path:/usr/./bin",
        "unix:path:/usr/../bin",
        "unix:path:/usr/bin/..",
        "unix:path:/usr/bin/.",
        "unix:path:/..",
        "unix:path:/.",
        "unix:path:~/bin",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_bad(bad[i]);
    }
}

static void test_mf_selector_parse_path_cap_limits(void **state)
{
    (void)state;
    char *at = long_path_selector(MF_SELECTOR_VALUE_MAX);
    struct mf_selector sel = {0};
    ASSERT_OK(parse(at, &sel));
    assert_int_equal(sel.value_len, MF_SELECTOR_VALUE_MAX);
    /* the longest selector formats into MF_SELECTOR_STR_MAX */
    char text[MF_SELECTOR_STR_MAX];
    ASSERT_OK(mf_selector_format(&sel, text, sizeof(text)));
    assert_string_equal(text, at);
    mf_selector_cleanup(&sel);
    free(at);

    char *over = long_path_selector(MF_SELECTOR_VALUE_MAX + 1);
    expect_bad(over);
    assert_non_null(strstr(mf_err_detail(), "4097 bytes"));
    free(over);

    /* mf_selector_make applies the same cap */
    char *v = malloc(MF_SELECTOR_VALUE_MAX + 2);
    assert_non_null(v);
    v[0] = '/';
    memset(v + 1, 'q', MF_SELECTOR_VALUE_MAX);
    v[MF_SELECTOR_VALUE_MAX] = '\0';
    ASSERT_OK(mf_selector_make(MF_SEL_UNIX_PATH, v, &sel));
    mf_selector_cleanup(&sel);
    v[MF_SELECTOR_VALUE_MAX] = 'q';
    v[MF_SELECTOR_VALUE_MAX + 1] = '\0';
    ASSERT_ERR(mf_selector_make(MF_SEL_UNIX_PATH, v, &sel), MF_ERR_PROTO_SELECTOR);
    free(v);
}

static void test_mf_selector_parse_whole_string_over_cap_refused(void **state)
{
    (void)state;
    size_t n = MF_SELECTOR_STR_MAX + 1;
    char *s = malloc(n);
    assert_non_null(s);
    memcpy(s, "unix:path:/", 11);
    memset(s + 11, 'a', n - 11);
    expect_bad_n(s, n);
    assert_non_null(strstr(mf_err_detail(), "over"));
    free(s);
}

/* ------------------------------------------------------------------ */
/* sha256                                                              */

static void test_mf_selector_parse_sha256_ok(void **state)
{
    (void)state;
    const char *hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    char s[128] = "unix:sha256:";
    memcpy(s + 12, hex, 65);
    expect_ok(s, MF_SEL_UNIX_SHA256, hex);
}

static void test_mf_selector_parse_sha256_invalid_refused(void **state)
{
    (void)state;
    /* 63, 65 digits, uppercase, non-hex, empty */
    expect_bad("unix:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85");
    expect_bad("unix:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550");
    expect_bad("unix:sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855");
    expect_bad("unix:sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_bad("unix:sha256:");
}

/* ------------------------------------------------------------------ */
/* Embedded NUL, structure, unknown type and key                       */

static void test_mf_selector_parse_embedded_nul_refused(void **state)
{
    (void)state;
    expect_bad_n("unix:uid:10\0"
                 "0",
                 13);
    expect_bad_n("unix:user:ro\0ot", 15);
    expect_bad_n("unix:path:/usr/bin\0/x", 21);
    assert_non_null(strstr(mf_err_detail(), "NUL"));
    expect_bad_n("unix:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8\0"
                 "5",
                 76);
    expect_bad_n("unix\0:uid:1", 11);
    expect_bad_n("unix:ui\0d:1", 11);
}

static void test_mf_selector_parse_unknown_type_refused(void **state)
{
    (void)state;
    expect_bad("k8s:ns:default");
    assert_string_equal(mf_err_detail(), "unknown selector type 'k8s' (only unix)");
    expect_bad("UNIX:uid:1");
    assert_non_null(strstr(mf_err_detail(), "'UNIX'"));
    expect_bad("docker:label:a:b");
    expect_bad(":uid:1");
    expect_bad("unix\x1b[31m:uid:1");
    assert_non_null(strstr(mf_err_detail(), "'unix\\x1b[31m'"));
}

static void test_mf_selector_parse_unknown_key_refused(void **state)
{
    (void)state;
    expect_bad("unix:pid:1");
    assert_string_equal(mf_err_detail(), "unknown unix selector key 'pid'");
    expect_bad("unix:UID:1");
    expect_bad("unix::1");
    expect_bad("unix:uidx:1");
    expect_bad("unix:ui:1");
}

static void test_mf_selector_parse_malformed_refused(void **state)
{
    (void)state;
    expect_bad("");
    expect_bad("unix");
    expect_bad("unix:");
    expect_bad("unix:uid");
    expect_bad("uid:1000");
    struct mf_selector sel = {0};
    ASSERT_ERR(mf_selector_parse(NULL, 4, &sel), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_selector_parse("unix:uid:1", 10, NULL), MF_ERR_USAGE_NULL);
}

/* ------------------------------------------------------------------ */
/* make, format, copy, names, cmp                                      */

static void test_mf_selector_make_each_kind_ok(void **state)
{
    (void)state;
    struct {
        enum mf_sel_kind kind;
        const char *value;
        const char *text;
    } cases[] = {
        {MF_SEL_UNIX_UID, "1000", "unix:uid:1000"},
        {MF_SEL_UNIX_USER, "alice", "unix:user:alice"},
        {MF_SEL_UNIX_GID, "100", "unix:gid:100"},
        {MF_SEL_UNIX_GROUP, "staff", "unix:group:staff"},
        {MF_SEL_UNIX_SUPPLEMENTARY_GID, "44", "unix:supplementary_gid:44"},
        {MF_SEL_UNIX_PATH, "/bin/sh", "unix:path:/bin/sh"},
        {MF_SEL_UNIX_SHA256, "0000000000000000000000000000000000000000000000000000000000000000",
         "unix:sha256:0000000000000000000000000000000000000000000000000000000000000000"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mf_selector a = {0}, b = {0};
        ASSERT_OK(mf_selector_make(cases[i].kind, cases[i].value, &a));
        char text[MF_SELECTOR_STR_MAX];
        ASSERT_OK(mf_selector_format(&a, text, sizeof(text)));
        assert_string_equal(text, cases[i].text);
        /* round trip: parse(format(x)) == x */
        ASSERT_OK(parse(text, &b));
        assert_int_equal(mf_selector_cmp(&a, &b), 0);
        /* kind name is the text prefix */
        const char *name = mf_selector_kind_name(cases[i].kind);
        assert_memory_equal(text, name, strlen(name));
        assert_int_equal(text[strlen(name)], ':');
        mf_selector_cleanup(&a);
        mf_selector_cleanup(&b);
    }
}

static void test_mf_selector_make_bad_refused(void **state)
{
    (void)state;
    struct mf_selector sel = {0};
    ASSERT_ERR(mf_selector_make(MF_SEL_UNIX_UID, "x", &sel), MF_ERR_PROTO_SELECTOR);
    ASSERT_ERR(mf_selector_make((enum mf_sel_kind)99, "1", &sel), MF_ERR_PROTO_SELECTOR);
    assert_non_null(strstr(mf_err_detail(), "99"));
    ASSERT_ERR(mf_selector_make(MF_SEL_UNIX_UID, NULL, &sel), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_selector_make(MF_SEL_UNIX_UID, "1", NULL), MF_ERR_USAGE_NULL);
    assert_null(sel.value);
    assert_string_equal(mf_selector_kind_name((enum mf_sel_kind)99), "unknown");
}

static void test_mf_selector_format_small_buffer_refused(void **state)
{
    (void)state;
    struct mf_selector sel = {0};
    ASSERT_OK(parse("unix:uid:1000", &sel));
    char text[14];
    /* 13 characters + NUL fit exactly; one byte less does not */
    ASSERT_OK(mf_selector_format(&sel, text, 14));
    assert_string_equal(text, "unix:uid:1000");
    memset(text, 'x', sizeof(text));
    ASSERT_ERR(mf_selector_format(&sel, text, 13), MF_ERR_USAGE_ARG);
    assert_string_equal(text, "");
    ASSERT_ERR(mf_selector_format(&sel, text, 0), MF_ERR_USAGE_ARG);
    mf_selector_cleanup(&sel);
    /* an empty selector has nothing to print */
    ASSERT_ERR(mf_selector_format(&sel, text, sizeof(text)), MF_ERR_STATE);
}

static void test_mf_selector_copy_deep_ok(void **state)
{
    (void)state;
    struct mf_selector a = {0}, b = {0};
    ASSERT_OK(parse("unix:path:/usr/bin/env", &a));
    ASSERT_OK(mf_selector_copy(&a, &b));
    assert_ptr_not_equal(a.value, b.value);
    assert_int_equal(mf_selector_cmp(&a, &b), 0);
    mf_selector_cleanup(&a);
    assert_string_equal(b.value, "/usr/bin/env");
    mf_selector_cleanup(&b);
    assert_null(b.value);
    mf_selector_cleanup(&b); /* twice is harmless */
    mf_selector_cleanup(NULL);
    /* an empty selector copies to an empty selector */
    ASSERT_OK(mf_selector_copy(&a, &b));
    assert_null(b.value);
    ASSERT_ERR(mf_selector_copy(NULL, &b), MF_ERR_USAGE_NULL);
}

static void test_mf_selector_cmp_total_order(void **state)
{
    (void)state;
    struct mf_selector s[5] = {{0}};
    ASSERT_OK(parse("unix:uid:1", &s[0]));
    ASSERT_OK(parse("unix:uid:10", &s[1]));
    ASSERT_OK(parse("unix:uid:2", &s[2]));
    ASSERT_OK(parse("unix:user:a", &s[3]));
    ASSERT_OK(parse("unix:gid:1", &s[4]));
    assert_true(mf_selector_cmp(&s[0], &s[1]) < 0); /* prefix sorts first */
    assert_true(mf_selector_cmp(&s[1], &s[0]) > 0);
    assert_true(mf_selector_cmp(&s[1], &s[2]) < 0); /* bytes, not numbers */
    assert_true(mf_selector_cmp(&s[2], &s[3]) < 0); /* kind first */
    assert_true(mf_selector_cmp(&s[3], &s[4]) < 0);
    assert_true(mf_selector_cmp(&s[0], &s[4]) < 0); /* same value, other kind */
    assert_int_equal(mf_selector_cmp(&s[4], &s[4]), 0);
    for (size_t i = 0; i < 5; i++) {
        mf_selector_cleanup(&s[i]);
    }
}

/* ------------------------------------------------------------------ */
/* Matching                                                            */

/* Parses n selector strings into a fresh heap array. */
static struct mf_selector *sels(size_t n, const char *const *text)
{
    struct mf_selector *a = calloc(n > 0 ? n : 1, sizeof(*a));
    assert_non_null(a);
    for (size_t i = 0; i < n; i++) {
        ASSERT_OK(parse(text[i], &a[i]));
    }
    return a;
}

static void test_mf_selectors_match_subset_ok(void **state)
{
    (void)state;
    const char *have_t[] = {"unix:uid:1000", "unix:gid:1000", "unix:user:alice",
                            "unix:supplementary_gid:27", "unix:path:/usr/bin/curl"};
    const char *want_t[] = {"unix:path:/usr/bin/curl", "unix:uid:1000"};
    struct mf_selector *have = sels(5, have_t);
    struct mf_selector *want = sels(2, want_t);
    assert_true(mf_selectors_match(want, 2, have, 5));
    assert_true(mf_selectors_match(want, 1, have, 5));
    /* the whole set matches itself */
    assert_true(mf_selectors_match(have, 5, have, 5));
    /* a superset of what the workload has does not match */
    assert_false(mf_selectors_match(have, 5, want, 2));
    mf_selectors_free(have, 5);
    mf_selectors_free(want, 2);
}

static void test_mf_selectors_match_missing_refused(void **state)
{
    (void)state;
    const char *have_t[] = {"unix:uid:1000", "unix:gid:100"};
    const char *want_t[] = {"unix:uid:1000", "unix:gid:1000"};
    const char *kind_t[] = {"unix:supplementary_gid:100"};
    struct mf_selector *have = sels(2, have_t);
    struct mf_selector *want = sels(2, want_t);
    struct mf_selector *kind = sels(1, kind_t);
    assert_false(mf_selectors_match(want, 2, have, 2));
    /* same value under another kind is a different selector */
    assert_false(mf_selectors_match(kind, 1, have, 2));
    /* nothing discovered */
    assert_false(mf_selectors_match(want, 1, have, 0));
    assert_false(mf_selectors_match(want, 1, NULL, 0));
    mf_selectors_free(have, 2);
    mf_selectors_free(want, 2);
    mf_selectors_free(kind, 1);
}

static void test_mf_selectors_match_empty_want_never(void **state)
{
    (void)state;
    const char *have_t[] = {"unix:uid:0"};
    struct mf_selector *have = sels(1, have_t);
    assert_false(mf_selectors_match(have, 0, have, 1));
    assert_false(mf_selectors_match(NULL, 0, have, 1));
    assert_false(mf_selectors_match(NULL, 0, NULL, 0));
    /* a zeroed selector in want is never satisfied, even by a zeroed one */
    struct mf_selector zero[1] = {{0}};
    assert_false(mf_selectors_match(zero, 1, zero, 1));
    assert_false(mf_selectors_match(zero, 1, have, 1));
    mf_selectors_free(have, 1);
}

static void test_mf_selectors_match_duplicates_ok(void **state)
{
    (void)state;
    const char *have_t[] = {"unix:uid:1000", "unix:uid:1000", "unix:gid:5"};
    const char *want_t[] = {"unix:gid:5", "unix:gid:5", "unix:uid:1000"};
    struct mf_selector *have = sels(3, have_t);
    struct mf_selector *want = sels(3, want_t);
    /* a duplicated wanted selector is satisfied by one discovered copy */
    assert_true(mf_selectors_match(want, 3, have, 1 + 2));
    assert_true(mf_selectors_match(want, 2, have + 2, 1));
    assert_false(mf_selectors_match(want, 3, have + 2, 1));
    mf_selectors_free(have, 3);
    mf_selectors_free(want, 3);
    mf_selectors_free(NULL, 0);
}

static void test_mf_selectors_match_max_entry_ok(void **state)
{
    (void)state;
    /* an entry with MF_SELECTORS_MAX selectors against that many discovered */
    struct mf_selector *want = calloc(MF_SELECTORS_MAX, sizeof(*want));
    struct mf_selector *have = calloc(MF_SELECTORS_MAX, sizeof(*have));
    assert_non_null(want);
    assert_non_null(have);
    for (size_t i = 0; i < MF_SELECTORS_MAX; i++) {
        char text[64];
        (void)snprintf(text, sizeof(text), "unix:supplementary_gid:%zu", 100 + i);
        ASSERT_OK(parse(text, &want[i]));
        (void)snprintf(text, sizeof(text), "unix:supplementary_gid:%zu",
                       100 + (MF_SELECTORS_MAX - 1 - i));
        ASSERT_OK(parse(text, &have[i]));
    }
    assert_true(mf_selectors_match(want, MF_SELECTORS_MAX, have, MF_SELECTORS_MAX));
    assert_false(mf_selectors_match(want, MF_SELECTORS_MAX, have, MF_SELECTORS_MAX - 1));
    mf_selectors_free(want, MF_SELECTORS_MAX);
    mf_selectors_free(have, MF_SELECTORS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_selector_parse_uid_valid_ok),
        cmocka_unit_test(test_mf_selector_parse_uid_invalid_refused),
        cmocka_unit_test(test_mf_selector_parse_name_valid_ok),
        cmocka_unit_test(test_mf_selector_parse_name_invalid_refused),
        cmocka_unit_test(test_mf_selector_parse_path_valid_ok),
        cmocka_unit_test(test_mf_selector_parse_path_invalid_refused),
        cmocka_unit_test(test_mf_selector_parse_path_cap_limits),
        cmocka_unit_test(test_mf_selector_parse_whole_string_over_cap_refused),
        cmocka_unit_test(test_mf_selector_parse_sha256_ok),
        cmocka_unit_test(test_mf_selector_parse_sha256_invalid_refused),
        cmocka_unit_test(test_mf_selector_parse_embedded_nul_refused),
        cmocka_unit_test(test_mf_selector_parse_unknown_type_refused),
        cmocka_unit_test(test_mf_selector_parse_unknown_key_refused),
        cmocka_unit_test(test_mf_selector_parse_malformed_refused),
        cmocka_unit_test(test_mf_selector_make_each_kind_ok),
        cmocka_unit_test(test_mf_selector_make_bad_refused),
        cmocka_unit_test(test_mf_selector_format_small_buffer_refused),
        cmocka_unit_test(test_mf_selector_copy_deep_ok),
        cmocka_unit_test(test_mf_selector_cmp_total_order),
        cmocka_unit_test(test_mf_selectors_match_subset_ok),
        cmocka_unit_test(test_mf_selectors_match_missing_refused),
        cmocka_unit_test(test_mf_selectors_match_empty_want_never),
        cmocka_unit_test(test_mf_selectors_match_duplicates_ok),
        cmocka_unit_test(test_mf_selectors_match_max_entry_ok),
    };
    return cmocka_run_group_tests_name("mf_selector", tests, NULL, NULL);
}
