/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_tls: the one wolfSSL TLS layer of libmayfly. See mf_tls.h.
 *
 * How the peer is checked inside the handshake: a context set up by
 * mf_tls_ctx_setup has WOLFSSL_VERIFY_PEER and verify_cb. This wolfSSL is
 * built with WOLFSSL_ALWAYS_VERIFY_CB, so the callback runs for every
 * certificate of the peer's chain, from the top down, and last for the leaf
 * (error depth 0), whatever wolfSSL's own verdict; each call sees the whole
 * chain as the peer sent it (store->certs, leaf first). The decision is made
 * at depth 0 on the whole chain: mf_svid_verify, then the policy's
 * authorizer. Returning 0 there makes wolfSSL abort the handshake with an
 * alert; returning 1 overrides whatever wolfSSL thought.
 *
 * wolfSSL's own verdict is therefore never used. It does pick the alert,
 * though (ProcessPeerCerts: a refusal keeps wolfSSL's own error, so
 * ASN_NO_SIGNER_E becomes unknown_ca, a date error certificate_expired,
 * and a refusal of a chain wolfSSL found good becomes VERIFY_CERT_ERROR,
 * sent as bad_certificate). Without trust anchors every refusal would read
 * "unknown CA", also when only the peer's ID was refused; so the policy's
 * X.509 authorities are loaded as wolfSSL anchors, all trust domains
 * together. That pool only names the alert: the decision stays with
 * mf_svid_verify and its one-trust-domain rule.
 *
 * The callback finds its policy through the verify-callback context
 * (wolfSSL_CTX_SetCertCbCtx / wolfSSL_SetCertCbCtx, handed to the callback
 * as store->userCtx). A connection's own struct mf_tls_check records the
 * verified ID and chain; after the handshake mf_tls_handshake insists that
 * it was recorded (fail closed, should wolfSSL ever skip the depth-0 call).
 */
#include "api/net/mf_tls.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <sys/socket.h>

#include <wolfssl/options.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfio.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_log.h"
#include "api/core/mf_time.h"

#define KEY_DER_CAP 4096u
#define ALERT_FATAL 2

/* ---- transport ---------------------------------------------------------- */

/* see mf_tls.h */
void mf_tls_io_init(struct mf_tls_io *io, int fd)
{
    memset(io, 0, sizeof(*io));
    io->fd = fd;
    io->cancel_fd = -1;
}

/* see mf_tls.h */
mf_res mf_tls_io_deadline(struct mf_tls_io *io, int timeout_ms)
{
    MF_ENSURE_MSG(timeout_ms >= 0, MF_ERR_USAGE_ARG, "negative timeout %d", timeout_ms);
    io->deadline = mf_mono_ms() + timeout_ms;
    return MF_RES_OK;
}

/* see mf_tls.h */
mf_res mf_tls_wait(int fd, short events, int64_t deadline, int cancel_fd)
{
    for (;;) {
        int64_t left = deadline - mf_mono_ms();
        if (left < 0) {
            left = 0;
        }
        struct pollfd pfd[2] = {
            {.fd = fd, .events = events, .revents = 0},
            {.fd = cancel_fd, .events = POLLIN, .revents = 0},
        };
        int n = poll(pfd, cancel_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0) {
            MF_ENSURE_MSG(pfd[1].revents == 0, MF_ERR_IO_TIMEOUT, "cancelled");
            return MF_RES_OK;
        }
        if (n == 0) {
            MF_BAIL_MSG(MF_ERR_IO_TIMEOUT, "no progress before the deadline");
        }
        MF_ENSURE_MSG(errno == EINTR, MF_ERR_IO, "poll: %s", strerror(errno));
    }
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct mf_tls_io *io = ctx;
    for (;;) {
        ssize_t n = recv(io->fd, buf, (size_t)sz, 0);
        if (n > 0) {
            return (int)n;
        }
        if (n == 0) {
            io->peer_gone = true;
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        }
        switch (errno) {
        case EINTR:
            continue;
        case EAGAIN:
            return WOLFSSL_CBIO_ERR_WANT_READ;
        case ECONNRESET:
            io->peer_gone = true;
            return WOLFSSL_CBIO_ERR_CONN_RST;
        default:
            return WOLFSSL_CBIO_ERR_GENERAL;
        }
    }
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct mf_tls_io *io = ctx;
    for (;;) {
        ssize_t n = send(io->fd, buf, (size_t)sz, MSG_NOSIGNAL);
        if (n >= 0) {
            return (int)n;
        }
        switch (errno) {
        case EINTR:
            continue;
        case EAGAIN:
            return WOLFSSL_CBIO_ERR_WANT_WRITE;
        case ECONNRESET:
            io->peer_gone = true;
            return WOLFSSL_CBIO_ERR_CONN_RST;
        case EPIPE:
            io->peer_gone = true;
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        default:
            return WOLFSSL_CBIO_ERR_GENERAL;
        }
    }
}

/* see mf_tls.h */
void mf_tls_io_attach(WOLFSSL *ssl, struct mf_tls_io *io)
{
    wolfSSL_SSLSetIORecv(ssl, io_recv);
    wolfSSL_SSLSetIOSend(ssl, io_send);
    wolfSSL_SetIOReadCtx(ssl, io);
    wolfSSL_SetIOWriteCtx(ssl, io);
}

/* see mf_tls.h */
mf_res mf_tls_retry(WOLFSSL *ssl, struct mf_tls_io *io, int ret, const char *what)
{
    int e = wolfSSL_get_error(ssl, ret);
    switch (e) {
    case WOLFSSL_ERROR_WANT_READ:
        return mf_tls_wait(io->fd, POLLIN, io->deadline, io->cancel_fd);
    case WOLFSSL_ERROR_WANT_WRITE:
        return mf_tls_wait(io->fd, POLLOUT, io->deadline, io->cancel_fd);
    case WOLFSSL_ERROR_ZERO_RETURN:
        /* close_notify: an orderly end */
        MF_BAIL_MSG(MF_ERR_IO_EOF, "the peer closed the TLS connection");
    default:
        break;
    }
    io->failed = true;
    if (e == NO_PEER_CERT) {
        MF_BAIL_MSG(MF_ERR_AUTH_MISSING, "refused peer: it sent no certificate");
    }
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    if (wolfSSL_get_alert_history(ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.level == ALERT_FATAL) {
        MF_BAIL_MSG(MF_ERR_AUTH, "the peer refused the connection (TLS alert %s during %s)",
                    wolfSSL_alert_desc_string_long(h.last_rx.code), what);
    }
    if (io->peer_gone) {
        /* the transport ended without close_notify */
        MF_BAIL_MSG(MF_ERR_IO_EOF, "the peer went away during %s", what);
    }
    char msg[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)e, msg, sizeof(msg));
    MF_BAIL_MSG(MF_ERR_IO, "TLS %s failed: %s (%d)", what, msg, e);
}

/* ---- identity ----------------------------------------------------------- */

/* see mf_tls.h */
mf_res mf_tls_load_identity(WOLFSSL_CTX *ctx, const struct mf_certs *chain,
                            const struct mf_key *key, const char *who)
{
    mf_res rc;
    struct mf_buf der;
    struct mf_buf kder;
    mf_buf_init(&der, MF_MAX_BUNDLE, 0);
    mf_buf_init(&kder, KEY_DER_CAP, MF_BUF_SECRET);
    MF_TRY_OUT(mf_certs_to_der_concat(chain, &der));
    MF_ENSURE_OUT_MSG(der.len > 0 && der.len <= INT_MAX, MF_ERR_USAGE_ARG,
                      "empty certificate chain for %s", who);
    MF_ENSURE_OUT_MSG(wolfSSL_CTX_use_certificate_chain_buffer_format(
                          ctx, der.data, (long)der.len, WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS,
                      MF_ERR_CRYPTO, "wolfSSL refused the certificate chain of %s", who);
    MF_TRY_OUT(mf_key_to_der(key, &kder));
    MF_ENSURE_OUT_MSG(wolfSSL_CTX_use_PrivateKey_buffer(ctx, kder.data, (long)kder.len,
                                                        WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS,
                      MF_ERR_CRYPTO_KEY, "wolfSSL refused the key of %s", who);
    MF_ENSURE_OUT_MSG(wolfSSL_CTX_check_private_key(ctx) == WOLFSSL_SUCCESS, MF_ERR_CRYPTO_MISMATCH,
                      "the key of %s does not match its certificate", who);
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    mf_buf_cleanup(&kder); /* secret: wiped */
    return rc;
}

/* ---- the trust decision -------------------------------------------------- */

/* see mf_tls.h */
void mf_tls_check_init(struct mf_tls_check *c, const struct mf_tls_policy *policy, bool record)
{
    memset(c, 0, sizeof(*c));
    c->policy = policy;
    c->record = record;
    mf_certs_init(&c->chain);
}

/* see mf_tls.h */
void mf_tls_check_cleanup(struct mf_tls_check *c)
{
    if (c != NULL) {
        mf_certs_cleanup(&c->chain);
    }
}

/* Verifies a peer chain given as DER buffers (leaf first): authentication,
 * then authorization. On failure, why says who was refused and which step
 * failed, in one line. */
static mf_res check_peer(const struct mf_tls_policy *p, const WOLFSSL_BUFFER_INFO *certs, int n,
                         struct mf_spiffe_id *id, struct mf_certs *chain, char *why, size_t cap)
{
    mf_res rc;
    const char *step = "";
    mf_err_clear();
    MF_ENSURE_OUT_MSG(n > 0 && certs != NULL, MF_ERR_AUTH_MISSING, "it sent no certificate");
    MF_ENSURE_OUT_MSG((size_t)n <= MF_TLS_CHAIN_MAX, MF_ERR_PROTO_TOO_LARGE,
                      "chain of %d certificates (at most %u)", n, MF_TLS_CHAIN_MAX);
    for (int i = 0; i < n; i++) {
        MF_ENSURE_OUT_MSG(certs[i].buffer != NULL && certs[i].length > 0, MF_ERR_AUTH_MISSING,
                          "empty certificate %d", i);
        struct mf_cert *cert = NULL;
        MF_TRY_OUT(mf_cert_from_der(certs[i].buffer, certs[i].length, &cert));
        rc = mf_certs_push(chain, cert);
        mf_cert_free(cert);
        MF_TRY_OUT(rc);
    }
    step = "chain does not verify: ";
    MF_TRY_OUT(mf_svid_verify(chain, p->trust, mf_now(), id));
    step = "";
    if (p->authorize != NULL) {
        mf_err_clear();
        rc = p->authorize(p->arg, id, chain);
        /* a refusal with no reason of its own still says what happened */
        MF_ENSURE_OUT_MSG(mf_ok(rc) || mf_err_detail()[0] != '\0', rc.err,
                          "not authorized (refused by the application's check)");
        MF_TRY_OUT(rc);
    }
    rc = MF_RES_OK;
out:
    if (!mf_ok(rc)) {
        const char *claimed = chain->n > 0 ? mf_cert_spiffe_id_str(chain->v[0]) : NULL;
        const char *detail = mf_err_detail();
        snprintf(why, cap, "refused peer %s: %s%s", claimed != NULL ? claimed : "(no SPIFFE ID)",
                 step, detail[0] != '\0' ? detail : mf_err_str(rc.err));
        memset(id, 0, sizeof(*id));
    }
    return rc;
}

/* wolfSSL's verify callback; see the file comment. */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    (void)preverify; /* wolfSSL's verdict only names the alert */
    struct mf_tls_check *pc = store != NULL ? store->userCtx : NULL;
    if (pc == NULL || pc->policy == NULL) {
        return 0;
    }
    if (store->error_depth != 0) {
        return 1; /* decided at the leaf, on the whole chain */
    }
    struct mf_spiffe_id id;
    struct mf_certs chain;
    char why[MF_TLS_WHY_MAX];
    mf_certs_init(&chain);
    mf_res r =
        check_peer(pc->policy, store->certs, store->totalCerts, &id, &chain, why, sizeof(why));
    if (!mf_ok(r)) {
        mf_log_debug("%s", why);
    }
    if (pc->record) {
        mf_certs_cleanup(&pc->chain);
        pc->passed = mf_ok(r);
        pc->err = r.err;
        if (mf_ok(r)) {
            pc->id = id;
            pc->chain = chain;
            mf_certs_init(&chain);
            pc->why[0] = '\0';
        } else {
            memcpy(pc->why, why, sizeof(why));
        }
    }
    mf_certs_cleanup(&chain);
    return mf_ok(r) ? 1 : 0;
}

/* Loads every X.509 authority of the policy's bundles as a wolfSSL anchor,
 * so that wolfSSL's alert on a refusal is accurate (see the file comment).
 * Best effort: an authority wolfSSL will not load only makes the alert
 * read unknown_ca. */
static void load_alert_anchors(WOLFSSL_CTX *ctx, const struct mf_bundle_set *trust)
{
    for (size_t i = 0; trust != NULL && i < trust->n; i++) {
        const struct mf_certs *cas = &trust->v[i]->x509;
        for (size_t j = 0; j < cas->n; j++) {
            size_t len = 0;
            const uint8_t *der = mf_cert_der(cas->v[j], &len);
            if (der == NULL || len == 0 || len > LONG_MAX ||
                wolfSSL_CTX_load_verify_buffer(ctx, der, (long)len, WOLFSSL_FILETYPE_ASN1) !=
                    WOLFSSL_SUCCESS) {
                mf_log_debug("trust domain %s: authority %zu not loaded into wolfSSL",
                             trust->v[i]->td, j);
            }
        }
    }
}

/* see mf_tls.h */
mf_res mf_tls_ctx_setup(WOLFSSL_CTX *ctx, bool server, struct mf_tls_check *check)
{
    MF_ENSURE_REF(ctx);
    MF_ENSURE_REF(check);
    MF_ENSURE_REF(check->policy);
    MF_ENSURE_MSG(check->policy->trust != NULL, MF_ERR_USAGE_NULL,
                  "a trust bundle set is required");
    load_alert_anchors(ctx, check->policy->trust);
    wolfSSL_CTX_set_verify(ctx,
                           server ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                  : WOLFSSL_VERIFY_PEER,
                           verify_cb);
    wolfSSL_CTX_SetCertCbCtx(ctx, check);
    /* resumption would skip the certificate, and with it our checks */
    (void)wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    if (server) {
        MF_ENSURE_MSG(wolfSSL_CTX_no_ticket_TLSv13(ctx) == 0, MF_ERR_INTERNAL,
                      "could not turn TLS 1.3 session tickets off");
    }
    return MF_RES_OK;
}

/* see mf_tls.h */
mf_res mf_tls_handshake(WOLFSSL *ssl, struct mf_tls_io *io, bool server, struct mf_tls_check *check)
{
    MF_ENSURE_REF(ssl);
    MF_ENSURE_REF(io);
    MF_ENSURE(check != NULL && check->record, MF_ERR_USAGE_ARG);
    wolfSSL_SetCertCbCtx(ssl, check);
    for (;;) {
        int r = server ? wolfSSL_accept(ssl) : wolfSSL_connect(ssl);
        if (r == WOLFSSL_SUCCESS) {
            break;
        }
        if (check->err != MF_OK) {
            /* our verdict on the peer, rather than wolfSSL's echo of it */
            io->failed = true;
            MF_BAIL_MSG(check->err, "%s", check->why);
        }
        MF_TRY(mf_tls_retry(ssl, io, r, "the handshake"));
    }
    /* fail closed: the handshake counts only if our check ran and passed */
    if (!check->passed) {
        io->failed = true;
        MF_BAIL_MSG(MF_ERR_AUTH_MISSING, "refused peer: its certificate was never verified");
    }
    return MF_RES_OK;
}

/* see mf_tls.h */
mf_res mf_tls_session(WOLFSSL_CTX *ctx, struct mf_tls_io *io, bool server,
                      struct mf_tls_check *check, WOLFSSL **ssl)
{
    *ssl = wolfSSL_new(ctx);
    MF_ENSURE_MSG(*ssl != NULL, MF_ERR_NOMEM, "wolfSSL_new");
    mf_tls_io_attach(*ssl, io);
    return mf_tls_handshake(*ssl, io, server, check);
}

/* see mf_tls.h */
mf_res mf_tls_check_finished(const struct mf_tls_policy *policy, WOLFSSL *ssl,
                             struct mf_spiffe_id *id, struct mf_certs *chain)
{
    MF_ENSURE_REF(policy);
    MF_ENSURE_REF(ssl);
    WOLFSSL_BUFFER_INFO bufs[MF_TLS_CHAIN_MAX];
    char why[MF_TLS_WHY_MAX];
    WOLFSSL_X509_CHAIN *wc = wolfSSL_get_peer_chain(ssl);
    int n = wc != NULL ? wolfSSL_get_chain_count(wc) : 0;
    MF_ENSURE_MSG(n > 0, MF_ERR_AUTH_MISSING, "refused peer: it sent no certificate");
    MF_ENSURE_MSG((size_t)n <= MF_TLS_CHAIN_MAX, MF_ERR_PROTO_TOO_LARGE,
                  "refused peer: chain of %d certificates (at most %u)", n, MF_TLS_CHAIN_MAX);
    for (int i = 0; i < n; i++) {
        int len = wolfSSL_get_chain_length(wc, i);
        bufs[i].buffer = wolfSSL_get_chain_cert(wc, i);
        bufs[i].length = len > 0 ? (word32)len : 0;
    }
    mf_res r = check_peer(policy, bufs, n, id, chain, why, sizeof(why));
    MF_ENSURE_MSG(mf_ok(r), r.err, "%s", why);
    return MF_RES_OK;
}
