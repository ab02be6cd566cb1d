/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_api: the agent-facing API (HTTPS, TLS 1.3, docs/api.md): attestation
 * with a join token, renewal, entry sync (long poll) and batch signing.
 *
 * The server presents its own SVID spiffe://<td>/mayfly/server/<server id>
 * (ca_keys_server_id), issued by the CA itself and renewed at half its life without a restart:
 * GnuTLS asks for the certificate on every handshake (MHD_OPTION_HTTPS_CERT_CALLBACK), and the
 * callback hands out the newest one.
 */
#ifndef CA_API_H
#define CA_API_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_x509.h"
#include "ca/ca.h"

MF_WUR mf_res ca_api_start(struct ca_ctx *ctx, struct ca_api **out);
/* Renews the server SVID when due; called from the main loop. */
MF_WUR mf_res ca_api_maintain(struct ca_api *api, int64_t now);
/* The actual listening address ("127.0.0.1:PORT"), for the ready line. */
const char *ca_api_address(const struct ca_api *api);
void ca_api_stop(struct ca_api *api);

/* The request bodies of the agent API, parsed strictly (docs/api.md) and
 * without any I/O, exactly as the handlers do; the fuzz harnesses call
 * them too (tests/fuzz/fuzz_ca_*.c). len bytes need not be NUL-terminated.
 * *doc (freed by the caller with json_decref, also on failure) owns the
 * strings returned; *csr (attest, renew) is a verified CSR, freed by the
 * caller with mf_csr_free. sign checks the shape of every item (objects of
 * exactly entry_id and csr strings, 1..MF_MAX_BATCH of them); the CSRs of
 * a batch are decoded one by one later with ca_api_decode_csr. */
MF_WUR mf_res ca_api_parse_attest(const void *body, size_t len, json_t **doc, const char **token,
                                  struct mf_csr **csr);
MF_WUR mf_res ca_api_parse_renew(const void *body, size_t len, json_t **doc, struct mf_csr **csr);
MF_WUR mf_res ca_api_parse_sign(const void *body, size_t len, json_t **doc, const json_t **reqs);
/* A CSR as sent inside JSON (base64 DER), size-checked then verified. */
MF_WUR mf_res ca_api_decode_csr(const char *b64, struct mf_csr **out);
/* POST /v1/jwt: {"spiffe_id":"<ID>","audience":["A",...]}, exactly those
 * members; 1..MF_JWT_AUD_MAX audiences of 1..MF_JWT_AUD_LEN_MAX bytes;
 * aud must have room for MF_JWT_AUD_MAX pointers (into *doc). */
MF_WUR mf_res ca_api_parse_jwt(const void *body, size_t len, json_t **doc, const char **spiffe_id,
                               const char **aud, size_t *n_aud);

#endif /* CA_API_H */
