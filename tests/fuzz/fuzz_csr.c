/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for mf_csr_verify: arbitrary bytes as a DER PKCS#10
 * request. Accepted requests are exercised through every accessor. The same
 * bytes also go to the SubjectPublicKeyInfo and PKCS#8 readers, which share
 * the DER reader and sit on the same untrusted path (a CSR carries a key).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mf_csr *csr = NULL;
    if (mf_ok(mf_csr_verify(data, size, &csr))) {
        const struct mf_spiffe_id *id = mf_csr_spiffe_id(csr);
        if (id != NULL && strlen(id->str) != id->len) {
            __builtin_trap(); /* an accepted ID never holds a NUL */
        }
        char fp[MF_FINGERPRINT_LEN];
        mf_pubkey_fingerprint(mf_csr_pubkey(csr), fp);
        mf_csr_free(csr);
    }

    struct mf_pubkey *pk = NULL;
    if (mf_ok(mf_pubkey_from_der(data, size, &pk))) {
        struct mf_buf der;
        mf_buf_init(&der, 1024, 0);
        /* canonical: what we accept re-encodes to the same bytes */
        if (!mf_ok(mf_pubkey_to_der(pk, &der)) || der.len != size ||
            memcmp(der.data, data, size) != 0) {
            __builtin_trap();
        }
        mf_buf_cleanup(&der);
        mf_pubkey_free(pk);
    }

    struct mf_key *key = NULL;
    if (mf_ok(mf_key_from_der(data, size, &key))) {
        mf_key_free(key);
    }
    return 0;
}
