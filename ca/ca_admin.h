/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_admin: the CA's admin API (HTTP/1.1 + JSON on a Unix socket, mode
 * 0600; docs/api.md). Only root or the CA's own uid may call it, checked
 * per connection with SO_PEERCRED on top of the file mode.
 */
#ifndef CA_ADMIN_H
#define CA_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_spiffeid.h"
#include "ca/ca.h"

MF_WUR mf_res ca_admin_start(struct ca_ctx *ctx, struct ca_admin **out);
void ca_admin_stop(struct ca_admin *a);

/* The request bodies of the admin API, parsed and validated without any I/O,
 * exactly as the handlers do (the fuzz harnesses call them too). len bytes
 * need not be NUL-terminated; td is the bare trust domain.
 *
 * entry: POST /v1/entries (patch false: e starts zeroed) or PATCH
 * /v1/entries/<id> (patch true: e holds the stored entry, and only the
 * members given change), then ca_policy_entry_check with max_ttl. e's
 * strings stay owned by e (ca_entry_cleanup), also on failure.
 * token: POST /v1/tokens; *ttl keeps its value (the default) when the body
 * has none. agent_op: POST /v1/agents/ban and /v1/agents/evict. */
MF_WUR mf_res ca_admin_parse_entry(const void *body, size_t len, const char *td, int64_t max_ttl,
                                   bool patch, struct ca_entry *e);
MF_WUR mf_res ca_admin_parse_token(const void *body, size_t len, const char *td,
                                   struct mf_spiffe_id *id, int64_t *ttl);
MF_WUR mf_res ca_admin_parse_agent_op(const void *body, size_t len, const char *td,
                                      struct mf_spiffe_id *id);

#endif /* CA_ADMIN_H */
