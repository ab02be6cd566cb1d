/* wrap: free munmap */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_x509 keys: generation, PKCS#8 and SEC 1 in and out
 * (including keys made by OpenSSL), public keys (SPKI, JWK coordinates),
 * JOSE ECDSA against an OpenSSL signature, refusals of other curves, RSA,
 * mismatched and out-of-range keys, and wiping: free() and munmap() are
 * wrapped so a test can check that a secret buffer or a key page is all
 * zeros at the moment it is released.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <sys/mman.h>

#include <cmocka.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/core/mf_mem.h"
#include "api/pki/mf_x509.h"
#include "mf_test.h"

/* ---- release watchers ----------------------------------------------------- */

void __real_free(void *p);
void __wrap_free(void *p);
int __real_munmap(void *addr, size_t len);
int __wrap_munmap(void *addr, size_t len);

static const void *watch_ptr;
static size_t watch_len;
static int watch_seen;   /* times the watched block was released */
static int watch_zeroed; /* ... and was all zeros then */

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

static void watch(const void *p, size_t n)
{
    watch_ptr = p;
    watch_len = n;
    watch_seen = 0;
    watch_zeroed = 0;
}

void __wrap_free(void *p)
{
    if (p != NULL && p == watch_ptr) {
        watch_seen++;
        watch_zeroed += all_zero(p, watch_len);
        watch_ptr = NULL;
    }
    __real_free(p);
}

int __wrap_munmap(void *addr, size_t len)
{
    if (addr != NULL && addr == watch_ptr) {
        watch_seen++;
        watch_zeroed += all_zero(addr, watch_len < len ? watch_len : len);
        watch_ptr = NULL;
    }
    return __real_munmap(addr, len);
}

/* ---- fixtures made with OpenSSL 3.0 (test keys, not used anywhere else) --- */

/* openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 */
static const char p256_pkcs8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvRP3Us1d4SBp6hQ+\n"
    "S6SC81BlXDvlKwlSdlRiwmVR9zehRANCAAQ00eqtgD+7bJ9pezujxuUoD/Ks0+Pi\n"
    "JQTH2zggAXa/utksBlo65DMkjL5aJAM2XlZOG82klXn4xX83EBQPL1po\n"
    "-----END PRIVATE KEY-----\n";

/* the same key: openssl ec (SEC 1), after an EC PARAMETERS block as
 * openssl ecparam -genkey writes */
static const char p256_sec1[] = "-----BEGIN EC PARAMETERS-----\n"
                                "BggqhkjOPQMBBw==\n"
                                "-----END EC PARAMETERS-----\n"
                                "-----BEGIN EC PRIVATE KEY-----\n"
                                "MHcCAQEEIL0T91LNXeEgaeoUPkukgvNQZVw75SsJUnZUYsJlUfc3oAoGCCqGSM49\n"
                                "AwEHoUQDQgAENNHqrYA/u2yfaXs7o8blKA/yrNPj4iUEx9s4IAF2v7rZLAZaOuQz\n"
                                "JIy+WiQDNl5WThvNpJV5+MV/NxAUDy9aaA==\n"
                                "-----END EC PRIVATE KEY-----\n";

/* its public key, openssl pkey -pubout */
static const char p256_spki_b64[] =
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENNHqrYA/u2yfaXs7o8blKA/yrNPj"
    "4iUEx9s4IAF2v7rZLAZaOuQzJIy+WiQDNl5WThvNpJV5+MV/NxAUDy9aaA==";

/* openssl dgst -sha256 -sign p256 over "mayfly jose test": r and s */
static const char jose_msg[] = "mayfly jose test";
static const uint8_t jose_sig[64] = {
    0x24, 0x72, 0xf2, 0x73, 0x70, 0xdd, 0x21, 0x05, 0xbc, 0x3f, 0x02, 0x5e, 0x2d, 0x31, 0x26, 0x42,
    0x68, 0xc3, 0x1f, 0xfa, 0x39, 0xdd, 0xed, 0xc5, 0xa0, 0x60, 0x9c, 0xf7, 0x4f, 0x04, 0x51, 0x91,
    0xe5, 0x3b, 0x74, 0x1c, 0xd9, 0x39, 0xf7, 0xa9, 0xbf, 0x0b, 0x4c, 0xfd, 0x8f, 0x43, 0xa2, 0xeb,
    0x80, 0xef, 0x78, 0xe6, 0x65, 0xd1, 0x4c, 0xce, 0xc3, 0x93, 0xfc, 0x2a, 0xb6, 0xa8, 0x0d, 0xd6};

static const char p384_pkcs8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBKLjUGfZ/6KsGMjmqZ\n"
    "t3HHnkku0OKXMNBgBNnc4dwkbbayWKgUsBHijC5M3S8/1nahZANiAAQufzNk7MO2\n"
    "hHx8WIjAlh3J9R1k8oI5zJG24Fq0EMRx9hHs7J7j610yf9EQdoTEWTIaXVEpmcmC\n"
    "NE9pRkBl/r43Xx36BE1hx7U5paIA6UPJDlmebmg5rnAd71h1xc0vVZw=\n"
    "-----END PRIVATE KEY-----\n";

/* secp256k1: a curve we do not accept */
static const char k1_pkcs8[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIGEAgEAMBAGByqGSM49AgEGBSuBBAAKBG0wawIBAQQgRlnfBE9XZX7Sbmn9QXrd\n"
                               "1Wty66K3JWidrIit6Z0gDJ2hRANCAAQy4Z/UpOfZTosnrq4q0ETz/TGxtG9k2YdO\n"
                               "vVitrpgn7DAdkuBGeTx49gG104eZnFH2LrsxrVPzIHacDi9o3Ism\n"
                               "-----END PRIVATE KEY-----\n";

/* RSA-512 */
static const char rsa_pkcs8[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAyFPGn2XnvfrXwwu3\n"
                                "/R2zxYxQ2TeFmAjzyJrIXxG5PV3LsWmHmH2NnPX0CQwUZUaqLdDkz35WPFxN7A/S\n"
                                "QpdeQQIDAQABAkEAhoBJIYioOdQLvbdGhznEE+UL+2vd1KBeHdhepAYgW2RHP7TP\n"
                                "xVS4sgzPhV8Su9vLRu6Q6XJUvIWrqRaKccBWYQIhAPbPmwy4bms3BTP3HxouB3H5\n"
                                "59ajXfBYMKtAWUIVLnfFAiEAz8kgaTMW7iMeY3WYRJYuP3WVfNoz+uUTX6fTWlwl\n"
                                "eE0CIQCAmcQMaL0AGHcZkJYgKgOvG6v1ZsI3zXvuf2UCzc6ckQIgY2LNaOQx/Je5\n"
                                "qlMOEQhQeLQSW5S3NjOp76ADfP4EQiUCIAQseQLJGW8XA9Lusrl385wjUbxFj1q7\n"
                                "KQd2j6MB9Fyx\n"
                                "-----END PRIVATE KEY-----\n";

/* ---- helpers ---------------------------------------------------------------- */

/* The DER of the first PEM block with the given label. */
static void pem_block(const char *pem, const char *want, struct mf_buf *der)
{
    struct mf_cur cur;
    char label[32];
    mf_cur_init(&cur, pem, strlen(pem));
    for (;;) {
        ASSERT_OK(mf_pem_next(&cur, label, sizeof(label), der));
        if (strcmp(label, want) == 0) {
            return;
        }
    }
}

static struct mf_pubkey *public_of(const struct mf_key *key)
{
    struct mf_pubkey *pk = NULL;
    ASSERT_OK(mf_key_public(key, &pk));
    return pk;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_mf_key_generate_roundtrip_der_pem_ok(void **state)
{
    (void)state;
    const enum mf_key_type types[] = {MF_KEY_EC_P256, MF_KEY_EC_P384};
    for (size_t i = 0; i < 2; i++) {
        struct mf_key *k = NULL, *k2 = NULL, *k3 = NULL;
        ASSERT_OK(mf_key_generate(types[i], &k));
        assert_int_equal(mf_key_type(k), types[i]);
        struct mf_buf der, pem;
        mf_buf_init(&der, 4096, MF_BUF_SECRET);
        mf_buf_init(&pem, 4096, MF_BUF_SECRET);
        ASSERT_OK(mf_key_to_der(k, &der));
        ASSERT_OK(mf_key_to_pem(k, &pem));
        assert_non_null(strstr(mf_buf_cstr(&pem), "-----BEGIN PRIVATE KEY-----"));
        ASSERT_OK(mf_key_from_der(der.data, der.len, &k2));
        ASSERT_OK(mf_key_from_pem((const char *)pem.data, pem.len, &k3));
        struct mf_pubkey *p1 = public_of(k), *p2 = public_of(k2), *p3 = public_of(k3);
        assert_true(mf_pubkey_eq(p1, p2));
        assert_true(mf_pubkey_eq(p1, p3));
        assert_int_equal(mf_pubkey_type(p1), types[i]);
        /* the encoding is canonical: re-encoding gives the same bytes */
        struct mf_buf der2;
        mf_buf_init(&der2, 4096, MF_BUF_SECRET);
        ASSERT_OK(mf_key_to_der(k3, &der2));
        assert_int_equal(der.len, der2.len);
        assert_memory_equal(der.data, der2.data, der.len);
        mf_buf_cleanup(&der2);
        mf_pubkey_free(p1);
        mf_pubkey_free(p2);
        mf_pubkey_free(p3);
        mf_buf_cleanup(&der);
        mf_buf_cleanup(&pem);
        mf_key_free(k);
        mf_key_free(k2);
        mf_key_free(k3);
    }
    struct mf_key *k = NULL;
    ASSERT_ERR(mf_key_generate((enum mf_key_type)7, &k), MF_ERR_USAGE_ARG);
    assert_null(k);
}

static void test_mf_key_to_der_non_secret_buffer_refused(void **state)
{
    (void)state;
    struct mf_key *k = NULL;
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &k));
    struct mf_buf plain;
    mf_buf_init(&plain, 4096, 0);
    ASSERT_ERR(mf_key_to_der(k, &plain), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_key_to_pem(k, &plain), MF_ERR_USAGE_ARG);
    assert_int_equal(plain.len, 0);
    mf_buf_cleanup(&plain);
    mf_key_free(k);
}

static void test_mf_key_der_buffer_wiped_on_cleanup_ok(void **state)
{
    (void)state;
    struct mf_key *k = NULL;
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &k));
    struct mf_buf der;
    mf_buf_init(&der, 4096, MF_BUF_SECRET);
    ASSERT_OK(mf_key_to_der(k, &der));
    assert_false(all_zero(der.data, der.len));
    watch(der.data, der.cap + 1);
    mf_buf_cleanup(&der);
    assert_int_equal(watch_seen, 1);
    assert_int_equal(watch_zeroed, 1);

    /* PEM text of a key is a secret too */
    struct mf_buf pem;
    mf_buf_init(&pem, 4096, MF_BUF_SECRET);
    ASSERT_OK(mf_key_to_pem(k, &pem));
    watch(pem.data, pem.cap + 1);
    mf_buf_cleanup(&pem);
    assert_int_equal(watch_seen, 1);
    assert_int_equal(watch_zeroed, 1);
    mf_key_free(k);
}

static void test_mf_key_free_wipes_page_ok(void **state)
{
    (void)state;
    struct mf_key *k = NULL, *k2 = NULL;
    size_t pages = mf_secret_slab_pages();
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P384, &k));
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P384, &k2));
    /* keys share locked slab pages (mf_secret_alloc) */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    void *slab = (void *)((uintptr_t)k / page * page);
    assert_ptr_equal(slab, (void *)((uintptr_t)k2 / page * page));
    assert_int_equal(mf_secret_slab_pages(), pages + 1);
    /* a key freed while its page lives on is wiped in place at once */
    assert_false(all_zero(k2, 64));
    mf_key_free(k2);
    assert_true(all_zero(k2, 64));
    /* the last key of a page: the page is wiped, then unmapped */
    watch(slab, (size_t)page);
    mf_key_free(k);
    assert_int_equal(watch_seen, 1);
    assert_int_equal(watch_zeroed, 1);
    assert_int_equal(mf_secret_slab_pages(), pages);
    mf_key_free(NULL);
}

/* A key shared by reference (the agent's cache and its snapshots) stays
 * whole until its last holder lets go, then is wiped. */
static void test_mf_key_ref_last_free_wipes_ok(void **state)
{
    (void)state;
    struct mf_key *k = NULL, *keep = NULL;
    struct mf_buf sig;
    mf_buf_init(&sig, 256, 0);
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &k));
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &keep)); /* holds the slab page */
    assert_ptr_equal(mf_key_ref(k), k);
    assert_ptr_equal(mf_key_ref(k), k);
    assert_null(mf_key_ref(NULL));
    mf_key_free(k);
    mf_key_free(k);
    assert_false(all_zero(k, 64));
    ASSERT_OK(mf_key_sign_jose(k, (const uint8_t *)"m", 1, &sig));
    assert_int_equal(sig.len, 64);
    mf_key_free(k); /* the last one */
    assert_true(all_zero(k, 64));
    mf_key_free(keep);
    mf_buf_cleanup(&sig);
}

static void test_mf_key_from_pem_openssl_forms_ok(void **state)
{
    (void)state;
    struct mf_key *a = NULL, *b = NULL;
    ASSERT_OK(mf_key_from_pem(p256_pkcs8, strlen(p256_pkcs8), &a));
    ASSERT_OK(mf_key_from_pem(p256_sec1, strlen(p256_sec1), &b));
    struct mf_pubkey *pa = public_of(a), *pb = public_of(b);
    assert_true(mf_pubkey_eq(pa, pb));

    /* same SPKI as openssl pkey -pubout */
    struct mf_buf want, got;
    mf_buf_init(&want, 256, 0);
    mf_buf_init(&got, 256, 0);
    ASSERT_OK(mf_b64_decode(p256_spki_b64, strlen(p256_spki_b64), &want));
    ASSERT_OK(mf_pubkey_to_der(pa, &got));
    assert_int_equal(want.len, got.len);
    assert_memory_equal(want.data, got.data, want.len);

    /* our PKCS#8 is byte-identical to OpenSSL's for the same key */
    struct mf_buf ossl, ours;
    mf_buf_init(&ossl, 4096, MF_BUF_SECRET);
    mf_buf_init(&ours, 4096, MF_BUF_SECRET);
    pem_block(p256_pkcs8, "PRIVATE KEY", &ossl);
    ASSERT_OK(mf_key_to_der(b, &ours));
    assert_int_equal(ossl.len, ours.len);
    assert_memory_equal(ossl.data, ours.data, ours.len);

    struct mf_key *c = NULL;
    ASSERT_OK(mf_key_from_pem(p384_pkcs8, strlen(p384_pkcs8), &c));
    assert_int_equal(mf_key_type(c), MF_KEY_EC_P384);

    mf_buf_cleanup(&want);
    mf_buf_cleanup(&got);
    mf_buf_cleanup(&ossl);
    mf_buf_cleanup(&ours);
    mf_pubkey_free(pa);
    mf_pubkey_free(pb);
    mf_key_free(a);
    mf_key_free(b);
    mf_key_free(c);
}

static void test_mf_key_from_der_other_algorithms_refused(void **state)
{
    (void)state;
    struct mf_key *k = NULL;
    mf_res r = mf_key_from_pem(k1_pkcs8, strlen(k1_pkcs8), &k);
    assert_int_equal(r.err, MF_ERR_CRYPTO_KEY);
    assert_non_null(strstr(mf_err_detail(), "curve"));
    assert_null(k);
    r = mf_key_from_pem(rsa_pkcs8, strlen(rsa_pkcs8), &k);
    assert_int_equal(r.err, MF_ERR_CRYPTO_KEY);
    assert_non_null(strstr(mf_err_detail(), "not EC"));
    assert_null(k);
    /* a CERTIFICATE only: no key block */
    static const char cert_only[] =
        "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";
    ASSERT_ERR(mf_key_from_pem(cert_only, strlen(cert_only), &k), MF_ERR_PROTO_PEM);
}

static void test_mf_key_from_der_malformed_refused(void **state)
{
    (void)state;
    struct mf_buf der;
    mf_buf_init(&der, 4096, MF_BUF_SECRET);
    pem_block(p256_pkcs8, "PRIVATE KEY", &der);
    struct mf_key *k = NULL;
    /* every truncation fails cleanly */
    for (size_t n = 0; n < der.len; n++) {
        mf_res r = mf_key_from_der(der.data, n, &k);
        assert_false(mf_ok(r));
        assert_null(k);
    }
    /* a trailing byte */
    uint8_t longer[512];
    memcpy(longer, der.data, der.len);
    longer[der.len] = 0;
    ASSERT_ERR(mf_key_from_der(longer, der.len + 1, &k), MF_ERR_PROTO_DER);
    /* the embedded public key does not belong to the scalar: flip its last
     * byte (the last byte of the DER) */
    longer[der.len - 1] ^= 0x01;
    ASSERT_ERR(mf_key_from_der(longer, der.len, &k), MF_ERR_CRYPTO_MISMATCH);
    /* scalar 0 (offset 36..67 holds the 32-byte scalar) */
    memcpy(longer, der.data, der.len);
    assert_int_equal(longer[34], 0x04);
    assert_int_equal(longer[35], 0x20);
    memset(longer + 36, 0, 32);
    ASSERT_ERR(mf_key_from_der(longer, der.len, &k), MF_ERR_CRYPTO_KEY);
    /* scalar n-1+1 = n, the group order: out of range */
    static const uint8_t n256[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                     0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                     0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
    memcpy(longer + 36, n256, 32);
    ASSERT_ERR(mf_key_from_der(longer, der.len, &k), MF_ERR_CRYPTO_KEY);
    assert_null(k);
    mf_wipe(longer, sizeof(longer));
    mf_buf_cleanup(&der);
    /* garbage */
    assert_false(mf_ok(mf_key_from_der((const uint8_t *)"\x30\x80\x00\x00", 4, &k)));
    assert_false(mf_ok(mf_key_from_pem("garbage", 7, &k)));
}

static void test_mf_pubkey_der_and_coords_roundtrip_ok(void **state)
{
    (void)state;
    const enum mf_key_type types[] = {MF_KEY_EC_P256, MF_KEY_EC_P384};
    for (size_t i = 0; i < 2; i++) {
        struct mf_key *k = NULL;
        ASSERT_OK(mf_key_generate(types[i], &k));
        struct mf_pubkey *pk = public_of(k), *p2 = NULL, *p3 = NULL;
        struct mf_buf der;
        mf_buf_init(&der, 1024, 0);
        ASSERT_OK(mf_pubkey_to_der(pk, &der));
        ASSERT_OK(mf_pubkey_from_der(der.data, der.len, &p2));
        assert_true(mf_pubkey_eq(pk, p2));
        const char *crv = NULL;
        uint8_t x[48], y[48];
        size_t n = 0;
        ASSERT_OK(mf_pubkey_ec_coords(pk, &crv, x, y, &n));
        assert_string_equal(crv, i == 0 ? "P-256" : "P-384");
        assert_int_equal(n, i == 0 ? 32 : 48);
        ASSERT_OK(mf_pubkey_from_ec_coords(crv, x, n, y, n, &p3));
        assert_true(mf_pubkey_eq(pk, p3));
        /* fingerprint is SHA-256 of the SPKI */
        char fp[MF_FINGERPRINT_LEN], want[MF_FINGERPRINT_LEN];
        uint8_t h[32];
        ASSERT_OK(mf_sha256(der.data, der.len, h));
        mf_hex(h, 32, want);
        mf_pubkey_fingerprint(pk, fp);
        assert_string_equal(fp, want);

        /* refusals: short coordinates, unknown curve, wrong curve name,
         * a point off the curve */
        struct mf_pubkey *bad = NULL;
        ASSERT_ERR(mf_pubkey_from_ec_coords(crv, x, n - 1, y, n, &bad), MF_ERR_CRYPTO_KEY);
        ASSERT_ERR(mf_pubkey_from_ec_coords("P-521", x, n, y, n, &bad), MF_ERR_CRYPTO_KEY);
        ASSERT_ERR(mf_pubkey_from_ec_coords("p-256", x, n, y, n, &bad), MF_ERR_CRYPTO_KEY);
        y[n - 1] ^= 1;
        ASSERT_ERR(mf_pubkey_from_ec_coords(crv, x, n, y, n, &bad), MF_ERR_CRYPTO_KEY);
        assert_null(bad);
        /* the same point off the curve through SPKI */
        der.data[der.len - 1] ^= 1;
        ASSERT_ERR(mf_pubkey_from_der(der.data, der.len, &bad), MF_ERR_CRYPTO_KEY);
        der.data[der.len - 1] ^= 1;
        assert_null(bad);
        mf_pubkey_free(pk);
        mf_pubkey_free(p2);
        mf_pubkey_free(p3);
        mf_buf_cleanup(&der);
        mf_key_free(k);
    }
}

static void test_mf_pubkey_from_der_malformed_refused(void **state)
{
    (void)state;
    struct mf_buf der;
    mf_buf_init(&der, 256, 0);
    ASSERT_OK(mf_b64_decode(p256_spki_b64, strlen(p256_spki_b64), &der));
    struct mf_pubkey *pk = NULL;
    for (size_t n = 0; n < der.len; n++) {
        assert_false(mf_ok(mf_pubkey_from_der(der.data, n, &pk)));
    }
    /* point format byte 0x04 -> 0x02 (compressed claims) */
    der.data[26] = 0x02;
    ASSERT_ERR(mf_pubkey_from_der(der.data, der.len, &pk), MF_ERR_CRYPTO_KEY);
    der.data[26] = 0x04;
    /* curve OID P-256 -> something else (last OID byte) */
    der.data[22] ^= 0x40;
    ASSERT_ERR(mf_pubkey_from_der(der.data, der.len, &pk), MF_ERR_CRYPTO_KEY);
    assert_null(pk);
    mf_buf_cleanup(&der);
}

static void test_mf_pubkey_coords_outside_field_refused(void **state)
{
    (void)state;
    /* the P-256 field prime p, and 2^256 - 1: never coordinates */
    static const uint8_t p256[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                     0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
                                     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t ones[32], zero[32];
    memset(ones, 0xff, sizeof(ones));
    memset(zero, 0, sizeof(zero));
    struct mf_pubkey *pk = NULL;
    ASSERT_ERR(mf_pubkey_from_ec_coords("P-256", p256, 32, zero, 32, &pk), MF_ERR_CRYPTO_KEY);
    ASSERT_ERR(mf_pubkey_from_ec_coords("P-256", zero, 32, p256, 32, &pk), MF_ERR_CRYPTO_KEY);
    ASSERT_ERR(mf_pubkey_from_ec_coords("P-256", ones, 32, ones, 32, &pk), MF_ERR_CRYPTO_KEY);
    /* (0, 0) is in the field but not on the curve (b != 0) */
    ASSERT_ERR(mf_pubkey_from_ec_coords("P-256", zero, 32, zero, 32, &pk), MF_ERR_CRYPTO_KEY);
    assert_null(pk);
}

static void test_mf_pubkey_verify_jose_openssl_vector_ok(void **state)
{
    (void)state;
    struct mf_key *k = NULL;
    ASSERT_OK(mf_key_from_pem(p256_pkcs8, strlen(p256_pkcs8), &k));
    struct mf_pubkey *pk = public_of(k);
    const uint8_t *msg = (const uint8_t *)jose_msg;
    size_t len = strlen(jose_msg);
    ASSERT_OK(mf_pubkey_verify_jose(pk, msg, len, jose_sig, sizeof(jose_sig)));
    uint8_t bad[64];
    memcpy(bad, jose_sig, 64);
    bad[63] ^= 1;
    ASSERT_ERR(mf_pubkey_verify_jose(pk, msg, len, bad, 64), MF_ERR_CRYPTO_SIG);
    ASSERT_ERR(mf_pubkey_verify_jose(pk, msg, len - 1, jose_sig, 64), MF_ERR_CRYPTO_SIG);
    ASSERT_ERR(mf_pubkey_verify_jose(pk, msg, len, jose_sig, 63), MF_ERR_CRYPTO_SIG);
    /* r = 0 and s = 0 */
    memset(bad, 0, sizeof(bad));
    ASSERT_ERR(mf_pubkey_verify_jose(pk, msg, len, bad, 64), MF_ERR_CRYPTO_SIG);
    mf_pubkey_free(pk);
    mf_key_free(k);
}

static void test_mf_key_sign_jose_roundtrip_ok(void **state)
{
    (void)state;
    const enum mf_key_type types[] = {MF_KEY_EC_P256, MF_KEY_EC_P384};
    const size_t sig_len[] = {64, 96};
    struct mf_key *other = NULL;
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &other));
    struct mf_pubkey *opk = public_of(other);
    for (size_t i = 0; i < 2; i++) {
        struct mf_key *k = NULL;
        ASSERT_OK(mf_key_generate(types[i], &k));
        struct mf_pubkey *pk = public_of(k);
        const uint8_t msg[] = "header.payload";
        /* enough rounds that some r or s has a leading zero byte */
        for (int round = 0; round < 40; round++) {
            struct mf_buf sig;
            mf_buf_init(&sig, 256, 0);
            ASSERT_OK(mf_key_sign_jose(k, msg, sizeof(msg) - 1, &sig));
            assert_int_equal(sig.len, sig_len[i]);
            ASSERT_OK(mf_pubkey_verify_jose(pk, msg, sizeof(msg) - 1, sig.data, sig.len));
            if (i == 0) {
                ASSERT_ERR(mf_pubkey_verify_jose(opk, msg, sizeof(msg) - 1, sig.data, sig.len),
                           MF_ERR_CRYPTO_SIG);
            }
            mf_buf_cleanup(&sig);
        }
        mf_pubkey_free(pk);
        mf_key_free(k);
    }
    mf_pubkey_free(opk);
    mf_key_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_key_generate_roundtrip_der_pem_ok),
        cmocka_unit_test(test_mf_key_to_der_non_secret_buffer_refused),
        cmocka_unit_test(test_mf_key_der_buffer_wiped_on_cleanup_ok),
        cmocka_unit_test(test_mf_key_ref_last_free_wipes_ok),
        cmocka_unit_test(test_mf_key_free_wipes_page_ok),
        cmocka_unit_test(test_mf_key_from_pem_openssl_forms_ok),
        cmocka_unit_test(test_mf_key_from_der_other_algorithms_refused),
        cmocka_unit_test(test_mf_key_from_der_malformed_refused),
        cmocka_unit_test(test_mf_pubkey_der_and_coords_roundtrip_ok),
        cmocka_unit_test(test_mf_pubkey_from_der_malformed_refused),
        cmocka_unit_test(test_mf_pubkey_coords_outside_field_refused),
        cmocka_unit_test(test_mf_pubkey_verify_jose_openssl_vector_ok),
        cmocka_unit_test(test_mf_key_sign_jose_roundtrip_ok),
    };
    return cmocka_run_group_tests_name("mf_key", tests, NULL, NULL);
}
