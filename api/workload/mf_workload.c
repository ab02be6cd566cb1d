/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_workload: the Workload API client. See mf_workload.h.
 *
 * Parsing builds a private snapshot and publishes it only when every SVID
 * passed (E27: one bad SVID refuses the whole update), so a reader never
 * sees a half-checked state. The watching source keeps one pointer to the
 * current snapshot, protected by its mutex; publishing swaps that pointer
 * and the old snapshot lives on for as long as some reader holds a
 * reference. The watcher thread is the only writer.
 *
 * The watcher never blocks for long: every read on the stream has a
 * MF_WORKLOAD_POLL_MS deadline (mf_http resumes a timed-out line without
 * losing bytes), and backoff sleeps wait on the condition variable that
 * mf_x509_source_free signals, so shutdown is prompt.
 */
#include "api/workload/mf_workload.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/un.h>

#include <jansson.h>

#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/net/mf_http.h"

#define SOCK_PATH_CAP   sizeof(((struct sockaddr_un *)0)->sun_path)
#define CONNECT_MS      2000
#define STREAM_BEGIN_MS 5000
#define ERROR_BODY_MAX  (64u * 1024u)
#define MSG_MAX         256u
#define KEY_DER_CAP     4096u

static const char *const k_headers[] = {MF_WORKLOAD_HEADER, NULL};

/* jansson's iteration API takes non-const values even to read. */
static json_t *mut(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

/* ---- snapshots ------------------------------------------------------------ */

static void svid_cleanup(struct mf_x509_svid *sv)
{
    mf_certs_cleanup(&sv->chain);
    mf_key_free(sv->key);
    sv->key = NULL;
}

/* see mf_workload.h */
mf_res mf_x509_context_new(struct mf_x509_context **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    struct mf_x509_context *ctx = calloc(1, sizeof(*ctx));
    MF_TRY_PTR(ctx, MF_ERR_NOMEM);
    mf_bundle_set_init(&ctx->bundles);
    ctx->refs = 1;
    *out = ctx;
    return MF_RES_OK;
}

/* see mf_workload.h */
struct mf_x509_context *mf_x509_context_ref(struct mf_x509_context *ctx)
{
    if (ctx != NULL) {
        __atomic_add_fetch(&ctx->refs, 1, __ATOMIC_RELAXED);
    }
    return ctx;
}

/* see mf_workload.h */
void mf_x509_context_free(struct mf_x509_context *ctx)
{
    if (ctx == NULL || __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) != 0) {
        return;
    }
    for (size_t i = 0; i < ctx->n_svids; i++) {
        svid_cleanup(&ctx->svids[i]);
    }
    free(ctx->svids);
    mf_bundle_set_cleanup(&ctx->bundles);
    free(ctx);
}

/* Moves *sv (fully built) to the end of ctx->svids; on failure *sv is left
 * for the caller to clean up. */
static mf_res push_svid(struct mf_x509_context *ctx, struct mf_x509_svid *sv)
{
    MF_ENSURE_MSG(ctx->n_svids < MF_WORKLOAD_SVIDS_MAX, MF_ERR_PROTO_TOO_LARGE,
                  "more than %u SVIDs", MF_WORKLOAD_SVIDS_MAX);
    size_t bytes;
    MF_ENSURE(mf_mul_size(ctx->n_svids + 1, sizeof(*sv), &bytes), MF_ERR_OVERFLOW);
    struct mf_x509_svid *v = realloc(ctx->svids, bytes);
    MF_TRY_PTR(v, MF_ERR_NOMEM);
    ctx->svids = v;
    ctx->svids[ctx->n_svids++] = *sv;
    memset(sv, 0, sizeof(*sv));
    return MF_RES_OK;
}

/* The SVID-level checks shared by parsing and hand building: the leaf has a
 * SPIFFE ID with a path and key is its private half. */
static mf_res check_leaf_and_key(const struct mf_certs *chain, const struct mf_key *key,
                                 struct mf_spiffe_id *id_out)
{
    MF_ENSURE_MSG(chain->n > 0, MF_ERR_AUTH_MISSING, "empty certificate chain");
    MF_ENSURE_MSG(chain->n <= MF_WORKLOAD_CHAIN_MAX, MF_ERR_PROTO_TOO_LARGE,
                  "chain of %zu certificates (at most %u)", chain->n, MF_WORKLOAD_CHAIN_MAX);
    struct mf_spiffe_id id;
    MF_ENSURE_MSG(mf_cert_spiffe_id(chain->v[0], &id), MF_ERR_AUTH_SVID,
                  "leaf has no valid SPIFFE ID URI SAN");
    MF_ENSURE_MSG(!mf_spiffeid_is_td(&id), MF_ERR_ID_NO_PATH, "leaf ID %s has no path", id.str);
    MF_ENSURE_MSG(mf_cert_matches_key(chain->v[0], key), MF_ERR_CRYPTO_MISMATCH,
                  "private key does not match the leaf of %s", id.str);
    *id_out = id;
    return MF_RES_OK;
}

/* see mf_workload.h */
mf_res mf_x509_context_add_svid(struct mf_x509_context *ctx, const struct mf_certs *chain,
                                struct mf_key *key, const char *hint)
{
    mf_res rc;
    struct mf_x509_svid sv;
    memset(&sv, 0, sizeof(sv));
    mf_certs_init(&sv.chain);
    sv.key = key; /* owned from here on */
    MF_ENSURE_OUT(ctx != NULL && chain != NULL && key != NULL, MF_ERR_USAGE_NULL);
    if (hint != NULL) {
        size_t n = strlen(hint);
        MF_ENSURE_OUT_MSG(n <= MF_WORKLOAD_HINT_MAX, MF_ERR_USAGE_ARG, "hint over %u bytes",
                          MF_WORKLOAD_HINT_MAX);
        memcpy(sv.hint, hint, n + 1);
    }
    MF_TRY_OUT(check_leaf_and_key(chain, key, &sv.id));
    for (size_t i = 0; i < chain->n; i++) {
        MF_TRY_OUT(mf_certs_push(&sv.chain, chain->v[i]));
    }
    sv.expires_at = mf_cert_not_after(chain->v[0]);
    MF_TRY_OUT(push_svid(ctx, &sv));
    rc = MF_RES_OK;
out:
    svid_cleanup(&sv);
    return rc;
}

/* see mf_workload.h */
mf_res mf_x509_context_add_bundle(struct mf_x509_context *ctx, struct mf_bundle *bundle)
{
    MF_ENSURE_REF(ctx);
    MF_ENSURE_REF(bundle);
    return mf_bundle_set_put(&ctx->bundles, bundle);
}

/* see mf_workload.h */
const struct mf_x509_svid *mf_x509_context_default(const struct mf_x509_context *ctx)
{
    return ctx != NULL && ctx->n_svids > 0 ? &ctx->svids[0] : NULL;
}

/* see mf_workload.h */
const struct mf_x509_svid *mf_x509_context_by_hint(const struct mf_x509_context *ctx,
                                                   const char *hint)
{
    if (ctx == NULL || hint == NULL || hint[0] == '\0') {
        return NULL;
    }
    for (size_t i = 0; i < ctx->n_svids; i++) {
        if (strcmp(ctx->svids[i].hint, hint) == 0) {
            return &ctx->svids[i];
        }
    }
    return NULL;
}

/* ---- parsing ---------------------------------------------------------------- */

/* Every PEM block of text must be a CERTIFICATE; at least one, at most max. */
static mf_res parse_cert_blocks(const char *text, size_t max, const char *what,
                                struct mf_certs *out)
{
    mf_res rc;
    struct mf_buf der;
    struct mf_cur cur;
    char label[64];
    mf_buf_init(&der, MF_MAX_CERT, 0);
    mf_cur_init(&cur, text, strlen(text));
    for (;;) {
        rc = mf_pem_next(&cur, label, sizeof(label), &der);
        if (rc.err == MF_ERR_IO_EOF) {
            break;
        }
        MF_TRY_OUT(rc);
        MF_ENSURE_OUT_MSG(strcmp(label, "CERTIFICATE") == 0, MF_ERR_PROTO_PEM,
                          "%s holds a PEM block that is not a CERTIFICATE", what);
        MF_ENSURE_OUT_MSG(out->n < max, MF_ERR_PROTO_TOO_LARGE,
                          "%s holds more than %zu certificates", what, max);
        struct mf_cert *cert = NULL;
        MF_TRY_OUT(mf_cert_from_der(der.data, der.len, &cert));
        rc = mf_certs_push(out, cert);
        mf_cert_free(cert);
        MF_TRY_OUT(rc);
    }
    MF_ENSURE_OUT_MSG(out->n > 0, MF_ERR_PROTO_PEM, "%s holds no CERTIFICATE block", what);
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    return rc;
}

/* Exactly one "PRIVATE KEY" (PKCS#8) block. The decoded bytes stay in a
 * secret buffer, wiped on the way out. */
static mf_res parse_key_pem(const char *text, struct mf_key **out)
{
    mf_res rc;
    struct mf_buf der;
    struct mf_cur cur;
    char label[64];
    mf_buf_init(&der, KEY_DER_CAP, MF_BUF_SECRET);
    mf_cur_init(&cur, text, strlen(text));
    rc = mf_pem_next(&cur, label, sizeof(label), &der);
    MF_ENSURE_OUT_MSG(rc.err != MF_ERR_IO_EOF, MF_ERR_PROTO_PEM,
                      "x509_svid_key holds no PEM block");
    MF_TRY_OUT(rc);
    MF_ENSURE_OUT_MSG(strcmp(label, "PRIVATE KEY") == 0, MF_ERR_PROTO_PEM,
                      "x509_svid_key must be a PKCS#8 \"PRIVATE KEY\" block");
    MF_TRY_OUT(mf_key_from_der(der.data, der.len, out));
    rc = mf_pem_next(&cur, label, sizeof(label), &der);
    if (rc.err != MF_ERR_IO_EOF) {
        mf_key_free(*out);
        *out = NULL;
        MF_BAIL_OUT(MF_ERR_PROTO_PEM, "x509_svid_key holds more than one PEM block");
    }
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&der);
    return rc;
}

/* A bundle for td from PEM text. */
static mf_res parse_bundle_pem(const char *td, const char *text, const char *what,
                               struct mf_bundle **out)
{
    mf_res rc;
    struct mf_certs certs;
    struct mf_bundle *b = NULL;
    mf_certs_init(&certs);
    *out = NULL;
    MF_TRY_OUT(parse_cert_blocks(text, MF_BUNDLE_KEYS_MAX, what, &certs));
    MF_TRY_OUT(mf_bundle_new(td, &b));
    for (size_t i = 0; i < certs.n; i++) {
        MF_TRY_OUT(mf_bundle_add_x509(b, certs.v[i]));
    }
    *out = b;
    b = NULL;
    rc = MF_RES_OK;
out:
    mf_bundle_free(b);
    mf_certs_cleanup(&certs);
    return rc;
}

/* One element of "svids": fills sv and returns the bundle of its trust
 * domain (one reference) in *bundle_out. */
static mf_res parse_svid(const json_t *o, size_t idx, int64_t now, struct mf_x509_svid *sv,
                         struct mf_bundle **bundle_out)
{
    static const char *const keys[] = {
        "spiffe_id", "x509_svid", "x509_svid_key", "bundle", "expires_at", "hint", NULL};
    mf_res rc;
    const char *id_s, *chain_s, *key_s, *bundle_s, *exp_s, *hint_s;
    struct mf_spiffe_id want;
    struct mf_bundle *b = NULL;
    struct mf_bundle_set one;
    char td[MF_TD_MAX + 1];
    int64_t exp;
    mf_bundle_set_init(&one);
    *bundle_out = NULL;

    MF_ENSURE_OUT_MSG(json_is_object(o), MF_ERR_PROTO_JSON, "svids[%zu] is not an object", idx);
    MF_TRY_OUT(mf_json_only_keys(o, keys));
    MF_TRY_OUT(mf_json_str(o, "spiffe_id", true, MF_SPIFFE_ID_MAX, &id_s));
    MF_TRY_OUT(mf_json_str(o, "x509_svid", true, MF_WORKLOAD_DOC_MAX, &chain_s));
    MF_TRY_OUT(mf_json_str(o, "x509_svid_key", true, MF_WORKLOAD_KEY_MAX, &key_s));
    MF_TRY_OUT(mf_json_str(o, "bundle", true, MF_MAX_BUNDLE, &bundle_s));
    MF_TRY_OUT(mf_json_str(o, "expires_at", true, MF_RFC3339_LEN, &exp_s));
    MF_TRY_OUT(mf_json_str(o, "hint", false, MF_WORKLOAD_HINT_MAX, &hint_s));

    MF_TRY_OUT(mf_spiffeid_parse_cstr(id_s, &want));
    MF_ENSURE_OUT_MSG(!mf_spiffeid_is_td(&want), MF_ERR_ID_NO_PATH,
                      "svids[%zu].spiffe_id has no path", idx);
    MF_TRY_OUT(mf_time_parse(exp_s, &exp));
    MF_TRY_OUT(parse_cert_blocks(chain_s, MF_WORKLOAD_CHAIN_MAX, "x509_svid", &sv->chain));
    MF_TRY_OUT(parse_key_pem(key_s, &sv->key));
    MF_TRY_OUT(check_leaf_and_key(&sv->chain, sv->key, &sv->id));
    MF_ENSURE_OUT_MSG(mf_spiffeid_eq(&sv->id, &want), MF_ERR_AUTH_SVID,
                      "svids[%zu]: leaf is %s but spiffe_id says %s", idx, sv->id.str, want.str);
    mf_spiffeid_td(&sv->id, td);
    MF_TRY_OUT(parse_bundle_pem(td, bundle_s, "bundle", &b));
    /* E27: the SVID must verify against its own trust domain's bundle */
    MF_TRY_OUT(mf_bundle_set_put(&one, b));
    MF_TRY_OUT(mf_svid_verify(&sv->chain, &one, now, NULL));
    if (hint_s != NULL) {
        memcpy(sv->hint, hint_s, strlen(hint_s) + 1);
    }
    sv->expires_at = mf_cert_not_after(sv->chain.v[0]);
    *bundle_out = b;
    b = NULL;
    rc = MF_RES_OK;
out:
    mf_bundle_set_cleanup(&one);
    mf_bundle_free(b);
    return rc;
}

/* An error document: {"error":"<code>","message":"..."} */
static mf_res error_doc(const json_t *root)
{
    static const char *const keys[] = {"error", "message", NULL};
    const char *code = NULL;
    MF_TRY(mf_json_only_keys(root, keys));
    MF_TRY(mf_json_str(root, "error", true, 64, &code));
    if (strcmp(code, "permission_denied") == 0) {
        MF_BAIL_MSG(MF_ERR_POLICY_NO_ENTRY, "no identity issued");
    }
    MF_BAIL_MSG(MF_ERR_PROTO, "the Workload API sent an error document (%s)", code);
}

static bool hint_taken(const struct mf_x509_context *ctx, const char *hint)
{
    return hint[0] != '\0' && mf_x509_context_by_hint(ctx, hint) != NULL;
}

static mf_res parse_federated(const json_t *fed, struct mf_x509_context *ctx)
{
    mf_res rc = MF_RES_OK;
    const char *key;
    json_t *v;
    MF_ENSURE_MSG(json_object_size(fed) <= MF_WORKLOAD_FED_MAX, MF_ERR_PROTO_TOO_LARGE,
                  "more than %u federated bundles", MF_WORKLOAD_FED_MAX);
    json_object_foreach(mut(fed), key, v)
    {
        char td[MF_TD_MAX + 1];
        struct mf_bundle *b = NULL;
        MF_TRY(mf_td_parse(key, strlen(key), td));
        MF_ENSURE_MSG(json_is_string(v), MF_ERR_PROTO_JSON,
                      "federated_bundles member must be a PEM string");
        MF_ENSURE_MSG(json_string_length(v) <= MF_MAX_BUNDLE, MF_ERR_PROTO_TOO_LARGE,
                      "federated bundle over %u bytes", MF_MAX_BUNDLE);
        MF_ENSURE_MSG(strlen(json_string_value(v)) == json_string_length(v), MF_ERR_PROTO_JSON,
                      "federated bundle contains a NUL");
        /* never let a federated entry stand in for (or repeat) a trust
         * domain we already hold: the bundles stay one per domain */
        MF_ENSURE_MSG(mf_bundle_set_find(&ctx->bundles, td) == NULL, MF_ERR_PROTO_JSON,
                      "federated_bundles repeats trust domain %s", td);
        MF_TRY(parse_bundle_pem(td, json_string_value(v), "federated bundle", &b));
        rc = mf_bundle_set_put(&ctx->bundles, b);
        mf_bundle_free(b);
        MF_TRY(rc);
    }
    return rc;
}

/* Overwrites the private key text that jansson copied out of the document,
 * so it does not linger in freed heap memory. */
static void wipe_keys(json_t *root)
{
    const json_t *svids = json_object_get(root, "svids");
    size_t i;
    json_t *o;
    if (!json_is_array(svids)) {
        return;
    }
    json_array_foreach(mut(svids), i, o)
    {
        json_t *k = json_is_object(o) ? json_object_get(o, "x509_svid_key") : NULL;
        if (json_is_string(k)) {
            mf_wipe((char *)(uintptr_t)json_string_value(k), json_string_length(k));
        }
    }
}

/* see mf_workload.h */
mf_res mf_x509_context_parse(const char *json, size_t len, int64_t now,
                             struct mf_x509_context **out)
{
    static const char *const keys[] = {"svids", "federated_bundles", NULL};
    mf_res rc;
    json_t *root = NULL;
    struct mf_x509_context *ctx = NULL;
    struct mf_x509_svid sv;
    struct mf_bundle *b = NULL;
    const json_t *svids = NULL;
    const json_t *fed = NULL;
    memset(&sv, 0, sizeof(sv));
    mf_certs_init(&sv.chain);
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(json);

    MF_TRY_OUT(mf_json_parse(json, len, MF_WORKLOAD_DOC_MAX, &root));
    if (json_object_get(root, "error") != NULL) {
        MF_TRY_OUT(error_doc(root));
    }
    MF_TRY_OUT(mf_json_only_keys(root, keys));
    MF_TRY_OUT(mf_json_array(root, "svids", true, MF_WORKLOAD_SVIDS_MAX, &svids));
    MF_ENSURE_OUT_MSG(json_array_size(svids) > 0, MF_ERR_PROTO_JSON,
                      "\"svids\" is empty (E20: at least one)");
    MF_TRY_OUT(mf_json_object(root, "federated_bundles", false, &fed));
    MF_TRY_OUT(mf_x509_context_new(&ctx));

    for (size_t i = 0; i < json_array_size(svids); i++) {
        MF_TRY_OUT(parse_svid(json_array_get(svids, i), i, now, &sv, &b));
        if (hint_taken(ctx, sv.hint)) {
            /* E21: a repeated hint; the first SVID that carries it wins */
            mf_log_debug("dropped SVID %s: hint repeats an earlier one", sv.id.str);
        } else {
            char td[MF_TD_MAX + 1];
            mf_spiffeid_td(&sv.id, td);
            if (mf_bundle_set_find(&ctx->bundles, td) == NULL) {
                MF_TRY_OUT(mf_bundle_set_put(&ctx->bundles, b));
            }
            MF_TRY_OUT(push_svid(ctx, &sv));
        }
        svid_cleanup(&sv);
        mf_certs_init(&sv.chain);
        mf_bundle_free(b);
        b = NULL;
    }
    MF_ENSURE_OUT_MSG(ctx->n_svids > 0, MF_ERR_PROTO_JSON, "no usable SVID");
    if (fed != NULL) {
        MF_TRY_OUT(parse_federated(fed, ctx));
    }
    *out = ctx;
    ctx = NULL;
    rc = MF_RES_OK;
out:
    svid_cleanup(&sv);
    mf_bundle_free(b);
    mf_x509_context_free(ctx);
    if (root != NULL) {
        wipe_keys(root);
        json_decref(root);
    }
    return rc;
}

/* ---- endpoint and fetch --------------------------------------------------- */

/* see mf_workload.h */
mf_res mf_workload_socket_path(const char *addr, char *path_out, size_t cap)
{
    MF_ENSURE_REF(path_out);
    MF_ENSURE(cap > 0, MF_ERR_USAGE_ARG);
    path_out[0] = '\0';
    if (addr != NULL) {
        return mf_endpoint_parse(addr, true, path_out, cap);
    }
    const char *env = getenv(MF_WORKLOAD_ENV);
    MF_ENSURE_MSG(env != NULL && env[0] != '\0', MF_ERR_USAGE_ARG,
                  "no Workload API address: pass one or set " MF_WORKLOAD_ENV);
    return mf_endpoint_parse(env, false, path_out, cap);
}

/* Copies the "message" of an error body into out, with control characters
 * replaced: the text comes from the peer and ends up in logs and terminals. */
static void error_message(const struct mf_buf *body, char *out, size_t cap)
{
    json_t *root = NULL;
    const char *msg = NULL;
    out[0] = '\0';
    if (body->len == 0 ||
        !mf_ok(mf_json_parse((const char *)body->data, body->len, ERROR_BODY_MAX, &root))) {
        return;
    }
    if (mf_ok(mf_json_str(root, "message", false, MSG_MAX, &msg)) && msg != NULL) {
        size_t n = 0;
        for (; msg[n] != '\0' && n + 1 < cap; n++) {
            unsigned char ch = (unsigned char)msg[n];
            out[n] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
        }
        out[n] = '\0';
    }
    json_decref(root);
}

/* Maps a non-200 answer of the Workload API. */
static mf_res status_error(int status, const struct mf_buf *body)
{
    char msg[MSG_MAX];
    error_message(body, msg, sizeof(msg));
    switch (status) {
    case 403:
        MF_BAIL_MSG(MF_ERR_POLICY_NO_ENTRY, "no identity issued");
    case 400:
        MF_BAIL_MSG(MF_ERR_USAGE_ARG, "the Workload API refused the request as invalid: %s",
                    msg[0] != '\0' ? msg : "(no message)");
    case 503:
        MF_BAIL_MSG(MF_ERR_IO, "the Workload API is unavailable: %s",
                    msg[0] != '\0' ? msg : "(no message)");
    default:
        MF_BAIL_MSG(MF_ERR_PROTO_HTTP, "the Workload API answered %d: %s", status,
                    msg[0] != '\0' ? msg : "(no message)");
    }
}

/* see mf_workload.h */
mf_res mf_workload_fetch_x509(const char *addr, int timeout_ms, struct mf_x509_context **out)
{
    mf_res rc;
    char path[SOCK_PATH_CAP];
    struct mf_http_conn *c = NULL;
    struct mf_http_resp resp;
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_MSG(timeout_ms >= 0, MF_ERR_USAGE_ARG, "negative timeout %d", timeout_ms);
    MF_TRY(mf_workload_socket_path(addr, path, sizeof(path)));
    mf_http_resp_init(&resp, MF_WORKLOAD_DOC_MAX);
    resp.body.flags |= MF_BUF_SECRET; /* the answer carries private keys */
    int64_t deadline = mf_mono_ms() + timeout_ms;

    MF_TRY_OUT(mf_http_connect_unix(path, timeout_ms, &c));
    int64_t left = deadline - mf_mono_ms();
    left = left < 0 ? 0 : left;
    MF_TRY_OUT(mf_http_request(c, "GET", "/v1/x509", k_headers, NULL, 0,
                               left > INT_MAX ? INT_MAX : (int)left, &resp));
    if (resp.status != 200) {
        MF_TRY_OUT(status_error(resp.status, &resp.body));
    }
    MF_TRY_OUT(mf_x509_context_parse(mf_buf_cstr(&resp.body), resp.body.len, mf_now(), out));
    rc = MF_RES_OK;
out:
    mf_http_close(c);
    mf_http_resp_cleanup(&resp);
    return rc;
}

/* ---- watching source ------------------------------------------------------- */

struct mf_x509_source {
    char path[SOCK_PATH_CAP];
    struct mf_x509_source_opts opts;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* signalled on publish, withdrawal and stop */
    struct mf_x509_context *cur; /* protected by mu */
    uint64_t gen;                /* protected by mu */
    bool withdrawn;              /* protected by mu */
    bool stop;                   /* protected by mu */
    char last_err[MSG_MAX];      /* protected by mu: the last failure, for wait() */
};

static bool stopping(struct mf_x509_source *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* An absolute CLOCK_MONOTONIC time ms from now. */
static struct timespec abs_after(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Sleeps ms unless the source is stopped first; true when stopped. */
static bool sleep_unless_stopped(struct mf_x509_source *s, int64_t ms)
{
    struct timespec until = abs_after(ms);
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0) {
            break; /* ETIMEDOUT */
        }
    }
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void note_error(struct mf_x509_source *s, mf_res r)
{
    char msg[MSG_MAX];
    mf_err_format(r, msg, sizeof(msg));
    pthread_mutex_lock(&s->mu);
    memcpy(s->last_err, msg, sizeof(msg));
    pthread_mutex_unlock(&s->mu);
}

/* Swaps x in as the current snapshot (taking over the caller's reference)
 * and tells the listener. */
static void publish(struct mf_x509_source *s, struct mf_x509_context *x)
{
    pthread_mutex_lock(&s->mu);
    struct mf_x509_context *old = s->cur;
    s->cur = x;
    s->gen++;
    s->withdrawn = false;
    s->last_err[0] = '\0';
    struct mf_x509_context *mine = mf_x509_context_ref(x);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    const struct mf_x509_svid *d = mf_x509_context_default(x);
    if (d != NULL && mf_log_enabled(MF_LOG_DEBUG)) {
        char serial[MF_SERIAL_HEX_MAX];
        mf_cert_serial_hex(d->chain.v[0], serial);
        mf_log_debug("X.509 update: %zu SVID(s), default %s serial %s", x->n_svids, d->id.str,
                     serial);
    }
    if (s->opts.on_update != NULL) {
        s->opts.on_update(s->opts.arg, mine);
    }
    mf_x509_context_free(mine);
    mf_x509_context_free(old);
}

/* E18: the agent no longer grants an identity; stop handing out the old
 * one. */
static void withdraw(struct mf_x509_source *s)
{
    pthread_mutex_lock(&s->mu);
    struct mf_x509_context *old = s->cur;
    s->cur = NULL;
    s->withdrawn = true;
    if (old != NULL) {
        s->gen++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (old != NULL) {
        mf_log_warn("the Workload API withdrew this workload's identity");
        if (s->opts.on_update != NULL) {
            s->opts.on_update(s->opts.arg, NULL);
        }
        mf_x509_context_free(old);
    }
}

/* Holds one watch stream until it ends, fails or the source stops. Sets
 * *progress when at least one snapshot was published. */
static mf_res watch_once(struct mf_x509_source *s, bool *progress)
{
    mf_res rc;
    struct mf_http_conn *c = NULL;
    struct mf_http_resp resp;
    struct mf_buf line;
    mf_http_resp_init(&resp, ERROR_BODY_MAX);
    resp.body.flags |= MF_BUF_SECRET;
    mf_buf_init(&line, MF_WORKLOAD_DOC_MAX, MF_BUF_SECRET);

    MF_TRY_OUT(mf_http_connect_unix(s->path, CONNECT_MS, &c));
    MF_TRY_OUT(
        mf_http_stream_begin(c, "GET", "/v1/x509?watch=true", k_headers, STREAM_BEGIN_MS, &resp));
    if (resp.status != 200) {
        rc = status_error(resp.status, &resp.body);
        if (rc.err == MF_ERR_POLICY_NO_ENTRY) {
            withdraw(s);
        }
        goto out;
    }
    for (;;) {
        if (stopping(s)) {
            rc = MF_RES_OK;
            goto out;
        }
        rc = mf_http_stream_line(c, MF_WORKLOAD_DOC_MAX, MF_WORKLOAD_POLL_MS, &line);
        if (rc.err == MF_ERR_IO_TIMEOUT) {
            continue;
        }
        if (rc.err == MF_ERR_IO_EOF) {
            MF_BAIL_OUT(MF_ERR_IO_EOF, "the Workload API ended the watch stream");
        }
        MF_TRY_OUT(rc);
        if (line.len == 0) {
            continue;
        }
        struct mf_x509_context *x = NULL;
        mf_res pr = mf_x509_context_parse(mf_buf_cstr(&line), line.len, mf_now(), &x);
        mf_buf_reset(&line); /* secret: wiped */
        if (pr.err == MF_ERR_POLICY_NO_ENTRY) {
            note_error(s, pr);
            withdraw(s);
            continue;
        }
        if (!mf_ok(pr)) {
            /* go-spiffe's rule: a bad update is refused whole, the
             * previous state stays, and the stream goes on */
            note_error(s, pr);
            mf_log_warn_r(pr, "refused an X.509 update from the Workload API");
            continue;
        }
        *progress = true;
        publish(s, x);
    }
out:
    mf_http_close(c);
    mf_http_resp_cleanup(&resp);
    mf_buf_cleanup(&line);
    return rc;
}

static void *source_main(void *arg)
{
    struct mf_x509_source *s = arg;
    int64_t backoff = s->opts.backoff_min_ms;
    /* verification runs ECC on this thread; have its cache freed at exit */
    mf_x509_global_init();
    char last[MSG_MAX] = "";
    while (!stopping(s)) {
        bool progress = false;
        mf_res r = watch_once(s, &progress);
        if (stopping(s)) {
            break;
        }
        if (progress) {
            backoff = s->opts.backoff_min_ms;
        }
        if (!mf_ok(r)) {
            char msg[MSG_MAX];
            mf_err_format(r, msg, sizeof(msg));
            note_error(s, r);
            /* say it once per distinct failure, not on every retry */
            if (strcmp(msg, last) != 0) {
                mf_log_warn("Workload API watch: %s (retrying)", msg);
                memcpy(last, msg, sizeof(last));
            } else {
                mf_log_debug("Workload API watch: %s (retrying)", msg);
            }
        }
        /* jitter: a delay drawn in [backoff/2, backoff] */
        uint64_t delay = (uint64_t)backoff;
        if (!mf_ok(mf_random_range((uint64_t)backoff / 2, (uint64_t)backoff, &delay))) {
            delay = (uint64_t)backoff;
        }
        if (sleep_unless_stopped(s, (int64_t)delay)) {
            break;
        }
        backoff = backoff * 2 > s->opts.backoff_max_ms ? s->opts.backoff_max_ms : backoff * 2;
    }
    return NULL;
}

/* see mf_workload.h */
mf_res mf_x509_source_new(const char *addr, const struct mf_x509_source_opts *opts,
                          struct mf_x509_source **out)
{
    mf_res rc;
    pthread_condattr_t ca;
    bool mu_ok = false, cv_ok = false, ca_ok = false;
    MF_ENSURE_REF(out);
    *out = NULL;
    struct mf_x509_source *s = calloc(1, sizeof(*s));
    MF_TRY_PTR(s, MF_ERR_NOMEM);
    MF_TRY_OUT(mf_workload_socket_path(addr, s->path, sizeof(s->path)));
    if (opts != NULL) {
        s->opts = *opts;
    }
    MF_ENSURE_OUT_MSG(s->opts.backoff_min_ms >= 0 && s->opts.backoff_max_ms >= 0, MF_ERR_USAGE_ARG,
                      "negative backoff");
    if (s->opts.backoff_min_ms == 0) {
        s->opts.backoff_min_ms = 200;
    }
    if (s->opts.backoff_max_ms == 0) {
        s->opts.backoff_max_ms = 10000;
    }
    if (s->opts.backoff_max_ms < s->opts.backoff_min_ms) {
        s->opts.backoff_max_ms = s->opts.backoff_min_ms;
    }
    MF_ENSURE_OUT(pthread_mutex_init(&s->mu, NULL) == 0, MF_ERR_INTERNAL);
    mu_ok = true;
    MF_ENSURE_OUT(pthread_condattr_init(&ca) == 0, MF_ERR_INTERNAL);
    ca_ok = true;
    MF_ENSURE_OUT(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0, MF_ERR_INTERNAL);
    MF_ENSURE_OUT(pthread_cond_init(&s->cv, &ca) == 0, MF_ERR_INTERNAL);
    cv_ok = true;

    /* the watcher takes no signals: they belong to the application's own
     * threads (STYLE.md threading) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&s->thread, NULL, source_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    MF_ENSURE_OUT_MSG(e == 0, MF_ERR_INTERNAL, "pthread_create: %s", strerror(e));
    *out = s;
    s = NULL;
    rc = MF_RES_OK;
out:
    if (ca_ok) {
        pthread_condattr_destroy(&ca);
    }
    if (s != NULL) {
        if (cv_ok) {
            pthread_cond_destroy(&s->cv);
        }
        if (mu_ok) {
            pthread_mutex_destroy(&s->mu);
        }
        free(s);
    }
    return rc;
}

/* see mf_workload.h */
mf_res mf_x509_source_wait(struct mf_x509_source *s, int timeout_ms)
{
    MF_ENSURE_REF(s);
    MF_ENSURE_MSG(timeout_ms >= 0, MF_ERR_USAGE_ARG, "negative timeout %d", timeout_ms);
    struct timespec until = abs_after(timeout_ms);
    char why[MSG_MAX];
    pthread_mutex_lock(&s->mu);
    while (s->cur == NULL && !s->stop) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0) {
            break;
        }
    }
    bool have = s->cur != NULL;
    memcpy(why, s->last_err, sizeof(why));
    pthread_mutex_unlock(&s->mu);
    MF_ENSURE_MSG(have, MF_ERR_IO_TIMEOUT,
                  "no X.509 identity from the Workload API within %d ms%s%s", timeout_ms,
                  why[0] != '\0' ? "; last error: " : "", why);
    return MF_RES_OK;
}

/* see mf_workload.h */
mf_res mf_x509_source_get(struct mf_x509_source *s, struct mf_x509_context **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(s);
    pthread_mutex_lock(&s->mu);
    struct mf_x509_context *x = mf_x509_context_ref(s->cur);
    bool withdrawn = s->withdrawn;
    pthread_mutex_unlock(&s->mu);
    if (x == NULL) {
        MF_ENSURE_MSG(!withdrawn, MF_ERR_POLICY_NO_ENTRY, "no identity issued");
        MF_BAIL_MSG(MF_ERR_STATE, "no X.509 identity received from the Workload API yet");
    }
    *out = x;
    return MF_RES_OK;
}

/* see mf_workload.h */
uint64_t mf_x509_source_generation(struct mf_x509_source *s)
{
    if (s == NULL) {
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t g = s->gen;
    pthread_mutex_unlock(&s->mu);
    return g;
}

/* see mf_workload.h */
void mf_x509_source_free(struct mf_x509_source *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    mf_x509_context_free(s->cur);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
