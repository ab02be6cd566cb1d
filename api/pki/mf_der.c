/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_der: the strict DER reader and the small DER writer of the pki layer,
 * and the OIDs that more than one pki file names. It sits at the bottom of
 * api/pki (see mf_der.h for the order) and needs nothing but api/core:
 * X.690 tag-length-value handling, the RFC 5280 4.1.2.5 time forms through
 * the one calendar in mf_time, and the few fixed structures (Extension,
 * GeneralNames, our Name) that certificates and CSRs both write.
 */
#include "api/pki/mf_der.h"

#include <string.h>

#include "api/core/mf_time.h"
#include "api/pki/mf_x509.h"

/* ---- OIDs ---------------------------------------------------------------- */

const uint8_t mf_oid_ec_public_key[7] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
const uint8_t mf_oid_p256[8] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const uint8_t mf_oid_p384[5] = {0x2b, 0x81, 0x04, 0x00, 0x22};
const uint8_t mf_oid_san[3] = {0x55, 0x1d, 0x11};
const uint8_t mf_oid_basic_constraints[3] = {0x55, 0x1d, 0x13};
const uint8_t mf_oid_name_constraints[3] = {0x55, 0x1d, 0x1e};
const uint8_t mf_oid_extension_request[9] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e};
static const uint8_t oid_at_org[3] = {0x55, 0x04, 0x0a};
static const uint8_t oid_at_serial[3] = {0x55, 0x04, 0x05};

/* ---- DER reader ---------------------------------------------------------- */

/* see mf_der.h */
mf_res mf_der_next(struct mf_cur *c, struct mf_der *out)
{
    struct mf_cur t = *c;
    size_t start = t.off;
    uint8_t tag;
    uint8_t l0;
    size_t len = 0;
    MF_ENSURE_MSG(mf_ok(mf_cur_u8(&t, &tag)), MF_ERR_PROTO_DER, "truncated tag at offset %zu",
                  start);
    MF_ENSURE_MSG((tag & 0x1f) != 0x1f, MF_ERR_PROTO_DER, "high tag number at offset %zu", start);
    MF_ENSURE_MSG(mf_ok(mf_cur_u8(&t, &l0)), MF_ERR_PROTO_DER, "truncated length at offset %zu",
                  start);
    if (l0 < 0x80) {
        len = l0;
    } else {
        size_t n = l0 & 0x7fu;
        /* X.690 10.1: definite form only, in the fewest octets */
        MF_ENSURE_MSG(n >= 1 && n <= 4, MF_ERR_PROTO_DER, "bad length form at offset %zu", start);
        for (size_t i = 0; i < n; i++) {
            uint8_t b;
            MF_ENSURE_MSG(mf_ok(mf_cur_u8(&t, &b)), MF_ERR_PROTO_DER,
                          "truncated length at offset %zu", start);
            MF_ENSURE_MSG(!(i == 0 && b == 0), MF_ERR_PROTO_DER, "non-minimal length at offset %zu",
                          start);
            len = (len << 8) | b;
        }
        MF_ENSURE_MSG(len >= 0x80, MF_ERR_PROTO_DER, "non-minimal length at offset %zu", start);
    }
    MF_ENSURE_MSG(mf_cur_remaining(&t) >= len, MF_ERR_PROTO_DER,
                  "value at offset %zu runs past the end (%zu > %zu bytes)", start, len,
                  mf_cur_remaining(&t));
    out->tag = tag;
    out->p = t.p + t.off;
    out->len = len;
    out->tlv = t.p + start;
    out->tlv_len = t.off - start + len;
    t.off += len;
    *c = t;
    return MF_RES_OK;
}

/* see mf_der.h */
mf_res mf_der_get(struct mf_cur *c, uint8_t tag, struct mf_der *out)
{
    struct mf_cur t = *c;
    MF_TRY(mf_der_next(&t, out));
    MF_ENSURE_MSG(out->tag == tag, MF_ERR_PROTO_DER,
                  "expected tag 0x%02x at offset %zu, got 0x%02x", tag, c->off, out->tag);
    *c = t;
    return MF_RES_OK;
}

/* see mf_der.h */
bool mf_der_peek(const struct mf_cur *c, uint8_t tag)
{
    return mf_cur_remaining(c) > 0 && c->p[c->off] == tag;
}

/* see mf_der.h */
void mf_der_open(const struct mf_der *d, struct mf_cur *inner)
{
    mf_cur_init(inner, d->p, d->len);
}

/* see mf_der.h */
mf_res mf_der_end(const struct mf_cur *c, const char *what)
{
    MF_ENSURE_MSG(mf_cur_remaining(c) == 0, MF_ERR_PROTO_DER, "%zu unexpected bytes after %s",
                  mf_cur_remaining(c), what);
    return MF_RES_OK;
}

/* see mf_der.h */
bool mf_der_oid_is(const struct mf_der *d, const uint8_t *oid, size_t oid_len)
{
    return d->tag == MF_DER_OID && d->len == oid_len && memcmp(d->p, oid, oid_len) == 0;
}

/* see mf_der.h */
mf_res mf_der_bool(const struct mf_der *d, bool *out)
{
    /* X.690 11.1: TRUE is 0xff in DER */
    MF_ENSURE_MSG(d->tag == MF_DER_BOOLEAN && d->len == 1 && (d->p[0] == 0 || d->p[0] == 0xff),
                  MF_ERR_PROTO_DER, "malformed BOOLEAN");
    *out = d->p[0] == 0xff;
    return MF_RES_OK;
}

/* see mf_der.h */
mf_res mf_der_small_uint(const struct mf_der *d, int64_t max, int64_t *out)
{
    MF_ENSURE_MSG(d->tag == MF_DER_INTEGER && d->len >= 1 && d->len <= 8, MF_ERR_PROTO_DER,
                  "malformed small INTEGER");
    MF_ENSURE_MSG((d->p[0] & 0x80) == 0, MF_ERR_PROTO_DER, "negative INTEGER");
    MF_ENSURE_MSG(!(d->len > 1 && d->p[0] == 0 && (d->p[1] & 0x80) == 0), MF_ERR_PROTO_DER,
                  "non-minimal INTEGER");
    int64_t v = 0;
    for (size_t i = 0; i < d->len; i++) {
        v = (v << 8) | d->p[i];
    }
    MF_ENSURE_MSG(v <= max, MF_ERR_PROTO_DER, "INTEGER %lld over %lld", (long long)v,
                  (long long)max);
    *out = v;
    return MF_RES_OK;
}

/* see mf_der.h */
mf_res mf_der_time(const struct mf_der *d, int64_t *out)
{
    /* UTCTime YYMMDDHHMMSSZ, GeneralizedTime YYYYMMDDHHMMSSZ: RFC 5280
     * 4.1.2.5.1-2 require seconds and Z, and no fractions. */
    size_t ylen;
    if (d->tag == MF_DER_UTCTIME && d->len == 13) {
        ylen = 2;
    } else if (d->tag == MF_DER_GENTIME && d->len == 15) {
        ylen = 4;
    } else {
        MF_BAIL_MSG(MF_ERR_PROTO_DER, "malformed time (tag 0x%02x, %zu bytes)", d->tag, d->len);
    }
    const char *p = (const char *)d->p;
    int yy;
    struct mf_civil c;
    MF_ENSURE_MSG(
        p[d->len - 1] == 'Z' && mf_dec_digits(p, ylen, &yy) &&
            mf_dec_digits(p + ylen, 2, &c.month) && mf_dec_digits(p + ylen + 2, 2, &c.day) &&
            mf_dec_digits(p + ylen + 4, 2, &c.hour) && mf_dec_digits(p + ylen + 6, 2, &c.min) &&
            mf_dec_digits(p + ylen + 8, 2, &c.sec),
        MF_ERR_PROTO_DER, "malformed time");
    c.year = yy;
    if (ylen == 2) {
        c.year += yy >= 50 ? 1900 : 2000;
    }
    /* RFC 5280 times have no leap second */
    MF_ENSURE_MSG(mf_civil_to_time(&c, 59, out), MF_ERR_PROTO_DER, "time out of range");
    return MF_RES_OK;
}

/* ---- DER writer ---------------------------------------------------------- */

/* see mf_der.h */
mf_res mf_der_put(struct mf_buf *out, uint8_t tag, const void *p, size_t len)
{
    uint8_t hdr[6];
    size_t n = 0;
    hdr[n++] = tag;
    if (len < 0x80) {
        hdr[n++] = (uint8_t)len;
    } else {
        MF_ENSURE(len <= 0xffffff, MF_ERR_OVERFLOW);
        size_t bytes = len > 0xffff ? 3 : len > 0xff ? 2 : 1;
        hdr[n++] = (uint8_t)(0x80 | bytes);
        for (size_t i = bytes; i > 0; i--) {
            hdr[n++] = (uint8_t)(len >> (8 * (i - 1)));
        }
    }
    MF_TRY(mf_buf_append(out, hdr, n));
    if (len > 0) {
        MF_TRY(mf_buf_append(out, p, len));
    }
    return MF_RES_OK;
}

/* see mf_der.h */
mf_res mf_der_wrap(struct mf_buf *out, uint8_t tag, const struct mf_buf *inner)
{
    return mf_der_put(out, tag, inner->data, inner->len);
}

/* see mf_der.h */
mf_res mf_der_put_time(struct mf_buf *out, int64_t t)
{
    MF_ENSURE_MSG(t >= -2208988800LL && t <= 253402300799LL, MF_ERR_USAGE_ARG,
                  "time %lld outside years 1900-9999", (long long)t);
    struct mf_civil c;
    mf_civil_from_time(t, &c);
    char s[16];
    size_t n = 0;
    bool utc = c.year >= 1950 && c.year <= 2049;
    int64_t yv = utc ? c.year % 100 : c.year;
    size_t ydigits = utc ? 2 : 4;
    for (size_t i = ydigits; i > 0; i--) {
        s[n + i - 1] = (char)('0' + yv % 10);
        yv /= 10;
    }
    n += ydigits;
    const int parts[5] = {c.month, c.day, c.hour, c.min, c.sec};
    for (size_t i = 0; i < 5; i++) {
        s[n++] = (char)('0' + parts[i] / 10);
        s[n++] = (char)('0' + parts[i] % 10);
    }
    s[n++] = 'Z';
    return mf_der_put(out, utc ? MF_DER_UTCTIME : MF_DER_GENTIME, s, n);
}

/* see mf_der.h */
mf_res mf_der_put_ext(struct mf_buf *out, const uint8_t *oid, size_t oid_len, bool critical,
                      const struct mf_buf *value)
{
    static const uint8_t crit[3] = {MF_DER_BOOLEAN, 0x01, 0xff};
    mf_res rc;
    struct mf_buf e;
    mf_buf_init(&e, MF_MAX_CERT, 0);
    MF_TRY_OUT(mf_der_put(&e, MF_DER_OID, oid, oid_len));
    if (critical) {
        MF_TRY_OUT(mf_buf_append(&e, crit, sizeof(crit)));
    }
    MF_TRY_OUT(mf_der_put(&e, MF_DER_OCTET, value->data, value->len));
    MF_TRY_OUT(mf_der_wrap(out, MF_DER_SEQUENCE, &e));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&e);
    return rc;
}

/* see mf_der.h */
mf_res mf_der_put_san(struct mf_buf *out, const char *uri, const char *const *dns, size_t n_dns)
{
    /* GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName, with
     * dNSName [2] IA5String and uniformResourceIdentifier [6] IA5String,
     * both IMPLICIT (RFC 5280 4.2.1.6). */
    mf_res rc;
    struct mf_buf names;
    mf_buf_init(&names, MF_MAX_CERT, 0);
    if (uri != NULL) {
        MF_TRY_OUT(mf_der_put(&names, 0x86, uri, strlen(uri)));
    }
    for (size_t i = 0; i < n_dns; i++) {
        MF_TRY_OUT(mf_der_put(&names, 0x82, dns[i], strlen(dns[i])));
    }
    MF_ENSURE_OUT(names.len > 0, MF_ERR_USAGE_ARG);
    MF_TRY_OUT(mf_der_wrap(out, MF_DER_SEQUENCE, &names));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&names);
    return rc;
}

static mf_res put_rdn(struct mf_buf *out, const uint8_t *oid, size_t oid_len, const char *value)
{
    /* RelativeDistinguishedName ::= SET SIZE (1..MAX) OF
     *     AttributeTypeAndValue ::= SEQUENCE { type OID, value ANY } */
    mf_res rc;
    struct mf_buf atv, set;
    mf_buf_init(&atv, 1024, 0);
    mf_buf_init(&set, 1024, 0);
    MF_TRY_OUT(mf_der_put(&atv, MF_DER_OID, oid, oid_len));
    MF_TRY_OUT(mf_der_put(&atv, MF_DER_PRINTABLE, value, strlen(value)));
    MF_TRY_OUT(mf_der_wrap(&set, MF_DER_SEQUENCE, &atv));
    MF_TRY_OUT(mf_der_wrap(out, MF_DER_SET, &set));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&atv);
    mf_buf_cleanup(&set);
    return rc;
}

/* see mf_der.h */
mf_res mf_der_put_name(struct mf_buf *out, const char *serial_attr)
{
    mf_res rc;
    struct mf_buf rdns;
    mf_buf_init(&rdns, 2048, 0);
    MF_TRY_OUT(put_rdn(&rdns, oid_at_org, sizeof(oid_at_org), "SPIFFE"));
    if (serial_attr != NULL) {
        MF_TRY_OUT(put_rdn(&rdns, oid_at_serial, sizeof(oid_at_serial), serial_attr));
    }
    MF_TRY_OUT(mf_der_wrap(out, MF_DER_SEQUENCE, &rdns));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&rdns);
    return rc;
}
