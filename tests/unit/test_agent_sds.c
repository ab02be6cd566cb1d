/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent_sds (Envoy SDS v3): which Secrets a subscription
 * selects (default, by SPIFFE ID, ROOTCA, our trust domain, ALL, an empty
 * subscription) and how they are written (TLS certificate as PEM, Envoy's
 * SPIFFE validator or a trusted_ca list); versions and nonces (a response
 * counts once handed over; an ACK and an unchanged state send nothing; a
 * new snapshot sends a new version); a NACK is not answered with the same
 * resources; a bundle change is pushed; a withdrawn identity ends the
 * stream; a stale nonce is ignored; names the caller may not have are
 * denied; malformed requests (garbage, wrong type_url, cap and cap+1 names,
 * empty and over-long names) are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent_sds.h"
#include "agent/agent_state.h"
#include "api/core/mf_time.h"
#include "envoy_extensions_transport_sockets_tls_v3.pb-c.h"
#include "envoy_service_discovery_v3.pb-c.h"
#include "mf_test.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest Req;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse Resp;
typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SPIFFECertValidatorConfig SpiffeCfg;

#define TD_ID "spiffe://example.org"
#define ID_A  TD_ID "/a"
#define ID_B  TD_ID "/b"

struct fixture {
    struct mft_ident ca;
    struct agent_snap *snap;
    struct mf_selector uid_a[1]; /* the caller of ID_A */
    struct mf_selector nobody[1];
    struct agent_sds *x;
    struct mf_buf out;
    Resp *resp;
    char why[256];
};

static void sel(const char *text, struct mf_selector *out)
{
    ASSERT_OK(mf_selector_parse(text, strlen(text), out));
}

static void add_svid(struct fixture *f, struct agent_snap *s, const char *id, const char *selector)
{
    struct mft_ident leaf;
    struct mf_certs chain;
    struct mf_selector want[1];
    sel(selector, &want[0]);
    mft_make_leaf(&leaf, &f->ca, id, mf_now(), 600);
    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, leaf.cert));
    ASSERT_OK(agent_snap_add(s, id, "", want, 1, &chain, leaf.key, mf_cert_not_after(leaf.cert)));
    mf_selector_cleanup(&want[0]);
    mf_certs_cleanup(&chain);
    mft_free_ident(&leaf);
}

/* A snapshot with ID_A for uid 1000 and ID_B for uid 1001, and the CA. */
static struct agent_snap *make_snap(struct fixture *f)
{
    struct agent_snap *s = NULL;
    ASSERT_OK(agent_snap_new("example.org", &s));
    add_svid(f, s, ID_A, "unix:uid:1000");
    add_svid(f, s, ID_B, "unix:uid:1001");
    struct mf_certs cas;
    mf_certs_init(&cas);
    ASSERT_OK(mf_certs_push(&cas, f->ca.cert));
    ASSERT_OK(mf_certs_to_pem(&cas, &s->bundle_pem));
    mf_certs_cleanup(&cas);
    return s;
}

static int setup_with(void **state, enum agent_sds_validator v, bool allow_verifiers)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    mft_make_ca(&f->ca, TD_ID, mf_now());
    f->snap = make_snap(f);
    sel("unix:uid:1000", &f->uid_a[0]);
    sel("unix:uid:4242", &f->nobody[0]);
    struct agent_sds_cfg cfg = {.validator = v, .allow_verifiers = allow_verifiers};
    ASSERT_OK(agent_sds_new(&cfg, &f->x));
    mf_buf_init(&f->out, 8u * 1024u * 1024u, MF_BUF_SECRET);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, AGENT_SDS_SPIFFE, false);
}

static int setup_trusted_ca(void **state)
{
    return setup_with(state, AGENT_SDS_TRUSTED_CA, false);
}

static int setup_verifiers(void **state)
{
    return setup_with(state, AGENT_SDS_SPIFFE, true);
}

static void drop_resp(struct fixture *f)
{
    if (f->resp != NULL) {
        envoy__service__discovery__v3__discovery_response__free_unpacked(f->resp, NULL);
        f->resp = NULL;
    }
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    drop_resp(f);
    mf_selector_cleanup(&f->uid_a[0]);
    mf_selector_cleanup(&f->nobody[0]);
    mf_buf_cleanup(&f->out);
    agent_sds_free(f->x);
    agent_snap_unref(f->snap);
    mft_free_ident(&f->ca);
    free(f);
    return 0;
}

/* Sends one DiscoveryRequest to x. */
static mf_res request(struct fixture *f, const char *type_url, const char *const *names, size_t n,
                      const char *version, const char *nonce, bool nack)
{
    Req r;
    envoy__service__discovery__v3__discovery_request__init(&r);
    r.type_url = (char *)(uintptr_t)type_url;
    r.resource_names = (char **)(uintptr_t)names;
    r.n_resource_names = n;
    r.version_info = (char *)(uintptr_t)version;
    r.response_nonce = (char *)(uintptr_t)nonce;
    Google__Rpc__Status st;
    google__rpc__status__init(&st);
    st.code = 3;
    st.message = (char *)(uintptr_t) "bad\ncertificate";
    if (nack) {
        r.error_detail = &st;
    }
    size_t len = envoy__service__discovery__v3__discovery_request__get_packed_size(&r);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    envoy__service__discovery__v3__discovery_request__pack(&r, buf);
    mf_res res = agent_sds_request(f->x, buf, len);
    free(buf);
    return res;
}

static void subscribe(struct fixture *f, const char *const *names, size_t n)
{
    ASSERT_OK(request(f, AGENT_SDS_TYPE_SECRET, names, n, agent_sds_version(f->x),
                      agent_sds_nonce(f->x), false));
}

/* Renders for selectors have[0..n); on SEND, decodes the response into
 * f->resp (checking the gRPC framing). */
static enum agent_sds_out render_as(struct fixture *f, const struct agent_snap *snap,
                                    const struct mf_selector *have, size_t n)
{
    drop_resp(f);
    mf_buf_reset(&f->out);
    enum agent_sds_out o = agent_sds_render(f->x, snap, have, n, &f->out, f->why, sizeof(f->why));
    if (o == AGENT_SDS_SEND) {
        assert_true(f->out.len > 5);
        assert_int_equal(f->out.data[0], 0);
        size_t len = ((size_t)f->out.data[1] << 24) | ((size_t)f->out.data[2] << 16) |
                     ((size_t)f->out.data[3] << 8) | f->out.data[4];
        assert_int_equal(len, f->out.len - 5);
        f->resp =
            envoy__service__discovery__v3__discovery_response__unpack(NULL, len, f->out.data + 5);
        assert_non_null(f->resp);
        assert_string_equal(f->resp->type_url, AGENT_SDS_TYPE_SECRET);
    } else {
        assert_int_equal(f->out.len, 0);
    }
    return o;
}

static enum agent_sds_out render(struct fixture *f)
{
    return render_as(f, f->snap, f->uid_a, 1);
}

/* Resource i of f->resp, unpacked (caller frees). */
static Secret *secret_at(struct fixture *f, size_t i)
{
    assert_true(i < f->resp->n_resources);
    assert_string_equal(f->resp->resources[i]->type_url, AGENT_SDS_TYPE_SECRET);
    Secret *s = envoy__extensions__transport_sockets__tls__v3__secret__unpack(
        NULL, f->resp->resources[i]->value.len, f->resp->resources[i]->value.data);
    assert_non_null(s);
    return s;
}

static void free_secret(Secret *s)
{
    envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(s, NULL);
}

/* A TLS certificate secret named name holding id's SVID and its key. */
static void check_tls(Secret *s, const char *name, const char *id)
{
    assert_string_equal(s->name, name);
    assert_int_equal(s->type_case,
                     ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE);
    const ProtobufCBinaryData *chain = &s->tls_certificate->certificate_chain->inline_bytes;
    const ProtobufCBinaryData *key = &s->tls_certificate->private_key->inline_bytes;
    struct mf_certs cs;
    mf_certs_init(&cs);
    ASSERT_OK(mf_certs_from_pem((const char *)chain->data, chain->len, &cs));
    assert_int_equal(cs.n, 1);
    assert_string_equal(mf_cert_spiffe_id_str(cs.v[0]), id);
    struct mf_key *k = NULL;
    ASSERT_OK(mf_key_from_pem((const char *)key->data, key->len, &k));
    assert_true(mf_cert_matches_key(cs.v[0], k));
    mf_key_free(k);
    mf_certs_cleanup(&cs);
}

/* A validation context secret: Envoy's SPIFFE validator with exactly our
 * trust domain and the snapshot's bundle. */
static void check_spiffe_validator(struct fixture *f, Secret *s, const char *name)
{
    assert_string_equal(s->name, name);
    assert_int_equal(
        s->type_case,
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT);
    assert_null(s->validation_context->trusted_ca);
    const Envoy__Config__Core__V3__TypedExtensionConfig *cv =
        s->validation_context->custom_validator_config;
    assert_non_null(cv);
    assert_string_equal(cv->name, "envoy.tls.cert_validator.spiffe");
    assert_string_equal(cv->typed_config->type_url, AGENT_SDS_TYPE_SPIFFE_VALIDATOR);
    SpiffeCfg *sc =
        envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__unpack(
            NULL, cv->typed_config->value.len, cv->typed_config->value.data);
    assert_non_null(sc);
    assert_int_equal(sc->n_trust_domains, 1);
    assert_string_equal(sc->trust_domains[0]->name, "example.org");
    const ProtobufCBinaryData *b = &sc->trust_domains[0]->trust_bundle->inline_bytes;
    assert_int_equal(b->len, f->snap->bundle_pem.len);
    assert_memory_equal(b->data, f->snap->bundle_pem.data, b->len);
    envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__free_unpacked(sc,
                                                                                              NULL);
}

static void test_agent_sds_render_before_request_quiet(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(render(f), AGENT_SDS_QUIET);
    assert_string_equal(agent_sds_version(f->x), "");
    assert_string_equal(agent_sds_nonce(f->x), "");
}

static void test_agent_sds_render_default_and_id_ok(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"default", ID_A};
    subscribe(f, names, 2);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    assert_int_equal(f->resp->n_resources, 2);
    assert_string_equal(f->resp->version_info, "1");
    assert_int_equal(strlen(f->resp->nonce), 32);
    Secret *s0 = secret_at(f, 0), *s1 = secret_at(f, 1);
    check_tls(s0, "default", ID_A);
    check_tls(s1, ID_A, ID_A);
    free_secret(s0);
    free_secret(s1);
}

static void test_agent_sds_render_rootca_spiffe_validator_ok(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"ROOTCA", TD_ID, "ALL"};
    subscribe(f, names, 3);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    assert_int_equal(f->resp->n_resources, 3);
    for (size_t i = 0; i < 3; i++) {
        Secret *s = secret_at(f, i);
        check_spiffe_validator(f, s, names[i]);
        free_secret(s);
    }
}

static void test_agent_sds_render_trusted_ca_ok(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"ROOTCA", "ALL"};
    subscribe(f, names, 2);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    assert_int_equal(f->resp->n_resources, 2);
    for (size_t i = 0; i < 2; i++) {
        Secret *s = secret_at(f, i);
        assert_string_equal(s->name, names[i]);
        assert_null(s->validation_context->custom_validator_config);
        const ProtobufCBinaryData *b = &s->validation_context->trusted_ca->inline_bytes;
        assert_int_equal(b->len, f->snap->bundle_pem.len);
        assert_memory_equal(b->data, f->snap->bundle_pem.data, b->len);
        free_secret(s);
    }
}

static void test_agent_sds_empty_subscription_everything_ok(void **state)
{
    struct fixture *f = *state;
    subscribe(f, NULL, 0);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    assert_int_equal(f->resp->n_resources, 2); /* ID_A and our bundle, not ID_B */
    Secret *s0 = secret_at(f, 0), *s1 = secret_at(f, 1);
    check_tls(s0, ID_A, ID_A);
    check_spiffe_validator(f, s1, TD_ID);
    free_secret(s0);
    free_secret(s1);
}

static void test_agent_sds_duplicate_names_once_ok(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"ROOTCA", "ROOTCA", "ROOTCA"};
    subscribe(f, names, 3);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    assert_int_equal(f->resp->n_resources, 1);
}

static void test_agent_sds_version_nonce_after_sent_ack_quiet(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"default"};
    subscribe(f, names, 1);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    char nonce1[AGENT_SDS_NONCE_MAX];
    snprintf(nonce1, sizeof(nonce1), "%s", f->resp->nonce);
    /* not handed over yet: the stream's version is still none */
    assert_string_equal(agent_sds_version(f->x), "");
    agent_sds_sent(f->x);
    assert_string_equal(agent_sds_version(f->x), "1");
    assert_string_equal(agent_sds_nonce(f->x), nonce1);
    /* the ACK, and the same state again: nothing to send */
    subscribe(f, names, 1);
    assert_int_equal(render(f), AGENT_SDS_QUIET);
    uint64_t acks, nacks, stale;
    agent_sds_counts(f->x, &acks, &nacks, &stale);
    assert_int_equal(acks, 1);
    assert_int_equal(nacks, 0);
    assert_int_equal(stale, 0);
    /* a rotation (a new snapshot with a new SVID): version 2, new nonce */
    struct agent_snap *next = make_snap(f);
    assert_int_equal(render_as(f, next, f->uid_a, 1), AGENT_SDS_SEND);
    assert_string_equal(f->resp->version_info, "2");
    assert_string_not_equal(f->resp->nonce, nonce1);
    agent_sds_sent(f->x);
    assert_int_equal(render_as(f, next, f->uid_a, 1), AGENT_SDS_QUIET);
    agent_snap_unref(next);
}

static void test_agent_sds_unsent_response_rendered_again_ok(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"ROOTCA"};
    subscribe(f, names, 1);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    /* dropped before it went out (the state changed): the same resources
     * must still be sent, under a new version */
    assert_int_equal(render(f), AGENT_SDS_SEND);
    assert_string_equal(f->resp->version_info, "2");
    agent_sds_sent(f->x);
    assert_string_equal(agent_sds_version(f->x), "2");
    assert_int_equal(render(f), AGENT_SDS_QUIET);
}

static void test_agent_sds_nack_same_resources_not_resent(void **state)
{
    struct fixture *f = *state;
    const char *one[] = {"ROOTCA"}, *two[] = {"ROOTCA", "default"};
    subscribe(f, one, 1);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    agent_sds_sent(f->x);
    subscribe(f, two, 2); /* ACK of 1 with a new subscription */
    assert_int_equal(render(f), AGENT_SDS_SEND);
    assert_string_equal(f->resp->version_info, "2");
    agent_sds_sent(f->x);
    /* NACK of 2: the client stays on version 1 */
    ASSERT_OK(request(f, AGENT_SDS_TYPE_SECRET, two, 2, "1", agent_sds_nonce(f->x), true));
    assert_int_equal(render(f), AGENT_SDS_QUIET);
    uint64_t acks, nacks, stale;
    agent_sds_counts(f->x, &acks, &nacks, &stale);
    assert_int_equal(nacks, 1);
    /* only a change sends again */
    struct agent_snap *next = make_snap(f);
    assert_int_equal(render_as(f, next, f->uid_a, 1), AGENT_SDS_SEND);
    assert_string_equal(f->resp->version_info, "3");
    agent_snap_unref(next);
}

static void test_agent_sds_bundle_change_pushed_ok(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"ROOTCA"};
    subscribe(f, names, 1);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    agent_sds_sent(f->x);
    /* a new snapshot whose bundle gains a second CA */
    struct agent_snap *next = make_snap(f);
    struct mft_ident ca2;
    mft_make_ca(&ca2, TD_ID, mf_now());
    struct mf_certs cas;
    mf_certs_init(&cas);
    ASSERT_OK(mf_certs_push(&cas, ca2.cert));
    ASSERT_OK(mf_certs_to_pem(&cas, &next->bundle_pem));
    mf_certs_cleanup(&cas);
    mft_free_ident(&ca2);
    assert_int_equal(render_as(f, next, f->uid_a, 1), AGENT_SDS_SEND);
    assert_string_equal(f->resp->version_info, "2");
    Secret *s = secret_at(f, 0);
    SpiffeCfg *sc =
        envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__unpack(
            NULL, s->validation_context->custom_validator_config->typed_config->value.len,
            s->validation_context->custom_validator_config->typed_config->value.data);
    assert_non_null(sc);
    struct mf_certs got;
    mf_certs_init(&got);
    const ProtobufCBinaryData *b = &sc->trust_domains[0]->trust_bundle->inline_bytes;
    ASSERT_OK(mf_certs_from_pem((const char *)b->data, b->len, &got));
    assert_int_equal(got.n, 2);
    mf_certs_cleanup(&got);
    envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__free_unpacked(sc,
                                                                                              NULL);
    free_secret(s);
    agent_snap_unref(next);
}

static void test_agent_sds_identity_withdrawn_denied(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"default"};
    subscribe(f, names, 1);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    agent_sds_sent(f->x);
    /* the entry is gone from the next snapshot */
    struct agent_snap *next = NULL;
    ASSERT_OK(agent_snap_new("example.org", &next));
    assert_int_equal(render_as(f, next, f->uid_a, 1), AGENT_SDS_DENIED);
    assert_string_equal(f->why, "no identity issued");
    agent_snap_unref(next);
}

static void test_agent_sds_stale_nonce_ignored(void **state)
{
    struct fixture *f = *state;
    const char *one[] = {"ROOTCA"}, *other[] = {"default"};
    subscribe(f, one, 1);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    agent_sds_sent(f->x);
    /* a nonce we never sent, with another subscription: ignored */
    ASSERT_OK(request(f, AGENT_SDS_TYPE_SECRET, other, 1, "1", "0123", false));
    assert_int_equal(render(f), AGENT_SDS_QUIET);
    uint64_t acks, nacks, stale;
    agent_sds_counts(f->x, &acks, &nacks, &stale);
    assert_int_equal(stale, 1);
    assert_int_equal(acks, 0);
}

static void test_agent_sds_nonce_before_any_response_ignored(void **state)
{
    struct fixture *f = *state;
    const char *one[] = {"ROOTCA"};
    ASSERT_OK(request(f, AGENT_SDS_TYPE_SECRET, one, 1, "", "abc", false));
    assert_int_equal(render(f), AGENT_SDS_QUIET);
}

static void test_agent_sds_other_workloads_names_denied(void **state)
{
    struct fixture *f = *state;
    const char *cases[] = {ID_B, "spiffe://elsewhere.test", "spiffe://example.org/nope",
                           "no-such-name", "rootca"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        agent_sds_free(f->x);
        struct agent_sds_cfg cfg = {.validator = AGENT_SDS_SPIFFE};
        ASSERT_OK(agent_sds_new(&cfg, &f->x));
        const char *names[] = {"ROOTCA", cases[i]};
        subscribe(f, names, 2);
        assert_int_equal(render(f), AGENT_SDS_DENIED);
        assert_non_null(strstr(f->why, "not available to this workload"));
    }
}

/* Federated bundles: a caller whose SVID federates with b.test gets
 * "spiffe://b.test" as its own validation context and inside "ALL" (each
 * trust domain under its own name, never merged); c.test, held by the
 * snapshot for another SVID, and b.test for a caller that does not
 * federate with it, are denied. */
static void test_agent_sds_federated_bundle_exact(void **state)
{
    struct fixture *f = *state;
    struct mft_ident bca, cca;
    struct mf_bundle *bb = NULL, *cb = NULL;
    mft_make_ca(&bca, "spiffe://b.test", mf_now());
    mft_make_ca(&cca, "spiffe://c.test", mf_now());
    ASSERT_OK(mf_bundle_new("spiffe://b.test", &bb));
    ASSERT_OK(mf_bundle_add_x509(bb, bca.cert));
    ASSERT_OK(mf_bundle_new("spiffe://c.test", &cb));
    ASSERT_OK(mf_bundle_add_x509(cb, cca.cert));
    char fb[] = "spiffe://b.test", fc[] = "spiffe://c.test";
    char *to_b[] = {fb}, *to_c[] = {fc};
    ASSERT_OK(agent_snap_set_federates(f->snap, 0, to_b, 1)); /* ID_A */
    ASSERT_OK(agent_snap_set_federates(f->snap, 1, to_c, 1)); /* ID_B */
    ASSERT_OK(agent_snap_add_federated(f->snap, bb));
    ASSERT_OK(agent_snap_add_federated(f->snap, cb));
    mf_bundle_free(bb);
    mf_bundle_free(cb);

    const char *names[] = {"spiffe://b.test", "ALL"};
    subscribe(f, names, 2);
    assert_int_equal(render(f), AGENT_SDS_SEND);
    assert_int_equal(f->resp->n_resources, 2);
    Secret *s0 = secret_at(f, 0), *s1 = secret_at(f, 1);
    assert_string_equal(s0->name, "spiffe://b.test");
    const Envoy__Config__Core__V3__TypedExtensionConfig *cv =
        s0->validation_context->custom_validator_config;
    SpiffeCfg *sc =
        envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__unpack(
            NULL, cv->typed_config->value.len, cv->typed_config->value.data);
    assert_non_null(sc);
    assert_int_equal(sc->n_trust_domains, 1);
    assert_string_equal(sc->trust_domains[0]->name, "b.test");
    struct mf_certs got;
    mf_certs_init(&got);
    const ProtobufCBinaryData *b = &sc->trust_domains[0]->trust_bundle->inline_bytes;
    ASSERT_OK(mf_certs_from_pem((const char *)b->data, b->len, &got));
    assert_int_equal(got.n, 1);
    size_t la = 0, lb = 0;
    const uint8_t *da = mf_cert_der(got.v[0], &la), *db = mf_cert_der(bca.cert, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    mf_certs_cleanup(&got);
    envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__free_unpacked(sc,
                                                                                              NULL);
    cv = s1->validation_context->custom_validator_config;
    sc = envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__unpack(
        NULL, cv->typed_config->value.len, cv->typed_config->value.data);
    assert_non_null(sc);
    assert_int_equal(sc->n_trust_domains, 2); /* ours and b.test, not c.test */
    assert_string_equal(sc->trust_domains[0]->name, "example.org");
    assert_string_equal(sc->trust_domains[1]->name, "b.test");
    envoy__extensions__transport_sockets__tls__v3__spiffecert_validator_config__free_unpacked(sc,
                                                                                              NULL);
    free_secret(s0);
    free_secret(s1);

    const char *other[] = {"spiffe://c.test"};
    agent_sds_free(f->x);
    struct agent_sds_cfg cfg = {.validator = AGENT_SDS_SPIFFE};
    ASSERT_OK(agent_sds_new(&cfg, &f->x));
    subscribe(f, other, 1);
    assert_int_equal(render(f), AGENT_SDS_DENIED);
    agent_sds_free(f->x);
    ASSERT_OK(agent_sds_new(&cfg, &f->x));
    subscribe(f, names, 1);
    assert_int_equal(render_as(f, f->snap, f->nobody, 1), AGENT_SDS_DENIED);
    mft_free_ident(&bca);
    mft_free_ident(&cca);
}

static void test_agent_sds_no_identity_denied(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"ROOTCA"};
    subscribe(f, names, 1);
    assert_int_equal(render_as(f, f->snap, f->nobody, 1), AGENT_SDS_DENIED);
    assert_string_equal(f->why, "no identity issued");
    assert_int_equal(render_as(f, NULL, f->uid_a, 1), AGENT_SDS_DENIED);
}

static void test_agent_sds_verifier_gets_bundles_only_ok(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"ROOTCA"}, *svid[] = {"default"};
    subscribe(f, names, 1);
    assert_int_equal(render_as(f, f->snap, f->nobody, 1), AGENT_SDS_SEND);
    agent_sds_sent(f->x);
    subscribe(f, svid, 1);
    assert_int_equal(render_as(f, f->snap, f->nobody, 1), AGENT_SDS_DENIED);
}

static void test_agent_sds_request_malformed_refused(void **state)
{
    struct fixture *f = *state;
    const uint8_t garbage[] = {0x0a, 0xff, 0x01};
    ASSERT_ERR(agent_sds_request(f->x, garbage, sizeof(garbage)), MF_ERR_PROTO);
    const char *names[] = {"default"};
    ASSERT_ERR(
        request(f, "type.googleapis.com/envoy.config.cluster.v3.Cluster", names, 1, "", "", false),
        MF_ERR_USAGE_ARG);
    const char *empty[] = {""};
    ASSERT_ERR(request(f, "", empty, 1, "", "", false), MF_ERR_USAGE_ARG);
    /* an empty type_url is accepted (the method says what is asked) */
    ASSERT_OK(request(f, "", names, 1, "", "", false));
}

static void test_agent_sds_request_names_cap_and_cap_plus_one(void **state)
{
    struct fixture *f = *state;
    static char bufs[AGENT_SDS_NAMES_MAX + 1][32];
    const char *names[AGENT_SDS_NAMES_MAX + 1];
    for (size_t i = 0; i <= AGENT_SDS_NAMES_MAX; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "name-%zu", i);
        names[i] = bufs[i];
    }
    ASSERT_ERR(request(f, AGENT_SDS_TYPE_SECRET, names, AGENT_SDS_NAMES_MAX + 1, "", "", false),
               MF_ERR_PROTO_TOO_LARGE);
    ASSERT_OK(request(f, AGENT_SDS_TYPE_SECRET, names, AGENT_SDS_NAMES_MAX, "", "", false));
    /* a name of MF_SPIFFE_ID_MAX bytes is taken, one more is not */
    char *longname = malloc(MF_SPIFFE_ID_MAX + 2);
    assert_non_null(longname);
    memset(longname, 'a', MF_SPIFFE_ID_MAX + 1);
    longname[MF_SPIFFE_ID_MAX + 1] = '\0';
    const char *one[] = {longname};
    ASSERT_ERR(request(f, AGENT_SDS_TYPE_SECRET, one, 1, "", "", false), MF_ERR_USAGE_ARG);
    longname[MF_SPIFFE_ID_MAX] = '\0';
    ASSERT_OK(request(f, AGENT_SDS_TYPE_SECRET, one, 1, "", "", false));
    free(longname);
}

static void test_agent_sds_fetch_nonce_ignored_ok(void **state)
{
    struct fixture *f = *state;
    agent_sds_free(f->x);
    struct agent_sds_cfg cfg = {.validator = AGENT_SDS_SPIFFE, .fetch = true};
    ASSERT_OK(agent_sds_new(&cfg, &f->x));
    /* a FetchSecrets request may carry what the client last saw: answered */
    const char *names[] = {"default"};
    ASSERT_OK(request(f, AGENT_SDS_TYPE_SECRET, names, 1, "7", "abcdef", true));
    assert_int_equal(render(f), AGENT_SDS_SEND);
    assert_int_equal(f->resp->n_resources, 1);
    uint64_t acks, nacks, stale;
    agent_sds_counts(f->x, &acks, &nacks, &stale);
    assert_int_equal(acks + nacks + stale, 0);
}

static void test_agent_sds_validator_parse_ok_and_refused(void **state)
{
    (void)state;
    enum agent_sds_validator v = AGENT_SDS_TRUSTED_CA;
    ASSERT_OK(agent_sds_validator_parse("spiffe", &v));
    assert_int_equal(v, AGENT_SDS_SPIFFE);
    ASSERT_OK(agent_sds_validator_parse("trusted_ca", &v));
    assert_int_equal(v, AGENT_SDS_TRUSTED_CA);
    ASSERT_ERR(agent_sds_validator_parse("SPIFFE", &v), MF_ERR_USAGE_ARG);
    ASSERT_ERR(agent_sds_validator_parse("", &v), MF_ERR_USAGE_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agent_sds_render_before_request_quiet, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_render_default_and_id_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_render_rootca_spiffe_validator_ok, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_render_trusted_ca_ok, setup_trusted_ca,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_empty_subscription_everything_ok, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_duplicate_names_once_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_version_nonce_after_sent_ack_quiet, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_unsent_response_rendered_again_ok, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_nack_same_resources_not_resent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_bundle_change_pushed_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_identity_withdrawn_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_stale_nonce_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_nonce_before_any_response_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_other_workloads_names_denied, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_no_identity_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_federated_bundle_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_verifier_gets_bundles_only_ok,
                                        setup_verifiers, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_request_malformed_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_request_names_cap_and_cap_plus_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_sds_fetch_nonce_ignored_ok, setup, teardown),
        cmocka_unit_test(test_agent_sds_validator_parse_ok_and_refused),
    };
    return cmocka_run_group_tests_name("agent_sds", tests, NULL, NULL);
}
