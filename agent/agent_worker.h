/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_worker: the agent's one thread that talks to the CA.
 *
 * It owns the cache, the agent identity and the CA connection, and loops:
 * renew the agent SVID when its drawn instant comes; sign (in batches) every
 * entry that has no SVID, whose SVID reached its renewal instant, or whose
 * entry changed; long-poll /v1/sync for entry and bundle changes, with a wait
 * no longer than the time to the next scheduled event; publish a new
 * snapshot whenever what workloads see changes (including an SVID expiring).
 * A failure (CA down, refused renewals) backs off with capped exponential
 * jitter per SVID and for the connection; nothing already valid is dropped
 * until it expires.
 *
 * When the CA refuses the agent itself (docs/api.md): evicted, the agent
 * identity is dropped (memory and data dir) and the loop attests again as
 * soon as it has a join token it has not spent (--join-token at a restart,
 * or --join-token-file, re-read every 2 s); banned, it says so once at
 * error level and asks again only every 10 minutes.
 */
#ifndef AGENT_WORKER_H
#define AGENT_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/agent_cache.h"
#include "agent/agent_client.h"
#include "agent/agent_config.h"
#include "agent/agent_state.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_spiffeid.h"

struct agent_worker {
    const struct agent_config *cfg;
    struct agent_state *state; /* where snapshots are published */
    struct agent_cache cache;
    struct agent_client client;
    char td[MF_TD_MAX + 1];
    struct mf_spiffe_id agent_id;
    struct mf_key *agent_key;
    struct mf_certs agent_chain;
    int64_t agent_renew_at_ms;
    unsigned agent_attempts;
    int64_t agent_retry_at_ms;
    char *revision; /* last sync revision, or NULL */
    unsigned ca_attempts;
    int64_t ca_retry_at_ms;
    int64_t next_expiry_ms; /* earliest NotAfter published */
    bool evicted;           /* the CA forgot us: attest again with a new token */
    bool banned;            /* the CA refuses us (said once) */
    bool token_tried;       /* `token` was spent or refused */
    struct mf_buf token;    /* the join token last read (secret) */
    int wake_fd;            /* eventfd: shutdown */
    bool stop;              /* protected by mu */
    bool synced;            /* protected by mu: first sync done */
    size_t n_loaded;        /* servable SVIDs read from the disk cache at init */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started;
    /* keys, CSRs and result checks of a signing batch, in parallel: as many
     * threads as cores with the worker's own (started by agent_worker_init, which
     * reads the cached SVIDs on it too) */
    struct agent_pool pool;
    bool pool_ok;
    /* fresh keys made by the pool while the previous batch was at the CA,
     * for the next batch (each is used once) */
    struct mf_key *spare[MF_MAX_BATCH];
    size_t n_spare;
    /* a snapshot was published since the heap was last trimmed: the worker
     * gives the free pages of malloc's arenas back to the kernel before it
     * next waits (a sync answer, a signing batch and the snapshot they
     * replace leave megabytes free inside the arenas at 10,000 SVIDs) */
    bool trim_due;
};

/* Opens the data dir, loads the cached identity and SVIDs, attests with the
 * join token when there is no usable identity, and publishes the first
 * snapshot (from the cache). Does not start the thread. */
MF_WUR mf_res agent_worker_init(struct agent_worker *w, const struct agent_config *cfg,
                                struct agent_state *state);
MF_WUR mf_res agent_worker_start(struct agent_worker *w);
/* Waits up to timeout_ms for the first successful sync round. */
bool agent_worker_wait_synced(struct agent_worker *w, int timeout_ms);
void agent_worker_stop(struct agent_worker *w);
void agent_worker_cleanup(struct agent_worker *w);

/* Publishes a snapshot of the cache now (also used by tests). */
MF_WUR mf_res agent_worker_publish(struct agent_worker *w);

#endif /* AGENT_WORKER_H */
