/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent_attest: attesting this very test process, the digest
 * cache, the size limit, a dead pid, a "recycled" pid (connection older than
 * the process), a stamp whose executable is not the one running (exec
 * after connect), bytes written by another process, and the /proc stat
 * parser on hostile command names.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "agent/agent_attest.h"
#include "mf_test.h"

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

/* The stamp agent_attest_stamp would make for pid now; with_ticks false
 * skips the start-time check. */
static struct agent_conn_stamp stamp_of(pid_t pid, bool with_ticks)
{
    struct agent_conn_stamp st;
    ASSERT_OK(agent_attest_stamp_pid(pid, &st));
    assert_int_equal(st.pid, pid);
    if (!with_ticks) {
        st.ticks = 0;
    }
    return st;
}

static void test_agent_attest_pid_self_ok(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    char sel[4200];
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    struct agent_conn_stamp st = stamp_of(getpid(), true);
    assert_true(st.exe_ok);
    ASSERT_OK(agent_attest_pid(&a, getpid(), geteuid(), getegid(), &st, &w));
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
    ASSERT_OK(agent_attest_pid(&a, getpid(), geteuid(), getegid(), &st, &w2));
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
    struct agent_conn_stamp st = stamp_of(getpid(), false);
    ASSERT_OK(agent_attestor_init(&a, 16));
    ASSERT_OK(agent_attest_pid(&a, getpid(), geteuid(), getegid(), &st, &w));
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
    struct agent_conn_stamp st = stamp_of(getpid(), false);
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    ASSERT_ERR(agent_attest_pid(&a, getpid(), geteuid() + 1, getegid(), &st, &w), MF_ERR_AUTH);
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
    struct agent_conn_stamp st = stamp_of(pid, false);
    assert_false(st.exe_ok);
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    ASSERT_ERR(agent_attest_pid(&a, pid, geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
    agent_attestor_cleanup(&a);
}

/* A process younger than the connection cannot be the one that connected. */
static void test_agent_attest_pid_younger_than_connection_refused(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    struct agent_conn_stamp st = stamp_of(getpid(), false);
    st.ticks = 1;
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    ASSERT_ERR(agent_attest_pid(&a, getpid(), geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
    agent_attestor_cleanup(&a);
}

/* The stamp's executable must be the one the process runs now: any other
 * device or inode is refused with a detail that says why. */
static void test_agent_attest_pid_other_exe_stamp_refused(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    struct agent_conn_stamp st = stamp_of(getpid(), false);
    st.exe_ino++;
    ASSERT_ERR(agent_attest_pid(&a, getpid(), geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
    assert_non_null(strstr(mf_err_detail(), "the executable changed since the connection"));
    assert_null(w.sels);
    st = stamp_of(getpid(), false);
    st.exe_dev++;
    ASSERT_ERR(agent_attest_pid(&a, getpid(), geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
    /* not seen at accept, but visible now: cannot be compared, refused */
    st = stamp_of(getpid(), false);
    st.exe_ok = false;
    ASSERT_ERR(agent_attest_pid(&a, getpid(), geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
    /* a stamp of another pid, or of none */
    st = stamp_of(getpid(), false);
    st.pid = getpid() + 1;
    ASSERT_ERR(agent_attest_pid(&a, getpid(), geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
    agent_attestor_cleanup(&a);
}

/* The attack itself: a child is stamped (it "connects"), then execs
 * another binary; the process behind the pid now runs that binary and must
 * get nothing. A child that does not exec is still attested. */
static void test_agent_attest_pid_exec_after_stamp_refused(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    int go[2];
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    for (int do_exec = 0; do_exec < 2; do_exec++) {
        assert_int_equal(pipe(go), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char c;
            close(go[1]);
            (void)!read(go[0], &c, 1); /* stamped: go on */
            if (c == 'x') {
                execl("/bin/sleep", "sleep", "30", (char *)NULL);
            }
            pause();
            _exit(0);
        }
        close(go[0]);
        struct agent_conn_stamp st = stamp_of(pid, true);
        assert_true(st.exe_ok);
        assert_int_equal(write(go[1], do_exec ? "x" : "n", 1), 1);
        close(go[1]);
        if (do_exec) {
            /* wait (bounded) until the child runs the other binary */
            char exe[64], path[4096];
            snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
            bool execd = false;
            for (int i = 0; i < 5000 && !execd; i++) {
                ssize_t n = readlink(exe, path, sizeof(path) - 1);
                path[n > 0 ? n : 0] = '\0';
                execd = strstr(path, "sleep") != NULL;
                if (!execd) {
                    usleep(1000);
                }
            }
            assert_true(execd);
            ASSERT_ERR(agent_attest_pid(&a, pid, geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
            assert_non_null(strstr(mf_err_detail(), "the executable changed"));
            assert_null(w.sels);
        } else {
            ASSERT_OK(agent_attest_pid(&a, pid, geteuid(), getegid(), &st, &w));
            agent_workload_cleanup(&w);
        }
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
    }
    agent_attestor_cleanup(&a);
}

/* agent_attest_recv: bytes from the process that connected pass, bytes
 * from another process sharing the socket (a forked helper) do not. */
static void test_agent_attest_recv_other_writer_refused(void **state)
{
    (void)state;
    int sv[2];
    char buf[16];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct agent_conn_stamp st;
    /* off: refused, the first bytes would come without their writer */
    ASSERT_ERR(agent_attest_stamp(sv[0], &st), MF_ERR_IO);
    ASSERT_OK(agent_attest_listener(sv[0]));
    ASSERT_OK(agent_attest_stamp(sv[0], &st));
    assert_int_equal(st.pid, getpid());
    assert_int_equal(write(sv[1], "me", 2), 2);
    pid_t pid = fork();
    if (pid == 0) {
        _exit(write(sv[1], "helper", 6) == 6 ? 0 : 1);
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_int_equal(ws, 0);
    /* a peek sees our two bytes only: writers are never merged */
    assert_int_equal(agent_attest_recv(sv[0], &st, buf, sizeof(buf), MSG_PEEK), 2);
    assert_int_equal(agent_attest_recv(sv[0], &st, buf, sizeof(buf), 0), 2);
    assert_memory_equal(buf, "me", 2);
    errno = 0;
    assert_int_equal(agent_attest_recv(sv[0], &st, buf, sizeof(buf), MSG_DONTWAIT), -1);
    assert_int_equal(errno, EACCES);
    close(sv[1]);
    close(sv[0]);
}

static void test_agent_attest_parse_starttime_hostile_comm_ok(void **state)
{
    (void)state;
    const char *s = "42 (a) b) c (d) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12345 20\n";
    uint64_t v = 0;
    ASSERT_OK(agent_attest_parse_starttime(s, strlen(s), &v));
    assert_int_equal(v, 12345);
    const char *shortstat = "42 (x) S 1 2 3";
    ASSERT_ERR(agent_attest_parse_starttime(shortstat, strlen(shortstat), &v), MF_ERR_IO);
    const char *noparen = "42 x S 1 2 3";
    ASSERT_ERR(agent_attest_parse_starttime(noparen, strlen(noparen), &v), MF_ERR_IO);
    const char *bad = "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12a45 20\n";
    ASSERT_ERR(agent_attest_parse_starttime(bad, strlen(bad), &v), MF_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_attest_pid_self_ok),
        cmocka_unit_test(test_agent_attest_pid_size_limit_no_sha),
        cmocka_unit_test(test_agent_attest_pid_wrong_uid_refused),
        cmocka_unit_test(test_agent_attest_pid_dead_refused),
        cmocka_unit_test(test_agent_attest_pid_younger_than_connection_refused),
        cmocka_unit_test(test_agent_attest_pid_other_exe_stamp_refused),
        cmocka_unit_test(test_agent_attest_pid_exec_after_stamp_refused),
        cmocka_unit_test(test_agent_attest_recv_other_writer_refused),
        cmocka_unit_test(test_agent_attest_parse_starttime_hostile_comm_ok),
    };
    return cmocka_run_group_tests_name("agent_attest", tests, NULL, NULL);
}
