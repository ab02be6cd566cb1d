/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_store: the CA's registry in SQLite.
 *
 * One database file "<data_dir>/mayfly-ca.db" (0600, in a 0700 directory)
 * holds registration entries, attested agents (with their ban state), join
 * tokens (only the SHA-256 of each), the CA key journal and a few counters.
 *
 * Durability: journal_mode=WAL with synchronous=FULL. Every write is one
 * transaction, and a caller is told "done" only after COMMIT returned, which
 * with FULL means the WAL was fsync'd: an acknowledged write survives kill -9
 * and power loss alike. (NORMAL would survive kill -9 too, since the WAL
 * sits in the page cache, but could lose the last commits on power loss;
 * the CA writes little, so the fsync per write is cheap.)
 *
 * The schema is versioned in schema_version; ca_store_open applies every
 * missing migration in one transaction, and refuses a database from a newer
 * mayfly.
 *
 * Thread-safe: one connection guarded by one mutex; each call is atomic.
 */
#ifndef CA_STORE_H
#define CA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"
#include "ca/ca_keys.h"

#define CA_ENTRY_ID_LEN 33 /* 16 random bytes as hex, plus NUL */
#define CA_HINT_MAX     256
#define CA_DNS_MAX      16
#define CA_DNS_NAME_MAX 253
#define CA_FED_MAX      32 /* foreign trust domains one entry federates with */

/* A registration entry. Strings are heap-allocated and owned. selectors are
 * canonical "type:key:value" strings, sorted and unique. */
struct ca_entry {
    char id[CA_ENTRY_ID_LEN];
    char *spiffe_id;
    char *parent_id;
    char **selectors;
    size_t n_selectors;
    int64_t ttl; /* seconds; 0 = the CA's default */
    char **dns_names;
    size_t n_dns;
    char *hint; /* NULL when none */
    int64_t revision;
    int64_t created_at;
    char **federates_with; /* "spiffe://<td>" of foreign trust domains, sorted, unique */
    size_t n_fed;
};

void ca_entry_cleanup(struct ca_entry *e);
void ca_entries_free(struct ca_entry *v, size_t n);
MF_WUR mf_res ca_entry_copy(const struct ca_entry *src, struct ca_entry *dst);

struct ca_agent {
    char spiffe_id[MF_SPIFFE_ID_MAX + 1];
    char serial[MF_SERIAL_HEX_MAX];
    int64_t expires_at;
    int64_t attested_at;
    int64_t last_seen;
    bool banned;
};

struct ca_store;

/* Opens the registry: the SQLite file in data_dir (which holds keys too, so
 * it must be 0700), creating and migrating it as needed. */
MF_WUR mf_res ca_store_open(const char *data_dir, struct ca_store **out);
/* The same on the engine that datastore names: NULL or "" as above,
 * "sqlite:PATH", or a "postgresql://" URI (several CA servers may share
 * it). The string may hold a password: it is never logged or echoed. */
MF_WUR mf_res ca_store_open_ds(const char *data_dir, const char *datastore, struct ca_store **out);
void ca_store_close(struct ca_store *st);

/* While a shared database (PostgreSQL) is unreachable, answer the reads
 * that renewals need (an agent's record, the entries parented to it) from
 * what the database said at most grace_s seconds ago, unless a change made
 * or heard of since dropped it (ca_recall.h). 0 turns it off; a SQLite
 * registry never needs it and ignores it. Call once, before serving. */
MF_WUR mf_res ca_store_set_recall(struct ca_store *st, int64_t grace_s);

/* Several servers on one database: from now until ca_store_close, a thread
 * calls changed(cls) soon after any server (this one included) commits a
 * change, and once more after the connection for change notices comes back
 * from an outage (what was announced meanwhile is lost). A no-op for an
 * engine that one server owns (SQLite). changed runs on that thread. */
MF_WUR mf_res ca_store_watch(struct ca_store *st, void (*changed)(void *cls), void *cls);

/* Stops the watcher (if any) and waits for it: no callback runs after
 * this returns. ca_store_close does it too; call it first when the
 * callback uses something freed before the store. */
void ca_store_unwatch(struct ca_store *st);

/* True when the engine is one that several servers may share (PostgreSQL);
 * false for SQLite, which one server owns. */
bool ca_store_shared(const struct ca_store *st);

/* The registry revision: goes up with every change of entries or agents. */
int64_t ca_store_revision(struct ca_store *st);

/* ---- entries ------------------------------------------------------------- */

/* Inserts e (already validated), giving it a fresh random id and revision,
 * which are written back into e. MF_ERR_POLICY_DUPLICATE when an entry with
 * the same SPIFFE ID, parent and selectors exists. */
MF_WUR mf_res ca_store_entry_create(struct ca_store *st, struct ca_entry *e);
/* Replaces selectors, ttl, dns_names and hint of the entry e->id. */
MF_WUR mf_res ca_store_entry_update(struct ca_store *st, struct ca_entry *e);
MF_WUR mf_res ca_store_entry_delete(struct ca_store *st, const char *id);
MF_WUR mf_res ca_store_entry_get(struct ca_store *st, const char *id, struct ca_entry *out);
/* Every entry (parent_id NULL) or the entries of one parent, by id. */
MF_WUR mf_res ca_store_entry_list(struct ca_store *st, const char *parent_id, struct ca_entry **out,
                                  size_t *n_out);

/* ---- join tokens ---------------------------------------------------------- */

MF_WUR mf_res ca_store_token_add(struct ca_store *st, const uint8_t hash[32], const char *spiffe_id,
                                 int64_t expires_at);
/* Atomically checks and spends a token: MF_ERR_AUTH_TOKEN when it is unknown,
 * already used or expired at now. On success writes its agent ID. Expired
 * and used tokens are purged on the way. */
MF_WUR mf_res ca_store_token_consume(struct ca_store *st, const uint8_t hash[32], int64_t now,
                                     char spiffe_id_out[MF_SPIFFE_ID_MAX + 1]);

/* Looks a token up without spending it (so that a request refused for
 * another reason does not burn it): its agent ID, or MF_ERR_AUTH_TOKEN.
 * ca_store_token_consume must still be called to use it. */
MF_WUR mf_res ca_store_token_peek(struct ca_store *st, const uint8_t hash[32], int64_t now,
                                  char spiffe_id_out[MF_SPIFFE_ID_MAX + 1]);

/* ---- agents --------------------------------------------------------------- */

/* Records a (re-)attestation or renewal: serial and expiry of its new SVID.
 * With attest, attested_at is set too; refuses a banned agent
 * (MF_ERR_AUTH_BANNED) without writing. */
MF_WUR mf_res ca_store_agent_issued(struct ca_store *st, const char *spiffe_id, const char *serial,
                                    int64_t expires_at, int64_t now, bool attest);
MF_WUR mf_res ca_store_agent_get(struct ca_store *st, const char *spiffe_id, struct ca_agent *out);
MF_WUR mf_res ca_store_agent_list(struct ca_store *st, struct ca_agent **out, size_t *n_out);
MF_WUR mf_res ca_store_agent_ban(struct ca_store *st, const char *spiffe_id);
/* Deletes the agent: it must attest again with a new token. */
MF_WUR mf_res ca_store_agent_evict(struct ca_store *st, const char *spiffe_id);
MF_WUR mf_res ca_store_agent_seen(struct ca_store *st, const char *spiffe_id, int64_t now);

/* ---- CA key journal --------------------------------------------------------- */

/* Records a new key (rec->server is its owner, "" for none) with its
 * certificate and the DER public half of its JWT key (jwt_pub may be
 * NULL). ca_store_key_put is ca_store_key_add without a JWT key. */
MF_WUR mf_res ca_store_key_add(struct ca_store *st, const struct ca_key_rec *rec,
                               const uint8_t *cert_der, size_t cert_len, const uint8_t *jwt_pub,
                               size_t jwt_pub_len);
MF_WUR mf_res ca_store_key_put(struct ca_store *st, const struct ca_key_rec *rec,
                               const uint8_t *cert_der, size_t cert_len);
/* Makes server the owner of key id if it has none (a row written before
 * servers had ids); *claimed says whether this call did it. */
MF_WUR mf_res ca_store_key_claim(struct ca_store *st, const char *id, const char *server,
                                 bool *claimed);
/* Records the JWT public key (DER) of key id where none is recorded. */
MF_WUR mf_res ca_store_key_set_jwt_pub(struct ca_store *st, const char *id, const uint8_t *der,
                                       size_t len);
MF_WUR mf_res ca_store_key_set_state(struct ca_store *st, const char *id, enum ca_key_state s);
MF_WUR mf_res ca_store_key_delete(struct ca_store *st, const char *id);
/* Up to CA_KEYS_MAX records, oldest first; ders[i] is a malloc'd copy of
 * the certificate DER of recs[i] (caller frees each). */
MF_WUR mf_res ca_store_key_list(struct ca_store *st, struct ca_key_rec *recs, uint8_t **ders,
                                size_t *lens, size_t *n_out);

/* One row of the key journal, with everything the bundle needs. */
struct ca_key_row {
    struct ca_key_rec rec; /* rec.server: the owner, "" for none */
    uint8_t *cert;         /* certificate DER */
    size_t cert_len;
    uint8_t *jwt_pub; /* JWT public key DER, or NULL */
    size_t jwt_pub_len;
};

/* Every server's keys (up to CA_BUNDLE_KEYS_MAX), oldest first; free
 * with ca_key_rows_free. */
MF_WUR mf_res ca_store_key_rows(struct ca_store *st, struct ca_key_row **out, size_t *n_out);
void ca_key_rows_free(struct ca_key_row *v, size_t n);

/* One transaction for a rotation step (several key changes at once). */
MF_WUR mf_res ca_store_begin(struct ca_store *st);
MF_WUR mf_res ca_store_commit(struct ca_store *st);
void ca_store_rollback(struct ca_store *st);

/* Counters in the meta table (bundle sequence). */
MF_WUR mf_res ca_store_meta_get(struct ca_store *st, const char *key, int64_t *out);
MF_WUR mf_res ca_store_meta_set(struct ca_store *st, const char *key, int64_t v);

/* How many entries and agents the registry holds (for the CA's gauges). */
MF_WUR mf_res ca_store_counts(struct ca_store *st, int64_t *entries, int64_t *agents);

/* ---- federation (ca_fed.h) ------------------------------------------------ */

#define CA_FED_URL_MAX   2048
#define CA_FED_PROFILE_N 16

/* A relationship with a foreign trust domain's bundle endpoint. */
struct ca_federation {
    char td[MF_TD_MAX + 1];                 /* bare name, the key */
    char url[CA_FED_URL_MAX + 1];           /* https://... */
    char profile[CA_FED_PROFILE_N];         /* "https_spiffe" or "https_web" */
    char endpoint_id[MF_SPIFFE_ID_MAX + 1]; /* https_spiffe only, else "" */
    int64_t created_at;
    int64_t updated_at;
};

/* A foreign trust domain's bundle, as last fetched or set. */
struct ca_foreign_bundle {
    char td[MF_TD_MAX + 1];
    char *jwks; /* the SPIFFE bundle document (owned) */
    int64_t sequence;
    int64_t fetched_at;
    char source[CA_FED_PROFILE_N]; /* "static" or "endpoint" */
};

void ca_fbundles_free(struct ca_foreign_bundle *v, size_t n);

/* Creates (MF_ERR_POLICY_DUPLICATE when one exists) or updates
 * (MF_ERR_POLICY_NOT_FOUND when none) the relationship f->td, already
 * validated; updated_at is the time of the write (created_at too, on
 * create). */
MF_WUR mf_res ca_store_fed_put(struct ca_store *st, const struct ca_federation *f, bool create);
/* Deletes the relationship and its trust domain's stored bundle at once. */
MF_WUR mf_res ca_store_fed_delete(struct ca_store *st, const char *td);
MF_WUR mf_res ca_store_fed_get(struct ca_store *st, const char *td, struct ca_federation *out);
/* Every relationship, by trust domain (caller frees *out). */
MF_WUR mf_res ca_store_fed_list(struct ca_store *st, struct ca_federation **out, size_t *n_out);
/* Inserts or replaces the bundle of b->td (the caller has checked the
 * sequence). */
MF_WUR mf_res ca_store_fbundle_put(struct ca_store *st, const struct ca_foreign_bundle *b);
MF_WUR mf_res ca_store_fbundle_delete(struct ca_store *st, const char *td);
/* The bundle of td (one, or MF_ERR_POLICY_NOT_FOUND), or every one when td
 * is NULL; free with ca_fbundles_free. */
MF_WUR mf_res ca_store_fbundle_list(struct ca_store *st, const char *td,
                                    struct ca_foreign_bundle **out, size_t *n_out);

/* ---- copying a registry ------------------------------------------------------ */

#define CA_STORE_TABLES 7

/* Copies every row of src (entries, agents with their ban state, join
 * token hashes, the CA key journal and the counters, bundle sequence
 * included) into dst, in one transaction of dst: for a move from SQLite
 * to PostgreSQL (the CA keys themselves stay in the data dir). dst must be
 * empty (MF_ERR_POLICY_DUPLICATE otherwise); on any error nothing is
 * written. counts (may be NULL) gets the rows copied per table, named by
 * ca_store_table_name. */
MF_WUR mf_res ca_store_copy(struct ca_store *src, struct ca_store *dst,
                            uint64_t counts[CA_STORE_TABLES]);
const char *ca_store_table_name(size_t i);

#endif /* CA_STORE_H */
