/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_flood: holds many TCP connections to the CA's agent API that never
 * authenticate, for tests/integration/attack_ca_flood.sh.
 *
 *   ca_flood --connect 127.0.0.1:PORT --count N --seconds S
 *            [--from 127.0.0.1 | --from-range 127.0.0.2 K] [--hello] [--reconnect]
 *
 * Opens N connections, spread over the source addresses (K loopback
 * addresses counted up from the first), and keeps them open for S seconds.
 * Plain ones send nothing at all; with --hello each sends the 5-byte
 * header of a TLS handshake record announcing 512 bytes and then stalls,
 * so the server's TLS layer waits for the rest. With --reconnect every
 * connection the server closes is opened again (at most 200 every 100 ms),
 * so the pressure lasts. Prints "flood: open N" once the first round is
 * up, then one summary line. Bounded in count and time; loopback only.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define MAX_CONNS       20000
#define TICK_MS         100
#define REOPEN_PER_TICK 200

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct sockaddr_in dst;
static struct in_addr src0;
static unsigned n_src = 1;
static bool hello;

/* One connection from the i-th source address; -1 when refused. */
static int open_one(size_t i)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(ntohl(src0.s_addr) + (uint32_t)(i % n_src));
    struct timeval tv = {.tv_sec = 2};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
        close(fd);
        return -1;
    }
    if (hello) {
        static const unsigned char rec[5] = {0x16, 0x03, 0x01, 0x02, 0x00};
        if (send(fd, rec, sizeof(rec), MSG_NOSIGNAL) != (ssize_t)sizeof(rec)) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static int usage(void)
{
    fprintf(stderr, "usage: ca_flood --connect IP:PORT --count N --seconds S [--from IP | "
                    "--from-range IP K] [--hello] [--reconnect]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *connect_to = NULL, *from = "127.0.0.1";
    long count = 0, seconds = 0;
    bool reconnect = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--connect") == 0 && i + 1 < argc) {
            connect_to = argv[++i];
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
            from = argv[++i];
        } else if (strcmp(argv[i], "--from-range") == 0 && i + 2 < argc) {
            from = argv[++i];
            n_src = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--hello") == 0) {
            hello = true;
        } else if (strcmp(argv[i], "--reconnect") == 0) {
            reconnect = true;
        } else {
            return usage();
        }
    }
    if (connect_to == NULL || count <= 0 || count > MAX_CONNS || seconds <= 0 || seconds > 120 ||
        n_src == 0 || n_src > 250) {
        return usage();
    }
    char host[64];
    const char *colon = strrchr(connect_to, ':');
    if (colon == NULL || (size_t)(colon - connect_to) >= sizeof(host)) {
        return usage();
    }
    memcpy(host, connect_to, (size_t)(colon - connect_to));
    host[colon - connect_to] = '\0';
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
    /* loopback only: this tool floods, so it never aims elsewhere */
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 || inet_pton(AF_INET, from, &src0) != 1 ||
        (ntohl(dst.sin_addr.s_addr) >> 24) != 127 || (ntohl(src0.s_addr) >> 24) != 127) {
        fprintf(stderr, "ca_flood: loopback IPv4 addresses only\n");
        return 2;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)count + 64 > rl.rlim_cur) {
            fprintf(stderr, "ca_flood: descriptor limit %llu too low for %ld connections\n",
                    (unsigned long long)rl.rlim_cur, count);
            return 2;
        }
    }

    size_t n = (size_t)count;
    struct pollfd *pf = calloc(n, sizeof(*pf));
    if (pf == NULL) {
        return 1;
    }
    unsigned long opened = 0, failed = 0, closed = 0;
    size_t open_now = 0, max_open = 0;
    for (size_t i = 0; i < n; i++) {
        pf[i].fd = open_one(i);
        pf[i].events = POLLIN;
        if (pf[i].fd >= 0) {
            opened++;
            open_now++;
        } else {
            failed++;
        }
    }
    max_open = open_now;
    printf("flood: open %zu\n", open_now);
    fflush(stdout);

    int64_t end = now_ms() + seconds * 1000, next_tick = now_ms();
    while (now_ms() < end) {
        (void)poll(pf, n, TICK_MS);
        for (size_t i = 0; i < n; i++) {
            if (pf[i].fd >= 0 && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                char b[256];
                ssize_t got = recv(pf[i].fd, b, sizeof(b), MSG_DONTWAIT);
                if (got <= 0 && !(got < 0 && (errno == EAGAIN || errno == EINTR))) {
                    close(pf[i].fd);
                    pf[i].fd = -1;
                    closed++;
                    open_now--;
                }
            }
            pf[i].revents = 0;
        }
        /* reopen in ticks of TICK_MS, whatever woke the poll */
        unsigned budget = 0;
        if (reconnect && now_ms() >= next_tick) {
            budget = REOPEN_PER_TICK;
            next_tick = now_ms() + TICK_MS;
        }
        for (size_t i = 0; i < n && budget > 0; i++) {
            if (pf[i].fd < 0) {
                budget--;
                pf[i].fd = open_one(i);
                if (pf[i].fd >= 0) {
                    opened++;
                    open_now++;
                } else {
                    failed++;
                }
            }
        }
        if (open_now > max_open) {
            max_open = open_now;
        }
    }
    printf(
        "flood: opened=%lu connect_failed=%lu closed_by_server=%lu max_open=%zu open_at_end=%zu\n",
        opened, failed, closed, max_open, open_now);
    for (size_t i = 0; i < n; i++) {
        if (pf[i].fd >= 0) {
            close(pf[i].fd);
        }
    }
    free(pf);
    return 0;
}
