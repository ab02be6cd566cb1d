/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_pem: PEM (RFC 7468), base64 and base64url (RFC 4648). It needs only
 * api/core (its place in api/pki is in mf_der.h).
 *
 * PEM bodies may hold private keys, so every intermediate text buffer is an
 * MF_BUF_SECRET buffer, and base64 into or out of such a buffer maps the
 * alphabet with arithmetic instead of table lookups (no secret-dependent
 * memory access). Public data (any other buffer, or a PEM block whose label
 * is a certificate's, a CSR's, a CRL's or a public key's) goes through
 * tables. The decoders
 * are strict: padding where RFC 4648 requires it, zero trailing bits, and no
 * characters outside the alphabet; a PEM block may not carry RFC 1421
 * headers (that is how encrypted keys are written, which we do not read).
 */
#include <limits.h>
#include <string.h>

#include "api/core/mf_mem.h"
#include "api/pki/mf_x509.h"

#define PEM_DASHES     "-----"
#define PEM_BEGIN      "-----BEGIN "
#define PEM_END        "-----END "
#define PEM_LABEL_MAX  64
#define PEM_LINE_CHARS 64

/* ---- base64 ---------------------------------------------------------------- */

/* Mask of all ones when lo <= c <= hi, else 0, without branches. */
static int in_range(int c, int lo, int hi)
{
    return ((lo - 1 - c) & (c - hi - 1)) >> 8;
}

/* The 6-bit value of c, or -1 when c is outside the alphabet. */
static int b64_value(uint8_t ch, bool url)
{
    int c = ch;
    int v = -1;
    v += in_range(c, 'A', 'Z') & (c - 'A' + 1);
    v += in_range(c, 'a', 'z') & (c - 'a' + 27);
    v += in_range(c, '0', '9') & (c - '0' + 53);
    v += in_range(c, url ? '-' : '+', url ? '-' : '+') & 63;
    v += in_range(c, url ? '_' : '/', url ? '_' : '/') & 64;
    return v;
}

static char b64_char(unsigned v, bool url)
{
    int x = (int)v;
    int c = x + 'A';
    c += ((25 - x) >> 8) & ('a' - 'A' - 26);
    c -= ((51 - x) >> 8) & 75;
    c -= ((61 - x) >> 8) & (url ? 13 : 15);
    c += ((62 - x) >> 8) & (url ? 49 : 3);
    return (char)c;
}

/* The same mappings as tables, for public data (a buffer without
 * MF_BUF_SECRET): certificates, CSRs and JWT parts, the bulk of what the
 * CA encodes and decodes. -1 marks a character outside the alphabet. */
static const char b64_std_chars[65] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url_chars[65] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const int8_t b64_std_values[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1, -1, 0,  1,  2,  3,  4,  5,  6,
    7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
    49, 50, 51, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};
static const int8_t b64_url_values[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1, -1, 0,  1,  2,  3,  4,  5,  6,
    7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
    49, 50, 51, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* One base64 character for v (0..63): by arithmetic for secrets (ct), by
 * table otherwise. Inlined into loops that each pass a constant ct. */
static inline char b64_enc(unsigned v, bool url, bool ct)
{
    if (ct) {
        return b64_char(v, url);
    }
    return url ? b64_url_chars[v] : b64_std_chars[v];
}

static inline int b64_dec(uint8_t c, bool url, bool ct)
{
    if (ct) {
        return b64_value(c, url);
    }
    return url ? b64_url_values[c] : b64_std_values[c];
}

static inline char *b64_encode_run(const uint8_t *in, size_t len, bool url, bool pad, bool ct,
                                   char *dst)
{
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i += 3) {
        size_t n = len - i < 3 ? len - i : 3;
        acc = (uint32_t)in[i] << 16;
        if (n > 1) {
            acc |= (uint32_t)in[i + 1] << 8;
        }
        if (n > 2) {
            acc |= in[i + 2];
        }
        dst[0] = b64_enc((acc >> 18) & 63, url, ct);
        dst[1] = b64_enc((acc >> 12) & 63, url, ct);
        dst[2] = n > 1 ? b64_enc((acc >> 6) & 63, url, ct) : '=';
        dst[3] = n > 2 ? b64_enc(acc & 63, url, ct) : '=';
        dst += n < 3 && !pad ? n + 1 : 4;
    }
    mf_wipe(&acc, sizeof(acc));
    return dst;
}

static mf_res b64_encode(const uint8_t *in, size_t len, bool url, bool pad, struct mf_buf *out)
{
    size_t groups = len / 3 + (len % 3 != 0);
    size_t need;
    MF_ENSURE(mf_mul_size(groups, 4, &need), MF_ERR_OVERFLOW);
    MF_TRY(mf_buf_reserve(out, need));
    /* written in place: the buffer has room for every group */
    char *dst = (char *)out->data + out->len;
    if (out->flags & MF_BUF_SECRET) {
        dst = b64_encode_run(in, len, url, pad, true, dst);
    } else {
        dst = b64_encode_run(in, len, url, pad, false, dst);
    }
    out->len = (size_t)(dst - (char *)out->data);
    out->data[out->len] = '\0';
    return MF_RES_OK;
}

/* Decodes the whole groups of in[0..full) into dst; ORs -1 into *bad on a
 * character outside the alphabet. Returns the end of what it wrote. */
static inline uint8_t *b64_decode_run(const char *in, size_t full, bool url, bool ct, uint8_t *dst,
                                      int *bad)
{
    uint32_t acc = 0;
    int b = 0;
    for (size_t i = 0; i < full; i += 4) {
        acc = 0;
        for (size_t k = 0; k < 4; k++) {
            int v = b64_dec((uint8_t)in[i + k], url, ct);
            b |= v;
            acc = (acc << 6) | (uint32_t)(v & 63);
        }
        *dst++ = (uint8_t)(acc >> 16);
        *dst++ = (uint8_t)(acc >> 8);
        *dst++ = (uint8_t)acc;
    }
    mf_wipe(&acc, sizeof(acc));
    *bad |= b;
    return dst;
}

/* Decodes len characters (no whitespace). With pad, len is a multiple of 4
 * and the last group may end in "=" or "=="; without, there is no "=" and
 * len % 4 != 1. Bits past the last whole octet must be zero. On failure out
 * is left as it was. */
static mf_res b64_decode(const char *in, size_t len, bool url, bool pad, bool ct,
                         struct mf_buf *out)
{
    size_t full;
    size_t tail; /* characters in a final partial group */
    if (pad) {
        MF_ENSURE_MSG(len % 4 == 0, MF_ERR_PROTO_PEM, "base64 length %zu is not a multiple of 4",
                      len);
        size_t eq = 0;
        if (len >= 4 && in[len - 1] == '=') {
            eq = in[len - 2] == '=' ? 2 : 1;
        }
        full = eq > 0 ? len - 4 : len;
        tail = eq > 0 ? 4 - eq : 0;
    } else {
        MF_ENSURE_MSG(len % 4 != 1, MF_ERR_PROTO_PEM, "base64url length %zu is impossible", len);
        tail = len % 4;
        full = len - tail;
    }
    /* 2 trailing characters carry 1 octet, 3 carry 2 */
    size_t nbytes = tail > 0 ? tail - 1 : 0;
    size_t out_n = full / 4 * 3 + nbytes;
    MF_TRY(mf_buf_reserve(out, out_n));
    uint8_t *dst = out->data + out->len;
    int bad = 0;
    uint32_t acc = 0;
    if (ct) {
        dst = b64_decode_run(in, full, url, true, dst, &bad);
    } else {
        dst = b64_decode_run(in, full, url, false, dst, &bad);
    }
    if (tail > 0) {
        acc = 0;
        for (size_t k = 0; k < tail; k++) {
            int v = b64_dec((uint8_t)in[full + k], url, ct);
            bad |= v;
            acc = (acc << 6) | (uint32_t)(v & 63);
        }
        size_t extra = tail * 6 - nbytes * 8;
        bad |= -(int)((acc & ((1u << extra) - 1u)) != 0);
        acc >>= extra;
        for (size_t k = 0; k < nbytes; k++) {
            *dst++ = (uint8_t)(acc >> (8 * (nbytes - 1 - k)));
        }
    }
    mf_wipe(&acc, sizeof(acc));
    if (bad < 0) {
        if (out->flags & MF_BUF_SECRET) {
            mf_wipe(out->data + out->len, out_n);
        }
        out->data[out->len] = '\0';
        MF_BAIL_MSG(MF_ERR_PROTO_PEM, "invalid base64 character, padding or trailing bits");
    }
    out->len += out_n;
    out->data[out->len] = '\0';
    return MF_RES_OK;
}

/* see mf_x509.h */
mf_res mf_b64_encode(const uint8_t *in, size_t len, struct mf_buf *out)
{
    MF_ENSURE_REF(out);
    MF_ENSURE(in != NULL || len == 0, MF_ERR_USAGE_NULL);
    return b64_encode(in, len, false, true, out);
}

/* see mf_x509.h */
mf_res mf_b64_decode(const char *in, size_t len, struct mf_buf *out)
{
    MF_ENSURE_REF(out);
    MF_ENSURE(in != NULL || len == 0, MF_ERR_USAGE_NULL);
    return b64_decode(in, len, false, true, (out->flags & MF_BUF_SECRET) != 0, out);
}

/* see mf_x509.h */
mf_res mf_b64url_encode(const uint8_t *in, size_t len, struct mf_buf *out)
{
    MF_ENSURE_REF(out);
    MF_ENSURE(in != NULL || len == 0, MF_ERR_USAGE_NULL);
    return b64_encode(in, len, true, false, out);
}

/* see mf_x509.h */
mf_res mf_b64url_decode(const char *in, size_t len, struct mf_buf *out)
{
    MF_ENSURE_REF(out);
    MF_ENSURE(in != NULL || len == 0, MF_ERR_USAGE_NULL);
    return b64_decode(in, len, true, false, (out->flags & MF_BUF_SECRET) != 0, out);
}

/* ---- PEM --------------------------------------------------------------------- */

static bool label_ok(const char *s, size_t n)
{
    if (n == 0 || n >= PEM_LABEL_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ')) {
            return false;
        }
    }
    return s[0] != ' ' && s[n - 1] != ' ';
}

/* Labels whose blocks never hold a secret (RFC 7468): anything else read
 * into a secret buffer is decoded in constant time. */
static bool public_label(const char *s, size_t n)
{
    static const char *const pub[] = {"CERTIFICATE", "PUBLIC KEY", "CERTIFICATE REQUEST",
                                      "X509 CRL"};
    for (size_t i = 0; i < sizeof(pub) / sizeof(pub[0]); i++) {
        if (strlen(pub[i]) == n && memcmp(s, pub[i], n) == 0) {
            return true;
        }
    }
    return false;
}

/* see mf_x509.h */
mf_res mf_pem_encode(const char *label, const uint8_t *der, size_t len, struct mf_buf *out)
{
    MF_ENSURE_REF(label);
    MF_ENSURE_REF(der);
    MF_ENSURE_REF(out);
    MF_ENSURE_MSG(label_ok(label, strlen(label)), MF_ERR_USAGE_ARG, "bad PEM label");
    MF_ENSURE_MSG(len > 0, MF_ERR_USAGE_ARG, "empty PEM body");
    MF_TRY(mf_buf_printf(out, PEM_BEGIN "%s" PEM_DASHES "\n", label));
    for (size_t i = 0; i < len; i += PEM_LINE_CHARS / 4 * 3) {
        size_t n = len - i < PEM_LINE_CHARS / 4 * 3 ? len - i : PEM_LINE_CHARS / 4 * 3;
        MF_TRY(b64_encode(der + i, n, false, true, out));
        MF_TRY(mf_buf_append_u8(out, '\n'));
    }
    MF_TRY(mf_buf_printf(out, PEM_END "%s" PEM_DASHES "\n", label));
    return MF_RES_OK;
}

/* The end of the line starting at p (the '\n', or end), and the length of
 * its text without a trailing "\r". */
static size_t line_len(const uint8_t *p, size_t avail, size_t *text)
{
    const uint8_t *nl = memchr(p, '\n', avail);
    size_t n = nl != NULL ? (size_t)(nl - p) : avail;
    *text = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
    return n;
}

/* see mf_x509.h */
mf_res mf_pem_next(struct mf_cur *cur, char *label, size_t label_cap, struct mf_buf *der)
{
    MF_ENSURE_REF(cur);
    MF_ENSURE_REF(label);
    MF_ENSURE_REF(der);
    MF_ENSURE(label_cap > 0, MF_ERR_USAGE_ARG);
    label[0] = '\0';
    mf_buf_reset(der);

    const uint8_t *base = cur->p;
    size_t end = cur->len;
    size_t off = cur->off;
    const size_t blen = sizeof(PEM_BEGIN) - 1;
    /* find "-----BEGIN " at the start of a line */
    for (;;) {
        const uint8_t *hit = off < end ? memmem(base + off, end - off, PEM_BEGIN, blen) : NULL;
        if (hit == NULL) {
            return MF_RAISE_MSG(MF_ERR_IO_EOF, "no further PEM block");
        }
        size_t at = (size_t)(hit - base);
        if (at == 0 || base[at - 1] == '\n') {
            off = at;
            break;
        }
        off = at + 1;
    }

    mf_res rc;
    struct mf_buf text;
    size_t max_text = (der->max / 3 + 1) * 4;
    mf_buf_init(&text, max_text, MF_BUF_SECRET);

    /* BEGIN line */
    size_t tl;
    size_t ll = line_len(base + off, end - off, &tl);
    const char *lab = (const char *)base + off + blen;
    const size_t dl = sizeof(PEM_DASHES) - 1;
    MF_ENSURE_OUT_MSG(off + ll < end, MF_ERR_PROTO_PEM, "PEM block has no body");
    MF_ENSURE_OUT_MSG(tl > blen + dl && memcmp(base + off + tl - dl, PEM_DASHES, dl) == 0,
                      MF_ERR_PROTO_PEM, "malformed BEGIN line");
    size_t lab_len = tl - blen - dl;
    MF_ENSURE_OUT_MSG(label_ok(lab, lab_len), MF_ERR_PROTO_PEM, "malformed PEM label");
    MF_ENSURE_OUT_MSG(lab_len < label_cap, MF_ERR_PROTO_PEM, "PEM label too long");
    off += ll + 1;

    /* body lines, then the END line */
    for (;;) {
        MF_ENSURE_OUT_MSG(off < end, MF_ERR_PROTO_PEM, "PEM block has no END line");
        ll = line_len(base + off, end - off, &tl);
        const uint8_t *l = base + off;
        if (tl >= sizeof(PEM_END) - 1 && memcmp(l, PEM_END, sizeof(PEM_END) - 1) == 0) {
            size_t el = sizeof(PEM_END) - 1;
            MF_ENSURE_OUT_MSG(tl == el + lab_len + dl && memcmp(l + el, lab, lab_len) == 0 &&
                                  memcmp(l + el + lab_len, PEM_DASHES, dl) == 0,
                              MF_ERR_PROTO_PEM, "END line does not match BEGIN");
            off += ll < end - off ? ll + 1 : ll;
            break;
        }
        MF_ENSURE_OUT_MSG(tl > 0, MF_ERR_PROTO_PEM, "empty line in PEM body");
        MF_ENSURE_OUT_MSG(memchr(l, ':', tl) == NULL, MF_ERR_PROTO_PEM,
                          "PEM headers (encrypted keys) are not supported");
        MF_TRY_OUT(mf_buf_append(&text, l, tl));
        off += ll < end - off ? ll + 1 : ll;
    }
    MF_ENSURE_OUT_MSG(text.len > 0, MF_ERR_PROTO_PEM, "empty PEM body");
    /* a block with a public label is decoded by table even into a secret
     * buffer (one buffer often reads a key and its certificates) */
    rc = b64_decode((const char *)text.data, text.len, false, true,
                    (der->flags & MF_BUF_SECRET) != 0 && !public_label(lab, lab_len), der);
    if (rc.err == MF_ERR_PROTO_TOO_LARGE) {
        MF_BAIL_OUT(MF_ERR_PROTO_TOO_LARGE, "PEM block over %zu bytes", der->max);
    }
    MF_TRY_OUT(rc);
    memcpy(label, lab, lab_len);
    label[lab_len] = '\0';
    cur->off = off;
    rc = MF_RES_OK;
out:
    if (!mf_ok(rc)) {
        mf_buf_reset(der);
    }
    mf_buf_cleanup(&text);
    return rc;
}
