/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wl_load: load on the agent's Workload API socket, for
 * tests/integration/load_workload.sh.
 *
 *   wl_load --socket PATH [--clients N] [--requests R] [--slow S]
 *           [--bound-ms B] [--path P]
 *
 * Opens S slow connections first ("slowloris": each sends the start of a
 * request and then one more header byte every 200 ms, never finishing),
 * then N well-behaved clients, one thread and one connection each, all
 * connected before any of them sends (a barrier), so that N connections are
 * open at once. Each client sends R requests on its connection (keep-alive)
 * and times each one from the first byte sent to the last byte of the
 * answer. Blocking connect(): a full listen backlog makes a client wait,
 * as a real one would, rather than fail.
 *
 * Prints one line "measured: ..." with p50, p99 and max latency, the
 * failures, and how many slow connections the server still held at the end.
 * Exit status 0 when every well-behaved request got 200 within B ms
 * (default 5000), 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#define MAX_CLIENTS  5000
#define MAX_SLOW     2000
#define MAX_REQUESTS 100
#define RESP_MAX     (1024u * 1024u)
#define IO_TIMEOUT_S 30

struct opts {
    const char *socket;
    const char *path;
    long clients;
    long requests;
    long slow;
    long bound_ms;
};

struct client {
    const struct opts *o;
    pthread_barrier_t *start;
    int64_t *lat_us; /* requests entries */
    long ok;
    long failed;
    char why[160];
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof(sa.sun_path)) {
        return -1;
    }
    memcpy(sa.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S, .tv_usec = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    for (int tries = 0; tries < 100; tries++) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            return fd;
        }
        if (errno != EAGAIN && errno != EINTR) {
            break;
        }
        usleep(20000); /* backlog full under a non-blocking policy: retry */
    }
    close(fd);
    return -1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Case-insensitive search for a header name at a line start. */
static const char *find_header(const char *head, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = head; p != NULL && *p != '\0';) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            return p + nl + 1;
        }
        p = strstr(p, "\r\n");
        if (p != NULL) {
            p += 2;
        }
    }
    return NULL;
}

/* Reads one response; returns its status, or -1. Only Content-Length
 * bodies (what the agent sends for one-shot requests). */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    char *end = NULL;
    while (end == NULL) {
        if (got + 1 >= cap) {
            return -1;
        }
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - buf) + 4;
    if (strncmp(buf, "HTTP/1.1 ", 9) != 0) {
        return -1;
    }
    long status = strtol(buf + 9, NULL, 10);
    const char *cl = find_header(buf, "Content-Length");
    if (cl == NULL) {
        return -1;
    }
    char *e = NULL;
    long len = strtol(cl, &e, 10);
    if (e == cl || len < 0 || (size_t)len > cap - head_len - 1) {
        return -1;
    }
    size_t want = head_len + (size_t)len;
    while (got < want) {
        ssize_t n = recv(fd, buf + got, want - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    return (int)status;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    const struct opts *o = c->o;
    char req[256];
    int rl =
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: localhost\r\nworkload.spiffe.io: true\r\n\r\n", o->path);
    char *buf = malloc(RESP_MAX);
    int fd = connect_unix(o->socket);
    if (fd < 0) {
        snprintf(c->why, sizeof(c->why), "connect: %s", strerror(errno));
    }
    pthread_barrier_wait(c->start);
    for (long i = 0; i < o->requests; i++) {
        c->lat_us[i] = -1;
        if (fd < 0 || buf == NULL) {
            c->failed++;
            continue;
        }
        int64_t t0 = mono_us();
        int st = write_all(fd, req, (size_t)rl) == 0 ? read_response(fd, buf, RESP_MAX) : -1;
        int64_t dt = mono_us() - t0;
        if (st == 200) {
            c->lat_us[i] = dt;
            c->ok++;
        } else {
            c->failed++;
            if (c->why[0] == '\0') {
                snprintf(c->why, sizeof(c->why), "request %ld: status %d after %lld ms", i, st,
                         (long long)(dt / 1000));
            }
            /* a broken connection: reconnect, as a real client would */
            close(fd);
            fd = connect_unix(o->socket);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *e = NULL;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno != 0 || e == s || *e != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Slow clients: a request that never ends, one byte at a time. */
struct slow {
    const struct opts *o;
    int fds[MAX_SLOW];
    long n;
    int stop; /* atomic */
    long open_at_end;
};

static void *slow_main(void *arg)
{
    struct slow *s = arg;
    static const char start[] = "GET /v1/x509 HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n"
                                "X-Slow: ";
    for (long i = 0; i < s->n; i++) {
        s->fds[i] = connect_unix(s->o->socket);
        if (s->fds[i] >= 0 && write_all(s->fds[i], start, sizeof(start) - 1) != 0) {
            close(s->fds[i]);
            s->fds[i] = -1;
        }
    }
    while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
        for (long i = 0; i < s->n; i++) {
            if (s->fds[i] >= 0 && send(s->fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1 &&
                errno != EAGAIN) {
                close(s->fds[i]);
                s->fds[i] = -1;
            }
        }
        usleep(200000);
    }
    long open = 0;
    for (long i = 0; i < s->n; i++) {
        if (s->fds[i] < 0) {
            continue;
        }
        /* still held by the server when a read would block, not hit EOF */
        struct pollfd p = {.fd = s->fds[i], .events = POLLIN};
        char b;
        if (poll(&p, 1, 0) == 0 || (recv(s->fds[i], &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN)) {
            open++;
        }
        close(s->fds[i]);
    }
    s->open_at_end = open;
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = {
        .path = "/v1/x509", .clients = 1000, .requests = 3, .slow = 0, .bound_ms = 5000};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        int bad = 0;
        if (strcmp(k, "--socket") == 0) {
            o.socket = v;
        } else if (strcmp(k, "--path") == 0) {
            o.path = v;
        } else if (strcmp(k, "--clients") == 0) {
            bad = parse_long(v, 1, MAX_CLIENTS, &o.clients);
        } else if (strcmp(k, "--requests") == 0) {
            bad = parse_long(v, 1, MAX_REQUESTS, &o.requests);
        } else if (strcmp(k, "--slow") == 0) {
            bad = parse_long(v, 0, MAX_SLOW, &o.slow);
        } else if (strcmp(k, "--bound-ms") == 0) {
            bad = parse_long(v, 1, 600000, &o.bound_ms);
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "wl_load: bad option %s %s\n", k, v);
            return 2;
        }
    }
    if (o.socket == NULL || strlen(o.path) > 100) {
        fprintf(stderr, "wl_load: --socket is required\n");
        return 2;
    }
    /* one descriptor per connection, plus room */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct slow *sl = calloc(1, sizeof(*sl));
    struct client *cs = calloc((size_t)o.clients, sizeof(*cs));
    int64_t *lat = calloc((size_t)(o.clients * o.requests), sizeof(*lat));
    pthread_t *ts = calloc((size_t)o.clients, sizeof(*ts));
    if (sl == NULL || cs == NULL || lat == NULL || ts == NULL) {
        fprintf(stderr, "wl_load: out of memory\n");
        return 2;
    }
    sl->o = &o;
    sl->n = o.slow;
    pthread_t slow_t;
    pthread_create(&slow_t, NULL, slow_main, sl);
    usleep(500000); /* the slow ones are in place before the crowd arrives */

    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)o.clients + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* glibc carves each thread's static TLS out of its stack: the SP build
     * of wolfSSL has some 360 KiB of it, more under AddressSanitizer, so a
     * small stack would leave nothing (pthread_create fails); 1 MiB is
     * address space, not memory, until touched */
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    long started = 0;
    for (long i = 0; i < o.clients; i++) {
        cs[i].o = &o;
        cs[i].start = &start;
        cs[i].lat_us = lat + i * o.requests;
        int err = pthread_create(&ts[i], &attr, client_main, &cs[i]);
        if (err != 0) {
            fprintf(stderr, "wl_load: cannot start client %ld: %s\n", i, strerror(err));
            return 2;
        }
        started++;
    }
    pthread_barrier_wait(&start);
    int64_t t0 = mono_us();
    for (long i = 0; i < started; i++) {
        pthread_join(ts[i], NULL);
    }
    int64_t wall = mono_us() - t0;
    __atomic_store_n(&sl->stop, 1, __ATOMIC_RELAXED);
    pthread_join(slow_t, NULL);

    long ok = 0, failed = 0, n = 0;
    const char *why = NULL;
    for (long i = 0; i < o.clients; i++) {
        ok += cs[i].ok;
        failed += cs[i].failed;
        if (why == NULL && cs[i].why[0] != '\0') {
            why = cs[i].why;
        }
    }
    for (long i = 0; i < o.clients * o.requests; i++) {
        if (lat[i] >= 0) {
            lat[n++] = lat[i];
        }
    }
    qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
    int64_t p50 = n ? lat[n / 2] : 0, p99 = n ? lat[(n * 99) / 100 - (n >= 100 ? 1 : 0)] : 0;
    int64_t max = n ? lat[n - 1] : 0;
    printf("measured: %ld connections x %ld requests (+%ld slow clients): %ld ok, %ld failed; "
           "latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; %.0f requests/s; slow connections "
           "still open at the end: %ld\n",
           o.clients, o.requests, o.slow, ok, failed, (double)p50 / 1000.0, (double)p99 / 1000.0,
           (double)max / 1000.0, wall > 0 ? (double)ok * 1e6 / (double)wall : 0.0, sl->open_at_end);
    if (failed > 0) {
        fprintf(stderr, "wl_load: first failure: %s\n", why != NULL ? why : "?");
    }
    int rc = failed == 0 && max <= o.bound_ms * 1000 ? 0 : 1;
    if (rc != 0 && failed == 0) {
        fprintf(stderr, "wl_load: slowest request took %.1f ms (bound %ld ms)\n",
                (double)max / 1000.0, o.bound_ms);
    }
    free(sl);
    free(cs);
    free(lat);
    free(ts);
    return rc;
}
