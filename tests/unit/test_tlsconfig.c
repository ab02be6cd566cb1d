/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_tlsconfig: authorizers, and real TLS 1.3 handshakes
 * between a server and a client built from fixed X.509 snapshots, over a
 * socketpair (the server side runs in a thread).
 *
 * Certificates are issued here with mf_x509: a CA for example.org, one for
 * other.org, and a rogue CA that also calls itself spiffe://example.org;
 * SVIDs for a server (and its rotated successor), clients /a and /b, an
 * expired /a, other.org/x, and example.org/evil from the rogue CA. The
 * checks: exact-ID, member-of, one-of and function authorizers accept the
 * right peer and refuse the wrong one with a readable reason; chains from
 * another trust domain's CA are refused, including the pooled-trust case
 * (SPIFFE.md B23); an expired peer and a peer without a certificate are
 * refused; a client refuses a server it did not expect; after the snapshot
 * is swapped a new handshake presents the new leaf while an established
 * connection keeps working.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include <wolfssl/options.h>
#include <cmocka.h>
#include <wolfssl/ssl.h>

#include "api/core/mf_err.h"
#include "api/core/mf_time.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "api/workload/mf_tlsconfig.h"
#include "api/workload/mf_workload.h"
#include "tests/unit/mf_test.h"

#define T_MS       5000
#define DETAIL_MAX 600

/* ---- certificates and snapshots --------------------------------------------- */

static struct {
    struct mft_ident ca;      /* spiffe://example.org */
    struct mft_ident other;   /* spiffe://other.org */
    struct mft_ident rogue;   /* another CA calling itself spiffe://example.org */
    struct mft_ident server;  /* example.org/server */
    struct mft_ident server2; /* example.org/server, rotated */
    struct mft_ident a;       /* example.org/a */
    struct mft_ident b;       /* example.org/b */
    struct mft_ident old_a;   /* example.org/a, expired */
    struct mft_ident x;       /* other.org/x */
    struct mft_ident evil;    /* example.org/evil, from the rogue CA */
} F;

static struct mf_key *dup_key(const struct mf_key *k)
{
    struct mf_buf der;
    struct mf_key *out = NULL;
    mf_buf_init(&der, 4096, MF_BUF_SECRET);
    ASSERT_OK(mf_key_to_der(k, &der));
    ASSERT_OK(mf_key_from_der(der.data, der.len, &out));
    mf_buf_cleanup(&der);
    return out;
}

struct tdca {
    const char *td;
    const struct mft_ident *ca;
};

/* A snapshot presenting leaf, trusting the given <trust domain, CA> pairs
 * (example.org -> F.ca when none are given). */
static struct mf_x509_context *snap(const struct mft_ident *leaf, const struct tdca *tds, size_t n)
{
    static const struct tdca dflt[] = {{"example.org", &F.ca}};
    struct mf_x509_context *x = NULL;
    struct mf_certs chain;
    mf_certs_init(&chain);
    ASSERT_OK(mf_x509_context_new(&x));
    ASSERT_OK(mf_certs_push(&chain, leaf->cert));
    ASSERT_OK(mf_x509_context_add_svid(x, &chain, dup_key(leaf->key), NULL));
    mf_certs_cleanup(&chain);
    if (tds == NULL) {
        tds = dflt;
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        struct mf_bundle *b = NULL;
        ASSERT_OK(mf_bundle_new(tds[i].td, &b));
        ASSERT_OK(mf_bundle_add_x509(b, tds[i].ca->cert));
        ASSERT_OK(mf_x509_context_add_bundle(x, b));
        mf_bundle_free(b);
    }
    return x;
}

static struct mf_tls_config *config(enum mf_tls_role role, const struct mft_ident *leaf,
                                    const struct tdca *tds, size_t n,
                                    const struct mf_authorizer *az)
{
    struct mf_x509_context *x = snap(leaf, tds, n);
    struct mf_tls_config *cfg = NULL;
    ASSERT_OK(mf_tls_config_new_fixed(role, x, az, &cfg));
    mf_x509_context_free(x);
    return cfg;
}

static struct mf_authorizer want_id(const char *id)
{
    struct mf_authorizer a;
    ASSERT_OK(mf_authorize_id(id, &a));
    return a;
}

/* ---- one exchange over a socketpair ------------------------------------------- */

struct outcome {
    /* server side */
    enum mf_err srv_err;
    char srv_detail[DETAIL_MAX];
    char srv_peer[MF_SPIFFE_ID_MAX + 1];
    char srv_got[64];
    /* client side */
    enum mf_err cli_err;
    char cli_detail[DETAIL_MAX];
    char cli_peer[MF_SPIFFE_ID_MAX + 1];
    char cli_peer_serial[MF_SERIAL_HEX_MAX];
    enum mf_err cli_read_err;
    char cli_detail_read[DETAIL_MAX];
    char cli_got[64];
};

struct srv_run {
    struct mf_tls_config *cfg;
    int fd;
    struct outcome *o;
};

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static void *server_main(void *arg)
{
    struct srv_run *run = arg;
    struct outcome *o = run->o;
    struct mf_tls_conn *c = NULL;
    mf_err_clear();
    mf_res r = mf_tls_accept(run->cfg, run->fd, T_MS, &c);
    o->srv_err = r.err;
    copy_str(o->srv_detail, sizeof(o->srv_detail), mf_err_detail());
    if (mf_ok(r)) {
        copy_str(o->srv_peer, sizeof(o->srv_peer), mf_tls_conn_peer_id(c)->str);
        size_t got = 0;
        char buf[32];
        if (mf_ok(mf_tls_conn_write(c, "hi", 2, T_MS)) &&
            mf_ok(mf_tls_conn_read(c, buf, sizeof(buf) - 1, T_MS, &got))) {
            buf[got] = '\0';
            copy_str(o->srv_got, sizeof(o->srv_got), buf);
            (void)mf_ok(mf_tls_conn_write(c, "pong", 4, T_MS));
        }
        mf_tls_conn_close(c);
    }
    return NULL;
}

/* The client half, on an already connected fd; leaves c open in *keep when
 * keep is not NULL. */
static void client_side(struct mf_tls_config *ccfg, int fd, struct outcome *o,
                        struct mf_tls_conn **keep)
{
    struct mf_tls_conn *c = NULL;
    mf_err_clear();
    mf_res r = mf_tls_connect(ccfg, fd, T_MS, &c);
    o->cli_err = r.err;
    copy_str(o->cli_detail, sizeof(o->cli_detail), mf_err_detail());
    if (!mf_ok(r)) {
        return;
    }
    copy_str(o->cli_peer, sizeof(o->cli_peer), mf_tls_conn_peer_id(c)->str);
    mf_cert_serial_hex(mf_tls_conn_peer_chain(c)->v[0], o->cli_peer_serial);
    /* the server speaks first: a refusal shows on this read, before the
     * client has sent anything */
    char buf[32];
    size_t got = 0;
    r = mf_tls_conn_read(c, buf, 2, T_MS, &got);
    if (mf_ok(r)) {
        r = mf_tls_conn_write(c, "ping", 4, T_MS);
    }
    if (mf_ok(r)) {
        r = mf_tls_conn_read(c, buf, sizeof(buf) - 1, T_MS, &got);
        if (mf_ok(r)) {
            buf[got] = '\0';
            copy_str(o->cli_got, sizeof(o->cli_got), buf);
        }
    }
    o->cli_read_err = r.err;
    copy_str(o->cli_detail_read, sizeof(o->cli_detail_read), mf_ok(r) ? "" : mf_err_detail());
    if (keep != NULL) {
        *keep = c;
    } else {
        mf_tls_conn_close(c);
    }
}

static void run_pair(struct mf_tls_config *scfg, struct mf_tls_config *ccfg, struct outcome *o)
{
    int sv[2];
    memset(o, 0, sizeof(*o));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct srv_run run = {.cfg = scfg, .fd = sv[0], .o = o};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, server_main, &run), 0);
    client_side(ccfg, sv[1], o, NULL);
    pthread_join(t, NULL);
}

struct acc_run {
    struct mf_tls_config *cfg;
    int fd;
    struct mf_tls_conn *conn;
    enum mf_err err;
};

static void *accept_main(void *arg)
{
    struct acc_run *a = arg;
    a->err = mf_tls_accept(a->cfg, a->fd, T_MS, &a->conn).err;
    return NULL;
}

/* ---- authorizers ------------------------------------------------------------- */

static void test_mf_authorize_id_exact_only(void **state)
{
    (void)state;
    struct mf_authorizer az = want_id("spiffe://example.org/a");
    struct mf_spiffe_id a, a2, b;
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/a", &a));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/a/b", &a2));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/b", &b));
    ASSERT_OK(mf_authorize(&az, &a, NULL));
    ASSERT_ERR(mf_authorize(&az, &a2, NULL), MF_ERR_POLICY_DENIED);
    ASSERT_ERR(mf_authorize(&az, &b, NULL), MF_ERR_POLICY_DENIED);
    assert_string_equal(mf_err_detail(), "not authorized (want spiffe://example.org/a)");
    ASSERT_ERR(mf_authorize_id("spiffe://example.org/a/../b", &az), MF_ERR_ID_DOT_SEGMENT);
    ASSERT_ERR(mf_authorize_id("example.org/a", &az), MF_ERR_ID_SCHEME);
}

static void test_mf_authorize_member_of_no_suffix_match(void **state)
{
    (void)state;
    struct mf_authorizer az;
    struct mf_spiffe_id a, evil, other;
    ASSERT_OK(mf_authorize_member_of("spiffe://example.org", &az));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/a", &a));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://myexample.org/a", &evil));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org.evil/a", &other));
    ASSERT_OK(mf_authorize(&az, &a, NULL));
    ASSERT_ERR(mf_authorize(&az, &evil, NULL), MF_ERR_POLICY_DENIED);
    ASSERT_ERR(mf_authorize(&az, &other, NULL), MF_ERR_POLICY_DENIED);
    assert_string_equal(mf_err_detail(),
                        "not authorized (want a member of trust domain example.org)");
    ASSERT_OK(mf_authorize_member_of("example.org", &az));
    ASSERT_OK(mf_authorize(&az, &a, NULL));
    ASSERT_ERR(mf_authorize_member_of("spiffe://example.org/a", &az), MF_ERR_ID_HAS_PATH);
    ASSERT_ERR(mf_authorize_member_of("Example.org", &az), MF_ERR_ID_TD_CHAR);
}

static void test_mf_authorize_one_of_and_any(void **state)
{
    (void)state;
    struct mf_spiffe_id ids[2], a, c;
    struct mf_authorizer az;
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/b", &ids[0]));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/a", &ids[1]));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/a", &a));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/c", &c));
    ASSERT_OK(mf_authorize_one_of(ids, 2, &az));
    ASSERT_OK(mf_authorize(&az, &a, NULL));
    ASSERT_ERR(mf_authorize(&az, &c, NULL), MF_ERR_POLICY_DENIED);
    ASSERT_ERR(mf_authorize_one_of(ids, 0, &az), MF_ERR_USAGE_ARG);
    ASSERT_ERR(mf_authorize_one_of(ids, MF_AUTHZ_IDS_MAX + 1, &az), MF_ERR_USAGE_ARG);
    mf_authorize_any(&az);
    ASSERT_OK(mf_authorize(&az, &c, NULL));
}

static mf_res only_b(void *arg, const struct mf_spiffe_id *peer, const struct mf_certs *chain)
{
    int *calls = arg;
    (*calls)++;
    MF_ENSURE(chain != NULL && chain->n > 0, MF_ERR_USAGE_NULL);
    MF_ENSURE_MSG(strcmp(mf_spiffeid_path(peer), "/b") == 0, MF_ERR_POLICY_DENIED,
                  "only /b may call, not %s", peer->str);
    return MF_RES_OK;
}

static mf_res mute_refusal(void *arg, const struct mf_spiffe_id *peer, const struct mf_certs *chain)
{
    (void)arg;
    (void)peer;
    (void)chain;
    return (mf_res){MF_ERR_POLICY_DENIED};
}

static void test_mf_authorize_func_reason_kept(void **state)
{
    (void)state;
    int calls = 0;
    struct mf_authorizer az;
    struct mf_spiffe_id a;
    struct mf_certs chain;
    mf_certs_init(&chain);
    ASSERT_OK(mf_certs_push(&chain, F.a.cert));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/a", &a));
    ASSERT_OK(mf_authorize_func(only_b, &calls, &az));
    ASSERT_ERR(mf_authorize(&az, &a, &chain), MF_ERR_POLICY_DENIED);
    assert_string_equal(mf_err_detail(), "only /b may call, not spiffe://example.org/a");
    assert_int_equal(calls, 1);
    ASSERT_OK(mf_authorize_func(mute_refusal, NULL, &az));
    ASSERT_ERR(mf_authorize(&az, &a, &chain), MF_ERR_POLICY_DENIED);
    assert_non_null(strstr(mf_err_detail(), "not authorized"));
    ASSERT_ERR(mf_authorize_func(NULL, NULL, &az), MF_ERR_USAGE_NULL);
    mf_certs_cleanup(&chain);
}

/* ---- handshakes ------------------------------------------------------------------ */

static void test_mf_tls_exact_id_right_peer_ok(void **state)
{
    (void)state;
    struct mf_authorizer saz = want_id("spiffe://example.org/a");
    struct mf_authorizer caz = want_id("spiffe://example.org/server");
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, NULL, 0, &saz);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.a, NULL, 0, &caz);
    struct outcome o;
    run_pair(s, c, &o);
    assert_int_equal(o.srv_err, MF_OK);
    assert_int_equal(o.cli_err, MF_OK);
    assert_string_equal(o.srv_peer, "spiffe://example.org/a");
    assert_string_equal(o.cli_peer, "spiffe://example.org/server");
    assert_string_equal(o.srv_got, "ping");
    assert_string_equal(o.cli_got, "pong");
    mf_tls_config_free(s);
    mf_tls_config_free(c);
}

static void test_mf_tls_exact_id_wrong_peer_refused(void **state)
{
    (void)state;
    struct mf_authorizer saz = want_id("spiffe://example.org/a");
    struct mf_authorizer caz = want_id("spiffe://example.org/server");
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, NULL, 0, &saz);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.b, NULL, 0, &caz);
    struct outcome o;
    run_pair(s, c, &o);
    assert_int_equal(o.srv_err, MF_ERR_POLICY_DENIED);
    assert_string_equal(o.srv_detail, "refused peer spiffe://example.org/b: not authorized "
                                      "(want spiffe://example.org/a)");
    assert_string_equal(o.srv_got, ""); /* nothing was read from the refused peer */
    /* TLS 1.3: the client finishes first and learns of the refusal on read */
    assert_int_equal(o.cli_err, MF_OK);
    assert_int_equal(o.cli_read_err, MF_ERR_AUTH);
    /* its chain was fine, only its ID was refused: the alert says so, and
     * does not blame an unknown CA */
    assert_non_null(strstr(o.cli_detail_read, "bad_certificate"));
    assert_string_equal(o.cli_got, "");
    mf_tls_config_free(s);
    mf_tls_config_free(c);
}

static void test_mf_tls_refused_client_write_reports_alert(void **state)
{
    (void)state;
    struct mf_authorizer saz = want_id("spiffe://example.org/a");
    struct mf_authorizer any;
    mf_authorize_any(&any);
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, NULL, 0, &saz);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.b, NULL, 0, &any);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct acc_run acc = {.cfg = s, .fd = sv[0]};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, accept_main, &acc), 0);
    struct mf_tls_conn *conn = NULL;
    ASSERT_OK(mf_tls_connect(c, sv[1], T_MS, &conn));
    pthread_join(t, NULL); /* the server has refused us and closed */
    assert_int_equal(acc.err, MF_ERR_POLICY_DENIED);
    /* writing first still tells a refusal from a plain disconnect */
    ASSERT_ERR(mf_tls_conn_write(conn, "ping", 4, T_MS), MF_ERR_AUTH);
    mf_tls_conn_close(conn);
    mf_tls_config_free(s);
    mf_tls_config_free(c);
}

static void test_mf_tls_client_refuses_unexpected_server(void **state)
{
    (void)state;
    struct mf_authorizer saz;
    mf_authorize_any(&saz);
    struct mf_authorizer caz = want_id("spiffe://example.org/db");
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, NULL, 0, &saz);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.a, NULL, 0, &caz);
    struct outcome o;
    run_pair(s, c, &o);
    assert_int_equal(o.cli_err, MF_ERR_POLICY_DENIED);
    assert_string_equal(o.cli_detail, "refused peer spiffe://example.org/server: not authorized "
                                      "(want spiffe://example.org/db)");
    /* the client stopped before sending its certificate, and its alert
     * says that the server's certificate, not its CA, was the problem */
    assert_int_equal(o.srv_err, MF_ERR_AUTH);
    assert_non_null(strstr(o.srv_detail, "TLS alert bad_certificate"));
    assert_string_equal(o.srv_peer, "");
    mf_tls_config_free(s);
    mf_tls_config_free(c);
}

static void test_mf_tls_member_of_ok_and_refused(void **state)
{
    (void)state;
    struct mf_authorizer in_td, other_td, caz;
    ASSERT_OK(mf_authorize_member_of("example.org", &in_td));
    ASSERT_OK(mf_authorize_member_of("other.org", &other_td));
    ASSERT_OK(mf_authorize_member_of("spiffe://example.org", &caz));
    struct mf_tls_config *s1 = config(MF_TLS_SERVER, &F.server, NULL, 0, &in_td);
    struct mf_tls_config *s2 = config(MF_TLS_SERVER, &F.server, NULL, 0, &other_td);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.b, NULL, 0, &caz);
    struct outcome o;
    run_pair(s1, c, &o);
    assert_int_equal(o.srv_err, MF_OK);
    assert_string_equal(o.srv_peer, "spiffe://example.org/b");
    assert_string_equal(o.cli_got, "pong");
    run_pair(s2, c, &o);
    assert_int_equal(o.srv_err, MF_ERR_POLICY_DENIED);
    assert_string_equal(o.srv_detail, "refused peer spiffe://example.org/b: not authorized "
                                      "(want a member of trust domain other.org)");
    mf_tls_config_free(s1);
    mf_tls_config_free(s2);
    mf_tls_config_free(c);
}

static void test_mf_tls_one_of_and_func_ok(void **state)
{
    (void)state;
    struct mf_spiffe_id ids[2];
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/c", &ids[0]));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/b", &ids[1]));
    struct mf_authorizer one, fn, caz;
    int calls = 0;
    ASSERT_OK(mf_authorize_one_of(ids, 2, &one));
    ASSERT_OK(mf_authorize_func(only_b, &calls, &fn));
    mf_authorize_any(&caz);
    struct mf_tls_config *s1 = config(MF_TLS_SERVER, &F.server, NULL, 0, &one);
    memset(ids, 0, sizeof(ids)); /* the configuration keeps its own copy */
    struct mf_tls_config *s2 = config(MF_TLS_SERVER, &F.server, NULL, 0, &fn);
    struct mf_tls_config *cb = config(MF_TLS_CLIENT, &F.b, NULL, 0, &caz);
    struct mf_tls_config *ca = config(MF_TLS_CLIENT, &F.a, NULL, 0, &caz);
    struct outcome o;
    run_pair(s1, cb, &o);
    assert_int_equal(o.srv_err, MF_OK);
    run_pair(s1, ca, &o);
    assert_int_equal(o.srv_err, MF_ERR_POLICY_DENIED);
    run_pair(s2, cb, &o);
    assert_int_equal(o.srv_err, MF_OK);
    run_pair(s2, ca, &o);
    assert_int_equal(o.srv_err, MF_ERR_POLICY_DENIED);
    assert_string_equal(o.srv_detail, "refused peer spiffe://example.org/a: only /b may call, "
                                      "not spiffe://example.org/a");
    assert_int_equal(calls, 2);
    mf_tls_config_free(s1);
    mf_tls_config_free(s2);
    mf_tls_config_free(cb);
    mf_tls_config_free(ca);
}

static void test_mf_tls_other_trust_domain_refused(void **state)
{
    (void)state;
    struct mf_authorizer any;
    mf_authorize_any(&any);
    /* the client trusts both domains and chains to its own CA; the server
     * holds no bundle for other.org */
    const struct tdca both[] = {{"other.org", &F.other}, {"example.org", &F.ca}};
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, NULL, 0, &any);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.x, both, 2, &any);
    struct outcome o;
    run_pair(s, c, &o);
    assert_int_equal(o.srv_err, MF_ERR_AUTH_UNTRUSTED);
    assert_non_null(strstr(o.srv_detail, "refused peer spiffe://other.org/x: "));
    assert_non_null(strstr(o.srv_detail, "other.org"));
    assert_int_equal(o.cli_read_err, MF_ERR_AUTH);
    /* a CA the server does not know: that is what the alert says */
    assert_non_null(strstr(o.cli_detail_read, "TLS alert unknown_ca"));
    mf_tls_config_free(s);
    mf_tls_config_free(c);
}

static void test_mf_tls_pooled_trust_refused(void **state)
{
    (void)state;
    struct mf_authorizer any;
    mf_authorize_any(&any);
    /* B23: example.org/evil chains to a CA the server does trust, but only
     * for other.org. Pooling the bundles would accept it. */
    const struct tdca srv_tds[] = {{"example.org", &F.ca}, {"other.org", &F.rogue}};
    const struct tdca cli_tds[] = {{"example.org", &F.ca}};
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, srv_tds, 2, &any);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.evil, cli_tds, 1, &any);
    struct outcome o;
    run_pair(s, c, &o);
    assert_int_equal(o.srv_err, MF_ERR_AUTH_UNTRUSTED);
    assert_non_null(strstr(o.srv_detail, "refused peer spiffe://example.org/evil: "));
    assert_string_equal(o.srv_got, "");
    mf_tls_config_free(s);
    mf_tls_config_free(c);
}

static void test_mf_tls_expired_peer_refused(void **state)
{
    (void)state;
    struct mf_authorizer any;
    mf_authorize_any(&any);
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, NULL, 0, &any);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.old_a, NULL, 0, &any);
    struct outcome o;
    run_pair(s, c, &o);
    assert_int_equal(o.srv_err, MF_ERR_AUTH_EXPIRED);
    assert_non_null(strstr(o.srv_detail, "refused peer spiffe://example.org/a: "));
    assert_non_null(strstr(o.cli_detail_read, "TLS alert certificate_expired"));
    /* and the other way round: a client refuses an expired server */
    struct mf_tls_config *s2 = config(MF_TLS_SERVER, &F.old_a, NULL, 0, &any);
    struct mf_tls_config *c2 = config(MF_TLS_CLIENT, &F.b, NULL, 0, &any);
    run_pair(s2, c2, &o);
    assert_int_equal(o.cli_err, MF_ERR_AUTH_EXPIRED);
    mf_tls_config_free(s);
    mf_tls_config_free(c);
    mf_tls_config_free(s2);
    mf_tls_config_free(c2);
}

static void test_mf_tls_reload_presents_new_leaf(void **state)
{
    (void)state;
    struct mf_authorizer any;
    mf_authorize_any(&any);
    char want1[MF_SERIAL_HEX_MAX], want2[MF_SERIAL_HEX_MAX], got[MF_SERIAL_HEX_MAX];
    mf_cert_serial_hex(F.server.cert, want1);
    mf_cert_serial_hex(F.server2.cert, want2);
    assert_string_not_equal(want1, want2);
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, NULL, 0, &any);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.a, NULL, 0, &any);

    /* a first connection, kept open across the rotation */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct acc_run acc = {.cfg = s, .fd = sv[0]};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, accept_main, &acc), 0);
    struct mf_tls_conn *cli1 = NULL;
    ASSERT_OK(mf_tls_connect(c, sv[1], T_MS, &cli1));
    pthread_join(t, NULL);
    assert_int_equal(acc.err, MF_OK);
    struct mf_tls_conn *srv1 = acc.conn;
    mf_cert_serial_hex(mf_tls_conn_peer_chain(cli1)->v[0], got);
    assert_string_equal(got, want1);
    mf_cert_serial_hex(mf_tls_conn_svid(srv1)->chain.v[0], got);
    assert_string_equal(got, want1);

    /* rotation: the server's snapshot is swapped */
    struct mf_x509_context *x2 = snap(&F.server2, NULL, 0);
    ASSERT_OK(mf_tls_config_set_context(s, x2));
    mf_x509_context_free(x2);

    struct outcome o;
    run_pair(s, c, &o);
    assert_int_equal(o.srv_err, MF_OK);
    assert_int_equal(o.cli_err, MF_OK);
    assert_string_equal(o.cli_peer_serial, want2);
    assert_string_equal(o.cli_got, "pong");
    run_pair(s, c, &o); /* the new context is reused, not rebuilt */
    assert_string_equal(o.cli_peer_serial, want2);

    /* the connection made before the rotation is unaffected */
    char buf[16];
    size_t n = 0;
    ASSERT_OK(mf_tls_conn_write(cli1, "still", 5, T_MS));
    ASSERT_OK(mf_tls_conn_read(srv1, buf, sizeof(buf), T_MS, &n));
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "still", 5);
    mf_cert_serial_hex(mf_tls_conn_svid(srv1)->chain.v[0], got);
    assert_string_equal(got, want1);
    mf_tls_conn_close(cli1);
    ASSERT_ERR(mf_tls_conn_read(srv1, buf, sizeof(buf), T_MS, &n), MF_ERR_IO_EOF);
    mf_tls_conn_close(srv1);
    mf_tls_config_free(s);
    mf_tls_config_free(c);
}

/* A server driven through the low-level API: the caller makes the WOLFSSL
 * from the context and asks for the verified peer afterwards. */
struct raw_srv {
    struct mf_tls_ctx *t;
    int fd;
    int ret;
    mf_res peer;
    struct mf_spiffe_id id;
};

static void *raw_accept_main(void *arg)
{
    struct raw_srv *r = arg;
    WOLFSSL *ssl = wolfSSL_new(mf_tls_ctx_wolfssl(r->t));
    assert_non_null(ssl);
    assert_int_equal(wolfSSL_set_fd(ssl, r->fd), WOLFSSL_SUCCESS);
    r->ret = wolfSSL_accept(ssl);
    if (r->ret == WOLFSSL_SUCCESS) {
        r->peer = mf_tls_ctx_peer_id(r->t, ssl, &r->id);
        char b[8];
        (void)wolfSSL_write(ssl, "hi", 2);
        (void)wolfSSL_read(ssl, b, sizeof(b));
    }
    wolfSSL_free(ssl);
    close(r->fd);
    return NULL;
}

static void test_mf_tls_ctx_lowlevel_peer_id_ok(void **state)
{
    (void)state;
    struct mf_authorizer saz = want_id("spiffe://example.org/a");
    struct mf_authorizer any;
    mf_authorize_any(&any);
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, NULL, 0, &saz);
    struct mf_tls_config *ca = config(MF_TLS_CLIENT, &F.a, NULL, 0, &any);
    struct mf_tls_config *cb = config(MF_TLS_CLIENT, &F.b, NULL, 0, &any);
    struct mf_tls_ctx *t = NULL;
    ASSERT_OK(mf_tls_config_acquire(s, &t));
    char serial[MF_SERIAL_HEX_MAX], want[MF_SERIAL_HEX_MAX];
    mf_cert_serial_hex(mf_tls_ctx_svid(t)->chain.v[0], serial);
    mf_cert_serial_hex(F.server.cert, want);
    assert_string_equal(serial, want);
    assert_non_null(mf_tls_ctx_x509(t));

    for (int round = 0; round < 2; round++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct raw_srv r = {.t = t, .fd = sv[0]};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, raw_accept_main, &r), 0);
        struct mf_tls_conn *c = NULL;
        ASSERT_OK(mf_tls_connect(round == 0 ? ca : cb, sv[1], T_MS, &c));
        char b[8];
        size_t n = 0;
        mf_res rr = mf_tls_conn_read(c, b, sizeof(b), T_MS, &n);
        mf_tls_conn_close(c);
        pthread_join(th, NULL);
        if (round == 0) {
            ASSERT_OK(rr);
            assert_int_equal(r.ret, WOLFSSL_SUCCESS);
            ASSERT_OK(r.peer);
            assert_string_equal(r.id.str, "spiffe://example.org/a");
        } else {
            /* the callback refused /b inside the handshake */
            assert_int_not_equal(r.ret, WOLFSSL_SUCCESS);
            ASSERT_ERR(rr, MF_ERR_AUTH);
        }
    }
    /* the context outlives its configuration */
    mf_tls_config_free(s);
    assert_non_null(mf_tls_ctx_wolfssl(t));
    mf_tls_ctx_release(t);
    mf_tls_config_free(ca);
    mf_tls_config_free(cb);
}

static void test_mf_tls_no_client_cert_refused(void **state)
{
    (void)state;
    struct mf_authorizer any;
    mf_authorize_any(&any);
    struct mf_tls_config *s = config(MF_TLS_SERVER, &F.server, NULL, 0, &any);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct acc_run acc = {.cfg = s, .fd = sv[0]};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, accept_main, &acc), 0);
    /* a TLS 1.3 client with no certificate and no checks of its own */
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    assert_non_null(ctx);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    WOLFSSL *ssl = wolfSSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(wolfSSL_set_fd(ssl, sv[1]), WOLFSSL_SUCCESS);
    int hr = wolfSSL_connect(ssl);
    char b[8];
    int rr = hr == WOLFSSL_SUCCESS ? wolfSSL_read(ssl, b, sizeof(b)) : -1;
    pthread_join(t, NULL);
    assert_true(rr <= 0);
    assert_int_equal(acc.err, MF_ERR_AUTH_MISSING);
    assert_null(acc.conn);
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    close(sv[1]);
    mf_tls_config_free(s);
}

static void test_mf_tls_misuse_refused(void **state)
{
    (void)state;
    struct mf_authorizer any;
    mf_authorize_any(&any);
    struct mf_tls_config *c = config(MF_TLS_CLIENT, &F.a, NULL, 0, &any);
    struct mf_tls_conn *conn = NULL;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    /* a client configuration cannot accept; the socket is closed anyway */
    ASSERT_ERR(mf_tls_accept(c, sv[0], T_MS, &conn), MF_ERR_USAGE_ARG);
    assert_null(conn);
    char b;
    assert_int_equal(recv(sv[1], &b, 1, 0), 0); /* the peer sees the close */
    close(sv[1]);
    ASSERT_ERR(mf_tls_connect(c, -1, T_MS, &conn), MF_ERR_USAGE_ARG);

    /* a snapshot without an SVID cannot make a context */
    struct mf_x509_context *empty = NULL;
    struct mf_tls_config *bad = NULL;
    ASSERT_OK(mf_x509_context_new(&empty));
    ASSERT_ERR(mf_tls_config_new_fixed(MF_TLS_SERVER, empty, &any, &bad), MF_ERR_STATE);
    assert_null(bad);
    mf_x509_context_free(empty);
    mf_tls_config_free(c);
    mf_tls_config_free(NULL);
    mf_tls_conn_close(NULL);
    mf_tls_ctx_release(NULL);
}

static void test_mf_tls_source_config_before_first_update(void **state)
{
    (void)state;
    char dir[64];
    char path[96];
    assert_int_equal(mft_tmpdir(dir, sizeof(dir), "tls"), 0);
    snprintf(path, sizeof(path), "%s/none.sock", dir);
    struct mf_x509_source *src = NULL;
    struct mf_x509_source_opts so = {.backoff_min_ms = 20, .backoff_max_ms = 40};
    ASSERT_OK(mf_x509_source_new(path, &so, &src));
    struct mf_authorizer any;
    mf_authorize_any(&any);
    struct mf_tls_config *cfg = NULL;
    ASSERT_OK(mf_tls_config_new(MF_TLS_SERVER, src, &any, &cfg));
    struct mf_tls_ctx *t = NULL;
    ASSERT_ERR(mf_tls_config_acquire(cfg, &t), MF_ERR_STATE);
    assert_null(t);
    struct mf_x509_context *x = snap(&F.server, NULL, 0);
    ASSERT_ERR(mf_tls_config_set_context(cfg, x), MF_ERR_STATE);
    mf_x509_context_free(x);
    mf_tls_config_free(cfg);
    mf_x509_source_free(src);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    mf_x509_global_init();
    int64_t now = mf_now();
    mft_make_ca(&F.ca, "spiffe://example.org", now - 7200);
    mft_make_ca(&F.other, "spiffe://other.org", now - 7200);
    mft_make_ca(&F.rogue, "spiffe://example.org", now - 7200);
    mft_make_leaf(&F.server, &F.ca, "spiffe://example.org/server", now, 3600);
    mft_make_leaf(&F.server2, &F.ca, "spiffe://example.org/server", now, 3600);
    mft_make_leaf(&F.a, &F.ca, "spiffe://example.org/a", now, 3600);
    mft_make_leaf(&F.b, &F.ca, "spiffe://example.org/b", now, 3600);
    mft_make_leaf(&F.old_a, &F.ca, "spiffe://example.org/a", now - 7000, 600);
    mft_make_leaf(&F.x, &F.other, "spiffe://other.org/x", now, 3600);
    mft_make_leaf(&F.evil, &F.rogue, "spiffe://example.org/evil", now, 3600);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_authorize_id_exact_only),
        cmocka_unit_test(test_mf_authorize_member_of_no_suffix_match),
        cmocka_unit_test(test_mf_authorize_one_of_and_any),
        cmocka_unit_test(test_mf_authorize_func_reason_kept),
        cmocka_unit_test(test_mf_tls_exact_id_right_peer_ok),
        cmocka_unit_test(test_mf_tls_exact_id_wrong_peer_refused),
        cmocka_unit_test(test_mf_tls_refused_client_write_reports_alert),
        cmocka_unit_test(test_mf_tls_client_refuses_unexpected_server),
        cmocka_unit_test(test_mf_tls_member_of_ok_and_refused),
        cmocka_unit_test(test_mf_tls_one_of_and_func_ok),
        cmocka_unit_test(test_mf_tls_other_trust_domain_refused),
        cmocka_unit_test(test_mf_tls_pooled_trust_refused),
        cmocka_unit_test(test_mf_tls_expired_peer_refused),
        cmocka_unit_test(test_mf_tls_reload_presents_new_leaf),
        cmocka_unit_test(test_mf_tls_ctx_lowlevel_peer_id_ok),
        cmocka_unit_test(test_mf_tls_no_client_cert_refused),
        cmocka_unit_test(test_mf_tls_misuse_refused),
        cmocka_unit_test(test_mf_tls_source_config_before_first_update),
    };
    int rc = cmocka_run_group_tests_name("tlsconfig", tests, NULL, NULL);
    mft_free_ident(&F.ca);
    mft_free_ident(&F.other);
    mft_free_ident(&F.rogue);
    mft_free_ident(&F.server);
    mft_free_ident(&F.server2);
    mft_free_ident(&F.a);
    mft_free_ident(&F.b);
    mft_free_ident(&F.old_a);
    mft_free_ident(&F.x);
    mft_free_ident(&F.evil);
    return rc;
}
