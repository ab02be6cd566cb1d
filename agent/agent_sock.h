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
 * Limits, shared by both protocols (agent_admit.h): at most max_conns
 * connections at once, at most per_uid of them from one uid (root exempt),
 * and the last max_conns / 8 only for root and uids holding fewer than
 * two; of all these at most max_watches are long-lived (JSON watch streams
 * and gRPC connections), so that streams can never take every slot from
 * one-shot requests. A connection is counted against its peer's uid
 * (SO_PEERCRED, read at accept before any byte) from accept until its
 * socket is closed; one that is refused is closed at once.
 *
 * libmicrohttpd is given a connection limit twice ours and a connection is
 * handed to it only while ours, counting the ones it has closed but not
 * yet freed, has room: it never reaches its own limit (Debian's 0.9.75
 * leaks a lock there and then refuses every connection until restarted).
 *
 * Deadlines no client can stretch: a connection's first request (head and
 * body) must be complete within conn_timeout_s of its accept, and each
 * later one within idle_timeout_s of the end of the previous answer (so an
 * idle keep-alive connection is closed after idle_timeout_s, and sooner
 * after conn_timeout_s of silence, libmicrohttpd's inactivity limit). The
 * accept thread enforces them by shutting the socket down. An answer in
 * progress has no deadline of ours: a watch stream is attested and
 * limited by max_watches. gRPC keeps the same deadlines (agent_grpc.h).
 *
 * Threading: one thread per connection (a watch stream blocks its thread on
 * the state's condition variable), plus the accept thread.
 */
#ifndef AGENT_SOCK_H
#define AGENT_SOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/agent_admit.h"
#include "agent/agent_attest.h"
#include "agent/agent_jwt.h"
#include "agent/agent_sds.h"
#include "agent/agent_state.h"
#include "api/core/mf_err.h"

struct MHD_Daemon;
struct agent_grpc;

/* A connection handed to libmicrohttpd, from the hand-over until MHD
 * reports it closed. */
struct agent_sock_conn {
    int fd; /* -1: the slot is free */
    uid_t uid;
    struct agent_conn_stamp stamp; /* agent_attest_stamp() at accept */
    /* what attesting the peer proved, re-checked cheaply on every request;
     * used by the connection's own thread only, emptied in conn_drop */
    struct agent_attest_cache acache;
    int64_t accept_ms;   /* mf_mono_ms() at accept */
    int64_t deadline_ms; /* the request under way must be complete by then; 0: none */
    bool started;        /* MHD reported it started */
    bool shut;           /* shut down by us for a missed deadline */
};

struct agent_sock {
    struct MHD_Daemon *daemon;
    struct agent_grpc *grpc;
    struct agent_state *state;
    struct agent_attestor *att;
    struct agent_jwt *jwt;
    bool allow_verifiers;
    unsigned max_watches;
    unsigned max_conns;
    unsigned conn_timeout_s;
    unsigned idle_timeout_s;
    int watches; /* atomic: open watch streams and gRPC connections */
    int listen_fd;
    int wake_fd; /* eventfd: stop the accept thread */
    pthread_t acceptor;
    bool acceptor_started;
    bool admit_ok;
    struct agent_admit admit;      /* every open connection, by uid */
    pthread_mutex_t conns_mu;      /* protects conns and n_started */
    struct agent_sock_conn *conns; /* max_conns slots */
    unsigned n_started;            /* conns that MHD reported started */
};

struct agent_sock_cfg {
    const char *path;
    unsigned max_conns;
    unsigned max_conns_per_uid; /* 1..max_conns */
    unsigned max_watches;
    unsigned conn_timeout_s; /* a connection's first request complete within */
    unsigned idle_timeout_s; /* a connection with no call in progress closed after */
    struct agent_jwt *jwt;   /* JWT-SVIDs; NULL: /v1/jwt answers 503 */
    /* Bundles and JWT validation for any caller that attests, entry or not
     * (--allow-unauthenticated-verifiers); false: only to callers with an
     * entry, as the SVIDs. */
    bool allow_verifiers;
    enum agent_sds_validator sds_validator; /* Envoy SDS validation contexts */
};

MF_WUR mf_res agent_sock_start(struct agent_sock *s, const struct agent_sock_cfg *cfg,
                               struct agent_state *state, struct agent_attestor *att);
/* Stops accepting, ends watch streams and gRPC connections (the state must
 * be stopping) and joins the connection threads. */
void agent_sock_stop(struct agent_sock *s);

#endif /* AGENT_SOCK_H */
