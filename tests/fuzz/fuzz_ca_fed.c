/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for federation input (ca_fed.h): the first byte picks
 * an endpoint URL (ca_fed_split_url, then ca_fed_check as the admin API
 * runs it) or a bundle file (ca_fed_parse_bundle, JWKS or PEM). An
 * accepted URL must give a host:port and a path starting with '/'; an
 * accepted bundle must hold an authority.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/core/mf_log.h"
#include "ca/ca_fed.h"

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
    if ((data[0] & 1) == 0) {
        struct ca_federation f;
        char hp[300], path[CA_FED_URL_MAX + 1];
        memset(&f, 0, sizeof(f));
        size_t n = size - 1 < CA_FED_URL_MAX ? size - 1 : CA_FED_URL_MAX;
        memcpy(f.url, data + 1, n);
        f.url[n] = '\0';
        mf_res r = ca_fed_split_url(f.url, hp, sizeof(hp), path, sizeof(path));
        if (mf_ok(r) && (strchr(hp, ':') == NULL || path[0] != '/')) {
            __builtin_trap();
        }
        snprintf(f.td, sizeof(f.td), "%s", "b.test");
        snprintf(f.profile, sizeof(f.profile), "%s", (data[0] & 2) ? "https_web" : "https_spiffe");
        snprintf(f.endpoint_id, sizeof(f.endpoint_id), "%s",
                 (data[0] & 2) ? "" : "spiffe://b.test/ep");
        r = ca_fed_check("a.test", &f);
        if (mf_ok(r) && strncmp(f.url, "https://", 8) != 0) {
            __builtin_trap();
        }
    } else {
        struct mf_bundle *b = NULL;
        mf_res r = ca_fed_parse_bundle("b.test", (const char *)data + 1, size - 1, &b);
        if (mf_ok(r) && (b == NULL || (b->x509.n == 0 && b->n_jwt == 0))) {
            __builtin_trap();
        }
        mf_bundle_free(b);
    }
    return 0;
}
