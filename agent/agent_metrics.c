/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_metrics: mayfly-agent's metrics, health, readiness and expiry
 * warnings. See agent_metrics.h.
 *
 * The worker thread stores absolute instants (seconds since the epoch) and
 * counts in atomics; the metrics server turns them into "seconds until"
 * gauges when it is scraped, so a gauge is exact at scrape time however long
 * the worker sleeps. The metric handles are written once by
 * agent_metrics_start before other threads exist.
 */
#include "agent/agent_metrics.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent_config.h"
#include "agent/agent_rotate.h"
#include "agent/agent_worker.h"
#include "api/core/mf_log.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_metrics.h"
#include "api/internal/mf_opt.h"

#define WARN_EVERY_MIN_MS 1000
#define WARN_EVERY_MAX_MS 30000

static struct {
    struct mf_metrics *reg;
    struct mf_metric *issued, *renewals, *lag, *sign_failures, *ca_errors;
    struct mf_metric *svid_expiry, *agent_expiry, *entries, *svids, *expiring, *warnings;
    struct mf_metric *fetch_seconds, *denied, *ready_gauge;
    struct mf_metric *jwt_fetched, *jwt_failed, *reconnects;
    struct mf_metric *grpc, *build_info, *ca_server, *failovers;
    char server[MF_METRICS_LABEL_MAX]; /* worker thread only: the CA server shown */
    struct mf_metrics_life life;
    int64_t warn_ms;      /* written by start only */
    int64_t next_warn_ms; /* worker thread only */
    int64_t soonest_s;    /* atomic: soonest workload NotAfter, INT64_MAX = none */
    int64_t agent_s;      /* atomic: the agent SVID's NotAfter, 0 = none */
    int64_t n_entries;    /* atomic */
    int64_t n_svids;      /* atomic */
    int64_t n_expiring;   /* atomic */
} g = {.soonest_s = INT64_MAX};

/* Renewals are scheduled well ahead of expiry; a lag of seconds means a busy
 * CA, of minutes an outage. */
static const double lag_buckets[] = {0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600};
/* A fetch is attestation (a few /proc reads) plus rendering PEM. */
static const double fetch_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                       0.01,   0.025,   0.05,   0.1,   0.25,   1.0};

static bool is_ready(void *arg)
{
    (void)arg;
    return mf_metrics_life_is_ready(&g.life) &&
           __atomic_load_n(&g.agent_s, __ATOMIC_RELAXED) > mf_now();
}

static void collect(void *arg)
{
    (void)arg;
    int64_t now = mf_now();
    int64_t soonest = __atomic_load_n(&g.soonest_s, __ATOMIC_RELAXED);
    int64_t agent = __atomic_load_n(&g.agent_s, __ATOMIC_RELAXED);
    if (soonest != INT64_MAX) {
        mf_metric_set(g.svid_expiry, NULL, (double)(soonest - now));
    } else {
        mf_metric_unset(g.svid_expiry, NULL);
    }
    if (agent > 0) {
        mf_metric_set(g.agent_expiry, NULL, (double)(agent - now));
    } else {
        mf_metric_unset(g.agent_expiry, NULL);
    }
    mf_metric_set(g.entries, NULL, (double)__atomic_load_n(&g.n_entries, __ATOMIC_RELAXED));
    mf_metric_set(g.svids, NULL, (double)__atomic_load_n(&g.n_svids, __ATOMIC_RELAXED));
    mf_metric_set(g.expiring, NULL, (double)__atomic_load_n(&g.n_expiring, __ATOMIC_RELAXED));
    mf_metric_set(g.ready_gauge, NULL, is_ready(NULL) ? 1.0 : 0.0);
}

static mf_res registry(void)
{
    struct mf_metrics *r = NULL;
    MF_TRY(mf_metrics_new(&r));
    g.reg = r;
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_svids_issued_total",
                              "X509-SVIDs signed by the CA and installed by this agent", NULL,
                              &g.issued));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_svid_renewals_total",
                              "Scheduled SVID renewals completed, by kind (workload, agent)",
                              "kind", &g.renewals));
    MF_TRY(
        mf_metrics_histogram(r, "mayfly_agent_renewal_lag_seconds",
                             "Seconds between an SVID's scheduled renewal instant and its renewal",
                             lag_buckets, sizeof(lag_buckets) / sizeof(lag_buckets[0]), &g.lag));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_sign_failures_total",
                              "SVID signing attempts that failed (CA refused or unreachable)", NULL,
                              &g.sign_failures));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_ca_errors_total",
                              "Worker rounds that could not reach or use the CA", NULL,
                              &g.ca_errors));
    MF_TRY(mf_metrics_gauge(r, "mayfly_agent_svid_expiry_seconds",
                            "Seconds until the soonest workload X509-SVID expires", NULL,
                            &g.svid_expiry));
    MF_TRY(mf_metrics_gauge(r, "mayfly_agent_own_svid_expiry_seconds",
                            "Seconds until the agent's own X509-SVID expires", NULL,
                            &g.agent_expiry));
    MF_TRY(mf_metrics_gauge(r, "mayfly_agent_cache_entries",
                            "Registration entries known to this agent", NULL, &g.entries));
    MF_TRY(mf_metrics_gauge(r, "mayfly_agent_cache_svids",
                            "Registration entries with a servable X509-SVID", NULL, &g.svids));
    MF_TRY(mf_metrics_gauge(r, "mayfly_agent_svids_expiring",
                            "SVIDs within the expiry warning margin whose renewal failed", NULL,
                            &g.expiring));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_expiry_warnings_total", "Expiry warnings logged",
                              NULL, &g.warnings));
    MF_TRY(mf_metrics_histogram(r, "mayfly_agent_workload_fetch_seconds",
                                "Seconds to answer one Workload API fetch that got an identity",
                                fetch_buckets, sizeof(fetch_buckets) / sizeof(fetch_buckets[0]),
                                &g.fetch_seconds));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_workload_denied_total",
                              "Workload API requests refused, by reason", "reason", &g.denied));
    MF_TRY(mf_metrics_gauge(r, "mayfly_agent_ready",
                            "1 when the agent holds a valid SVID and serves the Workload API", NULL,
                            &g.ready_gauge));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_jwt_svids_fetched_total",
                              "JWT-SVIDs signed by the CA for this agent's workloads", NULL,
                              &g.jwt_fetched));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_jwt_svid_failures_total",
                              "JWT-SVID requests to the CA that failed, by reason", "reason",
                              &g.jwt_failed));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_ca_reconnects_total",
                              "Requests sent again after the CA closed an idle connection", NULL,
                              &g.reconnects));
    MF_TRY(mf_metrics_gauge(r, "mayfly_agent_ca_server",
                            "1 for the CA server the agent talks to, 0 for one it left", "server",
                            &g.ca_server));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_ca_failovers_total",
                              "Moves to another CA server after a failure", NULL, &g.failovers));
    MF_TRY(mf_metrics_counter(r, "mayfly_agent_grpc_requests_total",
                              "Workload API gRPC calls answered, by method and status code",
                              "method,code", &g.grpc));
    MF_TRY(mf_metrics_gauge(r, "mayfly_agent_build_info", "1, labelled with the version", "version",
                            &g.build_info));
    mf_metric_set(g.build_info, MAYFLY_VERSION, 1.0);
    mf_metric_add(g.renewals, "workload", 0);
    mf_metric_add(g.renewals, "agent", 0);
    return mf_metrics_on_collect(r, collect, NULL);
}

/* see agent_metrics.h */
mf_res agent_metrics_start(const struct agent_config *cfg)
{
    MF_ENSURE_REF(cfg);
    MF_ENSURE(g.reg == NULL, MF_ERR_STATE);
    g.warn_ms = cfg->expiry_warning_ms;
    MF_TRY(registry());
    return mf_metrics_life_serve(&g.life, g.reg, cfg->metrics_listen, is_ready);
}

/* see agent_metrics.h */
void agent_metrics_ready(void)
{
    mf_metrics_life_ready(&g.life, "serving the Workload API", "the agent");
}

/* see agent_metrics.h */
void agent_metrics_stop(void)
{
    mf_metrics_life_stop(&g.life, "the agent");
}

/* ---- worker hooks ------------------------------------------------------------------- */

/* see agent_metrics.h */
void agent_metrics_published(const struct agent_worker *w)
{
    if (w == NULL) {
        return;
    }
    int64_t n_svids = 0;
    for (size_t i = 0; i < w->cache.n; i++) {
        const struct agent_rec *r = &w->cache.v[i];
        if (r->key != NULL && r->chain.n > 0 && agent_svid_servable(r->not_after)) {
            n_svids++;
        }
    }
    int64_t soonest = w->next_expiry_ms == INT64_MAX ? INT64_MAX : w->next_expiry_ms / 1000;
    int64_t agent = w->agent_chain.n > 0 ? mf_cert_not_after(w->agent_chain.v[0]) : 0;
    __atomic_store_n(&g.n_entries, (int64_t)w->cache.n, __ATOMIC_RELAXED);
    __atomic_store_n(&g.n_svids, n_svids, __ATOMIC_RELAXED);
    __atomic_store_n(&g.soonest_s, soonest, __ATOMIC_RELAXED);
    __atomic_store_n(&g.agent_s, agent, __ATOMIC_RELAXED);
}

static void renewed(const char *kind, int64_t scheduled_ms)
{
    if (scheduled_ms <= 0) {
        return;
    }
    int64_t lag = mf_now_ms() - scheduled_ms;
    mf_metric_inc(g.renewals, kind);
    mf_metric_observe(g.lag, lag > 0 ? (double)lag / 1000.0 : 0.0);
}

/* see agent_metrics.h */
void agent_metrics_svid_signed(int64_t scheduled_ms)
{
    mf_metric_inc(g.issued, NULL);
    renewed("workload", scheduled_ms);
}

/* see agent_metrics.h */
void agent_metrics_agent_renewed(int64_t scheduled_ms)
{
    renewed("agent", scheduled_ms);
}

/* see agent_metrics.h */
void agent_metrics_sign_failed(void)
{
    mf_metric_inc(g.sign_failures, NULL);
}

/* see agent_metrics.h */
void agent_metrics_ca_failed(void)
{
    mf_metric_inc(g.ca_errors, NULL);
}

/* One SVID for the warning pass: counts it and keeps the soonest. */
static void consider(const char *id, int64_t not_after_s, int64_t renew_at_ms, bool failed,
                     int64_t now_ms, size_t *n, const char **soonest_id, int64_t *soonest_ms)
{
    int64_t left = not_after_s * 1000 - now_ms;
    if (left <= 0 || left > g.warn_ms || now_ms < renew_at_ms || !failed) {
        return;
    }
    (*n)++;
    if (*soonest_id == NULL || left < *soonest_ms) {
        *soonest_id = id;
        *soonest_ms = left;
    }
}

/* see agent_metrics.h */
void agent_metrics_check_expiry(const struct agent_worker *w, int64_t now_ms)
{
    if (w == NULL || g.reg == NULL || g.warn_ms <= 0) {
        return;
    }
    size_t n = 0;
    const char *id = NULL;
    int64_t left_ms = 0;
    bool ca_down = w->ca_attempts > 0;
    for (size_t i = 0; i < w->cache.n; i++) {
        const struct agent_rec *r = &w->cache.v[i];
        if (r->key != NULL && r->not_after > 0) {
            consider(r->entry.spiffe_id, r->not_after, r->renew_at_ms, r->attempts > 0 || ca_down,
                     now_ms, &n, &id, &left_ms);
        }
    }
    if (w->agent_key != NULL && w->agent_chain.n > 0) {
        consider(w->agent_id.str, mf_cert_not_after(w->agent_chain.v[0]), w->agent_renew_at_ms,
                 w->agent_attempts > 0 || ca_down, now_ms, &n, &id, &left_ms);
    }
    __atomic_store_n(&g.n_expiring, (int64_t)n, __ATOMIC_RELAXED);
    /* the agent's SVID may have been renewed without a publication */
    if (w->agent_chain.n > 0) {
        __atomic_store_n(&g.agent_s, mf_cert_not_after(w->agent_chain.v[0]), __ATOMIC_RELAXED);
    }
    if (n == 0 || now_ms < g.next_warn_ms) {
        return;
    }
    int64_t every = g.warn_ms / 4;
    every = every < WARN_EVERY_MIN_MS ? WARN_EVERY_MIN_MS : every;
    every = every > WARN_EVERY_MAX_MS ? WARN_EVERY_MAX_MS : every;
    g.next_warn_ms = now_ms + every;
    char margin[32], left[32], count[24];
    mf_duration_format(g.warn_ms / 1000, margin, sizeof(margin));
    mf_duration_format((left_ms + 999) / 1000, left, sizeof(left));
    snprintf(count, sizeof(count), "%zu", n);
    mf_metric_inc(g.warnings, NULL);
    mf_log_event(MF_LOG_WARN, __func__, "svid near expiry and not renewed", "count", count,
                 "margin", margin, "soonest", id, "expires_in", left, "ca_reachable",
                 ca_down ? "no" : "yes", NULL);
}

/* ---- Workload API hooks ------------------------------------------------------------- */

/* see agent_metrics.h */
uint64_t agent_metrics_clock(void)
{
    return mf_metrics_clock_ns();
}

/* see agent_metrics.h */
void agent_metrics_fetch_done(uint64_t t0)
{
    mf_metric_observe(g.fetch_seconds, mf_metrics_since(t0));
}

/* see agent_metrics.h */
void agent_metrics_denied(const char *reason)
{
    char label[MF_METRICS_LABEL_MAX];
    const char *s = reason != NULL ? reason : "denied";
    size_t n = strnlen(s, sizeof(label) - 1);
    for (size_t i = 0; i < n; i++) {
        label[i] = s[i] == ' ' ? '_' : s[i];
    }
    label[n] = '\0';
    mf_metric_inc(g.denied, label);
}

/* see agent_metrics.h */
void agent_metrics_jwt_fetched(void)
{
    mf_metric_inc(g.jwt_fetched, NULL);
}

/* see agent_metrics.h */
void agent_metrics_jwt_failed(mf_res r)
{
    const char *reason = "error";
    switch (mf_err_category(r.err)) {
    case MF_CAT_IO:
        reason = "ca_unreachable";
        break;
    case MF_CAT_AUTH:
    case MF_CAT_POLICY:
        reason = r.err == MF_ERR_POLICY_LIMIT ? "rate_limited" : "refused";
        break;
    case MF_CAT_PROTO:
    case MF_CAT_CRYPTO:
        reason = "bad_reply";
        break;
    default:
        break;
    }
    mf_metric_inc(g.jwt_failed, reason);
}

/* see agent_metrics.h */
void agent_metrics_ca_server(const char *server)
{
    if (g.server[0] != '\0') {
        mf_metric_set(g.ca_server, g.server, 0.0);
    }
    snprintf(g.server, sizeof(g.server), "%s", server);
    mf_metric_set(g.ca_server, g.server, 1.0);
}

/* see agent_metrics.h */
void agent_metrics_ca_failover(void)
{
    mf_metric_inc(g.failovers, NULL);
}

/* see agent_metrics.h */
void agent_metrics_ca_reconnected(void)
{
    mf_metric_inc(g.reconnects, NULL);
}

/* see agent_metrics.h */
void agent_metrics_grpc(const char *method, const char *code)
{
    char v[MF_METRICS_LABEL_MAX];
    snprintf(v, sizeof(v), "%s,%s", method, code);
    mf_metric_inc(g.grpc, v);
}
