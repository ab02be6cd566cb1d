/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_db_pg: the PostgreSQL engine of the registry (see ca_db.h), through
 * libpq, for several CA servers sharing one database.
 *
 * Parameters travel apart from the SQL text (PQexecParams): integers and
 * text as text, blobs in binary. Results come back as text and are typed by
 * their column's type (int2/4/8 -> INT, bytea -> BLOB, anything else TEXT).
 *
 * Writers: begin takes a transaction-scoped advisory lock, so that write
 * transactions from every server are serialised as SQLite's BEGIN IMMEDIATE
 * serialises them on one machine; a read-then-write sequence (the registry
 * revision, a token spend) can then never interleave with another writer.
 *
 * A lost connection is reset once before a statement outside a
 * transaction; inside one, the transaction fails and the caller sees
 * MF_ERR_IO_CONNECT. The connection string may hold a password: it is never
 * logged, and an error detail names the server only by libpq's message.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"
#include "ca/ca_db.h"

#define SQL_MAX       4096
#define WRITE_LOCK_ID 0x6d61796679 /* "mayfy": the registry's writer lock */

/* From PostgreSQL's catalog (pg_type.dat); stable across versions. */
#define OID_BYTEA 17
#define OID_INT8  20
#define OID_INT2  21
#define OID_INT4  23

#define CHANNEL "mayfly_registry" /* LISTEN/NOTIFY channel of registry changes */

struct pg_db {
    struct ca_db base; /* first: a struct ca_db * is a struct pg_db * */
    PGconn *conn;
    bool in_tx;
    char *conninfo; /* for listen's second connection; may hold a password: wiped */
};

static struct pg_db *pg(struct ca_db *d)
{
    return (struct pg_db *)d;
}

/* Maps a failed result (or a broken connection) to the mf_err family. */
static mf_res fail(struct pg_db *d, PGresult *res, const char *what)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(d->conn);
    char line[512];
    snprintf(line, sizeof(line), "%s", msg != NULL && msg[0] != '\0' ? msg : "no answer");
    line[strcspn(line, "\n")] = '\0';
    if (PQstatus(d->conn) != CONNECTION_OK || state == NULL) {
        MF_BAIL_MSG(MF_ERR_IO_CONNECT, "%s: the database is unreachable: %s", what, line);
    }
    if (strcmp(state, "23505") == 0) {
        MF_BAIL_MSG(MF_ERR_POLICY_DUPLICATE, "%s: already exists", what);
    }
    if (strncmp(state, "53", 2) == 0) { /* insufficient resources: disk full, memory */
        MF_BAIL_MSG(MF_ERR_IO_NOSPACE, "%s: %s", what, line);
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0 ||
        strcmp(state, "57014") == 0) {
        MF_BAIL_MSG(MF_ERR_IO_TIMEOUT, "%s: %s", what, line);
    }
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) {
        MF_BAIL_MSG(MF_ERR_IO_CONNECT, "%s: the database is unreachable: %s", what, line);
    }
    MF_BAIL_MSG(MF_ERR_IO, "%s: %s (SQLSTATE %s)", what, line, state);
}

/* Outside a transaction, a connection that broke (the server restarted)
 * is reset once, so that the next statement finds a fresh one. */
static void revive(struct pg_db *d)
{
    if (!d->in_tx && PQstatus(d->conn) != CONNECTION_OK) {
        PQreset(d->conn);
    }
}

/* bytea's text form: a backslash, "x", then two hex digits per byte. */
static mf_res decode_bytea(const char *s, size_t len, uint8_t **out, size_t *n_out)
{
    MF_ENSURE_MSG(len >= 2 && s[0] == '\\' && s[1] == 'x' && len % 2 == 0, MF_ERR_STATE,
                  "bytea column not in hex form");
    size_t n = (len - 2) / 2;
    uint8_t *b = malloc(n ? n : 1);
    MF_TRY_PTR(b, MF_ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        int hi = mf_hex_value(s[2 + 2 * i]), lo = mf_hex_value(s[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            free(b);
            MF_BAIL_MSG(MF_ERR_STATE, "bytea column has a bad hex digit");
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *n_out = n;
    return MF_RES_OK;
}

static mf_res parse_int(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    MF_ENSURE_MSG(end != s && *end == '\0', MF_ERR_STATE, "integer column holds '%s'", s);
    *out = (int64_t)v;
    return MF_RES_OK;
}

/* Hands each row of res to fn. Blobs are decoded into owned buffers that
 * live until the next row. */
static mf_res rows(PGresult *res, ca_db_row_fn fn, void *cls)
{
    mf_res rc = MF_RES_OK;
    int nr = PQntuples(res), nc = PQnfields(res);
    MF_ENSURE(nc >= 0 && nc <= CA_DB_COLS_MAX, MF_ERR_INTERNAL);
    for (int r = 0; r < nr && mf_ok(rc); r++) {
        struct ca_db_val cols[CA_DB_COLS_MAX];
        uint8_t *blobs[CA_DB_COLS_MAX] = {0};
        memset(cols, 0, sizeof(cols));
        for (int c = 0; c < nc && mf_ok(rc); c++) {
            if (PQgetisnull(res, r, c)) {
                cols[c].kind = CA_DB_NULL;
                continue;
            }
            const char *v = PQgetvalue(res, r, c);
            size_t len = (size_t)PQgetlength(res, r, c);
            switch (PQftype(res, c)) {
            case OID_INT2:
            case OID_INT4:
            case OID_INT8:
                cols[c].kind = CA_DB_INT;
                rc = parse_int(v, &cols[c].i);
                break;
            case OID_BYTEA:
                cols[c].kind = CA_DB_BLOB;
                rc = decode_bytea(v, len, &blobs[c], &cols[c].len);
                cols[c].p = blobs[c];
                break;
            default:
                cols[c].kind = CA_DB_TEXT;
                cols[c].p = v;
                cols[c].len = len;
                break;
            }
        }
        if (mf_ok(rc)) {
            struct ca_db_row row = {.col = cols, .n = (size_t)nc};
            rc = fn(cls, &row);
        }
        for (int c = 0; c < nc; c++) {
            free(blobs[c]);
        }
    }
    return rc;
}

static mf_res pq_exec(struct ca_db *dd, const char *what, const char *sql,
                      const struct ca_db_val *args, size_t n_args, ca_db_row_fn fn, void *cls,
                      uint64_t *changes)
{
    struct pg_db *d = pg(dd);
    MF_ENSURE(n_args <= CA_DB_COLS_MAX, MF_ERR_INTERNAL);
    const char *vals[CA_DB_COLS_MAX];
    int lens[CA_DB_COLS_MAX], fmts[CA_DB_COLS_MAX];
    char ints[CA_DB_COLS_MAX][24];
    for (size_t i = 0; i < n_args; i++) {
        lens[i] = 0;
        fmts[i] = 0;
        switch (args[i].kind) {
        case CA_DB_INT:
            snprintf(ints[i], sizeof(ints[i]), "%lld", (long long)args[i].i);
            vals[i] = ints[i];
            break;
        case CA_DB_TEXT:
            vals[i] = args[i].p;
            break;
        case CA_DB_BLOB:
            vals[i] = args[i].p;
            lens[i] = (int)args[i].len;
            fmts[i] = 1;
            break;
        case CA_DB_NULL:
        default:
            vals[i] = NULL;
            break;
        }
    }
    revive(d);
    PGresult *res = PQexecParams(d->conn, sql, (int)n_args, NULL, vals, lens, fmts, 0);
    mf_res rc;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = fail(d, res, what);
    } else {
        rc = fn != NULL ? rows(res, fn, cls) : MF_RES_OK;
        if (mf_ok(rc) && changes != NULL) {
            const char *t = PQcmdTuples(res);
            *changes = t != NULL && t[0] != '\0' ? strtoull(t, NULL, 10) : 0;
        }
    }
    PQclear(res);
    return rc;
}

static mf_res pq_script(struct ca_db *dd, const char *sql)
{
    struct pg_db *d = pg(dd);
    revive(d);
    PGresult *res = PQexec(d->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    mf_res rc =
        st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? MF_RES_OK : fail(d, res, "postgresql");
    PQclear(res);
    return rc;
}

static mf_res pq_begin(struct ca_db *dd)
{
    struct pg_db *d = pg(dd);
    MF_TRY(pq_script(dd, "BEGIN"));
    d->in_tx = true;
    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%lld)", (long long)WRITE_LOCK_ID);
    mf_res r = pq_script(dd, sql);
    if (!mf_ok(r)) {
        (void)pq_script(dd, "ROLLBACK");
        d->in_tx = false;
    }
    return r;
}

static mf_res pq_commit(struct ca_db *dd)
{
    struct pg_db *d = pg(dd);
    mf_res r = pq_script(dd, "COMMIT");
    if (!mf_ok(r)) {
        mf_res ignored = pq_script(dd, "ROLLBACK");
        (void)ignored;
    }
    d->in_tx = false;
    return r;
}

static void pq_rollback(struct ca_db *dd)
{
    struct pg_db *d = pg(dd);
    mf_res ignored = pq_script(dd, "ROLLBACK");
    (void)ignored;
    d->in_tx = false;
}

static void pq_close(struct ca_db *dd)
{
    if (dd == NULL) {
        return;
    }
    struct pg_db *d = pg(dd);
    PQfinish(d->conn);
    if (d->conninfo != NULL) {
        mf_wipe(d->conninfo, strlen(d->conninfo));
        free(d->conninfo);
    }
    free(d);
}

static mf_res pq_notify(struct ca_db *dd)
{
    return pq_script(dd, "SELECT pg_notify('" CHANNEL "', '')");
}

static mf_res connect_db(const char *conninfo, struct pg_db **out);

static mf_res pq_listen(struct ca_db *dd, struct ca_db **listener)
{
    struct pg_db *l = NULL;
    *listener = NULL;
    MF_TRY(connect_db(pg(dd)->conninfo, &l));
    mf_res r = pq_script(&l->base, "LISTEN " CHANNEL);
    if (!mf_ok(r)) {
        pq_close(&l->base);
        return r;
    }
    *listener = &l->base;
    return MF_RES_OK;
}

static mf_res pq_wait(struct ca_db *dd, int timeout_ms, bool *changed)
{
    struct pg_db *d = pg(dd);
    *changed = false;
    struct pollfd pfd = {.fd = PQsocket(d->conn), .events = POLLIN};
    MF_ENSURE_MSG(pfd.fd >= 0 && PQstatus(d->conn) == CONNECTION_OK, MF_ERR_IO_CONNECT,
                  "the database connection for change notices is down");
    int n = poll(&pfd, 1, timeout_ms);
    if (n < 0 && errno != EINTR) {
        MF_BAIL_MSG(MF_ERR_IO, "poll: %s", strerror(errno));
    }
    if (n > 0) {
        MF_ENSURE_MSG(PQconsumeInput(d->conn) == 1, MF_ERR_IO_CONNECT,
                      "the database connection for change notices broke");
    }
    PGnotify *nt;
    while ((nt = PQnotifies(d->conn)) != NULL) {
        *changed = true;
        PQfreemem(nt);
    }
    MF_ENSURE_MSG(PQstatus(d->conn) == CONNECTION_OK, MF_ERR_IO_CONNECT,
                  "the database connection for change notices broke");
    return MF_RES_OK;
}

static const char *pq_type(struct ca_db *dd, enum ca_db_type t)
{
    (void)dd;
    switch (t) {
    case CA_DB_TYPE_INT64:
        return "BIGINT";
    case CA_DB_TYPE_BLOB:
        return "BYTEA";
    default:
        return "TEXT";
    }
}

static const struct ca_db_ops pg_ops = {
    .name = "postgresql",
    .exec = pq_exec,
    .script = pq_script,
    .begin = pq_begin,
    .commit = pq_commit,
    .rollback = pq_rollback,
    .close = pq_close,
    .type = pq_type,
    .notify = pq_notify,
    .listen = pq_listen,
    .wait = pq_wait,
};

static mf_res connect_db(const char *conninfo, struct pg_db **out)
{
    *out = NULL;
    struct pg_db *d = calloc(1, sizeof(*d));
    MF_TRY_PTR(d, MF_ERR_NOMEM);
    d->base.ops = &pg_ops;
    d->conninfo = strdup(conninfo);
    d->conn = d->conninfo != NULL ? PQconnectdb(conninfo) : NULL;
    if (d->conn == NULL || PQstatus(d->conn) != CONNECTION_OK) {
        char line[512];
        snprintf(line, sizeof(line), "%s",
                 d->conn != NULL ? PQerrorMessage(d->conn) : "out of memory");
        line[strcspn(line, "\n")] = '\0';
        pq_close(&d->base);
        MF_BAIL_MSG(MF_ERR_IO_CONNECT, "cannot connect to the database: %s", line);
    }
    /* quiet: NOTICEs ("relation already exists, skipping") are not errors */
    PGresult *res = PQexec(d->conn, "SET client_min_messages = warning");
    PQclear(res);
    *out = d;
    return MF_RES_OK;
}

/* see ca_db.h */
mf_res ca_db_pg_open(const char *conninfo, struct ca_db **out)
{
    MF_ENSURE_REF(conninfo);
    MF_ENSURE_REF(out);
    *out = NULL;
    struct pg_db *d = NULL;
    MF_TRY(connect_db(conninfo, &d));
    *out = &d->base;
    return MF_RES_OK;
}
