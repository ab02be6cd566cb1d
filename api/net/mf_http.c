/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_http: the HTTP/1.1 client of mayfly. See mf_http.h.
 *
 * One connection carries one exchange at a time. Raw bytes from the
 * transport (a plain socket, or wolfSSL over it) land in `in`, which never
 * holds more than HEADER_MAX + READ_CHUNK bytes: headers are looked for in
 * the first HEADER_MAX bytes only, and body bytes are decoded out of `in` as
 * they arrive. The body decoder is a small state machine (Content-Length,
 * chunked, or read-to-close) that both the whole-response path and the
 * streaming line path share, so a watch stream that times out mid-line can
 * simply be resumed.
 *
 * Every socket is non-blocking; each read and write waits with poll() for at
 * most the time left before the call's deadline (monotonic clock).
 *
 * A connection becomes unusable (`broken`) after any failure in the middle
 * of an exchange, after "Connection: close", after a body read to EOF and
 * when the server sends bytes beyond the response: reusing it could pair
 * the next request with a stale answer.
 *
 * TLS: through mf_tls, the one TLS layer of libmayfly (see mf_tls.h): the
 * server is verified inside the TLS 1.3 handshake, its chain with
 * mf_svid_verify against the caller's bundle set (SPIFFE.md B20-B27) and
 * then its SPIFFE ID against the expected one. A server that fails either
 * is sent a fatal alert, and not a single application byte.
 */
#include "api/net/mf_http.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfio.h>

#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"
#include "api/core/mf_time.h"
#include "api/net/mf_tls.h"

#define HEADER_MAX     (16u * 1024u) /* status line + headers (and trailers) */
#define READ_CHUNK     (16u * 1024u) /* bytes asked of the transport at once */
#define IN_MAX         (HEADER_MAX + READ_CHUNK)
#define CHUNK_LINE_MAX 1024u         /* one chunk-size line with extensions */
#define REQ_HEAD_MAX   (16u * 1024u) /* request line + headers we send */
#define HOST_MAX       300u
#define MAX_INTERIM    8 /* 1xx responses skipped before the final one */

enum body_mode {
    BODY_NONE = 0,
    BODY_LENGTH,
    BODY_CHUNKED,
    BODY_EOF,
};

enum chunk_state {
    CH_SIZE = 0,  /* expecting a chunk-size line */
    CH_DATA,      /* inside chunk data, `left` bytes to go */
    CH_DATA_CRLF, /* the CRLF after chunk data */
    CH_TRAILER,   /* trailer lines after the last chunk */
};

struct mf_http_conn {
    /* the socket, the deadline of the running call (monotonic ms) and the
     * cancel fd; over TLS also what the transport saw (io.failed: the TLS
     * peer went away without close_notify, or the connection failed) */
    struct mf_tls_io io;
    WOLFSSL_CTX *ctx; /* NULL for plain connections */
    WOLFSSL *ssl;
    bool broken;
    bool has_peer;
    /* the connection carried a whole exchange before (it is a kept-alive
     * one), and the last request failed with nothing of an answer read */
    bool reused;
    bool unanswered;
    struct mf_spiffe_id peer_id;
    char host[HOST_MAX]; /* Host header value */

    struct mf_buf in; /* received, not yet decoded */

    /* the response being read */
    bool in_exchange; /* headers read, body not finished */
    bool streaming;   /* between stream_begin and the end of the body */
    bool close_after; /* the server will close (or must be assumed to) */
    enum body_mode mode;
    enum chunk_state cstate;
    uint64_t left;      /* LENGTH: body bytes to go; CHUNKED: chunk bytes to go */
    size_t trailer_len; /* bytes of trailers seen */
    struct mf_buf pend; /* streaming: decoded body bytes not yet returned */
    /* Where transport reads land before decoding. Held here rather than on
     * the stack so it is wiped at close: Workload API responses carry
     * private keys. */
    uint8_t scratch[READ_CHUNK];
};

/* ---- deadlines and raw I/O ----------------------------------------------- */

static mf_res set_deadline(struct mf_http_conn *c, int timeout_ms)
{
    return mf_tls_io_deadline(&c->io, timeout_ms);
}

/* Reads at least one byte into p (at most cap); MF_ERR_IO_EOF when the peer
 * closed. */
static mf_res raw_read(struct mf_http_conn *c, uint8_t *p, size_t cap, size_t *got)
{
    *got = 0;
    int want = cap > INT_MAX ? INT_MAX : (int)cap;
    for (;;) {
        if (c->ssl != NULL) {
            int n = wolfSSL_read(c->ssl, p, want);
            if (n > 0) {
                *got = (size_t)n;
                return MF_RES_OK;
            }
            MF_TRY(mf_tls_retry(c->ssl, &c->io, n, "read"));
            continue;
        }
        ssize_t n = recv(c->io.fd, p, (size_t)want, 0);
        if (n > 0) {
            *got = (size_t)n;
            return MF_RES_OK;
        }
        if (n == 0) {
            MF_BAIL_MSG(MF_ERR_IO_EOF, "peer closed the connection");
        }
        if (errno == EINTR) {
            continue;
        }
        MF_ENSURE_MSG(errno == EAGAIN, MF_ERR_IO, "recv: %s", strerror(errno));
        MF_TRY(mf_tls_wait(c->io.fd, POLLIN, c->io.deadline, c->io.cancel_fd));
    }
}

static mf_res raw_write_all(struct mf_http_conn *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        size_t rest = n - off;
        int want = rest > INT_MAX ? INT_MAX : (int)rest;
        if (c->ssl != NULL) {
            /* after WANT_WRITE wolfSSL must be called again with the same
             * buffer, which this loop does */
            int w = wolfSSL_write(c->ssl, p + off, want);
            if (w > 0) {
                off += (size_t)w;
                continue;
            }
            MF_TRY(mf_tls_retry(c->ssl, &c->io, w, "write"));
            continue;
        }
        ssize_t w = send(c->io.fd, p + off, (size_t)want, MSG_NOSIGNAL);
        if (w >= 0) {
            off += (size_t)w;
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EPIPE || errno == ECONNRESET) {
            MF_BAIL_MSG(MF_ERR_IO_EOF, "peer closed the connection while we wrote");
        }
        MF_ENSURE_MSG(errno == EAGAIN, MF_ERR_IO, "send: %s", strerror(errno));
        MF_TRY(mf_tls_wait(c->io.fd, POLLOUT, c->io.deadline, c->io.cancel_fd));
    }
    return MF_RES_OK;
}

/* Appends up to READ_CHUNK more bytes from the transport to c->in. */
static mf_res fill(struct mf_http_conn *c)
{
    size_t room = c->in.max - c->in.len;
    MF_ENSURE_MSG(room > 0, MF_ERR_PROTO_TOO_LARGE, "receive buffer full");
    if (room > READ_CHUNK) {
        room = READ_CHUNK;
    }
    MF_TRY(mf_buf_reserve(&c->in, room));
    size_t got = 0;
    MF_TRY(raw_read(c, c->in.data + c->in.len, room, &got));
    c->in.len += got;
    c->in.data[c->in.len] = '\0';
    return MF_RES_OK;
}

/* ---- connecting -------------------------------------------------------- */

static mf_res conn_new(int fd, struct mf_http_conn **out)
{
    struct mf_http_conn *c = calloc(1, sizeof(*c));
    MF_TRY_PTR(c, MF_ERR_NOMEM);
    mf_tls_io_init(&c->io, fd);
    /* Secret: these hold response bytes, which may include private keys. */
    mf_buf_init(&c->in, IN_MAX, MF_BUF_SECRET);
    mf_buf_init(&c->pend, SIZE_MAX, MF_BUF_SECRET);
    *out = c;
    return MF_RES_OK;
}

/* Finishes a non-blocking connect() that returned EINPROGRESS. */
static mf_res connect_wait(int fd, int64_t deadline)
{
    MF_TRY(mf_tls_wait(fd, POLLOUT, deadline, -1));
    int err = 0;
    socklen_t len = sizeof(err);
    MF_ENSURE_MSG(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0, MF_ERR_IO,
                  "getsockopt: %s", strerror(errno));
    MF_ENSURE_MSG(err == 0, MF_ERR_IO_CONNECT, "connect: %s", strerror(err));
    return MF_RES_OK;
}

/* see mf_http.h */
mf_res mf_http_connect_unix(const char *path, int timeout_ms, struct mf_http_conn **out)
{
    mf_res rc;
    int fd = -1;
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(path);
    MF_ENSURE_MSG(timeout_ms >= 0, MF_ERR_USAGE_ARG, "negative timeout %d", timeout_ms);
    int64_t deadline = mf_mono_ms() + timeout_ms;

    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    MF_ENSURE_MSG(plen > 0 && plen < sizeof(sun.sun_path), MF_ERR_USAGE_ARG,
                  "socket path must be 1 to %zu bytes", sizeof(sun.sun_path) - 1);
    memcpy(sun.sun_path, path, plen + 1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    MF_ENSURE_OUT_MSG(fd >= 0, MF_ERR_IO, "socket: %s", strerror(errno));
    if (connect(fd, (const struct sockaddr *)&sun, sizeof(sun)) != 0) {
        if (errno == EINPROGRESS) {
            MF_TRY_OUT(connect_wait(fd, deadline));
        } else if (errno == EAGAIN) {
            MF_BAIL_OUT(MF_ERR_IO_CONNECT, "%s: server is not accepting (backlog full)", path);
        } else {
            MF_BAIL_OUT(MF_ERR_IO_CONNECT, "%s: %s", path, strerror(errno));
        }
    }
    MF_TRY_OUT(conn_new(fd, out));
    fd = -1;
    memcpy((*out)->host, "localhost", sizeof("localhost"));
    rc = MF_RES_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Splits "host:port" or "[v6]:port"; host without brackets. */
static mf_res split_host_port(const char *hp, char *host, size_t hcap, char *port, size_t pcap)
{
    size_t len = strlen(hp);
    const char *h;
    size_t hl;
    const char *colon;
    if (len > 0 && hp[0] == '[') {
        const char *close = memchr(hp, ']', len);
        MF_ENSURE_MSG(close != NULL && close[1] == ':', MF_ERR_USAGE_ARG,
                      "address must be [v6]:port: %s", hp);
        h = hp + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        MF_ENSURE_MSG(colon != NULL && memchr(hp, ':', (size_t)(colon - hp)) == NULL,
                      MF_ERR_USAGE_ARG, "address must be host:port: %s", hp);
        h = hp;
        hl = (size_t)(colon - hp);
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    MF_ENSURE_MSG(hl > 0 && hl < hcap, MF_ERR_USAGE_ARG, "bad host in %s", hp);
    MF_ENSURE_MSG(pl > 0 && pl < pcap && strspn(p, "0123456789") == pl, MF_ERR_USAGE_ARG,
                  "bad port in %s", hp);
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return MF_RES_OK;
}

static mf_res tcp_connect(const char *host_port, int64_t deadline, int *fd_out)
{
    char host[HOST_MAX];
    char port[8];
    *fd_out = -1;
    MF_TRY(split_host_port(host_port, host, sizeof(host), port, sizeof(port)));

    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *ai = NULL;
    int gr = getaddrinfo(host, port, &hints, &ai);
    MF_ENSURE_MSG(gr == 0, MF_ERR_IO_CONNECT, "%s: %s", host_port, gai_strerror(gr));

    mf_res last = MF_RAISE_MSG(MF_ERR_IO_CONNECT, "%s: no address", host_port);
    for (const struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            last = MF_RES_OK;
        } else if (errno == EINPROGRESS) {
            last = connect_wait(fd, deadline);
        } else {
            last = MF_RAISE_MSG(MF_ERR_IO_CONNECT, "%s: %s", host_port, strerror(errno));
        }
        if (mf_ok(last)) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            *fd_out = fd;
            break;
        }
        close(fd);
        if (last.err == MF_ERR_IO_TIMEOUT) {
            break;
        }
    }
    freeaddrinfo(ai);
    return last;
}

/* What the authorizer checks. */
struct server_want {
    struct mf_spiffe_id id;
    bool below;
};

/* True when peer is want plus exactly one non-empty path segment. */
static bool one_below(const struct mf_spiffe_id *peer, const struct mf_spiffe_id *want)
{
    size_t n = strlen(want->str);
    const char *rest = peer->str + n;
    return strncmp(peer->str, want->str, n) == 0 && rest[0] == '/' && rest[1] != '\0' &&
           strchr(rest + 1, '/') == NULL;
}

/* The authorizer of mf_http's policy: the server must be exactly the
 * expected SPIFFE ID (arg), or one segment below it when allowed. */
static mf_res expect_server(void *arg, const struct mf_spiffe_id *peer,
                            const struct mf_certs *chain)
{
    (void)chain;
    const struct server_want *want = arg;
    MF_ENSURE_MSG(mf_spiffeid_eq(peer, &want->id) || (want->below && one_below(peer, &want->id)),
                  MF_ERR_AUTH_UNTRUSTED, "not authorized (want server %s%s)", want->id.str,
                  want->below ? "[/<server id>]" : "");
    return MF_RES_OK;
}

/* see mf_http.h */
mf_res mf_http_connect_tls(const char *host_port, const struct mf_tls_client_cfg *cfg,
                           int timeout_ms, struct mf_http_conn **out)
{
    mf_res rc;
    int fd = -1;
    struct mf_http_conn *c = NULL;
    struct server_want want = {.below = false};
    struct mf_tls_policy policy = {.trust = NULL};
    struct mf_tls_check check;
    mf_tls_check_init(&check, &policy, true);
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(host_port);
    MF_ENSURE_REF(cfg);
    MF_ENSURE_MSG(cfg->trust != NULL, MF_ERR_USAGE_NULL, "a trust bundle set is required");
    MF_ENSURE_MSG((cfg->chain == NULL) == (cfg->key == NULL), MF_ERR_USAGE_ARG,
                  "client chain and key go together");
    MF_ENSURE_MSG(strlen(host_port) < HOST_MAX, MF_ERR_USAGE_ARG, "address too long");
    MF_ENSURE_MSG(timeout_ms >= 0, MF_ERR_USAGE_ARG, "negative timeout %d", timeout_ms);
    if (cfg->expect_server_id != NULL) {
        MF_TRY(mf_spiffeid_parse_cstr(cfg->expect_server_id, &want.id));
        want.below = cfg->server_id_below;
    }
    policy = (struct mf_tls_policy){
        .trust = cfg->trust,
        .authorize = cfg->expect_server_id != NULL ? expect_server : NULL,
        .arg = &want,
    };
    int64_t deadline = mf_mono_ms() + timeout_ms;

    mf_x509_global_init();
    MF_TRY_OUT(tcp_connect(host_port, deadline, &fd));
    MF_TRY_OUT(conn_new(fd, &c));
    fd = -1;
    c->io.deadline = deadline;
    memcpy(c->host, host_port, strlen(host_port) + 1);

    c->ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    MF_ENSURE_OUT_MSG(c->ctx != NULL, MF_ERR_NOMEM, "wolfSSL_CTX_new");
    /* the check lives on this stack frame: the context is used for this
     * one handshake only (it stays with the connection, but verifies no
     * other peer) */
    MF_TRY_OUT(mf_tls_ctx_setup(c->ctx, false, &check));
    if (cfg->chain != NULL) {
        MF_TRY_OUT(mf_tls_load_identity(c->ctx, cfg->chain, cfg->key, "the client"));
    }
    MF_TRY_OUT(mf_tls_session(c->ctx, &c->io, false, &check, &c->ssl));
    /* the check goes out of scope: nothing may call back into it */
    wolfSSL_SetCertCbCtx(c->ssl, NULL);
    wolfSSL_CTX_SetCertCbCtx(c->ctx, NULL);
    c->peer_id = check.id;
    c->has_peer = true;
    *out = c;
    c = NULL;
    rc = MF_RES_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (c != NULL) {
        c->broken = true; /* say nothing more to a server we did not accept */
    }
    mf_http_close(c);
    mf_tls_check_cleanup(&check);
    return rc;
}

/* see mf_http.h */
mf_res mf_http_connect_web(const char *host_port, const char *ca_file, int timeout_ms,
                           struct mf_http_conn **out)
{
    mf_res rc;
    int fd = -1;
    struct mf_http_conn *c = NULL;
    char host[HOST_MAX];
    char port[8];
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(host_port);
    MF_ENSURE_MSG(strlen(host_port) < HOST_MAX, MF_ERR_USAGE_ARG, "address too long");
    MF_ENSURE_MSG(timeout_ms >= 0, MF_ERR_USAGE_ARG, "negative timeout %d", timeout_ms);
    MF_TRY(split_host_port(host_port, host, sizeof(host), port, sizeof(port)));
    int64_t deadline = mf_mono_ms() + timeout_ms;

    mf_x509_global_init();
    MF_TRY_OUT(tcp_connect(host_port, deadline, &fd));
    MF_TRY_OUT(conn_new(fd, &c));
    fd = -1;
    c->io.deadline = deadline;
    memcpy(c->host, host_port, strlen(host_port) + 1);
    c->ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    MF_ENSURE_OUT_MSG(c->ctx != NULL, MF_ERR_NOMEM, "wolfSSL_CTX_new");
    MF_ENSURE_OUT_MSG(wolfSSL_CTX_SetMinVersion(c->ctx, WOLFSSL_TLSV1_2) == WOLFSSL_SUCCESS,
                      MF_ERR_CRYPTO, "cannot require TLS 1.2");
    if (ca_file != NULL && ca_file[0] != '\0') {
        MF_ENSURE_OUT_MSG(wolfSSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) ==
                              WOLFSSL_SUCCESS,
                          MF_ERR_CRYPTO, "cannot load CA certificates from %s", ca_file);
    } else {
        MF_ENSURE_OUT_MSG(wolfSSL_CTX_load_system_CA_certs(c->ctx) == WOLFSSL_SUCCESS,
                          MF_ERR_CRYPTO, "cannot load the system's CA certificates");
    }
    wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_PEER, NULL);
    c->ssl = wolfSSL_new(c->ctx);
    MF_ENSURE_OUT_MSG(c->ssl != NULL, MF_ERR_NOMEM, "wolfSSL_new");
    /* RFC 6125: the certificate must name the host we connect to */
    MF_ENSURE_OUT_MSG(wolfSSL_check_domain_name(c->ssl, host) == WOLFSSL_SUCCESS, MF_ERR_NOMEM,
                      "wolfSSL_check_domain_name");
    (void)wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, host, (word16)strlen(host));
    mf_tls_io_attach(c->ssl, &c->io);
    for (;;) {
        int ret = wolfSSL_connect(c->ssl);
        if (ret == WOLFSSL_SUCCESS) {
            break;
        }
        rc = mf_tls_retry(c->ssl, &c->io, ret, "the handshake");
        if (!mf_ok(rc)) {
            int e = wolfSSL_get_error(c->ssl, ret);
            if (e == DOMAIN_NAME_MISMATCH || e == ASN_NO_SIGNER_E || e == ASN_AFTER_DATE_E ||
                e == ASN_BEFORE_DATE_E || e == VERIFY_CERT_ERROR || e == IPADDR_MISMATCH) {
                char why[128];
                wolfSSL_ERR_error_string_n((unsigned long)e, why, sizeof(why));
                rc = MF_RAISE_MSG(MF_ERR_AUTH_UNTRUSTED, "refused server %s: %s", host, why);
            }
            goto out;
        }
    }
    *out = c;
    c = NULL;
    rc = MF_RES_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (c != NULL) {
        c->broken = true;
    }
    mf_http_close(c);
    return rc;
}

/* see mf_http.h */
const struct mf_spiffe_id *mf_http_peer_id(const struct mf_http_conn *c)
{
    return c != NULL && c->has_peer ? &c->peer_id : NULL;
}

/* see mf_http.h */
bool mf_http_reusable(const struct mf_http_conn *c)
{
    return c != NULL && !c->broken && !c->in_exchange;
}

/* see mf_http.h */
bool mf_http_stale(const struct mf_http_conn *c)
{
    return c != NULL && c->reused && c->unanswered;
}

/* see mf_http.h */
void mf_http_set_cancel_fd(struct mf_http_conn *c, int fd)
{
    if (c != NULL) {
        c->io.cancel_fd = fd;
    }
}

/* see mf_http.h */
void mf_http_close(struct mf_http_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->ssl != NULL) {
        if (!c->broken && !c->io.failed) {
            /* best effort close_notify; never waits */
            (void)wolfSSL_shutdown(c->ssl);
        }
        wolfSSL_free(c->ssl);
    }
    if (c->ctx != NULL) {
        wolfSSL_CTX_free(c->ctx);
    }
    if (c->io.fd >= 0) {
        close(c->io.fd);
    }
    mf_buf_cleanup(&c->in);
    mf_buf_cleanup(&c->pend);
    mf_wipe(c->scratch, sizeof(c->scratch));
    free(c);
}

/* ---- responses ---------------------------------------------------------- */

/* see mf_http.h */
void mf_http_resp_init(struct mf_http_resp *r, size_t max_body)
{
    r->status = 0;
    /* Response bodies may hold private keys (Workload API): wiped on free. */
    mf_buf_init(&r->body, max_body, MF_BUF_SECRET);
    r->content_type[0] = '\0';
    r->retry_after = -1;
    r->location[0] = '\0';
}

/* see mf_http.h */
void mf_http_resp_cleanup(struct mf_http_resp *r)
{
    if (r == NULL) {
        return;
    }
    mf_buf_cleanup(&r->body);
    r->status = 0;
    r->content_type[0] = '\0';
    r->retry_after = -1;
    r->location[0] = '\0';
}

/* Next CRLF-terminated line from cur (without the CRLF). A bare CR or LF
 * inside a line is refused. */
static mf_res next_line(struct mf_cur *cur, const uint8_t **line, size_t *len)
{
    const uint8_t *p = cur->p + cur->off;
    size_t rem = mf_cur_remaining(cur);
    const uint8_t *lf = memchr(p, '\n', rem);
    MF_ENSURE_MSG(lf != NULL, MF_ERR_PROTO_TRUNCATED, "line without end");
    size_t n = (size_t)(lf - p);
    MF_ENSURE_MSG(n > 0 && p[n - 1] == '\r', MF_ERR_PROTO_HTTP, "line ends in a bare LF");
    MF_ENSURE_MSG(memchr(p, '\r', n - 1) == NULL, MF_ERR_PROTO_HTTP, "bare CR in a line");
    MF_TRY(mf_cur_read(cur, n + 1, line));
    *len = n - 1;
    return MF_RES_OK;
}

static bool is_tchar(uint8_t ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
        return true;
    }
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool ieq(const uint8_t *p, size_t n, const char *s)
{
    return strlen(s) == n && strncasecmp((const char *)p, s, n) == 0;
}

/* Decimal digits only, at most 18 of them (fits in int64 with room). */
static bool parse_dec(const uint8_t *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 18) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* True when the comma-separated token list p contains tok. */
static bool list_has(const uint8_t *p, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ',')) {
            i++;
        }
        size_t s = i;
        while (i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\t') {
            i++;
        }
        if (i > s && ieq(p + s, i - s, tok)) {
            return true;
        }
    }
    return false;
}

struct head {
    int status;
    bool http10;
    bool has_length;
    uint64_t length;
    bool chunked;
    bool te_seen;
    bool close;
};

/* Parses one header line into h and resp. */
static mf_res parse_header(const uint8_t *p, size_t n, struct head *h, struct mf_http_resp *resp)
{
    size_t i = 0;
    while (i < n && is_tchar(p[i])) {
        i++;
    }
    MF_ENSURE_MSG(i > 0 && i < n && p[i] == ':', MF_ERR_PROTO_HTTP, "malformed header line");
    const uint8_t *name = p;
    size_t nl = i;
    i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    size_t end = n;
    while (end > i && (p[end - 1] == ' ' || p[end - 1] == '\t')) {
        end--;
    }
    const uint8_t *v = p + i;
    size_t vl = end - i;
    for (size_t k = 0; k < vl; k++) {
        MF_ENSURE_MSG(v[k] >= 0x20 || v[k] == '\t', MF_ERR_PROTO_HTTP,
                      "control character in header value");
        MF_ENSURE_MSG(v[k] != 0x7f, MF_ERR_PROTO_HTTP, "control character in header value");
    }

    if (ieq(name, nl, "Content-Length")) {
        uint64_t len = 0;
        MF_ENSURE_MSG(parse_dec(v, vl, &len), MF_ERR_PROTO_HTTP, "bad Content-Length");
        MF_ENSURE_MSG(!h->has_length || h->length == len, MF_ERR_PROTO_HTTP,
                      "conflicting Content-Length headers");
        h->has_length = true;
        h->length = len;
    } else if (ieq(name, nl, "Transfer-Encoding")) {
        MF_ENSURE_MSG(!h->te_seen, MF_ERR_PROTO_HTTP, "repeated Transfer-Encoding");
        MF_ENSURE_MSG(ieq(v, vl, "chunked"), MF_ERR_PROTO_HTTP,
                      "unsupported Transfer-Encoding (only chunked)");
        h->te_seen = true;
        h->chunked = true;
    } else if (ieq(name, nl, "Content-Type")) {
        MF_ENSURE_MSG(vl < sizeof(resp->content_type), MF_ERR_PROTO_HTTP,
                      "Content-Type over %zu bytes", sizeof(resp->content_type) - 1);
        memcpy(resp->content_type, v, vl);
        resp->content_type[vl] = '\0';
    } else if (ieq(name, nl, "Location")) {
        /* kept for callers that follow redirects; one too long is dropped */
        if (vl <= MF_HTTP_LOCATION_MAX) {
            memcpy(resp->location, v, vl);
            resp->location[vl] = '\0';
        }
    } else if (ieq(name, nl, "Retry-After")) {
        /* delta-seconds only; an HTTP-date is left as "not given" */
        uint64_t secs = 0;
        if (parse_dec(v, vl, &secs)) {
            resp->retry_after = secs > INT_MAX ? INT_MAX : (int)secs;
        }
    } else if (ieq(name, nl, "Connection")) {
        if (list_has(v, vl, "close")) {
            h->close = true;
        }
    }
    return MF_RES_OK;
}

/* Parses the status line and headers in [p, p+n) (ending with the empty
 * line). */
static mf_res parse_head(const uint8_t *p, size_t n, struct head *h, struct mf_http_resp *resp)
{
    struct mf_cur cur;
    mf_cur_init(&cur, p, n);
    const uint8_t *line;
    size_t len;
    memset(h, 0, sizeof(*h));
    resp->content_type[0] = '\0';
    resp->retry_after = -1;
    resp->location[0] = '\0';

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ] */
    MF_TRY(next_line(&cur, &line, &len));
    MF_ENSURE_MSG(len >= 12 && memcmp(line, "HTTP/1.", 7) == 0 &&
                      (line[7] == '0' || line[7] == '1') && line[8] == ' ',
                  MF_ERR_PROTO_HTTP, "malformed status line");
    h->http10 = line[7] == '0';
    uint64_t st = 0;
    MF_ENSURE_MSG(parse_dec(line + 9, 3, &st) && st >= 100 && st <= 599, MF_ERR_PROTO_HTTP,
                  "bad status code");
    MF_ENSURE_MSG(len == 12 || line[12] == ' ', MF_ERR_PROTO_HTTP, "malformed status line");
    for (size_t k = 12; k < len; k++) {
        MF_ENSURE_MSG(line[k] >= 0x20 || line[k] == '\t', MF_ERR_PROTO_HTTP,
                      "control character in status line");
    }
    h->status = (int)st;

    for (;;) {
        MF_TRY(next_line(&cur, &line, &len));
        if (len == 0) {
            break;
        }
        MF_ENSURE_MSG(line[0] != ' ' && line[0] != '\t', MF_ERR_PROTO_HTTP,
                      "folded header lines are not allowed");
        MF_TRY(parse_header(line, len, h, resp));
    }
    MF_ENSURE_MSG(mf_cur_remaining(&cur) == 0, MF_ERR_INTERNAL, "header block mis-split");
    MF_ENSURE_MSG(!(h->chunked && h->has_length), MF_ERR_PROTO_HTTP,
                  "both Content-Length and Transfer-Encoding");
    return MF_RES_OK;
}

/* Reads the status line and headers of the final response; sets up the
 * body decoder. A declared Content-Length over max_body is refused. */
static mf_res read_head(struct mf_http_conn *c, const char *method, size_t max_body,
                        struct mf_http_resp *resp)
{
    for (int interim = 0;; interim++) {
        MF_ENSURE_MSG(interim <= MAX_INTERIM, MF_ERR_PROTO_HTTP, "too many 1xx responses");
        size_t scanned = 0;
        size_t end = 0;
        for (;;) {
            size_t lim = c->in.len < HEADER_MAX ? c->in.len : HEADER_MAX;
            size_t from = scanned > 3 ? scanned - 3 : 0;
            if (lim > from) {
                const uint8_t *e = memmem(c->in.data + from, lim - from, "\r\n\r\n", 4);
                if (e != NULL) {
                    end = (size_t)(e - c->in.data) + 4;
                    break;
                }
            }
            scanned = lim;
            MF_ENSURE_MSG(c->in.len < HEADER_MAX, MF_ERR_PROTO_TOO_LARGE,
                          "response headers over %u bytes", HEADER_MAX);
            mf_res r = fill(c);
            if (r.err == MF_ERR_IO_EOF && (c->in.len > 0 || interim > 0)) {
                MF_BAIL_MSG(MF_ERR_PROTO_TRUNCATED, "connection closed inside the headers");
            }
            MF_TRY(r);
        }

        struct head h;
        MF_TRY(parse_head(c->in.data, end, &h, resp));
        mf_buf_consume(&c->in, end);
        if (h.status < 200 && h.status != 101) {
            continue; /* interim response (100 Continue, 103 ...) */
        }
        MF_ENSURE_MSG(h.status != 101, MF_ERR_PROTO_HTTP, "unexpected protocol switch");

        resp->status = h.status;
        c->close_after = h.close || h.http10;
        c->cstate = CH_SIZE;
        c->left = 0;
        c->trailer_len = 0;
        if (strcmp(method, "HEAD") == 0 || h.status == 204 || h.status == 304) {
            c->mode = BODY_NONE;
        } else if (h.chunked) {
            c->mode = BODY_CHUNKED;
        } else if (h.has_length) {
            MF_ENSURE_MSG(h.length <= (uint64_t)max_body, MF_ERR_PROTO_TOO_LARGE,
                          "response body of %llu bytes is over %zu", (unsigned long long)h.length,
                          max_body);
            c->mode = h.length > 0 ? BODY_LENGTH : BODY_NONE;
            c->left = h.length;
        } else {
            c->mode = BODY_EOF;
            c->close_after = true;
        }
        c->in_exchange = true;
        return MF_RES_OK;
    }
}

/* fill() inside a body: the peer closing now cuts the message short. */
static mf_res fill_body(struct mf_http_conn *c)
{
    mf_res r = fill(c);
    if (r.err == MF_ERR_IO_EOF) {
        MF_BAIL_MSG(MF_ERR_PROTO_TRUNCATED, "connection closed inside the body");
    }
    return r;
}

/* Moves up to cap bytes of data (at most `left`) from c->in to dst. */
static size_t take(struct mf_http_conn *c, uint8_t *dst, size_t cap)
{
    size_t n = c->in.len;
    if (n > cap) {
        n = cap;
    }
    if (c->mode != BODY_EOF && (uint64_t)n > c->left) {
        n = (size_t)c->left;
    }
    memcpy(dst, c->in.data, n);
    mf_buf_consume(&c->in, n);
    if (c->mode != BODY_EOF) {
        c->left -= n;
    }
    return n;
}

/* Parses a chunk-size line: 1*HEXDIG [ BWS ";" extensions ]. */
static mf_res parse_chunk_size(const uint8_t *p, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n) {
        uint8_t ch = p[i];
        unsigned d;
        if (ch >= '0' && ch <= '9') {
            d = (unsigned)(ch - '0');
        } else if (ch >= 'a' && ch <= 'f') {
            d = (unsigned)(ch - 'a' + 10);
        } else if (ch >= 'A' && ch <= 'F') {
            d = (unsigned)(ch - 'A' + 10);
        } else {
            break;
        }
        MF_ENSURE_MSG(i < 15, MF_ERR_PROTO_HTTP, "chunk size too large");
        v = (v << 4) | d;
        i++;
    }
    MF_ENSURE_MSG(i > 0, MF_ERR_PROTO_HTTP, "malformed chunk size");
    size_t j = i;
    while (j < n && (p[j] == ' ' || p[j] == '\t')) {
        j++;
    }
    MF_ENSURE_MSG(j == n || p[j] == ';', MF_ERR_PROTO_HTTP, "malformed chunk size line");
    for (; j < n; j++) {
        MF_ENSURE_MSG(p[j] >= 0x20 || p[j] == '\t', MF_ERR_PROTO_HTTP,
                      "control character in chunk extension");
    }
    *out = v;
    return MF_RES_OK;
}

/* Finds a CRLF-terminated line at the start of c->in, reading more as
 * needed; *len excludes the CRLF. */
static mf_res in_line(struct mf_http_conn *c, size_t max, size_t *len)
{
    for (;;) {
        const uint8_t *lf = c->in.len > 0 ? memchr(c->in.data, '\n', c->in.len) : NULL;
        if (lf != NULL) {
            size_t n = (size_t)(lf - c->in.data);
            MF_ENSURE_MSG(n > 0 && c->in.data[n - 1] == '\r', MF_ERR_PROTO_HTTP,
                          "line ends in a bare LF");
            MF_ENSURE_MSG(n - 1 <= max, MF_ERR_PROTO_HTTP, "line over %zu bytes", max);
            *len = n - 1;
            return MF_RES_OK;
        }
        MF_ENSURE_MSG(c->in.len <= max + 1, MF_ERR_PROTO_HTTP, "line over %zu bytes", max);
        MF_TRY(fill_body(c));
    }
}

/* Up to cap bytes of the body already read, reading more when none is. */
static mf_res take_body(struct mf_http_conn *c, uint8_t *dst, size_t cap, size_t *got)
{
    if (c->in.len == 0) {
        MF_TRY(fill_body(c));
    }
    *got = take(c, dst, cap);
    return MF_RES_OK;
}

/* Decodes the next body bytes into dst (1..cap of them, *got set), or
 * returns MF_ERR_IO_EOF once the body is complete. */
static mf_res body_read(struct mf_http_conn *c, uint8_t *dst, size_t cap, size_t *got)
{
    *got = 0;
    for (;;) {
        if (!c->in_exchange) {
            return (mf_res){MF_ERR_IO_EOF}; /* end of body, not an error */
        }
        switch (c->mode) {
        case BODY_NONE:
            c->in_exchange = false;
            break;
        case BODY_LENGTH:
            if (c->left == 0) {
                c->in_exchange = false;
                break;
            }
            return take_body(c, dst, cap, got);
        case BODY_EOF:
            if (c->in.len == 0) {
                mf_res r = fill(c);
                if (r.err == MF_ERR_IO_EOF) {
                    /* over TLS only close_notify ends such a body: a bare
                     * TCP close could be an attacker cutting it short */
                    MF_ENSURE_MSG(!c->io.failed, MF_ERR_PROTO_TRUNCATED,
                                  "TLS body cut off without close_notify");
                    c->in_exchange = false;
                    break;
                }
                MF_TRY(r);
            }
            *got = take(c, dst, cap);
            return MF_RES_OK;
        case BODY_CHUNKED:
            switch (c->cstate) {
            case CH_SIZE: {
                size_t len = 0;
                MF_TRY(in_line(c, CHUNK_LINE_MAX, &len));
                uint64_t size = 0;
                MF_TRY(parse_chunk_size(c->in.data, len, &size));
                mf_buf_consume(&c->in, len + 2);
                c->left = size;
                c->cstate = size > 0 ? CH_DATA : CH_TRAILER;
                break;
            }
            case CH_DATA:
                if (c->left == 0) {
                    c->cstate = CH_DATA_CRLF;
                    break;
                }
                return take_body(c, dst, cap, got);
            case CH_DATA_CRLF:
                while (c->in.len < 2) {
                    MF_TRY(fill_body(c));
                }
                MF_ENSURE_MSG(memcmp(c->in.data, "\r\n", 2) == 0, MF_ERR_PROTO_HTTP,
                              "chunk data longer than its size");
                mf_buf_consume(&c->in, 2);
                c->cstate = CH_SIZE;
                break;
            case CH_TRAILER: {
                size_t len = 0;
                MF_TRY(in_line(c, HEADER_MAX, &len));
                MF_ENSURE_MSG(mf_add_size(c->trailer_len, len + 2, &c->trailer_len) &&
                                  c->trailer_len <= HEADER_MAX,
                              MF_ERR_PROTO_TOO_LARGE, "trailers over %u bytes", HEADER_MAX);
                mf_buf_consume(&c->in, len + 2);
                if (len == 0) {
                    c->in_exchange = false;
                }
                break;
            }
            default:
                MF_BAIL(MF_ERR_STATE);
            }
            break;
        default:
            MF_BAIL(MF_ERR_STATE);
        }
        if (!c->in_exchange) {
            /* the response is complete: anything more from the server is
             * not ours to interpret, and the connection cannot be reused */
            if (c->close_after || c->in.len > 0 || c->mode == BODY_EOF) {
                c->broken = true;
            }
        }
    }
}

/* ---- requests -------------------------------------------------------- */

static mf_res check_token(const char *s, const char *what)
{
    MF_ENSURE_MSG(s[0] != '\0', MF_ERR_USAGE_ARG, "empty %s", what);
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        MF_ENSURE_MSG(ch > 0x20 && ch < 0x7f, MF_ERR_USAGE_ARG,
                      "%s has a space or control character", what);
    }
    return MF_RES_OK;
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Builds the request head into out. */
static mf_res build_head(const struct mf_http_conn *c, const char *method, const char *path,
                         const char *const *headers, const void *body, size_t body_len,
                         struct mf_buf *out)
{
    MF_TRY(check_token(method, "method"));
    MF_TRY(check_token(path, "path"));
    MF_ENSURE_MSG(path[0] == '/', MF_ERR_USAGE_ARG, "path must start with /");
    MF_ENSURE_MSG(body != NULL || body_len == 0, MF_ERR_USAGE_ARG, "body length without body");
    MF_TRY(mf_buf_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, c->host));
    bool own_type = false;
    if (headers != NULL) {
        for (size_t i = 0; headers[i] != NULL; i++) {
            const char *h = headers[i];
            const char *colon = strchr(h, ':');
            MF_ENSURE_MSG(colon != NULL && colon != h, MF_ERR_USAGE_ARG,
                          "header %zu is not \"Name: value\"", i);
            for (const char *p = h; *p != '\0'; p++) {
                unsigned char ch = (unsigned char)*p;
                MF_ENSURE_MSG(ch >= 0x20 && ch != 0x7f, MF_ERR_USAGE_ARG,
                              "header %zu has a control character", i);
            }
            MF_ENSURE_MSG(!has_prefix_ci(h, "Content-Length:") &&
                              !has_prefix_ci(h, "Transfer-Encoding:") && !has_prefix_ci(h, "Host:"),
                          MF_ERR_USAGE_ARG, "header %zu is set by mf_http itself", i);
            own_type = own_type || has_prefix_ci(h, "Content-Type:");
            MF_TRY(mf_buf_printf(out, "%s\r\n", h));
        }
    }
    bool no_body_method =
        strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 || strcmp(method, "DELETE") == 0;
    if (body != NULL || !no_body_method) {
        MF_TRY(mf_buf_printf(out, "Content-Length: %zu\r\n", body_len));
    }
    if (body != NULL && !own_type) {
        MF_TRY(mf_buf_append_str(out, "Content-Type: application/json\r\n"));
    }
    MF_TRY(mf_buf_append_str(out, "\r\n"));
    return MF_RES_OK;
}

/* Sends a request and reads the response head. When the server closes
 * while we still write (it refused the body early, e.g. 413), its answer is
 * still read and returned. */
static mf_res start_exchange(struct mf_http_conn *c, const char *method, const char *path,
                             const char *const *headers, const void *body, size_t body_len,
                             size_t max_body, struct mf_http_resp *resp)
{
    mf_res rc;
    struct mf_buf head;
    mf_buf_init(&head, REQ_HEAD_MAX, 0);
    MF_ENSURE_OUT_MSG(!c->broken, MF_ERR_STATE, "connection is closed; reconnect");
    MF_ENSURE_OUT_MSG(!c->in_exchange, MF_ERR_STATE, "a response is still being read");
    MF_TRY_OUT(build_head(c, method, path, headers, body, body_len, &head));

    c->unanswered = false;
    c->broken = true; /* until the exchange completes cleanly */
    mf_buf_reset(&c->in);
    resp->status = 0;
    mf_buf_reset(&resp->body);
    rc = raw_write_all(c, head.data, head.len);
    if (mf_ok(rc) && body_len > 0) {
        rc = raw_write_all(c, body, body_len);
    }
    if (!mf_ok(rc) && rc.err != MF_ERR_IO_EOF) {
        goto out;
    }
    mf_res wr = rc;
    rc = read_head(c, method, max_body, resp);
    if (!mf_ok(rc)) {
        /* a write error, or the end of the stream before a single byte of
         * an answer: the server closed the connection (idle) without
         * processing the request. A timeout is not this: the request may
         * have been processed. */
        c->unanswered = c->in.len == 0 && (!mf_ok(wr) || rc.err == MF_ERR_IO_EOF);
        if (!mf_ok(wr)) {
            /* over TCP the server's reset can destroy its answer */
            MF_BAIL_OUT(MF_ERR_IO_EOF, "server closed the connection before reading the whole "
                                       "request (body over its limit?)");
        }
        goto out;
    }
    c->broken = false;
    if (!mf_ok(wr)) {
        c->close_after = true;
    }
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&head);
    return rc;
}

/* Reads the rest of the body into resp->body (under its cap). */
static mf_res read_body_in(struct mf_http_conn *c, struct mf_http_resp *resp)
{
    uint8_t *tmp = c->scratch;
    for (;;) {
        size_t got = 0;
        mf_res r = body_read(c, tmp, sizeof(c->scratch), &got);
        if (r.err == MF_ERR_IO_EOF) {
            return MF_RES_OK;
        }
        MF_TRY(r);
        r = mf_buf_append(&resp->body, tmp, got);
        MF_ENSURE_MSG(mf_ok(r), MF_ERR_PROTO_TOO_LARGE, "response body over %zu bytes",
                      resp->body.max);
    }
}

/* read_body_in; on failure the connection is done with (the rest of the
 * answer is unknown) and the partial body is dropped. */
static mf_res read_body(struct mf_http_conn *c, struct mf_http_resp *resp)
{
    mf_res r = read_body_in(c, resp);
    if (!mf_ok(r)) {
        c->broken = true;
        c->in_exchange = false;
        mf_buf_reset(&resp->body);
        return r;
    }
    return r;
}

/* see mf_http.h */
mf_res mf_http_request(struct mf_http_conn *c, const char *method, const char *path,
                       const char *const *headers, const void *body, size_t body_len,
                       int timeout_ms, struct mf_http_resp *resp)
{
    MF_ENSURE_REF(c);
    MF_ENSURE_REF(method);
    MF_ENSURE_REF(path);
    MF_ENSURE_REF(resp);
    MF_ENSURE_MSG(!c->streaming, MF_ERR_STATE, "a stream is open on this connection");
    MF_TRY(set_deadline(c, timeout_ms));
    MF_TRY(start_exchange(c, method, path, headers, body, body_len, resp->body.max, resp));
    MF_TRY(read_body(c, resp));
    c->reused = true;
    return MF_RES_OK;
}

/* see mf_http.h */
mf_res mf_http_stream_begin(struct mf_http_conn *c, const char *method, const char *path,
                            const char *const *headers, int timeout_ms, struct mf_http_resp *resp)
{
    MF_ENSURE_REF(c);
    MF_ENSURE_REF(method);
    MF_ENSURE_REF(path);
    MF_ENSURE_REF(resp);
    MF_ENSURE_MSG(!c->streaming, MF_ERR_STATE, "a stream is already open");
    MF_TRY(set_deadline(c, timeout_ms));
    MF_TRY(start_exchange(c, method, path, headers, NULL, 0, SIZE_MAX, resp));
    mf_buf_reset(&c->pend);
    if (resp->status < 200 || resp->status > 299) {
        /* an error answer, not a stream: hand over its (capped) body */
        return read_body(c, resp);
    }
    c->streaming = true;
    return MF_RES_OK;
}

/* see mf_http.h */
mf_res mf_http_stream_line(struct mf_http_conn *c, size_t max_line, int timeout_ms,
                           struct mf_buf *line)
{
    MF_ENSURE_REF(c);
    MF_ENSURE_REF(line);
    mf_buf_reset(line);
    if (!c->streaming) {
        return (mf_res){MF_ERR_IO_EOF}; /* the stream has ended (or never began) */
    }
    MF_TRY(set_deadline(c, timeout_ms));
    uint8_t *tmp = c->scratch;
    for (;;) {
        const uint8_t *nl = c->pend.len > 0 ? memchr(c->pend.data, '\n', c->pend.len) : NULL;
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->pend.data);
            size_t keep = n > 0 && c->pend.data[n - 1] == '\r' ? n - 1 : n;
            if (keep > max_line) {
                break;
            }
            mf_res r = mf_buf_append(line, c->pend.data, keep);
            if (!mf_ok(r)) {
                c->broken = true;
                c->streaming = false;
                return r;
            }
            mf_buf_consume(&c->pend, n + 1);
            return MF_RES_OK;
        }
        if (c->pend.len > max_line) {
            break;
        }
        size_t got = 0;
        mf_res r = body_read(c, tmp, sizeof(c->scratch), &got);
        if (r.err == MF_ERR_IO_EOF) {
            c->streaming = false;
            if (c->pend.len > 0) {
                c->broken = true;
                mf_buf_reset(&c->pend);
                MF_BAIL_MSG(MF_ERR_PROTO_TRUNCATED, "stream ended inside a line");
            }
            return r;
        }
        if (r.err == MF_ERR_IO_TIMEOUT) {
            return r; /* nothing lost: call again to resume */
        }
        if (!mf_ok(r)) {
            c->broken = true;
            c->streaming = false;
            c->in_exchange = false;
            return r;
        }
        r = mf_buf_append(&c->pend, tmp, got);
        if (!mf_ok(r)) {
            c->broken = true;
            c->streaming = false;
            return r;
        }
    }
    c->broken = true;
    c->streaming = false;
    c->in_exchange = false;
    mf_buf_reset(&c->pend);
    MF_BAIL_MSG(MF_ERR_PROTO_TOO_LARGE, "stream line over %zu bytes", max_line);
}

/* ---- endpoint addresses (SPIFFE.md E7-E9) ------------------------------ */

static bool is_unreserved_or_sub(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
        return true;
    }
    return ch != '\0' && strchr("-._~!$&'()*+,;=:@/", ch) != NULL;
}

/* Copies the URI path p (absolute) to out, decoding %XX; refuses any
 * character RFC 3986 does not allow in a path, and %00. */
static mf_res copy_path(const char *p, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; p[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '%') {
            int hi = mf_hex_value((char)p[i + 1]);
            int lo = hi >= 0 ? mf_hex_value((char)p[i + 2]) : -1;
            MF_ENSURE_MSG(hi >= 0 && lo >= 0, MF_ERR_USAGE_ARG,
                          "bad percent-encoding at offset %zu", i);
            ch = (unsigned char)(hi * 16 + lo);
            MF_ENSURE_MSG(ch != 0, MF_ERR_USAGE_ARG, "%%00 in socket path");
            i += 2;
        } else {
            MF_ENSURE_MSG(is_unreserved_or_sub(ch), MF_ERR_USAGE_ARG,
                          "character 0x%02x at offset %zu is not allowed in a URI path", ch, i);
        }
        MF_ENSURE_MSG(o + 1 < cap, MF_ERR_PROTO_TOO_LARGE, "socket path over %zu bytes", cap - 1);
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return MF_RES_OK;
}

/* Checks a tcp:// address against E9, so that the message for a well-formed
 * one can say what mayfly does instead. */
static mf_res check_tcp(const char *rest)
{
    MF_ENSURE_MSG(rest[0] == '/' && rest[1] == '/', MF_ERR_USAGE_ARG,
                  "tcp address needs //host:port (SPIFFE Workload Endpoint section 4)");
    const char *auth = rest + 2;
    size_t alen = strcspn(auth, "/?#");
    MF_ENSURE_MSG(auth[alen] == '\0', MF_ERR_USAGE_ARG,
                  "tcp address must not have a path, query or fragment");
    MF_ENSURE_MSG(memchr(auth, '@', alen) == NULL, MF_ERR_USAGE_ARG,
                  "tcp address must not have userinfo");
    char host[64];
    const char *port;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        MF_ENSURE_MSG(close != NULL, MF_ERR_USAGE_ARG, "unclosed [ in tcp address");
        size_t hl = (size_t)(close - auth - 1);
        MF_ENSURE_MSG(hl < sizeof(host), MF_ERR_USAGE_ARG, "tcp host is not an IP address");
        memcpy(host, auth + 1, hl);
        host[hl] = '\0';
        struct in6_addr a6;
        MF_ENSURE_MSG(inet_pton(AF_INET6, host, &a6) == 1, MF_ERR_USAGE_ARG,
                      "tcp host is not an IP address");
        MF_ENSURE_MSG(close[1] == ':', MF_ERR_USAGE_ARG, "tcp address needs a port");
        port = close + 2;
    } else {
        const char *colon = memchr(auth, ':', alen);
        size_t hl = colon != NULL ? (size_t)(colon - auth) : alen;
        MF_ENSURE_MSG(hl < sizeof(host), MF_ERR_USAGE_ARG, "tcp host is not an IP address");
        memcpy(host, auth, hl);
        host[hl] = '\0';
        struct in_addr a4;
        MF_ENSURE_MSG(inet_pton(AF_INET, host, &a4) == 1, MF_ERR_USAGE_ARG,
                      "tcp host is not an IP address");
        MF_ENSURE_MSG(colon != NULL, MF_ERR_USAGE_ARG, "tcp address needs a port");
        port = colon + 1;
    }
    uint64_t pv = 0;
    size_t pl = strlen(port);
    MF_ENSURE_MSG(parse_dec((const uint8_t *)port, pl, &pv) && pv > 0 && pv <= 65535,
                  MF_ERR_USAGE_ARG, "tcp address needs a port in 1..65535");
    return MF_RES_OK;
}

/* see mf_http.h */
mf_res mf_endpoint_parse(const char *addr, bool allow_bare_path, char *path_out, size_t cap)
{
    MF_ENSURE_REF(addr);
    MF_ENSURE_REF(path_out);
    MF_ENSURE(cap > 0, MF_ERR_USAGE_ARG);
    path_out[0] = '\0';
    MF_ENSURE_MSG(addr[0] != '\0', MF_ERR_USAGE_ARG, "empty endpoint address");

    if (addr[0] == '/') {
        MF_ENSURE_MSG(allow_bare_path, MF_ERR_USAGE_ARG,
                      "endpoint address needs a scheme: write unix://%s", addr);
        size_t n = strlen(addr);
        MF_ENSURE_MSG(n < cap, MF_ERR_PROTO_TOO_LARGE, "socket path over %zu bytes", cap - 1);
        memcpy(path_out, addr, n + 1);
        return MF_RES_OK;
    }

    const char *colon = strchr(addr, ':');
    MF_ENSURE_MSG(colon != NULL, MF_ERR_USAGE_ARG,
                  "endpoint address must be unix:///path (SPIFFE Workload Endpoint section 4)");
    size_t sl = (size_t)(colon - addr);
    const char *rest = colon + 1;
    /* RFC 3986 section 3.1: schemes compare case-insensitively */
    if (sl == 3 && strncasecmp(addr, "tcp", 3) == 0) {
        MF_TRY(check_tcp(rest));
        MF_BAIL_MSG(MF_ERR_USAGE_ARG,
                    "%s: mayfly serves the Workload API on a Unix socket only; "
                    "use unix:///path",
                    addr);
    }
    MF_ENSURE_MSG(sl == 4 && strncasecmp(addr, "unix", 4) == 0, MF_ERR_USAGE_ARG,
                  "endpoint scheme must be unix (got \"%.*s\")", (int)(sl > 16 ? 16 : sl), addr);
    MF_ENSURE_MSG(strpbrk(rest, "?#") == NULL, MF_ERR_USAGE_ARG,
                  "unix endpoint must not have a query or fragment");
    MF_ENSURE_MSG(rest[0] == '/', MF_ERR_USAGE_ARG,
                  "unix endpoint needs an absolute path (unix:///path), not an opaque one");
    const char *path = rest;
    if (rest[1] == '/') {
        /* "//" starts an authority, which must be empty */
        const char *auth = rest + 2;
        size_t alen = strcspn(auth, "/");
        MF_ENSURE_MSG(alen == 0, MF_ERR_USAGE_ARG,
                      "unix endpoint must not name a host (\"%.*s\"); write unix:///path",
                      (int)(alen > 64 ? 64 : alen), auth);
        path = auth;
    }
    MF_ENSURE_MSG(path[0] == '/', MF_ERR_USAGE_ARG, "unix endpoint has no path");
    mf_res r = copy_path(path, path_out, cap);
    if (!mf_ok(r)) {
        path_out[0] = '\0'; /* no half-decoded path on failure */
    }
    return r;
}
