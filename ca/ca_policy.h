/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_policy: the CA's authorization and validation decisions, as pure
 * functions of their arguments (no I/O, no clock), so that each rule is
 * unit tested on its own (tests/unit/test_ca_policy.c).
 */
#ifndef CA_POLICY_H
#define CA_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_spiffeid.h"
#include "ca/ca_store.h"

#define CA_AGENT_PATH    "/mayfly/agent/"
#define CA_SERVER_PATH   "/mayfly/server"
#define CA_RESERVED_PATH "/mayfly/"

/* True when id is spiffe://<td>/mayfly/agent/<name> (one segment). */
bool ca_policy_is_agent_id(const struct mf_spiffe_id *id, const char *td);

/* Parses s as an agent ID of trust domain td; refuses anything else with a
 * detail. */
MF_WUR mf_res ca_policy_agent_id(const char *td, const char *s, struct mf_spiffe_id *out);

/* Validates an entry from an operator and makes its selectors canonical
 * (sorted, "type:key:value"): the SPIFFE ID is valid, in td, has a path and
 * is not under the reserved /mayfly/ tree; the parent is an agent ID of td;
 * 1..MF_SELECTORS_MAX selectors, each known and valid, none repeated, and a
 * unix:path or unix:sha256 selector only beside a unix:uid, unix:user,
 * unix:gid or unix:group one (MF_ERR_POLICY_DENIED, see
 * docs/security.md "exec hand-off"); ttl is
 * 0 (the CA's default) or 1..max_ttl; DNS names are valid host names; the
 * hint is short printable text. */
MF_WUR mf_res ca_policy_entry_check(const char *td, int64_t max_ttl, struct ca_entry *e);

/* May this agent use the agent API? a is NULL when no such agent is
 * registered (never attested, or evicted). */
MF_WUR mf_res ca_policy_agent_access(const struct ca_agent *a, const char *agent_id);

/* Attestation: the CSR's URI SAN, if it has one, must be the token's ID. */
MF_WUR mf_res ca_policy_attest_csr(const char *token_agent_id, const struct mf_spiffe_id *csr_id);

/* Renewal: the CSR's URI SAN, if it has one, must be the caller's own ID. */
MF_WUR mf_res ca_policy_renew_csr(const char *agent_id, const struct mf_spiffe_id *csr_id);

/* Workload signing: the entry must be parented to the calling agent, and the
 * CSR must carry exactly the entry's SPIFFE ID. */
MF_WUR mf_res ca_policy_sign(const char *agent_id, const struct ca_entry *e,
                             const struct mf_spiffe_id *csr_id);

/* The canonical "type:key:value" form of the selector s, or
 * MF_ERR_PROTO_SELECTOR naming it. */
MF_WUR mf_res ca_policy_selector_canon(const char *s, char *out, size_t cap);

/* How an entry's selectors are compared with a query's (SPIRE's modes):
 * superset: the entry has every given selector (the default); exact: the
 * same set; subset: every selector of the entry is among the given ones;
 * any: at least one in common. */
enum ca_match { CA_MATCH_SUPERSET = 0, CA_MATCH_EXACT, CA_MATCH_SUBSET, CA_MATCH_ANY };

/* A query over entries: NULL fields and no selectors match everything. */
struct ca_entry_filter {
    const char *spiffe_id;
    const char *parent_id;
    const char *const *selectors; /* canonical, none repeated */
    size_t n_selectors;
    enum ca_match match;
};

/* "exact", "subset", "superset" or "any"; else MF_ERR_USAGE_ARG. */
MF_WUR mf_res ca_policy_match_parse(const char *s, enum ca_match *out);
/* True when e passes every condition of f. */
bool ca_policy_entry_matches(const struct ca_entry *e, const struct ca_entry_filter *f);

/* The TTL a leaf for e gets. */
int64_t ca_policy_entry_ttl(const struct ca_entry *e, int64_t default_ttl);

/* A reason word for logs and error bodies ("not_parent", "banned", ...). */
const char *ca_policy_reason(mf_res r);

#endif /* CA_POLICY_H */
