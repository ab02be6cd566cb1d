/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the SDS request parser and xDS state
 * (agent_sds.h): the input is a series of DiscoveryRequest messages, each
 * prefixed by one length byte, handed to one stream's state in turn; after
 * each accepted request the response is rendered for a caller of a
 * snapshot with no SVID under allow_verifiers (so bundle names render and
 * any SVID name is denied). Invariants: a response is one complete gRPC
 * message; nothing is sent twice without a change; stale requests change
 * nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent_sds.h"
#include "api/core/mf_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct agent_snap *snap;
    if (snap == NULL) {
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
        if (!mf_ok(agent_snap_new("example.org", &snap)) ||
            !mf_ok(mf_buf_append_str(&snap->bundle_pem, "-----BEGIN CERTIFICATE-----\n"
                                                        "AAAA\n-----END CERTIFICATE-----\n"))) {
            __builtin_trap();
        }
    }
    struct agent_sds_cfg cfg = {.validator = size > 0 && (data[0] & 1) ? AGENT_SDS_TRUSTED_CA
                                                                       : AGENT_SDS_SPIFFE,
                                .allow_verifiers = true};
    struct agent_sds *x = NULL;
    if (!mf_ok(agent_sds_new(&cfg, &x))) {
        __builtin_trap();
    }
    struct mf_buf out;
    mf_buf_init(&out, 8u * 1024u * 1024u, MF_BUF_SECRET);
    char why[256];
    size_t off = 1;
    while (off < size) {
        size_t n = data[off++];
        if (n > size - off) {
            n = size - off;
        }
        mf_res r = agent_sds_request(x, data + off, n);
        off += n;
        if (!mf_ok(r)) {
            break;
        }
        mf_buf_reset(&out);
        enum agent_sds_out o = agent_sds_render(x, snap, NULL, 0, &out, why, sizeof(why));
        if (o == AGENT_SDS_SEND) {
            size_t len = ((size_t)out.data[1] << 24) | ((size_t)out.data[2] << 16) |
                         ((size_t)out.data[3] << 8) | out.data[4];
            if (out.len < 5 || out.data[0] != 0 || len != out.len - 5) {
                __builtin_trap();
            }
            agent_sds_sent(x);
            mf_buf_reset(&out);
            /* the same state again: nothing new */
            if (agent_sds_render(x, snap, NULL, 0, &out, why, sizeof(why)) != AGENT_SDS_QUIET ||
                out.len != 0) {
                __builtin_trap();
            }
        } else if (out.len != 0) {
            __builtin_trap();
        }
    }
    mf_buf_cleanup(&out);
    agent_sds_free(x);
    return 0;
}
