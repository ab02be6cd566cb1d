/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_keys: the CA key journal and its rotation schedule.
 *
 * Each signing key is one record in the store (id, state, validity, the CA
 * certificate's DER) plus one PKCS#8 PEM file "<data_dir>/keys/<id>.key"
 * (mode 0600). States move one way: prepared -> active -> retired -> dropped
 * (the record is deleted). For a key of lifetime L = NotAfter - NotBefore:
 *
 *   at NotBefore + L/2    the next key is made and published in the bundle
 *                         ("prepared"), so that relying parties learn it
 *                         before anything it signs appears;
 *   at NotBefore + 5L/6   the prepared key becomes active; the old one is
 *                         retired (still in the bundle, signs nothing);
 *   at NotAfter           a retired key is dropped from the bundle: every
 *                         leaf it signed is capped at its NotAfter, so by
 *                         then all of them have expired.
 *
 * A leaf issued just before an activation is capped at the old key's
 * NotAfter, L/6 later. So a leaf TTL fits only when ttl <= L/6; anything
 * longer would be silently shortened, and is refused at start instead.
 *
 * JWT-SVID keys ride on the same schedule: every generation has its own
 * EC P-256 JWT key (ES256) whose kid is the generation's id; it is
 * published in the bundle ("use":"jwt-svid") from the moment the
 * generation is prepared, signs while the generation is active, and leaves
 * the bundle with it. A JWT-SVID never outlives its generation either.
 *
 * ca_keys_plan() is a pure function of (now, records) so that the schedule
 * can be tested on an injected clock. struct ca_keys applies the plan: it
 * owns the loaded keys, the signer in use and the published bundle, all
 * protected by its own mutex.
 */
#ifndef CA_KEYS_H
#define CA_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_x509.h"
#include "ca/ca_config.h"

#define CA_KEY_ID_LEN      17  /* 8 random bytes as hex, plus NUL */
#define CA_JWT_TTL         300 /* seconds: the default JWT-SVID lifetime (SPIRE's) */
#define CA_KEYS_MAX        8   /* records kept at once (in practice 2 or 3) */
#define CA_BUNDLE_KEYS_MAX 64  /* every server's records, in one registry */
#define CA_SERVER_ID_MAX   32  /* a server id: 1..32 of [a-z0-9-] */

enum ca_key_state {
    CA_KEY_PREPARED = 0,
    CA_KEY_ACTIVE = 1,
    CA_KEY_RETIRED = 2,
};

struct ca_key_rec {
    char id[CA_KEY_ID_LEN];
    enum ca_key_state state;
    int64_t not_before;
    int64_t not_after;
    char server[CA_SERVER_ID_MAX + 1]; /* owner's server id; "" for none */
};

/* What the schedule asks for at a given instant. Indexes refer to the
 * record array given to ca_keys_plan. */
struct ca_plan {
    bool create_active; /* no usable key: make one and activate it at once */
    bool prepare;       /* make the next key, state prepared */
    int activate;       /* index of a prepared key to activate, or -1 */
    int retire;         /* index of the active key to retire, or -1 */
    size_t n_drop;
    int drop[CA_KEYS_MAX]; /* indexes of retired keys to drop */
    int64_t next_event;    /* earliest instant the plan can change (INT64_MAX: never) */
};

const char *ca_key_state_name(enum ca_key_state s);

/* The schedule (see above). Pure: depends only on its arguments. */
void ca_keys_plan(int64_t now, const struct ca_key_rec *recs, size_t n, struct ca_plan *out);

/* The longest leaf TTL that fits a CA key lifetime (ca_ttl / 6). */
int64_t ca_keys_max_leaf_ttl(int64_t ca_ttl);

/* True when svid_ttl fits ca_ttl; otherwise false and why holds one
 * sentence naming both settings and what to change. */
bool ca_keys_ttl_fits(int64_t svid_ttl, int64_t ca_ttl, char *why, size_t cap);

/* ---- runtime ------------------------------------------------------------ */

struct ca_store;
struct ca_keys;

/* What one issuance needs, pinned for its duration: the active key, its
 * certificate, and the intermediates to send after the leaf (upstream mode).
 * Reference counted, so that a rotation never frees a key in use. */
struct ca_signer {
    int refs;
    char id[CA_KEY_ID_LEN];
    struct mf_cert *cert;
    struct mf_key *key;
    struct mf_key *jwt_key; /* JWT-SVID key of the same generation (kid = id), or NULL */
    struct mf_certs chain;  /* certificates sent after the leaf */
};

void ca_signer_release(struct ca_signer *s); /* NULL is a no-op */

/* Loads this server's id (making it on first start), this server's part of
 * the journal from store and its key files from cfg->data_dir/keys,
 * refusing a key file readable by group or others, then applies the
 * schedule once (which makes the first key on first start).
 *
 * Several servers may share one registry (PostgreSQL): each loads, rotates
 * and signs with its own keys only (rows whose server_id is its id, and
 * rows with no owner whose files its data dir holds, which it claims),
 * while the published bundle holds every server's keys. On SQLite, a
 * journal row of another server is refused as before. */
MF_WUR mf_res ca_keys_open(const struct ca_config *cfg, struct ca_store *store,
                           struct ca_keys **out);
void ca_keys_free(struct ca_keys *k);

/* True when id is a valid server id (1..CA_SERVER_ID_MAX of [a-z0-9-]). */
bool ca_server_id_valid(const char *id);

/* This server's id, made on first start and kept in
 * <data_dir>/keys/server.id. Valid as long as k. */
const char *ca_keys_server_id(const struct ca_keys *k);

/* Rebuilds the bundle from the registry when another server changed its
 * keys (the registry's bundle sequence is not ours); *changed as for
 * ca_keys_tick. Called on every change notice from the registry. */
MF_WUR mf_res ca_keys_refresh(struct ca_keys *k, bool *changed);

/* Applies the schedule at now. *changed is set when the bundle changed
 * (its spiffe_sequence went up). */
MF_WUR mf_res ca_keys_tick(struct ca_keys *k, int64_t now, bool *changed);

/* The earliest instant ca_keys_tick has work to do. */
int64_t ca_keys_next_event(struct ca_keys *k);

/* A new reference to the current signer. */
MF_WUR mf_res ca_keys_signer(struct ca_keys *k, struct ca_signer **out);

/* Signs a JWT-SVID for sub (a SPIFFE ID; the caller has checked that it
 * may) with audiences aud[0..n_aud), issued at now, expiring at
 * min(now + ttl, the active generation's NotAfter), with the active
 * generation's JWT key. Appends the token to out; *exp_out is its exp. */
MF_WUR mf_res ca_keys_sign_jwt(struct ca_keys *k, const char *sub, const char *const *aud,
                               size_t n_aud, int64_t now, int64_t ttl, struct mf_buf *out,
                               int64_t *exp_out);

/* A new reference to the published bundle (caller frees). */
struct mf_bundle *ca_keys_bundle(struct ca_keys *k);

/* {"authorities":[{"id","state","serial","not_before","not_after","fingerprint"}...],
 *  "spiffe_sequence":N} for `ca show`. */
MF_WUR mf_res ca_keys_describe(struct ca_keys *k, json_t **out);

#endif /* CA_KEYS_H */
