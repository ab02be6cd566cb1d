/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_cache: the agent's state (its entries, their keys and SVIDs, the
 * trust bundle, its own identity) in memory and on disk.
 *
 * On-disk layout, all under the data dir (0700), every file 0600:
 *   agent.svid          the agent's own key and SVID chain
 *   bundle.json         the trust bundle last received from the CA (JWKS)
 *   federated.json      the foreign trust domains' bundles last received
 *                       (a bundle map, only those some entry federates with)
 *   svids/<h>.svid      one file per entry, h = hex of SHA-256(entry id)[0..16)
 *
 * A .svid file is one JSON header line (no secrets: the entry as the CA sent
 * it, or the agent ID, plus the drawn renewal instant), followed by the
 * PKCS#8 "PRIVATE KEY" PEM block and the certificate chain, leaf first. Key
 * and certificate sit in the same file so that one rename replaces both:
 * a crash can never leave a key beside a certificate it does not match.
 *
 * Why per-entry files rather than SQLite: each rotation rewrites one small
 * file (temp + fsync + rename + fsync of the directory), which is atomic by
 * POSIX and costs O(1) whatever the number of entries; nothing needs
 * queries or cross-entry transactions (each entry's state is self-contained
 * and the CA resends the full entry list after a restart); and the agent
 * stays free of a database engine and its page cache, in line with its
 * footprint goal. A file that fails to parse is ignored and its entry is
 * simply signed again.
 *
 * Not thread-safe: the cache is owned by the agent's worker thread; readers
 * see immutable snapshots (agent_state.h).
 */
#ifndef AGENT_CACHE_H
#define AGENT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include <jansson.h>

#include "api/core/mf_err.h"
#include "api/internal/mf_selector.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_x509.h"

#define AGENT_SVID_FILE_MAX (256u * 1024u)
#define AGENT_ENTRY_ID_MAX  256
#define AGENT_HINT_MAX      1024 /* SPIFFE.md E21 */
#define AGENT_DNS_MAX       32

/* A registration entry parented to this agent (docs/api.md "entry"). */
struct agent_entry {
    char *id;
    char *spiffe_id;
    char *hint; /* "" when none */
    struct mf_selector *sels;
    size_t n_sels;
    char **dns;
    size_t n_dns;
    int64_t ttl; /* seconds; 0 = the CA's default */
    char **fed;  /* "spiffe://<td>" of the trust domains it federates with */
    size_t n_fed;
    /* SHA-256 of the entry's canonical JSON (agent_entry_to_json, compact,
     * keys sorted): a changed entry is told by comparing digests, and the
     * disk cache writes that JSON again from the fields, so no copy of the
     * text received is kept (it cost about 220 bytes per entry) */
    uint8_t digest[32];
};

/* Parses an entry object. Unknown members are tolerated because the CA is an
 * authenticated peer that may be newer than this agent; every known member
 * is type- and size-checked. out filled only on success. */
MF_WUR mf_res agent_entry_from_json(const json_t *obj, struct agent_entry *out);
void agent_entry_cleanup(struct agent_entry *e);
/* The entry as a JSON object holding only what agent_entry_from_json reads
 * (id, spiffe_id, selectors; hint, ttl, dns_names and federates_with when
 * set): agent_entry_from_json of it gives the same entry and digest. */
MF_WUR mf_res agent_entry_to_json(const struct agent_entry *e, json_t **out);
/* True when an SVID made for a must be made again for b (ID, TTL or DNS
 * names changed). Selectors and hint changes need no new SVID. */
bool agent_entry_needs_resign(const struct agent_entry *a, const struct agent_entry *b);

/* One entry and its current SVID. */
struct agent_rec {
    struct agent_entry entry;
    struct mf_key *key;    /* NULL until the first SVID */
    struct mf_certs chain; /* leaf first; empty until the first SVID */
    int64_t not_after;     /* seconds; 0 when no SVID */
    int64_t renew_at_ms;   /* drawn once per SVID */
    unsigned attempts;     /* failed signing attempts in a row */
    int64_t retry_at_ms;   /* not before this (backoff); 0 = now */
    bool seen;             /* scratch for sync: present in the last list */
};

struct agent_cache {
    int dirfd;    /* the data dir */
    int svids_fd; /* data dir/svids */
    struct agent_rec *v;
    size_t n;
    size_t cap;
    struct mf_bundle *bundle; /* own trust domain's bundle, or NULL */
    struct mf_bundle_set fed; /* foreign bundles the CA sent (federated.json) */
    /* entry id -> position in v, for agent_cache_find: open addressing,
     * slot value position + 1 (0: empty); NULL until built, and dropped
     * when positions move (agent_cache_remove) */
    size_t *index;
    size_t index_cap; /* a power of two, at least twice n */
    /* when set, agent_cache_load reads and checks the files on it */
    struct agent_pool *pool;
};

/* Opens (creating, 0700) the data dir and its svids/ subdir. Refuses a data
 * dir that is a symlink, or not owned by us, or open to others. */
MF_WUR mf_res agent_cache_open(const char *dir, struct agent_cache *c);
void agent_cache_close(struct agent_cache *c);

/* Loads the per-entry files and bundle.json (td: bare trust domain). Files
 * whose SVID expired are removed; unreadable ones are skipped with a warning. */
MF_WUR mf_res agent_cache_load(struct agent_cache *c, const char *td);

/* The record for entry id, or NULL. Hashed: a cache of 10,000 entries is
 * loaded and synced without a scan per entry. */
struct agent_rec *agent_cache_find(struct agent_cache *c, const char *id);
/* Makes room for n records in all, so that a cache whose size is known (the
 * CA's full entry list) holds no spare slots; a no-op when it has room. */
MF_WUR mf_res agent_cache_reserve(struct agent_cache *c, size_t n);
/* Adds a record for entry (takes ownership of *entry's contents, which is
 * cleared), returning it. */
MF_WUR mf_res agent_cache_add(struct agent_cache *c, struct agent_entry *entry,
                              struct agent_rec **out);
/* Removes record i from memory and its file from disk. */
void agent_cache_remove(struct agent_cache *c, size_t i);

/* Installs a new key and chain in rec (takes ownership of key and of the
 * chain's references, leaving *chain empty), draws nothing: the caller sets
 * renew_at_ms first. Writes the record's file. */
MF_WUR mf_res agent_cache_store(struct agent_cache *c, struct agent_rec *rec);
/* Replaces the bundle (adds a reference) and writes bundle.json. */
MF_WUR mf_res agent_cache_set_bundle(struct agent_cache *c, struct mf_bundle *b);

/* Replaces the federated bundles (adds references) and writes
 * federated.json (a bundle map, SPIFFE.md D13). *changed says whether they
 * differ from the ones held (trust domains or keys). */
MF_WUR mf_res agent_cache_set_federated(struct agent_cache *c, const struct mf_bundle_set *set,
                                        bool *changed);
/* The agent's own identity in agent.svid. */
MF_WUR mf_res agent_cache_load_agent(struct agent_cache *c, struct mf_key **key,
                                     struct mf_certs *chain, int64_t *renew_at_ms);
MF_WUR mf_res agent_cache_save_agent(struct agent_cache *c, const struct mf_key *key,
                                     const struct mf_certs *chain, int64_t renew_at_ms);

/* Writes len bytes to name in dirfd atomically: a new temp file (O_EXCL,
 * O_NOFOLLOW, the given mode), fsync, renameat over name, fsync of the
 * directory. With refuse_symlink, an existing name that is a symlink is
 * refused (MF_ERR_IO_SYMLINK) rather than replaced. */
MF_WUR mf_res agent_file_write_atomic(int dirfd, const char *name, const void *data, size_t len,
                                      mode_t mode, bool refuse_symlink);

/* Reads a whole regular file (not a symlink) at name in dirfd into out
 * (whose cap bounds the size). */
MF_WUR mf_res agent_file_read(int dirfd, const char *name, struct mf_buf *out);

#endif /* AGENT_CACHE_H */
