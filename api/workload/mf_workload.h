/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_workload: the Workload API client that a C workload links (the JSON
 * form served on the agent's Unix socket, DESIGN.md "Interfaces").
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * Three layers:
 *
 *   mf_x509_context   one complete X.509 state as the agent sent it: the
 *                     workload's X509-SVIDs (svids[0] is the default
 *                     identity, SPIFFE.md E20) and the trust bundles, one per
 *                     trust domain (never pooled, B23). Immutable once
 *                     published and reference counted, so that a reader can
 *                     keep using a snapshot while a rotation replaces it.
 *
 *   mf_workload_fetch_x509
 *                     one GET /v1/x509, parsed strictly.
 *
 *   mf_x509_source    a background thread that holds a watch stream
 *                     (GET /v1/x509?watch=true, one full document per line,
 *                     E12), reconnects with capped exponential backoff and
 *                     jitter (E17, E19), and publishes every valid new state
 *                     as a fresh snapshot, swapped in under a mutex. Readers
 *                     call mf_x509_source_get for a reference to the current
 *                     snapshot.
 *
 * Validation (go-spiffe's, SPIFFE.md E27, plus ours): a document is refused
 * as a whole when any SVID fails: its spiffe_id must parse and have a path,
 * x509_svid must be PEM CERTIFICATE blocks only (leaf first, at most
 * MF_WORKLOAD_CHAIN_MAX), x509_svid_key exactly one PEM "PRIVATE KEY"
 * (PKCS#8) block whose key matches the leaf, bundle PEM CERTIFICATE blocks
 * only, expires_at an RFC 3339 UTC time, and the chain must verify as an
 * X509-SVID against its own bundle at the time given (mf_svid_verify: leaf
 * rules, signatures, validity windows). The leaf's SPIFFE ID must equal
 * spiffe_id. Unknown members, duplicate keys and wrong types are refused
 * (MF_ERR_PROTO_JSON). A later SVID whose non-empty hint repeats an earlier
 * one is dropped (E21: the first wins). federated_bundles maps a trust
 * domain (ID form or bare name) to PEM; a federated entry for a trust
 * domain that an SVID already belongs to is refused.
 *
 * Secrets: every buffer of this module that holds the response text or key
 * bytes is an MF_BUF_SECRET buffer, and the key strings inside the decoded
 * JSON are wiped before the JSON is released. Keys live in mf_key
 * (mf_secret storage) and are freed with the last reference to their
 * snapshot. Not covered here: mf_http's own receive buffers and jansson's
 * decoder scratch space, which see the same text.
 *
 * Errors (see each function): MF_ERR_IO_CONNECT when the socket cannot be
 * reached (missing, refused), MF_ERR_POLICY_NO_ENTRY "no identity issued"
 * when the agent answers 403 permission_denied (E18), MF_ERR_USAGE_ARG when
 * it answers 400 (a client bug, E19: do not retry), MF_ERR_IO for 503
 * (unavailable: retry later), MF_ERR_PROTO_* for a malformed answer,
 * MF_ERR_CRYPTO_MISMATCH for a key that is not the leaf's, MF_ERR_AUTH_* for
 * an SVID that does not verify against its bundle.
 */
#ifndef MF_WORKLOAD_H
#define MF_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

#define MF_WORKLOAD_DOC_MAX   (8u * 1024u * 1024u) /* one /v1/x509 document */
#define MF_WORKLOAD_SVIDS_MAX 256u                 /* SVIDs in one document */
#define MF_WORKLOAD_FED_MAX   64u                  /* federated bundles */
#define MF_WORKLOAD_CHAIN_MAX 8u                   /* certificates per SVID chain */
#define MF_WORKLOAD_HINT_MAX  1024u                /* E21 */
#define MF_WORKLOAD_KEY_MAX   (16u * 1024u)        /* one key PEM */
#define MF_WORKLOAD_ENV       "SPIFFE_ENDPOINT_SOCKET"
#define MF_WORKLOAD_HEADER    "workload.spiffe.io: true"

/* One X509-SVID with its private key. */
struct mf_x509_svid {
    struct mf_spiffe_id id;              /* the SVID's SPIFFE ID */
    struct mf_certs chain;               /* leaf first, then intermediates */
    struct mf_key *key;                  /* owned by the snapshot */
    char hint[MF_WORKLOAD_HINT_MAX + 1]; /* "" when none */
    int64_t expires_at;                  /* the leaf's NotAfter, seconds */
};

/* One X.509 state. Treat as read-only once obtained from a parse, a fetch or
 * a source: it may be shared by several threads. */
struct mf_x509_context {
    struct mf_x509_svid *svids; /* n_svids >= 1 once published; [0] = default */
    size_t n_svids;
    struct mf_bundle_set bundles; /* own trust domain(s) and federated ones */
    int refs;                     /* managed by _ref/_free (atomic) */
};

/* ---- endpoint ------------------------------------------------------------ */

/* Resolves the Workload API socket path (E7): addr when it is not NULL
 * ("unix:///path", "unix:/path", or a bare absolute path), else the
 * SPIFFE_ENDPOINT_SOCKET environment variable (URI forms only). Writes a
 * NUL-terminated path to path_out. MF_ERR_USAGE_ARG when neither is set;
 * the mf_endpoint_parse error when the address is malformed (E8, E9). */
MF_WUR mf_res mf_workload_socket_path(const char *addr, char *path_out, size_t cap);

/* ---- snapshots ----------------------------------------------------------- */

/* Parses one /v1/x509 document (len bytes, at most MF_WORKLOAD_DOC_MAX; need
 * not be NUL-terminated) with the checks above, verifying each SVID at time
 * now. A document of the form {"error":"permission_denied",...} (what the
 * agent sends on a watch stream when the identity is withdrawn) is
 * MF_ERR_POLICY_NO_ENTRY; any other error document MF_ERR_PROTO. *out (one
 * reference) is NULL on failure. The caller should keep json in a secret
 * buffer: it holds private keys. */
MF_WUR mf_res mf_x509_context_parse(const char *json, size_t len, int64_t now,
                                    struct mf_x509_context **out);

/* An empty snapshot (no SVIDs, no bundles) with one reference, for building
 * one by hand (tests, fixed identities). It must not be shared with other
 * threads until it is complete. */
MF_WUR mf_res mf_x509_context_new(struct mf_x509_context **out);

/* Appends an SVID: chain (leaf first; new references are taken) and key.
 * Takes ownership of key, also on failure (it is freed then). Checks that
 * the leaf carries a SPIFFE ID with a path and that key matches the leaf
 * (MF_ERR_CRYPTO_MISMATCH); does not verify the chain (that is the caller's
 * choice here, unlike mf_x509_context_parse). hint may be NULL. */
MF_WUR mf_res mf_x509_context_add_svid(struct mf_x509_context *ctx, const struct mf_certs *chain,
                                       struct mf_key *key, const char *hint);

/* Adds a reference to bundle, replacing any bundle of the same trust
 * domain. */
MF_WUR mf_res mf_x509_context_add_bundle(struct mf_x509_context *ctx, struct mf_bundle *bundle);

/* Another reference (atomic); NULL passes through. */
struct mf_x509_context *mf_x509_context_ref(struct mf_x509_context *ctx);
/* Drops one reference; the last frees every SVID (keys wiped) and bundle.
 * NULL is a no-op. */
void mf_x509_context_free(struct mf_x509_context *ctx);

/* The default SVID (svids[0]), or NULL when there is none. Borrowed from
 * ctx. */
const struct mf_x509_svid *mf_x509_context_default(const struct mf_x509_context *ctx);
/* The first SVID with this (non-empty) hint, or NULL. Borrowed from ctx. */
const struct mf_x509_svid *mf_x509_context_by_hint(const struct mf_x509_context *ctx,
                                                   const char *hint);

/* ---- one-shot fetch ------------------------------------------------------ */

/* GET /v1/x509 on the Workload API at addr (see mf_workload_socket_path;
 * NULL means SPIFFE_ENDPOINT_SOCKET), with the security header, within
 * timeout_ms; the answer is parsed by mf_x509_context_parse at mf_now().
 * Errors as in the file comment; the detail carries the agent's message. */
MF_WUR mf_res mf_workload_fetch_x509(const char *addr, int timeout_ms,
                                     struct mf_x509_context **out);

/* ---- watching source ----------------------------------------------------- */

struct mf_x509_source; /* opaque */

struct mf_x509_source_opts {
    /* Called on the source's own thread after each new snapshot is
     * published (ctx, borrowed for the call: take mf_x509_context_ref to
     * keep it), and with ctx NULL when the agent withdrew the identity
     * (E18: the snapshot is dropped and mf_x509_source_get fails with
     * MF_ERR_POLICY_NO_ENTRY until a new one arrives). Must not call
     * mf_x509_source_free. May be NULL. */
    void (*on_update)(void *arg, struct mf_x509_context *ctx);
    void *arg;
    int backoff_min_ms; /* first retry delay; 0 means 200 ms */
    int backoff_max_ms; /* cap; 0 means 10 s */
};

/* Starts the watching thread on the Workload API at addr (NULL means
 * SPIFFE_ENDPOINT_SOCKET; the address is resolved now, so a malformed one
 * fails here). opts may be NULL. Returns at once: use mf_x509_source_wait
 * for the first snapshot. Free with mf_x509_source_free. */
MF_WUR mf_res mf_x509_source_new(const char *addr, const struct mf_x509_source_opts *opts,
                                 struct mf_x509_source **out);

/* Waits up to timeout_ms for a snapshot to be available. MF_ERR_IO_TIMEOUT
 * (with the last connection or parse error in the detail) when none came.
 * Thread-safe. */
MF_WUR mf_res mf_x509_source_wait(struct mf_x509_source *s, int timeout_ms);

/* A new reference to the current snapshot (release it with
 * mf_x509_context_free). MF_ERR_POLICY_NO_ENTRY when the identity was
 * withdrawn, MF_ERR_STATE when nothing has arrived yet. Thread-safe. */
MF_WUR mf_res mf_x509_source_get(struct mf_x509_source *s, struct mf_x509_context **out);

/* Number of snapshots published (and withdrawals) so far; changes on every
 * update. Thread-safe. */
uint64_t mf_x509_source_generation(struct mf_x509_source *s);

/* Stops the thread (within about MF_WORKLOAD_POLL_MS), closes the stream
 * and drops the current snapshot; readers holding references keep theirs.
 * NULL is a no-op. Not from inside on_update. */
void mf_x509_source_free(struct mf_x509_source *s);

#define MF_WORKLOAD_POLL_MS 200 /* how often the watcher checks for shutdown */

#endif /* MF_WORKLOAD_H */
