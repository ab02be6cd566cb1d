/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_state: what the Workload API serves, as immutable snapshots.
 *
 * The worker thread builds a complete snapshot (every entry's selectors,
 * references to its SVID chain and to its key, which stays in locked secret
 * storage, the bundle) and publishes it; request threads take a reference under the
 * lock and then read it without any lock. What the snapshot serves is never
 * changed after publication, and it is freed (its keys wiped) when the last
 * reference goes. Each publication bumps a version counter and wakes the
 * watch streams waiting on the condition variable.
 *
 * Federation: a snapshot also holds the foreign bundles that the entries
 * federate with (agent_snap_fed), and each SVID the list of its entry's
 * federated trust domains. A workload receives a foreign bundle only when
 * one of the SVIDs it receives federates with that trust domain; a foreign
 * bundle always keeps its own trust domain key (never merged).
 *
 * Rendering filters at the moment of the request: only SVIDs whose entry's
 * selectors are all among the workload's, and that have not expired, are
 * written, so an SVID that expires while the CA is unreachable disappears
 * even before the worker publishes again.
 *
 * Answers are rendered once per snapshot (agent_snap_answer): the first
 * request of a workload with a given selector set renders its answer (PEM
 * and JSON, or protobuf) and the snapshot keeps it, refcounted, for every
 * later request with the same selectors, until an SVID of the snapshot
 * reaches its NotAfter or the clock goes back (then it is rendered again).
 * At most AGENT_ANSWERS_MAX answers are kept per snapshot; they go with it.
 */
#ifndef AGENT_STATE_H
#define AGENT_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/internal/mf_selector.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

#define AGENT_RENDER_MAX (8u * 1024u * 1024u) /* one /v1/x509 document */

#define AGENT_ANSWERS_MAX 256 /* rendered answers kept per snapshot */

struct agent_snap_svid {
    void *mem;                /* one block: chain.v, sels and the strings */
    const char *spiffe_id;    /* in mem */
    const char *hint;         /* in mem; "" when none */
    struct mf_selector *sels; /* in mem, values too: never mf_selectors_free */
    size_t n_sels;
    struct mf_certs chain; /* leaf first; array in mem, certificates shared with the cache */
    struct mf_key *key;    /* a reference, shared with the cache (locked memory) */
    int64_t not_after;     /* seconds */
    char **fed;            /* "spiffe://<td>" it federates with (its entry's) */
    size_t n_fed;
};

/* A foreign trust domain's bundle, as the snapshot serves it. Never merged
 * with ours or another's (SPIFFE.md F13). */
struct agent_snap_fed {
    char td_id[MF_SPIFFE_ID_MAX + 1]; /* "spiffe://<td>" */
    struct mf_bundle *bundle;         /* X.509 and JWT authorities */
    struct mf_buf pem;                /* its X.509 authorities, PEM */
    struct mf_buf der;                /* the same, concatenated DER (gRPC) */
};

/* What kind of answer agent_snap_answer renders. */
enum agent_answer_kind {
    AGENT_ANSWER_X509_JSON, /* GET /v1/x509 */
    AGENT_ANSWER_X509_GRPC, /* X509SVIDResponse, framed */
    AGENT_ANSWER_KINDS
};

/* A rendered answer: immutable once made, refcounted (a snapshot's list
 * holds one reference, each request that sends it another). */
struct agent_answer {
    int refs; /* atomic */
    struct agent_answer *next;
    enum agent_answer_kind kind;
    uint64_t hash; /* of kind and selectors */
    struct mf_selector *sels;
    size_t n_sels;
    int64_t made_ms;    /* wall clock when rendered */
    int64_t until_ms;   /* the first NotAfter of the snapshot after made_ms */
    size_t count;       /* SVIDs in it; 0: the workload gets none */
    struct mf_buf body; /* MF_BUF_SECRET */
};

struct agent_snap {
    int refs;                         /* atomic */
    uint64_t version;                 /* set by publish */
    char td_id[MF_SPIFFE_ID_MAX + 1]; /* "spiffe://<td>" */
    struct mf_buf bundle_pem;         /* own trust domain's X.509 authorities */
    struct mf_bundle *bundle;         /* the same bundle (X.509 and JWT authorities), or NULL */
    struct agent_snap_svid *svids;
    size_t n;
    size_t cap;
    struct agent_snap_fed *feds; /* foreign bundles some SVID federates with */
    size_t n_feds;
    pthread_mutex_t answers_mu; /* protects answers, n_answers */
    struct agent_answer *answers;
    size_t n_answers;
};

/* A new empty snapshot with one reference, for trust domain td (bare). */
MF_WUR mf_res agent_snap_new(const char *td, struct agent_snap **out);
/* Makes room for n SVIDs in all (agent_snap_add), so that a snapshot built
 * with a known count holds no spare slots. */
MF_WUR mf_res agent_snap_reserve(struct agent_snap *s, size_t n);
struct agent_snap *agent_snap_ref(struct agent_snap *s);
void agent_snap_unref(struct agent_snap *s); /* NULL is a no-op */

/* Adds one SVID (copies the strings and selectors, takes references to the
 * chain's certificates and to the key). */
MF_WUR mf_res agent_snap_add(struct agent_snap *s, const char *spiffe_id, const char *hint,
                             const struct mf_selector *sels, size_t n_sels,
                             const struct mf_certs *chain, const struct mf_key *key,
                             int64_t not_after);

/* The PEM forms of SVID v of a snapshot, which keeps DER and the key:
 * its chain into chain_pem and its key into key_pem (MF_BUF_SECRET), both
 * emptied first. Every PEM renderer (JSON, SDS) goes through here. */
MF_WUR mf_res agent_snap_svid_pem(const struct agent_snap_svid *v, struct mf_buf *chain_pem,
                                  struct mf_buf *key_pem);

/* Adds a foreign bundle (a reference; its PEM and DER are made here). */
MF_WUR mf_res agent_snap_add_federated(struct agent_snap *s, struct mf_bundle *b);
/* Sets the trust domains SVID i federates with (copied; "spiffe://<td>"). */
MF_WUR mf_res agent_snap_set_federates(struct agent_snap *s, size_t i, char *const *ids, size_t n);

/* The accessor for every renderer of federated bundles (JSON, gRPC, the
 * file sink, an SDS server): the bundle of foreign trust domain td (bare
 * name or "spiffe://<td>") that SVID i of s is entitled to, or NULL when
 * that SVID's entry does not federate with td or no bundle of td is held.
 * Borrowed from s: valid while the caller holds its reference to s. */
const struct agent_snap_fed *agent_state_federated(const struct agent_snap *s, size_t i,
                                                   const char *td);
/* True when foreign bundle k of s goes to a workload with selectors
 * have[0..n_have): some SVID visible to it federates with that trust
 * domain. */
bool agent_snap_fed_visible(const struct agent_snap *s, size_t k, const struct mf_selector *have,
                            size_t n_have);
/* The bundles a workload may verify peers with: ours and the foreign ones
 * visible to it (agent_snap_fed_visible), each in its own slot of out
 * (initialised by the caller; references added). */
MF_WUR mf_res agent_snap_trust(const struct agent_snap *s, const struct mf_selector *have,
                               size_t n_have, struct mf_bundle_set *out);

/* True when SVID i of s goes to a workload with selectors have[0..n_have)
 * now: its entry's selectors are all present, it has not expired, and no
 * earlier visible SVID has the same non-empty hint (SPIFFE.md E21). Every
 * renderer (JSON, gRPC, JWT) filters with this one rule. */
bool agent_snap_visible(const struct agent_snap *s, size_t i, const struct mf_selector *have,
                        size_t n_have);

/* Number of SVIDs that a workload with selectors have[0..n_have) may get
 * now. */
size_t agent_snap_count(const struct agent_snap *s, const struct mf_selector *have, size_t n_have);

/* The GET /v1/x509 document (DESIGN.md) for the workload, appended to out
 * (which must be MF_BUF_SECRET: it holds keys). *count is the number of
 * SVIDs written; with 0 the caller answers 403 and out is left empty. */
MF_WUR mf_res agent_snap_render_x509(const struct agent_snap *s, const struct mf_selector *have,
                                     size_t n_have, struct mf_buf *out, size_t *count);

/* Renders an answer of one kind for a workload with selectors
 * have[0..n_have), into out (MF_BUF_SECRET, empty on entry); *count as for
 * agent_snap_render_x509. arg is the renderer's own. */
typedef mf_res (*agent_answer_fn)(const struct agent_snap *s, const struct mf_selector *have,
                                  size_t n_have, struct mf_buf *out, size_t *count, void *arg);

/* The answer of kind for a workload with selectors have[0..n_have) (sorted,
 * as attestation gives them), from s: the one kept in s when there is one
 * still valid, else rendered now with render(arg) and kept (when there is
 * room). *out is a reference: agent_answer_unref it. A render failure is
 * returned as is and nothing is kept. */
MF_WUR mf_res agent_snap_answer(struct agent_snap *s, enum agent_answer_kind kind,
                                const struct mf_selector *have, size_t n_have,
                                agent_answer_fn render, void *arg, struct agent_answer **out);
void agent_answer_unref(struct agent_answer *a); /* NULL is a no-op */

/* agent_answer_fn for AGENT_ANSWER_X509_JSON (agent_snap_render_x509). */
MF_WUR mf_res agent_snap_render_x509_fn(const struct agent_snap *s, const struct mf_selector *have,
                                        size_t n_have, struct mf_buf *out, size_t *count,
                                        void *arg);

/* {"bundles":{"spiffe://td":"PEM"}} */
MF_WUR mf_res agent_snap_render_bundles(const struct agent_snap *s, struct mf_buf *out);
/* The same with the foreign bundles visible to the workload added, each
 * under its own trust domain ID. */
MF_WUR mf_res agent_snap_render_bundles_for(const struct agent_snap *s,
                                            const struct mf_selector *have, size_t n_have,
                                            struct mf_buf *out);

struct agent_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct agent_snap *cur; /* protected by mu; NULL before the first */
    uint64_t version;       /* protected by mu */
    bool stopping;          /* protected by mu */
    /* The agent's own identity and the CA trust, for request threads that
     * must call the CA themselves (JWT-SVIDs, agent_jwt.h): the worker sets
     * them, readers take copies. All protected by mu. */
    struct mf_key *id_key;
    struct mf_certs id_chain;
    struct mf_bundle *id_trust;
    uint64_t id_gen; /* bumped on every change; 0 = none yet */
};

MF_WUR mf_res agent_state_init(struct agent_state *st);
void agent_state_cleanup(struct agent_state *st);
/* Takes ownership of snap, makes it current and wakes every waiter. */
void agent_state_publish(struct agent_state *st, struct agent_snap *snap);
/* A reference to the current snapshot (or NULL), and its version. */
struct agent_snap *agent_state_get(struct agent_state *st, uint64_t *version);
/* Waits until the version differs from seen, the state is stopping, or
 * timeout_ms passes. Returns true when the version changed. */
bool agent_state_wait(struct agent_state *st, uint64_t seen, int timeout_ms);
/* Publishes the agent identity: copies key and adds references to the
 * chain's certificates and to trust. key (with chain) or trust may be NULL to
 * keep the current one. */
MF_WUR mf_res agent_state_set_identity(struct agent_state *st, const struct mf_key *key,
                                       const struct mf_certs *chain, struct mf_bundle *trust);
/* Copies of the identity when its generation differs from *gen (which is
 * updated): *key (caller frees), chain (initialised here, caller cleans
 * up) and *trust (a reference). Returns MF_ERR_IO_NOT_FOUND, with nothing
 * set, when the generation is unchanged or no identity was published. */
MF_WUR mf_res agent_state_copy_identity(struct agent_state *st, uint64_t *gen, struct mf_key **key,
                                        struct mf_certs *chain, struct mf_bundle **trust);

/* Wakes every waiter for good (shutdown). */
void agent_state_stop(struct agent_state *st);
bool agent_state_stopping(struct agent_state *st);

#endif /* AGENT_STATE_H */
