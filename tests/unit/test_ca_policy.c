/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the CA's pure decisions: registry validation
 * (ca_policy_entry_check, ca_entry_from_json) and authorization
 * (agent access, attestation and renewal CSRs, workload signing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/core/mf_json.h"
#include "api/internal/mf_selector.h"
#include "ca/ca_policy.h"
#include "ca/ca_wire.h"
#include "mf_test.h"

#define TD    "example.org"
#define AGENT "spiffe://example.org/mayfly/agent/n1"

/* An entry built from literals (heap copies, as the store makes them). */
static void mk(struct ca_entry *e, const char *id, const char *parent, const char **sels, size_t n)
{
    memset(e, 0, sizeof(*e));
    e->spiffe_id = strdup(id);
    e->parent_id = strdup(parent);
    e->n_selectors = n;
    e->selectors = n ? calloc(n, sizeof(char *)) : NULL;
    for (size_t i = 0; i < n; i++) {
        e->selectors[i] = strdup(sels[i]);
    }
}

static enum mf_err check(const char *id, const char *parent, const char **sels, size_t n,
                         int64_t ttl)
{
    struct ca_entry e;
    mk(&e, id, parent, sels, n);
    e.ttl = ttl;
    mf_res r = ca_policy_entry_check(TD, 14400, &e);
    ca_entry_cleanup(&e);
    return r.err;
}

static void test_ca_policy_entry_check_valid_ok(void **state)
{
    (void)state;
    const char *sels[] = {"unix:uid:1000", "unix:path:/usr/bin/web"};
    struct ca_entry e;
    mk(&e, "spiffe://example.org/web", AGENT, sels, 2);
    ASSERT_OK(ca_policy_entry_check(TD, 14400, &e));
    /* canonical order */
    assert_string_equal(e.selectors[0], "unix:path:/usr/bin/web");
    assert_string_equal(e.selectors[1], "unix:uid:1000");
    ca_entry_cleanup(&e);
}

/* An executable alone can be borrowed by exec (docs/security.md, "exec
 * hand-off"): unix:path and unix:sha256 need a uid or gid selector beside
 * them; a supplementary gid does not count. */
static void test_ca_policy_entry_check_exe_only_refused(void **state)
{
    (void)state;
    static const char *const sha =
        "unix:sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const char *path_only[] = {"unix:path:/usr/bin/web"};
    const char *sha_only[] = {sha};
    const char *both[] = {"unix:path:/usr/bin/web", sha};
    const char *supp[] = {"unix:path:/usr/bin/web", "unix:supplementary_gid:7"};
    assert_int_equal(check("spiffe://example.org/w", AGENT, path_only, 1, 0), MF_ERR_POLICY_DENIED);
    assert_non_null(strstr(mf_err_detail(), "needs a unix:uid"));
    assert_int_equal(check("spiffe://example.org/w", AGENT, sha_only, 1, 0), MF_ERR_POLICY_DENIED);
    assert_int_equal(check("spiffe://example.org/w", AGENT, both, 2, 0), MF_ERR_POLICY_DENIED);
    assert_int_equal(check("spiffe://example.org/w", AGENT, supp, 2, 0), MF_ERR_POLICY_DENIED);
    /* each of uid, user, gid, group makes it acceptable */
    const char *ids[] = {"unix:uid:1000", "unix:user:web", "unix:gid:1000", "unix:group:web"};
    for (size_t i = 0; i < 4; i++) {
        const char *ok_sels[] = {"unix:path:/usr/bin/web", sha, ids[i]};
        assert_int_equal(check("spiffe://example.org/w", AGENT, ok_sels, 3, 0), MF_OK);
    }
    /* no executable selector: no such rule */
    const char *supp_only[] = {"unix:supplementary_gid:7"};
    assert_int_equal(check("spiffe://example.org/w", AGENT, supp_only, 1, 0), MF_OK);
}

static void test_ca_policy_entry_check_bad_ids_refused(void **state)
{
    (void)state;
    const char *sels[] = {"unix:uid:1"};
    assert_int_equal(check("spiffe://example.org/a/../b", AGENT, sels, 1, 0),
                     MF_ERR_ID_DOT_SEGMENT);
    assert_int_equal(check("spiffe://other.org/web", AGENT, sels, 1, 0), MF_ERR_ID_WRONG_TD);
    assert_int_equal(check("spiffe://example.org", AGENT, sels, 1, 0), MF_ERR_ID_NO_PATH);
    assert_int_equal(check("", AGENT, sels, 1, 0), MF_ERR_ID_EMPTY);
    assert_int_equal(check("http://example.org/x", AGENT, sels, 1, 0), MF_ERR_ID_SCHEME);
    assert_int_equal(check("spiffe://example.org/mayfly/server", AGENT, sels, 1, 0),
                     MF_ERR_POLICY_DENIED);
    /* parents must be agent IDs of our trust domain: anything else is a
     * malformed request (400), not a denial */
    assert_int_equal(check("spiffe://example.org/w", "spiffe://example.org/web", sels, 1, 0),
                     MF_ERR_USAGE_ARG);
    assert_int_equal(
        check("spiffe://example.org/w", "spiffe://example.org/mayfly/agent/a/b", sels, 1, 0),
        MF_ERR_USAGE_ARG);
    assert_int_equal(
        check("spiffe://example.org/w", "spiffe://other.org/mayfly/agent/n1", sels, 1, 0),
        MF_ERR_ID_WRONG_TD);
}

static void test_ca_policy_entry_check_selectors_refused(void **state)
{
    (void)state;
    const char *unknown[] = {"k8s:ns:default"};
    const char *badval[] = {"unix:uid:-1"};
    const char *dup[] = {"unix:uid:1", "unix:uid:1"};
    assert_int_equal(check("spiffe://example.org/w", AGENT, NULL, 0, 0), MF_ERR_PROTO_SELECTOR);
    assert_int_equal(check("spiffe://example.org/w", AGENT, unknown, 1, 0), MF_ERR_PROTO_SELECTOR);
    assert_int_equal(check("spiffe://example.org/w", AGENT, badval, 1, 0), MF_ERR_PROTO_SELECTOR);
    assert_int_equal(check("spiffe://example.org/w", AGENT, dup, 2, 0), MF_ERR_PROTO_SELECTOR);
    /* cap and cap + 1 */
    const char *many[MF_SELECTORS_MAX + 1];
    char buf[MF_SELECTORS_MAX + 1][32];
    for (int i = 0; i <= MF_SELECTORS_MAX; i++) {
        snprintf(buf[i], sizeof(buf[i]), "unix:uid:%d", i + 1);
        many[i] = buf[i];
    }
    assert_int_equal(check("spiffe://example.org/w", AGENT, many, MF_SELECTORS_MAX, 0), MF_OK);
    assert_int_equal(check("spiffe://example.org/w", AGENT, many, MF_SELECTORS_MAX + 1, 0),
                     MF_ERR_PROTO_SELECTOR);
}

static void test_ca_policy_entry_check_ttl_dns_hint(void **state)
{
    (void)state;
    const char *sels[] = {"unix:uid:1"};
    assert_int_equal(check("spiffe://example.org/w", AGENT, sels, 1, 14400), MF_OK);
    assert_int_equal(check("spiffe://example.org/w", AGENT, sels, 1, 14401), MF_ERR_USAGE_ARG);
    assert_int_equal(check("spiffe://example.org/w", AGENT, sels, 1, -1), MF_ERR_USAGE_ARG);
    struct ca_entry e;
    mk(&e, "spiffe://example.org/w", AGENT, sels, 1);
    e.dns_names = calloc(1, sizeof(char *));
    e.dns_names[0] = strdup("bad_name.example");
    e.n_dns = 1;
    ASSERT_ERR(ca_policy_entry_check(TD, 14400, &e), MF_ERR_USAGE_ARG);
    free(e.dns_names[0]);
    e.dns_names[0] = strdup("web.example.org");
    ASSERT_OK(ca_policy_entry_check(TD, 14400, &e));
    e.hint = strdup("line\nbreak");
    ASSERT_ERR(ca_policy_entry_check(TD, 14400, &e), MF_ERR_USAGE_ARG);
    ca_entry_cleanup(&e);
}

static void test_ca_entry_from_json_strict(void **state)
{
    (void)state;
    const char *ok = "{\"spiffe_id\":\"spiffe://example.org/w\",\"parent_id\":\"" AGENT
                     "\",\"selectors\":[\"unix:uid:1\"],\"ttl\":60}";
    const char *unknown = "{\"spiffe_id\":\"spiffe://example.org/w\",\"parent_id\":\"" AGENT
                          "\",\"selectors\":[\"unix:uid:1\"],\"extra\":1}";
    const char *wrong_type = "{\"spiffe_id\":\"spiffe://example.org/w\",\"parent_id\":\"" AGENT
                             "\",\"selectors\":\"unix:uid:1\"}";
    const char *dup = "{\"spiffe_id\":\"a\",\"spiffe_id\":\"b\"}";
    const char *nul = "{\"spiffe_id\":\"spiffe://example.org/w\\u0000x\",\"parent_id\":\"" AGENT
                      "\",\"selectors\":[\"unix:uid:1\"]}";
    json_t *j = NULL;
    struct ca_entry e;
    memset(&e, 0, sizeof(e));
    ASSERT_OK(mf_json_parse(ok, strlen(ok), MF_MAX_BODY, &j));
    ASSERT_OK(ca_entry_from_json(j, false, &e, NULL));
    assert_int_equal(e.ttl, 60);
    assert_int_equal(e.n_selectors, 1);
    json_decref(j);
    /* a patch may not change the IDs */
    ASSERT_OK(mf_json_parse(ok, strlen(ok), MF_MAX_BODY, &j));
    assert_false(mf_ok(ca_entry_from_json(j, true, &e, NULL)));
    json_decref(j);
    ca_entry_cleanup(&e);

    ASSERT_OK(mf_json_parse(unknown, strlen(unknown), MF_MAX_BODY, &j));
    assert_false(mf_ok(ca_entry_from_json(j, false, &e, NULL)));
    json_decref(j);
    ca_entry_cleanup(&e);
    ASSERT_OK(mf_json_parse(wrong_type, strlen(wrong_type), MF_MAX_BODY, &j));
    assert_false(mf_ok(ca_entry_from_json(j, false, &e, NULL)));
    json_decref(j);
    ca_entry_cleanup(&e);
    assert_false(mf_ok(mf_json_parse(dup, strlen(dup), MF_MAX_BODY, &j)));
    j = NULL;
    if (mf_ok(mf_json_parse(nul, strlen(nul), MF_MAX_BODY, &j))) {
        assert_false(mf_ok(ca_entry_from_json(j, false, &e, NULL)));
        json_decref(j);
    }
    ca_entry_cleanup(&e);
}

static void test_ca_policy_agent_id_rules(void **state)
{
    (void)state;
    struct mf_spiffe_id id;
    ASSERT_OK(ca_policy_agent_id(TD, AGENT, &id));
    assert_true(ca_policy_is_agent_id(&id, TD));
    assert_false(ca_policy_is_agent_id(&id, "other.org"));
    assert_false(mf_ok(ca_policy_agent_id(TD, "spiffe://example.org/mayfly/agent", &id)));
    assert_false(mf_ok(ca_policy_agent_id(TD, "spiffe://example.org/mayfly/agent/a/b", &id)));
    assert_false(mf_ok(ca_policy_agent_id(TD, "spiffe://example.org/web", &id)));
    assert_false(mf_ok(ca_policy_agent_id(TD, "spiffe://other.org/mayfly/agent/a", &id)));
}

static void test_ca_policy_agent_access_decisions(void **state)
{
    (void)state;
    struct ca_agent a;
    memset(&a, 0, sizeof(a));
    snprintf(a.spiffe_id, sizeof(a.spiffe_id), "%s", AGENT);
    ASSERT_OK(ca_policy_agent_access(&a, AGENT));
    a.banned = true;
    ASSERT_ERR(ca_policy_agent_access(&a, AGENT), MF_ERR_AUTH_BANNED);
    /* evicted (no record) */
    ASSERT_ERR(ca_policy_agent_access(NULL, AGENT), MF_ERR_AUTH_BANNED);
}

static void test_ca_policy_sign_decisions(void **state)
{
    (void)state;
    const char *sels[] = {"unix:uid:1"};
    struct ca_entry e;
    mk(&e, "spiffe://example.org/web", AGENT, sels, 1);
    snprintf(e.id, sizeof(e.id), "%s", "e1");
    struct mf_spiffe_id web, db, ag;
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/web", &web));
    ASSERT_OK(mf_spiffeid_parse_cstr("spiffe://example.org/db", &db));
    ASSERT_OK(mf_spiffeid_parse_cstr(AGENT, &ag));
    ASSERT_OK(ca_policy_sign(AGENT, &e, &web));
    ASSERT_ERR(ca_policy_sign("spiffe://example.org/mayfly/agent/n2", &e, &web),
               MF_ERR_POLICY_NOT_PARENT);
    ASSERT_ERR(ca_policy_sign(AGENT, &e, &db), MF_ERR_POLICY_DENIED);
    ASSERT_ERR(ca_policy_sign(AGENT, &e, NULL), MF_ERR_POLICY_DENIED);
    assert_int_equal(ca_policy_entry_ttl(&e, 3600), 3600);
    e.ttl = 60;
    assert_int_equal(ca_policy_entry_ttl(&e, 3600), 60);
    /* attestation and renewal CSRs: no SAN, or exactly the agent's ID */
    ASSERT_OK(ca_policy_attest_csr(AGENT, NULL));
    ASSERT_OK(ca_policy_attest_csr(AGENT, &ag));
    ASSERT_ERR(ca_policy_attest_csr(AGENT, &web), MF_ERR_POLICY_DENIED);
    ASSERT_OK(ca_policy_renew_csr(AGENT, &ag));
    ASSERT_ERR(ca_policy_renew_csr(AGENT, &web), MF_ERR_POLICY_DENIED);
    assert_string_equal(ca_policy_reason(ca_policy_sign("x", &e, &web)), "not_parent");
    ca_entry_cleanup(&e);
}

/* the selector modes on entries built so that each mode picks another set */
static void test_ca_policy_entry_matches_modes(void **state)
{
    (void)state;
    const char *s1[] = {"unix:uid:1000"};
    const char *s2[] = {"unix:gid:50", "unix:uid:1000"};
    const char *s3[] = {"unix:gid:50", "unix:uid:1000", "unix:user:web"};
    const char *s4[] = {"unix:gid:50"};
    struct ca_entry e[4];
    mk(&e[0], "spiffe://example.org/web", AGENT, s1, 1);
    mk(&e[1], "spiffe://example.org/web", AGENT, s2, 2);
    mk(&e[2], "spiffe://example.org/api", AGENT, s3, 3);
    mk(&e[3], "spiffe://example.org/db", "spiffe://example.org/mayfly/agent/n2", s4, 1);
    const char *q[] = {"unix:gid:50", "unix:uid:1000"};
    static const struct {
        const char *mode;
        bool want[4];
    } cases[] = {
        {"exact", {false, true, false, false}},
        {"subset", {true, true, false, true}},
        {"superset", {false, true, true, false}},
        {"any", {true, true, true, true}},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct ca_entry_filter f = {.selectors = q, .n_selectors = 2};
        ASSERT_OK(ca_policy_match_parse(cases[c].mode, &f.match));
        for (size_t i = 0; i < 4; i++) {
            assert_int_equal(ca_policy_entry_matches(&e[i], &f), cases[c].want[i]);
        }
    }
    enum ca_match m;
    ASSERT_ERR(ca_policy_match_parse("all", &m), MF_ERR_USAGE_ARG);
    /* no condition: everything; IDs compare whole */
    struct ca_entry_filter all = {0};
    struct ca_entry_filter web = {.spiffe_id = "spiffe://example.org/web"};
    struct ca_entry_filter par = {.parent_id = AGENT, .selectors = s4, .n_selectors = 1};
    for (size_t i = 0; i < 4; i++) {
        assert_true(ca_policy_entry_matches(&e[i], &all));
        assert_int_equal(ca_policy_entry_matches(&e[i], &web), i < 2);
        assert_int_equal(ca_policy_entry_matches(&e[i], &par), i == 1 || i == 2);
    }
    char canon[MF_SELECTOR_STR_MAX];
    ASSERT_ERR(ca_policy_selector_canon("nope", canon, sizeof(canon)), MF_ERR_PROTO_SELECTOR);
    for (size_t i = 0; i < 4; i++) {
        ca_entry_cleanup(&e[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_policy_entry_check_valid_ok),
        cmocka_unit_test(test_ca_policy_entry_check_exe_only_refused),
        cmocka_unit_test(test_ca_policy_entry_check_bad_ids_refused),
        cmocka_unit_test(test_ca_policy_entry_check_selectors_refused),
        cmocka_unit_test(test_ca_policy_entry_check_ttl_dns_hint),
        cmocka_unit_test(test_ca_entry_from_json_strict),
        cmocka_unit_test(test_ca_policy_agent_id_rules),
        cmocka_unit_test(test_ca_policy_agent_access_decisions),
        cmocka_unit_test(test_ca_policy_sign_decisions),
        cmocka_unit_test(test_ca_policy_entry_matches_modes),
    };
    return cmocka_run_group_tests_name("ca_policy", tests, NULL, NULL);
}
