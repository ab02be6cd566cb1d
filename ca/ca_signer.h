/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_signer: the CA's fixed pool of signer threads.
 *
 * Verifying CSRs and signing leaves is nearly all of the CA's CPU. Instead
 * of doing it on each connection's thread (one set of wolfSSL tables and a
 * new DRBG per signature on every one of them), the CA runs it on a fixed
 * pool of threads, as many as there are cores (--signers). Each signer
 * thread binds its own mf_signctx for its whole life: one seeded DRBG for
 * every signature it makes, and wolfSSL's precomputed point tables kept
 * between certificates (their memory is bounded by the pool size, not by
 * the number of connections).
 *
 * A connection thread hands a batch of jobs to ca_sign_pool_run and waits.
 * Batches from several connections are pipelined: the signers take one job
 * at a time from the batches in turn (round robin), so a small batch does
 * not wait behind a large one and no signer idles while any job is queued.
 * Each job's result (an error of one job does not affect the others) is in
 * the job itself, at its own index, so the answer keeps the batch's order.
 *
 * Shutdown: ca_sign_pool_stop fails every job still queued (MF_ERR_STATE),
 * lets running jobs finish, wakes their submitters and joins the threads;
 * ca_sign_pool_run after that fails at once. ca_sign_pool_free after no
 * thread can call ca_sign_pool_run any more (the servers are stopped).
 */
#ifndef CA_SIGNER_H
#define CA_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"

#define CA_SIGNERS_MAX 256

struct ca_sign_pool;

/* One unit of work: fn(arg) runs on a signer thread. Its mf_res goes to
 * res and, when it failed, that thread's error detail to detail (the
 * detail of an error is per thread: ca_sign_job_result raises it again on
 * the caller's). */
struct ca_sign_job {
    mf_res (*fn)(void *arg);
    void *arg;
    mf_res res;
    char detail[256];
};

/* Starts threads signer threads (1..CA_SIGNERS_MAX; 0 = one per online
 * core). */
MF_WUR mf_res ca_sign_pool_new(unsigned threads, struct ca_sign_pool **out);

/* The number of signer threads. */
unsigned ca_sign_pool_threads(const struct ca_sign_pool *p);

/* Runs jobs[0..n) on the pool and returns when every one of them has a
 * result. MF_RES_OK once every job has run (each may still have failed:
 * see its res); MF_ERR_STATE when the pool stopped first (the jobs that had
 * not started have res MF_ERR_STATE). Thread-safe. */
MF_WUR mf_res ca_sign_pool_run(struct ca_sign_pool *p, struct ca_sign_job *jobs, size_t n);

/* How many signatures and key generations the signers drew from their own
 * DRBGs (mf_signctx_uses, summed): read after ca_sign_pool_stop. */
uint64_t ca_sign_pool_draws(const struct ca_sign_pool *p);

/* A job's result, raised again (with its detail) on the calling thread. */
mf_res ca_sign_job_result(const struct ca_sign_job *j);

/* Stops the pool (see the top). Idempotent; NULL is a no-op. */
void ca_sign_pool_stop(struct ca_sign_pool *p);

/* Stops the pool if needed and frees it. NULL is a no-op. */
void ca_sign_pool_free(struct ca_sign_pool *p);

#endif /* CA_SIGNER_H */
