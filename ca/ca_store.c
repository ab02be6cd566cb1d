/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_store: the registry (see ca_store.h for durability and threading),
 * written once over the SQL engine interface of ca_db.h.
 *
 * All SQL uses bound parameters; no value is ever pasted into SQL text.
 * The mutex is recursive so that ca_store_begin/commit can wrap several
 * calls from one thread in a single transaction.
 */
#include "ca/ca_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#include <jansson.h>

#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "ca/ca_db.h"
#include "ca/ca_recall.h"

#define DB_NAME "mayfly-ca.db"

struct ca_store {
    struct ca_db *db;   /* protected by mu */
    pthread_mutex_t mu; /* recursive; serialises every use of db */
    int64_t revision;   /* protected by mu; mirrors meta 'revision' */
    int tx_depth;       /* protected by mu; >0 inside ca_store_begin */
    /* change notices from other servers (ca_store_watch) */
    pthread_t watcher;
    bool watch_asked; /* ca_store_watch was called */
    bool watching;    /* the watcher thread runs */
    int stop;         /* atomic: the watcher ends */
    void (*changed)(void *cls);
    void *changed_cls;
    struct ca_db *listener; /* handed from ca_store_watch to the watcher */
    /* the last answers about agents and their entries, given back while
     * the database is unreachable (ca_store_set_recall); NULL: none */
    struct ca_recall *recall;
    int64_t recall_logged_ms; /* atomic: when a recalled answer was last logged */
};

/* Migration i takes the schema from version i to version i + 1. Never edit
 * a released migration; add a new one. One history for every engine: the
 * types that engines spell differently are written {INT64} and {BLOB}. */
static const char *const migrations[] = {
    "CREATE TABLE entries ("
    " id TEXT PRIMARY KEY,"
    " spiffe_id TEXT NOT NULL,"
    " parent_id TEXT NOT NULL,"
    " selectors TEXT NOT NULL," /* canonical JSON array, sorted */
    " ttl {INT64} NOT NULL,"
    " dns_names TEXT NOT NULL," /* JSON array */
    " hint TEXT,"
    " revision {INT64} NOT NULL,"
    " created_at {INT64} NOT NULL,"
    " UNIQUE (spiffe_id, parent_id, selectors));"
    "CREATE INDEX entries_parent ON entries (parent_id);"
    "CREATE TABLE agents ("
    " spiffe_id TEXT PRIMARY KEY,"
    " serial TEXT NOT NULL,"
    " expires_at {INT64} NOT NULL,"
    " attested_at {INT64} NOT NULL,"
    " last_seen {INT64} NOT NULL,"
    " banned {INT64} NOT NULL DEFAULT 0);"
    "CREATE TABLE join_tokens ("
    " hash {BLOB} PRIMARY KEY," /* SHA-256 of the token; the token is never stored */
    " spiffe_id TEXT NOT NULL,"
    " expires_at {INT64} NOT NULL);"
    "CREATE TABLE ca_keys ("
    " id TEXT PRIMARY KEY,"
    " state {INT64} NOT NULL,"
    " not_before {INT64} NOT NULL,"
    " not_after {INT64} NOT NULL,"
    " cert {BLOB} NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value {INT64} NOT NULL);",
    /* several servers on one registry: each CA key row names the server
     * that holds its private key (NULL: written before servers had ids;
     * claimed by the server whose data dir holds the key), and carries the
     * public half of its JWT key so that every server publishes every
     * server's JWT keys */
    "ALTER TABLE ca_keys ADD COLUMN server_id TEXT;"
    "ALTER TABLE ca_keys ADD COLUMN jwt_pub {BLOB};",
    /* federation (ca_fed.h): the foreign trust domains an entry federates
     * with, the relationships to their bundle endpoints, and the foreign
     * bundles themselves (fetched or set by an operator) */
    "ALTER TABLE entries ADD COLUMN federates_with TEXT NOT NULL DEFAULT '[]';" /* JSON array */
    "CREATE TABLE federations ("
    " trust_domain TEXT PRIMARY KEY,"
    " endpoint_url TEXT NOT NULL,"
    " profile TEXT NOT NULL,"
    " endpoint_spiffe_id TEXT NOT NULL," /* '' for https_web */
    " created_at {INT64} NOT NULL,"
    " updated_at {INT64} NOT NULL);"
    "CREATE TABLE foreign_bundles ("
    " trust_domain TEXT PRIMARY KEY,"
    " jwks TEXT NOT NULL," /* the SPIFFE bundle document as stored */
    " sequence {INT64} NOT NULL,"
    " fetched_at {INT64} NOT NULL,"
    " source TEXT NOT NULL);", /* 'static' or 'endpoint' */
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

static void lock(struct ca_store *st)
{
    pthread_mutex_lock(&st->mu);
}

static void unlock(struct ca_store *st)
{
    pthread_mutex_unlock(&st->mu);
}

/* Runs one statement; the caller holds the lock. */
static mf_res run(struct ca_store *st, const char *what, const char *sql,
                  const struct ca_db_val *args, size_t n_args, ca_db_row_fn fn, void *cls,
                  uint64_t *changes)
{
    return st->db->ops->exec(st->db, what, sql, args, n_args, fn, cls, changes);
}

/* The parameter list of a statement, written inline:
 * run(st, "entry", sql, ARGS(ca_db_text(id)), fn, cls, NULL) */
#define ARGS(...)                            \
    (const struct ca_db_val[]){__VA_ARGS__}, \
        sizeof((const struct ca_db_val[]){__VA_ARGS__}) / sizeof(struct ca_db_val)

/* Runs one statement under the lock. */
static mf_res run_locked(struct ca_store *st, const char *what, const char *sql,
                         const struct ca_db_val *args, size_t n_args, ca_db_row_fn fn, void *cls,
                         uint64_t *changes)
{
    lock(st);
    mf_res r = run(st, what, sql, args, n_args, fn, cls, changes);
    unlock(st);
    return r;
}

/* Row callbacks shared by several queries. */
static mf_res get_int(void *cls, const struct ca_db_row *row)
{
    *(int64_t *)cls = ca_db_col_int(row, 0);
    return MF_RES_OK;
}

/* ---- transactions --------------------------------------------------------- */

mf_res ca_store_begin(struct ca_store *st)
{
    MF_ENSURE_REF(st);
    lock(st);
    if (st->tx_depth == 0) {
        mf_res r = st->db->ops->begin(st->db);
        if (!mf_ok(r)) {
            unlock(st);
            return r;
        }
    }
    st->tx_depth++;
    return MF_RES_OK;
}

/* Tells the other servers sharing the database that it changed (at
 * commit, inside a transaction). The caller holds the lock. */
static mf_res announce(struct ca_store *st)
{
    return st->db->ops->notify != NULL ? st->db->ops->notify(st->db) : MF_RES_OK;
}

/* announce, for a write made outside ca_store_begin: inside one, the
 * commit announces. */
static mf_res announce_locked(struct ca_store *st)
{
    lock(st);
    mf_res r = st->tx_depth == 0 ? announce(st) : MF_RES_OK;
    unlock(st);
    return r;
}

mf_res ca_store_commit(struct ca_store *st)
{
    MF_ENSURE_REF(st);
    mf_res r = MF_RES_OK;
    if (st->tx_depth == 1) {
        r = announce(st);
        if (!mf_ok(r)) {
            st->db->ops->rollback(st->db);
        }
    }
    if (--st->tx_depth == 0 && mf_ok(r)) {
        r = st->db->ops->commit(st->db);
    }
    unlock(st);
    return r;
}

void ca_store_rollback(struct ca_store *st)
{
    if (st == NULL) {
        return;
    }
    if (--st->tx_depth == 0) {
        st->db->ops->rollback(st->db);
    }
    unlock(st);
}

/* ---- meta ----------------------------------------------------------------- */

static mf_res meta_get_locked(struct ca_store *st, const char *key, int64_t *out)
{
    *out = 0;
    return run(st, "meta", "SELECT value FROM meta WHERE key = $1", ARGS(ca_db_text(key)), get_int,
               out, NULL);
}

static mf_res meta_set_locked(struct ca_store *st, const char *key, int64_t v)
{
    return run(st, "meta",
               "INSERT INTO meta (key, value) VALUES ($1, $2) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
               ARGS(ca_db_text(key), ca_db_int(v)), NULL, NULL, NULL);
}

mf_res ca_store_meta_get(struct ca_store *st, const char *key, int64_t *out)
{
    MF_ENSURE_REF(st);
    lock(st);
    mf_res r = meta_get_locked(st, key, out);
    unlock(st);
    return r;
}

mf_res ca_store_meta_set(struct ca_store *st, const char *key, int64_t v)
{
    MF_ENSURE_REF(st);
    lock(st);
    mf_res r = meta_set_locked(st, key, v);
    if (mf_ok(r) && st->tx_depth == 0) {
        r = announce(st);
    }
    unlock(st);
    return r;
}

/* Inside a transaction: the next registry revision. st->revision is only
 * moved once the transaction commits (see write_commit). */
static mf_res bump_revision(struct ca_store *st, int64_t *rev)
{
    int64_t cur = 0;
    MF_TRY(meta_get_locked(st, "revision", &cur));
    *rev = cur + 1;
    return meta_set_locked(st, "revision", *rev);
}

int64_t ca_store_revision(struct ca_store *st)
{
    lock(st);
    int64_t r = st->revision;
    unlock(st);
    return r;
}

/* Commits a write that bumped the revision to rev, then publishes rev to
 * readers. */
static mf_res write_commit(struct ca_store *st, int64_t rev)
{
    MF_TRY(ca_store_commit(st));
    lock(st);
    if (rev > st->revision) {
        st->revision = rev;
    }
    unlock(st);
    return MF_RES_OK;
}

/* ---- open / migrate ------------------------------------------------------- */

/* Writes sql with {INT64} and {BLOB} spelled as the engine spells them. */
static mf_res expand(struct ca_store *st, const char *sql, char *out, size_t cap)
{
    static const struct {
        const char *tok;
        enum ca_db_type type;
    } toks[] = {{"{INT64}", CA_DB_TYPE_INT64}, {"{BLOB}", CA_DB_TYPE_BLOB}};
    size_t o = 0;
    for (const char *p = sql; *p != '\0';) {
        const char *word = NULL;
        size_t skip = 1;
        for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
            size_t n = strlen(toks[i].tok);
            if (strncmp(p, toks[i].tok, n) == 0) {
                word = st->db->ops->type(st->db, toks[i].type);
                skip = n;
            }
        }
        size_t n = word != NULL ? strlen(word) : 1;
        MF_ENSURE(o + n < cap, MF_ERR_INTERNAL);
        memcpy(out + o, word != NULL ? word : p, n);
        o += n;
        p += skip;
    }
    out[o] = '\0';
    return MF_RES_OK;
}

static mf_res migrate(struct ca_store *st)
{
    mf_res rc;
    int64_t version = 0;
    char sql[8192];
    MF_TRY(expand(st, "CREATE TABLE IF NOT EXISTS schema_version (version {INT64} NOT NULL)", sql,
                  sizeof(sql)));
    MF_TRY(st->db->ops->script(st->db, sql));
    MF_TRY(ca_store_begin(st));
    MF_TRY_OUT(run(st, "schema", "SELECT MAX(version) FROM schema_version", NULL, 0, get_int,
                   &version, NULL));
    MF_ENSURE_OUT_MSG(version <= SCHEMA_VERSION, MF_ERR_STATE,
                      "database schema version %lld is newer than this mayfly-ca (%d)",
                      (long long)version, SCHEMA_VERSION);
    for (int64_t v = version; v < SCHEMA_VERSION; v++) {
        MF_TRY_OUT(expand(st, migrations[v], sql, sizeof(sql)));
        MF_TRY_OUT(st->db->ops->script(st->db, sql));
    }
    if (version < SCHEMA_VERSION) {
        MF_TRY_OUT(run(st, "schema", "DELETE FROM schema_version", NULL, 0, NULL, NULL, NULL));
        MF_TRY_OUT(run(st, "schema", "INSERT INTO schema_version (version) VALUES ($1)",
                       ARGS(ca_db_int(SCHEMA_VERSION)), NULL, NULL, NULL));
    }
    return ca_store_commit(st);
out:
    ca_store_rollback(st);
    return rc;
}

mf_res ca_store_open(const char *data_dir, struct ca_store **out)
{
    return ca_store_open_ds(data_dir, NULL, out);
}

/* The engine a datastore string names: NULL or "" is the SQLite file in
 * the data dir, "sqlite:PATH" another SQLite file, "postgresql://..." or
 * "postgres://..." a PostgreSQL database. */
static mf_res open_engine(const char *data_dir, const char *ds, struct ca_db **out)
{
    char path[4096];
    if (ds == NULL || ds[0] == '\0') {
        int n = snprintf(path, sizeof(path), "%s/%s", data_dir, DB_NAME);
        MF_ENSURE(n > 0 && (size_t)n < sizeof(path), MF_ERR_USAGE_ARG);
        return ca_db_sqlite_open(path, out);
    }
    if (strncmp(ds, "sqlite:", 7) == 0) {
        MF_ENSURE_MSG(ds[7] != '\0', MF_ERR_USAGE_ARG, "datastore sqlite: needs a path");
        return ca_db_sqlite_open(ds + 7, out);
    }
    if (strncmp(ds, "postgresql://", 13) == 0 || strncmp(ds, "postgres://", 11) == 0) {
        return ca_db_pg_open(ds, out);
    }
    /* never echo the string: it may hold a password */
    MF_BAIL_MSG(MF_ERR_USAGE_ARG, "datastore must be sqlite:PATH or a postgresql:// URI");
}

mf_res ca_store_open_ds(const char *data_dir, const char *datastore, struct ca_store **out)
{
    mf_res rc;
    MF_ENSURE_REF(data_dir);
    MF_ENSURE_REF(out);
    *out = NULL;
    struct ca_store *st = calloc(1, sizeof(*st));
    MF_TRY_PTR(st, MF_ERR_NOMEM);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&st->mu, &ma);
    pthread_mutexattr_destroy(&ma);

    /* The data dir holds keys: it must be ours alone. */
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        MF_BAIL_OUT(MF_ERR_IO, "cannot create data dir %s: %s", data_dir, strerror(errno));
    }
    struct stat sb;
    MF_ENSURE_OUT_MSG(stat(data_dir, &sb) == 0 && S_ISDIR(sb.st_mode), MF_ERR_IO,
                      "data dir %s is not a directory", data_dir);
    MF_ENSURE_OUT_MSG((sb.st_mode & 077) == 0, MF_ERR_IO_PERM,
                      "data dir %s is accessible by group or others (mode %03o); chmod 700 it",
                      data_dir, (unsigned)(sb.st_mode & 0777));
    MF_TRY_OUT(open_engine(data_dir, datastore, &st->db));
    MF_TRY_OUT(migrate(st));
    lock(st);
    rc = meta_get_locked(st, "revision", &st->revision);
    unlock(st);
    MF_TRY_OUT(rc);
    *out = st;
    st = NULL;
    rc = MF_RES_OK;
out:
    ca_store_close(st);
    return rc;
}

/* The watcher thread: hears other servers' changes, reloads the revision
 * and tells the caller; reconnects with a capped backoff when the
 * database goes away, and counts the reconnect as a change. */
static void *watch_main(void *arg)
{
    struct ca_store *st = arg;
    struct ca_db *l = st->listener;
    int backoff_ms = 250;
    bool lost = l == NULL;
    st->listener = NULL;
    while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
        bool changed = false;
        if (l == NULL) {
            lock(st);
            mf_res r = st->db->ops->listen(st->db, &l);
            unlock(st);
            if (!mf_ok(r)) {
                for (int t = 0; t < backoff_ms && !__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE);
                     t += 50) {
                    struct timespec ts = {0, 50 * 1000 * 1000};
                    nanosleep(&ts, NULL);
                }
                /* capped at 1 s: missed notices are what a ban or a key
                 * change on another server waits for (one reconnect
                 * attempt a second costs the database nothing) */
                backoff_ms = backoff_ms < 500 ? backoff_ms * 2 : 1000;
                lost = true;
                continue;
            }
            backoff_ms = 250;
            changed = lost; /* notices sent while we were away are lost */
            lost = false;
        }
        if (!changed && !mf_ok(st->db->ops->wait(l, 200, &changed))) {
            st->db->ops->close(l);
            l = NULL;
            lost = true;
            continue;
        }
        if (changed) {
            lock(st);
            int64_t rev = 0;
            if (mf_ok(meta_get_locked(st, "revision", &rev)) && rev > st->revision) {
                st->revision = rev;
            }
            unlock(st);
            /* another server changed something: no recalled answer may
             * outlive a change this server has heard of */
            ca_recall_forget_all(st->recall);
            st->changed(st->changed_cls);
        }
    }
    if (l != NULL) {
        st->db->ops->close(l);
    }
    return NULL;
}

mf_res ca_store_watch(struct ca_store *st, void (*changed)(void *cls), void *cls)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(changed);
    MF_ENSURE_MSG(!st->watch_asked, MF_ERR_STATE, "the registry is watched already");
    st->watch_asked = true;
    if (st->db->ops->listen == NULL) {
        return MF_RES_OK; /* one server owns this database: nothing to hear */
    }
    st->changed = changed;
    st->changed_cls = cls;
    /* listen before returning, so that every change committed after this
     * call is heard; if the database is away, the watcher retries */
    lock(st);
    mf_res r = st->db->ops->listen(st->db, &st->listener);
    unlock(st);
    if (!mf_ok(r)) {
        st->listener = NULL;
    }
    if (pthread_create(&st->watcher, NULL, watch_main, st) != 0) {
        if (st->listener != NULL) {
            st->db->ops->close(st->listener);
            st->listener = NULL;
        }
        MF_BAIL_MSG(MF_ERR_INTERNAL, "cannot start the registry watcher");
    }
    st->watching = true;
    return MF_RES_OK;
}

bool ca_store_shared(const struct ca_store *st)
{
    return st != NULL && st->db->ops->listen != NULL;
}

void ca_store_unwatch(struct ca_store *st)
{
    if (st == NULL || !st->watching) {
        return;
    }
    __atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
    pthread_join(st->watcher, NULL);
    st->watching = false;
}

void ca_store_close(struct ca_store *st)
{
    if (st == NULL) {
        return;
    }
    ca_store_unwatch(st);
    if (st->db != NULL) {
        st->db->ops->close(st->db);
    }
    ca_recall_free(st->recall);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

mf_res ca_store_set_recall(struct ca_store *st, int64_t grace_s)
{
    MF_ENSURE_REF(st);
    MF_ENSURE(st->recall == NULL, MF_ERR_STATE);
    MF_ENSURE_MSG(grace_s >= 0, MF_ERR_USAGE_ARG, "datastore grace must not be negative");
    /* a SQLite file is not unreachable while the process runs */
    if (grace_s == 0 || strcmp(st->db->ops->name, "sqlite") == 0) {
        return MF_RES_OK;
    }
    return ca_recall_new(grace_s * 1000, &st->recall);
}

/* ---- entries --------------------------------------------------------------- */

void ca_entry_cleanup(struct ca_entry *e)
{
    if (e == NULL) {
        return;
    }
    free(e->spiffe_id);
    free(e->parent_id);
    mf_strv_free(e->selectors, e->n_selectors);
    mf_strv_free(e->dns_names, e->n_dns);
    mf_strv_free(e->federates_with, e->n_fed);
    free(e->hint);
    memset(e, 0, sizeof(*e));
}

void ca_entries_free(struct ca_entry *v, size_t n)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ca_entry_cleanup(&v[i]);
    }
    free(v);
}

mf_res ca_entry_copy(const struct ca_entry *src, struct ca_entry *dst)
{
    mf_res rc;
    MF_ENSURE_REF(src);
    MF_ENSURE_REF(dst);
    struct ca_entry e;
    memset(&e, 0, sizeof(e));
    memcpy(e.id, src->id, sizeof(e.id));
    e.ttl = src->ttl;
    e.revision = src->revision;
    e.created_at = src->created_at;
    e.spiffe_id = strdup(src->spiffe_id ? src->spiffe_id : "");
    e.parent_id = strdup(src->parent_id ? src->parent_id : "");
    MF_ENSURE_OUT(e.spiffe_id != NULL && e.parent_id != NULL, MF_ERR_NOMEM);
    if (src->hint != NULL) {
        e.hint = strdup(src->hint);
        MF_ENSURE_OUT(e.hint != NULL, MF_ERR_NOMEM);
    }
    MF_TRY_OUT(mf_strv_dup(src->selectors, src->n_selectors, &e.selectors));
    e.n_selectors = src->n_selectors;
    MF_TRY_OUT(mf_strv_dup(src->dns_names, src->n_dns, &e.dns_names));
    e.n_dns = src->n_dns;
    MF_TRY_OUT(mf_strv_dup(src->federates_with, src->n_fed, &e.federates_with));
    e.n_fed = src->n_fed;
    *dst = e;
    return MF_RES_OK;
out:
    ca_entry_cleanup(&e);
    return rc;
}

static mf_res strs_to_json(char *const *v, size_t n, char **out)
{
    *out = NULL;
    json_t *a = json_array();
    MF_TRY_PTR(a, MF_ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            MF_BAIL(MF_ERR_NOMEM);
        }
    }
    *out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    MF_TRY_PTR(*out, MF_ERR_NOMEM);
    return MF_RES_OK;
}

static mf_res json_to_strs(const char *text, char ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    json_error_t jerr;
    json_t *a = json_loads(text ? text : "[]", 0, &jerr);
    MF_ENSURE_MSG(a != NULL && json_is_array(a), MF_ERR_STATE, "corrupt string list in database");
    size_t n = json_array_size(a);
    char **v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n && v == NULL) {
        json_decref(a);
        MF_BAIL(MF_ERR_NOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        v[i] = strdup(s ? s : "");
        if (v[i] == NULL) {
            mf_strv_free(v, i);
            json_decref(a);
            MF_BAIL(MF_ERR_NOMEM);
        }
    }
    json_decref(a);
    *out = v;
    *n_out = n;
    return MF_RES_OK;
}

static mf_res row_to_entry(const struct ca_db_row *row, struct ca_entry *e)
{
    mf_res rc;
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", ca_db_col_text(row, 0));
    e->spiffe_id = strdup(ca_db_col_text(row, 1));
    e->parent_id = strdup(ca_db_col_text(row, 2));
    MF_ENSURE_OUT(e->spiffe_id != NULL && e->parent_id != NULL, MF_ERR_NOMEM);
    MF_TRY_OUT(json_to_strs(ca_db_col_text(row, 3), &e->selectors, &e->n_selectors));
    e->ttl = ca_db_col_int(row, 4);
    MF_TRY_OUT(json_to_strs(ca_db_col_text(row, 5), &e->dns_names, &e->n_dns));
    const char *hint = ca_db_col_text_or_null(row, 6);
    if (hint != NULL) {
        e->hint = strdup(hint);
        MF_ENSURE_OUT(e->hint != NULL, MF_ERR_NOMEM);
    }
    e->revision = ca_db_col_int(row, 7);
    e->created_at = ca_db_col_int(row, 8);
    MF_TRY_OUT(json_to_strs(ca_db_col_text(row, 9), &e->federates_with, &e->n_fed));
    return MF_RES_OK;
out:
    ca_entry_cleanup(e);
    return rc;
}

#define ENTRY_COLS                                                                      \
    "id, spiffe_id, parent_id, selectors, ttl, dns_names, hint, revision, created_at, " \
    "federates_with"
/* The revision just taken by bump_revision, inside the same transaction. */
#define CUR_REVISION "(SELECT value FROM meta WHERE key = 'revision')"

/* A write that moves the registry revision, in one transaction: bump, the
 * statement, commit, publish. With must_change, a statement that changed
 * no row is MF_ERR_POLICY_NOT_FOUND ("no <what> <key>"). On success *rev
 * (may be NULL) is the new revision. */
static mf_res write_rev(struct ca_store *st, const char *what, const char *key, bool must_change,
                        const char *sql, const struct ca_db_val *args, size_t n_args, int64_t *rev)
{
    mf_res rc;
    int64_t r = 0;
    uint64_t changed = 0;
    MF_TRY(ca_store_begin(st));
    MF_TRY_OUT(bump_revision(st, &r));
    MF_TRY_OUT(run(st, what, sql, args, n_args, NULL, NULL, &changed));
    MF_ENSURE_OUT_MSG(!must_change || changed > 0, MF_ERR_POLICY_NOT_FOUND, "no %s %s", what, key);
    /* dropped before the commit, whatever its outcome: a commit cut short
     * by a lost connection may still have landed (a write refused before
     * this point changed nothing, and keeps what was recalled) */
    if (strcmp(what, "entry") == 0) {
        ca_recall_forget_entries(st->recall);
    } else if (strcmp(what, "agent") == 0) {
        ca_recall_forget_agent(st->recall, key);
    }
    MF_TRY(write_commit(st, r));
    if (rev != NULL) {
        *rev = r;
    }
    return MF_RES_OK;
out:
    ca_store_rollback(st);
    return rc;
}

/* An entry's selectors and DNS names as the JSON arrays the table keeps
 * (both freed by the caller, also on failure). */
static mf_res entry_lists(const struct ca_entry *e, char **sels, char **dns, char **fed)
{
    MF_TRY(strs_to_json(e->selectors, e->n_selectors, sels));
    MF_TRY(strs_to_json(e->federates_with, e->n_fed, fed));
    return strs_to_json(e->dns_names, e->n_dns, dns);
}

mf_res ca_store_entry_create(struct ca_store *st, struct ca_entry *e)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(e);
    char *sels = NULL, *dns = NULL, *fed = NULL;
    uint8_t rnd[16];
    MF_TRY_OUT(mf_random(rnd, sizeof(rnd)));
    mf_hex(rnd, sizeof(rnd), e->id);
    MF_TRY_OUT(entry_lists(e, &sels, &dns, &fed));
    rc = write_rev(st, "entry", e->id, false,
                   "INSERT INTO entries (" ENTRY_COLS ") "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, " CUR_REVISION ", $8, $9)",
                   ARGS(ca_db_text(e->id), ca_db_text(e->spiffe_id), ca_db_text(e->parent_id),
                        ca_db_text(sels), ca_db_int(e->ttl), ca_db_text(dns), ca_db_text(e->hint),
                        ca_db_int(e->created_at), ca_db_text(fed)),
                   &e->revision);
    if (rc.err == MF_ERR_POLICY_DUPLICATE) {
        rc = MF_RAISE_MSG(MF_ERR_POLICY_DUPLICATE,
                          "an entry for %s with parent %s and the same selectors exists",
                          e->spiffe_id, e->parent_id);
    }
out:
    free(sels);
    free(dns);
    free(fed);
    return rc;
}

mf_res ca_store_entry_update(struct ca_store *st, struct ca_entry *e)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(e);
    char *sels = NULL, *dns = NULL, *fed = NULL;
    MF_TRY_OUT(entry_lists(e, &sels, &dns, &fed));
    rc = write_rev(st, "entry", e->id, true,
                   "UPDATE entries SET selectors = $1, ttl = $2, dns_names = $3, hint = $4, "
                   "federates_with = $6, revision = " CUR_REVISION " WHERE id = $5",
                   ARGS(ca_db_text(sels), ca_db_int(e->ttl), ca_db_text(dns), ca_db_text(e->hint),
                        ca_db_text(e->id), ca_db_text(fed)),
                   &e->revision);
    if (rc.err == MF_ERR_POLICY_DUPLICATE) {
        rc = MF_RAISE_MSG(MF_ERR_POLICY_DUPLICATE,
                          "another entry for %s with the same parent and selectors exists",
                          e->spiffe_id);
    }
out:
    free(sels);
    free(dns);
    free(fed);
    return rc;
}

mf_res ca_store_entry_delete(struct ca_store *st, const char *id)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(id);
    return write_rev(st, "entry", id, true, "DELETE FROM entries WHERE id = $1",
                     ARGS(ca_db_text(id)), NULL);
}

/* Collects entries into a ca_db_vec of struct ca_entry. */
static mf_res collect_entry(void *cls, const struct ca_db_row *row)
{
    struct ca_db_vec *vec = cls;
    struct ca_entry *e = ca_db_vec_push(vec);
    MF_TRY_PTR(e, MF_ERR_NOMEM);
    mf_res r = row_to_entry(row, e);
    if (!mf_ok(r)) {
        vec->n--;
    }
    return r;
}

mf_res ca_store_entry_get(struct ca_store *st, const char *id, struct ca_entry *out)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(id);
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    struct ca_db_vec vec = {.size = sizeof(struct ca_entry)};
    mf_res rc = run_locked(st, "entry", "SELECT " ENTRY_COLS " FROM entries WHERE id = $1",
                           ARGS(ca_db_text(id)), collect_entry, &vec, NULL);
    if (mf_ok(rc) && vec.n == 0) {
        rc = MF_RAISE_MSG(MF_ERR_POLICY_NOT_FOUND, "no entry %s", id);
    }
    if (mf_ok(rc)) {
        *out = *(struct ca_entry *)vec.v;
        vec.n = 0;
    }
    ca_entries_free(vec.v, vec.n);
    return rc;
}

/* Logs, at most every 10 s, that an answer came from the recall. */
static void recalled(struct ca_store *st, mf_res why, const char *what, const char *key,
                     int64_t age_ms)
{
    int64_t now = mf_mono_ms();
    int64_t last = __atomic_load_n(&st->recall_logged_ms, __ATOMIC_RELAXED);
    if (last != 0 && now - last < 10000) {
        return;
    }
    if (__atomic_compare_exchange_n(&st->recall_logged_ms, &last, now, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
        mf_log_warn_r(why, "registry unreachable: %s of %s answered from what it said %lld ms ago",
                      what, key, (long long)age_ms);
    }
}

static mf_res ca_store_recall_put_agent(struct ca_store *st, const struct ca_agent *a, int64_t now)
{
    mf_res r = ca_recall_put_agent(st->recall, a, now);
    if (!mf_ok(r)) {
        mf_log_warn_r(r, "cannot remember the record of agent %s", a->spiffe_id);
    }
    return r;
}

/* The end of ca_store_entry_list for one parent with a recall: a fresh
 * answer is remembered, and an unreachable database answered from the
 * last one when it is recent enough. */
static mf_res recall_entries(struct ca_store *st, const char *parent, mf_res rc,
                             struct ca_db_vec *vec, struct ca_entry **out, size_t *n_out)
{
    int64_t now = mf_mono_ms(), age = 0;
    if (mf_ok(rc)) {
        mf_res p = ca_recall_put_entries(st->recall, parent, vec->v, vec->n, now);
        if (!mf_ok(p)) {
            mf_log_warn_r(p, "cannot remember the entries of %s", parent);
        }
        *out = vec->v;
        *n_out = vec->n;
        return MF_RES_OK;
    }
    ca_entries_free(vec->v, vec->n);
    bool found = false;
    if (rc.err == MF_ERR_IO_CONNECT &&
        mf_ok(ca_recall_entries(st->recall, parent, now, out, n_out, &age, &found)) && found) {
        recalled(st, rc, "entries", parent, age);
        return MF_RES_OK;
    }
    return rc;
}

mf_res ca_store_entry_list(struct ca_store *st, const char *parent_id, struct ca_entry **out,
                           size_t *n_out)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(n_out);
    *out = NULL;
    *n_out = 0;
    struct ca_db_vec vec = {.size = sizeof(struct ca_entry)};
    mf_res rc;
    if (parent_id != NULL) {
        rc = run_locked(st, "entries",
                        "SELECT " ENTRY_COLS " FROM entries WHERE parent_id = $1 ORDER BY id",
                        ARGS(ca_db_text(parent_id)), collect_entry, &vec, NULL);
        if (st->recall != NULL) {
            return recall_entries(st, parent_id, rc, &vec, out, n_out);
        }
    } else {
        rc = run_locked(st, "entries", "SELECT " ENTRY_COLS " FROM entries ORDER BY id", NULL, 0,
                        collect_entry, &vec, NULL);
    }
    if (!mf_ok(rc)) {
        ca_entries_free(vec.v, vec.n);
        return rc;
    }
    *out = vec.v;
    *n_out = vec.n;
    return MF_RES_OK;
}

/* ---- join tokens ----------------------------------------------------------- */

mf_res ca_store_token_add(struct ca_store *st, const uint8_t hash[32], const char *spiffe_id,
                          int64_t expires_at)
{
    MF_ENSURE_REF(st);
    return run_locked(
        st, "token", "INSERT INTO join_tokens (hash, spiffe_id, expires_at) VALUES ($1, $2, $3)",
        ARGS(ca_db_blob(hash, 32), ca_db_text(spiffe_id), ca_db_int(expires_at)), NULL, NULL, NULL);
}

/* What a token lookup found. */
struct token_row {
    const uint8_t *hash; /* the hash looked up */
    bool found, expired;
    int64_t now;
    char spiffe_id[MF_SPIFFE_ID_MAX + 1];
};

/* Row: hash, spiffe_id, expires_at. */
static mf_res token_found(void *cls, const struct ca_db_row *row)
{
    struct token_row *t = cls;
    size_t len = 0;
    const void *h = ca_db_col_blob(row, 0, &len);
    /* The lookup was by hash already; compare again in constant time so
     * that no code path depends on a byte-wise early exit. */
    if (h != NULL && len == 32 && mf_ct_eq(h, t->hash, 32)) {
        t->found = true;
        snprintf(t->spiffe_id, sizeof(t->spiffe_id), "%s", ca_db_col_text(row, 1));
        t->expired = ca_db_col_int(row, 2) <= t->now;
    }
    return MF_RES_OK;
}

static mf_res token_verdict(const struct token_row *t, char spiffe_id_out[MF_SPIFFE_ID_MAX + 1])
{
    MF_ENSURE_MSG(t->found, MF_ERR_AUTH_TOKEN, "join token unknown or already used");
    MF_ENSURE_MSG(!t->expired, MF_ERR_AUTH_TOKEN, "join token expired");
    memcpy(spiffe_id_out, t->spiffe_id, sizeof(t->spiffe_id));
    return MF_RES_OK;
}

mf_res ca_store_token_consume(struct ca_store *st, const uint8_t hash[32], int64_t now,
                              char spiffe_id_out[MF_SPIFFE_ID_MAX + 1])
{
    mf_res rc;
    MF_ENSURE_REF(st);
    spiffe_id_out[0] = '\0';
    struct token_row t = {.hash = hash, .now = now};
    MF_TRY(ca_store_begin(st));
    /* Spend it (single use: the row is gone when this returns it, so a
     * concurrent spend finds nothing), then purge every expired token in
     * the same transaction. */
    MF_TRY_OUT(run(st, "token",
                   "DELETE FROM join_tokens WHERE hash = $1 RETURNING hash, spiffe_id, expires_at",
                   ARGS(ca_db_blob(hash, 32)), token_found, &t, NULL));
    MF_TRY_OUT(run(st, "token", "DELETE FROM join_tokens WHERE expires_at <= $1",
                   ARGS(ca_db_int(now)), NULL, NULL, NULL));
    MF_TRY(ca_store_commit(st));
    return token_verdict(&t, spiffe_id_out);
out:
    ca_store_rollback(st);
    return rc;
}

mf_res ca_store_token_peek(struct ca_store *st, const uint8_t hash[32], int64_t now,
                           char spiffe_id_out[MF_SPIFFE_ID_MAX + 1])
{
    MF_ENSURE_REF(st);
    spiffe_id_out[0] = '\0';
    struct token_row t = {.hash = hash, .now = now};
    MF_TRY(run_locked(st, "token",
                      "SELECT hash, spiffe_id, expires_at FROM join_tokens WHERE hash = $1",
                      ARGS(ca_db_blob(hash, 32)), token_found, &t, NULL));
    return token_verdict(&t, spiffe_id_out);
}

/* ---- agents ------------------------------------------------------------------ */

#define AGENT_COLS "spiffe_id, serial, expires_at, attested_at, last_seen, banned"

/* Collects agents into a ca_db_vec of struct ca_agent. */
static mf_res collect_agent(void *cls, const struct ca_db_row *row)
{
    struct ca_agent *a = ca_db_vec_push(cls);
    MF_TRY_PTR(a, MF_ERR_NOMEM);
    snprintf(a->spiffe_id, sizeof(a->spiffe_id), "%s", ca_db_col_text(row, 0));
    snprintf(a->serial, sizeof(a->serial), "%s", ca_db_col_text(row, 1));
    a->expires_at = ca_db_col_int(row, 2);
    a->attested_at = ca_db_col_int(row, 3);
    a->last_seen = ca_db_col_int(row, 4);
    a->banned = ca_db_col_int(row, 5) != 0;
    return MF_RES_OK;
}

static mf_res agent_get_locked(struct ca_store *st, const char *id, struct ca_agent *out)
{
    struct ca_db_vec vec = {.size = sizeof(struct ca_agent)};
    mf_res rc = run(st, "agent", "SELECT " AGENT_COLS " FROM agents WHERE spiffe_id = $1",
                    ARGS(ca_db_text(id)), collect_agent, &vec, NULL);
    if (mf_ok(rc) && vec.n == 0) {
        rc = MF_RAISE_MSG(MF_ERR_POLICY_NOT_FOUND, "no agent %s", id);
    }
    if (mf_ok(rc)) {
        *out = *(struct ca_agent *)vec.v;
    }
    free(vec.v);
    return rc;
}

mf_res ca_store_agent_issued(struct ca_store *st, const char *spiffe_id, const char *serial,
                             int64_t expires_at, int64_t now, bool attest)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    struct ca_agent a;
    int64_t rev = 0;
    MF_TRY(ca_store_begin(st));
    rc = agent_get_locked(st, spiffe_id, &a);
    if (mf_ok(rc)) {
        MF_ENSURE_OUT_MSG(!a.banned, MF_ERR_AUTH_BANNED, "agent %s is banned", spiffe_id);
    } else if (rc.err != MF_ERR_POLICY_NOT_FOUND || !attest) {
        goto out;
    }
    MF_TRY_OUT(bump_revision(st, &rev));
    if (attest) {
        MF_TRY_OUT(run(
            st, "agent",
            "INSERT INTO agents (" AGENT_COLS ") VALUES ($1, $2, $3, $4, $4, 0) "
            "ON CONFLICT (spiffe_id) DO UPDATE SET serial = excluded.serial, "
            "expires_at = excluded.expires_at, attested_at = excluded.attested_at, "
            "last_seen = excluded.last_seen",
            ARGS(ca_db_text(spiffe_id), ca_db_text(serial), ca_db_int(expires_at), ca_db_int(now)),
            NULL, NULL, NULL));
    } else {
        MF_TRY_OUT(run(
            st, "agent",
            "UPDATE agents SET serial = $1, expires_at = $2, last_seen = $3 "
            "WHERE spiffe_id = $4 AND banned = 0",
            ARGS(ca_db_text(serial), ca_db_int(expires_at), ca_db_int(now), ca_db_text(spiffe_id)),
            NULL, NULL, NULL));
    }
    return write_commit(st, rev);
out:
    ca_store_rollback(st);
    return rc;
}

mf_res ca_store_agent_get(struct ca_store *st, const char *spiffe_id, struct ca_agent *out)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(spiffe_id);
    MF_ENSURE_REF(out);
    lock(st);
    mf_res r = agent_get_locked(st, spiffe_id, out);
    unlock(st);
    if (st->recall == NULL) {
        return r;
    }
    int64_t now = mf_mono_ms(), age = 0;
    if (mf_ok(r)) {
        (void)ca_store_recall_put_agent(st, out, now);
    } else if (r.err == MF_ERR_IO_CONNECT &&
               ca_recall_agent(st->recall, spiffe_id, now, out, &age)) {
        recalled(st, r, "agent", spiffe_id, age);
        return MF_RES_OK;
    }
    return r;
}

mf_res ca_store_agent_list(struct ca_store *st, struct ca_agent **out, size_t *n_out)
{
    MF_ENSURE_REF(st);
    *out = NULL;
    *n_out = 0;
    struct ca_db_vec vec = {.size = sizeof(struct ca_agent)};
    mf_res rc = run_locked(st, "agents", "SELECT " AGENT_COLS " FROM agents ORDER BY spiffe_id",
                           NULL, 0, collect_agent, &vec, NULL);
    if (!mf_ok(rc)) {
        free(vec.v);
        return rc;
    }
    *out = vec.v;
    *n_out = vec.n;
    return MF_RES_OK;
}

mf_res ca_store_agent_ban(struct ca_store *st, const char *spiffe_id)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(spiffe_id);
    return write_rev(st, "agent", spiffe_id, true,
                     "UPDATE agents SET banned = 1 WHERE spiffe_id = $1",
                     ARGS(ca_db_text(spiffe_id)), NULL);
}

mf_res ca_store_agent_evict(struct ca_store *st, const char *spiffe_id)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(spiffe_id);
    return write_rev(st, "agent", spiffe_id, true, "DELETE FROM agents WHERE spiffe_id = $1",
                     ARGS(ca_db_text(spiffe_id)), NULL);
}

mf_res ca_store_agent_seen(struct ca_store *st, const char *spiffe_id, int64_t now)
{
    MF_ENSURE_REF(st);
    return run_locked(st, "agent", "UPDATE agents SET last_seen = $1 WHERE spiffe_id = $2",
                      ARGS(ca_db_int(now), ca_db_text(spiffe_id)), NULL, NULL, NULL);
}

/* ---- CA key journal ------------------------------------------------------------ */

mf_res ca_store_key_add(struct ca_store *st, const struct ca_key_rec *rec, const uint8_t *cert_der,
                        size_t cert_len, const uint8_t *jwt_pub, size_t jwt_pub_len)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(rec);
    MF_ENSURE(cert_len <= MF_MAX_CERT, MF_ERR_PROTO_TOO_LARGE);
    MF_ENSURE(jwt_pub_len <= MF_MAX_CERT, MF_ERR_PROTO_TOO_LARGE);
    struct ca_db_val pub =
        jwt_pub != NULL ? ca_db_blob(jwt_pub, jwt_pub_len) : (struct ca_db_val){.kind = CA_DB_NULL};
    mf_res r = run_locked(
        st, "ca key",
        "INSERT INTO ca_keys (id, state, not_before, not_after, cert, server_id, jwt_pub) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        ARGS(ca_db_text(rec->id), ca_db_int(rec->state), ca_db_int(rec->not_before),
             ca_db_int(rec->not_after), ca_db_blob(cert_der, cert_len),
             ca_db_text(rec->server[0] != '\0' ? rec->server : NULL), pub),
        NULL, NULL, NULL);
    return mf_ok(r) ? announce_locked(st) : r;
}

mf_res ca_store_key_put(struct ca_store *st, const struct ca_key_rec *rec, const uint8_t *cert_der,
                        size_t cert_len)
{
    return ca_store_key_add(st, rec, cert_der, cert_len, NULL, 0);
}

mf_res ca_store_key_claim(struct ca_store *st, const char *id, const char *server, bool *claimed)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(server);
    MF_ENSURE_REF(claimed);
    *claimed = false;
    uint64_t n = 0;
    mf_res r = run_locked(st, "ca key",
                          "UPDATE ca_keys SET server_id = $1 WHERE id = $2 AND server_id IS NULL",
                          ARGS(ca_db_text(server), ca_db_text(id)), NULL, NULL, &n);
    if (mf_ok(r)) {
        *claimed = n > 0;
    }
    return mf_ok(r) ? announce_locked(st) : r;
}

mf_res ca_store_key_set_jwt_pub(struct ca_store *st, const char *id, const uint8_t *der, size_t len)
{
    MF_ENSURE_REF(st);
    MF_ENSURE(len <= MF_MAX_CERT, MF_ERR_PROTO_TOO_LARGE);
    mf_res r = run_locked(st, "ca key",
                          "UPDATE ca_keys SET jwt_pub = $1 WHERE id = $2 AND jwt_pub IS NULL",
                          ARGS(ca_db_blob(der, len), ca_db_text(id)), NULL, NULL, NULL);
    return mf_ok(r) ? announce_locked(st) : r;
}

mf_res ca_store_key_set_state(struct ca_store *st, const char *id, enum ca_key_state state)
{
    MF_ENSURE_REF(st);
    mf_res r = run_locked(st, "ca key", "UPDATE ca_keys SET state = $1 WHERE id = $2",
                          ARGS(ca_db_int(state), ca_db_text(id)), NULL, NULL, NULL);
    return mf_ok(r) ? announce_locked(st) : r;
}

mf_res ca_store_key_delete(struct ca_store *st, const char *id)
{
    MF_ENSURE_REF(st);
    mf_res r = run_locked(st, "ca key", "DELETE FROM ca_keys WHERE id = $1", ARGS(ca_db_text(id)),
                          NULL, NULL, NULL);
    return mf_ok(r) ? announce_locked(st) : r;
}

/* Where ca_store_key_list puts its rows. */
struct key_rows {
    struct ca_key_rec *recs;
    uint8_t **ders;
    size_t *lens;
    size_t n;
};

/* Row: id, state, not_before, not_after, cert, server_id into rec (state
 * checked); the certificate is returned borrowed. */
static mf_res row_to_key(const struct ca_db_row *row, struct ca_key_rec *rec, const void **cert,
                         size_t *cert_len)
{
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->id, sizeof(rec->id), "%s", ca_db_col_text(row, 0));
    int64_t state = ca_db_col_int(row, 1);
    MF_ENSURE_MSG(state >= CA_KEY_PREPARED && state <= CA_KEY_RETIRED, MF_ERR_STATE,
                  "CA key %s has unknown state %lld", rec->id, (long long)state);
    rec->state = (enum ca_key_state)state;
    rec->not_before = ca_db_col_int(row, 2);
    rec->not_after = ca_db_col_int(row, 3);
    *cert = ca_db_col_blob(row, 4, cert_len);
    MF_ENSURE_MSG(*cert != NULL && *cert_len > 0, MF_ERR_STATE, "CA key %s has no certificate",
                  rec->id);
    const char *srv = ca_db_col_text(row, 5);
    MF_ENSURE_MSG(strlen(srv) < sizeof(rec->server), MF_ERR_STATE,
                  "CA key %s names a server id that is too long", rec->id);
    memcpy(rec->server, srv, strlen(srv) + 1);
    return MF_RES_OK;
}

static mf_res collect_key(void *cls, const struct ca_db_row *row)
{
    struct key_rows *k = cls;
    MF_ENSURE_MSG(k->n < CA_KEYS_MAX, MF_ERR_STATE, "more than %d CA keys in the journal",
                  CA_KEYS_MAX);
    struct ca_key_rec *rec = &k->recs[k->n];
    const void *blob = NULL;
    size_t len = 0;
    MF_TRY(row_to_key(row, rec, &blob, &len));
    k->ders[k->n] = malloc(len);
    MF_TRY_PTR(k->ders[k->n], MF_ERR_NOMEM);
    memcpy(k->ders[k->n], blob, len);
    k->lens[k->n] = len;
    k->n++;
    return MF_RES_OK;
}

#define KEY_COLS "id, state, not_before, not_after, cert, server_id, jwt_pub"

mf_res ca_store_key_list(struct ca_store *st, struct ca_key_rec *recs, uint8_t **ders, size_t *lens,
                         size_t *n_out)
{
    MF_ENSURE_REF(st);
    *n_out = 0;
    struct key_rows k = {.recs = recs, .ders = ders, .lens = lens};
    mf_res rc =
        run_locked(st, "ca keys", "SELECT " KEY_COLS " FROM ca_keys ORDER BY not_before, id", NULL,
                   0, collect_key, &k, NULL);
    if (!mf_ok(rc)) {
        for (size_t i = 0; i < k.n; i++) {
            free(ders[i]);
            ders[i] = NULL;
        }
        return rc;
    }
    *n_out = k.n;
    return MF_RES_OK;
}

void ca_key_rows_free(struct ca_key_row *v, size_t n)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].cert);
        free(v[i].jwt_pub);
    }
    free(v);
}

static mf_res collect_key_row(void *cls, const struct ca_db_row *row)
{
    struct ca_db_vec *vec = cls;
    MF_ENSURE_MSG(vec->n < CA_BUNDLE_KEYS_MAX, MF_ERR_STATE, "more than %d CA keys in the registry",
                  CA_BUNDLE_KEYS_MAX);
    struct ca_key_row *kr = ca_db_vec_push(vec);
    MF_TRY_PTR(kr, MF_ERR_NOMEM);
    const void *cert = NULL;
    size_t len = 0;
    MF_TRY(row_to_key(row, &kr->rec, &cert, &len));
    kr->cert = malloc(len);
    MF_TRY_PTR(kr->cert, MF_ERR_NOMEM);
    memcpy(kr->cert, cert, len);
    kr->cert_len = len;
    size_t plen = 0;
    const void *pub = ca_db_col_blob(row, 6, &plen);
    if (pub != NULL && plen > 0) {
        kr->jwt_pub = malloc(plen);
        MF_TRY_PTR(kr->jwt_pub, MF_ERR_NOMEM);
        memcpy(kr->jwt_pub, pub, plen);
        kr->jwt_pub_len = plen;
    }
    return MF_RES_OK;
}

mf_res ca_store_key_rows(struct ca_store *st, struct ca_key_row **out, size_t *n_out)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(n_out);
    *out = NULL;
    *n_out = 0;
    struct ca_db_vec vec = {.size = sizeof(struct ca_key_row)};
    mf_res rc =
        run_locked(st, "ca keys", "SELECT " KEY_COLS " FROM ca_keys ORDER BY not_before, id", NULL,
                   0, collect_key_row, &vec, NULL);
    if (!mf_ok(rc)) {
        ca_key_rows_free(vec.v, vec.n);
        return rc;
    }
    *out = vec.v;
    *n_out = vec.n;
    return MF_RES_OK;
}

/* ---- federation ---------------------------------------------------------------- */

#define FED_COLS     "trust_domain, endpoint_url, profile, endpoint_spiffe_id, created_at, updated_at"
#define FBUNDLE_COLS "trust_domain, jwks, sequence, fetched_at, source"

static mf_res collect_fed(void *cls, const struct ca_db_row *row)
{
    struct ca_db_vec *vec = cls;
    struct ca_federation *f = ca_db_vec_push(vec);
    MF_TRY_PTR(f, MF_ERR_NOMEM);
    snprintf(f->td, sizeof(f->td), "%s", ca_db_col_text(row, 0));
    snprintf(f->url, sizeof(f->url), "%s", ca_db_col_text(row, 1));
    snprintf(f->profile, sizeof(f->profile), "%s", ca_db_col_text(row, 2));
    snprintf(f->endpoint_id, sizeof(f->endpoint_id), "%s", ca_db_col_text(row, 3));
    f->created_at = ca_db_col_int(row, 4);
    f->updated_at = ca_db_col_int(row, 5);
    return MF_RES_OK;
}

/* see ca_store.h */
mf_res ca_store_fed_put(struct ca_store *st, const struct ca_federation *f, bool create)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(f);
    mf_res rc;
    if (create) {
        rc = write_rev(st, "federation", f->td, false,
                       "INSERT INTO federations (" FED_COLS ") VALUES ($1, $2, $3, $4, $5, $5)",
                       ARGS(ca_db_text(f->td), ca_db_text(f->url), ca_db_text(f->profile),
                            ca_db_text(f->endpoint_id), ca_db_int(f->updated_at)),
                       NULL);
        if (rc.err == MF_ERR_POLICY_DUPLICATE) {
            rc = MF_RAISE_MSG(MF_ERR_POLICY_DUPLICATE,
                              "a federation relationship with %s exists (use federation update)",
                              f->td);
        }
        return rc;
    }
    return write_rev(st, "federation relationship with", f->td, true,
                     "UPDATE federations SET endpoint_url = $2, profile = $3, "
                     "endpoint_spiffe_id = $4, updated_at = $5 WHERE trust_domain = $1",
                     ARGS(ca_db_text(f->td), ca_db_text(f->url), ca_db_text(f->profile),
                          ca_db_text(f->endpoint_id), ca_db_int(f->updated_at)),
                     NULL);
}

/* see ca_store.h */
mf_res ca_store_fed_delete(struct ca_store *st, const char *td)
{
    mf_res rc;
    int64_t r = 0;
    uint64_t changed = 0;
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(td);
    /* the relationship and what it fetched go together (SPIFFE.md F14) */
    MF_TRY(ca_store_begin(st));
    MF_TRY_OUT(bump_revision(st, &r));
    MF_TRY_OUT(run(st, "federation", "DELETE FROM federations WHERE trust_domain = $1",
                   ARGS(ca_db_text(td)), NULL, NULL, &changed));
    MF_ENSURE_OUT_MSG(changed > 0, MF_ERR_POLICY_NOT_FOUND, "no federation relationship with %s",
                      td);
    MF_TRY_OUT(run(st, "foreign bundle", "DELETE FROM foreign_bundles WHERE trust_domain = $1",
                   ARGS(ca_db_text(td)), NULL, NULL, NULL));
    return write_commit(st, r);
out:
    ca_store_rollback(st);
    return rc;
}

/* see ca_store.h */
mf_res ca_store_fed_get(struct ca_store *st, const char *td, struct ca_federation *out)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(td);
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    struct ca_db_vec vec = {.size = sizeof(struct ca_federation)};
    mf_res rc =
        run_locked(st, "federation", "SELECT " FED_COLS " FROM federations WHERE trust_domain = $1",
                   ARGS(ca_db_text(td)), collect_fed, &vec, NULL);
    if (mf_ok(rc) && vec.n == 0) {
        rc = MF_RAISE_MSG(MF_ERR_POLICY_NOT_FOUND, "no federation relationship with %s", td);
    }
    if (mf_ok(rc)) {
        *out = *(struct ca_federation *)vec.v;
    }
    free(vec.v);
    return rc;
}

/* see ca_store.h */
mf_res ca_store_fed_list(struct ca_store *st, struct ca_federation **out, size_t *n_out)
{
    MF_ENSURE_REF(st);
    *out = NULL;
    *n_out = 0;
    struct ca_db_vec vec = {.size = sizeof(struct ca_federation)};
    mf_res rc =
        run_locked(st, "federations", "SELECT " FED_COLS " FROM federations ORDER BY trust_domain",
                   NULL, 0, collect_fed, &vec, NULL);
    if (!mf_ok(rc)) {
        free(vec.v);
        return rc;
    }
    *out = vec.v;
    *n_out = vec.n;
    return MF_RES_OK;
}

void ca_fbundles_free(struct ca_foreign_bundle *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].jwks);
    }
    free(v);
}

static mf_res collect_fbundle(void *cls, const struct ca_db_row *row)
{
    struct ca_db_vec *vec = cls;
    struct ca_foreign_bundle *b = ca_db_vec_push(vec);
    MF_TRY_PTR(b, MF_ERR_NOMEM);
    snprintf(b->td, sizeof(b->td), "%s", ca_db_col_text(row, 0));
    b->jwks = strdup(ca_db_col_text(row, 1));
    if (b->jwks == NULL) {
        vec->n--;
        MF_BAIL(MF_ERR_NOMEM);
    }
    b->sequence = ca_db_col_int(row, 2);
    b->fetched_at = ca_db_col_int(row, 3);
    snprintf(b->source, sizeof(b->source), "%s", ca_db_col_text(row, 4));
    return MF_RES_OK;
}

/* see ca_store.h */
mf_res ca_store_fbundle_put(struct ca_store *st, const struct ca_foreign_bundle *b)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(b);
    MF_ENSURE_REF(b->jwks);
    return write_rev(st, "foreign bundle", b->td, false,
                     "INSERT INTO foreign_bundles (" FBUNDLE_COLS ") VALUES ($1, $2, $3, $4, $5) "
                     "ON CONFLICT (trust_domain) DO UPDATE SET jwks = excluded.jwks, "
                     "sequence = excluded.sequence, fetched_at = excluded.fetched_at, "
                     "source = excluded.source",
                     ARGS(ca_db_text(b->td), ca_db_text(b->jwks), ca_db_int(b->sequence),
                          ca_db_int(b->fetched_at), ca_db_text(b->source)),
                     NULL);
}

/* see ca_store.h */
mf_res ca_store_fbundle_delete(struct ca_store *st, const char *td)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(td);
    return write_rev(st, "foreign bundle for", td, true,
                     "DELETE FROM foreign_bundles WHERE trust_domain = $1", ARGS(ca_db_text(td)),
                     NULL);
}

/* see ca_store.h */
mf_res ca_store_fbundle_list(struct ca_store *st, const char *td, struct ca_foreign_bundle **out,
                             size_t *n_out)
{
    MF_ENSURE_REF(st);
    *out = NULL;
    *n_out = 0;
    struct ca_db_vec vec = {.size = sizeof(struct ca_foreign_bundle)};
    mf_res rc;
    if (td != NULL) {
        rc = run_locked(st, "foreign bundle",
                        "SELECT " FBUNDLE_COLS " FROM foreign_bundles WHERE trust_domain = $1",
                        ARGS(ca_db_text(td)), collect_fbundle, &vec, NULL);
        if (mf_ok(rc) && vec.n == 0) {
            rc = MF_RAISE_MSG(MF_ERR_POLICY_NOT_FOUND, "no bundle for trust domain %s", td);
        }
    } else {
        rc = run_locked(st, "foreign bundles",
                        "SELECT " FBUNDLE_COLS " FROM foreign_bundles ORDER BY trust_domain", NULL,
                        0, collect_fbundle, &vec, NULL);
    }
    if (!mf_ok(rc)) {
        ca_fbundles_free(vec.v, vec.n);
        return rc;
    }
    *out = vec.v;
    *n_out = vec.n;
    return MF_RES_OK;
}

/* ---- copying a registry ------------------------------------------------------ */

/* Every table of the registry and its columns, in an order that needs no
 * deferred constraint. */
static const struct {
    const char *table;
    const char *cols;
    size_t n_cols;
} copy_tables[] = {
    {"meta", "key, value", 2},
    {"entries", ENTRY_COLS, 10},
    {"agents", AGENT_COLS, 6},
    {"join_tokens", "hash, spiffe_id, expires_at", 3},
    {"ca_keys", KEY_COLS, 7},
    {"federations", FED_COLS, 6},
    {"foreign_bundles", FBUNDLE_COLS, 5},
};

struct copy_ctx {
    struct ca_store *dst;
    char insert[512];
    size_t n_cols;
    uint64_t rows;
};

static mf_res copy_row(void *cls, const struct ca_db_row *row)
{
    struct copy_ctx *c = cls;
    MF_ENSURE_MSG(row->n == c->n_cols, MF_ERR_STATE, "a source row has %zu columns, not %zu",
                  row->n, c->n_cols);
    MF_TRY(run(c->dst, "copy", c->insert, row->col, row->n, NULL, NULL, NULL));
    c->rows++;
    return MF_RES_OK;
}

static mf_res count_rows(struct ca_store *st, const char *table, int64_t *n)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    *n = 0;
    return run(st, "copy", sql, NULL, 0, get_int, n, NULL);
}

mf_res ca_store_copy(struct ca_store *src, struct ca_store *dst, uint64_t counts[CA_STORE_TABLES])
{
    mf_res rc;
    MF_ENSURE_REF(src);
    MF_ENSURE_REF(dst);
    MF_ENSURE(src != dst, MF_ERR_USAGE_ARG);
    MF_TRY(ca_store_begin(dst));
    for (size_t t = 0; t < CA_STORE_TABLES; t++) {
        int64_t n = 0;
        MF_TRY_OUT(count_rows(dst, copy_tables[t].table, &n));
        MF_ENSURE_OUT_MSG(n == 0 || (t == 0 && n <= 1), MF_ERR_POLICY_DUPLICATE,
                          "the destination registry is not empty (%lld rows in %s): copy only "
                          "into a new one",
                          (long long)n, copy_tables[t].table);
    }
    /* a fresh registry may hold its revision counter already */
    MF_TRY_OUT(run(dst, "copy", "DELETE FROM meta", NULL, 0, NULL, NULL, NULL));
    for (size_t t = 0; t < CA_STORE_TABLES; t++) {
        struct copy_ctx c = {.dst = dst, .n_cols = copy_tables[t].n_cols};
        size_t o = (size_t)snprintf(c.insert, sizeof(c.insert), "INSERT INTO %s (%s) VALUES (",
                                    copy_tables[t].table, copy_tables[t].cols);
        for (size_t i = 0; i < c.n_cols && o < sizeof(c.insert); i++) {
            o += (size_t)snprintf(c.insert + o, sizeof(c.insert) - o, "%s$%zu", i ? ", " : "",
                                  i + 1);
        }
        MF_ENSURE_OUT(o + 2 < sizeof(c.insert), MF_ERR_INTERNAL);
        memcpy(c.insert + o, ")", 2);
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT %s FROM %s", copy_tables[t].cols, copy_tables[t].table);
        lock(src);
        rc = run(src, "copy", sql, NULL, 0, copy_row, &c, NULL);
        unlock(src);
        MF_TRY_OUT(rc);
        if (counts != NULL) {
            counts[t] = c.rows;
        }
    }
    int64_t rev = 0;
    MF_TRY_OUT(meta_get_locked(dst, "revision", &rev));
    return write_commit(dst, rev);
out:
    ca_store_rollback(dst);
    return rc;
}

const char *ca_store_table_name(size_t i)
{
    return i < CA_STORE_TABLES ? copy_tables[i].table : "";
}

mf_res ca_store_counts(struct ca_store *st, int64_t *entries, int64_t *agents)
{
    MF_ENSURE_REF(st);
    lock(st);
    mf_res r = count_rows(st, "entries", entries);
    if (mf_ok(r)) {
        r = count_rows(st, "agents", agents);
    }
    unlock(st);
    return r;
}
