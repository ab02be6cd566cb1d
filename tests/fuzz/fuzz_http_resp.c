/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for mf_http's response parser: arbitrary bytes play the
 * server's side of one exchange on a real Unix socket (the client reads
 * through the same code path as in production: status line, headers,
 * Content-Length, chunked and read-to-close bodies, interim 1xx answers).
 *
 * The first byte picks the mode: a whole request (mf_http_request), a stream
 * read line by line (mf_http_stream_begin + mf_http_stream_line), or two
 * requests on one kept-alive connection; the next byte sets the body cap.
 * The rest is written into the accepted socket, which is then shut down, so
 * every read ends without waiting for a timeout. Inputs are capped below
 * the socket buffer so that one thread can do both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "api/core/mf_log.h"
#include "api/net/mf_http.h"

#define INPUT_MAX (96u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_listen = -1;
static char g_dir[32];
static char g_path[108];

static void teardown(void)
{
    (void)unlink(g_path);
    (void)rmdir(g_dir);
}

static void setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "%s", "/tmp/fuzz_http.XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        abort();
    }
    snprintf(g_path, sizeof(g_path), "%s/s", g_dir);
    atexit(teardown);
    g_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, g_path, strlen(g_path) + 1);
    if (g_listen < 0 || bind(g_listen, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(g_listen, 8) != 0) {
        abort();
    }
    mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
}

/* Accepts the client's connection and sends the canned answer. */
static int serve(const uint8_t *p, size_t n)
{
    int fd = accept4(g_listen, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int big = (int)(4 * INPUT_MAX);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    (void)shutdown(fd, SHUT_WR);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_listen < 0) {
        setup();
    }
    if (size < 2 || size > INPUT_MAX) {
        return 0;
    }
    unsigned mode = data[0] % 3;
    size_t cap = (size_t)data[1] * 64u;
    data += 2;
    size -= 2;
    struct mf_http_conn *c = NULL;
    if (!mf_ok(mf_http_connect_unix(g_path, 1000, &c))) {
        return 0;
    }
    int sfd = serve(data, size);
    struct mf_http_resp resp;
    mf_http_resp_init(&resp, cap);
    static const char *const hdrs[] = {"workload.spiffe.io: true", NULL};
    if (mode == 0 || mode == 2) {
        mf_res r = mf_http_request(c, "GET", "/v1/x509", hdrs, NULL, 0, 1000, &resp);
        if (mf_ok(r)) {
            if (resp.status < 100 || resp.status > 999 || resp.body.len > cap) {
                __builtin_trap();
            }
            if (mode == 2 && mf_http_reusable(c)) {
                /* a second exchange reads whatever the first left behind */
                mf_http_resp_cleanup(&resp);
                mf_http_resp_init(&resp, cap);
                (void)mf_http_request(c, "POST", "/v1/x", NULL, "{}", 2, 1000, &resp);
            }
        }
    } else {
        mf_res r = mf_http_stream_begin(c, "GET", "/v1/x509?watch=true", hdrs, 1000, &resp);
        struct mf_buf line;
        mf_buf_init(&line, 1 << 20, 0);
        for (int i = 0; mf_ok(r) && i < 64; i++) {
            mf_buf_reset(&line);
            r = mf_http_stream_line(c, cap + 1, 1000, &line);
            if (mf_ok(r) && line.len > cap + 1) {
                __builtin_trap();
            }
        }
        mf_buf_cleanup(&line);
    }
    mf_http_resp_cleanup(&resp);
    mf_http_close(c);
    if (sfd >= 0) {
        close(sfd);
    }
    return 0;
}
