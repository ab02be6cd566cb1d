/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_jwt: the JWT-SVID cache and its CA connection. See agent_jwt.h.
 */
#include "agent/agent_jwt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_client.h"
#include "api/core/mf_log.h"
#include "api/core/mf_time.h"

/* Tokens closer than this to their expiry are not served from the cache
 * when the CA cannot be reached: the workload would hand on a token that a
 * relying party refuses moments later. */
#define SERVE_MARGIN_S 5

struct jwt_ent {
    char *key; /* SPIFFE ID, then "\n" + each audience, sorted */
    char *token;
    int64_t exp;      /* seconds */
    int64_t renew_at; /* ms: half of the token's life (R1) */
    uint64_t used;    /* LRU stamp */
};

struct agent_jwt {
    pthread_mutex_t mu; /* protects v, n, clock */
    struct jwt_ent *v;  /* AGENT_JWT_CACHE_MAX slots */
    size_t n;
    uint64_t clock;

    pthread_mutex_t call_mu; /* protects everything below: one CA call at a time */
    struct agent_state *state;
    struct agent_client client;
    struct mf_key *key; /* copy of the agent identity */
    struct mf_certs chain;
    struct mf_bundle *trust;
    uint64_t gen; /* identity generation copied */
};

static void ent_clear(struct jwt_ent *e)
{
    free(e->key);
    free(e->token);
    memset(e, 0, sizeof(*e));
}

/* see agent_jwt.h */
mf_res agent_jwt_new(const char *server, const char *td, struct agent_state *state,
                     struct agent_jwt **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(state);
    struct agent_jwt *j = calloc(1, sizeof(*j));
    MF_TRY_PTR(j, MF_ERR_NOMEM);
    j->v = calloc(AGENT_JWT_CACHE_MAX, sizeof(*j->v));
    if (j->v == NULL) {
        free(j);
        MF_BAIL(MF_ERR_NOMEM);
    }
    mf_certs_init(&j->chain);
    j->state = state;
    mf_res r = agent_client_init(&j->client, server, td, NULL);
    if (!mf_ok(r)) {
        free(j->v);
        free(j);
        return r;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_mutex_init(&j->call_mu, NULL);
    *out = j;
    return MF_RES_OK;
}

/* see agent_jwt.h */
void agent_jwt_free(struct agent_jwt *j)
{
    if (j == NULL) {
        return;
    }
    for (size_t i = 0; i < j->n; i++) {
        ent_clear(&j->v[i]);
    }
    free(j->v);
    agent_client_cleanup(&j->client);
    mf_key_free(j->key);
    mf_certs_cleanup(&j->chain);
    mf_bundle_free(j->trust);
    pthread_mutex_destroy(&j->mu);
    pthread_mutex_destroy(&j->call_mu);
    free(j);
}

/* see agent_jwt.h */
void agent_jwt_svids_free(struct agent_jwt_svid *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].spiffe_id);
        free(v[i].hint);
        free(v[i].token);
    }
    free(v);
}

/* ---- requests ------------------------------------------------------------------ */

/* Audiences must be 1..MF_JWT_AUD_LEN_MAX printable bytes: they become cache
 * keys (joined by "\n") and JSON strings. */
static mf_res check_audiences(const char *const *aud, size_t n)
{
    MF_ENSURE_MSG(n >= 1, MF_ERR_USAGE_ARG, "audience must be specified");
    MF_ENSURE_MSG(n <= MF_JWT_AUD_MAX, MF_ERR_USAGE_ARG, "at most %d audiences", MF_JWT_AUD_MAX);
    for (size_t i = 0; i < n; i++) {
        MF_ENSURE_MSG(aud[i] != NULL, MF_ERR_USAGE_ARG, "audience %zu is missing", i);
        size_t len = strlen(aud[i]);
        MF_ENSURE_MSG(len >= 1 && len <= MF_JWT_AUD_LEN_MAX, MF_ERR_USAGE_ARG,
                      "audience %zu must be 1..%d bytes", i, MF_JWT_AUD_LEN_MAX);
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)aud[i][k];
            MF_ENSURE_MSG(c >= 0x20 && c != 0x7f, MF_ERR_USAGE_ARG,
                          "audience %zu holds a control character", i);
        }
    }
    return MF_RES_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The cache key of (id, sorted unique audiences). */
static mf_res cache_key(const char *id, const char *const *aud, size_t n, char **out)
{
    struct mf_buf k;
    mf_buf_init(&k, MF_SPIFFE_ID_MAX + (size_t)MF_JWT_AUD_MAX * (MF_JWT_AUD_LEN_MAX + 1) + 1, 0);
    mf_res r = mf_buf_append_str(&k, id);
    for (size_t i = 0; mf_ok(r) && i < n; i++) {
        r = mf_buf_append_u8(&k, '\n');
        if (mf_ok(r)) {
            r = mf_buf_append_str(&k, aud[i]);
        }
    }
    if (mf_ok(r)) {
        *out = strdup(mf_buf_cstr(&k));
        if (*out == NULL) {
            r = MF_RAISE(MF_ERR_NOMEM);
        }
    }
    mf_buf_cleanup(&k);
    return r;
}

/* Caller holds j->mu. */
static struct jwt_ent *cache_find(struct agent_jwt *j, const char *key)
{
    for (size_t i = 0; i < j->n; i++) {
        if (strcmp(j->v[i].key, key) == 0) {
            j->v[i].used = ++j->clock;
            return &j->v[i];
        }
    }
    return NULL;
}

/* A copy of the cached token for key when it is due for renewal no sooner
 * than now_ms (fresh), or, with stale_ok, while it is still valid. */
static bool cache_get(struct agent_jwt *j, const char *key, int64_t now_ms, bool stale_ok,
                      char **token, int64_t *exp)
{
    bool hit = false;
    pthread_mutex_lock(&j->mu);
    struct jwt_ent *e = cache_find(j, key);
    if (e != NULL &&
        (now_ms < e->renew_at || (stale_ok && now_ms / 1000 + SERVE_MARGIN_S < e->exp))) {
        *token = strdup(e->token);
        *exp = e->exp;
        hit = *token != NULL;
    }
    pthread_mutex_unlock(&j->mu);
    return hit;
}

/* Takes ownership of key and token. A full cache loses its expired tokens
 * first, then the least recently used one. */
static void cache_put(struct agent_jwt *j, char *key, char *token, int64_t iat, int64_t exp)
{
    pthread_mutex_lock(&j->mu);
    struct jwt_ent *e = cache_find(j, key);
    if (e == NULL) {
        if (j->n == AGENT_JWT_CACHE_MAX) {
            int64_t now = mf_now();
            for (size_t i = j->n; i > 0; i--) {
                if (j->v[i - 1].exp <= now) {
                    ent_clear(&j->v[i - 1]);
                    j->v[i - 1] = j->v[--j->n];
                    memset(&j->v[j->n], 0, sizeof(j->v[0]));
                }
            }
        }
        if (j->n == AGENT_JWT_CACHE_MAX) {
            size_t lru = 0;
            for (size_t i = 1; i < j->n; i++) {
                if (j->v[i].used < j->v[lru].used) {
                    lru = i;
                }
            }
            ent_clear(&j->v[lru]);
            j->v[lru] = j->v[--j->n];
            memset(&j->v[j->n], 0, sizeof(j->v[0]));
        }
        e = &j->v[j->n++];
    } else {
        ent_clear(e);
    }
    e->key = key;
    e->token = token;
    e->exp = exp;
    e->renew_at = iat * 1000 + (exp - iat) * 500;
    e->used = ++j->clock;
    pthread_mutex_unlock(&j->mu);
}

/* Picks up a new agent identity or trust bundle. Caller holds call_mu. */
static mf_res refresh_identity(struct agent_jwt *j)
{
    struct mf_key *key = NULL;
    struct mf_certs chain;
    struct mf_bundle *trust = NULL;
    mf_res r = agent_state_copy_identity(j->state, &j->gen, &key, &chain, &trust);
    if (r.err == MF_ERR_IO_NOT_FOUND) {
        MF_ENSURE_MSG(j->key != NULL, MF_ERR_STATE, "the agent has no identity yet");
        return MF_RES_OK;
    }
    MF_TRY(r);
    if (trust != NULL) {
        r = agent_client_set_trust(&j->client, trust);
    }
    if (!mf_ok(r)) {
        mf_key_free(key);
        mf_certs_cleanup(&chain);
        mf_bundle_free(trust);
        j->gen = 0; /* try again next time */
        return r;
    }
    mf_key_free(j->key);
    mf_certs_cleanup(&j->chain);
    mf_bundle_free(j->trust);
    j->key = key;
    j->chain = chain;
    j->trust = trust;
    agent_client_set_identity(&j->client, j->key, &j->chain);
    return MF_RES_OK;
}

/* Asks the CA and checks the answer as a relying party would (E27's rule,
 * applied to JWTs): our own bundle, the audience set, the sub. */
static mf_res fetch_from_ca(struct agent_jwt *j, const struct agent_snap *snap, const char *id,
                            const char *const *aud, size_t n_aud, char **token, int64_t *iat,
                            int64_t *exp)
{
    mf_res rc;
    char *tok = NULL;
    struct mf_jwt jw;
    memset(&jw, 0, sizeof(jw));
    *token = NULL;
    MF_TRY_OUT(refresh_identity(j));
    MF_TRY_OUT(agent_client_jwt(&j->client, id, aud, n_aud, &tok));
    MF_TRY_OUT(agent_jwt_validate(snap, NULL, 0, aud[0], tok, strlen(tok), &jw));
    MF_ENSURE_OUT_MSG(strcmp(jw.sub.str, id) == 0 && mf_jwt_aud_equal(&jw, aud, n_aud),
                      MF_ERR_AUTH_SVID, "the CA signed a JWT for %s, not the one asked for",
                      jw.sub.str);
    *iat = jw.iat > 0 ? jw.iat : mf_now();
    *exp = jw.exp;
    *token = tok;
    tok = NULL;
    char when[MF_RFC3339_LEN];
    mf_time_format(jw.exp, when);
    mf_log_event(MF_LOG_INFO, __func__, "jwt-svid issued", "spiffe_id", id, "kid", jw.kid,
                 "not_after", when, NULL);
    rc = MF_RES_OK;
out:
    free(tok);
    mf_jwt_cleanup(&jw);
    return rc;
}

/* One token for id and the (sorted, unique) audiences. */
static mf_res get_one(struct agent_jwt *j, const struct agent_snap *snap, const char *id,
                      const char *const *aud, size_t n_aud, char **token, int64_t *exp)
{
    char *key = NULL;
    MF_TRY(cache_key(id, aud, n_aud, &key));
    if (cache_get(j, key, mf_now_ms(), false, token, exp)) {
        free(key);
        return MF_RES_OK;
    }
    pthread_mutex_lock(&j->call_mu);
    /* another request may have fetched it while we waited */
    if (cache_get(j, key, mf_now_ms(), false, token, exp)) {
        pthread_mutex_unlock(&j->call_mu);
        free(key);
        return MF_RES_OK;
    }
    char *tok = NULL;
    int64_t iat = 0;
    mf_res r = fetch_from_ca(j, snap, id, aud, n_aud, &tok, &iat, exp);
    pthread_mutex_unlock(&j->call_mu);
    if (mf_ok(r)) {
        *token = strdup(tok);
        if (*token == NULL) {
            free(tok);
            free(key);
            MF_BAIL(MF_ERR_NOMEM);
        }
        cache_put(j, key, tok, iat, *exp);
        return MF_RES_OK;
    }
    /* the CA is away: a cached token that is still valid will do */
    if (cache_get(j, key, mf_now_ms(), true, token, exp)) {
        mf_log_warn_r(r, "serving a cached JWT-SVID for %s", id);
        free(key);
        return MF_RES_OK;
    }
    free(key);
    return r;
}

/* see agent_jwt.h */
mf_res agent_jwt_fetch(struct agent_jwt *j, const struct agent_snap *snap,
                       const struct mf_selector *have, size_t n_have, const char *spiffe_id,
                       const char *const *aud, size_t n_aud, struct agent_jwt_svid **out,
                       size_t *n_out)
{
    mf_res rc;
    const char *sorted[MF_JWT_AUD_MAX];
    struct agent_jwt_svid *v = NULL;
    size_t n = 0;
    MF_ENSURE_REF(j);
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(n_out);
    *out = NULL;
    *n_out = 0;
    MF_TRY(check_audiences(aud, n_aud));
    bool one = spiffe_id != NULL && spiffe_id[0] != '\0';
    if (one) {
        struct mf_spiffe_id id;
        MF_TRY(mf_spiffeid_parse_cstr(spiffe_id, &id));
    }
    memcpy(sorted, aud, n_aud * sizeof(*aud));
    qsort(sorted, n_aud, sizeof(*sorted), cmp_str);
    size_t n_sorted = 0;
    for (size_t i = 0; i < n_aud; i++) {
        if (n_sorted == 0 || strcmp(sorted[n_sorted - 1], sorted[i]) != 0) {
            sorted[n_sorted++] = sorted[i];
        }
    }
    size_t cap = snap != NULL ? snap->n : 0;
    v = calloc(cap > 0 ? cap : 1, sizeof(*v));
    MF_TRY_PTR(v, MF_ERR_NOMEM);
    for (size_t i = 0; snap != NULL && i < snap->n; i++) {
        const struct agent_snap_svid *s = &snap->svids[i];
        if (!agent_snap_visible(snap, i, have, n_have) ||
            (one && strcmp(s->spiffe_id, spiffe_id) != 0)) {
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++) {
            dup = strcmp(v[k].spiffe_id, s->spiffe_id) == 0;
        }
        if (dup) {
            continue; /* two entries for one ID: one token */
        }
        v[n].spiffe_id = strdup(s->spiffe_id);
        v[n].hint = strdup(s->hint);
        n++;
        MF_ENSURE_OUT(v[n - 1].spiffe_id != NULL && v[n - 1].hint != NULL, MF_ERR_NOMEM);
    }
    if (n == 0) {
        rc = MF_RAISE_MSG(MF_ERR_POLICY_NO_ENTRY,
                          one ? "no identity %s for this workload" : "no identity issued",
                          one ? spiffe_id : "");
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        MF_TRY_OUT(
            get_one(j, snap, v[k].spiffe_id, sorted, n_sorted, &v[k].token, &v[k].expires_at));
    }
    *out = v;
    *n_out = n;
    v = NULL;
    rc = MF_RES_OK;
out:
    agent_jwt_svids_free(v, n);
    return rc;
}

/* see agent_jwt.h */
mf_res agent_jwt_validate(const struct agent_snap *snap, const struct mf_selector *have,
                          size_t n_have, const char *audience, const char *token, size_t len,
                          struct mf_jwt *out)
{
    struct mf_bundle_set set;
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE_MSG(audience != NULL && audience[0] != '\0', MF_ERR_USAGE_ARG,
                  "audience must be specified");
    MF_ENSURE_MSG(token != NULL && len > 0, MF_ERR_USAGE_ARG, "svid must be specified");
    mf_bundle_set_init(&set);
    mf_res r = agent_snap_trust(snap, have, n_have, &set);
    if (mf_ok(r)) {
        r = mf_jwt_validate(token, len, &set, audience, mf_now(), out);
    }
    mf_bundle_set_cleanup(&set);
    return r;
}
