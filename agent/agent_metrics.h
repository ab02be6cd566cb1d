/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_metrics: what mayfly-agent reports about itself: Prometheus
 * metrics, /live and /ready (--metrics-listen, off by default; see
 * mf_metrics.h for the server), the systemd readiness notification, and the
 * warning logged when an SVID nears expiry without having been renewed.
 *
 * The metrics (docs/operations.md lists them with their meaning):
 *   mayfly_agent_svids_issued_total            SVIDs the CA signed for us and we installed
 *   mayfly_agent_svid_renewals_total{kind}     of those, renewals (workload, agent)
 *   mayfly_agent_renewal_lag_seconds           how late each renewal came after its
 *                                              scheduled instant (histogram)
 *   mayfly_agent_sign_failures_total           SVIDs whose signing failed (one per try)
 *   mayfly_agent_ca_errors_total               rounds that could not reach or use the CA
 *   mayfly_agent_ca_reconnects_total           requests sent again on a fresh connection
 *                                              after the CA closed an idle one
 *   mayfly_agent_jwt_svids_fetched_total       JWT-SVIDs the CA signed for this agent
 *   mayfly_agent_jwt_svid_failures_total{reason} JWT-SVID requests to the CA that failed
 *   mayfly_agent_svid_expiry_seconds           seconds until the soonest workload SVID
 *                                              expires (absent with none)
 *   mayfly_agent_agent_svid_expiry_seconds     the same for the agent's own SVID
 *   mayfly_agent_cache_entries                 registration entries known
 *   mayfly_agent_cache_svids                   of those, with a servable SVID
 *   mayfly_agent_svids_expiring                SVIDs in the warning margin, unrenewed
 *   mayfly_agent_expiry_warnings_total         expiry warnings logged
 *   mayfly_agent_workload_fetch_seconds        time to answer one Workload API fetch
 *   mayfly_agent_workload_denied_total{reason} Workload API requests refused
 *   mayfly_agent_ready                         1 when /ready would answer 200
 *
 * Ready means: the agent holds an unexpired SVID of its own (it attested, or
 * reloaded that identity) and its Workload API socket is serving
 * (agent_metrics_ready was called after the socket started, and
 * agent_metrics_stop was not).
 *
 * Expiry warning: an SVID (a workload's or the agent's own) whose NotAfter
 * is within --expiry-warning (default 5m) of now, whose renewal instant has
 * passed, and whose renewal has failed at least once (or the CA is
 * unreachable) is one that rotation did not save in time. Such SVIDs are
 * counted on every pass of the worker loop, and while any exist one warning
 * line names the count and the soonest, at most every quarter of the margin
 * (between 1 s and 30 s), so that a long outage cannot flood the log.
 *
 * Threads: the worker hooks run on the CA worker thread (they read the
 * worker's own fields), the fetch hooks on Workload API connection threads;
 * what they share with the metrics server thread is atomics only. The
 * registry lives until exit (see ca_metrics.h for why). Every hook does
 * nothing before agent_metrics_start (unit tests link these objects).
 */
#ifndef AGENT_METRICS_H
#define AGENT_METRICS_H

#include <stdint.h>

#include "api/core/mf_err.h"

struct agent_config;
struct agent_worker;

#define AGENT_EXPIRY_WARNING_MS_DEFAULT (5 * 60 * 1000)

/* Registers the metrics, and starts the server when cfg->metrics_listen is
 * set (logging its address). Once, on the main thread, signals blocked,
 * before the worker and socket threads start. cfg is read here only. */
MF_WUR mf_res agent_metrics_start(const struct agent_config *cfg);

/* The Workload API serves: /ready may answer 200, systemd is told READY=1. */
void agent_metrics_ready(void);

/* Shutdown begins: not ready, systemd told STOPPING=1, server stopped. */
void agent_metrics_stop(void);

/* ---- worker hooks ------------------------------------------------------------------- */

/* A snapshot was published: cache size, the soonest expiry, the agent SVID. */
void agent_metrics_published(const struct agent_worker *w);
/* An SVID from the CA was installed for a record whose renewal had been
 * scheduled at scheduled_ms (0: a first issuance or a re-sign after an entry
 * change, which is not a scheduled renewal). */
void agent_metrics_svid_signed(int64_t scheduled_ms);
/* The agent's own SVID was renewed; it had been scheduled at scheduled_ms. */
void agent_metrics_agent_renewed(int64_t scheduled_ms);
void agent_metrics_sign_failed(void);
/* A JWT-SVID came from the CA, or asking for one failed with r (counted by
 * reason: ca_unreachable, refused, rate_limited, bad_reply, error). */
void agent_metrics_jwt_fetched(void);
void agent_metrics_jwt_failed(mf_res r);
/* A request was sent again because the CA had closed the kept-alive
 * connection (agent_client). */
void agent_metrics_ca_reconnected(void);
/* The worker's client now talks to CA server (host:port). */
void agent_metrics_ca_server(const char *server);
/* A client moved to another CA server after a failure. */
void agent_metrics_ca_failover(void);
void agent_metrics_ca_failed(void);
/* The expiry warning pass (see the top), at wall-clock now_ms. */
void agent_metrics_check_expiry(const struct agent_worker *w, int64_t now_ms);

/* ---- Workload API hooks ------------------------------------------------------------- */

uint64_t agent_metrics_clock(void);
/* One fetch was answered with an identity; it started at t0. */
void agent_metrics_fetch_done(uint64_t t0);
/* One request was refused, for reason (free text; spaces become '_'). */
void agent_metrics_denied(const char *reason);
/* One gRPC call answered: method and code as lower-case snake_case
 * ("fetch_x509_svid", "permission_denied"). */
void agent_metrics_grpc(const char *method, const char *code);

#endif /* AGENT_METRICS_H */
