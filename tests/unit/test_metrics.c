/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_metrics: registration rules (metric and label names,
 * duplicates, caps), the text exposition format 0.0.4 (HELP/TYPE lines,
 * escaping of help texts and label values, number formatting, absent
 * gauges), histogram bucket math (the "le" boundary, cumulative buckets,
 * +Inf equal to _count, NaN ignored), bounded label cardinality (the
 * "other" series), collect hooks, the render cap, NULL-safe hooks,
 * concurrent updates racing a renderer, and the sd_notify datagram.
 * No network: the HTTP server is exercised by tests/integration/metrics.sh.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/internal/mf_metrics.h"
#include "mf_test.h"

/* ---- helpers ------------------------------------------------------------------------ */

static struct mf_metrics *new_reg(void)
{
    struct mf_metrics *m = NULL;
    ASSERT_OK(mf_metrics_new(&m));
    assert_non_null(m);
    return m;
}

/* Renders m into a fresh string (caller frees). */
static char *render(struct mf_metrics *m)
{
    struct mf_buf b;
    mf_buf_init(&b, MF_METRICS_RENDER_MAX, 0);
    ASSERT_OK(mf_metrics_render(m, &b));
    char *s = strdup(mf_buf_cstr(&b));
    assert_non_null(s);
    mf_buf_cleanup(&b);
    return s;
}

static void assert_has_line(const char *doc, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = doc; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (len == n && memcmp(p, line, n) == 0) {
            return;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    fail_msg("line not found: [%s] in:\n%s", line, doc);
}

static size_t count_substr(const char *doc, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(doc, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* ---- registration ------------------------------------------------------------------- */

static void test_mf_metrics_counter_unlabelled_zero_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *c = NULL;
    ASSERT_OK(mf_metrics_counter(m, "x_total", "Things done", NULL, &c));
    char *doc = render(m);
    assert_string_equal(doc, "# HELP x_total Things done\n# TYPE x_total counter\nx_total 0\n");
    free(doc);
    mf_metric_inc(c, NULL);
    mf_metric_add(c, "ignored for unlabelled", 41);
    doc = render(m);
    assert_has_line(doc, "x_total 42");
    assert_true(mf_metric_value(c, NULL) == 42.0);
    free(doc);
    mf_metrics_free(m);
}

static void test_mf_metrics_names_bad_refused(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *x = (struct mf_metric *)&x;
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "a\nb", "é", "a.b"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        mf_res r = mf_metrics_counter(m, bad_names[i], "h", NULL, &x);
        assert_int_equal(r.err, MF_ERR_USAGE_ARG);
        assert_null(x);
    }
    const char *bad_labels[] = {"", "le", "__reserved", "a:b", "9x", "a-b"};
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++) {
        mf_res r = mf_metrics_counter(m, "ok_total", "h", bad_labels[i], &x);
        assert_int_equal(r.err, MF_ERR_USAGE_ARG);
    }
    ASSERT_ERR(mf_metrics_counter(m, "ok_total", NULL, NULL, &x), MF_ERR_USAGE_ARG);
    /* colons are allowed in metric names, not in label names */
    ASSERT_OK(mf_metrics_gauge(m, "ns:sub_x", "h", "l_1", &x));
    ASSERT_OK(mf_metrics_counter(m, "_under", "h", "_l", &x));
    mf_metrics_free(m);
}

static void test_mf_metrics_name_cap_cap_plus_one(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *x = NULL;
    char name[MF_METRICS_NAME_MAX + 1];
    memset(name, 'a', sizeof(name));
    name[MF_METRICS_NAME_MAX - 1] = '\0'; /* longest allowed */
    ASSERT_OK(mf_metrics_counter(m, name, "h", NULL, &x));
    name[MF_METRICS_NAME_MAX - 1] = 'a';
    name[MF_METRICS_NAME_MAX] = '\0'; /* one more */
    ASSERT_ERR(mf_metrics_counter(m, name, "h", NULL, &x), MF_ERR_USAGE_ARG);
    char help[MF_METRICS_HELP_MAX + 1];
    memset(help, 'h', sizeof(help));
    help[MF_METRICS_HELP_MAX] = '\0';
    ASSERT_ERR(mf_metrics_counter(m, "b", help, NULL, &x), MF_ERR_USAGE_ARG);
    help[MF_METRICS_HELP_MAX - 1] = '\0';
    ASSERT_OK(mf_metrics_counter(m, "b", help, NULL, &x));
    mf_metrics_free(m);
}

static void test_mf_metrics_duplicate_and_full_refused(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *x = NULL;
    ASSERT_OK(mf_metrics_counter(m, "dup", "h", NULL, &x));
    ASSERT_ERR(mf_metrics_gauge(m, "dup", "h", NULL, &x), MF_ERR_USAGE_ARG);
    assert_null(x);
    for (int i = 1; i < MF_METRICS_FAMILIES_MAX; i++) {
        char n[32];
        snprintf(n, sizeof(n), "m%d", i);
        ASSERT_OK(mf_metrics_gauge(m, n, "h", NULL, &x));
    }
    ASSERT_ERR(mf_metrics_gauge(m, "one_too_many", "h", NULL, &x), MF_ERR_USAGE_ARG);
    mf_metrics_free(m);
}

/* ---- format ------------------------------------------------------------------------- */

static void test_mf_metrics_label_value_escaped_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *c = NULL;
    ASSERT_OK(mf_metrics_counter(m, "e_total", "h", "reason", &c));
    mf_metric_inc(c, "quote\" back\\slash\nnewline");
    mf_metric_inc(c, "ctl\x01 del\x7f high\xc3\xa9");
    mf_metric_inc(c, "");
    mf_metric_inc(c, NULL); /* the same series as "" */
    char *doc = render(m);
    assert_has_line(doc, "e_total{reason=\"quote\\\" back\\\\slash\\nnewline\"} 1");
    assert_has_line(doc, "e_total{reason=\"ctl? del? high??\"} 1");
    assert_has_line(doc, "e_total{reason=\"\"} 2");
    /* every sample stays on one line: 2 comment lines + 3 samples */
    assert_int_equal(count_substr(doc, "\n"), 5);
    free(doc);
    mf_metrics_free(m);
}

static void test_mf_metrics_two_labels_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *c = NULL;
    ASSERT_OK(mf_metrics_counter(m, "rpc_total", "h", "method,code", &c));
    mf_metric_inc(c, "fetch_x509_svid,ok");
    mf_metric_add(c, "fetch_x509_svid,permission_denied", 2);
    mf_metric_inc(c, "va\"l,with,commas"); /* the first comma splits */
    char *doc = render(m);
    assert_has_line(doc, "rpc_total{method=\"fetch_x509_svid\",code=\"ok\"} 1");
    assert_has_line(doc, "rpc_total{method=\"fetch_x509_svid\",code=\"permission_denied\"} 2");
    assert_has_line(doc, "rpc_total{method=\"va\\\"l\",code=\"with,commas\"} 1");
    free(doc);
    struct mf_metric *bad = NULL;
    ASSERT_ERR(mf_metrics_counter(m, "x_total", "h", "a,b,c", &bad), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_metrics_counter(m, "y_total", "h", "a,a", &bad), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_metrics_counter(m, "z_total", "h", ",b", &bad), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_metrics_counter(m, "w_total", "h", "a,le", &bad), MF_ERR_USAGE_ARG);
    mf_metrics_free(m);
}

static void test_mf_metrics_help_escaped_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *c = NULL;
    ASSERT_OK(mf_metrics_counter(m, "h_total", "a \"q\" b\\c\nd", NULL, &c));
    char *doc = render(m);
    /* HELP escapes backslash and newline only; quotes stay */
    assert_has_line(doc, "# HELP h_total a \"q\" b\\\\c\\nd");
    free(doc);
    mf_metrics_free(m);
}

static void test_mf_metrics_gauge_values_formatted_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *g = NULL;
    ASSERT_OK(mf_metrics_gauge(m, "g", "h", "k", &g));
    mf_metric_set(g, "int", 3600.0);
    mf_metric_set(g, "neg", -2.5);
    mf_metric_set(g, "tenth", 0.1);
    mf_metric_set(g, "nan", NAN);
    mf_metric_set(g, "pinf", INFINITY);
    mf_metric_set(g, "ninf", -INFINITY);
    mf_metric_set(g, "big", 1e300);
    mf_metric_set(g, "gone", 1.0);
    mf_metric_unset(g, "gone");
    mf_metric_unset(g, "never"); /* unsetting a missing series creates nothing */
    char *doc = render(m);
    assert_has_line(doc, "g{k=\"int\"} 3600");
    assert_has_line(doc, "g{k=\"neg\"} -2.5");
    assert_has_line(doc, "g{k=\"tenth\"} 0.1");
    assert_has_line(doc, "g{k=\"nan\"} NaN");
    assert_has_line(doc, "g{k=\"pinf\"} +Inf");
    assert_has_line(doc, "g{k=\"ninf\"} -Inf");
    assert_has_line(doc, "g{k=\"big\"} 1e+300");
    assert_null(strstr(doc, "gone"));
    assert_null(strstr(doc, "never"));
    assert_true(isnan(mf_metric_value(g, "gone")));
    assert_true(isnan(mf_metric_value(g, "never")));
    assert_true(mf_metric_value(g, "neg") == -2.5);
    free(doc);
    mf_metrics_free(m);
}

static void test_mf_metrics_unlabelled_gauge_absent_until_set_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *g = NULL;
    ASSERT_OK(mf_metrics_gauge(m, "soon_seconds", "h", NULL, &g));
    char *doc = render(m);
    assert_string_equal(doc, "# HELP soon_seconds h\n# TYPE soon_seconds gauge\n");
    free(doc);
    mf_metric_set(g, NULL, 12.0);
    doc = render(m);
    assert_has_line(doc, "soon_seconds 12");
    free(doc);
    mf_metrics_free(m);
}

/* Values that %.15g would round must still read back exactly. */
static void test_mf_metrics_float_round_trip_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *g = NULL;
    ASSERT_OK(mf_metrics_gauge(m, "r", "h", NULL, &g));
    const double vals[] = {0.1 + 0.2, 1.0 / 3.0, 123456789.123456789, 5e-324, 2.5e-7};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        mf_metric_set(g, NULL, vals[i]);
        char *doc = render(m);
        const char *p = strstr(doc, "\nr ");
        assert_non_null(p);
        assert_true(strtod(p + 3, NULL) == vals[i]);
        free(doc);
    }
    mf_metrics_free(m);
}

/* ---- histograms --------------------------------------------------------------------- */

static void test_mf_metrics_histogram_buckets_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *h = NULL;
    const double b[] = {1, 2, 5};
    ASSERT_OK(mf_metrics_histogram(m, "lat_seconds", "h", b, 3, &h));
    const double obs[] = {0.5, 1.0, 1.5, 2.0, 5.0, 6.0, -1.0};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
        mf_metric_observe(h, obs[i]);
    }
    mf_metric_observe(h, NAN); /* ignored */
    char *doc = render(m);
    /* le is "less or equal": 1.0 is in the first bucket, 2.0 in the second */
    assert_has_line(doc, "lat_seconds_bucket{le=\"1\"} 3");
    assert_has_line(doc, "lat_seconds_bucket{le=\"2\"} 5");
    assert_has_line(doc, "lat_seconds_bucket{le=\"5\"} 6");
    assert_has_line(doc, "lat_seconds_bucket{le=\"+Inf\"} 7");
    assert_has_line(doc, "lat_seconds_sum 15");
    assert_has_line(doc, "lat_seconds_count 7");
    assert_has_line(doc, "# TYPE lat_seconds histogram");
    assert_true(mf_metric_value(h, NULL) == 7.0);
    free(doc);
    mf_metrics_free(m);
}

static void test_mf_metrics_histogram_empty_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *h = NULL;
    const double b[] = {0.25};
    ASSERT_OK(mf_metrics_histogram(m, "e", "h", b, 1, &h));
    char *doc = render(m);
    assert_string_equal(doc, "# HELP e h\n# TYPE e histogram\ne_bucket{le=\"0.25\"} 0\n"
                             "e_bucket{le=\"+Inf\"} 0\ne_sum 0\ne_count 0\n");
    free(doc);
    mf_metrics_free(m);
}

static void test_mf_metrics_histogram_bounds_bad_refused(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *h = (struct mf_metric *)&h;
    const double unsorted[] = {1, 3, 2};
    const double equal[] = {1, 1};
    const double inf[] = {1, INFINITY};
    const double nan_b[] = {NAN};
    ASSERT_ERR(mf_metrics_histogram(m, "a", "h", unsorted, 3, &h), MF_ERR_USAGE_ARG);
    assert_null(h);
    ASSERT_ERR(mf_metrics_histogram(m, "a", "h", equal, 2, &h), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_metrics_histogram(m, "a", "h", inf, 2, &h), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_metrics_histogram(m, "a", "h", nan_b, 1, &h), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_metrics_histogram(m, "a", "h", unsorted, 0, &h), MF_ERR_USAGE_ARG);
    double many[MF_METRICS_BUCKETS_MAX + 1];
    for (size_t i = 0; i < MF_METRICS_BUCKETS_MAX + 1; i++) {
        many[i] = (double)i;
    }
    ASSERT_ERR(mf_metrics_histogram(m, "a", "h", many, MF_METRICS_BUCKETS_MAX + 1, &h),
               MF_ERR_USAGE_ARG);
    ASSERT_OK(mf_metrics_histogram(m, "a", "h", many, MF_METRICS_BUCKETS_MAX, &h));
    mf_metric_observe(h, 1e9);
    char *doc = render(m);
    assert_int_equal(count_substr(doc, "a_bucket{"), MF_METRICS_BUCKETS_MAX + 1);
    assert_has_line(doc, "a_bucket{le=\"23\"} 0");
    assert_has_line(doc, "a_bucket{le=\"+Inf\"} 1");
    free(doc);
    mf_metrics_free(m);
}

/* ---- cardinality -------------------------------------------------------------------- */

static void test_mf_metrics_series_cap_folds_into_other_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *c = NULL;
    ASSERT_OK(mf_metrics_counter(m, "c_total", "h", "who", &c));
    for (int i = 0; i < MF_METRICS_SERIES_MAX + 5; i++) {
        char v[16];
        snprintf(v, sizeof(v), "v%d", i);
        mf_metric_inc(c, v);
    }
    mf_metric_inc(c, "other"); /* the literal value lands in the same series */
    mf_metric_inc(c, "v0");    /* an existing series still counts on its own */
    char *doc = render(m);
    assert_int_equal(count_substr(doc, "c_total{"), MF_METRICS_SERIES_MAX);
    assert_int_equal(count_substr(doc, "{who=\"other\"}"), 1);
    assert_has_line(doc, "c_total{who=\"v0\"} 2");
    assert_has_line(doc, "c_total{who=\"v30\"} 1");
    assert_null(strstr(doc, "\"v31\""));
    /* v31..v36 (6) plus the literal "other" */
    assert_has_line(doc, "c_total{who=\"other\"} 7");
    free(doc);
    mf_metrics_free(m);
}

static void test_mf_metrics_label_value_cap_cap_plus_one(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *c = NULL;
    ASSERT_OK(mf_metrics_counter(m, "l_total", "h", "v", &c));
    char cap[MF_METRICS_LABEL_MAX], over[MF_METRICS_LABEL_MAX + 1];
    memset(cap, 'x', sizeof(cap));
    cap[MF_METRICS_LABEL_MAX - 1] = '\0';
    memset(over, 'x', sizeof(over));
    over[MF_METRICS_LABEL_MAX] = '\0';
    mf_metric_inc(c, cap);
    mf_metric_inc(c, over); /* cut at the cap: the same series */
    assert_true(mf_metric_value(c, cap) == 2.0);
    char *doc = render(m);
    assert_int_equal(count_substr(doc, "l_total{"), 1);
    free(doc);
    mf_metrics_free(m);
}

/* ---- hooks, caps, NULL ---------------------------------------------------------------- */

static int hook_calls;

static void hook(void *arg)
{
    hook_calls++;
    mf_metric_set(arg, NULL, (double)hook_calls);
}

static void test_mf_metrics_collect_hook_runs_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *g = NULL;
    ASSERT_OK(mf_metrics_gauge(m, "calls", "h", NULL, &g));
    hook_calls = 0;
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(mf_metrics_on_collect(m, hook, g));
    }
    ASSERT_ERR(mf_metrics_on_collect(m, hook, g), MF_ERR_USAGE_ARG);
    char *doc = render(m);
    assert_has_line(doc, "calls 4");
    free(doc);
    mf_metrics_free(m);
}

static void test_mf_metrics_render_cap_too_large(void **state)
{
    (void)state;
    struct mf_metrics *m = new_reg();
    struct mf_metric *c = NULL;
    ASSERT_OK(mf_metrics_counter(m, "long_name_total", "some help text", NULL, &c));
    struct mf_buf b;
    mf_buf_init(&b, 20, 0);
    ASSERT_ERR(mf_metrics_render(m, &b), MF_ERR_PROTO_TOO_LARGE);
    mf_buf_cleanup(&b);
    mf_metrics_free(m);
}

static void test_mf_metrics_null_metric_noop_ok(void **state)
{
    (void)state;
    mf_metric_inc(NULL, "x");
    mf_metric_add(NULL, NULL, 5);
    mf_metric_set(NULL, NULL, 1.0);
    mf_metric_unset(NULL, NULL);
    mf_metric_observe(NULL, 1.0);
    assert_true(isnan(mf_metric_value(NULL, NULL)));
    mf_metrics_free(NULL);
    mf_metrics_server_stop(NULL);
    /* a counter ignores gauge and histogram updates, and vice versa */
    struct mf_metrics *m = new_reg();
    struct mf_metric *c = NULL, *g = NULL;
    ASSERT_OK(mf_metrics_counter(m, "c", "h", NULL, &c));
    ASSERT_OK(mf_metrics_gauge(m, "g", "h", NULL, &g));
    mf_metric_set(c, NULL, 9.0);
    mf_metric_observe(c, 9.0);
    mf_metric_inc(g, NULL);
    assert_true(mf_metric_value(c, NULL) == 0.0);
    assert_true(isnan(mf_metric_value(g, NULL)));
    mf_metrics_free(m);
}

/* ---- concurrency -------------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS  20000

struct shared {
    struct mf_metric *c, *lc, *h, *g;
    struct mf_metrics *m;
    int stop; /* atomic */
    int bad;  /* atomic: renders that broke an invariant */
    int renders;
};

static void *writer(void *arg)
{
    struct shared *s = arg;
    static const char *const labels[] = {"a", "b", "c", "d"};
    for (int i = 0; i < ROUNDS; i++) {
        mf_metric_inc(s->c, NULL);
        mf_metric_inc(s->lc, labels[i % 4]);
        mf_metric_observe(s->h, (double)(i % 10));
        mf_metric_set(s->g, NULL, (double)i);
    }
    return NULL;
}

/* Checks, in one rendered document, that the buckets never decrease and that
 * the +Inf bucket equals _count. */
static bool histogram_consistent(const char *doc)
{
    unsigned long long prev = 0, inf = 0, count = 0;
    const char *p = doc;
    while ((p = strstr(p, "hh_bucket{le=\"")) != NULL) {
        const char *v = strstr(p, "} ");
        if (v == NULL) {
            return false;
        }
        unsigned long long n = strtoull(v + 2, NULL, 10);
        if (n < prev) {
            return false;
        }
        prev = n;
        if (strncmp(p + 14, "+Inf", 4) == 0) {
            inf = n;
        }
        p = v;
    }
    const char *c = strstr(doc, "hh_count ");
    if (c == NULL) {
        return false;
    }
    count = strtoull(c + 9, NULL, 10);
    return inf == count && inf == prev;
}

static void *renderer(void *arg)
{
    struct shared *s = arg;
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        struct mf_buf b;
        mf_buf_init(&b, MF_METRICS_RENDER_MAX, 0);
        if (!mf_ok(mf_metrics_render(s->m, &b)) || !histogram_consistent(mf_buf_cstr(&b))) {
            __atomic_add_fetch(&s->bad, 1, __ATOMIC_RELAXED);
        }
        mf_buf_cleanup(&b);
        s->renders++;
    }
    return NULL;
}

static void test_mf_metrics_concurrent_updates_exact_ok(void **state)
{
    (void)state;
    struct shared s;
    memset(&s, 0, sizeof(s));
    s.m = new_reg();
    const double b[] = {2, 4, 8};
    ASSERT_OK(mf_metrics_counter(s.m, "cc_total", "h", NULL, &s.c));
    ASSERT_OK(mf_metrics_counter(s.m, "lc_total", "h", "l", &s.lc));
    ASSERT_OK(mf_metrics_histogram(s.m, "hh", "h", b, 3, &s.h));
    ASSERT_OK(mf_metrics_gauge(s.m, "gg", "h", NULL, &s.g));
    pthread_t w[THREADS], r;
    assert_int_equal(pthread_create(&r, NULL, renderer, &s), 0);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&w[i], NULL, writer, &s), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i], NULL);
    }
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
    pthread_join(r, NULL);
    assert_int_equal(s.bad, 0);
    assert_true(mf_metric_value(s.c, NULL) == (double)(THREADS * ROUNDS));
    for (int i = 0; i < 4; i++) {
        const char *l = (const char *[]){"a", "b", "c", "d"}[i];
        assert_true(mf_metric_value(s.lc, l) == (double)(THREADS * ROUNDS / 4));
    }
    assert_true(mf_metric_value(s.h, NULL) == (double)(THREADS * ROUNDS));
    char *doc = render(s.m);
    /* 0..9 repeated: per 10 observations 3 are <= 2, 5 are <= 4, 9 are <= 8;
     * the sum is 45 per 10, exact in a double at this size */
    char line[96];
    snprintf(line, sizeof(line), "hh_bucket{le=\"2\"} %d", THREADS * ROUNDS / 10 * 3);
    assert_has_line(doc, line);
    snprintf(line, sizeof(line), "hh_bucket{le=\"8\"} %d", THREADS * ROUNDS / 10 * 9);
    assert_has_line(doc, line);
    snprintf(line, sizeof(line), "hh_sum %d", THREADS * ROUNDS / 10 * 45);
    assert_has_line(doc, line);
    assert_true(histogram_consistent(doc));
    free(doc);
    mf_metrics_free(s.m);
}

/* ---- sd_notify ---------------------------------------------------------------------- */

static int bind_dgram(const char *path, bool abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    memcpy(sa.sun_path, path, n);
    if (abstract) {
        sa.sun_path[0] = '\0';
    }
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
    return fd;
}

static void test_mf_metrics_notify_systemd_ok(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(mft_tmpdir(dir, sizeof(dir), "notify"), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/notify", dir);
    int fd = bind_dgram(path, false);

    unsetenv("NOTIFY_SOCKET");
    ASSERT_OK(mf_metrics_notify_systemd("READY=1")); /* not under systemd */

    setenv("NOTIFY_SOCKET", path, 1);
    ASSERT_OK(mf_metrics_notify_systemd("READY=1\nSTATUS=x"));
    char got[64] = "";
    ssize_t n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);
    assert_int_equal(n, 16);
    assert_string_equal(got, "READY=1\nSTATUS=x");
    close(fd);
    mft_rmdir(dir);

    char abs_name[64];
    snprintf(abs_name, sizeof(abs_name), "@mf-notify-test-%d", (int)getpid());
    fd = bind_dgram(abs_name, true);
    setenv("NOTIFY_SOCKET", abs_name, 1);
    ASSERT_OK(mf_metrics_notify_systemd("STOPPING=1"));
    memset(got, 0, sizeof(got));
    n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);
    assert_int_equal(n, 10);
    assert_string_equal(got, "STOPPING=1");
    close(fd);

    /* malformed or unreachable addresses are errors, not silence */
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    ASSERT_ERR(mf_metrics_notify_systemd("READY=1"), MF_ERR_IO);
    setenv("NOTIFY_SOCKET", "/nonexistent/mayfly/notify", 1);
    ASSERT_ERR(mf_metrics_notify_systemd("READY=1"), MF_ERR_IO);
    unsetenv("NOTIFY_SOCKET");
}

static void test_mf_metrics_life_serve_ready_stop_ok(void **state)
{
    (void)state;
    struct mf_metrics *m = NULL;
    ASSERT_OK(mf_metrics_new(&m));
    struct mf_metrics_life l = {0};
    (void)unsetenv("NOTIFY_SOCKET");
    ASSERT_OK(mf_metrics_life_serve(&l, m, "", NULL)); /* no listener asked */
    assert_null(l.srv);
    ASSERT_OK(mf_metrics_life_serve(&l, m, "127.0.0.1:0", NULL));
    assert_non_null(l.srv);
    assert_false(mf_metrics_life_is_ready(&l));
    mf_metrics_life_ready(&l, "serving", "the test");
    assert_true(mf_metrics_life_is_ready(&l));
    mf_metrics_life_stop(&l, "the test");
    assert_false(mf_metrics_life_is_ready(&l));
    assert_null(l.srv);
    mf_metrics_life_stop(&l, "the test"); /* twice is harmless */
    assert_false(mf_ok(mf_metrics_life_serve(&l, m, "not-an-address", NULL)));
    assert_null(l.srv);
    mf_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_metrics_counter_unlabelled_zero_ok),
        cmocka_unit_test(test_mf_metrics_two_labels_ok),
        cmocka_unit_test(test_mf_metrics_names_bad_refused),
        cmocka_unit_test(test_mf_metrics_name_cap_cap_plus_one),
        cmocka_unit_test(test_mf_metrics_duplicate_and_full_refused),
        cmocka_unit_test(test_mf_metrics_label_value_escaped_ok),
        cmocka_unit_test(test_mf_metrics_help_escaped_ok),
        cmocka_unit_test(test_mf_metrics_gauge_values_formatted_ok),
        cmocka_unit_test(test_mf_metrics_unlabelled_gauge_absent_until_set_ok),
        cmocka_unit_test(test_mf_metrics_float_round_trip_ok),
        cmocka_unit_test(test_mf_metrics_histogram_buckets_ok),
        cmocka_unit_test(test_mf_metrics_histogram_empty_ok),
        cmocka_unit_test(test_mf_metrics_histogram_bounds_bad_refused),
        cmocka_unit_test(test_mf_metrics_series_cap_folds_into_other_ok),
        cmocka_unit_test(test_mf_metrics_label_value_cap_cap_plus_one),
        cmocka_unit_test(test_mf_metrics_collect_hook_runs_ok),
        cmocka_unit_test(test_mf_metrics_render_cap_too_large),
        cmocka_unit_test(test_mf_metrics_null_metric_noop_ok),
        cmocka_unit_test(test_mf_metrics_concurrent_updates_exact_ok),
        cmocka_unit_test(test_mf_metrics_notify_systemd_ok),
        cmocka_unit_test(test_mf_metrics_life_serve_ready_stop_ok),
    };
    return cmocka_run_group_tests_name("mf_metrics", tests, NULL, NULL);
}
