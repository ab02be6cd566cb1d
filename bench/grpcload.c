/* SPDX-License-Identifier: Apache-2.0 */
/*
 * grpcload: gRPC Workload API load over a Unix socket. C client threads,
 * each with its own HTTP/2 connection (nghttp2 as the client), call
 * SpiffeWorkloadAPI/FetchX509SVID as fast as the server answers: a stream
 * is opened, the time to its first complete X509SVIDResponse message is
 * taken, and the stream is cancelled (RST_STREAM CANCEL) before the next
 * one. In newconn mode every call has a connection (and so an attestation)
 * of its own, and its time includes connect() and the HTTP/2 preface.
 *
 *   grpcload --socket PATH [--clients C] [--seconds S] [--warmup S]
 *            [--mode keepalive|newconn] [--server-pid PID]
 *
 * prints one line:
 *   grpcload mode=M clients=C fetches_per_s=X p50_us=.. p99_us=.. max_us=.. errors=E
 *            goaways=G msg_bytes=B server_cpu_us_per_fetch=..
 * and exits 1 when no call succeeded. An answer other than a message
 * (a grpc-status error, a reset, a closed connection) counts as an error,
 * except a call cut short by the server's GOAWAY: the server's nghttp2
 * bounds the rate of streams a client resets (about 1,000 in a burst), so
 * a keep-alive client is sent away now and then; it reconnects, and the
 * count is printed as goaways=N (also when the call failed on sending
 * and the GOAWAY was still unread).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <nghttp2/nghttp2.h>

#include "bench/bench_util.h"

#define MAX_CLIENTS 256
#define MSG_MAX     (16u * 1024u * 1024u)

struct shared {
    const char *sock;
    bool newconn;
    _Atomic int phase; /* 0 warm-up, 1 measuring, 2 stop */
};

struct client {
    struct shared *sh;
    pthread_t th;
    uint64_t ok, errors, goaways;
    size_t msg_bytes;
    struct bench_lat lat;
    /* the connection */
    int fd;
    nghttp2_session *sess;
    /* the call under way */
    int32_t stream;
    size_t got;  /* DATA bytes of the stream so far */
    size_t want; /* 5 + the first message's length, once known */
    uint8_t head[5];
    bool closed; /* the stream ended (or was reset) */
    bool req_sent;
    bool goaway; /* the server is ending the connection */
};

static nghttp2_nv nv(const char *name, const char *value)
{
    nghttp2_nv v = {
        .name = (uint8_t *)(uintptr_t)name,
        .value = (uint8_t *)(uintptr_t)value,
        .namelen = strlen(name),
        .valuelen = strlen(value),
        .flags = NGHTTP2_NV_FLAG_NONE,
    };
    return v;
}

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct client *c = ud;
    (void)s;
    (void)flags;
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        off += (size_t)n;
    }
    return (ssize_t)len;
}

static int data_cb(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    struct client *c = ud;
    (void)s;
    (void)flags;
    if (id != c->stream) {
        return 0; /* the tail of a cancelled one */
    }
    for (size_t i = 0; i < len && c->got + i < 5; i++) {
        c->head[c->got + i] = data[i];
        if (c->got + i + 1 == 5) {
            uint32_t ml = (uint32_t)c->head[1] << 24 | (uint32_t)c->head[2] << 16 |
                          (uint32_t)c->head[3] << 8 | c->head[4];
            c->want = 5u + (size_t)(ml < MSG_MAX ? ml : MSG_MAX);
        }
    }
    c->got += len;
    return 0;
}

static int frame_cb(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct client *c = ud;
    (void)s;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true;
    }
    return 0;
}

static int close_cb(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
    struct client *c = ud;
    (void)s;
    (void)err;
    if (id == c->stream) {
        c->closed = true;
    }
    return 0;
}

/* The request body: one empty X509SVIDRequest, framed (5 zero bytes). */
static ssize_t body_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct client *c = ud;
    (void)s;
    (void)id;
    (void)src;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (c->req_sent || len < 5) {
        return 0;
    }
    memset(buf, 0, 5);
    c->req_sent = true;
    return 5;
}

static void disconnect(struct client *c)
{
    if (c->sess != NULL) {
        nghttp2_session_del(c->sess);
        c->sess = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

static bool connect_to(struct client *c)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    size_t pl = strlen(c->sh->sock);
    if (pl >= sizeof(a.sun_path)) {
        return false;
    }
    memcpy(a.sun_path, c->sh->sock, pl + 1);
    c->goaway = false;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        disconnect(c);
        return false;
    }
    struct timeval tv = {.tv_sec = 10};
    (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    nghttp2_session_callbacks *cb = NULL;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        disconnect(c);
        return false;
    }
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, data_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, close_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, frame_cb);
    int rv = nghttp2_session_client_new(&c->sess, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0 || nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, NULL, 0) != 0) {
        disconnect(c);
        return false;
    }
    return true;
}

/* One FetchX509SVID call: true when its first message arrived whole. */
static bool call(struct client *c)
{
    nghttp2_nv hdrs[] = {
        nv(":method", "POST"),
        nv(":scheme", "http"),
        nv(":authority", "localhost"),
        nv(":path", "/SpiffeWorkloadAPI/FetchX509SVID"),
        nv("content-type", "application/grpc"),
        nv("te", "trailers"),
        nv("workload.spiffe.io", "true"),
    };
    nghttp2_data_provider body = {.read_callback = body_cb};
    c->got = 0;
    c->want = 0;
    c->closed = false;
    c->req_sent = false;
    c->stream = nghttp2_submit_request(c->sess, NULL, hdrs, sizeof(hdrs) / sizeof(hdrs[0]),
                                       &body, NULL);
    if (c->stream < 0) {
        return false;
    }
    uint8_t buf[16384];
    for (;;) {
        if (nghttp2_session_send(c->sess) != 0) {
            return false;
        }
        if (c->want > 0 && c->got >= c->want) {
            break;
        }
        if (c->closed) {
            return false; /* ended without a message: an error status */
        }
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || nghttp2_session_mem_recv(c->sess, buf, (size_t)n) < 0) {
            return false;
        }
    }
    c->msg_bytes = c->want;
    /* the stream would follow every change: end it */
    if (!c->closed) {
        (void)nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, c->stream, NGHTTP2_CANCEL);
        if (nghttp2_session_send(c->sess) != 0) {
            return false;
        }
    }
    return true;
}

/* After a failed call: reads what the server already sent, so that a GOAWAY
 * that arrived before its connection was closed is seen (the call may have
 * failed on sending first, the frame still unread). */
static void read_pending(struct client *c)
{
    uint8_t buf[16384];
    for (int i = 0; i < 64 && c->sess != NULL && c->fd >= 0 && !c->goaway; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0 || nghttp2_session_mem_recv(c->sess, buf, (size_t)n) < 0) {
            return;
        }
    }
}

static void *run(void *arg)
{
    struct client *c = arg;
    struct shared *sh = c->sh;
    c->fd = -1;
    while (atomic_load(&sh->phase) != 2) {
        int64_t t0 = bench_ns();
        bool good = true;
        if (c->sess == NULL || sh->newconn) {
            disconnect(c);
            good = connect_to(c);
        }
        good = good && call(c);
        if (!good && !c->goaway) {
            read_pending(c);
        }
        if (!good || sh->newconn || c->goaway) {
            bool ended = c->goaway;
            disconnect(c);
            if (!good && ended) {
                /* the server ended the connection with GOAWAY (nghttp2
                 * bounds how many streams a client may reset): a new
                 * connection, not a failed call */
                c->goaways++;
                continue;
            }
        }
        if (atomic_load(&sh->phase) == 1) {
            if (good) {
                c->ok++;
                bench_lat_push(&c->lat, (double)(bench_ns() - t0) / 1e3);
            } else {
                c->errors++;
            }
        }
        if (!good) {
            bench_sleep_ms(1);
        }
    }
    disconnect(c);
    return NULL;
}

int main(int argc, char **argv)
{
    struct shared sh = {0};
    long clients = 1, seconds = 3, warmup = 1, server_pid = 0;
    const char *mode = "keepalive";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--socket")) {
            sh.sock = v;
        } else if (!strcmp(k, "--clients")) {
            clients = bench_long(k, v, 1, MAX_CLIENTS);
        } else if (!strcmp(k, "--seconds")) {
            seconds = bench_long(k, v, 1, 600);
        } else if (!strcmp(k, "--warmup")) {
            warmup = bench_long(k, v, 0, 60);
        } else if (!strcmp(k, "--mode")) {
            mode = v;
        } else if (!strcmp(k, "--server-pid")) {
            server_pid = bench_long(k, v, 0, 1L << 30);
        } else {
            sh.sock = NULL;
            break;
        }
    }
    sh.newconn = strcmp(mode, "newconn") == 0;
    if (sh.sock == NULL || (!sh.newconn && strcmp(mode, "keepalive") != 0)) {
        fprintf(stderr, "usage: grpcload --socket PATH [--clients C] [--seconds S] "
                        "[--warmup S] [--mode keepalive|newconn] [--server-pid PID]\n");
        return 2;
    }
    struct client *cs = calloc((size_t)clients, sizeof(*cs));
    if (cs == NULL) {
        return 2;
    }
    long started = 0;
    for (; started < clients; started++) {
        cs[started].sh = &sh;
        if (pthread_create(&cs[started].th, NULL, run, &cs[started]) != 0) {
            break;
        }
    }
    bench_sleep_ms(warmup * 1000);
    double s0 = server_pid > 0 ? bench_proc_cpu(server_pid) : -1.0;
    int64_t t0 = bench_ns();
    atomic_store(&sh.phase, 1);
    bench_sleep_ms(seconds * 1000);
    atomic_store(&sh.phase, 2);
    int64_t t1 = bench_ns();
    double s1 = server_pid > 0 ? bench_proc_cpu(server_pid) : -1.0;
    uint64_t ok = 0, errors = 0, goaways = 0;
    size_t msg = 0;
    struct bench_lat all = {0};
    for (long i = 0; i < started; i++) {
        pthread_join(cs[i].th, NULL);
        ok += cs[i].ok;
        errors += cs[i].errors;
        goaways += cs[i].goaways;
        if (cs[i].msg_bytes > msg) {
            msg = cs[i].msg_bytes;
        }
        bench_lat_merge(&all, &cs[i].lat);
        bench_lat_free(&cs[i].lat);
    }
    double secs = (double)(t1 - t0) / 1e9;
    double scpu = s0 >= 0 && s1 >= 0 && ok > 0 ? (s1 - s0) * 1e6 / (double)ok : -1.0;
    double p50 = bench_lat_pct(&all, 0.50), p99 = bench_lat_pct(&all, 0.99);
    double mx = bench_lat_pct(&all, 1.0);
    printf("grpcload mode=%s clients=%ld fetches_per_s=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f "
           "errors=%llu goaways=%llu msg_bytes=%zu server_cpu_us_per_fetch=%.1f\n",
           mode, started, (double)ok / secs, p50, p99, mx, (unsigned long long)errors,
           (unsigned long long)goaways, msg, scpu);
    bench_lat_free(&all);
    free(cs);
    return ok > 0 ? 0 : 1;
}
