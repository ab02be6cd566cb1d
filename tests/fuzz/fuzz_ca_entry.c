/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the admin API's entry bodies: POST /v1/entries and
 * PATCH /v1/entries/<id>, through ca_admin_parse_entry (JSON, then the
 * entry policy), the function the handlers run. The first input byte picks
 * create (even) or patch (odd, over a valid stored entry); the rest is the
 * body. What is accepted must satisfy the policy's promises: selectors
 * sorted and distinct, ttl within bounds, IDs in the trust domain.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_log.h"
#include "ca/ca_admin.h"

#define TD      "example.org"
#define MAX_TTL 14400

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) {
        abort();
    }
    return p;
}

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
    bool patch = (data[0] & 1) != 0;
    struct ca_entry e;
    memset(&e, 0, sizeof(e));
    if (patch) {
        /* the stored entry a PATCH starts from */
        e.spiffe_id = dup("spiffe://example.org/web");
        e.parent_id = dup("spiffe://example.org/mayfly/agent/n1");
        e.selectors = calloc(1, sizeof(char *));
        if (e.selectors == NULL) {
            abort();
        }
        e.selectors[0] = dup("unix:uid:1000");
        e.n_selectors = 1;
        e.hint = dup("web");
    }
    mf_res r = ca_admin_parse_entry(data + 1, size - 1, TD, MAX_TTL, patch, &e);
    if (mf_ok(r)) {
        if (e.spiffe_id == NULL || e.parent_id == NULL || e.n_selectors == 0 || e.ttl < 0 ||
            e.ttl > MAX_TTL ||
            strncmp(e.spiffe_id, "spiffe://" TD "/", strlen("spiffe://" TD "/")) != 0) {
            __builtin_trap();
        }
        for (size_t i = 1; i < e.n_selectors; i++) {
            if (strcmp(e.selectors[i - 1], e.selectors[i]) >= 0) {
                __builtin_trap(); /* not canonical: unsorted or repeated */
            }
        }
    }
    ca_entry_cleanup(&e);
    return 0;
}
