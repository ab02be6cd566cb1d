/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_x509_int: private to the mf_x509 module (mf_pem.c, mf_key.c, mf_csr.c,
 * mf_cert.c, mf_x509.c). Not a public header: workloads include mf_x509.h.
 * Internal: used inside libmayfly and by the daemons; not installed, and not
 * for workloads to include.
 *
 * It holds the layouts of the opaque types, a strict DER reader and a small
 * DER writer, the EC curve table and the glue to wolfCrypt. wolfSSL types
 * appear only here and in those files.
 *
 * Why our own DER: wolfSSL 5.5.4's certificate encoder cannot mark
 * basicConstraints critical (SPIFFE.md B5, B12) and writes PKCS#10 version 2,
 * so certificates and CSRs are encoded here and only the ECDSA operations and
 * hashes come from wolfCrypt. Parsing is ours too, so that one strict reader
 * decides what a certificate says: definite, minimal lengths, no trailing
 * bytes, no duplicate extensions.
 */
#ifndef MF_X509_INT_H
#define MF_X509_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/settings.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

/* ---- wolfCrypt adapters ------------------------------------------------- */

/* wolfCrypt returns 0 on success and a negative code otherwise. */
#define MF_TRY_WC(x, e)                                                                  \
    do {                                                                                 \
        int mf_wc_r_ = (x);                                                              \
        if (mf_wc_r_ != 0) {                                                             \
            return mf_err_raise((e), __FILE__, __LINE__, __func__, "wolfCrypt: %s (%d)", \
                                mf_wc_errstr(mf_wc_r_), mf_wc_r_);                       \
        }                                                                                \
    } while (0)

#define MF_TRY_WC_OUT(x, e)                                                            \
    do {                                                                               \
        int mf_wc_r_ = (x);                                                            \
        if (mf_wc_r_ != 0) {                                                           \
            rc = mf_err_raise((e), __FILE__, __LINE__, __func__, "wolfCrypt: %s (%d)", \
                              mf_wc_errstr(mf_wc_r_), mf_wc_r_);                       \
            goto out;                                                                  \
        }                                                                              \
    } while (0)

const char *mf_wc_errstr(int code);

/* ---- curves and hashes -------------------------------------------------- */

#define MF_EC_COORD_MAX 48  /* P-384 */
#define MF_EC_SIG_MAX   140 /* DER ECDSA-Sig-Value for P-384, with slack */
#define MF_HASH_MAX     64
#define MF_SPKI_MAX     128 /* 120 bytes for P-384 */
#define MF_KEYID_LEN    20  /* SKI: SHA-256 truncated (RFC 7093 section 2) */
#define MF_KEYID_MAX    64  /* longest SKI/AKI we accept from others */

enum mf_hash {
    MF_HASH_SHA256 = 0,
    MF_HASH_SHA384 = 1,
    MF_HASH_SHA512 = 2,
};

struct mf_curve {
    enum mf_key_type type;
    int wc_id;          /* ECC_SECP256R1, ECC_SECP384R1 */
    size_t coord_len;   /* 32, 48 */
    const uint8_t *oid; /* namedCurve OID contents */
    size_t oid_len;
    const char *jwk_crv; /* "P-256", "P-384" */
    enum mf_hash hash;   /* ES256 / ES384, and the certificate signature hash */
};

/* NULL when the type is not one of ours. */
const struct mf_curve *mf_curve_by_type(enum mf_key_type type);

/* Digest of len bytes; *out_len receives 32, 48 or 64. */
MF_WUR mf_res mf_hash_digest(enum mf_hash alg, const uint8_t *in, size_t len,
                             uint8_t out[MF_HASH_MAX], size_t *out_len);

/* ---- opaque types ------------------------------------------------------- */

struct mf_pubkey {
    enum mf_key_type type;
    size_t coord_len;
    uint8_t x[MF_EC_COORD_MAX];
    uint8_t y[MF_EC_COORD_MAX];
    uint8_t spki[MF_SPKI_MAX]; /* canonical SubjectPublicKeyInfo DER */
    size_t spki_len;
};

/* Lives entirely in mf_secret storage (one locked page), wiped on free. */
struct mf_key {
    enum mf_key_type type;
    uint8_t d[MF_EC_COORD_MAX]; /* private scalar, big-endian, coord_len bytes */
    struct mf_pubkey pub;
};

/* What we read from an Extensions list (certificate or CSR). */
struct mf_exts {
    bool has_bc;
    bool bc_critical;
    bool is_ca;
    bool has_pathlen;
    int64_t pathlen;
    bool has_ku;
    bool ku_critical;
    unsigned ku; /* MF_KU_* bits */
    bool has_eku;
    bool eku_server;
    bool eku_client;
    bool eku_any;
    bool has_san;
    bool san_critical;
    const uint8_t *san; /* GeneralNames contents (slice of the parsed DER) */
    size_t san_len;
    size_t n_uri;
    const uint8_t *uri; /* first URI SAN (slice of the parsed DER) */
    size_t uri_len;
    size_t n_dns;
    uint8_t ski[MF_KEYID_MAX];
    size_t ski_len; /* 0: absent */
    uint8_t aki[MF_KEYID_MAX];
    size_t aki_len; /* 0: absent or no keyIdentifier */
    /* nameConstraints (RFC 5280 4.2.1.10), critical or not: the contents of
     * the NameConstraints SEQUENCE (slice of the parsed DER), already
     * checked for structure. nc_unsupported: a subtree we do not enforce
     * (any name form but URI, or a minimum/maximum BaseDistance); the
     * verifier refuses a path through such a CA rather than ignore it. */
    bool has_nc;
    bool nc_unsupported;
    const uint8_t *nc;
    size_t nc_len;
    /* a critical extension we do not process, or one RFC 5280 says
     * conforming CAs never mark critical (SKI, AKI: 4.2.1.1-2) */
    bool unknown_critical;
};

/* keyUsage bits, numbered as in RFC 5280 section 4.2.1.3 */
#define MF_KU_DIGITAL_SIGNATURE (1u << 0)
#define MF_KU_CONTENT_COMMIT    (1u << 1)
#define MF_KU_KEY_ENCIPHERMENT  (1u << 2)
#define MF_KU_DATA_ENCIPHERMENT (1u << 3)
#define MF_KU_KEY_AGREEMENT     (1u << 4)
#define MF_KU_KEY_CERT_SIGN     (1u << 5)
#define MF_KU_CRL_SIGN          (1u << 6)
#define MF_KU_ENCIPHER_ONLY     (1u << 7)
#define MF_KU_DECIPHER_ONLY     (1u << 8)

struct mf_cert {
    atomic_int refs;
    uint8_t *der;
    size_t der_len;
    /* slices of der */
    const uint8_t *tbs; /* whole TBSCertificate TLV */
    size_t tbs_len;
    const uint8_t *sig; /* ECDSA-Sig-Value DER (BIT STRING contents) */
    size_t sig_len;
    const uint8_t *issuer; /* Name TLV */
    size_t issuer_len;
    const uint8_t *subject; /* Name TLV */
    size_t subject_len;
    uint8_t serial[21];
    size_t serial_len; /* minimal two's complement bytes */
    enum mf_hash sig_hash;
    int64_t not_before;
    int64_t not_after;
    struct mf_exts ext;
    bool has_id;
    struct mf_spiffe_id id;
    struct mf_pubkey pub;
};

struct mf_csr {
    struct mf_pubkey pub;
    bool has_id;
    struct mf_spiffe_id id;
};

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

/* ---- extensions, signatures and keys ------------------------------------ */

/* Parses Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension (the SEQUENCE
 * TLV in d). Refuses duplicates and malformed known extensions; notes an
 * unknown critical one in out->unknown_critical. */
MF_WUR mf_res mf_exts_parse(const struct mf_der *d, struct mf_exts *out);

/* Parses an AlgorithmIdentifier TLV of ecdsa-with-SHA256/384/512 (no
 * parameters). Anything else: MF_ERR_CRYPTO_KEY. */
MF_WUR mf_res mf_sigalg_parse(const struct mf_der *d, enum mf_hash *out);

/* Appends SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING signature }: the
 * outer form shared by certificates and PKCS#10 requests. The hash follows
 * the signer's curve (SHA-256 for P-256, SHA-384 for P-384). */
MF_WUR mf_res mf_x509_sign_tbs(const struct mf_key *key, const struct mf_buf *tbs,
                               struct mf_buf *out);
/* AlgorithmIdentifier for key's signatures. */
MF_WUR mf_res mf_sigalg_put(struct mf_buf *out, enum mf_key_type signer);
/* Checks an ECDSA-Sig-Value DER signature over msg. MF_ERR_CRYPTO_SIG when
 * it does not verify. */
MF_WUR mf_res mf_ec_verify_msg(const struct mf_pubkey *pk, enum mf_hash alg, const uint8_t *msg,
                               size_t len, const uint8_t *sig, size_t sig_len);

/* Fills pk from a SubjectPublicKeyInfo DER; only EC P-256/P-384 with an
 * uncompressed point on the curve. */
MF_WUR mf_res mf_pubkey_parse_into(const uint8_t *der, size_t len, struct mf_pubkey *pk);
/* Fills pk from raw coordinates (coord_len bytes each), checking the point. */
MF_WUR mf_res mf_pubkey_set(enum mf_key_type type, const uint8_t *x, const uint8_t *y,
                            struct mf_pubkey *pk);
/* Key identifier: SHA-256 of the subjectPublicKey bits, first 20 bytes. */
MF_WUR mf_res mf_pubkey_keyid(const struct mf_pubkey *pk, uint8_t out[MF_KEYID_LEN]);

/* wolfCrypt key structs for one operation; release with mf_ec_release,
 * which frees and wipes the struct. */
MF_WUR mf_res mf_ec_load_pub(const struct mf_pubkey *pk, ecc_key *ecc);
MF_WUR mf_res mf_ec_load_priv(const struct mf_key *key, ecc_key *ecc);
void mf_ec_release(ecc_key *ecc);

#endif /* MF_X509_INT_H */
