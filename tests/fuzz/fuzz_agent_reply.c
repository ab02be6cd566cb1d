/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the agent's readers of the CA's answers
 * (agent_client.h, agent_cache.h): the members of a /v1/sync answer (entry
 * objects, the SPIFFE bundle object) and of attest/renew/sign answers (the
 * x509_svid array of base64 DER certificates). The CA is authenticated,
 * but a bug or a compromise there must not become memory corruption on
 * every node. The input is one JSON document; each reader gets the members
 * it would see.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agent/agent_cache.h"
#include "agent/agent_client.h"
#include "api/core/mf_json.h"
#include "api/core/mf_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
        quiet = 1;
    }
    json_t *doc = NULL;
    if (!mf_ok(mf_json_parse((const char *)data, size, 16u * 1024u * 1024u, &doc))) {
        return 0;
    }
    const json_t *entries = json_object_get(doc, "entries");
    for (size_t i = 0; i < json_array_size(entries) && i < 64; i++) {
        struct agent_entry e;
        if (mf_ok(agent_entry_from_json(json_array_get(entries, i), &e))) {
            if (e.id == NULL || e.id[0] == '\0' || e.spiffe_id == NULL || e.n_sels == 0) {
                __builtin_trap();
            }
            struct agent_entry e2;
            json_t *again = NULL;
            mf_res r2 = agent_entry_to_json(&e, &again);
            if (mf_ok(r2)) {
                r2 = agent_entry_from_json(again, &e2);
            }
            json_decref(again);
            if (mf_ok(r2)) {
                /* the persisted form reads back the same, digest included */
                if (agent_entry_needs_resign(&e, &e2) ||
                    memcmp(e.digest, e2.digest, sizeof(e.digest)) != 0) {
                    __builtin_trap();
                }
                agent_entry_cleanup(&e2);
            } else {
                __builtin_trap();
            }
            agent_entry_cleanup(&e);
        }
    }
    const json_t *b = json_object_get(doc, "bundle");
    if (b != NULL) {
        struct mf_bundle *bundle = NULL;
        if (mf_ok(agent_bundle_from_json("example.org", b, &bundle)) && bundle == NULL) {
            __builtin_trap();
        }
        mf_bundle_free(bundle);
    }
    const json_t *svid = json_object_get(doc, "x509_svid");
    if (svid != NULL) {
        struct mf_certs chain;
        mf_certs_init(&chain);
        (void)agent_chain_from_b64(svid, &chain);
        mf_certs_cleanup(&chain);
    }
    json_decref(doc);
    return 0;
}
