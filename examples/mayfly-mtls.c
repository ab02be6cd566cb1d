/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mayfly-mtls: a small C workload that does mutual TLS with its SPIFFE
 * identity, built on libmayfly (mf_workload + mf_tlsconfig) and wolfSSL.
 * The demo runs two of them side by side.
 *
 *   mayfly-mtls server --listen 127.0.0.1:PORT (--allow-id ID | --allow-td TD)
 *                      [--once] [--socket ADDR] [--wait DUR]
 *   mayfly-mtls client --connect 127.0.0.1:PORT (--expect-id ID | --expect-td TD)
 *                      [--message TEXT] [--socket ADDR] [--wait DUR]
 *
 * Both get their X509-SVID and trust bundle from the Workload API (--socket,
 * else SPIFFE_ENDPOINT_SOCKET) through an mf_x509_source, which keeps them
 * current across rotations. Every handshake checks the peer's SVID against
 * the bundle of its trust domain, then its SPIFFE ID against the policy
 * given on the command line, before a byte of application data moves.
 *
 * The exchange, one line each: the server greets the client ("hello <client
 * ID>, this is <server ID>"), the client sends its message, the server
 * answers "got your message: <message>". Each side prints what happened in
 * plain sentences on stdout; refusals read "refused peer <ID>: <reason>".
 *
 * The server handles one connection at a time and keeps serving across
 * rotations: each new connection presents the SVID current at that moment,
 * and it says so when its SVID rotates. SIGINT/SIGTERM stop it (read from a
 * signalfd). With --once it exits after the first connection: 0 when the
 * peer was accepted, 1 when not.
 *
 * Exit status of the client: 0 when the exchange completed with the server
 * it expected, 1 when the server was not who it expected, refused us, or
 * anything else failed; 2 for a usage error.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "api/core/mf_err.h"
#include "api/core/mf_log.h"
#include "api/core/mf_time.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "api/workload/mf_tlsconfig.h"
#include "api/workload/mf_workload.h"

#define IO_MS           10000 /* handshake and each read or write */
#define CONNECT_MS      10000
#define LINE_MAX_       1024 /* one protocol line */
#define HOST_CAP        256
#define DEFAULT_MESSAGE "hello from a mayfly workload"

/* ---- small helpers ------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage:\n"
            "  mayfly-mtls server --listen HOST:PORT (--allow-id ID | --allow-td TD) [--once]\n"
            "                     [--socket ADDR] [--wait DUR]\n"
            "  mayfly-mtls client --connect HOST:PORT (--expect-id ID | --expect-td TD)\n"
            "                     [--message TEXT]\n"
            "                     [--socket ADDR] [--wait DUR]\n"
            "The Workload API address comes from --socket or SPIFFE_ENDPOINT_SOCKET\n"
            "(unix:///path). --wait is how long to wait for an identity (default 30s).\n");
}

/* Copies text from a peer into out for printing: printable ASCII kept,
 * anything else as \xNN, so that a peer cannot write to our terminal. */
static void printable(const char *in, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t w = 0;
    for (size_t i = 0; i < n && w + 5 < cap; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            out[w++] = (char)ch;
        } else {
            out[w++] = '\\';
            out[w++] = 'x';
            out[w++] = hex[ch >> 4];
            out[w++] = hex[ch & 0xf];
        }
    }
    out[w] = '\0';
}

/* The detail of the error just returned (or its description when there is
 * none). */
static const char *reason(mf_res r)
{
    const char *d = mf_err_detail();
    return d[0] != '\0' ? d : mf_err_str(r.err);
}

/* Splits "host:port" or "[v6]:port". */
static bool split_host_port(const char *hp, char *host, size_t hcap, const char **port)
{
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || colon[1] == '\0') {
        return false;
    }
    const char *h = hp;
    size_t hl = (size_t)(colon - hp);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hcap) {
        return false;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = colon + 1;
    return true;
}

static struct addrinfo *resolve(const char *hp, bool passive)
{
    char host[HOST_CAP];
    const char *port = NULL;
    if (!split_host_port(hp, host, sizeof(host), &port)) {
        fprintf(stderr, "mayfly-mtls: address must be HOST:PORT with a numeric host: %s\n", hp);
        return NULL;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    struct addrinfo *res = NULL;
    int e = getaddrinfo(host, port, &hints, &res);
    if (e != 0) {
        fprintf(stderr, "mayfly-mtls: cannot use address %s: %s\n", hp, gai_strerror(e));
        return NULL;
    }
    return res;
}

static void describe_svid(const struct mf_x509_svid *svid, char *serial, char *until)
{
    mf_cert_serial_hex(svid->chain.v[0], serial);
    mf_time_format(svid->expires_at, until);
}

/* Reads one '\n'-terminated line (at most cap-1 bytes, the newline dropped). */
static mf_res read_line(struct mf_tls_conn *c, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    *len = 0;
    for (;;) {
        char ch;
        size_t got = 0;
        MF_TRY(mf_tls_conn_read(c, &ch, 1, IO_MS, &got));
        if (ch == '\n') {
            break;
        }
        MF_ENSURE_MSG(n + 1 < cap, MF_ERR_PROTO_TOO_LARGE, "line over %zu bytes", cap - 1);
        out[n++] = ch;
    }
    out[n] = '\0';
    *len = n;
    return MF_RES_OK;
}

static mf_res write_line(struct mf_tls_conn *c, const char *a, const char *b)
{
    MF_TRY(mf_tls_conn_write(c, a, strlen(a), IO_MS));
    if (b != NULL) {
        MF_TRY(mf_tls_conn_write(c, b, strlen(b), IO_MS));
    }
    return mf_tls_conn_write(c, "\n", 1, IO_MS);
}

/* ---- identity from the Workload API --------------------------------------------- */

struct watch {
    pthread_mutex_t mu;
    char serial[MF_SERIAL_HEX_MAX]; /* protected by mu: the serial last seen */
    bool announce;                  /* print rotations (the server) */
};

/* Runs on the source's thread for every new snapshot. */
static void on_update(void *arg, struct mf_x509_context *x)
{
    struct watch *w = arg;
    pthread_mutex_lock(&w->mu);
    if (x == NULL) {
        if (w->announce) {
            printf("my identity was withdrawn by the Workload API; new connections will fail "
                   "until it is granted again\n");
        }
        w->serial[0] = '\0';
    } else {
        const struct mf_x509_svid *svid = mf_x509_context_default(x);
        char serial[MF_SERIAL_HEX_MAX], until[MF_RFC3339_LEN];
        describe_svid(svid, serial, until);
        if (w->announce && w->serial[0] != '\0' && strcmp(serial, w->serial) != 0) {
            printf("my SVID rotated: %s now has certificate serial %s, valid until %s; new "
                   "connections present it\n",
                   svid->id.str, serial, until);
        }
        memcpy(w->serial, serial, sizeof(serial));
    }
    pthread_mutex_unlock(&w->mu);
}

/* Starts the source and waits for the first identity; prints it. */
static int start_identity(const char *socket_addr, int64_t wait_s, const char *role,
                          struct watch *w, struct mf_x509_source **out)
{
    struct mf_x509_source_opts opts = {.on_update = on_update, .arg = w};
    mf_err_clear();
    mf_res r = mf_x509_source_new(socket_addr, &opts, out);
    if (!mf_ok(r)) {
        printf("cannot use the Workload API: %s\n", reason(r));
        return 1;
    }
    r = mf_x509_source_wait(*out, wait_s > INT_MAX / 1000 ? INT_MAX : (int)(wait_s * 1000));
    if (!mf_ok(r)) {
        printf("no identity from the Workload API: %s\n", reason(r));
        return 1;
    }
    struct mf_x509_context *x = NULL;
    r = mf_x509_source_get(*out, &x);
    if (!mf_ok(r)) {
        printf("no identity from the Workload API: %s\n", reason(r));
        return 1;
    }
    const struct mf_x509_svid *svid = mf_x509_context_default(x);
    char serial[MF_SERIAL_HEX_MAX], until[MF_RFC3339_LEN];
    describe_svid(svid, serial, until);
    printf("%s: my SPIFFE ID is %s (from the Workload API; certificate serial %s, valid until "
           "%s)\n",
           role, svid->id.str, serial, until);
    mf_x509_context_free(x);
    return 0;
}

/* ---- server ------------------------------------------------------------------------ */

struct server_opts {
    const char *listen;
    const char *allow_id;
    const char *allow_td;
    const char *socket;
    int64_t wait_s;
    bool once;
};

static int listen_on(const char *hp)
{
    struct addrinfo *res = resolve(hp, true);
    if (res == NULL) {
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 16) != 0) {
        fprintf(stderr, "mayfly-mtls: cannot listen on %s: %s\n", hp, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* "host:port" (IPv6 hosts in brackets) of an IP socket address. */
static void address_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    bool v6 = false;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        v6 = true;
    }
    snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", host, port);
}

static void print_bound(int fd, const char *policy)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char where[INET6_ADDRSTRLEN + 8] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        address_text(&ss, where, sizeof(where));
    }
    printf("server: listening on %s; accepting peers with %s\n", where, policy);
}

/* One connection: handshake (the peer is verified and authorized inside
 * it), greeting, message, answer. True when the peer was accepted and the
 * exchange completed. */
static bool serve_one(struct mf_tls_config *cfg, int fd, const char *from)
{
    struct mf_tls_conn *c = NULL;
    mf_err_clear();
    mf_res r = mf_tls_accept(cfg, fd, IO_MS, &c);
    if (!mf_ok(r)) {
        const char *why = reason(r);
        if (strncmp(why, "refused peer", 12) == 0) {
            printf("%s\n", why); /* our verdict: who it claimed to be, and why not */
        } else {
            printf("the connection from %s ended before its peer was accepted: %s\n", from, why);
        }
        return false;
    }
    const char *peer = mf_tls_conn_peer_id(c)->str;
    const char *me = mf_tls_conn_svid(c)->id.str;
    char serial[MF_SERIAL_HEX_MAX], until[MF_RFC3339_LEN];
    describe_svid(mf_tls_conn_svid(c), serial, until);
    printf("accepted peer %s: it proved that SPIFFE ID with its X509-SVID, and it is authorized "
           "(I presented %s, certificate serial %s)\n",
           peer, me, serial);
    bool ok = false;
    char hello[2 * MF_SPIFFE_ID_MAX + 32];
    snprintf(hello, sizeof(hello), "hello %s, this is %s", peer, me);
    char line[LINE_MAX_], shown[4 * LINE_MAX_ + 1];
    size_t len = 0;
    mf_err_clear();
    if (mf_ok(r = write_line(c, hello, NULL)) &&
        mf_ok(r = read_line(c, line, sizeof(line), &len))) {
        printable(line, len, shown, sizeof(shown));
        printf("received from %s: \"%s\"\n", peer, shown);
        r = write_line(c, "got your message: ", line);
        if (mf_ok(r)) {
            printf("answered %s\n", peer);
            ok = true;
        }
    }
    if (!ok) {
        printf("the exchange with %s failed: %s\n", peer, reason(r));
    }
    mf_tls_conn_close(c);
    return ok;
}

static int run_server(const struct server_opts *o)
{
    int rc = 1;
    int lfd = -1, sfd = -1;
    struct mf_x509_source *src = NULL;
    struct mf_tls_config *cfg = NULL;
    struct mf_authorizer az;
    struct watch w = {.mu = PTHREAD_MUTEX_INITIALIZER, .announce = true};
    char policy[MF_SPIFFE_ID_MAX + 64];
    mf_res r;

    if (o->allow_id != NULL) {
        r = mf_authorize_id(o->allow_id, &az);
        snprintf(policy, sizeof(policy), "SPIFFE ID %s", az.id.str);
    } else {
        r = mf_authorize_member_of(o->allow_td, &az);
        snprintf(policy, sizeof(policy), "any SPIFFE ID in trust domain %s", az.td);
    }
    if (!mf_ok(r)) {
        fprintf(stderr, "mayfly-mtls: bad policy: %s\n", reason(r));
        return 2;
    }

    /* signals go to the signalfd; block them before any thread starts */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
        (sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
        fprintf(stderr, "mayfly-mtls: signalfd: %s\n", strerror(errno));
        goto out;
    }
    if ((lfd = listen_on(o->listen)) < 0) {
        goto out;
    }
    if (start_identity(o->socket, o->wait_s, "server", &w, &src) != 0) {
        goto out;
    }
    r = mf_tls_config_new(MF_TLS_SERVER, src, &az, &cfg);
    if (!mf_ok(r)) {
        printf("cannot set up TLS: %s\n", reason(r));
        goto out;
    }
    print_bound(lfd, policy);
    fflush(stdout);

    for (;;) {
        struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "mayfly-mtls: poll: %s\n", strerror(errno));
            goto out;
        }
        if (p[1].revents != 0) {
            struct signalfd_siginfo si;
            (void)!read(sfd, &si, sizeof(si));
            printf("server: stopping\n");
            rc = 0;
            goto out;
        }
        if (p[0].revents == 0) {
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
                fprintf(stderr, "mayfly-mtls: accept: %s\n", strerror(errno));
            }
            continue;
        }
        char from[INET6_ADDRSTRLEN + 8];
        address_text(&ss, from, sizeof(from));
        bool ok = serve_one(cfg, fd, from); /* takes fd */
        fflush(stdout);
        if (o->once) {
            rc = ok ? 0 : 1;
            goto out;
        }
    }
out:
    fflush(stdout);
    mf_tls_config_free(cfg);
    mf_x509_source_free(src);
    if (lfd >= 0) {
        close(lfd);
    }
    if (sfd >= 0) {
        close(sfd);
    }
    return rc;
}

/* ---- client ------------------------------------------------------------------------ */

struct client_opts {
    const char *connect;
    const char *expect_id;
    const char *expect_td; /* any member of this trust domain, e.g. a federated one */
    const char *message;
    const char *socket;
    int64_t wait_s;
};

/* A TCP connection to hp within CONNECT_MS; -1 on failure (printed). */
static int dial(const char *hp)
{
    struct addrinfo *res = resolve(hp, false);
    if (res == NULL) {
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            socklen_t sl = sizeof(err);
            if (poll(&p, 1, CONNECT_MS) <= 0) {
                err = ETIMEDOUT;
            } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0) {
                err = errno;
            }
        }
    }
    freeaddrinfo(res);
    if (err != 0) {
        printf("cannot connect to %s: %s\n", hp, strerror(err));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static int run_client(const struct client_opts *o)
{
    int rc = 1;
    struct mf_x509_source *src = NULL;
    struct mf_tls_config *cfg = NULL;
    struct mf_tls_conn *c = NULL;
    struct mf_authorizer az;
    struct watch w = {.mu = PTHREAD_MUTEX_INITIALIZER, .announce = false};
    char line[LINE_MAX_], shown[4 * LINE_MAX_ + 1];
    size_t len = 0;

    mf_res r = o->expect_id != NULL ? mf_authorize_id(o->expect_id, &az)
                                    : mf_authorize_member_of(o->expect_td, &az);
    if (!mf_ok(r)) {
        fprintf(stderr, "mayfly-mtls: bad %s: %s\n",
                o->expect_id != NULL ? "--expect-id" : "--expect-td", reason(r));
        return 2;
    }
    if (strchr(o->message, '\n') != NULL || strlen(o->message) + 1 >= LINE_MAX_) {
        fprintf(stderr, "mayfly-mtls: --message must be one line under %d bytes\n", LINE_MAX_);
        return 2;
    }
    if (start_identity(o->socket, o->wait_s, "client", &w, &src) != 0) {
        goto out;
    }
    r = mf_tls_config_new(MF_TLS_CLIENT, src, &az, &cfg);
    if (!mf_ok(r)) {
        printf("cannot set up TLS: %s\n", reason(r));
        goto out;
    }
    int fd = dial(o->connect);
    if (fd < 0) {
        goto out;
    }
    mf_err_clear();
    r = mf_tls_connect(cfg, fd, IO_MS, &c); /* takes fd */
    if (!mf_ok(r)) {
        int cat = mf_err_category(r.err);
        if (cat == MF_CAT_POLICY || cat == MF_CAT_AUTH) {
            printf("%s\n", reason(r));
            printf("the server at %s is not who I expected; I sent it nothing\n", o->connect);
        } else {
            printf("the TLS handshake with %s failed: %s\n", o->connect, reason(r));
        }
        goto out;
    }
    printf("connected to %s: the server proved SPIFFE ID %s, as expected\n", o->connect,
           mf_tls_conn_peer_id(c)->str);

    /* the server speaks first; if it refused our certificate, this read
     * says so */
    mf_err_clear();
    r = read_line(c, line, sizeof(line), &len);
    if (!mf_ok(r)) {
        if (mf_err_category(r.err) == MF_CAT_AUTH) {
            printf("the server refused us: %s\n", reason(r));
        } else {
            printf("the server sent no greeting: %s\n", reason(r));
        }
        goto out;
    }
    printable(line, len, shown, sizeof(shown));
    printf("server says: \"%s\"\n", shown);
    r = write_line(c, o->message, NULL);
    if (!mf_ok(r)) {
        printf("could not send the message: %s\n", reason(r));
        goto out;
    }
    printable(o->message, strlen(o->message), shown, sizeof(shown));
    printf("sent: \"%s\"\n", shown);
    r = read_line(c, line, sizeof(line), &len);
    if (!mf_ok(r)) {
        printf("no answer from the server: %s\n", reason(r));
        goto out;
    }
    printable(line, len, shown, sizeof(shown));
    printf("server replied: \"%s\"\n", shown);
    rc = 0;
out:
    fflush(stdout);
    mf_tls_conn_close(c);
    mf_tls_config_free(cfg);
    mf_x509_source_free(src);
    return rc;
}

/* ---- command line ---------------------------------------------------------------------- */

/* Takes the value of option argv[*i]; NULL (after a message) when missing. */
static const char *value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "mayfly-mtls: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static bool parse_wait(const char *s, int64_t *out)
{
    mf_res r = mf_duration_parse(s, out);
    if (!mf_ok(r)) {
        fprintf(stderr, "mayfly-mtls: bad --wait %s: %s\n", s, reason(r));
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    mf_log_setup(MF_LOG_WARN, MF_LOG_TEXT);
    bool server = strcmp(argv[1], "server") == 0;
    if (!server && strcmp(argv[1], "client") != 0) {
        usage();
        return 2;
    }
    struct server_opts so = {.wait_s = 30};
    struct client_opts co = {.message = DEFAULT_MESSAGE, .wait_s = 30};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--socket") == 0) {
            slot = server ? &so.socket : &co.socket;
        } else if (strcmp(a, "--wait") == 0) {
            const char *v = value(argc, argv, &i);
            if (v == NULL || !parse_wait(v, server ? &so.wait_s : &co.wait_s)) {
                return 2;
            }
            continue;
        } else if (server && strcmp(a, "--listen") == 0) {
            slot = &so.listen;
        } else if (server && strcmp(a, "--allow-id") == 0) {
            slot = &so.allow_id;
        } else if (server && strcmp(a, "--allow-td") == 0) {
            slot = &so.allow_td;
        } else if (server && strcmp(a, "--once") == 0) {
            so.once = true;
            continue;
        } else if (!server && strcmp(a, "--connect") == 0) {
            slot = &co.connect;
        } else if (!server && strcmp(a, "--expect-id") == 0) {
            slot = &co.expect_id;
        } else if (!server && strcmp(a, "--expect-td") == 0) {
            slot = &co.expect_td;
        } else if (!server && strcmp(a, "--message") == 0) {
            slot = &co.message;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        } else {
            fprintf(stderr, "mayfly-mtls: unknown option %s\n", a);
            usage();
            return 2;
        }
        if ((*slot = value(argc, argv, &i)) == NULL) {
            return 2;
        }
    }
    if (server) {
        if (so.listen == NULL || (so.allow_id == NULL) == (so.allow_td == NULL)) {
            fprintf(stderr, "mayfly-mtls: server needs --listen and one of --allow-id or "
                            "--allow-td\n");
            return 2;
        }
        return run_server(&so);
    }
    if (co.connect == NULL || (co.expect_id == NULL) == (co.expect_td == NULL)) {
        fprintf(stderr, "mayfly-mtls: client needs --connect and one of --expect-id or "
                        "--expect-td\n");
        return 2;
    }
    return run_client(&co);
}
