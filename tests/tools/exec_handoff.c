/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec_handoff: the "identity borrowed by exec" attack on the Workload API,
 * for tests/integration/attack_exec_handoff.sh.
 *
 *   exec_handoff direct  http|grpc SOCK
 *       the control: this very process connects, says hello (GET /health,
 *       or the HTTP/2 preface and SETTINGS), then asks for its X.509-SVID
 *       on the same connection.
 *   exec_handoff handoff http|grpc SOCK TRUSTED [hello|fetch]
 *       the attack: connect, fork a helper that keeps the socket, then exec
 *       TRUSTED (a copy of this program that an entry trusts by unix:path),
 *       which just waits for the helper. The helper waits until the exec is
 *       done, then asks for the SVID. With "hello" the connecting process
 *       says hello itself and reads the answer before it execs, so the
 *       agent has surely accepted (and stamped) the connection by then and
 *       the helper's request is not the first bytes on it. With "fetch"
 *       (JSON API only) the opening exchange is a GET /v1/x509 that must
 *       succeed (an entry trusts this program too): the agent has then
 *       attested the connection and keeps what that proved for its later
 *       requests, and the helper's request must still be refused.
 *   exec_handoff wait
 *       what TRUSTED runs after the exec: wait for the helper (still our
 *       child across exec) and exit with its status.
 *
 * Prints one line "result: status=S key=K" (S the HTTP status or "-", K 1
 * when an SVID with a key came back) and exits 0 when a key came back, 3
 * when none did, 2 on a usage or setup error. Every wait is bounded.
 *
 * The gRPC request is written by hand (HPACK literals without Huffman) so
 * that the same bytes go out from whichever process holds the socket.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#define IO_TIMEOUT_S 10
#define RESP_MAX     (256u * 1024u)

static int die(const char *what)
{
    fprintf(stderr, "exec_handoff: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int dial(const char *path)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(a.sun_path)) {
        errno = ENAMETOOLONG;
        die("socket path");
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0); /* no CLOEXEC: the helper keeps it */
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        die("connect");
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* the agent closed: the read side reports it */
        }
        c += w;
        n -= (size_t)w;
    }
}

/* ---- HTTP/1.1 ----------------------------------------------------------- */

/* Sends GET path and reads one response (Content-Length framed). Returns
 * the status (0 when the connection ended first); body gets the body. */
static int http_get(int fd, const char *path, char *body, size_t cap)
{
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n\r\n", path);
    send_all(fd, req, (size_t)n);
    size_t got = 0;
    body[0] = '\0';
    for (;;) {
        char *end = strstr(body, "\r\n\r\n");
        if (end != NULL) {
            int status = 0;
            long clen = -1;
            if (strncmp(body, "HTTP/1.1 ", 9) == 0) {
                status = (int)strtol(body + 9, NULL, 10);
            }
            const char *cl = strcasestr(body, "\r\ncontent-length:");
            if (cl != NULL && cl < end) {
                clen = strtol(cl + 17, NULL, 10);
            }
            size_t hlen = (size_t)(end + 4 - body);
            if (clen >= 0 && got >= hlen + (size_t)clen) {
                memmove(body, body + hlen, (size_t)clen);
                body[clen] = '\0';
                return status;
            }
        }
        if (got + 1 >= cap) {
            return 0;
        }
        ssize_t r = recv(fd, body + got, cap - 1 - got, 0);
        if (r <= 0) {
            body[0] = '\0';
            return 0;
        }
        got += (size_t)r;
        body[got] = '\0';
    }
}

static int http_ask(int fd)
{
    static char body[RESP_MAX];
    int status = http_get(fd, "/v1/x509", body, sizeof(body));
    bool key = strstr(body, "PRIVATE KEY") != NULL;
    printf("result: status=%d key=%d\n", status, key ? 1 : 0);
    return key ? 0 : 3;
}

static bool http_hello(int fd)
{
    static char body[4096];
    return http_get(fd, "/health", body, sizeof(body)) == 200;
}

/* ---- HTTP/2 + gRPC ------------------------------------------------------ */

static void frame(uint8_t *out, size_t *off, uint8_t type, uint8_t flags, uint32_t sid,
                  const uint8_t *p, size_t n)
{
    uint8_t h[9] = {
        (uint8_t)(n >> 16),   (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
        (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
    memcpy(out + *off, h, 9);
    if (n > 0) {
        memcpy(out + *off + 9, p, n);
    }
    *off += 9 + n;
}

/* HPACK 6.2.2: literal header field without indexing, new name, no
 * Huffman; every name and value here is shorter than 127 bytes. */
static void hpack(uint8_t *out, size_t *off, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    out[(*off)++] = 0x00;
    out[(*off)++] = (uint8_t)nl;
    memcpy(out + *off, name, nl);
    *off += nl;
    out[(*off)++] = (uint8_t)vl;
    memcpy(out + *off, value, vl);
    *off += vl;
}

static bool read_full(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* Reads frames until one of type want (or the end); payload into buf. */
static int read_frame(int fd, uint8_t *buf, size_t cap, size_t *len, uint8_t *flags)
{
    uint8_t h[9];
    if (!read_full(fd, h, 9)) {
        return -1;
    }
    size_t n = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
    if (n > cap || !read_full(fd, buf, n)) {
        return -1;
    }
    *len = n;
    *flags = h[4];
    return h[3];
}

static bool grpc_hello(int fd)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    uint8_t out[64], buf[16384];
    size_t off = 0, len = 0;
    uint8_t fl = 0;
    memcpy(out, preface, 24);
    off = 24;
    frame(out, &off, 4, 0, 0, NULL, 0); /* SETTINGS */
    send_all(fd, out, off);
    /* the agent's SETTINGS: it has accepted and classified the connection */
    for (;;) {
        int t = read_frame(fd, buf, sizeof(buf), &len, &fl);
        if (t < 0) {
            return false;
        }
        if (t == 4 && !(fl & 1)) {
            return true;
        }
    }
}

static int grpc_ask(int fd)
{
    static uint8_t buf[RESP_MAX];
    uint8_t hdr[512], out[1024];
    size_t hl = 0, off = 0, len = 0;
    uint8_t fl = 0;
    static const uint8_t empty_msg[5] = {0, 0, 0, 0, 0}; /* X509SVIDRequest{} */
    hpack(hdr, &hl, ":method", "POST");
    hpack(hdr, &hl, ":scheme", "http");
    hpack(hdr, &hl, ":path", "/SpiffeWorkloadAPI/FetchX509SVID");
    hpack(hdr, &hl, ":authority", "localhost");
    hpack(hdr, &hl, "content-type", "application/grpc");
    hpack(hdr, &hl, "te", "trailers");
    hpack(hdr, &hl, "workload.spiffe.io", "true");
    frame(out, &off, 4, 1, 0, NULL, 0);      /* SETTINGS ack */
    frame(out, &off, 1, 4, 1, hdr, hl);      /* HEADERS, END_HEADERS */
    frame(out, &off, 0, 1, 1, empty_msg, 5); /* DATA, END_STREAM */
    send_all(fd, out, off);
    bool key = false;
    for (;;) {
        int t = read_frame(fd, buf, sizeof(buf), &len, &fl);
        if (t < 0 || t == 7 /* GOAWAY */ || t == 3 /* RST_STREAM */) {
            break;
        }
        if (t == 0 && len > 5) {
            key = true; /* an X509SVIDResponse: SVID and key */
            break;
        }
        if (t == 1 && (fl & 1)) {
            break; /* trailers: the stream ended without a message */
        }
    }
    printf("result: status=- key=%d\n", key ? 1 : 0);
    return key ? 0 : 3;
}

/* ---- the roles ---------------------------------------------------------- */

/* The opening exchange: GET /health, or the HTTP/2 preface and SETTINGS
 * both ways. False when the agent closed instead. */
static bool hello(bool grpc, int fd)
{
    return grpc ? grpc_hello(fd) : http_hello(fd);
}

static void must_hello(bool grpc, int fd)
{
    if (!hello(grpc, fd)) {
        errno = EPROTO;
        die("the opening exchange failed");
    }
}

static int ask(bool grpc, int fd)
{
    int rc = grpc ? grpc_ask(fd) : http_ask(fd);
    fflush(stdout);
    return rc;
}

/* Waits (bounded) until pid runs the executable at path. */
static bool wait_exec(pid_t pid, const char *path)
{
    char link[64], now[4096];
    snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
    for (int i = 0; i < 10000; i++) {
        ssize_t n = readlink(link, now, sizeof(now) - 1);
        if (n > 0) {
            now[n] = '\0';
            if (strcmp(now, path) == 0) {
                return true;
            }
        }
        struct timespec ts = {.tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "wait") == 0) {
        int st = 0;
        alarm(IO_TIMEOUT_S * 3);
        if (waitpid(-1, &st, 0) < 0) {
            die("waitpid");
        }
        return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
    }
    if (argc < 4 || (strcmp(argv[2], "http") != 0 && strcmp(argv[2], "grpc") != 0)) {
        fprintf(stderr,
                "usage: exec_handoff direct|handoff http|grpc SOCK [TRUSTED [hello|fetch]]\n");
        return 2;
    }
    bool grpc = strcmp(argv[2], "grpc") == 0;
    int fd = dial(argv[3]);
    if (strcmp(argv[1], "direct") == 0 && argc == 4) {
        must_hello(grpc, fd);
        return ask(grpc, fd);
    }
    if (strcmp(argv[1], "handoff") != 0 || argc < 5) {
        fprintf(stderr, "exec_handoff: bad arguments\n");
        return 2;
    }
    const char *trusted = argv[4];
    bool fetched = argc > 5 && strcmp(argv[5], "fetch") == 0;
    bool said_hello = fetched || (argc > 5 && strcmp(argv[5], "hello") == 0);
    if (fetched) {
        static char body[RESP_MAX];
        if (grpc || http_get(fd, "/v1/x509", body, sizeof(body)) != 200 ||
            strstr(body, "PRIVATE KEY") == NULL) {
            fprintf(stderr, "exec_handoff: the first fetch was not served\n");
            return 2;
        }
    } else if (said_hello) {
        must_hello(grpc, fd);
    }
    fflush(stdout);
    pid_t parent = getpid();
    pid_t helper = fork();
    if (helper < 0) {
        die("fork");
    }
    if (helper == 0) {
        if (!wait_exec(parent, trusted)) {
            fprintf(stderr, "exec_handoff: the parent never ran %s\n", trusted);
            _exit(2);
        }
        /* the helper writes every byte of the request, or all but the
         * opening exchange */
        if (!said_hello && !hello(grpc, fd)) {
            printf("result: status=0 key=0\n");
            fflush(stdout);
            _exit(3);
        }
        _exit(ask(grpc, fd));
    }
    execl(trusted, trusted, "wait", (char *)NULL);
    return die("exec");
}
