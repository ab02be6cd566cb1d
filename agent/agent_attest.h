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

#define AGENT_DIGEST_SLOTS        256
#define AGENT_HASH_MAX_DEFAULT    (256ull * 1024ull * 1024ull) /* bytes */

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

/* Attests pid, which connected with uid/gid. connect_ticks is the boot-time
 * clock (in clock ticks, as in /proc/<pid>/stat) at which the connection was
 * accepted, or 0 to skip that check. out is filled only on success; errors:
 * MF_ERR_AUTH when the process is gone or changed (recycled pid, changed
 * credentials), MF_ERR_IO on unexpected /proc contents. */
MF_WUR mf_res agent_attest_pid(struct agent_attestor *a, pid_t pid, uid_t uid, gid_t gid,
                               uint64_t connect_ticks, struct agent_workload *out);

void agent_workload_cleanup(struct agent_workload *w);

/* The boot-time clock now, in the clock ticks of /proc/<pid>/stat. */
uint64_t agent_attest_boot_ticks(void);

/* Parses field 22 (starttime) of a /proc/<pid>/stat text. Exposed for tests:
 * the command name (field 2) may hold spaces and parentheses. */
MF_WUR mf_res agent_attest_parse_starttime(const char *stat, size_t len, uint64_t *out);

#endif /* AGENT_ATTEST_H */
