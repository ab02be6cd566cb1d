/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_metrics: what mayfly-ca reports about itself: Prometheus metrics, the
 * /live and /ready endpoints (--metrics-listen, off by default; see
 * mf_metrics.h for the server) and the systemd readiness notification.
 *
 * The metrics (docs/operations.md lists them with their meaning):
 *   mayfly_ca_svids_issued_total{kind}   leaves signed: workload, agent, server
 *   mayfly_ca_svids_denied_total{reason} refused issuances and requests, by
 *                                        ca_policy_reason(), plus rate_limited
 *                                        and capacity from admission control
 *   mayfly_ca_jwt_svids_issued_total     JWT-SVIDs signed for agents
 *   mayfly_ca_jwt_svids_refused_total{reason} JWT-SVID requests refused (the
 *                                        same reasons as svids_denied)
 *   mayfly_ca_signing_seconds            time to sign one leaf (histogram)
 *   mayfly_ca_signing_key_expiry_seconds seconds until the active CA signing
 *                                        key expires (absent while none is)
 *   mayfly_ca_ready                      1 when /ready would answer 200
 *   mayfly_ca_federation_fetches_total{result} foreign bundle fetches: stored,
 *                                        unchanged, failed (the last bundle
 *                                        kept), refused (older sequence)
 *
 * Ready means: both sockets accept (ca_metrics_ready was called after they
 * were up and ca_metrics_stop was not) and an active signing key that has
 * not expired is loaded.
 *
 * The registry is process-wide, created by ca_metrics_start and kept until
 * exit, so that the one-line hooks called from ca_issue.c on any thread
 * never race its destruction. The hooks do nothing before ca_metrics_start
 * (unit tests link ca_issue.o without starting anything).
 */
#ifndef CA_METRICS_H
#define CA_METRICS_H

#include <stdint.h>

#include "api/core/mf_err.h"

struct ca_ctx;
struct ca_leaf_req;

/* Registers the metrics and, when ctx->cfg.metrics_listen is set, starts the
 * server (logging its address). Call once, from the main thread, with
 * signals blocked and before the API threads start. ctx is borrowed for the
 * life of the process. */
MF_WUR mf_res ca_metrics_start(struct ca_ctx *ctx);

/* Both sockets accept: /ready may answer 200, and systemd is told READY=1. */
void ca_metrics_ready(void);

/* Shutdown begins: not ready any more, systemd is told STOPPING=1, and the
 * server stops (joining its thread), so that nothing reads ctx afterwards.
 * The hooks stay usable. Safe without a start. */
void ca_metrics_stop(void);

/* ---- hooks --------------------------------------------------------------------------- */

/* A monotonic instant to pass to ca_metrics_issued. */
uint64_t ca_metrics_clock(void);
/* One leaf was signed for req, the signing having started at t0. */
void ca_metrics_issued(const struct ca_leaf_req *req, uint64_t t0);
/* One issuance or request was refused, for reason (a short snake_case word). */
void ca_metrics_denied(const char *reason);
/* One JWT-SVID was signed (refused NULL), or its request refused for the
 * reason refused. */
void ca_metrics_jwt(const char *refused);
/* One fetch of a foreign bundle ended with result (stored, unchanged,
 * failed, refused). */
void ca_metrics_federation(const char *result);

#endif /* CA_METRICS_H */
