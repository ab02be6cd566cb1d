/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the core helpers: mf_time (durations, RFC 3339 timestamps,
 * the injectable clock), mf_mem (constant-time compare, wiping, secret pages,
 * random ranges, capped strdup), mf_text (hex, percent-encoding), the
 * calendar under mf_time, and mf_log (text and JSON lines captured
 * through a pipe: level filtering, escaping that keeps one call on one line,
 * JSON that parses with jansson, structured events, and long-line cuts).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"
#include "api/core/mf_time.h"
#include "mf_test.h"

/* ================================================================== */
/* mf_time: durations                                                  */

#define TEN_YEARS (10LL * 366 * 24 * 3600)

static void test_mf_duration_parse_units_ok(void **state)
{
    (void)state;
    struct {
        const char *s;
        int64_t want;
    } cases[] = {
        {"90", 90},
        {"0", 0},
        {"0s", 0},
        {"20s", 20},
        {"10m", 600},
        {"1h", 3600},
        {"24h", 86400},
        {"7d", 604800},
        {"1h30m", 5400},
        {"1d2h3m4s", 93784},
        {"30m1h", 5400},
        {"1m1m", 120},
        {"316224000", TEN_YEARS},
        {"3660d", TEN_YEARS},
        {"87840h", TEN_YEARS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t v = -1;
        mf_res r = mf_duration_parse(cases[i].s, &v);
        if (!mf_ok(r) || v != cases[i].want) {
            print_error("duration '%s': %s, %lld\n", cases[i].s, mf_err_name(r.err), (long long)v);
            fail();
        }
    }
}

static void test_mf_duration_parse_bad_units_refused(void **state)
{
    (void)state;
    const char *bad[] = {"",       "s",    "h1",  "10x",  "10ms", "1H",   "1h30",
                         "1h 30m", " 5s",  "5s ", "-5s",  "+5s",  "1.5h", "1y",
                         "10w",    "5s\n", "1hh", "0x10", "1h-",  "--1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 77;
        mf_res r = mf_duration_parse(bad[i], &v);
        if (r.err != MF_ERR_PROTO_DURATION) {
            print_error("duration '%s': got %s\n", bad[i], mf_err_name(r.err));
            fail();
        }
        assert_int_equal(v, 77); /* untouched on failure */
    }
    ASSERT_ERR(mf_duration_parse("10x", &(int64_t){0}), MF_ERR_PROTO_DURATION);
    assert_non_null(strstr(mf_err_detail(), "unknown unit"));
    ASSERT_ERR(mf_duration_parse(NULL, &(int64_t){0}), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_duration_parse("1s", NULL), MF_ERR_USAGE_NULL);
}

static void test_mf_duration_parse_overflow_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "316224001",
        "3661d",
        "87841h",
        "3660d1s",
        "99999999999999999999",
        "9223372036854775807s",
        "18446744073709551617d",
        "1d99999999999999999999s",
        "3000d3000d",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 0;
        mf_res r = mf_duration_parse(bad[i], &v);
        if (r.err != MF_ERR_PROTO_DURATION) {
            print_error("duration '%s': got %s\n", bad[i], mf_err_name(r.err));
            fail();
        }
    }
    ASSERT_ERR(mf_duration_parse("3661d", &(int64_t){0}), MF_ERR_PROTO_DURATION);
    assert_non_null(strstr(mf_err_detail(), "too long"));
}

static void test_mf_duration_format_shortest_ok(void **state)
{
    (void)state;
    struct {
        int64_t secs;
        const char *want;
    } cases[] = {
        {0, "0s"},       {-5, "0s"},     {1, "1s"},          {59, "59s"},
        {60, "1m"},      {90, "1m30s"},  {3600, "1h"},       {3601, "1h1s"},
        {5400, "1h30m"}, {86400, "24h"}, {93784, "26h3m4s"}, {TEN_YEARS, "87840h"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        mf_duration_format(cases[i].secs, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
    }
    char small[3];
    mf_duration_format(5400, small, sizeof(small));
    assert_string_equal(small, "1h");   /* cut, still terminated */
    mf_duration_format(5400, small, 0); /* no room at all: nothing written */
}

static void test_mf_duration_format_parse_round_trip(void **state)
{
    (void)state;
    const int64_t vals[] = {1,    59,    61,    599,    3599,    3600,          3661,
                            5400, 86399, 86400, 604800, 2592001, TEN_YEARS - 1, TEN_YEARS};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char out[32];
        int64_t back = -1;
        mf_duration_format(vals[i], out, sizeof(out));
        ASSERT_OK(mf_duration_parse(out, &back));
        assert_int_equal(back, vals[i]);
    }
}

/* ================================================================== */
/* mf_time: RFC 3339                                                   */

static void test_mf_time_format_known_ok(void **state)
{
    (void)state;
    char out[MF_RFC3339_LEN];
    mf_time_format(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    mf_time_format(1795372920, out);
    assert_string_equal(out, "2026-11-22T18:42:00Z");
    mf_time_format(1709208000, out);
    assert_string_equal(out, "2024-02-29T12:00:00Z");
    mf_time_format(2147483648LL, out); /* past the 32-bit time_t edge */
    assert_string_equal(out, "2038-01-19T03:14:08Z");
    mf_time_format(253402300799LL, out);
    assert_string_equal(out, "9999-12-31T23:59:59Z");
    mf_time_format(253402300800LL, out); /* five digits of year */
    assert_string_equal(out, "10000-01-01T00:00:00Z");
    /* the same text as the C library's calendar, across the four-digit years */
    for (int64_t t = -86400; t < 253402300799LL; t += 7919LL * 86400 + 3607) {
        time_t tt = (time_t)t;
        struct tm tm;
        char want[64];
        assert_non_null(gmtime_r(&tt, &tm));
        assert_true(strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
        mf_time_format(t, out);
        assert_string_equal(out, want);
    }
}

static void test_mf_time_parse_round_trip_ok(void **state)
{
    (void)state;
    const int64_t vals[] = {0,
                            1,
                            946684799,
                            951782400,
                            1709208000,
                            1795372920,
                            2147483648LL,
                            4102444800LL,
                            253402300799LL};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char out[MF_RFC3339_LEN];
        int64_t back = -1;
        mf_time_format(vals[i], out);
        ASSERT_OK(mf_time_parse(out, &back));
        assert_int_equal(back, vals[i]);
    }
    int64_t t = 0;
    ASSERT_OK(mf_time_parse("2026-11-22T18:42:00.123456Z", &t));
    assert_int_equal(t, 1795372920);
    ASSERT_OK(mf_time_parse("2000-02-29T00:00:00Z", &t));
    assert_int_equal(t, 951782400);
    /* RFC 3339's leap second reads as the following second */
    ASSERT_OK(mf_time_parse("1998-12-31T23:59:60Z", &t));
    assert_int_equal(t, 915148800);
}

static void test_mf_time_parse_bad_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "2026-11-22",
        "2026-11-22T18:42:00",
        "2026-11-22T18:42:00+01:00",
        "2026-11-22T18:42:00+00:00",
        "2026-11-22T18:42:00z",
        "2026-11-22t18:42:00Z",
        "2026-11-22 18:42:00Z",
        "2026-11-22T18:42:00ZZ",
        "2026-11-22T18:42:00.Z", /* secfrac needs a digit (RFC 3339) */
        "2026-11-22T18:42:00.1.2Z",
        "2026-11-22T18:42Z",
        "26-11-22T18:42:00Z",
        "2026-1-22T18:42:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-01-32T00:00:00Z",
        "2026-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* century, not a leap year */
        "2026-02-30T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-06-31T00:00:00Z",
        "2026-09-31T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:61Z",
        "2026-01-01T-1:00:00Z",
        "+026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.000000000000000000000000000000000000000000000Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t = 42;
        mf_res r = mf_time_parse(bad[i], &t);
        if (r.err != MF_ERR_PROTO) {
            print_error("time '%s': got %s\n", bad[i], mf_err_name(r.err));
            fail();
        }
        assert_int_equal(t, 42);
    }
    ASSERT_ERR(mf_time_parse(NULL, &(int64_t){0}), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_time_parse("2026-02-30T00:00:00Z", &(int64_t){0}), MF_ERR_PROTO);
    assert_non_null(strstr(mf_err_detail(), "not a valid date"));
}

static int64_t fake_clock(void)
{
    return 1234;
}

static void test_mf_time_set_clock_injected_ok(void **state)
{
    (void)state;
    mf_time_set_clock(fake_clock);
    assert_int_equal(mf_now(), 1234);
    assert_int_equal(mf_now_ms(), 1234000);
    mf_time_set_clock(NULL);
    int64_t real = (int64_t)time(NULL);
    int64_t now = mf_now();
    assert_true(now >= real - 2 && now <= real + 2);
    int64_t ms = mf_now_ms();
    assert_true(ms / 1000 >= real - 2 && ms / 1000 <= real + 2);
    int64_t m1 = mf_mono_ms();
    int64_t m2 = mf_mono_ms();
    assert_true(m2 >= m1);
}

/* ================================================================== */
/* mf_mem                                                              */

static void test_mf_ct_eq_compares_ok(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    memset(a, 0xa5, sizeof(a));
    memcpy(b, a, sizeof(b));
    assert_true(mf_ct_eq(a, b, sizeof(a)));
    b[0] ^= 1;
    assert_false(mf_ct_eq(a, b, sizeof(a)));
    b[0] ^= 1;
    b[31] ^= 0x80;
    assert_false(mf_ct_eq(a, b, sizeof(a)));
    assert_true(mf_ct_eq(a, b, 31)); /* only n bytes count */
    assert_true(mf_ct_eq(a, b, 0));
}

static void test_mf_wipe_zeroes_ok(void **state)
{
    (void)state;
    uint8_t buf[64];
    memset(buf, 0xff, sizeof(buf));
    mf_wipe(buf + 8, 48);
    for (size_t i = 0; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], (i >= 8 && i < 56) ? 0 : 0xff);
    }
    mf_wipe(NULL, 0);
    mf_wipe(buf, 0);
    assert_int_equal(buf[0], 0xff);
}

static void test_mf_secret_alloc_free_ok(void **state)
{
    (void)state;
    long page = sysconf(_SC_PAGESIZE);
    assert_true(page > 0);
    size_t sizes[] = {0,
                      1,
                      32,
                      MF_SECRET_SLAB_MAX,
                      MF_SECRET_SLAB_MAX + 1,
                      (size_t)page,
                      (size_t)page + 1,
                      3 * (size_t)page};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = mf_secret_alloc(sizes[i]);
        assert_non_null(p);
        /* slab slots are 16-byte aligned, larger secrets page-aligned */
        assert_int_equal((uintptr_t)p % (sizes[i] <= MF_SECRET_SLAB_MAX ? 16u : (uintptr_t)page),
                         0);
        /* fresh pages are zero and the whole size is writable */
        for (size_t j = 0; j < sizes[i]; j++) {
            assert_int_equal(p[j], 0);
            p[j] = (uint8_t)j;
        }
        mf_secret_free(p, sizes[i]);
    }
    mf_secret_free(NULL, 32); /* no-op */
    assert_null(mf_secret_alloc(SIZE_MAX));
}

/* Small secrets share locked slab pages: 13 keys of 304 bytes per 4 KiB
 * page, slots that never overlap, a freed slot wiped and handed out again,
 * a page unmapped once its last slot goes, sizes kept apart. */
static void test_mf_secret_slab_pack_wipe_reuse_ok(void **state)
{
    (void)state;
    enum { N = 1000, KEY = 304 };
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t per = (page - 96) / KEY; /* at least this many per page */
    size_t base = mf_secret_slab_pages();
    uint8_t **v = calloc(N, sizeof(*v));
    assert_non_null(v);
    for (size_t i = 0; i < N; i++) {
        v[i] = mf_secret_alloc(KEY);
        assert_non_null(v[i]);
        assert_int_equal((uintptr_t)v[i] % 16u, 0);
        for (size_t j = 0; j < KEY; j++) {
            assert_int_equal(v[i][j], 0);
        }
        memset(v[i], (int)(i % 251) + 1, KEY);
    }
    size_t used = mf_secret_slab_pages() - base;
    assert_true(used <= (N + per - 1) / per);
    assert_true(used >= N / (page / KEY));
    /* no two slots overlap: every pattern is intact */
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < KEY; j++) {
            assert_int_equal(v[i][j], (uint8_t)((i % 251) + 1));
        }
    }
    /* free every other one: no page empties, the freed slots are wiped in
     * place (the pages are still mapped) and handed out again */
    for (size_t i = 0; i < N; i += 2) {
        uint8_t *p = v[i];
        mf_secret_free(p, KEY);
        for (size_t j = 0; j < KEY; j++) {
            assert_int_equal(p[j], 0);
        }
    }
    assert_int_equal(mf_secret_slab_pages() - base, used);
    for (size_t i = 0; i < N; i += 2) {
        v[i] = mf_secret_alloc(KEY);
        for (size_t j = 0; j < KEY; j++) {
            assert_int_equal(v[i][j], 0);
        }
    }
    assert_int_equal(mf_secret_slab_pages() - base, used); /* reused, no new page */
    /* another size gets slabs of its own */
    uint8_t *small = mf_secret_alloc(32);
    assert_non_null(small);
    assert_int_equal(mf_secret_slab_pages() - base, used + 1);
    mf_secret_free(small, 32);
    assert_int_equal(mf_secret_slab_pages() - base, used);
    for (size_t i = 0; i < N; i++) {
        mf_secret_free(v[i], KEY);
    }
    assert_int_equal(mf_secret_slab_pages(), base);
    free(v);
}

static void test_mf_random_fills_ok(void **state)
{
    (void)state;
    uint8_t a[32] = {0}, b[32] = {0};
    ASSERT_OK(mf_random(a, sizeof(a)));
    ASSERT_OK(mf_random(b, sizeof(b)));
    assert_memory_not_equal(a, b, sizeof(a));
    ASSERT_OK(mf_random(a, 0));
}

static void test_mf_random_range_bounds_ok(void **state)
{
    (void)state;
    uint64_t v = 0;
    ASSERT_OK(mf_random_range(7, 7, &v));
    assert_int_equal(v, 7);
    ASSERT_ERR(mf_random_range(8, 7, &v), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_random_range(0, 1, NULL), MF_ERR_USAGE_NULL);
    ASSERT_OK(mf_random_range(0, UINT64_MAX, &v));
    ASSERT_OK(mf_random_range(UINT64_MAX - 1, UINT64_MAX, &v));
    assert_true(v >= UINT64_MAX - 1);
    /* a span that is not a power of two, where modulo bias would show */
    for (int i = 0; i < 1000; i++) {
        ASSERT_OK(mf_random_range(1ULL << 63, (1ULL << 63) + 2, &v));
        assert_true(v >= (1ULL << 63) && v <= (1ULL << 63) + 2);
    }
}

/* Six buckets of 6000 draws: each should hold about 1000. The bounds are
 * over 9 standard deviations wide, so a fair generator never fails, while an
 * off-by-one (a bucket never drawn or drawn twice as often) always does. */
static void test_mf_random_range_distribution_sane(void **state)
{
    (void)state;
    size_t count[6] = {0};
    for (int i = 0; i < 6000; i++) {
        uint64_t v = 0;
        ASSERT_OK(mf_random_range(10, 15, &v));
        assert_true(v >= 10 && v <= 15);
        count[v - 10]++;
    }
    for (size_t i = 0; i < 6; i++) {
        assert_in_range(count[i], 700, 1300);
    }
}

static void test_mf_strdup_max_cap_limits(void **state)
{
    (void)state;
    static char stale[] = "stale";
    char *p = stale;
    ASSERT_OK(mf_strdup_max("abc", 3, &p));
    assert_string_equal(p, "abc");
    free(p);
    p = stale;
    ASSERT_ERR(mf_strdup_max("abcd", 3, &p), MF_ERR_PROTO_TOO_LARGE);
    assert_null(p);
    ASSERT_OK(mf_strdup_max("", 0, &p));
    assert_string_equal(p, "");
    free(p);
    ASSERT_ERR(mf_strdup_max("a", 0, &p), MF_ERR_PROTO_TOO_LARGE);
    ASSERT_ERR(mf_strdup_max(NULL, 3, &p), MF_ERR_USAGE_NULL);
    assert_null(p);
    ASSERT_ERR(mf_strdup_max("a", 3, NULL), MF_ERR_USAGE_NULL);
}

/* Regression: max + 1 wrapped to 0 for SIZE_MAX ("no cap"), so strnlen saw
 * nothing and the copy was silently "". */
static void test_mf_strdup_max_size_max_copies_all(void **state)
{
    (void)state;
    char *p = NULL;
    ASSERT_OK(mf_strdup_max("whole string", SIZE_MAX, &p));
    assert_string_equal(p, "whole string");
    free(p);
}

static void test_mf_hex_lowercase_ok(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof(in) + 1];
    mf_hex(in, sizeof(in), out);
    assert_string_equal(out, "00017f80abff");
    char empty[1] = {'x'};
    mf_hex(in, 0, empty);
    assert_string_equal(empty, "");
}

static void test_mf_strv_dup_free_ok(void **state)
{
    (void)state;
    char a[] = "unix:uid:0", b[] = "", c[] = "unix:gid:5";
    char *const src[] = {a, b, c};
    char **v = NULL;
    ASSERT_OK(mf_strv_dup(src, 3, &v));
    assert_non_null(v);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(v[i], src[i]);
        assert_ptr_not_equal(v[i], src[i]); /* copies */
    }
    mf_strv_free(v, 3);
    char *dummy[1] = {a};
    v = dummy; /* cleared on entry */
    ASSERT_OK(mf_strv_dup(NULL, 0, &v));
    assert_null(v);
    mf_strv_free(NULL, 7); /* no-op */
    ASSERT_ERR(mf_strv_dup(src, 1, NULL), MF_ERR_USAGE_NULL);
}

static void test_mf_hex_value_digits_and_refusals(void **state)
{
    (void)state;
    const char *digits = "0123456789abcdefABCDEF";
    for (const char *p = digits; *p != '\0'; p++) {
        int v = mf_hex_value(*p);
        assert_true(v >= 0 && v < 16);
        char back[3];
        mf_hex_byte((uint8_t)v, back);
        assert_int_equal(back[1], *p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
    }
    assert_int_equal(mf_hex_value('g'), -1);
    assert_int_equal(mf_hex_value('G'), -1);
    assert_int_equal(mf_hex_value('/'), -1);
    assert_int_equal(mf_hex_value(':'), -1);
    assert_int_equal(mf_hex_value('@'), -1);
    assert_int_equal(mf_hex_value('\0'), -1);
}

static void test_mf_hex_byte_ok(void **state)
{
    (void)state;
    char two[3] = {0, 0, 'z'};
    mf_hex_byte(0xa5, two);
    assert_memory_equal(two, "a5z", 3); /* no NUL written */
}

static void test_mf_pct_append_sets_ok(void **state)
{
    (void)state;
    struct mf_buf b;
    mf_buf_init(&b, 64, 0);
    ASSERT_OK(mf_pct_append(&b, "spiffe://td/a b~%\xc3", MF_PCT_UNRESERVED));
    ASSERT_OK(mf_buf_append_u8(&b, 0));
    assert_string_equal((const char *)b.data, "spiffe%3A%2F%2Ftd%2Fa%20b~%25%C3");
    mf_buf_cleanup(&b);

    mf_buf_init(&b, 64, 0);
    ASSERT_OK(mf_pct_append(&b, "bad: 100%\n", MF_PCT_GRPC));
    ASSERT_OK(mf_buf_append_u8(&b, 0));
    assert_string_equal((const char *)b.data, "bad: 100%25%0A");
    mf_buf_cleanup(&b);

    /* cap: fails rather than grow */
    mf_buf_init(&b, 4, 0);
    assert_false(mf_ok(mf_pct_append(&b, "a/b", MF_PCT_UNRESERVED)));
    mf_buf_cleanup(&b);
}

static void test_mf_pct_encode_cap_cap1_truncates(void **state)
{
    (void)state;
    char out[8];
    assert_true(mf_pct_encode("a%b", MF_PCT_GRPC, out, 6)); /* "a%25b" + NUL */
    assert_string_equal(out, "a%25b");
    assert_false(mf_pct_encode("a%b", MF_PCT_GRPC, out, 5)); /* never a split escape */
    assert_string_equal(out, "a%25");
    assert_false(mf_pct_encode("%", MF_PCT_GRPC, out, 3));
    assert_string_equal(out, "");
    assert_false(mf_pct_encode("a", MF_PCT_GRPC, out, 1));
    assert_string_equal(out, "");
    assert_false(mf_pct_encode("a", MF_PCT_GRPC, out, 0));
}

/* The calendar against libc's gmtime_r over 1900-9999, both directions. */
static void test_mf_civil_matches_gmtime_ok(void **state)
{
    (void)state;
    for (int64_t t = -2208988800LL; t <= 253402300799LL; t += 86400LL * 37 + 3607) {
        struct mf_civil c;
        mf_civil_from_time(t, &c);
        time_t tt = (time_t)t;
        struct tm tm;
        assert_non_null(gmtime_r(&tt, &tm));
        assert_int_equal(c.year, tm.tm_year + 1900);
        assert_int_equal(c.month, tm.tm_mon + 1);
        assert_int_equal(c.day, tm.tm_mday);
        assert_int_equal(c.hour, tm.tm_hour);
        assert_int_equal(c.min, tm.tm_min);
        assert_int_equal(c.sec, tm.tm_sec);
        int64_t back = 0;
        assert_true(mf_civil_to_time(&c, 59, &back));
        assert_int_equal(back, t);
    }
    struct mf_civil c;
    mf_civil_from_time(-1, &c); /* floor division before the epoch */
    assert_int_equal(c.year, 1969);
    assert_int_equal(c.sec, 59);
}

static void test_mf_civil_to_time_bad_refused(void **state)
{
    (void)state;
    int64_t t = 42;
    const struct mf_civil bad[] = {
        {2023, 2, 29, 0, 0, 0}, {1900, 2, 29, 0, 0, 0},     {2026, 4, 31, 0, 0, 0},
        {2026, 13, 1, 0, 0, 0}, {2026, 0, 1, 0, 0, 0},      {2026, 1, 0, 0, 0, 0},
        {2026, 1, 1, 24, 0, 0}, {2026, 1, 1, 0, 60, 0},     {2026, 1, 1, 0, 0, 60},
        {2026, 1, 1, -1, 0, 0}, {INT64_MAX, 1, 1, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(mf_civil_to_time(&bad[i], 59, &t));
        assert_int_equal(t, 42);
    }
    const struct mf_civil leap_day = {2000, 2, 29, 0, 0, 0};
    assert_true(mf_civil_to_time(&leap_day, 59, &t));
    assert_int_equal(t, 951782400);
    const struct mf_civil leap_sec = {1998, 12, 31, 23, 59, 60};
    assert_true(mf_civil_to_time(&leap_sec, 60, &t));
    assert_int_equal(t, 915148800);
    int v = 7;
    assert_false(mf_dec_digits("12a4", 4, &v));
    assert_false(mf_dec_digits("1234567890", 10, &v));
    assert_true(mf_dec_digits("0042", 4, &v));
    assert_int_equal(v, 42);
}

static void test_mf_add_mul_size_overflow_refused(void **state)
{
    (void)state;
    size_t r = 5;
    assert_true(mf_add_size(1, 2, &r));
    assert_int_equal(r, 3);
    assert_false(mf_add_size(SIZE_MAX, 1, &r));
    assert_int_equal(r, 3);
    assert_true(mf_mul_size(SIZE_MAX / 2, 2, &r));
    assert_false(mf_mul_size(SIZE_MAX / 2 + 1, 2, &r));
}

/* ================================================================== */
/* mf_log                                                              */

static int log_pipe[2] = {-1, -1};
static char log_out[65536];

static int log_setup(void **state)
{
    (void)state;
    if (pipe(log_pipe) != 0) {
        return -1;
    }
    /* reads never block: an empty pipe means "nothing was logged" */
    if (fcntl(log_pipe[0], F_SETFL, O_NONBLOCK) != 0) {
        return -1;
    }
    mf_log_set_fd(log_pipe[1]);
    mf_log_setup(MF_LOG_INFO, MF_LOG_TEXT);
    return 0;
}

static int log_teardown(void **state)
{
    (void)state;
    mf_log_set_fd(2);
    mf_log_setup(MF_LOG_INFO, MF_LOG_TEXT);
    close(log_pipe[0]);
    close(log_pipe[1]);
    return 0;
}

/* Everything logged since the last call, NUL-terminated in log_out. */
static size_t drain(void)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(log_pipe[0], log_out + n, sizeof(log_out) - 1 - n);
        if (r <= 0) {
            assert_true(r == 0 || errno == EAGAIN);
            break;
        }
        n += (size_t)r;
    }
    log_out[n] = '\0';
    return n;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        n += *s == c;
    }
    return n;
}

/* Drains one line and checks it is exactly one line. */
static const char *one_line(void)
{
    size_t n = drain();
    if (n == 0 || log_out[n - 1] != '\n' || count_char(log_out, '\n') != 1) {
        print_error("not one line (%zu bytes): %s\n", n, log_out);
        fail();
    }
    return log_out;
}

/* Drains one JSON line and parses it; the caller decrefs. */
static json_t *one_json(void)
{
    const char *line = one_line();
    json_error_t err;
    json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL) {
        print_error("bad JSON (%s): %s\n", err.text, line);
        fail();
    }
    assert_true(json_is_object(j));
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_mf_log_write_text_line_ok(void **state)
{
    (void)state;
    mf_log_info("hello %d", 42);
    const char *line = one_line();
    /* "<ts> info <func>: hello 42\n" */
    assert_non_null(strstr(line, " info test_mf_log_write_text_line_ok: hello 42\n"));
    assert_true(line[4] == '-' && line[10] == 'T');
}

/* Under systemd, lines to the journal carry a priority instead of a time;
 * lines to a log file keep their time, even when stderr is the journal. */
static void stream_id(int fd, char *out, size_t cap)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    snprintf(out, cap, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
}

static void test_mf_log_journal_prefix_only_on_the_journal(void **state)
{
    (void)state;
    char js[64];
    stream_id(log_pipe[1], js, sizeof(js)); /* the log fd is the journal */
    assert_int_equal(setenv("JOURNAL_STREAM", js, 1), 0);
    mf_log_set_fd(log_pipe[1]);
    mf_log_info("to the journal");
    const char *line = one_line();
    assert_true(strncmp(line, "<6>info ", 8) == 0);
    stream_id(2, js, sizeof(js)); /* stderr is the journal, the log fd a file */
    assert_int_equal(setenv("JOURNAL_STREAM", js, 1), 0);
    mf_log_set_fd(log_pipe[1]);
    mf_log_info("to a file");
    line = one_line();
    assert_true(line[4] == '-' && line[10] == 'T'); /* a timestamp */
    assert_int_equal(unsetenv("JOURNAL_STREAM"), 0);
    mf_log_set_fd(log_pipe[1]);
}

static void test_mf_log_enabled_levels_filter(void **state)
{
    (void)state;
    mf_log_setup(MF_LOG_WARN, MF_LOG_TEXT);
    assert_true(mf_log_enabled(MF_LOG_ERR));
    assert_true(mf_log_enabled(MF_LOG_WARN));
    assert_false(mf_log_enabled(MF_LOG_INFO));
    assert_false(mf_log_enabled(MF_LOG_DEBUG));
    mf_log_info("hidden");
    mf_log_debug("hidden");
    assert_int_equal(drain(), 0);
    /* direct calls and events are filtered too */
    mf_log_write(MF_LOG_INFO, __func__, "hidden");
    mf_log_write_r(MF_LOG_DEBUG, __func__, (mf_res){MF_ERR_IO}, "hidden");
    mf_log_event(MF_LOG_INFO, __func__, "hidden", NULL);
    assert_int_equal(drain(), 0);
    mf_log_warn("shown");
    assert_non_null(strstr(one_line(), " warn "));
    mf_log_err("shown");
    assert_non_null(strstr(one_line(), " error "));
    mf_log_setup(MF_LOG_DEBUG, MF_LOG_TEXT);
    mf_log_debug("shown");
    assert_non_null(strstr(one_line(), " debug "));
    mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
    mf_log_warn("hidden");
    assert_int_equal(drain(), 0);
}

static void test_mf_log_write_control_chars_escaped(void **state)
{
    (void)state;
    const char *evil = "a\nb\rc\x1b[31md\\e\tf\x7fg\x01";
    mf_log_info("peer said %s", evil);
    const char *line = one_line();
    assert_non_null(strstr(line, "peer said a\\x0ab\\x0dc\\x1b[31md\\x5ce\\x09f\\x7fg\\x01\n"));
    assert_null(strchr(line, '\r'));
    assert_null(strchr(line, '\x1b'));
    /* a forged second line stays on the first */
    mf_log_info("%s", "ok\n2026-01-01T00:00:00Z error forged: root login");
    line = one_line();
    assert_non_null(strstr(line, "ok\\x0a2026"));
}

static void test_mf_log_write_json_parses(void **state)
{
    (void)state;
    mf_log_setup(MF_LOG_INFO, MF_LOG_JSON);
    const char *evil = "q\"uote\\back\nnl\ttab\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac";
    mf_log_info("msg %s", evil);
    json_t *j = one_json();
    assert_string_equal(jstr(j, "level"), "info");
    assert_string_equal(jstr(j, "func"), "test_mf_log_write_json_parses");
    char want[128];
    (void)snprintf(want, sizeof(want), "msg %s", evil);
    /* every byte comes back exactly after the JSON round trip */
    assert_string_equal(jstr(j, "msg"), want);
    int64_t t = 0;
    char ts[MF_RFC3339_LEN];
    const char *s = jstr(j, "ts");
    assert_true(strlen(s) < sizeof(ts));
    ASSERT_OK(mf_time_parse(s, &t));
    json_decref(j);
}

/* Invalid UTF-8 from a peer must not make the line invalid JSON (jansson
 * refuses it); each bad byte becomes U+FFFD. */
static void test_mf_log_write_json_invalid_utf8_replaced(void **state)
{
    (void)state;
    mf_log_setup(MF_LOG_INFO, MF_LOG_JSON);
    /* stray continuation, overlong '/', surrogate, cut sequence, 0xff */
    mf_log_info("%s", "a\x80"
                      "b\xc0\xaf"
                      "c\xed\xa0\x80"
                      "d\xe2\x82"
                      "e\xff"
                      "f\xf4\x90\x80\x80");
    json_t *j = one_json();
    const char *m = jstr(j, "msg");
    assert_int_equal(m[0], 'a');
    assert_memory_equal(m + 1,
                        "\xef\xbf\xbd"
                        "b",
                        4);
    assert_non_null(strstr(m, "f"));
    assert_null(strchr(m, '\xff'));
    json_decref(j);
    /* valid multi-byte text passes through unchanged */
    mf_log_info("%s", "\xf0\x9f\x94\x91 key");
    j = one_json();
    assert_string_equal(jstr(j, "msg"), "\xf0\x9f\x94\x91 key");
    json_decref(j);
}

static void test_mf_log_event_text_pairs_ok(void **state)
{
    (void)state;
    mf_log_event(MF_LOG_INFO, "issue", "issued", "spiffe_id", "spiffe://td/x", "serial", "0a1b",
                 "reason", "two words", "empty", "", "null", NULL, NULL);
    const char *line = one_line();
    assert_non_null(strstr(line, " info issue: issued spiffe_id=spiffe://td/x serial=0a1b "
                                 "reason=\"two words\" empty=\"\" null=\"\"\n"));
}

/* A value must not be able to close its quotes and add a forged pair. */
static void test_mf_log_event_text_quote_injection_escaped(void **state)
{
    (void)state;
    mf_log_event(MF_LOG_WARN, "deny", "denied", "peer", "x\" uid=\"0", "path", "/tmp/a\nb", NULL);
    const char *line = one_line();
    assert_non_null(strstr(line, "peer=\"x\\x22 uid=\\x220\""));
    assert_null(strstr(line, " uid=\"0"));
    assert_non_null(strstr(line, "path=/tmp/a\\x0ab\n"));
}

static void test_mf_log_event_json_members_ok(void **state)
{
    (void)state;
    mf_log_setup(MF_LOG_INFO, MF_LOG_JSON);
    mf_log_event(MF_LOG_INFO, "issue", "issued", "spiffe_id", "spiffe://td/x", "serial", "0a",
                 "note", "a\"b\n", "null", NULL, NULL);
    json_t *j = one_json();
    assert_string_equal(jstr(j, "msg"), "issued");
    assert_string_equal(jstr(j, "func"), "issue");
    assert_string_equal(jstr(j, "spiffe_id"), "spiffe://td/x");
    assert_string_equal(jstr(j, "serial"), "0a");
    assert_string_equal(jstr(j, "note"), "a\"b\n");
    assert_string_equal(jstr(j, "null"), "");
    assert_int_equal(json_object_size(j), 8);
    json_decref(j);
}

static void test_mf_log_write_r_appends_error(void **state)
{
    (void)state;
    mf_res r = MF_RAISE_MSG(MF_ERR_ID_DOT_SEGMENT, "segment %d is '..'", 2);
    mf_log_err_r(r, "refusing %s", "entry");
    const char *line = one_line();
    assert_non_null(strstr(line, "refusing entry: invalid SPIFFE ID: path segment is '.' or "
                                 "'..': segment 2 is '..'\n"));
    mf_log_warn_r(r, "again");
    assert_non_null(strstr(one_line(), " warn "));
}

/* A message longer than a line is cut but stays one line, and in JSON one
 * valid object, whatever the escaping multiplies it to. */
static void test_mf_log_write_long_line_cut_ok(void **state)
{
    (void)state;
    static char big[20000];
    memset(big, '\x01', sizeof(big) - 1); /* 6 bytes each once JSON-escaped */
    big[sizeof(big) - 1] = '\0';
    mf_log_info("%s", big);
    const char *line = one_line();
    assert_true(strlen(line) <= 8192);
    assert_non_null(strstr(line, "...\n"));

    mf_log_setup(MF_LOG_INFO, MF_LOG_JSON);
    mf_log_info("%s", big);
    json_t *j = one_json();
    assert_true(strlen(jstr(j, "msg")) > 1000);
    json_decref(j);
    memset(big, '"', sizeof(big) - 1);
    mf_log_info("%s", big);
    j = one_json();
    json_decref(j);
    /* multi-byte UTF-8 is never split at the cut */
    for (size_t i = 0; i + 3 < sizeof(big); i += 3) {
        memcpy(big + i, "\xe2\x82\xac", 3);
    }
    big[sizeof(big) - 1 - (sizeof(big) - 1) % 3] = '\0';
    mf_log_info("%s", big);
    j = one_json();
    json_decref(j);
}

static void test_mf_log_event_long_pairs_cut_ok(void **state)
{
    (void)state;
    static char big[6000];
    memset(big, '\\', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    mf_log_setup(MF_LOG_INFO, MF_LOG_JSON);
    mf_log_event(MF_LOG_INFO, "f", "m", "a", big, "b", big, "c", "dropped", NULL);
    json_t *j = one_json();
    assert_non_null(json_object_get(j, "a"));
    assert_null(json_object_get(j, "c"));
    json_decref(j);
    /* Empty pairs after a value that fills the line to any byte near the
     * cap cannot overrun it either. */
    static char fill[8300];
    for (size_t n = 8000; n < sizeof(fill) - 1; n++) {
        memset(fill, 'v', n);
        fill[n] = '\0';
        mf_log_event(MF_LOG_INFO, "f", "m", "a", fill, "b", "", "c", "", "d", "", "e", "", "g", "",
                     "h", "", "i", "", NULL);
        j = one_json();
        assert_true(strlen(log_out) <= 8192);
        json_decref(j);
    }
    mf_log_setup(MF_LOG_INFO, MF_LOG_TEXT);
    mf_log_event(MF_LOG_INFO, "f", "m", "a", big, "b", big, NULL);
    const char *line = one_line();
    assert_true(strlen(line) <= 8192);
}

/* mf_log_event_to keeps lines back (and drops the ones below the level);
 * mf_log_lines writes them in order, whole, at most PIPE_BUF bytes a write
 * except for a longer line, which goes alone. A SOCK_SEQPACKET socket keeps
 * each write a message of its own, so the writes can be counted. */
static void test_mf_log_lines_batched_whole_lines(void **state)
{
    (void)state;
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
    mf_log_set_fd(sp[1]);
    struct mf_buf lines;
    mf_buf_init(&lines, 1u << 20, 0);
    static char big[6000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 200; i++) {
        char num[16];
        (void)snprintf(num, sizeof(num), "%d", i);
        mf_log_event_to(&lines, MF_LOG_INFO, "f", "issued", "i", num, "big", i == 100 ? big : "-",
                        NULL);
        mf_log_event_to(&lines, MF_LOG_DEBUG, "f", "hidden", NULL);
    }
    static char buf[16384];
    assert_int_equal(recv(sp[0], buf, sizeof(buf), MSG_DONTWAIT), -1); /* nothing yet */
    mf_log_lines(&lines);
    assert_int_equal(lines.len, 0);
    int next = 0, writes = 0;
    for (;;) {
        ssize_t r = recv(sp[0], buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (r < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        writes++;
        assert_true(r > 0 && buf[r - 1] == '\n');
        buf[r] = '\0';
        assert_true(r <= PIPE_BUF ||
                    (strstr(buf, "big=xxx") != NULL && count_char(buf, '\n') == 1));
        for (char *l = buf; *l != '\0';) {
            char *nl = strchr(l, '\n');
            *nl = '\0';
            char want[40];
            (void)snprintf(want, sizeof(want), " info f: issued i=%d big=", next);
            assert_non_null(strstr(l, want));
            next++;
            l = nl + 1;
        }
    }
    assert_int_equal(next, 200);
    assert_true(writes >= 3 && writes <= 10);
    mf_log_lines(&lines); /* empty: writes nothing */
    assert_int_equal(recv(sp[0], buf, sizeof(buf), MSG_DONTWAIT), -1);
    mf_buf_cleanup(&lines);
    mf_log_set_fd(log_pipe[1]);
    close(sp[0]);
    close(sp[1]);
}

static void test_mf_log_level_parse_names_ok(void **state)
{
    (void)state;
    enum mf_log_level l = MF_LOG_ERR;
    ASSERT_OK(mf_log_level_parse("debug", &l));
    assert_int_equal(l, MF_LOG_DEBUG);
    ASSERT_OK(mf_log_level_parse("warn", &l));
    assert_int_equal(l, MF_LOG_WARN);
    ASSERT_OK(mf_log_level_parse("info", &l));
    assert_int_equal(l, MF_LOG_INFO);
    ASSERT_OK(mf_log_level_parse("error", &l));
    assert_int_equal(l, MF_LOG_ERR);
    ASSERT_OK(mf_log_level_parse("err", &l));
    ASSERT_ERR(mf_log_level_parse("INFO", &l), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_log_level_parse("", &l), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_log_level_parse("info", NULL), MF_ERR_USAGE_NULL);
    enum mf_log_format f = MF_LOG_TEXT;
    ASSERT_OK(mf_log_format_parse("json", &f));
    assert_int_equal(f, MF_LOG_JSON);
    ASSERT_OK(mf_log_format_parse("text", &f));
    assert_int_equal(f, MF_LOG_TEXT);
    ASSERT_ERR(mf_log_format_parse("xml", &f), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_log_format_parse("json", NULL), MF_ERR_USAGE_NULL);
}

#define LOG_TEST(f) cmocka_unit_test_setup_teardown(f, log_setup, log_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_duration_parse_units_ok),
        cmocka_unit_test(test_mf_duration_parse_bad_units_refused),
        cmocka_unit_test(test_mf_duration_parse_overflow_refused),
        cmocka_unit_test(test_mf_duration_format_shortest_ok),
        cmocka_unit_test(test_mf_duration_format_parse_round_trip),
        cmocka_unit_test(test_mf_time_format_known_ok),
        cmocka_unit_test(test_mf_time_parse_round_trip_ok),
        cmocka_unit_test(test_mf_time_parse_bad_refused),
        cmocka_unit_test(test_mf_time_set_clock_injected_ok),
        cmocka_unit_test(test_mf_ct_eq_compares_ok),
        cmocka_unit_test(test_mf_wipe_zeroes_ok),
        cmocka_unit_test(test_mf_secret_alloc_free_ok),
        cmocka_unit_test(test_mf_secret_slab_pack_wipe_reuse_ok),
        cmocka_unit_test(test_mf_random_fills_ok),
        cmocka_unit_test(test_mf_random_range_bounds_ok),
        cmocka_unit_test(test_mf_random_range_distribution_sane),
        cmocka_unit_test(test_mf_strdup_max_cap_limits),
        cmocka_unit_test(test_mf_strdup_max_size_max_copies_all),
        cmocka_unit_test(test_mf_hex_lowercase_ok),
        cmocka_unit_test(test_mf_hex_byte_ok),
        cmocka_unit_test(test_mf_hex_value_digits_and_refusals),
        cmocka_unit_test(test_mf_strv_dup_free_ok),
        cmocka_unit_test(test_mf_pct_append_sets_ok),
        cmocka_unit_test(test_mf_pct_encode_cap_cap1_truncates),
        cmocka_unit_test(test_mf_civil_matches_gmtime_ok),
        cmocka_unit_test(test_mf_civil_to_time_bad_refused),
        cmocka_unit_test(test_mf_add_mul_size_overflow_refused),
        LOG_TEST(test_mf_log_write_text_line_ok),
        LOG_TEST(test_mf_log_journal_prefix_only_on_the_journal),
        LOG_TEST(test_mf_log_enabled_levels_filter),
        LOG_TEST(test_mf_log_write_control_chars_escaped),
        LOG_TEST(test_mf_log_write_json_parses),
        LOG_TEST(test_mf_log_write_json_invalid_utf8_replaced),
        LOG_TEST(test_mf_log_event_text_pairs_ok),
        LOG_TEST(test_mf_log_event_text_quote_injection_escaped),
        LOG_TEST(test_mf_log_event_json_members_ok),
        LOG_TEST(test_mf_log_write_r_appends_error),
        LOG_TEST(test_mf_log_write_long_line_cut_ok),
        LOG_TEST(test_mf_log_event_long_pairs_cut_ok),
        LOG_TEST(test_mf_log_lines_batched_whole_lines),
        LOG_TEST(test_mf_log_level_parse_names_ok),
    };
    return cmocka_run_group_tests_name("mf_core", tests, NULL, NULL);
}
