/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_jwt: JWT-SVID signing and validation. See mf_jwt.h for the rules and
 * their order.
 *
 * Invariants: the size cap and the shape (three parts) are checked before
 * anything is decoded; every part is decoded with the strict base64url
 * decoder; JSON goes through mf_json (duplicate members refused); claims
 * are trusted only after the signature verified with a key taken from the
 * bundle of the trust domain named in "sub" and nowhere else.
 */
#include "api/pki/mf_jwt.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_json.h"
#include "api/core/mf_mem.h"

#define PART_MAX MF_JWT_MAX /* decoded header or claims */

/* C3: the only algorithms a JWT-SVID may name. */
static const char *const allowed_algs[] = {"RS256", "RS384", "RS512", "ES256", "ES384",
                                           "ES512", "PS256", "PS384", "PS512", NULL};

static bool alg_allowed(const char *alg)
{
    for (size_t i = 0; allowed_algs[i] != NULL; i++) {
        if (strcmp(alg, allowed_algs[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* The key type an algorithm needs (C4), or -1 for the allowed algorithms
 * that libmayfly has no key type for (RSA, P-521). */
static int alg_key_type(const char *alg)
{
    if (strcmp(alg, "ES256") == 0) {
        return MF_KEY_EC_P256;
    }
    if (strcmp(alg, "ES384") == 0) {
        return MF_KEY_EC_P384;
    }
    return -1;
}

static bool kid_ok(const char *kid)
{
    size_t n = strlen(kid);
    if (n == 0 || n > MF_KID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)kid[i];
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* ---- signing ---------------------------------------------------------------- */

static mf_res b64url_json(const json_t *v, struct mf_buf *out)
{
    struct mf_buf text;
    mf_buf_init(&text, PART_MAX, 0);
    mf_res r = mf_json_dump(v, &text);
    if (mf_ok(r)) {
        r = mf_b64url_encode(text.data, text.len, out);
    }
    mf_buf_cleanup(&text);
    return r;
}

/* see mf_jwt.h */
mf_res mf_jwt_sign(const struct mf_key *key, const char *kid, const struct mf_jwt_claims_req *req,
                   struct mf_buf *out)
{
    mf_res rc;
    json_t *hdr = NULL, *claims = NULL, *aud = NULL;
    struct mf_buf tok, sig;
    struct mf_spiffe_id sub;
    MF_ENSURE_REF(key);
    MF_ENSURE_REF(kid);
    MF_ENSURE_REF(req);
    MF_ENSURE_REF(req->sub);
    MF_ENSURE_REF(out);
    MF_ENSURE_MSG(kid_ok(kid), MF_ERR_USAGE_ARG, "kid must be 1..%d printable bytes", MF_KID_MAX);
    MF_TRY(mf_spiffeid_parse_cstr(req->sub, &sub));
    MF_ENSURE_MSG(req->n_aud >= 1 && req->n_aud <= MF_JWT_AUD_MAX && req->aud != NULL,
                  MF_ERR_USAGE_ARG, "a JWT-SVID needs 1..%d audiences", MF_JWT_AUD_MAX);
    MF_ENSURE_MSG(req->exp > req->iat, MF_ERR_USAGE_ARG, "exp must be after iat");
    const char *alg = mf_key_type(key) == MF_KEY_EC_P384 ? "ES384" : "ES256";

    mf_buf_init(&tok, MF_JWT_MAX, 0);
    mf_buf_init(&sig, 256, 0);
    aud = json_array();
    MF_ENSURE_OUT(aud != NULL, MF_ERR_NOMEM);
    for (size_t i = 0; i < req->n_aud; i++) {
        const char *a = req->aud[i];
        MF_ENSURE_OUT_MSG(a != NULL && a[0] != '\0' && strlen(a) <= MF_JWT_AUD_LEN_MAX,
                          MF_ERR_USAGE_ARG, "audience %zu must be 1..%d bytes", i,
                          MF_JWT_AUD_LEN_MAX);
        MF_ENSURE_OUT(json_array_append_new(aud, json_string(a)) == 0, MF_ERR_NOMEM);
    }
    hdr = json_pack("{s:s,s:s,s:s}", "alg", alg, "kid", kid, "typ", "JWT");
    MF_ENSURE_OUT(hdr != NULL, MF_ERR_NOMEM);
    claims = json_pack("{s:s,s:O,s:I,s:I}", "sub", sub.str, "aud", aud, "exp", (json_int_t)req->exp,
                       "iat", (json_int_t)req->iat);
    MF_ENSURE_OUT(claims != NULL, MF_ERR_NOMEM);
    if (req->iss != NULL) {
        MF_ENSURE_OUT(json_object_set_new(claims, "iss", json_string(req->iss)) == 0,
                      MF_ERR_USAGE_ARG);
    }
    MF_TRY_OUT(b64url_json(hdr, &tok));
    MF_TRY_OUT(mf_buf_append_u8(&tok, '.'));
    MF_TRY_OUT(b64url_json(claims, &tok));
    MF_TRY_OUT(mf_key_sign_jose(key, tok.data, tok.len, &sig));
    MF_TRY_OUT(mf_buf_append_u8(&tok, '.'));
    MF_TRY_OUT(mf_b64url_encode(sig.data, sig.len, &tok));
    MF_TRY_OUT(mf_buf_append(out, tok.data, tok.len));
    rc = MF_RES_OK;
out:
    json_decref(hdr);
    json_decref(claims);
    json_decref(aud);
    mf_buf_cleanup(&tok);
    mf_buf_cleanup(&sig);
    return rc;
}

/* ---- validation --------------------------------------------------------------- */

/* jansson's getters take non-const values although they only read. */
static json_t *unconst(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

/* A NumericDate (RFC 7519 2): an integer, or a finite real, in int64 range. */
static mf_res numeric_date(const json_t *obj, const char *name, bool required, int64_t *out)
{
    const json_t *v = json_object_get(obj, name);
    *out = 0;
    if (v == NULL) {
        MF_ENSURE_MSG(!required, MF_ERR_PROTO, "claim \"%s\" is missing", name);
        return MF_RES_OK;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return MF_RES_OK;
    }
    MF_ENSURE_MSG(json_is_real(v), MF_ERR_PROTO, "claim \"%s\" is not a number", name);
    double d = json_real_value(v);
    MF_ENSURE_MSG(isfinite(d) && d > -9.2e18 && d < 9.2e18, MF_ERR_PROTO,
                  "claim \"%s\" is out of range", name);
    *out = (int64_t)d;
    return MF_RES_OK;
}

/* Decodes one base64url part into out (strictly) and parses it as a JSON
 * object with unique members. */
static mf_res json_part(const char *p, size_t n, const char *what, json_t **out)
{
    struct mf_buf raw;
    *out = NULL;
    mf_buf_init(&raw, PART_MAX, 0);
    mf_res r = mf_b64url_decode(p, n, &raw);
    if (!mf_ok(r)) {
        mf_buf_cleanup(&raw);
        MF_BAIL_MSG(MF_ERR_PROTO, "JWT %s is not strict base64url", what);
    }
    r = mf_json_parse(mf_buf_cstr(&raw), raw.len, PART_MAX, out);
    mf_buf_cleanup(&raw);
    if (!mf_ok(r)) {
        MF_BAIL_MSG(MF_ERR_PROTO, "JWT %s is not a JSON object with unique members", what);
    }
    return MF_RES_OK;
}

/* The header rules (C2-C6 except the key match), alg first. */
static mf_res check_header(const json_t *h, struct mf_jwt *out)
{
    const json_t *alg = json_object_get(h, "alg");
    MF_ENSURE_MSG(json_is_string(alg), MF_ERR_PROTO, "JWT header has no \"alg\" string");
    /* C3: refuse a disallowed algorithm before looking at anything else */
    MF_ENSURE_MSG(alg_allowed(json_string_value(alg)), MF_ERR_PROTO,
                  "JWT algorithm is not allowed for JWT-SVIDs (SPIFFE JWT-SVID 2.1)");
    snprintf(out->alg, sizeof(out->alg), "%s", json_string_value(alg));
    const char *key;
    json_t *val;
    json_object_foreach(unconst(h), key, val)
    {
        MF_ENSURE_MSG(strcmp(key, "alg") == 0 || strcmp(key, "kid") == 0 || strcmp(key, "typ") == 0,
                      MF_ERR_PROTO, "JWT header may hold only alg, kid and typ (JWT-SVID 2)");
    }
    const json_t *typ = json_object_get(h, "typ");
    if (typ != NULL) {
        MF_ENSURE_MSG(json_is_string(typ) && (strcmp(json_string_value(typ), "JWT") == 0 ||
                                              strcmp(json_string_value(typ), "JOSE") == 0),
                      MF_ERR_PROTO, "JWT typ must be \"JWT\" or \"JOSE\"");
    }
    const json_t *kid = json_object_get(h, "kid");
    if (kid != NULL) {
        MF_ENSURE_MSG(json_is_string(kid) && json_string_length(kid) >= 1 &&
                          json_string_length(kid) <= MF_KID_MAX &&
                          strlen(json_string_value(kid)) == json_string_length(kid),
                      MF_ERR_PROTO, "JWT kid must be a string of 1..%d bytes", MF_KID_MAX);
        snprintf(out->kid, sizeof(out->kid), "%s", json_string_value(kid));
    }
    return MF_RES_OK;
}

/* The claim shapes (C7, C8, C9, C11), without judging time or audience. */
static mf_res check_claims(const json_t *c, struct mf_jwt *out)
{
    const json_t *sub = json_object_get(c, "sub");
    MF_ENSURE_MSG(json_is_string(sub), MF_ERR_PROTO, "JWT has no \"sub\" string");
    mf_res r = mf_spiffeid_parse(json_string_value(sub), json_string_length(sub), &out->sub);
    MF_ENSURE_MSG(mf_ok(r), MF_ERR_PROTO, "JWT sub is not a SPIFFE ID: %s", mf_err_str(r.err));

    const json_t *aud = json_object_get(c, "aud");
    size_t n = 0;
    if (json_is_string(aud)) {
        n = 1;
    } else {
        MF_ENSURE_MSG(json_is_array(aud), MF_ERR_PROTO,
                      "JWT aud must be a string or an array of strings");
        n = json_array_size(aud);
        MF_ENSURE_MSG(n <= MF_JWT_AUD_MAX, MF_ERR_PROTO, "JWT has more than %d audiences",
                      MF_JWT_AUD_MAX);
    }
    MF_ENSURE_MSG(n >= 1, MF_ERR_PROTO, "JWT aud is empty");
    out->aud = calloc(n, sizeof(*out->aud));
    MF_TRY_PTR(out->aud, MF_ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_is_string(aud) ? aud : json_array_get(aud, i);
        MF_ENSURE_MSG(json_is_string(a) && json_string_length(a) <= MF_JWT_AUD_LEN_MAX &&
                          strlen(json_string_value(a)) == json_string_length(a),
                      MF_ERR_PROTO, "JWT aud[%zu] is not a string of at most %d bytes", i,
                      MF_JWT_AUD_LEN_MAX);
        out->aud[i] = strdup(json_string_value(a));
        MF_TRY_PTR(out->aud[i], MF_ERR_NOMEM);
        out->n_aud++;
    }
    int64_t nbf = 0;
    MF_TRY(numeric_date(c, "exp", true, &out->exp));
    MF_TRY(numeric_date(c, "nbf", false, &nbf));
    MF_TRY(numeric_date(c, "iat", false, &out->iat));
    return MF_RES_OK;
}

/* C4, C5, C10: the key from the bundle of sub's trust domain, then the
 * signature over the first two parts as sent. */
static mf_res check_signature(const char *token, size_t signed_len, const char *sig_b64,
                              size_t sig_len, const struct mf_bundle_set *set,
                              const struct mf_jwt *j)
{
    char td[MF_TD_MAX + 1];
    mf_spiffeid_td(&j->sub, td);
    const struct mf_bundle *b = set != NULL ? mf_bundle_set_find(set, td) : NULL;
    MF_ENSURE_MSG(b != NULL, MF_ERR_AUTH_UNTRUSTED, "no JWT bundle for trust domain %s", td);
    int want = alg_key_type(j->alg);
    MF_ENSURE_MSG(want >= 0, MF_ERR_AUTH_UNTRUSTED, "no %s key can exist in a mayfly bundle",
                  j->alg);
    struct mf_buf sig;
    mf_buf_init(&sig, 256, 0);
    mf_res r = mf_b64url_decode(sig_b64, sig_len, &sig);
    if (!mf_ok(r)) {
        mf_buf_cleanup(&sig);
        MF_BAIL_MSG(MF_ERR_PROTO, "JWT signature is not strict base64url");
    }
    r = MF_RAISE_MSG(MF_ERR_AUTH_UNTRUSTED, "no JWT authority of %s has kid \"%s\"", td, j->kid);
    bool any = false;
    for (size_t i = 0; i < b->n_jwt; i++) {
        const struct mf_jwt_authority *a = &b->jwt[i];
        if (j->kid[0] != '\0' && strcmp(a->kid, j->kid) != 0) {
            continue;
        }
        if ((int)mf_pubkey_type(a->key) != want) {
            if (j->kid[0] != '\0') {
                r = MF_RAISE_MSG(MF_ERR_AUTH_UNTRUSTED,
                                 "JWT alg %s does not match the key of kid \"%s\"", j->alg, j->kid);
            }
            continue;
        }
        any = true;
        r = mf_pubkey_verify_jose(a->key, (const uint8_t *)token, signed_len, sig.data, sig.len);
        if (mf_ok(r)) {
            break;
        }
    }
    if (!any && j->kid[0] == '\0') {
        r = MF_RAISE_MSG(MF_ERR_AUTH_UNTRUSTED, "no %s JWT authority in the bundle of %s", j->alg,
                         td);
    } else if (any && !mf_ok(r)) {
        r = MF_RAISE_MSG(MF_ERR_CRYPTO_SIG, "JWT signature does not verify");
    }
    mf_buf_cleanup(&sig);
    return r;
}

/* see mf_jwt.h */
mf_res mf_jwt_validate(const char *token, size_t len, const struct mf_bundle_set *set,
                       const char *audience, int64_t now, struct mf_jwt *out)
{
    mf_res rc;
    json_t *h = NULL;
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE_REF(token);
    MF_ENSURE_MSG(audience != NULL && audience[0] != '\0', MF_ERR_USAGE_ARG,
                  "an audience is required");
    MF_ENSURE_MSG(len <= MF_JWT_MAX, MF_ERR_PROTO_TOO_LARGE, "JWT of %zu bytes exceeds %u", len,
                  MF_JWT_MAX);
    MF_ENSURE_MSG(memchr(token, '\0', len) == NULL, MF_ERR_PROTO, "JWT holds a NUL byte");
    /* C1: compact serialization only: exactly three non-empty parts */
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    MF_ENSURE_MSG(d2 != NULL && memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) == NULL,
                  MF_ERR_PROTO, "a JWT-SVID is three dot-separated parts (JWS compact)");
    size_t hlen = (size_t)(d1 - token), clen = (size_t)(d2 - d1 - 1);
    size_t slen = len - (size_t)(d2 + 1 - token);
    MF_ENSURE_MSG(hlen > 0 && clen > 0 && slen > 0, MF_ERR_PROTO, "a JWT part is empty");

    MF_TRY_OUT(json_part(token, hlen, "header", &h));
    MF_TRY_OUT(check_header(h, out));
    MF_TRY_OUT(json_part(d1 + 1, clen, "claims", &out->claims));
    MF_TRY_OUT(check_claims(out->claims, out));
    MF_TRY_OUT(check_signature(token, (size_t)(d2 - token), d2 + 1, slen, set, out));

    /* the token is authentic; now is it for us, and now? */
    MF_ENSURE_OUT_MSG(out->exp > now - MF_JWT_LEEWAY, MF_ERR_AUTH_EXPIRED,
                      "JWT expired (exp is %lld, now %lld)", (long long)out->exp, (long long)now);
    int64_t nbf = 0;
    MF_TRY_OUT(numeric_date(out->claims, "nbf", false, &nbf));
    MF_ENSURE_OUT_MSG(nbf <= now + MF_JWT_LEEWAY, MF_ERR_AUTH_EXPIRED,
                      "JWT is not valid yet (nbf is %lld, now %lld)", (long long)nbf,
                      (long long)now);
    bool found = false;
    for (size_t i = 0; i < out->n_aud && !found; i++) {
        found = strcmp(out->aud[i], audience) == 0;
    }
    MF_ENSURE_OUT_MSG(found, MF_ERR_POLICY_DENIED, "JWT audience does not include the one asked");
    rc = MF_RES_OK;
out:
    json_decref(h);
    if (!mf_ok(rc)) {
        mf_jwt_cleanup(out);
    }
    return rc;
}

/* see mf_jwt.h */
void mf_jwt_cleanup(struct mf_jwt *j)
{
    if (j == NULL) {
        return;
    }
    for (size_t i = 0; i < j->n_aud; i++) {
        free(j->aud[i]);
    }
    free(j->aud);
    json_decref(j->claims);
    memset(j, 0, sizeof(*j));
}

/* see mf_jwt.h */
bool mf_jwt_aud_equal(const struct mf_jwt *j, const char *const *aud, size_t n)
{
    for (size_t i = 0; i < j->n_aud; i++) {
        bool in = false;
        for (size_t k = 0; k < n && !in; k++) {
            in = strcmp(j->aud[i], aud[k]) == 0;
        }
        if (!in) {
            return false;
        }
    }
    for (size_t k = 0; k < n; k++) {
        bool in = false;
        for (size_t i = 0; i < j->n_aud && !in; i++) {
            in = strcmp(j->aud[i], aud[k]) == 0;
        }
        if (!in) {
            return false;
        }
    }
    return true;
}
