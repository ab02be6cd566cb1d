/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_admin: the admin API (see ca_admin.h and docs/api.md).
 *
 * Every write goes through ca_policy first and the store second, so that a
 * refused request changes nothing; each successful write wakes the agents'
 * long-polling sync requests.
 */
#include "ca/ca_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_httpd.h"
#include "api/internal/mf_selector.h"
#include "ca/ca_fed.h"
#include "ca/ca_policy.h"
#include "ca/ca_wire.h"

#define TOKEN_BYTES   32 /* 256 bits of entropy, shown once as hex */
#define TOKEN_TTL_MAX (7 * 24 * 3600)

struct ca_admin {
    struct MHD_Daemon *d;
    int fd;
};

/* An entry as the admin API shows it: the stored fields plus
 * effective_ttl, the lifetime its SVIDs get (ttl 0 means the CA's
 * --svid-ttl, which an operator should not have to look up). */
static mf_res admin_entry_json(const struct ca_ctx *ctx, const struct ca_entry *e, json_t **out)
{
    json_t *o = NULL;
    MF_TRY(ca_entry_to_json(e, &o));
    if (json_object_set_new(o, "effective_ttl",
                            json_integer(ca_policy_entry_ttl(e, ctx->cfg.svid_ttl))) != 0) {
        json_decref(o);
        return MF_RAISE(MF_ERR_NOMEM);
    }
    *out = o;
    return MF_RES_OK;
}

static enum MHD_Result reply_entry(const struct ca_ctx *ctx, struct MHD_Connection *conn,
                                   unsigned status, const struct ca_entry *e)
{
    json_t *o = NULL;
    mf_res r = admin_entry_json(ctx, e, &o);
    if (!mf_ok(r)) {
        return mf_httpd_reply_res(conn, r);
    }
    return mf_httpd_reply_json(conn, status, o);
}

/* ---- request bodies (pure: no I/O, see ca_admin.h) -------------------------- */

/* see ca_admin.h */
mf_res ca_admin_parse_entry(const void *body, size_t len, const char *td, int64_t max_ttl,
                            bool patch, struct ca_entry *e)
{
    json_t *doc = NULL;
    mf_res r = mf_json_parse(body, len, MF_MAX_BODY, &doc);
    if (mf_ok(r)) {
        r = ca_entry_from_json(doc, patch, e, NULL);
    }
    if (mf_ok(r)) {
        r = ca_policy_entry_check(td, max_ttl, e);
    }
    json_decref(doc);
    return r;
}

/* The bodies that name one agent: {"spiffe_id": ...}, plus "ttl" (1 to
 * TOKEN_TTL_MAX, optional) when ttl is not NULL. */
static mf_res parse_agent_body(const void *body, size_t len, const char *td,
                               struct mf_spiffe_id *id, int64_t *ttl)
{
    static const char *const keys_ttl[] = {"spiffe_id", "ttl", NULL};
    static const char *const keys_id[] = {"spiffe_id", NULL};
    json_t *doc = NULL;
    const char *sid = NULL;
    mf_res r = mf_json_parse(body, len, MF_MAX_BODY, &doc);
    if (mf_ok(r)) {
        r = mf_json_only_keys(doc, ttl != NULL ? keys_ttl : keys_id);
    }
    if (mf_ok(r)) {
        r = mf_json_str(doc, "spiffe_id", true, MF_SPIFFE_ID_MAX, &sid);
    }
    if (mf_ok(r) && ttl != NULL) {
        r = mf_json_int(doc, "ttl", false, INT64_MIN, INT64_MAX, ttl);
        /* say what the limit is, not that the wire format's field is off */
        if (mf_ok(r) && (*ttl < 0 || *ttl > TOKEN_TTL_MAX ||
                         (*ttl == 0 && json_object_get(doc, "ttl") != NULL))) {
            r = MF_RAISE_MSG(MF_ERR_USAGE_ARG,
                             "token ttl %llds is out of range: 1 s to %d s (7 days)",
                             (long long)*ttl, TOKEN_TTL_MAX);
        }
    }
    if (mf_ok(r)) {
        r = ca_policy_agent_id(td, sid, id);
    }
    json_decref(doc);
    return r;
}

/* see ca_admin.h */
mf_res ca_admin_parse_token(const void *body, size_t len, const char *td, struct mf_spiffe_id *id,
                            int64_t *ttl)
{
    MF_ENSURE_REF(ttl);
    return parse_agent_body(body, len, td, id, ttl);
}

/* see ca_admin.h */
mf_res ca_admin_parse_agent_op(const void *body, size_t len, const char *td,
                               struct mf_spiffe_id *id)
{
    return parse_agent_body(body, len, td, id, NULL);
}

static enum MHD_Result entry_create(struct ca_ctx *ctx, struct MHD_Connection *conn,
                                    const struct mf_httpd_req *req)
{
    struct ca_entry e;
    memset(&e, 0, sizeof(e));
    mf_res r = ca_admin_parse_entry(req->body.data, req->body.len, ctx->cfg.trust_domain,
                                    ca_keys_max_leaf_ttl(ctx->cfg.ca_ttl), false, &e);
    if (mf_ok(r)) {
        e.created_at = mf_now();
        r = ca_store_entry_create(ctx->store, &e);
    }
    enum MHD_Result ret;
    if (mf_ok(r)) {
        mf_log_event(MF_LOG_INFO, __func__, "entry created", "id", e.id, "spiffe_id", e.spiffe_id,
                     "parent_id", e.parent_id, NULL);
        ca_ctx_changed(ctx);
        ret = reply_entry(ctx, conn, 201, &e);
    } else {
        ret = mf_httpd_reply_res(conn, r);
    }
    ca_entry_cleanup(&e);
    return ret;
}

static enum MHD_Result entry_update(struct ca_ctx *ctx, struct MHD_Connection *conn,
                                    const struct mf_httpd_req *req, const char *id)
{
    struct ca_entry e;
    memset(&e, 0, sizeof(e));
    mf_res r = ca_store_entry_get(ctx->store, id, &e);
    if (mf_ok(r)) {
        r = ca_admin_parse_entry(req->body.data, req->body.len, ctx->cfg.trust_domain,
                                 ca_keys_max_leaf_ttl(ctx->cfg.ca_ttl), true, &e);
    }
    if (mf_ok(r)) {
        r = ca_store_entry_update(ctx->store, &e);
    }
    enum MHD_Result ret;
    if (mf_ok(r)) {
        mf_log_event(MF_LOG_INFO, __func__, "entry updated", "id", e.id, "spiffe_id", e.spiffe_id,
                     NULL);
        ca_ctx_changed(ctx);
        ret = reply_entry(ctx, conn, 200, &e);
    } else {
        ret = mf_httpd_reply_res(conn, r);
    }
    ca_entry_cleanup(&e);
    return ret;
}

/* The query of GET /v1/entries: spiffe_id, parent_id, selector (repeated)
 * and match. An unknown or repeated argument is refused rather than
 * ignored, so that a typo never turns a filtered list into the whole
 * registry. Selectors are made canonical, as entries' are. */
struct entry_query {
    struct ca_entry_filter f;
    char sel[MF_SELECTORS_MAX][MF_SELECTOR_STR_MAX];
    const char *sel_ptr[MF_SELECTORS_MAX];
    struct mf_spiffe_id sid, pid;
    bool have_match;
    mf_res r;
};

static mf_res query_arg(struct entry_query *q, const char *key, const char *value)
{
    MF_ENSURE_MSG(value != NULL && value[0] != '\0', MF_ERR_USAGE_ARG,
                  "query argument '%s' needs a value", key);
    if (strcmp(key, "spiffe_id") == 0 || strcmp(key, "parent_id") == 0) {
        bool sid = key[0] == 's';
        MF_ENSURE_MSG((sid ? q->f.spiffe_id : q->f.parent_id) == NULL, MF_ERR_USAGE_ARG,
                      "query argument '%s' is given twice", key);
        struct mf_spiffe_id *id = sid ? &q->sid : &q->pid;
        MF_TRY(mf_spiffeid_parse_cstr(value, id));
        if (sid) {
            q->f.spiffe_id = id->str;
        } else {
            q->f.parent_id = id->str;
        }
        return MF_RES_OK;
    }
    if (strcmp(key, "selector") == 0) {
        MF_ENSURE_MSG(q->f.n_selectors < MF_SELECTORS_MAX, MF_ERR_USAGE_ARG,
                      "at most %d selectors in a query", MF_SELECTORS_MAX);
        char *c = q->sel[q->f.n_selectors];
        MF_TRY(ca_policy_selector_canon(value, c, MF_SELECTOR_STR_MAX));
        for (size_t i = 0; i < q->f.n_selectors; i++) {
            if (strcmp(q->sel_ptr[i], c) == 0) {
                return MF_RES_OK; /* the same selector twice is the same set */
            }
        }
        q->sel_ptr[q->f.n_selectors++] = c;
        return MF_RES_OK;
    }
    if (strcmp(key, "match") == 0) {
        MF_ENSURE_MSG(!q->have_match, MF_ERR_USAGE_ARG, "query argument 'match' is given twice");
        q->have_match = true;
        return ca_policy_match_parse(value, &q->f.match);
    }
    return MF_RAISE_MSG(MF_ERR_USAGE_ARG, "unknown query argument '%s'", key);
}

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    struct entry_query *q = cls;
    q->r = query_arg(q, key, value);
    return mf_ok(q->r) ? MHD_YES : MHD_NO;
}

static enum MHD_Result entry_list(struct ca_ctx *ctx, struct MHD_Connection *conn)
{
    struct entry_query *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return mf_httpd_reply_res(conn, MF_RAISE(MF_ERR_NOMEM));
    }
    q->f.selectors = q->sel_ptr;
    q->r = MF_RES_OK;
    (void)MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_iter, q);
    mf_res r = q->r;
    if (mf_ok(r) && q->have_match && q->f.n_selectors == 0) {
        r = MF_RAISE_MSG(MF_ERR_USAGE_ARG, "match needs at least one selector");
    }
    struct ca_entry *v = NULL;
    size_t n = 0;
    if (mf_ok(r)) {
        r = ca_store_entry_list(ctx->store, q->f.parent_id, &v, &n);
    }
    if (!mf_ok(r)) {
        free(q);
        return mf_httpd_reply_res(conn, r);
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_t *o = NULL;
        if (ca_policy_entry_matches(&v[i], &q->f) && mf_ok(admin_entry_json(ctx, &v[i], &o))) {
            json_array_append_new(arr, o);
        }
    }
    ca_entries_free(v, n);
    free(q);
    return mf_httpd_reply_json(
        conn, 200,
        json_pack("{s:o*,s:I}", "entries", arr, "count", (json_int_t)json_array_size(arr)));
}

static enum MHD_Result token_create(struct ca_ctx *ctx, struct MHD_Connection *conn,
                                    const struct mf_httpd_req *req)
{
    uint8_t raw[TOKEN_BYTES], hash[32];
    char token[2 * TOKEN_BYTES + 1];
    int64_t ttl = ctx->cfg.token_ttl;
    struct mf_spiffe_id id;
    enum MHD_Result ret;
    mf_res r =
        ca_admin_parse_token(req->body.data, req->body.len, ctx->cfg.trust_domain, &id, &ttl);
    if (mf_ok(r)) {
        r = mf_random(raw, sizeof(raw));
    }
    if (mf_ok(r)) {
        mf_hex(raw, sizeof(raw), token);
        r = mf_sha256((const uint8_t *)token, strlen(token), hash);
    }
    int64_t exp = mf_now() + ttl;
    if (mf_ok(r)) {
        r = ca_store_token_add(ctx->store, hash, id.str, exp);
    }
    if (mf_ok(r)) {
        char exps[MF_RFC3339_LEN], hh[17];
        mf_time_format(exp, exps);
        /* log a short digest of the hash, never the token */
        mf_hex(hash, 8, hh);
        mf_log_event(MF_LOG_INFO, __func__, "join token created", "spiffe_id", id.str, "expires_at",
                     exps, "token_sha256_prefix", hh, NULL);
        ret = mf_httpd_reply_json(
            conn, 201,
            json_pack("{s:s,s:s,s:s}", "token", token, "spiffe_id", id.str, "expires_at", exps));
    } else {
        ret = mf_httpd_reply_res(conn, r);
    }
    mf_wipe(raw, sizeof(raw));
    mf_wipe(token, sizeof(token));
    return ret;
}

static enum MHD_Result agent_list(struct ca_ctx *ctx, struct MHD_Connection *conn)
{
    struct ca_agent *v = NULL;
    size_t n = 0;
    mf_res r = ca_store_agent_list(ctx->store, &v, &n);
    if (!mf_ok(r)) {
        return mf_httpd_reply_res(conn, r);
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_t *o = NULL;
        if (mf_ok(ca_agent_to_json(&v[i], &o))) {
            json_array_append_new(arr, o);
        }
    }
    free(v);
    return mf_httpd_reply_json(conn, 200, json_pack("{s:o*}", "agents", arr));
}

/* ban / evict / show take {"spiffe_id"} (or ?spiffe_id= for show) */
static enum MHD_Result agent_op(struct ca_ctx *ctx, struct MHD_Connection *conn,
                                const struct mf_httpd_req *req, const char *op)
{
    const char *sid = NULL;
    struct mf_spiffe_id id;
    struct ca_agent a;
    mf_res r = MF_RES_OK;
    if (strcmp(op, "show") == 0) {
        sid = mf_httpd_query(conn, "spiffe_id");
        if (sid == NULL) {
            r = MF_RAISE_MSG(MF_ERR_USAGE_ARG, "spiffe_id query parameter is required");
        }
        if (mf_ok(r)) {
            r = ca_policy_agent_id(ctx->cfg.trust_domain, sid, &id);
        }
    } else {
        r = ca_admin_parse_agent_op(req->body.data, req->body.len, ctx->cfg.trust_domain, &id);
    }
    if (mf_ok(r) && strcmp(op, "ban") == 0) {
        r = ca_store_agent_ban(ctx->store, id.str);
    } else if (mf_ok(r) && strcmp(op, "evict") == 0) {
        r = ca_store_agent_evict(ctx->store, id.str);
    }
    if (mf_ok(r) && strcmp(op, "evict") != 0) {
        r = ca_store_agent_get(ctx->store, id.str, &a);
    }
    if (!mf_ok(r)) {
        return mf_httpd_reply_res(conn, r);
    }
    if (strcmp(op, "show") != 0) {
        mf_log_event(MF_LOG_INFO, __func__,
                     strcmp(op, "ban") == 0 ? "agent banned" : "agent evicted", "spiffe_id", id.str,
                     NULL);
        ca_ctx_changed(ctx);
    }
    if (strcmp(op, "evict") == 0) {
        return mf_httpd_reply_buf(conn, 204, "application/json", "", 0);
    }
    json_t *o = NULL;
    r = ca_agent_to_json(&a, &o);
    if (!mf_ok(r)) {
        return mf_httpd_reply_res(conn, r);
    }
    return mf_httpd_reply_json(conn, 200, o);
}

static enum MHD_Result bundle_show(struct ca_ctx *ctx, struct MHD_Connection *conn)
{
    const char *fmt = mf_httpd_query(conn, "format");
    if (fmt == NULL) {
        fmt = "pem";
    }
    struct mf_bundle *b = ca_keys_bundle(ctx->keys);
    if (b == NULL) {
        return mf_httpd_reply_error(conn, 503, "unavailable", "no bundle yet");
    }
    enum MHD_Result ret;
    if (strcmp(fmt, "pem") == 0) {
        struct mf_buf out;
        mf_buf_init(&out, MF_MAX_BUNDLE, 0);
        mf_res r = mf_bundle_to_pem(b, &out);
        ret = mf_ok(r) ? mf_httpd_reply_buf(conn, 200, "application/x-pem-file", out.data, out.len)
                       : mf_httpd_reply_res(conn, r);
        mf_buf_cleanup(&out);
    } else if (strcmp(fmt, "spiffe") == 0) {
        json_t *o = NULL;
        mf_res r = ca_bundle_to_json(b, &o);
        ret = mf_ok(r) ? mf_httpd_reply_json(conn, 200, o) : mf_httpd_reply_res(conn, r);
    } else {
        ret = mf_httpd_reply_error(conn, 400, "invalid_argument", "format must be pem or spiffe");
    }
    mf_bundle_free(b);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    struct ca_ctx *ctx = cls;
    struct mf_httpd_req *req = NULL;
    enum MHD_Result result;
    if (!mf_httpd_body(conn, con_cls, upload_data, upload_size, MF_MAX_BODY, &req, &result)) {
        return result;
    }
    /* The socket is 0600 already; the uid check also holds if someone
     * loosens the mode or passes the fd on. */
    struct ucred cred;
    mf_res r = mf_httpd_peer_cred(conn, &cred);
    if (!mf_ok(r) || (cred.uid != 0 && cred.uid != geteuid())) {
        mf_log_warn("admin request refused for uid %d", mf_ok(r) ? (int)cred.uid : -1);
        return mf_httpd_reply_error(conn, 403, "permission_denied",
                                    "only root or the CA's own user may use the admin socket");
    }
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    const char *prefix = "/v1/entries/";
    if (strcmp(url, "/health") == 0 && get) {
        return mf_httpd_reply_json(conn, 200, json_pack("{s:s}", "status", "ok"));
    }
    if (ca_fed_admin_url(url)) {
        return ca_fed_admin(ctx, conn, url, method, req);
    }
    if (strcmp(url, "/v1/entries") == 0) {
        if (post) {
            return entry_create(ctx, conn, req);
        }
        if (get) {
            return entry_list(ctx, conn);
        }
    } else if (strncmp(url, prefix, strlen(prefix)) == 0) {
        const char *id = url + strlen(prefix);
        if (id[0] == '\0' || strlen(id) >= CA_ENTRY_ID_LEN || strchr(id, '/') != NULL) {
            return mf_httpd_reply_error(conn, 404, "not_found", "no entry %s", id);
        }
        if (get) {
            struct ca_entry e;
            r = ca_store_entry_get(ctx->store, id, &e);
            if (!mf_ok(r)) {
                return mf_httpd_reply_res(conn, r);
            }
            enum MHD_Result ret = reply_entry(ctx, conn, 200, &e);
            ca_entry_cleanup(&e);
            return ret;
        }
        if (strcmp(method, "PATCH") == 0) {
            return entry_update(ctx, conn, req, id);
        }
        if (strcmp(method, "DELETE") == 0) {
            r = ca_store_entry_delete(ctx->store, id);
            if (!mf_ok(r)) {
                return mf_httpd_reply_res(conn, r);
            }
            mf_log_event(MF_LOG_INFO, __func__, "entry deleted", "id", id, NULL);
            ca_ctx_changed(ctx);
            return mf_httpd_reply_buf(conn, 204, "application/json", "", 0);
        }
    } else if (strcmp(url, "/v1/tokens") == 0 && post) {
        return token_create(ctx, conn, req);
    } else if (strcmp(url, "/v1/agents") == 0 && get) {
        return agent_list(ctx, conn);
    } else if (strcmp(url, "/v1/agents/show") == 0 && get) {
        return agent_op(ctx, conn, req, "show");
    } else if (strcmp(url, "/v1/agents/ban") == 0 && post) {
        return agent_op(ctx, conn, req, "ban");
    } else if (strcmp(url, "/v1/agents/evict") == 0 && post) {
        return agent_op(ctx, conn, req, "evict");
    } else if (strcmp(url, "/v1/bundle") == 0 && get) {
        return bundle_show(ctx, conn);
    } else if (strcmp(url, "/v1/ca") == 0 && get) {
        json_t *o = NULL;
        r = ca_keys_describe(ctx->keys, &o);
        return mf_ok(r) ? mf_httpd_reply_json(conn, 200, o) : mf_httpd_reply_res(conn, r);
    } else {
        return mf_httpd_reply_error(conn, 404, "not_found", "no such endpoint");
    }
    return mf_httpd_reply_error(conn, 405, "invalid_argument", "method %s not allowed here",
                                method);
}

mf_res ca_admin_start(struct ca_ctx *ctx, struct ca_admin **out)
{
    MF_ENSURE_REF(ctx);
    *out = NULL;
    struct ca_admin *a = calloc(1, sizeof(*a));
    MF_TRY_PTR(a, MF_ERR_NOMEM);
    a->fd = -1;
    mf_res r = mf_httpd_listen_unix(ctx->cfg.admin_socket, 0600, 64, &a->fd);
    if (!mf_ok(r)) {
        free(a);
        return r;
    }
    a->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, 0, NULL,
        NULL, handle, ctx, MHD_OPTION_LISTEN_SOCKET, a->fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        mf_httpd_completed, NULL, MHD_OPTION_END);
    if (a->d == NULL) {
        close(a->fd);
        free(a);
        MF_BAIL_MSG(MF_ERR_IO, "cannot start the admin server on %s", ctx->cfg.admin_socket);
    }
    *out = a;
    return MF_RES_OK;
}

void ca_admin_stop(struct ca_admin *a)
{
    if (a == NULL) {
        return;
    }
    /* MHD owns the listening socket once started and closes it on stop. */
    if (a->d != NULL) {
        MHD_stop_daemon(a->d);
    } else if (a->fd >= 0) {
        close(a->fd);
    }
    free(a);
}
