/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_x509 certificates: the issuance profiles (SPIFFE.md
 * B1-B19, B27-B30), each checked on the issued DER by two parsers, ours and
 * wolfSSL's DecodedCert (an independent reader); the NotAfter cap; chain
 * verification (B20-B27) at a given time: expiry edges, the wrong trust
 * domain's authorities, intermediates, tampered signatures, every leaf rule
 * and the issuer rules (cA, keyCertSign, pathLenConstraint), on
 * certificates crafted with the module's own DER writer; wolfSSL's
 * certificate manager accepting what we issue (TLS interop); and the
 * certificate list, PEM and DER helpers with their refusals.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <cmocka.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/settings.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "api/pki/mf_x509_int.h"
#include "mf_test.h"

#define LEAF_ID "spiffe://example.org/ns/prod/sa/web"

struct fx {
    int64_t now;
    struct mf_key *ca_key;
    struct mf_key *other_key;
    struct mf_key *leaf_key;
    struct mf_cert *ca;       /* spiffe://example.org, P-256, 1 day */
    struct mf_cert *other_ca; /* spiffe://other.org */
    struct mf_pubkey *leaf_pub;
};

static struct mf_spiffe_id parse_id(const char *s)
{
    struct mf_spiffe_id id;
    ASSERT_OK(mf_spiffeid_parse_cstr(s, &id));
    return id;
}

static int setup(void **state)
{
    static struct fx f;
    struct mf_spiffe_id td = parse_id("spiffe://example.org");
    struct mf_spiffe_id otd = parse_id("spiffe://other.org");
    f.now = mf_now();
    if (!mf_ok(mf_key_generate(MF_KEY_EC_P256, &f.ca_key)) ||
        !mf_ok(mf_key_generate(MF_KEY_EC_P256, &f.other_key)) ||
        !mf_ok(mf_key_generate(MF_KEY_EC_P256, &f.leaf_key)) ||
        !mf_ok(mf_key_public(f.leaf_key, &f.leaf_pub)) ||
        !mf_ok(mf_x509_self_signed(&td, f.ca_key, f.now, 86400, &f.ca)) ||
        !mf_ok(mf_x509_self_signed(&otd, f.other_key, f.now, 86400, &f.other_ca))) {
        return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mf_cert_free(f->ca);
    mf_cert_free(f->other_ca);
    mf_pubkey_free(f->leaf_pub);
    mf_key_free(f->ca_key);
    mf_key_free(f->other_key);
    mf_key_free(f->leaf_key);
    return 0;
}

/* wolfSSL's independent parse of a certificate. */
static struct DecodedCert *wolf_parse(const struct mf_cert *c)
{
    size_t len;
    const uint8_t *der = mf_cert_der(c, &len);
    struct DecodedCert *dc = calloc(1, sizeof(*dc));
    assert_non_null(dc);
    wc_InitDecodedCert(dc, der, (word32)len, NULL);
    assert_int_equal(wc_ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL), 0);
    return dc;
}

static void wolf_free(struct DecodedCert *dc)
{
    wc_FreeDecodedCert(dc);
    free(dc);
}

static size_t count_alt(const struct DecodedCert *dc, int type, const char *want)
{
    size_t n = 0;
    for (const DNS_entry *e = dc->altNames; e != NULL; e = e->next) {
        if (e->type == type) {
            n++;
            if (want != NULL) {
                assert_int_equal((size_t)e->len, strlen(want));
                assert_memory_equal(e->name, want, strlen(want));
            }
        }
    }
    return n;
}

/* ---- certificate crafting (for refusals the issuer would never produce) --- */

struct craft {
    const struct mf_key *key;        /* subject key */
    const struct mf_cert *issuer;    /* NULL: self-signed */
    const struct mf_key *issuer_key; /* NULL: key */
    const char *uris[3];
    size_t n_uri;
    bool no_bc;
    bool ca;
    int pathlen; /* -1: none */
    bool no_ku;
    unsigned ku;
    bool unknown_crit;
    int64_t nb, na;
    const char *name; /* serialNumber attribute of the subject */
    bool bc_noncrit;
    bool empty_subject; /* the empty Name, 30 00 */
    bool san_crit;
    bool no_ski, no_aki;
    bool ski_crit, aki_crit;
    const uint8_t *nc; /* nameConstraints extension value, or NULL */
    size_t nc_len;
    bool nc_crit;
};

static void put_ku(struct mf_buf *v, unsigned ku)
{
    uint8_t bytes[2] = {0, 0};
    size_t nbits = 0;
    for (unsigned i = 0; i < 9; i++) {
        if (ku & (1u << i)) {
            bytes[i / 8] |= (uint8_t)(0x80u >> (i % 8));
            nbits = i + 1;
        }
    }
    size_t nbytes = (nbits + 7) / 8;
    uint8_t content[3] = {(uint8_t)(nbytes * 8 - nbits), bytes[0], bytes[1]};
    ASSERT_OK(mf_der_put(v, MF_DER_BIT_STRING, content, 1 + nbytes));
}

static struct mf_cert *craft(const struct craft *c)
{
    static const uint8_t v3[5] = {0xa0, 0x03, 0x02, 0x01, 0x02};
    static const uint8_t ku_oid[3] = {0x55, 0x1d, 0x0f};
    static const uint8_t ski_oid[3] = {0x55, 0x1d, 0x0e};
    static const uint8_t aki_oid[3] = {0x55, 0x1d, 0x23};
    static const uint8_t odd_oid[9] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01};
    static const uint8_t null_der[2] = {0x05, 0x00};
    const struct mf_key *signer = c->issuer_key != NULL ? c->issuer_key : c->key;
    struct mf_buf body, subject, validity, v, tmp, exts, extseq, tbs, der;
    mf_buf_init(&body, 8192, 0);
    mf_buf_init(&subject, 1024, 0);
    mf_buf_init(&validity, 64, 0);
    mf_buf_init(&v, 4096, 0);
    mf_buf_init(&tmp, 4096, 0);
    mf_buf_init(&exts, 8192, 0);
    mf_buf_init(&extseq, 8192, 0);
    mf_buf_init(&tbs, 8192, 0);
    mf_buf_init(&der, 8192, 0);
    uint8_t serial[16];
    ASSERT_OK(mf_random(serial, sizeof(serial)));
    serial[0] = 0x01;
    if (c->empty_subject) {
        static const uint8_t empty_name[2] = {MF_DER_SEQUENCE, 0x00};
        ASSERT_OK(mf_buf_append(&subject, empty_name, sizeof(empty_name)));
    } else {
        ASSERT_OK(mf_der_put_name(&subject, c->name != NULL ? c->name : "crafted"));
    }
    ASSERT_OK(mf_buf_append(&body, v3, sizeof(v3)));
    ASSERT_OK(mf_der_put(&body, MF_DER_INTEGER, serial, sizeof(serial)));
    ASSERT_OK(mf_sigalg_put(&body, signer->type));
    if (c->issuer != NULL) {
        ASSERT_OK(mf_buf_append(&body, c->issuer->subject, c->issuer->subject_len));
    } else {
        ASSERT_OK(mf_buf_append(&body, subject.data, subject.len));
    }
    ASSERT_OK(mf_der_put_time(&validity, c->nb));
    ASSERT_OK(mf_der_put_time(&validity, c->na));
    ASSERT_OK(mf_der_wrap(&body, MF_DER_SEQUENCE, &validity));
    ASSERT_OK(mf_buf_append(&body, subject.data, subject.len));
    ASSERT_OK(mf_buf_append(&body, c->key->pub.spki, c->key->pub.spki_len));
    if (!c->no_bc) {
        if (c->ca) {
            static const uint8_t t[3] = {0x01, 0x01, 0xff};
            ASSERT_OK(mf_buf_append(&tmp, t, sizeof(t)));
        }
        if (c->pathlen >= 0) {
            uint8_t pl = (uint8_t)c->pathlen;
            ASSERT_OK(mf_der_put(&tmp, MF_DER_INTEGER, &pl, 1));
        }
        ASSERT_OK(mf_der_wrap(&v, MF_DER_SEQUENCE, &tmp));
        ASSERT_OK(mf_der_put_ext(&exts, mf_oid_basic_constraints, sizeof(mf_oid_basic_constraints),
                                 !c->bc_noncrit, &v));
        mf_buf_reset(&v);
        mf_buf_reset(&tmp);
    }
    if (!c->no_ku) {
        put_ku(&v, c->ku);
        ASSERT_OK(mf_der_put_ext(&exts, ku_oid, sizeof(ku_oid), true, &v));
        mf_buf_reset(&v);
    }
    if (c->n_uri > 0) {
        for (size_t i = 0; i < c->n_uri; i++) {
            ASSERT_OK(mf_der_put(&tmp, 0x86, c->uris[i], strlen(c->uris[i])));
        }
        ASSERT_OK(mf_der_wrap(&v, MF_DER_SEQUENCE, &tmp));
        ASSERT_OK(mf_der_put_ext(&exts, mf_oid_san, sizeof(mf_oid_san), c->san_crit, &v));
        mf_buf_reset(&v);
        mf_buf_reset(&tmp);
    }
    if (c->nc != NULL) {
        ASSERT_OK(mf_buf_append(&v, c->nc, c->nc_len));
        ASSERT_OK(mf_der_put_ext(&exts, mf_oid_name_constraints, sizeof(mf_oid_name_constraints),
                                 c->nc_crit, &v));
        mf_buf_reset(&v);
    }
    uint8_t kid[MF_KEYID_LEN];
    if (!c->no_ski) {
        ASSERT_OK(mf_pubkey_keyid(&c->key->pub, kid));
        ASSERT_OK(mf_der_put(&v, MF_DER_OCTET, kid, sizeof(kid)));
        ASSERT_OK(mf_der_put_ext(&exts, ski_oid, sizeof(ski_oid), c->ski_crit, &v));
        mf_buf_reset(&v);
    }
    if (!c->no_aki) {
        ASSERT_OK(mf_pubkey_keyid(&signer->pub, kid));
        ASSERT_OK(mf_der_put(&tmp, 0x80, kid, sizeof(kid)));
        ASSERT_OK(mf_der_wrap(&v, MF_DER_SEQUENCE, &tmp));
        ASSERT_OK(mf_der_put_ext(&exts, aki_oid, sizeof(aki_oid), c->aki_crit, &v));
        mf_buf_reset(&v);
        mf_buf_reset(&tmp);
    }
    if (c->unknown_crit) {
        ASSERT_OK(mf_buf_append(&v, null_der, sizeof(null_der)));
        ASSERT_OK(mf_der_put_ext(&exts, odd_oid, sizeof(odd_oid), true, &v));
    }
    ASSERT_OK(mf_der_wrap(&extseq, MF_DER_SEQUENCE, &exts));
    ASSERT_OK(mf_der_wrap(&body, 0xa3, &extseq));
    ASSERT_OK(mf_der_wrap(&tbs, MF_DER_SEQUENCE, &body));
    ASSERT_OK(mf_x509_sign_tbs(signer, &tbs, &der));
    struct mf_cert *cert = NULL;
    ASSERT_OK(mf_cert_from_der(der.data, der.len, &cert));
    mf_buf_cleanup(&body);
    mf_buf_cleanup(&subject);
    mf_buf_cleanup(&validity);
    mf_buf_cleanup(&v);
    mf_buf_cleanup(&tmp);
    mf_buf_cleanup(&exts);
    mf_buf_cleanup(&extseq);
    mf_buf_cleanup(&tbs);
    mf_buf_cleanup(&der);
    return cert;
}

/* A valid leaf template under the fixture CA. Its keyUsage is SPIRE-like,
 * with keyEncipherment: we no longer issue that (RFC 8813), but B8 allows
 * it, so the verifier still accepts it from other issuers. */
static struct craft leaf_template(const struct fx *f)
{
    struct craft c = {
        .key = f->leaf_key,
        .issuer = f->ca,
        .issuer_key = f->ca_key,
        .uris = {LEAF_ID},
        .n_uri = 1,
        .pathlen = -1,
        .ku = MF_KU_DIGITAL_SIGNATURE | MF_KU_KEY_ENCIPHERMENT,
        .nb = f->now - 60,
        .na = f->now + 3600,
        .name = "leaf",
    };
    return c;
}

static mf_res verify1(struct mf_cert *leaf, struct mf_cert *extra, struct mf_cert *authority,
                      int64_t now, struct mf_spiffe_id *id)
{
    struct mf_certs chain, auths;
    mf_certs_init(&chain);
    mf_certs_init(&auths);
    ASSERT_OK(mf_certs_push(&chain, leaf));
    if (extra != NULL) {
        ASSERT_OK(mf_certs_push(&chain, extra));
    }
    ASSERT_OK(mf_certs_push(&auths, authority));
    mf_res r = mf_x509_verify_chain(&chain, &auths, now, id);
    mf_certs_cleanup(&chain);
    mf_certs_cleanup(&auths);
    return r;
}

/* ---- issuance profiles ------------------------------------------------------ */

static void test_mf_x509_self_signed_profile_ok(void **state)
{
    struct fx *f = *state;
    const struct mf_cert *ca = f->ca;
    assert_true(mf_cert_is_ca(ca));
    assert_string_equal(mf_cert_spiffe_id_str(ca), "spiffe://example.org");
    assert_int_equal(mf_cert_not_before(ca), f->now - MF_NOT_BEFORE_CUSHION);
    assert_int_equal(mf_cert_not_after(ca), f->now + 86400);
    /* B12-B15, B17, B30 in our reader */
    assert_true(ca->ext.has_bc && ca->ext.bc_critical && ca->ext.is_ca && !ca->ext.has_pathlen);
    assert_true(ca->ext.has_ku && ca->ext.ku_critical);
    assert_int_equal(ca->ext.ku, MF_KU_KEY_CERT_SIGN | MF_KU_CRL_SIGN);
    assert_false(ca->ext.has_eku);
    assert_int_equal(ca->ext.n_uri, 1);
    assert_int_equal(ca->ext.ski_len, MF_KEYID_LEN);
    assert_int_equal(ca->ext.aki_len, MF_KEYID_LEN);
    assert_memory_equal(ca->ext.ski, ca->ext.aki, MF_KEYID_LEN);
    assert_int_equal(ca->issuer_len, ca->subject_len);
    assert_memory_equal(ca->issuer, ca->subject, ca->subject_len);
    /* and in wolfSSL's */
    struct DecodedCert *dc = wolf_parse(ca);
    assert_true(dc->isCA);
    assert_true(dc->extBasicConstSet && dc->extBasicConstCrit);
    assert_true(dc->extKeyUsageSet && dc->extKeyUsageCrit);
    assert_int_equal(dc->extKeyUsage, KEYUSE_KEY_CERT_SIGN | KEYUSE_CRL_SIGN);
    assert_false(dc->extExtKeyUsageSet);
    assert_int_equal(count_alt(dc, ASN_URI_TYPE, "spiffe://example.org"), 1);
    assert_true(dc->extSubjKeyIdSet && dc->extAuthKeyIdSet);
    assert_int_equal(dc->signatureOID, CTC_SHA256wECDSA);
    wolf_free(dc);
    /* a CA ID with a path is refused */
    struct mf_spiffe_id bad = parse_id("spiffe://example.org/ca");
    struct mf_cert *c = NULL;
    ASSERT_ERR(mf_x509_self_signed(&bad, f->ca_key, f->now, 60, &c), MF_ERR_ID_HAS_PATH);
    struct mf_spiffe_id td = parse_id("spiffe://example.org");
    ASSERT_ERR(mf_x509_self_signed(&td, f->ca_key, f->now, 0, &c), MF_ERR_USAGE_ARG);
    assert_null(c);
}

static void test_mf_x509_issue_leaf_profile_ok(void **state)
{
    struct fx *f = *state;
    const char *dns[] = {"web.example.org", "*.web.example.org"};
    struct mf_spiffe_id lid = parse_id(LEAF_ID);
    struct mf_issue_req req = {.id = &lid,
                               .subject_key = f->leaf_pub,
                               .now = f->now,
                               .ttl = 3600,
                               .dns_names = dns,
                               .n_dns = 2};
    struct mf_cert *leaf = NULL;
    ASSERT_OK(mf_x509_issue(&req, f->ca, f->ca_key, &leaf));

    /* public accessors */
    assert_false(mf_cert_is_ca(leaf));
    assert_string_equal(mf_cert_spiffe_id_str(leaf), LEAF_ID);
    assert_true(mf_cert_matches_key(leaf, f->leaf_key));
    assert_false(mf_cert_matches_key(leaf, f->ca_key));
    assert_true(mf_pubkey_eq(mf_cert_pubkey(leaf), f->leaf_pub));
    /* B28: NotBefore = now - 10, NotAfter = now + ttl */
    assert_int_equal(mf_cert_not_before(leaf), f->now - 10);
    assert_int_equal(mf_cert_not_after(leaf), f->now + 3600);

    /* our reader: B1-B10, B27, B29, B30 */
    const struct mf_exts *x = &leaf->ext;
    assert_int_equal(x->n_uri, 1);
    assert_int_equal(x->n_dns, 2);
    assert_true(x->has_bc && x->bc_critical && !x->is_ca);
    assert_true(x->has_ku && x->ku_critical);
    assert_int_equal(x->ku, MF_KU_DIGITAL_SIGNATURE); /* RFC 8813: no keyEncipherment */
    assert_true(x->has_eku && x->eku_server && x->eku_client && !x->eku_any);
    assert_int_equal(leaf->serial_len, 16);
    assert_true(leaf->serial[0] != 0 && (leaf->serial[0] & 0x80) == 0);
    uint8_t kid[MF_KEYID_LEN];
    ASSERT_OK(mf_pubkey_keyid(f->leaf_pub, kid));
    assert_int_equal(x->ski_len, MF_KEYID_LEN);
    assert_memory_equal(x->ski, kid, MF_KEYID_LEN);
    assert_int_equal(x->aki_len, f->ca->ext.ski_len);
    assert_memory_equal(x->aki, f->ca->ext.ski, x->aki_len);
    assert_int_equal(leaf->issuer_len, f->ca->subject_len);
    assert_memory_equal(leaf->issuer, f->ca->subject, leaf->issuer_len);

    /* wolfSSL's reader: the same facts, independently */
    struct DecodedCert *dc = wolf_parse(leaf);
    assert_false(dc->isCA);
    assert_true(dc->extBasicConstSet && dc->extBasicConstCrit);    /* B5 */
    assert_true(dc->extKeyUsageSet && dc->extKeyUsageCrit);        /* B6 */
    assert_int_equal(dc->extKeyUsage, KEYUSE_DIGITAL_SIG);         /* B7-B9 */
    assert_true(dc->extExtKeyUsageSet && !dc->extExtKeyUsageCrit); /* B10 */
    assert_int_equal(dc->extExtKeyUsage, EXTKEYUSE_SERVER_AUTH | EXTKEYUSE_CLIENT_AUTH);
    assert_true(dc->extSubjAltNameSet && !dc->extSubjAltNameCrit); /* B4: subject not empty */
    assert_int_equal(count_alt(dc, ASN_URI_TYPE, LEAF_ID), 1);     /* B1 */
    assert_int_equal(count_alt(dc, ASN_DNS_TYPE, NULL), 2);        /* B2 */
    assert_int_equal(dc->serialSz, 16);                            /* B27 */
    assert_true(dc->extSubjKeyIdSet && dc->extAuthKeyIdSet);       /* B30 */
    struct DecodedCert *cadc = wolf_parse(f->ca);
    assert_memory_equal(dc->extAuthKeyId, cadc->extSubjKeyId, KEYID_SIZE);
    wolf_free(cadc);
    /* B29: O=SPIFFE, serialNumber = hex of SHA-256(ID)[0..16) */
    uint8_t h[32];
    char want[33];
    ASSERT_OK(mf_sha256((const uint8_t *)LEAF_ID, strlen(LEAF_ID), h));
    mf_hex(h, 16, want);
    assert_int_equal(dc->subjectOLen, 6);
    assert_memory_equal(dc->subjectO, "SPIFFE", 6);
    assert_int_equal(dc->subjectSNDLen, 32);
    assert_memory_equal(dc->subjectSND, want, 32);
    wolf_free(dc);

    /* B11: the ID and the key are in the signed part */
    size_t tbs_off = (size_t)(leaf->tbs - leaf->der);
    const uint8_t *uri = memmem(leaf->der, leaf->der_len, LEAF_ID, strlen(LEAF_ID));
    assert_non_null(uri);
    assert_true((size_t)(uri - leaf->der) > tbs_off &&
                (size_t)(uri - leaf->der) < tbs_off + leaf->tbs_len);

    struct mf_spiffe_id id;
    ASSERT_OK(verify1(leaf, NULL, f->ca, f->now, &id));
    assert_string_equal(id.str, LEAF_ID);
    mf_cert_free(leaf);
}

/* RFC 8813 section 3: an EC key signs (digitalSignature) and may agree keys
 * (keyAgreement), but never enciphers keys (keyEncipherment is an RSA
 * usage, and certificate linters flag it on EC keys). Leaves on both curves
 * carry digitalSignature alone; each checked by our reader and wolfSSL's. */
static void test_mf_x509_issue_leaf_key_usage_fits_ec_key_ok(void **state)
{
    struct fx *f = *state;
    const enum mf_key_type types[] = {MF_KEY_EC_P256, MF_KEY_EC_P384};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct mf_key *k = NULL;
        struct mf_pubkey *pk = NULL;
        struct mf_cert *leaf = NULL;
        ASSERT_OK(mf_key_generate(types[i], &k));
        ASSERT_OK(mf_key_public(k, &pk));
        struct mf_spiffe_id id = parse_id(LEAF_ID);
        struct mf_issue_req req = {.id = &id, .subject_key = pk, .now = f->now, .ttl = 600};
        ASSERT_OK(mf_x509_issue(&req, f->ca, f->ca_key, &leaf));
        assert_true(leaf->ext.has_ku && leaf->ext.ku_critical);
        assert_false(leaf->ext.ku & MF_KU_KEY_ENCIPHERMENT);
        assert_false(leaf->ext.ku & MF_KU_DATA_ENCIPHERMENT);
        assert_int_equal(leaf->ext.ku, MF_KU_DIGITAL_SIGNATURE);
        struct DecodedCert *dc = wolf_parse(leaf);
        assert_int_equal(dc->extKeyUsage, KEYUSE_DIGITAL_SIG);
        wolf_free(dc);
        ASSERT_OK(verify1(leaf, NULL, f->ca, f->now, NULL));
        mf_cert_free(leaf);
        mf_pubkey_free(pk);
        mf_key_free(k);
    }
}

static void test_mf_x509_issue_serials_unique_positive_ok(void **state)
{
    struct fx *f = *state;
    enum { N = 32 };
    char seen[N][MF_SERIAL_HEX_MAX];
    for (size_t i = 0; i < N; i++) {
        struct mf_cert *c = mft_issue(f->ca, f->ca_key, LEAF_ID, f->leaf_pub, f->now, 60, false);
        mf_cert_serial_hex(c, seen[i]);
        size_t len = strlen(seen[i]);
        assert_true(len >= 31 && len <= 32); /* 121 to 127 bits */
        assert_true(seen[i][0] != '0');
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(seen[i], seen[j]);
        }
        mf_cert_free(c);
    }
}

static void test_mf_x509_issue_not_after_capped_ok(void **state)
{
    struct fx *f = *state;
    /* a CA with 100 s left cannot issue a 1 h leaf */
    struct mf_spiffe_id td = parse_id("spiffe://example.org");
    struct mf_cert *short_ca = NULL;
    ASSERT_OK(mf_x509_self_signed(&td, f->ca_key, f->now - 1000, 1100, &short_ca));
    assert_int_equal(mf_cert_not_after(short_ca), f->now + 100);
    struct mf_cert *leaf =
        mft_issue(short_ca, f->ca_key, LEAF_ID, f->leaf_pub, f->now, 3600, false);
    assert_int_equal(mf_cert_not_after(leaf), mf_cert_not_after(short_ca));
    ASSERT_OK(verify1(leaf, NULL, short_ca, f->now + 100, NULL));
    ASSERT_ERR(verify1(leaf, NULL, short_ca, f->now + 101, NULL), MF_ERR_AUTH_EXPIRED);
    /* an intermediate is capped the same way */
    struct mf_cert *inter =
        mft_issue(short_ca, f->ca_key, "spiffe://example.org", f->leaf_pub, f->now, 86400, true);
    assert_int_equal(mf_cert_not_after(inter), mf_cert_not_after(short_ca));
    mf_cert_free(inter);
    mf_cert_free(leaf);
    mf_cert_free(short_ca);
}

static void test_mf_x509_issue_bad_requests_refused(void **state)
{
    struct fx *f = *state;
    struct mf_spiffe_id leaf_id = parse_id(LEAF_ID);
    struct mf_spiffe_id td_id = parse_id("spiffe://example.org");
    struct mf_spiffe_id other_id = parse_id("spiffe://other.org/x");
    const char *bad_dns[] = {"bad..name"};
    const char *ok_dns[] = {"ok.example.org"};
    struct {
        const struct mf_spiffe_id *id;
        bool is_ca;
        int64_t ttl;
        const char *const *dns;
        size_t n_dns;
        const struct mf_cert *issuer;
        const struct mf_key *issuer_key;
        enum mf_err want;
    } cases[] = {
        {&td_id, false, 60, NULL, 0, f->ca, f->ca_key, MF_ERR_ID_NO_PATH},
        {&leaf_id, true, 60, NULL, 0, f->ca, f->ca_key, MF_ERR_ID_HAS_PATH},
        {&td_id, true, 60, ok_dns, 1, f->ca, f->ca_key, MF_ERR_USAGE_ARG},
        {&other_id, false, 60, NULL, 0, f->ca, f->ca_key, MF_ERR_ID_WRONG_TD},
        {&leaf_id, false, 60, bad_dns, 1, f->ca, f->ca_key, MF_ERR_USAGE_ARG},
        {&leaf_id, false, 0, NULL, 0, f->ca, f->ca_key, MF_ERR_USAGE_ARG},
        {&leaf_id, false, -5, NULL, 0, f->ca, f->ca_key, MF_ERR_USAGE_ARG},
        {&leaf_id, false, INT64_MAX, NULL, 0, f->ca, f->ca_key, MF_ERR_USAGE_ARG},
        {&leaf_id, false, 60, NULL, 0, f->ca, f->other_key, MF_ERR_CRYPTO_MISMATCH},
        {&leaf_id, false, 60, NULL, 0, f->other_ca, f->other_key, MF_ERR_ID_WRONG_TD},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mf_issue_req req = {
            .id = cases[i].id,
            .subject_key = f->leaf_pub,
            .now = f->now,
            .ttl = cases[i].ttl,
            .dns_names = cases[i].dns,
            .n_dns = cases[i].n_dns,
            .is_ca = cases[i].is_ca,
        };
        struct mf_cert *c = NULL;
        mf_res r = mf_x509_issue(&req, cases[i].issuer, cases[i].issuer_key, &c);
        if (r.err != cases[i].want) {
            print_error("case %zu: got %s, want %s\n", i, mf_err_name(r.err),
                        mf_err_name(cases[i].want));
        }
        assert_int_equal(r.err, cases[i].want);
        assert_null(c);
    }
    /* a leaf cannot issue; an expired CA cannot issue */
    struct mf_cert *leaf = mft_issue(f->ca, f->ca_key, LEAF_ID, f->leaf_pub, f->now, 60, false);
    struct mf_issue_req req = {
        .id = &leaf_id, .subject_key = f->leaf_pub, .now = f->now, .ttl = 60};
    struct mf_cert *c = NULL;
    ASSERT_ERR(mf_x509_issue(&req, leaf, f->leaf_key, &c), MF_ERR_USAGE_ARG);
    req.now = mf_cert_not_after(f->ca) + 1;
    ASSERT_ERR(mf_x509_issue(&req, f->ca, f->ca_key, &c), MF_ERR_AUTH_EXPIRED);
    ASSERT_ERR(mf_x509_issue(NULL, f->ca, f->ca_key, &c), MF_ERR_USAGE_NULL);
    assert_null(c);
    mf_cert_free(leaf);
}

static void test_mf_x509_issue_p384_ca_ok(void **state)
{
    struct fx *f = *state;
    struct mf_key *k384 = NULL;
    struct mf_cert *ca = NULL;
    struct mf_spiffe_id td = parse_id("spiffe://example.org");
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P384, &k384));
    ASSERT_OK(mf_x509_self_signed(&td, k384, f->now, 3600, &ca));
    assert_int_equal(mf_pubkey_type(mf_cert_pubkey(ca)), MF_KEY_EC_P384);
    struct mf_cert *leaf = mft_issue(ca, k384, LEAF_ID, f->leaf_pub, f->now, 600, false);
    struct DecodedCert *dc = wolf_parse(leaf);
    assert_int_equal(dc->signatureOID, CTC_SHA384wECDSA);
    wolf_free(dc);
    ASSERT_OK(verify1(leaf, NULL, ca, f->now, NULL));
    ASSERT_ERR(verify1(leaf, NULL, f->ca, f->now, NULL), MF_ERR_AUTH_UNTRUSTED);
    mf_cert_free(leaf);
    mf_cert_free(ca);
    mf_key_free(k384);
}

/* ---- wolfSSL as a relying party (what TLS will do with our certificates) -- */

static void test_mf_x509_wolfssl_cert_manager_accepts_ok(void **state)
{
    struct fx *f = *state;
    struct mf_key *ikey = NULL;
    struct mf_pubkey *ipub = NULL;
    struct mf_spiffe_id td = parse_id("spiffe://example.org");
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &ikey));
    ASSERT_OK(mf_key_public(ikey, &ipub));
    struct mf_issue_req req = {
        .id = &td, .subject_key = ipub, .now = f->now, .ttl = 3600, .is_ca = true};
    struct mf_cert *inter = NULL;
    ASSERT_OK(mf_x509_issue(&req, f->ca, f->ca_key, &inter));
    struct mf_cert *leaf = mft_issue(inter, ikey, LEAF_ID, f->leaf_pub, f->now, 600, false);
    struct mf_cert *direct = mft_issue(f->ca, f->ca_key, LEAF_ID, f->leaf_pub, f->now, 600, false);

    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    assert_non_null(cm);
    size_t len;
    const uint8_t *der = mf_cert_der(f->ca, &len);
    assert_int_equal(wolfSSL_CertManagerLoadCABuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1),
                     WOLFSSL_SUCCESS);
    der = mf_cert_der(direct, &len);
    assert_int_equal(wolfSSL_CertManagerVerifyBuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1),
                     WOLFSSL_SUCCESS);
    der = mf_cert_der(inter, &len);
    assert_int_equal(wolfSSL_CertManagerLoadCABuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1),
                     WOLFSSL_SUCCESS);
    der = mf_cert_der(leaf, &len);
    assert_int_equal(wolfSSL_CertManagerVerifyBuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1),
                     WOLFSSL_SUCCESS);
    wolfSSL_CertManagerFree(cm);

    /* the other trust domain's CA does not vouch for it */
    cm = wolfSSL_CertManagerNew();
    der = mf_cert_der(f->other_ca, &len);
    assert_int_equal(wolfSSL_CertManagerLoadCABuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1),
                     WOLFSSL_SUCCESS);
    der = mf_cert_der(direct, &len);
    assert_int_not_equal(wolfSSL_CertManagerVerifyBuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1),
                         WOLFSSL_SUCCESS);
    wolfSSL_CertManagerFree(cm);

    mf_cert_free(direct);
    mf_cert_free(leaf);
    mf_cert_free(inter);
    mf_pubkey_free(ipub);
    mf_key_free(ikey);
}

/* ---- chain verification ------------------------------------------------------ */

static void test_mf_x509_verify_chain_validity_edges(void **state)
{
    struct fx *f = *state;
    struct mf_cert *leaf = mft_issue(f->ca, f->ca_key, LEAF_ID, f->leaf_pub, f->now, 600, false);
    int64_t nb = mf_cert_not_before(leaf), na = mf_cert_not_after(leaf);
    ASSERT_OK(verify1(leaf, NULL, f->ca, nb, NULL));
    ASSERT_OK(verify1(leaf, NULL, f->ca, na, NULL));
    ASSERT_ERR(verify1(leaf, NULL, f->ca, nb - 1, NULL), MF_ERR_AUTH_EXPIRED);
    ASSERT_ERR(verify1(leaf, NULL, f->ca, na + 1, NULL), MF_ERR_AUTH_EXPIRED);
    assert_non_null(strstr(mf_err_detail(), "expired"));
    mf_cert_free(leaf);

    /* a leaf still inside its window under an expired authority */
    struct craft ca = {.key = f->ca_key,
                       .uris = {"spiffe://example.org"},
                       .n_uri = 1,
                       .ca = true,
                       .pathlen = -1,
                       .ku = MF_KU_KEY_CERT_SIGN,
                       .nb = f->now - 7200,
                       .na = f->now - 3600,
                       .name = "old-ca"};
    struct mf_cert *old_ca = craft(&ca);
    struct craft lt = leaf_template(f);
    lt.issuer = old_ca;
    lt.nb = f->now - 7000;
    struct mf_cert *l2 = craft(&lt);
    ASSERT_ERR(verify1(l2, NULL, old_ca, f->now, NULL), MF_ERR_AUTH_EXPIRED);
    assert_non_null(strstr(mf_err_detail(), "certificate 1"));
    /* ... and fine at a time when both were valid */
    ASSERT_OK(verify1(l2, NULL, old_ca, f->now - 5000, NULL));
    mf_cert_free(l2);
    mf_cert_free(old_ca);
}

static void test_mf_x509_verify_chain_wrong_trust_domain_refused(void **state)
{
    struct fx *f = *state;
    struct mf_cert *leaf = mft_issue(f->ca, f->ca_key, LEAF_ID, f->leaf_pub, f->now, 600, false);
    struct mf_spiffe_id id;
    memset(&id, 'x', sizeof(id));
    /* B23: another trust domain's authorities never vouch for it */
    ASSERT_ERR(verify1(leaf, NULL, f->other_ca, f->now, &id), MF_ERR_AUTH_UNTRUSTED);
    assert_int_equal(id.str[0], '\0'); /* out-param cleared, set only on success */
    assert_int_equal(id.len, 0);

    struct mf_certs chain, auths;
    mf_certs_init(&chain);
    mf_certs_init(&auths);
    ASSERT_ERR(mf_x509_verify_chain(&chain, &auths, f->now, NULL), MF_ERR_AUTH_MISSING);
    ASSERT_OK(mf_certs_push(&chain, leaf));
    ASSERT_ERR(mf_x509_verify_chain(&chain, &auths, f->now, NULL), MF_ERR_AUTH_UNTRUSTED);
    /* several authorities: the right one is found */
    ASSERT_OK(mf_certs_push(&auths, f->other_ca));
    ASSERT_OK(mf_certs_push(&auths, f->ca));
    ASSERT_OK(mf_x509_verify_chain(&chain, &auths, f->now, &id));
    assert_string_equal(id.str, LEAF_ID);
    /* the other CA's key signing under our CA's name (a forged issuer) */
    struct craft forged = leaf_template(f);
    forged.issuer_key = f->other_key;
    struct mf_cert *bad = craft(&forged);
    ASSERT_ERR(verify1(bad, NULL, f->ca, f->now, NULL), MF_ERR_AUTH_UNTRUSTED);
    mf_cert_free(bad);
    mf_certs_cleanup(&chain);
    mf_certs_cleanup(&auths);
    mf_cert_free(leaf);
}

static void test_mf_x509_verify_chain_intermediate_ok(void **state)
{
    struct fx *f = *state;
    struct mf_key *ikey = NULL;
    struct mf_pubkey *ipub = NULL;
    struct mf_spiffe_id td = parse_id("spiffe://example.org");
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P384, &ikey));
    ASSERT_OK(mf_key_public(ikey, &ipub));
    struct mf_issue_req req = {
        .id = &td, .subject_key = ipub, .now = f->now, .ttl = 3600, .is_ca = true};
    struct mf_cert *inter = NULL;
    ASSERT_OK(mf_x509_issue(&req, f->ca, f->ca_key, &inter));
    assert_true(mf_cert_is_ca(inter));
    assert_int_equal(inter->ext.ku, MF_KU_KEY_CERT_SIGN | MF_KU_CRL_SIGN);
    /* distinct subject from the root */
    assert_false(inter->subject_len == f->ca->subject_len &&
                 memcmp(inter->subject, f->ca->subject, inter->subject_len) == 0);
    struct mf_cert *leaf = mft_issue(inter, ikey, LEAF_ID, f->leaf_pub, f->now, 600, false);

    struct mf_spiffe_id id;
    ASSERT_OK(verify1(leaf, inter, f->ca, f->now, &id));
    assert_string_equal(id.str, LEAF_ID);
    /* without the intermediate there is no path */
    ASSERT_ERR(verify1(leaf, NULL, f->ca, f->now, NULL), MF_ERR_AUTH_UNTRUSTED);
    /* the intermediate itself as the authority (an upstream-style anchor) */
    ASSERT_OK(verify1(leaf, NULL, inter, f->now, NULL));
    /* root included in the chain, and intermediates out of order */
    struct mf_certs chain, auths;
    mf_certs_init(&chain);
    mf_certs_init(&auths);
    ASSERT_OK(mf_certs_push(&chain, leaf));
    ASSERT_OK(mf_certs_push(&chain, f->ca));
    ASSERT_OK(mf_certs_push(&chain, inter));
    ASSERT_OK(mf_certs_push(&auths, f->ca));
    ASSERT_OK(mf_x509_verify_chain(&chain, &auths, f->now, NULL));
    mf_certs_cleanup(&auths);
    ASSERT_OK(mf_certs_push(&auths, f->other_ca));
    ASSERT_ERR(mf_x509_verify_chain(&chain, &auths, f->now, NULL), MF_ERR_AUTH_UNTRUSTED);
    mf_certs_cleanup(&chain);
    mf_certs_cleanup(&auths);
    /* an intermediate (a CA) is never accepted as the leaf */
    ASSERT_ERR(verify1(inter, NULL, f->ca, f->now, NULL), MF_ERR_AUTH_SVID);
    mf_cert_free(leaf);
    mf_cert_free(inter);
    mf_pubkey_free(ipub);
    mf_key_free(ikey);
}

static void test_mf_x509_verify_chain_tampered_refused(void **state)
{
    struct fx *f = *state;
    struct mf_cert *leaf = mft_issue(f->ca, f->ca_key, LEAF_ID, f->leaf_pub, f->now, 600, false);
    size_t len;
    const uint8_t *der = mf_cert_der(leaf, &len);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    /* the signature's last byte (the end of s) */
    memcpy(copy, der, len);
    copy[len - 1] ^= 0x01;
    struct mf_cert *t = NULL;
    ASSERT_OK(mf_cert_from_der(copy, len, &t));
    ASSERT_ERR(verify1(t, NULL, f->ca, f->now, NULL), MF_ERR_AUTH_UNTRUSTED);
    assert_non_null(strstr(mf_err_detail(), "signature"));
    mf_cert_free(t);
    /* the SPIFFE ID inside the TBS: ".../web" -> ".../wec" */
    memcpy(copy, der, len);
    uint8_t *p = memmem(copy, len, "sa/web", 6);
    assert_non_null(p);
    p[5] = 'c';
    ASSERT_OK(mf_cert_from_der(copy, len, &t));
    assert_string_equal(mf_cert_spiffe_id_str(t), "spiffe://example.org/ns/prod/sa/wec");
    ASSERT_ERR(verify1(t, NULL, f->ca, f->now, NULL), MF_ERR_AUTH_UNTRUSTED);
    mf_cert_free(t);
    free(copy);
    mf_cert_free(leaf);
}

static void test_mf_x509_verify_chain_leaf_rules_refused(void **state)
{
    struct fx *f = *state;
    struct {
        const char *what;
        struct craft c;
        enum mf_err want;
    } cases[8 + 6];
    size_t n = 0;
    struct craft base = leaf_template(f);
#define CASE(w, e)           \
    do {                     \
        cases[n].what = (w); \
        cases[n].want = (e); \
        n++;                 \
    } while (0)
    cases[n].c = base;
    CASE("valid", MF_OK);
    cases[n].c = base;
    cases[n].c.no_bc = true;
    CASE("no basicConstraints", MF_OK);
    cases[n].c = base;
    cases[n].c.n_uri = 0;
    CASE("no URI SAN", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.uris[1] = "spiffe://example.org/other";
    cases[n].c.n_uri = 2;
    CASE("two URI SANs", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.uris[0] = "https://example.org/web";
    CASE("URI not spiffe", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.uris[0] = "spiffe://example.org";
    CASE("ID without path", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.uris[0] = "spiffe://example.org/a//b";
    CASE("malformed ID", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.ca = true;
    CASE("cA=TRUE", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.ku |= MF_KU_KEY_CERT_SIGN;
    CASE("keyCertSign", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.ku |= MF_KU_CRL_SIGN;
    CASE("cRLSign", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.ku = MF_KU_KEY_ENCIPHERMENT;
    CASE("no digitalSignature", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.no_ku = true;
    CASE("no keyUsage", MF_ERR_AUTH_SVID);
    cases[n].c = base;
    cases[n].c.unknown_crit = true;
    CASE("unknown critical extension", MF_ERR_AUTH_UNTRUSTED);
#undef CASE
    for (size_t i = 0; i < n; i++) {
        struct mf_cert *leaf = craft(&cases[i].c);
        mf_res r = verify1(leaf, NULL, f->ca, f->now, NULL);
        if (r.err != cases[i].want) {
            print_error("%s: got %s (%s), want %s\n", cases[i].what, mf_err_name(r.err),
                        mf_err_detail(), mf_err_name(cases[i].want));
        }
        assert_int_equal(r.err, cases[i].want);
        mf_cert_free(leaf);
    }
}

static void test_mf_x509_verify_chain_issuer_rules_refused(void **state)
{
    struct fx *f = *state;
    struct mf_key *ik = NULL;
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &ik));
    struct {
        const char *what;
        int root_pathlen;
        bool inter_ca;
        unsigned inter_ku;
        int inter_pathlen;
        enum mf_err want;
    } cases[] = {
        {"valid", -1, true, MF_KU_KEY_CERT_SIGN, -1, MF_OK},
        {"root pathLen 1", 1, true, MF_KU_KEY_CERT_SIGN, -1, MF_OK},
        {"inter pathLen 0", -1, true, MF_KU_KEY_CERT_SIGN | MF_KU_CRL_SIGN, 0, MF_OK},
        {"root pathLen 0", 0, true, MF_KU_KEY_CERT_SIGN, -1, MF_ERR_AUTH_UNTRUSTED},
        {"inter not a CA", -1, false, MF_KU_KEY_CERT_SIGN, -1, MF_ERR_AUTH_UNTRUSTED},
        {"inter without keyCertSign", -1, true, MF_KU_CRL_SIGN, -1, MF_ERR_AUTH_UNTRUSTED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct craft rc = {.key = f->ca_key,
                           .uris = {"spiffe://example.org"},
                           .n_uri = 1,
                           .ca = true,
                           .pathlen = cases[i].root_pathlen,
                           .ku = MF_KU_KEY_CERT_SIGN | MF_KU_CRL_SIGN,
                           .nb = f->now - 60,
                           .na = f->now + 3600,
                           .name = "root"};
        struct mf_cert *root = craft(&rc);
        struct craft ic = {.key = ik,
                           .issuer = root,
                           .issuer_key = f->ca_key,
                           .ca = cases[i].inter_ca,
                           .pathlen = cases[i].inter_pathlen,
                           .ku = cases[i].inter_ku,
                           .nb = f->now - 60,
                           .na = f->now + 3600,
                           .name = "inter"};
        struct mf_cert *inter = craft(&ic); /* no URI SAN: allowed on CAs (B24) */
        struct craft lc = leaf_template(f);
        lc.issuer = inter;
        lc.issuer_key = ik;
        struct mf_cert *leaf = craft(&lc);
        mf_res r = verify1(leaf, inter, root, f->now, NULL);
        if (r.err != cases[i].want) {
            print_error("%s: got %s (%s), want %s\n", cases[i].what, mf_err_name(r.err),
                        mf_err_detail(), mf_err_name(cases[i].want));
        }
        assert_int_equal(r.err, cases[i].want);
        mf_cert_free(leaf);
        mf_cert_free(inter);
        mf_cert_free(root);
    }
    /* an authority that is not a CA */
    struct craft nc = {.key = f->ca_key,
                       .uris = {"spiffe://example.org"},
                       .n_uri = 1,
                       .ca = false,
                       .pathlen = -1,
                       .ku = MF_KU_KEY_CERT_SIGN,
                       .nb = f->now - 60,
                       .na = f->now + 3600,
                       .name = "notca"};
    struct mf_cert *notca = craft(&nc);
    struct craft lc = leaf_template(f);
    lc.issuer = notca;
    struct mf_cert *leaf = craft(&lc);
    ASSERT_ERR(verify1(leaf, NULL, notca, f->now, NULL), MF_ERR_AUTH_UNTRUSTED);
    assert_non_null(strstr(mf_err_detail(), "not a CA"));
    mf_cert_free(leaf);
    mf_cert_free(notca);
    mf_key_free(ik);
}

/* nameConstraints value: SEQUENCE { [0 or 1] SEQUENCE { SEQUENCE { name } } }
 * with one subtree whose base is the GeneralName (form tag, text). */
static size_t nc_value(uint8_t *out, uint8_t which, uint8_t form, const char *name)
{
    size_t n = strlen(name);
    assert_true(n < 100);
    out[0] = MF_DER_SEQUENCE;
    out[1] = (uint8_t)(n + 6);
    out[2] = which;
    out[3] = (uint8_t)(n + 4);
    out[4] = MF_DER_SEQUENCE;
    out[5] = (uint8_t)(n + 2);
    out[6] = form;
    out[7] = (uint8_t)n;
    memcpy(out + 8, name, n);
    return n + 8;
}

/* The RFC 5280 profile rules on which `openssl verify -x509_strict` refused
 * chains that the verifier accepted (tests/integration/verify_differential.sh
 * compares the two on chains made by openssl), plus B15 and name
 * constraints, on a root -> intermediate -> leaf chain. */
static void test_mf_x509_verify_chain_strict_profile_refused(void **state)
{
    struct fx *f = *state;
    struct mf_key *ik = NULL;
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &ik));
    uint8_t nc_td[64], nc_other[64], nc_excl[64], nc_sub[64], nc_dns[64];
    size_t l_td = nc_value(nc_td, 0xa0, 0x86, "example.org");
    size_t l_other = nc_value(nc_other, 0xa0, 0x86, "other.org");
    size_t l_excl = nc_value(nc_excl, 0xa1, 0x86, "example.org");
    size_t l_sub = nc_value(nc_sub, 0xa0, 0x86, ".example.org");
    size_t l_dns = nc_value(nc_dns, 0xa0, 0x82, "example.org");
    enum { ROOT, INTER, LEAF };
    struct {
        const char *what;
        int which; /* the certificate the change (named by `what`) applies to */
        const uint8_t *nc;
        size_t nc_len;
        bool nc_crit;
        enum mf_err want;
    } cases[] = {
        {"valid", LEAF, NULL, 0, false, MF_OK},
        {"root basicConstraints not critical", ROOT, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"inter basicConstraints not critical", INTER, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"leaf pathLen with cA=FALSE", LEAF, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"root empty subject (inter issuer empty)", ROOT, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"inter empty subject", INTER, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"leaf empty subject, SAN not critical", LEAF, NULL, 0, false, MF_ERR_AUTH_SVID},
        {"leaf empty subject, SAN critical", LEAF, NULL, 0, false, MF_OK},
        {"inter SPIFFE ID with a path", INTER, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"inter SPIFFE ID with a trailing slash", INTER, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"inter without SKI", INTER, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"root without SKI", ROOT, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"leaf without AKI", LEAF, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"inter without AKI", INTER, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"root without AKI (self-signed)", ROOT, NULL, 0, false, MF_OK},
        {"leaf AKI critical", LEAF, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"leaf SKI critical", LEAF, NULL, 0, false, MF_ERR_AUTH_UNTRUSTED},
        {"root NC permitted td, critical", ROOT, nc_td, l_td, true, MF_OK},
        {"root NC permitted td, not critical", ROOT, nc_td, l_td, false, MF_OK},
        {"inter NC permitted td, critical", INTER, nc_td, l_td, true, MF_OK},
        {"root NC permitted other, not critical", ROOT, nc_other, l_other, false,
         MF_ERR_AUTH_UNTRUSTED},
        {"inter NC permitted other, not critical", INTER, nc_other, l_other, false,
         MF_ERR_AUTH_UNTRUSTED},
        {"inter NC permitted other, critical", INTER, nc_other, l_other, true,
         MF_ERR_AUTH_UNTRUSTED},
        {"root NC excluded td, not critical", ROOT, nc_excl, l_excl, false, MF_ERR_AUTH_UNTRUSTED},
        {"root NC permitted .td only, not critical", ROOT, nc_sub, l_sub, false,
         MF_ERR_AUTH_UNTRUSTED},
        {"root NC of DNS form, not critical", ROOT, nc_dns, l_dns, false, MF_ERR_AUTH_UNTRUSTED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *w = cases[i].what;
        struct craft rc = {.key = f->ca_key,
                           .uris = {"spiffe://example.org"},
                           .n_uri = 1,
                           .ca = true,
                           .pathlen = -1,
                           .ku = MF_KU_KEY_CERT_SIGN | MF_KU_CRL_SIGN,
                           .nb = f->now - 60,
                           .na = f->now + 3600,
                           .name = "root",
                           .no_aki = true};
        struct craft ic = {.key = ik,
                           .issuer_key = f->ca_key,
                           .uris = {"spiffe://example.org"},
                           .n_uri = 1,
                           .ca = true,
                           .pathlen = -1,
                           .ku = MF_KU_KEY_CERT_SIGN,
                           .nb = f->now - 60,
                           .na = f->now + 3600,
                           .name = "inter"};
        struct craft lc = leaf_template(f);
        struct craft *target = cases[i].which == ROOT ? &rc : cases[i].which == INTER ? &ic : &lc;
        target->nc = cases[i].nc;
        target->nc_len = cases[i].nc_len;
        target->nc_crit = cases[i].nc_crit;
        target->bc_noncrit = strstr(w, "basicConstraints not critical") != NULL;
        target->pathlen = strstr(w, "pathLen") != NULL ? 0 : target->pathlen;
        target->empty_subject = strstr(w, "empty subject") != NULL;
        target->san_crit = strstr(w, "SAN critical") != NULL;
        target->no_ski = strstr(w, "without SKI") != NULL;
        target->no_aki = target->no_aki || strstr(w, "without AKI") != NULL;
        target->aki_crit = strstr(w, "AKI critical") != NULL;
        target->ski_crit = strstr(w, "SKI critical") != NULL;
        if (strstr(w, "with a path") != NULL) {
            target->uris[0] = "spiffe://example.org/ca";
        } else if (strstr(w, "trailing slash") != NULL) {
            target->uris[0] = "spiffe://example.org/";
        }
        struct mf_cert *root = craft(&rc);
        ic.issuer = root;
        struct mf_cert *inter = craft(&ic);
        lc.issuer = inter;
        lc.issuer_key = ik;
        struct mf_cert *leaf = craft(&lc);
        mf_res r = verify1(leaf, inter, root, f->now, NULL);
        if (r.err != cases[i].want) {
            print_error("%s: got %s (%s), want %s\n", w, mf_err_name(r.err), mf_err_detail(),
                        mf_err_name(cases[i].want));
        }
        assert_int_equal(r.err, cases[i].want);
        mf_cert_free(leaf);
        mf_cert_free(inter);
        mf_cert_free(root);
    }
    mf_key_free(ik);
}

/* ---- threads ------------------------------------------------------------------ */

struct worker {
    struct fx *f;
    struct mf_cert *shared; /* one leaf, referenced by every thread */
    int ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct mf_spiffe_id id = parse_id(LEAF_ID);
    struct mf_issue_req req = {
        .id = &id, .subject_key = w->f->leaf_pub, .now = w->f->now, .ttl = 60};
    for (int i = 0; i < 20; i++) {
        struct mf_cert *c = NULL;
        struct mf_cert *mine = mf_cert_ref(w->shared);
        struct mf_certs chain, auths;
        mf_certs_init(&chain);
        mf_certs_init(&auths);
        if (!mf_ok(mf_x509_issue(&req, w->f->ca, w->f->ca_key, &c)) ||
            !mf_ok(mf_certs_push(&chain, c)) || !mf_ok(mf_certs_push(&auths, w->f->ca)) ||
            !mf_ok(mf_x509_verify_chain(&chain, &auths, w->f->now, NULL))) {
            w->ok = 0;
        }
        mf_certs_cleanup(&chain);
        mf_certs_cleanup(&auths);
        mf_cert_free(c);
        mf_cert_free(mine);
    }
    return NULL;
}

static void test_mf_x509_issue_verify_threads_ok(void **state)
{
    /* the CA key, CA certificate and a leaf are shared read-only; every
     * call makes its own RNG and wolfCrypt key */
    struct fx *f = *state;
    enum { T = 4 };
    pthread_t th[T];
    struct worker w[T];
    struct mf_cert *shared = mft_issue(f->ca, f->ca_key, LEAF_ID, f->leaf_pub, f->now, 60, false);
    for (int i = 0; i < T; i++) {
        w[i] = (struct worker){.f = f, .shared = shared, .ok = 1};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].ok, 1);
    }
    assert_int_equal(atomic_load(&shared->refs), 1);
    mf_cert_free(shared);
}

/* ---- objects, lists, encodings --------------------------------------------- */

static void test_mf_cert_refcount_and_lists_ok(void **state)
{
    struct fx *f = *state;
    struct mf_cert *leaf = mft_issue(f->ca, f->ca_key, LEAF_ID, f->leaf_pub, f->now, 600, false);
    assert_ptr_equal(mf_cert_ref(leaf), leaf);
    mf_cert_free(leaf); /* back to one reference */
    mf_cert_free(NULL);
    assert_null(mf_cert_ref(NULL));

    struct mf_certs cs, back, back2;
    mf_certs_init(&cs);
    mf_certs_init(&back);
    mf_certs_init(&back2);
    ASSERT_OK(mf_certs_push(&cs, leaf));
    ASSERT_OK(mf_certs_push(&cs, f->ca));
    mf_cert_free(leaf); /* the list holds its own reference */
    leaf = cs.v[0];

    struct mf_buf pem, der;
    mf_buf_init(&pem, MF_MAX_BUNDLE, 0);
    mf_buf_init(&der, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_certs_to_pem(&cs, &pem));
    ASSERT_OK(mf_certs_to_der_concat(&cs, &der));
    ASSERT_OK(mf_certs_from_pem((const char *)pem.data, pem.len, &back));
    ASSERT_OK(mf_certs_from_der_concat(der.data, der.len, &back2));
    assert_int_equal(back.n, 2);
    assert_int_equal(back2.n, 2);
    for (size_t i = 0; i < 2; i++) {
        size_t a, b, c;
        const uint8_t *da = mf_cert_der(cs.v[i], &a);
        const uint8_t *db = mf_cert_der(back.v[i], &b);
        const uint8_t *dc = mf_cert_der(back2.v[i], &c);
        assert_int_equal(a, b);
        assert_int_equal(a, c);
        assert_memory_equal(da, db, a);
        assert_memory_equal(da, dc, a);
        char f1[MF_FINGERPRINT_LEN], f2[MF_FINGERPRINT_LEN], want[MF_FINGERPRINT_LEN];
        uint8_t h[32];
        ASSERT_OK(mf_sha256(da, a, h));
        mf_hex(h, 32, want);
        mf_cert_fingerprint(cs.v[i], f1);
        mf_cert_fingerprint(back.v[i], f2);
        assert_string_equal(f1, want);
        assert_string_equal(f2, want);
        char s1[MF_SERIAL_HEX_MAX], s2[MF_SERIAL_HEX_MAX];
        mf_cert_serial_hex(cs.v[i], s1);
        mf_cert_serial_hex(back.v[i], s2);
        assert_string_equal(s1, s2);
    }
    /* appending to a non-empty list */
    ASSERT_OK(mf_certs_from_pem((const char *)pem.data, pem.len, &back));
    assert_int_equal(back.n, 4);
    mf_buf_cleanup(&pem);
    mf_buf_cleanup(&der);
    mf_certs_cleanup(&cs);
    mf_certs_cleanup(&back);
    mf_certs_cleanup(&back2);
    mf_certs_cleanup(&back2); /* twice is harmless */
}

static void test_mf_certs_from_pem_malformed_refused(void **state)
{
    struct fx *f = *state;
    struct mf_certs cs;
    mf_certs_init(&cs);
    ASSERT_OK(mf_certs_push(&cs, f->ca));
    struct mf_buf pem;
    mf_buf_init(&pem, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_certs_to_pem(&cs, &pem));
    const char *text = (const char *)pem.data;

    struct mf_certs out;
    mf_certs_init(&out);
    ASSERT_ERR(mf_certs_from_pem("", 0, &out), MF_ERR_PROTO_PEM);
    static const char key_only[] = "-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----\n";
    ASSERT_ERR(mf_certs_from_pem(key_only, strlen(key_only), &out), MF_ERR_PROTO_PEM);
    /* every truncation of a one-certificate PEM fails, and out stays empty */
    for (size_t n = 0; n < pem.len - 1; n++) {
        assert_false(mf_ok(mf_certs_from_pem(text, n, &out)));
        assert_int_equal(out.n, 0);
    }
    /* a good block then a garbage one: nothing is appended */
    struct mf_buf two;
    mf_buf_init(&two, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_buf_append(&two, pem.data, pem.len));
    ASSERT_OK(mf_buf_append_str(&two, "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n"
                                      "-----END CERTIFICATE-----\n"));
    ASSERT_ERR(mf_certs_from_pem((const char *)two.data, two.len, &out), MF_ERR_PROTO_DER);
    assert_int_equal(out.n, 0);
    /* DER concatenation: trailing garbage, empty */
    size_t len;
    const uint8_t *der = mf_cert_der(f->ca, &len);
    uint8_t *buf = malloc(len + 2);
    assert_non_null(buf);
    memcpy(buf, der, len);
    buf[len] = 0x30;
    buf[len + 1] = 0x05;
    ASSERT_ERR(mf_certs_from_der_concat(buf, len + 2, &out), MF_ERR_PROTO_DER);
    ASSERT_ERR(mf_certs_from_der_concat(buf, 0, &out), MF_ERR_PROTO_DER);
    assert_int_equal(out.n, 0);
    free(buf);
    mf_buf_cleanup(&two);
    mf_buf_cleanup(&pem);
    mf_certs_cleanup(&cs);
}

static void test_mf_cert_from_der_malformed_refused(void **state)
{
    struct fx *f = *state;
    size_t len;
    const uint8_t *der = mf_cert_der(f->ca, &len);
    struct mf_cert *c = NULL;
    for (size_t n = 0; n < len; n++) {
        assert_false(mf_ok(mf_cert_from_der(der, n, &c)));
        assert_null(c);
    }
    uint8_t *buf = calloc(1, MF_MAX_CERT + 2);
    assert_non_null(buf);
    memcpy(buf, der, len);
    /* trailing byte */
    ASSERT_ERR(mf_cert_from_der(buf, len + 1, &c), MF_ERR_PROTO_DER);
    /* cap + 1 */
    ASSERT_ERR(mf_cert_from_der(buf, MF_MAX_CERT + 1, &c), MF_ERR_PROTO_TOO_LARGE);
    /* the outer length in a non-minimal long form: 30 82 0x xx -> 30 83 00 0x xx */
    assert_int_equal(buf[0], 0x30);
    assert_int_equal(buf[1], 0x82);
    memmove(buf + 3, buf + 2, len - 2);
    buf[1] = 0x83;
    buf[2] = 0x00;
    ASSERT_ERR(mf_cert_from_der(buf, len + 1, &c), MF_ERR_PROTO_DER);
    /* indefinite length */
    memcpy(buf, der, len);
    buf[1] = 0x80;
    ASSERT_ERR(mf_cert_from_der(buf, len, &c), MF_ERR_PROTO_DER);
    /* a different inner signature algorithm (SHA-256 -> SHA-384 in the TBS) */
    memcpy(buf, der, len);
    uint8_t *alg = memmem(buf, len, "\x2a\x86\x48\xce\x3d\x04\x03\x02", 8);
    assert_non_null(alg);
    alg[7] = 0x03;
    ASSERT_ERR(mf_cert_from_der(buf, len, &c), MF_ERR_PROTO_DER);
    assert_null(c);
    ASSERT_ERR(mf_cert_from_der(NULL, 1, &c), MF_ERR_USAGE_NULL);
    free(buf);
}

/* mf_cert_from_der_key skips the on-curve check only for the very key it is
 * given: another known key is ignored, and a point moved off the curve is
 * refused with or without a known key. */
static void test_mf_cert_from_der_key_trusts_only_the_same_key(void **state)
{
    struct fx *f = *state;
    struct mf_spiffe_id lid = parse_id(LEAF_ID);
    struct mf_issue_req req = {.id = &lid, .subject_key = f->leaf_pub, .now = f->now, .ttl = 600};
    struct mf_cert *leaf = NULL, *c = NULL;
    ASSERT_OK(mf_x509_issue(&req, f->ca, f->ca_key, &leaf));
    assert_true(mf_pubkey_eq(mf_cert_pubkey(leaf), f->leaf_pub));
    size_t len;
    const uint8_t *der = mf_cert_der(leaf, &len);

    ASSERT_OK(mf_cert_from_der_key(der, len, f->leaf_pub, &c));
    assert_true(mf_pubkey_eq(mf_cert_pubkey(c), f->leaf_pub));
    mf_cert_free(c);
    /* another key: the certificate's own is parsed */
    ASSERT_OK(mf_cert_from_der_key(der, len, mf_cert_pubkey(f->ca), &c));
    assert_true(mf_pubkey_eq(mf_cert_pubkey(c), f->leaf_pub));
    assert_false(mf_pubkey_eq(mf_cert_pubkey(c), mf_cert_pubkey(f->ca)));
    mf_cert_free(c);
    /* the public form, with the private key the caller holds (or none) */
    ASSERT_OK(mf_cert_from_der_with_key(der, len, f->leaf_key, &c));
    assert_true(mf_pubkey_eq(mf_cert_pubkey(c), f->leaf_pub));
    assert_true(mf_cert_matches_key(c, f->leaf_key));
    mf_cert_free(c);
    ASSERT_OK(mf_cert_from_der_with_key(der, len, f->ca_key, &c));
    assert_true(mf_pubkey_eq(mf_cert_pubkey(c), f->leaf_pub));
    assert_false(mf_cert_matches_key(c, f->ca_key));
    mf_cert_free(c);
    ASSERT_OK(mf_cert_from_der_with_key(der, len, NULL, &c));
    assert_true(mf_pubkey_eq(mf_cert_pubkey(c), f->leaf_pub));
    mf_cert_free(c);

    /* the last byte of y changed: no longer on the curve */
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, der, len);
    uint8_t *spki = memmem(buf, len, f->leaf_pub->spki, f->leaf_pub->spki_len);
    assert_non_null(spki);
    spki[f->leaf_pub->spki_len - 1] ^= 1;
    c = NULL;
    ASSERT_ERR(mf_cert_from_der(buf, len, &c), MF_ERR_CRYPTO_KEY);
    ASSERT_ERR(mf_cert_from_der_key(buf, len, f->leaf_pub, &c), MF_ERR_CRYPTO_KEY);
    ASSERT_ERR(mf_cert_from_der_with_key(buf, len, f->leaf_key, &c), MF_ERR_CRYPTO_KEY);
    assert_null(c);
    free(buf);
    mf_cert_free(leaf);
}

/* X.690 10.1: a DER length takes the fewest octets, so a length below 128
 * is always the one-octet short form; 81 xx with xx < 0x80 is BER, not DER,
 * and would give one certificate two encodings (two fingerprints). */
static void test_mf_der_next_long_form_short_fits_refused(void **state)
{
    struct fx *f = *state;
    struct mf_cur c;
    struct mf_der d;
    /* OCTET STRING of 5 bytes: short form accepted, 81 05 refused */
    static const uint8_t short_ok[7] = {MF_DER_OCTET, 0x05, 1, 2, 3, 4, 5};
    static const uint8_t long_bad[8] = {MF_DER_OCTET, 0x81, 0x05, 1, 2, 3, 4, 5};
    mf_cur_init(&c, short_ok, sizeof(short_ok));
    ASSERT_OK(mf_der_next(&c, &d));
    assert_int_equal(d.len, 5);
    mf_cur_init(&c, long_bad, sizeof(long_bad));
    ASSERT_ERR(mf_der_next(&c, &d), MF_ERR_PROTO_DER);
    assert_non_null(strstr(mf_err_detail(), "non-minimal length"));
    assert_int_equal(c.off, 0); /* a failed read does not move the cursor */
    /* the edges: 81 7f refused, 81 80 is the shortest long form, accepted */
    uint8_t buf[3 + 0x80];
    memset(buf, 0, sizeof(buf));
    buf[0] = MF_DER_OCTET;
    buf[1] = 0x81;
    buf[2] = 0x7f;
    mf_cur_init(&c, buf, 3 + 0x7f);
    ASSERT_ERR(mf_der_next(&c, &d), MF_ERR_PROTO_DER);
    buf[2] = 0x80;
    mf_cur_init(&c, buf, sizeof(buf));
    ASSERT_OK(mf_der_next(&c, &d));
    assert_int_equal(d.len, 0x80);

    /* in a whole certificate: the version [0] a0 03 -> a0 81 03, with the
     * Certificate and TBSCertificate lengths (30 82 hi lo) grown by one */
    size_t len;
    const uint8_t *der = mf_cert_der(f->ca, &len);
    assert_true(der[0] == 0x30 && der[1] == 0x82 && der[4] == 0x30 && der[5] == 0x82);
    assert_true(der[8] == 0xa0 && der[9] == 0x03);
    uint8_t *b = malloc(len + 1);
    assert_non_null(b);
    size_t outer = ((size_t)der[2] << 8 | der[3]) + 1;
    size_t tbs = ((size_t)der[6] << 8 | der[7]) + 1;
    memcpy(b, der, 8);
    b[2] = (uint8_t)(outer >> 8);
    b[3] = (uint8_t)outer;
    b[6] = (uint8_t)(tbs >> 8);
    b[7] = (uint8_t)tbs;
    b[8] = 0xa0;
    b[9] = 0x81;
    b[10] = 0x03;
    memcpy(b + 11, der + 10, len - 10);
    struct mf_cert *cert = NULL;
    ASSERT_ERR(mf_cert_from_der(b, len + 1, &cert), MF_ERR_PROTO_DER);
    assert_null(cert);
    /* the same bytes with a0 03 again parse: only the length form was wrong */
    b[9] = 0x03;
    memmove(b + 10, b + 11, len - 10);
    b[2] = der[2];
    b[3] = der[3];
    b[6] = der[6];
    b[7] = der[7];
    ASSERT_OK(mf_cert_from_der(b, len, &cert));
    mf_cert_free(cert);
    free(b);
}

/* ---- mf_wc: the two wolfSSL return conventions ---------------------------- */

static mf_res wc_call(int r)
{
    MF_TRY_WC(r, MF_ERR_CRYPTO_KEY);
    return MF_RES_OK;
}

static mf_res ssl_load(const char *pem)
{
    mf_res rc;
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    MF_ENSURE_OUT(ctx != NULL, MF_ERR_NOMEM);
    MF_TRY_SSL_OUT(wolfSSL_CTX_use_certificate_chain_buffer_format(
                       ctx, (const unsigned char *)pem, (long)strlen(pem), WOLFSSL_FILETYPE_PEM),
                   MF_ERR_CRYPTO_MISMATCH);
    rc = MF_RES_OK;
out:
    wolfSSL_CTX_free(ctx);
    return rc;
}

static void test_mf_try_wc_ssl_detail_records_code(void **state)
{
    ASSERT_OK(wc_call(0));
    /* wolfCrypt: anything but 0 fails, with the code and its message */
    ASSERT_ERR(wc_call(BAD_FUNC_ARG), MF_ERR_CRYPTO_KEY);
    assert_non_null(strstr(mf_err_detail(), "wolfCrypt: "));
    assert_non_null(strstr(mf_err_detail(), "(-173)"));
    ASSERT_OK(wc_call(0));
    /* wolfSSL: only WOLFSSL_SUCCESS (1) passes; 1 would fail MF_TRY_WC */
    ASSERT_ERR(wc_call(WOLFSSL_SUCCESS), MF_ERR_CRYPTO_KEY);
    mf_res r = ssl_load("not PEM");
    assert_int_equal(r.err, MF_ERR_CRYPTO_MISMATCH);
    assert_non_null(strstr(mf_err_detail(), "wolfSSL: "));
    assert_non_null(strstr(mf_err_detail(), "PEM"));
    assert_non_null(strstr(mf_err_detail(), "(-162)"));
    char buf[MF_SSL_ERRSTR_MAX];
    assert_string_equal(mf_ssl_errstr(WOLFSSL_FAILURE, buf, sizeof(buf)), "failure");
    /* and a good certificate passes */
    const struct fx *f = *state;
    struct mf_certs cs;
    mf_certs_init(&cs);
    ASSERT_OK(mf_certs_push(&cs, f->ca));
    struct mf_buf pem;
    mf_buf_init(&pem, MF_MAX_CERT, 0);
    ASSERT_OK(mf_certs_to_pem(&cs, &pem));
    ASSERT_OK(mf_buf_append_u8(&pem, 0));
    ASSERT_OK(ssl_load((const char *)pem.data));
    mf_buf_cleanup(&pem);
    mf_certs_cleanup(&cs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_x509_self_signed_profile_ok),
        cmocka_unit_test(test_mf_x509_issue_leaf_profile_ok),
        cmocka_unit_test(test_mf_x509_issue_leaf_key_usage_fits_ec_key_ok),
        cmocka_unit_test(test_mf_x509_issue_serials_unique_positive_ok),
        cmocka_unit_test(test_mf_x509_issue_not_after_capped_ok),
        cmocka_unit_test(test_mf_x509_issue_bad_requests_refused),
        cmocka_unit_test(test_mf_x509_issue_p384_ca_ok),
        cmocka_unit_test(test_mf_cert_from_der_key_trusts_only_the_same_key),
        cmocka_unit_test(test_mf_x509_wolfssl_cert_manager_accepts_ok),
        cmocka_unit_test(test_mf_x509_verify_chain_validity_edges),
        cmocka_unit_test(test_mf_x509_verify_chain_wrong_trust_domain_refused),
        cmocka_unit_test(test_mf_x509_verify_chain_intermediate_ok),
        cmocka_unit_test(test_mf_x509_verify_chain_tampered_refused),
        cmocka_unit_test(test_mf_x509_verify_chain_leaf_rules_refused),
        cmocka_unit_test(test_mf_x509_verify_chain_issuer_rules_refused),
        cmocka_unit_test(test_mf_x509_verify_chain_strict_profile_refused),
        cmocka_unit_test(test_mf_x509_issue_verify_threads_ok),
        cmocka_unit_test(test_mf_cert_refcount_and_lists_ok),
        cmocka_unit_test(test_mf_certs_from_pem_malformed_refused),
        cmocka_unit_test(test_mf_cert_from_der_malformed_refused),
        cmocka_unit_test(test_mf_der_next_long_form_short_fits_refused),
        cmocka_unit_test(test_mf_try_wc_ssl_detail_records_code),
    };
    return cmocka_run_group_tests_name("mf_x509", tests, setup, teardown);
}
