/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_hash: the SHA-2 digests the pki layer uses (certificate and JOSE
 * signatures, key identifiers, fingerprints). mf_sha256 itself is public and
 * declared in mf_x509.h.
 * Internal: used inside libmayfly and by the daemons; not installed, and not
 * for workloads to include.
 *
 * Sits just above mf_wc in api/pki (the order is in mf_der.h).
 */
#ifndef MF_HASH_H
#define MF_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_x509.h"

#define MF_HASH_MAX 64 /* SHA-512 */

enum mf_hash {
    MF_HASH_SHA256 = 0,
    MF_HASH_SHA384 = 1,
    MF_HASH_SHA512 = 2,
};

/* Digest of len bytes into out; *out_len receives 32, 48 or 64.
 * MF_ERR_PROTO_TOO_LARGE past 4 GiB, MF_ERR_CRYPTO when wolfCrypt fails,
 * MF_ERR_INTERNAL for an unknown alg. */
MF_WUR mf_res mf_hash_digest(enum mf_hash alg, const uint8_t *in, size_t len,
                             uint8_t out[MF_HASH_MAX], size_t *out_len);

/* The lowercase hex SHA-256 of len bytes, as certificate and key
 * fingerprints are shown; "" if hashing fails. */
void mf_fingerprint_hex(const uint8_t *in, size_t len, char out[MF_FINGERPRINT_LEN]);

#endif /* MF_HASH_H */
