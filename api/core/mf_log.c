/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_log: text or JSON lines on stderr, one write(2) per line. See mf_log.h.
 *
 * Invariant: whatever the caller passes, each call writes exactly one line,
 * ending in its only '\n', and in JSON format that line is one valid JSON
 * object. Untrusted text is escaped (text: control bytes, backslash and, in
 * quoted values, '"' become \xNN; JSON: the RFC 8259 escapes, with invalid
 * UTF-8 replaced by U+FFFD), and a line that would pass LINE_MAX_BYTES is cut
 * inside a string, marked "...", and still closed properly.
 */
#include "api/core/mf_log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_text.h"
#include "api/core/mf_time.h"

static _Atomic int log_level = MF_LOG_INFO;
static _Atomic int log_format = MF_LOG_TEXT;
static _Atomic int log_fd = 2;
/* stderr is systemd's journal: text lines carry "<N>" instead of a time */
static _Atomic int log_journal = 0;

#define LINE_MAX_BYTES 8192
/* Escaped text stops this many bytes short of the cap, which leaves room for
 * the "..." mark, the punctuation that closes the pair being written, and the
 * line's end ("\"}\n"). */
#define LINE_RESERVE 32
#define TEXT_STOP    (LINE_MAX_BYTES - LINE_RESERVE)

/* A log line that does not fit is cut short, never failed. */
#define IGNORE(x)         \
    do {                  \
        mf_res ig_ = (x); \
        (void)ig_;        \
    } while (0)

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* True when fd is the stream systemd connected to the journal: it sets
 * JOURNAL_STREAM to "DEV:INODE" of that stream (systemd.exec(5)); comparing
 * with fstat(2) keeps a variable inherited by a child whose stderr was
 * redirected elsewhere from changing its format. */
static bool is_journal(int fd)
{
    const char *e = getenv("JOURNAL_STREAM");
    struct stat st;
    if (e == NULL || fstat(fd, &st) != 0) {
        return false;
    }
    char want[64];
    (void)snprintf(want, sizeof(want), "%llu:%llu", (unsigned long long)st.st_dev,
                   (unsigned long long)st.st_ino);
    return strcmp(e, want) == 0;
}

/* see mf_log.h */
void mf_log_setup(enum mf_log_level level, enum mf_log_format format)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_format, (int)format);
    atomic_store(&log_journal, is_journal(atomic_load(&log_fd)) ? 1 : 0);
}

/* see mf_log.h */
void mf_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
    /* a log file is not the journal: its lines need their timestamps */
    atomic_store(&log_journal, is_journal(fd) ? 1 : 0);
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
    MF_ENSURE_REF(out);
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
    MF_ENSURE_REF(out);
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

/* Length of the well-formed UTF-8 sequence at p (1-4), or 0 when the bytes
 * there are not one (stray continuation, overlong form, surrogate, past
 * U+10FFFF, or cut short by the NUL). p[0] >= 0x80. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) {
            lo = 0xa0; /* no overlong forms */
        } else if (c == 0xed) {
            hi = 0x9f; /* no UTF-16 surrogates */
        }
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f; /* nothing past U+10FFFF */
        }
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

/* Appends s escaped for the line's format; see the invariant at the top. In
 * text, control bytes, DEL and backslash become \xNN so that one log call is
 * always one line, and with quoted set '"' does too, so that a value cannot
 * close its quotes and forge a key=value pair. Stops before the line passes
 * TEXT_STOP and then appends "..." (the reserve guarantees the room); returns
 * false when it stopped early. */
/* True when c goes into the line as it is. */
static bool plain_byte(unsigned char c, bool json, bool quoted)
{
    if (json) {
        return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
    }
    return c >= 0x20 && c != 0x7f && c != '\\' && !(quoted && c == '"');
}

static bool put_escaped(struct mf_buf *b, const char *s, bool json, bool quoted)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        /* a run of bytes that need no escape, in one append */
        size_t run = 0;
        while (p[run] != '\0' && plain_byte(p[run], json, quoted)) {
            run++;
        }
        if (run > 0) {
            size_t room = b->len < TEXT_STOP ? TEXT_STOP - b->len : 0;
            bool cut = run > room;
            if (!mf_ok(mf_buf_append(b, p, cut ? room : run)) || cut) {
                IGNORE(mf_buf_append_str(b, "..."));
                return false;
            }
            p += run;
            continue;
        }
        char esc[8];
        const void *src = esc;
        size_t n;
        size_t adv = 1;
        if (json && (*p == '"' || *p == '\\')) {
            esc[0] = '\\';
            esc[1] = (char)*p;
            n = 2;
        } else if (json && *p < 0x20) {
            n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
        } else if (json && *p >= 0x80) {
            adv = utf8_len(p);
            if (adv == 0) {
                memcpy(esc, "\\ufffd", 6);
                n = 6;
                adv = 1;
            } else {
                src = p;
                n = adv;
            }
        } else if (!json && (*p < 0x20 || *p == 0x7f || *p == '\\' || (quoted && *p == '"'))) {
            esc[0] = '\\';
            esc[1] = 'x';
            mf_hex_byte(*p, esc + 2);
            n = 4;
        } else {
            src = p;
            n = 1;
        }
        if (b->len + n > TEXT_STOP || !mf_ok(mf_buf_append(b, src, n))) {
            IGNORE(mf_buf_append_str(b, "..."));
            return false;
        }
        p += adv;
    }
    /* An empty string adds nothing, but the line may already be full. */
    if (b->len > TEXT_STOP) {
        IGNORE(mf_buf_append_str(b, "..."));
        return false;
    }
    return true;
}

/* The time now as "YYYY-MM-DDThh:mm:ss.mmmZ" (RFC 3339 with
 * milliseconds), without snprintf: the CA logs a line per certificate. */
#define MF_LOG_TS_LEN (MF_RFC3339_LEN + 4)
static void format_ts(char ts[MF_LOG_TS_LEN])
{
    struct timespec now;
    (void)clock_gettime(CLOCK_REALTIME, &now);
    mf_time_format((int64_t)now.tv_sec, ts);
    size_t n = strlen(ts); /* ends in 'Z' */
    long ms = now.tv_nsec / 1000000;
    char *p = ts + n - 1;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    *p = '\0';
}

static void put_prefix(struct mf_buf *b, enum mf_log_level level, const char *func, bool json)
{
    char ts[MF_LOG_TS_LEN];
    const char *lvl = level_names[(int)level & 3];
    if (func == NULL) {
        func = "?";
    }
    /* one block for a line of usual length */
    IGNORE(mf_buf_reserve(b, 256));
    if (json) {
        format_ts(ts);
        IGNORE(mf_buf_append_str(b, "{\"ts\":\""));
        IGNORE(mf_buf_append_str(b, ts));
        IGNORE(mf_buf_append_str(b, "\",\"level\":\""));
        IGNORE(mf_buf_append_str(b, lvl));
        IGNORE(mf_buf_append_str(b, "\",\"func\":\""));
        (void)put_escaped(b, func, true, false);
        IGNORE(mf_buf_append_u8(b, '"'));
    } else if (atomic_load(&log_journal)) {
        /* sd-daemon(3) priority prefix (err 3, warning 4, info 6, debug 7);
         * the journal stamps the time itself */
        static const char *const prio[] = {"<3>", "<4>", "<6>", "<7>"};
        IGNORE(mf_buf_append_str(b, prio[(int)level & 3]));
        IGNORE(mf_buf_append_str(b, lvl));
        IGNORE(mf_buf_append_u8(b, ' '));
        (void)put_escaped(b, func, false, false);
        IGNORE(mf_buf_append_str(b, ": "));
    } else {
        format_ts(ts);
        IGNORE(mf_buf_append_str(b, ts));
        IGNORE(mf_buf_append_u8(b, ' '));
        IGNORE(mf_buf_append_str(b, lvl));
        IGNORE(mf_buf_append_u8(b, ' '));
        (void)put_escaped(b, func, false, false);
        IGNORE(mf_buf_append_str(b, ": "));
    }
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

/* p[0..n) in as few writes as it takes; gives up on an error (a full disk
 * or a closed pipe loses log lines, never the caller's work). */
static void write_all(const uint8_t *p, size_t n)
{
    int fd = atomic_load(&log_fd);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void vwrite(enum mf_log_level level, const char *func, const char *suffix, const char *fmt,
                   va_list ap) __attribute__((format(printf, 4, 0)));

static void vwrite(enum mf_log_level level, const char *func, const char *suffix, const char *fmt,
                   va_list ap)
{
    /* The macros check the level first; direct calls are filtered here. */
    if (!mf_log_enabled(level)) {
        return;
    }
    bool json = atomic_load(&log_format) == MF_LOG_JSON;
    /* A message longer than a line is cut here and marked by put_escaped,
     * rather than replaced: its start is usually what matters. */
    char text[LINE_MAX_BYTES];
    if (vsnprintf(text, sizeof(text), fmt, ap) < 0) {
        (void)snprintf(text, sizeof(text), "(unformattable log message)");
    }
    struct mf_buf b;
    mf_buf_init(&b, LINE_MAX_BYTES, 0);
    put_prefix(&b, level, func, json);
    if (json) {
        IGNORE(mf_buf_append_str(&b, ",\"msg\":\""));
    }
    if (put_escaped(&b, text, json, false) && suffix != NULL) {
        (void)put_escaped(&b, suffix, json, false);
    }
    IGNORE(mf_buf_append_str(&b, json ? "\"}\n" : "\n"));
    emit(&b);
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

/* One event line (see mf_log_event) appended to lines, or written at once
 * when lines is NULL or has no room for it. */
static void vevent(struct mf_buf *lines, enum mf_log_level level, const char *func, const char *msg,
                   va_list ap)
{
    bool json = atomic_load(&log_format) == MF_LOG_JSON;
    struct mf_buf b;
    mf_buf_init(&b, LINE_MAX_BYTES, 0);
    put_prefix(&b, level, func, json);
    if (msg == NULL) {
        msg = "";
    }
    bool room;
    if (json) {
        IGNORE(mf_buf_append_str(&b, ",\"msg\":\""));
        room = put_escaped(&b, msg, true, false);
        IGNORE(mf_buf_append_u8(&b, '"'));
    } else {
        room = put_escaped(&b, msg, false, false);
    }
    /* Once the line is full, the remaining pairs are dropped whole: the pair
     * being written is closed, so the line stays well-formed. */
    while (room) {
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
            room = put_escaped(&b, k, true, false);
            IGNORE(mf_buf_append_str(&b, "\":\""));
            room = room && put_escaped(&b, v, true, false);
            IGNORE(mf_buf_append_u8(&b, '"'));
        } else {
            IGNORE(mf_buf_append_u8(&b, ' '));
            room = put_escaped(&b, k, false, true);
            IGNORE(mf_buf_append_u8(&b, '='));
            /* Values with spaces are quoted so lines stay machine-splittable;
             * put_escaped turns any '"' inside into \x22. */
            bool quote = v[0] == '\0' || strpbrk(v, " \"=") != NULL;
            if (quote) {
                IGNORE(mf_buf_append_u8(&b, '"'));
            }
            room = room && put_escaped(&b, v, false, true);
            if (quote) {
                IGNORE(mf_buf_append_u8(&b, '"'));
            }
        }
    }
    IGNORE(mf_buf_append_str(&b, json ? "}\n" : "\n"));
    if (lines == NULL || !mf_ok(mf_buf_append(lines, b.data, b.len))) {
        /* no room in lines: the line goes out now rather than not at all */
        emit(&b);
    }
    mf_buf_cleanup(&b);
}

/* see mf_log.h */
void mf_log_event(enum mf_log_level level, const char *func, const char *msg, ...)
{
    if (!mf_log_enabled(level)) {
        return;
    }
    va_list ap;
    va_start(ap, msg);
    vevent(NULL, level, func, msg, ap);
    va_end(ap);
}

/* see mf_log.h */
void mf_log_event_to(struct mf_buf *lines, enum mf_log_level level, const char *func,
                     const char *msg, ...)
{
    if (!mf_log_enabled(level)) {
        return;
    }
    va_list ap;
    va_start(ap, msg);
    vevent(lines, level, func, msg, ap);
    va_end(ap);
}

/* see mf_log.h */
void mf_log_lines(struct mf_buf *lines)
{
    if (lines->data == NULL) {
        return;
    }
    size_t off = 0;
    while (off < lines->len) {
        /* whole lines up to PIPE_BUF bytes a write, so that a pipe (the
         * journal, a supervisor) never splits one between writers; a longer
         * line goes alone */
        size_t end = off;
        while (end < lines->len) {
            const uint8_t *nl = memchr(lines->data + end, '\n', lines->len - end);
            size_t next = nl != NULL ? (size_t)(nl - lines->data) + 1 : lines->len;
            if (end > off && next - off > PIPE_BUF) {
                break;
            }
            end = next;
        }
        write_all(lines->data + off, end - off);
        off = end;
    }
    mf_buf_reset(lines);
}
