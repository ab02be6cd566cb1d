/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_client: attest, renew, sync and sign against the CA. See
 * agent_client.h and docs/api.md.
 */
#include "agent/agent_client.h"

#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_metrics.h"
#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"

#define CONNECT_TIMEOUT_MS 5000
#define CALL_TIMEOUT_MS    15000
#define SVID_REPLY_MAX     (MF_MAX_BUNDLE + 64u * 1024u)
#define SYNC_REPLY_MAX     (16u * 1024u * 1024u)
#define SIGN_REPLY_MAX     (16u * 1024u * 1024u)
#define CHAIN_MAX          8
#define SERVER_BACKOFF_MS  1000  /* a failed server's first pause */
#define SERVER_BACKOFF_CAP 60000 /* and its longest */

/* Splits a comma-separated list of host:port into cl->servers. */
static mf_res parse_servers(struct agent_client *cl, const char *list)
{
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
            n--;
        }
        MF_ENSURE_MSG(n > 0, MF_ERR_USAGE_ARG, "--server: an empty address in the list");
        MF_ENSURE_MSG(n < sizeof(cl->servers[0].addr), MF_ERR_USAGE_ARG,
                      "--server: an address is too long");
        MF_ENSURE_MSG(cl->n_servers < AGENT_SERVERS_MAX, MF_ERR_USAGE_ARG,
                      "--server: more than %d addresses", AGENT_SERVERS_MAX);
        struct agent_server *s = &cl->servers[cl->n_servers];
        memcpy(s->addr, p, n);
        s->addr[n] = '\0';
        for (size_t i = 0; i < cl->n_servers; i++) {
            MF_ENSURE_MSG(strcmp(cl->servers[i].addr, s->addr) != 0, MF_ERR_USAGE_ARG,
                          "--server: %s is listed twice", s->addr);
        }
        cl->n_servers++;
        if (end == NULL) {
            return MF_RES_OK;
        }
        p = end + 1;
    }
}

/* A uniform draw in [0, n) (n > 0). */
static uint64_t draw(uint64_t n)
{
    uint64_t r = 0;
    if (!mf_ok(mf_random((uint8_t *)&r, sizeof(r)))) {
        r = (uint64_t)mf_mono_ms();
    }
    return r % n;
}

static void use_server(struct agent_client *cl, size_t i)
{
    cl->cur = i;
    memcpy(cl->server, cl->servers[i].addr, sizeof(cl->server));
    if (cl->report) {
        agent_metrics_ca_server(cl->server);
    }
}

/* see agent_client.h */
void agent_client_report(struct agent_client *cl)
{
    cl->report = true;
    agent_metrics_ca_server(cl->server);
    if (cl->n_servers > 1) {
        char n[24];
        snprintf(n, sizeof(n), "%zu", cl->n_servers);
        mf_log_event(MF_LOG_INFO, __func__, "CA server drawn", "server", cl->server, "of", n, NULL);
    }
}

/* True when the owner asked to abandon requests (not the server's fault). */
static bool cancelled(const struct agent_client *cl)
{
    if (cl->cancel_fd < 0) {
        return false;
    }
    struct pollfd p = {.fd = cl->cancel_fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0;
}

/* see agent_client.h */
void agent_client_fail_over(struct agent_client *cl, const char *reason)
{
    if (cl->n_servers < 2 || cancelled(cl)) {
        return;
    }
    char why[256];
    snprintf(why, sizeof(why), "%s", reason);
    int64_t now = mf_mono_ms();
    struct agent_server *s = &cl->servers[cl->cur];
    s->fails++;
    int64_t pause = SERVER_BACKOFF_MS;
    for (unsigned i = 1; i < s->fails && pause < SERVER_BACKOFF_CAP; i++) {
        pause *= 2;
    }
    if (pause > SERVER_BACKOFF_CAP) {
        pause = SERVER_BACKOFF_CAP;
    }
    /* in the upper half: agents that lost one server together do not
     * come back to it together */
    pause = pause / 2 + (int64_t)draw((uint64_t)pause / 2 + 1);
    s->down_until_ms = now + pause;
    size_t ready[AGENT_SERVERS_MAX], n_ready = 0, soonest = cl->cur;
    for (size_t i = 0; i < cl->n_servers; i++) {
        if (i == cl->cur) {
            continue;
        }
        if (cl->servers[i].down_until_ms <= now) {
            ready[n_ready++] = i;
        }
        if (soonest == cl->cur ||
            cl->servers[i].down_until_ms < cl->servers[soonest].down_until_ms) {
            soonest = i;
        }
    }
    size_t next = n_ready > 0 ? ready[draw(n_ready)] : soonest;
    char from[sizeof(cl->server)];
    memcpy(from, cl->server, sizeof(from));
    agent_client_disconnect(cl);
    use_server(cl, next);
    agent_metrics_ca_failover();
    mf_log_event(MF_LOG_WARN, __func__, "moved to another CA server", "server", cl->server, "from",
                 from, "reason", why, NULL);
}

/* The server in use answered: it is in good standing again. */
static void server_ok(struct agent_client *cl)
{
    cl->servers[cl->cur].fails = 0;
    cl->servers[cl->cur].down_until_ms = 0;
}

/* see agent_client.h */
mf_res agent_client_init(struct agent_client *cl, const char *server, const char *td,
                         struct mf_bundle *trust)
{
    MF_ENSURE_REF(cl);
    MF_ENSURE_REF(server);
    MF_ENSURE_REF(td);
    memset(cl, 0, sizeof(*cl));
    mf_bundle_set_init(&cl->trust);
    cl->retry_after = -1;
    cl->cancel_fd = -1;
    MF_TRY(parse_servers(cl, server));
    /* spread agents over the servers; each stays on its draw */
    use_server(cl, cl->n_servers > 1 ? (size_t)draw(cl->n_servers) : 0);
    int n = snprintf(cl->td, sizeof(cl->td), "%s", td);
    MF_ENSURE(n > 0 && (size_t)n < sizeof(cl->td), MF_ERR_USAGE_ARG);
    n = snprintf(cl->server_id, sizeof(cl->server_id), "spiffe://%s/mayfly/server", td);
    MF_ENSURE(n > 0 && (size_t)n < sizeof(cl->server_id), MF_ERR_USAGE_ARG);
    if (trust != NULL) {
        MF_TRY(mf_bundle_set_put(&cl->trust, trust));
    }
    return MF_RES_OK;
}

/* see agent_client.h */
void agent_client_disconnect(struct agent_client *cl)
{
    mf_http_close(cl->conn);
    cl->conn = NULL;
}

/* see agent_client.h */
void agent_client_cleanup(struct agent_client *cl)
{
    if (cl == NULL) {
        return;
    }
    agent_client_disconnect(cl);
    mf_bundle_set_cleanup(&cl->trust);
    memset(cl, 0, sizeof(*cl));
}

/* see agent_client.h */
mf_res agent_client_set_trust(struct agent_client *cl, struct mf_bundle *b)
{
    MF_TRY(mf_bundle_set_put(&cl->trust, b));
    agent_client_disconnect(cl);
    return MF_RES_OK;
}

/* see agent_client.h */
void agent_client_set_identity(struct agent_client *cl, const struct mf_key *key,
                               const struct mf_certs *chain)
{
    cl->key = key;
    cl->chain = chain;
    agent_client_disconnect(cl);
}

static mf_res ensure_conn(struct agent_client *cl, bool with_identity)
{
    if (cl->conn != NULL && mf_http_reusable(cl->conn)) {
        return MF_RES_OK;
    }
    /* a connection the CA closed (it answered a refusal with "Connection:
     * close", or restarted) would fail the next request for nothing and
     * cost a whole backoff step (fault_ca_outage.sh) */
    agent_client_disconnect(cl);
    struct mf_tls_client_cfg cfg = {
        .chain = with_identity ? cl->chain : NULL,
        .key = with_identity ? cl->key : NULL,
        .trust = &cl->trust,
        .expect_server_id = cl->server_id,
        .server_id_below = true,
    };
    mf_res r = mf_http_connect_tls(cl->server, &cfg, CONNECT_TIMEOUT_MS, &cl->conn);
    if (r.err == MF_ERR_IO_CONNECT || r.err == MF_ERR_IO_TIMEOUT) {
        /* say plainly that the CA is down, not what the socket layer saw:
         * the detail is "<addr>: <strerror>" or "connect: <strerror>", whose
         * cause is kept */
        char why[256];
        const char *d = mf_err_detail();
        size_t sl = strlen(cl->server);
        if (strncmp(d, cl->server, sl) == 0 && strncmp(d + sl, ": ", 2) == 0) {
            d += sl + 2;
        }
        if (strncmp(d, "connect: ", 9) == 0) {
            d += 9;
        }
        snprintf(why, sizeof(why), "%s", *d != '\0' ? d : mf_err_str(r.err));
        why[0] = (char)tolower((unsigned char)why[0]);
        return MF_RAISE_MSG(r.err, "CA unreachable at %s: %s", cl->server, why);
    }
    MF_TRY(r);
    mf_http_set_cancel_fd(cl->conn, cl->cancel_fd);
    return MF_RES_OK;
}

/* Maps a non-2xx status to an error, with the CA's message as detail, and
 * tells a refusal of the agent itself (banned, evicted) in cl->denial. */
static mf_res status_error(struct agent_client *cl, const struct mf_http_resp *resp)
{
    const char *msg = "";
    const char *code = "";
    json_t *obj = NULL;
    if (mf_ok(mf_json_parse(mf_buf_cstr(&resp->body), resp->body.len, MF_MAX_BODY, &obj))) {
        const char *m = NULL;
        if (mf_ok(mf_json_str(obj, "message", false, 512, &m)) && m != NULL) {
            msg = m;
        }
        m = NULL;
        if (mf_ok(mf_json_str(obj, "error", false, 64, &m)) && m != NULL) {
            code = m;
        }
    }
    if (resp->status == 403) {
        /* a CA before the "banned"/"evicted" codes said so in the message */
        if (strcmp(code, "evicted") == 0 || strstr(msg, "is not attested (evicted") != NULL) {
            cl->denial = AGENT_DENIAL_EVICTED;
        } else if (strcmp(code, "banned") == 0 || strstr(msg, " is banned") != NULL) {
            cl->denial = AGENT_DENIAL_BANNED;
        }
    }
    enum mf_err e;
    switch (resp->status) {
    case 400:
    case 413:
        e = MF_ERR_PROTO;
        break;
    case 401:
        e = MF_ERR_AUTH;
        break;
    case 403:
        e = MF_ERR_AUTH_BANNED;
        break;
    case 429:
    case 503:
        e = MF_ERR_POLICY_LIMIT;
        break;
    default:
        e = MF_ERR_IO;
        break;
    }
    mf_res r =
        mf_err_raise(e, __FILE__, __LINE__, __func__, "CA answered %d: %s", resp->status, msg);
    json_decref(obj);
    return r;
}

/* One request/response exchange with a JSON reply. *status is the HTTP
 * status; *out the parsed body for 200/201, else NULL. The connection is
 * dropped on any transport error so the next call starts fresh. */
static mf_res call(struct agent_client *cl, bool with_identity, const char *method,
                   const char *path, const struct mf_buf *body, int timeout_ms, size_t max_body,
                   int *status, json_t **out)
{
    mf_res rc;
    struct mf_http_resp resp;
    *out = NULL;
    *status = 0;
    cl->denial = AGENT_DENIAL_NONE;
    mf_http_resp_init(&resp, max_body);
    rc = ensure_conn(cl, with_identity);
    if (!mf_ok(rc)) {
        agent_client_fail_over(cl, mf_err_detail());
        goto out;
    }
    rc = mf_http_request(cl->conn, method, path, NULL, body != NULL ? body->data : NULL,
                         body != NULL ? body->len : 0, timeout_ms, &resp);
    if (!mf_ok(rc) && mf_http_stale(cl->conn)) {
        /* the CA closed the kept-alive connection while it was idle (its
         * idle timeout, a restart) and never saw the request: send it
         * once more on a fresh connection instead of failing the caller */
        char why[256];
        mf_err_format(rc, why, sizeof(why));
        mf_log_event(MF_LOG_DEBUG, __func__, "CA closed the idle connection; retrying once", "path",
                     path, "error", why, NULL);
        agent_metrics_ca_reconnected();
        agent_client_disconnect(cl);
        mf_http_resp_cleanup(&resp);
        mf_http_resp_init(&resp, max_body);
        rc = ensure_conn(cl, with_identity);
        if (!mf_ok(rc)) {
            agent_client_fail_over(cl, mf_err_detail());
            goto out;
        }
        rc = mf_http_request(cl->conn, method, path, NULL, body != NULL ? body->data : NULL,
                             body != NULL ? body->len : 0, timeout_ms, &resp);
    }
    if (!mf_ok(rc)) {
        char why[256];
        mf_err_format(rc, why, sizeof(why));
        agent_client_disconnect(cl);
        agent_client_fail_over(cl, why);
        goto out;
    }
    *status = resp.status;
    if (resp.status >= 500) {
        char why[64];
        snprintf(why, sizeof(why), "answered %d", resp.status);
        rc = status_error(cl, &resp);
        agent_client_fail_over(cl, why);
        goto out;
    }
    server_ok(cl);
    cl->retry_after = resp.retry_after;
    if (resp.status == 204) {
        rc = MF_RES_OK;
        goto out;
    }
    if (resp.status != 200 && resp.status != 201) {
        rc = status_error(cl, &resp);
        goto out;
    }
    MF_TRY_OUT(mf_json_parse(mf_buf_cstr(&resp.body), resp.body.len, max_body, out));
    rc = MF_RES_OK;
out:
    mf_http_resp_cleanup(&resp);
    return rc;
}

/* see agent_client.h */
mf_res agent_chain_from_b64(const json_t *arr, struct mf_certs *chain)
{
    mf_res rc = MF_RES_OK;
    struct mf_buf der;
    MF_ENSURE_MSG(json_is_array(arr) && json_array_size(arr) > 0 &&
                      json_array_size(arr) <= CHAIN_MAX,
                  MF_ERR_PROTO_JSON, "x509_svid must be a non-empty array");
    mf_buf_init(&der, MF_MAX_CERT, 0);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *s = json_array_get(arr, i);
        struct mf_cert *c = NULL;
        MF_ENSURE_OUT_MSG(json_is_string(s), MF_ERR_PROTO_JSON, "certificate is not a string");
        mf_buf_reset(&der);
        MF_TRY_OUT(mf_b64_decode(json_string_value(s), json_string_length(s), &der));
        MF_TRY_OUT(mf_cert_from_der(der.data, der.len, &c));
        rc = mf_certs_push(chain, c);
        mf_cert_free(c);
        MF_TRY_OUT(rc);
    }
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    return rc;
}

/* see agent_client.h */
mf_res agent_bundle_from_json(const char *td, const json_t *obj, struct mf_bundle **out)
{
    mf_res rc;
    struct mf_buf text;
    *out = NULL;
    MF_ENSURE_MSG(json_is_object(obj), MF_ERR_PROTO_JSON, "bundle is not an object");
    mf_buf_init(&text, MF_MAX_BUNDLE, 0);
    MF_TRY_OUT(mf_json_dump(obj, &text));
    MF_TRY_OUT(mf_bundle_from_jwks(td, mf_buf_cstr(&text), text.len, out));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&text);
    return rc;
}

/* Body {"<field>":"...","csr":"<b64 DER>"} (field may be NULL). */
static mf_res csr_body(const struct mf_key *key, const char *san, const char *field,
                       const char *value, struct mf_buf *body)
{
    mf_res rc;
    struct mf_buf der, b64;
    json_t *obj = NULL;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    mf_buf_init(&b64, 2 * MF_MAX_CSR, 0);
    MF_TRY_OUT(mf_csr_create(key, san, &der));
    MF_TRY_OUT(mf_b64_encode(der.data, der.len, &b64));
    obj = json_object();
    MF_ENSURE_OUT(obj != NULL, MF_ERR_NOMEM);
    if (field != NULL) {
        MF_ENSURE_OUT(json_object_set_new(obj, field, json_string(value)) == 0, MF_ERR_NOMEM);
    }
    MF_ENSURE_OUT(json_object_set_new(obj, "csr", json_string(mf_buf_cstr(&b64))) == 0,
                  MF_ERR_NOMEM);
    MF_TRY_OUT(mf_json_dump(obj, body));
    rc = MF_RES_OK;
out:
    json_decref(obj);
    mf_buf_cleanup(&der);
    mf_buf_cleanup(&b64);
    return rc;
}

/* Shared by attest and renew: parse, verify against the new bundle, check
 * the key. */
static mf_res svid_reply(struct agent_client *cl, const json_t *obj, const struct mf_key *key,
                         const char *want_id, struct mf_certs *chain, struct mf_bundle **bundle)
{
    mf_res rc;
    const char *sid = NULL;
    const json_t *arr = NULL, *bobj = NULL;
    struct mf_certs cs;
    struct mf_bundle *b = NULL;
    struct mf_bundle_set set;
    struct mf_spiffe_id got;

    mf_certs_init(&cs);
    mf_bundle_set_init(&set);
    *bundle = NULL;
    MF_TRY_OUT(mf_json_str(obj, "spiffe_id", true, MF_SPIFFE_ID_MAX, &sid));
    MF_TRY_OUT(mf_json_array(obj, "x509_svid", true, CHAIN_MAX, &arr));
    MF_TRY_OUT(mf_json_object(obj, "bundle", true, &bobj));
    MF_TRY_OUT(agent_chain_from_b64(arr, &cs));
    MF_TRY_OUT(agent_bundle_from_json(cl->td, bobj, &b));
    MF_TRY_OUT(mf_bundle_set_put(&set, b));
    MF_TRY_OUT(mf_svid_verify(&cs, &set, mf_now(), &got));
    MF_ENSURE_OUT_MSG(strcmp(got.str, sid) == 0, MF_ERR_AUTH_SVID, "SVID carries %s, reply says %s",
                      got.str, sid);
    MF_ENSURE_OUT_MSG(want_id == NULL || strcmp(got.str, want_id) == 0, MF_ERR_AUTH_SVID,
                      "SVID carries %s, expected %s", got.str, want_id);
    MF_ENSURE_OUT_MSG(mf_cert_matches_key(cs.v[0], key), MF_ERR_CRYPTO_MISMATCH,
                      "SVID is not for our key");
    *chain = cs;
    mf_certs_init(&cs);
    *bundle = b;
    b = NULL;
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&cs);
    mf_bundle_set_cleanup(&set);
    mf_bundle_free(b);
    return rc;
}

/* see agent_client.h */
mf_res agent_client_attest(struct agent_client *cl, const char *token, const struct mf_key *key,
                           struct mf_certs *chain, struct mf_bundle **bundle)
{
    mf_res rc;
    struct mf_buf body;
    json_t *reply = NULL;
    int status = 0;
    MF_ENSURE_REF(token);
    /* the token is a secret until it is used */
    mf_buf_init(&body, MF_MAX_BODY_PREAUTH, MF_BUF_SECRET);
    MF_TRY_OUT(csr_body(key, NULL, "join_token", token, &body));
    agent_client_disconnect(cl);
    MF_TRY_OUT(call(cl, false, "POST", "/v1/attest", &body, CALL_TIMEOUT_MS, SVID_REPLY_MAX,
                    &status, &reply));
    MF_ENSURE_OUT(reply != NULL, MF_ERR_PROTO_HTTP);
    MF_TRY_OUT(svid_reply(cl, reply, key, NULL, chain, bundle));
    rc = MF_RES_OK;
out:
    /* the attest connection carried no client certificate; never reuse it */
    agent_client_disconnect(cl);
    json_decref(reply);
    mf_buf_cleanup(&body);
    return rc;
}

/* see agent_client.h */
mf_res agent_client_renew(struct agent_client *cl, const char *agent_id,
                          const struct mf_key *new_key, struct mf_certs *chain,
                          struct mf_bundle **bundle)
{
    mf_res rc;
    struct mf_buf body;
    json_t *reply = NULL;
    int status = 0;
    mf_buf_init(&body, MF_MAX_BODY, 0);
    MF_TRY_OUT(csr_body(new_key, agent_id, NULL, NULL, &body));
    MF_TRY_OUT(call(cl, true, "POST", "/v1/renew", &body, CALL_TIMEOUT_MS, SVID_REPLY_MAX, &status,
                    &reply));
    MF_ENSURE_OUT(reply != NULL, MF_ERR_PROTO_HTTP);
    MF_TRY_OUT(svid_reply(cl, reply, new_key, agent_id, chain, bundle));
    rc = MF_RES_OK;
out:
    json_decref(reply);
    mf_buf_cleanup(&body);
    return rc;
}

/* Percent-encodes the few characters an opaque revision could hold that
 * would break a query string. */
static mf_res append_query_value(struct mf_buf *b, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            MF_TRY(mf_buf_append_u8(b, *p));
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            MF_TRY(mf_buf_append(b, e, 3));
        }
    }
    return MF_RES_OK;
}

/* see agent_client.h */
mf_res agent_client_sync(struct agent_client *cl, const char *revision, int wait_s, json_t **out)
{
    mf_res rc;
    struct mf_buf path;
    int status = 0;
    MF_ENSURE_REF(out);
    *out = NULL;
    if (wait_s < 0) {
        wait_s = 0;
    }
    if (wait_s > AGENT_SYNC_WAIT_MAX) {
        wait_s = AGENT_SYNC_WAIT_MAX;
    }
    mf_buf_init(&path, 2048, 0);
    MF_TRY_OUT(mf_buf_append_str(&path, "/v1/sync?revision="));
    MF_TRY_OUT(append_query_value(&path, revision != NULL ? revision : ""));
    MF_TRY_OUT(mf_buf_printf(&path, "&wait=%d", wait_s));
    MF_TRY_OUT(call(cl, true, "GET", mf_buf_cstr(&path), NULL, wait_s * 1000 + CALL_TIMEOUT_MS,
                    SYNC_REPLY_MAX, &status, out));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&path);
    return rc;
}

/* see agent_client.h */
mf_res agent_client_sign(struct agent_client *cl, const json_t *requests, json_t **out)
{
    mf_res rc;
    struct mf_buf body;
    int status = 0;
    json_t *obj = NULL;
    MF_ENSURE_REF(out);
    *out = NULL;
    mf_buf_init(&body, MF_MAX_SIGN_BODY, 0);
    obj = json_pack("{s:O}", "requests", requests);
    MF_ENSURE_OUT(obj != NULL, MF_ERR_NOMEM);
    MF_TRY_OUT(mf_json_dump(obj, &body));
    MF_TRY_OUT(
        call(cl, true, "POST", "/v1/sign", &body, CALL_TIMEOUT_MS, SIGN_REPLY_MAX, &status, out));
    MF_ENSURE_OUT(*out != NULL, MF_ERR_PROTO_HTTP);
    rc = MF_RES_OK;
out:
    json_decref(obj);
    mf_buf_cleanup(&body);
    return rc;
}

/* see agent_client.h */
mf_res agent_client_jwt(struct agent_client *cl, const char *spiffe_id, const char *const *aud,
                        size_t n_aud, char **token)
{
    mf_res rc;
    struct mf_buf body;
    int status = 0;
    json_t *obj = NULL, *arr = NULL, *reply = NULL;
    const char *tok = NULL;
    MF_ENSURE_REF(token);
    *token = NULL;
    mf_buf_init(&body, MF_MAX_BODY, 0);
    arr = json_array();
    MF_ENSURE_OUT(arr != NULL, MF_ERR_NOMEM);
    for (size_t i = 0; i < n_aud; i++) {
        MF_ENSURE_OUT(json_array_append_new(arr, json_string(aud[i])) == 0, MF_ERR_USAGE_ARG);
    }
    obj = json_pack("{s:s,s:O}", "spiffe_id", spiffe_id, "audience", arr);
    MF_ENSURE_OUT(obj != NULL, MF_ERR_NOMEM);
    MF_TRY_OUT(mf_json_dump(obj, &body));
    MF_TRY_OUT(
        call(cl, true, "POST", "/v1/jwt", &body, CALL_TIMEOUT_MS, MF_MAX_BODY, &status, &reply));
    MF_ENSURE_OUT(reply != NULL, MF_ERR_PROTO_HTTP);
    MF_TRY_OUT(mf_json_str(reply, "token", true, MF_MAX_BODY, &tok));
    *token = strdup(tok);
    MF_ENSURE_OUT(*token != NULL, MF_ERR_NOMEM);
    rc = MF_RES_OK;
out:
    if (mf_ok(rc)) {
        agent_metrics_jwt_fetched();
    } else {
        agent_metrics_jwt_failed(rc);
    }
    json_decref(obj);
    json_decref(arr);
    json_decref(reply);
    mf_buf_cleanup(&body);
    return rc;
}
