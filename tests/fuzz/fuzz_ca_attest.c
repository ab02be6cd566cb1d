/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the body of POST /v1/attest, the one request of the
 * CA that anybody on the network may send before authenticating: arbitrary
 * bytes through ca_api_parse_attest, the function the handler runs. What it
 * accepts must hold a token of at most 256 bytes without a NUL and a CSR
 * whose signature verified.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/core/mf_log.h"
#include "ca/ca_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
        quiet = 1;
    }
    json_t *doc = NULL;
    const char *token = NULL;
    struct mf_csr *csr = NULL;
    mf_res r = ca_api_parse_attest(data, size, &doc, &token, &csr);
    if (mf_ok(r)) {
        if (token == NULL || strlen(token) > 256 || csr == NULL || mf_csr_pubkey(csr) == NULL) {
            __builtin_trap();
        }
        const struct mf_spiffe_id *id = mf_csr_spiffe_id(csr);
        if (id != NULL && strlen(id->str) != id->len) {
            __builtin_trap();
        }
    } else if (csr != NULL) {
        __builtin_trap(); /* nothing half-made is handed back */
    }
    mf_csr_free(csr);
    json_decref(doc);
    return 0;
}
