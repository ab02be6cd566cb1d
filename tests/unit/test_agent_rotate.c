/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent_rotate: the renewal instant is drawn once inside
 * [45 %, 55 %] of the validity window and spreads over it; backoff grows,
 * is capped and jittered; nothing expired is servable. Driven on an
 * injected clock (mf_time_set_clock). And the pool that makes a signing
 * batch's keys and checks its results in parallel.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_rotate.h"
#include "api/core/mf_time.h"
#include "mf_test.h"

static int64_t fake_now;
static int64_t fake_clock(void)
{
    return fake_now;
}

static int teardown(void **state)
{
    (void)state;
    mf_time_set_clock(NULL);
    return 0;
}

static void test_agent_rotate_draw_in_window_ok(void **state)
{
    (void)state;
    struct agent_rotate_cfg cfg;
    agent_rotate_cfg_default(&cfg);
    const int64_t nb = 1700000000, na = nb + 3600;
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t at = 0;
        ASSERT_OK(agent_rotate_draw(&cfg, nb, na, &at));
        assert_true(at >= nb * 1000 + 3600 * 450);
        assert_true(at <= nb * 1000 + 3600 * 550);
        lo = at < lo ? at : lo;
        hi = at > hi ? at : hi;
    }
    /* uniform over a 360 s window: 2000 draws cover most of it */
    assert_true(hi - lo > 300 * 1000);
}

static void test_agent_rotate_draw_custom_window_ok(void **state)
{
    (void)state;
    struct agent_rotate_cfg cfg;
    agent_rotate_cfg_default(&cfg);
    cfg.lo_pct = 50;
    cfg.hi_pct = 50;
    int64_t at = 0;
    ASSERT_OK(agent_rotate_draw(&cfg, 1000, 1020, &at));
    assert_int_equal(at, 1010 * 1000);
}

static void test_agent_rotate_draw_bad_window_refused(void **state)
{
    (void)state;
    struct agent_rotate_cfg cfg;
    agent_rotate_cfg_default(&cfg);
    int64_t at = 1;
    ASSERT_ERR(agent_rotate_draw(&cfg, 2000, 2000, &at), MF_ERR_USAGE_ARG);
    assert_int_equal(at, 0);
    cfg.lo_pct = 60;
    cfg.hi_pct = 40;
    ASSERT_ERR(agent_rotate_draw(&cfg, 1000, 2000, &at), MF_ERR_USAGE_ARG);
    cfg.lo_pct = 0;
    cfg.hi_pct = 40;
    ASSERT_ERR(agent_rotate_cfg_check(&cfg), MF_ERR_USAGE_ARG);
    cfg.lo_pct = 40;
    cfg.hi_pct = 100;
    ASSERT_ERR(agent_rotate_cfg_check(&cfg), MF_ERR_USAGE_ARG);
}

/* The schedule on an injected clock: a 20 s SVID is not due before 45 %,
 * due after 55 %, and is renewed while still servable; served never after
 * NotAfter. */
static void test_agent_rotate_schedule_fake_clock_ok(void **state)
{
    (void)state;
    struct agent_rotate_cfg cfg;
    agent_rotate_cfg_default(&cfg);
    mf_time_set_clock(fake_clock);
    const int64_t nb = 1800000000, na = nb + 20;
    int64_t at = 0;
    ASSERT_OK(agent_rotate_draw(&cfg, nb, na, &at));
    fake_now = nb + 8; /* 40 % */
    assert_false(agent_rotate_due(at));
    assert_true(agent_svid_servable(na));
    fake_now = nb + 12; /* 60 % */
    assert_true(agent_rotate_due(at));
    assert_true(agent_svid_servable(na));
    fake_now = na - 1;
    assert_true(agent_svid_servable(na));
    fake_now = na;
    assert_false(agent_svid_servable(na)); /* expired: never served */
    fake_now = na + 100;
    assert_false(agent_svid_servable(na));
}

/* Drawn once: the same SVID keeps its instant however often it is asked. */
static void test_agent_rotate_due_stable_over_checks_ok(void **state)
{
    (void)state;
    struct agent_rotate_cfg cfg;
    agent_rotate_cfg_default(&cfg);
    mf_time_set_clock(fake_clock);
    int64_t at = 0;
    ASSERT_OK(agent_rotate_draw(&cfg, 0 + 1000, 1000 + 3600, &at));
    bool was = false;
    for (fake_now = 1000; fake_now < 1000 + 3600; fake_now += 5) {
        bool due = agent_rotate_due(at);
        assert_true(!was || due); /* once due, it stays due */
        assert_int_equal(due, fake_now * 1000 >= at);
        was = due;
    }
}

static void test_agent_backoff_grows_capped_jittered_ok(void **state)
{
    (void)state;
    struct agent_rotate_cfg cfg;
    agent_rotate_cfg_default(&cfg);
    cfg.backoff_base_ms = 100;
    cfg.backoff_cap_ms = 5000;
    for (unsigned a = 0; a < 40; a++) {
        int64_t want = 100;
        for (unsigned i = 0; i < a && want < 5000; i++) {
            want *= 2;
        }
        want = want > 5000 ? 5000 : want;
        int64_t d = 0;
        ASSERT_OK(agent_backoff_delay(&cfg, a, &d));
        assert_true(d >= want / 2 && d <= want);
    }
    /* jitter: not all the same */
    int64_t first = 0, d = 0;
    bool differ = false;
    ASSERT_OK(agent_backoff_delay(&cfg, 10, &first));
    for (int i = 0; i < 50 && !differ; i++) {
        ASSERT_OK(agent_backoff_delay(&cfg, 10, &d));
        differ = d != first;
    }
    assert_true(differ);
}

/* ---- the pool of a signing batch ----------------------------------------- */

#define POOL_N 1000

struct pool_probe {
    _Atomic int calls[POOL_N];
    _Atomic int inside;     /* calls running now */
    _Atomic int overlapped; /* a call saw another one running */
    pthread_t caller;
    _Atomic int off_caller; /* calls made on another thread than the caller */
};

/* Counts the call; the first calls wait (bounded) for a second one to be
 * inside at the same time, which only a second thread can do. */
static void probe(void *arg, size_t i)
{
    struct pool_probe *p = arg;
    atomic_fetch_add(&p->calls[i], 1);
    if (!pthread_equal(pthread_self(), p->caller)) {
        atomic_fetch_add(&p->off_caller, 1);
    }
    int now = atomic_fetch_add(&p->inside, 1) + 1;
    if (now > 1) {
        atomic_store(&p->overlapped, 1);
    }
    for (int k = 0; k < 5000 && atomic_load(&p->overlapped) == 0 && i < 8; k++) {
        usleep(1000);
    }
    atomic_fetch_sub(&p->inside, 1);
}

/* Every index exactly once, on more than one thread at a time, job after
 * job; with no helper thread, everything in the caller. */
static void test_agent_pool_runs_each_index_once_in_parallel(void **state)
{
    (void)state;
    struct agent_pool pool;
    struct pool_probe *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->caller = pthread_self();
    ASSERT_OK(agent_pool_init(&pool, 3));
    assert_int_equal(pool.n_threads, 3);
    agent_pool_run(&pool, POOL_N, probe, p);
    for (size_t i = 0; i < POOL_N; i++) {
        assert_int_equal(atomic_load(&p->calls[i]), 1);
    }
    assert_int_equal(atomic_load(&p->overlapped), 1);
    assert_true(atomic_load(&p->off_caller) > 0);
    assert_int_equal(atomic_load(&p->inside), 0);
    /* many small jobs back to back (the pipeline's two steps per batch) */
    for (int job = 0; job < 200; job++) {
        size_t n = (size_t)(job % 7);
        for (size_t i = 0; i < n; i++) {
            atomic_store(&p->calls[i], 0);
        }
        agent_pool_run(&pool, n, probe, p);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(atomic_load(&p->calls[i]), 1);
        }
    }
    agent_pool_cleanup(&pool);

    /* no helpers: the caller does it all */
    memset(p, 0, sizeof(*p));
    p->caller = pthread_self();
    ASSERT_OK(agent_pool_init(&pool, 0));
    agent_pool_run(&pool, 50, probe, p);
    for (size_t i = 0; i < 50; i++) {
        assert_int_equal(atomic_load(&p->calls[i]), 1);
    }
    assert_int_equal(atomic_load(&p->off_caller), 0);
    agent_pool_cleanup(&pool);
    /* AGENT_POOL_AUTO: one fewer than the CPUs */
    ASSERT_OK(agent_pool_init(&pool, AGENT_POOL_AUTO));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(pool.n_threads, cpus > 1 ? (unsigned)(cpus - 1) : 0u);
    agent_pool_cleanup(&pool);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_rotate_draw_in_window_ok),
        cmocka_unit_test(test_agent_rotate_draw_custom_window_ok),
        cmocka_unit_test(test_agent_rotate_draw_bad_window_refused),
        cmocka_unit_test_teardown(test_agent_rotate_schedule_fake_clock_ok, teardown),
        cmocka_unit_test_teardown(test_agent_rotate_due_stable_over_checks_ok, teardown),
        cmocka_unit_test(test_agent_backoff_grows_capped_jittered_ok),
        cmocka_unit_test(test_agent_pool_runs_each_index_once_in_parallel),
    };
    return cmocka_run_group_tests_name("agent_rotate", tests, NULL, NULL);
}
