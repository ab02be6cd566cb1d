/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_buf: a growable byte buffer with a hard cap, and mf_cur, a read cursor
 * over untrusted bytes.
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * Every mf_buf has a maximum size fixed when it is initialised; an append that
 * would pass it fails with MF_ERR_PROTO_TOO_LARGE and leaves the buffer as it
 * was. A buffer flagged MF_BUF_SECRET wipes every byte it ever held: on growth
 * (the old block), on reset and on cleanup. The data is always followed by a
 * NUL byte (not counted in len), so text can be used as a C string.
 *
 * mf_cur reads never run past the end: each read fails with
 * MF_ERR_PROTO_TRUNCATED unless enough bytes remain, and a failed read does not
 * move the cursor. Slices returned by a cursor point into its backing store
 * and must not outlive it.
 */
#ifndef MF_BUF_H
#define MF_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"

#define MF_BUF_SECRET 0x1u

/* Caps on untrusted input (STYLE.md); tighter ones may apply before the peer
 * is authenticated. */
#define MF_MAX_BODY         (64u * 1024u)        /* HTTP request body */
#define MF_MAX_BODY_PREAUTH (16u * 1024u)        /* before the peer is known */
#define MF_MAX_CSR          (8u * 1024u)         /* one CSR, DER or PEM */
#define MF_MAX_SIGN_BODY    (4u * 1024u * 1024u) /* a batch of up to 500 CSRs */
#define MF_MAX_BATCH        500u                 /* CSRs per signing request */
#define MF_MAX_CERT         (16u * 1024u)        /* one certificate */
#define MF_MAX_BUNDLE       (1024u * 1024u)      /* one trust bundle */

struct mf_buf {
    uint8_t *data; /* NULL until the first append */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated (excluding the NUL guard) */
    size_t max;    /* hard cap on len */
    unsigned flags;
};

/* Prepares b (caller-owned storage) to hold at most max bytes. */
void mf_buf_init(struct mf_buf *b, size_t max, unsigned flags);

/* Frees b's storage (wiping it if secret) and leaves b empty but usable.
 * Safe on a zeroed or already cleaned-up buffer. */
void mf_buf_cleanup(struct mf_buf *b);

/* Empties b, keeping its storage (wiped if secret). */
void mf_buf_reset(struct mf_buf *b);

/* Makes room for n more bytes. */
MF_WUR mf_res mf_buf_reserve(struct mf_buf *b, size_t n);

MF_WUR mf_res mf_buf_append(struct mf_buf *b, const void *p, size_t n);
MF_WUR mf_res mf_buf_append_str(struct mf_buf *b, const char *s);
MF_WUR mf_res mf_buf_append_u8(struct mf_buf *b, uint8_t v);
MF_WUR mf_res mf_buf_printf(struct mf_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
MF_WUR mf_res mf_buf_vprintf(struct mf_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* The contents as a NUL-terminated string ("" when empty). Borrowed. */
const char *mf_buf_cstr(const struct mf_buf *b);

/* Drops the first n bytes (n <= len), moving the rest to the front. */
void mf_buf_consume(struct mf_buf *b, size_t n);

struct mf_cur {
    const uint8_t *p;
    size_t len;
    size_t off;
};

void mf_cur_init(struct mf_cur *c, const void *p, size_t len);

static inline size_t mf_cur_remaining(const struct mf_cur *c)
{
    return c->len - c->off;
}

/* Sets *out to the next n bytes (a slice of the backing store) and advances. */
MF_WUR mf_res mf_cur_read(struct mf_cur *c, size_t n, const uint8_t **out);
MF_WUR mf_res mf_cur_copy(struct mf_cur *c, void *dst, size_t n);
MF_WUR mf_res mf_cur_skip(struct mf_cur *c, size_t n);
MF_WUR mf_res mf_cur_u8(struct mf_cur *c, uint8_t *out);
MF_WUR mf_res mf_cur_u16be(struct mf_cur *c, uint16_t *out);
MF_WUR mf_res mf_cur_u32be(struct mf_cur *c, uint32_t *out);
MF_WUR mf_res mf_cur_u64be(struct mf_cur *c, uint64_t *out);
/* Reads a protobuf-style base-128 varint of at most 10 bytes. */
MF_WUR mf_res mf_cur_varint(struct mf_cur *c, uint64_t *out);

#endif /* MF_BUF_H */
