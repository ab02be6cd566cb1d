/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_json: the size cap comes before parsing, duplicate
 * members and truncated text are refused with line/column details, the typed
 * getters never coerce, only_keys names the stranger, dump is compact and
 * keeps insertion order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/core/mf_json.h"
#include "mf_test.h"

static json_t *parse_ok(const char *text)
{
    json_t *v = NULL;
    ASSERT_OK(mf_json_parse(text, strlen(text), 4096, &v));
    assert_non_null(v);
    return v;
}

static void test_mf_json_parse_object_ok(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"a\":1,\"b\":\"x\"}");
    assert_true(json_is_object(v));
    assert_int_equal(json_object_size(v), 2);
    json_decref(v);
}

static void test_mf_json_parse_not_object_refused(void **state)
{
    (void)state;
    const char *texts[] = {"[1,2]", "\"s\"", "12", "null", "true"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_t *v = json_null(); /* poison: must be cleared */
        mf_res r = mf_json_parse(texts[i], strlen(texts[i]), 64, &v);
        assert_int_equal(r.err, MF_ERR_PROTO_JSON);
        assert_null(v);
    }
}

static void test_mf_json_parse_any_array_ok(void **state)
{
    (void)state;
    json_t *v = NULL;
    ASSERT_OK(mf_json_parse_any("[1,2,3]", 7, 64, &v));
    assert_true(json_is_array(v));
    json_decref(v);
    ASSERT_OK(mf_json_parse_any("\"s\"", 3, 64, &v));
    assert_true(json_is_string(v));
    json_decref(v);
}

static void test_mf_json_parse_cap_ok_cap_plus_one_refused(void **state)
{
    (void)state;
    /* {"k":"xxxx"} padded with spaces to exactly cap bytes */
    const size_t cap = 1000;
    char *text = malloc(cap + 2);
    assert_non_null(text);
    memset(text, ' ', cap + 1);
    memcpy(text, "{\"k\":\"xxxx\"}", 12);
    json_t *v = NULL;
    ASSERT_OK(mf_json_parse(text, cap, cap, &v));
    json_decref(v);
    mf_res r = mf_json_parse(text, cap + 1, cap, &v);
    assert_int_equal(r.err, MF_ERR_PROTO_TOO_LARGE);
    assert_null(v);
    r = mf_json_parse_any(text, cap + 1, cap, &v);
    assert_int_equal(r.err, MF_ERR_PROTO_TOO_LARGE);
    free(text);
}

static void test_mf_json_parse_oversize_refused_before_parse(void **state)
{
    (void)state;
    /* not even JSON: the cap must be what refuses it */
    const char junk[] = "}}}}}}}}}}";
    json_t *v = NULL;
    ASSERT_ERR(mf_json_parse(junk, sizeof(junk) - 1, 4, &v), MF_ERR_PROTO_TOO_LARGE);
}

static void test_mf_json_parse_truncated_refused(void **state)
{
    (void)state;
    const char full[] = "{\"a\":[1,2,{\"b\":\"c\"}],\"d\":true}";
    size_t n = strlen(full);
    for (size_t i = 0; i < n; i++) {
        json_t *v = NULL;
        mf_res r = mf_json_parse(full, i, 4096, &v);
        assert_int_equal(r.err, MF_ERR_PROTO_JSON);
        assert_null(v);
    }
    json_t *v = parse_ok(full);
    json_decref(v);
}

static void test_mf_json_parse_duplicate_key_refused(void **state)
{
    (void)state;
    const char text[] = "{\"a\":1,\n\"dup\":2,\n\"dup\":3}";
    json_t *v = NULL;
    mf_res r = mf_json_parse(text, strlen(text), 4096, &v);
    assert_int_equal(r.err, MF_ERR_PROTO_JSON);
    assert_null(v);
    /* the detail carries jansson's position and the member name */
    assert_non_null(strstr(mf_err_detail(), "line 3"));
    assert_non_null(strstr(mf_err_detail(), "dup"));

    /* duplicates nested deeper are refused too */
    const char nested[] = "{\"o\":{\"x\":1,\"x\":1}}";
    ASSERT_ERR(mf_json_parse(nested, strlen(nested), 4096, &v), MF_ERR_PROTO_JSON);
}

static void test_mf_json_parse_syntax_error_has_position(void **state)
{
    (void)state;
    const char text[] = "{\"a\":\n  tru}";
    json_t *v = NULL;
    mf_res r = mf_json_parse(text, strlen(text), 4096, &v);
    assert_int_equal(r.err, MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "line 2"));
    assert_non_null(strstr(mf_err_detail(), "column"));
}

static void test_mf_json_parse_embedded_nul_refused(void **state)
{
    (void)state;
    json_t *v = NULL;
    /* a raw NUL byte inside the text */
    const char raw[] = "{\"a\":\"x\0y\"}";
    ASSERT_ERR(mf_json_parse(raw, sizeof(raw) - 1, 4096, &v), MF_ERR_PROTO_JSON);
    /* a NUL after a complete value: trailing garbage */
    const char tail[] = "{\"a\":1}\0";
    ASSERT_ERR(mf_json_parse(tail, sizeof(tail) - 1, 4096, &v), MF_ERR_PROTO_JSON);
    /* an escaped NUL in a string and in a key */
    const char esc[] = "{\"a\":\"x\\u0000y\"}";
    ASSERT_ERR(mf_json_parse(esc, strlen(esc), 4096, &v), MF_ERR_PROTO_JSON);
    const char esck[] = "{\"a\\u0000b\":1}";
    ASSERT_ERR(mf_json_parse(esck, strlen(esck), 4096, &v), MF_ERR_PROTO_JSON);
    assert_null(v);
}

static void test_mf_json_parse_control_chars_cleaned_in_detail(void **state)
{
    (void)state;
    const char text[] = "{\"a\":\"\x01\x1b[31m\"}";
    json_t *v = NULL;
    ASSERT_ERR(mf_json_parse(text, strlen(text), 4096, &v), MF_ERR_PROTO_JSON);
    for (const char *p = mf_err_detail(); *p != '\0'; p++) {
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    }
}

static void test_mf_json_parse_null_args_refused(void **state)
{
    (void)state;
    json_t *v = NULL;
    ASSERT_ERR(mf_json_parse(NULL, 0, 10, &v), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_json_parse("{}", 2, 10, NULL), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_json_parse("", 0, 10, &v), MF_ERR_PROTO_JSON);
}

static void test_mf_json_str_cases(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"s\":\"abcd\",\"n\":5,\"z\":null,\"e\":\"\"}");
    const char *s = NULL;
    ASSERT_OK(mf_json_str(v, "s", true, 4, &s));
    assert_string_equal(s, "abcd");
    /* cap and cap+1 */
    mf_res r = mf_json_str(v, "s", true, 3, &s);
    assert_int_equal(r.err, MF_ERR_PROTO_TOO_LARGE);
    assert_null(s);
    assert_non_null(strstr(mf_err_detail(), "\"s\""));
    /* empty string is a string */
    ASSERT_OK(mf_json_str(v, "e", true, 4, &s));
    assert_string_equal(s, "");
    /* wrong type */
    r = mf_json_str(v, "n", true, 16, &s);
    assert_int_equal(r.err, MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "\"n\""));
    /* missing: required refused, optional NULL */
    r = mf_json_str(v, "missing", true, 16, &s);
    assert_int_equal(r.err, MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "missing"));
    s = "poison";
    ASSERT_OK(mf_json_str(v, "missing", false, 16, &s));
    assert_null(s);
    /* null counts as absent */
    ASSERT_OK(mf_json_str(v, "z", false, 16, &s));
    assert_null(s);
    ASSERT_ERR(mf_json_str(v, "z", true, 16, &s), MF_ERR_PROTO_JSON);
    json_decref(v);
}

static void test_mf_json_str_embedded_nul_refused(void **state)
{
    (void)state;
    /* built, not parsed: jansson keeps the NUL */
    json_t *v = json_object();
    assert_int_equal(json_object_set_new(v, "s", json_stringn("a\0b", 3)), 0);
    const char *s = NULL;
    ASSERT_ERR(mf_json_str(v, "s", true, 16, &s), MF_ERR_PROTO_JSON);
    assert_null(s);
    json_decref(v);
}

static void test_mf_json_int_cases(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"i\":10,\"neg\":-3,\"r\":1.0,\"s\":\"10\",\"b\":true,"
                         "\"big\":9223372036854775807}");
    int64_t i = 77;
    ASSERT_OK(mf_json_int(v, "i", true, 0, 10, &i));
    assert_int_equal(i, 10);
    ASSERT_ERR(mf_json_int(v, "i", true, 0, 9, &i), MF_ERR_PROTO_JSON);
    ASSERT_ERR(mf_json_int(v, "i", true, 11, 20, &i), MF_ERR_PROTO_JSON);
    ASSERT_ERR(mf_json_int(v, "neg", true, 0, 10, &i), MF_ERR_PROTO_JSON);
    ASSERT_OK(mf_json_int(v, "neg", true, -3, 10, &i));
    assert_int_equal(i, -3);
    ASSERT_ERR(mf_json_int(v, "r", true, 0, 10, &i), MF_ERR_PROTO_JSON);
    ASSERT_ERR(mf_json_int(v, "s", true, 0, 10, &i), MF_ERR_PROTO_JSON);
    ASSERT_ERR(mf_json_int(v, "b", true, 0, 10, &i), MF_ERR_PROTO_JSON);
    ASSERT_OK(mf_json_int(v, "big", true, 0, INT64_MAX, &i));
    assert_true(i == INT64_MAX);
    /* optional absent keeps the default */
    i = 42;
    ASSERT_OK(mf_json_int(v, "none", false, 0, 10, &i));
    assert_int_equal(i, 42);
    ASSERT_ERR(mf_json_int(v, "none", true, 0, 10, &i), MF_ERR_PROTO_JSON);
    json_decref(v);

    /* beyond int64: jansson refuses while parsing */
    json_t *w = NULL;
    const char huge[] = "{\"i\":9223372036854775808}";
    ASSERT_ERR(mf_json_parse(huge, strlen(huge), 64, &w), MF_ERR_PROTO_JSON);
}

static void test_mf_json_bool_cases(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"t\":true,\"f\":false,\"n\":1}");
    bool b = false;
    ASSERT_OK(mf_json_bool(v, "t", true, &b));
    assert_true(b);
    ASSERT_OK(mf_json_bool(v, "f", true, &b));
    assert_false(b);
    ASSERT_ERR(mf_json_bool(v, "n", true, &b), MF_ERR_PROTO_JSON);
    b = true;
    ASSERT_OK(mf_json_bool(v, "x", false, &b));
    assert_true(b);
    json_decref(v);
}

static void test_mf_json_array_object_cases(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"a\":[1,2,3],\"o\":{\"k\":1},\"s\":\"x\"}");
    const json_t *a = NULL;
    ASSERT_OK(mf_json_array(v, "a", true, 3, &a));
    assert_int_equal(json_array_size(a), 3);
    ASSERT_ERR(mf_json_array(v, "a", true, 2, &a), MF_ERR_PROTO_TOO_LARGE);
    assert_null(a);
    ASSERT_ERR(mf_json_array(v, "o", true, 3, &a), MF_ERR_PROTO_JSON);
    ASSERT_OK(mf_json_array(v, "none", false, 3, &a));
    assert_null(a);
    const json_t *o = NULL;
    ASSERT_OK(mf_json_object(v, "o", true, &o));
    assert_non_null(o);
    ASSERT_ERR(mf_json_object(v, "a", true, &o), MF_ERR_PROTO_JSON);
    ASSERT_ERR(mf_json_object(v, "s", true, &o), MF_ERR_PROTO_JSON);
    ASSERT_ERR(mf_json_object(v, "none", true, &o), MF_ERR_PROTO_JSON);
    /* getters on a non-object parent refuse */
    const json_t *arr = json_object_get(v, "a");
    const char *s;
    ASSERT_ERR(mf_json_str(arr, "x", false, 4, &s), MF_ERR_PROTO_JSON);
    json_decref(v);
}

static void test_mf_json_only_keys_unknown_refused(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"a\":1,\"b\":2}");
    const char *const ok[] = {"a", "b", "c", NULL};
    ASSERT_OK(mf_json_only_keys(v, ok));
    const char *const narrow[] = {"a", NULL};
    ASSERT_ERR(mf_json_only_keys(v, narrow), MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "\"b\""));
    const char *const none[] = {NULL};
    ASSERT_ERR(mf_json_only_keys(v, none), MF_ERR_PROTO_JSON);
    json_decref(v);
    json_t *e = parse_ok("{}");
    ASSERT_OK(mf_json_only_keys(e, none));
    json_decref(e);
}

static void test_mf_json_dump_compact_order_ok(void **state)
{
    (void)state;
    json_t *v = json_object();
    assert_int_equal(json_object_set_new(v, "z", json_integer(1)), 0);
    assert_int_equal(json_object_set_new(v, "a", json_string("x/y")), 0);
    assert_int_equal(json_object_set_new(v, "m", json_array()), 0);
    struct mf_buf b;
    mf_buf_init(&b, 1024, 0);
    ASSERT_OK(mf_buf_append_str(&b, "pre:"));
    ASSERT_OK(mf_json_dump(v, &b));
    assert_string_equal(mf_buf_cstr(&b), "pre:{\"z\":1,\"a\":\"x/y\",\"m\":[]}");
    mf_buf_cleanup(&b);

    /* a buffer too small is refused and left as it was */
    mf_buf_init(&b, 10, 0);
    ASSERT_OK(mf_buf_append_str(&b, "pre:"));
    ASSERT_ERR(mf_json_dump(v, &b), MF_ERR_PROTO_TOO_LARGE);
    assert_string_equal(mf_buf_cstr(&b), "pre:");
    assert_int_equal(b.len, 4);
    mf_buf_cleanup(&b);
    json_decref(v);

    /* any value may be dumped */
    json_t *s = json_string("hi");
    mf_buf_init(&b, 16, 0);
    ASSERT_OK(mf_json_dump(s, &b));
    assert_string_equal(mf_buf_cstr(&b), "\"hi\"");
    mf_buf_cleanup(&b);
    json_decref(s);
}

static void test_mf_json_dump_parse_round_trip_ok(void **state)
{
    (void)state;
    const char text[] = "{\"keys\":[{\"a\":\"b\"},{\"c\":[1,2]}],\"n\":-4,\"t\":false}";
    json_t *v = parse_ok(text);
    struct mf_buf b;
    mf_buf_init(&b, 1024, 0);
    ASSERT_OK(mf_json_dump(v, &b));
    assert_string_equal(mf_buf_cstr(&b), text);
    json_decref(v);
    mf_buf_cleanup(&b);
}

/* mf_json_put_str: runs copied whole, '"', '\\' and control characters
 * escaped; what it writes parses back to the same string; a buffer too
 * small is refused. */
static void test_mf_json_put_str_escapes_and_round_trips(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"", "\"\""},
        {"spiffe://example.org/a", "\"spiffe://example.org/a\""},
        {"a\"b\\c", "\"a\\\"b\\\\c\""},
        {"x\ny\tz\x7f\x01", "\"x\\ny\\u0009z\\u007f\\u0001\""},
        {"caf\xc3\xa9", "\"caf\xc3\xa9\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mf_buf b;
        mf_buf_init(&b, 256, 0);
        ASSERT_OK(mf_buf_append_str(&b, "{\"k\":"));
        ASSERT_OK(mf_json_put_str(&b, cases[i].in));
        assert_string_equal(mf_buf_cstr(&b) + 5, cases[i].want);
        ASSERT_OK(mf_buf_append_str(&b, "}"));
        json_t *doc = NULL;
        ASSERT_OK(mf_json_parse(mf_buf_cstr(&b), b.len, 256, &doc));
        assert_string_equal(json_string_value(json_object_get(doc, "k")), cases[i].in);
        json_decref(doc);
        mf_buf_cleanup(&b);
    }
    struct mf_buf small;
    mf_buf_init(&small, 4, 0);
    ASSERT_ERR(mf_json_put_str(&small, "too long"), MF_ERR_PROTO_TOO_LARGE);
    mf_buf_cleanup(&small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_json_parse_object_ok),
        cmocka_unit_test(test_mf_json_put_str_escapes_and_round_trips),
        cmocka_unit_test(test_mf_json_parse_not_object_refused),
        cmocka_unit_test(test_mf_json_parse_any_array_ok),
        cmocka_unit_test(test_mf_json_parse_cap_ok_cap_plus_one_refused),
        cmocka_unit_test(test_mf_json_parse_oversize_refused_before_parse),
        cmocka_unit_test(test_mf_json_parse_truncated_refused),
        cmocka_unit_test(test_mf_json_parse_duplicate_key_refused),
        cmocka_unit_test(test_mf_json_parse_syntax_error_has_position),
        cmocka_unit_test(test_mf_json_parse_embedded_nul_refused),
        cmocka_unit_test(test_mf_json_parse_control_chars_cleaned_in_detail),
        cmocka_unit_test(test_mf_json_parse_null_args_refused),
        cmocka_unit_test(test_mf_json_str_cases),
        cmocka_unit_test(test_mf_json_str_embedded_nul_refused),
        cmocka_unit_test(test_mf_json_int_cases),
        cmocka_unit_test(test_mf_json_bool_cases),
        cmocka_unit_test(test_mf_json_array_object_cases),
        cmocka_unit_test(test_mf_json_only_keys_unknown_refused),
        cmocka_unit_test(test_mf_json_dump_compact_order_ok),
        cmocka_unit_test(test_mf_json_dump_parse_round_trip_ok),
    };
    return cmocka_run_group_tests_name("mf_json", tests, NULL, NULL);
}
