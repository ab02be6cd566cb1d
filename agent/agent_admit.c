/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_admit: per-uid accounting of Workload API connections. See
 * agent_admit.h.
 */
#include "agent/agent_admit.h"

#include <stdlib.h>
#include <string.h>

/* The row of uid, or NULL. Caller holds a->mu. */
static struct agent_admit_row *find_row(struct agent_admit *a, uid_t uid)
{
    for (unsigned i = 0; i < a->max_conns; i++) {
        if (a->rows[i].n > 0 && a->rows[i].uid == uid) {
            return &a->rows[i];
        }
    }
    return NULL;
}

/* see agent_admit.h */
mf_res agent_admit_init(struct agent_admit *a, unsigned max_conns, unsigned per_uid)
{
    MF_ENSURE_REF(a);
    memset(a, 0, sizeof(*a));
    MF_ENSURE_MSG(max_conns >= 1 && per_uid >= 1 && per_uid <= max_conns, MF_ERR_USAGE_ARG,
                  "the per-uid connection share must be 1..%u", max_conns);
    a->rows = calloc(max_conns, sizeof(*a->rows));
    MF_TRY_PTR(a->rows, MF_ERR_NOMEM);
    a->max_conns = max_conns;
    a->per_uid = per_uid;
    a->reserve = max_conns / 8;
    pthread_mutex_init(&a->mu, NULL);
    return MF_RES_OK;
}

/* see agent_admit.h */
void agent_admit_cleanup(struct agent_admit *a)
{
    if (a == NULL || a->rows == NULL) {
        return;
    }
    pthread_mutex_destroy(&a->mu);
    free(a->rows);
    a->rows = NULL;
}

/* see agent_admit.h */
enum agent_admit_verdict agent_admit_take(struct agent_admit *a, uid_t uid, unsigned extra)
{
    enum agent_admit_verdict v = AGENT_ADMIT_OK;
    pthread_mutex_lock(&a->mu);
    struct agent_admit_row *row = find_row(a, uid);
    unsigned held = row != NULL ? row->n : 0;
    unsigned used = a->total;
    if (__builtin_add_overflow(used, extra, &used) || used >= a->max_conns) {
        v = AGENT_ADMIT_FULL;
    } else if (uid != 0 && held >= a->per_uid) {
        v = AGENT_ADMIT_SHARE;
    } else if (uid != 0 && used >= a->max_conns - a->reserve &&
               held >= AGENT_ADMIT_RESERVE_PER_UID) {
        v = AGENT_ADMIT_RESERVE;
    }
    if (v == AGENT_ADMIT_OK && row == NULL) {
        /* total < max_conns, so at most max_conns - 1 rows are in use */
        for (unsigned i = 0; i < a->max_conns; i++) {
            if (a->rows[i].n == 0) {
                row = &a->rows[i];
                row->uid = uid;
                break;
            }
        }
        if (row == NULL) {
            v = AGENT_ADMIT_FULL;
        }
    }
    if (v == AGENT_ADMIT_OK) {
        row->n++;
        a->total++;
    }
    pthread_mutex_unlock(&a->mu);
    return v;
}

/* see agent_admit.h */
void agent_admit_release(struct agent_admit *a, uid_t uid)
{
    pthread_mutex_lock(&a->mu);
    struct agent_admit_row *row = find_row(a, uid);
    if (row != NULL) {
        row->n--;
        a->total--;
    }
    pthread_mutex_unlock(&a->mu);
}

/* see agent_admit.h */
unsigned agent_admit_total(struct agent_admit *a)
{
    pthread_mutex_lock(&a->mu);
    unsigned n = a->total;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* see agent_admit.h */
unsigned agent_admit_of(struct agent_admit *a, uid_t uid)
{
    pthread_mutex_lock(&a->mu);
    const struct agent_admit_row *row = find_row(a, uid);
    unsigned n = row != NULL ? row->n : 0;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* see agent_admit.h */
const char *agent_admit_reason(enum agent_admit_verdict v)
{
    switch (v) {
    case AGENT_ADMIT_OK:
        return "admitted";
    case AGENT_ADMIT_FULL:
        return "connection limit reached";
    case AGENT_ADMIT_SHARE:
        return "per-uid connection share reached";
    case AGENT_ADMIT_RESERVE:
        return "only root and light users may use the reserved connections";
    default:
        return "refused";
    }
}
