/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_text: hex and percent-encoding (see mf_text.h). The one copy of the hex
 * alphabet in the tree is here.
 */
#include "api/core/mf_text.h"

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* see mf_text.h */
void mf_hex_byte(uint8_t b, char out[2])
{
    out[0] = hex_lower[b >> 4];
    out[1] = hex_lower[b & 0x0f];
}

/* see mf_text.h */
void mf_hex(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        mf_hex_byte(in[i], out + 2 * i);
    }
    out[2 * n] = '\0';
}

static bool pct_plain(unsigned char c, enum mf_pct_set set)
{
    switch (set) {
    case MF_PCT_UNRESERVED:
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_' || c == '~';
    case MF_PCT_GRPC:
        return c >= 0x20 && c < 0x7f && c != '%';
    default:
        return false;
    }
}

/* Writes the encoding of c (1 or 3 bytes) into e; returns its length. */
static size_t pct_one(unsigned char c, enum mf_pct_set set, char e[3])
{
    if (pct_plain(c, set)) {
        e[0] = (char)c;
        return 1;
    }
    e[0] = '%';
    e[1] = hex_upper[c >> 4];
    e[2] = hex_upper[c & 0x0f];
    return 3;
}

/* see mf_text.h */
mf_res mf_pct_append(struct mf_buf *out, const char *s, enum mf_pct_set set)
{
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(s);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char e[3];
        MF_TRY(mf_buf_append(out, e, pct_one(*p, set, e)));
    }
    return MF_RES_OK;
}

/* see mf_text.h */
bool mf_pct_encode(const char *s, enum mf_pct_set set, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char e[3];
        size_t n = pct_one(*p, set, e);
        if (n >= cap - o) {
            out[o] = '\0';
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            out[o++] = e[i];
        }
    }
    out[o] = '\0';
    return true;
}

/* see mf_text.h */
int mf_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}
