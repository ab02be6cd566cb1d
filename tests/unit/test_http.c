/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_http (client) and mf_httpd (server helpers).
 *
 * A libmicrohttpd server runs in-process on a Unix socket in a mkdtemp
 * directory, built with the mf_httpd helpers, and mf_http drives it:
 * keep-alive reuse, JSON bodies, chunked line streams, body caps on both
 * sides (cap and cap+1), SO_PEERCRED, error JSON. A tiny scripted raw
 * server thread sends what MHD never would: broken status lines, oversized
 * headers, truncated or malformed bodies, silence (timeouts). Then HTTPS:
 * MHD over GnuTLS with certificates issued by mf_x509, against which
 * mf_http_connect_tls must accept the right server ID only, refuse other
 * trust domains, and present a client SVID that the server reads back with
 * mf_httpd_peer_chain. No network beyond 127.0.0.1.
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <wolfssl/options.h>
#include <cmocka.h>
#include <jansson.h>
#include <microhttpd.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_httpd.h"
#include "api/net/mf_http.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "tests/unit/mf_test.h"

#define T_MS     5000  /* generous deadline for calls expected to succeed */
#define BIG_CAP  1024u /* server-side body cap of /big */
#define PATH_CAP 256

/* ---- the in-process MHD server ------------------------------------------ */

static char g_dir[64];
static char g_sock[PATH_CAP];
static struct MHD_Daemon *g_mhd;
static atomic_int g_conns;     /* connections the plain server accepted */
static atomic_int g_take_left; /* /take: bytes its buffer still held after the reply */

static void join_path(char *out, const char *name)
{
    int n = snprintf(out, PATH_CAP, "%s/%s", g_dir, name);
    assert_true(n > 0 && n < PATH_CAP);
}

static void count_conn(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                       enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    (void)socket_ctx;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add((atomic_int *)cls, 1);
    }
}

/* Content reader for chunked replies: `total` bytes in pieces of at most
 * `piece`, taken from `text` (repeated) or 'x'. */
struct gen {
    const char *text;
    size_t text_len;
    size_t total;
    size_t piece;
};

static ssize_t gen_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct gen *g = cls;
    if (pos >= g->total) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = g->total - (size_t)pos;
    if (n > g->piece) {
        n = g->piece;
    }
    if (n > max) {
        n = max;
    }
    for (size_t i = 0; i < n; i++) {
        size_t at = (size_t)pos + i;
        buf[i] = g->text != NULL ? g->text[at % g->text_len] : 'x';
    }
    return (ssize_t)n;
}

static enum MHD_Result reply_chunked(struct MHD_Connection *conn, struct gen *g)
{
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, gen_read, g, free);
    if (r == NULL) {
        free(g);
        return MHD_NO;
    }
    enum MHD_Result res = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return res;
}

static size_t query_size(struct MHD_Connection *conn, const char *name, size_t dflt)
{
    const char *v = mf_httpd_query(conn, name);
    if (v == NULL) {
        return dflt;
    }
    return (size_t)strtoul(v, NULL, 10);
}

/* Ten JSON lines; the pieces are 7 bytes so that lines straddle chunks. */
static const char k_lines[] = "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n"
                              "{\"n\":5}\n{\"n\":6}\n{\"n\":7}\n{\"n\":8}\n{\"n\":9}\n";

static enum MHD_Result plain_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct mf_httpd_req *req;
    enum MHD_Result res;
    size_t max = strcmp(url, "/big") == 0 ? BIG_CAP : MF_MAX_BODY;
    if (!mf_httpd_body(conn, con_cls, upload_data, upload_size, max, &req, &res)) {
        return res;
    }
    if (strcmp(url, "/echo") == 0 || strcmp(url, "/big") == 0) {
        const char *h = mf_httpd_header(conn, "workload.spiffe.io");
        json_t *o =
            json_pack("{s:s, s:I, s:o, s:o}", "method", method, "len", (json_int_t)req->body.len,
                      "hdr", h != NULL ? json_string(h) : json_null(), "body",
                      req->body.len > 0 ? json_stringn((const char *)req->body.data, req->body.len)
                                        : json_null());
        return mf_httpd_reply_json(conn, MHD_HTTP_OK, o);
    }
    if (strcmp(url, "/lines") == 0) {
        struct gen *g = calloc(1, sizeof(*g));
        if (g == NULL) {
            return MHD_NO;
        }
        g->text = k_lines;
        g->text_len = sizeof(k_lines) - 1;
        g->total = query_size(conn, "lines", 10) * 8;
        g->piece = query_size(conn, "piece", 7);
        return reply_chunked(conn, g);
    }
    if (strcmp(url, "/resp") == 0) {
        size_t n = query_size(conn, "n", 0);
        if (mf_httpd_query(conn, "chunked") != NULL) {
            struct gen *g = calloc(1, sizeof(*g));
            if (g == NULL) {
                return MHD_NO;
            }
            g->total = n;
            g->piece = 1000;
            return reply_chunked(conn, g);
        }
        char *buf = malloc(n + 1);
        if (buf == NULL) {
            return MHD_NO;
        }
        memset(buf, 'x', n);
        res = mf_httpd_reply_buf(conn, MHD_HTTP_OK, "text/plain", buf, n);
        free(buf);
        return res;
    }
    if (strcmp(url, "/take") == 0) {
        /* n bytes of "0123456789..." handed to MHD without a copy (or, with
         * ?secret, copied and wiped) */
        struct mf_buf b;
        mf_buf_init(&b, 1024u * 1024u, mf_httpd_query(conn, "secret") != NULL ? MF_BUF_SECRET : 0);
        size_t n = query_size(conn, "n", 0);
        for (size_t i = 0; i < n; i++) {
            if (!mf_ok(mf_buf_append_u8(&b, (uint8_t)('0' + i % 10)))) {
                mf_buf_cleanup(&b);
                return MHD_NO;
            }
        }
        res = mf_httpd_reply_take(conn, MHD_HTTP_OK, "text/plain", &b);
        atomic_store(&g_take_left, b.data != NULL ? (int)b.len : 0);
        mf_buf_cleanup(&b);
        return res;
    }
    if (strcmp(url, "/peer") == 0) {
        struct ucred uc;
        mf_res r = mf_httpd_peer_cred(conn, &uc);
        if (!mf_ok(r)) {
            return mf_httpd_reply_res(conn, r);
        }
        struct mf_certs chain;
        mf_res rc = mf_httpd_peer_chain(conn, &chain);
        if (mf_ok(rc)) {
            mf_certs_cleanup(&chain);
        }
        json_t *o =
            json_pack("{s:I, s:I, s:I, s:s}", "uid", (json_int_t)uc.uid, "gid", (json_int_t)uc.gid,
                      "pid", (json_int_t)uc.pid, "chain", mf_err_name(rc.err));
        return mf_httpd_reply_json(conn, MHD_HTTP_OK, o);
    }
    if (strcmp(url, "/notfound") == 0) {
        mf_res r = MF_RAISE_MSG(MF_ERR_POLICY_NOT_FOUND, "entry \"e1\" does not exist\n\x01");
        return mf_httpd_reply_res(conn, r);
    }
    if (strcmp(url, "/internal") == 0) {
        mf_res r = MF_RAISE_MSG(MF_ERR_NOMEM, "secret detail");
        return mf_httpd_reply_res(conn, r);
    }
    if (strcmp(url, "/retry") == 0) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(2, (void *)(uintptr_t) "{}", MHD_RESPMEM_PERSISTENT);
        if (r == NULL) {
            return MHD_NO;
        }
        if (MHD_add_response_header(r, "Retry-After", "7") != MHD_YES ||
            MHD_add_response_header(r, "Content-Type", "application/json") != MHD_YES) {
            MHD_destroy_response(r);
            return MHD_NO;
        }
        res = MHD_queue_response(conn, MHD_HTTP_TOO_MANY_REQUESTS, r);
        MHD_destroy_response(r);
        return res;
    }
    if (strcmp(url, "/close") == 0) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(2, (void *)(uintptr_t) "{}", MHD_RESPMEM_PERSISTENT);
        if (r == NULL) {
            return MHD_NO;
        }
        if (MHD_add_response_header(r, "Connection", "close") != MHD_YES) {
            MHD_destroy_response(r);
            return MHD_NO;
        }
        res = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return res;
    }
    return mf_httpd_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no route %s", url);
}

static int plain_setup(void **state)
{
    (void)state;
    if (mft_tmpdir(g_dir, sizeof(g_dir), "http") != 0) {
        return -1;
    }
    join_path(g_sock, "api.sock");
    g_mhd = mft_mhd_unix(g_sock, MHD_USE_AUTO_INTERNAL_THREAD, plain_handler, NULL, count_conn,
                         &g_conns, 10);
    return g_mhd != NULL ? 0 : -1;
}

static int plain_teardown(void **state)
{
    (void)state;
    MHD_stop_daemon(g_mhd); /* closes the listening socket too */
    g_mhd = NULL;
    mft_rmdir(g_dir);
    return 0;
}

static json_t *body_json(const struct mf_http_resp *r)
{
    json_error_t e;
    json_t *o = json_loadb((const char *)r->body.data, r->body.len, 0, &e);
    if (o == NULL) {
        fail_msg("response is not JSON: %s (%.*s)", e.text, (int)r->body.len,
                 (const char *)r->body.data);
    }
    return o;
}

/* ---- plain server: requests ---------------------------------------------- */

static void test_mf_http_request_keepalive_reuses_connection(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    int before = atomic_load(&g_conns);
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(mf_http_request(c, "GET", "/echo", NULL, NULL, 0, T_MS, &r));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.content_type, "application/json");
        assert_true(mf_http_reusable(c));
    }
    /* the connect above may be counted once the server accepted it */
    int after = atomic_load(&g_conns);
    assert_true(after - before <= 1);
    assert_null(mf_http_peer_id(c));
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void test_mf_http_request_post_json_echoed(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    const char *hdrs[] = {"workload.spiffe.io: true", NULL};
    const char body[] = "{\"a\":1}";
    ASSERT_OK(mf_http_request(c, "POST", "/echo", hdrs, body, strlen(body), T_MS, &r));
    assert_int_equal(r.status, 200);
    json_t *o = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "method")), "POST");
    assert_int_equal(json_integer_value(json_object_get(o, "len")), strlen(body));
    assert_string_equal(json_string_value(json_object_get(o, "hdr")), "true");
    assert_string_equal(json_string_value(json_object_get(o, "body")), body);
    json_decref(o);

    /* the same response struct again: the body is replaced, not appended */
    ASSERT_OK(mf_http_request(c, "POST", "/echo", NULL, "x", 1, T_MS, &r));
    o = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(o, "len")), 1);
    assert_true(json_is_null(json_object_get(o, "hdr")));
    json_decref(o);

    /* a POST without a body still says Content-Length: 0 */
    ASSERT_OK(mf_http_request(c, "POST", "/echo", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 200);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void test_mf_http_request_bad_arguments_refused(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    const char *inject[] = {"X-A: 1\r\nX-B: 2", NULL};
    ASSERT_ERR(mf_http_request(c, "GET", "/echo", inject, NULL, 0, T_MS, &r), MF_ERR_USAGE_ARG);
    const char *own[] = {"Content-Length: 5", NULL};
    ASSERT_ERR(mf_http_request(c, "GET", "/echo", own, NULL, 0, T_MS, &r), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_http_request(c, "GET", "/a b", NULL, NULL, 0, T_MS, &r), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_http_request(c, "GET", "echo", NULL, NULL, 0, T_MS, &r), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_http_request(c, "GET", "/echo", NULL, NULL, 0, -1, &r), MF_ERR_USAGE_ARG);
    /* nothing was sent, so the connection is still good */
    ASSERT_OK(mf_http_request(c, "GET", "/echo", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 200);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
    mf_http_close(NULL);
}

static void test_mf_httpd_body_at_cap_ok(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    char *body = malloc(BIG_CAP);
    assert_non_null(body);
    memset(body, 'a', BIG_CAP);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    ASSERT_OK(mf_http_request(c, "POST", "/big", NULL, body, BIG_CAP, T_MS, &r));
    assert_int_equal(r.status, 200);
    json_t *o = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(o, "len")), BIG_CAP);
    json_decref(o);
    assert_true(mf_http_reusable(c));
    free(body);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void expect_too_large(const struct mf_http_resp *r)
{
    assert_int_equal(r->status, 413);
    json_t *o = body_json(r);
    assert_string_equal(json_string_value(json_object_get(o, "error")), "too_large");
    assert_non_null(json_string_value(json_object_get(o, "message")));
    assert_int_equal(json_object_size(o), 2);
    json_decref(o);
}

static void test_mf_httpd_body_cap_plus_one_413(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    char *body = malloc(BIG_CAP + 1);
    assert_non_null(body);
    memset(body, 'a', BIG_CAP + 1);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    ASSERT_OK(mf_http_request(c, "POST", "/big", NULL, body, BIG_CAP + 1, T_MS, &r));
    expect_too_large(&r);
    free(body);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

/* A body far larger than the socket buffers: the server answers 413 from
 * the headers alone and closes; the client, cut off while writing, still
 * reads that answer. */
static void test_mf_httpd_body_huge_refused_early_413(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    size_t n = 4u * 1024u * 1024u;
    char *body = malloc(n);
    assert_non_null(body);
    memset(body, 'a', n);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    ASSERT_OK(mf_http_request(c, "POST", "/big", NULL, body, n, T_MS, &r));
    expect_too_large(&r);
    assert_false(mf_http_reusable(c));
    ASSERT_ERR(mf_http_request(c, "GET", "/echo", NULL, NULL, 0, T_MS, &r), MF_ERR_STATE);
    free(body);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

/* Reads from a blocking socket until EOF or cap; returns the bytes. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t off = 0;
    while (off + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&p, 1, T_MS) <= 0) {
            break;
        }
        ssize_t n = read(fd, buf + off, cap - 1 - off);
        if (n <= 0) {
            break;
        }
        off += (size_t)n;
        if (memmem(buf, off, "}", 1) != NULL) {
            break; /* the JSON error body is complete */
        }
    }
    buf[off] = '\0';
    return off;
}

static int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    return fd;
}

static void write_str(int fd, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Without Content-Length the server cannot refuse up front: it reads and
 * drops the body past the cap, then answers 413. */
static void test_mf_httpd_body_chunked_over_cap_413(void **state)
{
    (void)state;
    int fd = raw_connect(g_sock);
    write_str(fd, "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[600];
    memset(chunk, 'b', sizeof(chunk));
    for (int i = 0; i < 2; i++) { /* 1200 bytes > BIG_CAP */
        write_str(fd, "258\r\n"); /* 0x258 = 600 */
        assert_int_equal(send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL), sizeof(chunk));
        write_str(fd, "\r\n");
    }
    write_str(fd, "0\r\n\r\n");
    char buf[4096];
    read_all(fd, buf, sizeof(buf));
    assert_memory_equal(buf, "HTTP/1.1 413", 12);
    assert_non_null(strstr(buf, "\"error\":\"too_large\""));
    close(fd);
}

static void test_mf_http_request_client_cap_ok(void **state)
{
    (void)state;
    static const char *const paths[] = {"/resp?n=1000", "/resp?n=1000&chunked=1"};
    for (size_t i = 0; i < 2; i++) {
        struct mf_http_conn *c = NULL;
        struct mf_http_resp r;
        mf_http_resp_init(&r, 1000);
        ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
        ASSERT_OK(mf_http_request(c, "GET", paths[i], NULL, NULL, 0, T_MS, &r));
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body.len, 1000);
        assert_true(mf_http_reusable(c));
        mf_http_resp_cleanup(&r);
        mf_http_close(c);
    }
}

static void test_mf_http_request_client_cap_plus_one_refused(void **state)
{
    (void)state;
    static const char *const paths[] = {"/resp?n=1001", "/resp?n=1001&chunked=1"};
    for (size_t i = 0; i < 2; i++) {
        struct mf_http_conn *c = NULL;
        struct mf_http_resp r;
        mf_http_resp_init(&r, 1000);
        ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
        ASSERT_ERR(mf_http_request(c, "GET", paths[i], NULL, NULL, 0, T_MS, &r),
                   MF_ERR_PROTO_TOO_LARGE);
        assert_int_equal(r.body.len, 0);
        assert_false(mf_http_reusable(c));
        mf_http_resp_cleanup(&r);
        mf_http_close(c);
    }
}

static void test_mf_http_stream_lines_chunked_ok(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    struct mf_buf line;
    mf_http_resp_init(&r, MF_MAX_BODY);
    mf_buf_init(&line, 4096, 0);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    for (int round = 0; round < 2; round++) { /* twice on one connection */
        ASSERT_OK(mf_http_stream_begin(c, "GET", "/lines?lines=10&piece=7", NULL, T_MS, &r));
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body.len, 0);
        ASSERT_ERR(mf_http_request(c, "GET", "/echo", NULL, NULL, 0, T_MS, &r), MF_ERR_STATE);
        for (int i = 0; i < 10; i++) {
            char want[32];
            snprintf(want, sizeof(want), "{\"n\":%d}", i);
            ASSERT_OK(mf_http_stream_line(c, 64, T_MS, &line));
            assert_string_equal(mf_buf_cstr(&line), want);
        }
        ASSERT_ERR(mf_http_stream_line(c, 64, T_MS, &line), MF_ERR_IO_EOF);
        ASSERT_ERR(mf_http_stream_line(c, 64, T_MS, &line), MF_ERR_IO_EOF);
        assert_true(mf_http_reusable(c));
    }
    ASSERT_OK(mf_http_request(c, "GET", "/echo", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 200);
    mf_buf_cleanup(&line);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void test_mf_http_stream_line_over_max_refused(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    struct mf_buf line;
    mf_http_resp_init(&r, MF_MAX_BODY);
    mf_buf_init(&line, 4096, 0);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    ASSERT_OK(mf_http_stream_begin(c, "GET", "/lines?lines=3&piece=100", NULL, T_MS, &r));
    /* each line is 7 bytes: a max of 7 passes, 6 fails */
    ASSERT_OK(mf_http_stream_line(c, 7, T_MS, &line));
    assert_int_equal(line.len, 7);
    ASSERT_ERR(mf_http_stream_line(c, 6, T_MS, &line), MF_ERR_PROTO_TOO_LARGE);
    assert_false(mf_http_reusable(c));
    mf_buf_cleanup(&line);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void test_mf_http_stream_begin_error_body_kept(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    struct mf_buf line;
    mf_http_resp_init(&r, MF_MAX_BODY);
    mf_buf_init(&line, 4096, 0);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    ASSERT_OK(mf_http_stream_begin(c, "GET", "/nowhere", NULL, T_MS, &r));
    assert_int_equal(r.status, 404);
    json_t *o = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "error")), "not_found");
    json_decref(o);
    ASSERT_ERR(mf_http_stream_line(c, 64, T_MS, &line), MF_ERR_IO_EOF);
    assert_true(mf_http_reusable(c));
    mf_buf_cleanup(&line);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void test_mf_httpd_peer_cred_reports_uid(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    ASSERT_OK(mf_http_request(c, "GET", "/peer", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 200);
    json_t *o = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(o, "uid")), getuid());
    assert_int_equal(json_integer_value(json_object_get(o, "gid")), getgid());
    assert_int_equal(json_integer_value(json_object_get(o, "pid")), getpid());
    /* a plain connection has no TLS client chain */
    assert_string_equal(json_string_value(json_object_get(o, "chain")), "AUTH_MISSING");
    json_decref(o);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

/* mf_httpd_reply_take: MHD sends the buffer's own block and frees it (the
 * buffer is left empty, so cleaning it up frees nothing twice: ASan would
 * say); a secret buffer is sent as a copy and stays with its owner, who
 * wipes it. */
static void test_mf_httpd_reply_take_sends_the_buffer(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, 1024u * 1024u);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    static const char *const paths[] = {"/take?n=300000", "/take?n=300000&secret=1", "/take?n=0",
                                        "/take?n=7"};
    static const size_t lens[] = {300000, 300000, 0, 7};
    static const int kept[] = {0, 300000, 0, 0}; /* the secret one is copied */
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        atomic_store(&g_take_left, -1);
        ASSERT_OK(mf_http_request(c, "GET", paths[k], NULL, NULL, 0, T_MS, &r));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.content_type, "text/plain");
        assert_int_equal(r.body.len, lens[k]);
        for (size_t i = 0; i < r.body.len; i++) {
            assert_int_equal(r.body.data[i], '0' + i % 10);
        }
        /* taken: nothing left in the handler's buffer */
        assert_int_equal(atomic_load(&g_take_left), kept[k]);
    }
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void test_mf_httpd_reply_res_error_shape(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));

    ASSERT_OK(mf_http_request(c, "GET", "/notfound", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 404);
    assert_string_equal(r.content_type, "application/json");
    json_t *o = body_json(&r);
    assert_int_equal(json_object_size(o), 2);
    assert_string_equal(json_string_value(json_object_get(o, "error")), "not_found");
    const char *msg = json_string_value(json_object_get(o, "message"));
    assert_non_null(strstr(msg, "entry \"e1\" does not exist"));
    for (const char *p = msg; *p != '\0'; p++) { /* control bytes replaced */
        assert_true(*p >= 0x20 && *p < 0x7f);
    }
    json_decref(o);

    /* a server fault says "internal" and keeps its detail for the log */
    ASSERT_OK(mf_http_request(c, "GET", "/internal", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 500);
    o = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "error")), "internal");
    assert_null(strstr(json_string_value(json_object_get(o, "message")), "secret"));
    json_decref(o);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void test_mf_http_request_retry_after_parsed(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    ASSERT_OK(mf_http_request(c, "GET", "/retry", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 429);
    assert_int_equal(r.retry_after, 7);
    assert_string_equal(r.content_type, "application/json");
    ASSERT_OK(mf_http_request(c, "GET", "/echo", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.retry_after, -1); /* reset for each response */
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void test_mf_http_request_connection_close_not_reusable(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    ASSERT_OK(mf_http_request(c, "GET", "/close", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 200);
    assert_false(mf_http_reusable(c));
    ASSERT_ERR(mf_http_request(c, "GET", "/echo", NULL, NULL, 0, T_MS, &r), MF_ERR_STATE);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

static void test_mf_http_connect_unix_missing_refused(void **state)
{
    (void)state;
    struct mf_http_conn *c = (struct mf_http_conn *)(uintptr_t)1;
    char p[PATH_CAP];
    join_path(p, "nothing.sock");
    ASSERT_ERR(mf_http_connect_unix(p, T_MS, &c), MF_ERR_IO_CONNECT);
    assert_null(c);
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    ASSERT_ERR(mf_http_connect_unix(longp, T_MS, &c), MF_ERR_USAGE_ARG);
}

/* ---- the raw scripted server --------------------------------------------- */

struct raw_step {
    const char *data;
    size_t len;   /* 0: strlen(data) */
    int sleep_ms; /* after sending */
};

struct raw_srv {
    int lfd;
    pthread_t th;
    const struct raw_step *steps;
    size_t n;
    bool hold; /* after the steps, wait for the client to close */
    char path[PATH_CAP];
};

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *raw_main(void *arg)
{
    struct raw_srv *s = arg;
    struct pollfd p = {.fd = s->lfd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, T_MS) <= 0) {
        return NULL;
    }
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    /* read the request head */
    char req[8192];
    size_t off = 0;
    while (off < sizeof(req) && memmem(req, off, "\r\n\r\n", 4) == NULL) {
        struct pollfd q = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&q, 1, T_MS) <= 0) {
            break;
        }
        ssize_t n = read(fd, req + off, sizeof(req) - off);
        if (n <= 0) {
            break;
        }
        off += (size_t)n;
    }
    for (size_t i = 0; i < s->n; i++) {
        const struct raw_step *st = &s->steps[i];
        size_t len = st->len > 0 ? st->len : strlen(st->data);
        size_t w = 0;
        while (w < len) {
            ssize_t n = send(fd, st->data + w, len - w, MSG_NOSIGNAL);
            if (n <= 0) {
                break;
            }
            w += (size_t)n;
        }
        if (st->sleep_ms > 0) {
            sleep_ms(st->sleep_ms);
        }
    }
    if (s->hold) {
        for (;;) {
            struct pollfd q = {.fd = fd, .events = POLLIN, .revents = 0};
            if (poll(&q, 1, T_MS) <= 0) {
                break;
            }
            ssize_t n = read(fd, req, sizeof(req));
            if (n <= 0) {
                break;
            }
        }
    }
    close(fd);
    return NULL;
}

static void raw_start(struct raw_srv *s, const struct raw_step *steps, size_t n, bool hold)
{
    memset(s, 0, sizeof(*s));
    join_path(s->path, "raw.sock");
    s->steps = steps;
    s->n = n;
    s->hold = hold;
    ASSERT_OK(mf_httpd_listen_unix(s->path, 0600, 4, &s->lfd));
    assert_int_equal(pthread_create(&s->th, NULL, raw_main, s), 0);
}

static void raw_finish(struct raw_srv *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
    unlink(s->path);
}

/* Runs one GET against a raw server answering with the given bytes and
 * expects the error want (or MF_OK). */
static void raw_expect(const char *answer, size_t len, enum mf_err want)
{
    struct raw_step steps[] = {{answer, len, 0}};
    struct raw_srv s;
    raw_start(&s, steps, 1, false);
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(s.path, T_MS, &c));
    mf_res res = mf_http_request(c, "GET", "/", NULL, NULL, 0, T_MS, &r);
    if (res.err != want) {
        fail_msg("answer \"%.40s...\": got %s (%s), want %s", answer, mf_err_name(res.err),
                 mf_err_detail(), mf_err_name(want));
    }
    if (want != MF_OK) {
        assert_false(mf_http_reusable(c));
    }
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
    raw_finish(&s);
}

static void test_mf_http_request_broken_status_line_refused(void **state)
{
    (void)state;
    raw_expect("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", 0,
               MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nX-A: a\x01z\r\nContent-Length: 0\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    /* an embedded NUL in a header value */
    static const char nul[] = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n";
    raw_expect(nul, sizeof(nul) - 1, MF_ERR_PROTO_HTTP);
    /* and the well-formed minimum passes, with a reason-less status line */
    raw_expect("HTTP/1.1 204\r\n\r\n", 0, MF_OK);
    /* interim responses are skipped */
    raw_expect("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0,
               MF_OK);
}

/* A response head of exactly `size` bytes (status line, one padding header,
 * Content-Length: 0, empty line). */
static char *head_of_size(size_t size)
{
    static const char pre[] = "HTTP/1.1 200 OK\r\nX-Pad: ";
    static const char post[] = "\r\nContent-Length: 0\r\n\r\n";
    size_t fixed = sizeof(pre) - 1 + sizeof(post) - 1;
    assert_true(size > fixed);
    char *h = malloc(size + 1);
    assert_non_null(h);
    memcpy(h, pre, sizeof(pre) - 1);
    memset(h + sizeof(pre) - 1, 'p', size - fixed);
    memcpy(h + size - (sizeof(post) - 1), post, sizeof(post));
    return h;
}

static void test_mf_http_request_headers_at_cap_ok(void **state)
{
    (void)state;
    char *h = head_of_size(16384);
    raw_expect(h, 0, MF_OK);
    free(h);
}

static void test_mf_http_request_headers_cap_plus_one_refused(void **state)
{
    (void)state;
    char *h = head_of_size(16385);
    raw_expect(h, 0, MF_ERR_PROTO_TOO_LARGE);
    free(h);
    h = head_of_size(64 * 1024);
    raw_expect(h, 0, MF_ERR_PROTO_TOO_LARGE);
    free(h);
}

static void test_mf_http_request_truncated_chunked_refused(void **state)
{
    (void)state;
    raw_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 0,
               MF_ERR_PROTO_TRUNCATED);
    raw_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 0,
               MF_ERR_PROTO_TRUNCATED);
    raw_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", 0,
               MF_ERR_PROTO_TRUNCATED);
    raw_expect("HTTP/1.1 200 OK\r\nContent-Len", 0, MF_ERR_PROTO_TRUNCATED);
    raw_expect("", 0, MF_ERR_IO_EOF); /* closed without a word */
}

static void test_mf_http_request_bad_chunks_refused(void **state)
{
    (void)state;
    raw_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 0,
               MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 0,
               MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "1000000000000000\r\n",
               0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    /* extensions and trailers are fine */
    raw_expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5;name=val\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
               0, MF_OK);
}

static void test_mf_http_request_bad_content_length_refused(void **state)
{
    (void)state;
    raw_expect("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", 0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 0,
               MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n",
               0, MF_ERR_PROTO_HTTP);
    raw_expect("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", 0,
               MF_ERR_PROTO_HTTP);
    /* promised more than it sent, then closed */
    raw_expect("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 0, MF_ERR_PROTO_TRUNCATED);
    /* over the client's cap before a byte of body is read */
    raw_expect("HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n", 0, MF_ERR_PROTO_TOO_LARGE);
}

static void test_mf_http_request_extra_bytes_not_reusable(void **state)
{
    (void)state;
    struct raw_step steps[] = {{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE", 0, 0}};
    struct raw_srv s;
    raw_start(&s, steps, 1, true);
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(s.path, T_MS, &c));
    ASSERT_OK(mf_http_request(c, "GET", "/", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 2);
    assert_false(mf_http_reusable(c));
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
    raw_finish(&s);
}

static void test_mf_http_request_body_to_eof_ok(void **state)
{
    (void)state;
    struct raw_step steps[] = {{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ", 0, 50},
                               {"close", 0, 0}};
    struct raw_srv s;
    raw_start(&s, steps, 2, false);
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(s.path, T_MS, &c));
    ASSERT_OK(mf_http_request(c, "GET", "/", NULL, NULL, 0, T_MS, &r));
    assert_string_equal(mf_buf_cstr(&r.body), "until close");
    assert_string_equal(r.content_type, "text/plain");
    assert_false(mf_http_reusable(c));
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
    raw_finish(&s);
}

static void test_mf_http_request_silent_server_times_out(void **state)
{
    (void)state;
    struct raw_srv s;
    raw_start(&s, NULL, 0, true);
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(s.path, T_MS, &c));
    int64_t t0 = mf_mono_ms();
    ASSERT_ERR(mf_http_request(c, "GET", "/", NULL, NULL, 0, 200, &r), MF_ERR_IO_TIMEOUT);
    int64_t took = mf_mono_ms() - t0;
    assert_true(took >= 190 && took < 2000);
    assert_false(mf_http_reusable(c));
    mf_http_resp_cleanup(&r);
    mf_http_close(c); /* lets the raw server finish */
    raw_finish(&s);
}

/* A header that trickles in slower than the deadline also times out. */
static void test_mf_http_request_slow_headers_time_out(void **state)
{
    (void)state;
    struct raw_step steps[] = {{"HTTP/1.1 200 OK\r\n", 0, 400},
                               {"Content-Length: 0\r\n\r\n", 0, 0}};
    struct raw_srv s;
    raw_start(&s, steps, 2, true);
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_connect_unix(s.path, T_MS, &c));
    ASSERT_ERR(mf_http_request(c, "GET", "/", NULL, NULL, 0, 150, &r), MF_ERR_IO_TIMEOUT);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
    raw_finish(&s);
}

static void test_mf_http_stream_line_timeout_resumes(void **state)
{
    (void)state;
    struct raw_step steps[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nline1\n\r\n3\r\nli", 0, 400},
        {"n\r\n4\r\ne2\r\n\r\n0\r\n\r\n", 0, 0}};
    struct raw_srv s;
    raw_start(&s, steps, 2, true);
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    struct mf_buf line;
    mf_http_resp_init(&r, MF_MAX_BODY);
    mf_buf_init(&line, 256, 0);
    ASSERT_OK(mf_http_connect_unix(s.path, T_MS, &c));
    ASSERT_OK(mf_http_stream_begin(c, "GET", "/watch", NULL, T_MS, &r));
    assert_int_equal(r.status, 200);
    ASSERT_OK(mf_http_stream_line(c, 64, T_MS, &line));
    assert_string_equal(mf_buf_cstr(&line), "line1");
    ASSERT_ERR(mf_http_stream_line(c, 64, 100, &line), MF_ERR_IO_TIMEOUT);
    /* the half line read before the timeout is kept; CRLF endings work */
    ASSERT_OK(mf_http_stream_line(c, 64, T_MS, &line));
    assert_string_equal(mf_buf_cstr(&line), "line2");
    ASSERT_ERR(mf_http_stream_line(c, 64, T_MS, &line), MF_ERR_IO_EOF);
    assert_true(mf_http_reusable(c));
    mf_buf_cleanup(&line);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
    raw_finish(&s);
}

static void test_mf_http_stream_line_cut_inside_line_refused(void **state)
{
    (void)state;
    struct raw_step steps[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhalf\r\n0\r\n\r\n", 0, 0}};
    struct raw_srv s;
    raw_start(&s, steps, 1, true);
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    struct mf_buf line;
    mf_http_resp_init(&r, MF_MAX_BODY);
    mf_buf_init(&line, 256, 0);
    ASSERT_OK(mf_http_connect_unix(s.path, T_MS, &c));
    ASSERT_OK(mf_http_stream_begin(c, "GET", "/watch", NULL, T_MS, &r));
    ASSERT_ERR(mf_http_stream_line(c, 64, T_MS, &line), MF_ERR_PROTO_TRUNCATED);
    assert_false(mf_http_reusable(c));
    mf_buf_cleanup(&line);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
    raw_finish(&s);
}

/* ---- mf_endpoint_parse (SPIFFE.md E7-E9) ---------------------------------- */

static void test_mf_endpoint_parse_valid_ok(void **state)
{
    (void)state;
    char p[PATH_CAP];
    ASSERT_OK(mf_endpoint_parse("unix:///run/spire/sockets/agent.sock", false, p, sizeof(p)));
    assert_string_equal(p, "/run/spire/sockets/agent.sock");
    ASSERT_OK(mf_endpoint_parse("unix:/tmp/agent.sock", false, p, sizeof(p)));
    assert_string_equal(p, "/tmp/agent.sock");
    ASSERT_OK(mf_endpoint_parse("UNIX:///tmp/a%20b.sock", false, p, sizeof(p)));
    assert_string_equal(p, "/tmp/a b.sock");
    ASSERT_OK(mf_endpoint_parse("/tmp/agent.sock", true, p, sizeof(p)));
    assert_string_equal(p, "/tmp/agent.sock");
}

static void expect_endpoint_refused(const char *addr, const char *detail_has)
{
    char p[PATH_CAP];
    memset(p, 'z', sizeof(p));
    mf_res r = mf_endpoint_parse(addr, false, p, sizeof(p));
    if (mf_ok(r)) {
        fail_msg("%s accepted as %s", addr, p);
    }
    assert_int_equal(r.err, MF_ERR_USAGE_ARG);
    assert_string_equal(p, "");
    if (strstr(mf_err_detail(), detail_has) == NULL) {
        fail_msg("%s: detail \"%s\" lacks \"%s\"", addr, mf_err_detail(), detail_has);
    }
}

static void test_mf_endpoint_parse_invalid_refused(void **state)
{
    (void)state;
    /* E8 */
    expect_endpoint_refused("unix://host/x", "host");
    expect_endpoint_refused("unix://", "no path");
    expect_endpoint_refused("unix:rel", "opaque");
    expect_endpoint_refused("unix:///tmp/agent.sock?x=1", "query");
    expect_endpoint_refused("unix:///tmp/agent.sock#frag", "fragment");
    expect_endpoint_refused("/tmp/agent.sock", "scheme");
    expect_endpoint_refused("unix://foo", "host"); /* go-spiffe accepts; we do not */
    expect_endpoint_refused("unix:", "absolute path");
    expect_endpoint_refused("unix:///tmp/a%zz", "percent");
    expect_endpoint_refused("unix:///tmp/a%00b", "%00");
    expect_endpoint_refused("unix:///tmp/a b", "not allowed");
    expect_endpoint_refused("http://127.0.0.1/x", "scheme");
    expect_endpoint_refused("agent.sock", "unix:///path");
    expect_endpoint_refused("", "empty");
    /* E9: well-formed tcp addresses are refused with what to do instead */
    expect_endpoint_refused("tcp://127.0.0.1:8000", "Unix socket");
    expect_endpoint_refused("tcp://[::1]:8000", "Unix socket");
    /* and malformed ones say which rule they break */
    expect_endpoint_refused("tcp://localhost:8000", "not an IP");
    expect_endpoint_refused("tcp://127.0.0.1", "port");
    expect_endpoint_refused("tcp://127.0.0.1:8000/foo", "path");
    expect_endpoint_refused("tcp://user@127.0.0.1:8000", "userinfo");
    expect_endpoint_refused("tcp://127.0.0.1:8000?x=1", "query");
    expect_endpoint_refused("tcp://127.0.0.1:8000#f", "fragment");
    expect_endpoint_refused("tcp://[::1]", "port");
    expect_endpoint_refused("tcp://127.0.0.1:99999", "port");
}

static void test_mf_endpoint_parse_cap_refused(void **state)
{
    (void)state;
    char p[8];
    ASSERT_OK(mf_endpoint_parse("unix:///abcdef", false, p, sizeof(p))); /* 7 + NUL */
    assert_string_equal(p, "/abcdef");
    ASSERT_ERR(mf_endpoint_parse("unix:///abcdefg", false, p, sizeof(p)), MF_ERR_PROTO_TOO_LARGE);
    ASSERT_ERR(mf_endpoint_parse("/abcdefg", true, p, sizeof(p)), MF_ERR_PROTO_TOO_LARGE);
}

/* ---- mf_httpd_listen_unix ------------------------------------------------- */

static void test_mf_httpd_listen_unix_regular_file_refused(void **state)
{
    (void)state;
    char p[PATH_CAP];
    join_path(p, "file");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("keep me", f);
    fclose(f);
    int fd = 12345;
    ASSERT_ERR(mf_httpd_listen_unix(p, 0600, 4, &fd), MF_ERR_IO_PERM);
    assert_int_equal(fd, -1);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode)); /* untouched */
    assert_int_equal(st.st_size, 7);

    char l[PATH_CAP];
    join_path(l, "link");
    assert_int_equal(symlink(p, l), 0);
    ASSERT_ERR(mf_httpd_listen_unix(l, 0600, 4, &fd), MF_ERR_IO_SYMLINK);
    ASSERT_ERR(mf_httpd_listen_unix("rel.sock", 0600, 4, &fd), MF_ERR_USAGE_ARG);
}

static void test_mf_httpd_listen_unix_stale_replaced_live_refused(void **state)
{
    (void)state;
    char p[PATH_CAP];
    join_path(p, "stale.sock");
    int fd = -1;
    ASSERT_OK(mf_httpd_listen_unix(p, 0600, 4, &fd));
    close(fd); /* the file stays behind, with nobody listening */
    ASSERT_OK(mf_httpd_listen_unix(p, 0600, 4, &fd));

    /* while that one listens, a second server must not steal the path */
    int fd2 = -1;
    ASSERT_ERR(mf_httpd_listen_unix(p, 0600, 4, &fd2), MF_ERR_IO);
    assert_int_equal(fd2, -1);
    close(fd);
}

static void test_mf_httpd_listen_unix_mode_applied(void **state)
{
    (void)state;
    char p[PATH_CAP];
    join_path(p, "mode.sock");
    static const mode_t modes[] = {0600, 0666, 0660};
    mode_t old = umask(022); /* the final chmod must not depend on it */
    for (size_t i = 0; i < 3; i++) {
        int fd = -1;
        ASSERT_OK(mf_httpd_listen_unix(p, modes[i], 4, &fd));
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, modes[i]);
        close(fd);
    }
    assert_int_equal(umask(old), 022); /* restored */
}

/* ---- HTTPS: MHD over GnuTLS, mf_http over wolfSSL ------------------------- */

#define SERVER_ID "spiffe://example.org/mayfly/server"
#define CLIENT_ID "spiffe://example.org/mayfly/agent/a1"

struct pki {
    struct mf_key *ca_key;
    struct mf_cert *ca;
    struct mf_key *other_key;
    struct mf_cert *other_ca; /* spiffe://other.org */
    struct mf_key *srv_key;
    struct mf_cert *srv;
    struct mf_key *cli_key;
    struct mf_cert *cli;
    struct mf_bundle_set trust;       /* example.org */
    struct mf_bundle_set trust_other; /* other.org only */
    struct mf_bundle_set trust_wrong; /* "example.org" holding other.org's CA */
};

struct tls_srv {
    struct MHD_Daemon *d;
    char addr[64];
    atomic_int reqs;
};

static struct pki g_pki;
static struct tls_srv g_tls;      /* no client certificates requested */
static struct tls_srv g_tls_mtls; /* MEM_TRUST set; TLS 1.3 only */

static mf_res issue(const char *id, bool is_ca, struct mf_key **key, struct mf_cert **cert,
                    const struct mf_cert *issuer, const struct mf_key *issuer_key)
{
    struct mf_spiffe_id sid;
    struct mf_pubkey *pub = NULL;
    MF_TRY(mf_spiffeid_parse_cstr(id, &sid));
    MF_TRY(mf_key_generate(MF_KEY_EC_P256, key));
    if (issuer == NULL) {
        return mf_x509_self_signed(&sid, *key, mf_now(), 3600, cert);
    }
    MF_TRY(mf_key_public(*key, &pub));
    struct mf_issue_req req = {
        .id = &sid, .subject_key = pub, .now = mf_now(), .ttl = 600, .is_ca = is_ca};
    mf_res r = mf_x509_issue(&req, issuer, issuer_key, cert);
    mf_pubkey_free(pub);
    return r;
}

static mf_res trust_set(struct mf_bundle_set *s, const char *td, struct mf_cert *ca)
{
    struct mf_bundle *b = NULL;
    mf_bundle_set_init(s);
    MF_TRY(mf_bundle_new(td, &b));
    mf_res r = mf_bundle_add_x509(b, ca);
    if (mf_ok(r)) {
        r = mf_bundle_set_put(s, b);
    }
    mf_bundle_free(b);
    return r;
}

/* wolfSSL (FP_ECC) keeps a per-thread cache of curve points that it frees
 * only when that thread calls wc_ecc_fp_free(). The handler below does ECC
 * on MHD's thread (parsing and verifying the client chain), so it arms a
 * thread-exit destructor that releases the cache when MHD stops. */
static pthread_key_t g_ecc_key;
static pthread_once_t g_ecc_once = PTHREAD_ONCE_INIT;

static void ecc_thread_exit(void *p)
{
    (void)p;
    wc_ecc_fp_free();
}

static void ecc_key_init(void)
{
    (void)pthread_key_create(&g_ecc_key, ecc_thread_exit);
}

static void arm_ecc_cleanup(void)
{
    (void)pthread_once(&g_ecc_once, ecc_key_init);
    (void)pthread_setspecific(g_ecc_key, &g_ecc_key);
}

static enum MHD_Result tls_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_size, void **con_cls)
{
    (void)method;
    (void)version;
    struct tls_srv *s = cls;
    struct mf_httpd_req *req;
    enum MHD_Result res;
    if (!mf_httpd_body(conn, con_cls, upload_data, upload_size, MF_MAX_BODY, &req, &res)) {
        return res;
    }
    atomic_fetch_add(&s->reqs, 1);
    arm_ecc_cleanup();
    if (strcmp(url, "/lines") == 0) {
        struct gen *g = calloc(1, sizeof(*g));
        if (g == NULL) {
            return MHD_NO;
        }
        g->text = k_lines;
        g->text_len = sizeof(k_lines) - 1;
        g->total = sizeof(k_lines) - 1;
        g->piece = 5;
        return reply_chunked(conn, g);
    }
    const union MHD_ConnectionInfo *pi =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_PROTOCOL);
    bool tls13 = pi != NULL && pi->protocol == GNUTLS_TLS1_3;

    struct mf_certs chain;
    json_t *client = json_null();
    mf_res r = mf_httpd_peer_chain(conn, &chain);
    size_t n = 0;
    if (mf_ok(r)) {
        struct mf_spiffe_id id;
        n = chain.n;
        r = mf_svid_verify(&chain, &g_pki.trust, mf_now(), &id);
        client = mf_ok(r) ? json_string(id.str) : json_string(mf_err_name(r.err));
        mf_certs_cleanup(&chain);
    } else if (r.err != MF_ERR_AUTH_MISSING) {
        /* (no cmocka assert here: this runs on MHD's thread) */
        json_decref(client);
        client = json_string("unexpected peer_chain error");
    }
    json_t *o = json_pack("{s:b, s:o, s:I}", "tls13", tls13, "client", client, "n", (json_int_t)n);
    return mf_httpd_reply_json(conn, MHD_HTTP_OK, o);
}

static int tcp_listener(char *addr, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sin);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
        close(fd);
        return -1;
    }
    snprintf(addr, cap, "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    return fd;
}

static int tls_start(struct tls_srv *s, const char *cert_pem, const char *key_pem,
                     const char *trust_pem)
{
    int fd = tcp_listener(s->addr, sizeof(s->addr));
    if (fd < 0) {
        return -1;
    }
    atomic_store(&s->reqs, 0);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG;
    if (trust_pem != NULL) {
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, tls_handler, s, MHD_OPTION_LISTEN_SOCKET, fd,
                                MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_HTTPS_MEM_KEY,
                                key_pem, MHD_OPTION_HTTPS_MEM_TRUST, trust_pem,
                                MHD_OPTION_HTTPS_PRIORITIES, "NORMAL:-VERS-ALL:+VERS-TLS1.3",
                                MHD_OPTION_NOTIFY_COMPLETED, mf_httpd_completed, NULL,
                                MHD_OPTION_CONNECTION_TIMEOUT, 10, MHD_OPTION_END);
    } else {
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, tls_handler, s, MHD_OPTION_LISTEN_SOCKET, fd,
                                MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_HTTPS_MEM_KEY,
                                key_pem, MHD_OPTION_NOTIFY_COMPLETED, mf_httpd_completed, NULL,
                                MHD_OPTION_CONNECTION_TIMEOUT, 10, MHD_OPTION_END);
    }
    if (s->d == NULL) {
        close(fd);
        return -1;
    }
    return 0;
}

static int tls_setup(void **state)
{
    (void)state;
    struct pki *p = &g_pki;
    struct mf_buf cert_pem, key_pem, ca_pem;
    mf_buf_init(&cert_pem, 64 * 1024, 0);
    mf_buf_init(&key_pem, 16 * 1024, MF_BUF_SECRET);
    mf_buf_init(&ca_pem, 64 * 1024, 0);
    int rc = -1;
    size_t len = 0;
    const uint8_t *der;
    if (!mf_ok(issue("spiffe://example.org", true, &p->ca_key, &p->ca, NULL, NULL)) ||
        !mf_ok(issue("spiffe://other.org", true, &p->other_key, &p->other_ca, NULL, NULL)) ||
        !mf_ok(issue(SERVER_ID, false, &p->srv_key, &p->srv, p->ca, p->ca_key)) ||
        !mf_ok(issue(CLIENT_ID, false, &p->cli_key, &p->cli, p->ca, p->ca_key)) ||
        !mf_ok(trust_set(&p->trust, "example.org", p->ca)) ||
        !mf_ok(trust_set(&p->trust_other, "other.org", p->other_ca)) ||
        !mf_ok(trust_set(&p->trust_wrong, "example.org", p->other_ca))) {
        print_error("PKI set-up failed: %s\n", mf_err_detail());
        goto out;
    }
    der = mf_cert_der(p->srv, &len);
    if (!mf_ok(mf_pem_encode("CERTIFICATE", der, len, &cert_pem)) ||
        !mf_ok(mf_key_to_pem(p->srv_key, &key_pem))) {
        goto out;
    }
    der = mf_cert_der(p->ca, &len);
    if (!mf_ok(mf_pem_encode("CERTIFICATE", der, len, &ca_pem))) {
        goto out;
    }
    if (tls_start(&g_tls, mf_buf_cstr(&cert_pem), mf_buf_cstr(&key_pem), NULL) != 0 ||
        tls_start(&g_tls_mtls, mf_buf_cstr(&cert_pem), mf_buf_cstr(&key_pem),
                  mf_buf_cstr(&ca_pem)) != 0) {
        print_error("MHD HTTPS daemon did not start\n");
        goto out;
    }
    rc = 0;
out:
    mf_buf_cleanup(&cert_pem);
    mf_buf_cleanup(&key_pem); /* secret: wiped; MHD keeps its own copy */
    mf_buf_cleanup(&ca_pem);
    return rc;
}

static int tls_teardown(void **state)
{
    (void)state;
    struct pki *p = &g_pki;
    if (g_tls.d != NULL) {
        MHD_stop_daemon(g_tls.d);
    }
    if (g_tls_mtls.d != NULL) {
        MHD_stop_daemon(g_tls_mtls.d);
    }
    mf_bundle_set_cleanup(&p->trust);
    mf_bundle_set_cleanup(&p->trust_other);
    mf_bundle_set_cleanup(&p->trust_wrong);
    mf_cert_free(p->ca);
    mf_cert_free(p->other_ca);
    mf_cert_free(p->srv);
    mf_cert_free(p->cli);
    mf_key_free(p->ca_key);
    mf_key_free(p->other_key);
    mf_key_free(p->srv_key);
    mf_key_free(p->cli_key);
    return 0;
}

/* GET /whoami over c; returns the parsed JSON answer. */
static json_t *whoami(struct mf_http_conn *c)
{
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    ASSERT_OK(mf_http_request(c, "GET", "/whoami", NULL, NULL, 0, T_MS, &r));
    assert_int_equal(r.status, 200);
    json_t *o = body_json(&r);
    mf_http_resp_cleanup(&r);
    return o;
}

static void test_mf_http_connect_tls_expected_id_ok(void **state)
{
    (void)state;
    struct mf_tls_client_cfg cfg = {.trust = &g_pki.trust, .expect_server_id = SERVER_ID};
    struct mf_http_conn *c = NULL;
    ASSERT_OK(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c));
    assert_non_null(mf_http_peer_id(c));
    assert_string_equal(mf_http_peer_id(c)->str, SERVER_ID);
    for (int i = 0; i < 3; i++) { /* keep-alive over TLS too */
        json_t *o = whoami(c);
        /* MHD's default GnuTLS priorities negotiate TLS 1.3 */
        assert_true(json_is_true(json_object_get(o, "tls13")));
        /* without MEM_TRUST, MHD asks for no client certificate */
        assert_true(json_is_null(json_object_get(o, "client")));
        json_decref(o);
        assert_true(mf_http_reusable(c));
    }
    mf_http_close(c);

    /* any server of the trust domain when no ID is expected */
    cfg.expect_server_id = NULL;
    ASSERT_OK(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c));
    assert_string_equal(mf_http_peer_id(c)->str, SERVER_ID);
    mf_http_close(c);
}

/* Gives the server a moment, then checks it saw no request. */
static void expect_no_request(struct tls_srv *s, int before)
{
    sleep_ms(50);
    assert_int_equal(atomic_load(&s->reqs), before);
}

static void test_mf_http_connect_tls_wrong_id_refused(void **state)
{
    (void)state;
    struct mf_tls_client_cfg cfg = {.trust = &g_pki.trust,
                                    .expect_server_id = "spiffe://example.org/mayfly/other"};
    struct mf_http_conn *c = (struct mf_http_conn *)(uintptr_t)1;
    int before = atomic_load(&g_tls.reqs);
    ASSERT_ERR(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c), MF_ERR_AUTH_UNTRUSTED);
    assert_null(c);
    /* the detail says which check failed: the chain was fine, the ID not */
    assert_non_null(strstr(mf_err_detail(), "refused peer " SERVER_ID ": not authorized"));
    expect_no_request(&g_tls, before);

    cfg.expect_server_id = "not a spiffe id";
    assert_false(mf_ok(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c)));
    expect_no_request(&g_tls, before);
}

static void test_mf_http_connect_tls_other_trust_domain_refused(void **state)
{
    (void)state;
    struct mf_tls_client_cfg cfg = {.trust = &g_pki.trust_other, .expect_server_id = SERVER_ID};
    struct mf_http_conn *c = NULL;
    int before = atomic_load(&g_tls.reqs);
    ASSERT_ERR(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c), MF_ERR_AUTH_UNTRUSTED);
    assert_null(c);
    assert_non_null(strstr(mf_err_detail(), "refused peer " SERVER_ID ": chain does not verify"));
    /* a bundle for the right trust domain holding the wrong CA fails too */
    cfg.trust = &g_pki.trust_wrong;
    mf_res r = mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c);
    assert_false(mf_ok(r));
    assert_null(c);
    expect_no_request(&g_tls, before);
}

static void test_mf_http_connect_tls_bad_config_refused(void **state)
{
    (void)state;
    struct mf_http_conn *c = NULL;
    struct mf_tls_client_cfg cfg = {.trust = NULL};
    ASSERT_ERR(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c), MF_ERR_USAGE_NULL);
    struct mf_certs chain = {0};
    cfg.trust = &g_pki.trust;
    cfg.chain = &chain; /* a chain without its key */
    ASSERT_ERR(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c), MF_ERR_USAGE_ARG);
    cfg.chain = NULL;
    ASSERT_ERR(mf_http_connect_tls("127.0.0.1", &cfg, T_MS, &c), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_http_connect_tls("[::1", &cfg, T_MS, &c), MF_ERR_USAGE_ARG);
    /* nothing listens on port 1 of the loopback interface */
    ASSERT_ERR(mf_http_connect_tls("127.0.0.1:1", &cfg, T_MS, &c), MF_ERR_IO_CONNECT);
}

static void test_mf_http_connect_tls_mutual_ok(void **state)
{
    (void)state;
    struct mf_certs chain;
    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, g_pki.cli));
    struct mf_tls_client_cfg cfg = {.chain = &chain,
                                    .key = g_pki.cli_key,
                                    .trust = &g_pki.trust,
                                    .expect_server_id = SERVER_ID};
    struct mf_http_conn *c = NULL;
    ASSERT_OK(mf_http_connect_tls(g_tls_mtls.addr, &cfg, T_MS, &c));
    json_t *o = whoami(c);
    assert_true(json_is_true(json_object_get(o, "tls13")));
    assert_string_equal(json_string_value(json_object_get(o, "client")), CLIENT_ID);
    assert_int_equal(json_integer_value(json_object_get(o, "n")), 1);
    json_decref(o);
    mf_http_close(c);

    /* the server without MEM_TRUST never asks, so sees no certificate */
    ASSERT_OK(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c));
    o = whoami(c);
    assert_true(json_is_null(json_object_get(o, "client")));
    json_decref(o);
    mf_http_close(c);
    mf_certs_cleanup(&chain);
}

static void test_mf_http_stream_lines_over_tls_ok(void **state)
{
    (void)state;
    struct mf_tls_client_cfg cfg = {.trust = &g_pki.trust, .expect_server_id = SERVER_ID};
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    struct mf_buf line;
    mf_http_resp_init(&r, MF_MAX_BODY);
    mf_buf_init(&line, 4096, 0);
    ASSERT_OK(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c));
    ASSERT_OK(mf_http_stream_begin(c, "GET", "/lines", NULL, T_MS, &r));
    assert_int_equal(r.status, 200);
    for (int i = 0; i < 10; i++) {
        char want[32];
        snprintf(want, sizeof(want), "{\"n\":%d}", i);
        ASSERT_OK(mf_http_stream_line(c, 64, T_MS, &line));
        assert_string_equal(mf_buf_cstr(&line), want);
    }
    ASSERT_ERR(mf_http_stream_line(c, 64, T_MS, &line), MF_ERR_IO_EOF);
    /* and the connection carries on */
    json_t *o = whoami(c);
    json_decref(o);
    mf_buf_cleanup(&line);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

/* The early 413 over TLS: the server answers from the headers and closes
 * while we still write; the answer is still read, or the failure is a
 * clean I/O error. */
static void test_mf_httpd_body_huge_over_tls_refused(void **state)
{
    (void)state;
    struct mf_tls_client_cfg cfg = {.trust = &g_pki.trust, .expect_server_id = SERVER_ID};
    struct mf_http_conn *c = NULL;
    struct mf_http_resp r;
    mf_http_resp_init(&r, MF_MAX_BODY);
    size_t n = 4u * 1024u * 1024u;
    char *body = malloc(n);
    assert_non_null(body);
    memset(body, 'a', n);
    ASSERT_OK(mf_http_connect_tls(g_tls.addr, &cfg, T_MS, &c));
    mf_res res = mf_http_request(c, "POST", "/whoami", NULL, body, n, T_MS, &r);
    if (mf_ok(res)) {
        expect_too_large(&r);
    } else {
        /* TCP: the server's close with our bytes unread sends a reset,
         * which usually destroys its answer */
        assert_int_equal(res.err, MF_ERR_IO_EOF);
        assert_non_null(strstr(mf_err_detail(), "before reading the whole request"));
    }
    assert_false(mf_http_reusable(c));
    free(body);
    mf_http_resp_cleanup(&r);
    mf_http_close(c);
}

/* MEM_TRUST makes MHD *request* a certificate, not require one: a client
 * without one still gets through, and the handler must refuse it. */
static void test_mf_httpd_peer_chain_without_client_cert_missing(void **state)
{
    (void)state;
    struct mf_tls_client_cfg cfg = {.trust = &g_pki.trust, .expect_server_id = SERVER_ID};
    struct mf_http_conn *c = NULL;
    ASSERT_OK(mf_http_connect_tls(g_tls_mtls.addr, &cfg, T_MS, &c));
    json_t *o = whoami(c);
    assert_true(json_is_null(json_object_get(o, "client")));
    json_decref(o);
    mf_http_close(c);
}

/* A client certificate from another trust domain reaches the handler, which
 * refuses it with mf_svid_verify. */
static void test_mf_httpd_peer_chain_foreign_client_untrusted(void **state)
{
    (void)state;
    struct mf_key *k = NULL;
    struct mf_cert *cert = NULL;
    ASSERT_OK(issue("spiffe://other.org/mayfly/agent/x", false, &k, &cert, g_pki.other_ca,
                    g_pki.other_key));
    struct mf_certs chain;
    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, cert));
    struct mf_tls_client_cfg cfg = {
        .chain = &chain, .key = k, .trust = &g_pki.trust, .expect_server_id = SERVER_ID};
    struct mf_http_conn *c = NULL;
    /* GnuTLS does not check the client chain against MEM_TRUST: the
     * handshake succeeds and only the handler's mf_svid_verify refuses it */
    ASSERT_OK(mf_http_connect_tls(g_tls_mtls.addr, &cfg, T_MS, &c));
    json_t *o = whoami(c);
    assert_string_equal(json_string_value(json_object_get(o, "client")), "AUTH_UNTRUSTED");
    assert_int_equal(json_integer_value(json_object_get(o, "n")), 1);
    json_decref(o);
    mf_http_close(c);
    mf_certs_cleanup(&chain);
    mf_cert_free(cert);
    mf_key_free(k);
}

static int group_setup(void **state)
{
    if (plain_setup(state) != 0) {
        return -1;
    }
    return tls_setup(state);
}

static int group_teardown(void **state)
{
    (void)tls_teardown(state);
    return plain_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_http_request_keepalive_reuses_connection),
        cmocka_unit_test(test_mf_http_request_post_json_echoed),
        cmocka_unit_test(test_mf_http_request_bad_arguments_refused),
        cmocka_unit_test(test_mf_httpd_body_at_cap_ok),
        cmocka_unit_test(test_mf_httpd_body_cap_plus_one_413),
        cmocka_unit_test(test_mf_httpd_body_huge_refused_early_413),
        cmocka_unit_test(test_mf_httpd_body_chunked_over_cap_413),
        cmocka_unit_test(test_mf_http_request_client_cap_ok),
        cmocka_unit_test(test_mf_http_request_client_cap_plus_one_refused),
        cmocka_unit_test(test_mf_http_stream_lines_chunked_ok),
        cmocka_unit_test(test_mf_http_stream_line_over_max_refused),
        cmocka_unit_test(test_mf_http_stream_begin_error_body_kept),
        cmocka_unit_test(test_mf_httpd_peer_cred_reports_uid),
        cmocka_unit_test(test_mf_httpd_reply_take_sends_the_buffer),
        cmocka_unit_test(test_mf_httpd_reply_res_error_shape),
        cmocka_unit_test(test_mf_http_request_retry_after_parsed),
        cmocka_unit_test(test_mf_http_request_connection_close_not_reusable),
        cmocka_unit_test(test_mf_http_connect_unix_missing_refused),
        cmocka_unit_test(test_mf_http_request_broken_status_line_refused),
        cmocka_unit_test(test_mf_http_request_headers_at_cap_ok),
        cmocka_unit_test(test_mf_http_request_headers_cap_plus_one_refused),
        cmocka_unit_test(test_mf_http_request_truncated_chunked_refused),
        cmocka_unit_test(test_mf_http_request_bad_chunks_refused),
        cmocka_unit_test(test_mf_http_request_bad_content_length_refused),
        cmocka_unit_test(test_mf_http_request_extra_bytes_not_reusable),
        cmocka_unit_test(test_mf_http_request_body_to_eof_ok),
        cmocka_unit_test(test_mf_http_request_silent_server_times_out),
        cmocka_unit_test(test_mf_http_request_slow_headers_time_out),
        cmocka_unit_test(test_mf_http_stream_line_timeout_resumes),
        cmocka_unit_test(test_mf_http_stream_line_cut_inside_line_refused),
        cmocka_unit_test(test_mf_endpoint_parse_valid_ok),
        cmocka_unit_test(test_mf_endpoint_parse_invalid_refused),
        cmocka_unit_test(test_mf_endpoint_parse_cap_refused),
        cmocka_unit_test(test_mf_httpd_listen_unix_regular_file_refused),
        cmocka_unit_test(test_mf_httpd_listen_unix_stale_replaced_live_refused),
        cmocka_unit_test(test_mf_httpd_listen_unix_mode_applied),
        cmocka_unit_test(test_mf_http_connect_tls_expected_id_ok),
        cmocka_unit_test(test_mf_http_connect_tls_wrong_id_refused),
        cmocka_unit_test(test_mf_http_connect_tls_other_trust_domain_refused),
        cmocka_unit_test(test_mf_http_connect_tls_bad_config_refused),
        cmocka_unit_test(test_mf_http_connect_tls_mutual_ok),
        cmocka_unit_test(test_mf_http_stream_lines_over_tls_ok),
        cmocka_unit_test(test_mf_httpd_body_huge_over_tls_refused),
        cmocka_unit_test(test_mf_httpd_peer_chain_without_client_cert_missing),
        cmocka_unit_test(test_mf_httpd_peer_chain_foreign_client_untrusted),
    };
    return cmocka_run_group_tests_name("http", tests, group_setup, group_teardown);
}
