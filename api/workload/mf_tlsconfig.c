/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_tlsconfig: mutual TLS fed from the Workload API. See mf_tlsconfig.h.
 *
 * How the peer is checked inside the wolfSSL handshake: every WOLFSSL_CTX
 * built here has WOLFSSL_VERIFY_PEER and a verify callback, but no trust
 * anchors, so wolfSSL's own verdict on the chain is always "no signer" and
 * is ignored. This wolfSSL is built with WOLFSSL_ALWAYS_VERIFY_CB, so the
 * callback runs for every certificate of the peer's chain, from the top
 * down, and last for the leaf (error depth 0); each call sees the whole
 * chain as the peer sent it (store->certs, leaf first). The decision is
 * made at depth 0 on the whole chain: mf_svid_verify against the bundle of
 * the leaf's trust domain, then the authorizer. Returning 0 there makes
 * wolfSSL abort the handshake with an alert.
 *
 * The callback finds its policy through the verify-callback context
 * (wolfSSL_CTX_SetCertCbCtx / wolfSSL_SetCertCbCtx, handed to the callback
 * as store->userCtx): a struct peer_check that points at the mf_tls_ctx
 * (snapshot, authorizer). Connections made by mf_tls_accept/connect use a
 * peer_check of their own, which also records the verified ID and chain;
 * after the handshake they insist that it was recorded (fail closed, should
 * wolfSSL ever skip the depth-0 call). Callers that make their own WOLFSSL
 * from mf_tls_ctx_wolfssl get the context's shared peer_check, which only
 * decides, and they read the ID with mf_tls_ctx_peer_id, which verifies
 * again.
 */
#include "api/workload/mf_tlsconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include <wolfssl/options.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfio.h>

#include "api/pki/mf_bundle.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"

#define WHY_MAX     4096u
#define KEY_DER_CAP 4096u
#define ALERT_FATAL 2

/* ---- authorizers ----------------------------------------------------------- */

/* see mf_tlsconfig.h */
void mf_authorize_any(struct mf_authorizer *out)
{
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
        out->kind = MF_AUTHZ_ANY;
    }
}

/* see mf_tlsconfig.h */
mf_res mf_authorize_id(const char *id, struct mf_authorizer *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE_REF(id);
    struct mf_spiffe_id parsed;
    MF_TRY(mf_spiffeid_parse_cstr(id, &parsed));
    out->kind = MF_AUTHZ_ID;
    out->id = parsed;
    return MF_RES_OK;
}

/* see mf_tlsconfig.h */
mf_res mf_authorize_member_of(const char *td, struct mf_authorizer *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE_REF(td);
    char name[MF_TD_MAX + 1];
    MF_TRY(mf_td_parse(td, strlen(td), name));
    out->kind = MF_AUTHZ_MEMBER_OF;
    memcpy(out->td, name, sizeof(name));
    return MF_RES_OK;
}

/* see mf_tlsconfig.h */
mf_res mf_authorize_one_of(const struct mf_spiffe_id *ids, size_t n, struct mf_authorizer *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE_REF(ids);
    MF_ENSURE_MSG(n > 0 && n <= MF_AUTHZ_IDS_MAX, MF_ERR_USAGE_ARG,
                  "a one-of authorizer takes 1 to %u IDs", MF_AUTHZ_IDS_MAX);
    out->kind = MF_AUTHZ_ONE_OF;
    out->ids = ids;
    out->n_ids = n;
    return MF_RES_OK;
}

/* see mf_tlsconfig.h */
mf_res mf_authorize_func(mf_res (*fn)(void *arg, const struct mf_spiffe_id *peer,
                                      const struct mf_certs *chain),
                         void *arg, struct mf_authorizer *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE(fn != NULL, MF_ERR_USAGE_NULL);
    out->kind = MF_AUTHZ_FUNC;
    out->fn = fn;
    out->arg = arg;
    return MF_RES_OK;
}

/* see mf_tlsconfig.h */
mf_res mf_authorize(const struct mf_authorizer *a, const struct mf_spiffe_id *peer,
                    const struct mf_certs *chain)
{
    MF_ENSURE_REF(a);
    MF_ENSURE_REF(peer);
    switch (a->kind) {
    case MF_AUTHZ_ANY:
        return MF_RES_OK;
    case MF_AUTHZ_ID:
        MF_ENSURE_MSG(mf_spiffeid_eq(peer, &a->id), MF_ERR_POLICY_DENIED,
                      "not authorized (want %s)", a->id.str);
        return MF_RES_OK;
    case MF_AUTHZ_MEMBER_OF:
        MF_ENSURE_MSG(mf_spiffeid_member_of(peer, a->td), MF_ERR_POLICY_DENIED,
                      "not authorized (want a member of trust domain %s)", a->td);
        return MF_RES_OK;
    case MF_AUTHZ_ONE_OF:
        for (size_t i = 0; a->ids != NULL && i < a->n_ids; i++) {
            if (mf_spiffeid_eq(peer, &a->ids[i])) {
                return MF_RES_OK;
            }
        }
        MF_BAIL_MSG(MF_ERR_POLICY_DENIED, "not authorized (want one of %zu listed IDs)", a->n_ids);
    case MF_AUTHZ_FUNC: {
        MF_ENSURE(a->fn != NULL, MF_ERR_USAGE_NULL);
        MF_ENSURE_REF(chain);
        mf_err_clear();
        mf_res r = a->fn(a->arg, peer, chain);
        if (mf_ok(r)) {
            return r;
        }
        /* a refusal with no reason of its own still says what happened */
        MF_ENSURE_MSG(mf_err_detail()[0] != '\0', r.err, "not authorized (refused by %s)",
                      "the application's check");
        return r;
    }
    default:
        MF_BAIL_MSG(MF_ERR_USAGE_ARG, "unknown authorizer kind %d", (int)a->kind);
    }
}

/* A deep copy: the ID list of a one-of authorizer goes to *ids_copy (the
 * caller frees it). */
static mf_res authz_copy(const struct mf_authorizer *in, struct mf_authorizer *out,
                         struct mf_spiffe_id **ids_copy)
{
    *ids_copy = NULL;
    *out = *in;
    if (in->kind == MF_AUTHZ_ONE_OF) {
        MF_ENSURE(in->ids != NULL, MF_ERR_USAGE_NULL);
        MF_ENSURE_MSG(in->n_ids > 0 && in->n_ids <= MF_AUTHZ_IDS_MAX, MF_ERR_USAGE_ARG,
                      "a one-of authorizer takes 1 to %u IDs", MF_AUTHZ_IDS_MAX);
        struct mf_spiffe_id *v = calloc(in->n_ids, sizeof(*v));
        MF_TRY_PTR(v, MF_ERR_NOMEM);
        memcpy(v, in->ids, in->n_ids * sizeof(*v));
        out->ids = v;
        *ids_copy = v;
    }
    MF_ENSURE(in->kind != MF_AUTHZ_FUNC || in->fn != NULL, MF_ERR_USAGE_NULL);
    return MF_RES_OK;
}

/* ---- contexts ---------------------------------------------------------------- */

/* What the verify callback needs, and where it reports. */
struct peer_check {
    const struct mf_tls_ctx *t;
    bool record;            /* a connection's own check: keep the outcome */
    bool passed;            /* record only */
    struct mf_spiffe_id id; /* record only: the verified peer */
    struct mf_certs chain;  /* record only: its chain, leaf first */
    enum mf_err err;        /* record only: why it failed */
    char why[WHY_MAX];
};

struct mf_tls_ctx {
    int refs; /* atomic */
    enum mf_tls_role role;
    WOLFSSL_CTX *ssl_ctx;
    struct mf_x509_context *x509;    /* one reference */
    const struct mf_x509_svid *svid; /* presented; borrowed from x509 */
    struct mf_authorizer authz;      /* ids points into ids_copy */
    struct mf_spiffe_id *ids_copy;
    struct peer_check check; /* decides only (record false) */
};

struct mf_tls_config {
    enum mf_tls_role role;
    struct mf_x509_source *src; /* borrowed, or NULL for a fixed snapshot */
    struct mf_authorizer authz;
    struct mf_spiffe_id *ids_copy;
    pthread_mutex_t mu;
    struct mf_x509_context *fixed; /* protected by mu */
    struct mf_tls_ctx *cur;        /* protected by mu */
};

/* Verifies a peer chain given as DER buffers (leaf first) against t's
 * bundles, then t's authorizer. On failure, why says who was refused and
 * why, in one line. */
static mf_res check_peer(const struct mf_tls_ctx *t, const WOLFSSL_BUFFER_INFO *certs, int n,
                         struct mf_spiffe_id *id, struct mf_certs *chain, char *why, size_t cap)
{
    mf_res rc;
    mf_err_clear();
    MF_ENSURE_OUT_MSG(n > 0 && certs != NULL, MF_ERR_AUTH_MISSING, "no certificate");
    MF_ENSURE_OUT_MSG((size_t)n <= MF_TLS_PEER_CHAIN_MAX, MF_ERR_PROTO_TOO_LARGE,
                      "chain of %d certificates (at most %u)", n, MF_TLS_PEER_CHAIN_MAX);
    for (int i = 0; i < n; i++) {
        MF_ENSURE_OUT_MSG(certs[i].buffer != NULL && certs[i].length > 0, MF_ERR_AUTH_MISSING,
                          "empty certificate %d", i);
        struct mf_cert *cert = NULL;
        MF_TRY_OUT(mf_cert_from_der(certs[i].buffer, certs[i].length, &cert));
        rc = mf_certs_push(chain, cert);
        mf_cert_free(cert);
        MF_TRY_OUT(rc);
    }
    MF_TRY_OUT(mf_svid_verify(chain, &t->x509->bundles, mf_now(), id));
    MF_TRY_OUT(mf_authorize(&t->authz, id, chain));
    rc = MF_RES_OK;
out:
    if (!mf_ok(rc)) {
        const struct mf_spiffe_id *claimed = chain->n > 0 ? mf_cert_spiffe_id(chain->v[0]) : NULL;
        const char *detail = mf_err_detail();
        snprintf(why, cap, "refused peer %s: %s", claimed != NULL ? claimed->str : "(no SPIFFE ID)",
                 detail[0] != '\0' ? detail : mf_err_str(rc.err));
        memset(id, 0, sizeof(*id));
    }
    return rc;
}

/* wolfSSL's verify callback; see the file comment. */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    (void)preverify; /* wolfSSL holds no anchors: its verdict is not ours */
    struct peer_check *pc = store != NULL ? store->userCtx : NULL;
    if (pc == NULL || pc->t == NULL) {
        return 0;
    }
    if (store->error_depth != 0) {
        return 1; /* decided at the leaf, on the whole chain */
    }
    struct mf_spiffe_id id;
    struct mf_certs chain;
    char why[WHY_MAX];
    mf_certs_init(&chain);
    mf_res r = check_peer(pc->t, store->certs, store->totalCerts, &id, &chain, why, sizeof(why));
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

/* Loads the SVID's chain and key into ctx; the key's DER copy lives in a
 * secret buffer, wiped on return. */
static mf_res load_identity(WOLFSSL_CTX *ctx, const struct mf_x509_svid *svid)
{
    mf_res rc;
    struct mf_buf der;
    struct mf_buf kder;
    mf_buf_init(&der, MF_MAX_BUNDLE, 0);
    mf_buf_init(&kder, KEY_DER_CAP, MF_BUF_SECRET);
    MF_TRY_OUT(mf_certs_to_der_concat(&svid->chain, &der));
    MF_ENSURE_OUT_MSG(der.len > 0 && der.len <= INT_MAX, MF_ERR_USAGE_ARG, "empty SVID chain");
    MF_ENSURE_OUT_MSG(wolfSSL_CTX_use_certificate_chain_buffer_format(
                          ctx, der.data, (long)der.len, WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS,
                      MF_ERR_CRYPTO, "wolfSSL refused the SVID chain of %s", svid->id.str);
    MF_TRY_OUT(mf_key_to_der(svid->key, &kder));
    MF_ENSURE_OUT_MSG(wolfSSL_CTX_use_PrivateKey_buffer(ctx, kder.data, (long)kder.len,
                                                        WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS,
                      MF_ERR_CRYPTO_KEY, "wolfSSL refused the key of %s", svid->id.str);
    MF_ENSURE_OUT_MSG(wolfSSL_CTX_check_private_key(ctx) == WOLFSSL_SUCCESS, MF_ERR_CRYPTO_MISMATCH,
                      "the key of %s does not match its leaf", svid->id.str);
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    mf_buf_cleanup(&kder); /* secret: wiped */
    return rc;
}

static void ctx_free(struct mf_tls_ctx *t)
{
    if (t->ssl_ctx != NULL) {
        wolfSSL_CTX_free(t->ssl_ctx);
    }
    mf_x509_context_free(t->x509);
    free(t->ids_copy);
    free(t);
}

/* see mf_tlsconfig.h */
void mf_tls_ctx_release(struct mf_tls_ctx *t)
{
    if (t != NULL && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        ctx_free(t);
    }
}

static struct mf_tls_ctx *ctx_ref(struct mf_tls_ctx *t)
{
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
    return t;
}

/* A TLS context presenting x509's default SVID and trusting its bundles. */
static mf_res ctx_build(enum mf_tls_role role, struct mf_x509_context *x509,
                        const struct mf_authorizer *authz, struct mf_tls_ctx **out)
{
    mf_res rc;
    *out = NULL;
    const struct mf_x509_svid *svid = mf_x509_context_default(x509);
    MF_ENSURE_MSG(svid != NULL, MF_ERR_STATE, "the X.509 snapshot holds no SVID");
    struct mf_tls_ctx *t = calloc(1, sizeof(*t));
    MF_TRY_PTR(t, MF_ERR_NOMEM);
    t->refs = 1;
    t->role = role;
    t->x509 = mf_x509_context_ref(x509);
    t->svid = svid;
    MF_TRY_OUT(authz_copy(authz, &t->authz, &t->ids_copy));
    t->check.t = t;

    mf_x509_global_init();
    t->ssl_ctx = wolfSSL_CTX_new(role == MF_TLS_SERVER ? wolfTLSv1_3_server_method()
                                                       : wolfTLSv1_3_client_method());
    MF_ENSURE_OUT_MSG(t->ssl_ctx != NULL, MF_ERR_NOMEM, "wolfSSL_CTX_new");
    MF_TRY_OUT(load_identity(t->ssl_ctx, svid));
    /* a server demands a client certificate; both sides verify the peer
     * with verify_cb, on the whole chain, at depth 0 */
    wolfSSL_CTX_set_verify(t->ssl_ctx,
                           role == MF_TLS_SERVER
                               ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT
                               : WOLFSSL_VERIFY_PEER,
                           verify_cb);
    wolfSSL_CTX_SetCertCbCtx(t->ssl_ctx, &t->check);
    /* resumption would skip the certificate, and with it our checks */
    (void)wolfSSL_CTX_set_session_cache_mode(t->ssl_ctx, WOLFSSL_SESS_CACHE_OFF);
    if (role == MF_TLS_SERVER) {
        MF_ENSURE_OUT_MSG(wolfSSL_CTX_no_ticket_TLSv13(t->ssl_ctx) == 0, MF_ERR_INTERNAL,
                          "could not turn TLS 1.3 session tickets off");
    }
    *out = t;
    t = NULL;
    rc = MF_RES_OK;
out:
    if (t != NULL) {
        ctx_free(t);
    }
    return rc;
}

/* see mf_tlsconfig.h */
WOLFSSL_CTX *mf_tls_ctx_wolfssl(const struct mf_tls_ctx *t)
{
    return t != NULL ? t->ssl_ctx : NULL;
}

/* see mf_tlsconfig.h */
const struct mf_x509_svid *mf_tls_ctx_svid(const struct mf_tls_ctx *t)
{
    return t != NULL ? t->svid : NULL;
}

/* see mf_tlsconfig.h */
const struct mf_x509_context *mf_tls_ctx_x509(const struct mf_tls_ctx *t)
{
    return t != NULL ? t->x509 : NULL;
}

/* The peer chain of a finished handshake as wolfSSL kept it (SESSION_CERTS),
 * checked again. */
static mf_res peer_from_ssl(const struct mf_tls_ctx *t, WOLFSSL *ssl, struct mf_spiffe_id *id,
                            struct mf_certs *chain)
{
    WOLFSSL_BUFFER_INFO bufs[MF_TLS_PEER_CHAIN_MAX];
    char why[WHY_MAX];
    WOLFSSL_X509_CHAIN *wc = wolfSSL_get_peer_chain(ssl);
    int n = wc != NULL ? wolfSSL_get_chain_count(wc) : 0;
    MF_ENSURE_MSG(n > 0, MF_ERR_AUTH_MISSING, "refused peer: it sent no certificate");
    MF_ENSURE_MSG((size_t)n <= MF_TLS_PEER_CHAIN_MAX, MF_ERR_PROTO_TOO_LARGE,
                  "refused peer: chain of %d certificates (at most %u)", n, MF_TLS_PEER_CHAIN_MAX);
    for (int i = 0; i < n; i++) {
        int len = wolfSSL_get_chain_length(wc, i);
        bufs[i].buffer = wolfSSL_get_chain_cert(wc, i);
        bufs[i].length = len > 0 ? (word32)len : 0;
    }
    mf_res r = check_peer(t, bufs, n, id, chain, why, sizeof(why));
    MF_ENSURE_MSG(mf_ok(r), r.err, "%s", why);
    return MF_RES_OK;
}

/* see mf_tlsconfig.h */
mf_res mf_tls_ctx_peer_id(const struct mf_tls_ctx *t, WOLFSSL *ssl, struct mf_spiffe_id *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE_REF(t);
    MF_ENSURE_REF(ssl);
    MF_ENSURE_MSG(wolfSSL_is_init_finished(ssl), MF_ERR_STATE, "the handshake has not finished");
    mf_x509_global_init(); /* this thread ran ECC: free its cache at exit */
    struct mf_certs chain;
    mf_certs_init(&chain);
    mf_res r = peer_from_ssl(t, ssl, out, &chain);
    mf_certs_cleanup(&chain);
    return r;
}

/* ---- configurations ------------------------------------------------------ */

static mf_res config_new(enum mf_tls_role role, const struct mf_authorizer *authz,
                         struct mf_tls_config **out)
{
    MF_ENSURE_REF(authz);
    MF_ENSURE_MSG(role == MF_TLS_SERVER || role == MF_TLS_CLIENT, MF_ERR_USAGE_ARG,
                  "unknown TLS role %d", (int)role);
    struct mf_tls_config *cfg = calloc(1, sizeof(*cfg));
    MF_TRY_PTR(cfg, MF_ERR_NOMEM);
    cfg->role = role;
    mf_res r = authz_copy(authz, &cfg->authz, &cfg->ids_copy);
    if (!mf_ok(r)) {
        free(cfg);
        return r;
    }
    if (pthread_mutex_init(&cfg->mu, NULL) != 0) {
        free(cfg->ids_copy);
        free(cfg);
        MF_BAIL(MF_ERR_INTERNAL);
    }
    *out = cfg;
    return MF_RES_OK;
}

/* see mf_tlsconfig.h */
mf_res mf_tls_config_new(enum mf_tls_role role, struct mf_x509_source *src,
                         const struct mf_authorizer *authz, struct mf_tls_config **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(src);
    MF_TRY(config_new(role, authz, out));
    (*out)->src = src;
    return MF_RES_OK;
}

/* see mf_tlsconfig.h */
mf_res mf_tls_config_new_fixed(enum mf_tls_role role, struct mf_x509_context *x509,
                               const struct mf_authorizer *authz, struct mf_tls_config **out)
{
    mf_res rc;
    struct mf_tls_config *cfg = NULL;
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(x509);
    MF_TRY(config_new(role, authz, &cfg));
    cfg->fixed = mf_x509_context_ref(x509);
    MF_TRY_OUT(ctx_build(role, x509, &cfg->authz, &cfg->cur));
    *out = cfg;
    cfg = NULL;
    rc = MF_RES_OK;
out:
    mf_tls_config_free(cfg);
    return rc;
}

/* see mf_tlsconfig.h */
mf_res mf_tls_config_set_context(struct mf_tls_config *cfg, struct mf_x509_context *x509)
{
    MF_ENSURE_REF(cfg);
    MF_ENSURE_REF(x509);
    MF_ENSURE_MSG(cfg->src == NULL, MF_ERR_STATE, "this configuration follows a source");
    pthread_mutex_lock(&cfg->mu);
    struct mf_x509_context *old = cfg->fixed;
    cfg->fixed = mf_x509_context_ref(x509);
    pthread_mutex_unlock(&cfg->mu);
    mf_x509_context_free(old);
    return MF_RES_OK;
}

/* see mf_tlsconfig.h */
void mf_tls_config_free(struct mf_tls_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    mf_tls_ctx_release(cfg->cur);
    mf_x509_context_free(cfg->fixed);
    pthread_mutex_destroy(&cfg->mu);
    free(cfg->ids_copy);
    free(cfg);
}

/* see mf_tlsconfig.h */
mf_res mf_tls_config_acquire(struct mf_tls_config *cfg, struct mf_tls_ctx **out)
{
    mf_res rc;
    struct mf_x509_context *x = NULL;
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(cfg);
    pthread_mutex_lock(&cfg->mu);
    if (cfg->src != NULL) {
        MF_TRY_OUT(mf_x509_source_get(cfg->src, &x));
    } else {
        x = mf_x509_context_ref(cfg->fixed);
    }
    /* the current context holds a reference to its snapshot, so a new
     * snapshot can never reuse its address: pointer equality is identity */
    if (cfg->cur == NULL || cfg->cur->x509 != x) {
        struct mf_tls_ctx *t = NULL;
        MF_TRY_OUT(ctx_build(cfg->role, x, &cfg->authz, &t));
        if (cfg->cur != NULL) {
            mf_log_debug("TLS identity now %s (new snapshot)", t->svid->id.str);
        }
        mf_tls_ctx_release(cfg->cur);
        cfg->cur = t;
    }
    *out = ctx_ref(cfg->cur);
    rc = MF_RES_OK;
out:
    pthread_mutex_unlock(&cfg->mu);
    mf_x509_context_free(x);
    return rc;
}

/* ---- connections ------------------------------------------------------------ */

struct mf_tls_conn {
    int fd;
    WOLFSSL *ssl;
    struct mf_tls_ctx *t;    /* one reference */
    struct peer_check check; /* record: this connection's peer */
    int64_t deadline;        /* of the call in progress (monotonic ms) */
    bool heard;              /* a record arrived after the handshake */
    bool peer_gone;          /* the transport ended */
    bool broken;             /* no close_notify on close */
};

static void conn_free(struct mf_tls_conn *c)
{
    if (c->ssl != NULL) {
        wolfSSL_free(c->ssl);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    mf_certs_cleanup(&c->check.chain);
    mf_tls_ctx_release(c->t);
    free(c);
}

/* see mf_tlsconfig.h */
void mf_tls_conn_close(struct mf_tls_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->ssl != NULL && !c->broken && !c->peer_gone) {
        (void)wolfSSL_shutdown(c->ssl); /* best effort; the socket is non-blocking */
    }
    conn_free(c);
}

/* Transport callbacks: MSG_NOSIGNAL, so that a vanished peer is an error
 * and not a SIGPIPE. */
static int conn_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct mf_tls_conn *c = ctx;
    for (;;) {
        ssize_t n = recv(c->fd, buf, (size_t)sz, 0);
        if (n > 0) {
            return (int)n;
        }
        if (n == 0) {
            c->peer_gone = true;
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        }
        switch (errno) {
        case EINTR:
            continue;
        case EAGAIN:
            return WOLFSSL_CBIO_ERR_WANT_READ;
        case ECONNRESET:
            c->peer_gone = true;
            return WOLFSSL_CBIO_ERR_CONN_RST;
        default:
            return WOLFSSL_CBIO_ERR_GENERAL;
        }
    }
}

static int conn_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct mf_tls_conn *c = ctx;
    for (;;) {
        ssize_t n = send(c->fd, buf, (size_t)sz, MSG_NOSIGNAL);
        if (n >= 0) {
            return (int)n;
        }
        switch (errno) {
        case EINTR:
            continue;
        case EAGAIN:
            return WOLFSSL_CBIO_ERR_WANT_WRITE;
        case ECONNRESET:
        case EPIPE:
            c->peer_gone = true;
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        default:
            return WOLFSSL_CBIO_ERR_GENERAL;
        }
    }
}

static mf_res wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mf_mono_ms();
        left = left < 0 ? 0 : left;
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0) {
            return MF_RES_OK; /* errors surface in the read or write that follows */
        }
        if (n == 0) {
            MF_BAIL_MSG(MF_ERR_IO_TIMEOUT, "no progress before the deadline");
        }
        MF_ENSURE_MSG(errno == EINTR, MF_ERR_IO, "poll: %s", strerror(errno));
    }
}

/* After a wolfSSL call returned ret <= 0: waits and returns MF_OK when the
 * call should be repeated, or the error. */
static mf_res conn_retry(struct mf_tls_conn *c, int ret, const char *what)
{
    int e = wolfSSL_get_error(c->ssl, ret);
    switch (e) {
    case WOLFSSL_ERROR_WANT_READ:
        return wait_fd(c->fd, POLLIN, c->deadline);
    case WOLFSSL_ERROR_WANT_WRITE:
        return wait_fd(c->fd, POLLOUT, c->deadline);
    case WOLFSSL_ERROR_ZERO_RETURN:
        MF_BAIL_MSG(MF_ERR_IO_EOF, "the peer closed the TLS connection");
    default:
        break;
    }
    c->broken = true;
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    if (e == NO_PEER_CERT) {
        MF_BAIL_MSG(MF_ERR_AUTH_MISSING, "refused peer: it sent no certificate");
    }
    if (wolfSSL_get_alert_history(c->ssl, &h) == WOLFSSL_SUCCESS &&
        h.last_rx.level == ALERT_FATAL) {
        MF_BAIL_MSG(MF_ERR_AUTH, "the peer refused the connection (TLS alert %s during %s)",
                    wolfSSL_alert_desc_string_long(h.last_rx.code), what);
    }
    if (c->peer_gone) {
        MF_BAIL_MSG(MF_ERR_IO_EOF, "the peer went away during %s", what);
    }
    char msg[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)e, msg, sizeof(msg));
    MF_BAIL_MSG(MF_ERR_IO, "TLS %s failed: %s (%d)", what, msg, e);
}

static mf_res set_deadline(struct mf_tls_conn *c, int timeout_ms)
{
    MF_ENSURE_MSG(timeout_ms >= 0, MF_ERR_USAGE_ARG, "negative timeout %d", timeout_ms);
    c->deadline = mf_mono_ms() + timeout_ms;
    return MF_RES_OK;
}

static mf_res handshake(struct mf_tls_config *cfg, enum mf_tls_role role, int fd, int timeout_ms,
                        struct mf_tls_conn **out)
{
    mf_res rc;
    struct mf_tls_conn *c = NULL;
    if (out != NULL) {
        *out = NULL;
    }
    MF_ENSURE_OUT(out != NULL && cfg != NULL, MF_ERR_USAGE_NULL);
    MF_ENSURE_OUT_MSG(fd >= 0, MF_ERR_USAGE_ARG, "bad socket %d", fd);
    MF_ENSURE_OUT_MSG(cfg->role == role, MF_ERR_USAGE_ARG, "this configuration is for the %s side",
                      cfg->role == MF_TLS_SERVER ? "server" : "client");
    MF_ENSURE_OUT_MSG(timeout_ms >= 0, MF_ERR_USAGE_ARG, "negative timeout %d", timeout_ms);
    /* the handshake runs ECC on this thread: mf_x509 arranges for this
     * thread's wolfCrypt point cache to be freed when it exits */
    mf_x509_global_init();
    int fl = fcntl(fd, F_GETFL);
    MF_ENSURE_OUT_MSG(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0, MF_ERR_IO, "fcntl: %s",
                      strerror(errno));

    c = calloc(1, sizeof(*c));
    MF_ENSURE_OUT(c != NULL, MF_ERR_NOMEM);
    c->fd = fd;
    fd = -1;
    mf_certs_init(&c->check.chain);
    MF_TRY_OUT(set_deadline(c, timeout_ms));
    MF_TRY_OUT(mf_tls_config_acquire(cfg, &c->t));
    c->check.t = c->t;
    c->check.record = true;

    c->ssl = wolfSSL_new(c->t->ssl_ctx);
    MF_ENSURE_OUT_MSG(c->ssl != NULL, MF_ERR_NOMEM, "wolfSSL_new");
    wolfSSL_SSLSetIORecv(c->ssl, conn_recv);
    wolfSSL_SSLSetIOSend(c->ssl, conn_send);
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    wolfSSL_SetCertCbCtx(c->ssl, &c->check);

    for (;;) {
        int r = role == MF_TLS_SERVER ? wolfSSL_accept(c->ssl) : wolfSSL_connect(c->ssl);
        if (r == WOLFSSL_SUCCESS) {
            break;
        }
        if (c->check.err != MF_OK) {
            /* our verdict on the peer, rather than wolfSSL's echo of it */
            c->broken = true;
            MF_BAIL_OUT(c->check.err, "%s", c->check.why);
        }
        MF_TRY_OUT(conn_retry(c, r, "the handshake"));
    }
    /* fail closed: the handshake counts only if our check ran and passed */
    MF_ENSURE_OUT_MSG(c->check.passed, MF_ERR_AUTH_MISSING,
                      "refused peer: its certificate was never verified");
    *out = c;
    c = NULL;
    rc = MF_RES_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (c != NULL) {
        c->broken = true; /* say nothing more to a peer we did not accept */
        conn_free(c);
    }
    return rc;
}

/* see mf_tlsconfig.h */
mf_res mf_tls_accept(struct mf_tls_config *cfg, int fd, int timeout_ms, struct mf_tls_conn **out)
{
    return handshake(cfg, MF_TLS_SERVER, fd, timeout_ms, out);
}

/* see mf_tlsconfig.h */
mf_res mf_tls_connect(struct mf_tls_config *cfg, int fd, int timeout_ms, struct mf_tls_conn **out)
{
    return handshake(cfg, MF_TLS_CLIENT, fd, timeout_ms, out);
}

/* see mf_tlsconfig.h */
const struct mf_spiffe_id *mf_tls_conn_peer_id(const struct mf_tls_conn *c)
{
    return c != NULL ? &c->check.id : NULL;
}

/* see mf_tlsconfig.h */
const struct mf_certs *mf_tls_conn_peer_chain(const struct mf_tls_conn *c)
{
    return c != NULL ? &c->check.chain : NULL;
}

/* see mf_tlsconfig.h */
const struct mf_x509_svid *mf_tls_conn_svid(const struct mf_tls_conn *c)
{
    return c != NULL ? c->t->svid : NULL;
}

/* see mf_tlsconfig.h */
WOLFSSL *mf_tls_conn_ssl(struct mf_tls_conn *c)
{
    return c != NULL ? c->ssl : NULL;
}

/* see mf_tlsconfig.h */
mf_res mf_tls_conn_read(struct mf_tls_conn *c, void *buf, size_t cap, int timeout_ms, size_t *got)
{
    MF_ENSURE_REF(got);
    *got = 0;
    MF_ENSURE_REF(c);
    MF_ENSURE_REF(buf);
    MF_ENSURE_MSG(cap > 0, MF_ERR_USAGE_ARG, "empty buffer");
    MF_TRY(set_deadline(c, timeout_ms));
    int want = cap > INT_MAX ? INT_MAX : (int)cap;
    for (;;) {
        int n = wolfSSL_read(c->ssl, buf, want);
        if (n > 0) {
            c->heard = true;
            *got = (size_t)n;
            return MF_RES_OK;
        }
        MF_TRY(conn_retry(c, n, "read"));
    }
}

/* see mf_tlsconfig.h */
mf_res mf_tls_conn_write(struct mf_tls_conn *c, const void *buf, size_t n, int timeout_ms)
{
    MF_ENSURE_REF(c);
    MF_ENSURE(buf != NULL || n == 0, MF_ERR_USAGE_NULL);
    MF_TRY(set_deadline(c, timeout_ms));
    if (!c->heard) {
        /* In TLS 1.3 a client learns that the server refused its
         * certificate only from an alert after its own handshake finished.
         * If something is waiting, let wolfSSL look at it first (peek keeps
         * any data), so that a refusal reads as one and not as a write to
         * a closed socket. */
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN, .revents = 0};
        if (poll(&pfd, 1, 0) > 0) {
            char b;
            int pn = wolfSSL_peek(c->ssl, &b, 1);
            if (pn > 0) {
                c->heard = true;
            } else if (wolfSSL_get_error(c->ssl, pn) != WOLFSSL_ERROR_WANT_READ) {
                MF_TRY(conn_retry(c, pn, "read"));
            }
        }
    }
    const uint8_t *p = buf;
    size_t off = 0;
    while (off < n) {
        size_t rest = n - off;
        int want = rest > INT_MAX ? INT_MAX : (int)rest;
        /* after WANT_WRITE wolfSSL wants the same buffer again: it is */
        int w = wolfSSL_write(c->ssl, p + off, want);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        MF_TRY(conn_retry(c, w, "write"));
    }
    return MF_RES_OK;
}
