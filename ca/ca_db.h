/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_db: the SQL engine under the registry (ca_store).
 *
 * ca_store speaks to its database only through this interface, so that the
 * registry's queries are written once, whatever the engine. SQL text uses
 * numbered parameters ($1, $2, ...), which every engine binds as values:
 * nothing is ever pasted into SQL. A statement's rows are handed to a
 * callback one at a time; their values are borrowed and valid only during
 * the call.
 *
 * Errors are mapped to mayfly's family by the engine: a unique constraint to
 * MF_ERR_POLICY_DUPLICATE, a full disk or file size limit to
 * MF_ERR_IO_NOSPACE, a lock held too long to MF_ERR_IO_TIMEOUT, anything
 * else to MF_ERR_IO, each with the engine's own message as the detail.
 *
 * Not thread-safe: one connection, used under the caller's lock.
 */
#ifndef CA_DB_H
#define CA_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"

#define CA_DB_COLS_MAX 16 /* columns a query may return */

enum ca_db_kind { CA_DB_NULL, CA_DB_INT, CA_DB_TEXT, CA_DB_BLOB };

/* Column types that the engines spell differently, for the one schema
 * history: migrations write {INT64} and {BLOB}. */
enum ca_db_type { CA_DB_TYPE_INT64, CA_DB_TYPE_BLOB };

/* A parameter or a column value. TEXT is NUL-terminated (len excludes the
 * NUL); BLOB is len bytes. */
struct ca_db_val {
    enum ca_db_kind kind;
    int64_t i;
    const void *p;
    size_t len;
};

struct ca_db_row {
    const struct ca_db_val *col;
    size_t n;
};

/* Called once per row; an error stops the statement and is returned. */
typedef mf_res (*ca_db_row_fn)(void *cls, const struct ca_db_row *row);

struct ca_db;

struct ca_db_ops {
    const char *name;
    /* Runs one statement with n_args parameters. fn (may be NULL) sees each
     * row; *changes (may be NULL) gets the number of rows written. what
     * names the operation in error details. */
    mf_res (*exec)(struct ca_db *db, const char *what, const char *sql,
                   const struct ca_db_val *args, size_t n_args, ca_db_row_fn fn, void *cls,
                   uint64_t *changes);
    /* Runs several statements without parameters (migrations). */
    mf_res (*script)(struct ca_db *db, const char *sql);
    /* A write transaction: begin takes the write lock at once, so that a
     * read-then-write sequence cannot interleave with another writer. */
    mf_res (*begin)(struct ca_db *db);
    mf_res (*commit)(struct ca_db *db);
    void (*rollback)(struct ca_db *db);
    void (*close)(struct ca_db *db);
    /* The engine's name of a column type. */
    const char *(*type)(struct ca_db *db, enum ca_db_type t);
    /* Engines that several servers share (NULL where one server owns the
     * database): notify announces a change to every listener, at commit
     * when inside a transaction; listen opens a second connection that
     * hears those announcements; wait blocks on a listener for up to
     * timeout_ms and sets *changed when one or more arrived. A listener
     * whose connection broke fails with MF_ERR_IO_CONNECT: close it and
     * listen again (announcements in between are lost, so treat the
     * reconnect itself as a change). */
    mf_res (*notify)(struct ca_db *db);
    mf_res (*listen)(struct ca_db *db, struct ca_db **listener);
    mf_res (*wait)(struct ca_db *listener, int timeout_ms, bool *changed);
};

struct ca_db {
    const struct ca_db_ops *ops;
};

/* Opens (creating it 0600 when missing) the SQLite database at path, in WAL
 * mode with synchronous=FULL. */
MF_WUR mf_res ca_db_sqlite_open(const char *path, struct ca_db **out);

/* Connects to PostgreSQL with a libpq connection string or URI
 * ("postgresql://user@host/db?sslmode=..."). MF_ERR_IO_CONNECT when the
 * server cannot be reached; the detail never repeats the string (it may
 * hold a password). */
MF_WUR mf_res ca_db_pg_open(const char *conninfo, struct ca_db **out);

/* ---- values ---------------------------------------------------------------- */

static inline struct ca_db_val ca_db_int(int64_t v)
{
    return (struct ca_db_val){.kind = CA_DB_INT, .i = v};
}

/* A NULL string binds SQL NULL. */
static inline struct ca_db_val ca_db_text(const char *s)
{
    if (s == NULL) {
        return (struct ca_db_val){.kind = CA_DB_NULL};
    }
    return (struct ca_db_val){.kind = CA_DB_TEXT, .p = s, .len = __builtin_strlen(s)};
}

static inline struct ca_db_val ca_db_blob(const void *p, size_t len)
{
    return (struct ca_db_val){.kind = CA_DB_BLOB, .p = p, .len = len};
}

/* Column accessors: a missing column or another kind reads as 0, "" or an
 * empty blob, so a corrupt row cannot crash a reader (callers check what
 * matters, such as a blob's length). */
int64_t ca_db_col_int(const struct ca_db_row *r, size_t i);
const char *ca_db_col_text(const struct ca_db_row *r, size_t i);
/* NULL when the column is SQL NULL. */
const char *ca_db_col_text_or_null(const struct ca_db_row *r, size_t i);
const void *ca_db_col_blob(const struct ca_db_row *r, size_t i, size_t *len);

/* A growing array of fixed-size records, for callbacks that collect rows. */
struct ca_db_vec {
    void *v;
    size_t n, cap, size;
};
/* A zeroed slot at the end of the vector, or NULL when out of memory. */
void *ca_db_vec_push(struct ca_db_vec *vec);

#endif /* CA_DB_H */
