/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_der: a strict DER reader, a small DER writer, and the OIDs that more
 * than one pki file names.
 * Internal: used inside libmayfly and by the daemons; not installed, and not
 * for workloads to include.
 *
 * The pki layer is built bottom-up, and each file calls only those listed
 * before it (the names in brackets), never one after it:
 *
 *   mf_wc       wolfSSL set-up, error strings, MF_TRY_WC / MF_TRY_SSL
 *   mf_der      DER reader and writer, shared OIDs         (core only)
 *   mf_pem      base64, base64url, PEM                     (core only)
 *   mf_spiffeid SPIFFE IDs                                 (core only)
 *   mf_hash     SHA-2 digests                              (wc)
 *   mf_key      curves, keys, ECDSA                        (wc hash der pem)
 *   mf_cert     certificates, extensions, lists            (der hash pem key spiffeid)
 *   mf_csr      PKCS#10 requests                           (der key spiffeid cert)
 *   mf_x509     issuing, path verification                 (der hash key cert spiffeid)
 *   mf_bundle   trust bundles                              (pem key cert x509 spiffeid)
 *   mf_jwt      JWT-SVIDs                                  (pem key bundle spiffeid)
 *
 * Everything here works on mf_cur / mf_buf from api/core and needs neither
 * wolfSSL nor any other pki file. Slices returned by the reader point into
 * the cursor's backing store and live only as long as it does.
 */
#ifndef MF_DER_H
#define MF_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"

/* ---- DER reader --------------------------------------------------------- */

#define MF_DER_BOOLEAN    0x01
#define MF_DER_INTEGER    0x02
#define MF_DER_BIT_STRING 0x03
#define MF_DER_OCTET      0x04
#define MF_DER_NULL       0x05
#define MF_DER_OID        0x06
#define MF_DER_UTF8       0x0c
#define MF_DER_PRINTABLE  0x13
#define MF_DER_IA5        0x16
#define MF_DER_UTCTIME    0x17
#define MF_DER_GENTIME    0x18
#define MF_DER_SEQUENCE   0x30
#define MF_DER_SET        0x31

/* One TLV: tag, contents (p, len) and the whole encoding (tlv, tlv_len).
 * Slices of the cursor's backing store. */
struct mf_der {
    uint8_t tag;
    const uint8_t *p;
    size_t len;
    const uint8_t *tlv;
    size_t tlv_len;
};

/* Reads the next TLV. Refuses high tag numbers, indefinite and non-minimal
 * lengths, and lengths past the end, with MF_ERR_PROTO_DER. A failed read
 * does not move the cursor. */
MF_WUR mf_res mf_der_next(struct mf_cur *c, struct mf_der *out);
/* The same, and the tag must be `tag`. */
MF_WUR mf_res mf_der_get(struct mf_cur *c, uint8_t tag, struct mf_der *out);
/* True when the next byte is `tag` (there is one). */
bool mf_der_peek(const struct mf_cur *c, uint8_t tag);
/* A cursor over the contents of d. */
void mf_der_open(const struct mf_der *d, struct mf_cur *inner);
/* MF_ERR_PROTO_DER unless the cursor is at its end; what names the structure. */
MF_WUR mf_res mf_der_end(const struct mf_cur *c, const char *what);
bool mf_der_oid_is(const struct mf_der *d, const uint8_t *oid, size_t oid_len);
MF_WUR mf_res mf_der_bool(const struct mf_der *d, bool *out);
/* A non-negative INTEGER in minimal form, at most max. */
MF_WUR mf_res mf_der_small_uint(const struct mf_der *d, int64_t max, int64_t *out);
/* A UTCTime or GeneralizedTime (the RFC 5280 4.1.2.5 forms, Z only). */
MF_WUR mf_res mf_der_time(const struct mf_der *d, int64_t *out);

/* ---- DER writer --------------------------------------------------------- */

MF_WUR mf_res mf_der_put(struct mf_buf *out, uint8_t tag, const void *p, size_t len);
/* tag + length + the contents of inner */
MF_WUR mf_res mf_der_wrap(struct mf_buf *out, uint8_t tag, const struct mf_buf *inner);
/* UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5). */
MF_WUR mf_res mf_der_put_time(struct mf_buf *out, int64_t t);
/* Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue } */
MF_WUR mf_res mf_der_put_ext(struct mf_buf *out, const uint8_t *oid, size_t oid_len, bool critical,
                             const struct mf_buf *value);
/* The subjectAltName extension value: GeneralNames with one URI (if uri is
 * not NULL) and DNS names. */
MF_WUR mf_res mf_der_put_san(struct mf_buf *out, const char *uri, const char *const *dns,
                             size_t n_dns);
/* Name: O=SPIFFE, and serialNumber=<serial_attr> when not NULL. */
MF_WUR mf_res mf_der_put_name(struct mf_buf *out, const char *serial_attr);

/* ---- OIDs (contents octets) ---------------------------------------------- */

extern const uint8_t mf_oid_ec_public_key[7];
extern const uint8_t mf_oid_p256[8];
extern const uint8_t mf_oid_p384[5];
extern const uint8_t mf_oid_san[3];
extern const uint8_t mf_oid_basic_constraints[3];
extern const uint8_t mf_oid_name_constraints[3];
extern const uint8_t mf_oid_extension_request[9];

#endif /* MF_DER_H */
