/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_herd: a herd of simulated agents against the CA, for
 * tests/integration/load_herd.sh.
 *
 *   ca_herd attest --server H:P --bundle PEM --admin-socket S --dir DIR --agents N
 *       creates N join tokens on the admin socket and attests N agents
 *       (spiffe://<td>/mayfly/agent/herd-<i>), honouring Retry-After; writes
 *       DIR/<i>.key and DIR/<i>.pem.
 *   ca_herd renew --server H:P --bundle PEM --dir DIR --agents N [--repeat K]
 *       one thread and one mTLS connection per agent, all connected first
 *       (a barrier), then every agent renews at the same instant, K times in
 *       a row (default 2: a second renewal right after the first, as an
 *       agent sends whose answer was lost in a partition). A 429 or 503 must
 *       carry Retry-After; the agent waits that long and tries again (at
 *       most 20 times).
 *
 * Prints "herd: agents=N renewed=R rate_limited=A unavailable=B
 * no_retry_after=C failed=F seconds=S" for renew; exit status 0 when every
 * agent completed, 1 otherwise, 2 on bad usage. --td TD (example.org).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api/core/mf_json.h"
#include "api/net/mf_http.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_x509.h"

#define MAX_AGENTS 2000
#define MAX_TRIES  20

struct opts {
    const char *server, *bundle, *admin, *dir, *td;
    long agents, repeat;
};

static struct opts g;
static struct mf_bundle_set g_trust;
static char g_server_id[300];

static mf_res read_file(const char *path, size_t max, struct mf_buf *out)
{
    FILE *f = fopen(path, "re");
    MF_ENSURE_MSG(f != NULL, MF_ERR_IO_NOT_FOUND, "cannot open %s", path);
    char chunk[4096];
    size_t got;
    mf_res r = MF_RES_OK;
    mf_buf_init(out, max, MF_BUF_SECRET);
    while (mf_ok(r) && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        r = mf_buf_append(out, chunk, got);
    }
    fclose(f);
    return r;
}

static mf_res write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "we");
    MF_ENSURE_MSG(f != NULL, MF_ERR_IO, "cannot write %s", path);
    size_t w = fwrite(p, 1, n, f);
    MF_ENSURE(fclose(f) == 0 && w == n, MF_ERR_IO);
    return MF_RES_OK;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A CSR for a fresh key, as base64 DER. */
static mf_res make_csr(struct mf_key **key, struct mf_buf *b64)
{
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    MF_TRY(mf_key_generate(MF_KEY_EC_P256, key));
    mf_res r = mf_csr_create(*key, NULL, &der);
    if (mf_ok(r)) {
        r = mf_b64_encode(der.data, der.len, b64);
    }
    mf_buf_cleanup(&der);
    return r;
}

/* Writes <i>.key and <i>.pem from an attest/renew answer. */
static mf_res save(long i, const struct mf_key *key, const struct mf_buf *body)
{
    mf_res rc;
    json_t *doc = NULL;
    struct mf_buf pem, der, kpem;
    char path[4200];
    mf_buf_init(&pem, MF_MAX_BUNDLE, 0);
    mf_buf_init(&der, MF_MAX_CERT, 0);
    mf_buf_init(&kpem, 16384, MF_BUF_SECRET);
    const json_t *arr = NULL;
    MF_TRY_OUT(mf_json_parse((const char *)body->data, body->len, 1u << 20, &doc));
    MF_TRY_OUT(mf_json_array(doc, "x509_svid", true, 8, &arr));
    for (size_t k = 0; k < json_array_size(arr); k++) {
        const char *s = json_string_value(json_array_get(arr, k));
        MF_ENSURE_OUT(s != NULL, MF_ERR_PROTO_JSON);
        mf_buf_reset(&der);
        MF_TRY_OUT(mf_b64_decode(s, strlen(s), &der));
        MF_TRY_OUT(mf_pem_encode("CERTIFICATE", der.data, der.len, &pem));
    }
    MF_TRY_OUT(mf_key_to_pem(key, &kpem));
    snprintf(path, sizeof(path), "%s/%ld.key", g.dir, i);
    MF_TRY_OUT(write_file(path, kpem.data, kpem.len));
    snprintf(path, sizeof(path), "%s/%ld.pem", g.dir, i);
    MF_TRY_OUT(write_file(path, pem.data, pem.len));
    rc = MF_RES_OK;
out:
    json_decref(doc);
    mf_buf_cleanup(&pem);
    mf_buf_cleanup(&der);
    mf_buf_cleanup(&kpem);
    return rc;
}

static mf_res load_identity(long i, struct mf_certs *chain, struct mf_key **key)
{
    char path[4200];
    struct mf_buf text;
    snprintf(path, sizeof(path), "%s/%ld.pem", g.dir, i);
    MF_TRY(read_file(path, MF_MAX_BUNDLE, &text));
    mf_res r = mf_certs_from_pem(mf_buf_cstr(&text), text.len, chain);
    mf_buf_cleanup(&text);
    MF_TRY(r);
    snprintf(path, sizeof(path), "%s/%ld.key", g.dir, i);
    MF_TRY(read_file(path, 16384, &text));
    r = mf_key_from_pem(mf_buf_cstr(&text), text.len, key);
    mf_buf_cleanup(&text);
    return r;
}

static mf_res connect_ca(const struct mf_certs *chain, const struct mf_key *key,
                         struct mf_http_conn **c)
{
    struct mf_tls_client_cfg cfg = {.chain = chain,
                                    .key = key,
                                    .trust = &g_trust,
                                    .expect_server_id = g_server_id,
                                    .server_id_below = true};
    return mf_http_connect_tls(g.server, &cfg, 30000, c);
}

/* ---- attest ------------------------------------------------------------- */

static int do_attest(void)
{
    int rc = 1;
    struct mf_http_conn *admin = NULL, *c = NULL;
    struct mf_http_resp resp;
    struct mf_buf csr;
    mf_buf_init(&csr, 4 * MF_MAX_CSR, 0);
    mf_http_resp_init(&resp, 1u << 20);
    for (long i = 0; i < g.agents; i++) {
        char body[600];
        json_t *doc = NULL;
        const char *token = NULL;
        int n = snprintf(body, sizeof(body),
                         "{\"spiffe_id\":\"spiffe://%s/mayfly/agent/herd-%ld\"}", g.td, i);
        mf_res r = admin != NULL ? MF_RES_OK : mf_http_connect_unix(g.admin, 10000, &admin);
        if (mf_ok(r)) {
            r = mf_http_request(admin, "POST", "/v1/tokens", NULL, body, (size_t)n, 10000, &resp);
        }
        if (mf_ok(r) && resp.status == 201) {
            r = mf_json_parse((const char *)resp.body.data, resp.body.len, 4096, &doc);
        }
        if (mf_ok(r) && doc != NULL) {
            r = mf_json_str(doc, "token", true, 256, &token);
        }
        if (!mf_ok(r) || token == NULL) {
            fprintf(stderr, "ca_herd: token %ld: %s (status %d)\n", i, mf_err_detail(),
                    resp.status);
            json_decref(doc);
            goto out;
        }
        if (!mf_http_reusable(admin)) {
            mf_http_close(admin);
            admin = NULL;
        }
        struct mf_key *key = NULL;
        mf_buf_reset(&csr);
        r = make_csr(&key, &csr);
        json_t *req =
            mf_ok(r) ? json_pack("{s:s,s:s}", "join_token", token, "csr", mf_buf_cstr(&csr)) : NULL;
        char *text = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        json_decref(doc);
        bool done = false;
        for (int t = 0; text != NULL && t < MAX_TRIES && !done; t++) {
            r = c != NULL ? MF_RES_OK : connect_ca(NULL, NULL, &c);
            if (mf_ok(r)) {
                r = mf_http_request(c, "POST", "/v1/attest", NULL, text, strlen(text), 30000,
                                    &resp);
            }
            if (!mf_ok(r) || !mf_http_reusable(c)) {
                mf_http_close(c);
                c = NULL;
            }
            if (mf_ok(r) && (resp.status == 429 || resp.status == 503)) {
                sleep_ms(1000L * (resp.retry_after > 0 ? resp.retry_after : 1));
                continue;
            }
            if (mf_ok(r) && resp.status == 200) {
                r = save(i, key, &resp.body);
                done = mf_ok(r);
            }
            if (!done) {
                fprintf(stderr, "ca_herd: attest %ld: %s (status %d) %.*s\n", i, mf_err_detail(),
                        resp.status, (int)resp.body.len, (const char *)resp.body.data);
                break;
            }
        }
        free(text);
        mf_key_free(key);
        if (!done) {
            goto out;
        }
    }
    printf("herd: attested=%ld\n", g.agents);
    rc = 0;
out:
    mf_http_resp_cleanup(&resp);
    mf_buf_cleanup(&csr);
    mf_http_close(admin);
    mf_http_close(c);
    return rc;
}

/* ---- renew ---------------------------------------------------------------- */

struct agent {
    long i;
    pthread_barrier_t *start;
    long renewed, limited, unavailable, no_retry_after, failed;
    char why[200];
};

static void *agent_main(void *arg)
{
    struct agent *a = arg;
    struct mf_certs chain;
    struct mf_key *key = NULL;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp resp;
    struct mf_buf csr;
    mf_x509_global_init();
    mf_certs_init(&chain);
    mf_buf_init(&csr, 4 * MF_MAX_CSR, 0);
    mf_http_resp_init(&resp, 1u << 20);
    mf_res r = load_identity(a->i, &chain, &key);
    if (mf_ok(r)) {
        r = connect_ca(&chain, key, &c);
    }
    if (!mf_ok(r)) {
        snprintf(a->why, sizeof(a->why), "connect: %s", mf_err_detail());
    }
    pthread_barrier_wait(a->start);
    for (long k = 0; mf_ok(r) && k < g.repeat; k++) {
        struct mf_key *nkey = NULL;
        mf_buf_reset(&csr);
        r = make_csr(&nkey, &csr);
        json_t *req = mf_ok(r) ? json_pack("{s:s}", "csr", mf_buf_cstr(&csr)) : NULL;
        char *text = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        bool done = false;
        for (int t = 0; text != NULL && t < MAX_TRIES && !done; t++) {
            r = c != NULL ? MF_RES_OK : connect_ca(&chain, key, &c);
            if (mf_ok(r)) {
                r = mf_http_request(c, "POST", "/v1/renew", NULL, text, strlen(text), 60000, &resp);
            }
            if (!mf_ok(r) || !mf_http_reusable(c)) {
                mf_http_close(c);
                c = NULL;
            }
            if (!mf_ok(r)) {
                snprintf(a->why, sizeof(a->why), "renew: %s", mf_err_detail());
                break;
            }
            if (resp.status == 429 || resp.status == 503) {
                if (resp.status == 429) {
                    a->limited++;
                } else {
                    a->unavailable++;
                }
                if (resp.retry_after <= 0) {
                    a->no_retry_after++;
                }
                sleep_ms(1000L * (resp.retry_after > 0 ? resp.retry_after : 1));
                continue;
            }
            if (resp.status == 200) {
                done = true;
                a->renewed++;
            } else {
                snprintf(a->why, sizeof(a->why), "renew: status %d: %.*s", resp.status,
                         (int)(resp.body.len > 150 ? 150 : resp.body.len),
                         (const char *)resp.body.data);
                break;
            }
        }
        free(text);
        mf_key_free(nkey);
        if (!done) {
            a->failed++;
            break;
        }
    }
    if (a->why[0] != '\0' && a->failed == 0) {
        a->failed++;
    }
    mf_http_close(c);
    mf_http_resp_cleanup(&resp);
    mf_buf_cleanup(&csr);
    mf_certs_cleanup(&chain);
    mf_key_free(key);
    return NULL;
}

static int do_renew(void)
{
    struct agent *as = calloc((size_t)g.agents, sizeof(*as));
    pthread_t *ts = calloc((size_t)g.agents, sizeof(*ts));
    if (as == NULL || ts == NULL) {
        return 2;
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)g.agents + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    for (long i = 0; i < g.agents; i++) {
        as[i].i = i;
        as[i].start = &start;
        if (pthread_create(&ts[i], &attr, agent_main, &as[i]) != 0) {
            fprintf(stderr, "ca_herd: cannot start agent %ld\n", i);
            return 2;
        }
    }
    pthread_barrier_wait(&start);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long renewed = 0, limited = 0, unavailable = 0, nra = 0, failed = 0;
    const char *why = NULL;
    for (long i = 0; i < g.agents; i++) {
        pthread_join(ts[i], NULL);
        renewed += as[i].renewed;
        limited += as[i].limited;
        unavailable += as[i].unavailable;
        nra += as[i].no_retry_after;
        failed += as[i].failed;
        if (why == NULL && as[i].why[0] != '\0') {
            why = as[i].why;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("herd: agents=%ld renewed=%ld rate_limited=%ld unavailable=%ld no_retry_after=%ld "
           "failed=%ld seconds=%.1f\n",
           g.agents, renewed, limited, unavailable, nra, failed, secs);
    if (why != NULL) {
        fprintf(stderr, "ca_herd: first failure: %s\n", why);
    }
    free(as);
    free(ts);
    return failed == 0 && renewed == g.agents * g.repeat ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ca_herd attest|renew [options]\n");
        return 2;
    }
    g.td = "example.org";
    g.agents = 200;
    g.repeat = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--server") == 0) {
            g.server = v;
        } else if (strcmp(k, "--bundle") == 0) {
            g.bundle = v;
        } else if (strcmp(k, "--admin-socket") == 0) {
            g.admin = v;
        } else if (strcmp(k, "--dir") == 0) {
            g.dir = v;
        } else if (strcmp(k, "--td") == 0) {
            g.td = v;
        } else if (strcmp(k, "--agents") == 0 || strcmp(k, "--repeat") == 0) {
            char *e = NULL;
            long n = strtol(v, &e, 10);
            if (e == v || *e != '\0' || n < 1 || n > MAX_AGENTS) {
                fprintf(stderr, "ca_herd: bad %s\n", k);
                return 2;
            }
            *(strcmp(k, "--agents") == 0 ? &g.agents : &g.repeat) = n;
        } else {
            fprintf(stderr, "ca_herd: unknown option %s\n", k);
            return 2;
        }
    }
    bool attest = strcmp(argv[1], "attest") == 0;
    if (g.server == NULL || g.bundle == NULL || g.dir == NULL || (attest && g.admin == NULL)) {
        fprintf(stderr, "ca_herd: --server, --bundle, --dir (and --admin-socket) needed\n");
        return 2;
    }
    mf_x509_global_init();
    mf_bundle_set_init(&g_trust);
    snprintf(g_server_id, sizeof(g_server_id), "spiffe://%s/mayfly/server", g.td);
    struct mf_buf text;
    struct mf_bundle *b = NULL;
    mf_res r = read_file(g.bundle, MF_MAX_BUNDLE, &text);
    if (mf_ok(r)) {
        r = mf_bundle_from_pem(g.td, mf_buf_cstr(&text), text.len, &b);
        mf_buf_cleanup(&text);
    }
    if (mf_ok(r)) {
        r = mf_bundle_set_put(&g_trust, b);
    }
    mf_bundle_free(b);
    if (!mf_ok(r)) {
        fprintf(stderr, "ca_herd: bundle: %s\n", mf_err_detail());
        return 2;
    }
    int rc = attest ? do_attest() : strcmp(argv[1], "renew") == 0 ? do_renew() : 2;
    mf_bundle_set_cleanup(&g_trust);
    return rc;
}
