/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_issue: signing leaves, behind admission control.
 *
 * Admission has two gates, checked before any expensive work:
 *   - capacity: a counting semaphore caps concurrent signing requests
 *     (--max-signing); a request that cannot get a slot within a short wait
 *     is answered 503 with Retry-After;
 *   - rate: a token bucket per agent (--agent-rate per second, --agent-burst
 *     deep) refills continuously; an empty bucket means 429 with
 *     Retry-After. A batch of CSRs counts as one request.
 * So a herd of agents back from a partition queues briefly or is told when
 * to come back, instead of piling up signing work and memory.
 *
 * Every issuance and every denial is logged as one line (mf_log_event):
 * "issued" with spiffe_id, serial, not_after, agent; "denied" with
 * spiffe_id, agent, reason and detail.
 */
#ifndef CA_ISSUE_H
#define CA_ISSUE_H

#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "ca/ca_keys.h"

struct ca_issuer;

MF_WUR mf_res ca_issuer_new(unsigned max_concurrent, unsigned rate, unsigned burst,
                            struct ca_issuer **out);
void ca_issuer_free(struct ca_issuer *is);
/* Changes the limits of a running issuer (SIGHUP): the same meaning and
 * ranges as ca_issuer_new. Thread-safe. */
MF_WUR mf_res ca_issuer_set_limits(struct ca_issuer *is, unsigned max_concurrent, unsigned rate,
                                   unsigned burst);

/* The answer to a refused admission. */
struct ca_admit {
    unsigned status; /* 429 (rate) or 503 (capacity) */
    int retry_after; /* seconds */
};

/* Takes one signing slot for key (an agent ID, or "attest:<ip>" before
 * authentication) at monotonic time now_ms. MF_ERR_POLICY_LIMIT with *why
 * filled when refused. On success the caller must call ca_issue_release. */
MF_WUR mf_res ca_issue_admit(struct ca_issuer *is, const char *key, int64_t now_ms,
                             struct ca_admit *why);
void ca_issue_release(struct ca_issuer *is);

/* Signs a leaf for id and pubkey with the active CA key; chain_out gets the
 * leaf followed by any intermediates. agent names who asked (for the log).
 * Logs "issued" on success and "denied" on failure. */
struct ca_leaf_req {
    const struct mf_spiffe_id *id;
    const struct mf_pubkey *pubkey;
    int64_t ttl;
    const char *const *dns_names;
    size_t n_dns;
    const char *agent; /* "-" for the server's own SVID */
    /* where the "issued" line goes (mf_log_event_to), for the caller to
     * write with the rest of its batch; NULL: logged at once */
    struct mf_buf *log;
};
MF_WUR mf_res ca_issue_leaf(struct ca_keys *keys, const struct ca_leaf_req *req, int64_t now,
                            struct mf_certs *chain_out);

/* One "denied" log line. */
void ca_issue_log_denied(const char *spiffe_id, const char *agent, mf_res r);

#endif /* CA_ISSUE_H */
