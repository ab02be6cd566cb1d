/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_api: the agent-facing HTTPS API (see ca_api.h, docs/api.md).
 *
 * MHD runs one thread per connection, so a long-polling sync request blocks
 * only its own thread on ctx->ch_cond. ca_gate accepts and decides what
 * reaches MHD (and so the threads): idle and unauthenticated connections
 * are bounded in number, per address and in time (ca_gate.h). Every endpoint but /v1/attest
 * authenticates the caller on the first handler call (before any body is read) and again when the
 * body is in: its chain must verify against the CA's current bundle (mf_svid_verify, so expiry is
 * checked), its ID must be an agent ID of our trust domain, and the registry must know it and not
 * have banned it.
 */
#include "ca/ca_api.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <link.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>

#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_httpd.h"
#include "api/pki/mf_jwt.h"
#include "ca/ca_fed.h"
#include "ca/ca_gate.h"
#include "ca/ca_metrics.h"
#include "ca/ca_policy.h"
#include "ca/ca_wire.h"

#define SRV_GENS          8 /* server credentials kept alive (see cert_cb) */
#define SRV_CHAIN_MAX     4
#define SYNC_WAIT_DEFAULT 30
#define SYNC_WAIT_MAX     60
#define TLS13_ONLY        "NORMAL:-VERS-ALL:+VERS-TLS1.3"

struct srv_cred {
    gnutls_pcert_st pcert[SRV_CHAIN_MAX];
    unsigned n;
    gnutls_privkey_t key;
};

struct ca_api {
    struct ca_ctx *ctx;
    struct MHD_Daemon *d;
    struct ca_gate *gate; /* owns the listening socket (ca_gate.h) */
    int fd;
    char addr[300];
    pthread_mutex_t mu; /* protects gens, cur, renew_at, not_before */
    struct srv_cred gens[SRV_GENS];
    int cur; /* index of the newest credential, -1 before the first */
    int64_t renew_at;
    int64_t not_before; /* of the newest credential */
    char *trust_pem;    /* bundle PEM handed to MHD_OPTION_HTTPS_MEM_TRUST */
};

/* GnuTLS's retrieve callback carries no user pointer, so the one API
 * instance of the process is reachable here. Set before MHD starts, cleared
 * after it stops. */
static struct ca_api *g_api;

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

/* Called by GnuTLS in every handshake. The returned structures stay owned
 * by us: a superseded credential is kept for SRV_GENS renewals (several
 * SVID lifetimes) before it is freed, far longer than any handshake. */
static int cert_cb(gnutls_session_t s, const gnutls_datum_t *req_ca_rdn, int nreqs,
                   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                   gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
    (void)s;
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct ca_api *api = g_api;
    if (api == NULL) {
        return -1;
    }
    pthread_mutex_lock(&api->mu);
    int cur = api->cur;
    if (cur < 0) {
        pthread_mutex_unlock(&api->mu);
        return -1;
    }
    *pcert = api->gens[cur].pcert;
    *pcert_length = api->gens[cur].n;
    *privkey = api->gens[cur].key;
    pthread_mutex_unlock(&api->mu);
    return 0;
}

/* ---- signing on the signer pool (ca_signer.h) ---------------------------------- */

struct leaf_job {
    struct ca_keys *keys;
    const struct ca_leaf_req *req;
    int64_t now;
    struct mf_certs *chain;
};

static mf_res leaf_job_run(void *arg)
{
    struct leaf_job *lj = arg;
    return ca_issue_leaf(lj->keys, lj->req, lj->now, lj->chain);
}

/* ca_issue_leaf on a signer thread (on this one when the context has no
 * pool), waiting for it. */
static mf_res issue_leaf(struct ca_ctx *ctx, const struct ca_leaf_req *req, int64_t now,
                         struct mf_certs *chain)
{
    if (ctx->signers == NULL) {
        return ca_issue_leaf(ctx->keys, req, now, chain);
    }
    struct leaf_job lj = {.keys = ctx->keys, .req = req, .now = now, .chain = chain};
    struct ca_sign_job j = {.fn = leaf_job_run, .arg = &lj};
    /* a stopped pool fails the job itself: its result says it all */
    mf_res pr = ca_sign_pool_run(ctx->signers, &j, 1);
    (void)pr;
    return ca_sign_job_result(&j);
}

/* Issues a fresh server SVID and makes it the one handed out. */
static mf_res renew_server(struct ca_api *api, int64_t now)
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
    char path[sizeof(CA_SERVER_PATH) + CA_SERVER_ID_MAX + 1];
    /* spiffe://<td>/mayfly/server/<server id>: agents check that the peer
     * is a server of their trust domain, and the log says which one */
    int pn =
        snprintf(path, sizeof(path), "%s/%s", CA_SERVER_PATH, ca_keys_server_id(api->ctx->keys));
    MF_ENSURE_OUT(pn > 0 && (size_t)pn < sizeof(path), MF_ERR_INTERNAL);
    MF_TRY_OUT(mf_spiffeid_from_parts(api->ctx->cfg.trust_domain, path, &id));
    MF_TRY_OUT(mf_key_generate(MF_KEY_EC_P256, &key));
    MF_TRY_OUT(mf_key_public(key, &pub));
    struct ca_leaf_req req = {
        .id = &id, .pubkey = pub, .ttl = api->ctx->cfg.svid_ttl, .agent = "-"};
    MF_TRY_OUT(issue_leaf(api->ctx, &req, now, &chain));
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
                      MF_ERR_CRYPTO_KEY, "GnuTLS refused the server key");
    int64_t nb = mf_cert_not_before(chain.v[0]), na = mf_cert_not_after(chain.v[0]);
    pthread_mutex_lock(&api->mu);
    int next = (api->cur + 1) % SRV_GENS;
    cred_clear(&api->gens[next]);
    api->gens[next] = c;
    memset(&c, 0, sizeof(c));
    api->cur = next;
    /* Half of the life that remains from now: NotBefore is backdated (B28)
     * and NotAfter may be capped by the CA's own expiry, so nb + (na-nb)/2
     * could already be past for short TTLs. */
    api->not_before = nb;
    api->renew_at = now + (na - now) / 2;
    pthread_mutex_unlock(&api->mu);
    rc = MF_RES_OK;
out:
    cred_clear(&c);
    mf_buf_cleanup(&der);
    mf_certs_cleanup(&chain);
    mf_pubkey_free(pub);
    mf_key_free(key);
    return rc;
}

mf_res ca_api_maintain(struct ca_api *api, int64_t now)
{
    MF_ENSURE_REF(api);
    pthread_mutex_lock(&api->mu);
    /* also when the clock stepped back past the SVID's NotBefore (made
     * while it ran ahead): peers would refuse it until then, and renew_at,
     * set on that clock, could be hours away (tests/integration/
     * fault_clock.sh) */
    bool due = api->cur < 0 || now >= api->renew_at || now < api->not_before;
    pthread_mutex_unlock(&api->mu);
    if (!due) {
        return MF_RES_OK;
    }
    return renew_server(api, now);
}

/* ---- replies --------------------------------------------------------------- */

static enum MHD_Result reply_limit(struct MHD_Connection *conn, const struct ca_admit *why)
{
    char body[256], ra[16];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}",
                     why->status == 429 ? "rate_limited" : "unavailable",
                     why->status == 429 ? "agent rate limit reached" : "signing capacity busy");
    snprintf(ra, sizeof(ra), "%d", why->retry_after > 0 ? why->retry_after : 1);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    enum MHD_Result ret = MHD_queue_response(conn, why->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Maps auth failures to 401/403 as docs/api.md says. A refusal of the agent
 * itself says which (error "banned" or "evicted") so that the agent knows
 * whether attesting again can help. */
static enum MHD_Result reply_auth(struct MHD_Connection *conn, mf_res r, bool evicted)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    if (r.err == MF_ERR_AUTH_BANNED) {
        return mf_httpd_reply_error(conn, 403, evicted ? "evicted" : "banned", "%s", msg);
    }
    if (mf_err_category(r.err) == MF_CAT_POLICY) {
        return mf_httpd_reply_error(conn, 403, "permission_denied", "%s", msg);
    }
    return mf_httpd_reply_error(conn, 401, "unauthenticated", "%s", msg);
}

static void peer_ip(struct MHD_Connection *conn, char *out, size_t cap)
{
    snprintf(out, cap, "%s", "?");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL) {
        return;
    }
    socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in);
    char host[NI_MAXHOST];
    if (getnameinfo(ci->client_addr, len, host, sizeof(host), NULL, 0, NI_NUMERICHOST) == 0 &&
        cap > 0) {
        size_t n = strnlen(host, cap - 1);
        memcpy(out, host, n);
        out[n] = '\0';
    }
}

/* ---- authentication ---------------------------------------------------------- */

/* Verifies the caller's agent SVID and that the registry still knows it
 * and has not banned it. On a refusal, agent holds the caller's ID when its
 * SVID verified ("" otherwise), and *evicted says whether the registry does
 * not know it (evicted) rather than banned it. */
static mf_res authenticate(struct ca_ctx *ctx, struct MHD_Connection *conn,
                           struct mf_spiffe_id *agent, bool *evicted)
{
    mf_res rc;
    struct mf_certs chain;
    struct mf_bundle_set set;
    memset(agent, 0, sizeof(*agent));
    *evicted = false;
    mf_bundle_set_init(&set);
    struct mf_bundle *b = ca_keys_bundle(ctx->keys);
    rc = mf_httpd_peer_chain(conn, &chain);
    if (!mf_ok(rc)) {
        mf_bundle_free(b);
        mf_bundle_set_cleanup(&set);
        return rc;
    }
    MF_ENSURE_OUT(b != NULL, MF_ERR_STATE);
    MF_TRY_OUT(mf_bundle_set_put(&set, b));
    MF_TRY_OUT(mf_svid_verify(&chain, &set, mf_now(), agent));
    MF_ENSURE_OUT_MSG(ca_policy_is_agent_id(agent, ctx->cfg.trust_domain), MF_ERR_POLICY_DENIED,
                      "%s is not an agent ID", agent->str);
    struct ca_agent a;
    rc = ca_store_agent_get(ctx->store, agent->str, &a);
    if (rc.err == MF_ERR_POLICY_NOT_FOUND) {
        *evicted = true;
        MF_TRY_OUT(ca_policy_agent_access(NULL, agent->str));
    }
    MF_TRY_OUT(rc);
    MF_TRY_OUT(ca_policy_agent_access(&a, agent->str));
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&chain);
    mf_bundle_set_cleanup(&set);
    mf_bundle_free(b);
    return rc;
}

/* ---- CSR helpers --------------------------------------------------------------- */

static mf_res decode_csr(const char *b64, struct mf_csr **out)
{
    mf_res rc;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    MF_ENSURE_OUT_MSG(strlen(b64) <= (MF_MAX_CSR / 3 + 1) * 4, MF_ERR_PROTO_TOO_LARGE,
                      "CSR is over %u bytes", MF_MAX_CSR);
    MF_TRY_OUT(mf_b64_decode(b64, strlen(b64), &der));
    rc = mf_csr_verify(der.data, der.len, out);
    if (mf_err_category(rc.err) == MF_CAT_AUTH) {
        /* a CSR that could never make an SVID (two URI SANs...) is a bad
         * request (400), not a failed authentication of the caller (401) */
        char why[400];
        snprintf(why, sizeof(why), "%s", mf_err_detail());
        rc = MF_RAISE_MSG(MF_ERR_PROTO, "%s", why);
    }
    MF_TRY_OUT(rc);
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    return rc;
}

/* ---- request bodies (pure: no I/O, see ca_api.h) ---------------------------- */

/* The bodies that carry a CSR: {"csr": base64 DER}, plus "join_token"
 * when token is not NULL (attestation, before the peer is authenticated,
 * so under the tighter cap). */
static mf_res parse_csr_body(const void *body, size_t len, size_t cap, json_t **doc,
                             const char **token, struct mf_csr **csr)
{
    static const char *const keys_token[] = {"join_token", "csr", NULL};
    static const char *const keys_csr[] = {"csr", NULL};
    const char *csr_b64 = NULL;
    *doc = NULL;
    *csr = NULL;
    mf_res r = mf_json_parse(body, len, cap, doc);
    if (mf_ok(r)) {
        r = mf_json_only_keys(*doc, token != NULL ? keys_token : keys_csr);
    }
    if (mf_ok(r) && token != NULL) {
        r = mf_json_str(*doc, "join_token", true, 256, token);
    }
    if (mf_ok(r)) {
        r = mf_json_str(*doc, "csr", true, cap, &csr_b64);
    }
    if (mf_ok(r)) {
        r = decode_csr(csr_b64, csr);
    }
    return r;
}

/* see ca_api.h */
mf_res ca_api_parse_attest(const void *body, size_t len, json_t **doc, const char **token,
                           struct mf_csr **csr)
{
    *token = NULL;
    return parse_csr_body(body, len, MF_MAX_BODY_PREAUTH, doc, token, csr);
}

/* see ca_api.h */
mf_res ca_api_parse_renew(const void *body, size_t len, json_t **doc, struct mf_csr **csr)
{
    return parse_csr_body(body, len, MF_MAX_BODY, doc, NULL, csr);
}

/* see ca_api.h */
mf_res ca_api_parse_sign(const void *body, size_t len, json_t **doc, const json_t **reqs)
{
    static const char *const keys[] = {"requests", NULL};
    static const char *const item_keys[] = {"entry_id", "csr", NULL};
    *doc = NULL;
    *reqs = NULL;
    mf_res r = mf_json_parse(body, len, MF_MAX_SIGN_BODY, doc);
    if (mf_ok(r)) {
        r = mf_json_only_keys(*doc, keys);
    }
    if (mf_ok(r)) {
        r = mf_json_array(*doc, "requests", true, MF_MAX_BATCH, reqs);
    }
    if (mf_ok(r) && json_array_size(*reqs) == 0) {
        r = MF_RAISE_MSG(MF_ERR_PROTO_JSON, "requests must hold 1..%u items", MF_MAX_BATCH);
    }
    /* Validate the shape of every item before doing any work, so that a
     * malformed batch is refused as a whole. */
    for (size_t i = 0; mf_ok(r) && i < json_array_size(*reqs); i++) {
        const json_t *it = json_array_get(*reqs, i);
        const char *s = NULL;
        if (!json_is_object(it)) {
            r = MF_RAISE_MSG(MF_ERR_PROTO_JSON, "requests[%zu] must be an object", i);
            break;
        }
        r = mf_json_only_keys(it, item_keys);
        if (mf_ok(r)) {
            r = mf_json_str(it, "entry_id", true, CA_ENTRY_ID_LEN, &s);
        }
        if (mf_ok(r)) {
            r = mf_json_str(it, "csr", true, MF_MAX_CSR * 2, &s);
        }
    }
    return r;
}

/* see ca_api.h */
mf_res ca_api_decode_csr(const char *b64, struct mf_csr **out)
{
    MF_ENSURE_REF(b64);
    *out = NULL;
    return decode_csr(b64, out);
}

/* see ca_api.h */
mf_res ca_api_parse_jwt(const void *body, size_t len, json_t **doc, const char **spiffe_id,
                        const char **aud, size_t *n_aud)
{
    static const char *const keys[] = {"spiffe_id", "audience", NULL};
    const json_t *arr = NULL;
    struct mf_spiffe_id id;
    *doc = NULL;
    *spiffe_id = NULL;
    *n_aud = 0;
    mf_res r = mf_json_parse(body, len, MF_MAX_BODY, doc);
    if (mf_ok(r)) {
        r = mf_json_only_keys(*doc, keys);
    }
    if (mf_ok(r)) {
        r = mf_json_str(*doc, "spiffe_id", true, MF_SPIFFE_ID_MAX, spiffe_id);
    }
    if (mf_ok(r)) {
        r = mf_spiffeid_parse_cstr(*spiffe_id, &id);
    }
    if (mf_ok(r)) {
        r = mf_json_array(*doc, "audience", true, MF_JWT_AUD_MAX, &arr);
    }
    if (mf_ok(r) && json_array_size(arr) == 0) {
        r = MF_RAISE_MSG(MF_ERR_PROTO_JSON, "audience must hold 1..%d strings", MF_JWT_AUD_MAX);
    }
    for (size_t i = 0; mf_ok(r) && i < json_array_size(arr); i++) {
        const json_t *a = json_array_get(arr, i);
        if (!json_is_string(a) || json_string_length(a) == 0 ||
            json_string_length(a) > MF_JWT_AUD_LEN_MAX) {
            r = MF_RAISE_MSG(MF_ERR_PROTO_JSON, "audience[%zu] must be a string of 1..%d bytes", i,
                             MF_JWT_AUD_LEN_MAX);
            break;
        }
        aud[(*n_aud)++] = json_string_value(a);
    }
    return r;
}

/* {"spiffe_id","x509_svid":[...],"bundle":{...}} */
static enum MHD_Result reply_svid(struct ca_ctx *ctx, struct MHD_Connection *conn, const char *id,
                                  const struct mf_certs *chain)
{
    json_t *arr = NULL, *bj = NULL;
    struct mf_bundle *b = ca_keys_bundle(ctx->keys);
    mf_res r = ca_certs_to_json(chain, &arr);
    if (mf_ok(r)) {
        r = b ? ca_bundle_to_json(b, &bj) : MF_RAISE_MSG(MF_ERR_STATE, "no bundle");
    }
    mf_bundle_free(b);
    if (!mf_ok(r)) {
        json_decref(arr);
        return mf_httpd_reply_res(conn, r);
    }
    return mf_httpd_reply_json(
        conn, 200, json_pack("{s:s,s:o,s:o}", "spiffe_id", id, "x509_svid", arr, "bundle", bj));
}

/* ---- endpoints ------------------------------------------------------------------- */

static enum MHD_Result do_attest(struct ca_ctx *ctx, struct MHD_Connection *conn,
                                 const struct mf_httpd_req *req)
{
    json_t *body = NULL;
    struct mf_csr *csr = NULL;
    struct mf_certs chain;
    mf_certs_init(&chain);
    const char *token = NULL;
    char agent_id[MF_SPIFFE_ID_MAX + 1] = "";
    char ip[64], akey[80];
    uint8_t hash[32];
    bool admitted = false;
    struct ca_admit why = {0};
    enum MHD_Result ret;
    peer_ip(conn, ip, sizeof(ip));
    snprintf(akey, sizeof(akey), "attest:%s", ip);

    /* The CSR is checked before the token is spent, so a broken CSR does
     * not cost the operator a token. */
    mf_res r = ca_api_parse_attest(req->body.data, req->body.len, &body, &token, &csr);
    if (mf_ok(r)) {
        r = ca_issue_admit(ctx->issuer, akey, mf_mono_ms(), &why);
        admitted = mf_ok(r);
    }
    if (mf_ok(r)) {
        r = mf_sha256((const uint8_t *)token, strlen(token), hash);
    }
    /* Every check that can refuse runs before the token is spent, so that a
     * refused attestation leaves the token as it was. */
    if (mf_ok(r)) {
        r = ca_store_token_peek(ctx->store, hash, mf_now(), agent_id);
    }
    if (mf_ok(r)) {
        r = ca_policy_attest_csr(agent_id, mf_csr_spiffe_id(csr));
    }
    struct ca_agent existing;
    if (mf_ok(r) && mf_ok(ca_store_agent_get(ctx->store, agent_id, &existing))) {
        r = ca_policy_agent_access(&existing, agent_id);
    }
    if (mf_ok(r)) {
        /* atomic check-and-spend: of two racing uses, one wins */
        char spent_for[MF_SPIFFE_ID_MAX + 1];
        r = ca_store_token_consume(ctx->store, hash, mf_now(), spent_for);
        if (mf_ok(r) && strcmp(spent_for, agent_id) != 0) {
            r = MF_RAISE_MSG(MF_ERR_AUTH_TOKEN, "token changed");
        }
    }
    struct mf_spiffe_id id;
    if (mf_ok(r)) {
        r = mf_spiffeid_parse_cstr(agent_id, &id);
    }
    int64_t now = mf_now();
    if (mf_ok(r)) {
        struct ca_leaf_req lr = {
            .id = &id, .pubkey = mf_csr_pubkey(csr), .ttl = ctx->cfg.svid_ttl, .agent = agent_id};
        r = issue_leaf(ctx, &lr, now, &chain);
    } else if (why.status == 0) {
        ca_issue_log_denied(agent_id[0] ? agent_id : "-", ip, r);
    }
    if (mf_ok(r)) {
        char serial[MF_SERIAL_HEX_MAX];
        mf_cert_serial_hex(chain.v[0], serial);
        r = ca_store_agent_issued(ctx->store, agent_id, serial, mf_cert_not_after(chain.v[0]), now,
                                  true);
        if (mf_ok(r)) {
            mf_log_event(MF_LOG_INFO, __func__, "agent attested", "spiffe_id", agent_id, "peer", ip,
                         NULL);
            ca_ctx_changed(ctx);
        }
    }
    if (admitted) {
        ca_issue_release(ctx->issuer);
    }
    if (why.status != 0) {
        ret = reply_limit(conn, &why);
    } else if (mf_ok(r)) {
        ret = reply_svid(ctx, conn, agent_id, &chain);
    } else if (r.err == MF_ERR_AUTH_TOKEN || r.err == MF_ERR_AUTH_BANNED) {
        ret = reply_auth(conn, r, false);
    } else {
        ret = mf_httpd_reply_res(conn, r);
    }
    mf_wipe(hash, sizeof(hash));
    mf_csr_free(csr);
    mf_certs_cleanup(&chain);
    json_decref(body);
    return ret;
}

static enum MHD_Result do_renew(struct ca_ctx *ctx, struct MHD_Connection *conn,
                                const struct mf_httpd_req *req, const struct mf_spiffe_id *agent)
{
    json_t *body = NULL;
    struct mf_csr *csr = NULL;
    struct mf_certs chain;
    mf_certs_init(&chain);
    struct ca_admit why = {0};
    bool admitted = false;
    enum MHD_Result ret;
    mf_res r = ca_api_parse_renew(req->body.data, req->body.len, &body, &csr);
    if (mf_ok(r)) {
        r = ca_policy_renew_csr(agent->str, mf_csr_spiffe_id(csr));
    }
    if (mf_ok(r)) {
        r = ca_issue_admit(ctx->issuer, agent->str, mf_mono_ms(), &why);
        admitted = mf_ok(r);
    }
    int64_t now = mf_now();
    if (mf_ok(r)) {
        struct ca_leaf_req lr = {.id = agent,
                                 .pubkey = mf_csr_pubkey(csr),
                                 .ttl = ctx->cfg.svid_ttl,
                                 .agent = agent->str};
        r = issue_leaf(ctx, &lr, now, &chain);
    } else {
        ca_issue_log_denied(agent->str, agent->str, r);
    }
    if (mf_ok(r)) {
        char serial[MF_SERIAL_HEX_MAX];
        mf_cert_serial_hex(chain.v[0], serial);
        /* refuses (without writing) if the agent was banned meanwhile */
        r = ca_store_agent_issued(ctx->store, agent->str, serial, mf_cert_not_after(chain.v[0]),
                                  now, false);
    }
    if (admitted) {
        ca_issue_release(ctx->issuer);
    }
    if (why.status != 0) {
        ret = reply_limit(conn, &why);
    } else if (mf_ok(r)) {
        ret = reply_svid(ctx, conn, agent->str, &chain);
    } else if (mf_err_category(r.err) == MF_CAT_AUTH) {
        ret = reply_auth(conn, r, false);
    } else {
        ret = mf_httpd_reply_res(conn, r);
    }
    mf_csr_free(csr);
    mf_certs_cleanup(&chain);
    json_decref(body);
    return ret;
}

/* The agent's view: its entries and the bundle, with a revision that is a
 * digest of exactly that content, so it changes iff the view changes. */
static mf_res build_view(struct ca_ctx *ctx, const char *agent, json_t **out, char rev[33])
{
    mf_res rc;
    struct ca_entry *v = NULL;
    size_t n = 0;
    struct mf_bundle *b = ca_keys_bundle(ctx->keys);
    json_t *o = NULL, *arr = NULL, *bj = NULL;
    char *text = NULL;
    *out = NULL;
    MF_ENSURE_OUT(b != NULL, MF_ERR_STATE);
    MF_TRY_OUT(ca_store_entry_list(ctx->store, agent, &v, &n));
    arr = json_array();
    MF_ENSURE_OUT(arr != NULL, MF_ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        json_t *e = NULL;
        MF_TRY_OUT(ca_entry_to_json(&v[i], &e));
        MF_ENSURE_OUT(json_array_append_new(arr, e) == 0, MF_ERR_NOMEM);
    }
    MF_TRY_OUT(ca_bundle_to_json(b, &bj));
    o = json_pack("{s:o,s:o}", "entries", arr, "bundle", bj);
    arr = NULL;
    bj = NULL;
    MF_ENSURE_OUT(o != NULL, MF_ERR_NOMEM);
    /* the foreign bundles its entries federate with, and only those */
    MF_TRY_OUT(ca_fed_view(ctx->store, v, n, o));
    text = json_dumps(o, JSON_COMPACT);
    MF_ENSURE_OUT(text != NULL, MF_ERR_NOMEM);
    uint8_t h[32];
    MF_TRY_OUT(mf_sha256((const uint8_t *)text, strlen(text), h));
    mf_hex(h, 16, rev);
    MF_ENSURE_OUT(json_object_set_new(o, "revision", json_string(rev)) == 0, MF_ERR_NOMEM);
    *out = o;
    o = NULL;
    rc = MF_RES_OK;
out:
    free(text);
    json_decref(o);
    json_decref(arr);
    json_decref(bj);
    ca_entries_free(v, n);
    mf_bundle_free(b);
    return rc;
}

static enum MHD_Result do_sync(struct ca_ctx *ctx, struct MHD_Connection *conn,
                               const struct mf_spiffe_id *agent)
{
    const char *have = mf_httpd_query(conn, "revision");
    const char *ws = mf_httpd_query(conn, "wait");
    int64_t wait = SYNC_WAIT_DEFAULT;
    if (ws != NULL) {
        mf_res r = mf_duration_parse(ws, &wait);
        if (!mf_ok(r) || wait > SYNC_WAIT_MAX) {
            return mf_httpd_reply_error(conn, 400, "invalid_argument", "wait must be 0..%d seconds",
                                        SYNC_WAIT_MAX);
        }
    }
    mf_res seen = ca_store_agent_seen(ctx->store, agent->str, mf_now());
    if (!mf_ok(seen)) {
        mf_log_warn_r(seen, "cannot record last_seen of %s", agent->str);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += wait;
    for (;;) {
        pthread_mutex_lock(&ctx->ch_mu);
        uint64_t gen = ctx->gen;
        pthread_mutex_unlock(&ctx->ch_mu);

        json_t *view = NULL;
        char rev[33];
        mf_res r = build_view(ctx, agent->str, &view, rev);
        if (!mf_ok(r)) {
            return mf_httpd_reply_res(conn, r);
        }
        if (have == NULL || strcmp(have, rev) != 0) {
            return mf_httpd_reply_json(conn, 200, view);
        }
        json_decref(view);

        /* Unchanged: wait for the next change or the deadline. */
        bool timed_out = false, stopping = false;
        pthread_mutex_lock(&ctx->ch_mu);
        while (ctx->gen == gen && !ctx->stopping) {
            if (pthread_cond_timedwait(&ctx->ch_cond, &ctx->ch_mu, &deadline) == ETIMEDOUT) {
                timed_out = true;
                break;
            }
        }
        stopping = ctx->stopping;
        pthread_mutex_unlock(&ctx->ch_mu);
        if (stopping) {
            return mf_httpd_reply_error(conn, 503, "unavailable", "server is shutting down");
        }
        if (timed_out) {
            return mf_httpd_reply_buf(conn, 204, "application/json", "", 0);
        }
        /* A change may have been a ban: check the caller again. */
        struct ca_agent a;
        r = ca_store_agent_get(ctx->store, agent->str, &a);
        if (!mf_ok(r) || !mf_ok(ca_policy_agent_access(&a, agent->str))) {
            bool evicted = r.err == MF_ERR_POLICY_NOT_FOUND;
            r = MF_RAISE_MSG(MF_ERR_AUTH_BANNED, "agent %s is %s", agent->str,
                             evicted ? "not attested (evicted or unknown)" : "banned");
            ca_issue_log_denied(agent->str, agent->str, r);
            return reply_auth(conn, r, evicted);
        }
    }
}

static json_t *item_error(const char *entry_id, mf_res r)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    const char *code = "invalid_argument";
    switch (mf_err_category(r.err)) {
    case MF_CAT_POLICY:
        code = r.err == MF_ERR_POLICY_NOT_FOUND ? "not_found" : "permission_denied";
        break;
    case MF_CAT_INTERNAL:
    case MF_CAT_IO:
        code = "internal";
        break;
    default:
        break;
    }
    return json_pack("{s:s,s:s,s:s}", "entry_id", entry_id ? entry_id : "", "error", code,
                     "message", msg);
}

/* Admits one more request of the agent (its rate limits; *admitted once
 * counted) and lists the entries parented to it. */
static mf_res admit_entries(struct ca_ctx *ctx, const struct mf_spiffe_id *agent,
                            struct ca_admit *why, bool *admitted, struct ca_entry **entries,
                            size_t *n_entries)
{
    MF_TRY(ca_issue_admit(ctx->issuer, agent->str, mf_mono_ms(), why));
    *admitted = true;
    return ca_store_entry_list(ctx->store, agent->str, entries, n_entries);
}

/* The most one item's answer may take: a chain of a few certificates of at
 * most MF_MAX_CERT each, in base64, and the item's strings. */
#define CA_SIGN_ITEM_MAX (128u * 1024u)
/* and its log line (one line of mf_log, at most 8 KiB) */
#define CA_SIGN_LOG_MAX (16u * 1024u)

/* An item's answer in a /v1/sign reply: {"entry_id", "spiffe_id",
 * "x509_svid": [base64 DER, leaf first], "expires_at"}, written straight
 * into out (jansson's encoder escapes every character of a 1 KB chain one
 * at a time, which cost the CA more than its JSON parsing). */
static mf_res put_item_result(struct mf_buf *out, const char *eid, const char *sid,
                              const struct mf_certs *chain)
{
    char exp[MF_RFC3339_LEN];
    mf_time_format(mf_cert_not_after(chain->v[0]), exp);
    /* room for the whole answer at once, unless the IDs need escapes */
    size_t need = 96 + strlen(eid) + strlen(sid) + sizeof(exp);
    for (size_t i = 0; i < chain->n; i++) {
        size_t len = 0;
        (void)mf_cert_der(chain->v[i], &len);
        need += (len + 2) / 3 * 4 + 3;
    }
    MF_TRY(mf_buf_reserve(out, need));
    MF_TRY(mf_buf_append_str(out, "{\"entry_id\":"));
    MF_TRY(mf_json_put_str(out, eid));
    MF_TRY(mf_buf_append_str(out, ",\"spiffe_id\":"));
    MF_TRY(mf_json_put_str(out, sid));
    MF_TRY(mf_buf_append_str(out, ",\"x509_svid\":["));
    for (size_t i = 0; i < chain->n; i++) {
        size_t len = 0;
        const uint8_t *der = mf_cert_der(chain->v[i], &len);
        MF_TRY(mf_buf_append_str(out, i == 0 ? "\"" : ",\""));
        MF_TRY(mf_b64_encode(der, len, out)); /* the base64 alphabet needs no escape */
        MF_TRY(mf_buf_append_u8(out, '"'));
    }
    MF_TRY(mf_buf_append_str(out, "],\"expires_at\":"));
    MF_TRY(mf_json_put_str(out, exp));
    return mf_buf_append_u8(out, '}');
}

/* An item's error answer, {"entry_id", "error", "message"}, into out. */
static mf_res put_item_error(struct mf_buf *out, const char *eid, mf_res r)
{
    json_t *e = item_error(eid, r);
    MF_TRY_PTR(e, MF_ERR_NOMEM);
    mf_res rc = mf_json_dump(e, out);
    json_decref(e);
    return rc;
}

/* One item of a /v1/sign batch, run on a signer thread: the CSR decoded
 * and verified, the policy checked, the leaf signed, and its JSON answer
 * (a result or an error, whose message is formatted on the thread that
 * raised it) written into out. */
struct sign_item {
    struct ca_ctx *ctx;
    const struct mf_spiffe_id *agent;
    const struct ca_entry *entries;
    size_t n_entries;
    int64_t now;
    const char *eid;
    const char *csr_b64;
    struct mf_buf out;
    struct mf_buf log; /* its "issued" line, written with the batch's */
};

static mf_res sign_item_run(void *arg)
{
    struct sign_item *it = arg;
    const struct ca_entry *e = NULL;
    for (size_t k = 0; k < it->n_entries; k++) {
        if (strcmp(it->entries[k].id, it->eid) == 0) {
            e = &it->entries[k];
            break;
        }
    }
    struct mf_csr *csr = NULL;
    struct mf_certs chain;
    mf_certs_init(&chain);
    mf_res ir = MF_RES_OK;
    struct mf_spiffe_id sid;
    if (e == NULL) {
        /* Either no such entry or one parented to another agent: the
         * caller learns nothing about entries that are not its own. */
        ir = MF_RAISE_MSG(MF_ERR_POLICY_NOT_PARENT, "agent %s is not the parent of an entry %s",
                          it->agent->str, it->eid);
    }
    if (mf_ok(ir)) {
        ir = decode_csr(it->csr_b64, &csr);
    }
    if (mf_ok(ir)) {
        ir = ca_policy_sign(it->agent->str, e, mf_csr_spiffe_id(csr));
    }
    if (mf_ok(ir)) {
        ir = mf_spiffeid_parse_cstr(e->spiffe_id, &sid);
    }
    if (mf_ok(ir)) {
        struct ca_leaf_req lr = {
            .id = &sid,
            .pubkey = mf_csr_pubkey(csr),
            .ttl = ca_policy_entry_ttl(e, it->ctx->cfg.svid_ttl),
            .dns_names = (const char *const *)e->dns_names,
            .n_dns = e->n_dns,
            .agent = it->agent->str,
            .log = &it->log,
        };
        ir = ca_issue_leaf(it->ctx->keys, &lr, it->now, &chain);
    } else {
        const struct mf_spiffe_id *cid = csr ? mf_csr_spiffe_id(csr) : NULL;
        ca_issue_log_denied(e ? e->spiffe_id : (cid ? cid->str : "-"), it->agent->str, ir);
    }
    mf_buf_reset(&it->out);
    if (mf_ok(ir)) {
        ir = put_item_result(&it->out, it->eid, e->spiffe_id, &chain);
    }
    mf_res rc = MF_RES_OK;
    if (!mf_ok(ir)) {
        mf_buf_reset(&it->out);
        rc = put_item_error(&it->out, it->eid, ir);
    }
    mf_csr_free(csr);
    mf_certs_cleanup(&chain);
    return rc;
}

static enum MHD_Result do_sign(struct ca_ctx *ctx, struct MHD_Connection *conn,
                               const struct mf_httpd_req *req, const struct mf_spiffe_id *agent)
{
    json_t *body = NULL;
    struct mf_buf results;
    const json_t *reqs = NULL;
    struct ca_entry *entries = NULL;
    size_t n_entries = 0, n = 0;
    struct ca_admit why = {0};
    struct sign_item *items = NULL;
    struct ca_sign_job *jobs = NULL;
    bool admitted = false;
    enum MHD_Result ret;
    mf_buf_init(&results, (size_t)MF_MAX_BATCH * CA_SIGN_ITEM_MAX + 64, 0);
    /* every item's shape is checked first: a malformed batch fails whole */
    mf_res r = ca_api_parse_sign(req->body.data, req->body.len, &body, &reqs);
    if (mf_ok(r)) {
        r = admit_entries(ctx, agent, &why, &admitted, &entries, &n_entries);
    }
    if (mf_ok(r)) {
        n = json_array_size(reqs);
        items = calloc(n ? n : 1, sizeof(*items));
        jobs = calloc(n ? n : 1, sizeof(*jobs));
        if (items == NULL || jobs == NULL) {
            r = MF_RAISE(MF_ERR_NOMEM);
        }
    }
    if (mf_ok(r)) {
        int64_t now = mf_now();
        for (size_t i = 0; i < n; i++) {
            const json_t *it = json_array_get(reqs, i);
            items[i] = (struct sign_item){
                .ctx = ctx,
                .agent = agent,
                .entries = entries,
                .n_entries = n_entries,
                .now = now,
                .eid = json_string_value(json_object_get(it, "entry_id")),
                .csr_b64 = json_string_value(json_object_get(it, "csr")),
            };
            mf_buf_init(&items[i].out, CA_SIGN_ITEM_MAX, 0);
            mf_buf_init(&items[i].log, CA_SIGN_LOG_MAX, 0);
            jobs[i] = (struct ca_sign_job){.fn = sign_item_run, .arg = &items[i]};
        }
        /* the items run on the signer threads, beside other connections'
         * batches; on this thread when the context has no pool */
        if (ctx->signers != NULL) {
            /* a stopped pool fails each job it did not run, in its res */
            mf_res pr = ca_sign_pool_run(ctx->signers, jobs, n);
            (void)pr;
        } else {
            for (size_t i = 0; i < n; i++) {
                jobs[i].res = sign_item_run(&items[i]);
            }
        }
        /* the batch's "issued" lines, in order, in a few writes */
        struct mf_buf lines;
        size_t log_total = 0;
        for (size_t i = 0; i < n; i++) {
            log_total += items[i].log.len;
        }
        mf_buf_init(&lines, log_total, 0);
        for (size_t i = 0; i < n; i++) {
            if (items[i].log.len == 0) {
                continue;
            }
            if (!mf_ok(mf_buf_append(&lines, items[i].log.data, items[i].log.len))) {
                mf_log_lines(&items[i].log); /* no memory: item by item */
            }
        }
        mf_log_lines(&lines);
        mf_buf_cleanup(&lines);
        /* answers in the order of the request, in a buffer sized once */
        size_t total = 16;
        for (size_t i = 0; mf_ok(r) && i < n; i++) {
            if (items[i].out.len == 0) {
                /* not run (a stopped pool), or its answer could not be made */
                r = put_item_error(&items[i].out, items[i].eid, ca_sign_job_result(&jobs[i]));
            }
            total += items[i].out.len + 1;
        }
        if (mf_ok(r)) {
            r = mf_buf_reserve(&results, total);
        }
        if (mf_ok(r)) {
            r = mf_buf_append_str(&results, "{\"results\":[");
        }
        for (size_t i = 0; mf_ok(r) && i < n; i++) {
            if (i > 0) {
                r = mf_buf_append_u8(&results, ',');
            }
            if (mf_ok(r)) {
                r = mf_buf_append(&results, items[i].out.data, items[i].out.len);
            }
        }
        if (mf_ok(r)) {
            r = mf_buf_append_str(&results, "]}");
        }
    }
    for (size_t i = 0; items != NULL && i < n; i++) {
        mf_buf_cleanup(&items[i].out);
        mf_buf_cleanup(&items[i].log);
    }
    free(items);
    free(jobs);
    if (admitted) {
        ca_issue_release(ctx->issuer);
    }
    if (why.status != 0) {
        ret = reply_limit(conn, &why);
    } else if (mf_ok(r)) {
        ret = mf_httpd_reply_take(conn, 200, "application/json", &results);
    } else {
        ret = mf_httpd_reply_res(conn, r);
    }
    mf_buf_cleanup(&results);
    ca_entries_free(entries, n_entries);
    json_decref(body);
    return ret;
}

/* POST /v1/jwt: a JWT-SVID for an entry parented to the caller. */
static enum MHD_Result do_jwt(struct ca_ctx *ctx, struct MHD_Connection *conn,
                              const struct mf_httpd_req *req, const struct mf_spiffe_id *agent)
{
    json_t *doc = NULL;
    const char *sid = NULL;
    const char *aud[MF_JWT_AUD_MAX];
    size_t n_aud = 0, n_entries = 0;
    struct ca_entry *entries = NULL;
    struct ca_admit why = {0};
    bool admitted = false;
    int64_t exp = 0;
    enum MHD_Result ret;
    struct mf_buf tok;
    /* a bearer token: wiped once sent */
    mf_buf_init(&tok, MF_JWT_MAX, MF_BUF_SECRET);
    mf_res r = ca_api_parse_jwt(req->body.data, req->body.len, &doc, &sid, aud, &n_aud);
    if (mf_ok(r)) {
        r = admit_entries(ctx, agent, &why, &admitted, &entries, &n_entries);
    }
    if (mf_ok(r)) {
        bool parent = false;
        for (size_t i = 0; i < n_entries && !parent; i++) {
            parent = strcmp(entries[i].spiffe_id, sid) == 0;
        }
        if (!parent) {
            /* as for /v1/sign: nothing about other agents' entries leaks */
            r = MF_RAISE_MSG(MF_ERR_POLICY_NOT_PARENT,
                             "agent %s is not the parent of an entry for %s", agent->str, sid);
        }
    }
    if (mf_ok(r)) {
        int64_t ttl = ctx->cfg.svid_ttl < CA_JWT_TTL ? ctx->cfg.svid_ttl : CA_JWT_TTL;
        r = ca_keys_sign_jwt(ctx->keys, sid, aud, n_aud, mf_now(), ttl, &tok, &exp);
    }
    if (admitted) {
        ca_issue_release(ctx->issuer);
    }
    char when[MF_RFC3339_LEN];
    mf_time_format(exp, when);
    if (why.status != 0) {
        ca_metrics_jwt(why.status == 429 ? "rate_limited" : "capacity");
        ret = reply_limit(conn, &why);
    } else if (mf_ok(r)) {
        ca_metrics_jwt(NULL);
        mf_log_event(MF_LOG_INFO, __func__, "jwt-svid issued", "spiffe_id", sid, "agent",
                     agent->str, "not_after", when, NULL);
        ret = mf_httpd_reply_json(conn, 200,
                                  json_pack("{s:s,s:s,s:s}", "spiffe_id", sid, "token",
                                            mf_buf_cstr(&tok), "expires_at", when));
    } else {
        ca_metrics_jwt(ca_policy_reason(r));
        ca_issue_log_denied(sid != NULL ? sid : "-", agent->str, r);
        ret = mf_httpd_reply_res(conn, r);
    }
    ca_entries_free(entries, n_entries);
    json_decref(doc);
    mf_buf_cleanup(&tok);
    return ret;
}

static size_t body_cap(const char *url)
{
    if (strcmp(url, "/v1/attest") == 0) {
        return MF_MAX_BODY_PREAUTH;
    }
    if (strcmp(url, "/v1/sign") == 0) {
        return MF_MAX_SIGN_BODY;
    }
    return MF_MAX_BODY;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    struct ca_api *api = cls;
    struct ca_ctx *ctx = api->ctx;
    bool attest = strcmp(url, "/v1/attest") == 0;
    bool known = attest || strcmp(url, "/v1/renew") == 0 || strcmp(url, "/v1/sync") == 0 ||
                 strcmp(url, "/v1/sign") == 0 || strcmp(url, "/v1/jwt") == 0;
    struct mf_spiffe_id agent;
    if (*con_cls == NULL && known && !attest) {
        /* Authenticate before reading any body. */
        bool evicted = false;
        mf_res r = authenticate(ctx, conn, &agent, &evicted);
        if (!mf_ok(r)) {
            ca_issue_log_denied(agent.str[0] != '\0' ? agent.str : "-",
                                agent.str[0] != '\0' ? agent.str : "-", r);
            return reply_auth(conn, r, evicted);
        }
        /* from here the connection may outlive the pre-authentication
         * deadline, e.g. in a sync long poll */
        ca_gate_authenticated(api->gate, conn);
    }
    struct mf_httpd_req *req = NULL;
    enum MHD_Result result;
    if (!mf_httpd_body(conn, con_cls, upload_data, upload_size, body_cap(url), &req, &result)) {
        return result;
    }
    if (!known) {
        return mf_httpd_reply_error(conn, 404, "not_found", "no such endpoint");
    }
    bool want_get = strcmp(url, "/v1/sync") == 0;
    if (strcmp(method, want_get ? "GET" : "POST") != 0) {
        return mf_httpd_reply_error(conn, 405, "invalid_argument", "use %s",
                                    want_get ? "GET" : "POST");
    }
    if (attest) {
        return do_attest(ctx, conn, req);
    }
    bool evicted = false;
    mf_res r = authenticate(ctx, conn, &agent, &evicted);
    if (!mf_ok(r)) {
        ca_issue_log_denied(agent.str[0] != '\0' ? agent.str : "-",
                            agent.str[0] != '\0' ? agent.str : "-", r);
        return reply_auth(conn, r, evicted);
    }
    if (strcmp(url, "/v1/renew") == 0) {
        return do_renew(ctx, conn, req, &agent);
    }
    if (want_get) {
        return do_sync(ctx, conn, &agent);
    }
    if (strcmp(url, "/v1/jwt") == 0) {
        return do_jwt(ctx, conn, req, &agent);
    }
    return do_sign(ctx, conn, req, &agent);
}

/* ---- start / stop ----------------------------------------------------------------- */

/* dl_iterate_phdr callback: adds an object's static TLS block to *data */
static int add_tls(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type == PT_TLS) {
            *(size_t *)data += info->dlpi_phdr[i].p_memsz + info->dlpi_phdr[i].p_align;
        }
    }
    return 0;
}

/* The stack of a connection thread: 512 KiB for the handler itself (TLS
 * handshakes, JSON parsing at its nesting limit) plus the static TLS of the
 * loaded objects, which glibc carves out of every thread's stack. The SP
 * build of wolfSSL alone has some 360 KiB of it (its per-thread point
 * caches), which would otherwise leave a handler less than 150 KiB. */
static size_t conn_stack_size(void)
{
    size_t tls = 0;
    dl_iterate_phdr(add_tls, &tls);
    size_t page = 4096;
    return (size_t)(512 * 1024) + (tls + page - 1) / page * page;
}
mf_res ca_api_start(struct ca_ctx *ctx, struct ca_api **out)
{
    mf_res rc;
    MF_ENSURE_REF(ctx);
    *out = NULL;
    MF_ENSURE(g_api == NULL, MF_ERR_STATE);
    struct mf_buf pem;
    mf_buf_init(&pem, MF_MAX_BUNDLE, 0);
    struct ca_api *api = calloc(1, sizeof(*api));
    MF_TRY_PTR(api, MF_ERR_NOMEM);
    api->ctx = ctx;
    api->fd = -1;
    api->cur = -1;
    pthread_mutex_init(&api->mu, NULL);
    MF_TRY_OUT(renew_server(api, mf_now()));
    struct mf_bundle *b = ca_keys_bundle(ctx->keys);
    MF_ENSURE_OUT(b != NULL, MF_ERR_STATE);
    rc = mf_bundle_to_pem(b, &pem);
    mf_bundle_free(b);
    MF_TRY_OUT(rc);
    /* MEM_TRUST is what makes MHD ask for a client certificate (see
     * mf_httpd.h); it verifies nothing, so it need not track rotation:
     * authenticate() checks every chain against the live bundle. */
    api->trust_pem = strdup(mf_buf_cstr(&pem));
    MF_ENSURE_OUT(api->trust_pem != NULL, MF_ERR_NOMEM);
    MF_TRY_OUT(mf_httpd_listen_tcp(ctx->cfg.listen, 512, &api->fd, api->addr, sizeof(api->addr)));
    struct ca_gate_cfg gc = {.max_conns = ctx->cfg.max_connections,
                             .per_ip = ctx->cfg.max_connections_per_ip,
                             .deadline_s = ctx->cfg.handshake_timeout};
    MF_TRY_OUT(ca_gate_new(&gc, &api->gate));
    g_api = api;
    /* The gate accepts and admits (ca_gate.h); MHD listens on nothing and
     * its own connection limit is never reached. Its idle timeout is for
     * authenticated connections: a sync long poll blocks the handler up to
     * SYNC_WAIT_MAX; the gate holds everyone else to handshake_timeout. */
    api->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_TLS |
            MHD_USE_POLL | MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET,
        0, NULL, NULL, handle, api, MHD_OPTION_HTTPS_CERT_CALLBACK, cert_cb,
        MHD_OPTION_HTTPS_MEM_TRUST, api->trust_pem, MHD_OPTION_HTTPS_PRIORITIES, TLS13_ONLY,
        MHD_OPTION_CONNECTION_LIMIT, ca_gate_mhd_limit(&gc), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(SYNC_WAIT_MAX + 30), MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
        MHD_OPTION_THREAD_STACK_SIZE, conn_stack_size(), MHD_OPTION_NOTIFY_COMPLETED,
        mf_httpd_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, ca_gate_notify, api->gate,
        MHD_OPTION_END);
    if (api->d == NULL) {
        g_api = NULL;
        MF_BAIL_OUT(MF_ERR_IO, "cannot start the agent API on %s", ctx->cfg.listen);
    }
    MF_TRY_OUT(ca_gate_start(api->gate, api->fd, api->d));
    api->fd = -1; /* owned by the gate now */
    *out = api;
    api = NULL;
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&pem);
    ca_api_stop(api);
    return rc;
}

const char *ca_api_address(const struct ca_api *api)
{
    return api ? api->addr : "";
}

void ca_api_stop(struct ca_api *api)
{
    if (api == NULL) {
        return;
    }
    /* the gate first: nothing new reaches MHD while it stops */
    ca_gate_stop(api->gate);
    if (api->d != NULL) {
        MHD_stop_daemon(api->d);
    }
    ca_gate_free(api->gate);
    if (api->fd >= 0) {
        close(api->fd);
    }
    if (g_api == api) {
        g_api = NULL;
    }
    for (int i = 0; i < SRV_GENS; i++) {
        cred_clear(&api->gens[i]);
    }
    free(api->trust_pem);
    pthread_mutex_destroy(&api->mu);
    free(api);
}
