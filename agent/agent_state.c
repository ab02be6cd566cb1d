/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_state: immutable refcounted snapshots and their JSON rendering.
 * See agent_state.h.
 */
#include "agent/agent_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent_rotate.h"
#include "api/core/mf_json.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"
#include "api/core/mf_time.h"

/* see agent_state.h */
mf_res agent_snap_new(const char *td, struct agent_snap **out)
{
    MF_ENSURE_REF(td);
    MF_ENSURE_REF(out);
    *out = NULL;
    struct agent_snap *s = calloc(1, sizeof(*s));
    MF_TRY_PTR(s, MF_ERR_NOMEM);
    int n = snprintf(s->td_id, sizeof(s->td_id), "spiffe://%s", td);
    if (n <= 0 || (size_t)n >= sizeof(s->td_id)) {
        free(s);
        MF_BAIL(MF_ERR_USAGE_ARG);
    }
    mf_buf_init(&s->bundle_pem, MF_MAX_BUNDLE, 0);
    if (pthread_mutex_init(&s->answers_mu, NULL) != 0) {
        free(s);
        MF_BAIL(MF_ERR_INTERNAL);
    }
    s->refs = 1;
    *out = s;
    return MF_RES_OK;
}

/* see agent_state.h */
struct agent_snap *agent_snap_ref(struct agent_snap *s)
{
    if (s != NULL) {
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    }
    return s;
}

static void snap_svid_cleanup(struct agent_snap_svid *v)
{
    for (size_t i = 0; i < v->chain.n; i++) {
        mf_cert_free(v->chain.v[i]);
    }
    /* the strings, selectors and chain array all live in v->mem */
    free(v->mem);
    mf_key_free(v->key);
    mf_strv_free(v->fed, v->n_fed);
    memset(v, 0, sizeof(*v));
}

/* see agent_state.h */
void agent_snap_unref(struct agent_snap *s)
{
    if (s == NULL || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        snap_svid_cleanup(&s->svids[i]);
    }
    free(s->svids);
    for (size_t i = 0; i < s->n_feds; i++) {
        mf_bundle_free(s->feds[i].bundle);
        mf_buf_cleanup(&s->feds[i].pem);
        mf_buf_cleanup(&s->feds[i].der);
    }
    free(s->feds);
    mf_buf_cleanup(&s->bundle_pem);
    mf_bundle_free(s->bundle);
    while (s->answers != NULL) {
        struct agent_answer *a = s->answers;
        s->answers = a->next;
        agent_answer_unref(a);
    }
    pthread_mutex_destroy(&s->answers_mu);
    free(s);
}

/* see agent_state.h */
mf_res agent_snap_reserve(struct agent_snap *s, size_t n)
{
    MF_ENSURE_REF(s);
    if (n <= s->cap) {
        return MF_RES_OK;
    }
    size_t bytes;
    MF_ENSURE(mf_mul_size(n, sizeof(*s->svids), &bytes), MF_ERR_OVERFLOW);
    struct agent_snap_svid *nv = realloc(s->svids, bytes);
    MF_TRY_PTR(nv, MF_ERR_NOMEM);
    s->svids = nv;
    s->cap = n;
    return MF_RES_OK;
}

/* see agent_state.h */
mf_res agent_snap_add(struct agent_snap *s, const char *spiffe_id, const char *hint,
                      const struct mf_selector *sels, size_t n_sels, const struct mf_certs *chain,
                      const struct mf_key *key, int64_t not_after)
{
    struct agent_snap_svid v;
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(spiffe_id);
    MF_ENSURE_REF(chain);
    MF_ENSURE_REF(key);
    memset(&v, 0, sizeof(v));
    MF_ENSURE(chain->n > 0, MF_ERR_USAGE_ARG);
    if (s->n == s->cap) {
        MF_TRY(agent_snap_reserve(s, s->cap == 0 ? 8 : s->cap * 2));
    }
    if (hint == NULL) {
        hint = "";
    }
    /* One allocation per SVID: the chain's pointers, the selectors, then
     * the ID, the hint and the selector values as C strings. A snapshot
     * of 10,000 SVIDs would otherwise make some 50,000 small blocks, each
     * with malloc's header and rounding. */
    size_t id_len = strlen(spiffe_id), hint_len = strlen(hint), bytes = 0, strs = 0;
    MF_ENSURE(mf_mul_size(chain->n, sizeof(*v.chain.v), &bytes), MF_ERR_OVERFLOW);
    size_t sels_off = bytes, n;
    MF_ENSURE(mf_mul_size(n_sels, sizeof(*v.sels), &n) && mf_add_size(bytes, n, &bytes),
              MF_ERR_OVERFLOW);
    size_t str_off = bytes;
    MF_ENSURE(mf_add_size(id_len, hint_len, &strs) && mf_add_size(strs, 2, &strs), MF_ERR_OVERFLOW);
    for (size_t i = 0; i < n_sels; i++) {
        MF_ENSURE_REF(sels[i].value);
        MF_ENSURE(mf_add_size(strs, sels[i].value_len + 1, &strs), MF_ERR_OVERFLOW);
    }
    MF_ENSURE(mf_add_size(bytes, strs, &bytes), MF_ERR_OVERFLOW);
    uint8_t *mem = malloc(bytes);
    MF_TRY_PTR(mem, MF_ERR_NOMEM);
    v.mem = mem;
    v.chain.v = (struct mf_cert **)(void *)mem;
    v.sels = n_sels > 0 ? (struct mf_selector *)(void *)(mem + sels_off) : NULL;
    char *p = (char *)mem + str_off;
    v.spiffe_id = memcpy(p, spiffe_id, id_len + 1);
    p += id_len + 1;
    v.hint = memcpy(p, hint, hint_len + 1);
    p += hint_len + 1;
    for (size_t i = 0; i < n_sels; i++) {
        v.sels[i].kind = sels[i].kind;
        v.sels[i].value = memcpy(p, sels[i].value, sels[i].value_len + 1);
        v.sels[i].value_len = sels[i].value_len;
        p += sels[i].value_len + 1;
    }
    v.n_sels = n_sels;
    for (size_t i = 0; i < chain->n; i++) {
        v.chain.v[i] = mf_cert_ref(chain->v[i]);
    }
    v.chain.n = chain->n;
    /* immutable and refcounted: the snapshot shares the cache's key, which
     * stays in locked memory; PEM and DER are made when an answer is */
    v.key = mf_key_ref((struct mf_key *)(uintptr_t)key);
    v.not_after = not_after;
    s->svids[s->n++] = v;
    return MF_RES_OK;
}

/* see agent_state.h */
mf_res agent_snap_svid_pem(const struct agent_snap_svid *v, struct mf_buf *chain_pem,
                           struct mf_buf *key_pem)
{
    MF_ENSURE_REF(v);
    mf_buf_reset(chain_pem);
    mf_buf_reset(key_pem);
    MF_TRY(mf_certs_to_pem(&v->chain, chain_pem));
    return mf_key_to_pem(v->key, key_pem);
}

/* see agent_state.h */
mf_res agent_snap_add_federated(struct agent_snap *s, struct mf_bundle *b)
{
    mf_res rc;
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(b);
    struct agent_snap_fed f;
    memset(&f, 0, sizeof(f));
    mf_buf_init(&f.pem, MF_MAX_BUNDLE, 0);
    mf_buf_init(&f.der, MF_MAX_BUNDLE, 0);
    int n = snprintf(f.td_id, sizeof(f.td_id), "spiffe://%s", b->td);
    MF_ENSURE_OUT(n > 0 && (size_t)n < sizeof(f.td_id), MF_ERR_USAGE_ARG);
    MF_TRY_OUT(mf_bundle_to_pem(b, &f.pem));
    MF_TRY_OUT(mf_certs_to_der_concat(&b->x509, &f.der));
    size_t bytes;
    MF_ENSURE_OUT(mf_mul_size(s->n_feds + 1, sizeof(*s->feds), &bytes), MF_ERR_OVERFLOW);
    struct agent_snap_fed *nv = realloc(s->feds, bytes);
    MF_ENSURE_OUT(nv != NULL, MF_ERR_NOMEM);
    s->feds = nv;
    f.bundle = mf_bundle_ref(b);
    s->feds[s->n_feds++] = f;
    return MF_RES_OK;
out:
    mf_buf_cleanup(&f.pem);
    mf_buf_cleanup(&f.der);
    return rc;
}

/* see agent_state.h */
mf_res agent_snap_set_federates(struct agent_snap *s, size_t i, char *const *ids, size_t n)
{
    MF_ENSURE_REF(s);
    MF_ENSURE(i < s->n, MF_ERR_USAGE_ARG);
    char **v = NULL;
    MF_TRY(mf_strv_dup(ids, n, &v));
    mf_strv_free(s->svids[i].fed, s->svids[i].n_fed);
    s->svids[i].fed = v;
    s->svids[i].n_fed = n;
    return MF_RES_OK;
}

/* td as "spiffe://<td>" into id (td may be given either way). */
static bool td_id(const char *td, char id[MF_SPIFFE_ID_MAX + 1])
{
    char bare[MF_TD_MAX + 1];
    if (td == NULL || !mf_ok(mf_td_parse(td, strlen(td), bare))) {
        mf_err_clear();
        return false;
    }
    snprintf(id, MF_SPIFFE_ID_MAX + 1, "spiffe://%s", bare);
    return true;
}

static bool svid_federates(const struct agent_snap_svid *v, const char *id)
{
    for (size_t k = 0; k < v->n_fed; k++) {
        if (strcmp(v->fed[k], id) == 0) {
            return true;
        }
    }
    return false;
}

/* see agent_state.h */
const struct agent_snap_fed *agent_state_federated(const struct agent_snap *s, size_t i,
                                                   const char *td)
{
    char id[MF_SPIFFE_ID_MAX + 1];
    if (s == NULL || i >= s->n || !td_id(td, id) || !svid_federates(&s->svids[i], id)) {
        return NULL;
    }
    for (size_t k = 0; k < s->n_feds; k++) {
        if (strcmp(s->feds[k].td_id, id) == 0) {
            return &s->feds[k];
        }
    }
    return NULL;
}

/* see agent_state.h */
bool agent_snap_fed_visible(const struct agent_snap *s, size_t k, const struct mf_selector *have,
                            size_t n_have)
{
    if (s == NULL || k >= s->n_feds) {
        return false;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (svid_federates(&s->svids[i], s->feds[k].td_id) &&
            agent_snap_visible(s, i, have, n_have)) {
            return true;
        }
    }
    return false;
}

/* see agent_state.h */
mf_res agent_snap_trust(const struct agent_snap *s, const struct mf_selector *have, size_t n_have,
                        struct mf_bundle_set *out)
{
    MF_ENSURE_REF(out);
    if (s == NULL) {
        return MF_RES_OK;
    }
    if (s->bundle != NULL) {
        MF_TRY(mf_bundle_set_put(out, s->bundle));
    }
    for (size_t k = 0; k < s->n_feds; k++) {
        if (agent_snap_fed_visible(s, k, have, n_have)) {
            MF_TRY(mf_bundle_set_put(out, s->feds[k].bundle));
        }
    }
    return MF_RES_OK;
}

static bool svid_for(const struct agent_snap_svid *v, const struct mf_selector *have, size_t n_have)
{
    return mf_selectors_match(v->sels, v->n_sels, have, n_have) &&
           agent_svid_servable(v->not_after);
}

/* Hints are unique within one response (SPIFFE.md E21): a later SVID whose
 * non-empty hint repeats an earlier one's is left out. */
static bool hint_taken(const struct agent_snap *s, size_t upto, const struct mf_selector *have,
                       size_t n_have)
{
    const char *h = s->svids[upto].hint;
    if (h[0] == '\0') {
        return false;
    }
    for (size_t i = 0; i < upto; i++) {
        if (strcmp(s->svids[i].hint, h) == 0 && svid_for(&s->svids[i], have, n_have)) {
            return true;
        }
    }
    return false;
}

/* see agent_state.h */
bool agent_snap_visible(const struct agent_snap *s, size_t i, const struct mf_selector *have,
                        size_t n_have)
{
    return s != NULL && i < s->n && svid_for(&s->svids[i], have, n_have) &&
           !hint_taken(s, i, have, n_have);
}

/* see agent_state.h */
size_t agent_snap_count(const struct agent_snap *s, const struct mf_selector *have, size_t n_have)
{
    size_t n = 0;
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        if (agent_snap_visible(s, i, have, n_have)) {
            n++;
        }
    }
    return n;
}

/* see agent_state.h */
mf_res agent_snap_render_x509(const struct agent_snap *s, const struct mf_selector *have,
                              size_t n_have, struct mf_buf *out, size_t *count)
{
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(count);
    MF_ENSURE(out->flags & MF_BUF_SECRET, MF_ERR_USAGE_ARG);
    *count = 0;
    if (s == NULL) {
        return MF_RES_OK;
    }
    size_t start = out->len;
    size_t n = 0;
    char when[MF_RFC3339_LEN];
    struct mf_buf chain_pem, key_pem; /* rendered here: the snapshot keeps DER and the key */
    mf_buf_init(&chain_pem, MF_MAX_BUNDLE, 0);
    mf_buf_init(&key_pem, MF_MAX_CERT, MF_BUF_SECRET);
    mf_res rc = mf_buf_append_str(out, "{\"svids\":[");
    for (size_t i = 0; mf_ok(rc) && i < s->n; i++) {
        const struct agent_snap_svid *v = &s->svids[i];
        if (!agent_snap_visible(s, i, have, n_have)) {
            continue;
        }
        mf_time_format(v->not_after, when);
        rc = agent_snap_svid_pem(v, &chain_pem, &key_pem);
        if (!mf_ok(rc)) {
            break;
        }
        if (n > 0) {
            rc = mf_buf_append_u8(out, ',');
        }
        if (mf_ok(rc)) {
            rc = mf_buf_append_str(out, "{\"spiffe_id\":");
        }
        if (mf_ok(rc)) {
            rc = mf_json_put_str(out, v->spiffe_id);
        }
        if (mf_ok(rc)) {
            rc = mf_buf_append_str(out, ",\"x509_svid\":");
        }
        if (mf_ok(rc)) {
            rc = mf_json_put_str(out, mf_buf_cstr(&chain_pem));
        }
        if (mf_ok(rc)) {
            rc = mf_buf_append_str(out, ",\"x509_svid_key\":");
        }
        if (mf_ok(rc)) {
            rc = mf_json_put_str(out, mf_buf_cstr(&key_pem));
        }
        if (mf_ok(rc)) {
            rc = mf_buf_append_str(out, ",\"bundle\":");
        }
        if (mf_ok(rc)) {
            rc = mf_json_put_str(out, mf_buf_cstr(&s->bundle_pem));
        }
        if (mf_ok(rc)) {
            rc = mf_buf_printf(out, ",\"expires_at\":\"%s\",\"hint\":", when);
        }
        if (mf_ok(rc)) {
            rc = mf_json_put_str(out, v->hint);
        }
        if (mf_ok(rc)) {
            rc = mf_buf_append_u8(out, '}');
        }
        n++;
    }
    mf_buf_cleanup(&chain_pem);
    mf_buf_cleanup(&key_pem);
    if (mf_ok(rc)) {
        rc = mf_buf_append_str(out, "],\"federated_bundles\":{");
    }
    size_t nf = 0;
    for (size_t k = 0; mf_ok(rc) && k < s->n_feds; k++) {
        if (!agent_snap_fed_visible(s, k, have, n_have)) {
            continue;
        }
        if (nf++ > 0) {
            rc = mf_buf_append_u8(out, ',');
        }
        if (mf_ok(rc)) {
            rc = mf_json_put_str(out, s->feds[k].td_id);
        }
        if (mf_ok(rc)) {
            rc = mf_buf_append_u8(out, ':');
        }
        if (mf_ok(rc)) {
            rc = mf_json_put_str(out, mf_buf_cstr(&s->feds[k].pem));
        }
    }
    if (mf_ok(rc)) {
        rc = mf_buf_append_str(out, "}}");
    }
    if (!mf_ok(rc) || n == 0) {
        /* nothing half-written stays behind (the buffer is secret, so the
         * dropped bytes are wiped by the next reset or cleanup) */
        mf_wipe(out->data != NULL ? out->data + start : NULL, out->len - start);
        out->len = start;
        if (out->data != NULL) {
            out->data[start] = '\0';
        }
        return rc;
    }
    *count = n;
    return MF_RES_OK;
}

/* see agent_state.h */
mf_res agent_snap_render_x509_fn(const struct agent_snap *s, const struct mf_selector *have,
                                 size_t n_have, struct mf_buf *out, size_t *count, void *arg)
{
    (void)arg;
    return agent_snap_render_x509(s, have, n_have, out, count);
}

/* ---- answers rendered once per snapshot ---------------------------------- */

/* FNV-1a over the kind and the selectors. */
static uint64_t answer_hash(enum agent_answer_kind kind, const struct mf_selector *have,
                            size_t n_have)
{
    uint64_t h = 14695981039346656037ull;
    h = (h ^ (uint64_t)kind) * 1099511628211ull;
    for (size_t i = 0; i < n_have; i++) {
        h = (h ^ (uint64_t)have[i].kind) * 1099511628211ull;
        for (size_t k = 0; k < have[i].value_len; k++) {
            h = (h ^ (uint8_t)have[i].value[k]) * 1099511628211ull;
        }
        h = (h ^ 0xffu) * 1099511628211ull; /* separator */
    }
    return h;
}

static bool answer_is(const struct agent_answer *a, enum agent_answer_kind kind, uint64_t hash,
                      const struct mf_selector *have, size_t n_have)
{
    if (a->kind != kind || a->hash != hash || a->n_sels != n_have) {
        return false;
    }
    for (size_t i = 0; i < n_have; i++) {
        if (mf_selector_cmp(&a->sels[i], &have[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* An answer stays right until an SVID of the snapshot crosses its NotAfter
 * (agent_svid_servable), or the clock goes back before its making. */
static bool answer_fresh(const struct agent_answer *a, int64_t now)
{
    return now >= a->made_ms && now < a->until_ms;
}

/* see agent_state.h */
void agent_answer_unref(struct agent_answer *a)
{
    if (a == NULL || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) != 0) {
        return;
    }
    mf_selectors_free(a->sels, a->n_sels);
    mf_buf_cleanup(&a->body); /* secret: wiped */
    free(a);
}

/* see agent_state.h */
mf_res agent_snap_answer(struct agent_snap *s, enum agent_answer_kind kind,
                         const struct mf_selector *have, size_t n_have, agent_answer_fn render,
                         void *arg, struct agent_answer **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(render);
    MF_ENSURE(kind < AGENT_ANSWER_KINDS && (n_have == 0 || have != NULL), MF_ERR_USAGE_ARG);
    uint64_t hash = answer_hash(kind, have, n_have);
    int64_t now = mf_now_ms();
    pthread_mutex_lock(&s->answers_mu);
    for (struct agent_answer *a = s->answers; a != NULL; a = a->next) {
        if (answer_is(a, kind, hash, have, n_have) && answer_fresh(a, now)) {
            __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&s->answers_mu);
            *out = a;
            return MF_RES_OK;
        }
    }
    pthread_mutex_unlock(&s->answers_mu);

    struct agent_answer *a = calloc(1, sizeof(*a));
    MF_TRY_PTR(a, MF_ERR_NOMEM);
    a->refs = 1;
    a->kind = kind;
    a->hash = hash;
    a->made_ms = now;
    a->until_ms = INT64_MAX;
    mf_buf_init(&a->body, AGENT_RENDER_MAX, MF_BUF_SECRET);
    mf_res r = render(s, have, n_have, &a->body, &a->count, arg);
    if (!mf_ok(r)) {
        agent_answer_unref(a);
        return r;
    }
    for (size_t i = 0; i < s->n; i++) {
        int64_t t = s->svids[i].not_after * 1000;
        if (t > now && t < a->until_ms) {
            a->until_ms = t;
        }
    }
    bool keep = n_have == 0;
    if (n_have > 0) {
        a->sels = calloc(n_have, sizeof(*a->sels));
        keep = a->sels != NULL;
        for (size_t i = 0; keep && i < n_have; i++) {
            keep = mf_ok(mf_selector_copy(&have[i], &a->sels[i]));
            a->n_sels += keep ? 1 : 0;
        }
    }
    if (keep) {
        /* replaces a stale answer for the same workload; another thread
         * may have kept a fresh one meanwhile: then this one is not kept */
        struct agent_answer *stale = NULL;
        pthread_mutex_lock(&s->answers_mu);
        for (struct agent_answer **pp = &s->answers; *pp != NULL; pp = &(*pp)->next) {
            if (answer_is(*pp, kind, hash, have, n_have)) {
                if (answer_fresh(*pp, now)) {
                    keep = false;
                } else {
                    stale = *pp;
                    *pp = stale->next;
                    s->n_answers--;
                }
                break;
            }
        }
        if (keep && s->n_answers < AGENT_ANSWERS_MAX) {
            __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
            a->next = s->answers;
            s->answers = a;
            s->n_answers++;
        }
        pthread_mutex_unlock(&s->answers_mu);
        agent_answer_unref(stale);
    }
    *out = a;
    return MF_RES_OK;
}

/* see agent_state.h */
mf_res agent_snap_render_bundles(const struct agent_snap *s, struct mf_buf *out)
{
    MF_ENSURE_REF(s);
    MF_TRY(mf_buf_append_str(out, "{\"bundles\":{"));
    MF_TRY(mf_json_put_str(out, s->td_id));
    MF_TRY(mf_buf_append_u8(out, ':'));
    MF_TRY(mf_json_put_str(out, mf_buf_cstr(&s->bundle_pem)));
    return mf_buf_append_str(out, "}}");
}

/* see agent_state.h */
mf_res agent_snap_render_bundles_for(const struct agent_snap *s, const struct mf_selector *have,
                                     size_t n_have, struct mf_buf *out)
{
    MF_ENSURE_REF(s);
    MF_TRY(mf_buf_append_str(out, "{\"bundles\":{"));
    MF_TRY(mf_json_put_str(out, s->td_id));
    MF_TRY(mf_buf_append_u8(out, ':'));
    MF_TRY(mf_json_put_str(out, mf_buf_cstr(&s->bundle_pem)));
    for (size_t k = 0; k < s->n_feds; k++) {
        if (!agent_snap_fed_visible(s, k, have, n_have)) {
            continue;
        }
        MF_TRY(mf_buf_append_u8(out, ','));
        MF_TRY(mf_json_put_str(out, s->feds[k].td_id));
        MF_TRY(mf_buf_append_u8(out, ':'));
        MF_TRY(mf_json_put_str(out, mf_buf_cstr(&s->feds[k].pem)));
    }
    return mf_buf_append_str(out, "}}");
}

/* ---- publication -------------------------------------------------------- */

/* see agent_state.h */
mf_res agent_state_init(struct agent_state *st)
{
    pthread_condattr_t ca;
    MF_ENSURE_REF(st);
    memset(st, 0, sizeof(*st));
    mf_certs_init(&st->id_chain);
    MF_ENSURE(pthread_mutex_init(&st->mu, NULL) == 0, MF_ERR_INTERNAL);
    /* waits are timed on the monotonic clock: wall-clock jumps (and the
     * test clock hook) must not stall or spin the watch streams */
    MF_ENSURE(pthread_condattr_init(&ca) == 0, MF_ERR_INTERNAL);
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int r = pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    MF_ENSURE(r == 0, MF_ERR_INTERNAL);
    return MF_RES_OK;
}

/* see agent_state.h */
void agent_state_cleanup(struct agent_state *st)
{
    if (st == NULL) {
        return;
    }
    agent_snap_unref(st->cur);
    mf_key_free(st->id_key);
    mf_certs_cleanup(&st->id_chain);
    mf_bundle_free(st->id_trust);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    memset(st, 0, sizeof(*st));
}

/* see agent_state.h */
void agent_state_publish(struct agent_state *st, struct agent_snap *snap)
{
    pthread_mutex_lock(&st->mu);
    struct agent_snap *old = st->cur;
    st->version++;
    snap->version = st->version;
    st->cur = snap;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    agent_snap_unref(old);
}

/* see agent_state.h */
struct agent_snap *agent_state_get(struct agent_state *st, uint64_t *version)
{
    pthread_mutex_lock(&st->mu);
    struct agent_snap *s = agent_snap_ref(st->cur);
    if (version != NULL) {
        *version = st->version;
    }
    pthread_mutex_unlock(&st->mu);
    return s;
}

/* see agent_state.h */
bool agent_state_wait(struct agent_state *st, uint64_t seen, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->mu);
    while (st->version == seen && !st->stopping) {
        if (pthread_cond_timedwait(&st->cv, &st->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    bool changed = st->version != seen;
    pthread_mutex_unlock(&st->mu);
    return changed;
}

/* see agent_state.h */
void agent_state_stop(struct agent_state *st)
{
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* see agent_state.h */
bool agent_state_stopping(struct agent_state *st)
{
    pthread_mutex_lock(&st->mu);
    bool s = st->stopping;
    pthread_mutex_unlock(&st->mu);
    return s;
}

/* A private key copied through its PKCS#8 DER (keys are not refcounted). */
static mf_res key_dup(const struct mf_key *key, struct mf_key **out)
{
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CERT, MF_BUF_SECRET);
    mf_res r = mf_key_to_der(key, &der);
    if (mf_ok(r)) {
        r = mf_key_from_der(der.data, der.len, out);
    }
    mf_buf_cleanup(&der);
    return r;
}

static mf_res certs_dup(const struct mf_certs *src, struct mf_certs *dst)
{
    mf_certs_init(dst);
    for (size_t i = 0; i < src->n; i++) {
        mf_res r = mf_certs_push(dst, src->v[i]);
        if (!mf_ok(r)) {
            mf_certs_cleanup(dst);
            return r;
        }
    }
    return MF_RES_OK;
}

/* see agent_state.h */
mf_res agent_state_set_identity(struct agent_state *st, const struct mf_key *key,
                                const struct mf_certs *chain, struct mf_bundle *trust)
{
    struct mf_key *k = NULL;
    struct mf_certs cs;
    MF_ENSURE_REF(st);
    mf_certs_init(&cs);
    if (key != NULL) {
        MF_ENSURE_REF(chain);
        MF_TRY(key_dup(key, &k));
        mf_res r = certs_dup(chain, &cs);
        if (!mf_ok(r)) {
            mf_key_free(k);
            return r;
        }
    }
    pthread_mutex_lock(&st->mu);
    if (k != NULL) {
        mf_key_free(st->id_key);
        mf_certs_cleanup(&st->id_chain);
        st->id_key = k;
        st->id_chain = cs;
    }
    if (trust != NULL) {
        mf_bundle_free(st->id_trust);
        st->id_trust = mf_bundle_ref(trust);
    }
    st->id_gen++;
    pthread_mutex_unlock(&st->mu);
    return MF_RES_OK;
}

/* see agent_state.h */
mf_res agent_state_copy_identity(struct agent_state *st, uint64_t *gen, struct mf_key **key,
                                 struct mf_certs *chain, struct mf_bundle **trust)
{
    mf_res r;
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(gen);
    *key = NULL;
    *trust = NULL;
    mf_certs_init(chain);
    pthread_mutex_lock(&st->mu);
    if (st->id_gen == *gen || st->id_key == NULL) {
        pthread_mutex_unlock(&st->mu);
        return MF_RAISE_MSG(MF_ERR_IO_NOT_FOUND, "no new agent identity");
    }
    r = key_dup(st->id_key, key);
    if (mf_ok(r)) {
        r = certs_dup(&st->id_chain, chain);
    }
    if (mf_ok(r)) {
        *trust = mf_bundle_ref(st->id_trust);
        *gen = st->id_gen;
    }
    pthread_mutex_unlock(&st->mu);
    if (!mf_ok(r)) {
        mf_key_free(*key);
        *key = NULL;
    }
    return r;
}
