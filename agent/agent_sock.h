/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_sock: the Workload API socket. One Unix socket serves both the JSON
 * API over HTTP/1.1 (DESIGN.md "Interfaces", libmicrohttpd) and the
 * standard SPIFFE gRPC API over HTTP/2 (agent_grpc.h), so that
 * SPIFFE_ENDPOINT_SOCKET works for every client.
 *
 *   GET /v1/x509              200 {"svids":[...],"federated_bundles":{}}
 *   GET /v1/x509?watch=true   200, chunked: one full document per line, the
 *                             first at once, then one per change
 *   GET /v1/bundles           200 {"bundles":{"spiffe://td":"PEM"}}
 *   GET /v1/jwt?audience=A[&audience=B...][&spiffe_id=ID]
 *                             200 {"svids":[{"spiffe_id","svid","hint","expires_at"}]}
 *   GET /v1/jwt/bundles       200 {"bundles":{"spiffe://td":<JWKS>}}
 *   POST /v1/jwt/validate     {"audience","svid"} -> 200 {"spiffe_id","claims"}
 *   GET /health               200 {"status":"ok"}
 *
 * Every request needs the header "workload.spiffe.io: true" (else 400). The
 * socket is mode 0666: attestation is the gate, so a caller that no entry
 * matches gets 403 permission_denied and no key material.
 *
 * One protocol per connection, told apart on accept: a thread of ours
 * accepts, peeks (MSG_PEEK, nothing consumed) at the first bytes, and hands
 * a connection that opens with the HTTP/2 preface "PRI * HTTP/2.0\r\n\r\n
 * SM\r\n\r\n" to agent_grpc and any other to libmicrohttpd
 * (MHD_add_connection). Three matching bytes ("PRI") decide for HTTP/2: no
 * HTTP/1.1 method starts so. A connection that sends nothing within
 * conn_timeout_s is closed unclassified.
 *
 * Limits, shared by both protocols: at most max_conns connections at once
 * (accepted but unclassified, HTTP/1.1 and HTTP/2 together; beyond that a
 * new connection is closed at once), of which at most max_watches are
 * long-lived (JSON watch streams and gRPC connections), so that streams can
 * never take every slot from one-shot requests. Until its request is
 * complete a connection is closed after conn_timeout_s of silence; an
 * attested stream has no idle limit.
 *
 * Threading: one thread per connection (a watch stream blocks its thread on
 * the state's condition variable), plus the accept thread.
 */
#ifndef AGENT_SOCK_H
#define AGENT_SOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/agent_attest.h"
#include "agent/agent_jwt.h"
#include "agent/agent_state.h"
#include "api/mf_err.h"

struct MHD_Daemon;
struct agent_grpc;


struct agent_sock {
    struct MHD_Daemon *daemon;
    struct agent_grpc *grpc;
    struct agent_state *state;
    struct agent_attestor *att;
    struct agent_jwt *jwt;
    unsigned max_watches;
    unsigned max_conns;
    unsigned conn_timeout_s;
    int watches;  /* atomic: open watch streams and gRPC connections */
    int mhd_open; /* atomic: connections libmicrohttpd serves */
    int listen_fd;
    int wake_fd; /* eventfd: stop the accept thread */
    pthread_t acceptor;
    bool acceptor_started;
    pthread_mutex_t ticks_mu; /* protects ticks */
    struct agent_sock_stamp_slot {
        int fd; /* -1: free */
        struct agent_conn_stamp stamp;
    } *ticks; /* accept stamps of connections handed to MHD, until MHD
               * reports them started; n_ticks slots */
    size_t n_ticks;
};

struct agent_sock_cfg {
    const char *path;
    unsigned max_conns;
    unsigned max_watches;
    unsigned conn_timeout_s;
    struct agent_jwt *jwt; /* JWT-SVIDs; NULL: /v1/jwt answers 503 */
};

MF_WUR mf_res agent_sock_start(struct agent_sock *s, const struct agent_sock_cfg *cfg,
                               struct agent_state *state, struct agent_attestor *att);
/* Stops accepting, ends watch streams and gRPC connections (the state must
 * be stopping) and joins the connection threads. */
void agent_sock_stop(struct agent_sock *s);

#endif /* AGENT_SOCK_H */
