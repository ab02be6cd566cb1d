/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ca_recall: an agent record and an entry list come back
 * as they were put, deep-copied, while younger than the grace period and
 * never after; a newer answer replaces an older one; forgetting an agent,
 * every entry list or everything drops exactly that; many agents spread
 * over the table; bad arguments are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/core/mf_text.h"
#include "ca/ca_recall.h"
#include "mf_test.h"

#define GRACE_MS 1000

static struct ca_agent agent_rec(const char *id, bool banned)
{
    struct ca_agent a;
    memset(&a, 0, sizeof(a));
    snprintf(a.spiffe_id, sizeof(a.spiffe_id), "%s", id);
    snprintf(a.serial, sizeof(a.serial), "%s", "0a1b");
    a.expires_at = 1000;
    a.banned = banned;
    return a;
}

static void make_entry(struct ca_entry *e, const char *id, const char *spiffe_id,
                       const char *parent)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->spiffe_id = strdup(spiffe_id);
    e->parent_id = strdup(parent);
    e->selectors = calloc(1, sizeof(char *));
    assert_non_null(e->selectors);
    e->selectors[0] = strdup("unix:uid:1000");
    e->n_selectors = 1;
    e->ttl = 60;
    e->revision = 7;
    assert_non_null(e->spiffe_id);
    assert_non_null(e->parent_id);
    assert_non_null(e->selectors[0]);
}

static void test_ca_recall_agent_within_grace_only(void **state)
{
    (void)state;
    struct ca_recall *r = NULL;
    ASSERT_OK(ca_recall_new(GRACE_MS, &r));
    struct ca_agent a = agent_rec("spiffe://example.org/mayfly/agent/n1", false), got;
    int64_t age = -1;
    assert_false(ca_recall_agent(r, a.spiffe_id, 100, &got, &age));
    ASSERT_OK(ca_recall_put_agent(r, &a, 100));
    assert_true(ca_recall_agent(r, a.spiffe_id, 100 + GRACE_MS, &got, &age));
    assert_int_equal(age, GRACE_MS);
    assert_string_equal(got.spiffe_id, a.spiffe_id);
    assert_string_equal(got.serial, "0a1b");
    assert_false(got.banned);
    /* one millisecond past the grace: gone */
    assert_false(ca_recall_agent(r, a.spiffe_id, 101 + GRACE_MS, &got, &age));
    /* a newer answer replaces the older: now banned, and fresh again */
    struct ca_agent b = agent_rec(a.spiffe_id, true);
    ASSERT_OK(ca_recall_put_agent(r, &b, 2000));
    assert_int_equal(ca_recall_count(r), 1);
    assert_true(ca_recall_agent(r, a.spiffe_id, 2500, &got, NULL));
    assert_true(got.banned);
    ca_recall_free(r);
}

static void test_ca_recall_entries_deep_copied(void **state)
{
    (void)state;
    struct ca_recall *r = NULL;
    ASSERT_OK(ca_recall_new(GRACE_MS, &r));
    const char *parent = "spiffe://example.org/mayfly/agent/n1";
    struct ca_entry v[2];
    make_entry(&v[0], "e1", "spiffe://example.org/web", parent);
    make_entry(&v[1], "e2", "spiffe://example.org/db", parent);
    ASSERT_OK(ca_recall_put_entries(r, parent, v, 2, 0));
    /* the caller's copy goes away: the recall keeps its own */
    ca_entry_cleanup(&v[0]);
    ca_entry_cleanup(&v[1]);
    struct ca_entry *got = NULL;
    size_t n = 0;
    int64_t age = 0;
    bool found = false;
    ASSERT_OK(ca_recall_entries(r, parent, 500, &got, &n, &age, &found));
    assert_true(found);
    assert_int_equal(n, 2);
    assert_int_equal(age, 500);
    assert_string_equal(got[0].id, "e1");
    assert_string_equal(got[1].spiffe_id, "spiffe://example.org/db");
    assert_string_equal(got[1].selectors[0], "unix:uid:1000");
    assert_int_equal(got[0].revision, 7);
    ca_entries_free(got, n);
    /* an empty list is an answer too */
    ASSERT_OK(ca_recall_put_entries(r, "spiffe://example.org/mayfly/agent/n2", NULL, 0, 0));
    ASSERT_OK(
        ca_recall_entries(r, "spiffe://example.org/mayfly/agent/n2", 10, &got, &n, NULL, &found));
    assert_true(found);
    assert_int_equal(n, 0);
    ca_entries_free(got, n);
    /* past the grace, and for an unknown parent: not found */
    ASSERT_OK(ca_recall_entries(r, parent, GRACE_MS + 1, &got, &n, NULL, &found));
    assert_false(found);
    assert_null(got);
    ASSERT_OK(ca_recall_entries(r, "spiffe://example.org/other", 0, &got, &n, NULL, &found));
    assert_false(found);
    ca_recall_free(r);
}

static void test_ca_recall_forget_exact(void **state)
{
    (void)state;
    struct ca_recall *r = NULL;
    ASSERT_OK(ca_recall_new(GRACE_MS, &r));
    const char *n1 = "spiffe://example.org/mayfly/agent/n1";
    const char *n2 = "spiffe://example.org/mayfly/agent/n2";
    struct ca_agent a1 = agent_rec(n1, false), a2 = agent_rec(n2, false), got;
    struct ca_entry e;
    make_entry(&e, "e1", "spiffe://example.org/web", n1);
    ASSERT_OK(ca_recall_put_agent(r, &a1, 0));
    ASSERT_OK(ca_recall_put_agent(r, &a2, 0));
    ASSERT_OK(ca_recall_put_entries(r, n1, &e, 1, 0));
    ASSERT_OK(ca_recall_put_entries(r, n2, &e, 1, 0));
    ca_entry_cleanup(&e);
    assert_int_equal(ca_recall_count(r), 4);

    ca_recall_forget_agent(r, n1); /* a ban or an eviction of n1 */
    assert_false(ca_recall_agent(r, n1, 0, &got, NULL));
    assert_true(ca_recall_agent(r, n2, 0, &got, NULL));
    assert_int_equal(ca_recall_count(r), 3);
    ca_recall_forget_agent(r, "spiffe://example.org/mayfly/agent/none"); /* no-op */
    assert_int_equal(ca_recall_count(r), 3);

    ca_recall_forget_entries(r); /* an entry write */
    struct ca_entry *v = NULL;
    size_t n = 0;
    bool found = true;
    ASSERT_OK(ca_recall_entries(r, n1, 0, &v, &n, NULL, &found));
    assert_false(found);
    ASSERT_OK(ca_recall_entries(r, n2, 0, &v, &n, NULL, &found));
    assert_false(found);
    assert_true(ca_recall_agent(r, n2, 0, &got, NULL));
    assert_int_equal(ca_recall_count(r), 1);

    ca_recall_forget_all(r); /* a change heard from another server */
    assert_int_equal(ca_recall_count(r), 0);
    assert_false(ca_recall_agent(r, n2, 0, &got, NULL));
    ca_recall_free(r);
}

static void test_ca_recall_many_agents(void **state)
{
    (void)state;
    struct ca_recall *r = NULL;
    ASSERT_OK(ca_recall_new(GRACE_MS, &r));
    char id[128];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "spiffe://example.org/mayfly/agent/n%d", i);
        struct ca_agent a = agent_rec(id, i % 7 == 0);
        ASSERT_OK(ca_recall_put_agent(r, &a, i % 500));
    }
    assert_int_equal(ca_recall_count(r), 20000);
    for (int i = 0; i < 20000; i += 97) {
        struct ca_agent got;
        snprintf(id, sizeof(id), "spiffe://example.org/mayfly/agent/n%d", i);
        assert_true(ca_recall_agent(r, id, 500, &got, NULL));
        assert_string_equal(got.spiffe_id, id);
        assert_int_equal(got.banned, i % 7 == 0);
    }
    ca_recall_free(r);
}

static void test_ca_recall_bad_args_refused(void **state)
{
    (void)state;
    struct ca_recall *r = NULL;
    ASSERT_ERR(ca_recall_new(0, &r), MF_ERR_USAGE_ARG);
    ASSERT_ERR(ca_recall_new(-5, &r), MF_ERR_USAGE_ARG);
    assert_null(r);
    ASSERT_OK(ca_recall_new(GRACE_MS, &r));
    ASSERT_ERR(ca_recall_put_entries(r, "p", NULL, 3, 0), MF_ERR_USAGE_ARG);
    struct ca_agent got;
    assert_false(ca_recall_agent(NULL, "x", 0, &got, NULL));
    assert_false(ca_recall_agent(r, NULL, 0, &got, NULL));
    ca_recall_forget_all(NULL);
    ca_recall_forget_entries(NULL);
    ca_recall_forget_agent(NULL, "x");
    assert_int_equal(ca_recall_count(NULL), 0);
    ca_recall_free(r);
    ca_recall_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_recall_agent_within_grace_only),
        cmocka_unit_test(test_ca_recall_entries_deep_copied),
        cmocka_unit_test(test_ca_recall_forget_exact),
        cmocka_unit_test(test_ca_recall_many_agents),
        cmocka_unit_test(test_ca_recall_bad_args_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
