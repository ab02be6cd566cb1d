/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_tls: the one wolfSSL TLS layer of libmayfly. mf_http (the agent's
 * HTTPS client to the CA) and mf_tlsconfig (mTLS for workloads) both run
 * their handshakes and their records through it.
 * Internal: used inside libmayfly; not installed, and not for workloads to
 * include.
 *
 * It gives them three things, written once:
 *   - transport: wolfSSL I/O callbacks over a non-blocking socket
 *     (MSG_NOSIGNAL, so a vanished peer is an error and not a SIGPIPE), a
 *     poll() wait bounded by a monotonic deadline and an optional cancel fd,
 *     and one mapping of a failed wolfSSL call to an mf_res.
 *   - identity: loading an SVID chain and its key into a WOLFSSL_CTX.
 *   - the trust decision, made inside the handshake: every WOLFSSL_CTX set
 *     up by mf_tls_ctx_setup verifies the peer with a verify callback that,
 *     on the whole chain the peer sent (leaf first), runs
 *       1. authentication: mf_svid_verify against the bundle of the leaf's
 *          own trust domain in the policy's bundle set (never a pool of
 *          trust domains, SPIFFE.md B20-B25), then
 *       2. authorization (B26): the policy's authorize function on the
 *          verified SPIFFE ID (an expected server ID, a workload's
 *          mf_authorizer...).
 *     Failing either aborts the handshake with a fatal alert, before any
 *     application byte is read or written; the error's detail says which
 *     step failed: "refused peer <ID>: chain does not verify: <why>" or
 *     "refused peer <ID>: <authorizer's reason>".
 *     wolfSSL still checks the TLS 1.3 CertificateVerify signature, which
 *     proves that the peer holds the key of the leaf we verified.
 *
 * The alert sent on a refusal: wolfSSL 5.5.4 has no way for a verify
 * callback to choose it (its alert comes from its own verdict on the
 * chain: unknown_ca when it found no signer, certificate_expired, and
 * bad_certificate when its verdict was good and only our callback said no).
 * So the bundles' X.509 authorities are loaded into the WOLFSSL_CTX as well,
 * for that purpose only: a peer whose chain is fine but whose ID is refused
 * is told bad_certificate, not "unknown certificate authority". wolfSSL's
 * verdict never decides anything (see mf_tls.c).
 *
 * Threads: a struct mf_tls_io and a struct mf_tls_check are used by one
 * connection on one thread at a time; a policy is read-only during a
 * handshake.
 */
#ifndef MF_TLS_H
#define MF_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

#define MF_TLS_CHAIN_MAX 8u    /* certificates accepted from a peer */
#define MF_TLS_WHY_MAX   4096u /* a refusal's detail */

/* ---- transport ---------------------------------------------------------- */

struct mf_tls_io {
    int fd;           /* connected stream socket, non-blocking */
    int64_t deadline; /* of the call in progress, monotonic ms */
    int cancel_fd;    /* when readable, waits fail at once; or -1 */
    bool peer_gone;   /* the transport saw EOF, EPIPE or a reset */
    bool failed;      /* a TLS call failed fatally: send no close_notify */
};

/* Sets fd, no deadline yet, no cancel fd, no flags. */
void mf_tls_io_init(struct mf_tls_io *io, int fd);

/* Sets io->deadline to timeout_ms from now (MF_ERR_USAGE_ARG if negative). */
MF_WUR mf_res mf_tls_io_deadline(struct mf_tls_io *io, int timeout_ms);

/* Waits until fd is ready for events, or fails with MF_ERR_IO_TIMEOUT when
 * the deadline passes, or at once (detail "cancelled") when cancel_fd (if
 * >= 0) is readable. Errors and hang-ups on fd are left to the read or
 * write that follows. Also for plain sockets. */
MF_WUR mf_res mf_tls_wait(int fd, short events, int64_t deadline, int cancel_fd);

/* Makes ssl do its I/O on io->fd through io (borrowed: io must outlive
 * ssl). */
void mf_tls_io_attach(WOLFSSL *ssl, struct mf_tls_io *io);

/* After a wolfSSL call on ssl returned ret <= 0: waits as wolfSSL asks and
 * returns MF_RES_OK when the call should be repeated, or the error:
 * MF_ERR_IO_EOF for close_notify or a transport that ended, MF_ERR_AUTH
 * when the peer sent a fatal alert (the detail names it), MF_ERR_AUTH_MISSING
 * when the peer sent no certificate, MF_ERR_IO_TIMEOUT, MF_ERR_IO. what
 * ("read", "the handshake") is used in the detail. Every error but a
 * timeout sets io->failed. */
MF_WUR mf_res mf_tls_retry(WOLFSSL *ssl, struct mf_tls_io *io, int ret, const char *what);

/* ---- identity ----------------------------------------------------------- */

/* Loads chain (leaf first) and key into ctx and checks that they match.
 * The key's DER copy lives in a secret buffer, wiped on return. who names
 * the identity in errors. */
MF_WUR mf_res mf_tls_load_identity(WOLFSSL_CTX *ctx, const struct mf_certs *chain,
                                   const struct mf_key *key, const char *who);

/* ---- the trust decision -------------------------------------------------- */

/* Who may be on the other end. trust and arg are borrowed and must outlive
 * every handshake that uses the policy. authorize is called on the verified
 * ID and chain; it returns MF_RES_OK to accept, anything else (with a
 * detail raised by MF_BAIL_MSG) to refuse. NULL accepts any peer that
 * authenticates. */
struct mf_tls_policy {
    const struct mf_bundle_set *trust;
    mf_res (*authorize)(void *arg, const struct mf_spiffe_id *peer, const struct mf_certs *chain);
    void *arg;
};

/* Where the verify callback finds its policy and, for one connection, keeps
 * what it decided. */
struct mf_tls_check {
    const struct mf_tls_policy *policy;
    bool record;            /* keep the outcome below (one connection's check) */
    bool passed;            /* record only: the check ran and accepted */
    struct mf_spiffe_id id; /* record only: the verified peer */
    struct mf_certs chain;  /* record only: its chain, leaf first (owned) */
    enum mf_err err;        /* record only: why it refused, or MF_OK */
    char why[MF_TLS_WHY_MAX];
};

/* record is false for a context-wide check, which only decides. */
void mf_tls_check_init(struct mf_tls_check *c, const struct mf_tls_policy *policy, bool record);
void mf_tls_check_cleanup(struct mf_tls_check *c);

/* Sets ctx up to verify every peer with check (borrowed; it must outlive
 * ctx) inside the handshake, as the file comment says: a server demands a
 * client certificate; session resumption (cache and TLS 1.3 tickets) is
 * off, so every handshake verifies a certificate; the policy's X.509
 * authorities are loaded only to shape the alert. */
MF_WUR mf_res mf_tls_ctx_setup(WOLFSSL_CTX *ctx, bool server, struct mf_tls_check *check);

/* Runs the handshake on ssl (made from a context set up above, with io
 * attached and io->deadline set): with check (record true) as this
 * connection's own. On failure, our own refusal is reported rather than
 * wolfSSL's echo of it; on success the check must have run and accepted
 * (fail closed). */
MF_WUR mf_res mf_tls_handshake(WOLFSSL *ssl, struct mf_tls_io *io, bool server,
                               struct mf_tls_check *check);

/* Makes *ssl from ctx, attaches io and runs mf_tls_handshake. *ssl is set
 * as soon as it exists, so the caller frees it (wolfSSL_free) on failure
 * too. */
MF_WUR mf_res mf_tls_session(WOLFSSL_CTX *ctx, struct mf_tls_io *io, bool server,
                             struct mf_tls_check *check, WOLFSSL **ssl);

/* The same decision after the fact, on the peer chain a finished handshake
 * kept (wolfSSL_get_peer_chain); writes the peer's ID to id and its chain
 * to chain (initialised by the caller, filled on success). */
MF_WUR mf_res mf_tls_check_finished(const struct mf_tls_policy *policy, WOLFSSL *ssl,
                                    struct mf_spiffe_id *id, struct mf_certs *chain);

#endif /* MF_TLS_H */
