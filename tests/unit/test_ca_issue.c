/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for admission control (ca_issue_admit): the per-agent token
 * bucket (429) and the signing capacity (503), both with Retry-After.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ca/ca_issue.h"
#include "mf_test.h"

static void test_ca_issue_admit_rate_limited(void **state)
{
    (void)state;
    struct ca_issuer *is = NULL;
    ASSERT_OK(ca_issuer_new(4, 2, 3, &is));
    struct ca_admit why;
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++) { /* the burst */
        ASSERT_OK(ca_issue_admit(is, "agent-a", t, &why));
        ca_issue_release(is);
    }
    mf_res r = ca_issue_admit(is, "agent-a", t, &why);
    assert_int_equal(r.err, MF_ERR_POLICY_LIMIT);
    assert_int_equal(why.status, 429);
    assert_true(why.retry_after >= 1);
    /* another agent has its own bucket */
    ASSERT_OK(ca_issue_admit(is, "agent-b", t, &why));
    ca_issue_release(is);
    /* refill: 2 per second, so half a second buys one request */
    ASSERT_OK(ca_issue_admit(is, "agent-a", t + 500, &why));
    ca_issue_release(is);
    ASSERT_ERR(ca_issue_admit(is, "agent-a", t + 500, &why), MF_ERR_POLICY_LIMIT);
    ca_issuer_free(is);
}

/* SIGHUP's new limits apply to a running issuer at once. */
static void test_ca_issuer_set_limits_applies(void **state)
{
    (void)state;
    struct ca_issuer *is = NULL;
    struct ca_admit why;
    int64_t t = 1000000;
    ASSERT_OK(ca_issuer_new(4, 1, 100, &is));
    ASSERT_OK(ca_issue_admit(is, "agent-a", t, &why)); /* a bucket of 100 */
    ca_issue_release(is);
    ASSERT_OK(ca_issuer_set_limits(is, 1, 1, 1)); /* bucket cut to 1, one slot */
    ASSERT_OK(ca_issue_admit(is, "agent-a", t, &why));
    ASSERT_ERR(ca_issue_admit(is, "agent-b", t, &why), MF_ERR_POLICY_LIMIT);
    assert_int_equal(why.status, 503); /* the one slot is taken */
    ca_issue_release(is);
    ASSERT_ERR(ca_issue_admit(is, "agent-a", t, &why), MF_ERR_POLICY_LIMIT);
    assert_int_equal(why.status, 429); /* its bucket is empty */
    ASSERT_ERR(ca_issuer_set_limits(is, 0, 1, 1), MF_ERR_USAGE_ARG);
    ca_issuer_free(is);
}

static void test_ca_issue_admit_capacity_busy(void **state)
{
    (void)state;
    struct ca_issuer *is = NULL;
    ASSERT_OK(ca_issuer_new(1, 1000, 1000, &is));
    struct ca_admit why;
    ASSERT_OK(ca_issue_admit(is, "a", 0, &why));
    /* the only slot is taken: the second caller waits briefly, then 503 */
    mf_res r = ca_issue_admit(is, "b", 0, &why);
    assert_int_equal(r.err, MF_ERR_POLICY_LIMIT);
    assert_int_equal(why.status, 503);
    assert_int_equal(why.retry_after, 1);
    ca_issue_release(is);
    ASSERT_OK(ca_issue_admit(is, "b", 0, &why));
    ca_issue_release(is);
    ca_issuer_free(is);
}

static void test_ca_issue_admit_bad_args_refused(void **state)
{
    (void)state;
    struct ca_issuer *is = NULL;
    assert_false(mf_ok(ca_issuer_new(0, 1, 1, &is)));
    assert_false(mf_ok(ca_issuer_new(1, 0, 1, &is)));
    ca_issuer_free(NULL);
    ca_issue_release(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_issue_admit_rate_limited),
        cmocka_unit_test(test_ca_issue_admit_capacity_busy),
        cmocka_unit_test(test_ca_issuer_set_limits_applies),
        cmocka_unit_test(test_ca_issue_admit_bad_args_refused),
    };
    return cmocka_run_group_tests_name("ca_issue", tests, NULL, NULL);
}
