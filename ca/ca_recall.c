/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_recall: the registry's last answers about agents and their entries
 * (see ca_recall.h). One mutex over a chained hash table keyed by the
 * agent's SPIFFE ID and the kind of answer; an entry list is copied in and
 * copied out, so no caller ever shares memory with the table.
 */
#include "ca/ca_recall.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RECALL_BUCKETS 4096u

enum kind { KIND_AGENT, KIND_ENTRIES };

struct node {
    struct node *next;
    enum kind kind;
    char *key;
    int64_t at_ms;
    struct ca_agent agent; /* KIND_AGENT */
    struct ca_entry *v;    /* KIND_ENTRIES */
    size_t n;
};

struct ca_recall {
    pthread_mutex_t mu;
    int64_t grace_ms;
    size_t count; /* protected by mu */
    struct node *buckets[RECALL_BUCKETS];
};

static size_t bucket_of(enum kind k, const char *key)
{
    uint32_t h = 2166136261u ^ (uint32_t)k;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h % RECALL_BUCKETS;
}

static void node_free(struct node *n)
{
    if (n == NULL) {
        return;
    }
    ca_entries_free(n->v, n->n);
    free(n->key);
    free(n);
}

mf_res ca_recall_new(int64_t grace_ms, struct ca_recall **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_MSG(grace_ms > 0, MF_ERR_USAGE_ARG, "recall grace must be positive");
    struct ca_recall *r = calloc(1, sizeof(*r));
    MF_TRY_PTR(r, MF_ERR_NOMEM);
    pthread_mutex_init(&r->mu, NULL);
    r->grace_ms = grace_ms;
    *out = r;
    return MF_RES_OK;
}

/* Drops every node for which drop(node, cls) is true; under mu. */
static void sweep_locked(struct ca_recall *r, bool (*drop)(const struct node *, const void *),
                         const void *cls)
{
    for (size_t b = 0; b < RECALL_BUCKETS; b++) {
        struct node **pp = &r->buckets[b];
        while (*pp != NULL) {
            struct node *n = *pp;
            if (drop(n, cls)) {
                *pp = n->next;
                node_free(n);
                r->count--;
            } else {
                pp = &n->next;
            }
        }
    }
}

static bool drop_any(const struct node *n, const void *cls)
{
    (void)n;
    (void)cls;
    return true;
}

static bool drop_entries(const struct node *n, const void *cls)
{
    (void)cls;
    return n->kind == KIND_ENTRIES;
}

void ca_recall_free(struct ca_recall *r)
{
    if (r == NULL) {
        return;
    }
    sweep_locked(r, drop_any, NULL);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static struct node **find_locked(struct ca_recall *r, enum kind k, const char *key)
{
    struct node **pp = &r->buckets[bucket_of(k, key)];
    while (*pp != NULL && ((*pp)->kind != k || strcmp((*pp)->key, key) != 0)) {
        pp = &(*pp)->next;
    }
    return pp;
}

/* Puts n in place of the node of the same kind and key, if any. */
static void replace_locked(struct ca_recall *r, struct node *n)
{
    struct node **pp = find_locked(r, n->kind, n->key);
    if (*pp != NULL) {
        struct node *old = *pp;
        n->next = old->next;
        *pp = n;
        node_free(old);
    } else {
        n->next = NULL;
        *pp = n;
        r->count++;
    }
}

static void forget_locked(struct ca_recall *r, enum kind k, const char *key)
{
    struct node **pp = find_locked(r, k, key);
    if (*pp != NULL) {
        struct node *old = *pp;
        *pp = old->next;
        node_free(old);
        r->count--;
    }
}

mf_res ca_recall_put_agent(struct ca_recall *r, const struct ca_agent *a, int64_t now_ms)
{
    MF_ENSURE_REF(r);
    MF_ENSURE_REF(a);
    struct node *n = calloc(1, sizeof(*n));
    MF_TRY_PTR(n, MF_ERR_NOMEM);
    n->kind = KIND_AGENT;
    n->key = strdup(a->spiffe_id);
    if (n->key == NULL) {
        free(n);
        MF_BAIL(MF_ERR_NOMEM);
    }
    n->agent = *a;
    n->at_ms = now_ms;
    pthread_mutex_lock(&r->mu);
    replace_locked(r, n);
    pthread_mutex_unlock(&r->mu);
    return MF_RES_OK;
}

bool ca_recall_agent(struct ca_recall *r, const char *id, int64_t now_ms, struct ca_agent *out,
                     int64_t *age_ms)
{
    if (r == NULL || id == NULL || out == NULL) {
        return false;
    }
    bool found = false;
    pthread_mutex_lock(&r->mu);
    struct node *n = *find_locked(r, KIND_AGENT, id);
    if (n != NULL && now_ms - n->at_ms <= r->grace_ms) {
        *out = n->agent;
        if (age_ms != NULL) {
            *age_ms = now_ms - n->at_ms;
        }
        found = true;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

static mf_res copy_entries(const struct ca_entry *v, size_t n, struct ca_entry **out)
{
    mf_res rc;
    *out = NULL;
    struct ca_entry *c = calloc(n > 0 ? n : 1, sizeof(*c));
    MF_TRY_PTR(c, MF_ERR_NOMEM);
    size_t done = 0;
    for (; done < n; done++) {
        MF_TRY_OUT(ca_entry_copy(&v[done], &c[done]));
    }
    *out = c;
    return MF_RES_OK;
out:
    ca_entries_free(c, done);
    return rc;
}

mf_res ca_recall_put_entries(struct ca_recall *r, const char *parent, const struct ca_entry *v,
                             size_t n, int64_t now_ms)
{
    MF_ENSURE_REF(r);
    MF_ENSURE_REF(parent);
    MF_ENSURE(v != NULL || n == 0, MF_ERR_USAGE_ARG);
    struct node *node = calloc(1, sizeof(*node));
    MF_TRY_PTR(node, MF_ERR_NOMEM);
    node->kind = KIND_ENTRIES;
    node->at_ms = now_ms;
    node->key = strdup(parent);
    mf_res rc = node->key != NULL ? copy_entries(v, n, &node->v) : MF_RAISE(MF_ERR_NOMEM);
    if (!mf_ok(rc)) {
        node_free(node);
        return rc;
    }
    node->n = n;
    pthread_mutex_lock(&r->mu);
    replace_locked(r, node);
    pthread_mutex_unlock(&r->mu);
    return MF_RES_OK;
}

mf_res ca_recall_entries(struct ca_recall *r, const char *parent, int64_t now_ms,
                         struct ca_entry **out, size_t *n, int64_t *age_ms, bool *found)
{
    MF_ENSURE_REF(r);
    MF_ENSURE_REF(parent);
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(n);
    MF_ENSURE_REF(found);
    *out = NULL;
    *n = 0;
    *found = false;
    mf_res rc = MF_RES_OK;
    pthread_mutex_lock(&r->mu);
    struct node *node = *find_locked(r, KIND_ENTRIES, parent);
    if (node != NULL && now_ms - node->at_ms <= r->grace_ms) {
        rc = copy_entries(node->v, node->n, out);
        if (mf_ok(rc)) {
            *n = node->n;
            *found = true;
            if (age_ms != NULL) {
                *age_ms = now_ms - node->at_ms;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void ca_recall_forget_agent(struct ca_recall *r, const char *id)
{
    if (r == NULL || id == NULL) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    forget_locked(r, KIND_AGENT, id);
    pthread_mutex_unlock(&r->mu);
}

void ca_recall_forget_entries(struct ca_recall *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    sweep_locked(r, drop_entries, NULL);
    pthread_mutex_unlock(&r->mu);
}

void ca_recall_forget_all(struct ca_recall *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    sweep_locked(r, drop_any, NULL);
    pthread_mutex_unlock(&r->mu);
}

size_t ca_recall_count(struct ca_recall *r)
{
    if (r == NULL) {
        return 0;
    }
    pthread_mutex_lock(&r->mu);
    size_t c = r->count;
    pthread_mutex_unlock(&r->mu);
    return c;
}
