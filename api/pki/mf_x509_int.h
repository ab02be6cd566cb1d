/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_x509_int: shared by mf_key.c, mf_cert.c, mf_csr.c and mf_x509.c.
 * Internal: used inside libmayfly and by the daemons; not installed, and not
 * for workloads to include (they include mf_x509.h).
 *
 * It holds the layouts of the opaque types, the EC curve table, and the
 * extension, signature and key helpers those files share. What lies below
 * them has its own header: mf_wc.h (wolfSSL glue and check macros),
 * mf_hash.h (SHA-2), mf_der.h (DER reader/writer, OIDs; it also gives the
 * order of the whole pki layer). This header includes those three so that
 * its users see one interface. Which file defines each declaration below:
 * curves, public keys, signatures and ecc_key loading: mf_key.c;
 * mf_exts_parse: mf_cert.c. wolfSSL types appear only here and in the pki
 * files.
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
#include "api/pki/mf_der.h"
#include "api/pki/mf_hash.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_wc.h"
#include "api/pki/mf_x509.h"

/* ---- curves (mf_key.c) ---------------------------------------------------- */

#define MF_EC_COORD_MAX 48  /* P-384 */
#define MF_EC_SIG_MAX   140 /* DER ECDSA-Sig-Value for P-384, with slack */
#define MF_SPKI_MAX     128 /* 120 bytes for P-384 */
#define MF_KEYID_LEN    20  /* SKI: SHA-256 truncated (RFC 7093 section 2) */
#define MF_KEYID_MAX    64  /* longest SKI/AKI we accept from others */

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

/* ---- opaque types ------------------------------------------------------- */

/* The point is kept once, inside the SPKI: its BIT STRING ends with the
 * uncompressed point 0x04 || x || y, so x and y are the last 2 * coord_len
 * bytes (mf_pubkey_x, mf_pubkey_y). */
struct mf_pubkey {
    enum mf_key_type type;
    uint16_t coord_len;
    uint16_t spki_len;
    uint8_t spki[MF_SPKI_MAX]; /* canonical SubjectPublicKeyInfo DER */
};

static inline const uint8_t *mf_pubkey_x(const struct mf_pubkey *pk)
{
    return pk->spki + pk->spki_len - 2u * pk->coord_len;
}

static inline const uint8_t *mf_pubkey_y(const struct mf_pubkey *pk)
{
    return pk->spki + pk->spki_len - pk->coord_len;
}

/* Lives entirely in mf_secret storage (one locked page), wiped when the
 * last reference goes (mf_key_ref, mf_key_free). */
struct mf_key {
    atomic_int extra_refs; /* references beyond the first */
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
    const uint8_t *ski; /* slice of the parsed DER, at most MF_KEYID_MAX */
    size_t ski_len;     /* 0: absent */
    const uint8_t *aki; /* slice of the parsed DER, at most MF_KEYID_MAX */
    size_t aki_len;     /* 0: absent or no keyIdentifier */
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
    /* the single URI SAN when it is a valid SPIFFE ID: a heap copy sized to
     * fit (NUL-terminated), else NULL; lengths as in struct mf_spiffe_id */
    char *id;
    size_t id_len;
    size_t id_td_len;
    struct mf_pubkey pub;
};

struct mf_csr {
    struct mf_pubkey pub;
    bool has_id;
    struct mf_spiffe_id id;
};

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

/* mf_cert_from_der for a certificate whose subject key the caller has
 * already checked (known, or NULL): when the certificate's
 * SubjectPublicKeyInfo is byte for byte known's, known is copied instead of
 * parsed and checked on the curve again. mf_x509_issue parses what it has
 * just signed this way. */
MF_WUR mf_res mf_cert_from_der_key(const uint8_t *der, size_t len, const struct mf_pubkey *known,
                                   struct mf_cert **out);

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
