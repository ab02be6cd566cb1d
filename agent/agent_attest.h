/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_attest: who is calling the Workload API.
 *
 * The kernel tells us the caller's pid, uid and gid at connect time
 * (SO_PEERCRED). Everything else is read from /proc/<pid>, and a pid is only
 * a number that the kernel hands out again once the process is gone. So the
 * process is pinned first (pidfd_open, where the kernel has it), /proc/<pid>
 * is read through a directory handle, and at the end we check that the
 * pinned process is still alive and that its start time (field 22 of
 * /proc/<pid>/stat) is the one we saw first and is not later than the
 * connection itself. A recycled pid therefore fails attestation instead of
 * borrowing another process's identity.
 *
 * Exec does not change a pid, its start time or its credentials, so those
 * checks alone let a process connect, fork a helper that keeps the socket,
 * exec a binary some entry trusts by unix:path or unix:sha256, and have the
 * helper ask for that entry's SVID. Two checks stop that
 * (docs/security.md, "exec hand-off"):
 *   - the accept thread stamps each connection at once with the device and
 *     inode of the peer's executable (agent_attest_stamp), and attestation
 *     refuses a process whose executable is no longer that one;
 *   - the accept thread sets SO_PASSCRED, so that every read of the
 *     connection can tell which process wrote the bytes, and bytes that the
 *     connecting process did not write are refused (agent_attest_recv).
 * What is left, a process that writes its whole request and then execs
 * before the agent accepts, is closed by the CA's entry policy: a
 * unix:path or unix:sha256 selector needs a uid or gid selector beside it.
 *
 * Selectors produced (mf_selector.h): unix:uid, unix:gid (from SO_PEERCRED,
 * which must agree with the effective ids in /proc/<pid>/status), unix:user,
 * unix:group (when the ids have names), unix:supplementary_gid (each one of
 * "Groups:"), unix:path (the executable, unless deleted) and unix:sha256 (its
 * digest, unless larger than the configured limit).
 *
 * Digests are cached by (device, inode, size, mtime) so that a busy workload
 * does not make the agent re-read its binary on every request; the cache has
 * a fixed number of slots. Thread-safe.
 */
#ifndef AGENT_ATTEST_H
#define AGENT_ATTEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include "api/core/mf_err.h"
#include "api/internal/mf_selector.h"

#define AGENT_DIGEST_SLOTS     256
#define AGENT_HASH_MAX_DEFAULT (256ull * 1024ull * 1024ull) /* bytes */

struct agent_digest_slot {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    uint64_t used; /* LRU stamp; 0 = empty */
    uint8_t digest[32];
};

struct agent_attestor {
    pthread_mutex_t mu; /* protects slots and clock */
    struct agent_digest_slot slots[AGENT_DIGEST_SLOTS];
    uint64_t clock;
    uint64_t hash_max; /* executables larger than this get no unix:sha256 */
    uint64_t hashes;   /* digests computed (not served from cache); tests */
    uint64_t full;     /* full attestations done (atomic); tests, metrics */
    uint64_t reused;   /* answered from a connection's cache (atomic) */
};

/* A discovered workload: its selectors, sorted. Caller-owned storage. */
struct agent_workload {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    struct mf_selector *sels;
    size_t n_sels;
};

MF_WUR mf_res agent_attestor_init(struct agent_attestor *a, uint64_t hash_max);
void agent_attestor_cleanup(struct agent_attestor *a);

/* What the agent learnt of a Workload API connection the moment it was
 * accepted, before any request on it was read. Plain data, copied freely. */
struct agent_conn_stamp {
    uint64_t ticks; /* boot-time clock at accept, in /proc stat clock ticks;
                     * 0 skips the start-time check (tests) */
    pid_t pid;      /* SO_PEERCRED pid; 0 when unknown: attestation refuses */
    dev_t exe_dev;  /* the peer's executable at accept (when exe_ok) */
    ino_t exe_ino;
    bool exe_ok; /* false: the agent could not see it (another uid and
                  * no CAP_SYS_PTRACE, or the process was gone) */
};

/* Turns on SO_PASSCRED on the listening socket fd, so that connections
 * accepted from it have it from the start: the kernel records a writer's
 * pid only when the receiving socket asks for it at the time of the write,
 * and a client may write between accept(2) and agent_attest_stamp. Errors:
 * MF_ERR_IO. */
MF_WUR mf_res agent_attest_listener(int fd);

/* Stamps the accepted connection fd: the boot-time clock, the SO_PEERCRED
 * pid and the identity of /proc/<pid>/exe, read through the pinned process;
 * and checks that fd has SO_PASSCRED on (agent_attest_listener), which
 * agent_attest_recv needs. Call it in the accept thread right after
 * accept(2). An executable the agent may
 * not see is no error (exe_ok stays false; such a workload then gets no
 * unix:path or unix:sha256 selector either). out is filled only on
 * success; errors: MF_ERR_IO when the socket options cannot be read or
 * SO_PASSCRED is off (close the connection). */
MF_WUR mf_res agent_attest_stamp(int fd, struct agent_conn_stamp *out);

/* The stamp of pid, without a socket (tests; agent_attest_stamp uses it).
 * Never fails on a pid that is gone: exe_ok is then false. */
MF_WUR mf_res agent_attest_stamp_pid(pid_t pid, struct agent_conn_stamp *out);

/* recv(2) on a stamped connection (SO_PASSCRED on) that refuses bytes the
 * connecting process did not write: returns as recv(2) does, or -1 with
 * errno EACCES (and a log line) when the bytes were written by a pid other
 * than st->pid, or carry no credentials. A Unix stream socket with
 * SO_PASSCRED never returns the bytes of two writers in one call, so
 * checking every call checks every byte. flags may hold MSG_PEEK and
 * MSG_DONTWAIT. */
ssize_t agent_attest_recv(int fd, const struct agent_conn_stamp *st, void *buf, size_t len,
                          int flags);

/* Attests pid, which connected with uid/gid, on the connection stamped st
 * (the start-time check uses st->ticks). out is filled only on success;
 * errors: MF_ERR_AUTH when the process is gone or changed (recycled pid,
 * changed credentials, an executable other than the one stamped at accept:
 * "the executable changed since the connection was made"), MF_ERR_IO on
 * unexpected /proc contents. */
MF_WUR mf_res agent_attest_pid(struct agent_attestor *a, pid_t pid, uid_t uid, gid_t gid,
                               const struct agent_conn_stamp *st, struct agent_workload *out);

void agent_workload_cleanup(struct agent_workload *w);

/* A copy of src (selectors included) into out. Errors: MF_ERR_NOMEM. */
MF_WUR mf_res agent_workload_copy(const struct agent_workload *src, struct agent_workload *out);

/*
 * Per-connection attestation cache. A connection's peer is attested fully
 * once; what that proved (the workload and its selectors) is kept with the
 * process pinned by a pidfd, its /proc/<pid> directory held open, and the
 * identity of its executable (device, inode, size, mtime) and of its
 * /proc directory's owner (which follows the process's effective ids).
 * Each further request on the connection re-checks only what can change,
 * in three system calls:
 *   - the pinned process is alive (pidfd_send_signal 0): a pidfd names one
 *     process for its whole life, so the pid was not recycled and its start
 *     time is still the one checked at the full attestation;
 *   - /proc/<pid>/exe is still the same file, unchanged (an exec, or the
 *     binary rewritten in place, changes one of device, inode, size, mtime);
 *   - /proc/<pid> still has the same owner (a change of credentials).
 * Any difference, or any failure, drops the cache and attests fully again
 * (which refuses an exec since the connection was made, as before). Without
 * pidfds (kernels before 5.3) nothing is kept: every request is attested
 * fully. User and group names are those of the full attestation.
 *
 * A zeroed struct is an empty cache. One connection's cache is used by one
 * thread at a time (the connection's own).
 */
struct agent_attest_cache {
    bool valid;
    int pidfd;
    int dirfd;
    bool exe_seen; /* /proc/<pid>/exe could be stat'ed */
    dev_t exe_dev;
    ino_t exe_ino;
    off_t exe_size;
    int64_t exe_mtime_ns;
    uid_t owner_uid; /* of /proc/<pid> */
    gid_t owner_gid;
    struct agent_workload w;
};

/* Closes what the cache holds and empties it. NULL is a no-op. */
void agent_attest_cache_cleanup(struct agent_attest_cache *c);

/* As agent_attest_pid, through the connection's cache c: out (caller-owned,
 * agent_workload_cleanup) is a copy of the kept workload when the cheap
 * checks pass, else the result of a full attestation, which then refills
 * c. On failure c is left empty. */
MF_WUR mf_res agent_attest_conn(struct agent_attestor *a, struct agent_attest_cache *c, pid_t pid,
                                uid_t uid, gid_t gid, const struct agent_conn_stamp *st,
                                struct agent_workload *out);

/* The boot-time clock now, in the clock ticks of /proc/<pid>/stat. */
uint64_t agent_attest_boot_ticks(void);

/* Parses field 22 (starttime) of a /proc/<pid>/stat text. Exposed for tests:
 * the command name (field 2) may hold spaces and parentheses. */
MF_WUR mf_res agent_attest_parse_starttime(const char *stat, size_t len, uint64_t *out);

#endif /* AGENT_ATTEST_H */
