/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_issue: admission control and leaf signing (see ca_issue.h).
 *
 * The per-agent buckets live in a fixed table (no allocation per agent, so
 * a flood of distinct names cannot grow memory): an agent hashes to a home
 * slot and probes a few neighbours; a slot idle long enough to have refilled
 * completely is reused. If every probed slot is busy the agent shares the
 * home slot, which can only make it stricter.
 */
#include "ca/ca_issue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/core/mf_log.h"
#include "api/core/mf_time.h"
#include "ca/ca_metrics.h"
#include "ca/ca_policy.h"

#define BUCKETS      4096
#define PROBES       8
#define SLOT_WAIT_MS 250

struct bucket {
    uint64_t key; /* FNV-1a of the agent key; 0 = free */
    double tokens;
    int64_t last_ms;
};

struct ca_issuer {
    pthread_mutex_t mu;   /* protects everything below */
    pthread_cond_t freed; /* signalled when a slot is released */
    unsigned max_slots;
    unsigned in_use;
    double rate; /* tokens per second */
    double burst;
    struct bucket buckets[BUCKETS];
};

mf_res ca_issuer_new(unsigned max_concurrent, unsigned rate, unsigned burst, struct ca_issuer **out)
{
    MF_ENSURE_REF(out);
    MF_ENSURE(max_concurrent > 0 && rate > 0 && burst > 0, MF_ERR_USAGE_ARG);
    struct ca_issuer *is = calloc(1, sizeof(*is));
    MF_TRY_PTR(is, MF_ERR_NOMEM);
    pthread_mutex_init(&is->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&is->freed, &ca);
    pthread_condattr_destroy(&ca);
    is->max_slots = max_concurrent;
    is->rate = rate;
    is->burst = burst;
    *out = is;
    return MF_RES_OK;
}

/* see ca_issue.h */
mf_res ca_issuer_set_limits(struct ca_issuer *is, unsigned max_concurrent, unsigned rate,
                            unsigned burst)
{
    MF_ENSURE_REF(is);
    MF_ENSURE(max_concurrent > 0 && rate > 0 && burst > 0, MF_ERR_USAGE_ARG);
    pthread_mutex_lock(&is->mu);
    is->max_slots = max_concurrent;
    is->rate = rate;
    is->burst = burst;
    /* a smaller bucket takes effect at once; requests in flight keep their
     * slots and the count drains below a lowered limit as they finish */
    for (size_t i = 0; i < BUCKETS; i++) {
        if (is->buckets[i].tokens > is->burst) {
            is->buckets[i].tokens = is->burst;
        }
    }
    pthread_cond_broadcast(&is->freed); /* a raised limit may admit a waiter */
    pthread_mutex_unlock(&is->mu);
    return MF_RES_OK;
}

void ca_issuer_free(struct ca_issuer *is)
{
    if (is == NULL) {
        return;
    }
    pthread_mutex_destroy(&is->mu);
    pthread_cond_destroy(&is->freed);
    free(is);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

static struct bucket *find_bucket(struct ca_issuer *is, uint64_t h, int64_t now_ms)
{
    size_t home = (size_t)(h % BUCKETS);
    /* time after which an idle bucket is full again, so forgetting it
     * changes nothing */
    int64_t idle_ms = (int64_t)(is->burst / is->rate * 1000.0) + 1000;
    for (size_t i = 0; i < PROBES; i++) {
        struct bucket *b = &is->buckets[(home + i) % BUCKETS];
        if (b->key == h) {
            return b;
        }
    }
    for (size_t i = 0; i < PROBES; i++) {
        struct bucket *b = &is->buckets[(home + i) % BUCKETS];
        if (b->key == 0 || now_ms - b->last_ms > idle_ms) {
            b->key = h;
            b->tokens = is->burst;
            b->last_ms = now_ms;
            return b;
        }
    }
    return &is->buckets[home];
}

mf_res ca_issue_admit(struct ca_issuer *is, const char *key, int64_t now_ms, struct ca_admit *why)
{
    MF_ENSURE_REF(is);
    MF_ENSURE_REF(key);
    MF_ENSURE_REF(why);
    why->status = 0;
    why->retry_after = 0;
    pthread_mutex_lock(&is->mu);
    struct bucket *b = find_bucket(is, fnv1a(key), now_ms);
    double elapsed = (double)(now_ms - b->last_ms) / 1000.0;
    if (elapsed > 0) {
        b->tokens += elapsed * is->rate;
        if (b->tokens > is->burst) {
            b->tokens = is->burst;
        }
        b->last_ms = now_ms;
    }
    if (b->tokens < 1.0) {
        double wait = (1.0 - b->tokens) / is->rate;
        pthread_mutex_unlock(&is->mu);
        why->status = 429;
        why->retry_after = (int)wait + 1;
        ca_metrics_denied("rate_limited");
        MF_BAIL_MSG(MF_ERR_POLICY_LIMIT, "rate limit for %s reached; retry in %d s", key,
                    why->retry_after);
    }
    /* Capacity: wait briefly for a slot, then give up with 503. */
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += (long)SLOT_WAIT_MS * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (is->in_use >= is->max_slots) {
        if (pthread_cond_timedwait(&is->freed, &is->mu, &deadline) != 0) {
            break;
        }
    }
    if (is->in_use >= is->max_slots) {
        pthread_mutex_unlock(&is->mu);
        why->status = 503;
        why->retry_after = 1;
        ca_metrics_denied("capacity");
        MF_BAIL_MSG(MF_ERR_POLICY_LIMIT, "signing capacity is busy; retry in 1 s");
    }
    /* Charge the bucket only for admitted work. */
    b->tokens -= 1.0;
    is->in_use++;
    pthread_mutex_unlock(&is->mu);
    return MF_RES_OK;
}

void ca_issue_release(struct ca_issuer *is)
{
    if (is == NULL) {
        return;
    }
    pthread_mutex_lock(&is->mu);
    if (is->in_use > 0) {
        is->in_use--;
    }
    pthread_cond_signal(&is->freed);
    pthread_mutex_unlock(&is->mu);
}

void ca_issue_log_denied(const char *spiffe_id, const char *agent, mf_res r)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    ca_metrics_denied(ca_policy_reason(r));
    mf_log_event(MF_LOG_INFO, __func__, "denied", "spiffe_id", spiffe_id ? spiffe_id : "-", "agent",
                 agent ? agent : "-", "reason", ca_policy_reason(r), "detail", msg, NULL);
}

mf_res ca_issue_leaf(struct ca_keys *keys, const struct ca_leaf_req *req, int64_t now,
                     struct mf_certs *chain_out)
{
    mf_res rc;
    MF_ENSURE_REF(keys);
    MF_ENSURE_REF(req);
    MF_ENSURE_REF(chain_out);
    struct ca_signer *sg = NULL;
    struct mf_cert *leaf = NULL;
    struct mf_certs chain;
    mf_certs_init(&chain);
    uint64_t t0 = ca_metrics_clock();
    MF_TRY_OUT(ca_keys_signer(keys, &sg));
    struct mf_issue_req ir = {
        .id = req->id,
        .subject_key = req->pubkey,
        .now = now,
        .ttl = req->ttl,
        .dns_names = req->dns_names,
        .n_dns = req->n_dns,
        .is_ca = false,
    };
    MF_TRY_OUT(mf_x509_issue(&ir, sg->cert, sg->key, &leaf));
    MF_TRY_OUT(mf_certs_push(&chain, leaf));
    for (size_t i = 0; i < sg->chain.n; i++) {
        MF_TRY_OUT(mf_certs_push(&chain, sg->chain.v[i]));
    }
    char serial[MF_SERIAL_HEX_MAX], na[MF_RFC3339_LEN];
    mf_cert_serial_hex(leaf, serial);
    mf_time_format(mf_cert_not_after(leaf), na);
    const char *agent = req->agent ? req->agent : "-";
    if (req->log != NULL) {
        mf_log_event_to(req->log, MF_LOG_INFO, __func__, "issued", "spiffe_id", req->id->str,
                        "serial", serial, "not_after", na, "agent", agent, "ca_key", sg->id, NULL);
    } else {
        mf_log_event(MF_LOG_INFO, __func__, "issued", "spiffe_id", req->id->str, "serial", serial,
                     "not_after", na, "agent", agent, "ca_key", sg->id, NULL);
    }
    ca_metrics_issued(req, t0);
    *chain_out = chain;
    mf_certs_init(&chain);
    rc = MF_RES_OK;
out:
    if (!mf_ok(rc)) {
        ca_issue_log_denied(req->id ? req->id->str : NULL, req->agent, rc);
    }
    mf_cert_free(leaf);
    mf_certs_cleanup(&chain);
    ca_signer_release(sg);
    return rc;
}
