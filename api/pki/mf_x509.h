/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_x509: keys, CSRs, certificates and PEM, with wolfSSL kept behind this
 * wall (no wolfSSL type appears in this header).
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * Keys are EC P-256 (default) or P-384. Private key bytes live in mf_secret
 * storage and are wiped when the key is freed; every buffer that receives
 * private key material (DER or PEM text) must be an MF_BUF_SECRET mf_buf.
 *
 * Certificates issued here follow SPIFFE.md section B:
 *   leaf (B1-B11, B27-B30): exactly one URI SAN = the SPIFFE ID (with a path),
 *     optional DNS SANs, basicConstraints cA=FALSE critical, keyUsage critical
 *     digitalSignature only (EC keys never encipher: RFC 8813 section 3; the
 *     verifier still accepts B8's keyEncipherment/keyAgreement from other
 *     issuers), EKU serverAuth+clientAuth,
 *     SKI and AKI, a random serial in 1..2^128-1, NotBefore = now - 10 s,
 *     NotAfter = min(now + ttl, issuer NotAfter).
 *   signing (B12-B19): URI SAN = spiffe://<td> (no path), basicConstraints
 *     cA=TRUE critical, keyUsage critical keyCertSign|cRLSign, no EKU.
 *
 * All functions are thread-safe: each call uses its own RNG and objects are
 * immutable after creation (so they may be shared read-only across threads).
 */
#ifndef MF_X509_H
#define MF_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_spiffeid.h"

#define MF_NOT_BEFORE_CUSHION 10 /* seconds NotBefore is backdated (B28) */
#define MF_SERIAL_HEX_MAX     41 /* 20 bytes as hex, plus NUL */
#define MF_FINGERPRINT_LEN    65 /* SHA-256 as hex, plus NUL */

/* ---- PEM ---------------------------------------------------------------- */

/* Appends "-----BEGIN <label>-----\n<base64, 64 columns>\n-----END <label>-----\n". */
MF_WUR mf_res mf_pem_encode(const char *label, const uint8_t *der, size_t len, struct mf_buf *out);

/* Reads the next PEM block from cur (skipping text before it); writes its
 * label (NUL-terminated, at most label_cap-1 bytes) and its decoded bytes to
 * der. Returns MF_ERR_IO_EOF when no further block starts, MF_ERR_PROTO_PEM
 * on a malformed block. */
MF_WUR mf_res mf_pem_next(struct mf_cur *cur, char *label, size_t label_cap, struct mf_buf *der);

/* Standard base64 (RFC 4648 section 4) of len bytes, appended to out; and the
 * strict decoder (no whitespace, padding required). */
MF_WUR mf_res mf_b64_encode(const uint8_t *in, size_t len, struct mf_buf *out);
MF_WUR mf_res mf_b64_decode(const char *in, size_t len, struct mf_buf *out);
/* base64url without padding (RFC 7515), for JOSE. */
MF_WUR mf_res mf_b64url_encode(const uint8_t *in, size_t len, struct mf_buf *out);
MF_WUR mf_res mf_b64url_decode(const char *in, size_t len, struct mf_buf *out);

/* SHA-256 of len bytes. */
MF_WUR mf_res mf_sha256(const uint8_t *in, size_t len, uint8_t out[32]);

/* ---- keys --------------------------------------------------------------- */

enum mf_key_type {
    MF_KEY_EC_P256 = 0,
    MF_KEY_EC_P384 = 1,
};

struct mf_key;    /* a private key (opaque) */
struct mf_pubkey; /* a public key (opaque) */

MF_WUR mf_res mf_key_generate(enum mf_key_type type, struct mf_key **out);
/* Unencrypted PKCS#8 (RFC 5208 PrivateKeyInfo) DER. */
MF_WUR mf_res mf_key_from_der(const uint8_t *der, size_t len, struct mf_key **out);
/* "PRIVATE KEY" (PKCS#8) or "EC PRIVATE KEY" (SEC 1) PEM. */
MF_WUR mf_res mf_key_from_pem(const char *pem, size_t len, struct mf_key **out);
/* out must be an MF_BUF_SECRET buffer; appended. */
MF_WUR mf_res mf_key_to_der(const struct mf_key *key, struct mf_buf *out);
MF_WUR mf_res mf_key_to_pem(const struct mf_key *key, struct mf_buf *out);
enum mf_key_type mf_key_type(const struct mf_key *key);
/* The public half. Caller frees it. */
MF_WUR mf_res mf_key_public(const struct mf_key *key, struct mf_pubkey **out);
/* ECDSA over SHA-256 (P-256) or SHA-384 (P-384) of msg; the signature is
 * written raw as r||s (JOSE form, 64 or 96 bytes), appended to out. */
MF_WUR mf_res mf_key_sign_jose(const struct mf_key *key, const uint8_t *msg, size_t len,
                               struct mf_buf *out);
/* Another reference to key (NULL gives NULL): each is released with
 * mf_key_free, and the key is wiped and freed with the last one. A key is
 * immutable, so holders on any thread may use it at once. */
struct mf_key *mf_key_ref(struct mf_key *key);
/* Releases one reference; NULL is a no-op. */
void mf_key_free(struct mf_key *key);

/* SubjectPublicKeyInfo DER. */
MF_WUR mf_res mf_pubkey_from_der(const uint8_t *der, size_t len, struct mf_pubkey **out);
MF_WUR mf_res mf_pubkey_to_der(const struct mf_pubkey *pk, struct mf_buf *out);
/* From a JWK's crv ("P-256"/"P-384") and raw big-endian x and y. */
MF_WUR mf_res mf_pubkey_from_ec_coords(const char *crv, const uint8_t *x, size_t xlen,
                                       const uint8_t *y, size_t ylen, struct mf_pubkey **out);
/* The curve name ("P-256"/"P-384") and raw x, y (coord_len = 32 or 48
 * bytes each) for a JWK. x and y must have room for 48 bytes. */
MF_WUR mf_res mf_pubkey_ec_coords(const struct mf_pubkey *pk, const char **crv, uint8_t *x,
                                  uint8_t *y, size_t *coord_len);
enum mf_key_type mf_pubkey_type(const struct mf_pubkey *pk);
/* Checks a raw r||s JOSE signature over msg (ES256 for P-256, ES384 for
 * P-384). MF_ERR_CRYPTO_SIG when it does not verify. */
MF_WUR mf_res mf_pubkey_verify_jose(const struct mf_pubkey *pk, const uint8_t *msg, size_t len,
                                    const uint8_t *sig, size_t sig_len);
bool mf_pubkey_eq(const struct mf_pubkey *a, const struct mf_pubkey *b);
/* SHA-256 of the SPKI DER, as hex: safe to log. */
void mf_pubkey_fingerprint(const struct mf_pubkey *pk, char out[MF_FINGERPRINT_LEN]);
void mf_pubkey_free(struct mf_pubkey *pk);

/* ---- CSRs (PKCS#10) ----------------------------------------------------- */

/* A CSR signed by key, carrying spiffe_id as its only URI SAN (or no SAN
 * when spiffe_id is NULL). DER appended to out. */
MF_WUR mf_res mf_csr_create(const struct mf_key *key, const char *spiffe_id, struct mf_buf *out);

struct mf_csr; /* a verified CSR (opaque) */

/* Parses a DER CSR and checks its self-signature (proof of possession of the
 * private key). Refuses, each with a detail: more than MF_MAX_CSR bytes,
 * malformed DER, a bad signature, a key other than EC P-256/P-384, more than
 * one URI SAN, a URI SAN that is not a valid SPIFFE ID, a request for
 * basicConstraints cA=TRUE. A CSR with no URI SAN is accepted (the caller
 * decides whether it needs one). */
MF_WUR mf_res mf_csr_verify(const uint8_t *der, size_t len, struct mf_csr **out);
/* The URI SAN's SPIFFE ID, or NULL when the CSR has none. Borrowed. */
const struct mf_spiffe_id *mf_csr_spiffe_id(const struct mf_csr *csr);
/* The subject public key. Borrowed. */
const struct mf_pubkey *mf_csr_pubkey(const struct mf_csr *csr);
void mf_csr_free(struct mf_csr *csr);

/* ---- certificates ------------------------------------------------------- */

struct mf_cert; /* a parsed X.509 certificate (opaque, immutable) */

MF_WUR mf_res mf_cert_from_der(const uint8_t *der, size_t len, struct mf_cert **out);
/* The same for the certificate of a key the caller holds (key may be NULL):
 * when the certificate's public key is key's public half, byte for byte, it
 * is taken from key instead of being checked on the curve again, the
 * costliest step of a parse. Whether they match is still the caller's to
 * check (mf_cert_matches_key). */
MF_WUR mf_res mf_cert_from_der_with_key(const uint8_t *der, size_t len, const struct mf_key *key,
                                        struct mf_cert **out);
/* Another reference to the same immutable certificate (refcounted). */
struct mf_cert *mf_cert_ref(struct mf_cert *cert);
void mf_cert_free(struct mf_cert *cert); /* drops one reference */

const uint8_t *mf_cert_der(const struct mf_cert *cert, size_t *len);
int64_t mf_cert_not_before(const struct mf_cert *cert);
int64_t mf_cert_not_after(const struct mf_cert *cert);
bool mf_cert_is_ca(const struct mf_cert *cert);
/* The single URI SAN parsed as a SPIFFE ID, copied into out: true, or false
 * (out cleared) when there is none or it is not valid. The certificate
 * keeps only the ID's own bytes, so that parsed certificates stay small. */
bool mf_cert_spiffe_id(const struct mf_cert *cert, struct mf_spiffe_id *out);
/* The same ID as a NUL-terminated string, or NULL. Borrowed from cert. */
const char *mf_cert_spiffe_id_str(const struct mf_cert *cert);
/* Serial number as lowercase hex, no leading zeros. */
void mf_cert_serial_hex(const struct mf_cert *cert, char out[MF_SERIAL_HEX_MAX]);
/* Public key. Borrowed. */
const struct mf_pubkey *mf_cert_pubkey(const struct mf_cert *cert);
/* True when key is the private half of cert's public key. */
bool mf_cert_matches_key(const struct mf_cert *cert, const struct mf_key *key);
/* SHA-256 of the DER, hex. */
void mf_cert_fingerprint(const struct mf_cert *cert, char out[MF_FINGERPRINT_LEN]);

/* A list of certificates (a chain, leaf first; or a set of authorities). */
struct mf_certs {
    struct mf_cert **v;
    size_t n;
};

void mf_certs_init(struct mf_certs *cs);
void mf_certs_cleanup(struct mf_certs *cs); /* frees every cert and the array */
/* Appends a new reference to cert. */
MF_WUR mf_res mf_certs_push(struct mf_certs *cs, struct mf_cert *cert);
/* Every CERTIFICATE block of a PEM text, appended in order. At least one. */
MF_WUR mf_res mf_certs_from_pem(const char *pem, size_t len, struct mf_certs *out);
/* Concatenated DER certificates (the Workload API's x509_svid/bundle form). */
MF_WUR mf_res mf_certs_from_der_concat(const uint8_t *der, size_t len, struct mf_certs *out);
MF_WUR mf_res mf_certs_to_pem(const struct mf_certs *cs, struct mf_buf *out);
MF_WUR mf_res mf_certs_to_der_concat(const struct mf_certs *cs, struct mf_buf *out);

/* ---- issuance ------------------------------------------------------------ */

struct mf_issue_req {
    const struct mf_spiffe_id *id; /* leaf: ID with a path; CA: trust domain ID */
    const struct mf_pubkey *subject_key;
    int64_t now;                  /* seconds since the epoch */
    int64_t ttl;                  /* seconds, > 0 */
    const char *const *dns_names; /* optional DNS SANs (leaf only) */
    size_t n_dns;
    bool is_ca; /* a signing (intermediate CA) certificate */
};

/* Issues a certificate signed by issuer_key, whose certificate is issuer.
 * NotAfter is capped at the issuer's NotAfter (a leaf never outlives its
 * CA). Refuses a leaf ID without a path and a CA ID with one. */
MF_WUR mf_res mf_x509_issue(const struct mf_issue_req *req, const struct mf_cert *issuer,
                            const struct mf_key *issuer_key, struct mf_cert **out);

/* A self-signed CA certificate for spiffe://<td> (td_id has no path). */
MF_WUR mf_res mf_x509_self_signed(const struct mf_spiffe_id *td_id, const struct mf_key *key,
                                  int64_t now, int64_t ttl, struct mf_cert **out);

/* ---- verification as a relying party (B20-B27) --------------------------- */

/* Verifies chain (leaf first, then any intermediates) against authorities,
 * which must be the X.509 authorities of the leaf's trust domain only (B23);
 * the caller picks them from its bundle set by the leaf's trust domain (see
 * mf_bundle.h, mf_svid_verify). Checks at time now: every signature up to an
 * authority, every validity window, cA and keyCertSign on every issuer,
 * pathLenConstraint, and the leaf rules: exactly one URI SAN that parses as a
 * SPIFFE ID with a path, cA=FALSE, no keyCertSign/cRLSign, digitalSignature
 * set, an empty subject only with a critical SAN (B4). It is at least as
 * strict as `openssl verify -x509_strict` (tests/integration/
 * verify_differential.sh): no unsupported critical extension (a critical SKI
 * or AKI counts as one), no empty issuer Name, no pathLenConstraint with
 * cA=FALSE, an AKI keyIdentifier on every certificate but the authority, and
 * on every issuer a critical basicConstraints, a non-empty subject, an SKI,
 * a SPIFFE ID (if any) without a path (B15). nameConstraints, critical or
 * not, are enforced for URI subtrees on the URI SANs below (RFC 5280
 * 4.2.1.10); a CA with any other constraint form is refused. Writes the
 * leaf's SPIFFE ID to id_out (may be NULL) on success. */
MF_WUR mf_res mf_x509_verify_chain(const struct mf_certs *chain, const struct mf_certs *authorities,
                                   int64_t now, struct mf_spiffe_id *id_out);

/* One-time library set-up (wolfSSL_Init); safe to call more than once and
 * from several threads. Every function above calls it as needed. */
void mf_x509_global_init(void);

#endif /* MF_X509_H */
