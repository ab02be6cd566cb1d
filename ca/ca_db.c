/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_db: what every registry engine shares (see ca_db.h): column accessors
 * and the growing row vector.
 */
#include "ca/ca_db.h"

#include <stdlib.h>
#include <string.h>

static const struct ca_db_val *col(const struct ca_db_row *r, size_t i, enum ca_db_kind k)
{
    return i < r->n && r->col[i].kind == k ? &r->col[i] : NULL;
}

int64_t ca_db_col_int(const struct ca_db_row *r, size_t i)
{
    const struct ca_db_val *v = col(r, i, CA_DB_INT);
    return v != NULL ? v->i : 0;
}

const char *ca_db_col_text(const struct ca_db_row *r, size_t i)
{
    const struct ca_db_val *v = col(r, i, CA_DB_TEXT);
    return v != NULL && v->p != NULL ? v->p : "";
}

const char *ca_db_col_text_or_null(const struct ca_db_row *r, size_t i)
{
    const struct ca_db_val *v = col(r, i, CA_DB_TEXT);
    return v != NULL && v->p != NULL ? v->p : NULL;
}

const void *ca_db_col_blob(const struct ca_db_row *r, size_t i, size_t *len)
{
    const struct ca_db_val *v = col(r, i, CA_DB_BLOB);
    *len = v != NULL && v->p != NULL ? v->len : 0;
    return *len != 0 ? v->p : NULL;
}

void *ca_db_vec_push(struct ca_db_vec *vec)
{
    if (vec->n == vec->cap) {
        size_t ncap = vec->cap ? vec->cap * 2 : 16;
        void *nv = reallocarray(vec->v, ncap, vec->size);
        if (nv == NULL) {
            return NULL;
        }
        vec->v = nv;
        vec->cap = ncap;
    }
    void *slot = (char *)vec->v + vec->n * vec->size;
    memset(slot, 0, vec->size);
    vec->n++;
    return slot;
}
