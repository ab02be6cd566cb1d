/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_sock: Workload API over libmicrohttpd. See agent_sock.h.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "agent/agent_sock.h"
#include "api/mf_httpd.h"
#include "api/mf_log.h"
#include "api/mf_mem.h"
#include "api/mf_x509.h"

#define REQ_BODY_MAX    1024u
#define CONN_MEMORY_MAX (64u * 1024u)
#define WATCH_TICK_MS   1000

/* Per-connection: when it was accepted, for the recycled-pid check. */
struct conn_ctx {
    uint64_t accept_ticks;
};

static void notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn_ctx *c = calloc(1, sizeof(*c));
        if (c != NULL) {
            c->accept_ticks = agent_attest_boot_ticks();
        }
        *socket_context = c;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        free(*socket_context);
        *socket_context = NULL;
    }
}

static mf_res attest_conn(struct agent_sock *s, struct MHD_Connection *conn,
                          struct agent_workload *w)
{
    struct ucred cred;
    MF_TRY(mf_httpd_peer_cred(conn, &cred));
    uint64_t ticks = 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci != NULL && ci->socket_context != NULL) {
        ticks = ((const struct conn_ctx *)ci->socket_context)->accept_ticks;
    }
    return agent_attest_pid(s->att, cred.pid, cred.uid, cred.gid, ticks, w);
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
static enum MHD_Result reply_secret(struct MHD_Connection *conn, unsigned status,
                                    struct mf_buf *b)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback_cls(b->len, b->data, free_secret_buf,
                                                               b);
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

static void log_denial(const struct agent_workload *w, const char *path, const char *reason)
{
    char pid[16], uid[16];
    snprintf(pid, sizeof(pid), "%d", (int)w->pid);
    snprintf(uid, sizeof(uid), "%u", (unsigned)w->uid);
    mf_log_event(MF_LOG_INFO, __func__, "workload denied", "path", path, "pid", pid, "uid", uid,
                 "reason", reason, NULL);
}

/* ---- watch streams ------------------------------------------------------- */

struct watch {
    struct agent_sock *sock;
    struct agent_workload w;
    struct mf_buf pending; /* secret: the next line(s) to send */
    size_t off;
    uint64_t seen;         /* state version last rendered */
    uint8_t last[32];      /* digest of the last document sent */
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
        if (!mf_ok(mf_buf_append_str(&x->pending,
                                     "{\"error\":\"permission_denied\",\"message\":"
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
    if (strcmp(method, "GET") != 0) {
        return mf_httpd_reply_error(conn, 405, "invalid_argument", "only GET is served here");
    }
    /* SPIFFE.md E5/E6: exactly "true" */
    const char *h = mf_httpd_header(conn, "workload.spiffe.io");
    if (h == NULL || strcmp(h, "true") != 0) {
        return mf_httpd_reply_error(conn, 400, "invalid_argument",
                                    "security header missing from request");
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
    if (!is_x509 && !is_bundles) {
        return mf_httpd_reply_error(conn, 404, "not_found", "no such endpoint");
    }

    mf_res r = attest_conn(s, conn, &w);
    if (!mf_ok(r)) {
        char msg[256];
        mf_err_format(r, msg, sizeof(msg));
        mf_log_info("attestation failed: %s", msg);
        return mf_httpd_reply_error(conn, 403, "permission_denied", "no identity issued");
    }
    struct agent_snap *snap = agent_state_get(s->state, NULL);
    size_t count = agent_snap_count(snap, w.sels, w.n_sels);
    if (count == 0) {
        agent_snap_unref(snap);
        log_denial(&w, url, "no matching entry");
        agent_workload_cleanup(&w);
        return mf_httpd_reply_error(conn, 403, "permission_denied", "no identity issued");
    }
    if (is_x509) {
        const char *watch = mf_httpd_query(conn, "watch");
        if (watch != NULL && strcmp(watch, "true") == 0) {
            agent_snap_unref(snap);
            ret = start_watch(s, conn, &w);
            agent_workload_cleanup(&w);
            return ret;
        }
    }
    struct mf_buf *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        agent_snap_unref(snap);
        agent_workload_cleanup(&w);
        return MHD_NO;
    }
    mf_buf_init(b, AGENT_RENDER_MAX, MF_BUF_SECRET);
    if (is_x509) {
        r = agent_snap_render_x509(snap, w.sels, w.n_sels, b, &count);
    } else {
        r = agent_snap_render_bundles(snap, b);
    }
    agent_snap_unref(snap);
    if (!mf_ok(r) || (is_x509 && count == 0)) {
        free_secret_buf(b);
        log_denial(&w, url, "no servable SVID");
        agent_workload_cleanup(&w);
        return mf_httpd_reply_error(conn, 403, "permission_denied", "no identity issued");
    }
    agent_workload_cleanup(&w);
    return reply_secret(conn, MHD_HTTP_OK, b);
}

/* see agent_sock.h */
mf_res agent_sock_start(struct agent_sock *s, const struct agent_sock_cfg *cfg,
                        struct agent_state *state, struct agent_attestor *att)
{
    int fd = -1;
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(cfg);
    memset(s, 0, sizeof(*s));
    s->state = state;
    s->att = att;
    s->max_watches = cfg->max_watches;
    /* 0666: any local process may ask; attestation decides what it gets */
    MF_TRY(mf_httpd_listen_unix(cfg->path, 0666, 128, &fd));
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ITC,
        0, NULL, NULL, handle, s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        cfg->max_conns, MHD_OPTION_CONNECTION_TIMEOUT, cfg->conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_MAX,
        MHD_OPTION_NOTIFY_COMPLETED, mf_httpd_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        notify_conn, NULL, MHD_OPTION_END);
    if (s->daemon == NULL) {
        close(fd);
        MF_BAIL_MSG(MF_ERR_IO, "cannot start the Workload API server on %s", cfg->path);
    }
    return MF_RES_OK;
}

/* see agent_sock.h */
void agent_sock_stop(struct agent_sock *s)
{
    if (s == NULL || s->daemon == NULL) {
        return;
    }
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
