/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_key: EC keys (P-256, P-384), public keys, PKCS#8 / SEC 1 encodings,
 * ECDSA for certificates and JOSE. Above mf_wc, mf_hash, mf_der and mf_pem,
 * below mf_cert (the order is in mf_der.h).
 *
 * A private key is kept as its scalar and public point inside one
 * mf_secret page. For each operation the key is loaded into a wolfCrypt
 * ecc_key on the stack, which is freed and wiped afterwards, so no
 * long-lived wolfCrypt state holds the scalar and a key may be used from
 * several threads at once. Imported keys are checked: the scalar must be in
 * [1, n-1], the public point is recomputed from it, and a public key carried
 * in the encoding must equal the recomputed one.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/settings.h>

#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"
#include "api/pki/mf_signctx.h"
#include "api/pki/mf_x509.h"
#include "api/pki/mf_x509_int.h"

#define KEY_DER_MAX 4096 /* longest PKCS#8 / SEC 1 encoding we read */

static const uint8_t oid_ecdsa_sha256[8] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t oid_ecdsa_sha384[8] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
static const uint8_t oid_ecdsa_sha512[8] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04};

static const struct mf_curve curves[] = {
    {MF_KEY_EC_P256, ECC_SECP256R1, 32, mf_oid_p256, sizeof(mf_oid_p256), "P-256", MF_HASH_SHA256},
    {MF_KEY_EC_P384, ECC_SECP384R1, 48, mf_oid_p384, sizeof(mf_oid_p384), "P-384", MF_HASH_SHA384},
};

/* ---- signing contexts (mf_signctx.h) -------------------------------------- */

struct mf_signctx {
    WC_RNG rng;
    pid_t pid;     /* the process that seeded rng */
    uint64_t uses; /* draws from rng */
};

/* the context bound to this thread, if any */
static _Thread_local struct mf_signctx *bound_ctx;

/* see mf_signctx.h */
mf_res mf_signctx_new(struct mf_signctx **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    mf_x509_global_init();
    struct mf_signctx *c = calloc(1, sizeof(*c));
    MF_TRY_PTR(c, MF_ERR_NOMEM);
    int ret = wc_InitRng(&c->rng);
    if (ret != 0) {
        free(c);
        MF_BAIL_MSG(MF_ERR_CRYPTO_RNG, "DRBG: %s", mf_wc_errstr(ret));
    }
    c->pid = getpid();
    *out = c;
    return MF_RES_OK;
}

/* see mf_signctx.h */
void mf_signctx_free(struct mf_signctx *c)
{
    if (c == NULL) {
        return;
    }
    (void)wc_FreeRng(&c->rng);
    mf_wipe(c, sizeof(*c));
    free(c);
}

/* see mf_signctx.h */
void mf_signctx_bind(struct mf_signctx *c)
{
    bound_ctx = c;
    if (c == NULL) {
        wc_ecc_fp_free();
    }
}

/* see mf_signctx.h */
uint64_t mf_signctx_uses(const struct mf_signctx *c)
{
    return c == NULL ? 0 : c->uses;
}

/* The bound context, when this thread has one in this process. */
static struct mf_signctx *bound(void)
{
    struct mf_signctx *c = bound_ctx;
    return c != NULL && c->pid == getpid() ? c : NULL;
}

/* A DRBG for one operation: the bound context's, else a new one in *own
 * (*have_own set; the caller frees it). */
static mf_res op_rng(WC_RNG *own, bool *have_own, WC_RNG **rng)
{
    struct mf_signctx *c = bound();
    if (c != NULL) {
        c->uses++;
        *rng = &c->rng;
        return MF_RES_OK;
    }
    int ret = wc_InitRng(own);
    MF_ENSURE_MSG(ret == 0, MF_ERR_CRYPTO_RNG, "DRBG: %s", mf_wc_errstr(ret));
    *have_own = true;
    *rng = own;
    return MF_RES_OK;
}

/* After an operation that used the base point or a public point: drops the
 * thread's fixed-point tables unless a context keeps them (see
 * verify_digest). */
static void drop_tables(void)
{
    if (bound() == NULL) {
        wc_ecc_fp_free();
    }
}

/* ---- set-up and helpers --------------------------------------------------- */

/* see mf_x509_int.h */
const struct mf_curve *mf_curve_by_type(enum mf_key_type type)
{
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (curves[i].type == type) {
            return &curves[i];
        }
    }
    return NULL;
}

static const struct mf_curve *curve_by_oid(const struct mf_der *d)
{
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (mf_der_oid_is(d, curves[i].oid, curves[i].oid_len)) {
            return &curves[i];
        }
    }
    return NULL;
}

/* see mf_x509_int.h */
mf_res mf_ec_load_pub(const struct mf_pubkey *pk, ecc_key *ecc)
{
    memset(ecc, 0, sizeof(*ecc));
    mf_x509_global_init();
    const struct mf_curve *cv = mf_curve_by_type(pk->type);
    MF_ENSURE(cv != NULL, MF_ERR_CRYPTO_KEY);
    MF_TRY_WC(wc_ecc_init(ecc), MF_ERR_CRYPTO);
    MF_TRY_WC(wc_ecc_import_unsigned(ecc, mf_pubkey_x(pk), mf_pubkey_y(pk), NULL, cv->wc_id),
              MF_ERR_CRYPTO_KEY);
    return MF_RES_OK;
}

/* see mf_x509_int.h */
mf_res mf_ec_load_priv(const struct mf_key *key, ecc_key *ecc)
{
    memset(ecc, 0, sizeof(*ecc));
    mf_x509_global_init();
    const struct mf_curve *cv = mf_curve_by_type(key->type);
    MF_ENSURE(cv != NULL, MF_ERR_CRYPTO_KEY);
    MF_TRY_WC(wc_ecc_init(ecc), MF_ERR_CRYPTO);
    MF_TRY_WC(wc_ecc_import_unsigned(ecc, mf_pubkey_x(&key->pub), mf_pubkey_y(&key->pub), key->d,
                                     cv->wc_id),
              MF_ERR_CRYPTO_KEY);
    return MF_RES_OK;
}

/* see mf_x509_int.h */
void mf_ec_release(ecc_key *ecc)
{
    wc_ecc_free(ecc);
    mf_wipe(ecc, sizeof(*ecc));
}

/* ---- public keys ---------------------------------------------------------- */

/* A DER header (tag, short-form length) at p; returns the end. */
static uint8_t *put_hdr(uint8_t *p, uint8_t tag, size_t len)
{
    p[0] = tag;
    p[1] = (uint8_t)len;
    return p + 2;
}

static mf_res spki_encode(struct mf_pubkey *pk, const struct mf_curve *cv, const uint8_t *x,
                          const uint8_t *y)
{
    /* SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE {
     *     id-ecPublicKey, namedCurve OID }, subjectPublicKey BIT STRING }
     * with the point uncompressed: 0x04 || x || y (SEC 1 2.3.3). Written
     * straight into pk->spki: for P-256 and P-384 every length is below
     * 128, so each header is two bytes (short form). */
    size_t alg_len = 2 + sizeof(mf_oid_ec_public_key) + 2 + cv->oid_len;
    size_t bits_len = 2 + 2 * cv->coord_len;
    size_t body_len = 2 + alg_len + 2 + bits_len;
    MF_ENSURE(body_len < 128 && 2 + body_len <= sizeof(pk->spki), MF_ERR_INTERNAL);
    uint8_t *p = put_hdr(pk->spki, MF_DER_SEQUENCE, body_len);
    p = put_hdr(p, MF_DER_SEQUENCE, alg_len);
    p = put_hdr(p, MF_DER_OID, sizeof(mf_oid_ec_public_key));
    memcpy(p, mf_oid_ec_public_key, sizeof(mf_oid_ec_public_key));
    p += sizeof(mf_oid_ec_public_key);
    p = put_hdr(p, MF_DER_OID, cv->oid_len);
    memcpy(p, cv->oid, cv->oid_len);
    p += cv->oid_len;
    p = put_hdr(p, MF_DER_BIT_STRING, bits_len);
    *p++ = 0; /* no unused bits */
    *p++ = 0x04;
    memcpy(p, x, cv->coord_len);
    memcpy(p + cv->coord_len, y, cv->coord_len);
    pk->spki_len = (uint16_t)(2 + body_len);
    return MF_RES_OK;
}

/* True when both coordinates are below the field prime of the curve (SEC 1
 * 3.2.2.1 step 2); wolfCrypt keeps the prime as hex. */
static bool coords_in_field(const struct mf_curve *cv, int idx, const uint8_t *x, const uint8_t *y)
{
    const ecc_set_type *dp = wc_ecc_get_curve_params(idx);
    if (dp == NULL || dp->prime == NULL || strlen(dp->prime) != 2 * cv->coord_len) {
        return false;
    }
    uint8_t p[MF_EC_COORD_MAX];
    for (size_t i = 0; i < cv->coord_len; i++) {
        int hi = mf_hex_value(dp->prime[2 * i]), lo = mf_hex_value(dp->prime[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    return memcmp(x, p, cv->coord_len) < 0 && memcmp(y, p, cv->coord_len) < 0;
}

/* see mf_x509_int.h */
mf_res mf_pubkey_set(enum mf_key_type type, const uint8_t *x, const uint8_t *y,
                     struct mf_pubkey *pk)
{
    const struct mf_curve *cv = mf_curve_by_type(type);
    MF_ENSURE_MSG(cv != NULL, MF_ERR_CRYPTO_KEY, "unsupported key type %d", (int)type);
    memset(pk, 0, sizeof(*pk));
    pk->type = type;
    pk->coord_len = (uint16_t)cv->coord_len;
    /* SEC 1 3.2.2.1: coordinates in the field and the point on the curve.
     * The cofactor of P-256 and P-384 is 1 and an uncompressed point cannot
     * encode the identity, so the costly n*Q check of wc_ecc_check_key adds
     * nothing (and would triple the cost of parsing a certificate). */
    mf_x509_global_init();
    int idx = wc_ecc_get_curve_idx(cv->wc_id);
    MF_ENSURE_MSG(idx >= 0 && coords_in_field(cv, idx, x, y), MF_ERR_CRYPTO_KEY,
                  "public key coordinates are not %s field elements", cv->jwk_crv);
    ecc_key ecc;
    mf_res rc;
    MF_TRY(spki_encode(pk, cv, x, y));
    MF_TRY_OUT(mf_ec_load_pub(pk, &ecc));
    MF_TRY_WC_OUT(wc_ecc_point_is_on_curve(&ecc.pubkey, idx), MF_ERR_CRYPTO_KEY);
    rc = MF_RES_OK;
out:
    mf_ec_release(&ecc);
    if (!mf_ok(rc)) {
        memset(pk, 0, sizeof(*pk));
    }
    return rc;
}

/* see mf_x509_int.h */
mf_res mf_pubkey_parse_into(const uint8_t *der, size_t len, struct mf_pubkey *pk)
{
    struct mf_cur c, s, a;
    struct mf_der spki, alg, oid, params, bits;
    mf_cur_init(&c, der, len);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &spki));
    MF_TRY(mf_der_end(&c, "SubjectPublicKeyInfo"));
    mf_der_open(&spki, &s);
    MF_TRY(mf_der_get(&s, MF_DER_SEQUENCE, &alg));
    MF_TRY(mf_der_get(&s, MF_DER_BIT_STRING, &bits));
    MF_TRY(mf_der_end(&s, "SubjectPublicKeyInfo"));
    mf_der_open(&alg, &a);
    MF_TRY(mf_der_get(&a, MF_DER_OID, &oid));
    MF_ENSURE_MSG(mf_der_oid_is(&oid, mf_oid_ec_public_key, sizeof(mf_oid_ec_public_key)),
                  MF_ERR_CRYPTO_KEY, "public key is not EC (only P-256 and P-384 are accepted)");
    /* RFC 5480 2.1.1: namedCurve only; explicit parameters are refused */
    MF_TRY(mf_der_next(&a, &params));
    MF_TRY(mf_der_end(&a, "AlgorithmIdentifier"));
    const struct mf_curve *cv = params.tag == MF_DER_OID ? curve_by_oid(&params) : NULL;
    MF_ENSURE_MSG(cv != NULL, MF_ERR_CRYPTO_KEY, "unsupported curve (only P-256 and P-384)");
    MF_ENSURE_MSG(bits.len == 2 + 2 * cv->coord_len && bits.p[0] == 0 && bits.p[1] == 0x04,
                  MF_ERR_CRYPTO_KEY, "public key is not an uncompressed %s point", cv->jwk_crv);
    return mf_pubkey_set(cv->type, bits.p + 2, bits.p + 2 + cv->coord_len, pk);
}

/* see mf_x509.h */
mf_res mf_pubkey_from_der(const uint8_t *der, size_t len, struct mf_pubkey **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(der);
    MF_ENSURE(len <= KEY_DER_MAX, MF_ERR_PROTO_TOO_LARGE);
    struct mf_pubkey *pk = calloc(1, sizeof(*pk));
    MF_TRY_PTR(pk, MF_ERR_NOMEM);
    mf_res rc = mf_pubkey_parse_into(der, len, pk);
    if (!mf_ok(rc)) {
        free(pk);
        return rc;
    }
    *out = pk;
    return MF_RES_OK;
}

/* see mf_x509.h */
mf_res mf_pubkey_to_der(const struct mf_pubkey *pk, struct mf_buf *out)
{
    MF_ENSURE_REF(pk);
    MF_ENSURE_REF(out);
    return mf_buf_append(out, pk->spki, pk->spki_len);
}

/* see mf_x509.h */
mf_res mf_pubkey_from_ec_coords(const char *crv, const uint8_t *x, size_t xlen, const uint8_t *y,
                                size_t ylen, struct mf_pubkey **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(crv);
    MF_ENSURE_REF(x);
    MF_ENSURE_REF(y);
    const struct mf_curve *cv = NULL;
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (strcmp(crv, curves[i].jwk_crv) == 0) {
            cv = &curves[i];
        }
    }
    MF_ENSURE_MSG(cv != NULL, MF_ERR_CRYPTO_KEY, "unsupported crv (only P-256 and P-384)");
    /* RFC 7518 6.2.1.2-3: coordinates are full length */
    MF_ENSURE_MSG(xlen == cv->coord_len && ylen == cv->coord_len, MF_ERR_CRYPTO_KEY,
                  "%s coordinates must be %zu bytes", cv->jwk_crv, cv->coord_len);
    struct mf_pubkey *pk = calloc(1, sizeof(*pk));
    MF_TRY_PTR(pk, MF_ERR_NOMEM);
    mf_res rc = mf_pubkey_set(cv->type, x, y, pk);
    if (!mf_ok(rc)) {
        free(pk);
        return rc;
    }
    *out = pk;
    return MF_RES_OK;
}

/* see mf_x509.h */
mf_res mf_pubkey_ec_coords(const struct mf_pubkey *pk, const char **crv, uint8_t *x, uint8_t *y,
                           size_t *coord_len)
{
    MF_ENSURE_REF(pk);
    MF_ENSURE_REF(crv);
    MF_ENSURE_REF(x);
    MF_ENSURE_REF(y);
    MF_ENSURE_REF(coord_len);
    const struct mf_curve *cv = mf_curve_by_type(pk->type);
    MF_ENSURE(cv != NULL, MF_ERR_CRYPTO_KEY);
    *crv = cv->jwk_crv;
    memcpy(x, mf_pubkey_x(pk), pk->coord_len);
    memcpy(y, mf_pubkey_y(pk), pk->coord_len);
    *coord_len = pk->coord_len;
    return MF_RES_OK;
}

/* see mf_x509.h */
enum mf_key_type mf_pubkey_type(const struct mf_pubkey *pk)
{
    return pk->type;
}

/* see mf_x509.h */
bool mf_pubkey_eq(const struct mf_pubkey *a, const struct mf_pubkey *b)
{
    if (a == NULL || b == NULL) {
        return false;
    }
    return a->type == b->type && a->spki_len == b->spki_len &&
           memcmp(a->spki, b->spki, a->spki_len) == 0;
}

/* see mf_x509.h */
void mf_pubkey_fingerprint(const struct mf_pubkey *pk, char out[MF_FINGERPRINT_LEN])
{
    mf_fingerprint_hex(pk->spki, pk->spki_len, out);
}

/* see mf_x509.h */
void mf_pubkey_free(struct mf_pubkey *pk)
{
    free(pk);
}

/* see mf_x509_int.h */
mf_res mf_pubkey_keyid(const struct mf_pubkey *pk, uint8_t out[MF_KEYID_LEN])
{
    /* RFC 7093 section 2, method 1: the leftmost 160 bits of the SHA-256
     * of the subjectPublicKey BIT STRING value (0x04 || x || y). */
    uint8_t pt[1 + 2 * MF_EC_COORD_MAX];
    uint8_t h[32];
    pt[0] = 0x04;
    memcpy(pt + 1, mf_pubkey_x(pk), pk->coord_len);
    memcpy(pt + 1 + pk->coord_len, mf_pubkey_y(pk), pk->coord_len);
    MF_TRY(mf_sha256(pt, 1 + 2 * pk->coord_len, h));
    memcpy(out, h, MF_KEYID_LEN);
    return MF_RES_OK;
}

/* ---- signatures ----------------------------------------------------------- */

/* ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }, checked to be DER
 * (minimal, positive, no trailing bytes) before wolfCrypt sees it, so that
 * a signed object has exactly one valid encoding of its signature. */
static mf_res check_sig_der(const uint8_t *sig, size_t len, size_t coord_len)
{
    struct mf_cur c, s;
    struct mf_der seq, v;
    mf_cur_init(&c, sig, len);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &seq));
    MF_TRY(mf_der_end(&c, "ECDSA-Sig-Value"));
    mf_der_open(&seq, &s);
    for (int i = 0; i < 2; i++) {
        MF_TRY(mf_der_get(&s, MF_DER_INTEGER, &v));
        MF_ENSURE_MSG(v.len >= 1 && v.len <= coord_len + 1 && (v.p[0] & 0x80) == 0 &&
                          !(v.len > 1 && v.p[0] == 0 && (v.p[1] & 0x80) == 0),
                      MF_ERR_CRYPTO_SIG, "malformed ECDSA signature");
    }
    MF_TRY(mf_der_end(&s, "ECDSA-Sig-Value"));
    return MF_RES_OK;
}

static mf_res verify_digest(const struct mf_pubkey *pk, const uint8_t *h, size_t hlen,
                            const uint8_t *sig, size_t sig_len)
{
    mf_res rc = check_sig_der(sig, sig_len, pk->coord_len);
    if (!mf_ok(rc)) {
        MF_BAIL_MSG(MF_ERR_CRYPTO_SIG, "malformed ECDSA signature");
    }
    ecc_key ecc;
    int ok = 0;
    MF_TRY_OUT(mf_ec_load_pub(pk, &ecc));
    /* wolfCrypt failing on a signature it cannot use is a failed check */
    MF_TRY_WC_OUT(wc_ecc_verify_hash(sig, (word32)sig_len, h, (word32)hlen, &ok, &ecc),
                  MF_ERR_CRYPTO_SIG);
    MF_ENSURE_OUT_MSG(ok == 1, MF_ERR_CRYPTO_SIG, "signature does not verify");
    rc = MF_RES_OK;
out:
    mf_ec_release(&ecc);
    /* The fixed-point cache (see thread_exit) builds a table of some 800 KB
     * for a point on its second use in a thread. A verifying server sees
     * the same CA key and base point in every request, so each of its
     * connection threads held 1.7 MB at once (load_herd.sh: 370 MB for 200
     * agents renewing together). Dropping the cache after each
     * verification keeps every point at its first use: no table is built,
     * which is also cheaper than building one per thread to use it twice.
     * A thread with a bound mf_signctx (a fixed signer pool) keeps them. */
    drop_tables();
    return rc;
}

/* see mf_x509_int.h */
mf_res mf_ec_verify_msg(const struct mf_pubkey *pk, enum mf_hash alg, const uint8_t *msg,
                        size_t len, const uint8_t *sig, size_t sig_len)
{
    uint8_t h[MF_HASH_MAX];
    size_t hlen;
    MF_ENSURE(sig_len <= MF_EC_SIG_MAX, MF_ERR_CRYPTO_SIG);
    MF_TRY(mf_hash_digest(alg, msg, len, h, &hlen));
    return verify_digest(pk, h, hlen, sig, sig_len);
}

/* ECDSA over a digest; the DER signature (at most MF_EC_SIG_MAX bytes) goes
 * to sig. */
static mf_res sign_digest(const struct mf_key *key, const uint8_t *h, size_t hlen,
                          uint8_t sig[MF_EC_SIG_MAX], size_t *sig_len)
{
    mf_res rc;
    WC_RNG own, *rng = NULL;
    ecc_key ecc;
    bool have_rng = false;
    word32 n = MF_EC_SIG_MAX;
    MF_TRY_OUT(mf_ec_load_priv(key, &ecc));
    MF_TRY_OUT(op_rng(&own, &have_rng, &rng));
    MF_TRY_WC_OUT(wc_ecc_sign_hash(h, (word32)hlen, sig, &n, rng, &ecc), MF_ERR_CRYPTO);
    *sig_len = n;
    rc = MF_RES_OK;
out:
    if (have_rng) {
        (void)wc_FreeRng(&own);
    }
    mf_ec_release(&ecc);
    /* Signing uses the base point too: without this, a thread that signs
     * between two verifications (the CA, per CSR) meets G a second time in
     * the next verification, which builds its table after all, every time
     * (bench_floor: 5.3 ms per certificate instead of 0.5-0.9). */
    drop_tables();
    return rc;
}

/* see mf_x509_int.h */
mf_res mf_sigalg_put(struct mf_buf *out, enum mf_key_type signer)
{
    /* RFC 5758 3.2: ecdsa-with-SHA256/384 with the parameters absent */
    const uint8_t *oid = signer == MF_KEY_EC_P384 ? oid_ecdsa_sha384 : oid_ecdsa_sha256;
    uint8_t alg[2 + 8];
    alg[0] = MF_DER_OID;
    alg[1] = 8;
    memcpy(alg + 2, oid, 8);
    return mf_der_put(out, MF_DER_SEQUENCE, alg, sizeof(alg));
}

/* see mf_x509_int.h */
mf_res mf_sigalg_parse(const struct mf_der *d, enum mf_hash *out)
{
    struct mf_cur c;
    struct mf_der oid;
    MF_ENSURE_MSG(d->tag == MF_DER_SEQUENCE, MF_ERR_PROTO_DER, "malformed AlgorithmIdentifier");
    mf_der_open(d, &c);
    MF_TRY(mf_der_get(&c, MF_DER_OID, &oid));
    if (mf_der_oid_is(&oid, oid_ecdsa_sha256, sizeof(oid_ecdsa_sha256))) {
        *out = MF_HASH_SHA256;
    } else if (mf_der_oid_is(&oid, oid_ecdsa_sha384, sizeof(oid_ecdsa_sha384))) {
        *out = MF_HASH_SHA384;
    } else if (mf_der_oid_is(&oid, oid_ecdsa_sha512, sizeof(oid_ecdsa_sha512))) {
        *out = MF_HASH_SHA512;
    } else {
        MF_BAIL_MSG(MF_ERR_CRYPTO_KEY,
                    "unsupported signature algorithm (only ECDSA with SHA-256/384/512)");
    }
    MF_ENSURE_MSG(mf_cur_remaining(&c) == 0, MF_ERR_PROTO_DER,
                  "ECDSA AlgorithmIdentifier has parameters");
    return MF_RES_OK;
}

/* see mf_x509_int.h */
mf_res mf_x509_sign_tbs(const struct mf_key *key, const struct mf_buf *tbs, struct mf_buf *out)
{
    const struct mf_curve *cv = mf_curve_by_type(key->type);
    MF_ENSURE(cv != NULL, MF_ERR_CRYPTO_KEY);
    uint8_t h[MF_HASH_MAX];
    size_t hlen;
    uint8_t sig[1 + MF_EC_SIG_MAX];
    size_t sig_len;
    MF_TRY(mf_hash_digest(cv->hash, tbs->data, tbs->len, h, &hlen));
    MF_TRY(sign_digest(key, h, hlen, sig + 1, &sig_len));
    sig[0] = 0; /* no unused bits */
    mf_res rc;
    struct mf_buf body;
    mf_buf_init(&body, MF_MAX_CERT, 0);
    MF_TRY_OUT(mf_buf_append(&body, tbs->data, tbs->len));
    MF_TRY_OUT(mf_sigalg_put(&body, key->type));
    MF_TRY_OUT(mf_der_put(&body, MF_DER_BIT_STRING, sig, sig_len + 1));
    MF_TRY_OUT(mf_der_wrap(out, MF_DER_SEQUENCE, &body));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&body);
    return rc;
}

/* see mf_x509.h */
mf_res mf_key_sign_jose(const struct mf_key *key, const uint8_t *msg, size_t len,
                        struct mf_buf *out)
{
    MF_ENSURE_REF(key);
    MF_ENSURE_REF(out);
    MF_ENSURE(msg != NULL || len == 0, MF_ERR_USAGE_NULL);
    const struct mf_curve *cv = mf_curve_by_type(key->type);
    MF_ENSURE(cv != NULL, MF_ERR_CRYPTO_KEY);
    uint8_t h[MF_HASH_MAX];
    size_t hlen;
    uint8_t sig[MF_EC_SIG_MAX];
    size_t sig_len;
    MF_TRY(mf_hash_digest(cv->hash, msg, len, h, &hlen));
    MF_TRY(sign_digest(key, h, hlen, sig, &sig_len));
    /* RFC 7518 3.4: R and S as unsigned big-endian, each padded to the
     * coordinate size */
    uint8_t r[MF_EC_COORD_MAX], s[MF_EC_COORD_MAX];
    word32 rl = sizeof(r), sl = sizeof(s);
    MF_TRY_WC(wc_ecc_sig_to_rs(sig, (word32)sig_len, r, &rl, s, &sl), MF_ERR_CRYPTO);
    MF_ENSURE(rl <= cv->coord_len && sl <= cv->coord_len, MF_ERR_INTERNAL);
    uint8_t raw[2 * MF_EC_COORD_MAX];
    memset(raw, 0, sizeof(raw));
    memcpy(raw + cv->coord_len - rl, r, rl);
    memcpy(raw + 2 * cv->coord_len - sl, s, sl);
    return mf_buf_append(out, raw, 2 * cv->coord_len);
}

/* see mf_x509.h */
mf_res mf_pubkey_verify_jose(const struct mf_pubkey *pk, const uint8_t *msg, size_t len,
                             const uint8_t *sig, size_t sig_len)
{
    MF_ENSURE_REF(pk);
    MF_ENSURE_REF(sig);
    MF_ENSURE(msg != NULL || len == 0, MF_ERR_USAGE_NULL);
    const struct mf_curve *cv = mf_curve_by_type(pk->type);
    MF_ENSURE(cv != NULL, MF_ERR_CRYPTO_KEY);
    MF_ENSURE_MSG(sig_len == 2 * cv->coord_len, MF_ERR_CRYPTO_SIG,
                  "%s signature must be %zu bytes, got %zu", cv->jwk_crv, 2 * cv->coord_len,
                  sig_len);
    uint8_t h[MF_HASH_MAX];
    size_t hlen;
    uint8_t der[MF_EC_SIG_MAX];
    word32 dl = sizeof(der);
    MF_TRY(mf_hash_digest(cv->hash, msg, len, h, &hlen));
    MF_TRY_WC(wc_ecc_rs_raw_to_sig(sig, (word32)cv->coord_len, sig + cv->coord_len,
                                   (word32)cv->coord_len, der, &dl),
              MF_ERR_CRYPTO_SIG);
    return verify_digest(pk, h, hlen, der, dl);
}

/* ---- private keys --------------------------------------------------------- */

static mf_res key_alloc(struct mf_key **out)
{
    struct mf_key *k = mf_secret_alloc(sizeof(*k));
    MF_TRY_PTR(k, MF_ERR_NOMEM);
    memset(k, 0, sizeof(*k));
    *out = k;
    return MF_RES_OK;
}

/* see mf_x509.h */
struct mf_key *mf_key_ref(struct mf_key *key)
{
    if (key != NULL) {
        atomic_fetch_add_explicit(&key->extra_refs, 1, memory_order_relaxed);
    }
    return key;
}

/* see mf_x509.h */
void mf_key_free(struct mf_key *key)
{
    if (key == NULL) {
        return;
    }
    /* the holder that finds no other reference frees it */
    if (atomic_fetch_sub_explicit(&key->extra_refs, 1, memory_order_acq_rel) > 0) {
        return;
    }
    mf_secret_free(key, sizeof(*key));
}

/* see mf_x509.h */
mf_res mf_key_generate(enum mf_key_type type, struct mf_key **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    const struct mf_curve *cv = mf_curve_by_type(type);
    MF_ENSURE_MSG(cv != NULL, MF_ERR_USAGE_ARG, "unsupported key type %d", (int)type);
    mf_x509_global_init();
    mf_res rc;
    WC_RNG own, *rng = NULL;
    ecc_key ecc;
    bool have_rng = false, have_ecc = false;
    struct mf_key *k = NULL;
    uint8_t x[MF_EC_COORD_MAX], y[MF_EC_COORD_MAX];
    word32 xl = sizeof(x), yl = sizeof(y), dl;
    memset(&ecc, 0, sizeof(ecc));
    MF_TRY_OUT(key_alloc(&k));
    dl = sizeof(k->d);
    MF_TRY_OUT(op_rng(&own, &have_rng, &rng));
    MF_TRY_WC_OUT(wc_ecc_init(&ecc), MF_ERR_CRYPTO);
    have_ecc = true;
    MF_TRY_WC_OUT(wc_ecc_make_key_ex(rng, (int)cv->coord_len, &ecc, cv->wc_id), MF_ERR_CRYPTO);
    MF_TRY_WC_OUT(wc_ecc_export_private_raw(&ecc, x, &xl, y, &yl, k->d, &dl), MF_ERR_CRYPTO);
    MF_ENSURE_OUT(xl == cv->coord_len && yl == cv->coord_len && dl == cv->coord_len,
                  MF_ERR_INTERNAL);
    k->type = type;
    MF_TRY_OUT(mf_pubkey_set(type, x, y, &k->pub));
    *out = k;
    k = NULL;
    rc = MF_RES_OK;
out:
    if (have_ecc) {
        mf_ec_release(&ecc);
    }
    if (have_rng) {
        (void)wc_FreeRng(&own);
    }
    drop_tables(); /* G was used: see sign_digest */
    mf_key_free(k);
    return rc;
}

/* Builds a key from a private scalar of up to coord_len bytes: the public
 * point is recomputed (wolfCrypt refuses 0 and scalars >= n), and must equal
 * pub (0x04 || x || y) when the encoding carried one. */
static mf_res key_from_scalar(const struct mf_curve *cv, const uint8_t *d, size_t dlen,
                              const struct mf_der *pub, struct mf_key **out)
{
    MF_ENSURE_MSG(dlen >= 1 && dlen <= cv->coord_len, MF_ERR_CRYPTO_KEY,
                  "private key of %zu bytes for %s", dlen, cv->jwk_crv);
    mf_x509_global_init();
    mf_res rc;
    ecc_key ecc;
    struct mf_key *k = NULL;
    uint8_t x[MF_EC_COORD_MAX], y[MF_EC_COORD_MAX];
    word32 xl = sizeof(x), yl = sizeof(y);
    memset(&ecc, 0, sizeof(ecc));
    MF_TRY_OUT(key_alloc(&k));
    k->type = cv->type;
    memcpy(k->d + cv->coord_len - dlen, d, dlen);
    MF_TRY_WC_OUT(wc_ecc_init(&ecc), MF_ERR_CRYPTO);
    MF_TRY_WC_OUT(
        wc_ecc_import_private_key_ex(k->d, (word32)cv->coord_len, NULL, 0, &ecc, cv->wc_id),
        MF_ERR_CRYPTO_KEY);
    MF_TRY_WC_OUT(wc_ecc_make_pub(&ecc, NULL), MF_ERR_CRYPTO_KEY);
    MF_TRY_WC_OUT(wc_ecc_export_public_raw(&ecc, x, &xl, y, &yl), MF_ERR_CRYPTO_KEY);
    MF_ENSURE_OUT(xl == cv->coord_len && yl == cv->coord_len, MF_ERR_INTERNAL);
    MF_TRY_OUT(mf_pubkey_set(cv->type, x, y, &k->pub));
    if (pub != NULL) {
        const uint8_t *bits;
        MF_ENSURE_OUT_MSG(pub->tag == MF_DER_BIT_STRING && pub->len == 2 + 2 * cv->coord_len &&
                              pub->p[0] == 0 && pub->p[1] == 0x04,
                          MF_ERR_CRYPTO_KEY, "malformed public key in private key encoding");
        bits = pub->p + 2;
        MF_ENSURE_OUT_MSG(memcmp(bits, x, cv->coord_len) == 0 &&
                              memcmp(bits + cv->coord_len, y, cv->coord_len) == 0,
                          MF_ERR_CRYPTO_MISMATCH,
                          "public key in the encoding does not match the private key");
    }
    *out = k;
    k = NULL;
    rc = MF_RES_OK;
out:
    mf_ec_release(&ecc);
    mf_key_free(k);
    return rc;
}

static mf_res parse_sec1(const uint8_t *der, size_t len, const struct mf_curve *hint,
                         struct mf_key **out)
{
    /* ECPrivateKey ::= SEQUENCE { version INTEGER { ecPrivkeyVer1(1) },
     *     privateKey OCTET STRING, parameters [0] ECParameters OPTIONAL,
     *     publicKey [1] BIT STRING OPTIONAL }            (RFC 5915 3) */
    struct mf_cur c, s, t;
    struct mf_der seq, ver, priv, wrap, inner;
    struct mf_der pub;
    bool have_pub = false;
    int64_t v;
    const struct mf_curve *cv = hint;
    mf_cur_init(&c, der, len);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &seq));
    MF_TRY(mf_der_end(&c, "ECPrivateKey"));
    mf_der_open(&seq, &s);
    MF_TRY(mf_der_get(&s, MF_DER_INTEGER, &ver));
    MF_TRY(mf_der_small_uint(&ver, 1, &v));
    MF_ENSURE_MSG(v == 1, MF_ERR_PROTO_DER, "ECPrivateKey version %lld", (long long)v);
    MF_TRY(mf_der_get(&s, MF_DER_OCTET, &priv));
    if (mf_der_peek(&s, 0xa0)) {
        MF_TRY(mf_der_next(&s, &wrap));
        mf_der_open(&wrap, &t);
        MF_TRY(mf_der_next(&t, &inner));
        MF_TRY(mf_der_end(&t, "ECParameters"));
        const struct mf_curve *named = inner.tag == MF_DER_OID ? curve_by_oid(&inner) : NULL;
        MF_ENSURE_MSG(named != NULL, MF_ERR_CRYPTO_KEY, "unsupported curve (only P-256 and P-384)");
        MF_ENSURE_MSG(cv == NULL || cv == named, MF_ERR_CRYPTO_KEY,
                      "curve in ECPrivateKey differs from the algorithm's");
        cv = named;
    }
    if (mf_der_peek(&s, 0xa1)) {
        MF_TRY(mf_der_next(&s, &wrap));
        mf_der_open(&wrap, &t);
        MF_TRY(mf_der_next(&t, &pub));
        MF_TRY(mf_der_end(&t, "publicKey"));
        have_pub = true;
    }
    MF_TRY(mf_der_end(&s, "ECPrivateKey"));
    MF_ENSURE_MSG(cv != NULL, MF_ERR_CRYPTO_KEY, "private key names no curve");
    return key_from_scalar(cv, priv.p, priv.len, have_pub ? &pub : NULL, out);
}

/* see mf_x509.h */
mf_res mf_key_from_der(const uint8_t *der, size_t len, struct mf_key **out)
{
    /* PrivateKeyInfo / OneAsymmetricKey ::= SEQUENCE { version INTEGER,
     *     privateKeyAlgorithm AlgorithmIdentifier, privateKey OCTET STRING,
     *     attributes [0] OPTIONAL, publicKey [1] OPTIONAL }   (RFC 5958 2) */
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(der);
    MF_ENSURE_MSG(len <= KEY_DER_MAX, MF_ERR_PROTO_TOO_LARGE, "private key of %zu bytes", len);
    struct mf_cur c, s, a;
    struct mf_der seq, ver, alg, oid, params, priv, d;
    int64_t v;
    mf_cur_init(&c, der, len);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &seq));
    MF_TRY(mf_der_end(&c, "PrivateKeyInfo"));
    mf_der_open(&seq, &s);
    MF_TRY(mf_der_get(&s, MF_DER_INTEGER, &ver));
    MF_TRY(mf_der_small_uint(&ver, 1, &v));
    MF_TRY(mf_der_get(&s, MF_DER_SEQUENCE, &alg));
    MF_TRY(mf_der_get(&s, MF_DER_OCTET, &priv));
    if (mf_der_peek(&s, 0xa0)) {
        MF_TRY(mf_der_next(&s, &d));
    }
    if (v == 1 && mf_der_peek(&s, 0x81)) {
        MF_TRY(mf_der_next(&s, &d));
    }
    MF_TRY(mf_der_end(&s, "PrivateKeyInfo"));
    mf_der_open(&alg, &a);
    MF_TRY(mf_der_get(&a, MF_DER_OID, &oid));
    MF_ENSURE_MSG(mf_der_oid_is(&oid, mf_oid_ec_public_key, sizeof(mf_oid_ec_public_key)),
                  MF_ERR_CRYPTO_KEY, "private key is not EC (only P-256 and P-384)");
    MF_TRY(mf_der_next(&a, &params));
    MF_TRY(mf_der_end(&a, "AlgorithmIdentifier"));
    const struct mf_curve *cv = params.tag == MF_DER_OID ? curve_by_oid(&params) : NULL;
    MF_ENSURE_MSG(cv != NULL, MF_ERR_CRYPTO_KEY, "unsupported curve (only P-256 and P-384)");
    return parse_sec1(priv.p, priv.len, cv, out);
}

/* see mf_x509.h */
mf_res mf_key_from_pem(const char *pem, size_t len, struct mf_key **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(pem);
    mf_res rc;
    struct mf_buf der;
    struct mf_cur cur;
    char label[32];
    mf_buf_init(&der, KEY_DER_MAX, MF_BUF_SECRET);
    mf_cur_init(&cur, pem, len);
    for (;;) {
        rc = mf_pem_next(&cur, label, sizeof(label), &der);
        if (rc.err == MF_ERR_IO_EOF) {
            MF_BAIL_OUT(MF_ERR_PROTO_PEM, "no PRIVATE KEY or EC PRIVATE KEY block");
        }
        MF_TRY_OUT(rc);
        if (strcmp(label, "PRIVATE KEY") == 0) {
            MF_TRY_OUT(mf_key_from_der(der.data, der.len, out));
            break;
        }
        if (strcmp(label, "EC PRIVATE KEY") == 0) {
            MF_TRY_OUT(parse_sec1(der.data, der.len, NULL, out));
            break;
        }
    }
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    return rc;
}

/* see mf_x509.h */
mf_res mf_key_to_der(const struct mf_key *key, struct mf_buf *out)
{
    MF_ENSURE_REF(key);
    MF_ENSURE_REF(out);
    MF_ENSURE_MSG(out->flags & MF_BUF_SECRET, MF_ERR_USAGE_ARG,
                  "private key output needs an MF_BUF_SECRET buffer");
    const struct mf_curve *cv = mf_curve_by_type(key->type);
    MF_ENSURE(cv != NULL, MF_ERR_CRYPTO_KEY);
    /* PKCS#8 v1 around an RFC 5915 ECPrivateKey that carries the public
     * key and leaves the curve to the outer AlgorithmIdentifier, as OpenSSL
     * writes it. */
    static const uint8_t version1[3] = {MF_DER_INTEGER, 0x01, 0x01};
    static const uint8_t version0[3] = {MF_DER_INTEGER, 0x01, 0x00};
    mf_res rc;
    struct mf_buf ec, ecseq, pubw, alg, body;
    uint8_t bits[2 + 2 * MF_EC_COORD_MAX];
    mf_buf_init(&ec, 512, MF_BUF_SECRET);
    mf_buf_init(&ecseq, 512, MF_BUF_SECRET);
    mf_buf_init(&pubw, 256, 0);
    mf_buf_init(&alg, 64, 0);
    mf_buf_init(&body, 1024, MF_BUF_SECRET);
    bits[0] = 0;
    bits[1] = 0x04;
    memcpy(bits + 2, mf_pubkey_x(&key->pub), cv->coord_len);
    memcpy(bits + 2 + cv->coord_len, mf_pubkey_y(&key->pub), cv->coord_len);
    MF_TRY_OUT(mf_buf_append(&ec, version1, sizeof(version1)));
    MF_TRY_OUT(mf_der_put(&ec, MF_DER_OCTET, key->d, cv->coord_len));
    MF_TRY_OUT(mf_der_put(&pubw, MF_DER_BIT_STRING, bits, 2 + 2 * cv->coord_len));
    MF_TRY_OUT(mf_der_put(&ec, 0xa1, pubw.data, pubw.len));
    MF_TRY_OUT(mf_der_wrap(&ecseq, MF_DER_SEQUENCE, &ec));
    MF_TRY_OUT(mf_der_put(&alg, MF_DER_OID, mf_oid_ec_public_key, sizeof(mf_oid_ec_public_key)));
    MF_TRY_OUT(mf_der_put(&alg, MF_DER_OID, cv->oid, cv->oid_len));
    MF_TRY_OUT(mf_buf_append(&body, version0, sizeof(version0)));
    MF_TRY_OUT(mf_der_wrap(&body, MF_DER_SEQUENCE, &alg));
    MF_TRY_OUT(mf_der_wrap(&body, MF_DER_OCTET, &ecseq));
    MF_TRY_OUT(mf_der_wrap(out, MF_DER_SEQUENCE, &body));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&ec);
    mf_buf_cleanup(&ecseq);
    mf_buf_cleanup(&pubw);
    mf_buf_cleanup(&alg);
    mf_buf_cleanup(&body);
    return rc;
}

/* see mf_x509.h */
mf_res mf_key_to_pem(const struct mf_key *key, struct mf_buf *out)
{
    MF_ENSURE_REF(key);
    MF_ENSURE_REF(out);
    MF_ENSURE_MSG(out->flags & MF_BUF_SECRET, MF_ERR_USAGE_ARG,
                  "private key output needs an MF_BUF_SECRET buffer");
    mf_res rc;
    struct mf_buf der;
    mf_buf_init(&der, KEY_DER_MAX, MF_BUF_SECRET);
    MF_TRY_OUT(mf_key_to_der(key, &der));
    MF_TRY_OUT(mf_pem_encode("PRIVATE KEY", der.data, der.len, out));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    return rc;
}

/* see mf_x509.h */
enum mf_key_type mf_key_type(const struct mf_key *key)
{
    return key->type;
}

/* see mf_x509.h */
mf_res mf_key_public(const struct mf_key *key, struct mf_pubkey **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(key);
    struct mf_pubkey *pk = malloc(sizeof(*pk));
    MF_TRY_PTR(pk, MF_ERR_NOMEM);
    *pk = key->pub;
    *out = pk;
    return MF_RES_OK;
}
