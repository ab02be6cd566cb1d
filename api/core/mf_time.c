/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_time: clocks, durations and timestamps. See mf_time.h.
 */
#include "api/core/mf_time.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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
            MF_ENSURE_MSG(v <= MAX_DURATION, MF_ERR_PROTO_DURATION, "duration '%.32s' too long", s);
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
        MF_ENSURE_MSG(total <= MAX_DURATION, MF_ERR_PROTO_DURATION, "duration '%.32s' too long", s);
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

/* ---- calendar ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back: the era
 * arithmetic of "chrono-compatible low-level date algorithms" (400-year
 * eras of 146097 days, years counted from March so that the leap day comes
 * last). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2 ? 1 : 0;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = m > 2 ? m - 3 : m + 9;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* see mf_time.h */
void mf_civil_from_time(int64_t t, struct mf_civil *out)
{
    /* floor division, so that times before 1970 land on the right day */
    int64_t days = t / 86400 - (t % 86400 < 0 ? 1 : 0);
    int64_t secs = t - days * 86400;
    civil_from_days(days, &out->year, &out->month, &out->day);
    out->hour = (int)(secs / 3600);
    out->min = (int)(secs / 60 % 60);
    out->sec = (int)(secs % 60);
}

/* see mf_time.h */
bool mf_civil_to_time(const struct mf_civil *c, int max_sec, int64_t *out)
{
    /* Refuse impossible dates rather than roll 02-31 into March. The year
     * bound keeps the arithmetic far from overflow. */
    if (c->year < -1000000 || c->year > 1000000 || c->month < 1 || c->month > 12 || c->day < 1 ||
        c->day > days_in_month(c->year, c->month) || c->hour < 0 || c->hour > 23 || c->min < 0 ||
        c->min > 59 || c->sec < 0 || c->sec > max_sec) {
        return false;
    }
    *out =
        days_from_civil(c->year, c->month, c->day) * 86400 + c->hour * 3600 + c->min * 60 + c->sec;
    return true;
}

/* see mf_time.h */
bool mf_dec_digits(const char *p, size_t n, int *out)
{
    int v = 0;
    if (n > 9) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* ---- RFC 3339 -------------------------------------------------------------- */

/* see mf_time.h */
/* n decimal digits of v (>= 0), zero-padded, at p; returns the end */
static char *put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

void mf_time_format(int64_t t, char out[MF_RFC3339_LEN])
{
    struct mf_civil c;
    mf_civil_from_time(t, &c);
    if (c.year >= 0 && c.year <= 9999) {
        /* by hand: the CA formats two of these per certificate it issues */
        char *p = put_digits(out, (int)c.year, 4);
        *p++ = '-';
        p = put_digits(p, c.month, 2);
        *p++ = '-';
        p = put_digits(p, c.day, 2);
        *p++ = 'T';
        p = put_digits(p, c.hour, 2);
        *p++ = ':';
        p = put_digits(p, c.min, 2);
        *p++ = ':';
        p = put_digits(p, c.sec, 2);
        *p++ = 'Z';
        *p = '\0';
        return;
    }
    char tmp[128];
    (void)snprintf(tmp, sizeof(tmp), "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)c.year, c.month,
                   c.day, c.hour, c.min, c.sec);
    (void)snprintf(out, MF_RFC3339_LEN, "%.31s", tmp);
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
    MF_ENSURE_MSG(mf_dec_digits(s, 4, &Y) && s[4] == '-' && mf_dec_digits(s + 5, 2, &M) &&
                      s[7] == '-' && mf_dec_digits(s + 8, 2, &D) && s[10] == 'T' &&
                      mf_dec_digits(s + 11, 2, &h) && s[13] == ':' &&
                      mf_dec_digits(s + 14, 2, &m) && s[16] == ':' &&
                      mf_dec_digits(s + 17, 2, &sec),
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
    /* Second 60 is RFC 3339's leap second; it reads as the next second. */
    const struct mf_civil c = {Y, M, D, h, m, sec};
    MF_ENSURE_MSG(mf_civil_to_time(&c, 60, out), MF_ERR_PROTO,
                  "timestamp '%.32s' is not a valid date and time", s);
    return MF_RES_OK;
}
