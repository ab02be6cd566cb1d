/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the body of POST /v1/sign (a batch of up to 500
 * CSRs from an authenticated agent): arbitrary bytes through
 * ca_api_parse_sign, then every item's CSR through ca_api_decode_csr and the
 * signing policy against a fixed entry, as the handler does.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/core/mf_log.h"
#include "ca/ca_api.h"
#include "ca/ca_policy.h"

#define AGENT "spiffe://example.org/mayfly/agent/n1"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
        quiet = 1;
    }
    static char sid[] = "spiffe://example.org/web", pid[] = AGENT;
    struct ca_entry e;
    memset(&e, 0, sizeof(e));
    e.spiffe_id = sid;
    e.parent_id = pid;
    json_t *doc = NULL;
    const json_t *reqs = NULL;
    mf_res r = ca_api_parse_sign(data, size, &doc, &reqs);
    if (mf_ok(r)) {
        size_t n = json_array_size(reqs);
        if (n == 0 || n > MF_MAX_BATCH) {
            __builtin_trap();
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *it = json_array_get(reqs, i);
            const char *b64 = json_string_value(json_object_get(it, "csr"));
            const char *eid = json_string_value(json_object_get(it, "entry_id"));
            if (b64 == NULL || eid == NULL) {
                __builtin_trap(); /* the shape check let a bad item through */
            }
            struct mf_csr *csr = NULL;
            if (mf_ok(ca_api_decode_csr(b64, &csr))) {
                const struct mf_spiffe_id *id = mf_csr_spiffe_id(csr);
                if (mf_ok(ca_policy_sign(AGENT, &e, id)) &&
                    (id == NULL || strcmp(id->str, sid) != 0)) {
                    __builtin_trap(); /* signed an ID that is not the entry's */
                }
            }
            mf_csr_free(csr);
        }
    }
    json_decref(doc);
    return 0;
}
