/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_log: leveled logging to stderr as text or JSON lines.
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * The macros check the level before any formatting work, and add the calling
 * function's name. Format strings must be literals; untrusted text passed as
 * an argument is escaped (control characters become \xNN in text output and
 * JSON escapes in JSON output) so that a peer cannot forge log lines.
 *
 * mf_log_event() writes one structured line: a message plus key/value pairs,
 * e.g. for each issuance or denial. In text format it reads
 *   "2026-11-22T18:00:00Z info issue: issued spiffe_id=spiffe://td/x serial=..."
 * and in JSON format every pair is its own member. Never pass secrets.
 *
 * Under systemd (stderr is the journal stream named by $JOURNAL_STREAM,
 * checked by mf_log_setup), text lines start with the sd-daemon priority
 * prefix "<N>" instead of the timestamp: journald records the time and the
 * priority itself. JSON lines are unchanged.
 *
 * Thread-safe: each line is written with a single write(2) (mf_log_lines
 * writes several whole lines in one).
 */
#ifndef MF_LOG_H
#define MF_LOG_H

#include <stdbool.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"

enum mf_log_level {
    MF_LOG_ERR = 0,
    MF_LOG_WARN = 1,
    MF_LOG_INFO = 2,
    MF_LOG_DEBUG = 3,
};

enum mf_log_format {
    MF_LOG_TEXT = 0,
    MF_LOG_JSON = 1,
};

/* Defaults: info, text, to stderr (fd 2). */
void mf_log_setup(enum mf_log_level level, enum mf_log_format format);
/* Sends log lines to fd instead of stderr (tests). */
void mf_log_set_fd(int fd);
bool mf_log_enabled(enum mf_log_level level);

/* Parses "error|warn|info|debug" and "text|json". */
MF_WUR mf_res mf_log_level_parse(const char *s, enum mf_log_level *out);
MF_WUR mf_res mf_log_format_parse(const char *s, enum mf_log_format *out);

void mf_log_write(enum mf_log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Key/value pairs follow msg as const char * arguments, ending with NULL. */
void mf_log_event(enum mf_log_level level, const char *func, const char *msg, ...)
    __attribute__((sentinel));

/* mf_log_event's line appended to lines instead of written (nothing when
 * level is off; written at once when lines is full). A caller that logs a
 * line per item of a batch writes them with mf_log_lines: a few writes
 * instead of one per line. */
void mf_log_event_to(struct mf_buf *lines, enum mf_log_level level, const char *func,
                     const char *msg, ...) __attribute__((sentinel));
/* Writes the whole lines in lines, at most PIPE_BUF bytes a write (a line
 * longer than that in a write of its own, as mf_log_event would), and
 * empties lines. */
void mf_log_lines(struct mf_buf *lines);

#define mf_log_at(lvl, ...)                             \
    do {                                                \
        if (mf_log_enabled(lvl)) {                      \
            mf_log_write((lvl), __func__, __VA_ARGS__); \
        }                                               \
    } while (0)

#define mf_log_err(...)   mf_log_at(MF_LOG_ERR, __VA_ARGS__)
#define mf_log_warn(...)  mf_log_at(MF_LOG_WARN, __VA_ARGS__)
#define mf_log_info(...)  mf_log_at(MF_LOG_INFO, __VA_ARGS__)
#define mf_log_debug(...) mf_log_at(MF_LOG_DEBUG, __VA_ARGS__)

/* The _r forms append ": <error string>: <detail>" for r. */
void mf_log_write_r(enum mf_log_level level, const char *func, mf_res r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define mf_log_err_r(r, ...)                                        \
    do {                                                            \
        if (mf_log_enabled(MF_LOG_ERR)) {                           \
            mf_log_write_r(MF_LOG_ERR, __func__, (r), __VA_ARGS__); \
        }                                                           \
    } while (0)
#define mf_log_warn_r(r, ...)                                        \
    do {                                                             \
        if (mf_log_enabled(MF_LOG_WARN)) {                           \
            mf_log_write_r(MF_LOG_WARN, __func__, (r), __VA_ARGS__); \
        }                                                            \
    } while (0)

#endif /* MF_LOG_H */
