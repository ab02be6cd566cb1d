/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the CA key rotation schedule (ca_keys_plan) on an injected
 * clock, and for the TTL-fit rule checked at start.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ca/ca_keys.h"

#define T0   1000000
#define LIFE 6000 /* divisible by 6: prepare at +3000, activate at +5000 */

static struct ca_key_rec rec(const char *id, enum ca_key_state s, int64_t nb)
{
    struct ca_key_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    r.state = s;
    r.not_before = nb;
    r.not_after = nb + LIFE;
    return r;
}

static void test_ca_keys_plan_empty_creates_active(void **state)
{
    (void)state;
    struct ca_plan p;
    ca_keys_plan(T0, NULL, 0, &p);
    assert_true(p.create_active);
    assert_false(p.prepare);
    assert_int_equal(p.activate, -1);
    assert_int_equal(p.retire, -1);
}

static void test_ca_keys_plan_before_half_nothing(void **state)
{
    (void)state;
    struct ca_key_rec r[1] = {rec("a", CA_KEY_ACTIVE, T0)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE / 2 - 1, r, 1, &p);
    assert_false(p.create_active);
    assert_false(p.prepare);
    assert_int_equal(p.activate, -1);
    assert_int_equal(p.n_drop, 0);
    assert_int_equal(p.next_event, T0 + LIFE / 2);
}

static void test_ca_keys_plan_at_half_prepares(void **state)
{
    (void)state;
    struct ca_key_rec r[1] = {rec("a", CA_KEY_ACTIVE, T0)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE / 2, r, 1, &p);
    assert_true(p.prepare);
    assert_false(p.create_active);
    assert_int_equal(p.activate, -1);
}

static void test_ca_keys_plan_prepared_waits_until_five_sixths(void **state)
{
    (void)state;
    struct ca_key_rec r[2] = {rec("a", CA_KEY_ACTIVE, T0),
                              rec("b", CA_KEY_PREPARED, T0 + LIFE / 2)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE * 5 / 6 - 1, r, 2, &p);
    assert_false(p.prepare);
    assert_int_equal(p.activate, -1);
    assert_int_equal(p.next_event, T0 + LIFE * 5 / 6);
    ca_keys_plan(T0 + LIFE * 5 / 6, r, 2, &p);
    assert_int_equal(p.activate, 1);
    assert_int_equal(p.retire, 0);
    assert_false(p.prepare);
}

static void test_ca_keys_plan_retired_dropped_at_not_after(void **state)
{
    (void)state;
    struct ca_key_rec r[2] = {rec("a", CA_KEY_RETIRED, T0), rec("b", CA_KEY_ACTIVE, T0 + LIFE / 2)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE - 1, r, 2, &p);
    assert_int_equal(p.n_drop, 0);
    assert_int_equal(p.next_event, T0 + LIFE);
    ca_keys_plan(T0 + LIFE, r, 2, &p);
    assert_int_equal(p.n_drop, 1);
    assert_int_equal(p.drop[0], 0);
}

/* A full cycle on the injected clock: apply each plan to the records the
 * way ca_keys_tick does and check the sequence of states. */
static void test_ca_keys_plan_full_cycle_ok(void **state)
{
    (void)state;
    struct ca_key_rec r[CA_KEYS_MAX];
    size_t n = 0;
    int created = 0, activated = 0, dropped = 0;
    char next = 'a';
    for (int64_t t = T0; t < T0 + 4 * LIFE; t += 10) {
        struct ca_plan p;
        ca_keys_plan(t, r, n, &p);
        if (p.retire >= 0) {
            r[p.retire].state = CA_KEY_RETIRED;
        }
        if (p.activate >= 0) {
            r[p.activate].state = CA_KEY_ACTIVE;
            activated++;
        }
        for (size_t d = p.n_drop; d > 0; d--) {
            int i = p.drop[d - 1];
            memmove(&r[i], &r[i + 1], (n - (size_t)i - 1) * sizeof(r[0]));
            n--;
            dropped++;
        }
        if (p.create_active || p.prepare) {
            char id[2] = {next++, 0};
            r[n++] = rec(id, p.create_active ? CA_KEY_ACTIVE : CA_KEY_PREPARED, t);
            created++;
        }
        /* invariants: exactly one active key, never more than three keys */
        int active = 0;
        for (size_t i = 0; i < n; i++) {
            active += r[i].state == CA_KEY_ACTIVE;
            assert_true(t < r[i].not_after || r[i].state == CA_KEY_RETIRED);
        }
        assert_int_equal(active, 1);
        assert_true(n <= 3);
    }
    /* keys roll every LIFE/2 once the first prepare happened */
    assert_true(created >= 8);
    assert_true(activated >= 6);
    assert_true(dropped >= 5);
}

static void test_ca_keys_plan_outage_recovers(void **state)
{
    (void)state;
    /* both keys expired while the CA was down: make a new active key,
     * retire the old one, drop the stale prepared one */
    struct ca_key_rec r[2] = {rec("a", CA_KEY_ACTIVE, T0), rec("b", CA_KEY_PREPARED, T0 + 3000)};
    struct ca_plan p;
    ca_keys_plan(T0 + 10 * LIFE, r, 2, &p);
    assert_true(p.create_active);
    assert_int_equal(p.retire, 0);
    assert_int_equal(p.n_drop, 1);
    assert_int_equal(p.drop[0], 1);
}

static void test_ca_keys_plan_expired_active_promotes_prepared(void **state)
{
    (void)state;
    struct ca_key_rec r[2] = {rec("a", CA_KEY_ACTIVE, T0), rec("b", CA_KEY_PREPARED, T0 + 3000)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE, r, 2, &p);
    assert_false(p.create_active);
    assert_int_equal(p.activate, 1);
    assert_int_equal(p.retire, 0);
}

static void test_ca_keys_ttl_fits_rule(void **state)
{
    (void)state;
    char why[512];
    assert_true(ca_keys_ttl_fits(3600, 86400, why, sizeof(why)));
    assert_true(ca_keys_ttl_fits(14400, 86400, why, sizeof(why)));  /* exactly 1/6 */
    assert_false(ca_keys_ttl_fits(14401, 86400, why, sizeof(why))); /* 1/6 + 1 */
    assert_false(ca_keys_ttl_fits(3600, 7200, why, sizeof(why)));
    assert_non_null(strstr(why, "--svid-ttl 1h"));
    assert_non_null(strstr(why, "--ca-ttl 2h"));
    assert_non_null(strstr(why, "lower --svid-ttl to 20m or raise --ca-ttl to 6h"));
    assert_false(ca_keys_ttl_fits(0, 86400, why, sizeof(why)));
    assert_int_equal(ca_keys_max_leaf_ttl(86400), 14400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_keys_plan_empty_creates_active),
        cmocka_unit_test(test_ca_keys_plan_before_half_nothing),
        cmocka_unit_test(test_ca_keys_plan_at_half_prepares),
        cmocka_unit_test(test_ca_keys_plan_prepared_waits_until_five_sixths),
        cmocka_unit_test(test_ca_keys_plan_retired_dropped_at_not_after),
        cmocka_unit_test(test_ca_keys_plan_full_cycle_ok),
        cmocka_unit_test(test_ca_keys_plan_outage_recovers),
        cmocka_unit_test(test_ca_keys_plan_expired_active_promotes_prepared),
        cmocka_unit_test(test_ca_keys_ttl_fits_rule),
    };
    return cmocka_run_group_tests_name("ca_keys", tests, NULL, NULL);
}
