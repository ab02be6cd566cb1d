/* SPDX-License-Identifier: Apache-2.0 */
/*
 * storm_poll: the "never serve an expired SVID" check of the rotation
 * storm. One child process per uid (setresuid, so that the agent attests
 * it as that workload) polls GET /v1/x509 on the agent's socket and checks
 * the leaf of every SVID it is handed: the clock when the answer arrived
 * must not be past its NotAfter (RFC 5280 validity includes NotAfter, in
 * whole seconds); SVIDs in their very last second are counted apart.
 *
 *   storm_poll --socket PATH --uids 0,10001,... --seconds S [--interval-ms I]
 *
 * Each child prints
 *   poll uid=U fetches=F svids=N expired=E last_second=L min_remaining_s=M max_count=C
 *        denied=D errors=X
 * and the parent a total:
 *   storm_poll fetches=F svids_checked=N expired=E min_remaining_s=M denied=D errors=X
 * Must run as root (to take the other uids).
 */
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api/net/mf_http.h"
#include "api/pki/mf_x509.h"
#include "bench/bench_util.h"

#define MAX_UIDS 64

struct tally {
    long fetches, svids, expired, last_second, denied, errors, max_count;
    long min_remaining;
};

/* Checks every SVID of one answer. */
static void check(const struct mf_http_resp *resp, struct tally *t)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)resp->body.data, resp->body.len, 0, &jerr);
    const json_t *svids = json_object_get(doc, "svids");
    if (!json_is_array(svids)) {
        t->errors++;
        json_decref(doc);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    long count = 0;
    size_t i;
    const json_t *s;
    json_array_foreach(svids, i, s)
    {
        const char *pem = json_string_value(json_object_get(s, "x509_svid"));
        struct mf_certs chain;
        mf_certs_init(&chain);
        if (pem == NULL || !mf_ok(mf_certs_from_pem(pem, strlen(pem), &chain))) {
            mf_certs_cleanup(&chain);
            t->errors++;
            continue;
        }
        /* RFC 5280 4.1.2.5: the validity period includes NotAfter, at
         * one-second resolution; so an SVID is expired once the clock's
         * whole seconds have passed it */
        int64_t left = mf_cert_not_after(chain.v[0]) - now;
        if (left < 0) {
            t->expired++;
        } else if (left == 0) {
            t->last_second++;
        }
        if (left < t->min_remaining) {
            t->min_remaining = left;
        }
        count++;
        mf_certs_cleanup(&chain);
    }
    t->svids += count;
    if (count > t->max_count) {
        t->max_count = count;
    }
    json_decref(doc);
}

static int child(const char *sock, long uid, long seconds, long interval_ms, int out_fd)
{
    if (uid != 0) {
        if (setgroups(0, NULL) != 0 || setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) != 0 ||
            setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) {
            fprintf(stderr, "storm_poll: cannot become uid %ld\n", uid);
            return 2;
        }
    }
    static const char *const hdrs[] = {"workload.spiffe.io: true", NULL};
    struct tally t = {.min_remaining = 1L << 40};
    struct mf_http_resp resp;
    mf_http_resp_init(&resp, 64u * 1024u * 1024u);
    int64_t end = bench_ns() + (int64_t)seconds * 1000000000LL;
    while (bench_ns() < end) {
        struct mf_http_conn *c = NULL;
        mf_res r = mf_http_connect_unix(sock, 5000, &c);
        if (mf_ok(r)) {
            r = mf_http_request(c, "GET", "/v1/x509", hdrs, NULL, 0, 10000, &resp);
        }
        mf_http_close(c);
        if (!mf_ok(r)) {
            t.errors++;
        } else if (resp.status == 200) {
            t.fetches++;
            check(&resp, &t);
        } else if (resp.status == 403) {
            t.denied++;
        } else {
            t.errors++;
        }
        bench_sleep_ms(interval_ms);
    }
    mf_http_resp_cleanup(&resp);
    char line[512];
    int n = snprintf(line, sizeof(line),
                     "poll uid=%ld fetches=%ld svids=%ld expired=%ld last_second=%ld "
                     "min_remaining_s=%ld max_count=%ld denied=%ld errors=%ld\n",
                     uid, t.fetches, t.svids, t.expired, t.last_second,
                     t.svids > 0 ? t.min_remaining : -1, t.max_count, t.denied, t.errors);
    if (n > 0) {
        (void)!write(out_fd, line, (size_t)n);
    }
    return 0;
}

/* The value after "key=" in line, or def. */
static long field(const char *line, const char *key, long def)
{
    char k[64];
    snprintf(k, sizeof(k), " %s=", key);
    const char *p = strstr(line, k);
    if (p == NULL) {
        return def;
    }
    return strtol(p + strlen(k), NULL, 10);
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *uids_s = NULL;
    long seconds = 10, interval = 500;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--socket")) {
            sock = v;
        } else if (!strcmp(k, "--uids")) {
            uids_s = v;
        } else if (!strcmp(k, "--seconds")) {
            seconds = bench_long(k, v, 1, 3600);
        } else if (!strcmp(k, "--interval-ms")) {
            interval = bench_long(k, v, 0, 60000);
        }
    }
    if (sock == NULL || uids_s == NULL) {
        fprintf(stderr, "usage: storm_poll --socket PATH --uids U1,U2,... --seconds S "
                        "[--interval-ms I]\n");
        return 2;
    }
    long uids[MAX_UIDS];
    size_t n_uids = 0;
    const char *p = uids_s;
    while (*p != '\0' && n_uids < MAX_UIDS) {
        char *end = NULL;
        uids[n_uids++] = strtol(p, &end, 10);
        if (end == p) {
            fprintf(stderr, "storm_poll: bad --uids\n");
            return 2;
        }
        p = *end == ',' ? end + 1 : end;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        return 2;
    }
    pid_t pids[MAX_UIDS];
    size_t started = 0;
    for (; started < n_uids; started++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            break;
        }
        if (pid == 0) {
            close(fds[0]);
            _exit(child(sock, uids[started], seconds, interval, fds[1]));
        }
        pids[started] = pid;
    }
    close(fds[1]);
    /* every child writes one short line (< PIPE_BUF, so atomically) */
    char buf[MAX_UIDS * 512 + 1];
    size_t have = 0;
    ssize_t got;
    while (have < sizeof(buf) - 1 && (got = read(fds[0], buf + have, sizeof(buf) - 1 - have)) > 0) {
        have += (size_t)got;
    }
    buf[have] = '\0';
    close(fds[0]);
    int bad = 0;
    for (size_t i = 0; i < started; i++) {
        int st = 0;
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            bad = 1;
        }
    }
    struct tally tot = {.min_remaining = 1L << 40};
    for (char *line = buf, *nl; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            break;
        }
        *nl = '\0';
        printf("%s\n", line);
        tot.fetches += field(line, "fetches", 0);
        tot.svids += field(line, "svids", 0);
        tot.expired += field(line, "expired", 0);
        tot.last_second += field(line, "last_second", 0);
        tot.denied += field(line, "denied", 0);
        tot.errors += field(line, "errors", 0);
        long m = field(line, "min_remaining_s", -1);
        if (m >= 0 && m < tot.min_remaining) {
            tot.min_remaining = m;
        }
    }
    printf("storm_poll fetches=%ld svids_checked=%ld expired=%ld last_second=%ld "
           "min_remaining_s=%ld denied=%ld errors=%ld\n",
           tot.fetches, tot.svids, tot.expired, tot.last_second,
           tot.min_remaining == (1L << 40) ? -1 : tot.min_remaining, tot.denied, tot.errors);
    return bad ? 2 : 0;
}
