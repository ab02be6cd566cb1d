/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_client: the agent's side of the agent-to-CA protocol (docs/api.md):
 * attest, renew, long-poll sync and batch sign, over one TLS 1.3
 * connection that is reused while it lasts.
 *
 * Every connection checks before sending anything that the server chains to
 * the current trust bundle and presents spiffe://<td>/mayfly/server or an ID
 * one segment below it, spiffe://<td>/mayfly/server/<server id> (any server
 * of the trust domain: mf_http_connect_tls with expect_server_id and
 * server_id_below). After attestation the agent's own SVID is the client
 * certificate.
 *
 * Responses come from an authenticated CA, so unknown members are tolerated
 * (a newer CA may add some); known members are type- and size-checked, and
 * every SVID received is verified against the bundle and its key before use.
 *
 * Not thread-safe: owned by the worker thread.
 */
#ifndef AGENT_CLIENT_H
#define AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/core/mf_err.h"
#include "api/net/mf_http.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

#define AGENT_SYNC_WAIT_MAX 30 /* seconds of long poll per request */

/* Why the CA refused the calling agent itself (403, docs/api.md). */
enum agent_denial {
    AGENT_DENIAL_NONE = 0,
    AGENT_DENIAL_BANNED,  /* "banned": no request will succeed until unbanned */
    AGENT_DENIAL_EVICTED, /* "evicted": the identity is gone; attest again */
};

#define AGENT_SERVERS_MAX 16 /* CA servers in --server */

/* One CA server of the list, and how it has been failing. */
struct agent_server {
    char addr[256];        /* host:port */
    unsigned fails;        /* failures in a row */
    int64_t down_until_ms; /* monotonic: not tried again before */
};

struct agent_client {
    char server[256]; /* host:port of the server in use */
    struct agent_server servers[AGENT_SERVERS_MAX];
    size_t n_servers;
    size_t cur;  /* index of the server in use */
    bool report; /* this client's server is the one in the metrics */
    char td[MF_TD_MAX + 1];
    char server_id[MF_SPIFFE_ID_MAX + 1]; /* spiffe://<td>/mayfly/server[/<id>] */
    struct mf_bundle_set trust;           /* what the server must chain to */
    const struct mf_key *key;             /* agent key (borrowed), or NULL */
    const struct mf_certs *chain;         /* agent SVID (borrowed), or NULL */
    struct mf_http_conn *conn;            /* open connection, or NULL */
    int retry_after;                      /* last Retry-After seen, or -1 */
    enum agent_denial denial;             /* of the last request */
    int cancel_fd;                        /* readable = abandon requests (-1: none) */
};

/* servers is one "host:port" or several, comma-separated (at most
 * AGENT_SERVERS_MAX, each a CA server of the same trust domain). The client
 * starts on one drawn at random, so that agents spread over the servers,
 * and stays on it while it answers. When connecting, the TLS handshake or
 * a request fails at the transport, or the server answers 5xx, the next
 * request goes to another server: one whose backoff has passed, drawn at
 * random (or the one whose backoff ends first); the failed server is not
 * tried again for an exponential backoff with jitter (1 s doubling to
 * 60 s, drawn in its upper half). The move is logged with its reason. */
MF_WUR mf_res agent_client_init(struct agent_client *cl, const char *servers, const char *td,
                                struct mf_bundle *trust);
void agent_client_cleanup(struct agent_client *cl);
/* The server in use failed (reason, for the log): pause it with backoff
 * and jitter and move to another one, as described at agent_client_init.
 * Called by the requests themselves; nothing happens with one server, or
 * when the owner cancelled the request (cancel_fd readable). */
void agent_client_fail_over(struct agent_client *cl, const char *reason);
/* Makes this client's server the one the metrics show (the worker's). */
void agent_client_report(struct agent_client *cl);
/* Replaces the trust bundle (adds a reference) and drops the connection. */
MF_WUR mf_res agent_client_set_trust(struct agent_client *cl, struct mf_bundle *b);
/* Sets the client identity (borrowed until the next call) and drops the
 * connection so the next request presents it. */
void agent_client_set_identity(struct agent_client *cl, const struct mf_key *key,
                               const struct mf_certs *chain);
void agent_client_disconnect(struct agent_client *cl);

/* POST /v1/attest with a CSR made from key (no SAN). On success, chain holds
 * the verified agent SVID and *bundle the CA's bundle (a new reference). */
MF_WUR mf_res agent_client_attest(struct agent_client *cl, const char *token,
                                  const struct mf_key *key, struct mf_certs *chain,
                                  struct mf_bundle **bundle);
/* POST /v1/renew for agent_id with a CSR made from new_key. */
MF_WUR mf_res agent_client_renew(struct agent_client *cl, const char *agent_id,
                                 const struct mf_key *new_key, struct mf_certs *chain,
                                 struct mf_bundle **bundle);

/* GET /v1/sync. *out is the parsed 200 body, or NULL for 204. */
MF_WUR mf_res agent_client_sync(struct agent_client *cl, const char *revision, int wait_s,
                                json_t **out);

/* POST /v1/sign with body {"requests":[...]}; *out is the parsed reply. */
MF_WUR mf_res agent_client_sign(struct agent_client *cl, const json_t *requests, json_t **out);

/* POST /v1/jwt: a JWT-SVID for spiffe_id (an entry parented to this agent)
 * with audiences aud[0..n_aud). *token is the compact token as the CA sent
 * it (caller frees); the caller validates it. */
MF_WUR mf_res agent_client_jwt(struct agent_client *cl, const char *spiffe_id,
                               const char *const *aud, size_t n_aud, char **token);

/* Decodes an array of base64 DER certificates into chain (appended). */
MF_WUR mf_res agent_chain_from_b64(const json_t *arr, struct mf_certs *chain);

/* Decodes a SPIFFE bundle JSON object of trust domain td. */
MF_WUR mf_res agent_bundle_from_json(const char *td, const json_t *obj, struct mf_bundle **out);

#endif /* AGENT_CLIENT_H */
