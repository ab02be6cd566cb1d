/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_gate: admission of connections to the CA's agent API, before and
 * around authentication (docs/security.md, "Connection floods").
 *
 * MHD serves the agent API with one thread per connection, so whatever holds
 * a connection holds a thread and one of --max-connections slots. The gate
 * owns the listening socket and decides what reaches MHD:
 *
 * - a connection that has sent nothing yet waits in the gate's own poll set
 *   (no thread, no MHD slot) until its first bytes arrive; an idle one is
 *   closed at its deadline, and when the waiting pool is full, or its
 *   address is at --max-connections-per-ip, the oldest idle one of that
 *   address (else of all) makes room for the newcomer. A real client sends
 *   its TLS ClientHello at once, so it stays idle for one round trip only;
 * - every connection must present a valid agent SVID in a request within
 *   --handshake-timeout of being accepted (TLS handshake and request head
 *   included), or it is shut down: MHD's own idle timeout stays long
 *   enough for the sync long poll, and only authenticated connections live
 *   under it;
 * - unauthenticated connections may take at most max_connections - reserve
 *   MHD slots (reserve = max_connections / 4); the reserve is open to
 *   addresses from which an agent authenticated in the last day, so that a
 *   flood of stalled handshakes from many addresses cannot lock out the
 *   agents that already have an identity;
 * - the gate counts every connection from accept to MHD's "closed"
 *   notification, per address too, and keeps MHD's own connection count
 *   clear of MHD_OPTION_CONNECTION_LIMIT (libmicrohttpd 0.9.75 mishandles
 *   reaching it), so MHD never refuses a connection itself.
 *
 * Threads: the gate runs one accept thread; ca_gate_notify runs on MHD's
 * threads and ca_gate_authenticated on connection threads. Shared state is
 * under one mutex.
 */
#ifndef CA_GATE_H
#define CA_GATE_H

#include <stdint.h>

#include <microhttpd.h>

#include "api/core/mf_err.h"

/* The reserved share of max_connections, for known agent addresses. */
#define CA_GATE_RESERVE_DIV 4
/* How long an address stays "known" after an agent authenticated from it. */
#define CA_GATE_AGENT_MEMORY_S 86400
/* Connections waiting for their first bytes or for an MHD slot. */
#define CA_GATE_POOL_MAX 4096

struct ca_gate;

struct ca_gate_cfg {
    unsigned max_conns; /* connections in MHD at once (threads) */
    unsigned per_ip;    /* connections from one address, in every state */
    int64_t deadline_s; /* accept to first authenticated request */
};

/* MHD_OPTION_CONNECTION_LIMIT to give MHD: comfortably above what the gate
 * lets in, never reached. */
unsigned ca_gate_mhd_limit(const struct ca_gate_cfg *cfg);

/* Allocates a gate (not running). Pass it as the cls of
 * MHD_OPTION_NOTIFY_CONNECTION with ca_gate_notify before starting MHD with
 * MHD_USE_NO_LISTEN_SOCKET. Raises RLIMIT_NOFILE to its hard limit. */
MF_WUR mf_res ca_gate_new(const struct ca_gate_cfg *cfg, struct ca_gate **out);

/* Starts the accept thread on listen_fd (takes ownership; made
 * non-blocking) feeding daemon (borrowed: stop the gate before it). */
MF_WUR mf_res ca_gate_start(struct ca_gate *g, int listen_fd, struct MHD_Daemon *daemon);

/* Stops the accept thread and closes what it held. Call before
 * MHD_stop_daemon; free the gate after it. */
void ca_gate_stop(struct ca_gate *g);

/* Frees the gate; NULL is a no-op. After MHD_stop_daemon. */
void ca_gate_free(struct ca_gate *g);

/* MHD_OPTION_NOTIFY_CONNECTION callback (cls: the gate). */
void ca_gate_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                    enum MHD_ConnectionNotificationCode toe);

/* Tells the gate that a request on conn carried a valid agent SVID: the
 * connection leaves the unauthenticated share and its deadline, and its
 * address becomes known. Idempotent. */
void ca_gate_authenticated(struct ca_gate *g, struct MHD_Connection *conn);

#endif /* CA_GATE_H */
