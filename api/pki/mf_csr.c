/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_csr: PKCS#10 certification requests (RFC 2986) carrying a SPIFFE ID.
 *
 * The CA trusts a CSR for two things only: the public key, whose possession
 * the self-signature proves, and the requested SPIFFE ID, which the caller
 * still has to authorise. Everything else in the request (subject, other
 * extensions) is ignored when issuing, but a CSR that is malformed, asks for
 * a CA certificate, or names its identity ambiguously is refused outright.
 */
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_mem.h"
#include "api/pki/mf_x509.h"
#include "api/pki/mf_x509_int.h"

/* see mf_x509.h */
mf_res mf_csr_create(const struct mf_key *key, const char *spiffe_id, struct mf_buf *out)
{
    MF_ENSURE_REF(key);
    MF_ENSURE_REF(out);
    if (spiffe_id != NULL) {
        struct mf_spiffe_id id;
        MF_TRY(mf_spiffeid_parse_cstr(spiffe_id, &id));
    }
    /* CertificationRequestInfo ::= SEQUENCE { version INTEGER (0),
     *     subject Name, subjectPKInfo SubjectPublicKeyInfo,
     *     attributes [0] IMPLICIT SET OF Attribute }
     * with one extensionRequest attribute (RFC 2985 5.4.2) holding the
     * subjectAltName when there is an ID. */
    static const uint8_t version0[3] = {MF_DER_INTEGER, 0x01, 0x00};
    mf_res rc;
    struct mf_buf info, tbs, san, ext, exts, values, attr, attrs;
    mf_buf_init(&info, MF_MAX_CSR, 0);
    mf_buf_init(&tbs, MF_MAX_CSR, 0);
    mf_buf_init(&san, MF_MAX_CSR, 0);
    mf_buf_init(&ext, MF_MAX_CSR, 0);
    mf_buf_init(&exts, MF_MAX_CSR, 0);
    mf_buf_init(&values, MF_MAX_CSR, 0);
    mf_buf_init(&attr, MF_MAX_CSR, 0);
    mf_buf_init(&attrs, MF_MAX_CSR, 0);
    MF_TRY_OUT(mf_buf_append(&info, version0, sizeof(version0)));
    MF_TRY_OUT(mf_der_put_name(&info, NULL));
    MF_TRY_OUT(mf_buf_append(&info, key->pub.spki, key->pub.spki_len));
    if (spiffe_id != NULL) {
        MF_TRY_OUT(mf_der_put_san(&san, spiffe_id, NULL, 0));
        MF_TRY_OUT(mf_der_put_ext(&ext, mf_oid_san, sizeof(mf_oid_san), false, &san));
        MF_TRY_OUT(mf_der_wrap(&exts, MF_DER_SEQUENCE, &ext));
        MF_TRY_OUT(mf_der_wrap(&values, MF_DER_SET, &exts));
        MF_TRY_OUT(mf_der_put(&attr, MF_DER_OID, mf_oid_extension_request,
                              sizeof(mf_oid_extension_request)));
        MF_TRY_OUT(mf_buf_append(&attr, values.data, values.len));
        MF_TRY_OUT(mf_der_wrap(&attrs, MF_DER_SEQUENCE, &attr));
    }
    MF_TRY_OUT(mf_der_wrap(&info, 0xa0, &attrs));
    MF_TRY_OUT(mf_der_wrap(&tbs, MF_DER_SEQUENCE, &info));
    MF_TRY_OUT(mf_x509_sign_tbs(key, &tbs, out));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&info);
    mf_buf_cleanup(&tbs);
    mf_buf_cleanup(&san);
    mf_buf_cleanup(&ext);
    mf_buf_cleanup(&exts);
    mf_buf_cleanup(&values);
    mf_buf_cleanup(&attr);
    mf_buf_cleanup(&attrs);
    return rc;
}

/* Attributes: only extensionRequest is read, at most once; its value is a
 * SET holding one Extensions. Other attributes (challengePassword, ...) are
 * skipped. */
static mf_res parse_attributes(const struct mf_der *attrs, struct mf_exts *x)
{
    struct mf_cur c;
    bool seen = false;
    mf_der_open(attrs, &c);
    while (mf_cur_remaining(&c) > 0) {
        struct mf_der attr, type, values, exts;
        struct mf_cur a, v;
        MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &attr));
        mf_der_open(&attr, &a);
        MF_TRY(mf_der_get(&a, MF_DER_OID, &type));
        MF_TRY(mf_der_get(&a, MF_DER_SET, &values));
        MF_TRY(mf_der_end(&a, "Attribute"));
        if (!mf_der_oid_is(&type, mf_oid_extension_request, sizeof(mf_oid_extension_request))) {
            continue;
        }
        MF_ENSURE_MSG(!seen, MF_ERR_PROTO_DER, "more than one extensionRequest attribute");
        seen = true;
        mf_der_open(&values, &v);
        MF_TRY(mf_der_get(&v, MF_DER_SEQUENCE, &exts));
        MF_ENSURE_MSG(mf_cur_remaining(&v) == 0, MF_ERR_PROTO_DER,
                      "extensionRequest holds more than one value");
        MF_TRY(mf_exts_parse(&exts, x));
    }
    return MF_RES_OK;
}

static mf_res parse_csr(const uint8_t *der, size_t len, struct mf_csr *csr)
{
    /* CertificationRequest ::= SEQUENCE { certificationRequestInfo,
     *     signatureAlgorithm AlgorithmIdentifier, signature BIT STRING } */
    struct mf_cur top, c, i;
    struct mf_der whole, info, alg, sig, ver, name, spki, attrs;
    struct mf_exts x;
    enum mf_hash hash;
    int64_t version;
    memset(&x, 0, sizeof(x));
    mf_cur_init(&top, der, len);
    MF_TRY(mf_der_get(&top, MF_DER_SEQUENCE, &whole));
    MF_TRY(mf_der_end(&top, "CertificationRequest"));
    mf_der_open(&whole, &c);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &info));
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &alg));
    MF_TRY(mf_der_get(&c, MF_DER_BIT_STRING, &sig));
    MF_TRY(mf_der_end(&c, "CertificationRequest"));

    mf_der_open(&info, &i);
    MF_TRY(mf_der_get(&i, MF_DER_INTEGER, &ver));
    MF_TRY(mf_der_small_uint(&ver, 0, &version));
    MF_TRY(mf_der_get(&i, MF_DER_SEQUENCE, &name));
    MF_TRY(mf_der_get(&i, MF_DER_SEQUENCE, &spki));
    MF_TRY(mf_der_get(&i, 0xa0, &attrs));
    MF_TRY(mf_der_end(&i, "CertificationRequestInfo"));

    MF_TRY(mf_pubkey_parse_into(spki.tlv, spki.tlv_len, &csr->pub));
    MF_TRY(mf_sigalg_parse(&alg, &hash));
    MF_ENSURE_MSG(sig.len >= 1 && sig.p[0] == 0, MF_ERR_PROTO_DER, "malformed CSR signature");
    /* proof of possession: the request is signed by the key it carries */
    mf_res r = mf_ec_verify_msg(&csr->pub, hash, info.tlv, info.tlv_len, sig.p + 1, sig.len - 1);
    MF_ENSURE_MSG(mf_ok(r), MF_ERR_CRYPTO_SIG,
                  "CSR signature does not verify (no proof of possession of the key)");

    MF_TRY(parse_attributes(&attrs, &x));
    MF_ENSURE_MSG(!(x.has_bc && x.is_ca), MF_ERR_POLICY_DENIED,
                  "CSR requests a CA certificate (basicConstraints cA=TRUE)");
    MF_ENSURE_MSG(x.n_uri <= 1, MF_ERR_AUTH_SVID,
                  "CSR has %zu URI SANs; an SVID has exactly one (SPIFFE X509-SVID 2)", x.n_uri);
    if (x.n_uri == 1) {
        MF_TRY(mf_spiffeid_parse((const char *)x.uri, x.uri_len, &csr->id));
        csr->has_id = true;
    }
    return MF_RES_OK;
}

/* see mf_x509.h */
mf_res mf_csr_verify(const uint8_t *der, size_t len, struct mf_csr **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(der);
    MF_ENSURE_MSG(len <= MF_MAX_CSR, MF_ERR_PROTO_TOO_LARGE, "CSR of %zu bytes (max %u)", len,
                  MF_MAX_CSR);
    MF_ENSURE_MSG(len > 0, MF_ERR_PROTO_DER, "empty CSR");
    struct mf_csr *csr = calloc(1, sizeof(*csr));
    MF_TRY_PTR(csr, MF_ERR_NOMEM);
    mf_res rc = parse_csr(der, len, csr);
    if (!mf_ok(rc)) {
        free(csr);
        return rc;
    }
    *out = csr;
    return MF_RES_OK;
}

/* see mf_x509.h */
const struct mf_spiffe_id *mf_csr_spiffe_id(const struct mf_csr *csr)
{
    return csr->has_id ? &csr->id : NULL;
}

/* see mf_x509.h */
const struct mf_pubkey *mf_csr_pubkey(const struct mf_csr *csr)
{
    return &csr->pub;
}

/* see mf_x509.h */
void mf_csr_free(struct mf_csr *csr)
{
    free(csr);
}
