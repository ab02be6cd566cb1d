/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wl_flood: one local user flooding the agent's Workload API socket, for
 * tests/integration/attack_wl_flood.sh.
 *
 *   wl_flood --socket PATH --burst N [--hold-ms H]
 *   wl_flood --socket PATH --json J --grpc G [--trickle-ms T] [--hold-ms H]
 *
 * --burst: opens N connections as fast as it can, each sending half a
 * request line ("GET /v1/x5"), holds them H ms (default 1000) and closes
 * them all. Prints "opened=N".
 *
 * --json/--grpc: opens J slow-header HTTP/1.1 connections (half a request
 * line at once, then one more header byte every T ms, default 500, never
 * finishing) and G idle HTTP/2 connections (the client preface and an
 * empty SETTINGS frame, then nothing), all at once. Once the set of
 * connections the server has closed stops changing (for 500 ms, at most
 * 5 s) it prints "kept=K json_kept=KJ grpc_kept=KG of=N": how many of its
 * connections the server kept. It then keeps trickling for H ms (default
 * 5000) and prints "json_open=A grpc_open=B json_max_life_ms=L
 * grpc_max_life_ms=M": connections still open at the end, and the longest
 * a closed one lived. Exit status 0, or 2 on bad usage or a setup error.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#define MAX_CONNS 4000

/* RFC 9113 3.4 preface, then a SETTINGS frame with no settings */
static const char H2_HELLO[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                               "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
#define H2_HELLO_LEN (24 + 9)
static const char SLOW_HEAD[] = "GET /v1/x509 HTTP/1.1\r\nHost: x\r\nX-Slow: ";
#define HALF_LINE 10 /* "GET /v1/x5" */

struct conn {
    int fd;
    bool grpc;
    bool closed;
    size_t sent; /* bytes of the slow head sent */
    int64_t opened_ms;
    int64_t closed_ms;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool parse_long(const char *s, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static int open_conn(const char *path)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(a.sun_path)) {
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The next byte of a header that never ends. */
static char slow_byte(size_t i)
{
    return i < sizeof(SLOW_HEAD) - 1 ? SLOW_HEAD[i] : 'a';
}

/* Notices connections the server closed (reading and dropping what it
 * sent, like its SETTINGS); returns how many are closed. */
static size_t sweep(struct conn *c, size_t n)
{
    size_t closed = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].closed) {
            closed++;
            continue;
        }
        char buf[4096];
        for (;;) {
            ssize_t r = recv(c[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (r > 0) {
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                c[i].closed = true;
                c[i].closed_ms = now_ms();
                closed++;
            }
            break;
        }
    }
    return closed;
}

static void send_bytes(struct conn *c, const char *p, size_t len)
{
    if (!c->closed && send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
        c->closed = true;
        c->closed_ms = now_ms();
    }
}

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int burst(const char *path, long n, long hold_ms)
{
    int *fds = calloc((size_t)n, sizeof(*fds));
    if (fds == NULL) {
        return 2;
    }
    long opened = 0;
    for (long i = 0; i < n; i++) {
        fds[i] = open_conn(path);
        if (fds[i] >= 0) {
            (void)!send(fds[i], "GET /v1/x5", HALF_LINE, MSG_NOSIGNAL);
            opened++;
        }
    }
    pause_ms(hold_ms); /* the attack itself: hold them, then leave */
    for (long i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    free(fds);
    printf("opened=%ld\n", opened);
    return 0;
}

static int flood(const char *path, long nj, long ng, long trickle_ms, long hold_ms)
{
    size_t n = (size_t)(nj + ng);
    struct conn *c = calloc(n, sizeof(*c));
    if (c == NULL) {
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        c[i].grpc = i >= (size_t)nj;
        c[i].fd = open_conn(path);
        c[i].opened_ms = now_ms();
        if (c[i].fd < 0) {
            fprintf(stderr, "wl_flood: connect: %s\n", strerror(errno));
            return 2;
        }
        if (c[i].grpc) {
            send_bytes(&c[i], H2_HELLO, H2_HELLO_LEN);
        } else {
            send_bytes(&c[i], SLOW_HEAD, HALF_LINE);
            c[i].sent = HALF_LINE;
        }
    }
    /* settle: the server has decided on every connection once nothing
     * changes for 500 ms */
    int64_t start = now_ms(), last_change = start;
    size_t closed = sweep(c, n);
    while (now_ms() - last_change < 500 && now_ms() - start < 5000) {
        pause_ms(50);
        size_t k = sweep(c, n);
        if (k != closed) {
            closed = k;
            last_change = now_ms();
        }
    }
    size_t kj = 0, kg = 0;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].closed) {
            *(c[i].grpc ? &kg : &kj) += 1;
        }
    }
    printf("kept=%zu json_kept=%zu grpc_kept=%zu of=%zu\n", kj + kg, kj, kg, n);
    fflush(stdout);
    int64_t end = now_ms() + hold_ms;
    while (now_ms() < end) {
        pause_ms(trickle_ms);
        for (size_t i = 0; i < n; i++) {
            if (!c[i].grpc && !c[i].closed) {
                char b = slow_byte(c[i].sent++);
                send_bytes(&c[i], &b, 1);
            }
        }
        (void)sweep(c, n);
    }
    size_t oj = 0, og = 0;
    int64_t lj = 0, lg = 0;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].closed) {
            *(c[i].grpc ? &og : &oj) += 1;
        } else {
            int64_t life = c[i].closed_ms - c[i].opened_ms;
            int64_t *l = c[i].grpc ? &lg : &lj;
            *l = life > *l ? life : *l;
        }
        close(c[i].fd);
    }
    printf("json_open=%zu grpc_open=%zu json_max_life_ms=%lld grpc_max_life_ms=%lld\n", oj, og,
           (long long)lj, (long long)lg);
    free(c);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long nburst = -1, nj = 0, ng = 0, trickle = 500, hold = -1;
    bool bad = false;
    for (int i = 1; i + 1 < argc && !bad; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--socket") == 0) {
            path = v;
        } else if (strcmp(k, "--burst") == 0) {
            bad = !parse_long(v, MAX_CONNS, &nburst);
        } else if (strcmp(k, "--json") == 0) {
            bad = !parse_long(v, MAX_CONNS, &nj);
        } else if (strcmp(k, "--grpc") == 0) {
            bad = !parse_long(v, MAX_CONNS, &ng);
        } else if (strcmp(k, "--trickle-ms") == 0) {
            bad = !parse_long(v, 60000, &trickle) || trickle == 0;
        } else if (strcmp(k, "--hold-ms") == 0) {
            bad = !parse_long(v, 600000, &hold);
        } else {
            bad = true;
        }
    }
    if (bad || path == NULL || argc % 2 == 0 || (nburst < 0 && nj + ng == 0) ||
        nj + ng > MAX_CONNS) {
        fprintf(stderr, "usage: wl_flood --socket PATH --burst N [--hold-ms H]\n"
                        "       wl_flood --socket PATH --json J --grpc G [--trickle-ms T] "
                        "[--hold-ms H]\n");
        return 2;
    }
    struct rlimit rl = {.rlim_cur = MAX_CONNS + 64, .rlim_max = MAX_CONNS + 64};
    (void)setrlimit(RLIMIT_NOFILE, &rl); /* best effort: a lower limit caps N */
    signal(SIGPIPE, SIG_IGN);
    if (nburst >= 0) {
        return burst(path, nburst, hold < 0 ? 1000 : hold);
    }
    return flood(path, nj, ng, trickle, hold < 0 ? 5000 : hold);
}
