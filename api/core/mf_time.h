/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_time: the clock, durations, RFC 3339 timestamps, and the one UTC
 * calendar of the tree (also used for ASN.1 times by api/pki/mf_der).
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * mf_now() is wall-clock seconds since the epoch, read through a hook that
 * tests may replace (mf_time_set_clock) so that rotation schedules can be
 * driven on an injected clock. mf_mono_ms() is the monotonic clock, for
 * timeouts and latencies only.
 */
#ifndef MF_TIME_H
#define MF_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"

#define MF_RFC3339_LEN 32 /* buffer size for a formatted timestamp */

int64_t mf_now(void);
/* Wall-clock milliseconds since the epoch (through the same hook, x1000). */
int64_t mf_now_ms(void);
int64_t mf_mono_ms(void);

/* Replaces the wall clock (NULL restores the real one). For tests. */
void mf_time_set_clock(int64_t (*fn)(void));

/* Parses "90", "20s", "10m", "1h", "24h", "7d" and sums like "1h30m" into
 * seconds. Refuses negatives, empty strings, unknown units and values over
 * 10 years. */
MF_WUR mf_res mf_duration_parse(const char *s, int64_t *out);

/* Writes a duration as hours, minutes and seconds ("1h", "1m30s", "168h"). */
void mf_duration_format(int64_t secs, char *out, size_t cap);

/* A UTC date and time in the proleptic Gregorian calendar, without leap
 * seconds (POSIX time). */
struct mf_civil {
    int64_t year;
    int month; /* 1-12 */
    int day;   /* 1-31 */
    int hour;  /* 0-23 */
    int min;   /* 0-59 */
    int sec;   /* 0-59 (60 accepted by mf_civil_to_time when allowed) */
};

/* Breaks t (seconds since the epoch, any sign) into its UTC date and time. */
void mf_civil_from_time(int64_t t, struct mf_civil *out);

/* Seconds since the epoch of c. False, with *out untouched, unless c is a
 * real date and time: month 1-12, day within the month (leap years
 * counted), hour 0-23, minute 0-59, second 0-max_sec. A second 60 (an
 * RFC 3339 leap second, max_sec 60) reads as the next second. */
bool mf_civil_to_time(const struct mf_civil *c, int max_sec, int64_t *out);

/* The n (<= 9) decimal digits at p as a number; false on any non-digit. */
bool mf_dec_digits(const char *p, size_t n, int *out);

/* "2026-11-22T18:42:00Z" */
void mf_time_format(int64_t t, char out[MF_RFC3339_LEN]);

/* Parses the UTC form written by mf_time_format (and fractional seconds,
 * which are dropped). Offsets other than Z are refused. */
MF_WUR mf_res mf_time_parse(const char *s, int64_t *out);

#endif /* MF_TIME_H */
