/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_httpd: helpers for mayfly's libmicrohttpd servers. See mf_httpd.h.
 *
 * Invariants: a request body is never buffered past its cap (once over, the
 * rest is read and dropped, or the connection is answered early with 413 when
 * Content-Length already says it is too big); every reply is created, queued
 * and destroyed in one place; error bodies are always the docs/api.md shape
 * and their message is printable ASCII, whatever the detail held.
 */
#include "api/internal/mf_httpd.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"

/* A client chain longer than this is refused before any parsing. */

/* ---- listening -------------------------------------------------------- */

/* Returns true when something is accepting connections on the socket at
 * path (so it is not a leftover from a dead process). */
static bool socket_is_live(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return false;
    }
    int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int e = errno;
    close(fd);
    /* EAGAIN: a live listener whose backlog is full */
    return r == 0 || e == EAGAIN;
}

/* see mf_httpd.h */
mf_res mf_httpd_listen_unix(const char *path, mode_t mode, int backlog, int *fd_out)
{
    mf_res rc;
    int fd = -1;
    MF_ENSURE_REF(path);
    MF_ENSURE_REF(fd_out);
    *fd_out = -1;
    MF_ENSURE_MSG(path[0] == '/', MF_ERR_USAGE_ARG, "socket path must be absolute: %s", path);
    MF_ENSURE_MSG((mode & ~(mode_t)0777) == 0, MF_ERR_USAGE_ARG, "socket mode %o", (unsigned)mode);

    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    MF_ENSURE_MSG(plen < sizeof(sun.sun_path), MF_ERR_USAGE_ARG,
                  "socket path longer than %zu bytes", sizeof(sun.sun_path) - 1);
    memcpy(sun.sun_path, path, plen + 1);

    struct stat st;
    if (lstat(path, &st) == 0) {
        MF_ENSURE_MSG(!S_ISLNK(st.st_mode), MF_ERR_IO_SYMLINK,
                      "refusing to replace %s: it is a symbolic link", path);
        MF_ENSURE_MSG(S_ISSOCK(st.st_mode), MF_ERR_IO_PERM,
                      "refusing to replace %s: it is not a socket", path);
        MF_ENSURE_MSG(!socket_is_live(&sun), MF_ERR_IO, "%s is in use by a running server", path);
        MF_ENSURE_MSG(unlink(path) == 0 || errno == ENOENT, MF_ERR_IO,
                      "cannot remove stale socket %s: %s", path, strerror(errno));
    } else {
        MF_ENSURE_MSG(errno == ENOENT, MF_ERR_IO, "%s: %s", path, strerror(errno));
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    MF_ENSURE_OUT_MSG(fd >= 0, MF_ERR_IO, "socket: %s", strerror(errno));

    /* Created with no permission at all, so that nobody can connect in the
     * window before the chmod below sets the final mode. The umask is
     * process-wide: daemons call this at start, before other threads create
     * files. */
    mode_t old = umask(0777);
    int br = bind(fd, (const struct sockaddr *)&sun, sizeof(sun));
    int be = errno;
    umask(old);
    MF_ENSURE_OUT_MSG(br == 0, MF_ERR_IO, "bind %s: %s", path, strerror(be));
    if (chmod(path, mode) != 0) {
        int ce = errno;
        unlink(path);
        MF_BAIL_OUT(MF_ERR_IO, "chmod %s: %s", path, strerror(ce));
    }
    if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) != 0) {
        int le = errno;
        unlink(path);
        MF_BAIL_OUT(MF_ERR_IO, "listen %s: %s", path, strerror(le));
    }
    *fd_out = fd;
    fd = -1;
    rc = MF_RES_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* ---- peer identity ---------------------------------------------------- */

/* see mf_httpd.h */
mf_res mf_httpd_peer_cred(struct MHD_Connection *conn, struct ucred *out)
{
    MF_ENSURE_REF(conn);
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    MF_ENSURE_MSG(ci != NULL, MF_ERR_AUTH_MISSING, "connection has no socket");
    int fd = ci->connect_fd;

    /* SO_PEERCRED only means something on a Unix socket; on TCP the kernel
     * returns placeholder values that must not be mistaken for a uid. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    MF_ENSURE_MSG(getsockname(fd, (struct sockaddr *)&ss, &sl) == 0, MF_ERR_IO, "getsockname: %s",
                  strerror(errno));
    MF_ENSURE_MSG(ss.ss_family == AF_UNIX, MF_ERR_AUTH_MISSING,
                  "peer credentials need a Unix socket");

    struct ucred uc;
    socklen_t ul = sizeof(uc);
    MF_ENSURE_MSG(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0, MF_ERR_IO,
                  "SO_PEERCRED: %s", strerror(errno));
    MF_ENSURE_MSG(ul == sizeof(uc) && uc.pid > 0, MF_ERR_AUTH_MISSING,
                  "no peer credentials on this socket");
    *out = uc;
    return MF_RES_OK;
}

/* ---- request bodies --------------------------------------------------- */

/* Parses a Content-Length value: decimal digits only, no sign, no space. */
static bool parse_length(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        if (__builtin_mul_overflow(v, 10u, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v)) {
            return false;
        }
    }
    *out = v;
    return true;
}

/* see mf_httpd.h */
bool mf_httpd_body(struct MHD_Connection *conn, void **con_cls, const char *upload_data,
                   size_t *upload_size, size_t max, struct mf_httpd_req **req_out,
                   enum MHD_Result *result)
{
    *req_out = NULL;
    struct mf_httpd_req *req = *con_cls;

    if (req == NULL) {
        /* First call: headers only. Answering now would cost keep-alive,
         * except when Content-Length already says the body is too big: then
         * refuse at once so that the body is never read at all. */
        uint64_t clen = 0;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && parse_length(cl, &clen) && clen > (uint64_t)max) {
            *result = mf_httpd_reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                           "request body is over %zu bytes", max);
            return false;
        }
        req = calloc(1, sizeof(*req));
        if (req == NULL) {
            *result = MHD_NO;
            return false;
        }
        mf_buf_init(&req->body, max, 0);
        *con_cls = req;
        *result = MHD_YES;
        return false;
    }

    if (*upload_size > 0) {
        if (!req->too_large && !mf_ok(mf_buf_append(&req->body, upload_data, *upload_size))) {
            /* over the cap: drop what we have and discard the rest */
            req->too_large = true;
            mf_buf_cleanup(&req->body);
        }
        *upload_size = 0;
        *result = MHD_YES;
        return false;
    }

    if (req->too_large) {
        *result = mf_httpd_reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                       "request body is over %zu bytes", max);
        return false;
    }
    *req_out = req;
    return true;
}

/* see mf_httpd.h */
void mf_httpd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    if (con_cls == NULL || *con_cls == NULL) {
        return;
    }
    struct mf_httpd_req *req = *con_cls;
    if (req->user_free != NULL && req->user != NULL) {
        req->user_free(req->user);
    }
    mf_buf_cleanup(&req->body);
    free(req);
    *con_cls = NULL;
}

/* ---- replies ---------------------------------------------------------- */

/* Queues resp (NULL: could not be made) with its Content-Type, and drops
 * this reference to it. */
static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status, const char *content_type,
                             struct MHD_Response *resp)
{
    if (resp == NULL) {
        return MHD_NO;
    }
    enum MHD_Result r = MHD_NO;
    if (content_type == NULL ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES) {
        r = MHD_queue_response(conn, status, resp);
    }
    MHD_destroy_response(resp);
    return r;
}

/* see mf_httpd.h */
enum MHD_Result mf_httpd_reply_buf(struct MHD_Connection *conn, unsigned status,
                                   const char *content_type, const void *data, size_t len)
{
    /* MUST_COPY: MHD owns its copy, so the caller's buffer may go now */
    return queue(
        conn, status, content_type,
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)data, MHD_RESPMEM_MUST_COPY));
}

/* see mf_httpd.h */
enum MHD_Result mf_httpd_reply_take(struct MHD_Connection *conn, unsigned status,
                                    const char *content_type, struct mf_buf *b)
{
    if (b->data == NULL || (b->flags & MF_BUF_SECRET)) {
        /* nothing to take, or a block that must be wiped, not just freed */
        return mf_httpd_reply_buf(conn, status, content_type, mf_buf_cstr(b), b->len);
    }
    /* MUST_FREE: MHD free()s the block with the response */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(b->len, b->data, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        return MHD_NO;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return queue(conn, status, content_type, resp);
}

/* The last resort when even the error body cannot be built. */
static enum MHD_Result reply_internal(struct MHD_Connection *conn)
{
    static const char body[] = "{\"error\":\"internal\",\"message\":\"internal error\"}";
    return mf_httpd_reply_buf(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json", body,
                              sizeof(body) - 1);
}

/* see mf_httpd.h */
enum MHD_Result mf_httpd_reply_json(struct MHD_Connection *conn, unsigned status, json_t *body)
{
    if (body == NULL) {
        return reply_internal(conn);
    }
    char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (s == NULL) {
        return reply_internal(conn);
    }
    enum MHD_Result r = mf_httpd_reply_buf(conn, status, "application/json", s, strlen(s));
    free(s);
    return r;
}

/* see mf_httpd.h */
enum MHD_Result mf_httpd_reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                     const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        msg[0] = '\0';
    }
    /* The message may quote peer input or error details: keep it printable
     * ASCII so that it is always valid JSON text and safe in a terminal. */
    for (char *p = msg; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch > 0x7e) {
            *p = '?';
        }
    }
    json_t *o = json_pack("{s:s, s:s}", "error", code != NULL ? code : "internal", "message", msg);
    return mf_httpd_reply_json(conn, status, o);
}

struct res_map {
    unsigned status;
    const char *code;
};

static struct res_map map_res(enum mf_err e)
{
    switch (e) {
    case MF_ERR_PROTO_TOO_LARGE:
        return (struct res_map){MHD_HTTP_CONTENT_TOO_LARGE, "too_large"};
    case MF_ERR_AUTH_BANNED:
        return (struct res_map){MHD_HTTP_FORBIDDEN, "permission_denied"};
    case MF_ERR_POLICY_NOT_FOUND:
    case MF_ERR_IO_NOT_FOUND:
        return (struct res_map){MHD_HTTP_NOT_FOUND, "not_found"};
    case MF_ERR_POLICY_DUPLICATE:
        return (struct res_map){MHD_HTTP_CONFLICT, "already_exists"};
    case MF_ERR_POLICY_LIMIT:
        return (struct res_map){MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited"};
    case MF_ERR_POLICY_CONFIG:
    case MF_ERR_CRYPTO_SIG:
    case MF_ERR_CRYPTO_KEY:
    case MF_ERR_CRYPTO_MISMATCH:
        return (struct res_map){MHD_HTTP_BAD_REQUEST, "invalid_argument"};
    case MF_ERR_IO_TIMEOUT:
    case MF_ERR_IO_CONNECT:
        return (struct res_map){MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable"};
    default:
        break;
    }
    switch (mf_err_category(e)) {
    case MF_CAT_PROTO:
    case MF_CAT_USAGE:
        return (struct res_map){MHD_HTTP_BAD_REQUEST, "invalid_argument"};
    case MF_CAT_AUTH:
        return (struct res_map){MHD_HTTP_UNAUTHORIZED, "unauthenticated"};
    case MF_CAT_POLICY:
        return (struct res_map){MHD_HTTP_FORBIDDEN, "permission_denied"};
    default:
        return (struct res_map){MHD_HTTP_INTERNAL_SERVER_ERROR, "internal"};
    }
}

/* see mf_httpd.h */
enum MHD_Result mf_httpd_reply_res(struct MHD_Connection *conn, mf_res r)
{
    struct res_map m = map_res(r.err);
    if (r.err == MF_ERR_IO_NOSPACE) {
        /* a full disk or a file size limit: every write is one transaction,
         * so nothing was written; the operator needs to know that it is
         * the disk, not a bug (tests/integration/fault_disk_full.sh) */
        mf_log_err_r(r, "request refused");
        return mf_httpd_reply_error(conn, MHD_HTTP_INSUFFICIENT_STORAGE, "unavailable",
                                    "the server's disk is full: nothing was written; retry "
                                    "once space is freed");
    }
    if (m.status == MHD_HTTP_INTERNAL_SERVER_ERROR) {
        /* the detail of a server fault is for the log, not the peer */
        mf_log_err_r(r, "request failed");
        return mf_httpd_reply_error(conn, m.status, m.code, "internal error");
    }
    char line[400];
    mf_err_format(r, line, sizeof(line));
    return mf_httpd_reply_error(conn, m.status, m.code, "%s", line);
}

/* see mf_httpd.h */
const char *mf_httpd_header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* see mf_httpd.h */
const char *mf_httpd_query(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

/* see mf_httpd.h */
mf_res mf_httpd_listen_tcp(const char *host_port, int backlog, int *fd_out, char *addr, size_t cap)
{
    MF_ENSURE_REF(host_port);
    MF_ENSURE_REF(fd_out);
    char host[256];
    const char *colon = strrchr(host_port, ':');
    MF_ENSURE_MSG(colon != NULL && colon[1] != '\0', MF_ERR_USAGE_ARG, "'%s' is not HOST:PORT",
                  host_port);
    size_t hl = (size_t)(colon - host_port);
    MF_ENSURE(hl < sizeof(host), MF_ERR_USAGE_ARG);
    memcpy(host, host_port, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gr = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    MF_ENSURE_MSG(gr == 0, MF_ERR_USAGE_ARG, "%s: %s", host_port, gai_strerror(gr));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        MF_BAIL_MSG(MF_ERR_IO, "socket: %s", strerror(errno));
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(res);
        MF_BAIL_MSG(MF_ERR_IO, "cannot listen on %s: %s", host_port, strerror(e));
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char h[NI_MAXHOST], p[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        snprintf(addr, cap, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, p);
    } else {
        snprintf(addr, cap, "%s", host_port);
    }
    *fd_out = fd;
    return MF_RES_OK;
}
