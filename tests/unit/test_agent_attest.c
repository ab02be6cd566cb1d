/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent_attest: attesting this very test process, the digest
 * cache, the size limit, a dead pid, a "recycled" pid (connection older than
 * the process), a stamp whose executable is not the one running (exec
 * after connect), bytes written by another process, the per-connection
 * cache (hit, exec, executable rewritten, pid reused), and the /proc stat
 * parser on hostile command names.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>
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

/* Waits (bounded) until pid runs an executable whose path contains what. */
static bool wait_exe(pid_t pid, const char *what)
{
    char exe[64], path[4096];
    snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
    for (int i = 0; i < 5000; i++) {
        ssize_t n = readlink(exe, path, sizeof(path) - 1);
        path[n > 0 ? n : 0] = '\0';
        if (strstr(path, what) != NULL) {
            return true;
        }
        usleep(1000);
    }
    return false;
}

/* The connection cache: the first request attests fully, the next ones
 * reuse it and get the same selectors. */
static void test_agent_attest_conn_cache_hit(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_attest_cache c;
    struct agent_workload w1, w2;
    memset(&c, 0, sizeof(c));
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    struct agent_conn_stamp st = stamp_of(getpid(), true);
    ASSERT_OK(agent_attest_conn(&a, &c, getpid(), geteuid(), getegid(), &st, &w1));
    assert_int_equal(a.full, 1);
    assert_int_equal(a.reused, 0);
    assert_true(c.valid);
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(agent_attest_conn(&a, &c, getpid(), geteuid(), getegid(), &st, &w2));
        assert_int_equal(w2.n_sels, w1.n_sels);
        for (size_t k = 0; k < w1.n_sels; k++) {
            assert_int_equal(mf_selector_cmp(&w1.sels[k], &w2.sels[k]), 0);
        }
        assert_int_equal(w2.pid, getpid());
        agent_workload_cleanup(&w2);
    }
    assert_int_equal(a.full, 1);
    assert_int_equal(a.reused, 3);
    /* another uid than the cached one (never on one connection, but the
     * cache must not answer for it): a full attestation, refused */
    ASSERT_ERR(agent_attest_conn(&a, &c, getpid(), geteuid() + 1, getegid(), &st, &w2),
               MF_ERR_AUTH);
    assert_false(c.valid);
    assert_int_equal(a.reused, 3);
    agent_workload_cleanup(&w1);
    agent_attest_cache_cleanup(&c);
    agent_attestor_cleanup(&a);
}

/* A cached connection whose process then execs another binary: the cache
 * misses and the full attestation refuses it, as without a cache. */
static void test_agent_attest_conn_exec_change_miss(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_attest_cache c;
    struct agent_workload w;
    int go[2];
    memset(&c, 0, sizeof(c));
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char ch;
        close(go[1]);
        (void)!read(go[0], &ch, 1);
        execl("/bin/sleep", "sleep", "30", (char *)NULL);
        _exit(1);
    }
    close(go[0]);
    struct agent_conn_stamp st = stamp_of(pid, true);
    ASSERT_OK(agent_attest_conn(&a, &c, pid, geteuid(), getegid(), &st, &w));
    agent_workload_cleanup(&w);
    ASSERT_OK(agent_attest_conn(&a, &c, pid, geteuid(), getegid(), &st, &w));
    agent_workload_cleanup(&w);
    assert_int_equal(a.full, 1);
    assert_int_equal(a.reused, 1);
    assert_int_equal(write(go[1], "x", 1), 1);
    close(go[1]);
    assert_true(wait_exe(pid, "sleep"));
    ASSERT_ERR(agent_attest_conn(&a, &c, pid, geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
    assert_non_null(strstr(mf_err_detail(), "the executable changed"));
    assert_null(w.sels);
    assert_false(c.valid);
    assert_int_equal(a.reused, 1);
    /* and it stays refused */
    ASSERT_ERR(agent_attest_conn(&a, &c, pid, geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    agent_attest_cache_cleanup(&c);
    agent_attestor_cleanup(&a);
}

/* The executable rewritten in place (same inode, new mtime): the cache
 * misses, the process is attested again (its digest recomputed) and
 * served. */
static void test_agent_attest_conn_exe_touched_miss(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_attest_cache c;
    struct agent_workload w;
    char tmpl[] = "/tmp/mf-attest-XXXXXX";
    char bin[256];
    memset(&c, 0, sizeof(c));
    assert_non_null(mkdtemp(tmpl));
    snprintf(bin, sizeof(bin), "%s/sleeper", tmpl);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "cp /bin/sleep '%s'", bin);
    assert_int_equal(system(cmd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(bin, "sleeper", "30", (char *)NULL);
        _exit(1);
    }
    assert_true(wait_exe(pid, "sleeper"));
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    struct agent_conn_stamp st = stamp_of(pid, true);
    ASSERT_OK(agent_attest_conn(&a, &c, pid, geteuid(), getegid(), &st, &w));
    agent_workload_cleanup(&w);
    ASSERT_OK(agent_attest_conn(&a, &c, pid, geteuid(), getegid(), &st, &w));
    agent_workload_cleanup(&w);
    assert_int_equal(a.full, 1);
    assert_int_equal(a.hashes, 1);
    struct timespec ts[2] = {{.tv_sec = 1000000000, .tv_nsec = 0},
                             {.tv_sec = 1000000000, .tv_nsec = 0}};
    assert_int_equal(utimensat(AT_FDCWD, bin, ts, 0), 0);
    ASSERT_OK(agent_attest_conn(&a, &c, pid, geteuid(), getegid(), &st, &w));
    agent_workload_cleanup(&w);
    assert_int_equal(a.full, 2);
    assert_int_equal(a.hashes, 2); /* a new mtime: hashed again */
    assert_int_equal(a.reused, 1);
    assert_true(c.valid);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    unlink(bin);
    rmdir(tmpl);
    agent_attest_cache_cleanup(&c);
    agent_attestor_cleanup(&a);
}

/* Tries to have the kernel hand pid out again (root: ns_last_pid); the new
 * process waits on a pipe. Returns its pid, or 0 when it did not happen. */
static pid_t respawn_at(pid_t pid, int *hold)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
        if (f == NULL) {
            return 0;
        }
        int ok = fprintf(f, "%d", (int)pid - 1) > 0;
        ok = fclose(f) == 0 && ok;
        if (!ok) {
            return 0;
        }
        int p[2];
        if (pipe(p) != 0) {
            return 0;
        }
        pid_t q = fork();
        if (q == 0) {
            char ch;
            close(p[1]);
            (void)!read(p[0], &ch, 1);
            _exit(0);
        }
        close(p[0]);
        if (q == pid) {
            *hold = p[1];
            return q;
        }
        close(p[1]);
        if (q > 0) {
            waitpid(q, NULL, 0);
        }
    }
    return 0;
}

/* The cached process exits and its pid goes to another process: the pinned
 * process is dead, so the cache misses, and the full attestation refuses
 * the newcomer (younger than the connection). */
static void test_agent_attest_conn_pid_reuse_miss(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_attest_cache c;
    struct agent_workload w;
    int go[2];
    memset(&c, 0, sizeof(c));
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char ch;
        close(go[1]);
        (void)!read(go[0], &ch, 1);
        _exit(0);
    }
    close(go[0]);
    struct agent_conn_stamp st = stamp_of(pid, true);
    ASSERT_OK(agent_attest_conn(&a, &c, pid, geteuid(), getegid(), &st, &w));
    agent_workload_cleanup(&w);
    assert_true(c.valid);
    close(go[1]); /* the child exits */
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    int hold = -1;
    /* a tick later, so that the newcomer is visibly younger */
    uint64_t t = agent_attest_boot_ticks();
    while (agent_attest_boot_ticks() == t) {
        usleep(1000);
    }
    pid_t again = respawn_at(pid, &hold);
    ASSERT_ERR(agent_attest_conn(&a, &c, pid, geteuid(), getegid(), &st, &w), MF_ERR_AUTH);
    assert_null(w.sels);
    assert_false(c.valid);
    assert_int_equal(a.reused, 0);
    if (again > 0) {
        print_message("pid %d was handed out again: refused\n", (int)pid);
        close(hold);
        assert_int_equal(waitpid(again, NULL, 0), again);
    }
    agent_attest_cache_cleanup(&c);
    agent_attestor_cleanup(&a);
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
        cmocka_unit_test(test_agent_attest_conn_cache_hit),
        cmocka_unit_test(test_agent_attest_conn_exec_change_miss),
        cmocka_unit_test(test_agent_attest_conn_exe_touched_miss),
        cmocka_unit_test(test_agent_attest_conn_pid_reuse_miss),
        cmocka_unit_test(test_agent_attest_parse_starttime_hostile_comm_ok),
    };
    return cmocka_run_group_tests_name("agent_attest", tests, NULL, NULL);
}
