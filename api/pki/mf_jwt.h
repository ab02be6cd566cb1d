/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_jwt: JWT-SVIDs (SPIFFE.md section C) in JWS Compact Serialization.
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * Signing writes BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(sig)
 * with the header {"alg":"ES256"|"ES384","kid":...,"typ":"JWT"} (the
 * algorithm follows the key: P-256 signs ES256, P-384 ES384) and the
 * claims {"sub","aud":[...],"exp","iat"} (+ "iss" when given), as SPIRE
 * writes them (C14).
 *
 * Validation takes a token from anyone and refuses, in this order, and
 * never repairing anything:
 *   - more than MF_JWT_MAX bytes, an embedded NUL, anything but exactly
 *     three non-empty dot-separated parts (C1: no JWS JSON serialization,
 *     no unsecured "a.b." form), base64url that is not strict (padding,
 *     whitespace, non-zero trailing bits, characters outside the URL-safe
 *     alphabet);
 *   - a header that is not a JSON object with unique members, or whose
 *     "alg" is not one of RS256/384/512, ES256/384/512, PS256/384/512 (C3:
 *     checked before anything else in the header is looked at);
 *   - header members other than alg, kid and typ (C2; "crit" is therefore
 *     refused too), a typ other than "JWT"/"JOSE" (C6), a kid that is not
 *     1..MF_KID_MAX bytes;
 *   - claims that are not a JSON object with unique members; a missing or
 *     unparsable "sub" (C7, section A rules); a missing, empty or ill-typed
 *     "aud" (C8: a string or an array of strings); a missing "exp" or an
 *     exp/nbf/iat that is not a finite number (C9, C11);
 *   - no bundle for the trust domain of "sub" in the set, no JWT authority
 *     with that kid in it, or, for a token without kid, no authority whose
 *     key verifies (C5, C10: only the bundle of sub's trust domain is ever
 *     used, never another's);
 *   - an alg that does not match the key (C4: ES256 needs P-256, ES384
 *     P-384; RS*, PS* and ES512 keys are not supported by libmayfly, so such
 *     tokens never verify), a signature that does not verify;
 *   - only then, with the signature good: exp at or before now - leeway,
 *     nbf after now + leeway (C9, C11), and an "aud" that does not contain
 *     the audience asked for (C8).
 * Errors: MF_ERR_PROTO_TOO_LARGE, MF_ERR_PROTO (malformed),
 * MF_ERR_AUTH_UNTRUSTED (no bundle or key), MF_ERR_CRYPTO_SIG,
 * MF_ERR_AUTH_EXPIRED (exp, nbf), MF_ERR_POLICY_DENIED (audience); each
 * with a detail naming the rule. The detail never echoes the token.
 */
#ifndef MF_JWT_H
#define MF_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

#define MF_JWT_MAX         (8u * 1024u) /* one compact token, bytes */
#define MF_JWT_AUD_MAX     16           /* audiences in one token or request */
#define MF_JWT_AUD_LEN_MAX 1024         /* bytes of one audience */
#define MF_JWT_LEEWAY      30           /* seconds of clock skew allowed on exp and nbf */

/* What a token asks to be signed. */
struct mf_jwt_claims_req {
    const char *sub;        /* a SPIFFE ID (validated here) */
    const char *const *aud; /* 1..MF_JWT_AUD_MAX audiences, each non-empty */
    size_t n_aud;
    int64_t iat;     /* seconds since the epoch */
    int64_t exp;     /* > iat */
    const char *iss; /* optional, NULL for none */
};

/* Signs the claims with key (EC P-256 -> ES256, P-384 -> ES384) under kid
 * (1..MF_KID_MAX printable ASCII) and appends the compact token to out.
 * Nothing is appended on failure. */
MF_WUR mf_res mf_jwt_sign(const struct mf_key *key, const char *kid,
                          const struct mf_jwt_claims_req *req, struct mf_buf *out);

/* A validated token. Caller-owned storage; mf_jwt_cleanup frees. */
struct mf_jwt {
    struct mf_spiffe_id sub;
    char alg[8];
    char kid[MF_KID_MAX + 1]; /* "" when the token has none */
    int64_t exp;              /* seconds (a fractional exp is truncated) */
    int64_t iat;              /* 0 when absent */
    size_t n_aud;
    char **aud;     /* n_aud NUL-terminated copies */
    json_t *claims; /* every claim, as decoded (owned) */
};

/* Validates len bytes at token (see above) against the bundles in set, for
 * the relying party's audience (non-empty) at time now. out is cleared first
 * and filled only on success. */
MF_WUR mf_res mf_jwt_validate(const char *token, size_t len, const struct mf_bundle_set *set,
                              const char *audience, int64_t now, struct mf_jwt *out);
void mf_jwt_cleanup(struct mf_jwt *j);

/* True when the token's audiences are exactly the set aud[0..n) (order and
 * repeats ignored). */
bool mf_jwt_aud_equal(const struct mf_jwt *j, const char *const *aud, size_t n);

#endif /* MF_JWT_H */
