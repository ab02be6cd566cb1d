/* SPDX-License-Identifier: Apache-2.0 */
/*
 * firstfetch: waits for the first successful answer of a server that is
 * starting, for cold-start times. Polls (connect + GET) every millisecond
 * until the answer is 200, then prints the wall-clock instant, so that the
 * caller can subtract the instant at which it started the server.
 *
 *   firstfetch --socket PATH [--path /v1/x509] [--header] [--timeout-ms N]
 *
 * --header adds "workload.spiffe.io: true" (the agent's Workload API).
 * Prints: firstfetch realtime_ns=T attempts=N status=200
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/net/mf_http.h"
#include "bench/bench_util.h"

int main(int argc, char **argv)
{
    const char *sock = NULL, *path = "/v1/x509";
    bool header = false;
    long timeout_ms = 60000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--header")) {
            header = true;
        } else if (i + 1 < argc && !strcmp(argv[i], "--socket")) {
            sock = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--path")) {
            path = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--timeout-ms")) {
            timeout_ms = bench_long("--timeout-ms", argv[++i], 1, 3600000);
        } else {
            sock = NULL;
            break;
        }
    }
    if (sock == NULL) {
        fprintf(stderr, "usage: firstfetch --socket PATH [--path P] [--header] [--timeout-ms N]\n");
        return 2;
    }
    static const char *const hdrs[] = {"workload.spiffe.io: true", NULL};
    struct mf_http_resp resp;
    mf_http_resp_init(&resp, 64u * 1024u * 1024u);
    int64_t end = bench_ns() + (int64_t)timeout_ms * 1000000LL;
    long attempts = 0;
    int status = 0;
    while (bench_ns() < end) {
        struct mf_http_conn *c = NULL;
        attempts++;
        mf_res r = mf_http_connect_unix(sock, 1000, &c);
        if (mf_ok(r)) {
            r = mf_http_request(c, "GET", path, header ? hdrs : NULL, NULL, 0, 5000, &resp);
        }
        mf_http_close(c);
        if (mf_ok(r) && resp.status == 200) {
            status = 200;
            break;
        }
        bench_sleep_ms(1);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mf_http_resp_cleanup(&resp);
    if (status != 200) {
        fprintf(stderr, "firstfetch: no 200 within %ld ms\n", timeout_ms);
        return 1;
    }
    printf("firstfetch realtime_ns=%lld attempts=%ld status=200\n",
           (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, attempts);
    return 0;
}
