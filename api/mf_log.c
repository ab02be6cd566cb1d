/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_log: text or JSON lines on stderr, one write(2) per line. See mf_log.h.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/mf_buf.h"
#include "api/mf_log.h"

static _Atomic int log_level = MF_LOG_INFO;
static _Atomic int log_format = MF_LOG_TEXT;
static _Atomic int log_fd = 2;

#define LINE_MAX_BYTES 8192

/* A log line that does not fit is cut short, never failed. */
#define IGNORE(x)                                                                                  \
    do {                                                                                           \
        mf_res ig_ = (x);                                                                          \
        (void)ig_;                                                                                 \
    } while (0)

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* see mf_log.h */
void mf_log_setup(enum mf_log_level level, enum mf_log_format format)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_format, (int)format);
}

/* see mf_log.h */
void mf_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

/* see mf_log.h */
bool mf_log_enabled(enum mf_log_level level)
{
    return (int)level <= atomic_load(&log_level);
}

/* see mf_log.h */
mf_res mf_log_level_parse(const char *s, enum mf_log_level *out)
{
    MF_ENSURE_REF(s);
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum mf_log_level)i;
            return MF_RES_OK;
        }
    }
    if (strcmp(s, "err") == 0) {
        *out = MF_LOG_ERR;
        return MF_RES_OK;
    }
    MF_BAIL_MSG(MF_ERR_USAGE_ARG, "log level must be error, warn, info or debug, not '%.32s'", s);
}

/* see mf_log.h */
mf_res mf_log_format_parse(const char *s, enum mf_log_format *out)
{
    MF_ENSURE_REF(s);
    if (strcmp(s, "text") == 0) {
        *out = MF_LOG_TEXT;
        return MF_RES_OK;
    }
    if (strcmp(s, "json") == 0) {
        *out = MF_LOG_JSON;
        return MF_RES_OK;
    }
    MF_BAIL_MSG(MF_ERR_USAGE_ARG, "log format must be text or json, not '%.32s'", s);
}

/* Appends s escaped for the current format. In text, control bytes and
 * backslash become \xNN so that one log call is always one line. */
static void put_escaped(struct mf_buf *b, const char *s, bool json)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        mf_res r;
        if (json && (*p == '"' || *p == '\\')) {
            r = mf_buf_printf(b, "\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f || (!json && *p == '\\')) {
            r = json ? mf_buf_printf(b, "\\u%04x", *p) : mf_buf_printf(b, "\\x%02x", *p);
        } else {
            r = mf_buf_append_u8(b, *p);
        }
        if (!mf_ok(r)) {
            return;
        }
    }
}

static void put_prefix(struct mf_buf *b, enum mf_log_level level, const char *func, bool json)
{
    char ts[96];
    struct timespec now;
    struct tm tm;
    (void)clock_gettime(CLOCK_REALTIME, &now);
    (void)gmtime_r(&now.tv_sec, &tm);
    (void)snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   now.tv_nsec / 1000000);
    const char *lvl = level_names[(int)level & 3];
    mf_res r;
    if (json) {
        r = mf_buf_printf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"func\":\"%s\"", ts, lvl, func);
    } else {
        r = mf_buf_printf(b, "%s %s %s: ", ts, lvl, func);
    }
    (void)r;
}

static void emit(struct mf_buf *b)
{
    if (b->len == 0 || b->data == NULL) {
        return;
    }
    /* One write per line keeps lines whole between threads. */
    ssize_t w = write(atomic_load(&log_fd), b->data, b->len);
    (void)w;
}

static void vwrite(enum mf_log_level level, const char *func, const char *suffix,
                   const char *fmt, va_list ap)
{
    bool json = atomic_load(&log_format) == MF_LOG_JSON;
    struct mf_buf b, msg;
    mf_buf_init(&b, LINE_MAX_BYTES, 0);
    mf_buf_init(&msg, LINE_MAX_BYTES, 0);
    put_prefix(&b, level, func, json);
    if (!mf_ok(mf_buf_vprintf(&msg, fmt, ap))) {
        mf_buf_reset(&msg);
        IGNORE(mf_buf_append_str(&msg, "(log message too long)"));
    }
    if (suffix != NULL) {
        IGNORE(mf_buf_append_str(&msg, suffix));
    }
    if (json) {
        IGNORE(mf_buf_append_str(&b, ",\"msg\":\""));
        put_escaped(&b, mf_buf_cstr(&msg), true);
        IGNORE(mf_buf_append_str(&b, "\"}\n"));
    } else {
        put_escaped(&b, mf_buf_cstr(&msg), false);
        IGNORE(mf_buf_append_u8(&b, '\n'));
    }
    emit(&b);
    mf_buf_cleanup(&msg);
    mf_buf_cleanup(&b);
}

/* see mf_log.h */
void mf_log_write(enum mf_log_level level, const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, func, NULL, fmt, ap);
    va_end(ap);
}

/* see mf_log.h */
void mf_log_write_r(enum mf_log_level level, const char *func, mf_res r, const char *fmt, ...)
{
    char suffix[600];
    char what[580];
    mf_err_format(r, what, sizeof(what));
    (void)snprintf(suffix, sizeof(suffix), ": %s", what);
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, func, suffix, fmt, ap);
    va_end(ap);
}

/* see mf_log.h */
void mf_log_event(enum mf_log_level level, const char *func, const char *msg, ...)
{
    if (!mf_log_enabled(level)) {
        return;
    }
    bool json = atomic_load(&log_format) == MF_LOG_JSON;
    struct mf_buf b;
    mf_buf_init(&b, LINE_MAX_BYTES, 0);
    put_prefix(&b, level, func, json);
    if (json) {
        IGNORE(mf_buf_append_str(&b, ",\"msg\":\""));
        put_escaped(&b, msg, true);
        IGNORE(mf_buf_append_u8(&b, '"'));
    } else {
        put_escaped(&b, msg, false);
    }
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL) {
            break;
        }
        const char *v = va_arg(ap, const char *);
        if (v == NULL) {
            v = "";
        }
        if (json) {
            IGNORE(mf_buf_append_str(&b, ",\""));
            put_escaped(&b, k, true);
            IGNORE(mf_buf_append_str(&b, "\":\""));
            put_escaped(&b, v, true);
            IGNORE(mf_buf_append_u8(&b, '"'));
        } else {
            IGNORE(mf_buf_printf(&b, " %s=", k));
            /* Values with spaces are quoted so lines stay machine-splittable. */
            bool quote = v[0] == '\0' || strpbrk(v, " \"=") != NULL;
            if (quote) {
                IGNORE(mf_buf_append_u8(&b, '"'));
            }
            put_escaped(&b, v, false);
            if (quote) {
                IGNORE(mf_buf_append_u8(&b, '"'));
            }
        }
    }
    va_end(ap);
    IGNORE(mf_buf_append_str(&b, json ? "}\n" : "\n"));
    emit(&b);
    mf_buf_cleanup(&b);
}
