/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_tlsconfig: mutual TLS for workloads, fed from the Workload API, with
 * the peer's SPIFFE ID checked against a policy (what go-spiffe's
 * tlsconfig gives Go programs, on wolfSSL).
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * mTLS proves identity, not permission. Every handshake made here does both
 * steps, in order, inside the handshake:
 *   1. authentication: the peer's chain (leaf first, as it sent it) must be a
 *      valid X509-SVID for the bundle of the leaf's own trust domain in the
 *      current snapshot (mf_svid_verify: never a pool of trust domains,
 *      SPIFFE.md B20-B25). wolfSSL's own chain check decides nothing (it
 *      only picks the alert); wolfSSL still checks the TLS 1.3
 *      CertificateVerify signature, which proves the peer holds the leaf's
 *      key. Both steps are those of libmayfly's one TLS layer, mf_tls,
 *      which mf_http (the agent's client to the CA) uses too.
 *   2. authorization (B26): the verified SPIFFE ID must satisfy an
 *      mf_authorizer (any, one exact ID, any member of a trust domain, one
 *      of a list, or the caller's own function).
 * A peer that fails either step fails the handshake, so no application byte
 * is read from or written to it. A client checks the server before it sends
 * its own certificate. The fatal alert it is sent says what happened:
 * unknown_ca (its chain leads to no authority we hold), certificate_expired,
 * or bad_certificate (refused for another reason, e.g. by the authorizer;
 * wolfSSL 5.5.4 offers no way to send access_denied from its verify
 * callback).
 *
 * Rotation: an mf_tls_config is tied to an mf_x509_source (or to a fixed
 * snapshot, for tests and static identities). Each new connection uses an
 * mf_tls_ctx built from the current snapshot: when the snapshot changed, a
 * fresh WOLFSSL_CTX is built from the new default SVID and bundles, so new
 * connections present the rotated SVID and trust the new bundles without a
 * restart, while existing connections keep the context they started with
 * (it is reference counted). Only TLS 1.3 is offered; session tickets and
 * the session cache are off, so every handshake verifies a certificate.
 *
 * Threads: an mf_tls_config may be used from several threads at once
 * (acquire is serialised by a mutex). An mf_tls_ctx is immutable and may be
 * shared; an mf_tls_conn is used by one thread at a time. Authorizer
 * functions are called on the handshaking thread and must be thread-safe.
 *
 * Errors: MF_ERR_POLICY_DENIED when the peer is authentic but not
 * authorized; MF_ERR_AUTH_* when its chain does not verify (untrusted CA,
 * expired, not an SVID, no certificate); for both the detail reads
 * "refused peer <claimed ID>: <reason>", e.g.
 * "refused peer spiffe://example.org/b: not authorized (want
 * spiffe://example.org/a)", or "refused peer spiffe://other.org/x: chain
 * does not verify: ..." when authentication failed. MF_ERR_AUTH when the peer refused us (a TLS
 * alert), MF_ERR_IO_* for transport failures and timeouts.
 *
 * This is the TLS integration header: wolfSSL types appear here, and
 * <wolfssl/options.h> is included before any other wolfSSL header.
 */
#ifndef MF_TLSCONFIG_H
#define MF_TLSCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "api/workload/mf_workload.h"

#define MF_TLS_PEER_CHAIN_MAX 8u    /* certificates accepted from a peer */
#define MF_AUTHZ_IDS_MAX      1024u /* IDs in a one-of authorizer */

/* ---- authorizers ----------------------------------------------------------- */

enum mf_authz_kind {
    MF_AUTHZ_ANY = 0,   /* any authenticated peer */
    MF_AUTHZ_ID,        /* exactly one SPIFFE ID */
    MF_AUTHZ_MEMBER_OF, /* any ID in one trust domain */
    MF_AUTHZ_ONE_OF,    /* one of a list of IDs */
    MF_AUTHZ_FUNC,      /* the caller's function */
};

/* A policy on the peer's verified SPIFFE ID. Plain data: build it with one
 * of the mf_authorize_* functions below. mf_tls_config_new copies it
 * (including the ID list), so the caller's storage need only live through
 * that call; the function's arg is borrowed and must outlive the config and
 * every context and connection made from it. */
struct mf_authorizer {
    enum mf_authz_kind kind;
    struct mf_spiffe_id id;         /* MF_AUTHZ_ID */
    char td[MF_TD_MAX + 1];         /* MF_AUTHZ_MEMBER_OF: bare name */
    const struct mf_spiffe_id *ids; /* MF_AUTHZ_ONE_OF: borrowed */
    size_t n_ids;
    /* MF_AUTHZ_FUNC, the caller's check: return MF_RES_OK to accept peer
     * (whose chain has already been verified), anything else to refuse; a
     * detail raised with MF_BAIL_MSG is shown as the reason. */
    mf_res (*fn)(void *arg, const struct mf_spiffe_id *peer, const struct mf_certs *chain);
    void *arg;
};

/* Accepts any peer that authenticates (go-spiffe AuthorizeAny). */
void mf_authorize_any(struct mf_authorizer *out);
/* Accepts exactly this SPIFFE ID (parsed here; MF_ERR_ID_* if invalid). */
MF_WUR mf_res mf_authorize_id(const char *id, struct mf_authorizer *out);
/* Accepts any ID of trust domain td ("example.org" or "spiffe://example.org");
 * exact equality of the trust domain, never a suffix match. */
MF_WUR mf_res mf_authorize_member_of(const char *td, struct mf_authorizer *out);
/* Accepts any of n IDs (1..MF_AUTHZ_IDS_MAX); ids is borrowed (see above). */
MF_WUR mf_res mf_authorize_one_of(const struct mf_spiffe_id *ids, size_t n,
                                  struct mf_authorizer *out);
/* Delegates to fn(arg, ...). */
MF_WUR mf_res mf_authorize_func(mf_res (*fn)(void *arg, const struct mf_spiffe_id *peer,
                                             const struct mf_certs *chain),
                                void *arg, struct mf_authorizer *out);

/* Applies a to an already verified peer. MF_RES_OK, or MF_ERR_POLICY_DENIED
 * with the detail "not authorized (want ...)" (a function authorizer's own
 * error is passed through). chain may be NULL except for MF_AUTHZ_FUNC. */
MF_WUR mf_res mf_authorize(const struct mf_authorizer *a, const struct mf_spiffe_id *peer,
                           const struct mf_certs *chain);

/* ---- configurations ------------------------------------------------------ */

enum mf_tls_role {
    MF_TLS_SERVER = 0, /* requires and verifies a client certificate */
    MF_TLS_CLIENT = 1, /* verifies the server, presents its own SVID */
};

struct mf_tls_config; /* opaque */

/* A configuration that follows src: each new connection uses src's current
 * snapshot (its default SVID, svids[0], and its bundles). src is borrowed
 * and must outlive the configuration. authz is copied. */
MF_WUR mf_res mf_tls_config_new(enum mf_tls_role role, struct mf_x509_source *src,
                                const struct mf_authorizer *authz, struct mf_tls_config **out);

/* A configuration on one fixed snapshot (a new reference is taken). Builds
 * the TLS context at once, so a snapshot wolfSSL refuses fails here. */
MF_WUR mf_res mf_tls_config_new_fixed(enum mf_tls_role role, struct mf_x509_context *x509,
                                      const struct mf_authorizer *authz,
                                      struct mf_tls_config **out);

/* Replaces the fixed snapshot (a new reference is taken); new connections
 * use it, existing ones keep theirs. MF_ERR_STATE on a configuration that
 * follows a source. */
MF_WUR mf_res mf_tls_config_set_context(struct mf_tls_config *cfg, struct mf_x509_context *x509);

/* Frees the configuration. Contexts and connections made from it stay
 * valid (they hold their own references). NULL is a no-op. */
void mf_tls_config_free(struct mf_tls_config *cfg);

/* ---- contexts (for callers that drive wolfSSL themselves) ----------------- */

struct mf_tls_ctx; /* opaque, immutable, reference counted */

/* A reference to the context for the current snapshot, building a new one
 * when the snapshot changed since the last call. Errors: those of
 * mf_x509_source_get (no identity yet, identity withdrawn), MF_ERR_CRYPTO*
 * when wolfSSL refuses the SVID. */
MF_WUR mf_res mf_tls_config_acquire(struct mf_tls_config *cfg, struct mf_tls_ctx **out);

/* The WOLFSSL_CTX, borrowed while the reference is held. Every WOLFSSL made
 * from it runs the SPIFFE verification and the authorizer inside the
 * handshake. Do not change its verification settings. After the handshake,
 * call mf_tls_ctx_peer_id before using the connection. */
WOLFSSL_CTX *mf_tls_ctx_wolfssl(const struct mf_tls_ctx *t);

/* The SVID this context presents, and its snapshot. Borrowed while the
 * reference is held. */
const struct mf_x509_svid *mf_tls_ctx_svid(const struct mf_tls_ctx *t);
const struct mf_x509_context *mf_tls_ctx_x509(const struct mf_tls_ctx *t);

/* Verifies the peer of a finished handshake on ssl (made from t's
 * WOLFSSL_CTX) again, from wolfSSL_get_peer_chain, and applies the
 * authorizer; writes the peer's SPIFFE ID to out. Errors as in the file
 * comment; MF_ERR_AUTH_MISSING when the peer sent no certificate. It also
 * arranges (mf_x509_global_init) for the calling thread's wolfCrypt ECC
 * cache to be freed when the thread exits; threads that run handshakes but
 * never call this should call mf_x509_global_init themselves. */
MF_WUR mf_res mf_tls_ctx_peer_id(const struct mf_tls_ctx *t, WOLFSSL *ssl,
                                 struct mf_spiffe_id *out);

/* Drops a reference. NULL is a no-op. */
void mf_tls_ctx_release(struct mf_tls_ctx *t);

/* ---- connections ------------------------------------------------------------ */

struct mf_tls_conn; /* opaque */

/* Runs the server side (mf_tls_accept, needs an MF_TLS_SERVER config) or
 * client side (mf_tls_connect, MF_TLS_CLIENT) of a TLS 1.3 handshake on a
 * connected stream socket, within timeout_ms. Takes ownership of fd, also on
 * failure (it is closed then); fd is made non-blocking. On success the peer
 * has been verified and authorized. */
MF_WUR mf_res mf_tls_accept(struct mf_tls_config *cfg, int fd, int timeout_ms,
                            struct mf_tls_conn **out);
MF_WUR mf_res mf_tls_connect(struct mf_tls_config *cfg, int fd, int timeout_ms,
                             struct mf_tls_conn **out);

/* The peer's verified SPIFFE ID and chain (leaf first). Borrowed from c. */
const struct mf_spiffe_id *mf_tls_conn_peer_id(const struct mf_tls_conn *c);
const struct mf_certs *mf_tls_conn_peer_chain(const struct mf_tls_conn *c);
/* The SVID we presented on c. Borrowed from c. */
const struct mf_x509_svid *mf_tls_conn_svid(const struct mf_tls_conn *c);
/* The underlying wolfSSL object, for callers that need more. Borrowed. */
WOLFSSL *mf_tls_conn_ssl(struct mf_tls_conn *c);

/* Reads 1..cap bytes into buf (*got), waiting at most timeout_ms.
 * MF_ERR_IO_EOF when the peer closed (close_notify or transport end),
 * MF_ERR_IO_TIMEOUT when nothing came (the call may be repeated),
 * MF_ERR_AUTH when the peer sent a fatal alert (for a TLS 1.3 client, this
 * is how a server's refusal of our certificate shows). */
MF_WUR mf_res mf_tls_conn_read(struct mf_tls_conn *c, void *buf, size_t cap, int timeout_ms,
                               size_t *got);
/* Writes all n bytes within timeout_ms. */
MF_WUR mf_res mf_tls_conn_write(struct mf_tls_conn *c, const void *buf, size_t n, int timeout_ms);

/* Sends close_notify (best effort, never waits), frees the connection and
 * closes its socket. NULL is a no-op. */
void mf_tls_conn_close(struct mf_tls_conn *c);

#endif /* MF_TLSCONFIG_H */
