/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_csr: create and verify, OpenSSL-made requests, and the
 * refusals of mf_csr_verify: bad signature (tampered, or signed by another
 * key), two URI SANs, an invalid SPIFFE ID, a request for cA=TRUE, non-EC or
 * unsupported curves, duplicate extensionRequest, truncation, trailing bytes
 * and the MF_MAX_CSR cap. Malformed-but-signed requests are built with the
 * module's own DER writer (api/mf_x509_int.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/core/mf_mem.h"
#include "api/pki/mf_x509.h"
#include "api/pki/mf_x509_int.h"
#include "mf_test.h"

/* openssl req -new -key <P-256> -subj /O=acme
 *     -addext subjectAltName=URI:spiffe://example.org/ossl,DNS:a.example.org */
static const char ossl_csr[] = "-----BEGIN CERTIFICATE REQUEST-----\n"
                               "MIIBDzCBtwIBADAPMQ0wCwYDVQQKDARhY21lMFkwEwYHKoZIzj0CAQYIKoZIzj0D\n"
                               "AQcDQgAENNHqrYA/u2yfaXs7o8blKA/yrNPj4iUEx9s4IAF2v7rZLAZaOuQzJIy+\n"
                               "WiQDNl5WThvNpJV5+MV/NxAUDy9aaKBGMEQGCSqGSIb3DQEJDjE3MDUwMwYDVR0R\n"
                               "BCwwKoYZc3BpZmZlOi8vZXhhbXBsZS5vcmcvb3NzbIINYS5leGFtcGxlLm9yZzAK\n"
                               "BggqhkjOPQQDAgNHADBEAiBLAaU0mlED9ZpHEa0BUqmdfSw8wpE2+OMrlqrqdQ2Z\n"
                               "ZQIgM+zuHnVKHYNmyA/yH1yNBWoiOH/tiOYa0BqYNbW/tSk=\n"
                               "-----END CERTIFICATE REQUEST-----\n";

/* the same key, subjectAltName=URI:spiffe://example.org/a,URI:spiffe://example.org/b */
static const char ossl_two_uris[] =
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIIBFjCBvQIBADAPMQ0wCwYDVQQKDARhY21lMFkwEwYHKoZIzj0CAQYIKoZIzj0D\n"
    "AQcDQgAENNHqrYA/u2yfaXs7o8blKA/yrNPj4iUEx9s4IAF2v7rZLAZaOuQzJIy+\n"
    "WiQDNl5WThvNpJV5+MV/NxAUDy9aaKBMMEoGCSqGSIb3DQEJDjE9MDswOQYDVR0R\n"
    "BDIwMIYWc3BpZmZlOi8vZXhhbXBsZS5vcmcvYYYWc3BpZmZlOi8vZXhhbXBsZS5v\n"
    "cmcvYjAKBggqhkjOPQQDAgNIADBFAiEArOBiQmVKbTEyeMI6NAcSqzDhhBbY/Zfy\n"
    "GRdlIOOLVf4CIFoiFPoW4YhSKHKE7419/g+mbZmf17CML4BvjQDsVZFf\n"
    "-----END CERTIFICATE REQUEST-----\n";

/* RSA-512 key, URI:spiffe://example.org/rsa */
static const char ossl_rsa[] = "-----BEGIN CERTIFICATE REQUEST-----\n"
                               "MIH/MIGqAgEAMA8xDTALBgNVBAoMBGFjbWUwXDANBgkqhkiG9w0BAQEFAANLADBI\n"
                               "AkEAyFPGn2XnvfrXwwu3/R2zxYxQ2TeFmAjzyJrIXxG5PV3LsWmHmH2NnPX0CQwU\n"
                               "ZUaqLdDkz35WPFxN7A/SQpdeQQIDAQABoDYwNAYJKoZIhvcNAQkOMScwJTAjBgNV\n"
                               "HREEHDAahhhzcGlmZmU6Ly9leGFtcGxlLm9yZy9yc2EwDQYJKoZIhvcNAQELBQAD\n"
                               "QQCN252BIsuI8gA8DgXZ3E8jdpGYQMWFZCj4Lh4S7E5mHe0AgtrtS5hlI5GISq0j\n"
                               "54xaqxyNBqsJoGrHY8zBASjl\n"
                               "-----END CERTIFICATE REQUEST-----\n";

/* secp256k1 key, URI:spiffe://example.org/k1 */
static const char ossl_k1[] = "-----BEGIN CERTIFICATE REQUEST-----\n"
                              "MIH8MIGjAgEAMA8xDTALBgNVBAoMBGFjbWUwVjAQBgcqhkjOPQIBBgUrgQQACgNC\n"
                              "AAQy4Z/UpOfZTosnrq4q0ETz/TGxtG9k2YdOvVitrpgn7DAdkuBGeTx49gG104eZ\n"
                              "nFH2LrsxrVPzIHacDi9o3IsmoDUwMwYJKoZIhvcNAQkOMSYwJDAiBgNVHREEGzAZ\n"
                              "hhdzcGlmZmU6Ly9leGFtcGxlLm9yZy9rMTAKBggqhkjOPQQDAgNIADBFAiAM9X6J\n"
                              "DV7IM9UiHg3rVRjo6VC+amZdF4X2kUSBj2hDxgIhAI8PNfTG14QoiFaPoPZ7XOku\n"
                              "YNinKgNk2nyuUaJP3uki\n"
                              "-----END CERTIFICATE REQUEST-----\n";

struct keys {
    struct mf_key *p256;
    struct mf_key *p384;
    struct mf_key *other;
};

static int setup(void **state)
{
    static struct keys k;
    if (!mf_ok(mf_key_generate(MF_KEY_EC_P256, &k.p256)) ||
        !mf_ok(mf_key_generate(MF_KEY_EC_P384, &k.p384)) ||
        !mf_ok(mf_key_generate(MF_KEY_EC_P256, &k.other))) {
        return -1;
    }
    *state = &k;
    return 0;
}

static int teardown(void **state)
{
    struct keys *k = *state;
    mf_key_free(k->p256);
    mf_key_free(k->p384);
    mf_key_free(k->other);
    return 0;
}

static void pem_to_der(const char *pem, struct mf_buf *der)
{
    struct mf_cur cur;
    char label[32];
    mf_cur_init(&cur, pem, strlen(pem));
    ASSERT_OK(mf_pem_next(&cur, label, sizeof(label), der));
    assert_string_equal(label, "CERTIFICATE REQUEST");
}

/* What a crafted request holds. */
struct craft {
    const char *uris[3];
    size_t n_uri;
    bool bc;                     /* add basicConstraints */
    bool bc_ca;                  /* ... with cA=TRUE */
    bool no_attr;                /* no extensionRequest at all */
    bool two_attrs;              /* extensionRequest twice */
    const struct mf_key *signer; /* NULL: the subject key itself */
};

static void put_ext_req(const struct craft *c, struct mf_buf *attrs)
{
    struct mf_buf names, san, exts, extseq, values, attr, v;
    mf_buf_init(&names, 4096, 0);
    mf_buf_init(&san, 4096, 0);
    mf_buf_init(&exts, 4096, 0);
    mf_buf_init(&extseq, 4096, 0);
    mf_buf_init(&values, 4096, 0);
    mf_buf_init(&attr, 4096, 0);
    mf_buf_init(&v, 64, 0);
    if (c->n_uri > 0) {
        for (size_t i = 0; i < c->n_uri; i++) {
            ASSERT_OK(mf_der_put(&names, 0x86, c->uris[i], strlen(c->uris[i])));
        }
        ASSERT_OK(mf_der_wrap(&san, MF_DER_SEQUENCE, &names));
        ASSERT_OK(mf_der_put_ext(&exts, mf_oid_san, sizeof(mf_oid_san), false, &san));
    }
    if (c->bc) {
        static const uint8_t ca_true[5] = {0x30, 0x03, 0x01, 0x01, 0xff};
        static const uint8_t ca_false[2] = {0x30, 0x00};
        ASSERT_OK(mf_buf_append(&v, c->bc_ca ? ca_true : ca_false,
                                c->bc_ca ? sizeof(ca_true) : sizeof(ca_false)));
        ASSERT_OK(mf_der_put_ext(&exts, mf_oid_basic_constraints, sizeof(mf_oid_basic_constraints),
                                 true, &v));
    }
    ASSERT_OK(mf_der_wrap(&extseq, MF_DER_SEQUENCE, &exts));
    ASSERT_OK(mf_der_wrap(&values, MF_DER_SET, &extseq));
    ASSERT_OK(
        mf_der_put(&attr, MF_DER_OID, mf_oid_extension_request, sizeof(mf_oid_extension_request)));
    ASSERT_OK(mf_buf_append(&attr, values.data, values.len));
    ASSERT_OK(mf_der_wrap(attrs, MF_DER_SEQUENCE, &attr));
    if (c->two_attrs) {
        ASSERT_OK(mf_der_wrap(attrs, MF_DER_SEQUENCE, &attr));
    }
    mf_buf_cleanup(&names);
    mf_buf_cleanup(&san);
    mf_buf_cleanup(&exts);
    mf_buf_cleanup(&extseq);
    mf_buf_cleanup(&values);
    mf_buf_cleanup(&attr);
    mf_buf_cleanup(&v);
}

static void craft_csr(const struct mf_key *key, const struct craft *c, struct mf_buf *out)
{
    static const uint8_t version0[3] = {0x02, 0x01, 0x00};
    struct mf_buf info, tbs, attrs;
    mf_buf_init(&info, 8192, 0);
    mf_buf_init(&tbs, 8192, 0);
    mf_buf_init(&attrs, 8192, 0);
    ASSERT_OK(mf_buf_append(&info, version0, sizeof(version0)));
    ASSERT_OK(mf_der_put_name(&info, NULL));
    ASSERT_OK(mf_buf_append(&info, key->pub.spki, key->pub.spki_len));
    if (!c->no_attr) {
        put_ext_req(c, &attrs);
    }
    ASSERT_OK(mf_der_wrap(&info, 0xa0, &attrs));
    ASSERT_OK(mf_der_wrap(&tbs, MF_DER_SEQUENCE, &info));
    ASSERT_OK(mf_x509_sign_tbs(c->signer != NULL ? c->signer : key, &tbs, out));
    mf_buf_cleanup(&info);
    mf_buf_cleanup(&tbs);
    mf_buf_cleanup(&attrs);
}

static mf_res verify_buf(const struct mf_buf *b)
{
    struct mf_csr *csr = NULL;
    mf_res r = mf_csr_verify(b->data, b->len, &csr);
    if (!mf_ok(r)) {
        assert_null(csr);
    }
    mf_csr_free(csr);
    return r;
}

static void test_mf_csr_create_verify_ok(void **state)
{
    struct keys *k = *state;
    const struct mf_key *keys[] = {k->p256, k->p384};
    for (size_t i = 0; i < 2; i++) {
        struct mf_buf der;
        mf_buf_init(&der, MF_MAX_CSR, 0);
        ASSERT_OK(mf_csr_create(keys[i], "spiffe://example.org/ns/web", &der));
        struct mf_csr *csr = NULL;
        ASSERT_OK(mf_csr_verify(der.data, der.len, &csr));
        const struct mf_spiffe_id *id = mf_csr_spiffe_id(csr);
        assert_non_null(id);
        assert_string_equal(id->str, "spiffe://example.org/ns/web");
        struct mf_pubkey *pk = NULL;
        ASSERT_OK(mf_key_public(keys[i], &pk));
        assert_true(mf_pubkey_eq(mf_csr_pubkey(csr), pk));
        mf_pubkey_free(pk);
        mf_csr_free(csr);
        mf_buf_cleanup(&der);
    }
    mf_csr_free(NULL);
}

static void test_mf_csr_create_without_id_ok(void **state)
{
    struct keys *k = *state;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    ASSERT_OK(mf_csr_create(k->p256, NULL, &der));
    struct mf_csr *csr = NULL;
    ASSERT_OK(mf_csr_verify(der.data, der.len, &csr));
    assert_null(mf_csr_spiffe_id(csr));
    mf_csr_free(csr);
    mf_buf_cleanup(&der);
}

static void test_mf_csr_create_invalid_id_refused(void **state)
{
    struct keys *k = *state;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    ASSERT_ERR(mf_csr_create(k->p256, "spiffe://Example.org/x", &der), MF_ERR_ID_TD_CHAR);
    ASSERT_ERR(mf_csr_create(k->p256, "https://example.org/x", &der), MF_ERR_ID_SCHEME);
    assert_int_equal(der.len, 0);
    mf_buf_cleanup(&der);
}

static void test_mf_csr_verify_openssl_ok(void **state)
{
    (void)state;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    pem_to_der(ossl_csr, &der);
    struct mf_csr *csr = NULL;
    ASSERT_OK(mf_csr_verify(der.data, der.len, &csr));
    assert_string_equal(mf_csr_spiffe_id(csr)->str, "spiffe://example.org/ossl");
    assert_int_equal(mf_pubkey_type(mf_csr_pubkey(csr)), MF_KEY_EC_P256);
    mf_csr_free(csr);
    mf_buf_cleanup(&der);
}

static void test_mf_csr_verify_openssl_refusals(void **state)
{
    (void)state;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    pem_to_der(ossl_two_uris, &der);
    ASSERT_ERR(verify_buf(&der), MF_ERR_AUTH_SVID);
    assert_non_null(strstr(mf_err_detail(), "2 URI SANs"));
    mf_buf_reset(&der);
    pem_to_der(ossl_rsa, &der);
    ASSERT_ERR(verify_buf(&der), MF_ERR_CRYPTO_KEY);
    mf_buf_reset(&der);
    pem_to_der(ossl_k1, &der);
    ASSERT_ERR(verify_buf(&der), MF_ERR_CRYPTO_KEY);
    mf_buf_cleanup(&der);
}

static void test_mf_csr_verify_tampered_refused(void **state)
{
    (void)state;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    pem_to_der(ossl_csr, &der);
    /* the signature's last byte */
    der.data[der.len - 1] ^= 0x01;
    ASSERT_ERR(verify_buf(&der), MF_ERR_CRYPTO_SIG);
    assert_non_null(strstr(mf_err_detail(), "signature"));
    der.data[der.len - 1] ^= 0x01;
    /* the requested ID: ".../ossl" becomes ".../osso" */
    uint8_t *p = memmem(der.data, der.len, "ossl", 4);
    assert_non_null(p);
    p[3] = 'o';
    ASSERT_ERR(verify_buf(&der), MF_ERR_CRYPTO_SIG);
    mf_buf_cleanup(&der);
}

static void test_mf_csr_verify_signed_by_other_key_refused(void **state)
{
    struct keys *k = *state;
    struct craft c = {.uris = {"spiffe://example.org/a"}, .n_uri = 1, .signer = k->other};
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    craft_csr(k->p256, &c, &der);
    ASSERT_ERR(verify_buf(&der), MF_ERR_CRYPTO_SIG);
    mf_buf_cleanup(&der);
}

static void test_mf_csr_verify_san_rules_refused(void **state)
{
    struct keys *k = *state;
    struct {
        struct craft c;
        enum mf_err want;
    } cases[] = {
        {{.uris = {"spiffe://example.org/a", "spiffe://example.org/b"}, .n_uri = 2},
         MF_ERR_AUTH_SVID},
        {{.uris = {"spiffe://example.org/a", "https://example.org/b", "spiffe://x/y"}, .n_uri = 3},
         MF_ERR_AUTH_SVID},
        {{.uris = {"spiffe://Example.org/a"}, .n_uri = 1}, MF_ERR_ID_TD_CHAR},
        {{.uris = {"spiffe://example.org/a/../b"}, .n_uri = 1}, MF_ERR_ID_DOT_SEGMENT},
        {{.uris = {"https://example.org/a"}, .n_uri = 1}, MF_ERR_ID_SCHEME},
        {{.uris = {"spiffe://example.org/a"}, .n_uri = 1, .bc = true, .bc_ca = true},
         MF_ERR_POLICY_DENIED},
        {{.uris = {"spiffe://example.org/a"}, .n_uri = 1, .two_attrs = true}, MF_ERR_PROTO_DER},
        {{.uris = {"spiffe://example.org/a"}, .n_uri = 1, .bc = true}, MF_OK},
        {{.uris = {"spiffe://example.org"}, .n_uri = 1}, MF_OK},
        {{.n_uri = 0, .bc = true}, MF_OK},
        {{.no_attr = true}, MF_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mf_buf der;
        mf_buf_init(&der, MF_MAX_CSR, 0);
        craft_csr(k->p384, &cases[i].c, &der);
        mf_res r = verify_buf(&der);
        if (r.err != cases[i].want) {
            print_error("case %zu: got %s, want %s\n", i, mf_err_name(r.err),
                        mf_err_name(cases[i].want));
        }
        assert_int_equal(r.err, cases[i].want);
        mf_buf_cleanup(&der);
    }
}

static void test_mf_csr_verify_size_and_truncation_refused(void **state)
{
    struct keys *k = *state;
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR + 2, 0);
    ASSERT_OK(mf_csr_create(k->p256, "spiffe://example.org/t", &der));
    struct mf_csr *csr = NULL;
    for (size_t n = 0; n < der.len; n++) {
        mf_res r = mf_csr_verify(der.data, n, &csr);
        assert_false(mf_ok(r));
        assert_null(csr);
    }
    size_t len = der.len;
    ASSERT_OK(mf_buf_append_u8(&der, 0));
    ASSERT_ERR(mf_csr_verify(der.data, der.len, &csr), MF_ERR_PROTO_DER);
    /* cap and cap + 1 */
    ASSERT_OK(mf_buf_reserve(&der, MF_MAX_CSR + 1 - der.len));
    memset(der.data + len, 0, MF_MAX_CSR + 1 - len);
    der.len = MF_MAX_CSR + 1;
    ASSERT_ERR(mf_csr_verify(der.data, MF_MAX_CSR + 1, &csr), MF_ERR_PROTO_TOO_LARGE);
    ASSERT_ERR(mf_csr_verify(der.data, MF_MAX_CSR, &csr), MF_ERR_PROTO_DER);
    ASSERT_ERR(mf_csr_verify(der.data, 0, &csr), MF_ERR_PROTO_DER);
    ASSERT_ERR(mf_csr_verify(NULL, 0, &csr), MF_ERR_USAGE_NULL);
    assert_null(csr);
    mf_buf_cleanup(&der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_csr_create_verify_ok),
        cmocka_unit_test(test_mf_csr_create_without_id_ok),
        cmocka_unit_test(test_mf_csr_create_invalid_id_refused),
        cmocka_unit_test(test_mf_csr_verify_openssl_ok),
        cmocka_unit_test(test_mf_csr_verify_openssl_refusals),
        cmocka_unit_test(test_mf_csr_verify_tampered_refused),
        cmocka_unit_test(test_mf_csr_verify_signed_by_other_key_refused),
        cmocka_unit_test(test_mf_csr_verify_san_rules_refused),
        cmocka_unit_test(test_mf_csr_verify_size_and_truncation_refused),
    };
    return cmocka_run_group_tests_name("mf_csr", tests, setup, teardown);
}
