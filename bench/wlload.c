/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wlload: Workload API load over a Unix socket. C client threads each
 * fetch GET /v1/x509 (with the workload.spiffe.io header) as fast as the
 * server answers, either over one keep-alive connection per client or with
 * a new connection, and so a new attestation, for every fetch.
 *
 *   wlload --socket PATH [--clients C] [--seconds S] [--warmup S]
 *          [--mode keepalive|newconn] [--path /v1/x509] [--server-pid PID]
 *
 * prints one line:
 *   wlload mode=M clients=C fetches_per_s=X p50_us=.. p99_us=.. max_us=.. errors=E
 *          body_bytes=B server_cpu_us_per_fetch=..
 * A latency includes connect() in newconn mode. The same program drives the
 * agent and the bare libmicrohttpd server of bench/bare_httpd.c.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/net/mf_http.h"
#include "bench/bench_util.h"

#define MAX_CLIENTS 256

struct shared {
    const char *sock, *path;
    bool newconn;
    _Atomic int phase; /* 0 warm-up, 1 measuring, 2 stop */
};

struct client {
    struct shared *sh;
    pthread_t th;
    uint64_t ok, errors;
    size_t body;
    struct bench_lat lat;
};

static void *run(void *arg)
{
    struct client *c = arg;
    struct shared *sh = c->sh;
    static const char *const hdrs[] = {"workload.spiffe.io: true", NULL};
    struct mf_http_conn *conn = NULL;
    struct mf_http_resp resp;
    mf_http_resp_init(&resp, 32u * 1024u * 1024u);
    while (atomic_load(&sh->phase) != 2) {
        int64_t t0 = bench_ns();
        mf_res r = MF_RES_OK;
        if (conn == NULL || sh->newconn || !mf_http_reusable(conn)) {
            mf_http_close(conn);
            conn = NULL;
            r = mf_http_connect_unix(sh->sock, 5000, &conn);
        }
        if (mf_ok(r)) {
            r = mf_http_request(conn, "GET", sh->path, hdrs, NULL, 0, 10000, &resp);
        }
        bool good = mf_ok(r) && resp.status == 200;
        if (!mf_ok(r)) {
            mf_http_close(conn);
            conn = NULL;
        }
        if (atomic_load(&sh->phase) == 1) {
            if (good) {
                c->ok++;
                c->body = resp.body.len;
                bench_lat_push(&c->lat, (double)(bench_ns() - t0) / 1e3);
            } else {
                c->errors++;
            }
        }
        if (!good) {
            bench_sleep_ms(1);
        }
    }
    mf_http_close(conn);
    mf_http_resp_cleanup(&resp);
    return NULL;
}

int main(int argc, char **argv)
{
    struct shared sh = {.path = "/v1/x509"};
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
        } else if (!strcmp(k, "--path")) {
            sh.path = v;
        } else if (!strcmp(k, "--server-pid")) {
            server_pid = bench_long(k, v, 0, 1L << 30);
        } else {
            sh.sock = NULL;
            break;
        }
    }
    sh.newconn = strcmp(mode, "newconn") == 0;
    if (sh.sock == NULL || (!sh.newconn && strcmp(mode, "keepalive") != 0)) {
        fprintf(stderr, "usage: wlload --socket PATH [--clients C] [--seconds S] [--warmup S] "
                        "[--mode keepalive|newconn] [--path P] [--server-pid PID]\n");
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
    uint64_t ok = 0, errors = 0;
    size_t body = 0;
    struct bench_lat all = {0};
    for (long i = 0; i < started; i++) {
        pthread_join(cs[i].th, NULL);
        ok += cs[i].ok;
        errors += cs[i].errors;
        if (cs[i].body > body) {
            body = cs[i].body;
        }
        bench_lat_merge(&all, &cs[i].lat);
        bench_lat_free(&cs[i].lat);
    }
    double secs = (double)(t1 - t0) / 1e9;
    double scpu = s0 >= 0 && s1 >= 0 && ok > 0 ? (s1 - s0) * 1e6 / (double)ok : -1.0;
    double p50 = bench_lat_pct(&all, 0.50), p99 = bench_lat_pct(&all, 0.99);
    double mx = bench_lat_pct(&all, 1.0);
    printf("wlload mode=%s clients=%ld fetches_per_s=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f "
           "errors=%llu body_bytes=%zu server_cpu_us_per_fetch=%.1f\n",
           mode, started, (double)ok / secs, p50, p99, mx, (unsigned long long)errors, body, scpu);
    bench_lat_free(&all);
    free(cs);
    return ok > 0 ? 0 : 1;
}
