/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_sock: the Workload API as JSON over HTTP/1.1 on a Unix socket
 * (DESIGN.md "Interfaces"), served by libmicrohttpd.
 *
 *   GET /v1/x509              200 {"svids":[...],"federated_bundles":{}}
 *   GET /v1/x509?watch=true   200, chunked: one full document per line, the
 *                             first at once, then one per change
 *   GET /v1/bundles           200 {"bundles":{"spiffe://td":"PEM"}}
 *   GET /health               200 {"status":"ok"}
 *
 * Every request needs the header "workload.spiffe.io: true" (else 400). The
 * socket is mode 0666: attestation is the gate, so a caller that no entry
 * matches gets 403 permission_denied and no key material.
 *
 * Threading: one thread per connection (a watch stream blocks its thread on
 * the state's condition variable), at most max_conns connections of which
 * at most max_watches are watch streams, so that streams can never take
 * every slot from one-shot requests. Until its request is complete a
 * connection is closed after conn_timeout_s of silence, which bounds what a
 * slow client can hold; an attested watch stream has no idle limit.
 */
#ifndef AGENT_SOCK_H
#define AGENT_SOCK_H

#include <stdbool.h>

#include "agent/agent_attest.h"
#include "agent/agent_state.h"
#include "api/mf_err.h"

struct MHD_Daemon;

struct agent_sock {
    struct MHD_Daemon *daemon;
    struct agent_state *state;
    struct agent_attestor *att;
    unsigned max_watches;
    int watches; /* atomic: open watch streams */
};

struct agent_sock_cfg {
    const char *path;
    unsigned max_conns;
    unsigned max_watches;
    unsigned conn_timeout_s;
};

MF_WUR mf_res agent_sock_start(struct agent_sock *s, const struct agent_sock_cfg *cfg,
                               struct agent_state *state, struct agent_attestor *att);
/* Stops accepting, ends watch streams (the state must be stopping) and joins
 * the connection threads. */
void agent_sock_stop(struct agent_sock *s);

#endif /* AGENT_SOCK_H */
