/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_fed: federation with other trust domains (SPIFFE.md section F).
 *
 * The registry holds relationships (a foreign trust domain, its bundle
 * endpoint's URL, the profile and, for https_spiffe, the endpoint's SPIFFE
 * ID) and foreign bundles (one per trust domain, fetched from an endpoint
 * or set by an operator). Never merged (F13): a bundle is always stored,
 * sent and served as the pair <trust domain, bundle>.
 *
 * One refresh thread fetches each relationship's bundle at the peer's
 * spiffe_refresh_hint, bounded to [federation_min_refresh, 1 h], or every
 * 5 minutes when the peer gives none (F10). A fetch:
 *   https_spiffe  TLS via mf_http: the endpoint's chain must verify against
 *                 the stored bundle of the endpoint ID's trust domain (our
 *                 own bundle when that is ours; in the self-serving case,
 *                 first the operator's bootstrap bundle, then the latest
 *                 fetched one, F8) and carry exactly the configured ID (F7);
 *   https_web     TLS 1.2+ verified against the system's roots, or
 *                 federation_ca_file, with the URL's host name (F6).
 * Redirects are followed (3 at most) with the same checks, never stored
 * (F9).
 * A fetched bundle is stored unless its spiffe_sequence is lower than the
 * stored one's (never backwards, F11); an unchanged one writes nothing.
 * A failed fetch keeps the last good bundle and logs a warning naming the
 * age of the bundle kept; it is tried again at the next interval. Every
 * fetch is logged (F15). Each stored change wakes the agents' long polls,
 * so a peer's next CA key, published before it signs (F12), reaches the
 * workloads that federate with it without any manual step.
 *
 * Agents receive, in their sync view, the foreign bundles of the trust
 * domains their entries federate with (ca_fed_view), and nothing else.
 *
 * Thread-safe: fetches are serialised by one mutex; the status of the last
 * fetches (for `federation list/show`) sits under another.
 */
#ifndef CA_FED_H
#define CA_FED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api/core/mf_err.h"
#include "api/internal/mf_httpd.h"
#include "api/pki/mf_bundle.h"
#include "ca/ca.h"
#include "ca/ca_store.h"

#define CA_FED_DEFAULT_REFRESH 300  /* seconds, when the peer gives no hint */
#define CA_FED_MAX_REFRESH     3600 /* seconds: the longest interval */
#define CA_FED_FETCH_TIMEOUT   10000
#define CA_FED_REDIRECTS       3 /* redirects followed in one fetch */

struct ca_fed;

/* ---- pure helpers (no I/O; tests/unit/test_ca_fed.c) --------------------- */

/* Validates and canonicalises a relationship for our trust domain own_td:
 * f->td a valid trust domain name other than ours (given bare or as
 * spiffe://td, kept bare); f->url an https URL without userinfo (F5);
 * f->profile https_spiffe or https_web; f->endpoint_id a SPIFFE ID, required
 * for https_spiffe and refused for https_web. MF_ERR_USAGE_ARG with a
 * detail naming the flag otherwise. */
MF_WUR mf_res ca_fed_check(const char *own_td, struct ca_federation *f);

/* A trust domain given bare or as spiffe://td, into out (bare); refuses
 * our own (own_td). */
MF_WUR mf_res ca_fed_parse_td(const char *own_td, const char *s, char out[MF_TD_MAX + 1]);

/* Splits https://host[:port]/path into "host:port" (443 by default) and
 * the path ("/" when empty). */
MF_WUR mf_res ca_fed_split_url(const char *url, char *host_port, size_t hp_cap, char *path,
                               size_t path_cap);

/* A bundle file's text for trust domain td: a SPIFFE bundle (JWKS, when it
 * starts with '{') or PEM certificates. Refuses one with no authority. */
MF_WUR mf_res ca_fed_parse_bundle(const char *td, const char *text, size_t len,
                                  struct mf_bundle **out);

/* Seconds to the next fetch for a peer hint (0 = none) and a floor. */
int64_t ca_fed_interval(int64_t hint, int64_t floor_s);

/* Whether a fetched bundle replaces the stored one (cur, NULL when none):
 * MF_ERR_POLICY_DENIED when its sequence is lower (never backwards; a
 * bundle without a sequence, 0, is the most recent and accepted); else
 * *store is false when it holds the same sequence and keys. */
MF_WUR mf_res ca_fed_accept(const struct mf_bundle *cur, const struct mf_bundle *next, bool *store);

/* ---- runtime --------------------------------------------------------------- */

MF_WUR mf_res ca_fed_start(struct ca_ctx *ctx, struct ca_fed **out);
void ca_fed_stop(struct ca_fed *f); /* NULL is a no-op */

/* Fetches the bundle of relationship td now (from the calling thread) and
 * stores it as the refresh thread would. *changed says whether it was
 * stored. A failure leaves the stored bundle as it was. */
MF_WUR mf_res ca_fed_refresh(struct ca_fed *f, const char *td, bool *changed);

/* Adds "federated_bundles": {"spiffe://<td>": <SPIFFE bundle>, ...} to an
 * agent's sync view for the trust domains entries v[0..n) federate with
 * and that have a stored bundle; adds nothing when none does. */
MF_WUR mf_res ca_fed_view(struct ca_store *st, const struct ca_entry *v, size_t n, json_t *view);

/* The admin API's /v1/federations... and /v1/bundles... endpoints
 * (docs/api.md); returns MHD_NO-free answers like every handler. */
bool ca_fed_admin_url(const char *url);
enum MHD_Result ca_fed_admin(struct ca_ctx *ctx, struct MHD_Connection *conn, const char *url,
                             const char *method, const struct mf_httpd_req *req);

#endif /* CA_FED_H */
