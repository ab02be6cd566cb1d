/* wrap: open readlinkat syscall */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attack and regression tests for the agent that need a process to
 * misbehave at an exact moment, which only a unit test can arrange.
 *
 * A recycled pid during workload attestation (docs/security.md): the
 * process that connected exits and another one takes its pid while the
 * agent reads /proc. The kernel rarely hands a pid out again quickly, so
 * the test makes it happen: wrappers around open() (the moment the agent
 * opens /proc/<pid>) and readlinkat() (the middle of its reads) kill the
 * connected child and, as root, fork a new child onto the same pid by
 * writing /proc/sys/kernel/ns_last_pid. Both with a pidfd and with the
 * fallback of kernels without one (pidfd_open made to fail with ENOSYS
 * through a syscall() wrapper), attestation must refuse, never describe
 * the new process.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/syscall.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "agent/agent_attest.h"
#include "agent/agent_rotate.h"
#include "api/core/mf_time.h"
#include "mf_test.h"

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
ssize_t __real_readlinkat(int dirfd, const char *path, char *buf, size_t n);
ssize_t __wrap_readlinkat(int dirfd, const char *path, char *buf, size_t n);
long __real_syscall(long n, ...);
long __wrap_syscall(long n, ...);

enum hook { HOOK_NONE, HOOK_OPEN, HOOK_READLINK };

static enum hook g_hook; /* where to swap the process */
static pid_t g_victim;   /* the connected child, killed at the hook */
static pid_t g_recycled; /* the child that then took its pid, or 0 */
static bool g_no_pidfd;  /* pidfd_open fails with ENOSYS */
static bool g_fired;

static pid_t spawn_sleeper(void)
{
    pid_t p = fork();
    if (p == 0) {
        for (;;) {
            pause();
        }
    }
    return p;
}

static void reap(pid_t p)
{
    if (p > 0) {
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
    }
}

/* Forks until a child gets pid want (root only: ns_last_pid), or 0. */
static pid_t spawn_at(pid_t want)
{
    for (int i = 0; i < 50; i++) {
        int fd = __real_open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            return 0;
        }
        char num[32];
        int n = snprintf(num, sizeof(num), "%d", (int)want - 1);
        bool ok = write(fd, num, (size_t)n) == n;
        close(fd);
        if (!ok) {
            return 0;
        }
        pid_t p = spawn_sleeper();
        if (p == want) {
            return p;
        }
        reap(p); /* another process took it first: try again */
    }
    return 0;
}

/* The victim exits; another process takes its pid if we can make it. */
static void swap_now(void)
{
    if (g_fired || g_victim <= 0) {
        return;
    }
    g_fired = true;
    reap(g_victim);
    /* /proc/<pid>/stat counts start times in clock ticks (10 ms): a pid
     * taken over within the very tick of the connection cannot be told
     * apart without a pidfd (documented in docs/security.md); a real
     * takeover needs the whole pid space to wrap first, far longer */
    usleep(30000);
    g_recycled = spawn_at(g_victim);
}

int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (g_hook == HOOK_OPEN && strncmp(path, "/proc/", 6) == 0 && path[6] >= '1' &&
        path[6] <= '9') {
        swap_now();
    }
    return __real_open(path, flags, mode);
}

ssize_t __wrap_readlinkat(int dirfd, const char *path, char *buf, size_t n)
{
    if (g_hook == HOOK_READLINK) {
        swap_now();
    }
    return __real_readlinkat(dirfd, path, buf, n);
}

long __wrap_syscall(long n, ...)
{
    va_list ap;
    va_start(ap, n);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long);
    va_end(ap);
    if (g_no_pidfd && n == SYS_pidfd_open) {
        errno = ENOSYS;
        return -1;
    }
    return __real_syscall(n, a1, a2, a3, a4, a5);
}

static int reset(void **state)
{
    (void)state;
    g_hook = HOOK_NONE;
    g_victim = 0;
    g_recycled = 0;
    g_no_pidfd = false;
    g_fired = false;
    return 0;
}

static int teardown(void **state)
{
    reap(g_recycled);
    reap(g_victim);
    mf_time_set_clock(NULL);
    return reset(state);
}

/* A child "connects" (its start time is before connect_ticks), then the
 * swap happens at hook while the agent attests it. */
static void attest_with_swap(enum hook hook, bool no_pidfd)
{
    struct agent_attestor a;
    struct agent_workload w;
    memset(&w, 0, sizeof(w));
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    pid_t victim = spawn_sleeper();
    assert_true(victim > 0);
    usleep(20000); /* the connection comes after the process started */
    struct agent_conn_stamp st;
    ASSERT_OK(agent_attest_stamp_pid(victim, &st));
    g_victim = victim;
    g_hook = hook;
    g_no_pidfd = no_pidfd;
    mf_res r = agent_attest_pid(&a, victim, geteuid(), getegid(), &st, &w);
    g_hook = HOOK_NONE;
    assert_true(g_fired);
    if (g_recycled == 0) {
        print_message("note: pid %d not recycled (needs root); only its exit was tested\n",
                      (int)victim);
    } else {
        print_message("pid %d recycled by a new process: %s: %s\n", (int)victim, mf_err_name(r.err),
                      mf_err_detail());
    }
    /* refused, and nothing describes the process now behind the pid */
    assert_false(mf_ok(r));
    assert_true(mf_err_category(r.err) == MF_CAT_AUTH || mf_err_category(r.err) == MF_CAT_IO);
    assert_null(w.sels);
    assert_int_equal(w.n_sels, 0);
    g_victim = 0; /* reaped by swap_now */
    agent_attestor_cleanup(&a);
}

static void test_agent_attest_pid_recycled_at_open_pidfd_refused(void **state)
{
    (void)state;
    attest_with_swap(HOOK_OPEN, false);
}

static void test_agent_attest_pid_recycled_at_open_no_pidfd_refused(void **state)
{
    (void)state;
    attest_with_swap(HOOK_OPEN, true);
}

static void test_agent_attest_pid_recycled_mid_read_pidfd_refused(void **state)
{
    (void)state;
    attest_with_swap(HOOK_READLINK, false);
}

static void test_agent_attest_pid_recycled_mid_read_no_pidfd_refused(void **state)
{
    (void)state;
    attest_with_swap(HOOK_READLINK, true);
}

/* The same process throughout is still attested (the wrappers change
 * nothing when not armed), with and without pidfds. */
static void test_agent_attest_pid_unswapped_ok(void **state)
{
    (void)state;
    struct agent_attestor a;
    struct agent_workload w;
    ASSERT_OK(agent_attestor_init(&a, AGENT_HASH_MAX_DEFAULT));
    for (int k = 0; k < 2; k++) {
        g_no_pidfd = k == 1;
        pid_t child = spawn_sleeper();
        usleep(20000);
        struct agent_conn_stamp st;
        ASSERT_OK(agent_attest_stamp_pid(child, &st));
        mf_res r = agent_attest_pid(&a, child, geteuid(), getegid(), &st, &w);
        reap(child);
        ASSERT_OK(r);
        assert_true(w.n_sels > 0);
        agent_workload_cleanup(&w);
    }
    agent_attestor_cleanup(&a);
}

/* Regression: a short-lived SVID must not be due for renewal on arrival.
 * The CA backdates NotBefore by 10 s; drawing over NotBefore..NotAfter put
 * the renewal instant of a 6 s SVID in the past, and the agent re-signed
 * it some 60 times a second (fault_agent_kill9.sh). */
static int64_t g_now;
static int64_t fake_clock(void)
{
    return g_now;
}

static void test_agent_rotate_draw_short_backdated_svid_not_due(void **state)
{
    (void)state;
    struct agent_rotate_cfg cfg;
    agent_rotate_cfg_default(&cfg);
    mf_time_set_clock(fake_clock);
    g_now = 1800000000;
    const int64_t nb = g_now - 10, na = g_now + 6; /* issued now, 6 s TTL */
    for (int i = 0; i < 200; i++) {
        int64_t at = 0;
        ASSERT_OK(agent_rotate_draw(&cfg, nb, na, &at));
        assert_false(agent_rotate_due(at));
        assert_true(at >= g_now * 1000 + 6 * 450);
        assert_true(at <= g_now * 1000 + 6 * 550);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agent_attest_pid_recycled_at_open_pidfd_refused, reset,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_attest_pid_recycled_at_open_no_pidfd_refused,
                                        reset, teardown),
        cmocka_unit_test_setup_teardown(test_agent_attest_pid_recycled_mid_read_pidfd_refused,
                                        reset, teardown),
        cmocka_unit_test_setup_teardown(test_agent_attest_pid_recycled_mid_read_no_pidfd_refused,
                                        reset, teardown),
        cmocka_unit_test_setup_teardown(test_agent_attest_pid_unswapped_ok, reset, teardown),
        cmocka_unit_test_setup_teardown(test_agent_rotate_draw_short_backdated_svid_not_due, reset,
                                        teardown),
    };
    return cmocka_run_group_tests_name("agent_regress", tests, NULL, NULL);
}
