/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_db_sqlite: the SQLite engine of the registry (see ca_db.h).
 *
 * Durability: journal_mode=WAL with synchronous=FULL. A caller is told
 * "done" only after COMMIT returned, which with FULL means the WAL was
 * fsync'd: an acknowledged write survives kill -9 and power loss alike.
 *
 * SQLite numbers parameters "?N"; the registry writes "$N" for every
 * engine, so the text is rewritten once per statement before it is
 * prepared. No value ever reaches the SQL text.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/resource.h>

#include "ca/ca_db.h"

#define BUSY_TIMEOUT_MS 5000
#define SQL_MAX         4096

struct sqlite_db {
    struct ca_db base; /* first: a struct ca_db * is a struct sqlite_db * */
    sqlite3 *db;
};

static sqlite3 *handle(struct ca_db *d)
{
    return ((struct sqlite_db *)d)->db;
}

static mf_res fail(sqlite3 *db, int rc, const char *what)
{
    const char *msg = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
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
        int e = db != NULL ? sqlite3_system_errno(db) : 0;
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

/* "$3" -> "?3", outside quoted literals. */
static mf_res rewrite(const char *sql, char out[SQL_MAX])
{
    size_t o = 0;
    char quote = 0;
    for (const char *p = sql; *p != '\0'; p++) {
        char c = *p;
        if (quote != 0) {
            quote = c == quote ? 0 : quote;
        } else if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '$' && p[1] >= '1' && p[1] <= '9') {
            c = '?';
        }
        MF_ENSURE(o + 1 < SQL_MAX, MF_ERR_INTERNAL);
        out[o++] = c;
    }
    out[o] = '\0';
    return MF_RES_OK;
}

static void bind(sqlite3_stmt *s, int i, const struct ca_db_val *v)
{
    switch (v->kind) {
    case CA_DB_INT:
        sqlite3_bind_int64(s, i, v->i);
        break;
    case CA_DB_TEXT:
        sqlite3_bind_text(s, i, v->p, (int)v->len, SQLITE_STATIC);
        break;
    case CA_DB_BLOB:
        sqlite3_bind_blob(s, i, v->p, (int)v->len, SQLITE_STATIC);
        break;
    case CA_DB_NULL:
    default:
        sqlite3_bind_null(s, i);
        break;
    }
}

static void read_col(sqlite3_stmt *s, int i, struct ca_db_val *v)
{
    memset(v, 0, sizeof(*v));
    switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER:
        v->kind = CA_DB_INT;
        v->i = sqlite3_column_int64(s, i);
        break;
    case SQLITE_TEXT:
        v->kind = CA_DB_TEXT;
        v->p = sqlite3_column_text(s, i);
        v->len = (size_t)sqlite3_column_bytes(s, i);
        break;
    case SQLITE_BLOB:
        v->kind = CA_DB_BLOB;
        v->p = sqlite3_column_blob(s, i);
        v->len = (size_t)sqlite3_column_bytes(s, i);
        break;
    default:
        v->kind = CA_DB_NULL;
        break;
    }
}

static mf_res sq_exec(struct ca_db *d, const char *what, const char *sql,
                      const struct ca_db_val *args, size_t n_args, ca_db_row_fn fn, void *cls,
                      uint64_t *changes)
{
    mf_res rc;
    sqlite3 *db = handle(d);
    sqlite3_stmt *s = NULL;
    char text[SQL_MAX];
    MF_TRY(rewrite(sql, text));
    int r = sqlite3_prepare_v2(db, text, -1, &s, NULL);
    if (r != SQLITE_OK) {
        return fail(db, r, what);
    }
    for (size_t i = 0; i < n_args; i++) {
        bind(s, (int)i + 1, &args[i]);
    }
    for (;;) {
        r = sqlite3_step(s);
        if (r == SQLITE_DONE) {
            break;
        }
        if (r != SQLITE_ROW) {
            rc = fail(db, r, what);
            goto out;
        }
        if (fn != NULL) {
            struct ca_db_val cols[CA_DB_COLS_MAX];
            int n = sqlite3_column_count(s);
            MF_ENSURE_OUT(n >= 0 && n <= CA_DB_COLS_MAX, MF_ERR_INTERNAL);
            for (int i = 0; i < n; i++) {
                read_col(s, i, &cols[i]);
            }
            struct ca_db_row row = {.col = cols, .n = (size_t)n};
            MF_TRY_OUT(fn(cls, &row));
        }
    }
    if (changes != NULL) {
        *changes = (uint64_t)sqlite3_changes64(db);
    }
    rc = MF_RES_OK;
out:
    sqlite3_finalize(s);
    return rc;
}

static mf_res sq_script(struct ca_db *d, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(handle(d), sql, NULL, NULL, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) {
        return fail(handle(d), rc, "sqlite");
    }
    return MF_RES_OK;
}

static mf_res sq_begin(struct ca_db *d)
{
    return sq_script(d, "BEGIN IMMEDIATE");
}

static void sq_rollback(struct ca_db *d)
{
    char *err = NULL;
    (void)sqlite3_exec(handle(d), "ROLLBACK", NULL, NULL, &err);
    sqlite3_free(err);
}

static mf_res sq_commit(struct ca_db *d)
{
    mf_res r = sq_script(d, "COMMIT");
    if (!mf_ok(r)) {
        sq_rollback(d);
    }
    return r;
}

static void sq_close(struct ca_db *d)
{
    if (d == NULL) {
        return;
    }
    sqlite3_close_v2(handle(d));
    free(d);
}

static const char *sq_type(struct ca_db *d, enum ca_db_type t)
{
    (void)d;
    return t == CA_DB_TYPE_BLOB ? "BLOB" : "INTEGER";
}

static const struct ca_db_ops sqlite_ops = {
    .name = "sqlite",
    .exec = sq_exec,
    .script = sq_script,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .close = sq_close,
    .type = sq_type,
};

/* see ca_db.h */
mf_res ca_db_sqlite_open(const char *path, struct ca_db **out)
{
    mf_res rc;
    MF_ENSURE_REF(path);
    MF_ENSURE_REF(out);
    *out = NULL;
    struct sqlite_db *d = calloc(1, sizeof(*d));
    MF_TRY_PTR(d, MF_ERR_NOMEM);
    d->base.ops = &sqlite_ops;
    /* Create the file 0600 ourselves, before SQLite does with its own mode. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    MF_ENSURE_OUT_MSG(fd >= 0, MF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    close(fd);
    int r = sqlite3_open_v2(
        path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
    if (r != SQLITE_OK) {
        rc = fail(d->db, r, "open database");
        goto out;
    }
    sqlite3_busy_timeout(d->db, BUSY_TIMEOUT_MS);
    MF_TRY_OUT(sq_script(&d->base, "PRAGMA journal_mode = WAL"));
    MF_TRY_OUT(sq_script(&d->base, "PRAGMA synchronous = FULL"));
    MF_TRY_OUT(sq_script(&d->base, "PRAGMA foreign_keys = ON"));
    *out = &d->base;
    d = NULL;
    rc = MF_RES_OK;
out:
    if (d != NULL) {
        sqlite3_close_v2(d->db);
        free(d);
    }
    return rc;
}
