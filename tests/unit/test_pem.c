/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_pem: base64 and base64url (RFC 4648 vectors and strict
 * refusals), PEM encoding and the PEM block reader (several blocks, CRLF,
 * junk between blocks, truncated, mismatched, garbage, headers, caps), and
 * SHA-256.
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
#include "mf_test.h"

struct vec {
    const char *plain;
    const char *std;
    const char *url;
};

/* RFC 4648 section 10 */
static const struct vec vectors[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void test_mf_b64_encode_rfc4648_vectors_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vec *v = &vectors[i];
        struct mf_buf b;
        mf_buf_init(&b, 64, 0);
        ASSERT_OK(mf_b64_encode((const uint8_t *)v->plain, strlen(v->plain), &b));
        assert_string_equal(mf_buf_cstr(&b), v->std);
        mf_buf_reset(&b);
        ASSERT_OK(mf_b64url_encode((const uint8_t *)v->plain, strlen(v->plain), &b));
        assert_string_equal(mf_buf_cstr(&b), v->url);
        mf_buf_reset(&b);
        ASSERT_OK(mf_b64_decode(v->std, strlen(v->std), &b));
        assert_int_equal(b.len, strlen(v->plain));
        assert_memory_equal(mf_buf_cstr(&b), v->plain, b.len);
        mf_buf_reset(&b);
        ASSERT_OK(mf_b64url_decode(v->url, strlen(v->url), &b));
        assert_int_equal(b.len, strlen(v->plain));
        assert_memory_equal(mf_buf_cstr(&b), v->plain, b.len);
        mf_buf_cleanup(&b);
    }
}

static void test_mf_b64_alphabet_roundtrip_ok(void **state)
{
    (void)state;
    /* every byte value, so every character of both alphabets appears */
    uint8_t all[256];
    for (size_t i = 0; i < sizeof(all); i++) {
        all[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t n = 0; n <= sizeof(all); n += 17) {
        struct mf_buf e, d;
        mf_buf_init(&e, 1024, 0);
        mf_buf_init(&d, 1024, 0);
        ASSERT_OK(mf_b64_encode(all, n, &e));
        ASSERT_OK(mf_b64_decode((const char *)e.data, e.len, &d));
        assert_int_equal(d.len, n);
        assert_memory_equal(d.data, all, n);
        mf_buf_reset(&e);
        mf_buf_reset(&d);
        ASSERT_OK(mf_b64url_encode(all, n, &e));
        assert_null(memchr(e.data, '+', e.len));
        assert_null(memchr(e.data, '/', e.len));
        assert_null(memchr(e.data, '=', e.len));
        ASSERT_OK(mf_b64url_decode((const char *)e.data, e.len, &d));
        assert_int_equal(d.len, n);
        assert_memory_equal(d.data, all, n);
        mf_buf_cleanup(&e);
        mf_buf_cleanup(&d);
    }
}

/* Secrets (MF_BUF_SECRET buffers) are mapped by arithmetic, public data by
 * tables: the two give the same text, the same bytes and the same refusals,
 * for every byte value in every position of a group, in both alphabets. */
static void test_mf_b64_secret_and_public_paths_agree(void **state)
{
    (void)state;
    uint8_t all[256];
    for (size_t i = 0; i < sizeof(all); i++) {
        all[i] = (uint8_t)(i * 7 + 3);
    }
    for (int url = 0; url < 2; url++) {
        for (size_t n = 0; n <= sizeof(all); n++) {
            struct mf_buf pub, sec;
            mf_buf_init(&pub, 1024, 0);
            mf_buf_init(&sec, 1024, MF_BUF_SECRET);
            ASSERT_OK(url ? mf_b64url_encode(all, n, &pub) : mf_b64_encode(all, n, &pub));
            ASSERT_OK(url ? mf_b64url_encode(all, n, &sec) : mf_b64_encode(all, n, &sec));
            assert_int_equal(pub.len, sec.len);
            assert_memory_equal(pub.data, sec.data, pub.len);
            mf_buf_cleanup(&pub);
            mf_buf_cleanup(&sec);
        }
        for (int c = 0; c < 256; c++) {
            for (size_t pos = 0; pos < 4; pos++) {
                char text[8] = "Zm9vYmFy"; /* "foobar" */
                text[pos] = (char)c;
                struct mf_buf pub, sec;
                mf_buf_init(&pub, 64, 0);
                mf_buf_init(&sec, 64, MF_BUF_SECRET);
                mf_res rp = url ? mf_b64url_decode(text, 8, &pub) : mf_b64_decode(text, 8, &pub);
                mf_res rs = url ? mf_b64url_decode(text, 8, &sec) : mf_b64_decode(text, 8, &sec);
                assert_int_equal(rp.err, rs.err);
                assert_int_equal(pub.len, sec.len);
                if (pub.len > 0) {
                    assert_memory_equal(pub.data, sec.data, pub.len);
                }
                bool in_alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9') || c == (url ? '-' : '+') ||
                                c == (url ? '_' : '/');
                assert_int_equal(mf_ok(rp), in_alpha);
                mf_buf_cleanup(&pub);
                mf_buf_cleanup(&sec);
            }
        }
    }
}

/* A PEM block is decoded by table when its label is public (a certificate
 * read into a secret buffer beside its key) and in constant time otherwise:
 * the bytes are the same either way, into either kind of buffer. */
static void test_mf_pem_next_labels_decode_alike(void **state)
{
    (void)state;
    uint8_t body[200];
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (uint8_t)(i * 13 + 5);
    }
    static const char *const labels[] = {"CERTIFICATE", "PRIVATE KEY", "PUBLIC KEY",
                                         "EC PRIVATE KEY"};
    for (size_t l = 0; l < sizeof(labels) / sizeof(labels[0]); l++) {
        struct mf_buf pem;
        mf_buf_init(&pem, 4096, MF_BUF_SECRET);
        ASSERT_OK(mf_pem_encode(labels[l], body, sizeof(body), &pem));
        for (int secret = 0; secret < 2; secret++) {
            struct mf_buf der;
            struct mf_cur cur;
            char label[32];
            mf_buf_init(&der, 1024, secret ? MF_BUF_SECRET : 0);
            mf_cur_init(&cur, pem.data, pem.len);
            ASSERT_OK(mf_pem_next(&cur, label, sizeof(label), &der));
            assert_string_equal(label, labels[l]);
            assert_int_equal(der.len, sizeof(body));
            assert_memory_equal(der.data, body, sizeof(body));
            mf_buf_cleanup(&der);
        }
        mf_buf_cleanup(&pem);
    }
}

static void test_mf_b64_decode_malformed_refused(void **state)
{
    (void)state;
    static const char *bad_std[] = {
        "Zg",       /* padding missing */
        "Zg=",      /* length not a multiple of 4 */
        "Zh==",     /* non-zero trailing bits */
        "Zm9=",     /* non-zero trailing bits */
        "Zm 9v",    /* whitespace */
        "Zm9v\n",   /* newline */
        "Z===",     /* too much padding */
        "Zg==Zm9v", /* data after padding */
        "Zm-v",     /* url alphabet in std */
        "Zm9v====", "=Zm9",
    };
    static const char *bad_url[] = {
        "Zg==", /* padding in url form */
        "Z",    /* impossible length */
        "Zh",   /* non-zero trailing bits */
        "Zm+v", /* std alphabet in url */
        "Zm9vY",
    };
    for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
        struct mf_buf b;
        mf_buf_init(&b, 64, 0);
        mf_res r = mf_b64_decode(bad_std[i], strlen(bad_std[i]), &b);
        assert_int_equal(r.err, MF_ERR_PROTO_PEM);
        assert_int_equal(b.len, 0); /* nothing half-written */
        mf_buf_cleanup(&b);
    }
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
        struct mf_buf b;
        mf_buf_init(&b, 64, 0);
        mf_res r = mf_b64url_decode(bad_url[i], strlen(bad_url[i]), &b);
        assert_int_equal(r.err, MF_ERR_PROTO_PEM);
        assert_int_equal(b.len, 0);
        mf_buf_cleanup(&b);
    }
    /* an embedded NUL is just another character outside the alphabet */
    struct mf_buf b;
    mf_buf_init(&b, 64, 0);
    ASSERT_ERR(mf_b64_decode("Zm\0v", 4, &b), MF_ERR_PROTO_PEM);
    mf_buf_cleanup(&b);
}

static void test_mf_b64_decode_cap_refused(void **state)
{
    (void)state;
    struct mf_buf b;
    mf_buf_init(&b, 6, 0);
    ASSERT_OK(mf_b64_decode("Zm9vYmFy", 8, &b)); /* exactly 6 */
    mf_buf_reset(&b);
    ASSERT_ERR(mf_b64_decode("Zm9vYmFyYg==", 12, &b), MF_ERR_PROTO_TOO_LARGE);
    mf_buf_cleanup(&b);
}

static void test_mf_pem_encode_lines_ok(void **state)
{
    (void)state;
    uint8_t der[100];
    for (size_t i = 0; i < sizeof(der); i++) {
        der[i] = (uint8_t)i;
    }
    struct mf_buf b;
    mf_buf_init(&b, 4096, 0);
    ASSERT_OK(mf_pem_encode("CERTIFICATE", der, sizeof(der), &b));
    const char *s = mf_buf_cstr(&b);
    assert_true(strncmp(s, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
    /* 100 bytes: two 64-column lines (48 bytes each), then 8 characters */
    const char *l1 = s + 28;
    const char *nl = strchr(l1, '\n');
    assert_int_equal(nl - l1, 64);
    const char *l2 = nl + 1;
    nl = strchr(l2, '\n');
    assert_int_equal(nl - l2, 64);
    const char *l3 = nl + 1;
    nl = strchr(l3, '\n');
    assert_int_equal(nl - l3, 8);
    assert_string_equal(nl + 1, "-----END CERTIFICATE-----\n");

    ASSERT_ERR(mf_pem_encode("bad label", der, 1, &b), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_pem_encode("X", der, 0, &b), MF_ERR_USAGE_ARG);
    mf_buf_cleanup(&b);
}

static void test_mf_pem_next_several_blocks_ok(void **state)
{
    (void)state;
    const uint8_t a[] = {1, 2, 3, 4, 5};
    const uint8_t c[] = {0xff, 0xfe};
    struct mf_buf text, der;
    mf_buf_init(&text, 4096, 0);
    mf_buf_init(&der, 64, 0);
    ASSERT_OK(mf_buf_append_str(&text, "leading junk\n"));
    ASSERT_OK(mf_pem_encode("CERTIFICATE", a, sizeof(a), &text));
    ASSERT_OK(mf_buf_append_str(&text, "between\r\n"));
    ASSERT_OK(mf_buf_append_str(&text, "-----BEGIN EC PRIVATE KEY-----\r\n//4=\r\n"
                                       "-----END EC PRIVATE KEY-----"));

    struct mf_cur cur;
    char label[32];
    mf_cur_init(&cur, text.data, text.len);
    ASSERT_OK(mf_pem_next(&cur, label, sizeof(label), &der));
    assert_string_equal(label, "CERTIFICATE");
    assert_int_equal(der.len, sizeof(a));
    assert_memory_equal(der.data, a, sizeof(a));
    ASSERT_OK(mf_pem_next(&cur, label, sizeof(label), &der));
    assert_string_equal(label, "EC PRIVATE KEY");
    assert_int_equal(der.len, sizeof(c)); /* written, not appended */
    assert_memory_equal(der.data, c, sizeof(c));
    ASSERT_ERR(mf_pem_next(&cur, label, sizeof(label), &der), MF_ERR_IO_EOF);
    mf_buf_cleanup(&text);
    mf_buf_cleanup(&der);
}

static void expect_pem_error(const char *text, enum mf_err want)
{
    struct mf_buf der;
    struct mf_cur cur;
    char label[32];
    mf_buf_init(&der, 64, 0);
    mf_cur_init(&cur, text, strlen(text));
    mf_res r = mf_pem_next(&cur, label, sizeof(label), &der);
    if (r.err != want) {
        print_error("text %s: got %s, want %s\n", text, mf_err_name(r.err), mf_err_name(want));
    }
    assert_int_equal(r.err, want);
    assert_int_equal(cur.off, 0); /* a failed read does not move */
    assert_int_equal(der.len, 0);
    mf_buf_cleanup(&der);
}

static void test_mf_pem_next_malformed_refused(void **state)
{
    (void)state;
    expect_pem_error("", MF_ERR_IO_EOF);
    expect_pem_error("no pem here\n", MF_ERR_IO_EOF);
    expect_pem_error("x-----BEGIN A-----\nAQID\n-----END A-----\n", MF_ERR_IO_EOF);
    /* truncated: no END line, or cut in the middle of the body */
    expect_pem_error("-----BEGIN A-----\nAQID\n", MF_ERR_PROTO_PEM);
    expect_pem_error("-----BEGIN A-----\nAQ", MF_ERR_PROTO_PEM);
    expect_pem_error("-----BEGIN A-----", MF_ERR_PROTO_PEM);
    expect_pem_error("-----BEGIN A-----\nAQID\n-----END A---", MF_ERR_PROTO_PEM);
    /* END label differs */
    expect_pem_error("-----BEGIN A-----\nAQID\n-----END B-----\n", MF_ERR_PROTO_PEM);
    /* garbage body, bad padding, empty body, empty line */
    expect_pem_error("-----BEGIN A-----\nA*ID\n-----END A-----\n", MF_ERR_PROTO_PEM);
    expect_pem_error("-----BEGIN A-----\nAQI\n-----END A-----\n", MF_ERR_PROTO_PEM);
    expect_pem_error("-----BEGIN A-----\n-----END A-----\n", MF_ERR_PROTO_PEM);
    expect_pem_error("-----BEGIN A-----\nAQID\n\nAQID\n-----END A-----\n", MF_ERR_PROTO_PEM);
    /* RFC 1421 headers (encrypted keys) */
    expect_pem_error("-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\nAQID\n-----END A-----\n",
                     MF_ERR_PROTO_PEM);
    /* bad labels */
    expect_pem_error("-----BEGIN a-----\nAQID\n-----END a-----\n", MF_ERR_PROTO_PEM);
    expect_pem_error("-----BEGIN -----\nAQID\n-----END -----\n", MF_ERR_PROTO_PEM);
    /* a label longer than the caller's buffer */
    expect_pem_error("-----BEGIN AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-----\nAQID\n"
                     "-----END AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-----\n",
                     MF_ERR_PROTO_PEM);
    /* decoded size over the buffer's cap (64) */
    expect_pem_error("-----BEGIN A-----\n"
                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
                     "-----END A-----\n",
                     MF_ERR_PROTO_TOO_LARGE);
}

static void test_mf_pem_roundtrip_secret_ok(void **state)
{
    (void)state;
    uint8_t key[48];
    ASSERT_OK(mf_random(key, sizeof(key)));
    struct mf_buf pem, der;
    mf_buf_init(&pem, 4096, MF_BUF_SECRET);
    mf_buf_init(&der, 4096, MF_BUF_SECRET);
    ASSERT_OK(mf_pem_encode("PRIVATE KEY", key, sizeof(key), &pem));
    struct mf_cur cur;
    char label[16];
    mf_cur_init(&cur, pem.data, pem.len);
    ASSERT_OK(mf_pem_next(&cur, label, sizeof(label), &der));
    assert_string_equal(label, "PRIVATE KEY");
    assert_int_equal(der.len, sizeof(key));
    assert_memory_equal(der.data, key, sizeof(key));
    assert_int_equal(mf_cur_remaining(&cur), 0);
    mf_buf_cleanup(&pem);
    mf_buf_cleanup(&der);
    mf_wipe(key, sizeof(key));
}

static void test_mf_sha256_abc_ok(void **state)
{
    (void)state;
    /* FIPS 180-2 appendix B.1 */
    uint8_t h[32];
    char hex[65];
    ASSERT_OK(mf_sha256((const uint8_t *)"abc", 3, h));
    mf_hex(h, sizeof(h), hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ASSERT_OK(mf_sha256(NULL, 0, h));
    mf_hex(h, sizeof(h), hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_b64_encode_rfc4648_vectors_ok),
        cmocka_unit_test(test_mf_b64_alphabet_roundtrip_ok),
        cmocka_unit_test(test_mf_b64_secret_and_public_paths_agree),
        cmocka_unit_test(test_mf_pem_next_labels_decode_alike),
        cmocka_unit_test(test_mf_b64_decode_malformed_refused),
        cmocka_unit_test(test_mf_b64_decode_cap_refused),
        cmocka_unit_test(test_mf_pem_encode_lines_ok),
        cmocka_unit_test(test_mf_pem_next_several_blocks_ok),
        cmocka_unit_test(test_mf_pem_next_malformed_refused),
        cmocka_unit_test(test_mf_pem_roundtrip_secret_ok),
        cmocka_unit_test(test_mf_sha256_abc_ok),
    };
    return cmocka_run_group_tests_name("mf_pem", tests, NULL, NULL);
}
