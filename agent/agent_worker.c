/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_worker: the CA-facing loop. See agent_worker.h.
 */
#include "agent/agent_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/eventfd.h>
#include <sys/stat.h>

#include "agent/agent_metrics.h"
#include "agent/agent_rotate.h"
#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"

#define ATTEST_TRIES    8
#define MIN_WAKE_MS     100
#define MAX_IDLE_MS     (AGENT_SYNC_WAIT_MAX * 1000)
#define TOKEN_POLL_MS   2000             /* evicted: --join-token-file re-read */
#define BANNED_RETRY_MS (10 * 60 * 1000) /* banned: ask again this rarely */
#define TOKEN_MAX       4096
#define AGENT_SVID_FILE "agent.svid" /* agent_cache.c's AGENT_FILE */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static bool stopping(struct agent_worker *w)
{
    pthread_mutex_lock(&w->mu);
    bool s = w->stop;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* Sleeps up to ms, returning early on shutdown. */
static void nap(struct agent_worker *w, int64_t ms)
{
    if (ms <= 0) {
        return;
    }
    struct pollfd p = {.fd = w->wake_fd, .events = POLLIN};
    (void)poll(&p, 1, (int)min64(ms, 60000));
}

/* ---- trust and identity -------------------------------------------------- */

/* The trust domain: --trust-domain, or the URI SAN of the first authority in
 * the trust bundle file (a CA certificate names spiffe://<td>). */
static mf_res bundle_file(const struct agent_config *cfg, char td[MF_TD_MAX + 1],
                          struct mf_bundle **out)
{
    mf_res rc;
    struct mf_buf text;
    struct mf_certs cs;
    int fd = AT_FDCWD;
    *out = NULL;
    mf_certs_init(&cs);
    mf_buf_init(&text, MF_MAX_BUNDLE, 0);
    MF_TRY_OUT(agent_file_read(fd, cfg->trust_bundle, &text));
    if (cfg->trust_domain != NULL) {
        MF_TRY_OUT(mf_td_parse(cfg->trust_domain, strlen(cfg->trust_domain), td));
    } else {
        MF_TRY_OUT(mf_certs_from_pem(mf_buf_cstr(&text), text.len, &cs));
        struct mf_spiffe_id id;
        MF_ENSURE_OUT_MSG(mf_cert_spiffe_id(cs.v[0], &id), MF_ERR_USAGE_ARG,
                          "cannot tell the trust domain from %s; pass --trust-domain",
                          cfg->trust_bundle);
        mf_spiffeid_td(&id, td);
    }
    MF_TRY_OUT(mf_bundle_from_pem(td, mf_buf_cstr(&text), text.len, out));
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&cs);
    mf_buf_cleanup(&text);
    return rc;
}

/* Installs a new agent identity (takes key and the chain's contents). */
static mf_res set_agent_identity(struct agent_worker *w, struct mf_key *key, struct mf_certs *chain)
{
    int64_t renew = 0;
    const struct mf_cert *leaf = chain->v[0];
    mf_res r =
        agent_rotate_draw(&w->cfg->rot, mf_cert_not_before(leaf), mf_cert_not_after(leaf), &renew);
    if (!mf_ok(r)) {
        mf_key_free(key);
        mf_certs_cleanup(chain);
        return r;
    }
    r = agent_cache_save_agent(&w->cache, key, chain, renew);
    if (!mf_ok(r)) {
        /* still usable in memory; a restart would need a new token */
        mf_log_err_r(r, "cannot save the agent identity");
    }
    struct mf_spiffe_id id;
    if (mf_cert_spiffe_id(leaf, &id)) {
        w->agent_id = id;
    }
    mf_key_free(w->agent_key);
    mf_certs_cleanup(&w->agent_chain);
    w->agent_key = key;
    w->agent_chain = *chain;
    mf_certs_init(chain);
    w->agent_renew_at_ms = renew;
    w->agent_attempts = 0;
    w->agent_retry_at_ms = 0;
    agent_client_set_identity(&w->client, w->agent_key, &w->agent_chain);
    r = agent_state_set_identity(w->state, w->agent_key, &w->agent_chain, NULL);
    if (!mf_ok(r)) {
        mf_log_err_r(r, "cannot share the agent identity (JWT-SVIDs will fail)");
    }
    char when[MF_RFC3339_LEN];
    mf_time_format(mf_cert_not_after(w->agent_chain.v[0]), when);
    mf_log_event(MF_LOG_INFO, __func__, "agent identity", "spiffe_id", w->agent_id.str, "not_after",
                 when, NULL);
    return MF_RES_OK;
}

/* A bundle from the CA: keep it if it differs from what we have. Returns
 * whether it changed. */
static mf_res take_bundle(struct agent_worker *w, struct mf_bundle *b, bool *changed)
{
    *changed = false;
    if (w->cache.bundle != NULL && mf_bundle_same_keys(w->cache.bundle, b)) {
        return MF_RES_OK;
    }
    MF_TRY(agent_cache_set_bundle(&w->cache, b));
    MF_TRY(agent_client_set_trust(&w->client, b));
    MF_TRY(agent_state_set_identity(w->state, NULL, NULL, b));
    *changed = true;
    mf_log_info("trust bundle updated (%zu authorities)", b->x509.n);
    return MF_RES_OK;
}

/* The join token to attest with into tok (a secret buffer): --join-token,
 * or what --join-token-file holds now (trailing white space dropped). tok
 * stays empty when neither is given. The file must be a regular file that
 * group and others cannot access: the token is a credential. */
static mf_res read_token(const struct agent_config *cfg, struct mf_buf *tok)
{
    mf_res rc;
    mf_buf_reset(tok);
    if (cfg->join_token != NULL) {
        return mf_buf_append_str(tok, cfg->join_token);
    }
    if (cfg->join_token_file == NULL) {
        return MF_RES_OK;
    }
    const char *path = cfg->join_token_file;
    char tmp[TOKEN_MAX + 1];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    MF_ENSURE_MSG(fd >= 0, errno == ENOENT ? MF_ERR_IO_NOT_FOUND : MF_ERR_IO, "%s: %s", path,
                  strerror(errno));
    struct stat st;
    MF_ENSURE_OUT_MSG(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), MF_ERR_IO,
                      "%s is not a regular file", path);
    MF_ENSURE_OUT_MSG((st.st_mode & 077) == 0, MF_ERR_IO_PERM,
                      "%s is accessible by group or others (mode %03o): chmod 600 it", path,
                      (unsigned)(st.st_mode & 0777));
    MF_ENSURE_OUT_MSG(st.st_size <= TOKEN_MAX, MF_ERR_PROTO_TOO_LARGE, "%s is over %d bytes", path,
                      TOKEN_MAX);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, tmp + len, sizeof(tmp) - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        MF_ENSURE_OUT_MSG(n >= 0, MF_ERR_IO, "%s: %s", path, strerror(errno));
        len += (size_t)n;
        if (n == 0 || len == sizeof(tmp)) {
            break;
        }
    }
    MF_ENSURE_OUT_MSG(len <= TOKEN_MAX, MF_ERR_PROTO_TOO_LARGE, "%s is over %d bytes", path,
                      TOKEN_MAX);
    while (len > 0 && (tmp[len - 1] == '\n' || tmp[len - 1] == '\r' || tmp[len - 1] == ' ' ||
                       tmp[len - 1] == '\t')) {
        len--;
    }
    MF_TRY_OUT(mf_buf_append(tok, tmp, len));
    rc = MF_RES_OK;
out:
    mf_wipe(tmp, sizeof(tmp));
    close(fd);
    return rc;
}

/* Asks the CA to attest with token, up to tries times while it is
 * unreachable (a refused token will not get better). */
static mf_res attest_call(struct agent_worker *w, const char *token, unsigned tries,
                          struct mf_key *key, struct mf_certs *chain, struct mf_bundle **b)
{
    for (unsigned i = 0;; i++) {
        mf_res rc = agent_client_attest(&w->client, token, key, chain, b);
        if (mf_ok(rc) || mf_err_category(rc.err) != MF_CAT_IO || i + 1 >= tries || stopping(w)) {
            return rc;
        }
        /* not MF_TRY: that would lose rc, and the line would say "success"
         * instead of why attestation failed */
        int64_t d = 0;
        if (!mf_ok(agent_backoff_delay(&w->cfg->rot, i, &d))) {
            d = w->cfg->rot.backoff_cap_ms;
        }
        mf_log_warn_r(rc, "attestation failed; retrying in %lld ms", (long long)d);
        nap(w, d);
    }
}

/* A new key and agent SVID: attested with token (tries times, see
 * attest_call), or with token NULL renewed with the current SVID, which
 * also publishes a bundle that changed. */
static mf_res new_agent_identity(struct agent_worker *w, const char *token, unsigned tries)
{
    mf_res rc;
    struct mf_key *key = NULL;
    struct mf_certs chain;
    struct mf_bundle *b = NULL;
    bool changed = false;
    mf_certs_init(&chain);
    MF_TRY_OUT(mf_key_generate(MF_KEY_EC_P256, &key));
    if (token != NULL) {
        MF_TRY_OUT(attest_call(w, token, tries, key, &chain, &b));
    } else {
        MF_TRY_OUT(agent_client_renew(&w->client, w->agent_id.str, key, &chain, &b));
        agent_metrics_agent_renewed(w->agent_renew_at_ms);
    }
    MF_TRY_OUT(take_bundle(w, b, &changed));
    rc = set_agent_identity(w, key, &chain);
    key = NULL;
    MF_TRY_OUT(rc);
    if (token == NULL && changed) {
        MF_TRY_OUT(agent_worker_publish(w));
    }
    rc = MF_RES_OK;
out:
    mf_key_free(key);
    mf_certs_cleanup(&chain);
    mf_bundle_free(b);
    return rc;
}

/* ---- publication --------------------------------------------------------- */

/* see agent_worker.h */
mf_res agent_worker_publish(struct agent_worker *w)
{
    mf_res rc;
    struct agent_snap *s = NULL;
    int64_t next = INT64_MAX;
    MF_TRY(agent_snap_new(w->td, &s));
    size_t n = 0;
    for (size_t i = 0; i < w->cache.n; i++) {
        const struct agent_rec *r = &w->cache.v[i];
        n += r->key != NULL && r->chain.n > 0 && agent_svid_servable(r->not_after);
    }
    MF_TRY_OUT(agent_snap_reserve(s, n));
    if (w->cache.bundle != NULL) {
        MF_TRY_OUT(mf_bundle_to_pem(w->cache.bundle, &s->bundle_pem));
        s->bundle = mf_bundle_ref(w->cache.bundle);
    }
    for (size_t i = 0; i < w->cache.n; i++) {
        const struct agent_rec *r = &w->cache.v[i];
        if (r->key == NULL || r->chain.n == 0 || !agent_svid_servable(r->not_after)) {
            continue;
        }
        MF_TRY_OUT(agent_snap_add(s, r->entry.spiffe_id, r->entry.hint, r->entry.sels,
                                  r->entry.n_sels, &r->chain, r->key, r->not_after));
        if (r->entry.n_fed > 0) {
            MF_TRY_OUT(agent_snap_set_federates(s, s->n - 1, r->entry.fed, r->entry.n_fed));
        }
        next = min64(next, r->not_after * 1000);
    }
    for (size_t i = 0; i < w->cache.fed.n; i++) {
        MF_TRY_OUT(agent_snap_add_federated(s, w->cache.fed.v[i]));
    }
    w->next_expiry_ms = next;
    agent_metrics_published(w);
    agent_state_publish(w->state, s);
    s = NULL;
    w->trim_due = true;
    rc = MF_RES_OK;
out:
    agent_snap_unref(s);
    return rc;
}

/* ---- sync ---------------------------------------------------------------- */

/* The federated_bundles member of a sync answer ({"spiffe://td": bundle},
 * absent when no entry federates) into the cache. */
static mf_res take_federated(struct agent_worker *w, const json_t *obj, bool *changed)
{
    mf_res rc;
    const json_t *fobj = NULL;
    struct mf_bundle_set set;
    mf_bundle_set_init(&set);
    MF_TRY(mf_json_object(obj, "federated_bundles", false, &fobj));
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)(uintptr_t)fobj, key, val)
    {
        char td[MF_TD_MAX + 1];
        struct mf_bundle *b = NULL;
        MF_TRY_OUT(mf_td_parse(key, strlen(key), td));
        /* never a bundle for our own trust domain under another name */
        MF_ENSURE_OUT_MSG(strcmp(td, w->td) != 0, MF_ERR_PROTO_JSON,
                          "federated_bundles holds our own trust domain");
        MF_TRY_OUT(agent_bundle_from_json(td, val, &b));
        rc = mf_bundle_set_put(&set, b);
        mf_bundle_free(b);
        MF_TRY_OUT(rc);
    }
    MF_TRY_OUT(agent_cache_set_federated(&w->cache, &set, changed));
    if (*changed) {
        mf_log_info("federated bundles updated (%zu trust domains)", set.n);
    }
    rc = MF_RES_OK;
out:
    mf_bundle_set_cleanup(&set);
    return rc;
}

/* Applies a 200 answer of /v1/sync. *changed says whether workloads could
 * see a difference. */
static mf_res apply_sync(struct agent_worker *w, const json_t *obj, bool *changed)
{
    mf_res rc;
    const char *rev = NULL;
    const json_t *entries = NULL, *bobj = NULL;
    struct mf_bundle *b = NULL;
    struct agent_entry e = {0};
    bool bchanged = false;

    *changed = false;
    MF_TRY(mf_json_str(obj, "revision", true, 1024, &rev));
    MF_TRY(mf_json_array(obj, "entries", true, 1000000, &entries));
    MF_TRY(mf_json_object(obj, "bundle", false, &bobj));
    if (bobj != NULL) {
        MF_TRY(agent_bundle_from_json(w->td, bobj, &b));
        rc = take_bundle(w, b, &bchanged);
        mf_bundle_free(b);
        MF_TRY(rc);
        *changed = *changed || bchanged;
    }
    bchanged = false;
    MF_TRY(take_federated(w, obj, &bchanged));
    *changed = *changed || bchanged;

    for (size_t i = 0; i < w->cache.n; i++) {
        w->cache.v[i].seen = false;
    }
    /* the list is the whole set: what is not in it goes below */
    MF_TRY(agent_cache_reserve(&w->cache, json_array_size(entries)));
    for (size_t i = 0; i < json_array_size(entries); i++) {
        mf_res r = agent_entry_from_json(json_array_get(entries, i), &e);
        if (!mf_ok(r)) {
            /* one bad entry must not stop the others */
            mf_log_warn_r(r, "skipping entry %zu of the sync answer", i);
            continue;
        }
        struct agent_rec *rec = agent_cache_find(&w->cache, e.id);
        if (rec == NULL) {
            MF_TRY_OUT(agent_cache_add(&w->cache, &e, &rec));
            rec->seen = true;
            mf_log_event(MF_LOG_INFO, __func__, "entry added", "entry_id", rec->entry.id,
                         "spiffe_id", rec->entry.spiffe_id, NULL);
            continue;
        }
        rec->seen = true;
        if (memcmp(rec->entry.digest, e.digest, sizeof(e.digest)) == 0) {
            agent_entry_cleanup(&e);
            continue;
        }
        if (agent_entry_needs_resign(&rec->entry, &e)) {
            rec->renew_at_ms = 0; /* due now */
            rec->attempts = 0;
            rec->retry_at_ms = 0;
        }
        agent_entry_cleanup(&rec->entry);
        rec->entry = e;
        memset(&e, 0, sizeof(e));
        *changed = true;
        if (rec->key != NULL) {
            mf_res r2 = agent_cache_store(&w->cache, rec);
            if (!mf_ok(r2)) {
                mf_log_warn_r(r2, "cannot persist entry %s", rec->entry.id);
            }
        }
    }
    for (size_t i = w->cache.n; i > 0; i--) {
        if (!w->cache.v[i - 1].seen) {
            mf_log_event(MF_LOG_INFO, __func__, "entry removed", "entry_id",
                         w->cache.v[i - 1].entry.id, "spiffe_id", w->cache.v[i - 1].entry.spiffe_id,
                         NULL);
            agent_cache_remove(&w->cache, i - 1);
            *changed = true;
        }
    }
    char *nrev = strdup(rev);
    MF_ENSURE_OUT(nrev != NULL, MF_ERR_NOMEM);
    free(w->revision);
    w->revision = nrev;
    rc = MF_RES_OK;
out:
    agent_entry_cleanup(&e);
    return rc;
}

/* ---- signing ------------------------------------------------------------- */

static bool rec_due(const struct agent_rec *r, int64_t now)
{
    if (r->retry_at_ms > now) {
        return false;
    }
    return r->key == NULL || now >= r->renew_at_ms;
}

static void rec_failed(struct agent_worker *w, struct agent_rec *r, mf_res why)
{
    int64_t d = 0;
    if (!mf_ok(agent_backoff_delay(&w->cfg->rot, r->attempts, &d))) {
        d = w->cfg->rot.backoff_cap_ms;
    }
    r->attempts++;
    agent_metrics_sign_failed();
    r->retry_at_ms = mf_now_ms() + d;
    mf_log_warn_r(why, "signing %s failed (attempt %u); next try in %lld ms", r->entry.spiffe_id,
                  r->attempts, (long long)d);
}

/* One SVID of a signing batch. The parallel steps (agent_pool) write only
 * their own item; everything that touches the cache, the logs or the
 * metrics happens afterwards, on the worker thread. */
struct batch_item {
    const struct agent_rec *rec;
    struct mf_key *key;    /* the new key */
    struct mf_buf csr;     /* its CSR, base64 */
    const json_t *res;     /* the CA's result for it */
    struct mf_certs chain; /* what the CA signed, verified */
    mf_res r;
    char why[256]; /* the failure, formatted in the thread that saw it */
};

struct batch {
    struct agent_worker *w;
    struct batch_item *v;
};

static void item_done(struct batch_item *it, mf_res r)
{
    it->r = r;
    if (!mf_ok(r)) {
        mf_err_format(r, it->why, sizeof(it->why));
    }
}

/* Parallel: a fresh key for the SVID (a rotated SVID never reuses a key)
 * and its CSR. */
static void make_csr(void *arg, size_t i)
{
    struct batch_item *it = &((struct batch *)arg)->v[i];
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    mf_res r = it->key != NULL ? MF_RES_OK : mf_key_generate(MF_KEY_EC_P256, &it->key);
    if (mf_ok(r)) {
        r = mf_csr_create(it->key, it->rec->entry.spiffe_id, &der);
    }
    if (mf_ok(r)) {
        r = mf_b64_encode(der.data, der.len, &it->csr);
    }
    mf_buf_cleanup(&der);
    item_done(it, r);
}

/* Parallel, while a batch is at the CA: keys for the next one. */
struct spare_job {
    struct mf_key *keys[MF_MAX_BATCH];
};

static void make_spare(void *arg, size_t i)
{
    struct spare_job *j = arg;
    if (!mf_ok(mf_key_generate(MF_KEY_EC_P256, &j->keys[i]))) {
        j->keys[i] = NULL; /* made later, in the batch itself */
    }
}

/* Parallel: the chain the CA returned, parsed and verified as a relying
 * party would (E27), for the entry's ID and the new key. */
static void check_result(void *arg, size_t i)
{
    struct batch *b = arg;
    struct batch_item *it = &b->v[i];
    if (it->res == NULL || !mf_ok(it->r)) {
        return;
    }
    const json_t *arr = NULL;
    struct mf_spiffe_id got;
    mf_res r = mf_json_array(it->res, "x509_svid", true, 8, &arr);
    if (mf_ok(r)) {
        r = agent_chain_from_b64(arr, &it->chain);
    }
    if (mf_ok(r)) {
        r = mf_svid_verify(&it->chain, &b->w->client.trust, mf_now(), &got);
    }
    if (mf_ok(r) && strcmp(got.str, it->rec->entry.spiffe_id) != 0) {
        r = MF_RAISE_MSG(MF_ERR_AUTH_SVID, "CA signed %s for entry %s", got.str,
                         it->rec->entry.spiffe_id);
    }
    if (mf_ok(r) && !mf_cert_matches_key(it->chain.v[0], it->key)) {
        r = MF_RAISE_MSG(MF_ERR_CRYPTO_MISMATCH, "the SVID for %s is not for its new key",
                         it->rec->entry.spiffe_id);
    }
    item_done(it, r);
}

/* fn for every item of the batch: on the pool when the worker runs, else
 * (tests that drive the worker without its thread) here. */
static void run_all(struct agent_worker *w, size_t n, void (*fn)(void *, size_t), void *arg)
{
    if (w->pool_ok) {
        agent_pool_run(&w->pool, n, fn, arg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        fn(arg, i);
    }
}

/* Installs one verified result for rec (takes the item's key and chain). */
static mf_res install_result(struct agent_worker *w, struct agent_rec *rec, struct batch_item *it)
{
    const struct mf_cert *leaf = it->chain.v[0];
    int64_t renew = 0;
    MF_TRY(
        agent_rotate_draw(&w->cfg->rot, mf_cert_not_before(leaf), mf_cert_not_after(leaf), &renew));
    agent_metrics_svid_signed(rec->key != NULL ? rec->renew_at_ms : 0);
    mf_key_free(rec->key);
    mf_certs_cleanup(&rec->chain);
    rec->key = it->key;
    it->key = NULL;
    rec->chain = it->chain;
    mf_certs_init(&it->chain);
    rec->not_after = mf_cert_not_after(rec->chain.v[0]);
    rec->renew_at_ms = renew;
    rec->attempts = 0;
    rec->retry_at_ms = 0;
    mf_res r = agent_cache_store(&w->cache, rec);
    if (!mf_ok(r)) {
        mf_log_err_r(r, "cannot persist the SVID of %s", rec->entry.spiffe_id);
    }
    char serial[MF_SERIAL_HEX_MAX], when[MF_RFC3339_LEN], at[MF_RFC3339_LEN];
    mf_cert_serial_hex(rec->chain.v[0], serial);
    mf_time_format(rec->not_after, when);
    mf_time_format(renew / 1000, at);
    mf_log_event(MF_LOG_INFO, __func__, "svid issued", "spiffe_id", rec->entry.spiffe_id, "serial",
                 serial, "not_after", when, "renew_at", at, NULL);
    return MF_RES_OK;
}

/* Signs up to MF_MAX_BATCH due records in one request. Keys and CSRs are
 * made, and the results verified, on the worker pool (as many threads as
 * cores). *did says whether any SVID changed. Returns an error only when
 * the request as a whole failed. */
static mf_res sign_due(struct agent_worker *w, bool *did)
{
    mf_res rc;
    size_t idx[MF_MAX_BATCH];
    struct batch_item *items = NULL;
    size_t n = 0;
    json_t *reqs = NULL, *reply = NULL;
    int64_t now = mf_now_ms();

    size_t more = 0; /* due beyond this batch */
    struct spare_job *spare = NULL;

    *did = false;
    for (size_t i = 0; i < w->cache.n; i++) {
        if (rec_due(&w->cache.v[i], now)) {
            if (n < MF_MAX_BATCH) {
                idx[n++] = i;
            } else {
                more++;
            }
        }
    }
    if (n == 0) {
        return MF_RES_OK;
    }
    items = calloc(n, sizeof(*items));
    MF_TRY_PTR(items, MF_ERR_NOMEM);
    for (size_t k = 0; k < n; k++) {
        items[k].rec = &w->cache.v[idx[k]];
        mf_buf_init(&items[k].csr, 2 * MF_MAX_CSR, 0);
        mf_certs_init(&items[k].chain);
        if (w->n_spare > 0) {
            items[k].key = w->spare[--w->n_spare];
            w->spare[w->n_spare] = NULL;
        }
    }
    struct batch b = {.w = w, .v = items};
    run_all(w, n, make_csr, &b);
    for (size_t k = 0; k < n; k++) {
        MF_ENSURE_OUT_MSG(mf_ok(items[k].r), items[k].r.err, "%s", items[k].why);
    }
    reqs = json_array();
    MF_ENSURE_OUT(reqs != NULL, MF_ERR_NOMEM);
    for (size_t k = 0; k < n; k++) {
        json_t *one = json_pack("{s:s,s:s}", "entry_id", items[k].rec->entry.id, "csr",
                                mf_buf_cstr(&items[k].csr));
        MF_ENSURE_OUT(one != NULL && json_array_append_new(reqs, one) == 0, MF_ERR_NOMEM);
    }
    /* pipelined: while this batch is at the CA, the pool makes the keys of
     * the next one */
    size_t ahead = more < MF_MAX_BATCH - w->n_spare ? more : MF_MAX_BATCH - w->n_spare;
    if (ahead > 0 && w->pool_ok && w->pool.n_threads > 0) {
        spare = calloc(1, sizeof(*spare));
        if (spare != NULL) {
            agent_pool_start(&w->pool, ahead, make_spare, spare);
        }
    }
    rc = agent_client_sign(&w->client, reqs, &reply);
    if (spare != NULL) {
        agent_pool_wait(&w->pool);
        for (size_t k = 0; k < ahead; k++) {
            if (spare->keys[k] != NULL) {
                w->spare[w->n_spare++] = spare->keys[k];
            }
        }
        free(spare);
        spare = NULL;
    }
    if (!mf_ok(rc) && w->client.denial != AGENT_DENIAL_NONE) {
        goto out; /* the agent itself was refused: ca_denied says so once */
    }
    if (!mf_ok(rc)) {
        for (size_t k = 0; k < n; k++) {
            rec_failed(w, &w->cache.v[idx[k]], rc);
        }
        goto out;
    }
    const json_t *results = NULL;
    MF_TRY_OUT(mf_json_array(reply, "results", true, MF_MAX_BATCH, &results));
    for (size_t k = 0; k < n; k++) {
        struct batch_item *it = &items[k];
        const json_t *res = NULL;
        /* results come in request order; still match by entry_id */
        for (size_t j = 0; j < json_array_size(results); j++) {
            const json_t *c = json_array_get(results, j);
            const char *eid = NULL;
            if (mf_ok(mf_json_str(c, "entry_id", true, AGENT_ENTRY_ID_MAX, &eid)) &&
                strcmp(eid, it->rec->entry.id) == 0) {
                res = c;
                break;
            }
        }
        const char *err = NULL, *msg = NULL;
        if (res == NULL) {
            item_done(it, MF_RAISE_MSG(MF_ERR_PROTO, "no result for entry %s", it->rec->entry.id));
            continue;
        }
        if (mf_ok(mf_json_str(res, "error", false, 64, &err)) && err != NULL) {
            if (!mf_ok(mf_json_str(res, "message", false, 512, &msg))) {
                msg = NULL;
            }
            item_done(
                it, MF_RAISE_MSG(MF_ERR_POLICY, "CA refused: %s: %s", err, msg != NULL ? msg : ""));
            continue;
        }
        it->res = res;
    }
    run_all(w, n, check_result, &b);
    for (size_t k = 0; k < n; k++) {
        struct agent_rec *r = &w->cache.v[idx[k]];
        mf_res tr = items[k].r;
        if (mf_ok(tr)) {
            tr = install_result(w, r, &items[k]);
        } else {
            tr = MF_RAISE_MSG(tr.err, "%s", items[k].why);
        }
        if (!mf_ok(tr)) {
            rec_failed(w, r, tr);
            continue;
        }
        *did = true;
    }
    rc = MF_RES_OK;
out:
    for (size_t k = 0; k < n; k++) {
        mf_key_free(items[k].key);
        mf_buf_cleanup(&items[k].csr);
        mf_certs_cleanup(&items[k].chain);
    }
    free(items);
    json_decref(reqs);
    json_decref(reply);
    return rc;
}

/* ---- the loop ------------------------------------------------------------ */

/* The earliest instant (ms) at which the loop has something to do. */
static int64_t next_event(struct agent_worker *w)
{
    int64_t t = w->next_expiry_ms;
    if (w->agent_key != NULL) {
        t = min64(t, w->agent_retry_at_ms > w->agent_renew_at_ms ? w->agent_retry_at_ms
                                                                 : w->agent_renew_at_ms);
    }
    for (size_t i = 0; i < w->cache.n; i++) {
        const struct agent_rec *r = &w->cache.v[i];
        int64_t due = r->key == NULL ? 0 : r->renew_at_ms;
        t = min64(t, r->retry_at_ms > due ? r->retry_at_ms : due);
    }
    return t;
}

static void ca_failed(struct agent_worker *w, mf_res why)
{
    int64_t d = 0;
    if (w->client.retry_after > 0) {
        d = (int64_t)w->client.retry_after * 1000;
    } else if (!mf_ok(agent_backoff_delay(&w->cfg->rot, w->ca_attempts, &d))) {
        d = w->cfg->rot.backoff_cap_ms;
    }
    w->ca_attempts++;
    agent_metrics_ca_failed();
    w->ca_retry_at_ms = mf_now_ms() + d;
    mf_log_warn_r(why, "CA unavailable (attempt %u); retrying in %lld ms", w->ca_attempts,
                  (long long)d);
}

/* Forgets the agent identity the CA no longer knows, in memory and on disk,
 * so that neither this process nor a restart presents it again. */
static void drop_identity(struct agent_worker *w)
{
    mf_key_free(w->agent_key);
    w->agent_key = NULL;
    mf_certs_cleanup(&w->agent_chain);
    agent_client_set_identity(&w->client, NULL, NULL);
    if (w->cache.dirfd >= 0 && unlinkat(w->cache.dirfd, AGENT_SVID_FILE, 0) != 0 &&
        errno != ENOENT) {
        mf_log_warn("cannot remove %s/%s: %s", w->cfg->data_dir, AGENT_SVID_FILE, strerror(errno));
    }
    free(w->revision);
    w->revision = NULL;
    w->agent_attempts = 0;
    w->agent_retry_at_ms = 0;
}

/* After a failed request: when the CA refused the agent itself, handles it
 * and returns true. Evicted: the identity is dropped and the loop attests
 * again once a join token is there. Banned: said once at error level, then
 * the CA is asked again only every BANNED_RETRY_MS (at debug), while what is
 * still valid is served until it expires. */
static bool ca_denied(struct agent_worker *w, mf_res why)
{
    if (w->client.denial == AGENT_DENIAL_EVICTED) {
        (void)why; /* the CA's answer adds nothing to this line */
        mf_log_err("evicted by the CA: %s is no longer attested; its identity is "
                   "dropped and a new join token is needed (restart with --join-token, "
                   "or write it to --join-token-file)",
                   w->agent_id.str);
        drop_identity(w);
        w->evicted = true;
        w->banned = false;
        w->token_tried = true; /* the token we have was spent before */
        w->ca_attempts = 0;
        w->ca_retry_at_ms = 0;
        return true;
    }
    if (w->client.denial == AGENT_DENIAL_BANNED) {
        if (!w->banned) {
            mf_log_err("banned by the CA: %s may not renew or sign; serving what is still "
                       "valid until it expires, asking again every %d min",
                       w->agent_id.str, BANNED_RETRY_MS / 60000);
        } else {
            mf_log_debug("still banned by the CA");
        }
        w->banned = true;
        agent_metrics_ca_failed();
        w->ca_retry_at_ms = mf_now_ms() + BANNED_RETRY_MS;
        w->agent_retry_at_ms = w->ca_retry_at_ms;
        return true;
    }
    return false;
}

/* Evicted: attests with the join token as soon as there is one not tried
 * yet (re-reading --join-token-file every TOKEN_POLL_MS). */
static void reattest(struct agent_worker *w)
{
    struct mf_buf prev;
    mf_buf_init(&prev, TOKEN_MAX + 1, MF_BUF_SECRET);
    mf_res r = mf_buf_append(&prev, w->token.data, w->token.len);
    if (mf_ok(r)) {
        r = read_token(w->cfg, &w->token);
    }
    if (!mf_ok(r)) {
        if (r.err != MF_ERR_IO_NOT_FOUND) {
            mf_log_warn_r(r, "cannot read the join token");
        }
        w->ca_retry_at_ms = mf_now_ms() + TOKEN_POLL_MS;
        mf_buf_cleanup(&prev);
        return;
    }
    bool same = prev.len == w->token.len && mf_ct_eq(prev.data, w->token.data, prev.len);
    mf_buf_cleanup(&prev);
    if (w->token.len == 0 || (same && w->token_tried)) {
        w->ca_retry_at_ms = mf_now_ms() + TOKEN_POLL_MS;
        return;
    }
    w->token_tried = false;
    r = new_agent_identity(w, mf_buf_cstr(&w->token), 1);
    if (mf_ok(r)) {
        mf_log_event(MF_LOG_INFO, __func__, "attested again after the eviction", "spiffe_id",
                     w->agent_id.str, NULL);
        w->evicted = false;
        w->ca_attempts = 0;
        w->ca_retry_at_ms = 0;
        return;
    }
    if (mf_err_category(r.err) == MF_CAT_IO) {
        ca_failed(w, r); /* the CA is away; the token is still good */
        return;
    }
    w->token_tried = true;
    mf_log_err_r(r, "attestation with the join token failed; waiting for a new one");
    w->ca_retry_at_ms = mf_now_ms() + TOKEN_POLL_MS;
}

static void mark_synced(struct agent_worker *w)
{
    pthread_mutex_lock(&w->mu);
    if (!w->synced) {
        w->synced = true;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

/* Returns the free pages inside malloc's arenas to the kernel. glibc frees
 * into per-thread arenas and gives memory back only from the top of each, so
 * the holes left by a sync answer, a signing batch and an old snapshot would
 * stay resident; malloc_trim releases every whole free page. */
static void trim_heap(void)
{
#ifdef __GLIBC__
    (void)malloc_trim(0);
#endif
}

static void *worker_main(void *arg)
{
    struct agent_worker *w = arg;
    while (!stopping(w)) {
        int64_t now = mf_now_ms();
        bool publish = false;
        agent_metrics_check_expiry(w, now);
        mf_res r;

        if (now >= w->next_expiry_ms) {
            publish = true; /* an SVID expired: take it away from workloads */
        }
        if (now < w->ca_retry_at_ms) {
            if (publish && !mf_ok(agent_worker_publish(w))) {
                mf_log_err("cannot publish");
            }
            nap(w, min64(w->ca_retry_at_ms, next_event(w)) - now);
            continue;
        }
        if (w->evicted) {
            if (publish && !mf_ok(agent_worker_publish(w))) {
                mf_log_err("cannot publish");
            }
            reattest(w);
            continue;
        }
        if (w->agent_key != NULL && now >= w->agent_renew_at_ms && now >= w->agent_retry_at_ms) {
            r = new_agent_identity(w, NULL, 0);
            if (!mf_ok(r) && ca_denied(w, r)) {
                continue;
            }
            if (!mf_ok(r)) {
                int64_t d = 0;
                if (!mf_ok(agent_backoff_delay(&w->cfg->rot, w->agent_attempts, &d))) {
                    d = w->cfg->rot.backoff_cap_ms;
                }
                w->agent_attempts++;
                w->agent_retry_at_ms = mf_now_ms() + d;
                mf_log_warn_r(r, "agent SVID renewal failed (attempt %u)", w->agent_attempts);
                if (w->agent_chain.n > 0 &&
                    !agent_svid_servable(mf_cert_not_after(w->agent_chain.v[0]))) {
                    /* by design (docs/security.md): an expired agent SVID is
                     * never renewed, so only a new join token helps */
                    char when[MF_RFC3339_LEN];
                    mf_time_format(mf_cert_not_after(w->agent_chain.v[0]), when);
                    mf_log_err("the agent SVID expired at %s and the CA does not renew an "
                               "expired one: restart the agent with a new --join-token",
                               when);
                }
            }
        }

        /* long poll: the CA answers at once when our revision is stale */
        int64_t wait_ms = next_event(w) - mf_now_ms();
        /* rounded up: a zero wait would turn into a busy loop of 204s */
        int wait_s = (int)(wait_ms <= 0 ? 0 : min64((wait_ms + 999) / 1000, AGENT_SYNC_WAIT_MAX));
        json_t *obj = NULL;
        if (wait_ms > 0 && w->trim_due) {
            /* idle until the next event: the memory of the last exchange
             * with the CA, of the round that made the last snapshot and of
             * the snapshot it replaced goes back */
            trim_heap();
            w->trim_due = false;
        }
        if (wait_ms > 0 || w->revision == NULL || !w->synced) {
            r = agent_client_sync(&w->client, w->revision, w->revision == NULL ? 0 : wait_s, &obj);
            if (!mf_ok(r)) {
                if (!ca_denied(w, r)) {
                    ca_failed(w, r);
                }
                if (publish && !mf_ok(agent_worker_publish(w))) {
                    mf_log_err("cannot publish");
                }
                continue;
            }
            /* the exchange's buffers (TLS records, the answer's JSON) are
             * freed by now: give their pages back before the next wait */
            w->trim_due = true;
            if (obj != NULL) {
                bool changed = false;
                r = apply_sync(w, obj, &changed);
                json_decref(obj);
                if (!mf_ok(r)) {
                    ca_failed(w, r);
                    continue;
                }
                publish = publish || changed;
            }
        }
        bool did = false;
        r = sign_due(w, &did);
        if (!mf_ok(r)) {
            if (!ca_denied(w, r)) {
                ca_failed(w, r);
            }
        } else {
            if (w->ca_attempts > 0) {
                mf_log_info("CA reachable again");
            }
            if (w->banned) {
                mf_log_info("the CA serves this agent again (no longer banned)");
                w->banned = false;
            }
            w->ca_attempts = 0;
            w->ca_retry_at_ms = 0;
            mark_synced(w);
        }
        if ((publish || did) && !mf_ok(agent_worker_publish(w))) {
            mf_log_err("cannot publish");
        }
        /* a sign round that failed per entry must not spin: the loop waits
         * in the next long poll until the earliest retry instant */
    }
    return NULL;
}

/* see agent_worker.h */
mf_res agent_worker_init(struct agent_worker *w, const struct agent_config *cfg,
                         struct agent_state *state)
{
    mf_res rc;
    struct mf_bundle *file_b = NULL, *trust = NULL;
    struct mf_key *key = NULL;
    struct mf_certs chain;
    int64_t renew = 0;

    MF_ENSURE_REF(w);
    memset(w, 0, sizeof(*w));
    mf_certs_init(&w->agent_chain);
    mf_certs_init(&chain);
    w->cfg = cfg;
    w->state = state;
    w->wake_fd = -1;
    w->cache.dirfd = -1;
    w->cache.svids_fd = -1;
    w->next_expiry_ms = INT64_MAX;
    mf_buf_init(&w->token, TOKEN_MAX + 1, MF_BUF_SECRET);
    MF_ENSURE(pthread_mutex_init(&w->mu, NULL) == 0, MF_ERR_INTERNAL);
    MF_ENSURE(pthread_cond_init(&w->cv, NULL) == 0, MF_ERR_INTERNAL);
    w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    MF_ENSURE(w->wake_fd >= 0, MF_ERR_IO);

    MF_TRY_OUT(agent_cache_open(cfg->data_dir, &w->cache));
    MF_TRY_OUT(bundle_file(cfg, w->td, &file_b));
    MF_TRY_OUT(agent_pool_init(&w->pool, AGENT_POOL_AUTO));
    w->pool_ok = true;
    w->cache.pool = &w->pool; /* the cached SVIDs are read in parallel */
    MF_TRY_OUT(agent_cache_load(&w->cache, w->td));
    for (size_t i = 0; i < w->cache.n; i++) {
        if (w->cache.v[i].chain.n > 0 && agent_svid_servable(w->cache.v[i].not_after)) {
            w->n_loaded++;
        }
    }
    /* trust what the CA last told us plus what the operator gave us now */
    if (w->cache.bundle != NULL) {
        MF_TRY_OUT(mf_bundle_copy(w->cache.bundle, &trust));
        for (size_t i = 0; i < file_b->x509.n; i++) {
            MF_TRY_OUT(mf_bundle_add_x509(trust, file_b->x509.v[i]));
        }
    } else {
        trust = mf_bundle_ref(file_b);
        w->cache.bundle = mf_bundle_ref(file_b);
    }
    MF_TRY_OUT(agent_client_init(&w->client, cfg->server, w->td, trust));
    /* stopping writes wake_fd: that also abandons a long poll in flight */
    w->client.cancel_fd = w->wake_fd;
    agent_client_report(&w->client);
    MF_TRY_OUT(agent_state_set_identity(state, NULL, NULL, trust));

    rc = agent_cache_load_agent(&w->cache, &key, &chain, &renew);
    if (mf_ok(rc) && agent_svid_servable(mf_cert_not_after(chain.v[0])) &&
        mf_cert_spiffe_id(chain.v[0], &w->agent_id)) {
        w->agent_key = key;
        key = NULL;
        w->agent_chain = chain;
        mf_certs_init(&chain);
        w->agent_renew_at_ms = renew;
        agent_client_set_identity(&w->client, w->agent_key, &w->agent_chain);
        MF_TRY_OUT(agent_state_set_identity(state, w->agent_key, &w->agent_chain, NULL));
        mf_log_info("reusing the agent identity %s from %s", w->agent_id.str, cfg->data_dir);
    } else {
        if (!mf_ok(rc) && rc.err != MF_ERR_IO_NOT_FOUND) {
            mf_log_warn_r(rc, "ignoring the saved agent identity");
        }
        MF_TRY_OUT(read_token(cfg, &w->token));
        MF_ENSURE_OUT_MSG(w->token.len > 0, MF_ERR_USAGE_ARG,
                          "no valid agent identity in %s: --join-token or --join-token-file is "
                          "needed",
                          cfg->data_dir);
        MF_TRY_OUT(new_agent_identity(w, mf_buf_cstr(&w->token), ATTEST_TRIES));
    }
    MF_TRY_OUT(agent_worker_publish(w));
    rc = MF_RES_OK;
out:
    mf_key_free(key);
    mf_certs_cleanup(&chain);
    mf_bundle_free(file_b);
    mf_bundle_free(trust);
    return rc;
}

/* see agent_worker.h */
mf_res agent_worker_start(struct agent_worker *w)
{
    if (!w->pool_ok) {
        MF_TRY(agent_pool_init(&w->pool, AGENT_POOL_AUTO));
        w->pool_ok = true;
    }
    MF_ENSURE(pthread_create(&w->thread, NULL, worker_main, w) == 0, MF_ERR_INTERNAL);
    w->started = true;
    return MF_RES_OK;
}

/* see agent_worker.h */
bool agent_worker_wait_synced(struct agent_worker *w, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->synced && !w->stop) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    bool s = w->synced;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* see agent_worker.h */
void agent_worker_stop(struct agent_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    uint64_t one = 1;
    if (w->wake_fd >= 0) {
        (void)!write(w->wake_fd, &one, sizeof(one));
    }
    if (w->started) {
        /* wake_fd also cancels any request in flight (agent_client's
         * cancel_fd), so the thread ends promptly; only a TLS handshake in
         * progress runs to its own timeout. Do not wait longer than that:
         * every file on disk is already consistent. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 12;
        if (pthread_timedjoin_np(w->thread, NULL, &ts) == 0) {
            w->started = false;
        }
    }
}

/* see agent_worker.h */
void agent_worker_cleanup(struct agent_worker *w)
{
    if (w == NULL || w->started) {
        /* the thread still runs: leave its memory alone, exit will do */
        return;
    }
    if (w->pool_ok) {
        w->cache.pool = NULL;
        agent_pool_cleanup(&w->pool);
        w->pool_ok = false;
    }
    for (size_t i = 0; i < w->n_spare; i++) {
        mf_key_free(w->spare[i]);
    }
    agent_client_cleanup(&w->client);
    agent_cache_close(&w->cache);
    mf_key_free(w->agent_key);
    mf_certs_cleanup(&w->agent_chain);
    free(w->revision);
    mf_buf_cleanup(&w->token);
    if (w->wake_fd >= 0) {
        close(w->wake_fd);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    memset(w, 0, sizeof(*w));
}
