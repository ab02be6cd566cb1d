/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_fed: federation relationships, foreign bundles and their refresh
 * (see ca_fed.h).
 */
#include "ca/ca_fed.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"
#include "api/core/mf_time.h"
#include "api/net/mf_http.h"
#include "ca/ca_metrics.h"
#include "ca/ca_wire.h"

#define STATUS_MAX 1024 /* relationships refreshed (and their last fetch remembered) */
#define ERR_MAX    400

/* What the last fetch of one relationship did (memory only). */
struct fed_status {
    char td[MF_TD_MAX + 1];
    int64_t next_at;      /* seconds, when the thread fetches it next */
    int64_t last_attempt; /* 0 = never */
    int64_t last_success; /* 0 = never */
    int64_t interval;
    char last_error[ERR_MAX]; /* "" after a success */
};

struct ca_fed {
    struct ca_ctx *ctx;
    pthread_t thread;
    bool running;
    pthread_mutex_t fetch_mu; /* one fetch-and-store at a time */
    pthread_mutex_t mu;       /* protects st, n_st, stop, wake */
    pthread_cond_t cv;
    struct fed_status st[STATUS_MAX];
    size_t n_st;
    bool stop;
    bool wake;
};

/* ---- pure helpers ------------------------------------------------------------ */

/* see ca_fed.h */
mf_res ca_fed_parse_td(const char *own_td, const char *s, char out[MF_TD_MAX + 1])
{
    MF_ENSURE_REF(s);
    mf_res r = mf_td_parse(s, strlen(s), out);
    MF_ENSURE_MSG(mf_ok(r), MF_ERR_USAGE_ARG,
                  "--trust-domain '%s' is not a trust domain name (such as example.org)", s);
    MF_ENSURE_MSG(own_td == NULL || strcmp(out, own_td) != 0, MF_ERR_USAGE_ARG,
                  "--trust-domain %s is this CA's own trust domain", out);
    return MF_RES_OK;
}

/* see ca_fed.h */
mf_res ca_fed_split_url(const char *url, char *host_port, size_t hp_cap, char *path,
                        size_t path_cap)
{
    MF_ENSURE_REF(url);
    const char *p = url;
    MF_ENSURE_MSG(strncmp(p, "https://", 8) == 0, MF_ERR_USAGE_ARG,
                  "--endpoint-url '%s' must be an https:// URL", url);
    p += 8;
    size_t auth = strcspn(p, "/?#");
    MF_ENSURE_MSG(auth > 0, MF_ERR_USAGE_ARG, "--endpoint-url '%s' has no host", url);
    MF_ENSURE_MSG(memchr(p, '@', auth) == NULL, MF_ERR_USAGE_ARG,
                  "--endpoint-url '%s' must not carry user information", url);
    for (size_t i = 0; i < auth; i++) {
        unsigned char c = (unsigned char)p[i];
        MF_ENSURE_MSG(c > 0x20 && c < 0x7f, MF_ERR_USAGE_ARG,
                      "--endpoint-url '%s' has a bad character in its host", url);
    }
    /* a port after the host (IPv6 literals are [..]:port) */
    const char *close = memchr(p, ']', auth);
    const char *colon = NULL;
    for (size_t i = close != NULL ? (size_t)(close - p) : 0; i < auth; i++) {
        if (p[i] == ':') {
            colon = p + i;
        }
    }
    int n;
    if (colon != NULL) {
        size_t pl = auth - (size_t)(colon + 1 - p);
        MF_ENSURE_MSG(pl > 0 && pl <= 5, MF_ERR_USAGE_ARG, "--endpoint-url '%s' has a bad port",
                      url);
        for (size_t i = 0; i < pl; i++) {
            MF_ENSURE_MSG(colon[1 + i] >= '0' && colon[1 + i] <= '9', MF_ERR_USAGE_ARG,
                          "--endpoint-url '%s' has a bad port", url);
        }
        n = snprintf(host_port, hp_cap, "%.*s", (int)auth, p);
    } else {
        n = snprintf(host_port, hp_cap, "%.*s:443", (int)auth, p);
    }
    MF_ENSURE_MSG(n > 0 && (size_t)n < hp_cap, MF_ERR_USAGE_ARG, "--endpoint-url host too long");
    const char *rest = p + auth;
    MF_ENSURE_MSG(strchr(rest, '#') == NULL, MF_ERR_USAGE_ARG,
                  "--endpoint-url '%s' must not have a fragment", url);
    for (const char *q = rest; *q != '\0'; q++) {
        unsigned char c = (unsigned char)*q;
        MF_ENSURE_MSG(c > 0x20 && c < 0x7f, MF_ERR_USAGE_ARG,
                      "--endpoint-url '%s' has a bad character in its path", url);
    }
    n = snprintf(path, path_cap, "%s%s", rest[0] == '/' ? "" : "/", rest);
    MF_ENSURE_MSG(n > 0 && (size_t)n < path_cap, MF_ERR_USAGE_ARG, "--endpoint-url path too long");
    return MF_RES_OK;
}

/* see ca_fed.h */
mf_res ca_fed_check(const char *own_td, struct ca_federation *f)
{
    MF_ENSURE_REF(f);
    char td[MF_TD_MAX + 1];
    char hp[300], path[CA_FED_URL_MAX + 1];
    MF_TRY(ca_fed_parse_td(own_td, f->td, td));
    memcpy(f->td, td, strlen(td) + 1);
    MF_ENSURE_MSG(f->url[0] != '\0', MF_ERR_USAGE_ARG, "--endpoint-url is required");
    MF_TRY(ca_fed_split_url(f->url, hp, sizeof(hp), path, sizeof(path)));
    if (strcmp(f->profile, "https_spiffe") == 0) {
        struct mf_spiffe_id id;
        MF_ENSURE_MSG(f->endpoint_id[0] != '\0', MF_ERR_USAGE_ARG,
                      "profile https_spiffe needs --endpoint-spiffe-id (the SPIFFE ID the "
                      "endpoint presents)");
        mf_res r = mf_spiffeid_parse_cstr(f->endpoint_id, &id);
        MF_ENSURE_MSG(mf_ok(r), MF_ERR_USAGE_ARG, "--endpoint-spiffe-id '%s' is not a SPIFFE ID",
                      f->endpoint_id);
    } else if (strcmp(f->profile, "https_web") == 0) {
        MF_ENSURE_MSG(f->endpoint_id[0] == '\0', MF_ERR_USAGE_ARG,
                      "--endpoint-spiffe-id is for profile https_spiffe only");
    } else {
        MF_BAIL_MSG(MF_ERR_USAGE_ARG, "--profile '%s' must be https_spiffe or https_web",
                    f->profile);
    }
    return MF_RES_OK;
}

/* see ca_fed.h */
mf_res ca_fed_parse_bundle(const char *td, const char *text, size_t len, struct mf_bundle **out)
{
    MF_ENSURE_REF(text);
    MF_ENSURE_REF(out);
    *out = NULL;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) {
        i++;
    }
    MF_ENSURE_MSG(i < len, MF_ERR_PROTO, "the bundle is empty");
    MF_ENSURE_MSG(memchr(text, '\0', len) == NULL, MF_ERR_PROTO, "the bundle contains a NUL");
    struct mf_bundle *b = NULL;
    mf_res r = text[i] == '{' ? mf_bundle_from_jwks(td, text, len, &b)
                              : mf_bundle_from_pem(td, text, len, &b);
    if (!mf_ok(r)) {
        char why[300];
        mf_err_format(r, why, sizeof(why));
        MF_BAIL_MSG(MF_ERR_PROTO, "not a SPIFFE bundle (JWKS) or PEM certificates: %s", why);
    }
    if (b->x509.n == 0 && b->n_jwt == 0) {
        mf_bundle_free(b);
        MF_BAIL_MSG(MF_ERR_PROTO, "the bundle holds no authority");
    }
    *out = b;
    return MF_RES_OK;
}

/* see ca_fed.h */
int64_t ca_fed_interval(int64_t hint, int64_t floor_s)
{
    int64_t v = hint > 0 ? hint : CA_FED_DEFAULT_REFRESH;
    if (floor_s < 1) {
        floor_s = 1;
    }
    if (v < floor_s) {
        v = floor_s;
    }
    return v > CA_FED_MAX_REFRESH ? CA_FED_MAX_REFRESH : v;
}

/* see ca_fed.h */
mf_res ca_fed_accept(const struct mf_bundle *cur, const struct mf_bundle *next, bool *store)
{
    MF_ENSURE_REF(next);
    MF_ENSURE_REF(store);
    *store = true;
    if (cur == NULL) {
        return MF_RES_OK;
    }
    /* a peer that sets no sequence: the most recent fetch wins (F11) */
    MF_ENSURE_MSG(next->sequence == 0 || next->sequence >= cur->sequence, MF_ERR_POLICY_DENIED,
                  "the endpoint served spiffe_sequence %llu, older than the stored %llu; kept "
                  "the stored bundle",
                  (unsigned long long)next->sequence, (unsigned long long)cur->sequence);
    if (next->sequence == cur->sequence && mf_bundle_same_keys(cur, next)) {
        *store = false;
    }
    return MF_RES_OK;
}

/* ---- the stored bundles ---------------------------------------------------- */

/* The stored bundle of td, decoded, or NULL (*out) when there is none. */
static mf_res stored_bundle(struct ca_store *st, const char *td, struct mf_bundle **out,
                            int64_t *fetched_at)
{
    struct ca_foreign_bundle *v = NULL;
    size_t n = 0;
    *out = NULL;
    mf_res r = ca_store_fbundle_list(st, td, &v, &n);
    if (r.err == MF_ERR_POLICY_NOT_FOUND) {
        mf_err_clear();
        return MF_RES_OK;
    }
    MF_TRY(r);
    r = mf_bundle_from_jwks(td, v[0].jwks, strlen(v[0].jwks), out);
    if (fetched_at != NULL) {
        *fetched_at = v[0].fetched_at;
    }
    ca_fbundles_free(v, n);
    return r;
}

/* Stores b as td's bundle (source "static" or "endpoint"). */
static mf_res put_bundle(struct ca_store *st, const struct mf_bundle *b, const char *source)
{
    struct mf_buf doc;
    mf_buf_init(&doc, MF_MAX_BUNDLE, 0);
    mf_res r = mf_bundle_to_jwks(b, &doc);
    if (mf_ok(r)) {
        struct ca_foreign_bundle fb = {.jwks = (char *)(uintptr_t)mf_buf_cstr(&doc),
                                       .sequence = (int64_t)b->sequence,
                                       .fetched_at = mf_now()};
        snprintf(fb.td, sizeof(fb.td), "%s", b->td);
        snprintf(fb.source, sizeof(fb.source), "%s", source);
        r = ca_store_fbundle_put(st, &fb);
    }
    mf_buf_cleanup(&doc);
    return r;
}

/* ---- fetching ------------------------------------------------------------------- */

/* Opens the connection a relationship's profile asks for. */
static mf_res connect_endpoint(struct ca_fed *fed, const struct ca_federation *f,
                               const char *host_port, struct mf_http_conn **conn)
{
    mf_res rc;
    struct mf_bundle_set set;
    struct mf_bundle *b = NULL;
    mf_bundle_set_init(&set);
    if (strcmp(f->profile, "https_web") == 0) {
        return mf_http_connect_web(host_port, fed->ctx->cfg.federation_ca_file,
                                   CA_FED_FETCH_TIMEOUT, conn);
    }
    struct mf_spiffe_id id;
    char etd[MF_TD_MAX + 1];
    MF_TRY(mf_spiffeid_parse_cstr(f->endpoint_id, &id));
    mf_spiffeid_td(&id, etd);
    if (strcmp(etd, fed->ctx->cfg.trust_domain) == 0) {
        b = ca_keys_bundle(fed->ctx->keys);
    } else {
        /* F8: the bundle of the endpoint's own trust domain, as last
         * fetched (the operator's bootstrap bundle before the first) */
        MF_TRY_OUT(stored_bundle(fed->ctx->store, etd, &b, NULL));
    }
    MF_ENSURE_OUT_MSG(b != NULL, MF_ERR_AUTH_UNTRUSTED,
                      "no bundle of %s to authenticate the endpoint %s: give one with "
                      "`federation create --bundle FILE` or `bundle set`",
                      etd, f->endpoint_id);
    MF_TRY_OUT(mf_bundle_set_put(&set, b));
    struct mf_tls_client_cfg cfg = {.trust = &set, .expect_server_id = f->endpoint_id};
    rc = mf_http_connect_tls(host_port, &cfg, CA_FED_FETCH_TIMEOUT, conn);
out:
    mf_bundle_free(b);
    mf_bundle_set_cleanup(&set);
    return rc;
}

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* GET the endpoint's bundle. Redirects are followed (at most
 * CA_FED_REDIRECTS): the target must be a valid https URL and pass the
 * same checks as the configured one (for https_spiffe, the same SPIFFE
 * ID); it is never stored, so every refresh starts from f->url (F9). */
static mf_res fetch(struct ca_fed *fed, const struct ca_federation *f, struct mf_bundle **out)
{
    mf_res rc;
    char hp[300], path[CA_FED_URL_MAX + 1];
    char url[CA_FED_URL_MAX + 1];
    struct mf_http_conn *conn = NULL;
    struct mf_http_resp resp;
    mf_http_resp_init(&resp, MF_MAX_BUNDLE);
    *out = NULL;
    snprintf(url, sizeof(url), "%s", f->url);
    for (int hop = 0;; hop++) {
        MF_TRY_OUT(ca_fed_split_url(url, hp, sizeof(hp), path, sizeof(path)));
        MF_TRY_OUT(connect_endpoint(fed, f, hp, &conn));
        static const char *const hdrs[] = {"Accept: application/json", NULL};
        MF_TRY_OUT(mf_http_request(conn, "GET", path, hdrs, NULL, 0, CA_FED_FETCH_TIMEOUT, &resp));
        mf_http_close(conn);
        conn = NULL;
        if (!is_redirect(resp.status)) {
            break;
        }
        MF_ENSURE_OUT_MSG(hop < CA_FED_REDIRECTS, MF_ERR_PROTO_HTTP,
                          "the endpoint redirected more than %d times", CA_FED_REDIRECTS);
        MF_ENSURE_OUT_MSG(resp.location[0] != '\0', MF_ERR_PROTO_HTTP,
                          "the endpoint answered HTTP %d without a usable Location", resp.status);
        if (resp.location[0] == '/') {
            /* a path on the same server */
            int n = snprintf(url, sizeof(url), "https://%s%s", hp, resp.location);
            MF_ENSURE_OUT_MSG(n > 0 && (size_t)n < sizeof(url), MF_ERR_PROTO_HTTP,
                              "redirect target too long");
        } else {
            snprintf(url, sizeof(url), "%s", resp.location);
        }
        mf_log_info("federation: %s redirects (HTTP %d) to %s", f->td, resp.status, url);
        mf_http_resp_cleanup(&resp);
        mf_http_resp_init(&resp, MF_MAX_BUNDLE);
    }
    MF_ENSURE_OUT_MSG(resp.status == 200, MF_ERR_PROTO_HTTP, "the endpoint answered HTTP %d",
                      resp.status);
    rc = mf_bundle_from_jwks(f->td, mf_buf_cstr(&resp.body), resp.body.len, out);
    if (!mf_ok(rc)) {
        char why[300];
        mf_err_format(rc, why, sizeof(why));
        MF_BAIL_OUT(MF_ERR_PROTO, "the endpoint's answer is not a SPIFFE bundle: %s", why);
    }
out:
    mf_http_close(conn);
    mf_http_resp_cleanup(&resp);
    return rc;
}

static struct fed_status *status_of(struct ca_fed *fed, const char *td)
{
    for (size_t i = 0; i < fed->n_st; i++) {
        if (strcmp(fed->st[i].td, td) == 0) {
            return &fed->st[i];
        }
    }
    if (fed->n_st == STATUS_MAX) {
        return NULL;
    }
    struct fed_status *s = &fed->st[fed->n_st++];
    memset(s, 0, sizeof(*s));
    snprintf(s->td, sizeof(s->td), "%s", td);
    return s;
}

/* One fetch of relationship f, stored when accepted; records the outcome
 * and the next instant. */
static mf_res refresh_one(struct ca_fed *fed, const struct ca_federation *f, bool *changed)
{
    struct mf_bundle *next = NULL, *cur = NULL;
    int64_t fetched_at = 0, now = mf_now();
    bool store = false;
    *changed = false;
    pthread_mutex_lock(&fed->fetch_mu);
    mf_res r = fetch(fed, f, &next);
    mf_res sr = stored_bundle(fed->ctx->store, f->td, &cur, &fetched_at);
    if (mf_ok(r)) {
        r = sr;
    }
    if (mf_ok(r)) {
        r = ca_fed_accept(cur, next, &store);
    }
    if (mf_ok(r) && store) {
        r = put_bundle(fed->ctx->store, next, "endpoint");
    }
    pthread_mutex_unlock(&fed->fetch_mu);
    char why[ERR_MAX] = "";
    ca_metrics_federation(mf_ok(r) ? (store ? "stored" : "unchanged")
                                   : (r.err == MF_ERR_POLICY_DENIED ? "refused" : "failed"));
    if (mf_ok(r)) {
        mf_log_info("federation: fetched the bundle of %s from %s: spiffe_sequence %llu, %zu "
                    "X.509 and %zu JWT authorities (%s)",
                    f->td, f->url, (unsigned long long)next->sequence, next->x509.n, next->n_jwt,
                    store ? "stored" : "unchanged");
    } else {
        mf_err_format(r, why, sizeof(why));
        if (cur != NULL) {
            mf_log_warn("federation: cannot fetch the bundle of %s from %s: %s; keeping the "
                        "last bundle (spiffe_sequence %llu, fetched %llds ago)",
                        f->td, f->url, why, (unsigned long long)cur->sequence,
                        (long long)(now - fetched_at));
        } else {
            mf_log_warn("federation: cannot fetch the bundle of %s from %s: %s; no bundle of "
                        "%s yet",
                        f->td, f->url, why, f->td);
        }
    }
    int64_t hint = next != NULL ? next->refresh_hint : (cur != NULL ? cur->refresh_hint : 0);
    pthread_mutex_lock(&fed->mu);
    struct fed_status *s = status_of(fed, f->td);
    if (s != NULL) {
        s->last_attempt = now;
        s->interval = ca_fed_interval(hint, fed->ctx->cfg.federation_min_refresh);
        s->next_at = now + s->interval;
        snprintf(s->last_error, sizeof(s->last_error), "%s", why);
        if (mf_ok(r)) {
            s->last_success = now;
        }
    }
    pthread_mutex_unlock(&fed->mu);
    mf_bundle_free(next);
    mf_bundle_free(cur);
    if (mf_ok(r) && store) {
        *changed = true;
        ca_ctx_changed(fed->ctx);
    }
    if (!mf_ok(r) && mf_err_category(r.err) != MF_CAT_POLICY) {
        return MF_RAISE_MSG(MF_ERR_IO_CONNECT, "%s", why);
    }
    return r;
}

/* see ca_fed.h */
mf_res ca_fed_refresh(struct ca_fed *fed, const char *td, bool *changed)
{
    MF_ENSURE_REF(fed);
    MF_ENSURE_REF(changed);
    struct ca_federation f;
    MF_TRY(ca_store_fed_get(fed->ctx->store, td, &f));
    return refresh_one(fed, &f, changed);
}

/* The refresh thread: every second (or when woken), fetch what is due. */
static void *refresh_main(void *arg)
{
    struct ca_fed *fed = arg;
    for (;;) {
        pthread_mutex_lock(&fed->mu);
        bool stop = fed->stop;
        pthread_mutex_unlock(&fed->mu);
        if (stop) {
            break;
        }
        struct ca_federation *v = NULL;
        size_t n = 0;
        mf_res r = ca_store_fed_list(fed->ctx->store, &v, &n);
        if (!mf_ok(r)) {
            mf_log_warn_r(r, "federation: cannot list the relationships");
        }
        int64_t now = mf_now();
        for (size_t i = 0; i < n; i++) {
            pthread_mutex_lock(&fed->mu);
            struct fed_status *s = status_of(fed, v[i].td);
            bool due = s != NULL && (s->last_attempt == 0 || now >= s->next_at ||
                                     now < s->last_attempt /* clock stepped back */);
            stop = fed->stop;
            pthread_mutex_unlock(&fed->mu);
            if (stop) {
                break;
            }
            if (due) {
                bool changed = false;
                (void)refresh_one(fed, &v[i], &changed);
            }
        }
        free(v);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_mutex_lock(&fed->mu);
        while (!fed->stop && !fed->wake) {
            if (pthread_cond_timedwait(&fed->cv, &fed->mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        fed->wake = false;
        pthread_mutex_unlock(&fed->mu);
    }
    return NULL;
}

/* Forget the status of td (deleted or changed relationship: fetch anew). */
static void reset_status(struct ca_fed *fed, const char *td)
{
    pthread_mutex_lock(&fed->mu);
    for (size_t i = 0; i < fed->n_st; i++) {
        if (strcmp(fed->st[i].td, td) == 0) {
            fed->st[i] = fed->st[--fed->n_st];
            break;
        }
    }
    fed->wake = true;
    pthread_cond_broadcast(&fed->cv);
    pthread_mutex_unlock(&fed->mu);
}

/* see ca_fed.h */
mf_res ca_fed_start(struct ca_ctx *ctx, struct ca_fed **out)
{
    MF_ENSURE_REF(ctx);
    MF_ENSURE_REF(out);
    *out = NULL;
    struct ca_fed *fed = calloc(1, sizeof(*fed));
    MF_TRY_PTR(fed, MF_ERR_NOMEM);
    fed->ctx = ctx;
    pthread_mutex_init(&fed->fetch_mu, NULL);
    pthread_mutex_init(&fed->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fed->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&fed->thread, NULL, refresh_main, fed) != 0) {
        ca_fed_stop(fed);
        MF_BAIL_MSG(MF_ERR_INTERNAL, "cannot start the federation thread");
    }
    fed->running = true;
    *out = fed;
    return MF_RES_OK;
}

/* see ca_fed.h */
void ca_fed_stop(struct ca_fed *fed)
{
    if (fed == NULL) {
        return;
    }
    pthread_mutex_lock(&fed->mu);
    fed->stop = true;
    pthread_cond_broadcast(&fed->cv);
    pthread_mutex_unlock(&fed->mu);
    if (fed->running) {
        pthread_join(fed->thread, NULL);
    }
    pthread_cond_destroy(&fed->cv);
    pthread_mutex_destroy(&fed->mu);
    pthread_mutex_destroy(&fed->fetch_mu);
    free(fed);
}

/* ---- the agents' view -------------------------------------------------------- */

/* see ca_fed.h */
mf_res ca_fed_view(struct ca_store *st, const struct ca_entry *v, size_t n, json_t *view)
{
    mf_res rc = MF_RES_OK;
    MF_ENSURE_REF(view);
    json_t *fb = NULL;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < v[i].n_fed; k++) {
            const char *id = v[i].federates_with[k];
            if (fb != NULL && json_object_get(fb, id) != NULL) {
                continue;
            }
            char td[MF_TD_MAX + 1];
            if (!mf_ok(mf_td_parse(id, strlen(id), td))) {
                continue; /* checked at write time; never trust a row blindly */
            }
            struct ca_foreign_bundle *b = NULL;
            size_t nb = 0;
            mf_res r = ca_store_fbundle_list(st, td, &b, &nb);
            if (r.err == MF_ERR_POLICY_NOT_FOUND) {
                mf_err_clear();
                continue; /* none yet: the entry gets it once there is one */
            }
            MF_TRY_OUT(r);
            json_error_t jerr;
            json_t *doc = json_loads(b[0].jwks, JSON_REJECT_DUPLICATES, &jerr);
            ca_fbundles_free(b, nb);
            MF_ENSURE_OUT_MSG(doc != NULL, MF_ERR_STATE, "stored bundle of %s is corrupt", td);
            if (fb == NULL) {
                fb = json_object();
                if (fb == NULL) {
                    json_decref(doc);
                    MF_BAIL_OUT(MF_ERR_NOMEM, "federated bundles");
                }
            }
            MF_ENSURE_OUT(json_object_set_new(fb, id, doc) == 0, MF_ERR_NOMEM);
        }
    }
    if (fb != NULL) {
        MF_ENSURE_OUT(json_object_set_new(view, "federated_bundles", fb) == 0, MF_ERR_NOMEM);
        fb = NULL;
    }
    rc = MF_RES_OK;
out:
    json_decref(fb);
    return rc;
}

/* ---- admin API ----------------------------------------------------------------- */

/* see ca_fed.h */
bool ca_fed_admin_url(const char *url)
{
    return strncmp(url, "/v1/federations", 15) == 0 || strncmp(url, "/v1/bundles", 11) == 0;
}

static json_t *fed_json(struct ca_fed *fed, const struct ca_federation *f)
{
    char ts[MF_RFC3339_LEN];
    mf_time_format(f->updated_at, ts);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "trust_domain", f->td, "endpoint_url", f->url,
                          "profile", f->profile, "updated_at", ts);
    if (o != NULL && f->endpoint_id[0] != '\0') {
        json_object_set_new(o, "endpoint_spiffe_id", json_string(f->endpoint_id));
    }
    if (o == NULL || fed == NULL) {
        return o;
    }
    pthread_mutex_lock(&fed->mu);
    for (size_t i = 0; i < fed->n_st; i++) {
        const struct fed_status *s = &fed->st[i];
        if (strcmp(s->td, f->td) != 0) {
            continue;
        }
        if (s->last_attempt > 0) {
            mf_time_format(s->last_attempt, ts);
            json_object_set_new(o, "last_attempt", json_string(ts));
        }
        if (s->last_success > 0) {
            mf_time_format(s->last_success, ts);
            json_object_set_new(o, "last_success", json_string(ts));
        }
        if (s->next_at > 0) {
            mf_time_format(s->next_at, ts);
            json_object_set_new(o, "next_refresh", json_string(ts));
        }
        if (s->last_error[0] != '\0') {
            json_object_set_new(o, "last_error", json_string(s->last_error));
        }
    }
    pthread_mutex_unlock(&fed->mu);
    return o;
}

static json_t *fbundle_json(const struct ca_foreign_bundle *b)
{
    char ts[MF_RFC3339_LEN];
    mf_time_format(b->fetched_at, ts);
    struct mf_bundle *x = NULL;
    size_t nx = 0, nj = 0;
    if (mf_ok(mf_bundle_from_jwks(b->td, b->jwks, strlen(b->jwks), &x))) {
        nx = x->x509.n;
        nj = x->n_jwt;
    }
    mf_bundle_free(x);
    return json_pack("{s:s,s:I,s:s,s:s,s:I,s:I}", "trust_domain", b->td, "spiffe_sequence",
                     (json_int_t)b->sequence, "fetched_at", ts, "source", b->source,
                     "x509_authorities", (json_int_t)nx, "jwt_authorities", (json_int_t)nj);
}

/* {"trust_domain":...} bodies, plus the given optional members. */
static mf_res parse_body(const struct mf_httpd_req *req, const char *const *keys, json_t **doc,
                         const char **td)
{
    *doc = NULL;
    MF_TRY(mf_json_parse((const char *)req->body.data, req->body.len, MF_MAX_BUNDLE + 4096, doc));
    MF_TRY(mf_json_only_keys(*doc, keys));
    return mf_json_str(*doc, "trust_domain", true, MF_SPIFFE_ID_MAX, td);
}

static enum MHD_Result reply(struct MHD_Connection *conn, mf_res r, unsigned status, json_t *o)
{
    if (!mf_ok(r)) {
        json_decref(o);
        return mf_httpd_reply_res(conn, r);
    }
    if (o == NULL) {
        return mf_httpd_reply_res(conn, MF_RAISE(MF_ERR_NOMEM));
    }
    return mf_httpd_reply_json(conn, status, o);
}

/* Copies a string member into a fixed buffer when present. */
static mf_res take_str(const json_t *doc, const char *key, char *dst, size_t cap)
{
    const char *s = NULL;
    MF_TRY(mf_json_str(doc, key, false, cap - 1, &s));
    if (s != NULL) {
        memcpy(dst, s, strlen(s) + 1);
    }
    return MF_RES_OK;
}

/* A bootstrap or static bundle given in a request ("bundle": text). */
static mf_res body_bundle(const json_t *doc, const char *td, struct mf_bundle **out)
{
    const char *text = NULL;
    *out = NULL;
    MF_TRY(mf_json_str(doc, "bundle", false, MF_MAX_BUNDLE, &text));
    if (text == NULL) {
        return MF_RES_OK;
    }
    return ca_fed_parse_bundle(td, text, strlen(text), out);
}

static enum MHD_Result fed_write(struct ca_ctx *ctx, struct MHD_Connection *conn,
                                 const struct mf_httpd_req *req, bool create)
{
    static const char *const keys[] = {"trust_domain",       "endpoint_url", "profile",
                                       "endpoint_spiffe_id", "bundle",       NULL};
    json_t *doc = NULL;
    const char *tds = NULL;
    struct mf_bundle *boot = NULL;
    struct ca_federation f;
    memset(&f, 0, sizeof(f));
    char td[MF_TD_MAX + 1];
    mf_res r = parse_body(req, keys, &doc, &tds);
    if (mf_ok(r)) {
        r = ca_fed_parse_td(ctx->cfg.trust_domain, tds, td);
    }
    if (mf_ok(r) && !create) {
        r = ca_store_fed_get(ctx->store, td, &f);
    }
    if (mf_ok(r) && create) {
        snprintf(f.profile, sizeof(f.profile), "%s", "https_spiffe");
    }
    if (mf_ok(r)) {
        memcpy(f.td, td, strlen(td) + 1);
        r = take_str(doc, "endpoint_url", f.url, sizeof(f.url));
    }
    if (mf_ok(r)) {
        r = take_str(doc, "profile", f.profile, sizeof(f.profile));
    }
    if (mf_ok(r) && json_object_get(doc, "profile") != NULL &&
        strcmp(f.profile, "https_web") == 0 && json_object_get(doc, "endpoint_spiffe_id") == NULL) {
        f.endpoint_id[0] = '\0'; /* switching to https_web drops the ID */
    }
    if (mf_ok(r)) {
        r = take_str(doc, "endpoint_spiffe_id", f.endpoint_id, sizeof(f.endpoint_id));
    }
    if (mf_ok(r)) {
        r = ca_fed_check(ctx->cfg.trust_domain, &f);
    }
    if (mf_ok(r)) {
        r = body_bundle(doc, td, &boot);
    }
    if (mf_ok(r) && boot == NULL && strcmp(f.profile, "https_spiffe") == 0) {
        /* the self-serving case needs a bundle to start from (F8) */
        struct mf_spiffe_id id;
        char etd[MF_TD_MAX + 1];
        struct mf_bundle *have = NULL;
        r = mf_spiffeid_parse_cstr(f.endpoint_id, &id);
        if (mf_ok(r)) {
            mf_spiffeid_td(&id, etd);
            if (strcmp(etd, td) == 0) {
                r = stored_bundle(ctx->store, td, &have, NULL);
                if (mf_ok(r) && have == NULL) {
                    r = MF_RAISE_MSG(MF_ERR_USAGE_ARG,
                                     "the endpoint %s is in %s itself: give its bundle with "
                                     "--bundle FILE to authenticate the first fetch",
                                     f.endpoint_id, td);
                }
                mf_bundle_free(have);
            }
        }
    }
    if (mf_ok(r)) {
        f.updated_at = mf_now();
        r = ca_store_fed_put(ctx->store, &f, create);
    }
    if (mf_ok(r) && boot != NULL) {
        r = put_bundle(ctx->store, boot, "static");
    }
    mf_bundle_free(boot);
    json_decref(doc);
    if (mf_ok(r)) {
        mf_log_event(MF_LOG_INFO, __func__, create ? "federation created" : "federation updated",
                     "trust_domain", f.td, "endpoint_url", f.url, "profile", f.profile, NULL);
        reset_status(ctx->fed, f.td);
        ca_ctx_changed(ctx);
    }
    return reply(conn, r, create ? 201 : 200, mf_ok(r) ? fed_json(NULL, &f) : NULL);
}

static enum MHD_Result fed_one(struct ca_ctx *ctx, struct MHD_Connection *conn,
                               const struct mf_httpd_req *req, const char *verb)
{
    static const char *const keys[] = {"trust_domain", NULL};
    json_t *doc = NULL;
    const char *tds = NULL;
    char td[MF_TD_MAX + 1];
    mf_res r;
    if (strcmp(verb, "show") == 0) {
        tds = mf_httpd_query(conn, "trust_domain");
        r = tds != NULL ? MF_RES_OK : MF_RAISE_MSG(MF_ERR_USAGE_ARG, "--trust-domain is required");
    } else {
        r = parse_body(req, keys, &doc, &tds);
    }
    if (mf_ok(r)) {
        r = ca_fed_parse_td(ctx->cfg.trust_domain, tds, td);
    }
    json_decref(doc);
    if (!mf_ok(r)) {
        return mf_httpd_reply_res(conn, r);
    }
    if (strcmp(verb, "show") == 0) {
        struct ca_federation f;
        r = ca_store_fed_get(ctx->store, td, &f);
        return reply(conn, r, 200, mf_ok(r) ? fed_json(ctx->fed, &f) : NULL);
    }
    if (strcmp(verb, "delete") == 0) {
        r = ca_store_fed_delete(ctx->store, td);
        if (mf_ok(r)) {
            mf_log_event(MF_LOG_INFO, __func__, "federation deleted", "trust_domain", td, NULL);
            reset_status(ctx->fed, td);
            ca_ctx_changed(ctx);
        }
        return mf_ok(r) ? mf_httpd_reply_buf(conn, 204, "application/json", "", 0)
                        : mf_httpd_reply_res(conn, r);
    }
    bool changed = false;
    r = ctx->fed != NULL ? ca_fed_refresh(ctx->fed, td, &changed)
                         : MF_RAISE_MSG(MF_ERR_STATE, "federation is not running");
    struct mf_bundle *b = NULL;
    if (mf_ok(r)) {
        r = stored_bundle(ctx->store, td, &b, NULL);
    }
    json_t *o = NULL;
    if (mf_ok(r)) {
        o = json_pack("{s:s,s:b,s:I}", "trust_domain", td, "changed", changed, "spiffe_sequence",
                      (json_int_t)(b != NULL ? b->sequence : 0));
    }
    mf_bundle_free(b);
    return reply(conn, r, 200, o);
}

static enum MHD_Result fed_list(struct ca_ctx *ctx, struct MHD_Connection *conn)
{
    struct ca_federation *v = NULL;
    size_t n = 0;
    mf_res r = ca_store_fed_list(ctx->store, &v, &n);
    json_t *arr = json_array();
    for (size_t i = 0; mf_ok(r) && arr != NULL && i < n; i++) {
        json_array_append_new(arr, fed_json(ctx->fed, &v[i]));
    }
    free(v);
    return reply(conn, r, 200, arr != NULL ? json_pack("{s:o}", "federations", arr) : NULL);
}

static enum MHD_Result bundle_set(struct ca_ctx *ctx, struct MHD_Connection *conn,
                                  const struct mf_httpd_req *req)
{
    static const char *const keys[] = {"trust_domain", "bundle", NULL};
    json_t *doc = NULL;
    const char *tds = NULL;
    char td[MF_TD_MAX + 1];
    struct mf_bundle *b = NULL;
    mf_res r = parse_body(req, keys, &doc, &tds);
    if (mf_ok(r)) {
        r = ca_fed_parse_td(ctx->cfg.trust_domain, tds, td);
    }
    if (mf_ok(r)) {
        r = body_bundle(doc, td, &b);
    }
    if (mf_ok(r) && b == NULL) {
        r = MF_RAISE_MSG(MF_ERR_USAGE_ARG, "bundle set needs the bundle (--bundle FILE)");
    }
    if (mf_ok(r)) {
        r = put_bundle(ctx->store, b, "static");
    }
    json_t *o = NULL;
    if (mf_ok(r)) {
        mf_log_event(MF_LOG_INFO, __func__, "foreign bundle set", "trust_domain", td, NULL);
        ca_ctx_changed(ctx);
        o = json_pack("{s:s,s:I,s:I,s:I}", "trust_domain", td, "spiffe_sequence",
                      (json_int_t)b->sequence, "x509_authorities", (json_int_t)b->x509.n,
                      "jwt_authorities", (json_int_t)b->n_jwt);
    }
    mf_bundle_free(b);
    json_decref(doc);
    return reply(conn, r, 200, o);
}

static enum MHD_Result bundle_one(struct ca_ctx *ctx, struct MHD_Connection *conn,
                                  const struct mf_httpd_req *req, bool del)
{
    static const char *const keys[] = {"trust_domain", NULL};
    json_t *doc = NULL;
    const char *tds = NULL;
    char td[MF_TD_MAX + 1];
    mf_res r;
    if (!del) {
        tds = mf_httpd_query(conn, "trust_domain");
        r = tds != NULL ? MF_RES_OK : MF_RAISE_MSG(MF_ERR_USAGE_ARG, "--trust-domain is required");
    } else {
        r = parse_body(req, keys, &doc, &tds);
    }
    if (mf_ok(r)) {
        r = ca_fed_parse_td(ctx->cfg.trust_domain, tds, td);
    }
    json_decref(doc);
    if (!mf_ok(r)) {
        return mf_httpd_reply_res(conn, r);
    }
    if (del) {
        r = ca_store_fbundle_delete(ctx->store, td);
        if (mf_ok(r)) {
            mf_log_event(MF_LOG_INFO, __func__, "foreign bundle deleted", "trust_domain", td, NULL);
            ca_ctx_changed(ctx);
        }
        return mf_ok(r) ? mf_httpd_reply_buf(conn, 204, "application/json", "", 0)
                        : mf_httpd_reply_res(conn, r);
    }
    const char *fmt = mf_httpd_query(conn, "format");
    struct ca_foreign_bundle *v = NULL;
    size_t n = 0;
    r = ca_store_fbundle_list(ctx->store, td, &v, &n);
    if (!mf_ok(r)) {
        return mf_httpd_reply_res(conn, r);
    }
    enum MHD_Result ret;
    if (fmt != NULL && strcmp(fmt, "pem") == 0) {
        struct mf_bundle *b = NULL;
        struct mf_buf pem;
        mf_buf_init(&pem, MF_MAX_BUNDLE, 0);
        r = mf_bundle_from_jwks(td, v[0].jwks, strlen(v[0].jwks), &b);
        if (mf_ok(r)) {
            r = mf_bundle_to_pem(b, &pem);
        }
        ret = mf_ok(r) ? mf_httpd_reply_buf(conn, 200, "application/x-pem-file", pem.data, pem.len)
                       : mf_httpd_reply_res(conn, r);
        mf_bundle_free(b);
        mf_buf_cleanup(&pem);
    } else if (fmt != NULL && strcmp(fmt, "spiffe") == 0) {
        ret = mf_httpd_reply_buf(conn, 200, "application/json", v[0].jwks, strlen(v[0].jwks));
    } else {
        json_t *o = fbundle_json(&v[0]);
        json_error_t jerr;
        if (o != NULL) {
            json_object_set_new(o, "bundle", json_loads(v[0].jwks, 0, &jerr));
        }
        ret = reply(conn, MF_RES_OK, 200, o);
    }
    ca_fbundles_free(v, n);
    return ret;
}

static enum MHD_Result bundle_list(struct ca_ctx *ctx, struct MHD_Connection *conn)
{
    struct ca_foreign_bundle *v = NULL;
    size_t n = 0;
    mf_res r = ca_store_fbundle_list(ctx->store, NULL, &v, &n);
    json_t *arr = json_array();
    for (size_t i = 0; mf_ok(r) && arr != NULL && i < n; i++) {
        json_array_append_new(arr, fbundle_json(&v[i]));
    }
    ca_fbundles_free(v, n);
    return reply(conn, r, 200, arr != NULL ? json_pack("{s:o}", "bundles", arr) : NULL);
}

/* see ca_fed.h */
enum MHD_Result ca_fed_admin(struct ca_ctx *ctx, struct MHD_Connection *conn, const char *url,
                             const char *method, const struct mf_httpd_req *req)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/v1/federations") == 0 && (get || post)) {
        return get ? fed_list(ctx, conn) : fed_write(ctx, conn, req, true);
    }
    if (strcmp(url, "/v1/federations/update") == 0 && post) {
        return fed_write(ctx, conn, req, false);
    }
    if (strcmp(url, "/v1/federations/show") == 0 && get) {
        return fed_one(ctx, conn, req, "show");
    }
    if (strcmp(url, "/v1/federations/delete") == 0 && post) {
        return fed_one(ctx, conn, req, "delete");
    }
    if (strcmp(url, "/v1/federations/refresh") == 0 && post) {
        return fed_one(ctx, conn, req, "refresh");
    }
    if (strcmp(url, "/v1/bundles") == 0 && (get || post)) {
        return get ? bundle_list(ctx, conn) : bundle_set(ctx, conn, req);
    }
    if (strcmp(url, "/v1/bundles/show") == 0 && get) {
        return bundle_one(ctx, conn, req, false);
    }
    if (strcmp(url, "/v1/bundles/delete") == 0 && post) {
        return bundle_one(ctx, conn, req, true);
    }
    return mf_httpd_reply_error(conn, 404, "not_found", "no such endpoint (or method %s)", method);
}
