/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent_admit: one uid is held to its share, other uids and
 * root still get in, the reserve stays for root and light users however
 * many uids flood, counts given back make room again, and connections a
 * library still holds count against the hard limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/agent_admit.h"
#include "mf_test.h"

static void take_n(struct agent_admit *a, uid_t uid, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(agent_admit_take(a, uid, 0), AGENT_ADMIT_OK);
    }
}

static void test_agent_admit_init_bad_share_refused(void **state)
{
    (void)state;
    struct agent_admit a;
    assert_false(mf_ok(agent_admit_init(&a, 8, 0)));
    assert_false(mf_ok(agent_admit_init(&a, 8, 9)));
    assert_false(mf_ok(agent_admit_init(&a, 0, 1)));
    ASSERT_OK(agent_admit_init(&a, 8, 8));
    agent_admit_cleanup(&a);
}

static void test_agent_admit_share_capped_others_served_ok(void **state)
{
    (void)state;
    struct agent_admit a;
    ASSERT_OK(agent_admit_init(&a, 128, 32));
    take_n(&a, 1002, 32);
    assert_int_equal(agent_admit_take(&a, 1002, 0), AGENT_ADMIT_SHARE); /* cap + 1 */
    assert_int_equal(agent_admit_of(&a, 1002), 32);
    assert_int_equal(agent_admit_take(&a, 1001, 0), AGENT_ADMIT_OK);
    assert_int_equal(agent_admit_take(&a, 0, 0), AGENT_ADMIT_OK);
    assert_int_equal(agent_admit_total(&a), 34);
    /* a count given back makes room for the same uid again */
    agent_admit_release(&a, 1002);
    assert_int_equal(agent_admit_take(&a, 1002, 0), AGENT_ADMIT_OK);
    assert_int_equal(agent_admit_take(&a, 1002, 0), AGENT_ADMIT_SHARE);
    agent_admit_cleanup(&a);
}

static void test_agent_admit_reserve_kept_for_light_users_ok(void **state)
{
    (void)state;
    struct agent_admit a;
    ASSERT_OK(agent_admit_init(&a, 128, 32));
    /* four uids flood: together they reach the reserve (112) and stop */
    take_n(&a, 2001, 32);
    take_n(&a, 2002, 32);
    take_n(&a, 2003, 32);
    take_n(&a, 2004, 16);
    assert_int_equal(agent_admit_total(&a), 112);
    assert_int_equal(agent_admit_take(&a, 2004, 0), AGENT_ADMIT_RESERVE);
    /* a uid holding nothing gets two slots of the reserve, not three */
    take_n(&a, 1001, AGENT_ADMIT_RESERVE_PER_UID);
    assert_int_equal(agent_admit_take(&a, 1001, 0), AGENT_ADMIT_RESERVE);
    /* root fills the rest; then nobody, root included, gets in */
    take_n(&a, 0, 128 - 112 - AGENT_ADMIT_RESERVE_PER_UID);
    assert_int_equal(agent_admit_take(&a, 0, 0), AGENT_ADMIT_FULL);
    assert_int_equal(agent_admit_take(&a, 1005, 0), AGENT_ADMIT_FULL);
    agent_admit_cleanup(&a);
}

static void test_agent_admit_root_exempt_from_share_ok(void **state)
{
    (void)state;
    struct agent_admit a;
    ASSERT_OK(agent_admit_init(&a, 16, 1));
    take_n(&a, 0, 16);
    assert_int_equal(agent_admit_take(&a, 0, 0), AGENT_ADMIT_FULL);
    agent_admit_cleanup(&a);
}

static void test_agent_admit_extra_counts_against_limit_ok(void **state)
{
    (void)state;
    struct agent_admit a;
    ASSERT_OK(agent_admit_init(&a, 16, 16));
    take_n(&a, 1001, 10);
    /* 6 closed connections not yet freed elsewhere: full */
    assert_int_equal(agent_admit_take(&a, 1001, 6), AGENT_ADMIT_FULL);
    assert_int_equal(agent_admit_take(&a, 1001, UINT32_MAX), AGENT_ADMIT_FULL);
    /* 5 of them: in the reserve (14 of 16), where uid 1001 holds too many */
    assert_int_equal(agent_admit_take(&a, 1001, 5), AGENT_ADMIT_RESERVE);
    assert_int_equal(agent_admit_take(&a, 1001, 3), AGENT_ADMIT_OK);
    agent_admit_cleanup(&a);
}

static void test_agent_admit_rows_reused_many_uids_ok(void **state)
{
    (void)state;
    struct agent_admit a;
    ASSERT_OK(agent_admit_init(&a, 8, 2));
    /* far more distinct uids over time than rows: each row is freed when
     * its uid's last connection goes */
    for (uid_t u = 1000; u < 1100; u++) {
        assert_int_equal(agent_admit_take(&a, u, 0), AGENT_ADMIT_OK);
        agent_admit_release(&a, u);
    }
    assert_int_equal(agent_admit_total(&a), 0);
    for (uid_t u = 1; u <= 7; u++) {
        assert_int_equal(agent_admit_take(&a, u, 0), AGENT_ADMIT_OK);
    }
    /* the reserve (8 / 8 = 1 slot) admits a uid holding none */
    assert_int_equal(agent_admit_take(&a, 99, 0), AGENT_ADMIT_OK);
    assert_int_equal(agent_admit_take(&a, 100, 0), AGENT_ADMIT_FULL);
    /* releasing a uid that holds nothing changes nothing */
    agent_admit_release(&a, 4242);
    assert_int_equal(agent_admit_total(&a), 8);
    agent_admit_cleanup(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_admit_init_bad_share_refused),
        cmocka_unit_test(test_agent_admit_share_capped_others_served_ok),
        cmocka_unit_test(test_agent_admit_reserve_kept_for_light_users_ok),
        cmocka_unit_test(test_agent_admit_root_exempt_from_share_ok),
        cmocka_unit_test(test_agent_admit_extra_counts_against_limit_ok),
        cmocka_unit_test(test_agent_admit_rows_reused_many_uids_ok),
    };
    return cmocka_run_group_tests_name("agent_admit", tests, NULL, NULL);
}
