/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bulkload: creates many registration entries through the CA's admin API
 * (POST /v1/entries on the admin Unix socket, keep-alive, a few
 * connections in parallel): the same path as `mayfly-ca entry create`,
 * without a process start per entry.
 *
 *   bulkload --admin-socket PATH --count N --parent ID [--prefix /bench/w]
 *            [--start I] [--uids K] [--uid-base U] [--ttl S] [--conns C]
 *
 * Entry i (I <= i < I+N) is spiffe://<td><prefix><i>, parented to ID, with
 * the selector unix:uid:<U + i % K>. Prints:
 *   bulkload count=N seconds=S per_s=X failed=F
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/net/mf_http.h"
#include "bench/bench_util.h"

struct shared {
    const char *sock, *parent, *prefix, *td;
    long start, count, uids, uid_base, ttl;
    atomic_long next;
    atomic_long failed;
};

static void *run(void *arg)
{
    struct shared *sh = arg;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp resp;
    mf_http_resp_init(&resp, 64u * 1024u);
    for (;;) {
        long i = atomic_fetch_add(&sh->next, 1);
        if (i >= sh->count) {
            break;
        }
        long n = sh->start + i;
        char id[512], sel[64];
        snprintf(id, sizeof(id), "spiffe://%s%s%ld", sh->td, sh->prefix, n);
        snprintf(sel, sizeof(sel), "unix:uid:%ld", sh->uid_base + n % sh->uids);
        json_t *b = json_pack("{s:s,s:s,s:[s],s:I}", "spiffe_id", id, "parent_id", sh->parent,
                              "selectors", sel, "ttl", (json_int_t)sh->ttl);
        char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
        json_decref(b);
        bool ok = false;
        for (int attempt = 0; text != NULL && attempt < 2 && !ok; attempt++) {
            if (c == NULL || !mf_http_reusable(c)) {
                mf_http_close(c);
                c = NULL;
                if (!mf_ok(mf_http_connect_unix(sh->sock, 5000, &c))) {
                    continue;
                }
            }
            mf_res r = mf_http_request(c, "POST", "/v1/entries", NULL, text, strlen(text), 30000,
                                       &resp);
            if (!mf_ok(r)) {
                mf_http_close(c);
                c = NULL;
                continue;
            }
            ok = resp.status == 201 || resp.status == 409; /* 409: already there */
            if (!ok) {
                break;
            }
        }
        free(text);
        if (!ok) {
            if (atomic_fetch_add(&sh->failed, 1) == 0) {
                fprintf(stderr, "bulkload: entry %ld: HTTP %d %.*s\n", n, resp.status,
                        (int)(resp.body.len > 200 ? 200 : resp.body.len),
                        (const char *)resp.body.data);
            }
        }
    }
    mf_http_close(c);
    mf_http_resp_cleanup(&resp);
    return NULL;
}

int main(int argc, char **argv)
{
    struct shared sh = {.prefix = "/bench/w", .td = "example.org", .uids = 1, .uid_base = 60000};
    long conns = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--admin-socket")) {
            sh.sock = v;
        } else if (!strcmp(k, "--parent")) {
            sh.parent = v;
        } else if (!strcmp(k, "--prefix")) {
            sh.prefix = v;
        } else if (!strcmp(k, "--td")) {
            sh.td = v;
        } else if (!strcmp(k, "--count")) {
            sh.count = bench_long(k, v, 1, 10000000);
        } else if (!strcmp(k, "--start")) {
            sh.start = bench_long(k, v, 0, 100000000);
        } else if (!strcmp(k, "--uids")) {
            sh.uids = bench_long(k, v, 1, 1000000);
        } else if (!strcmp(k, "--uid-base")) {
            sh.uid_base = bench_long(k, v, 0, 2000000000);
        } else if (!strcmp(k, "--ttl")) {
            sh.ttl = bench_long(k, v, 0, 86400 * 365);
        } else if (!strcmp(k, "--conns")) {
            conns = bench_long(k, v, 1, 32);
        } else {
            sh.sock = NULL;
            break;
        }
    }
    if (sh.sock == NULL || sh.parent == NULL || sh.count == 0) {
        fprintf(stderr, "usage: bulkload --admin-socket PATH --count N --parent ID [--prefix P] "
                        "[--start I] [--uids K] [--uid-base U] [--ttl S] [--conns C]\n");
        return 2;
    }
    pthread_t th[32];
    long started = 0;
    int64_t t0 = bench_ns();
    for (; started < conns; started++) {
        if (pthread_create(&th[started], NULL, run, &sh) != 0) {
            break;
        }
    }
    for (long i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    double secs = (double)(bench_ns() - t0) / 1e9;
    long failed = atomic_load(&sh.failed);
    printf("bulkload count=%ld seconds=%.2f per_s=%.0f failed=%ld\n", sh.count, secs,
           (double)sh.count / secs, failed);
    return failed == 0 ? 0 : 1;
}
