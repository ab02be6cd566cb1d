/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_time: clocks, durations and timestamps. See mf_time.h.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/core/mf_time.h"

#define MAX_DURATION (10LL * 366 * 24 * 3600)

static int64_t real_clock(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* No initializer: static storage starts as a null pointer, and clang refuses
 * NULL (a void *) for an _Atomic function pointer under -Wpedantic. */
static int64_t (*_Atomic clock_fn)(void);

/* see mf_time.h */
int64_t mf_now(void)
{
    int64_t (*fn)(void) = atomic_load(&clock_fn);
    return fn != NULL ? fn() : real_clock();
}

/* see mf_time.h */
int64_t mf_now_ms(void)
{
    int64_t (*fn)(void) = atomic_load(&clock_fn);
    if (fn != NULL) {
        return fn() * 1000;
    }
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* see mf_time.h */
int64_t mf_mono_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* see mf_time.h */
void mf_time_set_clock(int64_t (*fn)(void))
{
    atomic_store(&clock_fn, fn);
}

/* see mf_time.h */
mf_res mf_duration_parse(const char *s, int64_t *out)
{
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(out);
    MF_ENSURE_MSG(s[0] != '\0', MF_ERR_PROTO_DURATION, "empty duration");
    int64_t total = 0;
    const char *p = s;
    while (*p != '\0') {
        int64_t v = 0;
        const char *start = p;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p - '0');
            MF_ENSURE_MSG(v <= MAX_DURATION, MF_ERR_PROTO_DURATION, "duration '%.32s' too long",
                          s);
            p++;
        }
        MF_ENSURE_MSG(p != start, MF_ERR_PROTO_DURATION,
                      "duration '%.32s': expected a number like 20s, 10m, 1h", s);
        int64_t unit;
        switch (*p) {
        case '\0':
            /* A bare number means seconds, but only on its own. */
            MF_ENSURE_MSG(start == s, MF_ERR_PROTO_DURATION, "duration '%.32s' lacks a unit", s);
            unit = 1;
            break;
        case 's':
            unit = 1;
            p++;
            break;
        case 'm':
            unit = 60;
            p++;
            break;
        case 'h':
            unit = 3600;
            p++;
            break;
        case 'd':
            unit = 86400;
            p++;
            break;
        default:
            MF_BAIL_MSG(MF_ERR_PROTO_DURATION, "duration '%.32s': unknown unit (use s, m, h or d)",
                        s);
        }
        total += v * unit;
        MF_ENSURE_MSG(total <= MAX_DURATION, MF_ERR_PROTO_DURATION, "duration '%.32s' too long",
                      s);
    }
    *out = total;
    return MF_RES_OK;
}

/* see mf_time.h */
void mf_duration_format(int64_t secs, char *out, size_t cap)
{
    if (cap == 0) {
        return;
    }
    if (secs <= 0) {
        (void)snprintf(out, cap, "0s");
        return;
    }
    int64_t h = secs / 3600, m = secs % 3600 / 60, s = secs % 60;
    char tmp[64] = "";
    size_t n = 0;
    if (h > 0) {
        n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%lldh", (long long)h);
    }
    if (m > 0) {
        n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%lldm", (long long)m);
    }
    if (s > 0) {
        (void)snprintf(tmp + n, sizeof(tmp) - n, "%llds", (long long)s);
    }
    (void)snprintf(out, cap, "%s", tmp);
}

/* see mf_time.h */
void mf_time_format(int64_t t, char out[MF_RFC3339_LEN])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL) {
        (void)snprintf(out, MF_RFC3339_LEN, "1970-01-01T00:00:00Z");
        return;
    }
    char tmp[128];
    (void)snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    (void)snprintf(out, MF_RFC3339_LEN, "%.31s", tmp);
}

static int digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* see mf_time.h */
mf_res mf_time_parse(const char *s, int64_t *out)
{
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(out);
    size_t n = strnlen(s, 64);
    MF_ENSURE_MSG(n >= 20 && n < 64, MF_ERR_PROTO, "timestamp '%.32s' is not YYYY-MM-DDThh:mm:ssZ",
                  s);
    int Y, M, D, h, m, sec;
    MF_ENSURE_MSG(digits(s, 4, &Y) == 0 && s[4] == '-' && digits(s + 5, 2, &M) == 0 &&
                      s[7] == '-' && digits(s + 8, 2, &D) == 0 && s[10] == 'T' &&
                      digits(s + 11, 2, &h) == 0 && s[13] == ':' && digits(s + 14, 2, &m) == 0 &&
                      s[16] == ':' && digits(s + 17, 2, &sec) == 0,
                  MF_ERR_PROTO, "timestamp '%.32s' is not YYYY-MM-DDThh:mm:ssZ", s);
    const char *p = s + 19;
    if (*p == '.') {
        /* RFC 3339 time-secfrac is "." 1*DIGIT: a bare dot is refused. */
        p++;
        const char *frac = p;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
        MF_ENSURE_MSG(p != frac, MF_ERR_PROTO, "timestamp '%.32s' has an empty fraction", s);
    }
    MF_ENSURE_MSG(p[0] == 'Z' && p[1] == '\0', MF_ERR_PROTO,
                  "timestamp '%.32s' must end in Z (UTC)", s);
    /* Refuse impossible dates rather than let timegm roll 02-31 into March.
     * Second 60 is RFC 3339's leap second; it reads as the next second. */
    MF_ENSURE_MSG(M >= 1 && M <= 12 && D >= 1 && D <= days_in_month(Y, M) && h <= 23 && m <= 59 &&
                      sec <= 60,
                  MF_ERR_PROTO, "timestamp '%.32s' is not a valid date and time", s);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    *out = (int64_t)timegm(&tm);
    return MF_RES_OK;
}
