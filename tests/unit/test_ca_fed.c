/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for federation on the CA side (ca_fed.h): relationship
 * validation, endpoint URLs, bundle files, the refresh interval, the
 * sequence rule, the registry's federation tables and the agents' view.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "ca/ca_fed.h"
#include "ca/ca_policy.h"
#include "mf_test.h"

#define OWN "a.test"

static struct ca_federation fed(const char *td, const char *url, const char *profile,
                                const char *eid)
{
    struct ca_federation f;
    memset(&f, 0, sizeof(f));
    snprintf(f.td, sizeof(f.td), "%s", td);
    snprintf(f.url, sizeof(f.url), "%s", url);
    snprintf(f.profile, sizeof(f.profile), "%s", profile);
    snprintf(f.endpoint_id, sizeof(f.endpoint_id), "%s", eid);
    return f;
}

static void test_ca_fed_check_valid_ok(void **state)
{
    (void)state;
    struct ca_federation f = fed("spiffe://b.test", "https://b.example:8443/bundle", "https_spiffe",
                                 "spiffe://b.test/ep");
    ASSERT_OK(ca_fed_check(OWN, &f));
    assert_string_equal(f.td, "b.test"); /* kept bare */
    f = fed("c.test", "https://127.0.0.1/", "https_web", "");
    ASSERT_OK(ca_fed_check(OWN, &f));
}

static void test_ca_fed_check_bad_refused(void **state)
{
    (void)state;
    struct {
        const char *td, *url, *profile, *eid;
    } bad[] = {
        {"a.test", "https://x/", "https_web", ""},                   /* our own */
        {"spiffe://a.test", "https://x/", "https_web", ""},          /* our own, ID form */
        {"B.test", "https://x/", "https_web", ""},                   /* uppercase */
        {"b.test/x", "https://x/", "https_web", ""},                 /* not a name */
        {"", "https://x/", "https_web", ""},                         /* empty */
        {"b.test", "http://x/", "https_web", ""},                    /* not https */
        {"b.test", "https://u@x/", "https_web", ""},                 /* userinfo (F5) */
        {"b.test", "https:///path", "https_web", ""},                /* no host */
        {"b.test", "https://x:99999999/", "https_web", ""},          /* bad port */
        {"b.test", "https://x:/", "https_web", ""},                  /* empty port */
        {"b.test", "https://x/a b", "https_web", ""},                /* space */
        {"b.test", "https://x/#f", "https_web", ""},                 /* fragment */
        {"b.test", "", "https_web", ""},                             /* no URL */
        {"b.test", "https://x/", "https_spiffe", ""},                /* no endpoint ID */
        {"b.test", "https://x/", "https_spiffe", "spiffe://B/x"},    /* bad endpoint ID */
        {"b.test", "https://x/", "https_web", "spiffe://b.test/ep"}, /* ID with web */
        {"b.test", "https://x/", "spiffe", "spiffe://b.test/ep"},    /* unknown profile */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ca_federation f = fed(bad[i].td, bad[i].url, bad[i].profile, bad[i].eid);
        mf_res r = ca_fed_check(OWN, &f);
        if (r.err != MF_ERR_USAGE_ARG) {
            fail_msg("case %zu (%s %s %s) not refused: %s", i, bad[i].td, bad[i].url,
                     bad[i].profile, mf_err_name(r.err));
        }
    }
}

static void test_ca_fed_split_url_forms(void **state)
{
    (void)state;
    char hp[300], path[512];
    ASSERT_OK(ca_fed_split_url("https://b.example", hp, sizeof(hp), path, sizeof(path)));
    assert_string_equal(hp, "b.example:443");
    assert_string_equal(path, "/");
    ASSERT_OK(
        ca_fed_split_url("https://127.0.0.1:8443/x/y?z=1", hp, sizeof(hp), path, sizeof(path)));
    assert_string_equal(hp, "127.0.0.1:8443");
    assert_string_equal(path, "/x/y?z=1");
    ASSERT_OK(ca_fed_split_url("https://[::1]:9/", hp, sizeof(hp), path, sizeof(path)));
    assert_string_equal(hp, "[::1]:9");
    ASSERT_OK(ca_fed_split_url("https://[::1]/", hp, sizeof(hp), path, sizeof(path)));
    assert_string_equal(hp, "[::1]:443");
    /* capacity: the host must fit */
    char small[8];
    ASSERT_ERR(ca_fed_split_url("https://long.example/", small, sizeof(small), path, sizeof(path)),
               MF_ERR_USAGE_ARG);
}

static void test_ca_fed_parse_bundle_forms(void **state)
{
    (void)state;
    struct mft_ident ca;
    struct mf_bundle *b = NULL, *back = NULL;
    struct mf_buf pem, jwks;
    mf_buf_init(&pem, MF_MAX_BUNDLE, 0);
    mf_buf_init(&jwks, MF_MAX_BUNDLE, 0);
    mft_make_ca(&ca, "spiffe://b.test", mf_now());
    ASSERT_OK(mf_bundle_new("b.test", &b));
    ASSERT_OK(mf_bundle_add_x509(b, ca.cert));
    b->sequence = 7;
    ASSERT_OK(mf_bundle_to_pem(b, &pem));
    ASSERT_OK(mf_bundle_to_jwks(b, &jwks));

    ASSERT_OK(ca_fed_parse_bundle("b.test", mf_buf_cstr(&pem), pem.len, &back));
    assert_int_equal(back->x509.n, 1);
    assert_true(mf_bundle_same_keys(b, back));
    mf_bundle_free(back);
    back = NULL;
    /* JWKS, with leading white space; the sequence is kept */
    struct mf_buf ws;
    mf_buf_init(&ws, MF_MAX_BUNDLE, 0);
    ASSERT_OK(mf_buf_append_str(&ws, "\n  "));
    ASSERT_OK(mf_buf_append(&ws, jwks.data, jwks.len));
    ASSERT_OK(ca_fed_parse_bundle("b.test", mf_buf_cstr(&ws), ws.len, &back));
    assert_int_equal(back->sequence, 7);
    mf_bundle_free(back);
    back = NULL;

    ASSERT_ERR(ca_fed_parse_bundle("b.test", "", 0, &back), MF_ERR_PROTO);
    ASSERT_ERR(ca_fed_parse_bundle("b.test", "  \n", 3, &back), MF_ERR_PROTO);
    ASSERT_ERR(ca_fed_parse_bundle("b.test", "junk", 4, &back), MF_ERR_PROTO);
    ASSERT_ERR(ca_fed_parse_bundle("b.test", "{\"keys\":[]}", 11, &back), MF_ERR_PROTO);
    ASSERT_ERR(ca_fed_parse_bundle("b.test", "{\"keys\":[", 9, &back), MF_ERR_PROTO);
    ASSERT_ERR(ca_fed_parse_bundle("b.test", "{\"a\":1,\"a\":2,\"keys\":[]}", 24, &back),
               MF_ERR_PROTO);
    char nul[] = "{\"keys\":[]}\0x";
    ASSERT_ERR(ca_fed_parse_bundle("b.test", nul, sizeof(nul) - 1, &back), MF_ERR_PROTO);
    assert_null(back);

    mf_buf_cleanup(&ws);
    mf_buf_cleanup(&pem);
    mf_buf_cleanup(&jwks);
    mf_bundle_free(b);
    mft_free_ident(&ca);
}

static void test_ca_fed_interval_bounds(void **state)
{
    (void)state;
    assert_int_equal(ca_fed_interval(0, 5), CA_FED_DEFAULT_REFRESH); /* no hint: 5 min */
    assert_int_equal(ca_fed_interval(60, 5), 60);
    assert_int_equal(ca_fed_interval(1, 5), 5); /* the floor */
    assert_int_equal(ca_fed_interval(1, 0), 1); /* a floor below 1 s is 1 s */
    assert_int_equal(ca_fed_interval(2, 1), 2);
    assert_int_equal(ca_fed_interval(86400, 5), CA_FED_MAX_REFRESH);
    assert_int_equal(ca_fed_interval(INT64_MAX, 5), CA_FED_MAX_REFRESH);
    assert_int_equal(ca_fed_interval(-3, 5), CA_FED_DEFAULT_REFRESH);
}

static void test_ca_fed_accept_sequence(void **state)
{
    (void)state;
    struct mft_ident k1, k2;
    struct mf_bundle *cur = NULL, *same = NULL, *next = NULL, *old = NULL;
    bool store = false;
    int64_t now = mf_now();
    mft_make_ca(&k1, "spiffe://b.test", now);
    mft_make_ca(&k2, "spiffe://b.test", now);
    ASSERT_OK(mf_bundle_new("b.test", &cur));
    ASSERT_OK(mf_bundle_add_x509(cur, k1.cert));
    cur->sequence = 5;
    ASSERT_OK(mf_bundle_copy(cur, &same));
    ASSERT_OK(mf_bundle_copy(cur, &next));
    ASSERT_OK(mf_bundle_add_x509(next, k2.cert));
    next->sequence = 6;
    ASSERT_OK(mf_bundle_copy(cur, &old));
    old->sequence = 4;

    ASSERT_OK(ca_fed_accept(NULL, cur, &store));
    assert_true(store); /* nothing stored yet */
    ASSERT_OK(ca_fed_accept(cur, same, &store));
    assert_false(store); /* unchanged: no write, no wake-up */
    ASSERT_OK(ca_fed_accept(cur, next, &store));
    assert_true(store);                                                 /* the peer's next key */
    ASSERT_ERR(ca_fed_accept(next, old, &store), MF_ERR_POLICY_DENIED); /* never backwards */
    ASSERT_ERR(ca_fed_accept(next, cur, &store), MF_ERR_POLICY_DENIED);
    /* a peer that sets no sequence: the most recent fetch wins */
    old->sequence = 0;
    ASSERT_OK(ca_fed_accept(next, old, &store));
    assert_true(store);
    /* a bootstrap without a sequence (PEM) never blocks the first fetch */
    old->sequence = 0;
    ASSERT_OK(ca_fed_accept(old, next, &store));
    assert_true(store);

    mf_bundle_free(cur);
    mf_bundle_free(same);
    mf_bundle_free(next);
    mf_bundle_free(old);
    mft_free_ident(&k1);
    mft_free_ident(&k2);
}

/* The registry's federation tables, entries' federates_with and the view
 * an agent receives. */
static void test_ca_fed_store_and_view(void **state)
{
    (void)state;
    char dir[64];
    struct ca_store *st = NULL;
    assert_int_equal(mft_tmpdir(dir, sizeof(dir), "ca-fed"), 0);
    ASSERT_OK(ca_store_open(dir, &st));

    struct ca_federation f = fed("b.test", "https://b/", "https_spiffe", "spiffe://b.test/ep");
    f.updated_at = 100;
    ASSERT_OK(ca_store_fed_put(st, &f, true));
    ASSERT_ERR(ca_store_fed_put(st, &f, true), MF_ERR_POLICY_DUPLICATE);
    struct ca_federation g = fed("c.test", "https://c/", "https_web", "");
    ASSERT_ERR(ca_store_fed_put(st, &g, false), MF_ERR_POLICY_NOT_FOUND);
    snprintf(f.url, sizeof(f.url), "%s", "https://b2/");
    ASSERT_OK(ca_store_fed_put(st, &f, false));
    struct ca_federation got;
    ASSERT_OK(ca_store_fed_get(st, "b.test", &got));
    assert_string_equal(got.url, "https://b2/");
    assert_string_equal(got.endpoint_id, "spiffe://b.test/ep");

    struct mft_ident ca;
    struct mf_bundle *b = NULL;
    struct mf_buf jwks;
    mf_buf_init(&jwks, MF_MAX_BUNDLE, 0);
    mft_make_ca(&ca, "spiffe://b.test", mf_now());
    ASSERT_OK(mf_bundle_new("b.test", &b));
    ASSERT_OK(mf_bundle_add_x509(b, ca.cert));
    b->sequence = 3;
    ASSERT_OK(mf_bundle_to_jwks(b, &jwks));
    struct ca_foreign_bundle fb = {.jwks = (char *)(uintptr_t)mf_buf_cstr(&jwks), .sequence = 3};
    snprintf(fb.td, sizeof(fb.td), "%s", "b.test");
    snprintf(fb.source, sizeof(fb.source), "%s", "endpoint");
    ASSERT_OK(ca_store_fbundle_put(st, &fb));
    ASSERT_OK(ca_store_fbundle_put(st, &fb)); /* replaced, not duplicated */
    struct ca_foreign_bundle *v = NULL;
    size_t n = 0;
    ASSERT_OK(ca_store_fbundle_list(st, NULL, &v, &n));
    assert_int_equal(n, 1);
    assert_int_equal(v[0].sequence, 3);
    ca_fbundles_free(v, n);
    ASSERT_ERR(ca_store_fbundle_list(st, "x.test", &v, &n), MF_ERR_POLICY_NOT_FOUND);

    /* an entry federating with b.test and one with nothing */
    struct ca_entry e[2];
    memset(e, 0, sizeof(e));
    const char *fw[] = {"spiffe://b.test", "spiffe://none.test"};
    for (size_t i = 0; i < 2; i++) {
        e[i].spiffe_id = strdup(i == 0 ? "spiffe://a.test/web" : "spiffe://a.test/plain");
        e[i].parent_id = strdup("spiffe://a.test/mayfly/agent/n");
        e[i].selectors = calloc(1, sizeof(char *));
        e[i].selectors[0] = strdup(i == 0 ? "unix:uid:0" : "unix:uid:1");
        e[i].n_selectors = 1;
    }
    ASSERT_OK(mf_strv_dup((char *const *)(uintptr_t)fw, 2, &e[0].federates_with));
    e[0].n_fed = 2;
    ASSERT_OK(ca_policy_entry_check(OWN, 3600, &e[0]));
    ASSERT_OK(ca_store_entry_create(st, &e[0]));
    ASSERT_OK(ca_store_entry_create(st, &e[1]));
    struct ca_entry back;
    ASSERT_OK(ca_store_entry_get(st, e[0].id, &back));
    assert_int_equal(back.n_fed, 2);
    assert_string_equal(back.federates_with[0], "spiffe://b.test");
    ca_entry_cleanup(&back);

    json_t *view = json_object();
    ASSERT_OK(ca_fed_view(st, &e[1], 1, view));
    assert_null(json_object_get(view, "federated_bundles")); /* no federation: nothing */
    ASSERT_OK(ca_fed_view(st, e, 2, view));
    const json_t *fbs = json_object_get(view, "federated_bundles");
    assert_non_null(fbs);
    assert_int_equal(json_object_size(fbs), 1); /* none.test has no bundle yet */
    assert_non_null(json_object_get(fbs, "spiffe://b.test"));
    json_decref(view);

    /* deleting the relationship drops its bundle (F14) */
    ASSERT_OK(ca_store_fed_delete(st, "b.test"));
    ASSERT_ERR(ca_store_fed_delete(st, "b.test"), MF_ERR_POLICY_NOT_FOUND);
    ASSERT_ERR(ca_store_fbundle_list(st, "b.test", &v, &n), MF_ERR_POLICY_NOT_FOUND);

    ca_entry_cleanup(&e[0]);
    ca_entry_cleanup(&e[1]);
    mf_buf_cleanup(&jwks);
    mf_bundle_free(b);
    mft_free_ident(&ca);
    ca_store_close(st);
    mft_rmdir(dir);
}

static void test_ca_policy_federates_with_canonical(void **state)
{
    (void)state;
    struct ca_entry e;
    memset(&e, 0, sizeof(e));
    e.spiffe_id = strdup("spiffe://a.test/web");
    e.parent_id = strdup("spiffe://a.test/mayfly/agent/n");
    e.selectors = calloc(1, sizeof(char *));
    e.selectors[0] = strdup("unix:uid:0");
    e.n_selectors = 1;
    const char *two[] = {"spiffe://z.test", "spiffe://b.test"};
    ASSERT_OK(mf_strv_dup((char *const *)(uintptr_t)two, 2, &e.federates_with));
    e.n_fed = 2;
    ASSERT_OK(ca_policy_entry_check(OWN, 3600, &e));
    assert_string_equal(e.federates_with[0], "spiffe://b.test"); /* sorted */
    const char *bad[] = {"spiffe://a.test", "spiffe://b.test/x", "b.test", "spiffe://B.test"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        free(e.federates_with[0]);
        e.federates_with[0] = strdup(bad[i]);
        ASSERT_ERR(ca_policy_entry_check(OWN, 3600, &e), MF_ERR_USAGE_ARG);
    }
    free(e.federates_with[0]);
    e.federates_with[0] = strdup("spiffe://z.test");
    ASSERT_ERR(ca_policy_entry_check(OWN, 3600, &e), MF_ERR_USAGE_ARG); /* twice */
    ca_entry_cleanup(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_fed_check_valid_ok),
        cmocka_unit_test(test_ca_fed_check_bad_refused),
        cmocka_unit_test(test_ca_fed_split_url_forms),
        cmocka_unit_test(test_ca_fed_parse_bundle_forms),
        cmocka_unit_test(test_ca_fed_interval_bounds),
        cmocka_unit_test(test_ca_fed_accept_sequence),
        cmocka_unit_test(test_ca_fed_store_and_view),
        cmocka_unit_test(test_ca_policy_federates_with_canonical),
    };
    return cmocka_run_group_tests_name("ca_fed", tests, NULL, NULL);
}
