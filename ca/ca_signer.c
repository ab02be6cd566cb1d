/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_signer: the signer pool (see ca_signer.h).
 *
 * A batch lives on its submitter's stack for as long as ca_sign_pool_run
 * waits. Batches with jobs not yet started form a ring: a signer takes the
 * next job of the batch at the head and moves that batch to the tail, so
 * the batches in the ring advance in turn. pending counts a batch's jobs
 * without a result; the submitter sleeps on its batch's condition until it
 * is zero. One mutex guards the ring and every batch's counters.
 */
#include "ca/ca_signer.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/pki/mf_signctx.h"

struct batch {
    struct ca_sign_job *jobs;
    size_t n;
    size_t next;      /* the first job not started */
    size_t pending;   /* jobs without a result */
    size_t cancelled; /* jobs failed by ca_sign_pool_stop */
    pthread_cond_t done;
    struct batch *link; /* in the ring, while next < n */
};

struct signer {
    struct ca_sign_pool *pool;
    struct mf_signctx *ctx;
    pthread_t th;
    bool started;
};

struct ca_sign_pool {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a batch was queued, or stopping was set */
    struct batch *head, *tail;
    bool stopping;
    unsigned n;
    struct signer *signers;
};

static const char stop_msg[] = "the CA is shutting down (signer pool stopped)";

static void ring_push(struct ca_sign_pool *p, struct batch *b)
{
    b->link = NULL;
    if (p->tail != NULL) {
        p->tail->link = b;
    } else {
        p->head = b;
    }
    p->tail = b;
}

static struct batch *ring_pop(struct ca_sign_pool *p)
{
    struct batch *b = p->head;
    if (b != NULL) {
        p->head = b->link;
        if (p->head == NULL) {
            p->tail = NULL;
        }
        b->link = NULL;
    }
    return b;
}

static void *signer_main(void *arg)
{
    struct signer *s = arg;
    struct ca_sign_pool *p = s->pool;
    mf_signctx_bind(s->ctx);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->head == NULL) {
            pthread_cond_wait(&p->work, &p->mu);
        }
        if (p->stopping) {
            break;
        }
        struct batch *b = ring_pop(p);
        struct ca_sign_job *j = &b->jobs[b->next++];
        if (b->next < b->n) {
            ring_push(p, b); /* its next job after the other batches' */
        }
        pthread_mutex_unlock(&p->mu);

        mf_err_clear();
        j->res = j->fn(j->arg);
        j->detail[0] = '\0';
        if (!mf_ok(j->res)) {
            snprintf(j->detail, sizeof(j->detail), "%s", mf_err_detail());
        }

        pthread_mutex_lock(&p->mu);
        if (--b->pending == 0) {
            pthread_cond_signal(&b->done);
        }
    }
    pthread_mutex_unlock(&p->mu);
    mf_signctx_bind(NULL);
    return NULL;
}

/* see ca_signer.h */
mf_res ca_sign_pool_new(unsigned threads, struct ca_sign_pool **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    if (threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores < 1 ? 1 : cores > CA_SIGNERS_MAX ? CA_SIGNERS_MAX : (unsigned)cores;
    }
    MF_ENSURE_MSG(threads <= CA_SIGNERS_MAX, MF_ERR_USAGE_ARG,
                  "signer threads must be 1 to %d, not %u", CA_SIGNERS_MAX, threads);
    struct ca_sign_pool *p = calloc(1, sizeof(*p));
    MF_TRY_PTR(p, MF_ERR_NOMEM);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    p->signers = calloc(threads, sizeof(*p->signers));
    mf_res rc = MF_RES_OK;
    if (p->signers == NULL) {
        rc = MF_RAISE(MF_ERR_NOMEM);
        goto out;
    }
    p->n = threads;
    for (unsigned i = 0; i < threads; i++) {
        p->signers[i].pool = p;
        MF_TRY_OUT(mf_signctx_new(&p->signers[i].ctx));
    }
    /* signals go to the threads that wait for them, never to a signer */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < threads && mf_ok(rc); i++) {
        int e = pthread_create(&p->signers[i].th, NULL, signer_main, &p->signers[i]);
        if (e != 0) {
            rc = MF_RAISE_MSG(MF_ERR_INTERNAL, "cannot start signer thread %u: %s", i + 1,
                              strerror(e));
        } else {
            p->signers[i].started = true;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
    if (!mf_ok(rc)) {
        ca_sign_pool_free(p);
        return rc;
    }
    *out = p;
    return MF_RES_OK;
}

/* see ca_signer.h */
unsigned ca_sign_pool_threads(const struct ca_sign_pool *p)
{
    return p == NULL ? 0 : p->n;
}

/* see ca_signer.h */
uint64_t ca_sign_pool_draws(const struct ca_sign_pool *p)
{
    uint64_t n = 0;
    for (unsigned i = 0; p != NULL && i < p->n; i++) {
        n += mf_signctx_uses(p->signers[i].ctx);
    }
    return n;
}

static void cancel_job(struct ca_sign_job *j)
{
    j->res = (mf_res){MF_ERR_STATE};
    snprintf(j->detail, sizeof(j->detail), "%s", stop_msg);
}

/* see ca_signer.h */
mf_res ca_sign_pool_run(struct ca_sign_pool *p, struct ca_sign_job *jobs, size_t n)
{
    MF_ENSURE_REF(p);
    MF_ENSURE(jobs != NULL || n == 0, MF_ERR_USAGE_NULL);
    for (size_t i = 0; i < n; i++) {
        MF_ENSURE(jobs[i].fn != NULL, MF_ERR_USAGE_NULL);
    }
    if (n == 0) {
        return MF_RES_OK;
    }
    struct batch b = {.jobs = jobs, .n = n, .pending = n};
    pthread_cond_init(&b.done, NULL);
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        for (size_t i = 0; i < n; i++) {
            cancel_job(&jobs[i]);
        }
        b.cancelled = n;
        b.pending = 0;
    } else {
        ring_push(p, &b);
        if (n == 1) {
            pthread_cond_signal(&p->work);
        } else {
            pthread_cond_broadcast(&p->work);
        }
    }
    while (b.pending > 0) {
        pthread_cond_wait(&b.done, &p->mu);
    }
    size_t cancelled = b.cancelled;
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&b.done);
    MF_ENSURE_MSG(cancelled == 0, MF_ERR_STATE, "%s", stop_msg);
    return MF_RES_OK;
}

/* see ca_signer.h */
mf_res ca_sign_job_result(const struct ca_sign_job *j)
{
    if (mf_ok(j->res)) {
        return j->res;
    }
    return j->detail[0] != '\0' ? MF_RAISE_MSG(j->res.err, "%s", j->detail) : MF_RAISE(j->res.err);
}

/* see ca_signer.h */
void ca_sign_pool_stop(struct ca_sign_pool *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->stopping) { /* stopped, or being stopped by another thread */
        pthread_mutex_unlock(&p->mu);
        return;
    }
    p->stopping = true;
    /* the jobs no signer has taken fail now; running ones finish */
    struct batch *b;
    while ((b = ring_pop(p)) != NULL) {
        for (; b->next < b->n; b->next++) {
            cancel_job(&b->jobs[b->next]);
            b->cancelled++;
            b->pending--;
        }
        if (b->pending == 0) {
            pthread_cond_signal(&b->done);
        }
    }
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++) {
        if (p->signers[i].started) {
            pthread_join(p->signers[i].th, NULL);
            p->signers[i].started = false;
        }
    }
}

/* see ca_signer.h */
void ca_sign_pool_free(struct ca_sign_pool *p)
{
    if (p == NULL) {
        return;
    }
    ca_sign_pool_stop(p);
    for (unsigned i = 0; p->signers != NULL && i < p->n; i++) {
        mf_signctx_free(p->signers[i].ctx);
    }
    free(p->signers);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
