/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_sds: Envoy SDS v3 resources and the xDS stream state. See
 * agent_sds.h for the resource names and the protocol rules.
 *
 * A response is built in two steps: every requested Secret is packed on its
 * own (each into a secret buffer: TLS certificates carry private keys),
 * then the DiscoveryResponse that wraps them in google.protobuf.Any. Its
 * digest, taken with version_info and nonce left empty, tells whether the
 * resources differ from the last response handed over; only then does the
 * stream spend a version and a nonce.
 */
#include "agent/agent_sds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "envoy_config_core_v3.pb-c.h"
#include "envoy_extensions_transport_sockets_tls_v3.pb-c.h"
#include "envoy_service_discovery_v3.pb-c.h"
#include "google_protobuf_any.pb-c.h"
#include "google_rpc_status.pb-c.h"

#define RESP_MAX (4u * 1024u * 1024u) /* gRPC's default client message limit */

typedef Envoy__Service__Discovery__V3__DiscoveryRequest DiscoveryRequest;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse DiscoveryResponse;
typedef Envoy__Config__Core__V3__DataSource DataSource;
typedef Envoy__Config__Core__V3__TypedExtensionConfig TypedExtensionConfig;
typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate TlsCertificate;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext
    ValidationContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SPIFFECertValidatorConfig SpiffeValidator;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SPIFFECertValidatorConfig__TrustDomain
    TrustDomain;
typedef Google__Protobuf__Any Any;

struct agent_sds {
    struct agent_sds_cfg cfg;
    bool requested; /* a first request came */
    char **names;   /* the subscription; none = everything */
    size_t n_names;
    uint64_t versions; /* versions rendered on this stream */
    /* the last response handed over whole */
    bool sent_any;
    char sent_version[AGENT_SDS_VERSION_MAX];
    char sent_nonce[AGENT_SDS_NONCE_MAX];
    uint8_t sent_digest[32];
    bool nack_logged; /* a NACK of the last response was logged already */
    /* rendered, not handed over yet */
    bool pending;
    char pend_version[AGENT_SDS_VERSION_MAX];
    char pend_nonce[AGENT_SDS_NONCE_MAX];
    uint8_t pend_digest[32];
    uint64_t acks, nacks, stale;
};

/* One trust domain's X.509 authorities, borrowed from a snapshot. */
struct td_pem {
    const char *td_id; /* "spiffe://<td>" */
    const struct mf_buf *pem;
};

/* ---- federated bundles ------------------------------------------------------ */

/* The federated bundles of the snapshot that a caller with selectors sels
 * may see (agent_snap_fed_visible: some SVID it receives federates with
 * that trust domain), into out[0..cap); returns how many. The one place
 * SDS reads foreign bundles, so it filters exactly as the other renderers. */
static size_t snap_federated_bundles(const struct agent_snap *snap, const struct mf_selector *sels,
                                     size_t n_sels, struct td_pem *out, size_t cap)
{
    size_t n = 0;
    for (size_t k = 0; k < snap->n_feds && n < cap; k++) {
        if (agent_snap_fed_visible(snap, k, sels, n_sels)) {
            out[n].td_id = snap->feds[k].td_id;
            out[n].pem = &snap->feds[k].pem;
            n++;
        }
    }
    return n;
}

#define FEDERATED_MAX 64u /* federated trust domains one response names */

/* The one lookup for a foreign trust domain's bundle (td_id is
 * "spiffe://<td>"): true and *out set when the caller may see it. */
static bool foreign_bundle(const struct agent_snap *snap, const struct mf_selector *sels,
                           size_t n_sels, const char *td_id, struct td_pem *out)
{
    struct td_pem fed[FEDERATED_MAX];
    size_t n = snap_federated_bundles(snap, sels, n_sels, fed, FEDERATED_MAX);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(fed[i].td_id, td_id) == 0) {
            *out = fed[i];
            return true;
        }
    }
    return false;
}

/* ---- state -------------------------------------------------------------------- */

/* see agent_sds.h */
mf_res agent_sds_validator_parse(const char *s, enum agent_sds_validator *out)
{
    MF_ENSURE_REF(s);
    MF_ENSURE_REF(out);
    if (strcmp(s, "spiffe") == 0) {
        *out = AGENT_SDS_SPIFFE;
    } else if (strcmp(s, "trusted_ca") == 0) {
        *out = AGENT_SDS_TRUSTED_CA;
    } else {
        MF_BAIL_MSG(MF_ERR_USAGE_ARG, "SDS validator must be spiffe or trusted_ca");
    }
    return MF_RES_OK;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

/* see agent_sds.h */
mf_res agent_sds_new(const struct agent_sds_cfg *cfg, struct agent_sds **out)
{
    MF_ENSURE_REF(cfg);
    MF_ENSURE_REF(out);
    *out = NULL;
    struct agent_sds *x = calloc(1, sizeof(*x));
    MF_TRY_PTR(x, MF_ERR_NOMEM);
    x->cfg = *cfg;
    *out = x;
    return MF_RES_OK;
}

/* see agent_sds.h */
void agent_sds_free(struct agent_sds *x)
{
    if (x == NULL) {
        return;
    }
    free_names(x->names, x->n_names);
    free(x);
}

/* see agent_sds.h */
const char *agent_sds_version(const struct agent_sds *x)
{
    return x->sent_version;
}

/* see agent_sds.h */
const char *agent_sds_nonce(const struct agent_sds *x)
{
    return x->sent_nonce;
}

/* see agent_sds.h */
void agent_sds_counts(const struct agent_sds *x, uint64_t *acks, uint64_t *nacks, uint64_t *stale)
{
    *acks = x->acks;
    *nacks = x->nacks;
    *stale = x->stale;
}

/* see agent_sds.h */
void agent_sds_sent(struct agent_sds *x)
{
    if (x == NULL || !x->pending) {
        return;
    }
    memcpy(x->sent_version, x->pend_version, sizeof(x->sent_version));
    memcpy(x->sent_nonce, x->pend_nonce, sizeof(x->sent_nonce));
    memcpy(x->sent_digest, x->pend_digest, sizeof(x->sent_digest));
    x->sent_any = true;
    x->nack_logged = false;
    x->pending = false;
}

static bool has_name(char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            return true;
        }
    }
    return false;
}

/* The request's names, checked and without duplicates, into x. */
static mf_res set_names(struct agent_sds *x, char *const *names, size_t n)
{
    MF_ENSURE_MSG(n <= AGENT_SDS_NAMES_MAX, MF_ERR_PROTO_TOO_LARGE,
                  "%zu resource names requested; at most %u", n, AGENT_SDS_NAMES_MAX);
    char **copy = calloc(n > 0 ? n : 1, sizeof(*copy));
    MF_TRY_PTR(copy, MF_ERR_NOMEM);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        if (len == 0 || len > MF_SPIFFE_ID_MAX) {
            free_names(copy, k);
            MF_BAIL_MSG(MF_ERR_USAGE_ARG, "resource name %zu is empty or longer than %u bytes", i,
                        (unsigned)MF_SPIFFE_ID_MAX);
        }
        if (has_name(copy, k, names[i])) {
            continue;
        }
        copy[k] = strdup(names[i]);
        if (copy[k] == NULL) {
            free_names(copy, k);
            MF_BAIL(MF_ERR_NOMEM);
        }
        k++;
    }
    free_names(x->names, x->n_names);
    x->names = copy;
    x->n_names = k;
    return MF_RES_OK;
}

/* Logs a NACK: what the client rejected and why, in its own words
 * (escaped by mf_log_event). */
static void log_nack(const DiscoveryRequest *req)
{
    char code[16];
    snprintf(code, sizeof(code), "%d", (int)req->error_detail->code);
    mf_log_event(MF_LOG_WARN, __func__, "SDS client rejected a response", "nonce",
                 req->response_nonce, "accepted_version", req->version_info, "code", code,
                 "message", req->error_detail->message, NULL);
}

/* see agent_sds.h */
mf_res agent_sds_request(struct agent_sds *x, const uint8_t *msg, size_t len)
{
    MF_ENSURE_REF(x);
    DiscoveryRequest *req =
        envoy__service__discovery__v3__discovery_request__unpack(NULL, len, msg);
    MF_ENSURE_MSG(req != NULL, MF_ERR_PROTO, "malformed DiscoveryRequest");
    mf_res rc;
    MF_ENSURE_OUT_MSG(req->type_url[0] == '\0' || strcmp(req->type_url, AGENT_SDS_TYPE_SECRET) == 0,
                      MF_ERR_USAGE_ARG, "type_url must be %s", AGENT_SDS_TYPE_SECRET);
    if (!x->cfg.fetch && req->response_nonce[0] != '\0' &&
        (!x->sent_any || strcmp(req->response_nonce, x->sent_nonce) != 0)) {
        /* answers a response that a newer one has replaced (or none we
         * sent): xDS says to ignore it; the client answers the newer one */
        x->stale++;
        mf_log_debug("SDS: ignoring a request with a stale nonce");
        rc = MF_RES_OK;
        goto out;
    }
    MF_TRY_OUT(set_names(x, req->resource_names, req->n_resource_names));
    if (x->cfg.fetch) {
        /* a unary call answers no earlier response */
    } else if (req->error_detail != NULL) {
        /* once per response: a client repeating its NACK cannot flood the log */
        x->nacks++;
        if (!x->nack_logged) {
            log_nack(req);
            x->nack_logged = true;
        }
    } else if (req->response_nonce[0] != '\0') {
        x->acks++;
    }
    x->requested = true;
    rc = MF_RES_OK;
out:
    envoy__service__discovery__v3__discovery_request__free_unpacked(req, NULL);
    return rc;
}

/* ---- rendering ---------------------------------------------------------------- */

static ProtobufCBinaryData bin(const uint8_t *p, size_t n)
{
    ProtobufCBinaryData d = {.len = n, .data = (uint8_t *)(uintptr_t)p};
    return d;
}

static char *mutable_str(const char *s)
{
    /* protobuf-c's message structs hold char *, and only read it when packing */
    return (char *)(uintptr_t)s;
}

/* Appends m packed. */
static mf_res pack_into(const ProtobufCMessage *m, struct mf_buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    MF_ENSURE_MSG(n <= RESP_MAX, MF_ERR_PROTO_TOO_LARGE, "SDS message of %zu bytes exceeds %u", n,
                  RESP_MAX);
    MF_TRY(mf_buf_reserve(out, n));
    size_t w = protobuf_c_message_pack(m, out->data + out->len);
    MF_ENSURE(w == n, MF_ERR_INTERNAL);
    out->len += n;
    out->data[out->len] = '\0';
    return MF_RES_OK;
}

static void inline_bytes(DataSource *ds, const struct mf_buf *b)
{
    envoy__config__core__v3__data_source__init(ds);
    ds->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
    ds->inline_bytes = bin(b->data, b->len);
}

/* Secret{name, tls_certificate{certificate_chain, private_key}} (PEM). */
static mf_res secret_tls(const char *name, const struct agent_snap_svid *v, struct mf_buf *out)
{
    /* the snapshot keeps DER and the key; Envoy wants PEM, made here (the
     * key's copy is secret storage, wiped when done) */
    struct mf_buf chain_pem, key_pem;
    mf_buf_init(&chain_pem, MF_MAX_BUNDLE, 0);
    mf_buf_init(&key_pem, MF_MAX_CERT, MF_BUF_SECRET);
    mf_res rc = agent_snap_svid_pem(v, &chain_pem, &key_pem);
    if (!mf_ok(rc)) {
        mf_buf_cleanup(&chain_pem);
        mf_buf_cleanup(&key_pem);
        return rc;
    }
    DataSource chain, key;
    inline_bytes(&chain, &chain_pem);
    inline_bytes(&key, &key_pem);
    TlsCertificate tc;
    envoy__extensions__transport_sockets__tls__v3__tls_certificate__init(&tc);
    tc.certificate_chain = &chain;
    tc.private_key = &key;
    Secret s;
    envoy__extensions__transport_sockets__tls__v3__secret__init(&s);
    s.name = mutable_str(name);
    s.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE;
    s.tls_certificate = &tc;
    rc = pack_into(&s.base, out);
    mf_buf_cleanup(&chain_pem);
    mf_buf_cleanup(&key_pem);
    return rc;
}

/* Secret{name, validation_context} for the bundles tds[0..n): Envoy's
 * SPIFFE validator with one trust domain each, or all their certificates
 * as one trusted_ca. */
static mf_res secret_validation(enum agent_sds_validator mode, const char *name,
                                const struct td_pem *tds, size_t n, struct mf_buf *out)
{
    mf_res rc;
    TrustDomain *items = calloc(n > 0 ? n : 1, sizeof(*items));
    TrustDomain **ptrs = calloc(n > 0 ? n : 1, sizeof(*ptrs));
    DataSource *ds = calloc(n > 0 ? n : 1, sizeof(*ds));
    struct mf_buf inner, cas;
    mf_buf_init(&inner, RESP_MAX, 0);
    mf_buf_init(&cas, RESP_MAX, 0);
    MF_ENSURE_OUT(items != NULL && ptrs != NULL && ds != NULL, MF_ERR_NOMEM);

    ValidationContext vc;
    envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__init(&vc);
    TypedExtensionConfig tec;
    envoy__config__core__v3__typed_extension_config__init(&tec);
    Any any;
    google__protobuf__any__init(&any);
    DataSource trusted;
    if (mode == AGENT_SDS_SPIFFE) {
        for (size_t i = 0; i < n; i++) {
            envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__trust_domain__init(
                &items[i]);
            /* the validator wants the bare name, without the scheme */
            items[i].name = mutable_str(tds[i].td_id + MF_SPIFFE_SCHEME_LEN);
            inline_bytes(&ds[i], tds[i].pem);
            items[i].trust_bundle = &ds[i];
            ptrs[i] = &items[i];
        }
        SpiffeValidator sv;
        envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__init(&sv);
        sv.n_trust_domains = n;
        sv.trust_domains = ptrs;
        MF_TRY_OUT(pack_into(&sv.base, &inner));
        any.type_url = mutable_str(AGENT_SDS_TYPE_SPIFFE_VALIDATOR);
        any.value = bin(inner.data, inner.len);
        tec.name = mutable_str(AGENT_SDS_SPIFFE_VALIDATOR);
        tec.typed_config = &any;
        vc.custom_validator_config = &tec;
    } else {
        for (size_t i = 0; i < n; i++) {
            MF_TRY_OUT(mf_buf_append(&cas, tds[i].pem->data, tds[i].pem->len));
            if (tds[i].pem->len > 0 && tds[i].pem->data[tds[i].pem->len - 1] != '\n') {
                MF_TRY_OUT(mf_buf_append_u8(&cas, '\n'));
            }
        }
        inline_bytes(&trusted, &cas);
        vc.trusted_ca = &trusted;
    }
    Secret s;
    envoy__extensions__transport_sockets__tls__v3__secret__init(&s);
    s.name = mutable_str(name);
    s.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
    s.validation_context = &vc;
    MF_TRY_OUT(pack_into(&s.base, out));
    rc = MF_RES_OK;
out:
    free(items);
    free(ptrs);
    free(ds);
    mf_buf_cleanup(&inner);
    mf_buf_cleanup(&cas);
    return rc;
}

/* A trust domain ID: "spiffe://<td>" with no path. */
static bool is_td_id(const char *s)
{
    struct mf_spiffe_id id;
    return mf_ok(mf_spiffeid_parse_cstr(s, &id)) && mf_spiffeid_is_td(&id);
}

/* The index of the visible SVID with this ID, or of the first visible one
 * when id is NULL; -1 when none. */
static long find_svid(const struct agent_snap *snap, const struct mf_selector *sels, size_t n_sels,
                      const char *id)
{
    for (size_t i = 0; i < snap->n; i++) {
        if (!agent_snap_visible(snap, i, sels, n_sels)) {
            continue;
        }
        if (id == NULL || strcmp(snap->svids[i].spiffe_id, id) == 0) {
            return (long)i;
        }
    }
    return -1;
}

struct render_ctx {
    const struct agent_sds *x;
    const struct agent_snap *snap;
    const struct mf_selector *sels;
    size_t n_sels;
    bool may_bundles; /* the caller may see bundles */
    struct td_pem own;
    struct td_pem fed[FEDERATED_MAX];
    size_t n_fed;
    char *why;
    size_t why_cap;
};

/* One named resource packed into out: MF_OK; MF_ERR_POLICY_DENIED with
 * why set when the caller may not have it. */
static mf_res render_one(struct render_ctx *rx, const char *name, struct mf_buf *out)
{
    const struct agent_snap *snap = rx->snap;
    if (strcmp(name, "default") == 0) {
        long i = find_svid(snap, rx->sels, rx->n_sels, NULL);
        if (i >= 0) {
            return secret_tls(name, &snap->svids[i], out);
        }
    } else if (strcmp(name, "ROOTCA") == 0 || strcmp(name, snap->td_id) == 0) {
        if (rx->may_bundles) {
            return secret_validation(rx->x->cfg.validator, name, &rx->own, 1, out);
        }
    } else if (strcmp(name, "ALL") == 0) {
        if (rx->may_bundles) {
            struct td_pem all[FEDERATED_MAX + 1];
            all[0] = rx->own;
            memcpy(&all[1], rx->fed, rx->n_fed * sizeof(rx->fed[0]));
            return secret_validation(rx->x->cfg.validator, name, all, rx->n_fed + 1, out);
        }
    } else if (is_td_id(name)) {
        struct td_pem f;
        if (rx->may_bundles && foreign_bundle(snap, rx->sels, rx->n_sels, name, &f)) {
            return secret_validation(rx->x->cfg.validator, name, &f, 1, out);
        }
    } else {
        long i = find_svid(snap, rx->sels, rx->n_sels, name);
        if (i >= 0) {
            return secret_tls(name, &snap->svids[i], out);
        }
    }
    /* grpc-message is percent-encoded when sent; a long name is cut short */
    snprintf(rx->why, rx->why_cap, "resource %.100s is not available to this workload", name);
    MF_BAIL(MF_ERR_POLICY_DENIED);
}

/* The names a subscription of "everything" stands for: each SVID by its
 * SPIFFE ID, then each bundle by its trust domain ID. Pointers into snap. */
static size_t all_names(const struct render_ctx *rx, const char **out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < rx->snap->n && k < cap; i++) {
        if (agent_snap_visible(rx->snap, i, rx->sels, rx->n_sels)) {
            out[k++] = rx->snap->svids[i].spiffe_id;
        }
    }
    if (rx->may_bundles && k < cap) {
        out[k++] = rx->snap->td_id;
    }
    for (size_t i = 0; rx->may_bundles && i < rx->n_fed && k < cap; i++) {
        out[k++] = rx->fed[i].td_id;
    }
    return k;
}

/* Packs DiscoveryResponse{version, resources, type_url, nonce} into out,
 * framed when framed. */
static mf_res pack_response(Any **res, size_t n, const char *version, const char *nonce,
                            bool framed, struct mf_buf *out)
{
    DiscoveryResponse resp;
    envoy__service__discovery__v3__discovery_response__init(&resp);
    resp.version_info = mutable_str(version);
    resp.n_resources = n;
    resp.resources = res;
    resp.type_url = mutable_str(AGENT_SDS_TYPE_SECRET);
    resp.nonce = mutable_str(nonce);
    if (!framed) {
        return pack_into(&resp.base, out);
    }
    size_t sz = protobuf_c_message_get_packed_size(&resp.base);
    MF_ENSURE_MSG(sz <= RESP_MAX, MF_ERR_PROTO_TOO_LARGE, "SDS response of %zu bytes exceeds %u",
                  sz, RESP_MAX);
    uint8_t hdr[5] = {0, (uint8_t)(sz >> 24), (uint8_t)(sz >> 16), (uint8_t)(sz >> 8), (uint8_t)sz};
    MF_TRY(mf_buf_append(out, hdr, sizeof(hdr)));
    return pack_into(&resp.base, out);
}

static mf_res new_nonce(char out[AGENT_SDS_NONCE_MAX])
{
    uint8_t r[16];
    MF_TRY(mf_random(r, sizeof(r)));
    mf_hex(r, sizeof(r), out);
    out[32] = '\0';
    return MF_RES_OK;
}

/* see agent_sds.h */
enum agent_sds_out agent_sds_render(struct agent_sds *x, const struct agent_snap *snap,
                                    const struct mf_selector *sels, size_t n_sels,
                                    struct mf_buf *out, char *why, size_t why_cap)
{
    enum agent_sds_out res = AGENT_SDS_ERROR;
    why[0] = '\0';
    if (!x->requested) {
        return AGENT_SDS_QUIET;
    }
    x->pending = false;
    size_t n_svids = snap != NULL ? agent_snap_count(snap, sels, n_sels) : 0;
    if (snap == NULL || (n_svids == 0 && !x->cfg.allow_verifiers)) {
        snprintf(why, why_cap, "no identity issued");
        return AGENT_SDS_DENIED;
    }
    struct render_ctx rx = {
        .x = x,
        .snap = snap,
        .sels = sels,
        .n_sels = n_sels,
        .may_bundles = true, /* an identity, or allow_verifiers */
        .own = {.td_id = snap->td_id, .pem = &snap->bundle_pem},
        .why = why,
        .why_cap = why_cap,
    };
    rx.n_fed = snap_federated_bundles(snap, sels, n_sels, rx.fed, FEDERATED_MAX);

    const char *every[AGENT_SDS_NAMES_MAX];
    const char *const *names = (const char *const *)x->names;
    size_t n = x->n_names;
    if (n == 0) {
        n = all_names(&rx, every, AGENT_SDS_NAMES_MAX);
        names = every;
    }
    struct mf_buf packed[AGENT_SDS_NAMES_MAX];
    Any anys[AGENT_SDS_NAMES_MAX];
    Any *ptrs[AGENT_SDS_NAMES_MAX];
    struct mf_buf bare;
    mf_buf_init(&bare, RESP_MAX, MF_BUF_SECRET);
    for (size_t i = 0; i < n; i++) {
        mf_buf_init(&packed[i], RESP_MAX, MF_BUF_SECRET);
    }
    for (size_t i = 0; i < n; i++) {
        mf_res r = render_one(&rx, names[i], &packed[i]);
        if (!mf_ok(r)) {
            if (r.err == MF_ERR_POLICY_DENIED) {
                res = AGENT_SDS_DENIED;
            } else {
                mf_err_format(r, why, why_cap);
            }
            goto out;
        }
        google__protobuf__any__init(&anys[i]);
        anys[i].type_url = mutable_str(AGENT_SDS_TYPE_SECRET);
        anys[i].value = bin(packed[i].data, packed[i].len);
        ptrs[i] = &anys[i];
    }
    /* the resources alone decide whether anything changed */
    uint8_t d[32];
    mf_res r = pack_response(ptrs, n, "", "", false, &bare);
    if (mf_ok(r)) {
        r = mf_sha256(bare.data, bare.len, d);
    }
    if (!mf_ok(r)) {
        mf_err_format(r, why, why_cap);
        goto out;
    }
    if (x->sent_any && memcmp(d, x->sent_digest, sizeof(d)) == 0) {
        res = AGENT_SDS_QUIET;
        goto out;
    }
    char version[AGENT_SDS_VERSION_MAX], nonce[AGENT_SDS_NONCE_MAX];
    snprintf(version, sizeof(version), "%llu", (unsigned long long)(x->versions + 1));
    r = new_nonce(nonce);
    if (mf_ok(r)) {
        r = pack_response(ptrs, n, version, nonce, true, out);
    }
    if (!mf_ok(r)) {
        mf_err_format(r, why, why_cap);
        goto out;
    }
    x->versions++;
    memcpy(x->pend_version, version, sizeof(version));
    memcpy(x->pend_nonce, nonce, sizeof(nonce));
    memcpy(x->pend_digest, d, sizeof(d));
    x->pending = true;
    res = AGENT_SDS_SEND;
out:
    for (size_t i = 0; i < n; i++) {
        mf_buf_cleanup(&packed[i]);
    }
    mf_buf_cleanup(&bare);
    return res;
}
