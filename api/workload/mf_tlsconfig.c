/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_tlsconfig: mutual TLS fed from the Workload API. See mf_tlsconfig.h.
 *
 * The TLS work itself (socket callbacks, waits, error mapping, loading the
 * SVID, and the trust decision inside the handshake) is mf_tls's, the one
 * TLS layer of libmayfly (api/net/mf_tls.h). This file adds what is
 * particular to workloads: authorizers, contexts that follow Workload API
 * snapshots, and connections over a caller's socket.
 *
 * Every mf_tls_ctx holds an mf_tls_policy (its snapshot's bundles, and
 * mf_authorize with its authorizer) and a context-wide mf_tls_check that
 * only decides, for callers that make their own WOLFSSL from
 * mf_tls_ctx_wolfssl; they read the peer's ID with mf_tls_ctx_peer_id,
 * which verifies again. Connections made by mf_tls_accept/connect use a
 * check of their own, which also records the verified ID and chain.
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

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "api/core/mf_log.h"
#include "api/core/mf_time.h"
#include "api/net/mf_tls.h"
#include "api/pki/mf_bundle.h"

_Static_assert(MF_TLS_PEER_CHAIN_MAX == MF_TLS_CHAIN_MAX, "one peer chain cap");

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

struct mf_tls_ctx {
    int refs; /* atomic */
    enum mf_tls_role role;
    WOLFSSL_CTX *ssl_ctx;
    struct mf_x509_context *x509;    /* one reference */
    const struct mf_x509_svid *svid; /* presented; borrowed from x509 */
    struct mf_authorizer authz;      /* ids points into ids_copy */
    struct mf_spiffe_id *ids_copy;
    struct mf_tls_policy policy; /* x509's bundles, then authz */
    struct mf_tls_check check;   /* decides only (record false) */
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

/* The authorizer step of a context's policy. */
static mf_res authorize_cb(void *arg, const struct mf_spiffe_id *peer, const struct mf_certs *chain)
{
    return mf_authorize(arg, peer, chain);
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
    t->policy = (struct mf_tls_policy){
        .trust = &t->x509->bundles, .authorize = authorize_cb, .arg = &t->authz};
    mf_tls_check_init(&t->check, &t->policy, false);

    mf_x509_global_init();
    t->ssl_ctx = wolfSSL_CTX_new(role == MF_TLS_SERVER ? wolfTLSv1_3_server_method()
                                                       : wolfTLSv1_3_client_method());
    MF_ENSURE_OUT_MSG(t->ssl_ctx != NULL, MF_ERR_NOMEM, "wolfSSL_CTX_new");
    MF_TRY_OUT(mf_tls_load_identity(t->ssl_ctx, &svid->chain, svid->key, svid->id.str));
    /* a server demands a client certificate; both sides verify the peer
     * inside the handshake (mf_tls) */
    MF_TRY_OUT(mf_tls_ctx_setup(t->ssl_ctx, role == MF_TLS_SERVER, &t->check));
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
    mf_res r = mf_tls_check_finished(&t->policy, ssl, out, &chain);
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
    struct mf_tls_io io; /* socket, deadline, what the transport saw */
    WOLFSSL *ssl;
    struct mf_tls_ctx *t;      /* one reference */
    struct mf_tls_check check; /* record: this connection's peer */
    bool heard;                /* a record arrived after the handshake */
};

static void conn_free(struct mf_tls_conn *c)
{
    if (c->ssl != NULL) {
        wolfSSL_free(c->ssl);
    }
    if (c->io.fd >= 0) {
        close(c->io.fd);
    }
    mf_tls_check_cleanup(&c->check);
    mf_tls_ctx_release(c->t);
    free(c);
}

/* see mf_tlsconfig.h */
void mf_tls_conn_close(struct mf_tls_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->ssl != NULL && !c->io.failed && !c->io.peer_gone) {
        (void)wolfSSL_shutdown(c->ssl); /* best effort; the socket is non-blocking */
    }
    conn_free(c);
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
    mf_tls_io_init(&c->io, fd);
    fd = -1;
    mf_tls_check_init(&c->check, NULL, true);
    MF_TRY_OUT(mf_tls_io_deadline(&c->io, timeout_ms));
    MF_TRY_OUT(mf_tls_config_acquire(cfg, &c->t));
    c->check.policy = &c->t->policy;

    MF_TRY_OUT(mf_tls_session(c->t->ssl_ctx, &c->io, role == MF_TLS_SERVER, &c->check, &c->ssl));
    *out = c;
    c = NULL;
    rc = MF_RES_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (c != NULL) {
        c->io.failed = true; /* say nothing more to a peer we did not accept */
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
    MF_TRY(mf_tls_io_deadline(&c->io, timeout_ms));
    int want = cap > INT_MAX ? INT_MAX : (int)cap;
    for (;;) {
        int n = wolfSSL_read(c->ssl, buf, want);
        if (n > 0) {
            c->heard = true;
            *got = (size_t)n;
            return MF_RES_OK;
        }
        MF_TRY(mf_tls_retry(c->ssl, &c->io, n, "read"));
    }
}

/* see mf_tlsconfig.h */
mf_res mf_tls_conn_write(struct mf_tls_conn *c, const void *buf, size_t n, int timeout_ms)
{
    MF_ENSURE_REF(c);
    MF_ENSURE(buf != NULL || n == 0, MF_ERR_USAGE_NULL);
    MF_TRY(mf_tls_io_deadline(&c->io, timeout_ms));
    if (!c->heard) {
        /* In TLS 1.3 a client learns that the server refused its
         * certificate only from an alert after its own handshake finished.
         * If something is waiting, let wolfSSL look at it first (peek keeps
         * any data), so that a refusal reads as one and not as a write to
         * a closed socket. */
        struct pollfd pfd = {.fd = c->io.fd, .events = POLLIN, .revents = 0};
        if (poll(&pfd, 1, 0) > 0) {
            char b;
            int pn = wolfSSL_peek(c->ssl, &b, 1);
            if (pn > 0) {
                c->heard = true;
            } else if (wolfSSL_get_error(c->ssl, pn) != WOLFSSL_ERROR_WANT_READ) {
                MF_TRY(mf_tls_retry(c->ssl, &c->io, pn, "read"));
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
        MF_TRY(mf_tls_retry(c->ssl, &c->io, w, "write"));
    }
    return MF_RES_OK;
}
