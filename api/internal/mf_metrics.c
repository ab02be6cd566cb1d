/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_metrics: metric registry, Prometheus text format 0.0.4, the /live,
 * /ready and /metrics server, and sd_notify. See mf_metrics.h.
 *
 * Invariants: a family's fields other than its series values, its series
 * count and the "other" flag never change after registration; a series'
 * label is written before the series count that publishes it (release) and
 * never changes afterwards, so readers that load the count (acquire) may
 * compare labels without the family's mutex. Every value is read and written
 * with __atomic builtins only.
 */
#include "api/internal/mf_metrics.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <microhttpd.h>

#include "api/core/mf_log.h"
#include "api/internal/mf_httpd.h"

#define COLLECT_MAX   4
#define OTHER         "other"
#define OTHER_SLOT    (MF_METRICS_SERIES_MAX - 1)
#define SRV_CONNS     16u
#define SRV_TIMEOUT_S 5u
#define SRV_MEMORY    ((size_t)32 * 1024)
#define SRV_BODY_MAX  1024u
#define RENDER_START  4096u

struct series {
    char label[MF_METRICS_LABEL_MAX]; /* immutable once published */
    uint64_t value;                   /* atomic: counter count, or gauge double bits */
    int set;                          /* atomic: gauge has a value */
};

struct mf_metric {
    enum mf_metric_type type;
    char name[MF_METRICS_NAME_MAX];
    char help[MF_METRICS_HELP_MAX];
    char label[MF_METRICS_NAME_MAX]; /* "" when unlabelled */
    pthread_mutex_t mu;              /* serialises creating series */
    size_t n_series;                 /* atomic (acquire/release), see the invariants */
    int other_used;                  /* atomic: the "other" slot has been used */
    struct series series[MF_METRICS_SERIES_MAX];
    /* histograms */
    size_t n_bounds;
    double bounds[MF_METRICS_BUCKETS_MAX];
    uint64_t buckets[MF_METRICS_BUCKETS_MAX + 1]; /* atomic; per bucket, last is +Inf */
    uint64_t sum_bits;                            /* atomic double bits */
};

struct collect {
    void (*fn)(void *arg);
    void *arg;
};

struct mf_metrics {
    pthread_mutex_t mu; /* protects fam, n and hooks; held while rendering */
    struct mf_metric *fam[MF_METRICS_FAMILIES_MAX];
    size_t n;
    struct collect hooks[COLLECT_MAX];
    size_t n_hooks;
};

/* ---- registry ------------------------------------------------------------------------ */

/* see mf_metrics.h */
mf_res mf_metrics_new(struct mf_metrics **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    struct mf_metrics *m = calloc(1, sizeof(*m));
    MF_TRY_PTR(m, MF_ERR_NOMEM);
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return MF_RES_OK;
}

/* see mf_metrics.h */
void mf_metrics_free(struct mf_metrics *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        pthread_mutex_destroy(&m->fam[i]->mu);
        free(m->fam[i]);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static bool name_ok(const char *s, bool colons)
{
    if (s == NULL || s[0] == '\0' || strlen(s) >= MF_METRICS_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':');
        bool digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && i > 0)) {
            return false;
        }
    }
    return true;
}

static bool label_name_ok(const char *l)
{
    return name_ok(l, false) && strncmp(l, "__", 2) != 0 && strcmp(l, "le") != 0;
}

/* One label name, or two as "a,b" (see mf_metrics.h). */
static bool labels_ok(const char *label)
{
    const char *comma = strchr(label, ',');
    if (comma == NULL) {
        return label_name_ok(label);
    }
    char first[MF_METRICS_NAME_MAX];
    size_t n = (size_t)(comma - label);
    if (n == 0 || n >= sizeof(first) || strchr(comma + 1, ',') != NULL) {
        return false;
    }
    memcpy(first, label, n);
    first[n] = '\0';
    return label_name_ok(first) && label_name_ok(comma + 1) && strcmp(first, comma + 1) != 0;
}

static mf_res add_family(struct mf_metrics *m, enum mf_metric_type type, const char *name,
                         const char *help, const char *label, const double *bounds, size_t nb,
                         struct mf_metric **out)
{
    mf_res rc;
    MF_ENSURE_REF(m);
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_MSG(name_ok(name, true), MF_ERR_USAGE_ARG, "bad metric name");
    if (label != NULL) {
        MF_ENSURE_MSG(labels_ok(label), MF_ERR_USAGE_ARG, "bad label name for %s", name);
    }
    MF_ENSURE_MSG(help != NULL && strlen(help) < MF_METRICS_HELP_MAX, MF_ERR_USAGE_ARG,
                  "help text of %s missing or too long", name);
    struct mf_metric *x = calloc(1, sizeof(*x));
    MF_TRY_PTR(x, MF_ERR_NOMEM);
    x->type = type;
    memcpy(x->name, name, strlen(name) + 1);
    memcpy(x->help, help, strlen(help) + 1);
    if (label != NULL) {
        memcpy(x->label, label, strlen(label) + 1);
        memcpy(x->series[OTHER_SLOT].label, OTHER, sizeof(OTHER));
        x->n_series = 0;
    } else {
        x->n_series = 1; /* the one series, label "" */
    }
    if (nb > 0) {
        memcpy(x->bounds, bounds, nb * sizeof(bounds[0]));
        x->n_bounds = nb;
    }
    pthread_mutex_init(&x->mu, NULL);

    pthread_mutex_lock(&m->mu);
    bool dup = false;
    for (size_t i = 0; i < m->n; i++) {
        dup = dup || strcmp(m->fam[i]->name, name) == 0;
    }
    if (dup || m->n >= MF_METRICS_FAMILIES_MAX) {
        pthread_mutex_unlock(&m->mu);
        MF_BAIL_OUT(MF_ERR_USAGE_ARG, "metric %s: %s", name,
                    dup ? "registered twice" : "registry full");
    }
    m->fam[m->n++] = x;
    pthread_mutex_unlock(&m->mu);
    *out = x;
    x = NULL;
    rc = MF_RES_OK;
out:
    if (x != NULL) {
        pthread_mutex_destroy(&x->mu);
        free(x);
    }
    return rc;
}

/* see mf_metrics.h */
mf_res mf_metrics_counter(struct mf_metrics *m, const char *name, const char *help,
                          const char *label, struct mf_metric **out)
{
    return add_family(m, MF_METRIC_COUNTER, name, help, label, NULL, 0, out);
}

/* see mf_metrics.h */
mf_res mf_metrics_gauge(struct mf_metrics *m, const char *name, const char *help, const char *label,
                        struct mf_metric **out)
{
    return add_family(m, MF_METRIC_GAUGE, name, help, label, NULL, 0, out);
}

/* see mf_metrics.h */
mf_res mf_metrics_histogram(struct mf_metrics *m, const char *name, const char *help,
                            const double *bounds, size_t n, struct mf_metric **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(bounds);
    MF_ENSURE_MSG(n >= 1 && n <= MF_METRICS_BUCKETS_MAX, MF_ERR_USAGE_ARG,
                  "a histogram needs 1..%d bucket bounds", MF_METRICS_BUCKETS_MAX);
    for (size_t i = 0; i < n; i++) {
        MF_ENSURE_MSG(isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]),
                      MF_ERR_USAGE_ARG, "bucket bounds must be finite and strictly increasing");
    }
    return add_family(m, MF_METRIC_HISTOGRAM, name, help, NULL, bounds, n, out);
}

/* see mf_metrics.h */
mf_res mf_metrics_on_collect(struct mf_metrics *m, void (*fn)(void *arg), void *arg)
{
    MF_ENSURE_REF(m);
    MF_ENSURE_REF(fn);
    pthread_mutex_lock(&m->mu);
    bool full = m->n_hooks >= COLLECT_MAX;
    if (!full) {
        m->hooks[m->n_hooks].fn = fn;
        m->hooks[m->n_hooks].arg = arg;
        m->n_hooks++;
    }
    pthread_mutex_unlock(&m->mu);
    MF_ENSURE_MSG(!full, MF_ERR_USAGE_ARG, "at most %d collect hooks", COLLECT_MAX);
    return MF_RES_OK;
}

/* ---- updates ------------------------------------------------------------------------- */

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

/* The series for label_value, created when missing (see the header for the
 * "other" slot). With create false, NULL when there is none. */
static struct series *series_for(struct mf_metric *x, const char *label_value, bool create)
{
    if (x->label[0] == '\0') {
        return &x->series[0];
    }
    char want[MF_METRICS_LABEL_MAX];
    const char *v = label_value != NULL ? label_value : "";
    size_t len = strnlen(v, sizeof(want) - 1);
    memcpy(want, v, len);
    want[len] = '\0';
    if (strcmp(want, OTHER) == 0) {
        if (create) {
            __atomic_store_n(&x->other_used, 1, __ATOMIC_RELAXED);
        }
        return &x->series[OTHER_SLOT];
    }
    size_t n = __atomic_load_n(&x->n_series, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(x->series[i].label, want) == 0) {
            return &x->series[i];
        }
    }
    if (!create) {
        return NULL;
    }
    struct series *s = NULL;
    pthread_mutex_lock(&x->mu);
    /* another thread may have added it since the scan above */
    n = __atomic_load_n(&x->n_series, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n && s == NULL; i++) {
        if (strcmp(x->series[i].label, want) == 0) {
            s = &x->series[i];
        }
    }
    if (s == NULL && n < OTHER_SLOT) {
        s = &x->series[n];
        memcpy(s->label, want, len + 1);
        __atomic_store_n(&x->n_series, n + 1, __ATOMIC_RELEASE);
    } else if (s == NULL) {
        __atomic_store_n(&x->other_used, 1, __ATOMIC_RELAXED);
        s = &x->series[OTHER_SLOT];
    }
    pthread_mutex_unlock(&x->mu);
    return s;
}

/* see mf_metrics.h */
void mf_metric_add(struct mf_metric *c, const char *label_value, uint64_t n)
{
    if (c == NULL || c->type != MF_METRIC_COUNTER) {
        return;
    }
    struct series *s = series_for(c, label_value, true);
    __atomic_add_fetch(&s->value, n, __ATOMIC_RELAXED);
}

/* see mf_metrics.h */
void mf_metric_set(struct mf_metric *g, const char *label_value, double v)
{
    if (g == NULL || g->type != MF_METRIC_GAUGE) {
        return;
    }
    struct series *s = series_for(g, label_value, true);
    __atomic_store_n(&s->value, dbits(v), __ATOMIC_RELAXED);
    __atomic_store_n(&s->set, 1, __ATOMIC_RELEASE);
}

/* see mf_metrics.h */
void mf_metric_unset(struct mf_metric *g, const char *label_value)
{
    if (g == NULL || g->type != MF_METRIC_GAUGE) {
        return;
    }
    struct series *s = series_for(g, label_value, false);
    if (s != NULL) {
        __atomic_store_n(&s->set, 0, __ATOMIC_RELEASE);
    }
}

/* see mf_metrics.h */
void mf_metric_observe(struct mf_metric *h, double v)
{
    if (h == NULL || h->type != MF_METRIC_HISTOGRAM || isnan(v)) {
        return;
    }
    size_t i = 0;
    while (i < h->n_bounds && !(v <= h->bounds[i])) {
        i++;
    }
    __atomic_add_fetch(&h->buckets[i], 1, __ATOMIC_RELAXED);
    uint64_t old = __atomic_load_n(&h->sum_bits, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t nv = dbits(bitsd(old) + v);
        if (__atomic_compare_exchange_n(&h->sum_bits, &old, nv, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            break;
        }
    }
}

/* see mf_metrics.h */
double mf_metric_value(struct mf_metric *x, const char *label_value)
{
    if (x == NULL) {
        return NAN;
    }
    if (x->type == MF_METRIC_HISTOGRAM) {
        uint64_t n = 0;
        for (size_t i = 0; i <= x->n_bounds; i++) {
            n += __atomic_load_n(&x->buckets[i], __ATOMIC_RELAXED);
        }
        return (double)n;
    }
    struct series *s = series_for(x, label_value, false);
    if (s == NULL || (s == &x->series[OTHER_SLOT] && x->label[0] != '\0' &&
                      !__atomic_load_n(&x->other_used, __ATOMIC_RELAXED))) {
        return NAN;
    }
    if (x->type == MF_METRIC_COUNTER) {
        return (double)__atomic_load_n(&s->value, __ATOMIC_RELAXED);
    }
    if (!__atomic_load_n(&s->set, __ATOMIC_ACQUIRE)) {
        return NAN;
    }
    return bitsd(__atomic_load_n(&s->value, __ATOMIC_RELAXED));
}

/* see mf_metrics.h */
uint64_t mf_metrics_clock_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* see mf_metrics.h */
double mf_metrics_since(uint64_t t0_ns)
{
    uint64_t now = mf_metrics_clock_ns();
    return now > t0_ns ? (double)(now - t0_ns) / 1e9 : 0.0;
}

/* ---- exposition ---------------------------------------------------------------------- */

/* A float as the format wants it: "NaN", "+Inf", "-Inf", or the shortest of
 * %.15g / %.17g that reads back as the same double. */
static void fmt_double(double v, char out[40])
{
    if (isnan(v)) {
        snprintf(out, 40, "NaN");
    } else if (isinf(v)) {
        snprintf(out, 40, "%s", v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, 40, "%.15g", v);
        if (strtod(out, NULL) != v) {
            snprintf(out, 40, "%.17g", v);
        }
    }
}

/* Escapes text for a HELP line (label false: backslash and newline) or a
 * label value (label true: also the double quote). Bytes outside printable
 * ASCII become '?', so the document is always valid UTF-8 and one line per
 * sample whatever a label value held. */
static mf_res put_text(struct mf_buf *b, const char *s, bool label)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '\\') {
            MF_TRY(mf_buf_append_str(b, "\\\\"));
        } else if (*p == '\n') {
            MF_TRY(mf_buf_append_str(b, "\\n"));
        } else if (label && *p == '"') {
            MF_TRY(mf_buf_append_str(b, "\\\""));
        } else if (*p < 0x20 || *p >= 0x7f) {
            MF_TRY(mf_buf_append_u8(b, '?'));
        } else {
            MF_TRY(mf_buf_append_u8(b, *p));
        }
    }
    return MF_RES_OK;
}

/* name{label="value"} or name, then a space. */
static mf_res put_series_name(struct mf_buf *b, const struct mf_metric *x, const char *suffix,
                              const struct series *s)
{
    MF_TRY(mf_buf_printf(b, "%s%s", x->name, suffix));
    const char *comma = strchr(x->label, ',');
    if (x->label[0] != '\0' && comma == NULL) {
        MF_TRY(mf_buf_printf(b, "{%s=\"", x->label));
        MF_TRY(put_text(b, s->label, true));
        MF_TRY(mf_buf_append_str(b, "\"}"));
    } else if (comma != NULL) {
        /* two labels: the value is "v1,v2" (a value without a comma, such
         * as "other", leaves the second one empty) */
        char v1[MF_METRICS_LABEL_MAX];
        const char *vc = strchr(s->label, ',');
        size_t n1 = vc != NULL ? (size_t)(vc - s->label) : strlen(s->label);
        memcpy(v1, s->label, n1);
        v1[n1] = '\0';
        MF_TRY(mf_buf_printf(b, "{%.*s=\"", (int)(comma - x->label), x->label));
        MF_TRY(put_text(b, v1, true));
        MF_TRY(mf_buf_printf(b, "\",%s=\"", comma + 1));
        MF_TRY(put_text(b, vc != NULL ? vc + 1 : "", true));
        MF_TRY(mf_buf_append_str(b, "\"}"));
    }
    return mf_buf_append_u8(b, ' ');
}

static mf_res render_series(struct mf_buf *b, const struct mf_metric *x, const struct series *s)
{
    char num[40];
    if (x->type == MF_METRIC_COUNTER) {
        MF_TRY(put_series_name(b, x, "", s));
        return mf_buf_printf(b, "%llu\n",
                             (unsigned long long)__atomic_load_n(&s->value, __ATOMIC_RELAXED));
    }
    if (!__atomic_load_n(&s->set, __ATOMIC_ACQUIRE)) {
        return MF_RES_OK;
    }
    fmt_double(bitsd(__atomic_load_n(&s->value, __ATOMIC_RELAXED)), num);
    MF_TRY(put_series_name(b, x, "", s));
    return mf_buf_printf(b, "%s\n", num);
}

static mf_res render_histogram(struct mf_buf *b, const struct mf_metric *x)
{
    char num[40];
    uint64_t cum = 0;
    for (size_t i = 0; i <= x->n_bounds; i++) {
        cum += __atomic_load_n(&x->buckets[i], __ATOMIC_RELAXED);
        if (i < x->n_bounds) {
            fmt_double(x->bounds[i], num);
        } else {
            snprintf(num, sizeof(num), "+Inf");
        }
        MF_TRY(
            mf_buf_printf(b, "%s_bucket{le=\"%s\"} %llu\n", x->name, num, (unsigned long long)cum));
    }
    fmt_double(bitsd(__atomic_load_n(&x->sum_bits, __ATOMIC_RELAXED)), num);
    MF_TRY(mf_buf_printf(b, "%s_sum %s\n", x->name, num));
    return mf_buf_printf(b, "%s_count %llu\n", x->name, (unsigned long long)cum);
}

static mf_res render_family(struct mf_buf *b, const struct mf_metric *x)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    MF_TRY(mf_buf_printf(b, "# HELP %s ", x->name));
    MF_TRY(put_text(b, x->help, false));
    MF_TRY(mf_buf_printf(b, "\n# TYPE %s %s\n", x->name, types[x->type]));
    if (x->type == MF_METRIC_HISTOGRAM) {
        return render_histogram(b, x);
    }
    size_t n = __atomic_load_n(&x->n_series, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n; i++) {
        MF_TRY(render_series(b, x, &x->series[i]));
    }
    if (x->label[0] != '\0' && __atomic_load_n(&x->other_used, __ATOMIC_RELAXED)) {
        MF_TRY(render_series(b, x, &x->series[OTHER_SLOT]));
    }
    return MF_RES_OK;
}

/* see mf_metrics.h */
mf_res mf_metrics_render(struct mf_metrics *m, struct mf_buf *out)
{
    mf_res rc = MF_RES_OK;
    MF_ENSURE_REF(m);
    MF_ENSURE_REF(out);
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_hooks; i++) {
        m->hooks[i].fn(m->hooks[i].arg);
    }
    for (size_t i = 0; i < m->n && mf_ok(rc); i++) {
        rc = render_family(out, m->fam[i]);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- the HTTP server ----------------------------------------------------------------- */

struct mf_metrics_server {
    struct mf_metrics *m;
    bool (*ready)(void *arg);
    void *arg;
    struct MHD_Daemon *d;
    char addr[NI_MAXHOST + NI_MAXSERV + 4];
};

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *type,
                                  const void *data, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)data, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_plain(struct MHD_Connection *conn, unsigned status, const char *s)
{
    return reply_text(conn, status, "text/plain; charset=utf-8", s, strlen(s));
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_size, void **con_cls)
{
    struct mf_metrics_server *s = cls;
    struct mf_httpd_req *req = NULL;
    enum MHD_Result ret;
    (void)version;
    if (!mf_httpd_body(conn, con_cls, upload_data, upload_size, SRV_BODY_MAX, &req, &ret)) {
        return ret;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return reply_plain(conn, 405, "only GET and HEAD are served here\n");
    }
    if (strcmp(url, "/live") == 0) {
        return reply_plain(conn, 200, "ok\n");
    }
    if (strcmp(url, "/ready") == 0) {
        bool ok = s->ready == NULL || s->ready(s->arg);
        return reply_plain(conn, ok ? 200 : 503, ok ? "ready\n" : "not ready\n");
    }
    if (strcmp(url, "/metrics") != 0) {
        return reply_plain(conn, 404, "not found: try /metrics, /live or /ready\n");
    }
    struct mf_buf b;
    mf_buf_init(&b, MF_METRICS_RENDER_MAX, 0);
    mf_res r = mf_buf_reserve(&b, RENDER_START);
    if (mf_ok(r)) {
        r = mf_metrics_render(s->m, &b);
    }
    if (mf_ok(r)) {
        ret = reply_text(conn, 200, MF_METRICS_CONTENT_TYPE, mf_buf_cstr(&b), b.len);
    } else {
        ret = reply_plain(conn, 500, "cannot render the metrics\n");
    }
    mf_buf_cleanup(&b);
    return ret;
}

/* Binds and listens on a numeric HOST:PORT; the bound address goes to
 * addr. */
/* see mf_metrics.h */
mf_res mf_metrics_serve(struct mf_metrics *m, const char *host_port, bool (*ready)(void *arg),
                        void *arg, struct mf_metrics_server **out)
{
    mf_res rc;
    int fd = -1;
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(m);
    MF_ENSURE_REF(host_port);
    struct mf_metrics_server *s = calloc(1, sizeof(*s));
    MF_TRY_PTR(s, MF_ERR_NOMEM);
    s->m = m;
    s->ready = ready;
    s->arg = arg;
    MF_TRY_OUT(mf_httpd_listen_tcp(host_port, 16, &fd, s->addr, sizeof(s->addr)));
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC, 0, NULL,
                            NULL, serve, s, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, SRV_CONNS, MHD_OPTION_CONNECTION_TIMEOUT,
                            SRV_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, SRV_MEMORY,
                            MHD_OPTION_NOTIFY_COMPLETED, mf_httpd_completed, NULL, MHD_OPTION_END);
    MF_ENSURE_OUT_MSG(s->d != NULL, MF_ERR_IO, "cannot start the metrics server on %s", host_port);
    fd = -1; /* MHD's now */
    *out = s;
    s = NULL;
    rc = MF_RES_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    free(s);
    return rc;
}

/* see mf_metrics.h */
const char *mf_metrics_server_address(const struct mf_metrics_server *s)
{
    return s != NULL ? s->addr : "";
}

/* see mf_metrics.h */
void mf_metrics_server_stop(struct mf_metrics_server *s)
{
    if (s == NULL) {
        return;
    }
    if (s->d != NULL) {
        MHD_stop_daemon(s->d);
    }
    free(s);
}

/* ---- sd_notify ----------------------------------------------------------------------- */

/* see mf_metrics.h */
mf_res mf_metrics_notify_systemd(const char *state)
{
    MF_ENSURE_REF(state);
    const char *e = getenv("NOTIFY_SOCKET");
    if (e == NULL || e[0] == '\0') {
        return MF_RES_OK;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(e);
    MF_ENSURE_MSG((e[0] == '/' || e[0] == '@') && n >= 2 && n < sizeof(sa.sun_path), MF_ERR_IO,
                  "NOTIFY_SOCKET is neither a socket path nor an abstract name");
    memcpy(sa.sun_path, e, n);
    if (e[0] == '@') {
        sa.sun_path[0] = '\0'; /* abstract namespace: the name is not NUL-terminated */
    }
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    MF_ENSURE_MSG(fd >= 0, MF_ERR_IO, "socket: %s", strerror(errno));
    size_t sl = strlen(state);
    ssize_t w = sendto(fd, state, sl, MSG_NOSIGNAL, (const struct sockaddr *)&sa, len);
    int err = errno;
    close(fd);
    MF_ENSURE_MSG(w == (ssize_t)sl, MF_ERR_IO, "cannot notify systemd: %s", strerror(err));
    return MF_RES_OK;
}

/* ---- the daemons' serving life ------------------------------------------------------ */

/* see mf_metrics.h */
mf_res mf_metrics_life_serve(struct mf_metrics_life *l, struct mf_metrics *m, const char *host_port,
                             bool (*ready)(void *arg))
{
    MF_ENSURE_REF(l);
    if (host_port == NULL || host_port[0] == '\0') {
        return MF_RES_OK;
    }
    MF_TRY(mf_metrics_serve(m, host_port, ready, NULL, &l->srv));
    mf_log_event(MF_LOG_INFO, __func__, "metrics listening", "address",
                 mf_metrics_server_address(l->srv), NULL);
    return MF_RES_OK;
}

/* see mf_metrics.h */
bool mf_metrics_life_is_ready(const struct mf_metrics_life *l)
{
    return __atomic_load_n(&l->ready, __ATOMIC_ACQUIRE) != 0;
}

/* see mf_metrics.h */
void mf_metrics_life_ready(struct mf_metrics_life *l, const char *status, const char *who)
{
    char state[160];
    __atomic_store_n(&l->ready, 1, __ATOMIC_RELEASE);
    (void)snprintf(state, sizeof(state), "READY=1\nSTATUS=%s", status);
    mf_res r = mf_metrics_notify_systemd(state);
    if (!mf_ok(r)) {
        mf_log_warn_r(r, "cannot tell systemd that %s is ready", who);
    }
}

/* see mf_metrics.h */
void mf_metrics_life_stop(struct mf_metrics_life *l, const char *who)
{
    if (__atomic_exchange_n(&l->ready, 0, __ATOMIC_ACQ_REL)) {
        if (!mf_ok(mf_metrics_notify_systemd("STOPPING=1"))) {
            mf_log_debug("cannot tell systemd that %s is stopping", who);
        }
    }
    mf_metrics_server_stop(l->srv);
    l->srv = NULL;
}
