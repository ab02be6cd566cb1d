/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_metrics: counters, gauges and histograms for mayfly's daemons, written
 * in the Prometheus text exposition format 0.0.4, and the small HTTP server
 * that serves them next to the health endpoints /live and /ready. Also the
 * systemd readiness notification (sd_notify), written by hand so that the
 * daemons need no libsystemd. Internal to mayfly: workloads do not use it.
 *
 * Model. A registry (struct mf_metrics) holds families in registration
 * order. A family has a name, a help text, a type and at most two label
 * names; each distinct label value is one series. Unlabelled families have
 * exactly one series, created with the family, so that a counter reads 0
 * rather than being absent before its first event. A labelled family holds at
 * most MF_METRICS_SERIES_MAX series: the last slot is reserved for the value
 * "other", into which every further label value folds, so that cardinality
 * stays bounded whatever reaches the label (STYLE.md: every buffer has a cap).
 * Label values longer than MF_METRICS_LABEL_MAX - 1 bytes are cut there.
 *
 * Threads. Registration takes the registry lock and is meant for start-up.
 * Updates are lock-free atomics on the series value (counters: 64-bit
 * integer adds; gauges: the bits of a double; histograms: one integer per
 * bucket plus the sum as double bits with a compare-and-swap loop), except
 * that finding or creating a labelled series takes the family's mutex for a
 * linear scan of at most MF_METRICS_SERIES_MAX entries. Rendering takes the
 * registry lock, runs the collect hooks, then reads every value atomically.
 * Histogram buckets are stored per bucket and accumulated while rendering,
 * so the "le" series is monotone and its +Inf bucket equals _count in every
 * scrape, even with observations racing the scrape.
 *
 * Every update function accepts a NULL metric and then does nothing: the
 * daemons' one-line hooks stay harmless in unit tests and before start-up.
 */
#ifndef MF_METRICS_H
#define MF_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"

#define MF_METRICS_FAMILIES_MAX 64              /* families per registry */
#define MF_METRICS_SERIES_MAX   32              /* series per labelled family, "other" included */
#define MF_METRICS_LABEL_MAX    64              /* bytes of a label value, NUL included */
#define MF_METRICS_NAME_MAX     96              /* bytes of a metric or label name, NUL included */
#define MF_METRICS_HELP_MAX     256             /* bytes of a help text, NUL included */
#define MF_METRICS_BUCKETS_MAX  24              /* finite bucket bounds of a histogram */
#define MF_METRICS_RENDER_MAX   (1024u * 1024u) /* one exposition document */

/* The Content-Type of an exposition document. */
#define MF_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum mf_metric_type {
    MF_METRIC_COUNTER = 0,
    MF_METRIC_GAUGE = 1,
    MF_METRIC_HISTOGRAM = 2,
};

struct mf_metrics;
struct mf_metric;

/* A new empty registry (caller frees with mf_metrics_free, which also frees
 * every family: handles from it must not be used afterwards). */
MF_WUR mf_res mf_metrics_new(struct mf_metrics **out);
void mf_metrics_free(struct mf_metrics *m); /* NULL is a no-op */

/* Registers a counter or a gauge. name must match [a-zA-Z_:][a-zA-Z0-9_:]*,
 * label (or NULL for none) [a-zA-Z_][a-zA-Z0-9_]* and not start with "__"
 * nor be "le"; or two such names as "a,b" (say "method,code"), whose series
 * are then named by values "x,y" (the first comma splits them, so the first
 * value holds none); help is one line of text (it is escaped on output). Both are
 * copied. *out is borrowed from the registry and lives as long as it.
 * MF_ERR_USAGE_ARG for a bad name, a duplicate name or a full registry. */
MF_WUR mf_res mf_metrics_counter(struct mf_metrics *m, const char *name, const char *help,
                                 const char *label, struct mf_metric **out);
MF_WUR mf_res mf_metrics_gauge(struct mf_metrics *m, const char *name, const char *help,
                               const char *label, struct mf_metric **out);

/* Registers an unlabelled histogram with the upper bounds bounds[0..n) (1..
 * MF_METRICS_BUCKETS_MAX finite values, strictly increasing; copied); the
 * +Inf bucket is implicit. An observation v lands in the first bucket with
 * v <= bound, as the format's "le" (less or equal) says. */
MF_WUR mf_res mf_metrics_histogram(struct mf_metrics *m, const char *name, const char *help,
                                   const double *bounds, size_t n, struct mf_metric **out);

/* Counter: adds n to the series of label_value (ignored, may be NULL, for
 * an unlabelled family; NULL means "" for a labelled one). Adding 0 creates
 * the series so that it is shown as 0. No-op on a gauge or histogram. */
void mf_metric_add(struct mf_metric *c, const char *label_value, uint64_t n);
static inline void mf_metric_inc(struct mf_metric *c, const char *label_value)
{
    mf_metric_add(c, label_value, 1);
}

/* Gauge: sets the series to v. A series that was never set, or was unset,
 * has no sample line (a value that does not exist, such as "the soonest
 * expiry" with nothing cached, is absent rather than a made-up number). */
void mf_metric_set(struct mf_metric *g, const char *label_value, double v);
void mf_metric_unset(struct mf_metric *g, const char *label_value);

/* Histogram: records one observation. NaN is ignored. */
void mf_metric_observe(struct mf_metric *h, double v);

/* Reads a series back (tests, and readiness checks): counters give their
 * count, gauges their value (NaN when unset), histograms their _count.
 * NaN for an unknown series or a NULL metric. */
double mf_metric_value(struct mf_metric *x, const char *label_value);

/* A function run at the start of every rendering, under the registry lock,
 * to set gauges that are computed at scrape time (e.g. "seconds until"
 * from a stored instant). At most 4 hooks. fn must not call back into the
 * registry's registration or rendering functions. */
MF_WUR mf_res mf_metrics_on_collect(struct mf_metrics *m, void (*fn)(void *arg), void *arg);

/* Appends the exposition document of every family to out. Fails with
 * MF_ERR_PROTO_TOO_LARGE when out's cap is reached (out is then partial). */
MF_WUR mf_res mf_metrics_render(struct mf_metrics *m, struct mf_buf *out);

/* Monotonic nanoseconds, and the seconds elapsed since such an instant, for
 * latency observations. */
uint64_t mf_metrics_clock_ns(void);
double mf_metrics_since(uint64_t t0_ns);

/* ---- the HTTP server --------------------------------------------------------------- */

/* Serves, over plain HTTP/1.1 on a TCP address:
 *   GET /live     200 "ok\n" while the process answers at all;
 *   GET /ready    200 "ready\n" when ready(arg) says so, else 503 "not ready\n";
 *   GET /metrics  200, the exposition document of m.
 * HEAD is answered like GET without a body; other methods 405; other paths
 * 404. Requests carry no body (any is refused with 413 past 1 KiB).
 *
 * host_port is "HOST:PORT" with a numeric host ("127.0.0.1:9090",
 * "[::1]:9090"); port 0 picks a free port (see mf_metrics_server_address).
 * The endpoints reveal only counts, times and the daemon's own identity,
 * but nothing authenticates the scraper: bind to loopback unless a firewall
 * guards the port. One internal thread serves at most 16 connections, each
 * closed after 5 s of silence, with a small memory budget.
 *
 * ready may be NULL (then /ready is always 200). m and arg are borrowed and
 * must outlive the server. Call with signals already blocked (the server
 * thread inherits the mask). *out is freed by mf_metrics_server_stop. */
struct mf_metrics_server;
MF_WUR mf_res mf_metrics_serve(struct mf_metrics *m, const char *host_port,
                               bool (*ready)(void *arg), void *arg, struct mf_metrics_server **out);

/* The bound address as "HOST:PORT" (the real port when 0 was asked).
 * Borrowed from s. */
const char *mf_metrics_server_address(const struct mf_metrics_server *s);

/* Stops serving and frees s (NULL is a no-op). */
void mf_metrics_server_stop(struct mf_metrics_server *s);

/* ---- the daemons' serving life ------------------------------------------------------ */

/* What the CA and the agent each keep for their endpoints: the server and
 * a ready flag, set once the daemon serves and cleared when it stops. One
 * per daemon, zero-initialised; ready is read with atomics from any
 * thread. */
struct mf_metrics_life {
    struct mf_metrics_server *srv;
    int ready; /* atomic */
};

/* Serves m on host_port as mf_metrics_serve does and logs "metrics
 * listening address=..."; nothing when host_port is NULL or "". */
MF_WUR mf_res mf_metrics_life_serve(struct mf_metrics_life *l, struct mf_metrics *m,
                                    const char *host_port, bool (*ready)(void *arg));

/* The ready flag. */
bool mf_metrics_life_is_ready(const struct mf_metrics_life *l);

/* Sets the ready flag and sends systemd "READY=1\nSTATUS=<status>"; a
 * failed notification is logged as a warning naming who ("the CA"). */
void mf_metrics_life_ready(struct mf_metrics_life *l, const char *status, const char *who);

/* Clears the ready flag, sends "STOPPING=1" if it was set, and stops the
 * server. Safe to call more than once. */
void mf_metrics_life_stop(struct mf_metrics_life *l, const char *who);

/* ---- systemd readiness -------------------------------------------------------------- */

/* Sends state (e.g. "READY=1", "STOPPING=1") as one datagram to the socket
 * named by $NOTIFY_SOCKET, as sd_notify(3) does: a path, or "@name" for the
 * abstract namespace. Does nothing and succeeds when the variable is unset
 * (not started by systemd with Type=notify). MF_ERR_IO when the variable is
 * malformed or the send fails. */
MF_WUR mf_res mf_metrics_notify_systemd(const char *state);

#endif /* MF_METRICS_H */
