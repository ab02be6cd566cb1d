/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_hash: SHA-2 digests through wolfCrypt's one-shot functions. Hashes are
 * of public data (certificates, signing input, public keys), so nothing here
 * is wiped.
 */
#include "api/pki/mf_hash.h"

#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include "api/core/mf_text.h"
#include "api/pki/mf_wc.h"
#include "api/pki/mf_x509.h"

/* see mf_x509.h */
mf_res mf_sha256(const uint8_t *in, size_t len, uint8_t out[32])
{
    MF_ENSURE_REF(out);
    MF_ENSURE(in != NULL || len == 0, MF_ERR_USAGE_NULL);
    MF_ENSURE(len <= UINT32_MAX, MF_ERR_PROTO_TOO_LARGE);
    MF_TRY_WC(wc_Sha256Hash(in, (word32)len, out), MF_ERR_CRYPTO);
    return MF_RES_OK;
}

/* see mf_hash.h */
mf_res mf_hash_digest(enum mf_hash alg, const uint8_t *in, size_t len, uint8_t out[MF_HASH_MAX],
                      size_t *out_len)
{
    MF_ENSURE(len <= UINT32_MAX, MF_ERR_PROTO_TOO_LARGE);
    switch (alg) {
    case MF_HASH_SHA256:
        MF_TRY_WC(wc_Sha256Hash(in, (word32)len, out), MF_ERR_CRYPTO);
        *out_len = WC_SHA256_DIGEST_SIZE;
        break;
    case MF_HASH_SHA384:
        MF_TRY_WC(wc_Sha384Hash(in, (word32)len, out), MF_ERR_CRYPTO);
        *out_len = WC_SHA384_DIGEST_SIZE;
        break;
    case MF_HASH_SHA512:
        MF_TRY_WC(wc_Sha512Hash(in, (word32)len, out), MF_ERR_CRYPTO);
        *out_len = WC_SHA512_DIGEST_SIZE;
        break;
    default:
        MF_BAIL(MF_ERR_INTERNAL);
    }
    return MF_RES_OK;
}

/* see mf_hash.h */
void mf_fingerprint_hex(const uint8_t *in, size_t len, char out[MF_FINGERPRINT_LEN])
{
    uint8_t h[32];
    if (!mf_ok(mf_sha256(in, len, h))) {
        out[0] = '\0';
        return;
    }
    mf_hex(h, sizeof(h), out);
}
