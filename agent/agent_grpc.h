/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_grpc: the standard SPIFFE Workload API (SPIFFE.md section E): gRPC
 * over HTTP/2 (nghttp2) with protobuf-c messages generated from
 * api/proto/workload.proto.
 *
 *   /SpiffeWorkloadAPI/FetchX509SVID      server stream of X509SVIDResponse
 *   /SpiffeWorkloadAPI/FetchX509Bundles   server stream of X509BundlesResponse
 *   /SpiffeWorkloadAPI/FetchJWTSVID       unary JWTSVIDResponse
 *   /SpiffeWorkloadAPI/FetchJWTBundles    server stream of JWTBundlesResponse
 *   /SpiffeWorkloadAPI/ValidateJWTSVID    unary ValidateJWTSVIDResponse
 *   FetchWITSVID, FetchWITBundles, any other path: Unimplemented (12)
 *
 * and Envoy's Secret Discovery Service (agent_sds.h):
 *
 *   /envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets
 *                                         bidirectional stream of
 *                                         DiscoveryRequest/DiscoveryResponse
 *   /envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets
 *                                         unary
 *   /envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets
 *                                         Unimplemented (12)
 *
 * Connections come from agent_sock, which accepts on the one Workload API
 * socket and hands over those that open with the HTTP/2 connection preface;
 * each runs on a thread of its own (like the JSON API's connections), so
 * SO_PEERCRED of the accepted socket identifies the caller.
 *
 * Per RPC: the header "workload.spiffe.io: true" (exactly one, exactly
 * that value) or InvalidArgument (3), except for SDS, whose client (Envoy)
 * sends none; the caller is attested once per RPC
 * (for a stream, once when it starts, as the JSON watch does); a caller with
 * no identity gets PermissionDenied (7), also when its last identity goes
 * away during a stream (E18). Streams send the complete state at once and
 * again whenever what this caller sees changes (E12-E14): rotation, bundle
 * change, entitlement change; a publication that changes nothing for the
 * caller sends nothing.
 *
 * Memory is bounded whatever the client does:
 *   - a request message is at most GRPC_REQ_MAX bytes (StreamSecrets
 *     holds at most one incomplete message at a time), headers at most
 *     GRPC_HEADERS_MAX, at most GRPC_STREAMS_MAX concurrent streams per
 *     connection (SETTINGS_MAX_CONCURRENT_STREAMS, enforced by nghttp2);
 *   - a response message is at most GRPC_MSG_MAX bytes (gRPC's default
 *     client limit is 4 MiB);
 *   - each stream holds at most one message not yet handed to nghttp2.
 *     When the state changes before it went out, the stale message is
 *     dropped and only the newest full state is rendered; when it is half
 *     out, the newest state is rendered once the message is complete, with
 *     every intermediate state skipped. All of a connection's pending
 *     messages together stay under GRPC_CONN_PENDING_MAX; a stream over
 *     budget renders later, when others have drained.
 *   - nghttp2 pulls at most one frame at a time from a stream and writes
 *     to the non-blocking socket only what it accepts: a client that stops
 *     reading stalls its own streams (HTTP/2 and socket flow control) and
 *     grows nothing;
 *   - an idle stream holds its attested selectors and a digest, no buffer;
 *     a connection without any RPC for idle_timeout_s (or whose first
 *     request is not complete within conn_timeout_s of its accept, or any
 *     later request within conn_timeout_s of its HEADERS) is closed with
 *     GOAWAY. PINGs and SETTINGS do not count as calls.
 * Each connection counts as one of the socket's long-lived slots (shared
 * with JSON watch streams); agent_sock enforces the shared connection limit
 * and the per-uid share, and hands each connection over with its count in
 * cfg->admit, which agent_grpc releases once the socket is closed.
 *
 * Secrets: a stream's pending message (it holds private keys) lives in a
 * wiped-on-free buffer; nghttp2 copies each DATA frame into its own frame
 * buffer before writing it, and that copy is not wiped (the JSON API hands
 * MHD our buffer instead). Key bytes therefore linger in freed heap until
 * reused, as they do in the kernel's socket buffers.
 */
#ifndef AGENT_GRPC_H
#define AGENT_GRPC_H

#include <stdint.h>

#include "agent/agent_admit.h"
#include "agent/agent_attest.h"
#include "agent/agent_jwt.h"
#include "agent/agent_sds.h"
#include "agent/agent_state.h"
#include "api/core/mf_err.h"

#define GRPC_REQ_MAX          (64u * 1024u)
#define GRPC_HEADERS_MAX      (16u * 1024u)
#define GRPC_STREAMS_MAX      100u
#define GRPC_MSG_MAX          (4u * 1024u * 1024u)
#define GRPC_CONN_PENDING_MAX (8u * 1024u * 1024u)

struct agent_grpc;

struct agent_grpc_cfg {
    struct agent_state *state;
    struct agent_attestor *att;
    struct agent_jwt *jwt;     /* JWT-SVIDs; NULL: FetchJWTSVID is Unavailable */
    struct agent_admit *admit; /* connection counts by uid; NULL: none kept */
    int *long_lived;           /* atomic counter shared with JSON watch streams */
    unsigned max_long_lived;
    unsigned conn_timeout_s;                /* a request complete within, from accept or HEADERS */
    unsigned idle_timeout_s;                /* closed after this long without a call */
    bool allow_verifiers;                   /* bundles and ValidateJWTSVID without an entry */
    enum agent_sds_validator sds_validator; /* SDS validation contexts (agent_sds.h) */
};

MF_WUR mf_res agent_grpc_new(const struct agent_grpc_cfg *cfg, struct agent_grpc **out);

/* Serves the accepted connection fd (nothing read from it yet) on a new
 * thread; uid is its peer's (counted once in cfg->admit, released here),
 * stamp its agent_attest_stamp() from accept (copied) and accept_ms
 * mf_mono_ms() at accept. Every read checks that the connecting process
 * wrote the bytes. Takes fd and the count: both are released on failure
 * (MF_ERR_POLICY_LIMIT when the long-lived slots are all taken). */
MF_WUR mf_res agent_grpc_serve(struct agent_grpc *g, int fd, uid_t uid,
                               const struct agent_conn_stamp *stamp, int64_t accept_ms);

/* Connections being served now. */
unsigned agent_grpc_conns(struct agent_grpc *g);

/* Ends every connection (GOAWAY), waits for their threads, frees g. The
 * state must be stopping already. NULL is a no-op. */
void agent_grpc_free(struct agent_grpc *g);

#endif /* AGENT_GRPC_H */
