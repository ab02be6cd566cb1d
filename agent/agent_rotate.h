/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_rotate: when to renew an SVID, and how long to wait after a failure.
 *
 * Pure functions of their arguments and the clock hook (mf_now_ms), so that
 * tests drive them on an injected clock (mf_time_set_clock).
 *
 * Renewal instant: drawn ONCE per SVID, uniformly in [lo_pct, hi_pct] of the
 * certificate's validity window, 45-55 % by default. The window starts at
 * NotBefore, or at the moment of drawing when that lies inside the validity
 * (the CA backdates NotBefore by 10 s, which would otherwise put the instant
 * of a short-lived SVID behind it on arrival).
 * Drawing once (and not on every check, as SPIRE does) spreads the renewals
 * of many SVIDs issued together evenly over the window instead of bunching
 * them near its start.
 *
 * Backoff: capped exponential with "equal jitter": the n-th retry waits a
 * uniform time in [d/2, d] where d = min(cap, base * 2^n). The floor of d/2
 * keeps a failing CA from being hammered; the jitter keeps many agents
 * from retrying in lock step after a partition heals.
 *
 * Servability: an SVID is served only while now < NotAfter; a retry is
 * never scheduled later than the point where it would be pointless.
 */
#ifndef AGENT_ROTATE_H
#define AGENT_ROTATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"

#define AGENT_ROTATE_LO_DEFAULT       45
#define AGENT_ROTATE_HI_DEFAULT       55
#define AGENT_BACKOFF_BASE_MS_DEFAULT 500
#define AGENT_BACKOFF_CAP_MS_DEFAULT  30000

struct agent_rotate_cfg {
    unsigned lo_pct;         /* 1..99, <= hi_pct */
    unsigned hi_pct;         /* 1..99 */
    int64_t backoff_base_ms; /* > 0 */
    int64_t backoff_cap_ms;  /* >= base */
};

/* Fills cfg with the defaults above. */
void agent_rotate_cfg_default(struct agent_rotate_cfg *cfg);

/* Refuses percentages outside 1..99 or lo > hi, and base/cap out of order. */
MF_WUR mf_res agent_rotate_cfg_check(const struct agent_rotate_cfg *cfg);

/* Draws the renewal instant (ms since the epoch) of an SVID valid from
 * not_before to not_after (seconds since the epoch). */
MF_WUR mf_res agent_rotate_draw(const struct agent_rotate_cfg *cfg, int64_t not_before,
                                int64_t not_after, int64_t *renew_at_ms);

/* True once the renewal instant has come (by the clock hook). */
bool agent_rotate_due(int64_t renew_at_ms);

/* True while an SVID that expires at not_after (seconds) may be served. */
bool agent_svid_servable(int64_t not_after);

/* The wait (ms) before retry number attempt (0 = first retry). */
MF_WUR mf_res agent_backoff_delay(const struct agent_rotate_cfg *cfg, unsigned attempt,
                                  int64_t *delay_ms);

/*
 * A fixed pool of threads for the work of a renewal batch that does not
 * touch shared state: key generation, CSRs, and parsing and verifying what
 * the CA returned. agent_pool_run(p, n, fn, arg) calls fn(arg, i) once for
 * every i in [0, n), spread over the pool's threads and the caller's own,
 * and returns when every call has returned; fn must be safe to run
 * concurrently with itself for different i. A pool of 0 threads runs
 * everything in the caller. One caller at a time.
 *
 * agent_pool_start posts the same job and returns at once, so that the
 * pool works while the caller does something else (waits for the CA);
 * agent_pool_wait then takes whatever indices are left and returns when
 * every call has returned. One job at a time: start, then wait, before the
 * next run or start.
 */
struct agent_pool {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was posted, or stop */
    pthread_cond_t idle; /* a thread finished its share */
    pthread_t *threads;
    unsigned n_threads;
    void (*fn)(void *arg, size_t i);
    void *arg;
    size_t n, next; /* indices of the job, the next one to take */
    unsigned busy;  /* threads inside the job */
    uint64_t job;   /* bumped per job */
    bool stop;
};

/* Starts threads threads (AGENT_POOL_AUTO: one fewer than the online CPUs,
 * since the caller works too; at most AGENT_POOL_MAX). */
#define AGENT_POOL_AUTO UINT32_MAX
#define AGENT_POOL_MAX  64u
MF_WUR mf_res agent_pool_init(struct agent_pool *p, unsigned threads);
void agent_pool_run(struct agent_pool *p, size_t n, void (*fn)(void *arg, size_t i), void *arg);
void agent_pool_start(struct agent_pool *p, size_t n, void (*fn)(void *arg, size_t i), void *arg);
void agent_pool_wait(struct agent_pool *p);
void agent_pool_cleanup(struct agent_pool *p); /* joins the threads */

#endif /* AGENT_ROTATE_H */
