/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_sds: Envoy's Secret Discovery Service (SDS v3) state and rendering,
 * for agent_grpc, which serves it on the Workload API socket at
 * /envoy.service.secret.v3.SecretDiscoveryService/{StreamSecrets,
 * FetchSecrets}. One struct agent_sds holds one stream's side of the xDS
 * protocol (state of the world, envoy/service/discovery/v3):
 *
 *   - the subscription: the resource names of the client's last request
 *     (an empty list means every resource the caller may have);
 *   - the response last handed over completely (its version_info, nonce and
 *     a digest of its resources), and the one rendered but not yet handed
 *     over, which becomes the former once agent_sds_sent() says so;
 *   - an ACK (a request carrying the last nonce and no error_detail)
 *     changes nothing; a NACK (error_detail set) is logged (once per
 *     response, however often the client repeats it), and the same
 *     resources are not sent again: only a change of content or
 *     subscription sends a new version. A request whose nonce is not the
 *     last one sent is stale and ignored, as xDS says.
 *
 * Versions are per stream: "1", "2", ... in the order responses are
 * rendered. Nonces are 128 random bits in hex.
 *
 * Resource names (docs/api.md):
 *   "default"            the caller's default X.509-SVID (the first it may
 *                        have) as a TlsCertificate
 *   a SPIFFE ID          that X.509-SVID, when the caller may have it
 *   "ROOTCA", "spiffe://<our trust domain>"
 *                        our trust domain's bundle as a validation context
 *   "ALL"                every bundle the caller may see, as one
 *                        validation context
 *   "spiffe://<td>"      a federated trust domain's bundle
 * Any other name, or one the caller may not have, is PermissionDenied.
 * Validation contexts are Envoy's SPIFFE certificate validator
 * ("envoy.tls.cert_validator.spiffe", one trust domain per bundle) by
 * default, or a plain trusted_ca list (AGENT_SDS_TRUSTED_CA).
 *
 * A caller with no identity at all gets PermissionDenied, also for bundles,
 * unless allow_verifiers (the same rule as FetchX509Bundles).
 *
 * Not thread-safe: one stream's state belongs to its connection's thread.
 */
#ifndef AGENT_SDS_H
#define AGENT_SDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agent_state.h"
#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/internal/mf_selector.h"

#define AGENT_SDS_TYPE_SECRET "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
#define AGENT_SDS_TYPE_SPIFFE_VALIDATOR \
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig"
#define AGENT_SDS_SPIFFE_VALIDATOR "envoy.tls.cert_validator.spiffe"
#define AGENT_SDS_NAMES_MAX        64u /* resource names in one request */
#define AGENT_SDS_VERSION_MAX      24u /* version_info, NUL included */
#define AGENT_SDS_NONCE_MAX        33u /* nonce, NUL included */

enum agent_sds_validator {
    AGENT_SDS_SPIFFE = 0, /* custom_validator_config: envoy.tls.cert_validator.spiffe */
    AGENT_SDS_TRUSTED_CA, /* trusted_ca: the bundles' certificates as PEM */
};

struct agent_sds_cfg {
    enum agent_sds_validator validator;
    bool allow_verifiers; /* bundles for callers with no entry */
    bool fetch;           /* FetchSecrets: one request, whose nonce means nothing */
};

/* Parses "spiffe" or "trusted_ca" (the --sds-validator values). */
MF_WUR mf_res agent_sds_validator_parse(const char *s, enum agent_sds_validator *out);

struct agent_sds;

/* A new stream state (cfg is copied). */
MF_WUR mf_res agent_sds_new(const struct agent_sds_cfg *cfg, struct agent_sds **out);
void agent_sds_free(struct agent_sds *x); /* NULL is a no-op */

/* One DiscoveryRequest message (protobuf bytes, untrusted) from the client.
 * Errors: MF_ERR_PROTO (malformed), MF_ERR_PROTO_TOO_LARGE (over
 * AGENT_SDS_NAMES_MAX names), MF_ERR_USAGE_ARG (a type_url other than
 * AGENT_SDS_TYPE_SECRET, an empty or over-long name); the stream then ends
 * with InvalidArgument. A stale request is ignored (MF_OK). */
MF_WUR mf_res agent_sds_request(struct agent_sds *x, const uint8_t *msg, size_t len);

enum agent_sds_out {
    AGENT_SDS_QUIET,  /* nothing new to send */
    AGENT_SDS_SEND,   /* a response was appended to out */
    AGENT_SDS_DENIED, /* a name the caller may not have: why says which */
    AGENT_SDS_ERROR,  /* rendering failed: why says how */
};

/* The response due now, for a caller with selectors sels[0..n_sels) and
 * the snapshot snap (may be NULL: nothing published yet), appended to out
 * (MF_BUF_SECRET: it holds private keys) as one length-prefixed gRPC
 * message. Nothing is due before the first request, or when the resources
 * are those of the last response handed over. The response stays pending
 * until agent_sds_sent(); rendering again replaces it. why (why_cap bytes)
 * is set for DENIED and ERROR. */
enum agent_sds_out agent_sds_render(struct agent_sds *x, const struct agent_snap *snap,
                                    const struct mf_selector *sels, size_t n_sels,
                                    struct mf_buf *out, char *why, size_t why_cap);

/* The pending response has been handed over whole: its version and nonce
 * are the stream's now. */
void agent_sds_sent(struct agent_sds *x);

/* The version_info and nonce of the last response handed over ("" before
 * any); valid until the next call on x. */
const char *agent_sds_version(const struct agent_sds *x);
const char *agent_sds_nonce(const struct agent_sds *x);

/* Requests seen so far that were ACKs, NACKs, and stale (ignored). */
void agent_sds_counts(const struct agent_sds *x, uint64_t *acks, uint64_t *nacks, uint64_t *stale);

#endif /* AGENT_SDS_H */
