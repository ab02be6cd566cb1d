/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the body of POST /v1/renew: arbitrary bytes
 * through ca_api_parse_renew, the function the handler runs, then the
 * renewal policy against a fixed caller (what an authenticated but hostile
 * agent can reach).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/core/mf_log.h"
#include "ca/ca_api.h"
#include "ca/ca_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
        quiet = 1;
    }
    json_t *doc = NULL;
    struct mf_csr *csr = NULL;
    mf_res r = ca_api_parse_renew(data, size, &doc, &csr);
    if (mf_ok(r)) {
        if (csr == NULL) {
            __builtin_trap();
        }
        r = ca_policy_renew_csr("spiffe://example.org/mayfly/agent/n1", mf_csr_spiffe_id(csr));
        const struct mf_spiffe_id *id = mf_csr_spiffe_id(csr);
        if (mf_ok(r) && id != NULL &&
            strcmp(id->str, "spiffe://example.org/mayfly/agent/n1") != 0) {
            __builtin_trap(); /* a renewal for another ID got through */
        }
    }
    mf_csr_free(csr);
    json_decref(doc);
    return 0;
}
