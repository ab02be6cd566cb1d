/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_cert: X.509 certificate parsing (RFC 5280 section 4.1), the
 * certificate extensions we understand (shared with mf_csr), and lists of
 * certificates. It sits above mf_der, mf_hash, mf_pem and mf_key (the order
 * is in mf_x509_int.h) and below mf_csr and mf_x509.
 *
 * A parsed certificate owns a copy of its DER; every slice in struct mf_cert
 * points into that copy, and the object never changes after parsing, so it is
 * shared between threads by reference count alone.
 */
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_mem.h"
#include "api/pki/mf_x509.h"
#include "api/pki/mf_x509_int.h"

static const uint8_t oid_key_usage[3] = {0x55, 0x1d, 0x0f};
static const uint8_t oid_eku[3] = {0x55, 0x1d, 0x25};
static const uint8_t oid_ski[3] = {0x55, 0x1d, 0x0e};
static const uint8_t oid_aki[3] = {0x55, 0x1d, 0x23};
static const uint8_t oid_kp_server[8] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
static const uint8_t oid_kp_client[8] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02};
static const uint8_t oid_eku_any[4] = {0x55, 0x1d, 0x25, 0x00};

#define MAX_EXTENSIONS 32 /* more than any sane certificate carries */

/* ---- extensions ---------------------------------------------------------- */

/* BIT STRING contents: first octet is the count of unused bits (0-7), which
 * must be zero bits (X.690 11.2). */
static mf_res bit_string(const struct mf_der *d, const uint8_t **bits, size_t *n)
{
    MF_ENSURE_MSG(d->tag == MF_DER_BIT_STRING && d->len >= 1 && d->p[0] <= 7, MF_ERR_PROTO_DER,
                  "malformed BIT STRING");
    uint8_t unused = d->p[0];
    MF_ENSURE_MSG(!(d->len == 1 && unused != 0), MF_ERR_PROTO_DER, "malformed BIT STRING");
    if (d->len > 1) {
        uint8_t mask = (uint8_t)((1u << unused) - 1u);
        MF_ENSURE_MSG((d->p[d->len - 1] & mask) == 0, MF_ERR_PROTO_DER,
                      "BIT STRING has non-zero unused bits");
    }
    *bits = d->p + 1;
    *n = d->len - 1;
    return MF_RES_OK;
}

static mf_res parse_bc(const struct mf_der *v, struct mf_exts *x)
{
    /* BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE,
     *     pathLenConstraint INTEGER (0..MAX) OPTIONAL } */
    struct mf_cur c, s;
    struct mf_der seq, d;
    mf_cur_init(&c, v->p, v->len);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &seq));
    MF_TRY(mf_der_end(&c, "basicConstraints"));
    mf_der_open(&seq, &s);
    if (mf_der_peek(&s, MF_DER_BOOLEAN)) {
        MF_TRY(mf_der_next(&s, &d));
        MF_TRY(mf_der_bool(&d, &x->is_ca));
    }
    if (mf_der_peek(&s, MF_DER_INTEGER)) {
        MF_TRY(mf_der_next(&s, &d));
        MF_TRY(mf_der_small_uint(&d, 255, &x->pathlen));
        x->has_pathlen = true;
    }
    MF_TRY(mf_der_end(&s, "basicConstraints"));
    x->has_bc = true;
    return MF_RES_OK;
}

static mf_res parse_ku(const struct mf_der *v, struct mf_exts *x)
{
    /* KeyUsage ::= BIT STRING; bit 0 is the high bit of the first octet */
    struct mf_cur c;
    struct mf_der d;
    const uint8_t *bits;
    size_t n;
    mf_cur_init(&c, v->p, v->len);
    MF_TRY(mf_der_get(&c, MF_DER_BIT_STRING, &d));
    MF_TRY(mf_der_end(&c, "keyUsage"));
    MF_TRY(bit_string(&d, &bits, &n));
    unsigned ku = 0;
    for (unsigned i = 0; i < 9 && i / 8 < n; i++) {
        if (bits[i / 8] & (0x80u >> (i % 8))) {
            ku |= 1u << i;
        }
    }
    x->ku = ku;
    x->has_ku = true;
    return MF_RES_OK;
}

static mf_res parse_eku(const struct mf_der *v, struct mf_exts *x)
{
    /* ExtKeyUsageSyntax ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId (OID) */
    struct mf_cur c, s;
    struct mf_der seq, d;
    mf_cur_init(&c, v->p, v->len);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &seq));
    MF_TRY(mf_der_end(&c, "extKeyUsage"));
    mf_der_open(&seq, &s);
    MF_ENSURE_MSG(mf_cur_remaining(&s) > 0, MF_ERR_PROTO_DER, "empty extKeyUsage");
    while (mf_cur_remaining(&s) > 0) {
        MF_TRY(mf_der_get(&s, MF_DER_OID, &d));
        if (mf_der_oid_is(&d, oid_kp_server, sizeof(oid_kp_server))) {
            x->eku_server = true;
        } else if (mf_der_oid_is(&d, oid_kp_client, sizeof(oid_kp_client))) {
            x->eku_client = true;
        } else if (mf_der_oid_is(&d, oid_eku_any, sizeof(oid_eku_any))) {
            x->eku_any = true;
        }
    }
    x->has_eku = true;
    return MF_RES_OK;
}

static mf_res parse_san(const struct mf_der *v, struct mf_exts *x)
{
    struct mf_cur c, s;
    struct mf_der seq, d;
    mf_cur_init(&c, v->p, v->len);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &seq));
    MF_TRY(mf_der_end(&c, "subjectAltName"));
    mf_der_open(&seq, &s);
    MF_ENSURE_MSG(mf_cur_remaining(&s) > 0, MF_ERR_PROTO_DER, "empty subjectAltName");
    while (mf_cur_remaining(&s) > 0) {
        MF_TRY(mf_der_next(&s, &d));
        switch (d.tag) {
        case 0x86: /* uniformResourceIdentifier */
            if (x->n_uri == 0) {
                x->uri = d.p;
                x->uri_len = d.len;
            }
            x->n_uri++;
            break;
        case 0x82: /* dNSName */
            x->n_dns++;
            break;
        case 0xa0: /* otherName */
        case 0x81: /* rfc822Name */
        case 0xa3: /* x400Address */
        case 0xa4: /* directoryName */
        case 0xa5: /* ediPartyName */
        case 0x87: /* iPAddress */
        case 0x88: /* registeredID */
            break;
        default:
            MF_BAIL_MSG(MF_ERR_PROTO_DER, "unknown GeneralName tag 0x%02x", d.tag);
        }
    }
    x->has_san = true;
    x->san = seq.p;
    x->san_len = seq.len;
    return MF_RES_OK;
}

/* GeneralSubtrees ::= SEQUENCE SIZE (1..MAX) OF GeneralSubtree
 * GeneralSubtree ::= SEQUENCE { base GeneralName,
 *     minimum [0] BaseDistance DEFAULT 0, maximum [1] BaseDistance OPTIONAL }
 * (the [0]/[1] of NameConstraints, IMPLICIT, so d is the SEQUENCE OF) */
static mf_res parse_subtrees(const struct mf_der *d, struct mf_exts *x)
{
    struct mf_cur c, t;
    struct mf_der st, base, rest;
    mf_der_open(d, &c);
    MF_ENSURE_MSG(mf_cur_remaining(&c) > 0, MF_ERR_PROTO_DER, "empty GeneralSubtrees");
    while (mf_cur_remaining(&c) > 0) {
        MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &st));
        mf_der_open(&st, &t);
        MF_TRY(mf_der_next(&t, &base));
        /* RFC 5280 4.2.1.10: minimum MUST be zero (so, in DER, absent) and
         * maximum MUST be absent; a URI base is the only form we enforce */
        if (base.tag != 0x86 || mf_cur_remaining(&t) > 0) {
            x->nc_unsupported = true;
        }
        while (mf_cur_remaining(&t) > 0) {
            MF_TRY(mf_der_next(&t, &rest));
        }
    }
    return MF_RES_OK;
}

static mf_res parse_nc(const struct mf_der *v, struct mf_exts *x)
{
    /* NameConstraints ::= SEQUENCE {
     *     permittedSubtrees [0] GeneralSubtrees OPTIONAL,
     *     excludedSubtrees [1] GeneralSubtrees OPTIONAL }
     * RFC 5280 4.2.1.10: never an empty sequence. */
    struct mf_cur c, s;
    struct mf_der seq, d;
    mf_cur_init(&c, v->p, v->len);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &seq));
    MF_TRY(mf_der_end(&c, "nameConstraints"));
    mf_der_open(&seq, &s);
    MF_ENSURE_MSG(mf_cur_remaining(&s) > 0, MF_ERR_PROTO_DER, "empty nameConstraints");
    if (mf_der_peek(&s, 0xa0)) {
        MF_TRY(mf_der_next(&s, &d));
        MF_TRY(parse_subtrees(&d, x));
    }
    if (mf_der_peek(&s, 0xa1)) {
        MF_TRY(mf_der_next(&s, &d));
        MF_TRY(parse_subtrees(&d, x));
    }
    MF_TRY(mf_der_end(&s, "nameConstraints"));
    x->has_nc = true;
    x->nc = seq.p;
    x->nc_len = seq.len;
    return MF_RES_OK;
}

static mf_res parse_ski(const struct mf_der *v, struct mf_exts *x)
{
    struct mf_cur c;
    struct mf_der d;
    mf_cur_init(&c, v->p, v->len);
    MF_TRY(mf_der_get(&c, MF_DER_OCTET, &d));
    MF_TRY(mf_der_end(&c, "subjectKeyIdentifier"));
    MF_ENSURE_MSG(d.len >= 1 && d.len <= MF_KEYID_MAX, MF_ERR_PROTO_DER,
                  "subjectKeyIdentifier of %zu bytes", d.len);
    x->ski = d.p;
    x->ski_len = d.len;
    return MF_RES_OK;
}

static mf_res parse_aki(const struct mf_der *v, struct mf_exts *x)
{
    /* AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] OPTIONAL,
     *     authorityCertIssuer [1] OPTIONAL, authorityCertSerialNumber [2]
     *     OPTIONAL } */
    struct mf_cur c, s;
    struct mf_der seq, d;
    mf_cur_init(&c, v->p, v->len);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &seq));
    MF_TRY(mf_der_end(&c, "authorityKeyIdentifier"));
    mf_der_open(&seq, &s);
    if (mf_der_peek(&s, 0x80)) {
        MF_TRY(mf_der_next(&s, &d));
        MF_ENSURE_MSG(d.len >= 1 && d.len <= MF_KEYID_MAX, MF_ERR_PROTO_DER,
                      "authority keyIdentifier of %zu bytes", d.len);
        x->aki = d.p;
        x->aki_len = d.len;
    }
    if (mf_der_peek(&s, 0xa1)) {
        MF_TRY(mf_der_next(&s, &d));
    }
    if (mf_der_peek(&s, 0x82)) {
        MF_TRY(mf_der_next(&s, &d));
    }
    MF_TRY(mf_der_end(&s, "authorityKeyIdentifier"));
    return MF_RES_OK;
}

/* see mf_x509_int.h */
mf_res mf_exts_parse(const struct mf_der *d, struct mf_exts *out)
{
    struct mf_der seen[MAX_EXTENSIONS];
    size_t n = 0;
    struct mf_cur c;
    MF_ENSURE_MSG(d->tag == MF_DER_SEQUENCE, MF_ERR_PROTO_DER, "Extensions is not a SEQUENCE");
    mf_der_open(d, &c);
    MF_ENSURE_MSG(mf_cur_remaining(&c) > 0, MF_ERR_PROTO_DER, "empty Extensions");
    while (mf_cur_remaining(&c) > 0) {
        struct mf_der ext, oid, crit, val;
        struct mf_cur e;
        bool critical = false;
        MF_ENSURE_MSG(n < MAX_EXTENSIONS, MF_ERR_PROTO_DER, "more than %d extensions",
                      MAX_EXTENSIONS);
        MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &ext));
        mf_der_open(&ext, &e);
        MF_TRY(mf_der_get(&e, MF_DER_OID, &oid));
        if (mf_der_peek(&e, MF_DER_BOOLEAN)) {
            MF_TRY(mf_der_next(&e, &crit));
            MF_TRY(mf_der_bool(&crit, &critical));
        }
        MF_TRY(mf_der_get(&e, MF_DER_OCTET, &val));
        MF_TRY(mf_der_end(&e, "Extension"));
        /* RFC 5280 4.2: at most one instance of a given extension */
        for (size_t i = 0; i < n; i++) {
            MF_ENSURE_MSG(!mf_der_oid_is(&seen[i], oid.p, oid.len), MF_ERR_PROTO_DER,
                          "duplicate extension");
        }
        seen[n++] = oid;
        if (mf_der_oid_is(&oid, mf_oid_basic_constraints, sizeof(mf_oid_basic_constraints))) {
            MF_TRY(parse_bc(&val, out));
            out->bc_critical = critical;
        } else if (mf_der_oid_is(&oid, oid_key_usage, sizeof(oid_key_usage))) {
            MF_TRY(parse_ku(&val, out));
            out->ku_critical = critical;
        } else if (mf_der_oid_is(&oid, oid_eku, sizeof(oid_eku))) {
            MF_TRY(parse_eku(&val, out));
        } else if (mf_der_oid_is(&oid, mf_oid_san, sizeof(mf_oid_san))) {
            MF_TRY(parse_san(&val, out));
            out->san_critical = critical;
        } else if (mf_der_oid_is(&oid, mf_oid_name_constraints, sizeof(mf_oid_name_constraints))) {
            MF_TRY(parse_nc(&val, out));
        } else if (mf_der_oid_is(&oid, oid_ski, sizeof(oid_ski))) {
            MF_TRY(parse_ski(&val, out));
            /* RFC 5280 4.2.1.2: conforming CAs mark it non-critical; we
             * read it as a path-building hint only, so a critical one asks
             * for processing we do not do (OpenSSL refuses it likewise) */
            out->unknown_critical |= critical;
        } else if (mf_der_oid_is(&oid, oid_aki, sizeof(oid_aki))) {
            MF_TRY(parse_aki(&val, out));
            out->unknown_critical |= critical; /* 4.2.1.1: as for the SKI */
        } else if (critical) {
            /* Refused by the verifier (B20); kept parseable so that a
             * bundle can still be shown and inspected. */
            out->unknown_critical = true;
        }
    }
    return MF_RES_OK;
}

/* Name ::= SEQUENCE OF RelativeDistinguishedName; each RDN a non-empty SET
 * OF SEQUENCE { OID, value }. Only the structure is checked. */
static mf_res check_name(const struct mf_der *d)
{
    struct mf_cur c;
    MF_ENSURE_MSG(d->tag == MF_DER_SEQUENCE, MF_ERR_PROTO_DER, "Name is not a SEQUENCE");
    mf_der_open(d, &c);
    while (mf_cur_remaining(&c) > 0) {
        struct mf_der rdn, atv, oid, val;
        struct mf_cur r, a;
        MF_TRY(mf_der_get(&c, MF_DER_SET, &rdn));
        mf_der_open(&rdn, &r);
        MF_ENSURE_MSG(mf_cur_remaining(&r) > 0, MF_ERR_PROTO_DER, "empty RDN");
        while (mf_cur_remaining(&r) > 0) {
            MF_TRY(mf_der_get(&r, MF_DER_SEQUENCE, &atv));
            mf_der_open(&atv, &a);
            MF_TRY(mf_der_get(&a, MF_DER_OID, &oid));
            MF_TRY(mf_der_next(&a, &val));
            MF_TRY(mf_der_end(&a, "AttributeTypeAndValue"));
        }
    }
    return MF_RES_OK;
}

/* ---- certificates -------------------------------------------------------- */

static mf_res parse_serial(const struct mf_der *d, struct mf_cert *cert)
{
    /* RFC 5280 4.1.2.2: a positive INTEGER of at most 20 octets (a 21st
     * leading zero octet keeps the sign) */
    MF_ENSURE_MSG(d->tag == MF_DER_INTEGER && d->len >= 1 && d->len <= 21, MF_ERR_PROTO_DER,
                  "serial number of %zu bytes", d->len);
    MF_ENSURE_MSG((d->p[0] & 0x80) == 0, MF_ERR_PROTO_DER, "negative serial number");
    MF_ENSURE_MSG(!(d->len > 1 && d->p[0] == 0 && (d->p[1] & 0x80) == 0), MF_ERR_PROTO_DER,
                  "non-minimal serial number");
    MF_ENSURE_MSG(!(d->len == 21 && d->p[0] != 0), MF_ERR_PROTO_DER, "serial over 20 octets");
    memcpy(cert->serial, d->p, d->len);
    cert->serial_len = d->len;
    return MF_RES_OK;
}

static mf_res parse_tbs(const struct mf_der *tbs, const struct mf_der *outer_alg,
                        const struct mf_pubkey *known, struct mf_cert *cert)
{
    /* TBSCertificate ::= SEQUENCE {
     *     version [0] EXPLICIT Version (v3 = 2), serialNumber INTEGER,
     *     signature AlgorithmIdentifier, issuer Name, validity Validity,
     *     subject Name, subjectPublicKeyInfo SubjectPublicKeyInfo,
     *     issuerUniqueID [1] IMPLICIT OPTIONAL, subjectUniqueID [2] IMPLICIT
     *     OPTIONAL, extensions [3] EXPLICIT Extensions OPTIONAL } */
    struct mf_cur c, v;
    struct mf_der ver, d, alg, validity, spki;
    int64_t version;
    mf_der_open(tbs, &c);
    MF_ENSURE_MSG(mf_der_peek(&c, 0xa0), MF_ERR_PROTO_DER,
                  "only X.509 v3 certificates are accepted");
    MF_TRY(mf_der_next(&c, &ver));
    mf_der_open(&ver, &v);
    MF_TRY(mf_der_get(&v, MF_DER_INTEGER, &d));
    MF_TRY(mf_der_end(&v, "version"));
    MF_TRY(mf_der_small_uint(&d, 2, &version));
    MF_ENSURE_MSG(version == 2, MF_ERR_PROTO_DER, "only X.509 v3 certificates are accepted");
    MF_TRY(mf_der_get(&c, MF_DER_INTEGER, &d));
    MF_TRY(parse_serial(&d, cert));
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &alg));
    /* RFC 5280 4.1.1.2: must equal the outer signatureAlgorithm */
    MF_ENSURE_MSG(alg.tlv_len == outer_alg->tlv_len &&
                      memcmp(alg.tlv, outer_alg->tlv, alg.tlv_len) == 0,
                  MF_ERR_PROTO_DER, "inner and outer signature algorithms differ");
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &d));
    MF_TRY(check_name(&d));
    cert->issuer = d.tlv;
    cert->issuer_len = d.tlv_len;
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &validity));
    mf_der_open(&validity, &v);
    MF_TRY(mf_der_next(&v, &d));
    MF_TRY(mf_der_time(&d, &cert->not_before));
    MF_TRY(mf_der_next(&v, &d));
    MF_TRY(mf_der_time(&d, &cert->not_after));
    MF_TRY(mf_der_end(&v, "validity"));
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &d));
    MF_TRY(check_name(&d));
    cert->subject = d.tlv;
    cert->subject_len = d.tlv_len;
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &spki));
    if (known != NULL && spki.tlv_len == known->spki_len &&
        memcmp(spki.tlv, known->spki, spki.tlv_len) == 0) {
        /* the very key, already checked: no second on-curve check */
        cert->pub = *known;
    } else {
        MF_TRY(mf_pubkey_parse_into(spki.tlv, spki.tlv_len, &cert->pub));
    }
    if (mf_der_peek(&c, 0x81)) {
        MF_TRY(mf_der_next(&c, &d));
    }
    if (mf_der_peek(&c, 0x82)) {
        MF_TRY(mf_der_next(&c, &d));
    }
    if (mf_der_peek(&c, 0xa3)) {
        struct mf_der exts;
        MF_TRY(mf_der_next(&c, &d));
        mf_der_open(&d, &v);
        MF_TRY(mf_der_get(&v, MF_DER_SEQUENCE, &exts));
        MF_TRY(mf_der_end(&v, "extensions"));
        MF_TRY(mf_exts_parse(&exts, &cert->ext));
    }
    MF_TRY(mf_der_end(&c, "TBSCertificate"));
    return MF_RES_OK;
}

static mf_res parse_cert(struct mf_cert *cert, const struct mf_pubkey *known)
{
    /* Certificate ::= SEQUENCE { tbsCertificate TBSCertificate,
     *     signatureAlgorithm AlgorithmIdentifier, signatureValue BIT STRING } */
    struct mf_cur top, c;
    struct mf_der whole, tbs, alg, sig;
    const uint8_t *bits;
    size_t nbits;
    mf_cur_init(&top, cert->der, cert->der_len);
    MF_TRY(mf_der_get(&top, MF_DER_SEQUENCE, &whole));
    MF_TRY(mf_der_end(&top, "Certificate"));
    mf_der_open(&whole, &c);
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &tbs));
    MF_TRY(mf_der_get(&c, MF_DER_SEQUENCE, &alg));
    MF_TRY(mf_der_get(&c, MF_DER_BIT_STRING, &sig));
    MF_TRY(mf_der_end(&c, "Certificate"));
    MF_TRY(mf_sigalg_parse(&alg, &cert->sig_hash));
    MF_TRY(bit_string(&sig, &bits, &nbits));
    MF_ENSURE_MSG(sig.p[0] == 0, MF_ERR_PROTO_DER, "signature is not whole octets");
    cert->sig = bits;
    cert->sig_len = nbits;
    cert->tbs = tbs.tlv;
    cert->tbs_len = tbs.tlv_len;
    MF_TRY(parse_tbs(&tbs, &alg, known, cert));
    if (cert->ext.n_uri == 1) {
        struct mf_spiffe_id id;
        if (mf_ok(mf_spiffeid_parse((const char *)cert->ext.uri, cert->ext.uri_len, &id))) {
            cert->id = malloc(id.len + 1);
            MF_TRY_PTR(cert->id, MF_ERR_NOMEM);
            memcpy(cert->id, id.str, id.len + 1);
            cert->id_len = id.len;
            cert->id_td_len = id.td_len;
        }
    }
    return MF_RES_OK;
}

/* see mf_x509.h */
mf_res mf_cert_from_der(const uint8_t *der, size_t len, struct mf_cert **out)
{
    return mf_cert_from_der_key(der, len, NULL, out);
}

/* see mf_x509.h */
mf_res mf_cert_from_der_with_key(const uint8_t *der, size_t len, const struct mf_key *key,
                                 struct mf_cert **out)
{
    return mf_cert_from_der_key(der, len, key != NULL ? &key->pub : NULL, out);
}

/* see mf_x509_int.h */
mf_res mf_cert_from_der_key(const uint8_t *der, size_t len, const struct mf_pubkey *known,
                            struct mf_cert **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(der);
    MF_ENSURE_MSG(len > 0, MF_ERR_PROTO_DER, "empty certificate");
    MF_ENSURE_MSG(len <= MF_MAX_CERT, MF_ERR_PROTO_TOO_LARGE, "certificate of %zu bytes (max %u)",
                  len, MF_MAX_CERT);
    mf_res rc;
    struct mf_cert *cert = calloc(1, sizeof(*cert));
    MF_TRY_PTR(cert, MF_ERR_NOMEM);
    cert->der = malloc(len);
    MF_ENSURE_OUT(cert->der != NULL, MF_ERR_NOMEM);
    memcpy(cert->der, der, len);
    cert->der_len = len;
    atomic_init(&cert->refs, 1);
    MF_TRY_OUT(parse_cert(cert, known));
    *out = cert;
    cert = NULL;
    rc = MF_RES_OK;
out:
    if (cert != NULL) {
        free(cert->id);
        free(cert->der);
        free(cert);
    }
    return rc;
}

/* see mf_x509.h */
struct mf_cert *mf_cert_ref(struct mf_cert *cert)
{
    if (cert != NULL) {
        atomic_fetch_add_explicit(&cert->refs, 1, memory_order_relaxed);
    }
    return cert;
}

/* see mf_x509.h */
void mf_cert_free(struct mf_cert *cert)
{
    if (cert == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&cert->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    free(cert->id);
    free(cert->der);
    free(cert);
}

/* see mf_x509.h */
const uint8_t *mf_cert_der(const struct mf_cert *cert, size_t *len)
{
    *len = cert->der_len;
    return cert->der;
}

/* see mf_x509.h */
int64_t mf_cert_not_before(const struct mf_cert *cert)
{
    return cert->not_before;
}

/* see mf_x509.h */
int64_t mf_cert_not_after(const struct mf_cert *cert)
{
    return cert->not_after;
}

/* see mf_x509.h */
bool mf_cert_is_ca(const struct mf_cert *cert)
{
    return cert->ext.has_bc && cert->ext.is_ca;
}

/* see mf_x509.h */
bool mf_cert_spiffe_id(const struct mf_cert *cert, struct mf_spiffe_id *out)
{
    memset(out, 0, sizeof(*out));
    if (cert->id == NULL) {
        return false;
    }
    memcpy(out->str, cert->id, cert->id_len + 1);
    out->len = cert->id_len;
    out->td_len = cert->id_td_len;
    return true;
}

/* see mf_x509.h */
const char *mf_cert_spiffe_id_str(const struct mf_cert *cert)
{
    return cert->id;
}

/* see mf_x509.h */
void mf_cert_serial_hex(const struct mf_cert *cert, char out[MF_SERIAL_HEX_MAX])
{
    const uint8_t *p = cert->serial;
    size_t n = cert->serial_len;
    while (n > 1 && p[0] == 0) {
        p++;
        n--;
    }
    char hex[2 * sizeof(cert->serial) + 1];
    mf_hex(p, n, hex);
    const char *h = hex;
    if (h[0] == '0' && h[1] != '\0') {
        h++;
    }
    size_t len = strlen(h);
    if (len >= MF_SERIAL_HEX_MAX) {
        len = MF_SERIAL_HEX_MAX - 1;
    }
    memcpy(out, h, len);
    out[len] = '\0';
}

/* see mf_x509.h */
const struct mf_pubkey *mf_cert_pubkey(const struct mf_cert *cert)
{
    return &cert->pub;
}

/* see mf_x509.h */
bool mf_cert_matches_key(const struct mf_cert *cert, const struct mf_key *key)
{
    if (cert == NULL || key == NULL) {
        return false;
    }
    return mf_pubkey_eq(&cert->pub, &key->pub);
}

/* see mf_x509.h */
void mf_cert_fingerprint(const struct mf_cert *cert, char out[MF_FINGERPRINT_LEN])
{
    mf_fingerprint_hex(cert->der, cert->der_len, out);
}

/* ---- lists --------------------------------------------------------------- */

/* see mf_x509.h */
void mf_certs_init(struct mf_certs *cs)
{
    cs->v = NULL;
    cs->n = 0;
}

/* see mf_x509.h */
void mf_certs_cleanup(struct mf_certs *cs)
{
    if (cs == NULL) {
        return;
    }
    for (size_t i = 0; i < cs->n; i++) {
        mf_cert_free(cs->v[i]);
    }
    free(cs->v);
    cs->v = NULL;
    cs->n = 0;
}

/* see mf_x509.h */
mf_res mf_certs_push(struct mf_certs *cs, struct mf_cert *cert)
{
    MF_ENSURE_REF(cs);
    MF_ENSURE_REF(cert);
    size_t n, bytes;
    MF_ENSURE(mf_add_size(cs->n, 1, &n), MF_ERR_OVERFLOW);
    MF_ENSURE(mf_mul_size(n, sizeof(*cs->v), &bytes), MF_ERR_OVERFLOW);
    struct mf_cert **v = realloc(cs->v, bytes);
    MF_TRY_PTR(v, MF_ERR_NOMEM);
    cs->v = v;
    cs->v[cs->n++] = mf_cert_ref(cert);
    return MF_RES_OK;
}

/* Moves every certificate of from to the end of to. */
static mf_res certs_move(struct mf_certs *to, struct mf_certs *from)
{
    for (size_t i = 0; i < from->n; i++) {
        MF_TRY(mf_certs_push(to, from->v[i]));
    }
    mf_certs_cleanup(from);
    return MF_RES_OK;
}

/* see mf_x509.h */
mf_res mf_certs_from_pem(const char *pem, size_t len, struct mf_certs *out)
{
    MF_ENSURE_REF(pem);
    MF_ENSURE_REF(out);
    mf_res rc;
    struct mf_certs tmp;
    struct mf_buf der;
    struct mf_cur cur;
    char label[64];
    mf_certs_init(&tmp);
    mf_buf_init(&der, MF_MAX_CERT, 0);
    mf_cur_init(&cur, pem, len);
    for (;;) {
        rc = mf_pem_next(&cur, label, sizeof(label), &der);
        if (rc.err == MF_ERR_IO_EOF) {
            break;
        }
        MF_TRY_OUT(rc);
        if (strcmp(label, "CERTIFICATE") != 0) {
            continue;
        }
        struct mf_cert *cert;
        MF_TRY_OUT(mf_cert_from_der(der.data, der.len, &cert));
        rc = mf_certs_push(&tmp, cert);
        mf_cert_free(cert);
        MF_TRY_OUT(rc);
    }
    MF_ENSURE_OUT_MSG(tmp.n > 0, MF_ERR_PROTO_PEM, "no CERTIFICATE block");
    MF_TRY_OUT(certs_move(out, &tmp));
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&tmp);
    mf_buf_cleanup(&der);
    return rc;
}

/* see mf_x509.h */
mf_res mf_certs_from_der_concat(const uint8_t *der, size_t len, struct mf_certs *out)
{
    MF_ENSURE_REF(der);
    MF_ENSURE_REF(out);
    mf_res rc;
    struct mf_certs tmp;
    struct mf_cur cur;
    mf_certs_init(&tmp);
    mf_cur_init(&cur, der, len);
    while (mf_cur_remaining(&cur) > 0) {
        struct mf_der d;
        struct mf_cert *cert;
        MF_TRY_OUT(mf_der_get(&cur, MF_DER_SEQUENCE, &d));
        MF_TRY_OUT(mf_cert_from_der(d.tlv, d.tlv_len, &cert));
        rc = mf_certs_push(&tmp, cert);
        mf_cert_free(cert);
        MF_TRY_OUT(rc);
    }
    MF_ENSURE_OUT_MSG(tmp.n > 0, MF_ERR_PROTO_DER, "no certificate");
    MF_TRY_OUT(certs_move(out, &tmp));
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&tmp);
    return rc;
}

/* see mf_x509.h */
mf_res mf_certs_to_pem(const struct mf_certs *cs, struct mf_buf *out)
{
    MF_ENSURE_REF(cs);
    MF_ENSURE_REF(out);
    for (size_t i = 0; i < cs->n; i++) {
        MF_TRY(mf_pem_encode("CERTIFICATE", cs->v[i]->der, cs->v[i]->der_len, out));
    }
    return MF_RES_OK;
}

/* see mf_x509.h */
mf_res mf_certs_to_der_concat(const struct mf_certs *cs, struct mf_buf *out)
{
    MF_ENSURE_REF(cs);
    MF_ENSURE_REF(out);
    for (size_t i = 0; i < cs->n; i++) {
        MF_TRY(mf_buf_append(out, cs->v[i]->der, cs->v[i]->der_len));
    }
    return MF_RES_OK;
}
