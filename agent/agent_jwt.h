/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_jwt: JWT-SVIDs for workloads, shared by the JSON and gRPC Workload
 * APIs.
 *
 * A JWT-SVID is made on demand: the workload names its audience(s), the
 * agent asks the CA (POST /v1/jwt, docs/api.md) to sign one for an entry
 * parented to it, checks the answer like a relying party would (its own
 * bundle, the audience, the sub) and caches it per (SPIFFE ID, audience
 * set). A cached token is served until half its lifetime has passed (R1);
 * then the next request fetches a new one. When the CA cannot be reached,
 * a cached token is still served while it is valid, so a CA outage costs
 * nothing until tokens expire.
 *
 * The cache holds at most AGENT_JWT_CACHE_MAX tokens; a full cache drops
 * expired ones first, then the least recently used. Requests carry at most
 * MF_JWT_AUD_MAX audiences of at most MF_JWT_AUD_LEN_MAX bytes each.
 *
 * The worker thread owns the agent's main CA connection, and it is often
 * inside a 30 s long poll; so this module has a connection of its own,
 * built from the identity and trust the worker publishes in agent_state
 * (agent_state_set_identity). Thread-safe: the cache has one mutex, held
 * only for lookups and inserts; CA calls are serialised by a second one.
 */
#ifndef AGENT_JWT_H
#define AGENT_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "agent/agent_state.h"
#include "api/core/mf_err.h"
#include "api/internal/mf_selector.h"
#include "api/pki/mf_jwt.h"

#define AGENT_JWT_CACHE_MAX 1024

struct agent_jwt;

/* A JWT-SVID handed to a workload. */
struct agent_jwt_svid {
    char *spiffe_id;
    char *hint;  /* "" when none */
    char *token; /* compact JWS */
    int64_t expires_at;
};

/* server is the CA's host:port, td the bare trust domain; the identity comes
 * from state. */
MF_WUR mf_res agent_jwt_new(const char *server, const char *td, struct agent_state *state,
                            struct agent_jwt **out);
void agent_jwt_free(struct agent_jwt *j); /* NULL is a no-op */

/* JWT-SVIDs for the workload with selectors have[0..n_have), for the
 * audiences aud[0..n_aud): one for spiffe_id, or (spiffe_id NULL or "") one
 * for every identity the workload may have (SPIFFE.md E24), in snapshot
 * order. *out is an array of *n_out (>= 1) that the caller frees with
 * agent_jwt_svids_free. Errors: MF_ERR_USAGE_ARG for a bad audience list
 * (none, too many, empty, too long) or spiffe_id; MF_ERR_POLICY_NO_ENTRY when
 * the workload has no identity, or not the one asked for; others (the CA
 * unreachable or refusing, with nothing valid cached) mean "unavailable". */
MF_WUR mf_res agent_jwt_fetch(struct agent_jwt *j, const struct agent_snap *snap,
                              const struct mf_selector *have, size_t n_have, const char *spiffe_id,
                              const char *const *aud, size_t n_aud, struct agent_jwt_svid **out,
                              size_t *n_out);
void agent_jwt_svids_free(struct agent_jwt_svid *v, size_t n);

/* Validates a token for audience (mf_jwt_validate at the current time)
 * against the JWT authorities of snap's bundle and, for a workload with
 * selectors have[0..n_have), of the foreign bundles its SVIDs federate with
 * (agent_snap_trust): each token is checked against its own trust
 * domain's keys only. */
MF_WUR mf_res agent_jwt_validate(const struct agent_snap *snap, const struct mf_selector *have,
                                 size_t n_have, const char *audience, const char *token, size_t len,
                                 struct mf_jwt *out);

#endif /* AGENT_JWT_H */
