/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_buf: capped buffers and bounded cursors. See mf_buf.h.
 */
#include "api/core/mf_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_mem.h"

static uint8_t empty_str[1];

/* see mf_buf.h */
void mf_buf_init(struct mf_buf *b, size_t max, unsigned flags)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->flags = flags;
}

/* see mf_buf.h */
void mf_buf_cleanup(struct mf_buf *b)
{
    if (b == NULL) {
        return;
    }
    if (b->data != NULL) {
        if (b->flags & MF_BUF_SECRET) {
            mf_wipe(b->data, b->cap + 1);
        }
        free(b->data);
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* see mf_buf.h */
void mf_buf_reset(struct mf_buf *b)
{
    if (b->data != NULL) {
        if (b->flags & MF_BUF_SECRET) {
            mf_wipe(b->data, b->len);
        }
        b->data[0] = '\0';
    }
    b->len = 0;
}

/* see mf_buf.h */
mf_res mf_buf_reserve(struct mf_buf *b, size_t n)
{
    size_t need;
    MF_ENSURE(mf_add_size(b->len, n, &need), MF_ERR_OVERFLOW);
    MF_ENSURE_MSG(need <= b->max, MF_ERR_PROTO_TOO_LARGE, "more than %zu bytes", b->max);
    if (need <= b->cap && b->data != NULL) {
        return MF_RES_OK;
    }
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need) {
        if (!mf_mul_size(cap, 2, &cap)) {
            cap = need;
            break;
        }
    }
    if (cap > b->max) {
        cap = b->max;
    }
    size_t alloc;
    MF_ENSURE(mf_add_size(cap, 1, &alloc), MF_ERR_OVERFLOW);
    uint8_t *p;
    if (b->flags & MF_BUF_SECRET) {
        /* a new block, and the old one wiped: realloc could leave a copy
         * of the secret behind in memory it frees */
        p = malloc(alloc);
        MF_TRY_PTR(p, MF_ERR_NOMEM);
        if (b->data != NULL) {
            memcpy(p, b->data, b->len);
            mf_wipe(b->data, b->cap + 1);
            free(b->data);
        }
    } else {
        /* grows in place when it can (large blocks are remapped, not
         * copied); on failure the old block is left as it was */
        p = realloc(b->data, alloc);
        MF_TRY_PTR(p, MF_ERR_NOMEM);
    }
    p[b->len] = '\0';
    b->data = p;
    b->cap = cap;
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_buf_append(struct mf_buf *b, const void *p, size_t n)
{
    MF_TRY(mf_buf_reserve(b, n));
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_buf_append_str(struct mf_buf *b, const char *s)
{
    return mf_buf_append(b, s, strlen(s));
}

/* see mf_buf.h */
mf_res mf_buf_append_u8(struct mf_buf *b, uint8_t v)
{
    return mf_buf_append(b, &v, 1);
}

/* see mf_buf.h */
mf_res mf_buf_vprintf(struct mf_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    MF_ENSURE(n >= 0, MF_ERR_INTERNAL);
    MF_TRY(mf_buf_reserve(b, (size_t)n));
    (void)vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_buf_printf(struct mf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mf_res r = mf_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

/* see mf_buf.h */
const char *mf_buf_cstr(const struct mf_buf *b)
{
    return b->data != NULL ? (const char *)b->data : (const char *)empty_str;
}

/* see mf_buf.h */
void mf_buf_consume(struct mf_buf *b, size_t n)
{
    if (n >= b->len) {
        mf_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    if (b->flags & MF_BUF_SECRET) {
        mf_wipe(b->data + b->len - n, n);
    }
    b->len -= n;
    b->data[b->len] = '\0';
}

/* see mf_buf.h */
void mf_cur_init(struct mf_cur *c, const void *p, size_t len)
{
    c->p = p;
    c->len = p != NULL ? len : 0;
    c->off = 0;
}

/* see mf_buf.h */
mf_res mf_cur_read(struct mf_cur *c, size_t n, const uint8_t **out)
{
    MF_ENSURE(mf_cur_remaining(c) >= n, MF_ERR_PROTO_TRUNCATED);
    *out = c->p + c->off;
    c->off += n;
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_cur_copy(struct mf_cur *c, void *dst, size_t n)
{
    MF_ENSURE(mf_cur_remaining(c) >= n, MF_ERR_PROTO_TRUNCATED);
    if (n > 0) {
        memcpy(dst, c->p + c->off, n);
    }
    c->off += n;
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_cur_skip(struct mf_cur *c, size_t n)
{
    MF_ENSURE(mf_cur_remaining(c) >= n, MF_ERR_PROTO_TRUNCATED);
    c->off += n;
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_cur_u8(struct mf_cur *c, uint8_t *out)
{
    MF_ENSURE(mf_cur_remaining(c) >= 1, MF_ERR_PROTO_TRUNCATED);
    *out = c->p[c->off];
    c->off += 1;
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_cur_u16be(struct mf_cur *c, uint16_t *out)
{
    MF_ENSURE(mf_cur_remaining(c) >= 2, MF_ERR_PROTO_TRUNCATED);
    const uint8_t *p = c->p + c->off;
    *out = (uint16_t)((unsigned)p[0] << 8 | p[1]);
    c->off += 2;
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_cur_u32be(struct mf_cur *c, uint32_t *out)
{
    MF_ENSURE(mf_cur_remaining(c) >= 4, MF_ERR_PROTO_TRUNCATED);
    const uint8_t *p = c->p + c->off;
    *out = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    c->off += 4;
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_cur_u64be(struct mf_cur *c, uint64_t *out)
{
    MF_ENSURE(mf_cur_remaining(c) >= 8, MF_ERR_PROTO_TRUNCATED);
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++) {
        v = v << 8 | c->p[c->off + i];
    }
    c->off += 8;
    *out = v;
    return MF_RES_OK;
}

/* see mf_buf.h */
mf_res mf_cur_varint(struct mf_cur *c, uint64_t *out)
{
    uint64_t v = 0;
    size_t save = c->off;
    for (unsigned i = 0; i < 10; i++) {
        uint8_t b = 0;
        mf_res r = mf_cur_u8(c, &b);
        if (!mf_ok(r)) {
            c->off = save;
            return r;
        }
        if (i == 9 && b > 1) {
            c->off = save;
            MF_BAIL(MF_ERR_PROTO);
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *out = v;
            return MF_RES_OK;
        }
    }
    c->off = save;
    MF_BAIL(MF_ERR_PROTO);
}
