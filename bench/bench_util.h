/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_util: small helpers shared by the benchmark programs in bench/
 * (header-only, so that each bench/<name>.c builds into one program with
 * nothing but libmayfly beside it).
 *
 * Nothing here is used by mayfly itself. Numbers parsed from the command
 * line go through strtol with range checks (no atoi); latencies are kept in
 * growable arrays of microseconds and summarised by sorting.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"

/* Monotonic time in nanoseconds. */
static inline int64_t bench_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void bench_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A number from the command line in [lo, hi]; exits with status 2 (bad
 * usage) otherwise. */
static inline long bench_long(const char *name, const char *s, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench: %s wants a number in %ld..%ld, not '%s'\n", name, lo, hi, s);
        exit(2);
    }
    return v;
}

/* Prints "bench: what: error" and returns 2, for main's exit status. */
static inline int bench_fail(const char *what, mf_res r)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    fprintf(stderr, "bench: %s: %s\n", what, msg);
    return 2;
}

/* Reads a whole file (at most max bytes) into out, which is initialised
 * here with the given flags. */
static inline mf_res bench_read_file(const char *path, size_t max, unsigned flags,
                                     struct mf_buf *out)
{
    mf_buf_init(out, max, flags);
    FILE *f = fopen(path, "re");
    MF_ENSURE_MSG(f != NULL, MF_ERR_IO_NOT_FOUND, "cannot open %s", path);
    char chunk[4096];
    size_t got;
    mf_res r = MF_RES_OK;
    while (mf_ok(r) && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        r = mf_buf_append(out, chunk, got);
    }
    fclose(f);
    return r;
}

/* ---- latency samples ---------------------------------------------------- */

struct bench_lat {
    double *v; /* microseconds */
    size_t n, cap;
};

static inline void bench_lat_push(struct bench_lat *l, double us)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap == 0 ? 1024 : l->cap * 2;
        double *nv = realloc(l->v, ncap * sizeof(*nv));
        if (nv == NULL) {
            return; /* a lost sample, not a wrong one */
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = us;
}

/* Appends every sample of from to to. */
static inline void bench_lat_merge(struct bench_lat *to, const struct bench_lat *from)
{
    for (size_t i = 0; i < from->n; i++) {
        bench_lat_push(to, from->v[i]);
    }
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

/* The p-quantile (0..1, nearest rank) of the samples; sorts them. 0 when
 * there are none. */
static inline double bench_lat_pct(struct bench_lat *l, double p)
{
    if (l->n == 0) {
        return 0.0;
    }
    qsort(l->v, l->n, sizeof(*l->v), bench_cmp_double);
    size_t k = (size_t)(p * (double)l->n);
    if (k >= l->n) {
        k = l->n - 1;
    }
    return l->v[k];
}

static inline void bench_lat_free(struct bench_lat *l)
{
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- /proc ----------------------------------------------------------------- */

/* utime + stime of a process, in seconds (from /proc/<pid>/stat). -1 when
 * it cannot be read. */
static inline double bench_proc_cpu(long pid)
{
    char path[64], line[2048];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return -1.0;
    }
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    /* fields after the command name, which ends at the last ')' */
    char *p = strrchr(line, ')');
    if (p == NULL) {
        return -1.0;
    }
    p++;
    /* field 3 is the state; utime and stime are fields 14 and 15 */
    int field = 2;
    double ticks = 0.0;
    char *end = NULL;
    while (*p != '\0' && field < 15) {
        while (*p == ' ') {
            p++;
        }
        field++;
        if (field == 14 || field == 15) {
            ticks += (double)strtoull(p, &end, 10);
            p = end;
        } else {
            while (*p != ' ' && *p != '\0') {
                p++;
            }
        }
    }
    long hz = sysconf(_SC_CLK_TCK);
    return ticks / (double)(hz > 0 ? hz : 100);
}

#endif /* BENCH_UTIL_H */
