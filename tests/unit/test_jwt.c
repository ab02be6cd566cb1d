/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_jwt: JWT-SVID signing and validation (SPIFFE.md C1-C15).
 * Tokens with hand-made headers and claims are signed with a real key, so
 * each test breaks exactly one rule and every other check would pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/pki/mf_bundle.h"
#include "api/pki/mf_jwt.h"
#include "api/pki/mf_x509.h"
#include "mf_test.h"

#define NOW 1800000000
#define SUB "spiffe://example.org/app"

struct fx {
    struct mf_key *key;      /* P-256, kid "k1", in the bundle of example.org */
    struct mf_key *key384;   /* P-384, kid "k384", in the bundle too */
    struct mf_key *stranger; /* in no bundle */
    struct mf_bundle_set set;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct mf_bundle *b = NULL;
    struct mf_pubkey *pk = NULL;
    assert_non_null(f);
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &f->key));
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P384, &f->key384));
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &f->stranger));
    ASSERT_OK(mf_bundle_new("example.org", &b));
    ASSERT_OK(mf_key_public(f->key, &pk));
    ASSERT_OK(mf_bundle_add_jwt(b, "k1", pk));
    ASSERT_OK(mf_key_public(f->key384, &pk));
    ASSERT_OK(mf_bundle_add_jwt(b, "k384", pk));
    mf_bundle_set_init(&f->set);
    ASSERT_OK(mf_bundle_set_put(&f->set, b));
    mf_bundle_free(b);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mf_key_free(f->key);
    mf_key_free(f->key384);
    mf_key_free(f->stranger);
    mf_bundle_set_cleanup(&f->set);
    free(f);
    return 0;
}

/* header.claims.signature over the given JSON texts, signed by key. */
static char *make_token(const struct mf_key *key, const char *hdr, const char *claims)
{
    struct mf_buf t, sig;
    mf_buf_init(&t, 64 * 1024, 0);
    mf_buf_init(&sig, 256, 0);
    ASSERT_OK(mf_b64url_encode((const uint8_t *)hdr, strlen(hdr), &t));
    ASSERT_OK(mf_buf_append_u8(&t, '.'));
    ASSERT_OK(mf_b64url_encode((const uint8_t *)claims, strlen(claims), &t));
    ASSERT_OK(mf_key_sign_jose(key, t.data, t.len, &sig));
    ASSERT_OK(mf_buf_append_u8(&t, '.'));
    ASSERT_OK(mf_b64url_encode(sig.data, sig.len, &t));
    char *s = strdup(mf_buf_cstr(&t));
    mf_buf_cleanup(&t);
    mf_buf_cleanup(&sig);
    return s;
}

#define HDR_OK    "{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"JWT\"}"
#define CLAIMS_OK "{\"sub\":\"" SUB "\",\"aud\":[\"svc\"],\"exp\":1800000300,\"iat\":1800000000}"

static mf_res check(struct fx *f, const char *token, const char *aud, int64_t now)
{
    struct mf_jwt j;
    mf_res r = mf_jwt_validate(token, strlen(token), &f->set, aud, now, &j);
    mf_jwt_cleanup(&j);
    return r;
}

static void expect(struct fx *f, const struct mf_key *key, const char *hdr, const char *claims,
                   enum mf_err want)
{
    char *t = make_token(key, hdr, claims);
    mf_res r = check(f, t, "svc", NOW);
    if (r.err != want) {
        fail_msg("hdr %s claims %s: got %s (%s), want %s", hdr, claims, mf_err_name(r.err),
                 mf_err_detail(), mf_err_name(want));
    }
    free(t);
}

/* ---- signing ------------------------------------------------------------------ */

static void test_mf_jwt_sign_then_validate_ok(void **state)
{
    struct fx *f = *state;
    const char *aud[] = {"svc", "other"};
    struct mf_jwt_claims_req req = {
        .sub = SUB, .aud = aud, .n_aud = 2, .iat = NOW, .exp = NOW + 300};
    struct mf_buf out;
    struct mf_jwt j;
    mf_buf_init(&out, MF_JWT_MAX, 0);
    ASSERT_OK(mf_jwt_sign(f->key, "k1", &req, &out));
    ASSERT_OK(mf_jwt_validate(mf_buf_cstr(&out), out.len, &f->set, "other", NOW + 1, &j));
    assert_string_equal(j.sub.str, SUB);
    assert_string_equal(j.alg, "ES256");
    assert_string_equal(j.kid, "k1");
    assert_int_equal(j.exp, NOW + 300);
    assert_int_equal(j.iat, NOW);
    assert_int_equal(j.n_aud, 2);
    assert_true(mf_jwt_aud_equal(&j, aud, 2));
    const char *swapped[] = {"other", "svc", "svc"};
    assert_true(mf_jwt_aud_equal(&j, swapped, 3));
    const char *fewer[] = {"svc"};
    assert_false(mf_jwt_aud_equal(&j, fewer, 1));
    assert_non_null(json_object_get(j.claims, "iat"));
    mf_jwt_cleanup(&j);
    mf_buf_cleanup(&out);
}

static void test_mf_jwt_sign_p384_is_es384_ok(void **state)
{
    struct fx *f = *state;
    const char *aud[] = {"svc"};
    struct mf_jwt_claims_req req = {
        .sub = SUB, .aud = aud, .n_aud = 1, .iat = NOW, .exp = NOW + 60, .iss = "mayfly"};
    struct mf_buf out;
    struct mf_jwt j;
    mf_buf_init(&out, MF_JWT_MAX, 0);
    ASSERT_OK(mf_jwt_sign(f->key384, "k384", &req, &out));
    ASSERT_OK(mf_jwt_validate(mf_buf_cstr(&out), out.len, &f->set, "svc", NOW, &j));
    assert_string_equal(j.alg, "ES384");
    assert_string_equal(json_string_value(json_object_get(j.claims, "iss")), "mayfly");
    mf_jwt_cleanup(&j);
    mf_buf_cleanup(&out);
}

static void test_mf_jwt_sign_bad_args_refused(void **state)
{
    struct fx *f = *state;
    const char *aud[] = {"svc"};
    const char *empty[] = {""};
    struct mf_buf out;
    mf_buf_init(&out, MF_JWT_MAX, 0);
    struct mf_jwt_claims_req req = {.sub = SUB, .aud = aud, .n_aud = 1, .iat = NOW, .exp = NOW};
    ASSERT_ERR(mf_jwt_sign(f->key, "k1", &req, &out), MF_ERR_USAGE_ARG); /* exp<=iat */
    req.exp = NOW + 1;
    ASSERT_ERR(mf_jwt_sign(f->key, "", &req, &out), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_jwt_sign(f->key, "k 1", &req, &out), MF_ERR_USAGE_ARG);
    req.n_aud = 0;
    ASSERT_ERR(mf_jwt_sign(f->key, "k1", &req, &out), MF_ERR_USAGE_ARG);
    req.aud = empty;
    req.n_aud = 1;
    ASSERT_ERR(mf_jwt_sign(f->key, "k1", &req, &out), MF_ERR_USAGE_ARG);
    req.aud = aud;
    req.sub = "spiffe://Example.org/app";
    assert_int_not_equal(mf_jwt_sign(f->key, "k1", &req, &out).err, MF_OK);
    assert_int_equal(out.len, 0); /* nothing half-written */
    mf_buf_cleanup(&out);
}

/* ---- C1: compact serialization, strict base64url, size -------------------------- */

static void test_mf_jwt_validate_shape_refused(void **state)
{
    struct fx *f = *state;
    char *t = make_token(f->key, HDR_OK, CLAIMS_OK);
    ASSERT_OK(check(f, t, "svc", NOW));
    char *dot2 = strrchr(t, '.');
    size_t n = strlen(t);
    char buf[4096];

    snprintf(buf, sizeof(buf), "%.*s", (int)(dot2 - t), t); /* two parts */
    ASSERT_ERR(check(f, buf, "svc", NOW), MF_ERR_PROTO);
    snprintf(buf, sizeof(buf), "%s.", t); /* four parts, last empty */
    ASSERT_ERR(check(f, buf, "svc", NOW), MF_ERR_PROTO);
    snprintf(buf, sizeof(buf), "%.*s.", (int)(dot2 - t), t); /* empty signature */
    ASSERT_ERR(check(f, buf, "svc", NOW), MF_ERR_PROTO);
    snprintf(buf, sizeof(buf), "%s=", t); /* padding */
    ASSERT_ERR(check(f, buf, "svc", NOW), MF_ERR_PROTO);
    snprintf(buf, sizeof(buf), " %s", t); /* whitespace */
    ASSERT_ERR(check(f, buf, "svc", NOW), MF_ERR_PROTO);
    snprintf(buf, sizeof(buf), "{\"payload\":\"x\",\"signatures\":[]}"); /* JWS JSON */
    ASSERT_ERR(check(f, buf, "svc", NOW), MF_ERR_PROTO);
    /* standard base64 characters in the signature */
    snprintf(buf, sizeof(buf), "%s", t);
    buf[n - 3] = '+';
    ASSERT_ERR(check(f, buf, "svc", NOW), MF_ERR_PROTO);
    /* an embedded NUL */
    struct mf_jwt j;
    memcpy(buf, t, n);
    buf[5] = '\0';
    ASSERT_ERR(mf_jwt_validate(buf, n, &f->set, "svc", NOW, &j), MF_ERR_PROTO);
    free(t);
}

static void test_mf_jwt_validate_size_cap_cap_plus_one(void **state)
{
    struct fx *f = *state;
    struct mf_jwt j;
    char *big = malloc(MF_JWT_MAX + 2);
    assert_non_null(big);
    memset(big, 'A', MF_JWT_MAX + 1);
    big[10] = '.';
    big[20] = '.';
    big[MF_JWT_MAX + 1] = '\0';
    ASSERT_ERR(mf_jwt_validate(big, MF_JWT_MAX + 1, &f->set, "svc", NOW, &j),
               MF_ERR_PROTO_TOO_LARGE);
    /* at the cap the size is fine; the header is what is wrong */
    ASSERT_ERR(mf_jwt_validate(big, MF_JWT_MAX, &f->set, "svc", NOW, &j), MF_ERR_PROTO);
    free(big);
}

/* ---- C2-C6: the header ------------------------------------------------------------ */

static void test_mf_jwt_validate_alg_allow_list(void **state)
{
    struct fx *f = *state;
    /* refused before anything else: even with an unknown member beside it */
    expect(f, f->key, "{\"alg\":\"none\",\"kid\":\"k1\"}", CLAIMS_OK, MF_ERR_PROTO);
    expect(f, f->key, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", CLAIMS_OK, MF_ERR_PROTO);
    expect(f, f->key, "{\"alg\":\"EdDSA\",\"kid\":\"k1\"}", CLAIMS_OK, MF_ERR_PROTO);
    expect(f, f->key, "{\"alg\":\"es256\",\"kid\":\"k1\"}", CLAIMS_OK, MF_ERR_PROTO);
    expect(f, f->key, "{\"alg\":256,\"kid\":\"k1\"}", CLAIMS_OK, MF_ERR_PROTO);
    expect(f, f->key, "{\"kid\":\"k1\"}", CLAIMS_OK, MF_ERR_PROTO);
    /* allowed by the spec, but no RSA or P-521 key can be in our bundles */
    expect(f, f->key, "{\"alg\":\"RS256\",\"kid\":\"k1\"}", CLAIMS_OK, MF_ERR_AUTH_UNTRUSTED);
    expect(f, f->key, "{\"alg\":\"ES512\",\"kid\":\"k1\"}", CLAIMS_OK, MF_ERR_AUTH_UNTRUSTED);
    /* C4: ES384 names a P-256 key */
    expect(f, f->key, "{\"alg\":\"ES384\",\"kid\":\"k1\"}", CLAIMS_OK, MF_ERR_AUTH_UNTRUSTED);
}

static void test_mf_jwt_validate_header_members(void **state)
{
    struct fx *f = *state;
    expect(f, f->key, "{\"alg\":\"ES256\",\"kid\":\"k1\",\"crit\":[\"exp\"]}", CLAIMS_OK,
           MF_ERR_PROTO);
    expect(f, f->key, "{\"alg\":\"ES256\",\"kid\":\"k1\",\"jku\":\"https://x\"}", CLAIMS_OK,
           MF_ERR_PROTO);
    expect(f, f->key, "{\"alg\":\"ES256\",\"alg\":\"ES256\",\"kid\":\"k1\"}", CLAIMS_OK,
           MF_ERR_PROTO); /* duplicate member */
    expect(f, f->key, "[\"ES256\"]", CLAIMS_OK, MF_ERR_PROTO);
    /* C6: typ */
    expect(f, f->key, "{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"JOSE\"}", CLAIMS_OK, MF_OK);
    expect(f, f->key, "{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"jwt\"}", CLAIMS_OK,
           MF_ERR_PROTO);
    expect(f, f->key, "{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":1}", CLAIMS_OK, MF_ERR_PROTO);
    /* kid */
    expect(f, f->key, "{\"alg\":\"ES256\",\"kid\":\"\"}", CLAIMS_OK, MF_ERR_PROTO);
    expect(f, f->key, "{\"alg\":\"ES256\",\"kid\":7}", CLAIMS_OK, MF_ERR_PROTO);
    expect(f, f->key, "{\"alg\":\"ES256\",\"kid\":\"k2\"}", CLAIMS_OK, MF_ERR_AUTH_UNTRUSTED);
}

static void test_mf_jwt_validate_no_kid_tries_every_key(void **state)
{
    struct fx *f = *state;
    /* C5: accepted by trying each jwt-svid key of sub's trust domain */
    expect(f, f->key, "{\"alg\":\"ES256\"}", CLAIMS_OK, MF_OK);
    expect(f, f->key384, "{\"alg\":\"ES384\"}", CLAIMS_OK, MF_OK);
    expect(f, f->stranger, "{\"alg\":\"ES256\"}", CLAIMS_OK, MF_ERR_CRYPTO_SIG);
}

/* ---- C7-C11: claims ----------------------------------------------------------------- */

static void test_mf_jwt_validate_sub(void **state)
{
    struct fx *f = *state;
    expect(f, f->key, HDR_OK, "{\"aud\":\"svc\",\"exp\":1800000300}", MF_ERR_PROTO);
    expect(f, f->key, HDR_OK,
           "{\"sub\":\"spiffe://example.org/a/../b\",\"aud\":\"svc\","
           "\"exp\":1800000300}",
           MF_ERR_PROTO);
    expect(f, f->key, HDR_OK,
           "{\"sub\":\"https://example.org/a\",\"aud\":\"svc\","
           "\"exp\":1800000300}",
           MF_ERR_PROTO);
    expect(f, f->key, HDR_OK, "{\"sub\":42,\"aud\":\"svc\",\"exp\":1800000300}", MF_ERR_PROTO);
    /* C10: the key comes from sub's trust domain, and there is no such bundle */
    expect(f, f->key, HDR_OK,
           "{\"sub\":\"spiffe://other.org/a\",\"aud\":\"svc\","
           "\"exp\":1800000300}",
           MF_ERR_AUTH_UNTRUSTED);
}

static void test_mf_jwt_validate_aud(void **state)
{
    struct fx *f = *state;
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":1800000300}", MF_OK);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":[\"a\",\"svc\"],\"exp\":1800000300}",
           MF_OK);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"exp\":1800000300}", MF_ERR_PROTO);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":[],\"exp\":1800000300}", MF_ERR_PROTO);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":[\"svc\",1],\"exp\":1800000300}",
           MF_ERR_PROTO);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":{\"svc\":1},\"exp\":1800000300}",
           MF_ERR_PROTO);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":\"other\",\"exp\":1800000300}",
           MF_ERR_POLICY_DENIED);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":\"svcx\",\"exp\":1800000300}",
           MF_ERR_POLICY_DENIED);
    expect(f, f->key, HDR_OK,
           "{\"sub\":\"" SUB "\",\"aud\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\","
           "\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"svc\"],\"exp\":1800000300}",
           MF_ERR_PROTO); /* more than MF_JWT_AUD_MAX */
    char *t = make_token(f->key, HDR_OK, CLAIMS_OK);
    struct mf_jwt j;
    ASSERT_ERR(mf_jwt_validate(t, strlen(t), &f->set, "", NOW, &j), MF_ERR_USAGE_ARG);
    free(t);
}

static void test_mf_jwt_validate_exp_nbf_leeway(void **state)
{
    struct fx *f = *state;
    char *t = make_token(f->key, HDR_OK, CLAIMS_OK); /* exp NOW + 300 */
    ASSERT_OK(check(f, t, "svc", NOW + 300));
    ASSERT_OK(check(f, t, "svc", NOW + 300 + MF_JWT_LEEWAY - 1));
    ASSERT_ERR(check(f, t, "svc", NOW + 300 + MF_JWT_LEEWAY), MF_ERR_AUTH_EXPIRED);
    ASSERT_ERR(check(f, t, "svc", NOW + 3600), MF_ERR_AUTH_EXPIRED);
    free(t);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":\"svc\"}", MF_ERR_PROTO);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":\"soon\"}",
           MF_ERR_PROTO);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":true}", MF_ERR_PROTO);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":1800000300.5}", MF_OK);
    expect(f, f->key, HDR_OK, "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":1e300}", MF_ERR_PROTO);
    /* nbf in the future, beyond and within the leeway */
    expect(f, f->key, HDR_OK,
           "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":1800000300,\"nbf\":1800000100}",
           MF_ERR_AUTH_EXPIRED);
    expect(f, f->key, HDR_OK,
           "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":1800000300,\"nbf\":1800000010}", MF_OK);
    expect(f, f->key, HDR_OK,
           "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":1800000300,\"iat\":\"x\"}", MF_ERR_PROTO);
    /* C12: other claims are fine; duplicates are not */
    expect(f, f->key, HDR_OK,
           "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":1800000300,\"jti\":\"1\",\"x\":{}}",
           MF_OK);
    expect(f, f->key, HDR_OK,
           "{\"sub\":\"" SUB "\",\"aud\":\"svc\",\"exp\":1800000300,\"exp\":1900000000}",
           MF_ERR_PROTO);
}

/* ---- signature ------------------------------------------------------------------------- */

static void test_mf_jwt_validate_signature(void **state)
{
    struct fx *f = *state;
    expect(f, f->stranger, HDR_OK, CLAIMS_OK, MF_ERR_CRYPTO_SIG);
    char *t = make_token(f->key, HDR_OK, CLAIMS_OK);
    size_t n = strlen(t);
    char *bad = strdup(t);
    bad[n - 10] = bad[n - 10] == 'A' ? 'B' : 'A'; /* a signature byte */
    ASSERT_ERR(check(f, bad, "svc", NOW), MF_ERR_CRYPTO_SIG);
    /* the claims changed after signing (exp moved): the signature fails
     * before the time is even looked at */
    char *d1 = strchr(t, '.');
    struct mf_buf forged;
    mf_buf_init(&forged, 8192, 0);
    ASSERT_OK(mf_buf_append(&forged, t, (size_t)(d1 + 1 - t)));
    const char *c2 = "{\"sub\":\"" SUB "\",\"aud\":[\"svc\"],\"exp\":1900000000}";
    ASSERT_OK(mf_b64url_encode((const uint8_t *)c2, strlen(c2), &forged));
    ASSERT_OK(mf_buf_append_str(&forged, strrchr(t, '.')));
    ASSERT_ERR(check(f, mf_buf_cstr(&forged), "svc", NOW), MF_ERR_CRYPTO_SIG);
    /* a signature one byte short (84 characters: whole base64 groups) */
    bad[n - 2] = '\0';
    ASSERT_ERR(check(f, bad, "svc", NOW), MF_ERR_CRYPTO_SIG);
    mf_buf_cleanup(&forged);
    free(bad);
    free(t);
}

static void test_mf_jwt_validate_empty_set_untrusted(void **state)
{
    (void)state;
    struct mf_key *k = NULL;
    struct mf_bundle_set empty;
    struct mf_jwt j;
    mf_bundle_set_init(&empty);
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &k));
    char *t = make_token(k, HDR_OK, CLAIMS_OK);
    ASSERT_ERR(mf_jwt_validate(t, strlen(t), &empty, "svc", NOW, &j), MF_ERR_AUTH_UNTRUSTED);
    ASSERT_ERR(mf_jwt_validate(t, strlen(t), NULL, "svc", NOW, &j), MF_ERR_AUTH_UNTRUSTED);
    free(t);
    mf_key_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_jwt_sign_then_validate_ok),
        cmocka_unit_test(test_mf_jwt_sign_p384_is_es384_ok),
        cmocka_unit_test(test_mf_jwt_sign_bad_args_refused),
        cmocka_unit_test(test_mf_jwt_validate_shape_refused),
        cmocka_unit_test(test_mf_jwt_validate_size_cap_cap_plus_one),
        cmocka_unit_test(test_mf_jwt_validate_alg_allow_list),
        cmocka_unit_test(test_mf_jwt_validate_header_members),
        cmocka_unit_test(test_mf_jwt_validate_no_kid_tries_every_key),
        cmocka_unit_test(test_mf_jwt_validate_sub),
        cmocka_unit_test(test_mf_jwt_validate_aud),
        cmocka_unit_test(test_mf_jwt_validate_exp_nbf_leeway),
        cmocka_unit_test(test_mf_jwt_validate_signature),
        cmocka_unit_test(test_mf_jwt_validate_empty_set_untrusted),
    };
    return cmocka_run_group_tests_name("mf_jwt", tests, setup, teardown);
}
