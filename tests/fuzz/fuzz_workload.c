/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the Workload API client's document parser
 * (mf_x509_context_parse, api/mf_workload.h): what a C workload receives
 * from the agent socket, which any process able to bind a socket at the
 * SPIFFE_ENDPOINT_SOCKET path could forge. The seed corpus holds documents
 * whose certificates are valid for twenty years, so the parse runs at the
 * real time and still reaches the chain checks. Every accepted document is
 * looked at through the public accessors; the leaf of each SVID must carry
 * the SVID's ID and its key.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/core/mf_log.h"
#include "api/core/mf_time.h"
#include "api/workload/mf_workload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
        quiet = 1;
    }
    struct mf_x509_context *ctx = NULL;
    mf_res r = mf_x509_context_parse((const char *)data, size, mf_now(), &ctx);
    if (!mf_ok(r)) {
        if (ctx != NULL) {
            __builtin_trap();
        }
        return 0;
    }
    const struct mf_x509_svid *def = mf_x509_context_default(ctx);
    if (def == NULL || ctx->n_svids == 0) {
        __builtin_trap(); /* E20: an accepted document has an identity */
    }
    for (size_t i = 0; i < ctx->n_svids; i++) {
        const struct mf_x509_svid *sv = &ctx->svids[i];
        const char *leaf_id = sv->chain.n > 0 ? mf_cert_spiffe_id_str(sv->chain.v[0]) : NULL;
        if (sv->chain.n == 0 || sv->key == NULL || leaf_id == NULL ||
            strcmp(leaf_id, sv->id.str) != 0 || !mf_cert_matches_key(sv->chain.v[0], sv->key)) {
            __builtin_trap();
        }
        if (sv->hint[0] != '\0' && mf_x509_context_by_hint(ctx, sv->hint) == NULL) {
            __builtin_trap();
        }
    }
    struct mf_x509_context *again = mf_x509_context_ref(ctx);
    mf_x509_context_free(again);
    mf_x509_context_free(ctx);
    return 0;
}
