/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the admin API's small bodies: POST /v1/tokens
 * (ca_admin_parse_token) and POST /v1/agents/ban and /evict
 * (ca_admin_parse_agent_op), the functions the handlers run. The first
 * byte picks which. Accepted IDs must be agent IDs of the trust domain and
 * token TTLs must stay in 1..7 days.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/core/mf_log.h"
#include "ca/ca_admin.h"
#include "ca/ca_policy.h"

#define TD "example.org"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
        quiet = 1;
    }
    if (size < 1) {
        return 0;
    }
    struct mf_spiffe_id id;
    mf_res r;
    if ((data[0] & 1) == 0) {
        int64_t ttl = 600;
        r = ca_admin_parse_token(data + 1, size - 1, TD, &id, &ttl);
        if (mf_ok(r) && (ttl < 1 || ttl > 7 * 24 * 3600)) {
            __builtin_trap();
        }
    } else {
        r = ca_admin_parse_agent_op(data + 1, size - 1, TD, &id);
    }
    if (mf_ok(r) && (!ca_policy_is_agent_id(&id, TD) || strlen(id.str) != id.len)) {
        __builtin_trap();
    }
    return 0;
}
