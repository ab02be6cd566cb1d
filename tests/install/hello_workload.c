/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A workload built against an installed libmayfly (mayfly.pc and
 * libmayfly.so): it includes only the installed public headers, fetches its
 * X.509-SVID from the Workload API at SPIFFE_ENDPOINT_SOCKET and prints its
 * SPIFFE ID and how many trust bundles it was given. Built and run by
 * tests/integration/install.sh.
 */
#include <stdio.h>

#include "api/core/mf_err.h"
#include "api/workload/mf_workload.h"

int main(void)
{
    struct mf_x509_context *ctx = NULL;
    mf_res r = mf_workload_fetch_x509(NULL, 5000, &ctx);
    if (!mf_ok(r)) {
        char msg[512];
        mf_err_format(r, msg, sizeof(msg));
        fprintf(stderr, "hello_workload: %s\n", msg);
        return 1;
    }
    const struct mf_x509_svid *svid = mf_x509_context_default(ctx);
    printf("spiffe_id=%s bundles=%zu\n", svid->id.str, ctx->bundles.n);
    mf_x509_context_free(ctx);
    return 0;
}
