/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_bundle_ep: the SPIFFE bundle endpoint (see ca_bundle_ep.h).
 *
 * MHD runs a thread per connection over TLS (GnuTLS). With https_spiffe,
 * GnuTLS asks cert_cb for the certificate on every handshake; the callback
 * hands out the newest of a ring of credentials, and a superseded one stays
 * alive for SRV_GENS renewals, far longer than any handshake.
 */
#include "ca/ca_bundle_ep.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_httpd.h"
#include "ca/ca_issue.h"

#define SRV_GENS      8
#define SRV_CHAIN_MAX 4
#define EP_CONNS      64
#define EP_PER_IP     16
#define EP_TIMEOUT    10 /* seconds a connection may idle */
#define HINT_MAX      300
#define PEM_FILE_MAX  (64u * 1024u)

struct srv_cred {
    gnutls_pcert_st pcert[SRV_CHAIN_MAX];
    unsigned n;
    gnutls_privkey_t key;
};

struct ca_bundle_ep {
    struct ca_ctx *ctx;
    struct MHD_Daemon *d;
    int fd;
    char addr[300];
    bool web;           /* https_web: the operator's certificate */
    struct mf_buf cert; /* https_web: PEM chain */
    struct mf_buf key;  /* https_web: PEM key, secret */
    pthread_mutex_t mu; /* protects gens, cur, renew_at, not_before, signer */
    struct srv_cred gens[SRV_GENS];
    int cur; /* newest credential, -1 before the first */
    int64_t renew_at;
    int64_t not_before;
    char signer[CA_KEY_ID_LEN]; /* the CA key that issued the newest */
};

/* GnuTLS's retrieve callback has no user pointer: the one endpoint of the
 * process, set before MHD starts and cleared after it stops. */
static struct ca_bundle_ep *g_ep;

/* see ca_bundle_ep.h */
int64_t ca_bundle_ep_hint(const struct ca_config *cfg)
{
    if (cfg->bundle_refresh_hint > 0) {
        return cfg->bundle_refresh_hint;
    }
    int64_t h = cfg->ca_ttl / 12;
    return h < 1 ? 1 : (h > HINT_MAX ? HINT_MAX : h);
}

static void cred_clear(struct srv_cred *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        gnutls_pcert_deinit(&c->pcert[i]);
    }
    if (c->key != NULL) {
        gnutls_privkey_deinit(c->key);
    }
    memset(c, 0, sizeof(*c));
}

static int cert_cb(gnutls_session_t s, const gnutls_datum_t *req_ca_rdn, int nreqs,
                   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                   gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
    (void)s;
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct ca_bundle_ep *ep = g_ep;
    if (ep == NULL) {
        return -1;
    }
    pthread_mutex_lock(&ep->mu);
    int cur = ep->cur;
    if (cur >= 0) {
        *pcert = ep->gens[cur].pcert;
        *pcert_length = ep->gens[cur].n;
        *privkey = ep->gens[cur].key;
    }
    pthread_mutex_unlock(&ep->mu);
    return cur >= 0 ? 0 : -1;
}

/* Issues a fresh endpoint SVID from the CA's current key. */
static mf_res renew(struct ca_bundle_ep *ep, int64_t now, const char *signer)
{
    mf_res rc;
    struct mf_key *key = NULL;
    struct mf_pubkey *pub = NULL;
    struct mf_certs chain;
    struct mf_buf der;
    struct srv_cred c;
    memset(&c, 0, sizeof(c));
    mf_certs_init(&chain);
    mf_buf_init(&der, 8192, MF_BUF_SECRET);
    struct mf_spiffe_id id;
    MF_TRY_OUT(mf_spiffeid_from_parts(ep->ctx->cfg.trust_domain, CA_BUNDLE_EP_PATH, &id));
    MF_TRY_OUT(mf_key_generate(MF_KEY_EC_P256, &key));
    MF_TRY_OUT(mf_key_public(key, &pub));
    struct ca_leaf_req req = {.id = &id, .pubkey = pub, .ttl = ep->ctx->cfg.svid_ttl, .agent = "-"};
    MF_TRY_OUT(ca_issue_leaf(ep->ctx->keys, &req, now, &chain));
    MF_ENSURE_OUT(chain.n > 0 && chain.n <= SRV_CHAIN_MAX, MF_ERR_STATE);
    for (size_t i = 0; i < chain.n; i++) {
        size_t len = 0;
        const uint8_t *d = mf_cert_der(chain.v[i], &len);
        gnutls_datum_t dt = {.data = (unsigned char *)(uintptr_t)d, .size = (unsigned)len};
        MF_ENSURE_OUT(gnutls_pcert_import_x509_raw(&c.pcert[i], &dt, GNUTLS_X509_FMT_DER, 0) == 0,
                      MF_ERR_CRYPTO);
        c.n++;
    }
    MF_TRY_OUT(mf_key_to_der(key, &der));
    MF_ENSURE_OUT(gnutls_privkey_init(&c.key) == 0, MF_ERR_CRYPTO);
    gnutls_datum_t kd = {.data = der.data, .size = (unsigned)der.len};
    MF_ENSURE_OUT_MSG(gnutls_privkey_import_x509_raw(c.key, &kd, GNUTLS_X509_FMT_DER, NULL, 0) == 0,
                      MF_ERR_CRYPTO_KEY, "GnuTLS refused the bundle endpoint key");
    int64_t nb = mf_cert_not_before(chain.v[0]), na = mf_cert_not_after(chain.v[0]);
    pthread_mutex_lock(&ep->mu);
    int next = (ep->cur + 1) % SRV_GENS;
    cred_clear(&ep->gens[next]);
    ep->gens[next] = c;
    memset(&c, 0, sizeof(c));
    ep->cur = next;
    ep->not_before = nb;
    ep->renew_at = now + (na - now) / 2;
    snprintf(ep->signer, sizeof(ep->signer), "%s", signer);
    pthread_mutex_unlock(&ep->mu);
    mf_log_debug("bundle endpoint SVID %s renewed (CA key %s)", id.str, signer);
    rc = MF_RES_OK;
out:
    cred_clear(&c);
    mf_buf_cleanup(&der);
    mf_certs_cleanup(&chain);
    mf_pubkey_free(pub);
    mf_key_free(key);
    return rc;
}

/* see ca_bundle_ep.h */
mf_res ca_bundle_ep_maintain(struct ca_bundle_ep *ep, int64_t now)
{
    if (ep == NULL || ep->web) {
        return MF_RES_OK;
    }
    struct ca_signer *s = NULL;
    MF_TRY(ca_keys_signer(ep->ctx->keys, &s));
    char signer[CA_KEY_ID_LEN];
    snprintf(signer, sizeof(signer), "%s", s->id);
    ca_signer_release(s);
    pthread_mutex_lock(&ep->mu);
    /* a new signing key: peers that learned it from our bundle verify a
     * chain from it as well, but an SVID from the old one would stop
     * verifying once that key leaves the bundle */
    bool due = ep->cur < 0 || now >= ep->renew_at || now < ep->not_before ||
               strcmp(signer, ep->signer) != 0;
    pthread_mutex_unlock(&ep->mu);
    return due ? renew(ep, now, signer) : MF_RES_OK;
}

/* The served document: the bundle with our refresh hint. */
static mf_res bundle_doc(struct ca_bundle_ep *ep, struct mf_buf *out)
{
    struct mf_bundle *cur = ca_keys_bundle(ep->ctx->keys);
    struct mf_bundle *b = NULL;
    MF_ENSURE_MSG(cur != NULL, MF_ERR_STATE, "no bundle yet");
    mf_res r = mf_bundle_copy(cur, &b);
    mf_bundle_free(cur);
    MF_TRY(r);
    b->refresh_hint = ca_bundle_ep_hint(&ep->ctx->cfg);
    r = mf_bundle_to_jwks(b, out);
    mf_bundle_free(b);
    return r;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    struct ca_bundle_ep *ep = cls;
    struct mf_httpd_req *req = NULL;
    enum MHD_Result result;
    if (!mf_httpd_body(conn, con_cls, upload_data, upload_size, 1024, &req, &result)) {
        return result;
    }
    if (strcmp(url, "/") != 0) {
        return mf_httpd_reply_error(conn, 404, "not_found", "the bundle is served at /");
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return mf_httpd_reply_error(conn, 405, "invalid_argument", "use GET");
    }
    struct mf_buf doc;
    mf_buf_init(&doc, MF_MAX_BUNDLE, 0);
    mf_res r = bundle_doc(ep, &doc);
    enum MHD_Result ret = mf_ok(r)
                              ? mf_httpd_reply_buf(conn, 200, "application/json", doc.data, doc.len)
                              : mf_httpd_reply_res(conn, r);
    mf_buf_cleanup(&doc);
    return ret;
}

/* A PEM file for the https_web profile; a key must be 0600 (or stricter)
 * and is read into secret storage. */
static mf_res read_pem(const char *path, bool secret, struct mf_buf *out)
{
    mf_res rc;
    struct stat st;
    char chunk[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    MF_ENSURE_MSG(fd >= 0, MF_ERR_USAGE_ARG, "cannot open %s: %s", path, strerror(errno));
    MF_ENSURE_OUT_MSG(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), MF_ERR_USAGE_ARG,
                      "%s is not a regular file", path);
    MF_ENSURE_OUT_MSG(!secret || (st.st_mode & 077) == 0, MF_ERR_IO_PERM,
                      "key file %s is readable by group or others (mode %03o); chmod 600 it", path,
                      (unsigned)(st.st_mode & 0777));
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        MF_ENSURE_OUT_MSG(n >= 0, MF_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        if (n == 0) {
            break;
        }
        MF_TRY_OUT(mf_buf_append(out, chunk, (size_t)n));
    }
    MF_ENSURE_OUT_MSG(out->len > 0, MF_ERR_USAGE_ARG, "%s is empty", path);
    rc = MF_RES_OK;
out:
    mf_wipe(chunk, sizeof(chunk));
    close(fd);
    return rc;
}

/* see ca_bundle_ep.h */
mf_res ca_bundle_ep_start(struct ca_ctx *ctx, struct ca_bundle_ep **out)
{
    mf_res rc;
    MF_ENSURE_REF(ctx);
    MF_ENSURE_REF(out);
    *out = NULL;
    if (ctx->cfg.bundle_endpoint[0] == '\0') {
        return MF_RES_OK;
    }
    MF_ENSURE(g_ep == NULL, MF_ERR_STATE);
    struct ca_bundle_ep *ep = calloc(1, sizeof(*ep));
    MF_TRY_PTR(ep, MF_ERR_NOMEM);
    ep->ctx = ctx;
    ep->fd = -1;
    ep->cur = -1;
    mf_buf_init(&ep->cert, PEM_FILE_MAX, 0);
    mf_buf_init(&ep->key, PEM_FILE_MAX, MF_BUF_SECRET);
    pthread_mutex_init(&ep->mu, NULL);
    ep->web = ctx->cfg.bundle_endpoint_cert[0] != '\0';
    if (ep->web) {
        MF_TRY_OUT(read_pem(ctx->cfg.bundle_endpoint_cert, false, &ep->cert));
        MF_TRY_OUT(read_pem(ctx->cfg.bundle_endpoint_key, true, &ep->key));
    } else {
        MF_TRY_OUT(ca_bundle_ep_maintain(ep, mf_now()));
    }
    MF_TRY_OUT(
        mf_httpd_listen_tcp(ctx->cfg.bundle_endpoint, 64, &ep->fd, ep->addr, sizeof(ep->addr)));
    g_ep = ep;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_TLS |
                     MHD_USE_POLL;
    if (ep->web) {
        ep->d = MHD_start_daemon(
            flags, 0, NULL, NULL, handle, ep, MHD_OPTION_LISTEN_SOCKET, ep->fd,
            MHD_OPTION_HTTPS_MEM_CERT, mf_buf_cstr(&ep->cert), MHD_OPTION_HTTPS_MEM_KEY,
            mf_buf_cstr(&ep->key), MHD_OPTION_CONNECTION_LIMIT, (unsigned)EP_CONNS,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)EP_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)EP_TIMEOUT, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
            MHD_OPTION_NOTIFY_COMPLETED, mf_httpd_completed, NULL, MHD_OPTION_END);
    } else {
        ep->d = MHD_start_daemon(
            flags, 0, NULL, NULL, handle, ep, MHD_OPTION_LISTEN_SOCKET, ep->fd,
            MHD_OPTION_HTTPS_CERT_CALLBACK, cert_cb, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)EP_CONNS, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)EP_PER_IP,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)EP_TIMEOUT, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED, mf_httpd_completed, NULL,
            MHD_OPTION_END);
    }
    if (ep->d == NULL) {
        g_ep = NULL;
        MF_BAIL_OUT(MF_ERR_IO, "cannot start the bundle endpoint on %s (%s)",
                    ctx->cfg.bundle_endpoint,
                    ep->web ? "check --bundle-endpoint-cert and --bundle-endpoint-key" : "TLS");
    }
    ep->fd = -1; /* MHD's now */
    mf_log_info("bundle endpoint serving https://%s/ (profile %s)", ep->addr,
                ep->web ? "https_web" : "https_spiffe");
    *out = ep;
    ep = NULL;
    rc = MF_RES_OK;
out:
    ca_bundle_ep_stop(ep);
    return rc;
}

/* see ca_bundle_ep.h */
const char *ca_bundle_ep_address(const struct ca_bundle_ep *ep)
{
    return ep != NULL ? ep->addr : "";
}

/* see ca_bundle_ep.h */
void ca_bundle_ep_stop(struct ca_bundle_ep *ep)
{
    if (ep == NULL) {
        return;
    }
    if (ep->d != NULL) {
        MHD_stop_daemon(ep->d);
    }
    if (ep->fd >= 0) {
        close(ep->fd);
    }
    if (g_ep == ep) {
        g_ep = NULL;
    }
    for (int i = 0; i < SRV_GENS; i++) {
        cred_clear(&ep->gens[i]);
    }
    mf_buf_cleanup(&ep->cert);
    mf_buf_cleanup(&ep->key);
    pthread_mutex_destroy(&ep->mu);
    free(ep);
}
