/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_store: the registry in SQLite (see ca_store.h for durability and
 * threading).
 *
 * All SQL uses bound parameters; no value is ever pasted into SQL text.
 * The mutex is recursive so that ca_store_begin/commit can wrap several
 * calls from one thread in a single transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "api/mf_json.h"
#include "api/mf_mem.h"
#include "api/mf_spiffeid.h"
#include "api/mf_x509.h"
#include "ca/ca_store.h"

#define DB_NAME "mayfly-ca.db"
#define BUSY_TIMEOUT_MS 5000

struct ca_store {
    sqlite3 *db;             /* protected by mu */
    pthread_mutex_t mu;      /* recursive; serialises every use of db */
    int64_t revision;        /* protected by mu; mirrors meta 'revision' */
    int tx_depth;            /* protected by mu; >0 inside ca_store_begin */
};

/* Migration i takes the schema from version i to version i + 1. Never edit
 * a released migration; add a new one. */
static const char *const migrations[] = {
    "CREATE TABLE entries ("
    " id TEXT PRIMARY KEY,"
    " spiffe_id TEXT NOT NULL,"
    " parent_id TEXT NOT NULL,"
    " selectors TEXT NOT NULL," /* canonical JSON array, sorted */
    " ttl INTEGER NOT NULL,"
    " dns_names TEXT NOT NULL," /* JSON array */
    " hint TEXT,"
    " revision INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " UNIQUE (spiffe_id, parent_id, selectors));"
    "CREATE INDEX entries_parent ON entries (parent_id);"
    "CREATE TABLE agents ("
    " spiffe_id TEXT PRIMARY KEY,"
    " serial TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " attested_at INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL,"
    " banned INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE join_tokens ("
    " hash BLOB PRIMARY KEY," /* SHA-256 of the token; the token is never stored */
    " spiffe_id TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL);"
    "CREATE TABLE ca_keys ("
    " id TEXT PRIMARY KEY,"
    " state INTEGER NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " cert BLOB NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
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

static mf_res db_fail(struct ca_store *st, int rc, const char *what)
{
    const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        MF_BAIL_MSG(MF_ERR_POLICY_DUPLICATE, "%s: already exists", what);
    case SQLITE_FULL:
        MF_BAIL_MSG(MF_ERR_IO_NOSPACE, "%s: %s", what, msg);
    case SQLITE_IOERR: {
        /* A file size limit (RLIMIT_FSIZE: EFBIG) or a disk that filled in
         * the middle of a write (ENOSPC) means "no space", not a broken
         * disk. SQLite keeps the errno only until its next system call, so
         * a finite file size limit counts as the cause too. */
        int e = st->db != NULL ? sqlite3_system_errno(st->db) : 0;
        struct rlimit fl;
        bool limited = getrlimit(RLIMIT_FSIZE, &fl) == 0 && fl.rlim_cur != RLIM_INFINITY;
        if (e == ENOSPC || e == EFBIG || limited) {
            MF_BAIL_MSG(MF_ERR_IO_NOSPACE, "%s: %s (%s)", what, msg,
                        e == ENOSPC ? "disk full" : "file size limit reached");
        }
        MF_BAIL_MSG(MF_ERR_IO, "%s: %s", what, msg);
    }
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        MF_BAIL_MSG(MF_ERR_IO_TIMEOUT, "%s: %s", what, msg);
    case SQLITE_NOMEM:
        MF_BAIL(MF_ERR_NOMEM);
    default:
        MF_BAIL_MSG(MF_ERR_IO, "%s: %s", what, msg);
    }
}

static mf_res exec(struct ca_store *st, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        sqlite3_free(err);
        return db_fail(st, rc, "sqlite");
    }
    return MF_RES_OK;
}

static mf_res prep(struct ca_store *st, const char *sql, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return db_fail(st, rc, "prepare");
    }
    return MF_RES_OK;
}

/* ---- transactions --------------------------------------------------------- */

mf_res ca_store_begin(struct ca_store *st)
{
    MF_ENSURE_REF(st);
    lock(st);
    if (st->tx_depth == 0) {
        /* IMMEDIATE takes the write lock now, so a read-then-write sequence
         * (token spend) cannot interleave with another writer. */
        mf_res r = exec(st, "BEGIN IMMEDIATE");
        if (!mf_ok(r)) {
            unlock(st);
            return r;
        }
    }
    st->tx_depth++;
    return MF_RES_OK;
}

mf_res ca_store_commit(struct ca_store *st)
{
    MF_ENSURE_REF(st);
    mf_res r = MF_RES_OK;
    if (--st->tx_depth == 0) {
        r = exec(st, "COMMIT");
        if (!mf_ok(r)) {
            char *err = NULL;
            (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, &err);
            sqlite3_free(err);
        }
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
        char *err = NULL;
        (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, &err);
        sqlite3_free(err);
    }
    unlock(st);
}

/* ---- meta ----------------------------------------------------------------- */

static mf_res meta_get_locked(struct ca_store *st, const char *key, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    *out = 0;
    MF_TRY(prep(st, "SELECT value FROM meta WHERE key = ?", &s));
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
    } else if (rc != SQLITE_DONE) {
        sqlite3_finalize(s);
        return db_fail(st, rc, "meta");
    }
    sqlite3_finalize(s);
    return MF_RES_OK;
}

static mf_res meta_set_locked(struct ca_store *st, const char *key, int64_t v)
{
    sqlite3_stmt *s = NULL;
    MF_TRY(prep(st, "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &s));
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, v);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        return db_fail(st, rc, "meta");
    }
    return MF_RES_OK;
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
    unlock(st);
    return r;
}

/* Inside a transaction: the next registry revision. st->revision is only
 * moved once the transaction commits (see bump_commit). */
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

/* ---- open / migrate ------------------------------------------------------- */

static mf_res migrate(struct ca_store *st)
{
    mf_res rc;
    sqlite3_stmt *s = NULL;
    int version = 0;
    MF_TRY(exec(st, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    MF_TRY(ca_store_begin(st));
    MF_TRY_OUT(prep(st, "SELECT MAX(version) FROM schema_version", &s));
    if (sqlite3_step(s) == SQLITE_ROW) {
        version = sqlite3_column_int(s, 0);
    }
    sqlite3_finalize(s);
    s = NULL;
    MF_ENSURE_OUT_MSG(version <= SCHEMA_VERSION, MF_ERR_STATE,
                      "database schema version %d is newer than this mayfly-ca (%d)", version,
                      SCHEMA_VERSION);
    for (int v = version; v < SCHEMA_VERSION; v++) {
        MF_TRY_OUT(exec(st, migrations[v]));
    }
    if (version < SCHEMA_VERSION) {
        MF_TRY_OUT(exec(st, "DELETE FROM schema_version"));
        MF_TRY_OUT(prep(st, "INSERT INTO schema_version (version) VALUES (?)", &s));
        sqlite3_bind_int(s, 1, SCHEMA_VERSION);
        int r = sqlite3_step(s);
        MF_ENSURE_OUT(r == SQLITE_DONE, MF_ERR_IO);
    }
    rc = ca_store_commit(st);
    sqlite3_finalize(s);
    return rc;
out:
    sqlite3_finalize(s);
    ca_store_rollback(st);
    return rc;
}

mf_res ca_store_open(const char *data_dir, struct ca_store **out)
{
    mf_res rc;
    MF_ENSURE_REF(data_dir);
    MF_ENSURE_REF(out);
    *out = NULL;
    char path[4096];
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
    int n = snprintf(path, sizeof(path), "%s/%s", data_dir, DB_NAME);
    MF_ENSURE_OUT(n > 0 && (size_t)n < sizeof(path), MF_ERR_USAGE_ARG);

    /* Create the file 0600 ourselves, before SQLite does with its own mode. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    MF_ENSURE_OUT_MSG(fd >= 0, MF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    close(fd);

    int r = sqlite3_open_v2(path, &st->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                            NULL);
    if (r != SQLITE_OK) {
        rc = db_fail(st, r, "open database");
        goto out;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    MF_TRY_OUT(exec(st, "PRAGMA journal_mode = WAL"));
    MF_TRY_OUT(exec(st, "PRAGMA synchronous = FULL"));
    MF_TRY_OUT(exec(st, "PRAGMA foreign_keys = ON"));
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

void ca_store_close(struct ca_store *st)
{
    if (st == NULL) {
        return;
    }
    if (st->db != NULL) {
        sqlite3_close_v2(st->db);
    }
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* ---- entries --------------------------------------------------------------- */

void ca_entry_cleanup(struct ca_entry *e)
{
    if (e == NULL) {
        return;
    }
    free(e->spiffe_id);
    free(e->parent_id);
    for (size_t i = 0; i < e->n_selectors; i++) {
        free(e->selectors[i]);
    }
    free(e->selectors);
    for (size_t i = 0; i < e->n_dns; i++) {
        free(e->dns_names[i]);
    }
    free(e->dns_names);
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

static mf_res dup_strs(char *const *src, size_t n, char ***out)
{
    *out = NULL;
    if (n == 0) {
        return MF_RES_OK;
    }
    char **v = calloc(n, sizeof(*v));
    MF_TRY_PTR(v, MF_ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup(src[i]);
        if (v[i] == NULL) {
            for (size_t j = 0; j < i; j++) {
                free(v[j]);
            }
            free(v);
            MF_BAIL(MF_ERR_NOMEM);
        }
    }
    *out = v;
    return MF_RES_OK;
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
    MF_TRY_OUT(dup_strs(src->selectors, src->n_selectors, &e.selectors));
    e.n_selectors = src->n_selectors;
    MF_TRY_OUT(dup_strs(src->dns_names, src->n_dns, &e.dns_names));
    e.n_dns = src->n_dns;
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
            for (size_t j = 0; j < i; j++) {
                free(v[j]);
            }
            free(v);
            json_decref(a);
            MF_BAIL(MF_ERR_NOMEM);
        }
    }
    json_decref(a);
    *out = v;
    *n_out = n;
    return MF_RES_OK;
}

static mf_res row_to_entry(sqlite3_stmt *s, struct ca_entry *e)
{
    mf_res rc;
    memset(e, 0, sizeof(*e));
    const char *id = (const char *)sqlite3_column_text(s, 0);
    snprintf(e->id, sizeof(e->id), "%s", id ? id : "");
    e->spiffe_id = strdup((const char *)sqlite3_column_text(s, 1));
    e->parent_id = strdup((const char *)sqlite3_column_text(s, 2));
    MF_ENSURE_OUT(e->spiffe_id != NULL && e->parent_id != NULL, MF_ERR_NOMEM);
    MF_TRY_OUT(json_to_strs((const char *)sqlite3_column_text(s, 3), &e->selectors,
                            &e->n_selectors));
    e->ttl = sqlite3_column_int64(s, 4);
    MF_TRY_OUT(json_to_strs((const char *)sqlite3_column_text(s, 5), &e->dns_names, &e->n_dns));
    if (sqlite3_column_type(s, 6) != SQLITE_NULL) {
        e->hint = strdup((const char *)sqlite3_column_text(s, 6));
        MF_ENSURE_OUT(e->hint != NULL, MF_ERR_NOMEM);
    }
    e->revision = sqlite3_column_int64(s, 7);
    e->created_at = sqlite3_column_int64(s, 8);
    return MF_RES_OK;
out:
    ca_entry_cleanup(e);
    return rc;
}

#define ENTRY_COLS "id, spiffe_id, parent_id, selectors, ttl, dns_names, hint, revision, created_at"

static void finish_revision(struct ca_store *st, int64_t rev)
{
    /* After a successful commit (which released the lock): publish the new
     * revision to readers. */
    lock(st);
    if (rev > st->revision) {
        st->revision = rev;
    }
    unlock(st);
}

mf_res ca_store_entry_create(struct ca_store *st, struct ca_entry *e)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(e);
    char *sels = NULL, *dns = NULL;
    sqlite3_stmt *s = NULL;
    uint8_t rnd[16];
    int64_t rev = 0;
    bool in_tx = false;
    MF_TRY_OUT(mf_random(rnd, sizeof(rnd)));
    mf_hex(rnd, sizeof(rnd), e->id);
    MF_TRY_OUT(strs_to_json(e->selectors, e->n_selectors, &sels));
    MF_TRY_OUT(strs_to_json(e->dns_names, e->n_dns, &dns));
    MF_TRY_OUT(ca_store_begin(st));
    in_tx = true;
    MF_TRY_OUT(bump_revision(st, &rev));
    MF_TRY_OUT(prep(st, "INSERT INTO entries (" ENTRY_COLS ") VALUES (?,?,?,?,?,?,?,?,?)", &s));
    e->revision = rev;
    sqlite3_bind_text(s, 1, e->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, e->spiffe_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, e->parent_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, sels, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, e->ttl);
    sqlite3_bind_text(s, 6, dns, -1, SQLITE_STATIC);
    if (e->hint != NULL) {
        sqlite3_bind_text(s, 7, e->hint, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(s, 7);
    }
    sqlite3_bind_int64(s, 8, rev);
    sqlite3_bind_int64(s, 9, e->created_at);
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "entry");
        if (rc.err == MF_ERR_POLICY_DUPLICATE) {
            rc = mf_err_raise(MF_ERR_POLICY_DUPLICATE, __FILE__, __LINE__, __func__,
                              "an entry for %s with parent %s and the same selectors exists",
                              e->spiffe_id, e->parent_id);
        }
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;
    in_tx = false;
    MF_TRY_OUT(ca_store_commit(st));
    finish_revision(st, rev);
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    if (in_tx) {
        ca_store_rollback(st);
    }
    free(sels);
    free(dns);
    return rc;
}

mf_res ca_store_entry_update(struct ca_store *st, struct ca_entry *e)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(e);
    char *sels = NULL, *dns = NULL;
    sqlite3_stmt *s = NULL;
    int64_t rev = 0;
    bool in_tx = false;
    MF_TRY_OUT(strs_to_json(e->selectors, e->n_selectors, &sels));
    MF_TRY_OUT(strs_to_json(e->dns_names, e->n_dns, &dns));
    MF_TRY_OUT(ca_store_begin(st));
    in_tx = true;
    MF_TRY_OUT(bump_revision(st, &rev));
    MF_TRY_OUT(prep(st,
                    "UPDATE entries SET selectors = ?, ttl = ?, dns_names = ?, hint = ?, "
                    "revision = ? WHERE id = ?",
                    &s));
    sqlite3_bind_text(s, 1, sels, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, e->ttl);
    sqlite3_bind_text(s, 3, dns, -1, SQLITE_STATIC);
    if (e->hint != NULL) {
        sqlite3_bind_text(s, 4, e->hint, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(s, 4);
    }
    sqlite3_bind_int64(s, 5, rev);
    sqlite3_bind_text(s, 6, e->id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "entry");
        if (rc.err == MF_ERR_POLICY_DUPLICATE) {
            rc = mf_err_raise(MF_ERR_POLICY_DUPLICATE, __FILE__, __LINE__, __func__,
                              "another entry for %s with the same parent and selectors exists",
                              e->spiffe_id);
        }
        goto out;
    }
    MF_ENSURE_OUT_MSG(sqlite3_changes(st->db) == 1, MF_ERR_POLICY_NOT_FOUND, "no entry %s",
                      e->id);
    e->revision = rev;
    sqlite3_finalize(s);
    s = NULL;
    in_tx = false;
    MF_TRY_OUT(ca_store_commit(st));
    finish_revision(st, rev);
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    if (in_tx) {
        ca_store_rollback(st);
    }
    free(sels);
    free(dns);
    return rc;
}

/* Runs a one-parameter write that bumps the revision; not_found when no row
 * changed. */
static mf_res write_one(struct ca_store *st, const char *sql, const char *arg, const char *what)
{
    mf_res rc;
    sqlite3_stmt *s = NULL;
    int64_t rev = 0;
    MF_TRY(ca_store_begin(st));
    MF_TRY_OUT(bump_revision(st, &rev));
    MF_TRY_OUT(prep(st, sql, &s));
    sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, what);
        goto out;
    }
    MF_ENSURE_OUT_MSG(sqlite3_changes(st->db) >= 1, MF_ERR_POLICY_NOT_FOUND, "no %s %s", what,
                      arg);
    sqlite3_finalize(s);
    MF_TRY(ca_store_commit(st));
    finish_revision(st, rev);
    return MF_RES_OK;
out:
    sqlite3_finalize(s);
    ca_store_rollback(st);
    return rc;
}

mf_res ca_store_entry_delete(struct ca_store *st, const char *id)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(id);
    return write_one(st, "DELETE FROM entries WHERE id = ?", id, "entry");
}

mf_res ca_store_entry_get(struct ca_store *st, const char *id, struct ca_entry *out)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(id);
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s = NULL;
    lock(st);
    MF_TRY_OUT(prep(st, "SELECT " ENTRY_COLS " FROM entries WHERE id = ?", &s));
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_DONE) {
        MF_BAIL_OUT(MF_ERR_POLICY_NOT_FOUND, "no entry %s", id);
    }
    if (r != SQLITE_ROW) {
        rc = db_fail(st, r, "entry");
        goto out;
    }
    MF_TRY_OUT(row_to_entry(s, out));
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    return rc;
}

mf_res ca_store_entry_list(struct ca_store *st, const char *parent_id, struct ca_entry **out,
                           size_t *n_out)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(n_out);
    *out = NULL;
    *n_out = 0;
    struct ca_entry *v = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s = NULL;
    lock(st);
    if (parent_id != NULL) {
        MF_TRY_OUT(prep(st, "SELECT " ENTRY_COLS " FROM entries WHERE parent_id = ? ORDER BY id",
                        &s));
        sqlite3_bind_text(s, 1, parent_id, -1, SQLITE_STATIC);
    } else {
        MF_TRY_OUT(prep(st, "SELECT " ENTRY_COLS " FROM entries ORDER BY id", &s));
    }
    for (;;) {
        int r = sqlite3_step(s);
        if (r == SQLITE_DONE) {
            break;
        }
        if (r != SQLITE_ROW) {
            rc = db_fail(st, r, "entries");
            goto out;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct ca_entry *nv = realloc(v, ncap * sizeof(*nv));
            MF_ENSURE_OUT(nv != NULL, MF_ERR_NOMEM);
            v = nv;
            cap = ncap;
        }
        MF_TRY_OUT(row_to_entry(s, &v[n]));
        n++;
    }
    *out = v;
    *n_out = n;
    v = NULL;
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    ca_entries_free(v, n);
    return rc;
}

/* ---- join tokens ----------------------------------------------------------- */

mf_res ca_store_token_add(struct ca_store *st, const uint8_t hash[32], const char *spiffe_id,
                          int64_t expires_at)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    sqlite3_stmt *s = NULL;
    lock(st);
    MF_TRY_OUT(prep(st, "INSERT INTO join_tokens (hash, spiffe_id, expires_at) VALUES (?,?,?)",
                    &s));
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, spiffe_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, expires_at);
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "token");
        goto out;
    }
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    return rc;
}

mf_res ca_store_token_consume(struct ca_store *st, const uint8_t hash[32], int64_t now,
                              char spiffe_id_out[MF_SPIFFE_ID_MAX + 1])
{
    mf_res rc;
    MF_ENSURE_REF(st);
    spiffe_id_out[0] = '\0';
    sqlite3_stmt *s = NULL;
    bool found = false, expired = false;
    char id[MF_SPIFFE_ID_MAX + 1] = "";
    MF_TRY(ca_store_begin(st));
    MF_TRY_OUT(prep(st, "SELECT hash, spiffe_id, expires_at FROM join_tokens WHERE hash = ?", &s));
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        const void *h = sqlite3_column_blob(s, 0);
        /* The lookup was by hash already; compare again in constant time so
         * that no code path depends on a byte-wise early exit. */
        if (h != NULL && sqlite3_column_bytes(s, 0) == 32 && mf_ct_eq(h, hash, 32)) {
            found = true;
            snprintf(id, sizeof(id), "%s", (const char *)sqlite3_column_text(s, 1));
            expired = sqlite3_column_int64(s, 2) <= now;
        }
    } else if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "token");
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;
    /* Spend it (single use) and purge every expired token in the same
     * transaction: a second attempt finds nothing. */
    MF_TRY_OUT(prep(st, "DELETE FROM join_tokens WHERE hash = ? OR expires_at <= ?", &s));
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "token");
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;
    MF_TRY(ca_store_commit(st));
    MF_ENSURE_MSG(found, MF_ERR_AUTH_TOKEN, "join token unknown or already used");
    MF_ENSURE_MSG(!expired, MF_ERR_AUTH_TOKEN, "join token expired");
    memcpy(spiffe_id_out, id, sizeof(id));
    return MF_RES_OK;
out:
    sqlite3_finalize(s);
    ca_store_rollback(st);
    return rc;
}

mf_res ca_store_token_peek(struct ca_store *st, const uint8_t hash[32], int64_t now,
                           char spiffe_id_out[MF_SPIFFE_ID_MAX + 1])
{
    mf_res rc;
    MF_ENSURE_REF(st);
    spiffe_id_out[0] = '\0';
    sqlite3_stmt *s = NULL;
    lock(st);
    MF_TRY_OUT(prep(st, "SELECT hash, spiffe_id, expires_at FROM join_tokens WHERE hash = ?", &s));
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r != SQLITE_ROW && r != SQLITE_DONE) {
        rc = db_fail(st, r, "token");
        goto out;
    }
    const void *h = r == SQLITE_ROW ? sqlite3_column_blob(s, 0) : NULL;
    MF_ENSURE_OUT_MSG(h != NULL && sqlite3_column_bytes(s, 0) == 32 && mf_ct_eq(h, hash, 32),
                      MF_ERR_AUTH_TOKEN, "join token unknown or already used");
    MF_ENSURE_OUT_MSG(sqlite3_column_int64(s, 2) > now, MF_ERR_AUTH_TOKEN, "join token expired");
    snprintf(spiffe_id_out, MF_SPIFFE_ID_MAX + 1, "%s", (const char *)sqlite3_column_text(s, 1));
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    return rc;
}

/* ---- agents ------------------------------------------------------------------ */

static void row_to_agent(sqlite3_stmt *s, struct ca_agent *a)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->spiffe_id, sizeof(a->spiffe_id), "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(a->serial, sizeof(a->serial), "%s", (const char *)sqlite3_column_text(s, 1));
    a->expires_at = sqlite3_column_int64(s, 2);
    a->attested_at = sqlite3_column_int64(s, 3);
    a->last_seen = sqlite3_column_int64(s, 4);
    a->banned = sqlite3_column_int(s, 5) != 0;
}

#define AGENT_COLS "spiffe_id, serial, expires_at, attested_at, last_seen, banned"

static mf_res agent_get_locked(struct ca_store *st, const char *id, struct ca_agent *out)
{
    sqlite3_stmt *s = NULL;
    MF_TRY(prep(st, "SELECT " AGENT_COLS " FROM agents WHERE spiffe_id = ?", &s));
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        row_to_agent(s, out);
        sqlite3_finalize(s);
        return MF_RES_OK;
    }
    sqlite3_finalize(s);
    if (r == SQLITE_DONE) {
        MF_BAIL_MSG(MF_ERR_POLICY_NOT_FOUND, "no agent %s", id);
    }
    return db_fail(st, r, "agent");
}

mf_res ca_store_agent_issued(struct ca_store *st, const char *spiffe_id, const char *serial,
                             int64_t expires_at, int64_t now, bool attest)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    sqlite3_stmt *s = NULL;
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
        MF_TRY_OUT(prep(st,
                        "INSERT INTO agents (" AGENT_COLS ") VALUES (?,?,?,?,?,0) "
                        "ON CONFLICT (spiffe_id) DO UPDATE SET serial = excluded.serial, "
                        "expires_at = excluded.expires_at, attested_at = excluded.attested_at, "
                        "last_seen = excluded.last_seen",
                        &s));
        sqlite3_bind_text(s, 1, spiffe_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, serial, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, expires_at);
        sqlite3_bind_int64(s, 4, now);
        sqlite3_bind_int64(s, 5, now);
    } else {
        MF_TRY_OUT(prep(st,
                        "UPDATE agents SET serial = ?, expires_at = ?, last_seen = ? "
                        "WHERE spiffe_id = ? AND banned = 0",
                        &s));
        sqlite3_bind_text(s, 1, serial, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, expires_at);
        sqlite3_bind_int64(s, 3, now);
        sqlite3_bind_text(s, 4, spiffe_id, -1, SQLITE_STATIC);
    }
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "agent");
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;
    MF_TRY(ca_store_commit(st));
    finish_revision(st, rev);
    return MF_RES_OK;
out:
    sqlite3_finalize(s);
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
    return r;
}

mf_res ca_store_agent_list(struct ca_store *st, struct ca_agent **out, size_t *n_out)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    *out = NULL;
    *n_out = 0;
    struct ca_agent *v = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s = NULL;
    lock(st);
    MF_TRY_OUT(prep(st, "SELECT " AGENT_COLS " FROM agents ORDER BY spiffe_id", &s));
    for (;;) {
        int r = sqlite3_step(s);
        if (r == SQLITE_DONE) {
            break;
        }
        if (r != SQLITE_ROW) {
            rc = db_fail(st, r, "agents");
            goto out;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct ca_agent *nv = realloc(v, ncap * sizeof(*nv));
            MF_ENSURE_OUT(nv != NULL, MF_ERR_NOMEM);
            v = nv;
            cap = ncap;
        }
        row_to_agent(s, &v[n++]);
    }
    *out = v;
    *n_out = n;
    v = NULL;
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    free(v);
    return rc;
}

mf_res ca_store_agent_ban(struct ca_store *st, const char *spiffe_id)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(spiffe_id);
    return write_one(st, "UPDATE agents SET banned = 1 WHERE spiffe_id = ?", spiffe_id, "agent");
}

mf_res ca_store_agent_evict(struct ca_store *st, const char *spiffe_id)
{
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(spiffe_id);
    return write_one(st, "DELETE FROM agents WHERE spiffe_id = ?", spiffe_id, "agent");
}

mf_res ca_store_agent_seen(struct ca_store *st, const char *spiffe_id, int64_t now)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    sqlite3_stmt *s = NULL;
    lock(st);
    MF_TRY_OUT(prep(st, "UPDATE agents SET last_seen = ? WHERE spiffe_id = ?", &s));
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_text(s, 2, spiffe_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "agent");
        goto out;
    }
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    return rc;
}

/* ---- CA key journal ------------------------------------------------------------ */

mf_res ca_store_key_put(struct ca_store *st, const struct ca_key_rec *rec,
                        const uint8_t *cert_der, size_t cert_len)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(rec);
    MF_ENSURE(cert_len <= MF_MAX_CERT, MF_ERR_PROTO_TOO_LARGE);
    sqlite3_stmt *s = NULL;
    lock(st);
    MF_TRY_OUT(prep(st,
                    "INSERT INTO ca_keys (id, state, not_before, not_after, cert) "
                    "VALUES (?,?,?,?,?)",
                    &s));
    sqlite3_bind_text(s, 1, rec->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, (int)rec->state);
    sqlite3_bind_int64(s, 3, rec->not_before);
    sqlite3_bind_int64(s, 4, rec->not_after);
    sqlite3_bind_blob(s, 5, cert_der, (int)cert_len, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "ca key");
        goto out;
    }
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    return rc;
}

mf_res ca_store_key_set_state(struct ca_store *st, const char *id, enum ca_key_state state)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    sqlite3_stmt *s = NULL;
    lock(st);
    MF_TRY_OUT(prep(st, "UPDATE ca_keys SET state = ? WHERE id = ?", &s));
    sqlite3_bind_int(s, 1, (int)state);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "ca key");
        goto out;
    }
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    return rc;
}

mf_res ca_store_key_delete(struct ca_store *st, const char *id)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    sqlite3_stmt *s = NULL;
    lock(st);
    MF_TRY_OUT(prep(st, "DELETE FROM ca_keys WHERE id = ?", &s));
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        rc = db_fail(st, r, "ca key");
        goto out;
    }
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    return rc;
}

mf_res ca_store_key_list(struct ca_store *st, struct ca_key_rec *recs, uint8_t **ders,
                         size_t *lens, size_t *n_out)
{
    mf_res rc;
    MF_ENSURE_REF(st);
    *n_out = 0;
    size_t n = 0;
    sqlite3_stmt *s = NULL;
    lock(st);
    MF_TRY_OUT(prep(st,
                    "SELECT id, state, not_before, not_after, cert FROM ca_keys "
                    "ORDER BY not_before, id",
                    &s));
    for (;;) {
        int r = sqlite3_step(s);
        if (r == SQLITE_DONE) {
            break;
        }
        if (r != SQLITE_ROW) {
            rc = db_fail(st, r, "ca keys");
            goto out;
        }
        MF_ENSURE_OUT_MSG(n < CA_KEYS_MAX, MF_ERR_STATE, "more than %d CA keys in the journal",
                          CA_KEYS_MAX);
        memset(&recs[n], 0, sizeof(recs[n]));
        snprintf(recs[n].id, sizeof(recs[n].id), "%s", (const char *)sqlite3_column_text(s, 0));
        int state = sqlite3_column_int(s, 1);
        MF_ENSURE_OUT_MSG(state >= CA_KEY_PREPARED && state <= CA_KEY_RETIRED, MF_ERR_STATE,
                          "CA key %s has unknown state %d", recs[n].id, state);
        recs[n].state = (enum ca_key_state)state;
        recs[n].not_before = sqlite3_column_int64(s, 2);
        recs[n].not_after = sqlite3_column_int64(s, 3);
        int len = sqlite3_column_bytes(s, 4);
        const void *blob = sqlite3_column_blob(s, 4);
        MF_ENSURE_OUT(len > 0 && blob != NULL, MF_ERR_STATE);
        ders[n] = malloc((size_t)len);
        MF_ENSURE_OUT(ders[n] != NULL, MF_ERR_NOMEM);
        memcpy(ders[n], blob, (size_t)len);
        lens[n] = (size_t)len;
        n++;
    }
    *n_out = n;
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    unlock(st);
    if (!mf_ok(rc)) {
        for (size_t i = 0; i < n; i++) {
            free(ders[i]);
            ders[i] = NULL;
        }
    }
    return rc;
}
