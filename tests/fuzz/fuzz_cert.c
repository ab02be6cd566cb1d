/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the certificate readers: arbitrary bytes as one DER
 * certificate (mf_cert_from_der), as concatenated DER, and as PEM text
 * (mf_certs_from_pem). Accepted certificates go through every accessor and
 * through chain verification against themselves, so the extension and
 * signature paths run on fuzzed input too.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(struct mf_certs *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        struct mf_cert *c = cs->v[i];
        char serial[MF_SERIAL_HEX_MAX], fp[MF_FINGERPRINT_LEN];
        size_t len;
        mf_cert_serial_hex(c, serial);
        mf_cert_fingerprint(c, fp);
        (void)mf_cert_der(c, &len);
        (void)mf_cert_not_before(c);
        (void)mf_cert_not_after(c);
        (void)mf_cert_is_ca(c);
        struct mf_spiffe_id id;
        const char *ids = mf_cert_spiffe_id_str(c);
        if (mf_cert_spiffe_id(c, &id) != (ids != NULL) ||
            (ids != NULL && (strlen(id.str) != id.len || strcmp(ids, id.str) != 0))) {
            __builtin_trap();
        }
        mf_pubkey_fingerprint(mf_cert_pubkey(c), fp);
    }
    struct mf_spiffe_id id;
    (void)mf_x509_verify_chain(cs, cs, mf_cert_not_before(cs->v[0]), &id);
    struct mf_buf out;
    mf_buf_init(&out, MF_MAX_BUNDLE * 2, 0);
    if (!mf_ok(mf_certs_to_pem(cs, &out))) {
        __builtin_trap();
    }
    mf_buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mf_cert *cert = NULL;
    if (mf_ok(mf_cert_from_der(data, size, &cert))) {
        struct mf_certs one;
        mf_certs_init(&one);
        if (mf_ok(mf_certs_push(&one, cert))) {
            exercise(&one);
        }
        mf_certs_cleanup(&one);
        mf_cert_free(cert);
    }

    struct mf_certs cs;
    mf_certs_init(&cs);
    if (mf_ok(mf_certs_from_der_concat(data, size, &cs))) {
        exercise(&cs);
    }
    mf_certs_cleanup(&cs);

    mf_certs_init(&cs);
    if (mf_ok(mf_certs_from_pem((const char *)data, size, &cs))) {
        exercise(&cs);
    }
    mf_certs_cleanup(&cs);
    return 0;
}
