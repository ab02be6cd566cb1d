/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent_client's list of CA servers: parsing --server,
 * the random first draw (agents spread over the servers), and failover
 * (another server whose pause is over, the failed one paused with backoff,
 * the soonest back when all are paused). No network: the client never
 * connects here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent_client.h"
#include "api/core/mf_time.h"
#include "mf_test.h"

#define TD "example.org"

static void test_agent_client_init_one_server_ok(void **state)
{
    (void)state;
    struct agent_client cl;
    ASSERT_OK(agent_client_init(&cl, "127.0.0.1:8081", TD, NULL));
    assert_int_equal(cl.n_servers, 1);
    assert_string_equal(cl.server, "127.0.0.1:8081");
    /* one server: nothing to move to */
    agent_client_fail_over(&cl, "test");
    assert_string_equal(cl.server, "127.0.0.1:8081");
    assert_int_equal(cl.servers[0].fails, 0);
    agent_client_cleanup(&cl);
}

static void test_agent_client_init_list_ok(void **state)
{
    (void)state;
    struct agent_client cl;
    ASSERT_OK(agent_client_init(&cl, "ca1:8081, ca2:8081 ,[::1]:8081", TD, NULL));
    assert_int_equal(cl.n_servers, 3);
    assert_string_equal(cl.servers[0].addr, "ca1:8081");
    assert_string_equal(cl.servers[1].addr, "ca2:8081");
    assert_string_equal(cl.servers[2].addr, "[::1]:8081");
    assert_string_equal(cl.server, cl.servers[cl.cur].addr);
    agent_client_cleanup(&cl);
}

static void test_agent_client_init_bad_lists_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ",",
        "ca1:8081,",
        ",ca1:8081",
        "ca1:8081,,ca2:8081",
        " , ",
        "ca1:8081,ca1:8081",
        "a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1,j:1,k:1,l:1,m:1,n:1,o:1,p:1,q:1", /* 17 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct agent_client cl;
        mf_res r = agent_client_init(&cl, bad[i], TD, NULL);
        assert_int_equal(r.err, MF_ERR_USAGE_ARG);
        agent_client_cleanup(&cl);
    }
    char big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct agent_client cl;
    assert_int_equal(agent_client_init(&cl, big, TD, NULL).err, MF_ERR_USAGE_ARG);
    agent_client_cleanup(&cl);
    /* 16 is the most */
    ASSERT_OK(agent_client_init(
        &cl, "a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1,j:1,k:1,l:1,m:1,n:1,o:1,p:1", TD, NULL));
    assert_int_equal(cl.n_servers, AGENT_SERVERS_MAX);
    agent_client_cleanup(&cl);
}

/* Agents spread: over many starts, every server is drawn. */
static void test_agent_client_first_draw_spreads(void **state)
{
    (void)state;
    unsigned seen[3] = {0};
    for (int i = 0; i < 300; i++) {
        struct agent_client cl;
        ASSERT_OK(agent_client_init(&cl, "a:1,b:1,c:1", TD, NULL));
        assert_true(cl.cur < 3);
        seen[cl.cur]++;
        agent_client_cleanup(&cl);
    }
    for (int i = 0; i < 3; i++) {
        assert_true(seen[i] > 30); /* about 100 each */
    }
}

static void test_agent_client_fail_over_moves_and_pauses(void **state)
{
    (void)state;
    struct agent_client cl;
    ASSERT_OK(agent_client_init(&cl, "a:1,b:1,c:1", TD, NULL));
    size_t first = cl.cur;
    int64_t t0 = mf_mono_ms();
    agent_client_fail_over(&cl, "test");
    size_t second = cl.cur;
    assert_int_not_equal(second, first);
    assert_string_equal(cl.server, cl.servers[second].addr);
    assert_int_equal(cl.servers[first].fails, 1);
    /* the first pause: 1 s, drawn in its upper half */
    assert_true(cl.servers[first].down_until_ms >= t0 + 500);
    assert_true(cl.servers[first].down_until_ms <= mf_mono_ms() + 1000);

    /* the one server left whose pause is over */
    agent_client_fail_over(&cl, "test");
    size_t third = cl.cur;
    assert_int_not_equal(third, first);
    assert_int_not_equal(third, second);

    /* all paused: the soonest back */
    agent_client_fail_over(&cl, "test");
    size_t next = cl.cur;
    assert_int_not_equal(next, third);
    size_t other = next == first ? second : first;
    assert_true(cl.servers[next].down_until_ms <= cl.servers[other].down_until_ms);

    /* a server that keeps failing pauses longer each time (capped) */
    for (int i = 0; i < 20; i++) {
        cl.cur = 0;
        memcpy(cl.server, cl.servers[0].addr, sizeof(cl.server));
        agent_client_fail_over(&cl, "test");
    }
    int64_t pause = cl.servers[0].down_until_ms - mf_mono_ms();
    assert_true(pause >= 25000 && pause <= 60000);
    agent_client_cleanup(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_client_init_one_server_ok),
        cmocka_unit_test(test_agent_client_init_list_ok),
        cmocka_unit_test(test_agent_client_init_bad_lists_refused),
        cmocka_unit_test(test_agent_client_first_draw_spreads),
        cmocka_unit_test(test_agent_client_fail_over_moves_and_pauses),
    };
    return cmocka_run_group_tests_name("agent_client", tests, NULL, NULL);
}
