/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_bundle: SPIFFE trust bundles, their encodings and sets. See mf_bundle.h.
 *
 * A bundle is always the pair <trust domain, authorities> (D1). Reference
 * counts use atomic builtins so that a reader on one thread may drop its
 * reference while the rotation thread publishes the next version; the
 * content itself is never changed after publication.
 *
 * Decoding is driven by the checklist in SPIFFE.md section D. The JSON is
 * parsed by mf_json (size cap first, duplicate members refused); then each
 * JWK is classified by "use" and "kty". Keys this trust store cannot use are
 * skipped, never half-kept; keys that are malformed refuse the whole bundle,
 * because a bundle is a trust decision and must not be repaired. Every
 * refusal names keys[i] and the member in the error detail.
 */
#include "api/pki/mf_bundle.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/core/mf_json.h"
#include "api/core/mf_mem.h"

#define USE_X509 "x509-svid"
#define USE_JWT  "jwt-svid"

/* Base64 text of the largest certificate we accept (RFC 4648: 4 chars per 3
 * bytes, padded). */
#define CERT_B64_MAX (4u * ((MF_MAX_CERT + 2u) / 3u))
/* An EC coordinate is at most 48 bytes here (P-384): 64 base64url chars. A
 * little slack lets the length check report the real problem. */
#define COORD_B64_MAX 128u
#define COORD_MAX     48u
#define CRV_MAX       16u

/* ---- small helpers ------------------------------------------------------ */

/* A kid is 1..MF_KID_MAX printable ASCII bytes, so that it can be logged and
 * encoded as JSON without escaping surprises. */
static bool kid_valid(const char *kid)
{
    size_t n = strnlen(kid, MF_KID_MAX + 1);
    if (n == 0 || n > MF_KID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)kid[i];
        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

/* jansson's object iterator takes a non-const json_t although it only reads;
 * we never write through the result. */
static json_t *unconst(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

/* Re-raises a failure with prefix in front of its detail, so that a refusal
 * deep in a key names where it happened ("keys[3]: ..."). */
static mf_res in_context(mf_res r, const char *what, const char *name, size_t idx)
{
    if (mf_ok(r)) {
        return r;
    }
    char detail[400];
    const char *d = mf_err_detail();
    snprintf(detail, sizeof(detail), "%s", d[0] != '\0' ? d : mf_err_str(r.err));
    if (name != NULL) {
        return MF_RAISE_MSG(r.err, "%s \"%s\": %s", what, name, detail);
    }
    return MF_RAISE_MSG(r.err, "%s[%zu]: %s", what, idx, detail);
}

static bool cert_eq(const struct mf_cert *a, const struct mf_cert *b)
{
    size_t alen = 0;
    size_t blen = 0;
    const uint8_t *ad = mf_cert_der(a, &alen);
    const uint8_t *bd = mf_cert_der(b, &blen);
    return alen == blen && ad != NULL && bd != NULL && memcmp(ad, bd, alen) == 0;
}

static bool has_cert(const struct mf_certs *cs, const struct mf_cert *cert)
{
    for (size_t i = 0; i < cs->n; i++) {
        if (cert_eq(cs->v[i], cert)) {
            return true;
        }
    }
    return false;
}

static const struct mf_jwt_authority *find_kid(const struct mf_bundle *b, const char *kid)
{
    for (size_t i = 0; i < b->n_jwt; i++) {
        if (strcmp(b->jwt[i].kid, kid) == 0) {
            return &b->jwt[i];
        }
    }
    return NULL;
}

/* ---- bundle objects ------------------------------------------------------ */

/* see mf_bundle.h */
mf_res mf_bundle_new(const char *td, struct mf_bundle **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(td);
    struct mf_bundle *b = calloc(1, sizeof(*b));
    MF_TRY_PTR(b, MF_ERR_NOMEM);
    /* strnlen bounds the scan; a longer name is refused by mf_td_parse */
    mf_res rc = mf_td_parse(td, strnlen(td, MF_SPIFFE_ID_MAX + 1), b->td);
    if (!mf_ok(rc)) {
        free(b);
        return rc;
    }
    mf_certs_init(&b->x509);
    b->refs = 1;
    *out = b;
    return MF_RES_OK;
}

/* see mf_bundle.h */
struct mf_bundle *mf_bundle_ref(struct mf_bundle *b)
{
    if (b != NULL) {
        __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    }
    return b;
}

/* see mf_bundle.h */
void mf_bundle_free(struct mf_bundle *b)
{
    if (b == NULL) {
        return;
    }
    /* acq_rel: the last owner must see every write made before the others
     * dropped their references */
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0) {
        return;
    }
    mf_certs_cleanup(&b->x509);
    for (size_t i = 0; i < b->n_jwt; i++) {
        mf_pubkey_free(b->jwt[i].key);
    }
    free(b->jwt);
    free(b);
}

/* see mf_bundle.h */
mf_res mf_bundle_add_x509(struct mf_bundle *b, struct mf_cert *cert)
{
    MF_ENSURE_REF(b);
    MF_ENSURE_REF(cert);
    if (has_cert(&b->x509, cert)) {
        return MF_RES_OK;
    }
    MF_ENSURE_MSG(b->x509.n < MF_BUNDLE_KEYS_MAX, MF_ERR_PROTO_TOO_LARGE,
                  "more than %d X.509 authorities", MF_BUNDLE_KEYS_MAX);
    return mf_certs_push(&b->x509, cert);
}

/* see mf_bundle.h */
mf_res mf_bundle_add_jwt(struct mf_bundle *b, const char *kid, struct mf_pubkey *key)
{
    mf_res rc;
    MF_ENSURE_OUT(b != NULL && kid != NULL && key != NULL, MF_ERR_USAGE_NULL);
    MF_ENSURE_OUT_MSG(kid_valid(kid), MF_ERR_USAGE_ARG, "kid must be 1 to %d printable ASCII bytes",
                      MF_KID_MAX);
    MF_ENSURE_OUT_MSG(find_kid(b, kid) == NULL, MF_ERR_POLICY_DUPLICATE,
                      "kid \"%s\" is already present", kid);
    MF_ENSURE_OUT_MSG(b->n_jwt < MF_BUNDLE_KEYS_MAX, MF_ERR_PROTO_TOO_LARGE,
                      "more than %d JWT authorities", MF_BUNDLE_KEYS_MAX);
    size_t bytes;
    MF_ENSURE_OUT(mf_mul_size(b->n_jwt + 1, sizeof(*b->jwt), &bytes), MF_ERR_OVERFLOW);
    struct mf_jwt_authority *v = realloc(b->jwt, bytes);
    MF_ENSURE_OUT(v != NULL, MF_ERR_NOMEM);
    b->jwt = v;
    memcpy(v[b->n_jwt].kid, kid, strlen(kid) + 1);
    v[b->n_jwt].key = key;
    key = NULL;
    b->n_jwt++;
    rc = MF_RES_OK;
out:
    mf_pubkey_free(key);
    return rc;
}

/* see mf_bundle.h */
bool mf_bundle_same_keys(const struct mf_bundle *a, const struct mf_bundle *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    if (a->x509.n != b->x509.n || a->n_jwt != b->n_jwt) {
        return false;
    }
    /* Both sides hold no duplicates (add_x509 and add_jwt see to that), so
     * equal counts plus inclusion means equal sets, whatever the order. */
    for (size_t i = 0; i < a->x509.n; i++) {
        if (!has_cert(&b->x509, a->x509.v[i])) {
            return false;
        }
    }
    for (size_t i = 0; i < a->n_jwt; i++) {
        const struct mf_jwt_authority *o = find_kid(b, a->jwt[i].kid);
        if (o == NULL || !mf_pubkey_eq(o->key, a->jwt[i].key)) {
            return false;
        }
    }
    return true;
}

/* A new, independent copy of a public key (there is no refcount on keys). */
static mf_res pubkey_dup(const struct mf_pubkey *pk, struct mf_pubkey **out)
{
    *out = NULL;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CERT, 0);
    mf_res rc;
    MF_TRY_OUT(mf_pubkey_to_der(pk, &der));
    MF_TRY_OUT(mf_pubkey_from_der(der.data, der.len, out));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    return rc;
}

/* see mf_bundle.h */
mf_res mf_bundle_copy(const struct mf_bundle *b, struct mf_bundle **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(b);
    mf_res rc;
    struct mf_bundle *c = NULL;
    MF_TRY_OUT(mf_bundle_new(b->td, &c));
    for (size_t i = 0; i < b->x509.n; i++) {
        MF_TRY_OUT(mf_certs_push(&c->x509, b->x509.v[i]));
    }
    for (size_t i = 0; i < b->n_jwt; i++) {
        struct mf_pubkey *pk = NULL;
        MF_TRY_OUT(pubkey_dup(b->jwt[i].key, &pk));
        MF_TRY_OUT(mf_bundle_add_jwt(c, b->jwt[i].kid, pk));
    }
    c->sequence = b->sequence;
    c->refresh_hint = b->refresh_hint;
    *out = c;
    c = NULL;
    rc = MF_RES_OK;
out:
    mf_bundle_free(c);
    return rc;
}

/* ---- JWKS encoding -------------------------------------------------------- */

/* A JSON string holding the base64 (url == false, RFC 4648 section 4, as x5c
 * requires) or unpadded base64url (url == true, JOSE) text of n bytes. */
static mf_res encoded_string(bool url, const uint8_t *p, size_t n, json_t **out)
{
    *out = NULL;
    struct mf_buf t;
    mf_buf_init(&t, CERT_B64_MAX, 0);
    mf_res rc;
    MF_TRY_OUT(url ? mf_b64url_encode(p, n, &t) : mf_b64_encode(p, n, &t));
    *out = json_stringn(mf_buf_cstr(&t), t.len);
    MF_ENSURE_OUT(*out != NULL, MF_ERR_NOMEM);
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&t);
    return rc;
}

/* Sets the EC members crv, x and y of jwk from pk (RFC 7518 section 6.2.1). */
static mf_res set_ec_members(json_t *jwk, const struct mf_pubkey *pk)
{
    const char *crv = NULL;
    uint8_t x[COORD_MAX];
    uint8_t y[COORD_MAX];
    size_t clen = 0;
    MF_TRY(mf_pubkey_ec_coords(pk, &crv, x, y, &clen));
    MF_ENSURE(clen <= COORD_MAX, MF_ERR_INTERNAL);
    json_t *s;
    /* json_object_set_new steals the value, even when it fails */
    MF_ENSURE(json_object_set_new(jwk, "crv", json_string(crv)) == 0, MF_ERR_NOMEM);
    MF_TRY(encoded_string(true, x, clen, &s));
    MF_ENSURE(json_object_set_new(jwk, "x", s) == 0, MF_ERR_NOMEM);
    MF_TRY(encoded_string(true, y, clen, &s));
    MF_ENSURE(json_object_set_new(jwk, "y", s) == 0, MF_ERR_NOMEM);
    return MF_RES_OK;
}

/* {"use":"x509-svid","kty":"EC","crv":..,"x":..,"y":..,"x5c":["<b64 DER>"]}:
 * no kid and exactly one certificate (B31, D9). */
static mf_res x509_jwk(const struct mf_cert *cert, json_t **out)
{
    *out = NULL;
    mf_res rc;
    json_t *jwk = json_object();
    MF_ENSURE_OUT(jwk != NULL, MF_ERR_NOMEM);
    MF_ENSURE_OUT(json_object_set_new(jwk, "use", json_string(USE_X509)) == 0, MF_ERR_NOMEM);
    MF_ENSURE_OUT(json_object_set_new(jwk, "kty", json_string("EC")) == 0, MF_ERR_NOMEM);
    MF_TRY_OUT(set_ec_members(jwk, mf_cert_pubkey(cert)));
    json_t *x5c = json_array();
    MF_ENSURE_OUT(json_object_set_new(jwk, "x5c", x5c) == 0, MF_ERR_NOMEM);
    /* x5c is now borrowed from jwk */
    size_t len = 0;
    const uint8_t *der = mf_cert_der(cert, &len);
    MF_ENSURE_OUT(der != NULL, MF_ERR_INTERNAL);
    json_t *s;
    MF_TRY_OUT(encoded_string(false, der, len, &s));
    MF_ENSURE_OUT(json_array_append_new(x5c, s) == 0, MF_ERR_NOMEM);
    *out = jwk;
    jwk = NULL;
    rc = MF_RES_OK;
out:
    json_decref(jwk);
    return rc;
}

/* {"use":"jwt-svid","kty":"EC","kid":..,"crv":..,"x":..,"y":..} (D11), or
 * without "use" for the plain JWKS of D14. */
static mf_res jwt_jwk(const struct mf_jwt_authority *a, bool with_use, json_t **out)
{
    *out = NULL;
    mf_res rc;
    json_t *jwk = json_object();
    MF_ENSURE_OUT(jwk != NULL, MF_ERR_NOMEM);
    if (with_use) {
        MF_ENSURE_OUT(json_object_set_new(jwk, "use", json_string(USE_JWT)) == 0, MF_ERR_NOMEM);
    }
    MF_ENSURE_OUT(json_object_set_new(jwk, "kty", json_string("EC")) == 0, MF_ERR_NOMEM);
    MF_ENSURE_OUT(json_object_set_new(jwk, "kid", json_string(a->kid)) == 0, MF_ERR_NOMEM);
    MF_TRY_OUT(set_ec_members(jwk, a->key));
    *out = jwk;
    jwk = NULL;
    rc = MF_RES_OK;
out:
    json_decref(jwk);
    return rc;
}

enum form {
    FORM_SPIFFE,    /* SPIFFE bundle: every key, spiffe_* members */
    FORM_MAP_INNER, /* inside a bundle map: no refresh hint (D13) */
    FORM_PLAIN_JWT, /* plain JWKS of the JWT keys (D14) */
};

static mf_res bundle_json(const struct mf_bundle *b, enum form form, json_t **out)
{
    *out = NULL;
    mf_res rc;
    json_t *root = json_object();
    MF_ENSURE_OUT(root != NULL, MF_ERR_NOMEM);
    json_t *keys = json_array();
    MF_ENSURE_OUT(json_object_set_new(root, "keys", keys) == 0, MF_ERR_NOMEM);
    /* keys is borrowed from root from here on */
    if (form != FORM_PLAIN_JWT) {
        for (size_t i = 0; i < b->x509.n; i++) {
            json_t *jwk;
            MF_TRY_OUT(x509_jwk(b->x509.v[i], &jwk));
            MF_ENSURE_OUT(json_array_append_new(keys, jwk) == 0, MF_ERR_NOMEM);
        }
    }
    for (size_t i = 0; i < b->n_jwt; i++) {
        json_t *jwk;
        MF_TRY_OUT(jwt_jwk(&b->jwt[i], form != FORM_PLAIN_JWT, &jwk));
        MF_ENSURE_OUT(json_array_append_new(keys, jwk) == 0, MF_ERR_NOMEM);
    }
    if (form != FORM_PLAIN_JWT && b->sequence != 0) {
        MF_ENSURE_OUT_MSG(b->sequence <= (uint64_t)INT64_MAX, MF_ERR_USAGE_ARG,
                          "spiffe_sequence %llu does not fit a JSON integer here",
                          (unsigned long long)b->sequence);
        MF_ENSURE_OUT(json_object_set_new(root, "spiffe_sequence",
                                          json_integer((json_int_t)b->sequence)) == 0,
                      MF_ERR_NOMEM);
    }
    if (form == FORM_SPIFFE && b->refresh_hint != 0) {
        MF_ENSURE_OUT_MSG(b->refresh_hint > 0, MF_ERR_USAGE_ARG, "negative refresh hint");
        MF_ENSURE_OUT(json_object_set_new(root, "spiffe_refresh_hint",
                                          json_integer((json_int_t)b->refresh_hint)) == 0,
                      MF_ERR_NOMEM);
    }
    *out = root;
    root = NULL;
    rc = MF_RES_OK;
out:
    json_decref(root);
    return rc;
}

static mf_res dump_bundle(const struct mf_bundle *b, enum form form, struct mf_buf *out)
{
    MF_ENSURE_REF(b);
    MF_ENSURE_REF(out);
    json_t *root = NULL;
    MF_TRY(bundle_json(b, form, &root));
    mf_res rc = mf_json_dump(root, out);
    json_decref(root);
    return rc;
}

/* see mf_bundle.h */
mf_res mf_bundle_to_jwks(const struct mf_bundle *b, struct mf_buf *out)
{
    return dump_bundle(b, FORM_SPIFFE, out);
}

/* see mf_bundle.h */
mf_res mf_bundle_jwt_jwks(const struct mf_bundle *b, struct mf_buf *out)
{
    return dump_bundle(b, FORM_PLAIN_JWT, out);
}

/* ---- JWKS decoding -------------------------------------------------------- */

/* Decodes the base64url member key of jwk (at most COORD_MAX bytes). */
static mf_res coord(const json_t *jwk, const char *key, struct mf_buf *out)
{
    const char *s;
    MF_TRY(mf_json_str(jwk, key, true, COORD_B64_MAX, &s));
    mf_res r = mf_b64url_decode(s, strlen(s), out);
    MF_ENSURE_MSG(mf_ok(r), MF_ERR_PROTO_JSON, "\"%s\" is not base64url of a coordinate", key);
    return MF_RES_OK;
}

/* RFC 7517 section 4.7: the key in the first x5c certificate must match the
 * key the other members describe. Only EC members can be compared here. */
static mf_res check_ec_match(const json_t *jwk, const struct mf_pubkey *pk)
{
    mf_res rc;
    struct mf_buf x;
    struct mf_buf y;
    mf_buf_init(&x, COORD_MAX, 0);
    mf_buf_init(&y, COORD_MAX, 0);
    const char *crv;
    MF_TRY_OUT(mf_json_str(jwk, "crv", true, CRV_MAX, &crv));
    MF_TRY_OUT(coord(jwk, "x", &x));
    MF_TRY_OUT(coord(jwk, "y", &y));

    const char *ccrv = NULL;
    uint8_t cx[COORD_MAX];
    uint8_t cy[COORD_MAX];
    size_t clen = 0;
    rc = mf_pubkey_ec_coords(pk, &ccrv, cx, cy, &clen);
    MF_ENSURE_OUT_MSG(mf_ok(rc), MF_ERR_CRYPTO_MISMATCH,
                      "kty is EC but the x5c[0] certificate's key is not");
    MF_ENSURE_OUT_MSG(strcmp(crv, ccrv) == 0 && x.len == clen && y.len == clen &&
                          memcmp(x.data, cx, clen) == 0 && memcmp(y.data, cy, clen) == 0,
                      MF_ERR_CRYPTO_MISMATCH,
                      "crv/x/y do not describe the x5c[0] certificate's key");
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&x);
    mf_buf_cleanup(&y);
    return rc;
}

/* An EC curve this trust store handles, with its coordinate size. */
static bool supported_crv(const char *crv, size_t *clen)
{
    if (strcmp(crv, "P-256") == 0) {
        *clen = 32;
        return true;
    }
    if (strcmp(crv, "P-384") == 0) {
        *clen = 48;
        return true;
    }
    return false;
}

/* An "x509-svid" JWK with kty "EC" (D9, D10). */
static mf_res decode_x509_key(struct mf_bundle *b, const json_t *jwk)
{
    const json_t *x5c;
    MF_TRY(mf_json_array(jwk, "x5c", false, SIZE_MAX, &x5c));
    if (x5c == NULL || json_array_size(x5c) == 0) {
        return MF_RES_OK; /* D10: no certificate, nothing to trust */
    }
    const char *crv;
    size_t clen;
    MF_TRY(mf_json_str(jwk, "crv", true, CRV_MAX, &crv));
    if (!supported_crv(crv, &clen)) {
        return MF_RES_OK; /* P-521 and others: our X.509 code cannot use them */
    }
    /* D10: only the first element counts; the rest are ignored unseen */
    const json_t *first = json_array_get(x5c, 0);
    MF_ENSURE_MSG(json_is_string(first), MF_ERR_PROTO_JSON, "x5c[0] must be a string");
    const char *s = json_string_value(first);
    size_t n = json_string_length(first);
    MF_ENSURE_MSG(n <= CERT_B64_MAX, MF_ERR_PROTO_TOO_LARGE,
                  "x5c[0] holds more than %u bytes of base64", CERT_B64_MAX);

    mf_res rc;
    struct mf_cert *cert = NULL;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CERT, 0);
    rc = mf_b64_decode(s, n, &der);
    MF_ENSURE_OUT_MSG(mf_ok(rc), MF_ERR_PROTO_PEM, "x5c[0] is not standard base64 (RFC 4648 4)");
    MF_TRY_OUT(mf_cert_from_der(der.data, der.len, &cert));
    MF_TRY_OUT(check_ec_match(jwk, mf_cert_pubkey(cert)));
    MF_TRY_OUT(mf_bundle_add_x509(b, cert));
    rc = MF_RES_OK;
out:
    mf_cert_free(cert);
    mf_buf_cleanup(&der);
    return rc;
}

/* A "jwt-svid" JWK, or a key of a plain JWT JWKS (D11, D12, D14). */
static mf_res decode_jwt_key(struct mf_bundle *b, const json_t *jwk, const char *kty)
{
    const char *kid;
    MF_TRY(mf_json_str(jwk, "kid", false, MF_KID_MAX, &kid));
    /* D11 is a MUST and go-spiffe refuses such a bundle: so do we, whatever
     * the key type, so that two relying parties never disagree on it. */
    MF_ENSURE_MSG(kid != NULL, MF_ERR_PROTO_JSON, "JWT key has no kid (D11)");
    MF_ENSURE_MSG(kid_valid(kid), MF_ERR_PROTO_JSON, "kid must be 1 to %d printable ASCII bytes",
                  MF_KID_MAX);
    MF_ENSURE_MSG(find_kid(b, kid) == NULL, MF_ERR_PROTO_JSON, "duplicate kid \"%s\" (D12)", kid);
    if (strcmp(kty, "EC") != 0) {
        return MF_RES_OK; /* RSA, OKP...: not usable here (D6) */
    }
    const char *crv;
    size_t clen;
    MF_TRY(mf_json_str(jwk, "crv", true, CRV_MAX, &crv));
    if (!supported_crv(crv, &clen)) {
        return MF_RES_OK; /* P-521 and others: unsupported, skipped */
    }

    mf_res rc;
    struct mf_pubkey *pk = NULL;
    struct mf_buf x;
    struct mf_buf y;
    mf_buf_init(&x, COORD_MAX, 0);
    mf_buf_init(&y, COORD_MAX, 0);
    MF_TRY_OUT(coord(jwk, "x", &x));
    MF_TRY_OUT(coord(jwk, "y", &y));
    /* RFC 7518 6.2.1.2: coordinates are full length, leading zeros kept */
    MF_ENSURE_OUT_MSG(x.len == clen && y.len == clen, MF_ERR_PROTO_JSON,
                      "x and y must be %zu bytes for %s", clen, crv);
    MF_TRY_OUT(mf_pubkey_from_ec_coords(crv, x.data, x.len, y.data, y.len, &pk));
    rc = mf_bundle_add_jwt(b, kid, pk); /* takes pk, even on failure */
    pk = NULL;
    MF_TRY_OUT(rc);
    rc = MF_RES_OK;
out:
    mf_pubkey_free(pk);
    mf_buf_cleanup(&x);
    mf_buf_cleanup(&y);
    return rc;
}

static mf_res decode_key(struct mf_bundle *b, const json_t *jwk, enum form form)
{
    MF_ENSURE_MSG(json_is_object(jwk), MF_ERR_PROTO_JSON, "a key must be an object");
    const char *use;
    MF_TRY(mf_json_str(jwk, "use", false, MF_MAX_BUNDLE, &use));
    bool x509 = false;
    if (form == FORM_PLAIN_JWT) {
        /* D14: SPIRE sends no use here; another use is not a JWT key */
        if (use != NULL && strcmp(use, USE_JWT) != 0) {
            return MF_RES_OK;
        }
    } else if (use == NULL) {
        return MF_RES_OK; /* D7 */
    } else if (strcmp(use, USE_X509) == 0) {
        x509 = true;
    } else if (strcmp(use, USE_JWT) != 0) {
        return MF_RES_OK; /* D7: unknown use, case-sensitive */
    }

    const char *kty;
    MF_TRY(mf_json_str(jwk, "kty", true, MF_MAX_BUNDLE, &kty));
    /* A trust bundle publishes public keys: "d" means a private key leaked
     * into it. Refuse loudly rather than quietly drop it. */
    MF_ENSURE_MSG(json_object_get(jwk, "d") == NULL, MF_ERR_PROTO_JSON,
                  "key carries private key member \"d\"");
    if (x509) {
        /* D6 for unknown types; RSA and OKP certificates are refused by
         * mf_cert_from_der (EC P-256/P-384 only), so such keys are skipped
         * like unknown ones instead of failing the whole bundle */
        if (strcmp(kty, "EC") != 0) {
            return MF_RES_OK;
        }
        return decode_x509_key(b, jwk);
    }
    return decode_jwt_key(b, jwk, kty);
}

/* Builds the bundle of trust domain td from a parsed JWKS object. */
static mf_res decode_bundle(const json_t *root, const char *td, enum form form,
                            struct mf_bundle **out)
{
    *out = NULL;
    mf_res rc;
    struct mf_bundle *b = NULL;
    MF_TRY_OUT(mf_bundle_new(td, &b));
    MF_ENSURE_OUT_MSG(json_is_object(root), MF_ERR_PROTO_JSON, "a bundle must be an object");
    const json_t *keys;
    /* D2: keys is required; an empty array is valid and trusts nothing */
    MF_TRY_OUT(mf_json_array(root, "keys", true, SIZE_MAX, &keys));
    for (size_t i = 0; i < json_array_size(keys); i++) {
        MF_TRY_OUT(in_context(decode_key(b, json_array_get(keys, i), form), "keys", NULL, i));
    }
    if (form != FORM_PLAIN_JWT) {
        /* D3, D4: optional integers; 0 stands for "not set" */
        int64_t seq = 0;
        int64_t hint = 0;
        MF_TRY_OUT(mf_json_int(root, "spiffe_sequence", false, 0, INT64_MAX, &seq));
        MF_TRY_OUT(mf_json_int(root, "spiffe_refresh_hint", false, 0, INT64_MAX, &hint));
        b->sequence = (uint64_t)seq;
        b->refresh_hint = form == FORM_SPIFFE ? hint : 0; /* D13 */
    }
    *out = b;
    b = NULL;
    rc = MF_RES_OK;
out:
    mf_bundle_free(b);
    return rc;
}

static mf_res from_json_text(const char *td, const char *json, size_t len, enum form form,
                             struct mf_bundle **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(td);
    MF_ENSURE_REF(json);
    json_t *root = NULL;
    MF_TRY(mf_json_parse(json, len, MF_MAX_BUNDLE, &root));
    mf_res rc = decode_bundle(root, td, form, out);
    json_decref(root);
    return rc;
}

/* see mf_bundle.h */
mf_res mf_bundle_from_jwks(const char *td, const char *json, size_t len, struct mf_bundle **out)
{
    return from_json_text(td, json, len, FORM_SPIFFE, out);
}

/* see mf_bundle.h */
mf_res mf_bundle_from_jwt_jwks(const char *td, const char *json, size_t len, struct mf_bundle **out)
{
    return from_json_text(td, json, len, FORM_PLAIN_JWT, out);
}

/* ---- PEM ------------------------------------------------------------------ */

/* see mf_bundle.h */
mf_res mf_bundle_to_pem(const struct mf_bundle *b, struct mf_buf *out)
{
    MF_ENSURE_REF(b);
    MF_ENSURE_REF(out);
    if (b->x509.n == 0) {
        return MF_RES_OK; /* nothing to write; mf_certs_to_pem wants one */
    }
    return mf_certs_to_pem(&b->x509, out);
}

/* see mf_bundle.h */
mf_res mf_bundle_from_pem(const char *td, const char *pem, size_t len, struct mf_bundle **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(td);
    MF_ENSURE_REF(pem);
    MF_ENSURE_MSG(len <= MF_MAX_BUNDLE, MF_ERR_PROTO_TOO_LARGE, "PEM bundle over %u bytes",
                  MF_MAX_BUNDLE);
    mf_res rc;
    struct mf_bundle *b = NULL;
    struct mf_cert *cert = NULL;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CERT, 0);
    MF_TRY_OUT(mf_bundle_new(td, &b));

    struct mf_cur cur;
    mf_cur_init(&cur, pem, len);
    size_t blocks = 0;
    for (;;) {
        char label[32];
        mf_buf_reset(&der);
        rc = mf_pem_next(&cur, label, sizeof(label), &der);
        if (rc.err == MF_ERR_IO_EOF) {
            break;
        }
        MF_TRY_OUT(rc);
        /* A key or CSR in a trust bundle file is a mistake worth refusing */
        MF_ENSURE_OUT_MSG(strcmp(label, "CERTIFICATE") == 0, MF_ERR_PROTO_PEM,
                          "block %zu is not a CERTIFICATE", blocks);
        MF_TRY_OUT(mf_cert_from_der(der.data, der.len, &cert));
        MF_TRY_OUT(mf_bundle_add_x509(b, cert));
        mf_cert_free(cert);
        cert = NULL;
        blocks++;
    }
    MF_ENSURE_OUT_MSG(blocks > 0, MF_ERR_PROTO_PEM, "no CERTIFICATE block");
    *out = b;
    b = NULL;
    rc = MF_RES_OK;
out:
    mf_cert_free(cert);
    mf_buf_cleanup(&der);
    mf_bundle_free(b);
    return rc;
}

/* ---- bundle sets and the bundle map ---------------------------------------- */

/* see mf_bundle.h */
void mf_bundle_set_init(struct mf_bundle_set *s)
{
    s->v = NULL;
    s->n = 0;
}

/* see mf_bundle.h */
void mf_bundle_set_cleanup(struct mf_bundle_set *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        mf_bundle_free(s->v[i]);
    }
    free(s->v);
    mf_bundle_set_init(s);
}

/* see mf_bundle.h */
mf_res mf_bundle_set_put(struct mf_bundle_set *s, struct mf_bundle *b)
{
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(b);
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i]->td, b->td) == 0) {
            struct mf_bundle *old = s->v[i];
            s->v[i] = mf_bundle_ref(b);
            mf_bundle_free(old);
            return MF_RES_OK;
        }
    }
    size_t bytes;
    MF_ENSURE(mf_mul_size(s->n + 1, sizeof(*s->v), &bytes), MF_ERR_OVERFLOW);
    struct mf_bundle **v = realloc(s->v, bytes);
    MF_TRY_PTR(v, MF_ERR_NOMEM);
    s->v = v;
    s->v[s->n++] = mf_bundle_ref(b);
    return MF_RES_OK;
}

/* see mf_bundle.h */
const struct mf_bundle *mf_bundle_set_find(const struct mf_bundle_set *s, const char *td)
{
    if (s == NULL || td == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i]->td, td) == 0) {
            return s->v[i];
        }
    }
    return NULL;
}

/* see mf_bundle.h */
mf_res mf_bundle_set_to_map(const struct mf_bundle_set *s, struct mf_buf *out)
{
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(out);
    mf_res rc;
    json_t *root = json_object();
    MF_ENSURE_OUT(root != NULL, MF_ERR_NOMEM);
    json_t *tds = json_object();
    MF_ENSURE_OUT(json_object_set_new(root, "trust_domains", tds) == 0, MF_ERR_NOMEM);
    /* tds is borrowed from root */
    for (size_t i = 0; i < s->n; i++) {
        /* D13: producers keep the keys unique */
        MF_ENSURE_OUT_MSG(json_object_get(tds, s->v[i]->td) == NULL, MF_ERR_STATE,
                          "trust domain \"%s\" twice in the set", s->v[i]->td);
        json_t *inner;
        MF_TRY_OUT(bundle_json(s->v[i], FORM_MAP_INNER, &inner));
        MF_ENSURE_OUT(json_object_set_new(tds, s->v[i]->td, inner) == 0, MF_ERR_NOMEM);
    }
    MF_TRY_OUT(mf_json_dump(root, out));
    rc = MF_RES_OK;
out:
    json_decref(root);
    return rc;
}

/* see mf_bundle.h */
mf_res mf_bundle_set_from_map(const char *json, size_t len, struct mf_bundle_set *out)
{
    MF_ENSURE_REF(out);
    mf_bundle_set_init(out);
    MF_ENSURE_REF(json);
    mf_res rc;
    struct mf_bundle_set tmp;
    mf_bundle_set_init(&tmp);
    struct mf_bundle *b = NULL;
    json_t *root = NULL;
    /* JSON_REJECT_DUPLICATES (in mf_json_parse) is what refuses a map that
     * names one trust domain twice (D13) */
    MF_TRY_OUT(mf_json_parse(json, len, MF_MAX_BUNDLE, &root));
    const json_t *tds;
    MF_TRY_OUT(mf_json_object(root, "trust_domains", true, &tds));

    const char *key;
    json_t *val;
    json_object_foreach(unconst(tds), key, val)
    {
        char td[MF_TD_MAX + 1];
        size_t klen = strnlen(key, MF_SPIFFE_ID_MAX + 1);
        MF_TRY_OUT(mf_td_parse(key, klen, td));
        /* the key is a bare name: "spiffe://td" would be repaired input */
        MF_ENSURE_OUT_MSG(strcmp(td, key) == 0, MF_ERR_PROTO_JSON,
                          "trust_domains key \"%s\" is not a bare trust domain name", td);
        MF_TRY_OUT(in_context(decode_bundle(val, td, FORM_MAP_INNER, &b), "trust domain", td, 0));
        MF_TRY_OUT(mf_bundle_set_put(&tmp, b));
        mf_bundle_free(b);
        b = NULL;
    }
    *out = tmp;
    mf_bundle_set_init(&tmp);
    rc = MF_RES_OK;
out:
    mf_bundle_free(b);
    mf_bundle_set_cleanup(&tmp);
    json_decref(root);
    return rc;
}

/* ---- relying party ---------------------------------------------------------- */

/* see mf_bundle.h */
mf_res mf_svid_verify(const struct mf_certs *chain, const struct mf_bundle_set *set, int64_t now,
                      struct mf_spiffe_id *id_out)
{
    if (id_out != NULL) {
        memset(id_out, 0, sizeof(*id_out));
    }
    MF_ENSURE_REF(chain);
    MF_ENSURE_REF(set);
    MF_ENSURE_MSG(chain->n > 0 && chain->v != NULL, MF_ERR_AUTH_MISSING, "empty chain");
    struct mf_spiffe_id id;
    MF_ENSURE_MSG(mf_cert_spiffe_id(chain->v[0], &id), MF_ERR_AUTH_SVID,
                  "leaf has no valid SPIFFE ID URI SAN");
    char td[MF_TD_MAX + 1];
    mf_spiffeid_td(&id, td);
    /* B23: only the authorities of the leaf's own trust domain; never the
     * union of every bundle we hold */
    const struct mf_bundle *b = mf_bundle_set_find(set, td);
    MF_ENSURE_MSG(b != NULL, MF_ERR_AUTH_UNTRUSTED, "no bundle for trust domain \"%s\"", td);
    /* D2: an empty bundle revokes everything */
    MF_ENSURE_MSG(b->x509.n > 0, MF_ERR_AUTH_UNTRUSTED,
                  "bundle of trust domain \"%s\" has no X.509 authorities", td);
    return mf_x509_verify_chain(chain, &b->x509, now, id_out);
}
