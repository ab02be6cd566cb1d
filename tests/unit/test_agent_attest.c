/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent_attest: attesting this very test process, the digest
 * cache, the size limit, a dead pid, a "recycled" pid (connection older than
 * the process), and the /proc stat parser on hostile command names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "agent/agent_attest.h"

static bool has(const struct agent_workload *w, const char *text)
{
    struct mf_selector s = {0};
    if (!mf_ok(mf_selector_parse(text, strlen(text), &s))) {
        return false;
    }
    bool found = false;
    for (size_t i = 0; i < w->n_sels && !found; i++) {
        found = mf_selector_cmp(&s, &w->sels[i]) == 0;
    }
    mf_selector_cleanup(&s);
    return found;
}

static void test_agent_attest_pid_self_ok(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    char sel[4200];
    assert_true(mf_ok(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT)));
    assert_true(mf_ok(agent_attest_pid(&a, getpid(), geteuid(), getegid(),
                                       agent_attest_boot_ticks(), &w)));
    snprintf(sel, sizeof(sel), "unix:uid:%u", (unsigned)geteuid());
    assert_true(has(&w, sel));
    snprintf(sel, sizeof(sel), "unix:gid:%u", (unsigned)getegid());
    assert_true(has(&w, sel));
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    snprintf(sel, sizeof(sel), "unix:path:%s", exe);
    assert_true(has(&w, sel));
    bool sha = false;
    for (size_t i = 0; i < w.n_sels; i++) {
        sha = sha || w.sels[i].kind == MF_SEL_UNIX_SHA256;
    }
    assert_true(sha);
    assert_int_equal(a.hashes, 1);

    /* second attestation: digest served from the cache */
    struct agent_workload w2;
    assert_true(mf_ok(agent_attest_pid(&a, getpid(), geteuid(), getegid(), 0, &w2)));
    assert_int_equal(a.hashes, 1);
    assert_int_equal(w2.n_sels, w.n_sels);
    agent_workload_cleanup(&w2);
    agent_workload_cleanup(&w);
    agent_attestor_cleanup(&a);
}

static void test_agent_attest_pid_size_limit_no_sha(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    assert_true(mf_ok(agent_attestor_init(&a, 16)));
    assert_true(mf_ok(agent_attest_pid(&a, getpid(), geteuid(), getegid(), 0, &w)));
    for (size_t i = 0; i < w.n_sels; i++) {
        assert_int_not_equal(w.sels[i].kind, MF_SEL_UNIX_SHA256);
    }
    agent_workload_cleanup(&w);
    agent_attestor_cleanup(&a);
}

static void test_agent_attest_pid_wrong_uid_refused(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    assert_true(mf_ok(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT)));
    assert_int_equal(agent_attest_pid(&a, getpid(), geteuid() + 1, getegid(), 0, &w).err,
                     MF_ERR_AUTH);
    assert_null(w.sels);
    agent_attestor_cleanup(&a);
}

static void test_agent_attest_pid_dead_refused(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    pid_t pid = fork();
    if (pid == 0) {
        _exit(0);
    }
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_true(mf_ok(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT)));
    assert_int_equal(agent_attest_pid(&a, pid, geteuid(), getegid(), 0, &w).err, MF_ERR_AUTH);
    agent_attestor_cleanup(&a);
}

/* A process younger than the connection cannot be the one that connected. */
static void test_agent_attest_pid_younger_than_connection_refused(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    assert_true(mf_ok(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT)));
    assert_int_equal(agent_attest_pid(&a, getpid(), geteuid(), getegid(), 1, &w).err,
                     MF_ERR_AUTH);
    agent_attestor_cleanup(&a);
}

static void test_agent_attest_parse_starttime_hostile_comm_ok(void **state)
{
    (void)state;
    const char *s = "42 (a) b) c (d) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12345 20\n";
    uint64_t v = 0;
    assert_true(mf_ok(agent_attest_parse_starttime(s, strlen(s), &v)));
    assert_int_equal(v, 12345);
    const char *shortstat = "42 (x) S 1 2 3";
    assert_int_equal(agent_attest_parse_starttime(shortstat, strlen(shortstat), &v).err,
                     MF_ERR_IO);
    const char *noparen = "42 x S 1 2 3";
    assert_int_equal(agent_attest_parse_starttime(noparen, strlen(noparen), &v).err, MF_ERR_IO);
    const char *bad = "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12a45 20\n";
    assert_int_equal(agent_attest_parse_starttime(bad, strlen(bad), &v).err, MF_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_attest_pid_self_ok),
        cmocka_unit_test(test_agent_attest_pid_size_limit_no_sha),
        cmocka_unit_test(test_agent_attest_pid_wrong_uid_refused),
        cmocka_unit_test(test_agent_attest_pid_dead_refused),
        cmocka_unit_test(test_agent_attest_pid_younger_than_connection_refused),
        cmocka_unit_test(test_agent_attest_parse_starttime_hostile_comm_ok),
    };
    return cmocka_run_group_tests_name("agent_attest", tests, NULL, NULL);
}
