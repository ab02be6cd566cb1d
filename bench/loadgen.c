/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadgen: a CSR-signing load generator, the same client for mayfly-ca and
 * for cfssl, so that the two servers are compared through one yardstick.
 *
 *   loadgen mayfly --server H:P --bundle PEM --dir DIR --entry ID --spiffe-id ID
 *                  [--conns N] [--batch B] [--seconds S] [--warmup S] [--server-pid PID]
 *   loadgen cfssl  --addr 127.0.0.1:P [--conns N] [--seconds S] [--warmup S]
 *                  [--server-pid PID]
 *
 * mayfly: N threads, each with its own mTLS connection (mf_http, the agent
 * SVID in DIR/agent.pem and DIR/agent.key, as tests/tools/ca_client
 * obtains it with a join token), POSTing /v1/sign batches of B CSRs for one
 * entry over keep-alive. cfssl: N threads, each with a plain HTTP/1.1
 * keep-alive connection, POSTing /api/v1/cfssl/sign with one CSR (cfssl's
 * sign endpoint has no batches). The CSRs (P-256 keys, one URI SAN) are
 * generated before the clock starts and reused round-robin: key generation
 * is not in the measured loop, and neither server caches anything per CSR.
 *
 * Counting starts after the warm-up (TLS handshakes done) and lasts S
 * seconds; a certificate counts when its response has arrived inside the
 * window. The result is one line:
 *
 *   loadgen target=T conns=N batch=B certs_per_s=X req_p50_ms=.. req_p99_ms=..
 *           errors=E rejected=R server_cpu_us_per_cert=.. client_cpu_us_per_cert=..
 *
 * server_cpu_us_per_cert comes from /proc/<pid>/stat of --server-pid over the
 * window: the server's own cost per certificate, which does not depend on
 * how the two cores are shared with this client.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "api/pki/mf_bundle.h"
#include "api/net/mf_http.h"
#include "api/pki/mf_x509.h"
#include "bench/bench_util.h"

#define MAX_CONNS  64
#define CSR_POOL   512
#define RESP_MAX   (16u * 1024u * 1024u)

struct opts {
    const char *target, *server, *bundle, *dir, *entry, *spiffe_id, *addr, *td;
    long conns, batch, seconds, warmup, server_pid;
};

struct shared {
    const struct opts *o;
    /* mayfly */
    struct mf_certs chain;
    struct mf_key *key;
    struct mf_bundle_set trust;
    char server_id[300];
    char *sign_body; /* one /v1/sign body, shared read-only */
    /* cfssl */
    char **cfssl_bodies;
    size_t n_cfssl;
    struct sockaddr_in sin;
    /* window */
    _Atomic int phase; /* 0 warm-up, 1 measuring, 2 stop */
};

struct worker {
    struct shared *sh;
    pthread_t th;
    size_t idx;
    uint64_t certs, errors, rejected; /* inside the window */
    struct bench_lat lat;             /* ms, inside the window */
    mf_res fatal;
};

/* ---- the CSR pool ---------------------------------------------------------- */

static mf_res make_csr(const char *id, struct mf_buf *der)
{
    struct mf_key *k = NULL;
    MF_TRY(mf_key_generate(MF_KEY_EC_P256, &k));
    mf_res r = mf_csr_create(k, id, der);
    mf_key_free(k);
    return r;
}

/* {"requests":[{"entry_id":E,"csr":B64}...]} with B CSRs. */
static mf_res build_sign_body(struct shared *sh)
{
    mf_res rc;
    const struct opts *o = sh->o;
    struct mf_buf der, b64;
    json_t *arr = json_array(), *obj = NULL;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    mf_buf_init(&b64, 2 * MF_MAX_CSR, 0);
    MF_ENSURE_OUT(arr != NULL, MF_ERR_NOMEM);
    for (long i = 0; i < o->batch; i++) {
        mf_buf_reset(&der);
        mf_buf_reset(&b64);
        MF_TRY_OUT(make_csr(o->spiffe_id, &der));
        MF_TRY_OUT(mf_b64_encode(der.data, der.len, &b64));
        json_t *it = json_pack("{s:s,s:s}", "entry_id", o->entry, "csr", mf_buf_cstr(&b64));
        MF_ENSURE_OUT(it != NULL && json_array_append_new(arr, it) == 0, MF_ERR_NOMEM);
    }
    obj = json_pack("{s:O}", "requests", arr);
    MF_ENSURE_OUT(obj != NULL, MF_ERR_NOMEM);
    sh->sign_body = json_dumps(obj, JSON_COMPACT);
    MF_ENSURE_OUT(sh->sign_body != NULL, MF_ERR_NOMEM);
    rc = MF_RES_OK;
out:
    json_decref(arr);
    json_decref(obj);
    mf_buf_cleanup(&der);
    mf_buf_cleanup(&b64);
    return rc;
}

/* CSR_POOL bodies {"certificate_request":"<PEM>"} for cfssl. */
static mf_res build_cfssl_bodies(struct shared *sh)
{
    mf_res rc;
    struct mf_buf der, pem;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    mf_buf_init(&pem, 2 * MF_MAX_CSR, 0);
    sh->cfssl_bodies = calloc(CSR_POOL, sizeof(char *));
    MF_ENSURE_OUT(sh->cfssl_bodies != NULL, MF_ERR_NOMEM);
    for (size_t i = 0; i < CSR_POOL; i++) {
        mf_buf_reset(&der);
        mf_buf_reset(&pem);
        MF_TRY_OUT(make_csr("spiffe://example.org/bench/cfssl", &der));
        MF_TRY_OUT(mf_pem_encode("CERTIFICATE REQUEST", der.data, der.len, &pem));
        json_t *o = json_pack("{s:s}", "certificate_request", mf_buf_cstr(&pem));
        MF_ENSURE_OUT(o != NULL, MF_ERR_NOMEM);
        sh->cfssl_bodies[i] = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        MF_ENSURE_OUT(sh->cfssl_bodies[i] != NULL, MF_ERR_NOMEM);
        sh->n_cfssl++;
    }
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    mf_buf_cleanup(&pem);
    return rc;
}

/* ---- a plain HTTP/1.1 client (cfssl) ------------------------------------------ */

struct plain {
    int fd;
    char buf[65536];
    size_t have;
};

static mf_res plain_connect(const struct sockaddr_in *sin, struct plain *p)
{
    p->have = 0;
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    MF_ENSURE(p->fd >= 0, MF_ERR_IO);
    int one = 1;
    (void)setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = 30};
    (void)setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(p->fd, (const struct sockaddr *)sin, sizeof(*sin)) != 0) {
        close(p->fd);
        p->fd = -1;
        MF_BAIL_MSG(MF_ERR_IO, "cannot connect to cfssl");
    }
    return MF_RES_OK;
}

static mf_res write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        MF_ENSURE(w > 0, MF_ERR_IO);
        p += w;
        n -= (size_t)w;
    }
    return MF_RES_OK;
}

/* Ensures at least need buffered bytes. */
static mf_res fill(struct plain *p, size_t need)
{
    MF_ENSURE(need <= sizeof(p->buf), MF_ERR_PROTO_TOO_LARGE);
    while (p->have < need) {
        ssize_t r = read(p->fd, p->buf + p->have, sizeof(p->buf) - p->have);
        MF_ENSURE(r > 0, r == 0 ? MF_ERR_IO_EOF : MF_ERR_IO);
        p->have += (size_t)r;
    }
    return MF_RES_OK;
}

static void drop(struct plain *p, size_t n)
{
    memmove(p->buf, p->buf + n, p->have - n);
    p->have -= n;
}

/* Index just past "\r\n" at or after from, or 0 when not buffered yet. */
static size_t line_end(const struct plain *p, size_t from)
{
    for (size_t i = from; i + 1 < p->have; i++) {
        if (p->buf[i] == '\r' && p->buf[i + 1] == '\n') {
            return i + 2;
        }
    }
    return 0;
}

static mf_res read_line(struct plain *p, size_t *end)
{
    for (;;) {
        size_t e = line_end(p, 0);
        if (e != 0) {
            *end = e;
            return MF_RES_OK;
        }
        MF_TRY(fill(p, p->have + 1));
    }
}

/* One POST; *status and *ok (the body says "success":true). */
static mf_res plain_post(struct plain *p, const char *body, int *status, bool *ok)
{
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "POST /api/v1/cfssl/sign HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      strlen(body));
    MF_ENSURE(hl > 0 && (size_t)hl < sizeof(head), MF_ERR_INTERNAL);
    MF_TRY(write_all(p->fd, head, (size_t)hl));
    MF_TRY(write_all(p->fd, body, strlen(body)));
    size_t e = 0;
    MF_TRY(read_line(p, &e));
    MF_ENSURE(e > 12 && memcmp(p->buf, "HTTP/1.1 ", 9) == 0, MF_ERR_PROTO_HTTP);
    *status = (p->buf[9] - '0') * 100 + (p->buf[10] - '0') * 10 + (p->buf[11] - '0');
    drop(p, e);
    long clen = -1;
    bool chunked = false;
    for (;;) {
        MF_TRY(read_line(p, &e));
        if (e == 2) {
            drop(p, 2);
            break;
        }
        if (e > 16 && strncasecmp(p->buf, "Content-Length:", 15) == 0) {
            char num[32];
            size_t n = e - 2 - 15;
            MF_ENSURE(n < sizeof(num), MF_ERR_PROTO_HTTP);
            memcpy(num, p->buf + 15, n);
            num[n] = '\0';
            clen = strtol(num, NULL, 10);
        } else if (e > 26 && strncasecmp(p->buf, "Transfer-Encoding:", 18) == 0) {
            chunked = memmem(p->buf, e, "chunked", 7) != NULL;
        }
        drop(p, e);
    }
    *ok = false;
    if (!chunked) {
        MF_ENSURE(clen >= 0 && (size_t)clen < sizeof(p->buf), MF_ERR_PROTO_HTTP);
        MF_TRY(fill(p, (size_t)clen));
        *ok = memmem(p->buf, (size_t)clen, "\"success\":true", 14) != NULL;
        drop(p, (size_t)clen);
        return MF_RES_OK;
    }
    for (;;) {
        MF_TRY(read_line(p, &e));
        char num[32];
        MF_ENSURE(e - 2 < sizeof(num), MF_ERR_PROTO_HTTP);
        memcpy(num, p->buf, e - 2);
        num[e - 2] = '\0';
        long n = strtol(num, NULL, 16);
        drop(p, e);
        MF_ENSURE(n >= 0 && (size_t)n + 2 < sizeof(p->buf), MF_ERR_PROTO_HTTP);
        MF_TRY(fill(p, (size_t)n + 2));
        if (memmem(p->buf, (size_t)n, "\"success\":true", 14) != NULL) {
            *ok = true;
        }
        drop(p, (size_t)n + 2);
        if (n == 0) {
            return MF_RES_OK;
        }
    }
}

/* ---- workers ------------------------------------------------------------------ */

static size_t count_str(const uint8_t *p, size_t n, const char *s)
{
    size_t c = 0, l = strlen(s);
    const uint8_t *end = p + n;
    while (p < end) {
        const uint8_t *h = memmem(p, (size_t)(end - p), s, l);
        if (h == NULL) {
            break;
        }
        c++;
        p = h + l;
    }
    return c;
}

static void record(struct worker *w, int64_t t0, uint64_t certs, uint64_t errors, bool rejected)
{
    if (atomic_load(&w->sh->phase) != 1) {
        return;
    }
    w->certs += certs;
    w->errors += errors;
    w->rejected += rejected ? 1 : 0;
    bench_lat_push(&w->lat, (double)(bench_ns() - t0) / 1e6);
}

static void *run_mayfly(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    mf_x509_global_init();
    struct mf_tls_client_cfg cfg = {
        .chain = &sh->chain, .key = sh->key, .trust = &sh->trust,
        .expect_server_id = sh->server_id,
        .server_id_below = true};
    struct mf_http_conn *c = NULL;
    struct mf_http_resp resp;
    mf_http_resp_init(&resp, RESP_MAX);
    size_t blen = strlen(sh->sign_body);
    while (atomic_load(&sh->phase) != 2) {
        if (c == NULL || !mf_http_reusable(c)) {
            mf_http_close(c);
            c = NULL;
            w->fatal = mf_http_connect_tls(sh->o->server, &cfg, 10000, &c);
            if (!mf_ok(w->fatal)) {
                break;
            }
        }
        int64_t t0 = bench_ns();
        mf_res r = mf_http_request(c, "POST", "/v1/sign", NULL, sh->sign_body, blen, 60000, &resp);
        if (!mf_ok(r)) {
            record(w, t0, 0, (uint64_t)sh->o->batch, false);
            mf_http_close(c);
            c = NULL;
            continue;
        }
        if (resp.status == 429 || resp.status == 503) {
            record(w, t0, 0, 0, true);
            bench_sleep_ms(5);
            continue;
        }
        uint64_t ok = resp.status == 200 ? count_str(resp.body.data, resp.body.len,
                                                     "\"x509_svid\":")
                                         : 0;
        record(w, t0, ok, (uint64_t)sh->o->batch - ok, false);
    }
    mf_http_resp_cleanup(&resp);
    mf_http_close(c);
    return NULL;
}

static void *run_cfssl(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    struct plain *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        w->fatal = MF_RAISE(MF_ERR_NOMEM);
        return NULL;
    }
    p->fd = -1;
    size_t i = w->idx * 37;
    while (atomic_load(&sh->phase) != 2) {
        if (p->fd < 0) {
            w->fatal = plain_connect(&sh->sin, p);
            if (!mf_ok(w->fatal)) {
                break;
            }
        }
        int64_t t0 = bench_ns();
        int status = 0;
        bool ok = false;
        mf_res r = plain_post(p, sh->cfssl_bodies[i++ % sh->n_cfssl], &status, &ok);
        if (!mf_ok(r)) {
            record(w, t0, 0, 1, false);
            close(p->fd);
            p->fd = -1;
            continue;
        }
        record(w, t0, status == 200 && ok ? 1 : 0, status == 200 && ok ? 0 : 1, false);
    }
    if (p->fd >= 0) {
        close(p->fd);
    }
    free(p);
    return NULL;
}

/* ---- set-up --------------------------------------------------------------------- */

static mf_res load_identity(struct shared *sh)
{
    mf_res rc;
    const struct opts *o = sh->o;
    struct mf_buf text;
    struct mf_bundle *b = NULL;
    char path[4096];
    mf_buf_init(&text, 0, 0);
    MF_TRY_OUT(bench_read_file(o->bundle, MF_MAX_BUNDLE, 0, &text));
    MF_TRY_OUT(mf_bundle_from_pem(o->td, mf_buf_cstr(&text), text.len, &b));
    MF_TRY_OUT(mf_bundle_set_put(&sh->trust, b));
    mf_buf_cleanup(&text);
    snprintf(path, sizeof(path), "%s/agent.pem", o->dir);
    MF_TRY_OUT(bench_read_file(path, MF_MAX_BUNDLE, 0, &text));
    MF_TRY_OUT(mf_certs_from_pem(mf_buf_cstr(&text), text.len, &sh->chain));
    mf_buf_cleanup(&text);
    snprintf(path, sizeof(path), "%s/agent.key", o->dir);
    MF_TRY_OUT(bench_read_file(path, 16384, MF_BUF_SECRET, &text));
    MF_TRY_OUT(mf_key_from_pem(mf_buf_cstr(&text), text.len, &sh->key));
    snprintf(sh->server_id, sizeof(sh->server_id), "spiffe://%s/mayfly/server", o->td);
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&text);
    mf_bundle_free(b);
    return rc;
}

static mf_res parse_addr(const char *a, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(a, ':');
    MF_ENSURE_MSG(colon != NULL && (size_t)(colon - a) < sizeof(host), MF_ERR_USAGE_ARG,
                  "--addr wants IPv4:PORT");
    memcpy(host, a, (size_t)(colon - a));
    host[colon - a] = '\0';
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)bench_long("--addr port", colon + 1, 1, 65535));
    MF_ENSURE_MSG(inet_pton(AF_INET, host, &sin->sin_addr) == 1, MF_ERR_USAGE_ARG,
                  "--addr wants IPv4:PORT");
    /* loopback only: this is a load generator */
    MF_ENSURE_MSG((ntohl(sin->sin_addr.s_addr) >> 24) == 127, MF_ERR_USAGE_ARG,
                  "--addr must be a loopback address");
    return MF_RES_OK;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int usage(void)
{
    fprintf(stderr, "usage: loadgen mayfly --server H:P --bundle PEM --dir DIR --entry ID "
                    "--spiffe-id ID [--conns N] [--batch B] [--seconds S] [--warmup S] "
                    "[--server-pid PID]\n"
                    "       loadgen cfssl --addr 127.0.0.1:P [--conns N] [--seconds S] "
                    "[--warmup S] [--server-pid PID]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        return usage();
    }
    struct opts o = {.target = argv[1], .td = "example.org", .conns = 4, .batch = 100,
                     .seconds = 5, .warmup = 1, .server_pid = 0};
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--server")) {
            o.server = v;
        } else if (!strcmp(k, "--bundle")) {
            o.bundle = v;
        } else if (!strcmp(k, "--dir")) {
            o.dir = v;
        } else if (!strcmp(k, "--entry")) {
            o.entry = v;
        } else if (!strcmp(k, "--spiffe-id")) {
            o.spiffe_id = v;
        } else if (!strcmp(k, "--addr")) {
            o.addr = v;
        } else if (!strcmp(k, "--conns")) {
            o.conns = bench_long(k, v, 1, MAX_CONNS);
        } else if (!strcmp(k, "--batch")) {
            o.batch = bench_long(k, v, 1, MF_MAX_BATCH);
        } else if (!strcmp(k, "--seconds")) {
            o.seconds = bench_long(k, v, 1, 600);
        } else if (!strcmp(k, "--warmup")) {
            o.warmup = bench_long(k, v, 0, 60);
        } else if (!strcmp(k, "--server-pid")) {
            o.server_pid = bench_long(k, v, 0, 1L << 30);
        } else {
            return usage();
        }
    }
    bool mayfly = strcmp(o.target, "mayfly") == 0;
    if (mayfly ? (o.server == NULL || o.bundle == NULL || o.dir == NULL || o.entry == NULL ||
                  o.spiffe_id == NULL)
               : (strcmp(o.target, "cfssl") != 0 || o.addr == NULL)) {
        return usage();
    }
    if (!mayfly) {
        o.batch = 1;
    }
    mf_x509_global_init();
    int rc = 2;
    struct shared *sh = calloc(1, sizeof(*sh));
    struct worker *ws = calloc((size_t)o.conns, sizeof(*ws));
    long started = 0;
    if (sh == NULL || ws == NULL) {
        goto out;
    }
    sh->o = &o;
    mf_certs_init(&sh->chain);
    mf_bundle_set_init(&sh->trust);
    mf_res r = mayfly ? load_identity(sh) : parse_addr(o.addr, &sh->sin);
    if (mf_ok(r)) {
        r = mayfly ? build_sign_body(sh) : build_cfssl_bodies(sh);
    }
    if (!mf_ok(r)) {
        rc = bench_fail("set-up", r);
        goto out;
    }
    for (; started < o.conns; started++) {
        ws[started].sh = sh;
        ws[started].idx = (size_t)started;
        if (pthread_create(&ws[started].th, NULL, mayfly ? run_mayfly : run_cfssl,
                           &ws[started]) != 0) {
            fprintf(stderr, "loadgen: pthread_create failed\n");
            break;
        }
    }
    bench_sleep_ms(o.warmup * 1000);
    double s0 = o.server_pid > 0 ? bench_proc_cpu(o.server_pid) : -1.0, c0 = self_cpu();
    int64_t t0 = bench_ns();
    atomic_store(&sh->phase, 1);
    bench_sleep_ms(o.seconds * 1000);
    atomic_store(&sh->phase, 2);
    int64_t t1 = bench_ns();
    double s1 = o.server_pid > 0 ? bench_proc_cpu(o.server_pid) : -1.0, c1 = self_cpu();
    uint64_t certs = 0, errors = 0, rejected = 0;
    struct bench_lat all = {0};
    mf_res fatal = MF_RES_OK;
    for (long i = 0; i < started; i++) {
        pthread_join(ws[i].th, NULL);
        certs += ws[i].certs;
        errors += ws[i].errors;
        rejected += ws[i].rejected;
        bench_lat_merge(&all, &ws[i].lat);
        bench_lat_free(&ws[i].lat);
        if (!mf_ok(ws[i].fatal)) {
            fatal = ws[i].fatal;
        }
    }
    started = 0;
    if (!mf_ok(fatal)) {
        bench_lat_free(&all);
        rc = bench_fail("connect", fatal);
        goto out;
    }
    double secs = (double)(t1 - t0) / 1e9;
    double scpu = s0 >= 0 && s1 >= 0 && certs > 0 ? (s1 - s0) * 1e6 / (double)certs : -1.0;
    double ccpu = certs > 0 ? (c1 - c0) * 1e6 / (double)certs : -1.0;
    double p50 = bench_lat_pct(&all, 0.50), p99 = bench_lat_pct(&all, 0.99);
    printf("loadgen target=%s conns=%ld batch=%ld certs_per_s=%.0f req_p50_ms=%.1f "
           "req_p99_ms=%.1f requests=%zu errors=%llu rejected=%llu server_cpu_us_per_cert=%.1f "
           "client_cpu_us_per_cert=%.1f\n",
           o.target, o.conns, o.batch, (double)certs / secs, p50, p99, all.n,
           (unsigned long long)errors, (unsigned long long)rejected, scpu, ccpu);
    bench_lat_free(&all);
    rc = certs > 0 ? 0 : 1;
out:
    if (sh != NULL) {
        atomic_store(&sh->phase, 2);
    }
    for (long i = 0; i < started; i++) {
        pthread_join(ws[i].th, NULL);
    }
    free(ws);
    if (sh != NULL) {
        free(sh->sign_body);
        for (size_t i = 0; i < sh->n_cfssl; i++) {
            free(sh->cfssl_bodies[i]);
        }
        free(sh->cfssl_bodies);
        mf_certs_cleanup(&sh->chain);
        mf_key_free(sh->key);
        mf_bundle_set_cleanup(&sh->trust);
        free(sh);
    }
    return rc;
}
