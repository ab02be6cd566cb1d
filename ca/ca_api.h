/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_api: the agent-facing API (HTTPS, TLS 1.3, docs/api.md): attestation
 * with a join token, renewal, entry sync (long poll) and batch signing.
 *
 * The server presents its own SVID spiffe://<td>/mayfly/server, issued by
 * the CA itself and renewed at half its life without a restart: GnuTLS asks
 * for the certificate on every handshake (MHD_OPTION_HTTPS_CERT_CALLBACK),
 * and the callback hands out the newest one.
 */
#ifndef CA_API_H
#define CA_API_H

#include <stdint.h>

#include "api/mf_err.h"
#include "ca/ca.h"

MF_WUR mf_res ca_api_start(struct ca_ctx *ctx, struct ca_api **out);
/* Renews the server SVID when due; called from the main loop. */
MF_WUR mf_res ca_api_maintain(struct ca_api *api, int64_t now);
/* The actual listening address ("127.0.0.1:PORT"), for the ready line. */
const char *ca_api_address(const struct ca_api *api);
void ca_api_stop(struct ca_api *api);

#endif /* CA_API_H */
