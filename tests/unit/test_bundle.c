/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_bundle: bundle objects, the SPIFFE JWKS form (one test
 * or more per rule D1-D15 of SPIFFE.md), PEM, the plain JWT JWKS, bundle
 * sets and maps, and mf_svid_verify's choice of trust domain (B23).
 *
 * The certificates are made once per run by the group setup: two CAs for
 * example.org, one for other.org, a leaf in each trust domain, and two JWT
 * signing keys. JWKS texts are assembled from their real base64 values so
 * that every case differs from a valid bundle in exactly one way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/core/mf_json.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "mf_test.h"

#define TD       "example.org"
#define OTHER_TD "other.org"
#define TTL      3600

/* ---- fixture -------------------------------------------------------------- */

struct enc_key {
    char *x; /* base64url */
    char *y;
    const char *crv;
};

static struct {
    int64_t now;
    struct mf_key *ca_key, *ca2_key, *other_key, *leaf_key, *j1_key, *j2_key;
    struct mf_cert *ca, *ca2, *other_ca, *leaf, *other_leaf;
    struct mf_pubkey *j1, *j2, *leaf_pub;
    char *ca_b64, *ca2_b64; /* standard base64 DER */
    struct enc_key ca_ek, ca2_ek, j1_ek, j2_ek;
} F;

static char *buf_dup(const struct mf_buf *b)
{
    char *s = strdup(mf_buf_cstr(b));
    assert_non_null(s);
    return s;
}

/* A malloc'd string built from a literal format. */
static char *textf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *textf(const char *fmt, ...)
{
    struct mf_buf b;
    mf_buf_init(&b, 4 * MF_MAX_BUNDLE, 0);
    va_list ap;
    va_start(ap, fmt);
    mf_res r = mf_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    ASSERT_OK(r);
    char *s = buf_dup(&b);
    mf_buf_cleanup(&b);
    return s;
}

static void encode_key(const struct mf_pubkey *pk, struct enc_key *ek)
{
    uint8_t x[48];
    uint8_t y[48];
    size_t n = 0;
    ASSERT_OK(mf_pubkey_ec_coords(pk, &ek->crv, x, y, &n));
    struct mf_buf b;
    mf_buf_init(&b, 256, 0);
    ASSERT_OK(mf_b64url_encode(x, n, &b));
    ek->x = buf_dup(&b);
    mf_buf_reset(&b);
    ASSERT_OK(mf_b64url_encode(y, n, &b));
    ek->y = buf_dup(&b);
    mf_buf_cleanup(&b);
}

static char *cert_b64(const struct mf_cert *c)
{
    size_t len = 0;
    const uint8_t *der = mf_cert_der(c, &len);
    struct mf_buf b;
    mf_buf_init(&b, 64 * 1024, 0);
    ASSERT_OK(mf_b64_encode(der, len, &b));
    char *s = buf_dup(&b);
    mf_buf_cleanup(&b);
    return s;
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    F.now = (int64_t)time(NULL);
    F.ca = mft_ca_cert("spiffe://" TD, F.now, TTL, &F.ca_key);
    F.ca2 = mft_ca_cert("spiffe://" TD, F.now, TTL, &F.ca2_key);
    F.other_ca = mft_ca_cert("spiffe://" OTHER_TD, F.now, TTL, &F.other_key);
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &F.leaf_key));
    ASSERT_OK(mf_key_public(F.leaf_key, &F.leaf_pub));
    F.leaf =
        mft_issue(F.ca, F.ca_key, "spiffe://" TD "/workload", F.leaf_pub, F.now, TTL / 2, false);
    F.other_leaf = mft_issue(F.other_ca, F.other_key, "spiffe://" OTHER_TD "/workload", F.leaf_pub,
                             F.now, TTL / 2, false);
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &F.j1_key));
    ASSERT_OK(mf_key_public(F.j1_key, &F.j1));
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P384, &F.j2_key));
    ASSERT_OK(mf_key_public(F.j2_key, &F.j2));
    F.ca_b64 = cert_b64(F.ca);
    F.ca2_b64 = cert_b64(F.ca2);
    encode_key(mf_cert_pubkey(F.ca), &F.ca_ek);
    encode_key(mf_cert_pubkey(F.ca2), &F.ca2_ek);
    encode_key(F.j1, &F.j1_ek);
    encode_key(F.j2, &F.j2_ek);
    return 0;
}

static void free_ek(struct enc_key *ek)
{
    free(ek->x);
    free(ek->y);
}

static int teardown(void **state)
{
    (void)state;
    mf_cert_free(F.ca);
    mf_cert_free(F.ca2);
    mf_cert_free(F.other_ca);
    mf_cert_free(F.leaf);
    mf_cert_free(F.other_leaf);
    mf_key_free(F.ca_key);
    mf_key_free(F.ca2_key);
    mf_key_free(F.other_key);
    mf_key_free(F.leaf_key);
    mf_key_free(F.j1_key);
    mf_key_free(F.j2_key);
    mf_pubkey_free(F.j1);
    mf_pubkey_free(F.j2);
    mf_pubkey_free(F.leaf_pub);
    free(F.ca_b64);
    free(F.ca2_b64);
    free_ek(&F.ca_ek);
    free_ek(&F.ca2_ek);
    free_ek(&F.j1_ek);
    free_ek(&F.j2_ek);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static struct mf_pubkey *dup_pub(const struct mf_pubkey *pk)
{
    struct mf_buf der;
    mf_buf_init(&der, 4096, 0);
    ASSERT_OK(mf_pubkey_to_der(pk, &der));
    struct mf_pubkey *out = NULL;
    ASSERT_OK(mf_pubkey_from_der(der.data, der.len, &out));
    mf_buf_cleanup(&der);
    return out;
}

/* example.org with ca, ca2, k1 (P-256), k2 (P-384), sequence 7, hint 300 */
static struct mf_bundle *full_bundle(void)
{
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_new(TD, &b));
    ASSERT_OK(mf_bundle_add_x509(b, F.ca));
    ASSERT_OK(mf_bundle_add_x509(b, F.ca2));
    ASSERT_OK(mf_bundle_add_jwt(b, "k1", dup_pub(F.j1)));
    ASSERT_OK(mf_bundle_add_jwt(b, "k2", dup_pub(F.j2)));
    b->sequence = 7;
    b->refresh_hint = 300;
    return b;
}

static struct mf_bundle *bundle_with(const char *td, struct mf_cert *ca)
{
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_new(td, &b));
    if (ca != NULL) {
        ASSERT_OK(mf_bundle_add_x509(b, ca));
    }
    return b;
}

/* the x509-svid JWK of ca, with extra members (",\"k\":v") appended */
static char *x509_key(const char *extra)
{
    return textf("{\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\","
                 "\"x5c\":[\"%s\"]%s}",
                 F.ca_ek.crv, F.ca_ek.x, F.ca_ek.y, F.ca_b64, extra);
}

/* the jwt-svid JWK of k1 with the given kid member text (may be "") */
static char *jwt_key(const char *kid_member, const char *extra)
{
    return textf(
        "{\"use\":\"jwt-svid\",\"kty\":\"EC\"%s,\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}",
        kid_member, F.j1_ek.crv, F.j1_ek.x, F.j1_ek.y, extra);
}

static mf_res decode(const char *text, struct mf_bundle **out)
{
    return mf_bundle_from_jwks(TD, text, strlen(text), out);
}

/* Decodes {"keys":[key]} and checks the result has nx509/njwt keys. */
static void expect_counts(const char *key, size_t nx509, size_t njwt)
{
    char *text = textf("{\"keys\":[%s]}", key);
    struct mf_bundle *b = NULL;
    mf_res r = decode(text, &b);
    if (!mf_ok(r)) {
        print_error("unexpected refusal: %s: %s\n", mf_err_name(r.err), mf_err_detail());
    }
    ASSERT_OK(r);
    assert_int_equal(b->x509.n, nx509);
    assert_int_equal(b->n_jwt, njwt);
    mf_bundle_free(b);
    free(text);
}

/* Decodes {"keys":[key]} and expects error e. */
static void expect_refused(const char *key, enum mf_err e)
{
    char *text = textf("{\"keys\":[%s]}", key);
    struct mf_bundle *b = (struct mf_bundle *)&F; /* poison: must be cleared */
    mf_res r = decode(text, &b);
    if (r.err != e) {
        print_error("expected %s, got %s: %s\n", mf_err_name(e), mf_err_name(r.err),
                    mf_err_detail());
    }
    assert_int_equal(r.err, e);
    assert_null(b);
    free(text);
}

static void expect_top_refused(const char *text, enum mf_err e)
{
    struct mf_bundle *b = NULL;
    mf_res r = decode(text, &b);
    assert_int_equal(r.err, e);
    assert_null(b);
}

/* The member names of a JSON object, sorted and comma-joined, into out. */
static void member_names(const json_t *obj, char *out, size_t cap)
{
    const char *names[32];
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)(uintptr_t)obj, k, v)
    {
        (void)v;
        assert_true(n < 32);
        names[n++] = k;
    }
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    }
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, cap - used, "%s%s", i ? "," : "", names[i]);
        assert_true(w > 0 && (size_t)w < cap - used);
        used += (size_t)w;
    }
}

static json_t *parse_buf(const struct mf_buf *b)
{
    json_t *v = NULL;
    ASSERT_OK(mf_json_parse((const char *)b->data, b->len, MF_MAX_BUNDLE, &v));
    return v;
}

/* ---- bundle objects ---------------------------------------------------------- */

static void test_mf_bundle_new_td_forms_ok(void **state)
{
    (void)state;
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_new("spiffe://example.org", &b));
    assert_string_equal(b->td, TD); /* D1: the bundle knows its trust domain */
    assert_int_equal(b->refs, 1);
    assert_int_equal(b->x509.n, 0);
    assert_int_equal(b->n_jwt, 0);
    mf_bundle_free(b);
}

static void test_mf_bundle_new_bad_td_refused(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "Example.org",
                         "spiffe://example.org/",
                         "spiffe://example.org/path",
                         "exa mple.org",
                         "https://example.org"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mf_bundle *b = (struct mf_bundle *)&F;
        assert_false(mf_ok(mf_bundle_new(bad[i], &b)));
        assert_null(b);
    }
    struct mf_bundle *b = NULL;
    ASSERT_ERR(mf_bundle_new(NULL, &b), MF_ERR_USAGE_NULL);
}

static void test_mf_bundle_ref_free_counts(void **state)
{
    (void)state;
    struct mf_bundle *b = full_bundle();
    assert_ptr_equal(mf_bundle_ref(b), b);
    assert_int_equal(b->refs, 2);
    mf_bundle_free(b);
    assert_int_equal(b->refs, 1);
    mf_bundle_free(b);
    mf_bundle_free(NULL);
    assert_null(mf_bundle_ref(NULL));
}

static void test_mf_bundle_add_x509_duplicate_ignored(void **state)
{
    (void)state;
    struct mf_bundle *b = bundle_with(TD, F.ca);
    ASSERT_OK(mf_bundle_add_x509(b, F.ca));
    assert_int_equal(b->x509.n, 1);
    ASSERT_OK(mf_bundle_add_x509(b, F.ca2));
    assert_int_equal(b->x509.n, 2);
    mf_bundle_free(b);
}

static void test_mf_bundle_add_x509_cap_plus_one_refused(void **state)
{
    (void)state;
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_new(TD, &b));
    for (int i = 0; i < MF_BUNDLE_KEYS_MAX; i++) {
        struct mf_cert *c =
            mft_issue(F.ca, F.ca_key, "spiffe://" TD, F.leaf_pub, F.now, TTL / 2, true);
        ASSERT_OK(mf_bundle_add_x509(b, c));
        mf_cert_free(c);
    }
    assert_int_equal(b->x509.n, MF_BUNDLE_KEYS_MAX);
    struct mf_cert *c = mft_issue(F.ca, F.ca_key, "spiffe://" TD, F.leaf_pub, F.now, TTL / 2, true);
    ASSERT_ERR(mf_bundle_add_x509(b, c), MF_ERR_PROTO_TOO_LARGE);
    assert_int_equal(b->x509.n, MF_BUNDLE_KEYS_MAX);

    /* the same 65 certificates as a JWKS are refused too */
    struct mf_buf jwks;
    mf_buf_init(&jwks, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_to_jwks(b, &jwks));
    struct mf_bundle *ok = NULL;
    ASSERT_OK(mf_bundle_from_jwks(TD, (const char *)jwks.data, jwks.len, &ok));
    assert_int_equal(ok->x509.n, MF_BUNDLE_KEYS_MAX);
    mf_bundle_free(ok);
    char *b64 = cert_b64(c);
    struct enc_key ek;
    encode_key(mf_cert_pubkey(c), &ek);
    char *extra = textf(",{\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\","
                        "\"y\":\"%s\",\"x5c\":[\"%s\"]}]}",
                        ek.crv, ek.x, ek.y, b64);
    /* splice the 65th key in before the closing "]}" of "keys" */
    char *last = strrchr((const char *)jwks.data, ']');
    size_t head = (size_t)(last - (const char *)jwks.data);
    char *text = textf("%.*s%s", (int)head, (const char *)jwks.data, extra);
    struct mf_bundle *big = NULL;
    ASSERT_ERR(mf_bundle_from_jwks(TD, text, strlen(text), &big), MF_ERR_PROTO_TOO_LARGE);
    assert_null(big);
    free(text);
    free(extra);
    free(b64);
    free_ek(&ek);
    mf_buf_cleanup(&jwks);
    mf_cert_free(c);
    mf_bundle_free(b);
}

static void test_mf_bundle_add_jwt_duplicate_and_bad_kid_refused(void **state)
{
    (void)state;
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_new(TD, &b));
    ASSERT_OK(mf_bundle_add_jwt(b, "k1", dup_pub(F.j1)));
    /* D12: kid unique; the refused key is freed (ASan checks for a leak) */
    ASSERT_ERR(mf_bundle_add_jwt(b, "k1", dup_pub(F.j2)), MF_ERR_POLICY_DUPLICATE);
    ASSERT_ERR(mf_bundle_add_jwt(b, "", dup_pub(F.j2)), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_bundle_add_jwt(b, "bad\nkid", dup_pub(F.j2)), MF_ERR_USAGE_ARG);
    char kid[MF_KID_MAX + 2];
    memset(kid, 'a', sizeof(kid));
    kid[MF_KID_MAX + 1] = '\0';
    ASSERT_ERR(mf_bundle_add_jwt(b, kid, dup_pub(F.j2)), MF_ERR_USAGE_ARG);
    kid[MF_KID_MAX] = '\0';
    ASSERT_OK(mf_bundle_add_jwt(b, kid, dup_pub(F.j2)));
    ASSERT_ERR(mf_bundle_add_jwt(b, NULL, dup_pub(F.j2)), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_bundle_add_jwt(b, "k9", NULL), MF_ERR_USAGE_NULL);
    assert_int_equal(b->n_jwt, 2);
    mf_bundle_free(b);
}

static void test_mf_bundle_add_jwt_cap_plus_one_refused(void **state)
{
    (void)state;
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_new(TD, &b));
    char kid[16];
    for (int i = 0; i < MF_BUNDLE_KEYS_MAX; i++) {
        snprintf(kid, sizeof(kid), "k%d", i);
        ASSERT_OK(mf_bundle_add_jwt(b, kid, dup_pub(F.j1)));
    }
    ASSERT_ERR(mf_bundle_add_jwt(b, "one-more", dup_pub(F.j1)), MF_ERR_PROTO_TOO_LARGE);
    assert_int_equal(b->n_jwt, MF_BUNDLE_KEYS_MAX);

    /* and a JWKS carrying 65 JWT keys is refused */
    struct mf_buf t;
    mf_buf_init(&t, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_buf_append_str(&t, "{\"keys\":["));
    for (int i = 0; i <= MF_BUNDLE_KEYS_MAX; i++) {
        char member[32];
        snprintf(member, sizeof(member), ",\"kid\":\"k%d\"", i);
        char *k = jwt_key(member, "");
        ASSERT_OK(mf_buf_printf(&t, "%s%s", i ? "," : "", k));
        free(k);
    }
    ASSERT_OK(mf_buf_append_str(&t, "]}"));
    struct mf_bundle *big = NULL;
    ASSERT_ERR(mf_bundle_from_jwks(TD, (const char *)t.data, t.len, &big), MF_ERR_PROTO_TOO_LARGE);
    mf_buf_cleanup(&t);
    mf_bundle_free(b);
}

static void test_mf_bundle_copy_is_deep(void **state)
{
    (void)state;
    struct mf_bundle *a = full_bundle();
    struct mf_bundle *c = NULL;
    ASSERT_OK(mf_bundle_copy(a, &c));
    assert_ptr_not_equal(a, c);
    assert_int_equal(c->refs, 1);
    assert_string_equal(c->td, TD);
    assert_true(mf_bundle_same_keys(a, c));
    assert_int_equal(c->sequence, 7);
    assert_int_equal(c->refresh_hint, 300);
    assert_true(c->jwt[0].key != a->jwt[0].key);
    ASSERT_OK(mf_bundle_add_jwt(c, "k3", dup_pub(F.j1)));
    assert_int_equal(a->n_jwt, 2);
    assert_false(mf_bundle_same_keys(a, c));
    mf_bundle_free(a);
    mf_bundle_free(c);
}

static void test_mf_bundle_same_keys_order_free(void **state)
{
    (void)state;
    struct mf_bundle *a = full_bundle();
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_new(TD, &b));
    ASSERT_OK(mf_bundle_add_jwt(b, "k2", dup_pub(F.j2)));
    ASSERT_OK(mf_bundle_add_x509(b, F.ca2));
    ASSERT_OK(mf_bundle_add_jwt(b, "k1", dup_pub(F.j1)));
    ASSERT_OK(mf_bundle_add_x509(b, F.ca));
    assert_true(mf_bundle_same_keys(a, b)); /* sequence and hint differ: ignored */
    struct mf_bundle *c = NULL;
    ASSERT_OK(mf_bundle_new(TD, &c));
    ASSERT_OK(mf_bundle_add_x509(c, F.ca));
    ASSERT_OK(mf_bundle_add_x509(c, F.ca2));
    ASSERT_OK(mf_bundle_add_jwt(c, "k1", dup_pub(F.j2))); /* same kid, other key */
    ASSERT_OK(mf_bundle_add_jwt(c, "k2", dup_pub(F.j1)));
    assert_false(mf_bundle_same_keys(a, c));
    assert_false(mf_bundle_same_keys(a, NULL));
    assert_true(mf_bundle_same_keys(NULL, NULL));
    mf_bundle_free(a);
    mf_bundle_free(b);
    mf_bundle_free(c);
}

/* ---- SPIFFE JWKS: round trip and the shape we publish ------------------------ */

static void test_mf_bundle_jwks_round_trip_ok(void **state)
{
    (void)state;
    struct mf_bundle *a = full_bundle();
    struct mf_buf out;
    mf_buf_init(&out, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_to_jwks(a, &out));
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_from_jwks(TD, (const char *)out.data, out.len, &b));
    assert_true(mf_bundle_same_keys(a, b));
    assert_int_equal(b->sequence, 7);
    assert_int_equal(b->refresh_hint, 300);
    /* a second encoding is byte-identical */
    struct mf_buf again;
    mf_buf_init(&again, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_to_jwks(b, &again));
    assert_string_equal(mf_buf_cstr(&out), mf_buf_cstr(&again));
    mf_buf_cleanup(&again);
    mf_buf_cleanup(&out);
    mf_bundle_free(a);
    mf_bundle_free(b);
}

/* D8, D9, D11, B31: exactly the members the specs define */
static void test_mf_bundle_to_jwks_shape_ok(void **state)
{
    (void)state;
    struct mf_bundle *a = full_bundle();
    struct mf_buf out;
    mf_buf_init(&out, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_to_jwks(a, &out));
    json_t *v = parse_buf(&out);
    char names[256];
    member_names(v, names, sizeof(names));
    assert_string_equal(names, "keys,spiffe_refresh_hint,spiffe_sequence");
    assert_int_equal(json_integer_value(json_object_get(v, "spiffe_sequence")), 7);
    assert_int_equal(json_integer_value(json_object_get(v, "spiffe_refresh_hint")), 300);
    json_t *keys = json_object_get(v, "keys");
    assert_int_equal(json_array_size(keys), 4);

    const char *b64[] = {F.ca_b64, F.ca2_b64};
    const struct enc_key *ek[] = {&F.ca_ek, &F.ca2_ek};
    for (size_t i = 0; i < 2; i++) {
        json_t *k = json_array_get(keys, i);
        member_names(k, names, sizeof(names));
        assert_string_equal(names, "crv,kty,use,x,x5c,y"); /* no kid */
        assert_string_equal(json_string_value(json_object_get(k, "use")), "x509-svid");
        assert_string_equal(json_string_value(json_object_get(k, "kty")), "EC");
        assert_string_equal(json_string_value(json_object_get(k, "crv")), "P-256");
        /* the key members describe the certificate's key */
        assert_string_equal(json_string_value(json_object_get(k, "x")), ek[i]->x);
        assert_string_equal(json_string_value(json_object_get(k, "y")), ek[i]->y);
        json_t *x5c = json_object_get(k, "x5c");
        assert_int_equal(json_array_size(x5c), 1);
        /* standard base64, padded, not url-safe */
        assert_string_equal(json_string_value(json_array_get(x5c, 0)), b64[i]);
    }
    const char *kids[] = {"k1", "k2"};
    const char *crvs[] = {"P-256", "P-384"};
    const struct enc_key *jk[] = {&F.j1_ek, &F.j2_ek};
    for (size_t i = 0; i < 2; i++) {
        json_t *k = json_array_get(keys, 2 + i);
        member_names(k, names, sizeof(names));
        assert_string_equal(names, "crv,kid,kty,use,x,y");
        assert_string_equal(json_string_value(json_object_get(k, "use")), "jwt-svid");
        assert_string_equal(json_string_value(json_object_get(k, "kid")), kids[i]);
        assert_string_equal(json_string_value(json_object_get(k, "crv")), crvs[i]);
        /* base64url without padding */
        const char *x = json_string_value(json_object_get(k, "x"));
        assert_string_equal(x, jk[i]->x);
        assert_null(strpbrk(x, "+/="));
    }
    json_decref(v);
    mf_buf_cleanup(&out);
    mf_bundle_free(a);
}

static void test_mf_bundle_to_jwks_unset_members_omitted(void **state)
{
    (void)state;
    struct mf_bundle *a = NULL;
    ASSERT_OK(mf_bundle_new(TD, &a));
    struct mf_buf out;
    mf_buf_init(&out, 1024, 0);
    ASSERT_OK(mf_bundle_to_jwks(a, &out));
    assert_string_equal(mf_buf_cstr(&out), "{\"keys\":[]}");
    /* a sequence jansson cannot carry is refused, not wrapped */
    a->sequence = (uint64_t)INT64_MAX + 1;
    mf_buf_reset(&out);
    ASSERT_ERR(mf_bundle_to_jwks(a, &out), MF_ERR_USAGE_ARG);
    assert_int_equal(out.len, 0);
    a->sequence = (uint64_t)INT64_MAX;
    ASSERT_OK(mf_bundle_to_jwks(a, &out));
    assert_non_null(strstr(mf_buf_cstr(&out), "9223372036854775807"));
    mf_buf_cleanup(&out);
    mf_bundle_free(a);
}

/* The minimal example of SPIFFE.md section D, with real values filled in. */
static void test_mf_bundle_from_jwks_spec_example_ok(void **state)
{
    (void)state;
    char *text = textf("{\"spiffe_sequence\": 2, \"spiffe_refresh_hint\": 300,\n"
                       " \"keys\": [\n"
                       "  {\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\","
                       "\"y\":\"%s\",\"x5c\":[\"%s\"]},\n"
                       "  {\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"P-256\","
                       "\"x\":\"%s\",\"y\":\"%s\"}]}",
                       F.ca_ek.x, F.ca_ek.y, F.ca_b64, F.j1_ek.x, F.j1_ek.y);
    struct mf_bundle *b = NULL;
    ASSERT_OK(decode(text, &b));
    assert_string_equal(b->td, TD);
    assert_int_equal(b->sequence, 2);
    assert_int_equal(b->refresh_hint, 300);
    assert_int_equal(b->x509.n, 1);
    size_t l1 = 0;
    size_t l2 = 0;
    const uint8_t *d1 = mf_cert_der(b->x509.v[0], &l1);
    const uint8_t *d2 = mf_cert_der(F.ca, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(d1, d2, l1);
    assert_int_equal(b->n_jwt, 1);
    assert_string_equal(b->jwt[0].kid, "k1");
    assert_true(mf_pubkey_eq(b->jwt[0].key, F.j1));
    mf_bundle_free(b);
    free(text);
}

/* ---- D1 ------------------------------------------------------------------------ */

static void test_mf_bundle_from_jwks_d1_td_pair(void **state)
{
    (void)state;
    const char text[] = "{\"keys\":[]}";
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_from_jwks("spiffe://other.org", text, strlen(text), &b));
    assert_string_equal(b->td, OTHER_TD);
    mf_bundle_free(b);
    assert_false(mf_ok(mf_bundle_from_jwks("Other.org", text, strlen(text), &b)));
    assert_null(b);
    ASSERT_ERR(mf_bundle_from_jwks(NULL, text, strlen(text), &b), MF_ERR_USAGE_NULL);
    ASSERT_ERR(mf_bundle_from_jwks(TD, NULL, 0, &b), MF_ERR_USAGE_NULL);
}

/* ---- D2 ------------------------------------------------------------------------ */

static void test_mf_bundle_from_jwks_d2_keys_required(void **state)
{
    (void)state;
    expect_top_refused("{}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":null}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":{}}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":\"x\"}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":[1]}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":[[]]}", MF_ERR_PROTO_JSON);
    expect_top_refused("[]", MF_ERR_PROTO_JSON);
    expect_top_refused("", MF_ERR_PROTO_JSON);
}

static void test_mf_bundle_from_jwks_d2_empty_keys_trusts_nothing(void **state)
{
    (void)state;
    struct mf_bundle *b = NULL;
    ASSERT_OK(decode("{\"keys\":[],\"spiffe_sequence\":3}", &b));
    assert_int_equal(b->x509.n, 0);
    assert_int_equal(b->n_jwt, 0);
    assert_int_equal(b->sequence, 3);
    struct mf_bundle_set set;
    mf_bundle_set_init(&set);
    ASSERT_OK(mf_bundle_set_put(&set, b));
    struct mf_certs chain;
    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, F.leaf));
    ASSERT_ERR(mf_svid_verify(&chain, &set, F.now, NULL), MF_ERR_AUTH_UNTRUSTED);
    mf_bundle_free(b);

    /* no key survives filtering: the same */
    ASSERT_OK(decode("{\"keys\":[{\"use\":\"wit-svid\",\"kty\":\"EC\"}]}", &b));
    assert_int_equal(b->x509.n + b->n_jwt, 0);
    ASSERT_OK(mf_bundle_set_put(&set, b));
    ASSERT_ERR(mf_svid_verify(&chain, &set, F.now, NULL), MF_ERR_AUTH_UNTRUSTED);
    mf_bundle_free(b);
    mf_certs_cleanup(&chain);
    mf_bundle_set_cleanup(&set);
}

/* ---- D3, D4 ---------------------------------------------------------------------- */

static void test_mf_bundle_from_jwks_d3_sequence(void **state)
{
    (void)state;
    struct mf_bundle *b = NULL;
    ASSERT_OK(decode("{\"keys\":[],\"spiffe_sequence\":9223372036854775807}", &b));
    assert_true(b->sequence == (uint64_t)INT64_MAX);
    mf_bundle_free(b);
    ASSERT_OK(decode("{\"keys\":[]}", &b));
    assert_int_equal(b->sequence, 0); /* absent: not set */
    mf_bundle_free(b);
    ASSERT_OK(decode("{\"keys\":[],\"spiffe_sequence\":null}", &b));
    assert_int_equal(b->sequence, 0);
    mf_bundle_free(b);
    expect_top_refused("{\"keys\":[],\"spiffe_sequence\":-1}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":[],\"spiffe_sequence\":\"2\"}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":[],\"spiffe_sequence\":2.0}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":[],\"spiffe_sequence\":true}", MF_ERR_PROTO_JSON);
    /* 2^63 does not fit jansson's integer: refused, never truncated */
    expect_top_refused("{\"keys\":[],\"spiffe_sequence\":9223372036854775808}", MF_ERR_PROTO_JSON);
}

static void test_mf_bundle_from_jwks_d4_refresh_hint(void **state)
{
    (void)state;
    struct mf_bundle *b = NULL;
    ASSERT_OK(decode("{\"keys\":[],\"spiffe_refresh_hint\":60}", &b));
    assert_int_equal(b->refresh_hint, 60);
    mf_bundle_free(b);
    expect_top_refused("{\"keys\":[],\"spiffe_refresh_hint\":\"60\"}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":[],\"spiffe_refresh_hint\":-5}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":[],\"spiffe_refresh_hint\":1.5}", MF_ERR_PROTO_JSON);
}

/* ---- D5 -------------------------------------------------------------------------- */

static void test_mf_bundle_from_jwks_d5_unknown_members_ignored(void **state)
{
    (void)state;
    char *key = x509_key(",\"x5t\":\"abc\",\"alg\":\"ES256\",\"ext\":{\"a\":[1,2]}");
    char *text = textf("{\"future\":{\"nested\":[1,{\"x\":null}]},\"keys\":[%s],"
                       "\"spiffe_other\":\"x\",\"z\":1.5}",
                       key);
    struct mf_bundle *b = NULL;
    ASSERT_OK(decode(text, &b));
    assert_int_equal(b->x509.n, 1);
    mf_bundle_free(b);
    free(text);
    free(key);
}

/* ---- D6 -------------------------------------------------------------------------- */

static void test_mf_bundle_from_jwks_d6_unknown_kty_ignored(void **state)
{
    (void)state;
    char *good = x509_key("");
    char *text = textf("{\"keys\":[{\"use\":\"x509-svid\",\"kty\":\"OKP\",\"crv\":\"Ed25519\","
                       "\"x\":\"abc\",\"x5c\":[\"%s\"]},"
                       "{\"use\":\"x509-svid\",\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\","
                       "\"x5c\":[\"%s\"]},"
                       "{\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\","
                       "\"y\":\"AA\",\"x5c\":[\"%s\"]},"
                       "{\"use\":\"jwt-svid\",\"kty\":\"future\",\"kid\":\"f\"},"
                       "{\"use\":\"jwt-svid\",\"kty\":\"oct\",\"kid\":\"s\",\"k\":\"AAAA\"},%s]}",
                       F.ca2_b64, F.ca2_b64, F.ca2_b64, good);
    struct mf_bundle *b = NULL;
    ASSERT_OK(decode(text, &b));
    /* the rest of the set survives */
    assert_int_equal(b->x509.n, 1);
    assert_int_equal(b->n_jwt, 0);
    mf_bundle_free(b);
    free(text);
    free(good);
}

static void test_mf_bundle_from_jwks_d6_kty_missing_or_wrong_type_refused(void **state)
{
    (void)state;
    char *k = textf("{\"use\":\"x509-svid\",\"x5c\":[\"%s\"]}", F.ca_b64);
    expect_refused(k, MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "keys[0]"));
    assert_non_null(strstr(mf_err_detail(), "kty"));
    free(k);
    k = textf("{\"use\":\"jwt-svid\",\"kty\":5,\"kid\":\"a\"}");
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
}

/* ---- D7 -------------------------------------------------------------------------- */

static void test_mf_bundle_from_jwks_d7_unknown_use_ignored(void **state)
{
    (void)state;
    const char *uses[] = {"", "X509-SVID", "x509-SVID", "Jwt-svid", "wit-svid", "sig", "enc"};
    for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++) {
        char *k = textf("{\"use\":\"%s\",\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\","
                        "\"x5c\":[\"%s\"]}",
                        uses[i], F.ca_ek.crv, F.ca_ek.x, F.ca_ek.y, F.ca_b64);
        expect_counts(k, 0, 0);
        free(k);
    }
    /* no use at all */
    char *k = textf("{\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}",
                    F.j1_ek.crv, F.j1_ek.x, F.j1_ek.y);
    expect_counts(k, 0, 0);
    free(k);
    /* a use of the wrong type is malformed */
    expect_refused("{\"use\":1,\"kty\":\"EC\"}", MF_ERR_PROTO_JSON);
    expect_refused("{\"use\":[\"jwt-svid\"],\"kty\":\"EC\"}", MF_ERR_PROTO_JSON);
}

/* ---- D9 ---------------------------------------------------------------------------- */

static void test_mf_bundle_from_jwks_d9_kid_on_x509_ignored(void **state)
{
    (void)state;
    char *k = x509_key(",\"kid\":\"should-not-be-here\"");
    char *text = textf("{\"keys\":[%s]}", k);
    struct mf_bundle *b = NULL;
    ASSERT_OK(decode(text, &b));
    assert_int_equal(b->x509.n, 1);
    assert_int_equal(b->n_jwt, 0);
    struct mf_buf out;
    mf_buf_init(&out, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_to_jwks(b, &out));
    assert_null(strstr(mf_buf_cstr(&out), "kid")); /* never re-published */
    mf_buf_cleanup(&out);
    mf_bundle_free(b);
    free(text);
    free(k);
}

static void test_mf_bundle_from_jwks_d9_key_mismatch_refused(void **state)
{
    (void)state;
    /* ca's certificate with ca2's coordinates */
    char *k = textf("{\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\","
                    "\"y\":\"%s\",\"x5c\":[\"%s\"]}",
                    F.ca2_ek.x, F.ca2_ek.y, F.ca_b64);
    expect_refused(k, MF_ERR_CRYPTO_MISMATCH);
    free(k);
    /* the wrong curve */
    k = textf("{\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"%s\","
              "\"y\":\"%s\",\"x5c\":[\"%s\"]}",
              F.ca_ek.x, F.ca_ek.y, F.ca_b64);
    expect_refused(k, MF_ERR_CRYPTO_MISMATCH);
    free(k);
    /* EC members missing */
    k = textf("{\"use\":\"x509-svid\",\"kty\":\"EC\",\"x5c\":[\"%s\"]}", F.ca_b64);
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
}

/* ---- D10 ---------------------------------------------------------------------------- */

static void test_mf_bundle_from_jwks_d10_missing_or_empty_x5c_ignored(void **state)
{
    (void)state;
    char *k = textf("{\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\","
                    "\"y\":\"%s\"}",
                    F.ca_ek.crv, F.ca_ek.x, F.ca_ek.y);
    expect_counts(k, 0, 0);
    free(k);
    k = textf("{\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\","
              "\"y\":\"%s\",\"x5c\":[]}",
              F.ca_ek.crv, F.ca_ek.x, F.ca_ek.y);
    expect_counts(k, 0, 0);
    free(k);
    k = textf("{\"use\":\"x509-svid\",\"kty\":\"EC\",\"x5c\":null}");
    expect_counts(k, 0, 0);
    free(k);
}

static void test_mf_bundle_from_jwks_d10_extra_x5c_ignored(void **state)
{
    (void)state;
    /* only x5c[0] counts: ca2 and the garbage after it are never read */
    char *extra = textf(",\"x5c\":[\"%s\",\"%s\",\"not base64!\",7]", F.ca_b64, F.ca2_b64);
    char *k = textf("{\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\","
                    "\"y\":\"%s\"%s}",
                    F.ca_ek.crv, F.ca_ek.x, F.ca_ek.y, extra);
    char *text = textf("{\"keys\":[%s]}", k);
    struct mf_bundle *b = NULL;
    ASSERT_OK(decode(text, &b));
    assert_int_equal(b->x509.n, 1);
    size_t l1 = 0;
    size_t l2 = 0;
    const uint8_t *d1 = mf_cert_der(b->x509.v[0], &l1);
    const uint8_t *d2 = mf_cert_der(F.ca, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(d1, d2, l1);
    /* re-encoded with exactly one x5c element */
    struct mf_buf out;
    mf_buf_init(&out, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_to_jwks(b, &out));
    json_t *v = parse_buf(&out);
    json_t *x5c = json_object_get(json_array_get(json_object_get(v, "keys"), 0), "x5c");
    assert_int_equal(json_array_size(x5c), 1);
    json_decref(v);
    mf_buf_cleanup(&out);
    mf_bundle_free(b);
    free(text);
    free(k);
    free(extra);
}

/* ca's EC members with the given x5c member value (JSON text) */
static char *x509_key_x5c(const char *x5c)
{
    return textf("{\"use\":\"x509-svid\",\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\","
                 "\"y\":\"%s\",\"x5c\":%s}",
                 F.ca_ek.crv, F.ca_ek.x, F.ca_ek.y, x5c);
}

static void expect_x5c_refused(const char *x5c, enum mf_err e)
{
    char *k = x509_key_x5c(x5c);
    expect_refused(k, e);
    free(k);
}

static void test_mf_bundle_from_jwks_d10_bad_x5c_refused(void **state)
{
    (void)state;
    /* wrong types */
    char *v = textf("\"%s\"", F.ca_b64);
    expect_x5c_refused(v, MF_ERR_PROTO_JSON);
    free(v);
    expect_x5c_refused("[5]", MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "x5c[0]"));
    expect_x5c_refused("{}", MF_ERR_PROTO_JSON);
    expect_x5c_refused("[[]]", MF_ERR_PROTO_JSON);
    /* url-safe or broken base64 */
    char *bad = strdup(F.ca_b64);
    assert_non_null(bad);
    bad[4] = '-';
    v = textf("[\"%s\"]", bad);
    expect_x5c_refused(v, MF_ERR_PROTO_PEM);
    assert_non_null(strstr(mf_err_detail(), "x5c[0]"));
    free(v);
    bad[4] = '_';
    v = textf("[\"%s\"]", bad);
    expect_x5c_refused(v, MF_ERR_PROTO_PEM);
    free(v);
    free(bad);
    /* line breaks inside the base64 are not standard base64 either */
    v = textf("[\"%.8s\\n%s\"]", F.ca_b64, F.ca_b64 + 8);
    expect_x5c_refused(v, MF_ERR_PROTO_PEM);
    free(v);
    /* padding removed */
    size_t n = strlen(F.ca_b64);
    if (F.ca_b64[n - 1] == '=') {
        v = textf("[\"%.*s\"]", (int)(n - 1), F.ca_b64);
        expect_x5c_refused(v, MF_ERR_PROTO_PEM);
        free(v);
    }
    /* valid base64, not a certificate */
    expect_x5c_refused("[\"AAAAAAAA\"]", MF_ERR_PROTO_DER);
    /* truncated certificate: drop the last 4 base64 characters */
    v = textf("[\"%.*s\"]", (int)(n - 4), F.ca_b64);
    char *k = x509_key_x5c(v);
    char *text = textf("{\"keys\":[%s]}", k);
    struct mf_bundle *b = NULL;
    assert_false(mf_ok(decode(text, &b)));
    assert_null(b);
    free(text);
    free(k);
    free(v);
}

/* ---- D11, D12 ------------------------------------------------------------------------ */

static void test_mf_bundle_from_jwks_d11_kid_required(void **state)
{
    (void)state;
    char *k = jwt_key("", "");
    expect_refused(k, MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "kid"));
    free(k);
    /* even for a key type we would skip */
    expect_refused("{\"use\":\"jwt-svid\",\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
                   MF_ERR_PROTO_JSON);
    k = jwt_key(",\"kid\":null", "");
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
    k = jwt_key(",\"kid\":\"\"", "");
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
    k = jwt_key(",\"kid\":7", "");
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
    k = jwt_key(",\"kid\":\"a\\u0001b\"", "");
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
    /* cap and cap+1 */
    char kid[MF_KID_MAX + 2];
    memset(kid, 'k', sizeof(kid));
    kid[MF_KID_MAX] = '\0';
    char *m = textf(",\"kid\":\"%s\"", kid);
    k = jwt_key(m, "");
    expect_counts(k, 0, 1);
    free(k);
    free(m);
    kid[MF_KID_MAX] = 'k';
    kid[MF_KID_MAX + 1] = '\0';
    m = textf(",\"kid\":\"%s\"", kid);
    k = jwt_key(m, "");
    expect_refused(k, MF_ERR_PROTO_TOO_LARGE);
    free(k);
    free(m);
}

static void test_mf_bundle_from_jwks_d12_duplicate_kid_refused(void **state)
{
    (void)state;
    char *k1 = jwt_key(",\"kid\":\"same\"", "");
    char *k2 = textf("{\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"same\",\"crv\":\"%s\","
                     "\"x\":\"%s\",\"y\":\"%s\"}",
                     F.j2_ek.crv, F.j2_ek.x, F.j2_ek.y);
    char *both = textf("%s,%s", k1, k2);
    expect_refused(both, MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "keys[1]"));
    free(both);
    free(k1);
    free(k2);
}

static void test_mf_bundle_from_jwks_jwt_key_cases(void **state)
{
    (void)state;
    /* P-384 works, P-521 and RSA are skipped */
    char *k = textf("{\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"p384\",\"crv\":\"%s\","
                    "\"x\":\"%s\",\"y\":\"%s\"}",
                    F.j2_ek.crv, F.j2_ek.x, F.j2_ek.y);
    expect_counts(k, 0, 1);
    free(k);
    expect_counts("{\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"p521\",\"crv\":\"P-521\","
                  "\"x\":\"AA\",\"y\":\"AA\"}",
                  0, 0);
    expect_counts("{\"use\":\"jwt-svid\",\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"AQAB\","
                  "\"e\":\"AQAB\"}",
                  0, 0);
    /* coordinates: wrong length, not base64url, wrong type, missing, off-curve */
    k = textf("{\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-256\","
              "\"x\":\"%s\",\"y\":\"%s\"}",
              F.j2_ek.x, F.j2_ek.y); /* 48-byte coordinates on P-256 */
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
    k = jwt_key(",\"kid\":\"a\"", ",\"x\":\"+/+/\"");
    expect_refused(k, MF_ERR_PROTO_JSON); /* duplicate member "x" */
    free(k);
    k = textf("{\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-256\","
              "\"x\":\"%s+\",\"y\":\"%s\"}",
              F.j1_ek.x, F.j1_ek.y);
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
    k = textf("{\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-256\","
              "\"x\":1,\"y\":\"%s\"}",
              F.j1_ek.y);
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
    k = textf("{\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-256\","
              "\"x\":\"%s\"}",
              F.j1_ek.x);
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
    expect_refused("{\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"a\",\"crv\":7}",
                   MF_ERR_PROTO_JSON);
    k = textf("{\"use\":\"jwt-svid\",\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-256\","
              "\"x\":\"%s\",\"y\":\"%s\"}",
              F.j1_ek.x, F.j1_ek.x); /* y = x: not on the curve */
    char *text = textf("{\"keys\":[%s]}", k);
    struct mf_bundle *b = NULL;
    assert_false(mf_ok(decode(text, &b)));
    assert_null(b);
    free(text);
    free(k);
}

static void test_mf_bundle_from_jwks_private_key_refused(void **state)
{
    (void)state;
    char *k = jwt_key(",\"kid\":\"a\"", ",\"d\":\"AAAA\"");
    expect_refused(k, MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "\"d\""));
    free(k);
    k = x509_key(",\"d\":\"AAAA\"");
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
}

/* ---- D13 ------------------------------------------------------------------------------ */

static void test_mf_bundle_map_round_trip_ok(void **state)
{
    (void)state;
    struct mf_bundle_set s;
    mf_bundle_set_init(&s);
    struct mf_bundle *a = full_bundle();
    struct mf_bundle *o = bundle_with(OTHER_TD, F.other_ca);
    o->sequence = 11;
    ASSERT_OK(mf_bundle_set_put(&s, a));
    ASSERT_OK(mf_bundle_set_put(&s, o));
    struct mf_buf out;
    mf_buf_init(&out, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_set_to_map(&s, &out));

    /* shape: trust_domains only; inner bundles have no refresh hint */
    json_t *v = parse_buf(&out);
    char names[256];
    member_names(v, names, sizeof(names));
    assert_string_equal(names, "trust_domains");
    json_t *tds = json_object_get(v, "trust_domains");
    member_names(tds, names, sizeof(names));
    assert_string_equal(names, "example.org,other.org");
    member_names(json_object_get(tds, TD), names, sizeof(names));
    assert_string_equal(names, "keys,spiffe_sequence");
    json_decref(v);

    struct mf_bundle_set back;
    ASSERT_OK(mf_bundle_set_from_map((const char *)out.data, out.len, &back));
    assert_int_equal(back.n, 2);
    const struct mf_bundle *ba = mf_bundle_set_find(&back, TD);
    const struct mf_bundle *bo = mf_bundle_set_find(&back, OTHER_TD);
    assert_non_null(ba);
    assert_non_null(bo);
    assert_true(mf_bundle_same_keys(a, ba));
    assert_true(mf_bundle_same_keys(o, bo));
    assert_int_equal(ba->sequence, 7);
    assert_int_equal(bo->sequence, 11);
    assert_int_equal(ba->refresh_hint, 0);
    mf_bundle_set_cleanup(&back);
    mf_buf_cleanup(&out);
    mf_bundle_free(a);
    mf_bundle_free(o);
    mf_bundle_set_cleanup(&s);
}

static void expect_map_refused(const char *text, enum mf_err e)
{
    struct mf_bundle_set s;
    s.v = (struct mf_bundle **)&F; /* poison: must be cleared */
    s.n = 99;
    mf_res r = mf_bundle_set_from_map(text, strlen(text), &s);
    if (r.err != e) {
        print_error("expected %s, got %s: %s\n", mf_err_name(e), mf_err_name(r.err),
                    mf_err_detail());
    }
    assert_int_equal(r.err, e);
    assert_null(s.v);
    assert_int_equal(s.n, 0);
}

static void test_mf_bundle_map_d13_rules(void **state)
{
    (void)state;
    struct mf_bundle_set s;
    /* trust_domains required, may be empty */
    ASSERT_OK(mf_bundle_set_from_map("{\"trust_domains\":{}}", 20, &s));
    assert_int_equal(s.n, 0);
    mf_bundle_set_cleanup(&s);
    expect_map_refused("{}", MF_ERR_PROTO_JSON);
    expect_map_refused("{\"trust_domains\":[]}", MF_ERR_PROTO_JSON);
    expect_map_refused("{\"trust_domains\":null}", MF_ERR_PROTO_JSON);
    expect_map_refused("{\"keys\":[]}", MF_ERR_PROTO_JSON);
    /* duplicate trust domain keys: refused (JSON_REJECT_DUPLICATES) */
    expect_map_refused("{\"trust_domains\":{\"a.org\":{\"keys\":[]},\"a.org\":{\"keys\":[]}}}",
                       MF_ERR_PROTO_JSON);
    /* keys must be bare, valid trust domain names */
    expect_map_refused("{\"trust_domains\":{\"spiffe://a.org\":{\"keys\":[]}}}", MF_ERR_PROTO_JSON);
    struct mf_bundle_set t;
    assert_false(
        mf_ok(mf_bundle_set_from_map("{\"trust_domains\":{\"A.org\":{\"keys\":[]}}}", 39, &t)));
    assert_false(mf_ok(mf_bundle_set_from_map("{\"trust_domains\":{\"\":{\"keys\":[]}}}", 34, &t)));
    /* inner bundles follow the bundle rules */
    expect_map_refused("{\"trust_domains\":{\"a.org\":[]}}", MF_ERR_PROTO_JSON);
    expect_map_refused("{\"trust_domains\":{\"a.org\":{}}}", MF_ERR_PROTO_JSON);
    expect_map_refused("{\"trust_domains\":{\"a.org\":{\"keys\":[]},\"b.org\":"
                       "{\"keys\":[{\"use\":\"jwt-svid\",\"kty\":\"EC\"}]}}}",
                       MF_ERR_PROTO_JSON);
    assert_non_null(strstr(mf_err_detail(), "b.org"));
    /* unknown top-level members ignored; inner hints dropped */
    const char ok[] = "{\"x\":1,\"trust_domains\":{\"a.org\":{\"keys\":[],"
                      "\"spiffe_refresh_hint\":5,\"spiffe_sequence\":4}}}";
    ASSERT_OK(mf_bundle_set_from_map(ok, strlen(ok), &s));
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0]->refresh_hint, 0);
    assert_int_equal(s.v[0]->sequence, 4);
    mf_bundle_set_cleanup(&s);
    /* truncated */
    for (size_t i = 0; i < strlen(ok); i++) {
        assert_false(mf_ok(mf_bundle_set_from_map(ok, i, &s)));
        assert_int_equal(s.n, 0);
    }
    ASSERT_ERR(mf_bundle_set_from_map(NULL, 0, &s), MF_ERR_USAGE_NULL);
}

static void test_mf_bundle_map_cap_plus_one_refused(void **state)
{
    (void)state;
    char *text = malloc(MF_MAX_BUNDLE + 1);
    assert_non_null(text);
    memset(text, ' ', MF_MAX_BUNDLE + 1);
    const char body[] = "{\"trust_domains\":{}}";
    memcpy(text, body, strlen(body));
    struct mf_bundle_set s;
    ASSERT_OK(mf_bundle_set_from_map(text, MF_MAX_BUNDLE, &s));
    mf_bundle_set_cleanup(&s);
    ASSERT_ERR(mf_bundle_set_from_map(text, MF_MAX_BUNDLE + 1, &s), MF_ERR_PROTO_TOO_LARGE);
    free(text);
}

/* ---- D14 ------------------------------------------------------------------------------ */

static void test_mf_bundle_jwt_jwks_shape_ok(void **state)
{
    (void)state;
    struct mf_bundle *a = full_bundle();
    struct mf_buf out;
    mf_buf_init(&out, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_jwt_jwks(a, &out));
    json_t *v = parse_buf(&out);
    char names[256];
    member_names(v, names, sizeof(names));
    assert_string_equal(names, "keys"); /* no spiffe_* */
    json_t *keys = json_object_get(v, "keys");
    assert_int_equal(json_array_size(keys), 2); /* JWT keys only */
    for (size_t i = 0; i < 2; i++) {
        member_names(json_array_get(keys, i), names, sizeof(names));
        assert_string_equal(names, "crv,kid,kty,x,y"); /* no use */
    }
    json_decref(v);

    /* decoded back as a plain JWKS */
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_from_jwt_jwks(TD, (const char *)out.data, out.len, &b));
    assert_int_equal(b->n_jwt, 2);
    assert_int_equal(b->x509.n, 0);
    assert_true(mf_pubkey_eq(b->jwt[0].key, F.j1));
    assert_true(mf_pubkey_eq(b->jwt[1].key, F.j2));
    /* the SPIFFE decoder ignores keys without use (D7) */
    struct mf_bundle *c = NULL;
    ASSERT_OK(mf_bundle_from_jwks(TD, (const char *)out.data, out.len, &c));
    assert_int_equal(c->n_jwt, 0);
    mf_bundle_free(c);
    mf_bundle_free(b);
    mf_buf_cleanup(&out);
    mf_bundle_free(a);
}

static void test_mf_bundle_from_jwt_jwks_rules(void **state)
{
    (void)state;
    /* use jwt-svid accepted, x509-svid skipped, spiffe_* ignored */
    char *j = jwt_key(",\"kid\":\"k1\"", "");
    char *x = x509_key("");
    char *text = textf("{\"keys\":[%s,%s],\"spiffe_sequence\":5}", j, x);
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_from_jwt_jwks(TD, text, strlen(text), &b));
    assert_int_equal(b->n_jwt, 1);
    assert_int_equal(b->x509.n, 0);
    assert_int_equal(b->sequence, 0);
    mf_bundle_free(b);
    free(text);
    /* a key without kid fails the set, as in go-spiffe */
    char *nokid = textf("{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}", F.j1_ek.crv,
                        F.j1_ek.x, F.j1_ek.y);
    text = textf("{\"keys\":[%s]}", nokid);
    ASSERT_ERR(mf_bundle_from_jwt_jwks(TD, text, strlen(text), &b), MF_ERR_PROTO_JSON);
    assert_null(b);
    free(text);
    free(nokid);
    free(j);
    free(x);
}

/* ---- D15 ------------------------------------------------------------------------------ */

static void test_mf_bundle_d15_names(void **state)
{
    (void)state;
    /* "refresh_hint" is not the member name: an unknown member, ignored */
    struct mf_bundle *b = NULL;
    ASSERT_OK(decode("{\"keys\":[],\"refresh_hint\":300}", &b));
    assert_int_equal(b->refresh_hint, 0);
    mf_bundle_free(b);
    /* the trailing-slash trust domain ID of TB App. A is refused */
    assert_false(mf_ok(mf_bundle_new("spiffe://example.org/", &b)));
    /* and our CA certificates carry the ID without it */
    struct mf_spiffe_id id;
    assert_true(mf_cert_spiffe_id(F.ca, &id));
    assert_string_equal(id.str, "spiffe://example.org");
    assert_true(mf_spiffeid_is_td(&id));
    assert_string_equal(mf_cert_spiffe_id_str(F.ca), "spiffe://example.org");
}

/* ---- malformed JSON ------------------------------------------------------------------- */

static void test_mf_bundle_from_jwks_truncated_refused(void **state)
{
    (void)state;
    struct mf_bundle *a = full_bundle();
    struct mf_buf out;
    mf_buf_init(&out, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_to_jwks(a, &out));
    for (size_t i = 0; i < out.len; i++) {
        struct mf_bundle *b = NULL;
        mf_res r = mf_bundle_from_jwks(TD, (const char *)out.data, i, &b);
        assert_int_equal(r.err, MF_ERR_PROTO_JSON);
        assert_null(b);
    }
    mf_buf_cleanup(&out);
    mf_bundle_free(a);
}

static void test_mf_bundle_from_jwks_duplicate_members_refused(void **state)
{
    (void)state;
    expect_top_refused("{\"keys\":[],\"keys\":[]}", MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":[],\"spiffe_sequence\":1,\"spiffe_sequence\":2}",
                       MF_ERR_PROTO_JSON);
    char *k = x509_key(",\"use\":\"jwt-svid\"");
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
}

static void test_mf_bundle_from_jwks_embedded_nul_refused(void **state)
{
    (void)state;
    const char text[] = "{\"keys\":[],\"x\":\"a\0b\"}";
    struct mf_bundle *b = NULL;
    ASSERT_ERR(mf_bundle_from_jwks(TD, text, sizeof(text) - 1, &b), MF_ERR_PROTO_JSON);
    expect_top_refused("{\"keys\":[],\"x\":\"a\\u0000b\"}", MF_ERR_PROTO_JSON);
    char *k = jwt_key(",\"kid\":\"a\\u0000b\"", "");
    expect_refused(k, MF_ERR_PROTO_JSON);
    free(k);
}

static void test_mf_bundle_from_jwks_cap_plus_one_refused(void **state)
{
    (void)state;
    char *key = x509_key("");
    char *body = textf("{\"keys\":[%s]}", key);
    size_t n = strlen(body);
    char *text = malloc(MF_MAX_BUNDLE + 1);
    assert_non_null(text);
    memset(text, ' ', MF_MAX_BUNDLE + 1);
    memcpy(text, body, n);
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_from_jwks(TD, text, MF_MAX_BUNDLE, &b));
    assert_int_equal(b->x509.n, 1);
    mf_bundle_free(b);
    ASSERT_ERR(mf_bundle_from_jwks(TD, text, MF_MAX_BUNDLE + 1, &b), MF_ERR_PROTO_TOO_LARGE);
    assert_null(b);
    ASSERT_ERR(mf_bundle_from_jwt_jwks(TD, text, MF_MAX_BUNDLE + 1, &b), MF_ERR_PROTO_TOO_LARGE);
    free(text);
    free(body);
    free(key);
}

/* ---- PEM ----------------------------------------------------------------------------- */

static void test_mf_bundle_pem_round_trip_ok(void **state)
{
    (void)state;
    struct mf_bundle *a = bundle_with(TD, F.ca);
    ASSERT_OK(mf_bundle_add_x509(a, F.ca2));
    struct mf_buf pem;
    mf_buf_init(&pem, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_bundle_to_pem(a, &pem));
    assert_non_null(strstr(mf_buf_cstr(&pem), "-----BEGIN CERTIFICATE-----"));
    struct mf_bundle *b = NULL;
    ASSERT_OK(mf_bundle_from_pem(TD, (const char *)pem.data, pem.len, &b));
    assert_true(mf_bundle_same_keys(a, b));
    mf_bundle_free(b);

    /* a repeated certificate is kept once; text around blocks is skipped */
    char *twice = textf("comment\n%s%s", mf_buf_cstr(&pem), mf_buf_cstr(&pem));
    ASSERT_OK(mf_bundle_from_pem(TD, twice, strlen(twice), &b));
    assert_int_equal(b->x509.n, 2);
    mf_bundle_free(b);
    free(twice);

    /* JWT keys are not part of the PEM form */
    mf_buf_reset(&pem);
    struct mf_bundle *j = full_bundle();
    ASSERT_OK(mf_bundle_to_pem(j, &pem));
    ASSERT_OK(mf_bundle_from_pem(TD, (const char *)pem.data, pem.len, &b));
    assert_int_equal(b->x509.n, 2);
    assert_int_equal(b->n_jwt, 0);
    mf_bundle_free(b);
    mf_bundle_free(j);
    mf_buf_cleanup(&pem);
    mf_bundle_free(a);
}

static void test_mf_bundle_pem_bad_input_refused(void **state)
{
    (void)state;
    struct mf_bundle *b = NULL;
    /* empty bundle encodes to nothing; nothing decodes to an error */
    struct mf_bundle *e = NULL;
    ASSERT_OK(mf_bundle_new(TD, &e));
    struct mf_buf pem;
    mf_buf_init(&pem, MF_MAX_BUNDLE, MF_BUF_SECRET);
    ASSERT_OK(mf_bundle_to_pem(e, &pem));
    assert_int_equal(pem.len, 0);
    mf_bundle_free(e);
    ASSERT_ERR(mf_bundle_from_pem(TD, "", 0, &b), MF_ERR_PROTO_PEM);
    ASSERT_ERR(mf_bundle_from_pem(TD, "junk", 4, &b), MF_ERR_PROTO_PEM);
    assert_null(b);
    /* a private key in a bundle file */
    ASSERT_OK(mf_key_to_pem(F.j1_key, &pem));
    ASSERT_ERR(mf_bundle_from_pem(TD, (const char *)pem.data, pem.len, &b), MF_ERR_PROTO_PEM);
    mf_buf_cleanup(&pem);
    /* cap+1 */
    char *big = malloc(MF_MAX_BUNDLE + 1);
    assert_non_null(big);
    memset(big, '\n', MF_MAX_BUNDLE + 1);
    ASSERT_ERR(mf_bundle_from_pem(TD, big, MF_MAX_BUNDLE + 1, &b), MF_ERR_PROTO_TOO_LARGE);
    free(big);
}

/* ---- sets and mf_svid_verify ------------------------------------------------------------ */

static void test_mf_bundle_set_put_find_replace(void **state)
{
    (void)state;
    struct mf_bundle_set s;
    mf_bundle_set_init(&s);
    assert_null(mf_bundle_set_find(&s, TD));
    struct mf_bundle *a = bundle_with(TD, F.ca);
    struct mf_bundle *a2 = bundle_with(TD, F.ca2);
    struct mf_bundle *o = bundle_with(OTHER_TD, F.other_ca);
    ASSERT_OK(mf_bundle_set_put(&s, a));
    ASSERT_OK(mf_bundle_set_put(&s, o));
    assert_int_equal(a->refs, 2);
    assert_ptr_equal(mf_bundle_set_find(&s, TD), a);
    assert_ptr_equal(mf_bundle_set_find(&s, OTHER_TD), o);
    assert_null(mf_bundle_set_find(&s, "third.org"));
    assert_null(mf_bundle_set_find(&s, NULL));
    /* replacing drops the set's reference to the old bundle */
    ASSERT_OK(mf_bundle_set_put(&s, a2));
    assert_int_equal(s.n, 2);
    assert_int_equal(a->refs, 1);
    assert_ptr_equal(mf_bundle_set_find(&s, TD), a2);
    /* putting the same bundle again is harmless */
    ASSERT_OK(mf_bundle_set_put(&s, a2));
    assert_int_equal(a2->refs, 2);
    mf_bundle_set_cleanup(&s);
    assert_int_equal(s.n, 0);
    mf_bundle_set_cleanup(&s);
    assert_int_equal(a2->refs, 1);
    mf_bundle_free(a);
    mf_bundle_free(a2);
    mf_bundle_free(o);
}

static void test_mf_svid_verify_picks_leaf_td(void **state)
{
    (void)state;
    struct mf_bundle_set s;
    mf_bundle_set_init(&s);
    struct mf_bundle *a = bundle_with(TD, F.ca);
    struct mf_bundle *o = bundle_with(OTHER_TD, F.other_ca);
    ASSERT_OK(mf_bundle_set_put(&s, o));
    ASSERT_OK(mf_bundle_set_put(&s, a));
    struct mf_certs chain;
    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, F.leaf));
    struct mf_spiffe_id id;
    ASSERT_OK(mf_svid_verify(&chain, &s, F.now, &id));
    assert_string_equal(id.str, "spiffe://example.org/workload");
    mf_certs_cleanup(&chain);

    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, F.other_leaf));
    ASSERT_OK(mf_svid_verify(&chain, &s, F.now, &id));
    assert_string_equal(id.str, "spiffe://other.org/workload");
    mf_certs_cleanup(&chain);
    mf_bundle_set_cleanup(&s);
    mf_bundle_free(a);
    mf_bundle_free(o);
}

static void test_mf_svid_verify_no_bundle_untrusted(void **state)
{
    (void)state;
    struct mf_bundle_set s;
    mf_bundle_set_init(&s);
    struct mf_bundle *o = bundle_with(OTHER_TD, F.other_ca);
    ASSERT_OK(mf_bundle_set_put(&s, o));
    struct mf_certs chain;
    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, F.leaf));
    struct mf_spiffe_id id;
    memset(&id, 'x', sizeof(id));
    ASSERT_ERR(mf_svid_verify(&chain, &s, F.now, &id), MF_ERR_AUTH_UNTRUSTED);
    assert_non_null(strstr(mf_err_detail(), TD));
    assert_int_equal(id.len, 0); /* cleared */
    /* the empty set trusts nothing */
    struct mf_bundle_set empty;
    mf_bundle_set_init(&empty);
    ASSERT_ERR(mf_svid_verify(&chain, &empty, F.now, NULL), MF_ERR_AUTH_UNTRUSTED);
    mf_certs_cleanup(&chain);
    /* an empty chain */
    ASSERT_ERR(mf_svid_verify(&chain, &s, F.now, NULL), MF_ERR_AUTH_MISSING);
    mf_bundle_set_cleanup(&s);
    mf_bundle_free(o);
}

/* B23: an authority of another trust domain never vouches for a leaf, even
 * when it signed it. */
static void test_mf_svid_verify_never_pools_trust_domains(void **state)
{
    (void)state;
    struct mf_bundle_set s;
    mf_bundle_set_init(&s);
    /* example.org's bundle holds only other.org's CA, and vice versa */
    struct mf_bundle *a = bundle_with(TD, F.other_ca);
    struct mf_bundle *o = bundle_with(OTHER_TD, F.ca);
    ASSERT_OK(mf_bundle_set_put(&s, a));
    ASSERT_OK(mf_bundle_set_put(&s, o));
    struct mf_certs chain;
    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, F.leaf));
    ASSERT_ERR(mf_svid_verify(&chain, &s, F.now, NULL), MF_ERR_AUTH_UNTRUSTED);
    mf_certs_cleanup(&chain);
    /* a wrong-CA bundle of the right trust domain: still refused */
    struct mf_bundle *a2 = bundle_with(TD, F.ca2);
    ASSERT_OK(mf_bundle_set_put(&s, a2));
    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, F.leaf));
    ASSERT_ERR(mf_svid_verify(&chain, &s, F.now, NULL), MF_ERR_AUTH_UNTRUSTED);
    /* and with ca added, accepted */
    ASSERT_OK(mf_bundle_add_x509(a2, F.ca));
    ASSERT_OK(mf_svid_verify(&chain, &s, F.now, NULL));
    mf_certs_cleanup(&chain);
    mf_bundle_set_cleanup(&s);
    mf_bundle_free(a);
    mf_bundle_free(a2);
    mf_bundle_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_bundle_new_td_forms_ok),
        cmocka_unit_test(test_mf_bundle_new_bad_td_refused),
        cmocka_unit_test(test_mf_bundle_ref_free_counts),
        cmocka_unit_test(test_mf_bundle_add_x509_duplicate_ignored),
        cmocka_unit_test(test_mf_bundle_add_x509_cap_plus_one_refused),
        cmocka_unit_test(test_mf_bundle_add_jwt_duplicate_and_bad_kid_refused),
        cmocka_unit_test(test_mf_bundle_add_jwt_cap_plus_one_refused),
        cmocka_unit_test(test_mf_bundle_copy_is_deep),
        cmocka_unit_test(test_mf_bundle_same_keys_order_free),
        cmocka_unit_test(test_mf_bundle_jwks_round_trip_ok),
        cmocka_unit_test(test_mf_bundle_to_jwks_shape_ok),
        cmocka_unit_test(test_mf_bundle_to_jwks_unset_members_omitted),
        cmocka_unit_test(test_mf_bundle_from_jwks_spec_example_ok),
        cmocka_unit_test(test_mf_bundle_from_jwks_d1_td_pair),
        cmocka_unit_test(test_mf_bundle_from_jwks_d2_keys_required),
        cmocka_unit_test(test_mf_bundle_from_jwks_d2_empty_keys_trusts_nothing),
        cmocka_unit_test(test_mf_bundle_from_jwks_d3_sequence),
        cmocka_unit_test(test_mf_bundle_from_jwks_d4_refresh_hint),
        cmocka_unit_test(test_mf_bundle_from_jwks_d5_unknown_members_ignored),
        cmocka_unit_test(test_mf_bundle_from_jwks_d6_unknown_kty_ignored),
        cmocka_unit_test(test_mf_bundle_from_jwks_d6_kty_missing_or_wrong_type_refused),
        cmocka_unit_test(test_mf_bundle_from_jwks_d7_unknown_use_ignored),
        cmocka_unit_test(test_mf_bundle_from_jwks_d9_kid_on_x509_ignored),
        cmocka_unit_test(test_mf_bundle_from_jwks_d9_key_mismatch_refused),
        cmocka_unit_test(test_mf_bundle_from_jwks_d10_missing_or_empty_x5c_ignored),
        cmocka_unit_test(test_mf_bundle_from_jwks_d10_extra_x5c_ignored),
        cmocka_unit_test(test_mf_bundle_from_jwks_d10_bad_x5c_refused),
        cmocka_unit_test(test_mf_bundle_from_jwks_d11_kid_required),
        cmocka_unit_test(test_mf_bundle_from_jwks_d12_duplicate_kid_refused),
        cmocka_unit_test(test_mf_bundle_from_jwks_jwt_key_cases),
        cmocka_unit_test(test_mf_bundle_from_jwks_private_key_refused),
        cmocka_unit_test(test_mf_bundle_map_round_trip_ok),
        cmocka_unit_test(test_mf_bundle_map_d13_rules),
        cmocka_unit_test(test_mf_bundle_map_cap_plus_one_refused),
        cmocka_unit_test(test_mf_bundle_jwt_jwks_shape_ok),
        cmocka_unit_test(test_mf_bundle_from_jwt_jwks_rules),
        cmocka_unit_test(test_mf_bundle_d15_names),
        cmocka_unit_test(test_mf_bundle_from_jwks_truncated_refused),
        cmocka_unit_test(test_mf_bundle_from_jwks_duplicate_members_refused),
        cmocka_unit_test(test_mf_bundle_from_jwks_embedded_nul_refused),
        cmocka_unit_test(test_mf_bundle_from_jwks_cap_plus_one_refused),
        cmocka_unit_test(test_mf_bundle_pem_round_trip_ok),
        cmocka_unit_test(test_mf_bundle_pem_bad_input_refused),
        cmocka_unit_test(test_mf_bundle_set_put_find_replace),
        cmocka_unit_test(test_mf_svid_verify_picks_leaf_td),
        cmocka_unit_test(test_mf_svid_verify_no_bundle_untrusted),
        cmocka_unit_test(test_mf_svid_verify_never_pools_trust_domains),
    };
    return cmocka_run_group_tests_name("mf_bundle", tests, setup, teardown);
}
