/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_grpc: the gRPC Workload API server. See agent_grpc.h for what it
 * serves and the memory bounds.
 *
 * gRPC over HTTP/2 in short (grpc/doc/PROTOCOL-HTTP2.md): a call is one
 * HTTP/2 stream; the request is HEADERS (":method POST", ":path
 * /SpiffeWorkloadAPI/<Method>", "content-type application/grpc...") and
 * DATA carrying length-prefixed messages (1 byte "compressed" flag, 4 bytes
 * big-endian length, the protobuf bytes), ended by END_STREAM. The answer is
 * HEADERS (":status 200", content-type), DATA with messages, and trailers
 * "grpc-status" / "grpc-message"; an error before any message is
 * "Trailers-Only": one HEADERS frame holding all of it, with END_STREAM.
 *
 * Threads: one per connection, which owns its nghttp2 session and streams;
 * plus one notifier that waits on the agent state's version and pokes every
 * connection's eventfd when a new snapshot is published. Only g->mu (the
 * connection list) is shared.
 */
#include "agent/agent_grpc.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/eventfd.h>
#include <sys/socket.h>

#include <jansson.h>

#include "agent/agent_metrics.h"
#include "agent/agent_sds.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"
#include "api/core/mf_time.h"
#include "workload.pb-c.h"

#define RECV_CHUNK   16384
#define STRUCT_DEPTH 32 /* nesting of claims converted to google.protobuf.Struct */
#define WL_SERVICE   "/SpiffeWorkloadAPI/"
#define SDS_SERVICE  "/envoy.service.secret.v3.SecretDiscoveryService/"

/* gRPC status codes (grpc/doc/statuscodes.md) */
enum gstatus {
    GS_OK = 0,
    GS_INVALID_ARGUMENT = 3,
    GS_PERMISSION_DENIED = 7,
    GS_RESOURCE_EXHAUSTED = 8,
    GS_UNIMPLEMENTED = 12,
    GS_INTERNAL = 13,
    GS_UNAVAILABLE = 14,
};

enum rpc {
    RPC_UNKNOWN = 0,
    RPC_X509_SVID,
    RPC_X509_BUNDLES,
    RPC_JWT_SVID,
    RPC_JWT_BUNDLES,
    RPC_VALIDATE,
    RPC_WIT,        /* FetchWITSVID, FetchWITBundles: optional profile, not served */
    RPC_SDS_STREAM, /* Envoy SDS (agent_sds.h): bidirectional stream */
    RPC_SDS_FETCH,  /* unary */
    RPC_SDS_DELTA,  /* incremental xDS: not served */
};

static const struct {
    const char *service; /* ":path" is service then name */
    const char *name;
    enum rpc rpc;
} methods[] = {
    {WL_SERVICE, "FetchX509SVID", RPC_X509_SVID},
    {WL_SERVICE, "FetchX509Bundles", RPC_X509_BUNDLES},
    {WL_SERVICE, "FetchJWTSVID", RPC_JWT_SVID},
    {WL_SERVICE, "FetchJWTBundles", RPC_JWT_BUNDLES},
    {WL_SERVICE, "ValidateJWTSVID", RPC_VALIDATE},
    {WL_SERVICE, "FetchWITSVID", RPC_WIT},
    {WL_SERVICE, "FetchWITBundles", RPC_WIT},
    {SDS_SERVICE, "StreamSecrets", RPC_SDS_STREAM},
    {SDS_SERVICE, "FetchSecrets", RPC_SDS_FETCH},
    {SDS_SERVICE, "DeltaSecrets", RPC_SDS_DELTA},
};

/* Envoy's SDS: no workload.spiffe.io header (Envoy sends none, and SPIRE
 * asks none of it), but the same attestation. */
static bool is_sds(enum rpc r)
{
    return r == RPC_SDS_STREAM || r == RPC_SDS_FETCH || r == RPC_SDS_DELTA;
}

/* Calls whose client keeps sending: dispatched at their HEADERS, each
 * request message handled as it arrives. */
static bool is_bidi(enum rpc r)
{
    return r == RPC_SDS_STREAM || r == RPC_SDS_DELTA;
}

/* Label values of mayfly_agent_grpc_requests_total (lower-case). */
static const char *rpc_label(enum rpc r)
{
    switch (r) {
    case RPC_X509_SVID:
        return "fetch_x509_svid";
    case RPC_X509_BUNDLES:
        return "fetch_x509_bundles";
    case RPC_JWT_SVID:
        return "fetch_jwt_svid";
    case RPC_JWT_BUNDLES:
        return "fetch_jwt_bundles";
    case RPC_VALIDATE:
        return "validate_jwt_svid";
    case RPC_WIT:
        return "wit";
    case RPC_SDS_STREAM:
        return "sds_stream_secrets";
    case RPC_SDS_FETCH:
        return "sds_fetch_secrets";
    case RPC_SDS_DELTA:
        return "sds_delta_secrets";
    case RPC_UNKNOWN:
    default:
        return "unknown";
    }
}

static const char *code_label(int status)
{
    switch (status) {
    case GS_OK:
        return "ok";
    case GS_INVALID_ARGUMENT:
        return "invalid_argument";
    case GS_PERMISSION_DENIED:
        return "permission_denied";
    case GS_RESOURCE_EXHAUSTED:
        return "resource_exhausted";
    case GS_UNIMPLEMENTED:
        return "unimplemented";
    case GS_INTERNAL:
        return "internal";
    case GS_UNAVAILABLE:
        return "unavailable";
    default:
        return "other";
    }
}

struct gconn;

struct gstream {
    struct gstream *next;
    int32_t id;
    enum rpc rpc;
    bool post;            /* :method is POST */
    bool ct_ok;           /* content-type is application/grpc[+...|;...] */
    unsigned sec_headers; /* workload.spiffe.io headers seen */
    unsigned sec_true;    /* ... of which exactly "true" */
    size_t hdr_bytes;
    struct mf_buf req; /* request body as received (framed) */
    bool req_too_large;
    int64_t opened_ms;
    bool dispatched;
    bool streaming; /* a server stream that follows the state */
    bool deferred;  /* nghttp2 waits for resume_data */
    bool dirty;     /* render again once out is free */
    struct agent_workload w;
    struct agent_sds *sds; /* SDS streams and fetches: the xDS state */
    struct mf_buf out;     /* secret: the message being sent, framed */
    size_t off;            /* bytes of out handed to nghttp2 */
    uint8_t out_digest[32];
    uint8_t last_sent[32]; /* digest of the last message fully handed over */
    bool sent_any;
    int final; /* grpc-status to end with once out is sent; -1 = open */
    char final_msg[160];
};

struct gconn {
    struct gconn *next;
    struct agent_grpc *g;
    int fd;
    int evfd;
    struct agent_conn_stamp stamp;
    struct agent_attest_cache acache; /* this connection's thread only */
    struct ucred cred;
    bool have_cred;
    nghttp2_session *sess;
    struct gstream *streams;
    size_t n_streams;
    size_t n_dispatched; /* open streams with a running RPC */
    bool ever_dispatched;
    int64_t started_ms;     /* accepted */
    uid_t uid;              /* counted against in g->cfg.admit */
    int64_t quiet_since_ms; /* when the last stream ended */
    size_t pending;         /* bytes in every stream's out */
    bool drained;           /* a message completed: retry streams over budget */
};

struct agent_grpc {
    struct agent_grpc_cfg cfg;
    pthread_mutex_t mu; /* protects conns, n_conns, stopping */
    pthread_cond_t cv;  /* signalled when n_conns drops */
    struct gconn *conns;
    unsigned n_conns;
    bool stopping;
    pthread_t notifier;
    bool notifier_started;
};

/* ---- small helpers --------------------------------------------------------- */

static nghttp2_nv make_nv(const char *name, const char *value)
{
    nghttp2_nv nv = {
        .name = (uint8_t *)(uintptr_t)name,
        .value = (uint8_t *)(uintptr_t)value,
        .namelen = strlen(name),
        .valuelen = strlen(value),
        .flags = NGHTTP2_NV_FLAG_NONE,
    };
    return nv;
}

static bool hdr_is(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

static const char *rpc_name(enum rpc r)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (methods[i].rpc == r) {
            return methods[i].name;
        }
    }
    return "unknown";
}

static void log_denial(const struct gconn *c, const struct gstream *s, const char *reason)
{
    char pid[16], uid[16];
    snprintf(pid, sizeof(pid), "%d", c->have_cred ? (int)c->cred.pid : -1);
    snprintf(uid, sizeof(uid), "%u", c->have_cred ? (unsigned)c->cred.uid : 0u);
    agent_metrics_denied(reason);
    mf_log_event(MF_LOG_INFO, __func__, "workload denied", "rpc", rpc_name(s->rpc), "pid", pid,
                 "uid", uid, "reason", reason, NULL);
}

/* Frames message m (1-byte flag, 4-byte length, bytes) onto out. */
static mf_res frame_msg(const ProtobufCMessage *m, struct mf_buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    MF_ENSURE_MSG(n <= GRPC_MSG_MAX, MF_ERR_PROTO_TOO_LARGE, "response of %zu bytes exceeds %u", n,
                  GRPC_MSG_MAX);
    MF_TRY(mf_buf_reserve(out, n + 5));
    uint8_t *p = out->data + out->len;
    p[0] = 0;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    size_t w = protobuf_c_message_pack(m, p + 5);
    MF_ENSURE(w == n, MF_ERR_INTERNAL);
    out->len += n + 5;
    out->data[out->len] = '\0';
    return MF_RES_OK;
}

static ProtobufCBinaryData bin(const struct mf_buf *b)
{
    ProtobufCBinaryData d = {.len = b->len, .data = b->data};
    return d;
}

static char *mutable_str(const char *s)
{
    /* protobuf-c's message structs hold char *, and only read it when packing */
    return (char *)(uintptr_t)s;
}

/* ---- rendering ---------------------------------------------------------------- */

enum render_res { RENDER_NEW, RENDER_SAME, RENDER_DENIED, RENDER_ERROR };

/* The X.509 authorities of the snapshot's bundle as concatenated DER. */
static mf_res bundle_der(const struct agent_snap *snap, struct mf_buf *out)
{
    if (snap->bundle == NULL || snap->bundle->x509.n == 0) {
        return MF_RES_OK;
    }
    return mf_certs_to_der_concat(&snap->bundle->x509, out);
}

static mf_res render_x509_svid(const struct agent_snap *snap, const struct agent_workload *w,
                               size_t n, struct mf_buf *out)
{
    mf_res rc;
    struct mf_buf bder;
    X509SVID *items = calloc(n, sizeof(*items));
    X509SVID **ptrs = calloc(n, sizeof(*ptrs));
    X509SVIDResponse__FederatedBundlesEntry *fitems = NULL, **fptrs = NULL;
    struct mf_buf *chains = calloc(n, sizeof(*chains)); /* DER, made here */
    struct mf_buf *keys = calloc(n, sizeof(*keys));     /* PKCS#8 DER, secret */
    mf_buf_init(&bder, MF_MAX_BUNDLE, 0);
    MF_ENSURE_OUT(items != NULL && ptrs != NULL && chains != NULL && keys != NULL, MF_ERR_NOMEM);
    for (size_t j = 0; j < n; j++) {
        mf_buf_init(&chains[j], MF_MAX_BUNDLE, 0);
        mf_buf_init(&keys[j], MF_MAX_CERT, MF_BUF_SECRET);
    }
    MF_TRY_OUT(bundle_der(snap, &bder));
    size_t k = 0;
    for (size_t i = 0; i < snap->n && k < n; i++) {
        if (!agent_snap_visible(snap, i, w->sels, w->n_sels)) {
            continue;
        }
        const struct agent_snap_svid *v = &snap->svids[i];
        x509_svid__init(&items[k]);
        MF_TRY_OUT(mf_certs_to_der_concat(&v->chain, &chains[k]));
        MF_TRY_OUT(mf_key_to_der(v->key, &keys[k]));
        items[k].spiffe_id = mutable_str(v->spiffe_id);
        items[k].x509_svid = bin(&chains[k]);
        items[k].x509_svid_key = bin(&keys[k]);
        items[k].bundle = bin(&bder);
        items[k].hint = mutable_str(v->hint);
        ptrs[k] = &items[k];
        k++;
    }
    X509SVIDResponse resp;
    x509_svidresponse__init(&resp);
    resp.n_svids = k;
    resp.svids = ptrs;
    /* the foreign bundles of the trust domains these SVIDs federate with,
     * each under its own trust domain ID (never merged with ours) */
    if (snap->n_feds > 0) {
        fitems = calloc(snap->n_feds, sizeof(*fitems));
        fptrs = calloc(snap->n_feds, sizeof(*fptrs));
        MF_ENSURE_OUT(fitems != NULL && fptrs != NULL, MF_ERR_NOMEM);
    }
    size_t nf = 0;
    for (size_t i = 0; i < snap->n_feds; i++) {
        if (!agent_snap_fed_visible(snap, i, w->sels, w->n_sels)) {
            continue;
        }
        x509_svidresponse__federated_bundles_entry__init(&fitems[nf]);
        fitems[nf].key = mutable_str(snap->feds[i].td_id);
        fitems[nf].value = bin(&snap->feds[i].der);
        fptrs[nf] = &fitems[nf];
        nf++;
    }
    resp.n_federated_bundles = nf;
    resp.federated_bundles = fptrs;
    MF_TRY_OUT(frame_msg(&resp.base, out));
    rc = MF_RES_OK;
out:
    for (size_t j = 0; chains != NULL && j < n; j++) {
        mf_buf_cleanup(&chains[j]);
    }
    for (size_t j = 0; keys != NULL && j < n; j++) {
        mf_buf_cleanup(&keys[j]);
    }
    free(chains);
    free(keys);
    free(items);
    free(ptrs);
    free(fitems);
    free(fptrs);
    mf_buf_cleanup(&bder);
    return rc;
}

/* agent_answer_fn of AGENT_ANSWER_X509_GRPC: rendered once per snapshot and
 * selector set (agent_snap_answer). */
static mf_res render_x509_svid_fn(const struct agent_snap *snap, const struct mf_selector *have,
                                  size_t n_have, struct mf_buf *out, size_t *count, void *arg)
{
    (void)arg;
    struct agent_workload w = {.sels = (struct mf_selector *)(uintptr_t)have, .n_sels = n_have};
    *count = agent_snap_count(snap, have, n_have);
    return *count > 0 ? render_x509_svid(snap, &w, *count, out) : MF_RES_OK;
}

/* Ours first, then the foreign bundles visible to the workload w. */
static size_t bundle_slots(const struct agent_snap *snap, const struct agent_workload *w,
                           const struct mf_bundle **v, const char **ids)
{
    size_t n = 0;
    v[n] = snap->bundle;
    ids[n++] = snap->td_id;
    for (size_t k = 0; k < snap->n_feds; k++) {
        if (agent_snap_fed_visible(snap, k, w->sels, w->n_sels)) {
            v[n] = snap->feds[k].bundle;
            ids[n++] = snap->feds[k].td_id;
        }
    }
    return n;
}

static mf_res render_x509_bundles(const struct agent_snap *snap, const struct agent_workload *w,
                                  struct mf_buf *out)
{
    mf_res rc;
    size_t cap = snap->n_feds + 1;
    const struct mf_bundle **v = calloc(cap, sizeof(*v));
    const char **ids = calloc(cap, sizeof(*ids));
    struct mf_buf *ders = calloc(cap, sizeof(*ders));
    X509BundlesResponse__BundlesEntry *e = calloc(cap, sizeof(*e));
    X509BundlesResponse__BundlesEntry **pe = calloc(cap, sizeof(*pe));
    size_t n = 0;
    MF_ENSURE_OUT(v != NULL && ids != NULL && ders != NULL && e != NULL && pe != NULL,
                  MF_ERR_NOMEM);
    n = bundle_slots(snap, w, v, ids);
    for (size_t i = 0; i < n; i++) {
        mf_buf_init(&ders[i], MF_MAX_BUNDLE, 0);
        if (v[i] != NULL && v[i]->x509.n > 0) {
            MF_TRY_OUT(mf_certs_to_der_concat(&v[i]->x509, &ders[i]));
        }
        x509_bundles_response__bundles_entry__init(&e[i]);
        e[i].key = mutable_str(ids[i]);
        e[i].value = bin(&ders[i]);
        pe[i] = &e[i];
    }
    X509BundlesResponse resp;
    x509_bundles_response__init(&resp);
    resp.n_bundles = n;
    resp.bundles = pe;
    rc = frame_msg(&resp.base, out);
out:
    for (size_t i = 0; ders != NULL && i < n; i++) {
        mf_buf_cleanup(&ders[i]);
    }
    free(v);
    free(ids);
    free(ders);
    free(e);
    free(pe);
    return rc;
}

static mf_res render_jwt_bundles(const struct agent_snap *snap, const struct agent_workload *w,
                                 struct mf_buf *out)
{
    mf_res rc;
    size_t cap = snap->n_feds + 1;
    const struct mf_bundle **v = calloc(cap, sizeof(*v));
    const char **ids = calloc(cap, sizeof(*ids));
    struct mf_buf *jwks = calloc(cap, sizeof(*jwks));
    JWTBundlesResponse__BundlesEntry *e = calloc(cap, sizeof(*e));
    JWTBundlesResponse__BundlesEntry **pe = calloc(cap, sizeof(*pe));
    size_t n = 0;
    MF_ENSURE_OUT(v != NULL && ids != NULL && jwks != NULL && e != NULL && pe != NULL,
                  MF_ERR_NOMEM);
    n = bundle_slots(snap, w, v, ids);
    for (size_t i = 0; i < n; i++) {
        mf_buf_init(&jwks[i], MF_MAX_BUNDLE, 0);
        if (v[i] != NULL) {
            MF_TRY_OUT(mf_bundle_jwt_jwks(v[i], &jwks[i]));
        } else {
            MF_TRY_OUT(mf_buf_append_str(&jwks[i], "{\"keys\":[]}"));
        }
        jwtbundles_response__bundles_entry__init(&e[i]);
        e[i].key = mutable_str(ids[i]);
        e[i].value = bin(&jwks[i]);
        pe[i] = &e[i];
    }
    JWTBundlesResponse resp;
    jwtbundles_response__init(&resp);
    resp.n_bundles = n;
    resp.bundles = pe;
    rc = frame_msg(&resp.base, out);
out:
    for (size_t i = 0; jwks != NULL && i < n; i++) {
        mf_buf_cleanup(&jwks[i]);
    }
    free(v);
    free(ids);
    free(jwks);
    free(e);
    free(pe);
    return rc;
}

static void set_final(struct gstream *s, int status, const char *msg);

/* The SDS response due on this stream, if any, into s->out; a denial
 * also sets the stream's final status. */
static enum render_res render_sds(struct gconn *c, struct gstream *s)
{
    char why[sizeof(s->final_msg)];
    struct agent_snap *snap = agent_state_get(c->g->cfg.state, NULL);
    enum agent_sds_out o =
        agent_sds_render(s->sds, snap, s->w.sels, s->w.n_sels, &s->out, why, sizeof(why));
    agent_snap_unref(snap);
    switch (o) {
    case AGENT_SDS_SEND:
        return RENDER_NEW;
    case AGENT_SDS_QUIET:
        return RENDER_SAME;
    case AGENT_SDS_DENIED:
        mf_buf_cleanup(&s->out);
        log_denial(c, s, "resource not available");
        set_final(s, GS_PERMISSION_DENIED, why);
        return RENDER_DENIED;
    case AGENT_SDS_ERROR:
    default:
        mf_log_err("cannot render an SDS response: %s", why);
        mf_buf_cleanup(&s->out);
        return RENDER_ERROR;
    }
}

/* The current state for a streaming RPC, into s->out (empty on entry). */
static enum render_res render_stream(struct gconn *c, struct gstream *s)
{
    if (s->sds != NULL) {
        return render_sds(c, s);
    }
    struct agent_snap *snap = agent_state_get(c->g->cfg.state, NULL);
    struct agent_answer *ans = NULL; /* X509-SVIDs: rendered once per snapshot */
    mf_res r = MF_RES_OK;
    size_t n = 0;
    if (s->rpc == RPC_X509_SVID && snap != NULL) {
        r = agent_snap_answer(snap, AGENT_ANSWER_X509_GRPC, s->w.sels, s->w.n_sels,
                              render_x509_svid_fn, NULL, &ans);
        n = ans != NULL ? ans->count : 0;
    } else if (snap != NULL) {
        n = agent_snap_count(snap, s->w.sels, s->w.n_sels);
    }
    /* bundles need an entry too unless the operator opened them to all */
    bool open_to_all = s->rpc != RPC_X509_SVID && c->g->cfg.allow_verifiers && snap != NULL;
    if (mf_ok(r) && n == 0 && !open_to_all) {
        agent_answer_unref(ans);
        agent_snap_unref(snap);
        return RENDER_DENIED;
    }
    switch (mf_ok(r) ? s->rpc : RPC_UNKNOWN) {
    case RPC_X509_SVID:
        r = mf_buf_append(&s->out, ans->body.data, ans->body.len);
        break;
    case RPC_X509_BUNDLES:
        r = render_x509_bundles(snap, &s->w, &s->out);
        break;
    case RPC_JWT_BUNDLES:
        r = render_jwt_bundles(snap, &s->w, &s->out);
        break;
    default:
        if (mf_ok(r)) {
            r = MF_RAISE_MSG(MF_ERR_INTERNAL, "not a stream");
        }
        break;
    }
    agent_answer_unref(ans);
    agent_snap_unref(snap);
    if (!mf_ok(r)) {
        mf_log_err_r(r, "cannot render %s", rpc_name(s->rpc));
        mf_buf_cleanup(&s->out);
        return RENDER_ERROR;
    }
    uint8_t d[32];
    if (!mf_ok(mf_sha256(s->out.data, s->out.len, d))) {
        mf_buf_cleanup(&s->out);
        return RENDER_ERROR;
    }
    if (s->sent_any && memcmp(d, s->last_sent, sizeof(d)) == 0) {
        mf_buf_cleanup(&s->out); /* nothing this caller can see changed */
        return RENDER_SAME;
    }
    memcpy(s->out_digest, d, sizeof(d));
    return RENDER_NEW;
}

/* Ends the stream with status once what is pending has gone. */
static void set_final(struct gstream *s, int status, const char *msg)
{
    if (s->final < 0) {
        s->final = status;
        snprintf(s->final_msg, sizeof(s->final_msg), "%s", msg);
    }
}

static void drop_out(struct gconn *c, struct gstream *s)
{
    c->pending -= s->out.len;
    mf_buf_cleanup(&s->out);
    s->off = 0;
}

static void kick(struct gconn *c, struct gstream *s)
{
    if (s->deferred) {
        s->deferred = false;
        (void)nghttp2_session_resume_data(c->sess, s->id);
    }
}

/* Brings a streaming RPC's pending message up to the newest state (see the
 * flow-control notes in agent_grpc.h). */
static void refresh(struct gconn *c, struct gstream *s)
{
    if (!s->streaming || s->final >= 0) {
        return;
    }
    if (s->off > 0) {
        s->dirty = true; /* half out: finish it, then render the newest */
        return;
    }
    s->dirty = false;
    drop_out(c, s); /* never sent: stale now */
    switch (render_stream(c, s)) {
    case RENDER_NEW:
        if (c->pending + s->out.len > GRPC_CONN_PENDING_MAX) {
            mf_buf_cleanup(&s->out); /* not counted in pending yet */
            s->dirty = true;         /* over the connection's budget: later */
            return;
        }
        c->pending += s->out.len;
        break;
    case RENDER_SAME:
        return;
    case RENDER_DENIED:
        if (s->final < 0) { /* render_sds has said why already */
            log_denial(c, s, "no identity left");
            set_final(s, GS_PERMISSION_DENIED, "no identity issued");
        }
        break;
    case RENDER_ERROR:
    default:
        set_final(s, GS_INTERNAL, "cannot render the response");
        break;
    }
    kick(c, s);
}

/* ---- nghttp2 callbacks ------------------------------------------------------------ */

static struct gstream *stream_of(struct gconn *c, int32_t id)
{
    return nghttp2_session_get_stream_user_data(c->sess, id);
}

static void stream_free(struct gconn *c, struct gstream *s)
{
    drop_out(c, s);
    mf_buf_cleanup(&s->req);
    agent_workload_cleanup(&s->w);
    agent_sds_free(s->sds);
    free(s);
}

static ssize_t send_cb(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *user_data)
{
    struct gconn *c = user_data;
    (void)session;
    (void)flags;
    for (;;) {
        ssize_t w = send(c->fd, data, length, MSG_NOSIGNAL);
        if (w >= 0) {
            return w;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return NGHTTP2_ERR_WOULDBLOCK;
        }
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
}

static ssize_t read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                       uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    struct gconn *c = user_data;
    struct gstream *s = source->ptr;
    for (;;) {
        if (s->off < s->out.len) {
            size_t n = s->out.len - s->off;
            if (n > length) {
                n = length;
            }
            memcpy(buf, s->out.data + s->off, n);
            s->off += n;
            if (s->off == s->out.len) {
                /* the whole message is with nghttp2 now */
                memcpy(s->last_sent, s->out_digest, sizeof(s->last_sent));
                s->sent_any = true;
                agent_sds_sent(s->sds);
                drop_out(c, s);
                c->drained = true;
            }
            return (ssize_t)n;
        }
        if (s->final >= 0) {
            agent_metrics_grpc(rpc_label(s->rpc), code_label(s->final));
            char status[12], msg[sizeof(s->final_msg) * 3 + 1];
            snprintf(status, sizeof(status), "%d", s->final);
            (void)mf_pct_encode(s->final_msg, MF_PCT_GRPC, msg, sizeof(msg));
            nghttp2_nv trailers[2] = {make_nv("grpc-status", status), make_nv("grpc-message", msg)};
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
            if (nghttp2_submit_trailer(session, stream_id, trailers, s->final_msg[0] ? 2 : 1) ==
                0) {
                *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            }
            return 0;
        }
        if (s->dirty) {
            refresh(c, s);
            if (s->off < s->out.len || s->final >= 0) {
                continue;
            }
        }
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
}

/* Answers with status alone (Trailers-Only, one HEADERS frame). */
static void reply_status(struct gconn *c, struct gstream *s, int status, const char *msg)
{
    agent_metrics_grpc(rpc_label(s->rpc), code_label(status));
    char st[12], m[sizeof(s->final_msg) * 3 + 1];
    snprintf(st, sizeof(st), "%d", status);
    (void)mf_pct_encode(msg, MF_PCT_GRPC, m, sizeof(m));
    nghttp2_nv nva[4] = {make_nv(":status", "200"), make_nv("content-type", "application/grpc"),
                         make_nv("grpc-status", st), make_nv("grpc-message", m)};
    (void)nghttp2_submit_response(c->sess, s->id, nva, msg[0] ? 4 : 3, NULL);
}

static void reply_http(struct gconn *c, struct gstream *s, const char *status)
{
    nghttp2_nv nva[1] = {make_nv(":status", status)};
    (void)nghttp2_submit_response(c->sess, s->id, nva, 1, NULL);
}

/* Starts a response whose messages come from s->out and whose trailers
 * carry s->final. */
static void start_response(struct gconn *c, struct gstream *s)
{
    nghttp2_nv nva[2] = {make_nv(":status", "200"), make_nv("content-type", "application/grpc")};
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_cb};
    if (nghttp2_submit_response(c->sess, s->id, nva, 2, &prd) != 0) {
        (void)nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    }
}

/* The request's one message, unframed: GS_OK with *msg and *len set, or
 * another gRPC status and *why for the caller to answer with. */
static int request_message(const struct gstream *s, const uint8_t **msg, size_t *len,
                           const char **why)
{
    if (s->req_too_large) {
        *why = "request message too large";
        return GS_RESOURCE_EXHAUSTED;
    }
    if (s->req.len < 5) {
        *why = "the request must hold exactly one message";
        return GS_INVALID_ARGUMENT;
    }
    if (s->req.data[0] != 0) {
        *why = "compressed requests are not supported";
        return GS_UNIMPLEMENTED;
    }
    size_t n = ((size_t)s->req.data[1] << 24) | ((size_t)s->req.data[2] << 16) |
               ((size_t)s->req.data[3] << 8) | s->req.data[4];
    if (n != s->req.len - 5) {
        *why = "the request must hold exactly one message";
        return GS_INVALID_ARGUMENT;
    }
    *msg = s->req.data + 5;
    *len = n;
    return GS_OK;
}

static int status_of(mf_res r)
{
    switch (mf_err_category(r.err)) {
    case MF_CAT_USAGE:
    case MF_CAT_PROTO:
        return GS_INVALID_ARGUMENT;
    case MF_CAT_POLICY:
        return GS_PERMISSION_DENIED;
    default:
        return GS_UNAVAILABLE;
    }
}

/* FetchJWTSVID (unary). */
static int do_jwt_svid(struct gconn *c, struct gstream *s, const uint8_t *msg, size_t len,
                       char *why, size_t why_cap)
{
    JWTSVIDRequest *req = jwtsvidrequest__unpack(NULL, len, msg);
    if (req == NULL) {
        snprintf(why, why_cap, "malformed JWTSVIDRequest");
        return GS_INVALID_ARGUMENT;
    }
    int st = GS_OK;
    struct agent_jwt_svid *v = NULL;
    size_t n = 0;
    struct agent_snap *snap = agent_state_get(c->g->cfg.state, NULL);
    mf_res r;
    if (req->n_audience == 0) {
        r = MF_RAISE_MSG(MF_ERR_USAGE_ARG, "audience must be specified");
    } else if (c->g->cfg.jwt == NULL) {
        r = MF_RAISE_MSG(MF_ERR_STATE, "JWT-SVIDs are not served");
    } else {
        r = agent_jwt_fetch(c->g->cfg.jwt, snap, s->w.sels, s->w.n_sels, req->spiffe_id,
                            (const char *const *)req->audience, req->n_audience, &v, &n);
    }
    agent_snap_unref(snap);
    if (!mf_ok(r)) {
        st = status_of(r);
        if (st == GS_PERMISSION_DENIED) {
            log_denial(c, s, "no matching identity");
        }
        mf_err_format(r, why, why_cap);
        goto out;
    }
    JWTSVID *items = calloc(n, sizeof(*items));
    JWTSVID **ptrs = calloc(n, sizeof(*ptrs));
    if (items == NULL || ptrs == NULL) {
        free(items);
        free(ptrs);
        snprintf(why, why_cap, "out of memory");
        st = GS_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        jwtsvid__init(&items[i]);
        items[i].spiffe_id = v[i].spiffe_id;
        items[i].svid = v[i].token;
        items[i].hint = v[i].hint;
        ptrs[i] = &items[i];
    }
    JWTSVIDResponse resp;
    jwtsvidresponse__init(&resp);
    resp.n_svids = n;
    resp.svids = ptrs;
    r = frame_msg(&resp.base, &s->out);
    free(items);
    free(ptrs);
    if (!mf_ok(r)) {
        mf_err_format(r, why, why_cap);
        st = GS_INTERNAL;
    }
out:
    agent_jwt_svids_free(v, n);
    jwtsvidrequest__free_unpacked(req, NULL);
    return st;
}

/* google.protobuf.Struct values from JSON (malloc'd, freed with
 * value__free_unpacked). NULL on allocation failure or nesting deeper than
 * STRUCT_DEPTH. */
static Struct *json_to_struct(const json_t *obj, int depth);

static Value *json_to_value(const json_t *j, int depth)
{
    if (depth > STRUCT_DEPTH) {
        return NULL;
    }
    Value *v = malloc(sizeof(*v));
    if (v == NULL) {
        return NULL;
    }
    value__init(v);
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        v->kind_case = VALUE__KIND_STRUCT_VALUE;
        v->struct_value = json_to_struct(j, depth + 1);
        if (v->struct_value == NULL) {
            v->kind_case = VALUE__KIND__NOT_SET;
            value__free_unpacked(v, NULL);
            return NULL;
        }
        break;
    case JSON_ARRAY: {
        ListValue *l = malloc(sizeof(*l));
        if (l == NULL) {
            value__free_unpacked(v, NULL);
            return NULL;
        }
        list_value__init(l);
        v->kind_case = VALUE__KIND_LIST_VALUE;
        v->list_value = l;
        size_t n = json_array_size(j);
        l->values = calloc(n > 0 ? n : 1, sizeof(*l->values));
        if (l->values == NULL) {
            value__free_unpacked(v, NULL);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            l->values[i] = json_to_value(json_array_get(j, i), depth + 1);
            if (l->values[i] == NULL) {
                value__free_unpacked(v, NULL);
                return NULL;
            }
            l->n_values++;
        }
        break;
    }
    case JSON_STRING:
        v->kind_case = VALUE__KIND_STRING_VALUE;
        v->string_value = strdup(json_string_value(j));
        if (v->string_value == NULL) {
            v->kind_case = VALUE__KIND__NOT_SET;
            value__free_unpacked(v, NULL);
            return NULL;
        }
        break;
    case JSON_INTEGER:
        v->kind_case = VALUE__KIND_NUMBER_VALUE;
        v->number_value = (double)json_integer_value(j);
        break;
    case JSON_REAL:
        v->kind_case = VALUE__KIND_NUMBER_VALUE;
        v->number_value = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v->kind_case = VALUE__KIND_BOOL_VALUE;
        v->bool_value = json_is_true(j);
        break;
    case JSON_NULL:
    default:
        v->kind_case = VALUE__KIND_NULL_VALUE;
        v->null_value = NULL_VALUE__NULL_VALUE;
        break;
    }
    return v;
}

static Struct *json_to_struct(const json_t *obj, int depth)
{
    Struct *st = malloc(sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    struct__init(st);
    size_t n = json_object_size(obj);
    st->fields = calloc(n > 0 ? n : 1, sizeof(*st->fields));
    if (st->fields == NULL) {
        struct__free_unpacked(st, NULL);
        return NULL;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)(uintptr_t)obj, key, val)
    {
        Struct__FieldsEntry *e = malloc(sizeof(*e));
        if (e == NULL) {
            struct__free_unpacked(st, NULL);
            return NULL;
        }
        struct__fields_entry__init(e);
        st->fields[st->n_fields++] = e;
        e->key = strdup(key);
        e->value = json_to_value(val, depth + 1);
        if (e->key == NULL || e->value == NULL) {
            struct__free_unpacked(st, NULL);
            return NULL;
        }
    }
    return st;
}

/* ValidateJWTSVID (unary): the bundle is the agent's. The caller needs an
 * entry, as for the fetch RPCs, unless allow_verifiers. */
static int do_validate(struct gconn *c, struct gstream *s, const uint8_t *msg, size_t len,
                       char *why, size_t why_cap)
{
    ValidateJWTSVIDRequest *req = validate_jwtsvidrequest__unpack(NULL, len, msg);
    if (req == NULL) {
        snprintf(why, why_cap, "malformed ValidateJWTSVIDRequest");
        return GS_INVALID_ARGUMENT;
    }
    int st = GS_OK;
    struct mf_jwt jw;
    memset(&jw, 0, sizeof(jw));
    Struct *claims = NULL;
    if (req->audience[0] == '\0') {
        snprintf(why, why_cap, "audience must be specified");
        st = GS_INVALID_ARGUMENT;
        goto out;
    }
    if (req->svid[0] == '\0') {
        snprintf(why, why_cap, "svid must be specified");
        st = GS_INVALID_ARGUMENT;
        goto out;
    }
    struct agent_snap *snap = agent_state_get(c->g->cfg.state, NULL);
    if (!c->g->cfg.allow_verifiers &&
        (snap == NULL || agent_snap_count(snap, s->w.sels, s->w.n_sels) == 0)) {
        agent_snap_unref(snap);
        log_denial(c, s, "no matching entry");
        snprintf(why, why_cap, "no identity issued");
        st = GS_PERMISSION_DENIED;
        goto out;
    }
    mf_res r = agent_jwt_validate(snap, s->w.sels, s->w.n_sels, req->audience, req->svid,
                                  strlen(req->svid), &jw);
    agent_snap_unref(snap);
    if (!mf_ok(r)) {
        mf_err_format(r, why, why_cap);
        st = GS_INVALID_ARGUMENT; /* as SPIRE answers a token that fails validation */
        goto out;
    }
    claims = json_to_struct(jw.claims, 0);
    if (claims == NULL) {
        snprintf(why, why_cap, "cannot convert the claims");
        st = GS_INTERNAL;
        goto out;
    }
    ValidateJWTSVIDResponse resp;
    validate_jwtsvidresponse__init(&resp);
    resp.spiffe_id = jw.sub.str;
    resp.claims = claims;
    r = frame_msg(&resp.base, &s->out);
    if (!mf_ok(r)) {
        mf_err_format(r, why, why_cap);
        st = GS_INTERNAL;
    }
out:
    if (claims != NULL) {
        struct__free_unpacked(claims, NULL);
    }
    mf_jwt_cleanup(&jw);
    validate_jwtsvidrequest__free_unpacked(req, NULL);
    return st;
}

/* FetchSecrets (unary): one DiscoveryRequest, one DiscoveryResponse. */
static int do_sds_fetch(struct gconn *c, struct gstream *s, const uint8_t *msg, size_t len,
                        char *why, size_t why_cap)
{
    struct agent_sds_cfg scfg = {.validator = c->g->cfg.sds_validator,
                                 .allow_verifiers = c->g->cfg.allow_verifiers,
                                 .fetch = true};
    mf_res r = agent_sds_new(&scfg, &s->sds);
    if (mf_ok(r)) {
        r = agent_sds_request(s->sds, msg, len);
    }
    if (!mf_ok(r)) {
        mf_err_format(r, why, why_cap);
        return status_of(r);
    }
    struct agent_snap *snap = agent_state_get(c->g->cfg.state, NULL);
    enum agent_sds_out o =
        agent_sds_render(s->sds, snap, s->w.sels, s->w.n_sels, &s->out, why, why_cap);
    agent_snap_unref(snap);
    switch (o) {
    case AGENT_SDS_SEND:
        return GS_OK;
    case AGENT_SDS_DENIED:
        log_denial(c, s, "resource not available");
        return GS_PERMISSION_DENIED;
    case AGENT_SDS_QUIET: /* not after a first request */
    case AGENT_SDS_ERROR:
    default:
        return GS_INTERNAL;
    }
}

/* Hands each complete request message of an SDS stream to its xDS state,
 * then brings the response up to date; a bad message ends the stream. */
static void sds_feed(struct gconn *c, struct gstream *s)
{
    size_t off = 0;
    bool any = false;
    while (s->final < 0 && s->req.len - off >= 5) {
        const uint8_t *p = s->req.data + off;
        size_t n = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
        if (p[0] != 0) {
            set_final(s, GS_UNIMPLEMENTED, "compressed requests are not supported");
        } else if (n > GRPC_REQ_MAX) {
            set_final(s, GS_RESOURCE_EXHAUSTED, "request message too large");
        } else if (s->req.len - off - 5 >= n) {
            mf_res r = agent_sds_request(s->sds, p + 5, n);
            off += 5 + n;
            any = true;
            if (!mf_ok(r)) {
                char why[sizeof(s->final_msg)];
                mf_err_format(r, why, sizeof(why));
                set_final(s, status_of(r), why);
            }
            continue;
        }
        break;
    }
    mf_buf_consume(&s->req, off);
    if (s->final >= 0) {
        kick(c, s);
    } else if (any) {
        refresh(c, s);
    }
}

/* DATA of a dispatched SDS stream: requests, one after another. */
static void sds_data(struct gconn *c, struct gstream *s, const uint8_t *data, size_t len)
{
    while (len > 0 && s->final < 0) {
        size_t room = s->req.max - s->req.len;
        size_t take = len < room ? len : room;
        if (take == 0 || !mf_ok(mf_buf_append(&s->req, data, take))) {
            set_final(s, GS_RESOURCE_EXHAUSTED, "request message too large");
            kick(c, s);
            return;
        }
        data += take;
        len -= take;
        sds_feed(c, s);
    }
}

/* The request is complete (for a bidirectional call: its HEADERS are):
 * check it, attest the caller, answer. */
static void dispatch(struct gconn *c, struct gstream *s)
{
    const uint8_t *msg = NULL;
    size_t len = 0;
    const char *why = "";
    char buf[256];
    s->dispatched = true;
    c->n_dispatched++;
    c->ever_dispatched = true;

    if (!s->post) {
        reply_http(c, s, "405");
        return;
    }
    if (!s->ct_ok) {
        reply_http(c, s, "415"); /* gRPC over HTTP/2: not application/grpc */
        return;
    }
    if (s->rpc == RPC_UNKNOWN) {
        reply_status(c, s, GS_UNIMPLEMENTED, "unknown method");
        return;
    }
    if (s->rpc == RPC_WIT) {
        reply_status(c, s, GS_UNIMPLEMENTED, "the WIT-SVID profile is not implemented");
        return;
    }
    if (s->rpc == RPC_SDS_DELTA) {
        reply_status(c, s, GS_UNIMPLEMENTED,
                     "DeltaSecrets (incremental xDS) is not implemented; use StreamSecrets");
        return;
    }
    /* E5/E6: exactly one security header, exactly "true" (as SPIRE) */
    if (!is_sds(s->rpc) && (s->sec_headers != 1 || s->sec_true != 1)) {
        char bad_hdr[96];
        if (s->sec_headers == 0) {
            snprintf(bad_hdr, sizeof(bad_hdr), "security header missing from request");
        } else if (s->sec_headers > 1) {
            snprintf(bad_hdr, sizeof(bad_hdr), "security header workload.spiffe.io given %u times",
                     s->sec_headers);
        } else {
            snprintf(bad_hdr, sizeof(bad_hdr),
                     "security header workload.spiffe.io must be \"true\"");
        }
        agent_metrics_denied(s->sec_headers == 0 ? "missing security header"
                                                 : "bad security header");
        reply_status(c, s, GS_INVALID_ARGUMENT, bad_hdr);
        return;
    }
    int st = is_bidi(s->rpc) ? GS_OK : request_message(s, &msg, &len, &why);
    if (st != GS_OK) {
        reply_status(c, s, st, why);
        return;
    }
    {
        mf_res r = c->have_cred ? agent_attest_conn(c->g->cfg.att, &c->acache, c->cred.pid,
                                                    c->cred.uid, c->cred.gid, &c->stamp, &s->w)
                                : MF_RAISE_MSG(MF_ERR_AUTH_MISSING, "no peer credentials");
        if (!mf_ok(r)) {
            mf_err_format(r, buf, sizeof(buf));
            mf_log_info("attestation failed: %s", buf);
            agent_metrics_denied("attestation failed");
            reply_status(c, s, GS_PERMISSION_DENIED, "no identity issued");
            return;
        }
    }
    switch (s->rpc) {
    case RPC_X509_SVID:
    case RPC_X509_BUNDLES:
    case RPC_JWT_BUNDLES: {
        /* the request messages have no fields; still refuse garbage */
        ProtobufCMessage *m = protobuf_c_message_unpack(
            s->rpc == RPC_X509_SVID      ? &x509_svidrequest__descriptor
            : s->rpc == RPC_X509_BUNDLES ? &x509_bundles_request__descriptor
                                         : &jwtbundles_request__descriptor,
            NULL, len, msg);
        if (m == NULL) {
            reply_status(c, s, GS_INVALID_ARGUMENT, "malformed request");
            return;
        }
        protobuf_c_message_free_unpacked(m, NULL);
        s->streaming = true;
        uint64_t t0 = agent_metrics_clock();
        switch (render_stream(c, s)) {
        case RENDER_NEW:
            if (c->pending + s->out.len > GRPC_CONN_PENDING_MAX) {
                mf_buf_cleanup(&s->out);
                s->dirty = true; /* over the connection's budget: once others drained */
            }
            c->pending += s->out.len;
            agent_metrics_fetch_done(t0);
            break;
        case RENDER_DENIED:
            log_denial(c, s, "no matching entry");
            reply_status(c, s, GS_PERMISSION_DENIED, "no identity issued");
            return;
        case RENDER_SAME:
        case RENDER_ERROR:
        default:
            reply_status(c, s, GS_INTERNAL, "cannot render the response");
            return;
        }
        start_response(c, s);
        return;
    }
    case RPC_SDS_STREAM: {
        /* nothing to send until the first DiscoveryRequest */
        struct agent_sds_cfg scfg = {.validator = c->g->cfg.sds_validator,
                                     .allow_verifiers = c->g->cfg.allow_verifiers};
        if (!mf_ok(agent_sds_new(&scfg, &s->sds))) {
            reply_status(c, s, GS_INTERNAL, "out of memory");
            return;
        }
        s->streaming = true;
        start_response(c, s);
        sds_feed(c, s);
        return;
    }
    case RPC_SDS_FETCH:
        st = do_sds_fetch(c, s, msg, len, buf, sizeof(buf));
        break;
    case RPC_JWT_SVID:
        st = do_jwt_svid(c, s, msg, len, buf, sizeof(buf));
        break;
    case RPC_VALIDATE:
        st = do_validate(c, s, msg, len, buf, sizeof(buf));
        break;
    default:
        st = GS_UNIMPLEMENTED;
        snprintf(buf, sizeof(buf), "unknown method");
        break;
    }
    if (st != GS_OK) {
        mf_buf_cleanup(&s->out);
        reply_status(c, s, st, buf);
        return;
    }
    c->pending += s->out.len;
    set_final(s, GS_OK, "");
    start_response(c, s);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct gconn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    struct gstream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    s->id = frame->hd.stream_id;
    s->final = -1;
    s->opened_ms = mf_mono_ms();
    mf_buf_init(&s->req, GRPC_REQ_MAX + 5, 0);
    mf_buf_init(&s->out, GRPC_MSG_MAX + 5, MF_BUF_SECRET);
    s->next = c->streams;
    c->streams = s;
    c->n_streams++;
    (void)nghttp2_session_set_stream_user_data(session, s->id, s);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    struct gconn *c = user_data;
    (void)session;
    (void)flags;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0; /* trailers from a client mean nothing here */
    }
    struct gstream *s = stream_of(c, frame->hd.stream_id);
    if (s == NULL) {
        return 0;
    }
    s->hdr_bytes += namelen + valuelen + 32; /* RFC 7541 4.1 accounting */
    if (s->hdr_bytes > GRPC_HEADERS_MAX) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    if (hdr_is(name, namelen, ":method")) {
        s->post = hdr_is(value, valuelen, "POST");
    } else if (hdr_is(name, namelen, ":path")) {
        s->rpc = RPC_UNKNOWN;
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
            size_t pl = strlen(methods[i].service);
            if (valuelen > pl && memcmp(value, methods[i].service, pl) == 0 &&
                hdr_is(value + pl, valuelen - pl, methods[i].name)) {
                s->rpc = methods[i].rpc;
            }
        }
    } else if (hdr_is(name, namelen, "content-type")) {
        size_t l = strlen("application/grpc");
        s->ct_ok = valuelen >= l && memcmp(value, "application/grpc", l) == 0 &&
                   (valuelen == l || value[l] == '+' || value[l] == ';');
    } else if (hdr_is(name, namelen, "workload.spiffe.io")) {
        s->sec_headers++;
        if (hdr_is(value, valuelen, "true")) {
            s->sec_true++;
        }
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    struct gconn *c = user_data;
    (void)session;
    (void)flags;
    struct gstream *s = stream_of(c, stream_id);
    if (s != NULL && s->sds != NULL && s->streaming) {
        sds_data(c, s, data, len);
        return 0;
    }
    if (s == NULL || s->dispatched || s->req_too_large) {
        return 0;
    }
    if (!mf_ok(mf_buf_append(&s->req, data, len))) {
        s->req_too_large = true;
        mf_buf_cleanup(&s->req);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct gconn *c = user_data;
    (void)session;
    if (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    struct gstream *s = stream_of(c, frame->hd.stream_id);
    if (s == NULL) {
        return 0;
    }
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (!s->dispatched &&
        (end || (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
                 is_bidi(s->rpc)))) {
        dispatch(c, s);
    }
    if (end && s->sds != NULL && s->streaming && s->final < 0) {
        /* the client is done asking: end the call once what is due is out */
        if (s->req.len > 0) {
            set_final(s, GS_INVALID_ARGUMENT, "the last request message is incomplete");
        } else {
            set_final(s, GS_OK, "");
        }
        kick(c, s);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    struct gconn *c = user_data;
    (void)session;
    (void)error_code;
    for (struct gstream **pp = &c->streams; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == stream_id) {
            struct gstream *s = *pp;
            *pp = s->next;
            c->n_streams--;
            if (s->dispatched) {
                c->n_dispatched--;
            }
            if (c->n_streams == 0) {
                c->quiet_since_ms = mf_mono_ms();
            }
            stream_free(c, s);
            break;
        }
    }
    return 0;
}

/* ---- connections --------------------------------------------------------------- */

/* Milliseconds until this connection must be closed for idleness (or for
 * a request that never completed); -1 when it may wait for ever. */
static int64_t idle_deadline_ms(struct gconn *c, int64_t now, bool *expired)
{
    int64_t limit = (int64_t)c->g->cfg.conn_timeout_s * 1000;
    int64_t until = INT64_MAX;
    *expired = false;
    if (c->n_streams == 0) {
        until = c->ever_dispatched ? c->quiet_since_ms + (int64_t)c->g->cfg.idle_timeout_s * 1000
                                   : c->started_ms + limit;
    } else {
        /* a request that does not complete in time ends the connection:
         * it is all a slow-loris client would hold */
        for (struct gstream *s = c->streams; s != NULL; s = s->next) {
            if (!s->dispatched && s->opened_ms + limit < until) {
                until = s->opened_ms + limit;
            }
        }
    }
    if (until == INT64_MAX) {
        return -1;
    }
    if (until <= now) {
        *expired = true;
        return 0;
    }
    return until - now;
}

static void notify_all(struct gconn *c)
{
    for (struct gstream *s = c->streams; s != NULL; s = s->next) {
        refresh(c, s);
    }
}

static void retry_over_budget(struct gconn *c)
{
    c->drained = false;
    for (struct gstream *s = c->streams; s != NULL; s = s->next) {
        if (s->dirty && s->off == 0) {
            refresh(c, s);
        }
    }
}

static mf_res session_setup(struct gconn *c)
{
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cb);
        MF_BAIL(MF_ERR_NOMEM);
    }
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    /* bounded queue of control-frame answers (PING/SETTINGS acks) for a peer
     * that floods them without reading */
    nghttp2_option_set_max_outbound_ack(opt, 256);
    int rv = nghttp2_session_server_new2(&c->sess, cb, c, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    MF_ENSURE(rv == 0, MF_ERR_NOMEM);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GRPC_STREAMS_MAX},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GRPC_HEADERS_MAX},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    MF_ENSURE(nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) ==
                  0,
              MF_ERR_INTERNAL);
    return MF_RES_OK;
}

/* Reads what the socket has; false when the connection is over. */
static bool conn_read(struct gconn *c)
{
    uint8_t buf[RECV_CHUNK];
    for (int i = 0; i < 8; i++) {
        ssize_t n = agent_attest_recv(c->fd, &c->stamp, buf, sizeof(buf), 0);
        if (n == 0) {
            return false;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        if (nghttp2_session_mem_recv(c->sess, buf, (size_t)n) < 0) {
            return false;
        }
    }
    return true;
}

static void conn_serve(struct gconn *c)
{
    struct agent_grpc *g = c->g;
    if (!mf_ok(session_setup(c)) || nghttp2_session_send(c->sess) != 0) {
        return;
    }
    for (;;) {
        pthread_mutex_lock(&g->mu);
        bool stop = g->stopping;
        pthread_mutex_unlock(&g->mu);
        if (stop) {
            (void)nghttp2_session_terminate_session(c->sess, NGHTTP2_NO_ERROR);
            (void)nghttp2_session_send(c->sess);
            return;
        }
        if (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess)) {
            return;
        }
        bool expired = false;
        int64_t wait = idle_deadline_ms(c, mf_mono_ms(), &expired);
        if (expired) {
            (void)nghttp2_session_terminate_session(c->sess, NGHTTP2_NO_ERROR);
            (void)nghttp2_session_send(c->sess);
            return;
        }
        struct pollfd p[2] = {
            {.fd = c->fd,
             .events = (short)(POLLIN | (nghttp2_session_want_write(c->sess) ? POLLOUT : 0))},
            {.fd = c->evfd, .events = POLLIN},
        };
        int pr = poll(p, 2, wait < 0 ? -1 : (int)(wait > 60000 ? 60000 : wait));
        if (pr < 0 && errno != EINTR) {
            return;
        }
        if (p[1].revents & POLLIN) {
            uint64_t v;
            (void)!read(c->evfd, &v, sizeof(v));
            notify_all(c);
        }
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && !conn_read(c)) {
            return;
        }
        if (nghttp2_session_send(c->sess) != 0) {
            return;
        }
        if (c->drained) {
            retry_over_budget(c);
            if (nghttp2_session_send(c->sess) != 0) {
                return;
            }
        }
    }
}

static void conn_free(struct gconn *c)
{
    if (c->sess != NULL) {
        nghttp2_session_del(c->sess); /* closes every stream (on_stream_close frees) */
    }
    while (c->streams != NULL) {
        struct gstream *s = c->streams;
        c->streams = s->next;
        stream_free(c, s);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    if (c->evfd >= 0) {
        close(c->evfd);
    }
    agent_attest_cache_cleanup(&c->acache);
    free(c);
}

/* Gives back the connection's count; after its socket is closed. */
static void release(struct agent_grpc *g, uid_t uid)
{
    if (g->cfg.admit != NULL) {
        agent_admit_release(g->cfg.admit, uid);
    }
}

static void *conn_main(void *arg)
{
    struct gconn *c = arg;
    struct agent_grpc *g = c->g;
    conn_serve(c);
    pthread_mutex_lock(&g->mu);
    for (struct gconn **pp = &g->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
    uid_t uid = c->uid;
    conn_free(c);
    release(g, uid);
    __atomic_sub_fetch(g->cfg.long_lived, 1, __ATOMIC_RELAXED);
    /* last: after this, g may be freed by agent_grpc_free */
    pthread_mutex_lock(&g->mu);
    g->n_conns--;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* Waits for new snapshots and wakes every connection. */
static void *notifier_main(void *arg)
{
    struct agent_grpc *g = arg;
    uint64_t seen = 0;
    struct agent_snap *snap = agent_state_get(g->cfg.state, &seen);
    agent_snap_unref(snap);
    for (;;) {
        pthread_mutex_lock(&g->mu);
        bool stop = g->stopping;
        pthread_mutex_unlock(&g->mu);
        if (stop || agent_state_stopping(g->cfg.state)) {
            break;
        }
        if (!agent_state_wait(g->cfg.state, seen, 1000)) {
            continue;
        }
        snap = agent_state_get(g->cfg.state, &seen);
        agent_snap_unref(snap);
        uint64_t one = 1;
        pthread_mutex_lock(&g->mu);
        for (struct gconn *c = g->conns; c != NULL; c = c->next) {
            (void)!write(c->evfd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&g->mu);
    }
    return NULL;
}

/* see agent_grpc.h */
mf_res agent_grpc_new(const struct agent_grpc_cfg *cfg, struct agent_grpc **out)
{
    MF_ENSURE_REF(cfg);
    MF_ENSURE_REF(out);
    MF_ENSURE_REF(cfg->state);
    MF_ENSURE_REF(cfg->att);
    MF_ENSURE_REF(cfg->long_lived);
    *out = NULL;
    struct agent_grpc *g = calloc(1, sizeof(*g));
    MF_TRY_PTR(g, MF_ERR_NOMEM);
    g->cfg = *cfg;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (pthread_create(&g->notifier, NULL, notifier_main, g) != 0) {
        pthread_cond_destroy(&g->cv);
        pthread_mutex_destroy(&g->mu);
        free(g);
        MF_BAIL_MSG(MF_ERR_INTERNAL, "cannot start the gRPC notifier thread");
    }
    g->notifier_started = true;
    *out = g;
    return MF_RES_OK;
}

/* see agent_grpc.h */
mf_res agent_grpc_serve(struct agent_grpc *g, int fd, uid_t uid,
                        const struct agent_conn_stamp *stamp, int64_t accept_ms)
{
    if (g == NULL) {
        close(fd);
        MF_BAIL(MF_ERR_USAGE_NULL);
    }
    if (stamp == NULL) {
        close(fd);
        release(g, uid);
        MF_BAIL(MF_ERR_USAGE_NULL);
    }
    /* from here every failure closes fd and then gives back its count */
    if (__atomic_add_fetch(g->cfg.long_lived, 1, __ATOMIC_RELAXED) > (int)g->cfg.max_long_lived) {
        __atomic_sub_fetch(g->cfg.long_lived, 1, __ATOMIC_RELAXED);
        close(fd);
        release(g, uid);
        MF_BAIL_MSG(MF_ERR_POLICY_LIMIT, "too many long-lived Workload API connections");
    }
    struct gconn *c = calloc(1, sizeof(*c));
    int evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c == NULL || evfd < 0) {
        free(c);
        if (evfd >= 0) {
            close(evfd);
        }
        close(fd);
        release(g, uid);
        __atomic_sub_fetch(g->cfg.long_lived, 1, __ATOMIC_RELAXED);
        MF_BAIL(MF_ERR_NOMEM);
    }
    c->g = g;
    c->fd = fd;
    c->evfd = evfd;
    c->stamp = *stamp;
    c->uid = uid;
    c->started_ms = accept_ms;
    socklen_t cl = sizeof(c->cred);
    c->have_cred = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &cl) == 0;

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&g->mu);
    if (g->stopping) {
        pthread_mutex_unlock(&g->mu);
        pthread_attr_destroy(&attr);
        conn_free(c);
        release(g, uid);
        __atomic_sub_fetch(g->cfg.long_lived, 1, __ATOMIC_RELAXED);
        MF_BAIL(MF_ERR_STATE);
    }
    c->next = g->conns;
    g->conns = c;
    g->n_conns++;
    pthread_t t;
    int rv = pthread_create(&t, &attr, conn_main, c);
    if (rv != 0) {
        g->conns = c->next;
        g->n_conns--;
    }
    pthread_mutex_unlock(&g->mu);
    pthread_attr_destroy(&attr);
    if (rv != 0) {
        conn_free(c);
        release(g, uid);
        __atomic_sub_fetch(g->cfg.long_lived, 1, __ATOMIC_RELAXED);
        MF_BAIL_MSG(MF_ERR_INTERNAL, "cannot start a gRPC connection thread");
    }
    return MF_RES_OK;
}

/* see agent_grpc.h */
unsigned agent_grpc_conns(struct agent_grpc *g)
{
    pthread_mutex_lock(&g->mu);
    unsigned n = g->n_conns;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* see agent_grpc.h */
void agent_grpc_free(struct agent_grpc *g)
{
    if (g == NULL) {
        return;
    }
    uint64_t one = 1;
    pthread_mutex_lock(&g->mu);
    g->stopping = true;
    for (struct gconn *c = g->conns; c != NULL; c = c->next) {
        (void)!write(c->evfd, &one, sizeof(one));
    }
    while (g->n_conns > 0) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    if (g->notifier_started) {
        pthread_join(g->notifier, NULL);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
