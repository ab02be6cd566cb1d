/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_bundle: SPIFFE trust bundles (SPIFFE.md section D) and sets of them.
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * A bundle is the pair <trust domain, keys> (D1): its X.509 authorities (CA
 * certificates) and its JWT authorities (public keys with a kid), plus the
 * spiffe_sequence and spiffe_refresh_hint of the SPIFFE JWKS form. Bundles are
 * immutable once published and reference counted, so the agent can swap a
 * new one in atomically while readers finish with the old.
 *
 * Encodings:
 *   SPIFFE bundle   JWKS with "use":"x509-svid" (x5c, no kid) and "use":
 *                   "jwt-svid" (kid) keys, spiffe_sequence, refresh hint.
 *                   The decoder follows D2-D11: unknown members and keys with
 *                   unknown kty/use are ignored, x509 keys use only x5c[0],
 *                   duplicate JSON keys are refused.
 *   PEM             the X.509 authorities only.
 *   JWT JWKS        plain JWKS of the JWT keys (D14), for the Workload API.
 *   bundle map      {"trust_domains":{"<td>":<bundle>,...}} (D13).
 *
 * Decoding choices where the spec leaves room (a refusal's detail
 * names keys[i] and the member):
 *   - a "jwt-svid" key without kid refuses the whole bundle (D11 is a MUST;
 *     go-spiffe refuses it too, so both sides agree on what is trusted);
 *     so do a duplicate kid (D12) and a kid that is not 1..MF_KID_MAX
 *     printable ASCII bytes.
 *   - an "x509-svid" key whose x5c is missing or empty is skipped (D10); a
 *     kid on it is ignored; its crv/x/y must describe the x5c[0]
 *     certificate's key (RFC 7517 4.7), else MF_ERR_CRYPTO_MISMATCH.
 *   - keys we cannot use are skipped like unknown ones: kty other than EC
 *     (RSA, OKP...) and curves other than P-256/P-384, for both uses (the
 *     X.509 code handles only those). A key carrying "d" (a private key)
 *     refuses the bundle.
 *   - a missing kty, and any member of the wrong JSON type, refuse it.
 *   - spiffe_sequence and spiffe_refresh_hint must be integers in
 *     0..INT64_MAX (jansson holds integers as int64); the encoder refuses a
 *     sequence above INT64_MAX with MF_ERR_USAGE_ARG.
 *   - input over MF_MAX_BUNDLE bytes, or more than MF_BUNDLE_KEYS_MAX keys of
 *     one kind, is MF_ERR_PROTO_TOO_LARGE.
 */
#ifndef MF_BUNDLE_H
#define MF_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

#define MF_KID_MAX         128
#define MF_BUNDLE_KEYS_MAX 64 /* keys of each kind in one bundle */

struct mf_jwt_authority {
    char kid[MF_KID_MAX + 1];
    struct mf_pubkey *key; /* owned */
};

struct mf_bundle {
    char td[MF_TD_MAX + 1];       /* bare trust domain name */
    struct mf_certs x509;         /* X.509 authorities */
    struct mf_jwt_authority *jwt; /* JWT authorities, n_jwt of them */
    size_t n_jwt;
    uint64_t sequence;    /* spiffe_sequence (0 = not set) */
    int64_t refresh_hint; /* seconds (0 = not set) */
    int refs;             /* managed by mf_bundle_ref/free */
};

/* An empty bundle for trust domain td (bare name or ID form). */
MF_WUR mf_res mf_bundle_new(const char *td, struct mf_bundle **out);
struct mf_bundle *mf_bundle_ref(struct mf_bundle *b); /* atomic */
void mf_bundle_free(struct mf_bundle *b);             /* drops a reference */
/* A deep copy with one reference, for building the next version. */
MF_WUR mf_res mf_bundle_copy(const struct mf_bundle *b, struct mf_bundle **out);

/* Adds a reference to cert as an X.509 authority (ignored if the same
 * certificate is already present). */
MF_WUR mf_res mf_bundle_add_x509(struct mf_bundle *b, struct mf_cert *cert);
/* Adds a JWT authority; takes ownership of key, also on failure (the key is
 * freed then); refuses a duplicate kid (MF_ERR_POLICY_DUPLICATE) and a kid
 * that is not 1..MF_KID_MAX printable ASCII bytes (MF_ERR_USAGE_ARG). */
MF_WUR mf_res mf_bundle_add_jwt(struct mf_bundle *b, const char *kid, struct mf_pubkey *key);
/* Byte-equal content (authorities, not sequence/hint). */
bool mf_bundle_same_keys(const struct mf_bundle *a, const struct mf_bundle *b);

MF_WUR mf_res mf_bundle_to_jwks(const struct mf_bundle *b, struct mf_buf *out);
MF_WUR mf_res mf_bundle_from_jwks(const char *td, const char *json, size_t len,
                                  struct mf_bundle **out);
MF_WUR mf_res mf_bundle_to_pem(const struct mf_bundle *b, struct mf_buf *out);
MF_WUR mf_res mf_bundle_from_pem(const char *td, const char *pem, size_t len,
                                 struct mf_bundle **out);
/* Encodes the JWT authorities as a plain JWKS (D14): kty, kid, crv, x, y
 * per key; no use, no spiffe_* members. */
MF_WUR mf_res mf_bundle_jwt_jwks(const struct mf_bundle *b, struct mf_buf *out);
/* Decodes a plain JWT JWKS (D14, the Workload API form) into a bundle for td
 * holding only JWT authorities: keys with no "use" or "jwt-svid" are JWT
 * keys and must have a kid (as go-spiffe requires); keys with another use
 * are skipped; spiffe_* members are ignored. */
MF_WUR mf_res mf_bundle_from_jwt_jwks(const char *td, const char *json, size_t len,
                                      struct mf_bundle **out);

/* A set of bundles, at most one per trust domain. */
struct mf_bundle_set {
    struct mf_bundle **v;
    size_t n;
};

void mf_bundle_set_init(struct mf_bundle_set *s);
void mf_bundle_set_cleanup(struct mf_bundle_set *s);
/* Adds a reference to b, replacing any bundle of the same trust domain. */
MF_WUR mf_res mf_bundle_set_put(struct mf_bundle_set *s, struct mf_bundle *b);
/* The bundle of trust domain td (bare name), or NULL. Borrowed. */
const struct mf_bundle *mf_bundle_set_find(const struct mf_bundle_set *s, const char *td);
/* Encodes the set as a bundle map (D13); the inner bundles carry no
 * spiffe_refresh_hint. */
MF_WUR mf_res mf_bundle_set_to_map(const struct mf_bundle_set *s, struct mf_buf *out);
/* Decodes a bundle map (at most MF_MAX_BUNDLE bytes). out is initialised
 * here (it must not hold bundles) and filled only on success. trust_domains
 * is required and may be empty; its keys must be bare trust domain names,
 * and a duplicate is refused. Inner refresh hints are dropped (D13: map
 * refresh must not depend on them). */
MF_WUR mf_res mf_bundle_set_from_map(const char *json, size_t len, struct mf_bundle_set *out);

/* Verifies an X509-SVID chain (leaf first) as a relying party: picks the
 * bundle of the leaf's trust domain from set (never pooling trust domains,
 * B23) and calls mf_x509_verify_chain. MF_ERR_AUTH_UNTRUSTED when set has no
 * bundle for that trust domain. */
MF_WUR mf_res mf_svid_verify(const struct mf_certs *chain, const struct mf_bundle_set *set,
                             int64_t now, struct mf_spiffe_id *id_out);

#endif /* MF_BUNDLE_H */
