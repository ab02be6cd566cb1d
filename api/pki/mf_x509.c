/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_x509: issuing X509-SVIDs and signing certificates (SPIFFE.md B1-B19,
 * B27-B30), and verifying a peer's chain as a relying party (B20-B27).
 *
 * Issuance writes the TBSCertificate itself (see mf_x509_int.h for why) and
 * parses every result back before handing it out, so a certificate we issue
 * has passed the same reader a relying party uses.
 *
 * Verification builds one path from the leaf up: at each step an authority
 * that issued the current certificate ends the path; otherwise an unused
 * intermediate from the chain that issued it becomes the next step. "Issued"
 * means the issuer Name matches the issuer's subject byte for byte, the key
 * identifiers agree when both are present, and the signature verifies under
 * the issuer's key. Each issuer on the path must be a CA with keyCertSign,
 * valid at `now`, and allow the path length below it. On top of that the
 * verifier applies every RFC 5280 profile rule that `openssl verify
 * -x509_strict` applies (tests/integration/verify_differential.sh holds it to
 * that: it must refuse whatever OpenSSL refuses), and the SPIFFE rules, which
 * are stricter still. Name constraints are enforced, critical or not, for
 * URI subtrees; a CA constraining any other name form is refused, since an
 * ignored constraint would make us laxer than the CA asked.
 */
#include "api/pki/mf_x509.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/core/mf_mem.h"
#include "api/pki/mf_x509_int.h"

#define MAX_CHAIN  16  /* certificates in a presented chain */
#define MAX_DNS    100 /* DNS SANs in one leaf */
#define SERIAL_LEN 16  /* 128-bit serials (B27) */

static const uint8_t oid_key_usage[3] = {0x55, 0x1d, 0x0f};
static const uint8_t oid_eku[3] = {0x55, 0x1d, 0x25};
static const uint8_t oid_ski[3] = {0x55, 0x1d, 0x0e};
static const uint8_t oid_aki[3] = {0x55, 0x1d, 0x23};

/* DER of the extension values we write */
static const uint8_t bc_leaf[2] = {MF_DER_SEQUENCE, 0x00}; /* cA FALSE */
static const uint8_t bc_ca[5] = {MF_DER_SEQUENCE, 0x03, MF_DER_BOOLEAN, 0x01, 0xff};
/* keyUsage bit 0 (digitalSignature) alone: 1, 7 unused bits. Our leaf keys
 * are EC, which sign (TLS 1.3 CertificateVerify) and never encipher keys:
 * keyEncipherment is an RSA usage (RFC 8813 section 3), and keyAgreement
 * (static ECDH) is not something a leaf does either. Bits 5, 6 (keyCertSign,
 * cRLSign): 0000011, 1 unused bit. */
static const uint8_t ku_leaf[4] = {MF_DER_BIT_STRING, 0x02, 0x07, 0x80};
static const uint8_t ku_ca[4] = {MF_DER_BIT_STRING, 0x02, 0x01, 0x06};
/* SEQUENCE { id-kp-serverAuth, id-kp-clientAuth } */
static const uint8_t eku_leaf[22] = {
    MF_DER_SEQUENCE, 0x14, MF_DER_OID, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
    MF_DER_OID,      0x08, 0x2b,       0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02};

struct tbs_params {
    uint8_t serial[SERIAL_LEN];
    enum mf_key_type signer;
    const uint8_t *issuer_name; /* NULL: self-issued, the subject's */
    size_t issuer_name_len;
    int64_t not_before;
    int64_t not_after;
    const char *subject_attr; /* serialNumber attribute of the subject */
    const struct mf_pubkey *subject_key;
    bool is_ca;
    const char *uri;
    const char *const *dns;
    size_t n_dns;
    uint8_t ski[MF_KEYID_LEN];
    const uint8_t *aki;
    size_t aki_len;
};

/* A DNS name for a SAN: LDH labels of 1-63 characters, at most 253 in all,
 * optionally "*." first (RFC 1034 3.5, RFC 6125 6.4.3). */
static bool dns_name_ok(const char *s)
{
    size_t n = strnlen(s, 254);
    if (n == 0 || n > 253) {
        return false;
    }
    size_t i = 0;
    if (n > 2 && s[0] == '*' && s[1] == '.') {
        i = 2;
    }
    size_t label = 0;
    for (; i <= n; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-') {
                return false;
            }
            label = 0;
            continue;
        }
        bool ldh =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ldh || (label == 0 && c == '-')) {
            return false;
        }
        label++;
    }
    return true;
}

/* A serial in [2^120, 2^127): 127 random bits with a non-zero first octet,
 * so the DER INTEGER is always 16 octets and positive (B27). */
static mf_res random_serial(uint8_t serial[SERIAL_LEN])
{
    do {
        MF_TRY(mf_random(serial, SERIAL_LEN));
        serial[0] &= 0x7f;
    } while (serial[0] == 0);
    return MF_RES_OK;
}

static mf_res put_tbs(const struct tbs_params *p, struct mf_buf *out)
{
    static const uint8_t v3[5] = {0xa0, 0x03, MF_DER_INTEGER, 0x01, 0x02};
    mf_res rc;
    struct mf_buf body, subject, validity, val, exts, extseq, tmp;
    mf_buf_init(&body, MF_MAX_CERT, 0);
    mf_buf_init(&subject, 1024, 0);
    mf_buf_init(&validity, 64, 0);
    mf_buf_init(&val, MF_MAX_CERT, 0);
    mf_buf_init(&exts, MF_MAX_CERT, 0);
    mf_buf_init(&extseq, MF_MAX_CERT, 0);
    mf_buf_init(&tmp, 64, 0);

    MF_TRY_OUT(mf_der_put_name(&subject, p->subject_attr));
    MF_TRY_OUT(mf_buf_append(&body, v3, sizeof(v3)));
    MF_TRY_OUT(mf_der_put(&body, MF_DER_INTEGER, p->serial, SERIAL_LEN));
    MF_TRY_OUT(mf_sigalg_put(&body, p->signer));
    if (p->issuer_name != NULL) {
        MF_TRY_OUT(mf_buf_append(&body, p->issuer_name, p->issuer_name_len));
    } else {
        MF_TRY_OUT(mf_buf_append(&body, subject.data, subject.len));
    }
    MF_TRY_OUT(mf_der_put_time(&validity, p->not_before));
    MF_TRY_OUT(mf_der_put_time(&validity, p->not_after));
    MF_TRY_OUT(mf_der_wrap(&body, MF_DER_SEQUENCE, &validity));
    MF_TRY_OUT(mf_buf_append(&body, subject.data, subject.len));
    MF_TRY_OUT(mf_buf_append(&body, p->subject_key->spki, p->subject_key->spki_len));

    /* basicConstraints, critical (B5, B12) */
    MF_TRY_OUT(mf_buf_append(&val, p->is_ca ? bc_ca : bc_leaf,
                             p->is_ca ? sizeof(bc_ca) : sizeof(bc_leaf)));
    MF_TRY_OUT(mf_der_put_ext(&exts, mf_oid_basic_constraints, sizeof(mf_oid_basic_constraints),
                              true, &val));
    mf_buf_reset(&val);
    /* keyUsage, critical (B6-B9, B13) */
    MF_TRY_OUT(mf_buf_append(&val, p->is_ca ? ku_ca : ku_leaf, sizeof(ku_leaf)));
    MF_TRY_OUT(mf_der_put_ext(&exts, oid_key_usage, sizeof(oid_key_usage), true, &val));
    mf_buf_reset(&val);
    /* extKeyUsage on leaves only, not critical (B10, B17) */
    if (!p->is_ca) {
        MF_TRY_OUT(mf_buf_append(&val, eku_leaf, sizeof(eku_leaf)));
        MF_TRY_OUT(mf_der_put_ext(&exts, oid_eku, sizeof(oid_eku), false, &val));
        mf_buf_reset(&val);
    }
    /* subjectAltName: the subject Name is not empty, so not critical (B4) */
    MF_TRY_OUT(mf_der_put_san(&val, p->uri, p->dns, p->n_dns));
    MF_TRY_OUT(mf_der_put_ext(&exts, mf_oid_san, sizeof(mf_oid_san), false, &val));
    mf_buf_reset(&val);
    /* subjectKeyIdentifier and authorityKeyIdentifier (B30) */
    MF_TRY_OUT(mf_der_put(&val, MF_DER_OCTET, p->ski, MF_KEYID_LEN));
    MF_TRY_OUT(mf_der_put_ext(&exts, oid_ski, sizeof(oid_ski), false, &val));
    mf_buf_reset(&val);
    MF_TRY_OUT(mf_der_put(&tmp, 0x80, p->aki, p->aki_len));
    MF_TRY_OUT(mf_der_wrap(&val, MF_DER_SEQUENCE, &tmp));
    MF_TRY_OUT(mf_der_put_ext(&exts, oid_aki, sizeof(oid_aki), false, &val));

    MF_TRY_OUT(mf_der_wrap(&extseq, MF_DER_SEQUENCE, &exts));
    MF_TRY_OUT(mf_der_wrap(&body, 0xa3, &extseq));
    MF_TRY_OUT(mf_der_wrap(out, MF_DER_SEQUENCE, &body));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&body);
    mf_buf_cleanup(&subject);
    mf_buf_cleanup(&validity);
    mf_buf_cleanup(&val);
    mf_buf_cleanup(&exts);
    mf_buf_cleanup(&extseq);
    mf_buf_cleanup(&tmp);
    return rc;
}

/* Encodes, signs and parses back. */
static mf_res make_cert(const struct tbs_params *p, const struct mf_key *signer,
                        struct mf_cert **out)
{
    mf_res rc;
    struct mf_buf tbs, der;
    mf_buf_init(&tbs, MF_MAX_CERT, 0);
    mf_buf_init(&der, MF_MAX_CERT, 0);
    MF_TRY_OUT(put_tbs(p, &tbs));
    MF_TRY_OUT(mf_x509_sign_tbs(signer, &tbs, &der));
    /* the subject key came checked (a CSR's, or a key of ours) */
    MF_TRY_OUT(mf_cert_from_der_key(der.data, der.len, p->subject_key, out));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&tbs);
    mf_buf_cleanup(&der);
    return rc;
}

static mf_res check_validity_args(int64_t now, int64_t ttl, int64_t *nb, int64_t *na)
{
    MF_ENSURE_MSG(ttl > 0, MF_ERR_USAGE_ARG, "ttl must be positive");
    MF_ENSURE_MSG(now > MF_NOT_BEFORE_CUSHION, MF_ERR_USAGE_ARG, "bad time");
    MF_ENSURE_MSG(!__builtin_add_overflow(now, ttl, na), MF_ERR_USAGE_ARG, "ttl too large");
    *nb = now - MF_NOT_BEFORE_CUSHION;
    return MF_RES_OK;
}

/* see mf_x509.h */
mf_res mf_x509_self_signed(const struct mf_spiffe_id *td_id, const struct mf_key *key, int64_t now,
                           int64_t ttl, struct mf_cert **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(td_id);
    MF_ENSURE_REF(key);
    MF_ENSURE_MSG(mf_spiffeid_is_td(td_id), MF_ERR_ID_HAS_PATH,
                  "a CA's SPIFFE ID names the trust domain only (SPIFFE X509-SVID 3.2)");
    struct tbs_params p;
    char serial_hex[2 * SERIAL_LEN + 1];
    memset(&p, 0, sizeof(p));
    MF_TRY(check_validity_args(now, ttl, &p.not_before, &p.not_after));
    MF_TRY(random_serial(p.serial));
    mf_hex(p.serial, SERIAL_LEN, serial_hex);
    p.signer = key->type;
    p.subject_attr = serial_hex;
    p.subject_key = &key->pub;
    p.is_ca = true;
    p.uri = td_id->str;
    MF_TRY(mf_pubkey_keyid(&key->pub, p.ski));
    p.aki = p.ski;
    p.aki_len = MF_KEYID_LEN;
    return make_cert(&p, key, out);
}

/* see mf_x509.h */
mf_res mf_x509_issue(const struct mf_issue_req *req, const struct mf_cert *issuer,
                     const struct mf_key *issuer_key, struct mf_cert **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(req);
    MF_ENSURE_REF(req->id);
    MF_ENSURE_REF(req->subject_key);
    MF_ENSURE_REF(issuer);
    MF_ENSURE_REF(issuer_key);
    const struct mf_spiffe_id *id = req->id;
    if (req->is_ca) {
        MF_ENSURE_MSG(mf_spiffeid_is_td(id), MF_ERR_ID_HAS_PATH,
                      "a CA's SPIFFE ID names the trust domain only (SPIFFE X509-SVID 3.2)");
        MF_ENSURE_MSG(req->n_dns == 0, MF_ERR_USAGE_ARG, "DNS names are for leaves only");
    } else {
        MF_ENSURE_MSG(!mf_spiffeid_is_td(id), MF_ERR_ID_NO_PATH,
                      "a leaf SPIFFE ID needs a path (SPIFFE X509-SVID 3.1)");
    }
    MF_ENSURE_MSG(req->n_dns <= MAX_DNS, MF_ERR_USAGE_ARG, "more than %d DNS names", MAX_DNS);
    MF_ENSURE(req->n_dns == 0 || req->dns_names != NULL, MF_ERR_USAGE_NULL);
    for (size_t i = 0; i < req->n_dns; i++) {
        MF_ENSURE_REF(req->dns_names[i]);
        MF_ENSURE_MSG(dns_name_ok(req->dns_names[i]), MF_ERR_USAGE_ARG, "invalid DNS name #%zu",
                      i + 1);
    }
    MF_ENSURE_MSG(mf_cert_is_ca(issuer) && issuer->ext.has_ku &&
                      (issuer->ext.ku & MF_KU_KEY_CERT_SIGN),
                  MF_ERR_USAGE_ARG, "issuer certificate is not a CA with keyCertSign");
    MF_ENSURE_MSG(mf_cert_matches_key(issuer, issuer_key), MF_ERR_CRYPTO_MISMATCH,
                  "issuer key does not match the issuer certificate");
    MF_ENSURE_MSG(req->now >= issuer->not_before && req->now < issuer->not_after,
                  MF_ERR_AUTH_EXPIRED, "issuer certificate is not valid now");
    if (!req->is_ca && issuer->id != NULL) {
        char td[MF_TD_MAX + 1];
        struct mf_spiffe_id iid;
        (void)mf_cert_spiffe_id(issuer, &iid);
        mf_spiffeid_td(&iid, td);
        MF_ENSURE_MSG(mf_spiffeid_member_of(id, td), MF_ERR_ID_WRONG_TD,
                      "ID is outside the issuer's trust domain %s", td);
    }

    struct tbs_params p;
    char subject_attr[2 * SERIAL_LEN + 1];
    memset(&p, 0, sizeof(p));
    MF_TRY(check_validity_args(req->now, req->ttl, &p.not_before, &p.not_after));
    /* B28: a certificate never outlives its issuer */
    if (p.not_after > issuer->not_after) {
        p.not_after = issuer->not_after;
    }
    MF_TRY(random_serial(p.serial));
    if (req->is_ca) {
        /* a CA's subject is unique per certificate, so that rotated CAs
         * of one trust domain never share a Name */
        mf_hex(p.serial, SERIAL_LEN, subject_attr);
    } else {
        /* B29: unique per SPIFFE ID: hex of SHA-256(ID)[0..16) */
        uint8_t h[32];
        MF_TRY(mf_sha256((const uint8_t *)id->str, id->len, h));
        mf_hex(h, SERIAL_LEN, subject_attr);
    }
    p.signer = issuer_key->type;
    p.issuer_name = issuer->subject;
    p.issuer_name_len = issuer->subject_len;
    p.subject_attr = subject_attr;
    p.subject_key = req->subject_key;
    p.is_ca = req->is_ca;
    p.uri = id->str;
    p.dns = req->dns_names;
    p.n_dns = req->n_dns;
    MF_TRY(mf_pubkey_keyid(req->subject_key, p.ski));
    uint8_t issuer_kid[MF_KEYID_LEN];
    if (issuer->ext.ski_len > 0) {
        p.aki = issuer->ext.ski;
        p.aki_len = issuer->ext.ski_len;
    } else {
        MF_TRY(mf_pubkey_keyid(&issuer->pub, issuer_kid));
        p.aki = issuer_kid;
        p.aki_len = MF_KEYID_LEN;
    }
    return make_cert(&p, issuer_key, out);
}

/* ---- verification --------------------------------------------------------- */

/* An empty Name is the DER SEQUENCE {} (30 00): no RDN at all. */
static bool name_empty(size_t name_tlv_len)
{
    return name_tlv_len <= 2;
}

static mf_res check_leaf(const struct mf_cert *leaf)
{
    const struct mf_exts *x = &leaf->ext;
    MF_ENSURE_MSG(x->n_uri > 0, MF_ERR_AUTH_SVID, "leaf has no URI SAN (B21)");
    MF_ENSURE_MSG(x->n_uri == 1, MF_ERR_AUTH_SVID, "leaf has %zu URI SANs, not one (B21)",
                  x->n_uri);
    MF_ENSURE_MSG(leaf->id != NULL, MF_ERR_AUTH_SVID,
                  "leaf URI SAN is not a valid SPIFFE ID (B21)");
    /* the ID is the trust domain alone when it has no path */
    MF_ENSURE_MSG(leaf->id_len != MF_SPIFFE_SCHEME_LEN + leaf->id_td_len, MF_ERR_AUTH_SVID,
                  "leaf SPIFFE ID %s has no path (B21)", leaf->id);
    MF_ENSURE_MSG(!(x->has_bc && x->is_ca), MF_ERR_AUTH_SVID, "leaf has cA=TRUE (B22)");
    MF_ENSURE_MSG(x->has_ku, MF_ERR_AUTH_SVID, "leaf has no keyUsage (B6)");
    MF_ENSURE_MSG(!(x->ku & (MF_KU_KEY_CERT_SIGN | MF_KU_CRL_SIGN)), MF_ERR_AUTH_SVID,
                  "leaf has keyCertSign or cRLSign (B22)");
    MF_ENSURE_MSG(x->ku & MF_KU_DIGITAL_SIGNATURE, MF_ERR_AUTH_SVID,
                  "leaf keyUsage lacks digitalSignature (B7)");
    /* B4, RFC 5280 4.1.2.6: an empty subject is named by the SAN alone,
     * which must then be critical */
    MF_ENSURE_MSG(!name_empty(leaf->subject_len) || x->san_critical, MF_ERR_AUTH_SVID,
                  "leaf has an empty subject and a non-critical subjectAltName (B4)");
    return MF_RES_OK;
}

/* The rules for every certificate of a path, leaf to authority (B20 and
 * the RFC 5280 profile that `openssl verify -x509_strict` enforces). */
static mf_res check_cert(const struct mf_cert *c, size_t pos, int64_t now)
{
    MF_ENSURE_MSG(now >= c->not_before, MF_ERR_AUTH_EXPIRED,
                  "certificate %zu of the path is not yet valid", pos);
    MF_ENSURE_MSG(now <= c->not_after, MF_ERR_AUTH_EXPIRED,
                  "certificate %zu of the path has expired", pos);
    MF_ENSURE_MSG(!c->ext.unknown_critical, MF_ERR_AUTH_UNTRUSTED,
                  "certificate %zu of the path has an unsupported critical extension (B20)", pos);
    /* 4.1.2.4: the issuer field MUST contain a non-empty Name */
    MF_ENSURE_MSG(!name_empty(c->issuer_len), MF_ERR_AUTH_UNTRUSTED,
                  "certificate %zu of the path has an empty issuer name", pos);
    /* 4.2.1.9: pathLenConstraint only with cA=TRUE */
    MF_ENSURE_MSG(!c->ext.has_pathlen || c->ext.is_ca, MF_ERR_AUTH_UNTRUSTED,
                  "certificate %zu of the path has a pathLenConstraint but cA=FALSE", pos);
    return MF_RES_OK;
}

/* A certificate issued by the next one on the path (the leaf or an
 * intermediate, never the authority). 4.2.1.1: the authorityKeyIdentifier
 * keyIdentifier MUST be present except in self-signed certificates. */
static mf_res check_subject(const struct mf_cert *c, size_t pos, int64_t now)
{
    MF_TRY(check_cert(c, pos, now));
    MF_ENSURE_MSG(c->ext.aki_len > 0, MF_ERR_AUTH_UNTRUSTED,
                  "certificate %zu of the path has no authorityKeyIdentifier keyIdentifier", pos);
    return MF_RES_OK;
}

/* The next URI of a GeneralNames slice (SAN contents), or false at its end. */
static bool next_uri(struct mf_cur *names, const uint8_t **uri, size_t *len)
{
    struct mf_der d;
    while (mf_cur_remaining(names) > 0 && mf_ok(mf_der_next(names, &d))) {
        if (d.tag == 0x86) {
            *uri = d.p;
            *len = d.len;
            return true;
        }
    }
    return false;
}

/* B15: a signing certificate's SPIFFE ID names the trust domain only
 * (spiffe://td, no path, not even "/"). Other URI schemes are left alone:
 * upstream intermediates are not SVIDs (B24). */
static mf_res check_ca_ids(const struct mf_cert *c, size_t pos)
{
    static const char scheme[] = "spiffe:";
    struct mf_cur names;
    const uint8_t *uri;
    size_t len;
    mf_cur_init(&names, c->ext.san, c->ext.san_len);
    while (next_uri(&names, &uri, &len)) {
        if (len < sizeof(scheme) - 1 ||
            strncasecmp((const char *)uri, scheme, sizeof(scheme) - 1) != 0) {
            continue;
        }
        struct mf_spiffe_id id;
        bool ok = mf_ok(mf_spiffeid_parse((const char *)uri, len, &id)) && mf_spiffeid_is_td(&id);
        MF_ENSURE_MSG(ok, MF_ERR_AUTH_UNTRUSTED,
                      "CA certificate %zu of the path has a SPIFFE ID with a path or not valid "
                      "(B15)",
                      pos);
    }
    return MF_RES_OK;
}

/* Did `issuer` issue `c`? MF_OK, MF_ERR_AUTH_UNTRUSTED when the names or
 * key identifiers do not match (not this one), MF_ERR_CRYPTO_SIG when they
 * do but the signature does not verify. */
static mf_res issued_by(const struct mf_cert *c, const struct mf_cert *issuer)
{
    if (c->issuer_len != issuer->subject_len ||
        memcmp(c->issuer, issuer->subject, c->issuer_len) != 0) {
        return (mf_res){MF_ERR_AUTH_UNTRUSTED};
    }
    if (c->ext.aki_len > 0 && issuer->ext.ski_len > 0 &&
        (c->ext.aki_len != issuer->ext.ski_len ||
         memcmp(c->ext.aki, issuer->ext.ski, c->ext.aki_len) != 0)) {
        return (mf_res){MF_ERR_AUTH_UNTRUSTED};
    }
    return mf_ec_verify_msg(&issuer->pub, c->sig_hash, c->tbs, c->tbs_len, c->sig, c->sig_len);
}

/* RFC 5280 6.1.4 (k), (l), (n): an issuer is a CA with keyCertSign whose
 * pathLenConstraint allows `below` intermediates between it and the leaf. */
static mf_res check_issuer(const struct mf_cert *issuer, size_t pos, size_t below, int64_t now)
{
    MF_ENSURE_MSG(mf_cert_is_ca(issuer), MF_ERR_AUTH_UNTRUSTED,
                  "issuer of certificate %zu is not a CA (cA=FALSE)", pos);
    MF_ENSURE_MSG(issuer->ext.has_ku && (issuer->ext.ku & MF_KU_KEY_CERT_SIGN),
                  MF_ERR_AUTH_UNTRUSTED, "issuer of certificate %zu lacks keyCertSign", pos);
    MF_ENSURE_MSG(!issuer->ext.has_pathlen || (int64_t)below <= issuer->ext.pathlen,
                  MF_ERR_AUTH_UNTRUSTED,
                  "issuer of certificate %zu has pathLenConstraint %lld, path has %zu below it",
                  pos, (long long)issuer->ext.pathlen, below);
    /* 4.2.1.9: CAs MUST mark basicConstraints critical (B12) */
    MF_ENSURE_MSG(issuer->ext.bc_critical, MF_ERR_AUTH_UNTRUSTED,
                  "issuer of certificate %zu has a non-critical basicConstraints", pos);
    /* 4.1.2.6: a CA's subject MUST be a non-empty Name */
    MF_ENSURE_MSG(!name_empty(issuer->subject_len), MF_ERR_AUTH_UNTRUSTED,
                  "issuer of certificate %zu has an empty subject name", pos);
    /* 4.2.1.2: CA certificates MUST carry a subjectKeyIdentifier */
    MF_ENSURE_MSG(issuer->ext.ski_len > 0, MF_ERR_AUTH_UNTRUSTED,
                  "issuer of certificate %zu has no subjectKeyIdentifier", pos);
    MF_ENSURE_MSG(!issuer->ext.nc_unsupported, MF_ERR_AUTH_UNTRUSTED,
                  "issuer of certificate %zu has name constraints other than URI host "
                  "subtrees, which we do not enforce",
                  pos);
    MF_TRY(check_ca_ids(issuer, pos + 1));
    MF_TRY(check_cert(issuer, pos + 1, now));
    return MF_RES_OK;
}

/* The host of a URI ("scheme://host[:port][/...]"), or false when it has
 * none (RFC 3986 3.2.2; userinfo is refused rather than skipped). */
static bool uri_host(const uint8_t *uri, size_t len, const uint8_t **host, size_t *hlen)
{
    const uint8_t *sep = memmem(uri, len, "://", 3);
    if (sep == NULL) {
        return false;
    }
    const uint8_t *h = sep + 3;
    const uint8_t *end = uri + len;
    const uint8_t *e = h;
    while (e < end && *e != '/' && *e != ':' && *e != '?' && *e != '#') {
        if (*e == '@') {
            return false;
        }
        e++;
    }
    *host = h;
    *hlen = (size_t)(e - h);
    return *hlen > 0;
}

/* RFC 5280 4.2.1.10 for URIs: the constraint applies to the host; "host"
 * matches that host only, ".domain" any host below domain (not domain
 * itself). Case-insensitive, as host names are. */
static bool uri_host_matches(const uint8_t *host, size_t hlen, const uint8_t *base, size_t blen)
{
    if (blen == 0) {
        return false;
    }
    if (base[0] == '.') {
        return hlen > blen &&
               strncasecmp((const char *)host + hlen - blen, (const char *)base, blen) == 0;
    }
    return hlen == blen && strncasecmp((const char *)host, (const char *)base, blen) == 0;
}

/* Does any URI subtree of a GeneralSubtrees SEQUENCE OF (contents, already
 * checked by the parser) match host? Sets *any when it has a URI subtree. */
static bool subtrees_match(const struct mf_der *trees, const uint8_t *host, size_t hlen, bool *any)
{
    struct mf_cur c, t;
    struct mf_der st, base;
    bool hit = false;
    mf_der_open(trees, &c);
    while (mf_cur_remaining(&c) > 0 && mf_ok(mf_der_next(&c, &st))) {
        mf_der_open(&st, &t);
        if (!mf_ok(mf_der_next(&t, &base)) || base.tag != 0x86) {
            continue;
        }
        *any = true;
        hit = hit || uri_host_matches(host, hlen, base.p, base.len);
    }
    return hit;
}

/* RFC 5280 6.1.3 (b), (c) for URI names: every URI SAN of every certificate
 * below a CA with nameConstraints (critical or not) lies in one of its
 * permitted URI subtrees, if it has any, and in none of its excluded ones.
 * path[0] is the leaf, path[n-1] the authority; an authority's constraints
 * apply too, as OpenSSL applies them. Self-issued intermediates are not
 * exempted (6.1.4 (b) would allow it): stricter, never laxer. */
static mf_res check_name_constraints(const struct mf_cert *const *path, size_t n)
{
    for (size_t j = 1; j < n; j++) {
        const struct mf_exts *nc = &path[j]->ext;
        if (!nc->has_nc) {
            continue;
        }
        struct mf_der permitted = {0}, excluded = {0};
        struct mf_cur s;
        mf_cur_init(&s, nc->nc, nc->nc_len);
        if (mf_der_peek(&s, 0xa0)) {
            MF_TRY(mf_der_next(&s, &permitted));
        }
        if (mf_der_peek(&s, 0xa1)) {
            MF_TRY(mf_der_next(&s, &excluded));
        }
        for (size_t i = 0; i < j; i++) {
            struct mf_cur names;
            const uint8_t *uri, *host;
            size_t len, hlen;
            mf_cur_init(&names, path[i]->ext.san, path[i]->ext.san_len);
            while (next_uri(&names, &uri, &len)) {
                bool any_p = false, any_e = false;
                MF_ENSURE_MSG(uri_host(uri, len, &host, &hlen), MF_ERR_AUTH_UNTRUSTED,
                              "certificate %zu of the path has a URI without a host under "
                              "the name constraints of certificate %zu",
                              i, j);
                bool in_p = subtrees_match(&permitted, host, hlen, &any_p);
                bool in_e = subtrees_match(&excluded, host, hlen, &any_e);
                MF_ENSURE_MSG(!any_p || in_p, MF_ERR_AUTH_UNTRUSTED,
                              "a URI of certificate %zu of the path is outside the permitted "
                              "subtrees of certificate %zu (RFC 5280 4.2.1.10)",
                              i, j);
                MF_ENSURE_MSG(!in_e, MF_ERR_AUTH_UNTRUSTED,
                              "a URI of certificate %zu of the path is in an excluded subtree "
                              "of certificate %zu (RFC 5280 4.2.1.10)",
                              i, j);
            }
        }
    }
    return MF_RES_OK;
}

/* see mf_x509.h */
mf_res mf_x509_verify_chain(const struct mf_certs *chain, const struct mf_certs *authorities,
                            int64_t now, struct mf_spiffe_id *id_out)
{
    if (id_out != NULL) {
        memset(id_out, 0, sizeof(*id_out));
    }
    MF_ENSURE_REF(chain);
    MF_ENSURE_REF(authorities);
    MF_ENSURE_MSG(chain->n > 0, MF_ERR_AUTH_MISSING, "empty certificate chain");
    MF_ENSURE_MSG(chain->n <= MAX_CHAIN, MF_ERR_PROTO_TOO_LARGE, "chain of %zu certificates",
                  chain->n);
    MF_ENSURE_MSG(authorities->n > 0, MF_ERR_AUTH_UNTRUSTED,
                  "no X.509 authorities for this trust domain (B23)");

    const struct mf_cert *leaf = chain->v[0];
    MF_TRY(check_leaf(leaf));

    bool used[MAX_CHAIN] = {false};
    const struct mf_cert *path[MAX_CHAIN + 1]; /* leaf, intermediates, authority */
    const struct mf_cert *cur = leaf;
    size_t below = 0; /* intermediates between the next issuer and the leaf */
    for (size_t pos = 0;; pos++) {
        mf_res last = {MF_OK};
        path[pos] = cur;
        MF_TRY(check_subject(cur, pos, now));
        /* an authority ends the path */
        for (size_t i = 0; i < authorities->n; i++) {
            const struct mf_cert *a = authorities->v[i];
            mf_res r = issued_by(cur, a);
            if (r.err == MF_ERR_AUTH_UNTRUSTED) {
                continue;
            }
            if (mf_ok(r)) {
                r = check_issuer(a, pos, below, now);
            } else {
                r = MF_RAISE_MSG(MF_ERR_AUTH_UNTRUSTED,
                                 "signature of certificate %zu does not verify under an "
                                 "authority's key",
                                 pos);
            }
            if (mf_ok(r)) {
                path[pos + 1] = a;
                r = check_name_constraints(path, pos + 2);
            }
            if (mf_ok(r)) {
                if (id_out != NULL) {
                    (void)mf_cert_spiffe_id(leaf, id_out);
                }
                return MF_RES_OK;
            }
            last = r; /* another authority (say, a renewed one) may still do */
        }
        /* otherwise an intermediate from the chain */
        const struct mf_cert *next = NULL;
        for (size_t j = 1; j < chain->n && next == NULL; j++) {
            if (used[j]) {
                continue;
            }
            const struct mf_cert *c = chain->v[j];
            mf_res r = issued_by(cur, c);
            if (r.err == MF_ERR_AUTH_UNTRUSTED) {
                continue;
            }
            if (mf_ok(r)) {
                r = check_issuer(c, pos, below, now);
            } else {
                r = MF_RAISE_MSG(MF_ERR_AUTH_UNTRUSTED,
                                 "signature of certificate %zu does not verify", pos);
            }
            if (mf_ok(r)) {
                used[j] = true;
                next = c;
            } else {
                last = r;
            }
        }
        if (next == NULL) {
            if (!mf_ok(last)) {
                return last;
            }
            MF_BAIL_MSG(MF_ERR_AUTH_UNTRUSTED,
                        "no authority of this trust domain issued certificate %zu of the path",
                        pos);
        }
        cur = next;
        below++;
    }
}
