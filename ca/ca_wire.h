/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_wire: JSON forms of the CA's objects, shared by the agent API, the
 * admin API and the CLI (docs/api.md).
 */
#ifndef CA_WIRE_H
#define CA_WIRE_H

#include <stdbool.h>

#include <jansson.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_x509.h"
#include "ca/ca_store.h"

/* {"id","spiffe_id","parent_id","selectors":[...],"ttl","dns_names":[...],
 *  "hint","revision"}, plus "federates_with":["spiffe://td",...] when the
 *  entry federates with any trust domain */
MF_WUR mf_res ca_entry_to_json(const struct ca_entry *e, json_t **out);
/* {"spiffe_id","serial","expires_at","attested_at","last_seen","banned"} */
MF_WUR mf_res ca_agent_to_json(const struct ca_agent *a, json_t **out);
/* ["<b64 DER>", ...] */
MF_WUR mf_res ca_certs_to_json(const struct mf_certs *cs, json_t **out);
/* The SPIFFE bundle (JWKS) as a JSON object. */
MF_WUR mf_res ca_bundle_to_json(const struct mf_bundle *b, json_t **out);

/* Reads the members of an admin entry request into e (strictly: unknown
 * members and wrong types refused). With patch, only selectors, ttl,
 * dns_names, federates_with and hint are allowed and each is optional;
 * *set_mask records which were given (bits: 1 selectors, 2 ttl, 4
 * dns_names, 8 hint, 16 federates_with). */
MF_WUR mf_res ca_entry_from_json(const json_t *obj, bool patch, struct ca_entry *e,
                                 unsigned *set_mask);

#endif /* CA_WIRE_H */
