/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the CA's signer pool (ca_signer): many connection threads
 * submitting batches at once get every result right and at its own index,
 * signed on the signer threads with their own DRBGs; one job's error stays
 * its own, with its detail; stopping with work queued fails the queued jobs,
 * lets the running one finish and wakes every submitter.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/pki/mf_x509.h"
#include "ca/ca_signer.h"
#include "mf_test.h"

#define SUBMITTERS 6
#define BATCHES    4
#define BATCH      12
#define POOL       2

static struct mf_key *g_key;
static struct mf_pubkey *g_pub;

static int setup(void **state)
{
    (void)state;
    if (!mf_ok(mf_key_generate(MF_KEY_EC_P256, &g_key)) || !mf_ok(mf_key_public(g_key, &g_pub))) {
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mf_pubkey_free(g_pub);
    mf_key_free(g_key);
    return 0;
}

/* One signature over "<submitter>/<batch>/<index>"; every 5th index fails
 * on purpose, with a detail naming it. */
struct sig_job {
    int who, batch, idx;
    pthread_t ran_on;
    struct mf_buf sig;
};

static void msg_of(const struct sig_job *s, char *out, size_t cap)
{
    snprintf(out, cap, "%d/%d/%d", s->who, s->batch, s->idx);
}

static mf_res sign_one(void *arg)
{
    struct sig_job *s = arg;
    s->ran_on = pthread_self();
    if (s->idx % 5 == 4) {
        MF_BAIL_MSG(MF_ERR_POLICY_DENIED, "job %d/%d/%d refused", s->who, s->batch, s->idx);
    }
    char m[64];
    msg_of(s, m, sizeof(m));
    return mf_key_sign_jose(g_key, (const uint8_t *)m, strlen(m), &s->sig);
}

struct submitter {
    struct ca_sign_pool *pool;
    int who;
    pthread_t th;
    pthread_t signers_seen[BATCHES * BATCH];
    int ok, failed, wrong;
};

static void *submit_main(void *arg)
{
    struct submitter *sb = arg;
    for (int b = 0; b < BATCHES; b++) {
        struct sig_job sj[BATCH];
        struct ca_sign_job jobs[BATCH];
        memset(jobs, 0, sizeof(jobs));
        for (int i = 0; i < BATCH; i++) {
            sj[i] = (struct sig_job){.who = sb->who, .batch = b, .idx = i};
            mf_buf_init(&sj[i].sig, 256, 0);
            jobs[i].fn = sign_one;
            jobs[i].arg = &sj[i];
        }
        if (!mf_ok(ca_sign_pool_run(sb->pool, jobs, BATCH))) {
            sb->wrong += BATCH;
        }
        for (int i = 0; i < BATCH; i++) {
            char m[64], want[96];
            msg_of(&sj[i], m, sizeof(m));
            sb->signers_seen[b * BATCH + i] = sj[i].ran_on;
            if (pthread_equal(sj[i].ran_on, pthread_self())) {
                sb->wrong++; /* ran on the connection's thread */
            }
            if (i % 5 == 4) {
                snprintf(want, sizeof(want), "job %s refused", m);
                mf_res r = ca_sign_job_result(&jobs[i]);
                if (r.err == MF_ERR_POLICY_DENIED && strcmp(mf_err_detail(), want) == 0) {
                    sb->failed++;
                } else {
                    sb->wrong++;
                }
            } else if (mf_ok(jobs[i].res) &&
                       mf_ok(mf_pubkey_verify_jose(g_pub, (const uint8_t *)m, strlen(m),
                                                   sj[i].sig.data, sj[i].sig.len))) {
                sb->ok++; /* this job's signature, at this job's index */
            } else {
                sb->wrong++;
            }
            mf_buf_cleanup(&sj[i].sig);
        }
    }
    return NULL;
}

static void test_ca_signer_concurrent_submitters(void **state)
{
    (void)state;
    struct ca_sign_pool *p = NULL;
    ASSERT_OK(ca_sign_pool_new(POOL, &p));
    assert_int_equal(ca_sign_pool_threads(p), POOL);
    struct submitter sb[SUBMITTERS];
    memset(sb, 0, sizeof(sb));
    for (int i = 0; i < SUBMITTERS; i++) {
        sb[i].pool = p;
        sb[i].who = i;
        assert_int_equal(pthread_create(&sb[i].th, NULL, submit_main, &sb[i]), 0);
    }
    int ok = 0, failed = 0, wrong = 0;
    pthread_t seen[POOL + 1];
    int n_seen = 0;
    for (int i = 0; i < SUBMITTERS; i++) {
        pthread_join(sb[i].th, NULL);
        ok += sb[i].ok;
        failed += sb[i].failed;
        wrong += sb[i].wrong;
        for (int k = 0; k < BATCHES * BATCH; k++) {
            bool known = false;
            for (int s = 0; s < n_seen; s++) {
                known = known || pthread_equal(seen[s], sb[i].signers_seen[k]);
            }
            if (!known) {
                assert_true(n_seen < POOL); /* only the pool's threads sign */
                seen[n_seen++] = sb[i].signers_seen[k];
            }
        }
    }
    int total = SUBMITTERS * BATCHES * BATCH, refused = SUBMITTERS * BATCHES * (BATCH / 5);
    assert_int_equal(wrong, 0);
    assert_int_equal(failed, refused);
    assert_int_equal(ok, total - refused);
    ca_sign_pool_stop(p);
    /* each signature drew from a signer's own DRBG, none made a new one */
    assert_int_equal(ca_sign_pool_draws(p), (uint64_t)(total - refused));
    ca_sign_pool_free(p);
}

/* ---- stopping with work queued ------------------------------------------- */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, open;
    atomic_int ran;
};

static mf_res gated(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->started = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&g->ran, 1);
    return MF_RES_OK;
}

static mf_res counted(void *arg)
{
    struct gate *g = arg;
    atomic_fetch_add(&g->ran, 1);
    return MF_RES_OK;
}

struct run_args {
    struct ca_sign_pool *pool;
    struct ca_sign_job *jobs;
    size_t n;
    mf_res res;
};

static void *run_main(void *arg)
{
    struct run_args *a = arg;
    a->res = ca_sign_pool_run(a->pool, a->jobs, a->n);
    return NULL;
}

static void *stop_main(void *arg)
{
    ca_sign_pool_stop(arg);
    return NULL;
}

static void test_ca_signer_stop_with_queued_work(void **state)
{
    (void)state;
    struct ca_sign_pool *p = NULL;
    ASSERT_OK(ca_sign_pool_new(1, &p));
    struct gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct ca_sign_job jobs[5];
    memset(jobs, 0, sizeof(jobs));
    jobs[0] = (struct ca_sign_job){.fn = gated, .arg = &g};
    for (int i = 1; i < 5; i++) {
        jobs[i] = (struct ca_sign_job){.fn = counted, .arg = &g};
    }
    /* a submitter whose first job holds the only signer */
    struct run_args a = {.pool = p, .jobs = jobs, .n = 5};
    pthread_t sub, stopper;
    assert_int_equal(pthread_create(&sub, NULL, run_main, &a), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.started) {
        pthread_cond_wait(&g.cv, &g.mu);
    }
    pthread_mutex_unlock(&g.mu);
    /* stop while it runs: the stopper waits for it */
    assert_int_equal(pthread_create(&stopper, NULL, stop_main, p), 0);
    /* a late submitter is refused (queued and then failed by the stop, or
     * refused at once): either way it returns, and then the pool is
     * stopping */
    struct ca_sign_job late = {.fn = counted, .arg = &g};
    ASSERT_ERR(ca_sign_pool_run(p, &late, 1), MF_ERR_STATE);
    assert_int_equal(late.res.err, MF_ERR_STATE);
    /* let the running job finish */
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(sub, NULL);
    pthread_join(stopper, NULL);
    assert_int_equal(a.res.err, MF_ERR_STATE);
    ASSERT_OK(jobs[0].res); /* it ran to its end */
    for (int i = 1; i < 5; i++) {
        assert_int_equal(jobs[i].res.err, MF_ERR_STATE);
        assert_non_null(strstr(jobs[i].detail, "shutting down"));
        ASSERT_ERR(ca_sign_job_result(&jobs[i]), MF_ERR_STATE);
        assert_non_null(strstr(mf_err_detail(), "shutting down"));
    }
    assert_int_equal(atomic_load(&g.ran), 1);
    /* after the stop: refused at once */
    ASSERT_ERR(ca_sign_pool_run(p, &late, 1), MF_ERR_STATE);
    ca_sign_pool_stop(p); /* idempotent */
    ca_sign_pool_free(p);
}

static void test_ca_signer_arguments(void **state)
{
    (void)state;
    struct ca_sign_pool *p = NULL;
    ASSERT_ERR(ca_sign_pool_new(CA_SIGNERS_MAX + 1, &p), MF_ERR_USAGE_ARG);
    assert_null(p);
    ASSERT_OK(ca_sign_pool_new(0, &p)); /* one per core */
    assert_true(ca_sign_pool_threads(p) >= 1);
    ASSERT_OK(ca_sign_pool_run(p, NULL, 0));
    struct ca_sign_job none = {0};
    ASSERT_ERR(ca_sign_pool_run(p, &none, 1), MF_ERR_USAGE_NULL);
    ca_sign_pool_free(p);
    ca_sign_pool_free(NULL);
    ca_sign_pool_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_signer_concurrent_submitters),
        cmocka_unit_test(test_ca_signer_stop_with_queued_work),
        cmocka_unit_test(test_ca_signer_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
