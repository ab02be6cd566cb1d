/* SPDX-License-Identifier: Apache-2.0 */
/*
 * propagate: how long a new registration entry takes to reach its
 * workload. The program holds a Workload API watch stream
 * (GET /v1/x509?watch=true) open as the workload, then for each trial runs
 * `mayfly-ca entry create` (a real CLI process, as an operator would) for
 * a new SPIFFE ID whose selector matches this process, and stops the clock
 * when a document on the stream carries that ID.
 *
 *   propagate --socket AGENT_SOCK --ca-bin PATH --admin-socket PATH --parent ID
 *             --selector unix:uid:0 [--trials N] [--prefix /prop/t] [--td example.org]
 *
 * The watcher must already hold one identity (the stream starts with a
 * 403 otherwise). Prints:
 *   propagate trials=N p50_ms=.. p90_ms=.. max_ms=.. mean_ms=.. cli_p50_ms=.. timeouts=T
 * where cli_* is the CLI process alone (start, admin request, exit).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/net/mf_http.h"
#include "bench/bench_util.h"

#define LINE_MAX_BYTES (64u * 1024u * 1024u)
#define TRIAL_TIMEOUT_MS 5000

/* Runs the CLI; returns its exit status (or -1). */
static int run_cli(const char *const *argv)
{
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (devnull >= 0) {
            (void)dup2(devnull, STDOUT_FILENO);
        }
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) {
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *ca_bin = NULL, *admin = NULL, *parent = NULL, *sel = NULL;
    const char *prefix = "/prop/t", *td = "example.org";
    long trials = 50;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--socket")) {
            sock = v;
        } else if (!strcmp(k, "--ca-bin")) {
            ca_bin = v;
        } else if (!strcmp(k, "--admin-socket")) {
            admin = v;
        } else if (!strcmp(k, "--parent")) {
            parent = v;
        } else if (!strcmp(k, "--selector")) {
            sel = v;
        } else if (!strcmp(k, "--prefix")) {
            prefix = v;
        } else if (!strcmp(k, "--td")) {
            td = v;
        } else if (!strcmp(k, "--trials")) {
            trials = bench_long(k, v, 1, 10000);
        }
    }
    if (sock == NULL || ca_bin == NULL || admin == NULL || parent == NULL || sel == NULL) {
        fprintf(stderr, "usage: propagate --socket S --ca-bin P --admin-socket A --parent ID "
                        "--selector SEL [--trials N] [--prefix P]\n");
        return 2;
    }
    static const char *const hdrs[] = {"workload.spiffe.io: true", NULL};
    struct mf_http_conn *c = NULL;
    struct mf_http_resp resp;
    struct mf_buf line;
    mf_http_resp_init(&resp, 64u * 1024u);
    mf_buf_init(&line, LINE_MAX_BYTES, MF_BUF_SECRET);
    struct bench_lat lat = {0}, cli = {0};
    long timeouts = 0;
    int rc = 2;
    mf_res r = mf_http_connect_unix(sock, 5000, &c);
    if (mf_ok(r)) {
        r = mf_http_stream_begin(c, "GET", "/v1/x509?watch=true", hdrs, 5000, &resp);
    }
    if (mf_ok(r) && resp.status != 200) {
        fprintf(stderr, "propagate: watch answered %d\n", resp.status);
        goto out;
    }
    if (mf_ok(r)) {
        r = mf_http_stream_line(c, LINE_MAX_BYTES, 5000, &line); /* the current state */
    }
    if (!mf_ok(r)) {
        rc = bench_fail("watch", r);
        goto out;
    }
    for (long t = 0; t < trials; t++) {
        char id[512], needle[520];
        snprintf(id, sizeof(id), "spiffe://%s%s%ld", td, prefix, t);
        snprintf(needle, sizeof(needle), "\"%s\"", id);
        const char *const args[] = {ca_bin,      "entry", "create",   "--admin-socket",
                                    admin,       "--spiffe-id", id,   "--parent-id",
                                    parent,      "--selector", sel,   NULL};
        int64_t t0 = bench_ns();
        if (run_cli(args) != 0) {
            fprintf(stderr, "propagate: entry create failed for %s\n", id);
            goto out;
        }
        int64_t t1 = bench_ns();
        bool seen = false;
        while (!seen) {
            int64_t left = TRIAL_TIMEOUT_MS - (bench_ns() - t0) / 1000000;
            if (left <= 0) {
                break;
            }
            mf_buf_reset(&line);
            r = mf_http_stream_line(c, LINE_MAX_BYTES, (int)left, &line);
            if (r.err == MF_ERR_IO_TIMEOUT) {
                continue;
            }
            if (!mf_ok(r)) {
                rc = bench_fail("watch stream", r);
                goto out;
            }
            seen = memmem(line.data, line.len, needle, strlen(needle)) != NULL;
        }
        int64_t t2 = bench_ns();
        bench_lat_push(&cli, (double)(t1 - t0) / 1e6);
        if (seen) {
            bench_lat_push(&lat, (double)(t2 - t0) / 1e6);
        } else {
            timeouts++;
        }
        bench_sleep_ms(50);
    }
    double sum = 0;
    for (size_t i = 0; i < lat.n; i++) {
        sum += lat.v[i];
    }
    printf("propagate trials=%ld p50_ms=%.1f p90_ms=%.1f max_ms=%.1f mean_ms=%.1f "
           "cli_p50_ms=%.1f timeouts=%ld\n",
           trials, bench_lat_pct(&lat, 0.5), bench_lat_pct(&lat, 0.9), bench_lat_pct(&lat, 1.0),
           lat.n ? sum / (double)lat.n : 0.0, bench_lat_pct(&cli, 0.5), timeouts);
    rc = timeouts == 0 ? 0 : 1;
out:
    bench_lat_free(&lat);
    bench_lat_free(&cli);
    mf_buf_cleanup(&line);
    mf_http_resp_cleanup(&resp);
    mf_http_close(c);
    return rc;
}
