/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_rotate: renewal schedule and retry backoff. See agent_rotate.h.
 */
#include "agent/agent_rotate.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"

/* see agent_rotate.h */
void agent_rotate_cfg_default(struct agent_rotate_cfg *cfg)
{
    cfg->lo_pct = AGENT_ROTATE_LO_DEFAULT;
    cfg->hi_pct = AGENT_ROTATE_HI_DEFAULT;
    cfg->backoff_base_ms = AGENT_BACKOFF_BASE_MS_DEFAULT;
    cfg->backoff_cap_ms = AGENT_BACKOFF_CAP_MS_DEFAULT;
}

/* see agent_rotate.h */
mf_res agent_rotate_cfg_check(const struct agent_rotate_cfg *cfg)
{
    MF_ENSURE_REF(cfg);
    MF_ENSURE_MSG(cfg->lo_pct >= 1 && cfg->hi_pct <= 99 && cfg->lo_pct <= cfg->hi_pct,
                  MF_ERR_USAGE_ARG, "renewal window must satisfy 1 <= lo <= hi <= 99 (%%)");
    MF_ENSURE_MSG(cfg->backoff_base_ms > 0 && cfg->backoff_cap_ms >= cfg->backoff_base_ms,
                  MF_ERR_USAGE_ARG, "backoff needs 0 < base <= cap");
    return MF_RES_OK;
}

/* see agent_rotate.h */
mf_res agent_rotate_draw(const struct agent_rotate_cfg *cfg, int64_t not_before, int64_t not_after,
                         int64_t *renew_at_ms)
{
    MF_ENSURE_REF(renew_at_ms);
    *renew_at_ms = 0;
    MF_TRY(agent_rotate_cfg_check(cfg));
    MF_ENSURE_MSG(not_after > not_before && not_before >= 0, MF_ERR_USAGE_ARG,
                  "empty validity window");
    /* The CA backdates NotBefore by 10 s (clock-skew cushion), so for a
     * fresh SVID the window counts from now: with NotBefore a 6 s SVID had
     * its 45-55 % instant already behind it on arrival and was re-signed
     * in a loop (tests/integration/fault_agent_kill9.sh saw some 60
     * signings a second). An SVID that is not current (tests) keeps
     * NotBefore. */
    int64_t now = mf_now();
    if (now > not_before && now < not_after) {
        not_before = now;
    }
    /* in ms so that short test TTLs (seconds) still get a real spread; the
     * window is at most 10 years, so none of this can overflow int64 */
    int64_t life_ms = (not_after - not_before) * 1000;
    uint64_t lo = (uint64_t)(life_ms / 100 * cfg->lo_pct + life_ms % 100 * cfg->lo_pct / 100);
    uint64_t hi = (uint64_t)(life_ms / 100 * cfg->hi_pct + life_ms % 100 * cfg->hi_pct / 100);
    uint64_t off = 0;
    MF_TRY(mf_random_range(lo, hi, &off));
    *renew_at_ms = not_before * 1000 + (int64_t)off;
    return MF_RES_OK;
}

/* see agent_rotate.h */
bool agent_rotate_due(int64_t renew_at_ms)
{
    return mf_now_ms() >= renew_at_ms;
}

/* see agent_rotate.h */
bool agent_svid_servable(int64_t not_after)
{
    return mf_now_ms() < not_after * 1000;
}

/* see agent_rotate.h */
mf_res agent_backoff_delay(const struct agent_rotate_cfg *cfg, unsigned attempt, int64_t *delay_ms)
{
    MF_ENSURE_REF(delay_ms);
    *delay_ms = 0;
    MF_TRY(agent_rotate_cfg_check(cfg));
    int64_t d = cfg->backoff_base_ms;
    for (unsigned i = 0; i < attempt && d < cfg->backoff_cap_ms; i++) {
        d *= 2;
    }
    if (d > cfg->backoff_cap_ms) {
        d = cfg->backoff_cap_ms;
    }
    uint64_t j = 0;
    MF_TRY(mf_random_range((uint64_t)(d / 2), (uint64_t)d, &j));
    *delay_ms = (int64_t)j;
    return MF_RES_OK;
}

/* ---- the pool ------------------------------------------------------------ */

/* Takes indices of the current job until none is left. Called with p->mu
 * held; returns with it held. */
static void pool_work(struct agent_pool *p)
{
    while (p->next < p->n) {
        size_t i = p->next++;
        pthread_mutex_unlock(&p->mu);
        p->fn(p->arg, i);
        pthread_mutex_lock(&p->mu);
    }
}

static void *pool_main(void *arg)
{
    struct agent_pool *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->job == seen) {
            pthread_cond_wait(&p->work, &p->mu);
        }
        if (p->stop) {
            break;
        }
        seen = p->job;
        p->busy++;
        pool_work(p);
        p->busy--;
        pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* see agent_rotate.h */
mf_res agent_pool_init(struct agent_pool *p, unsigned threads)
{
    MF_ENSURE_REF(p);
    memset(p, 0, sizeof(*p));
    if (threads == AGENT_POOL_AUTO) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 1 ? (unsigned)(cpus - 1) : 0;
    }
    if (threads > AGENT_POOL_MAX) {
        threads = AGENT_POOL_MAX;
    }
    MF_ENSURE(pthread_mutex_init(&p->mu, NULL) == 0, MF_ERR_INTERNAL);
    if (pthread_cond_init(&p->work, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        MF_BAIL(MF_ERR_INTERNAL);
    }
    if (pthread_cond_init(&p->idle, NULL) != 0) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->mu);
        MF_BAIL(MF_ERR_INTERNAL);
    }
    if (threads > 0) {
        p->threads = calloc(threads, sizeof(*p->threads));
        if (p->threads == NULL) {
            agent_pool_cleanup(p);
            MF_BAIL(MF_ERR_NOMEM);
        }
    }
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_main, p) != 0) {
            break; /* fewer helpers: the caller does the rest */
        }
        p->n_threads++;
    }
    return MF_RES_OK;
}

/* see agent_rotate.h */
void agent_pool_start(struct agent_pool *p, size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->next = 0;
    if (n > 0) {
        p->job++;
        pthread_cond_broadcast(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
}

/* see agent_rotate.h */
void agent_pool_run(struct agent_pool *p, size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
    if (n == 0) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->next = 0;
    p->job++;
    if (p->n_threads > 0 && n > 1) {
        pthread_cond_broadcast(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
    agent_pool_wait(p);
}

/* see agent_rotate.h */
void agent_pool_wait(struct agent_pool *p)
{
    pthread_mutex_lock(&p->mu);
    pool_work(p);
    /* every index is taken: wait for the ones still running elsewhere */
    while (p->busy > 0) {
        pthread_cond_wait(&p->idle, &p->mu);
    }
    p->fn = NULL;
    p->arg = NULL;
    p->n = 0;
    p->next = 0;
    pthread_mutex_unlock(&p->mu);
}

/* see agent_rotate.h */
void agent_pool_cleanup(struct agent_pool *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    free(p->threads);
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    memset(p, 0, sizeof(*p));
}
