/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_sock: the Workload API socket: the accept thread that tells HTTP/2
 * from HTTP/1.1, and the JSON API over libmicrohttpd. See agent_sock.h.
 */
#include "agent/agent_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <microhttpd.h>

#include "agent/agent_grpc.h"
#include "agent/agent_metrics.h"
#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_httpd.h"
#include "api/pki/mf_x509.h"

#define REQ_BODY_MAX    (MF_JWT_MAX + 2048u) /* POST /v1/jwt/validate; others have none */
#define CONN_MEMORY_MAX (64u * 1024u)
#define WATCH_TICK_MS   1000

/* ---- connection accounting ---------------------------------------------- */

/* Records a connection about to be handed to MHD. A slot still holding the
 * same fd unstarted is stale: MHD closed that connection before it ever
 * started (the fd number was reused since), so its count goes now. Always
 * finds a free slot: every slot is one admitted connection, and there are
 * never more than max_conns of those. */
static struct agent_sock_conn *conn_put(struct agent_sock *s, int fd, uid_t uid,
                                        const struct agent_conn_stamp *stamp, int64_t accept_ms)
{
    struct agent_sock_conn *slot = NULL;
    bool stale = false;
    uid_t stale_uid = 0;
    pthread_mutex_lock(&s->conns_mu);
    for (unsigned i = 0; i < s->max_conns; i++) {
        struct agent_sock_conn *c = &s->conns[i];
        if (c->fd == fd && !c->started) {
            stale = true;
            stale_uid = c->uid;
            c->fd = -1;
        }
        if (c->fd < 0 && slot == NULL) {
            slot = c;
        }
    }
    if (slot != NULL) {
        *slot = (struct agent_sock_conn){
            .fd = fd,
            .uid = uid,
            .stamp = *stamp,
            .accept_ms = accept_ms,
            .deadline_ms = accept_ms + (int64_t)s->conn_timeout_s * 1000,
        };
    }
    pthread_mutex_unlock(&s->conns_mu);
    if (stale) {
        agent_admit_release(&s->admit, stale_uid);
    }
    return slot;
}

/* Forgets a slot and the connection's count. */
static void conn_drop(struct agent_sock *s, struct agent_sock_conn *c)
{
    /* before the slot is freed: the accept thread may reuse it at once */
    agent_attest_cache_cleanup(&c->acache);
    pthread_mutex_lock(&s->conns_mu);
    uid_t uid = c->uid;
    bool live = c->fd >= 0;
    if (live && c->started) {
        s->n_started--;
    }
    c->fd = -1;
    pthread_mutex_unlock(&s->conns_mu);
    if (live) {
        agent_admit_release(&s->admit, uid);
    }
}

/* Connections MHD still holds that it reported closed: counted against the
 * limit until MHD frees them (read racily; a moment's error either way is
 * absorbed by MHD's own limit being twice ours). */
static unsigned mhd_closing(struct agent_sock *s)
{
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    pthread_mutex_lock(&s->conns_mu);
    unsigned started = s->n_started;
    pthread_mutex_unlock(&s->conns_mu);
    if (di == NULL || di->num_connections <= started) {
        return 0;
    }
    return di->num_connections - started;
}

/* Sets the deadline of the connection's current request: 0 while it is
 * answered, else the instant the next one must be complete by. */
static void conn_set_deadline(struct agent_sock *s, struct MHD_Connection *conn,
                              int64_t deadline_ms)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci == NULL || ci->socket_context == NULL) {
        return;
    }
    struct agent_sock_conn *c = ci->socket_context;
    pthread_mutex_lock(&s->conns_mu);
    c->deadline_ms = deadline_ms;
    pthread_mutex_unlock(&s->conns_mu);
}

static void notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    struct agent_sock *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct agent_sock_conn *found = NULL;
        pthread_mutex_lock(&s->conns_mu);
        for (unsigned i = 0; ci != NULL && i < s->max_conns; i++) {
            struct agent_sock_conn *c = &s->conns[i];
            if (c->fd == (int)ci->connect_fd && !c->started) {
                c->started = true;
                s->n_started++;
                found = c;
                break;
            }
        }
        pthread_mutex_unlock(&s->conns_mu);
        if (found == NULL && ci != NULL) {
            /* counted nowhere (its slot was dropped as stale): refuse it */
            (void)shutdown((int)ci->connect_fd, SHUT_RDWR);
        }
        *socket_context = found;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (*socket_context != NULL) {
            conn_drop(s, *socket_context);
        }
        *socket_context = NULL;
    }
}

/* MHD_OPTION_NOTIFY_COMPLETED: the answer is out; the next request on this
 * connection must be complete within the idle timeout. */
static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct agent_sock *s = cls;
    conn_set_deadline(s, conn, mf_mono_ms() + (int64_t)s->idle_timeout_s * 1000);
    mf_httpd_completed(NULL, conn, con_cls, toe);
}

static mf_res attest_conn(struct agent_sock *s, struct MHD_Connection *conn,
                          struct agent_workload *w)
{
    struct ucred cred;
    MF_TRY(mf_httpd_peer_cred(conn, &cred));
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci != NULL && ci->socket_context != NULL) {
        /* thread per connection: this thread alone uses the cache */
        struct agent_sock_conn *c = ci->socket_context;
        return agent_attest_conn(s->att, &c->acache, cred.pid, cred.uid, cred.gid, &c->stamp, w);
    }
    struct agent_conn_stamp none;
    memset(&none, 0, sizeof(none)); /* names no pid: refused */
    return agent_attest_pid(s->att, cred.pid, cred.uid, cred.gid, &none, w);
}

static void free_secret_buf(void *cls)
{
    struct mf_buf *b = cls;
    mf_buf_cleanup(b);
    free(b);
}

/* Replies with the bytes of *b, which may hold keys: MHD sends them from our
 * buffer and the free callback wipes it, so no unwiped copy is left. Takes
 * ownership of b. */
static enum MHD_Result reply_secret(struct MHD_Connection *conn, unsigned status, struct mf_buf *b)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback_cls(b->len, b->data, free_secret_buf, b);
    if (r == NULL) {
        free_secret_buf(b);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void answer_done(void *cls)
{
    agent_answer_unref(cls);
}

/* Replies with a rendered answer (it may hold keys): MHD sends its bytes
 * from where the snapshot keeps them, and the reference taken for this
 * reply is dropped when MHD is done. Takes the reference a. */
static enum MHD_Result reply_answer(struct MHD_Connection *conn, struct agent_answer *a)
{
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
        a->body.len, a->body.data, answer_done, a);
    if (r == NULL) {
        agent_answer_unref(a);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static void log_denial(const struct agent_workload *w, const char *path, const char *reason)
{
    char pid[16], uid[16];
    snprintf(pid, sizeof(pid), "%d", (int)w->pid);
    snprintf(uid, sizeof(uid), "%u", (unsigned)w->uid);
    agent_metrics_denied(reason);
    mf_log_event(MF_LOG_INFO, __func__, "workload denied", "path", path, "pid", pid, "uid", uid,
                 "reason", reason, NULL);
}

/* ---- watch streams ------------------------------------------------------- */

struct watch {
    struct agent_sock *sock;
    struct agent_workload w;
    struct mf_buf pending; /* secret: the next line(s) to send */
    size_t off;
    uint64_t seen;    /* state version last rendered */
    uint8_t last[32]; /* digest of the last document sent */
    bool sent_any;
    bool end;
};

static void watch_free(void *cls)
{
    struct watch *x = cls;
    __atomic_sub_fetch(&x->sock->watches, 1, __ATOMIC_RELAXED);
    agent_workload_cleanup(&x->w);
    mf_buf_cleanup(&x->pending);
    free(x);
}

/* Renders the current state for the stream; leaves pending empty when the
 * workload would see nothing new. */
static void watch_render(struct watch *x)
{
    struct agent_snap *snap = agent_state_get(x->sock->state, &x->seen);
    size_t count = 0;
    uint8_t d[32];
    mf_buf_reset(&x->pending);
    x->off = 0;
    mf_res r = agent_snap_render_x509(snap, x->w.sels, x->w.n_sels, &x->pending, &count);
    agent_snap_unref(snap);
    if (!mf_ok(r) || count == 0) {
        /* E18: the stream ends with permission denied once the workload has
         * no identity left (entry deleted, or every SVID expired) */
        mf_buf_reset(&x->pending);
        if (!mf_ok(mf_buf_append_str(&x->pending, "{\"error\":\"permission_denied\",\"message\":"
                                                  "\"no identity issued\"}\n"))) {
            mf_buf_reset(&x->pending);
        }
        log_denial(&x->w, "/v1/x509?watch=true", "no identity left");
        x->end = true;
        return;
    }
    if (!mf_ok(mf_sha256(x->pending.data, x->pending.len, d)) ||
        (x->sent_any && memcmp(d, x->last, sizeof(d)) == 0)) {
        mf_buf_reset(&x->pending); /* nothing this workload can see changed */
        return;
    }
    memcpy(x->last, d, sizeof(d));
    x->sent_any = true;
    if (!mf_ok(mf_buf_append_u8(&x->pending, '\n'))) {
        mf_buf_reset(&x->pending);
        x->end = true;
    }
}

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct watch *x = cls;
    (void)pos;
    for (;;) {
        if (x->off < x->pending.len) {
            size_t n = x->pending.len - x->off;
            if (n > max) {
                n = max;
            }
            memcpy(buf, x->pending.data + x->off, n);
            x->off += n;
            return (ssize_t)n;
        }
        if (x->end || agent_state_stopping(x->sock->state)) {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (!x->sent_any) {
            watch_render(x);
            continue;
        }
        /* blocking is fine: this connection has a thread of its own */
        if (agent_state_wait(x->sock->state, x->seen, WATCH_TICK_MS)) {
            watch_render(x);
        }
    }
}

static enum MHD_Result start_watch(struct agent_sock *s, struct MHD_Connection *conn,
                                   struct agent_workload *w)
{
    if (__atomic_add_fetch(&s->watches, 1, __ATOMIC_RELAXED) > (int)s->max_watches) {
        __atomic_sub_fetch(&s->watches, 1, __ATOMIC_RELAXED);
        return mf_httpd_reply_error(conn, 503, "unavailable", "too many watch streams");
    }
    struct watch *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        __atomic_sub_fetch(&s->watches, 1, __ATOMIC_RELAXED);
        return MHD_NO;
    }
    x->sock = s;
    x->w = *w;
    memset(w, 0, sizeof(*w));
    mf_buf_init(&x->pending, AGENT_RENDER_MAX, MF_BUF_SECRET);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, watch_read, x, watch_free);
    if (r == NULL) {
        watch_free(x);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    /* attested: the stream may stay quiet for as long as an SVID lives */
    (void)MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- JWT-SVIDs ----------------------------------------------------------- */

struct aud_list {
    const char *v[MF_JWT_AUD_MAX];
    size_t n;
    bool too_many;
};

static enum MHD_Result collect_audience(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    struct aud_list *a = cls;
    (void)kind;
    if (key != NULL && strcmp(key, "audience") == 0) {
        if (a->n == MF_JWT_AUD_MAX) {
            a->too_many = true;
            return MHD_NO;
        }
        a->v[a->n++] = value != NULL ? value : "";
    }
    return MHD_YES;
}

/* Maps a JWT failure to the JSON API's statuses (docs/api.md). */
static enum MHD_Result reply_jwt_error(struct MHD_Connection *conn, mf_res r)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    switch (mf_err_category(r.err)) {
    case MF_CAT_USAGE:
    case MF_CAT_PROTO:
        return mf_httpd_reply_error(conn, 400, "invalid_argument", "%s", msg);
    case MF_CAT_POLICY:
        return mf_httpd_reply_error(conn, 403, "permission_denied", "%s", msg);
    default:
        return mf_httpd_reply_error(conn, 503, "unavailable", "%s", msg);
    }
}

/* GET /v1/jwt?audience=A[&audience=B...][&spiffe_id=ID] */
static enum MHD_Result do_jwt(struct agent_sock *s, struct MHD_Connection *conn,
                              const struct agent_snap *snap, const struct agent_workload *w)
{
    struct aud_list a;
    memset(&a, 0, sizeof(a));
    (void)MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_audience, &a);
    if (a.too_many) {
        return mf_httpd_reply_error(conn, 400, "invalid_argument", "at most %d audiences",
                                    MF_JWT_AUD_MAX);
    }
    if (s->jwt == NULL) {
        return mf_httpd_reply_error(conn, 503, "unavailable", "JWT-SVIDs are not served");
    }
    struct agent_jwt_svid *v = NULL;
    size_t n = 0;
    mf_res r = agent_jwt_fetch(s->jwt, snap, w->sels, w->n_sels, mf_httpd_query(conn, "spiffe_id"),
                               a.v, a.n, &v, &n);
    if (!mf_ok(r)) {
        if (mf_err_category(r.err) == MF_CAT_POLICY) {
            log_denial(w, "/v1/jwt", "no matching identity");
        }
        return reply_jwt_error(conn, r);
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        char when[MF_RFC3339_LEN];
        mf_time_format(v[i].expires_at, when);
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "spiffe_id", v[i].spiffe_id, "svid", v[i].token,
                              "hint", v[i].hint, "expires_at", when);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    agent_jwt_svids_free(v, n);
    if (arr == NULL) {
        return MHD_NO;
    }
    return mf_httpd_reply_json(conn, 200, json_pack("{s:o}", "svids", arr));
}

/* GET /v1/jwt/bundles: the JWT authorities as plain JWKS (D14). */
static mf_res jwt_jwks_json(const struct mf_bundle *b, json_t **out)
{
    struct mf_buf text;
    mf_buf_init(&text, MF_MAX_BUNDLE, 0);
    mf_res r = b != NULL ? mf_bundle_jwt_jwks(b, &text) : mf_buf_append_str(&text, "{\"keys\":[]}");
    if (mf_ok(r)) {
        r = mf_json_parse(mf_buf_cstr(&text), text.len, MF_MAX_BUNDLE, out);
    }
    mf_buf_cleanup(&text);
    return r;
}

/* ... with the federated trust domains' JWT keys the workload may use, each
 * under its own trust domain. */
static enum MHD_Result do_jwt_bundles(struct MHD_Connection *conn, const struct agent_snap *snap,
                                      const struct agent_workload *w)
{
    json_t *jwks = NULL;
    mf_res r = jwt_jwks_json(snap->bundle, &jwks);
    json_t *all = mf_ok(r) ? json_pack("{s:o}", snap->td_id, jwks) : NULL;
    for (size_t k = 0; all != NULL && mf_ok(r) && k < snap->n_feds; k++) {
        if (agent_snap_fed_visible(snap, k, w->sels, w->n_sels)) {
            r = jwt_jwks_json(snap->feds[k].bundle, &jwks);
            if (mf_ok(r)) {
                json_object_set_new(all, snap->feds[k].td_id, jwks);
            }
        }
    }
    if (!mf_ok(r) || all == NULL) {
        json_decref(all);
        return mf_httpd_reply_res(conn, mf_ok(r) ? MF_RAISE(MF_ERR_NOMEM) : r);
    }
    return mf_httpd_reply_json(conn, 200, json_pack("{s:o}", "bundles", all));
}

/* POST /v1/jwt/validate {"audience","svid"}. The caller needs an entry
 * unless allow_verifiers, as for the gRPC ValidateJWTSVID. */
static enum MHD_Result do_jwt_validate(struct agent_sock *s, struct MHD_Connection *conn,
                                       const struct mf_httpd_req *req,
                                       const struct agent_workload *w)
{
    static const char *const keys[] = {"audience", "svid", NULL};
    json_t *body = NULL;
    const char *aud = NULL, *svid = NULL;
    struct mf_jwt jw;
    memset(&jw, 0, sizeof(jw));
    mf_res r = mf_json_parse((const char *)req->body.data, req->body.len, REQ_BODY_MAX, &body);
    if (mf_ok(r)) {
        r = mf_json_only_keys(body, keys);
    }
    if (mf_ok(r)) {
        r = mf_json_str(body, "audience", true, MF_JWT_AUD_LEN_MAX, &aud);
    }
    if (mf_ok(r)) {
        r = mf_json_str(body, "svid", true, MF_JWT_MAX, &svid);
    }
    if (mf_ok(r)) {
        struct agent_snap *snap = agent_state_get(s->state, NULL);
        r = agent_jwt_validate(snap, w->sels, w->n_sels, aud, svid, strlen(svid), &jw);
        agent_snap_unref(snap);
    }
    json_decref(body);
    if (!mf_ok(r)) {
        char msg[512];
        mf_err_format(r, msg, sizeof(msg));
        return mf_httpd_reply_error(conn, 400, "invalid_argument", "%s", msg);
    }
    json_t *out = json_pack("{s:s,s:O}", "spiffe_id", jw.sub.str, "claims", jw.claims);
    mf_jwt_cleanup(&jw);
    return mf_httpd_reply_json(conn, 200, out);
}

/* ---- requests ------------------------------------------------------------ */

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_size, void **con_cls)
{
    struct agent_sock *s = cls;
    struct mf_httpd_req *req = NULL;
    enum MHD_Result ret;
    struct agent_workload w;
    (void)version;

    if (!mf_httpd_body(conn, con_cls, upload_data, upload_size, REQ_BODY_MAX, &req, &ret)) {
        return ret;
    }
    /* the request is complete: no deadline while it is answered (a watch
     * stream may last as long as its SVID) */
    conn_set_deadline(s, conn, 0);
    bool is_validate = strcmp(url, "/v1/jwt/validate") == 0;
    if (strcmp(method, is_validate ? "POST" : "GET") != 0) {
        return mf_httpd_reply_error(conn, 405, "invalid_argument", "use %s here",
                                    is_validate ? "POST" : "GET");
    }
    /* SPIFFE.md E5/E6: exactly "true" */
    const char *h = mf_httpd_header(conn, "workload.spiffe.io");
    if (h == NULL) {
        agent_metrics_denied("missing security header");
        return mf_httpd_reply_error(conn, 400, "invalid_argument",
                                    "security header missing from request");
    }
    if (strcmp(h, "true") != 0) {
        agent_metrics_denied("bad security header");
        return mf_httpd_reply_error(conn, 400, "invalid_argument",
                                    "security header workload.spiffe.io must be \"true\"");
    }
    if (strcmp(url, "/health") == 0) {
        struct agent_snap *snap = agent_state_get(s->state, NULL);
        bool ready = snap != NULL;
        agent_snap_unref(snap);
        return mf_httpd_reply_json(conn, ready ? 200 : 503,
                                   json_pack("{s:s}", "status", ready ? "ok" : "starting"));
    }
    bool is_x509 = strcmp(url, "/v1/x509") == 0;
    bool is_bundles = strcmp(url, "/v1/bundles") == 0;
    bool is_jwt = strcmp(url, "/v1/jwt") == 0;
    bool is_jwt_bundles = strcmp(url, "/v1/jwt/bundles") == 0;
    if (!is_x509 && !is_bundles && !is_jwt && !is_jwt_bundles && !is_validate) {
        return mf_httpd_reply_error(conn, 404, "not_found", "no such endpoint");
    }

    uint64_t t0 = agent_metrics_clock();
    mf_res r = attest_conn(s, conn, &w);
    if (!mf_ok(r)) {
        char msg[256];
        mf_err_format(r, msg, sizeof(msg));
        mf_log_info("attestation failed: %s", msg);
        agent_metrics_denied("attestation failed");
        return mf_httpd_reply_error(conn, 403, "permission_denied", "no identity issued");
    }
    struct agent_snap *snap = agent_state_get(s->state, NULL);
    const char *watch = is_x509 ? mf_httpd_query(conn, "watch") : NULL;
    bool is_watch = watch != NULL && strcmp(watch, "true") == 0;
    if (is_x509 && !is_watch) {
        /* the common case: rendered once per snapshot and selector set */
        struct agent_answer *a = NULL;
        r = snap != NULL ? agent_snap_answer(snap, AGENT_ANSWER_X509_JSON, w.sels, w.n_sels,
                                             agent_snap_render_x509_fn, NULL, &a)
                         : MF_RES_OK;
        agent_snap_unref(snap);
        if (!mf_ok(r) || a == NULL || a->count == 0) {
            agent_answer_unref(a);
            log_denial(&w, url, !mf_ok(r) ? "no servable SVID" : "no matching entry");
            agent_workload_cleanup(&w);
            return mf_httpd_reply_error(conn, 403, "permission_denied", "no identity issued");
        }
        agent_workload_cleanup(&w);
        agent_metrics_fetch_done(t0);
        return reply_answer(conn, a);
    }
    size_t count = agent_snap_count(snap, w.sels, w.n_sels);
    /* Verifiers (bundles, validation) need an entry too, as in SPIRE,
     * unless the operator opened them to every local process. */
    bool verifier = is_bundles || is_jwt_bundles || is_validate;
    if (verifier && s->allow_verifiers && snap != NULL) {
        count = 1;
    }
    if (count == 0) {
        agent_snap_unref(snap);
        log_denial(&w, url, "no matching entry");
        agent_workload_cleanup(&w);
        return mf_httpd_reply_error(conn, 403, "permission_denied", "no identity issued");
    }
    if (is_validate) {
        agent_snap_unref(snap);
        ret = do_jwt_validate(s, conn, req, &w);
        agent_workload_cleanup(&w);
        return ret;
    }
    if (is_jwt || is_jwt_bundles) {
        ret = is_jwt ? do_jwt(s, conn, snap, &w) : do_jwt_bundles(conn, snap, &w);
        agent_snap_unref(snap);
        agent_workload_cleanup(&w);
        return ret;
    }
    if (is_watch) {
        agent_snap_unref(snap);
        ret = start_watch(s, conn, &w);
        agent_workload_cleanup(&w);
        return ret;
    }
    struct mf_buf *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        agent_snap_unref(snap);
        agent_workload_cleanup(&w);
        return MHD_NO;
    }
    mf_buf_init(b, AGENT_RENDER_MAX, MF_BUF_SECRET);
    r = agent_snap_render_bundles_for(snap, w.sels, w.n_sels, b);
    agent_snap_unref(snap);
    if (!mf_ok(r)) {
        free_secret_buf(b);
        log_denial(&w, url, "no servable SVID");
        agent_workload_cleanup(&w);
        return mf_httpd_reply_error(conn, 403, "permission_denied", "no identity issued");
    }
    agent_workload_cleanup(&w);
    agent_metrics_fetch_done(t0);
    return reply_secret(conn, MHD_HTTP_OK, b);
}

/* ---- accepting ----------------------------------------------------------- */

/* RFC 9113 3.4: what every HTTP/2 client sends first. */
#define H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_DECIDE      3 /* "PRI": no HTTP/1.1 method starts so (PROPFIND is "PRO") */
#define PEEK_RETRY_MS  10

enum kind { KIND_WAIT, KIND_WAIT_MORE, KIND_HTTP1, KIND_HTTP2, KIND_CLOSE };

#define REAP_TICK_MS 250 /* how often deadlines of MHD's connections are checked */

struct pending {
    int fd;
    uid_t uid;
    struct agent_conn_stamp stamp;
    int64_t accept_ms;
    int64_t deadline_ms;
    bool short_wait; /* a partial preface: look again shortly */
    struct sockaddr_un addr;
    socklen_t addr_len;
};

/* Which protocol the connection speaks, from the bytes it sent so far
 * (peeked: they stay in the socket for whoever serves it). Bytes that the
 * connecting process did not write itself close the connection
 * (agent_attest_recv). */
static enum kind classify(int fd, const struct agent_conn_stamp *stamp)
{
    char b[H2_PREFACE_LEN];
    ssize_t n = agent_attest_recv(fd, stamp, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
        return KIND_CLOSE;
    }
    if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? KIND_WAIT : KIND_CLOSE;
    }
    if (memcmp(b, H2_PREFACE, (size_t)n) != 0) {
        return KIND_HTTP1;
    }
    return n >= H2_DECIDE ? KIND_HTTP2 : KIND_WAIT_MORE;
}

/* Hands the connection (and its count) to whoever serves its protocol. */
static void hand_over(struct agent_sock *s, struct pending *p, enum kind k)
{
    if (k == KIND_HTTP2) {
        /* agent_grpc releases the count, also when it refuses */
        mf_res r = agent_grpc_serve(s->grpc, p->fd, p->uid, &p->stamp, p->accept_ms);
        if (!mf_ok(r)) {
            mf_log_warn_r(r, "gRPC connection refused");
        }
        return;
    }
    struct agent_sock_conn *c = conn_put(s, p->fd, p->uid, &p->stamp, p->accept_ms);
    if (c == NULL) {
        close(p->fd);
        agent_admit_release(&s->admit, p->uid);
        return;
    }
    /* MHD closes the fd itself when it cannot take it */
    if (MHD_add_connection(s->daemon, p->fd, (const struct sockaddr *)&p->addr, p->addr_len) !=
        MHD_YES) {
        conn_drop(s, c);
        mf_log_warn("the JSON API could not take a connection");
    }
}

/* Shuts down MHD's connections whose request missed its deadline (MHD then
 * sees the end of the stream and closes them), and drops slots that MHD
 * never started. Returns the milliseconds until the next check is due, or
 * -1 when MHD holds nothing of ours. */
static int64_t reap(struct agent_sock *s, int64_t now)
{
    uid_t stale[16];
    size_t n_stale = 0;
    bool any = false;
    int64_t grace = (int64_t)s->conn_timeout_s * 1000 + 5000;
    pthread_mutex_lock(&s->conns_mu);
    for (unsigned i = 0; i < s->max_conns; i++) {
        struct agent_sock_conn *c = &s->conns[i];
        if (c->fd < 0) {
            continue;
        }
        if (!c->started) {
            /* MHD failed it before it started (and closed the fd): the
             * count would otherwise leak. Not the fd: it is not ours. */
            if (now - c->accept_ms > grace && n_stale < sizeof(stale) / sizeof(stale[0])) {
                stale[n_stale++] = c->uid;
                c->fd = -1;
                continue;
            }
        } else if (!c->shut && c->deadline_ms != 0 && now >= c->deadline_ms) {
            /* the slot lives until MHD reports the connection closed, and
             * MHD closes the fd only after that: the fd is still this one */
            (void)shutdown(c->fd, SHUT_RDWR);
            c->shut = true;
            agent_metrics_denied("request deadline");
        }
        any = true;
    }
    pthread_mutex_unlock(&s->conns_mu);
    for (size_t i = 0; i < n_stale; i++) {
        agent_admit_release(&s->admit, stale[i]);
    }
    return any ? REAP_TICK_MS : -1;
}

/* Admits a new connection by the uid of its peer; false when refused (the
 * caller closes it). */
static bool admit(struct agent_sock *s, struct pending *p, int64_t now, int64_t *last_log)
{
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(p->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
        return false;
    }
    p->uid = cred.uid;
    enum agent_admit_verdict v = agent_admit_take(&s->admit, cred.uid, mhd_closing(s));
    if (v == AGENT_ADMIT_OK) {
        return true;
    }
    agent_metrics_denied(v == AGENT_ADMIT_FULL    ? "connection limit"
                         : v == AGENT_ADMIT_SHARE ? "uid connection share"
                                                  : "connection reserve");
    if (now - *last_log > 1000) {
        mf_log_warn("Workload API connection from uid %u refused: %s (%u open, %u of this uid; "
                    "limits %u, %u per uid)",
                    (unsigned)cred.uid, agent_admit_reason(v), agent_admit_total(&s->admit),
                    agent_admit_of(&s->admit, cred.uid), s->max_conns, s->admit.per_uid);
        *last_log = now;
    }
    return false;
}

/* Accepts, classifies and hands over, until the wake fd fires. */
static void *accept_main(void *arg)
{
    struct agent_sock *s = arg;
    size_t cap = s->max_conns, np = 0;
    struct pending *pend = calloc(cap, sizeof(*pend));
    struct pollfd *pf = calloc(cap + 2, sizeof(*pf));
    int64_t last_full_log = 0;
    if (pend == NULL || pf == NULL) {
        mf_log_err("the Workload API cannot accept: out of memory");
        free(pend);
        free(pf);
        return NULL;
    }
    for (;;) {
        int64_t now = mf_mono_ms();
        int64_t timeout = reap(s, now);
        pf[0] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        pf[1] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
        for (size_t i = 0; i < np; i++) {
            pf[2 + i] =
                (struct pollfd){.fd = pend[i].fd, .events = pend[i].short_wait ? 0 : POLLIN};
            int64_t t = pend[i].short_wait ? PEEK_RETRY_MS : pend[i].deadline_ms - now;
            if (timeout < 0 || t < timeout) {
                timeout = t < 0 ? 0 : t;
            }
        }
        int pr = poll(pf, (nfds_t)(np + 2), (int)timeout);
        if (pr < 0 && errno != EINTR) {
            mf_log_err("poll on the Workload API socket: %s", strerror(errno));
            break;
        }
        if (pf[1].revents & POLLIN) {
            break;
        }
        now = mf_mono_ms();
        for (size_t i = np; i > 0; i--) {
            struct pending *p = &pend[i - 1];
            short ev = pf[2 + i - 1].revents;
            enum kind k = KIND_WAIT;
            if (p->short_wait || (ev & (POLLIN | POLLHUP | POLLERR))) {
                k = classify(p->fd, &p->stamp);
            }
            p->short_wait = k == KIND_WAIT_MORE;
            if ((k == KIND_WAIT || k == KIND_WAIT_MORE) && now >= p->deadline_ms) {
                k = KIND_CLOSE; /* sent nothing useful in time */
            }
            if (k == KIND_WAIT || k == KIND_WAIT_MORE) {
                continue;
            }
            if (k == KIND_CLOSE) {
                close(p->fd);
                agent_admit_release(&s->admit, p->uid);
            } else {
                hand_over(s, p, k);
            }
            pend[i - 1] = pend[--np];
        }
        while (pf[0].revents & POLLIN) {
            struct pending p;
            memset(&p, 0, sizeof(p));
            p.addr_len = sizeof(p.addr);
            p.fd = accept4(s->listen_fd, (struct sockaddr *)&p.addr, &p.addr_len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (p.fd < 0) {
                break; /* EAGAIN, or a client that went away */
            }
            /* at once, before the peer can exec something else */
            if (!mf_ok(agent_attest_stamp(p.fd, &p.stamp))) {
                close(p.fd);
                continue;
            }
            /* np < cap always holds while the admission count does (every
             * pending connection is counted); the check costs nothing */
            if (np == cap || !admit(s, &p, now, &last_full_log)) {
                close(p.fd);
                continue;
            }
            p.accept_ms = now;
            p.deadline_ms = now + (int64_t)s->conn_timeout_s * 1000;
            pend[np++] = p;
        }
    }
    for (size_t i = 0; i < np; i++) {
        close(pend[i].fd);
        agent_admit_release(&s->admit, pend[i].uid);
    }
    free(pend);
    free(pf);
    return NULL;
}

/* see agent_sock.h */
mf_res agent_sock_start(struct agent_sock *s, const struct agent_sock_cfg *cfg,
                        struct agent_state *state, struct agent_attestor *att)
{
    mf_res rc;
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(cfg);
    memset(s, 0, sizeof(*s));
    s->state = state;
    s->att = att;
    s->jwt = cfg->jwt;
    s->allow_verifiers = cfg->allow_verifiers;
    s->max_watches = cfg->max_watches;
    s->max_conns = cfg->max_conns;
    s->conn_timeout_s = cfg->conn_timeout_s;
    s->idle_timeout_s = cfg->idle_timeout_s;
    s->listen_fd = -1;
    s->wake_fd = -1;
    pthread_mutex_init(&s->conns_mu, NULL);
    MF_ENSURE_OUT(cfg->max_conns >= 1 && cfg->max_conns <= UINT_MAX / 2, MF_ERR_USAGE_ARG);
    MF_TRY_OUT(agent_admit_init(&s->admit, cfg->max_conns, cfg->max_conns_per_uid));
    s->admit_ok = true;
    s->conns = calloc(cfg->max_conns, sizeof(*s->conns));
    MF_ENSURE_OUT(s->conns != NULL, MF_ERR_NOMEM);
    for (unsigned i = 0; i < cfg->max_conns; i++) {
        s->conns[i].fd = -1;
    }
    struct agent_grpc_cfg gcfg = {
        .state = state,
        .att = att,
        .jwt = cfg->jwt,
        .admit = &s->admit,
        .long_lived = &s->watches,
        .max_long_lived = cfg->max_watches,
        .conn_timeout_s = cfg->conn_timeout_s,
        .idle_timeout_s = cfg->idle_timeout_s,
        .allow_verifiers = cfg->allow_verifiers,
        .sds_validator = cfg->sds_validator,
    };
    MF_TRY_OUT(agent_grpc_new(&gcfg, &s->grpc));
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    MF_ENSURE_OUT(s->wake_fd >= 0, MF_ERR_IO);
    /* 0666: any local process may ask; attestation decides what it gets */
    MF_TRY_OUT(mf_httpd_listen_unix(cfg->path, 0666, 128, &s->listen_fd));
    MF_TRY_OUT(agent_attest_listener(s->listen_fd));
    int fl = fcntl(s->listen_fd, F_GETFL);
    MF_ENSURE_OUT(fl >= 0 && fcntl(s->listen_fd, F_SETFL, fl | O_NONBLOCK) == 0, MF_ERR_IO);
    /* the accept thread hands HTTP/1.1 connections over: MHD listens on
     * nothing itself. Its limit is twice ours, so that it is never reached
     * (agent_sock.h). */
    s->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET,
                                 0, NULL, NULL, handle, s, MHD_OPTION_CONNECTION_LIMIT,
                                 2 * cfg->max_conns, MHD_OPTION_CONNECTION_TIMEOUT,
                                 cfg->conn_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                 (size_t)CONN_MEMORY_MAX, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                                 MHD_OPTION_NOTIFY_CONNECTION, notify_conn, s, MHD_OPTION_END);
    MF_ENSURE_OUT_MSG(s->daemon != NULL, MF_ERR_IO, "cannot start the Workload API server on %s",
                      cfg->path);
    MF_ENSURE_OUT_MSG(pthread_create(&s->acceptor, NULL, accept_main, s) == 0, MF_ERR_INTERNAL,
                      "cannot start the Workload API accept thread");
    s->acceptor_started = true;
    rc = MF_RES_OK;
out:
    if (!mf_ok(rc)) {
        agent_sock_stop(s);
    }
    return rc;
}

/* see agent_sock.h */
void agent_sock_stop(struct agent_sock *s)
{
    if (s == NULL || s->state == NULL) {
        return;
    }
    if (s->acceptor_started) {
        uint64_t one = 1;
        (void)!write(s->wake_fd, &one, sizeof(one));
        pthread_join(s->acceptor, NULL);
        s->acceptor_started = false;
    }
    agent_grpc_free(s->grpc);
    s->grpc = NULL;
    if (s->daemon != NULL) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    if (s->wake_fd >= 0) {
        close(s->wake_fd);
        s->wake_fd = -1;
    }
    free(s->conns);
    s->conns = NULL;
    if (s->admit_ok) {
        agent_admit_cleanup(&s->admit);
        s->admit_ok = false;
    }
    pthread_mutex_destroy(&s->conns_mu);
    s->state = NULL;
}
