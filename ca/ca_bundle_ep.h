/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_bundle_ep: the CA's SPIFFE bundle endpoint (SPIFFE.md section F), on
 * its own listen address (--bundle-endpoint), off by default.
 *
 * GET / answers the trust domain's current bundle as a SPIFFE bundle (JWKS
 * with the x509-svid and jwt-svid keys, spiffe_sequence and
 * spiffe_refresh_hint), Content-Type application/json. Any other path is
 * 404, any other method 405. No client authentication is asked for (F2).
 *
 * Two profiles (F6, F7):
 *   https_spiffe (default)  the server presents an X509-SVID of its own
 *                           trust domain, spiffe://<td>/mayfly/bundle-
 *                           endpoint, issued by the CA itself and renewed
 *                           at half its life and whenever the CA's signing
 *                           key changes; GnuTLS asks for the certificate on
 *                           every handshake, so renewal needs no restart.
 *   https_web               --bundle-endpoint-cert and --bundle-endpoint-key
 *                           name an operator's certificate chain and key
 *                           (the key file must be 0600), read at start.
 *
 * The served spiffe_refresh_hint is --bundle-refresh-hint, or ca_ttl/12
 * capped at 5 minutes: a prepared CA key is published ca_ttl/3 before it
 * signs (ca_keys.h), so peers polling at that hint see it at least four
 * hints ahead (F12).
 */
#ifndef CA_BUNDLE_EP_H
#define CA_BUNDLE_EP_H

#include <stdint.h>

#include "api/core/mf_err.h"
#include "ca/ca.h"

#define CA_BUNDLE_EP_PATH "/mayfly/bundle-endpoint"

struct ca_bundle_ep;

/* Starts the endpoint when ctx->cfg.bundle_endpoint is set (*out stays
 * NULL otherwise). */
MF_WUR mf_res ca_bundle_ep_start(struct ca_ctx *ctx, struct ca_bundle_ep **out);
/* Renews the https_spiffe SVID when due; called from the main loop. */
MF_WUR mf_res ca_bundle_ep_maintain(struct ca_bundle_ep *ep, int64_t now);
/* The bound address ("127.0.0.1:PORT"), or "" when off. */
const char *ca_bundle_ep_address(const struct ca_bundle_ep *ep);
void ca_bundle_ep_stop(struct ca_bundle_ep *ep); /* NULL is a no-op */

/* The refresh hint served for a CA of this configuration, in seconds. */
int64_t ca_bundle_ep_hint(const struct ca_config *cfg);

#endif /* CA_BUNDLE_EP_H */
