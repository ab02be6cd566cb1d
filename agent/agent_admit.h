/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_admit: who may open another Workload API connection. Every
 * connection is counted against the uid of its peer (SO_PEERCRED, read on
 * the accepted socket before any byte) from the moment it is accepted
 * until its socket is closed, so that one local user cannot take the
 * slots every other workload on the node needs.
 *
 * A connection from uid u is admitted when all of these hold:
 *   - fewer than max_conns connections are open in all (the hard limit);
 *   - u holds fewer than per_uid of them (its fair share; root, which
 *     controls the agent anyway, is exempt);
 *   - inside the reserve (the last max_conns / 8 slots), u is root or
 *     holds fewer than AGENT_ADMIT_RESERVE_PER_UID connections: however
 *     many uids flood together, a workload that holds one connection or
 *     none, and root, still find a slot.
 *
 * Thread-safe: one mutex protects the counts. Each uid with a connection
 * has one row; there are never more rows than connections, so a table of
 * max_conns rows never fills.
 */
#ifndef AGENT_ADMIT_H
#define AGENT_ADMIT_H

#include <pthread.h>
#include <stddef.h>

#include <sys/types.h>

#include "api/core/mf_err.h"

#define AGENT_ADMIT_RESERVE_PER_UID 2u

enum agent_admit_verdict {
    AGENT_ADMIT_OK,
    AGENT_ADMIT_FULL,    /* max_conns reached */
    AGENT_ADMIT_SHARE,   /* the uid holds its per_uid share */
    AGENT_ADMIT_RESERVE, /* only root and light users may use the reserve */
};

struct agent_admit_row {
    uid_t uid;
    unsigned n; /* 0: the row is free */
};

struct agent_admit {
    pthread_mutex_t mu; /* protects total and rows */
    unsigned max_conns;
    unsigned per_uid;
    unsigned reserve;
    unsigned total;
    struct agent_admit_row *rows; /* max_conns of them */
};

/* max_conns >= 1; per_uid 1..max_conns. MF_ERR_USAGE_ARG otherwise. */
MF_WUR mf_res agent_admit_init(struct agent_admit *a, unsigned max_conns, unsigned per_uid);
void agent_admit_cleanup(struct agent_admit *a);

/* Counts one more connection of uid when the rules above admit it.
 * `extra` is a number of connections held elsewhere that count against the
 * hard limit and the reserve but belong to no uid any longer (closed ones
 * a library has not freed yet). */
enum agent_admit_verdict agent_admit_take(struct agent_admit *a, uid_t uid, unsigned extra);

/* Forgets one connection of uid (taken before). */
void agent_admit_release(struct agent_admit *a, uid_t uid);

unsigned agent_admit_total(struct agent_admit *a);
unsigned agent_admit_of(struct agent_admit *a, uid_t uid);
const char *agent_admit_reason(enum agent_admit_verdict v);

#endif /* AGENT_ADMIT_H */
