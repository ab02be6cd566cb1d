/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent_rotate: the renewal instant is drawn once inside
 * [45 %, 55 %] of the validity window and spreads over it; backoff grows,
 * is capped and jittered; nothing expired is servable. Driven on an
 * injected clock (mf_time_set_clock).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_rotate_draw_in_window_ok),
        cmocka_unit_test(test_agent_rotate_draw_custom_window_ok),
        cmocka_unit_test(test_agent_rotate_draw_bad_window_refused),
        cmocka_unit_test_teardown(test_agent_rotate_schedule_fake_clock_ok, teardown),
        cmocka_unit_test_teardown(test_agent_rotate_due_stable_over_checks_ok, teardown),
        cmocka_unit_test(test_agent_backoff_grows_capped_jittered_ok),
    };
    return cmocka_run_group_tests_name("agent_rotate", tests, NULL, NULL);
}
