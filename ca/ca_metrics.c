/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_metrics: mayfly-ca's metrics, health and readiness. See ca_metrics.h.
 *
 * State lives in one static struct: the metric handles are written once by
 * ca_metrics_start before any other thread exists and only read afterwards;
 * "ready" is an atomic flag, set with release ordering after the daemon's
 * context is complete, so that the server thread may read ctx->keys only
 * once it has seen the flag (acquire).
 */
#include "ca/ca_metrics.h"

#include <string.h>

#include "api/core/mf_log.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_metrics.h"
#include "api/internal/mf_opt.h"
#include "ca/ca.h"
#include "ca/ca_issue.h"
#include "ca/ca_keys.h"
#include "ca/ca_policy.h"
#include "ca/ca_store.h"

static struct {
    struct ca_ctx *ctx;
    struct mf_metrics *reg;
    struct mf_metric *issued;
    struct mf_metric *denied;
    struct mf_metric *jwt_issued, *jwt_refused;
    struct mf_metric *sign_seconds;
    struct mf_metric *key_expiry;
    struct mf_metric *entries, *agents, *build_info;
    struct mf_metric *ready_gauge;
    struct mf_metric *fed_fetches;
    struct mf_metrics_life life;
} g;

/* Signing one P-256 leaf takes tens of microseconds to a few milliseconds;
 * the upper buckets catch a CA starved of CPU or stuck on its lock. */
static const double sign_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,    0.1,    0.25,  0.5,    1.0};

/* Seconds until the active signing key expires, or false when there is no
 * usable one. Only after ready (see the top). */
static bool key_remaining(int64_t *secs)
{
    struct ca_signer *sg = NULL;
    if (!mf_metrics_life_is_ready(&g.life) || g.ctx == NULL || g.ctx->keys == NULL ||
        !mf_ok(ca_keys_signer(g.ctx->keys, &sg))) {
        return false;
    }
    *secs = mf_cert_not_after(sg->cert) - mf_now();
    ca_signer_release(sg);
    return true;
}

static bool is_ready(void *arg)
{
    (void)arg;
    int64_t left = 0;
    return key_remaining(&left) && left > 0;
}

static void collect(void *arg)
{
    (void)arg;
    int64_t left = 0;
    bool have = key_remaining(&left);
    if (have) {
        mf_metric_set(g.key_expiry, NULL, (double)left);
    } else {
        mf_metric_unset(g.key_expiry, NULL);
    }
    mf_metric_set(g.ready_gauge, NULL, have && left > 0 ? 1.0 : 0.0);
    int64_t entries = 0, agents = 0;
    if (mf_metrics_life_is_ready(&g.life) && g.ctx != NULL && g.ctx->store != NULL &&
        mf_ok(ca_store_counts(g.ctx->store, &entries, &agents))) {
        mf_metric_set(g.entries, NULL, (double)entries);
        mf_metric_set(g.agents, NULL, (double)agents);
    } else { /* the registry cannot be read now: no figure rather than a wrong one */
        mf_metric_unset(g.entries, NULL);
        mf_metric_unset(g.agents, NULL);
    }
}

static mf_res registry(void)
{
    MF_TRY(mf_metrics_new(&g.reg));
    MF_TRY(mf_metrics_counter(g.reg, "mayfly_ca_svids_issued_total",
                              "X509-SVIDs signed, by kind (workload, agent, server)", "kind",
                              &g.issued));
    MF_TRY(mf_metrics_counter(g.reg, "mayfly_ca_svids_denied_total",
                              "Issuances and agent requests refused, by reason", "reason",
                              &g.denied));
    MF_TRY(mf_metrics_counter(g.reg, "mayfly_ca_jwt_svids_issued_total",
                              "JWT-SVIDs signed for agents", NULL, &g.jwt_issued));
    MF_TRY(mf_metrics_counter(g.reg, "mayfly_ca_jwt_svids_refused_total",
                              "JWT-SVID requests refused, by reason", "reason", &g.jwt_refused));
    MF_TRY(mf_metrics_histogram(g.reg, "mayfly_ca_signing_seconds",
                                "Time to sign one X509-SVID, in seconds", sign_buckets,
                                sizeof(sign_buckets) / sizeof(sign_buckets[0]), &g.sign_seconds));
    MF_TRY(mf_metrics_gauge(g.reg, "mayfly_ca_signing_key_expiry_seconds",
                            "Seconds until the active CA signing key expires", NULL,
                            &g.key_expiry));
    MF_TRY(mf_metrics_gauge(g.reg, "mayfly_ca_ready",
                            "1 when the CA serves both sockets with an active signing key", NULL,
                            &g.ready_gauge));
    MF_TRY(mf_metrics_gauge(g.reg, "mayfly_ca_entries", "Registration entries in the registry",
                            NULL, &g.entries));
    MF_TRY(mf_metrics_gauge(g.reg, "mayfly_ca_agents",
                            "Attested agents in the registry (banned ones included)", NULL,
                            &g.agents));
    MF_TRY(mf_metrics_gauge(g.reg, "mayfly_ca_build_info", "1, labelled with the version",
                            "version", &g.build_info));
    MF_TRY(mf_metrics_counter(g.reg, "mayfly_ca_federation_fetches_total",
                              "Foreign bundle fetches, by result (stored, unchanged, failed, "
                              "refused)",
                              "result", &g.fed_fetches));
    mf_metric_set(g.build_info, MAYFLY_VERSION, 1.0);
    /* show the usual kinds as 0 from the start, so rates work at once */
    mf_metric_add(g.issued, "workload", 0);
    mf_metric_add(g.issued, "agent", 0);
    mf_metric_add(g.issued, "server", 0);
    return mf_metrics_on_collect(g.reg, collect, NULL);
}

/* see ca_metrics.h */
mf_res ca_metrics_start(struct ca_ctx *ctx)
{
    MF_ENSURE_REF(ctx);
    MF_ENSURE(g.reg == NULL, MF_ERR_STATE);
    g.ctx = ctx;
    mf_res r = registry();
    if (!mf_ok(r)) {
        /* the daemon exits on this error; the handles are simply unusable */
        return r;
    }
    return mf_metrics_life_serve(&g.life, g.reg, ctx->cfg.metrics_listen, is_ready);
}

/* see ca_metrics.h */
void ca_metrics_ready(void)
{
    mf_metrics_life_ready(&g.life, "serving", "the CA");
}

/* see ca_metrics.h */
void ca_metrics_stop(void)
{
    mf_metrics_life_stop(&g.life, "the CA");
}

/* see ca_metrics.h */
uint64_t ca_metrics_clock(void)
{
    return mf_metrics_clock_ns();
}

/* see ca_metrics.h */
void ca_metrics_issued(const struct ca_leaf_req *req, uint64_t t0)
{
    if (g.reg == NULL || req == NULL || req->id == NULL) {
        return;
    }
    const char *kind = "workload";
    if (req->agent != NULL && strcmp(req->agent, "-") == 0) {
        kind = "server";
    } else if (strncmp(mf_spiffeid_path(req->id), CA_AGENT_PATH, strlen(CA_AGENT_PATH)) == 0) {
        kind = "agent";
    }
    mf_metric_inc(g.issued, kind);
    mf_metric_observe(g.sign_seconds, mf_metrics_since(t0));
}

/* see ca_metrics.h */
void ca_metrics_denied(const char *reason)
{
    mf_metric_inc(g.denied, reason != NULL ? reason : "error");
}

/* see ca_metrics.h */
void ca_metrics_jwt(const char *refused)
{
    if (refused == NULL) {
        mf_metric_inc(g.jwt_issued, NULL);
    } else {
        mf_metric_inc(g.jwt_refused, refused);
    }
}

/* see ca_metrics.h */
void ca_metrics_federation(const char *result)
{
    mf_metric_inc(g.fed_fetches, result != NULL ? result : "failed");
}
