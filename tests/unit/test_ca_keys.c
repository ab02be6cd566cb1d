/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the CA key rotation schedule (ca_keys_plan) on an injected
 * clock, for the TTL-fit rule checked at start, and for the runtime in a
 * temp dir: the server id, keys owned per server, rows from before servers
 * had ids, and (with MAYFLY_TEST_DATASTORE set to a postgresql:// URI, as
 * tests/integration/store_pg.sh does) two servers on one registry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "ca/ca_db.h"
#include "ca/ca_keys.h"
#include "ca/ca_store.h"
#include "mf_test.h"

#define T0   1000000
#define LIFE 6000 /* divisible by 6: prepare at +3000, activate at +5000 */

static struct ca_key_rec rec(const char *id, enum ca_key_state s, int64_t nb)
{
    struct ca_key_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    r.state = s;
    r.not_before = nb;
    r.not_after = nb + LIFE;
    return r;
}

static void test_ca_keys_plan_empty_creates_active(void **state)
{
    (void)state;
    struct ca_plan p;
    ca_keys_plan(T0, NULL, 0, &p);
    assert_true(p.create_active);
    assert_false(p.prepare);
    assert_int_equal(p.activate, -1);
    assert_int_equal(p.retire, -1);
}

static void test_ca_keys_plan_before_half_nothing(void **state)
{
    (void)state;
    struct ca_key_rec r[1] = {rec("a", CA_KEY_ACTIVE, T0)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE / 2 - 1, r, 1, &p);
    assert_false(p.create_active);
    assert_false(p.prepare);
    assert_int_equal(p.activate, -1);
    assert_int_equal(p.n_drop, 0);
    assert_int_equal(p.next_event, T0 + LIFE / 2);
}

static void test_ca_keys_plan_at_half_prepares(void **state)
{
    (void)state;
    struct ca_key_rec r[1] = {rec("a", CA_KEY_ACTIVE, T0)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE / 2, r, 1, &p);
    assert_true(p.prepare);
    assert_false(p.create_active);
    assert_int_equal(p.activate, -1);
}

static void test_ca_keys_plan_prepared_waits_until_five_sixths(void **state)
{
    (void)state;
    struct ca_key_rec r[2] = {rec("a", CA_KEY_ACTIVE, T0),
                              rec("b", CA_KEY_PREPARED, T0 + LIFE / 2)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE * 5 / 6 - 1, r, 2, &p);
    assert_false(p.prepare);
    assert_int_equal(p.activate, -1);
    assert_int_equal(p.next_event, T0 + LIFE * 5 / 6);
    ca_keys_plan(T0 + LIFE * 5 / 6, r, 2, &p);
    assert_int_equal(p.activate, 1);
    assert_int_equal(p.retire, 0);
    assert_false(p.prepare);
}

static void test_ca_keys_plan_retired_dropped_at_not_after(void **state)
{
    (void)state;
    struct ca_key_rec r[2] = {rec("a", CA_KEY_RETIRED, T0), rec("b", CA_KEY_ACTIVE, T0 + LIFE / 2)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE - 1, r, 2, &p);
    assert_int_equal(p.n_drop, 0);
    assert_int_equal(p.next_event, T0 + LIFE);
    ca_keys_plan(T0 + LIFE, r, 2, &p);
    assert_int_equal(p.n_drop, 1);
    assert_int_equal(p.drop[0], 0);
}

/* A full cycle on the injected clock: apply each plan to the records the
 * way ca_keys_tick does and check the sequence of states. */
static void test_ca_keys_plan_full_cycle_ok(void **state)
{
    (void)state;
    struct ca_key_rec r[CA_KEYS_MAX];
    size_t n = 0;
    int created = 0, activated = 0, dropped = 0;
    char next = 'a';
    for (int64_t t = T0; t < T0 + 4 * LIFE; t += 10) {
        struct ca_plan p;
        ca_keys_plan(t, r, n, &p);
        if (p.retire >= 0) {
            r[p.retire].state = CA_KEY_RETIRED;
        }
        if (p.activate >= 0) {
            r[p.activate].state = CA_KEY_ACTIVE;
            activated++;
        }
        for (size_t d = p.n_drop; d > 0; d--) {
            int i = p.drop[d - 1];
            memmove(&r[i], &r[i + 1], (n - (size_t)i - 1) * sizeof(r[0]));
            n--;
            dropped++;
        }
        if (p.create_active || p.prepare) {
            char id[2] = {next++, 0};
            r[n++] = rec(id, p.create_active ? CA_KEY_ACTIVE : CA_KEY_PREPARED, t);
            created++;
        }
        /* invariants: exactly one active key, never more than three keys */
        int active = 0;
        for (size_t i = 0; i < n; i++) {
            active += r[i].state == CA_KEY_ACTIVE;
            assert_true(t < r[i].not_after || r[i].state == CA_KEY_RETIRED);
        }
        assert_int_equal(active, 1);
        assert_true(n <= 3);
    }
    /* keys roll every LIFE/2 once the first prepare happened */
    assert_true(created >= 8);
    assert_true(activated >= 6);
    assert_true(dropped >= 5);
}

static void test_ca_keys_plan_outage_recovers(void **state)
{
    (void)state;
    /* both keys expired while the CA was down: make a new active key,
     * retire the old one, drop the stale prepared one */
    struct ca_key_rec r[2] = {rec("a", CA_KEY_ACTIVE, T0), rec("b", CA_KEY_PREPARED, T0 + 3000)};
    struct ca_plan p;
    ca_keys_plan(T0 + 10 * LIFE, r, 2, &p);
    assert_true(p.create_active);
    assert_int_equal(p.retire, 0);
    assert_int_equal(p.n_drop, 1);
    assert_int_equal(p.drop[0], 1);
}

static void test_ca_keys_plan_expired_active_promotes_prepared(void **state)
{
    (void)state;
    struct ca_key_rec r[2] = {rec("a", CA_KEY_ACTIVE, T0), rec("b", CA_KEY_PREPARED, T0 + 3000)};
    struct ca_plan p;
    ca_keys_plan(T0 + LIFE, r, 2, &p);
    assert_false(p.create_active);
    assert_int_equal(p.activate, 1);
    assert_int_equal(p.retire, 0);
}

static void test_ca_keys_ttl_fits_rule(void **state)
{
    (void)state;
    char why[512];
    assert_true(ca_keys_ttl_fits(3600, 86400, why, sizeof(why)));
    assert_true(ca_keys_ttl_fits(14400, 86400, why, sizeof(why)));  /* exactly 1/6 */
    assert_false(ca_keys_ttl_fits(14401, 86400, why, sizeof(why))); /* 1/6 + 1 */
    assert_false(ca_keys_ttl_fits(3600, 7200, why, sizeof(why)));
    assert_non_null(strstr(why, "--svid-ttl 1h"));
    assert_non_null(strstr(why, "--ca-ttl 2h"));
    assert_non_null(strstr(why, "lower --svid-ttl to 20m or raise --ca-ttl to 6h"));
    assert_false(ca_keys_ttl_fits(0, 86400, why, sizeof(why)));
    assert_int_equal(ca_keys_max_leaf_ttl(86400), 14400);
}

/* ---- runtime ------------------------------------------------------------ */

static char dir[64];

static const char *datastore(void)
{
    const char *ds = getenv("MAYFLY_TEST_DATASTORE");
    return ds != NULL && ds[0] != '\0' ? ds : NULL;
}

/* One server: its config, registry and keys. */
struct server {
    struct ca_config cfg;
    struct ca_store *st;
    struct ca_keys *k;
};

/* Opens a server whose data dir is dir/name, on ds (NULL: the default of
 * the test: SQLite in the data dir, or the PostgreSQL under test). */
static mf_res server_open(struct server *s, const char *name, const char *ds)
{
    memset(s, 0, sizeof(*s));
    ca_config_defaults(&s->cfg);
    snprintf(s->cfg.data_dir, sizeof(s->cfg.data_dir), "%s/%s", dir, name);
    MF_TRY(ca_store_open_ds(s->cfg.data_dir, ds != NULL ? ds : datastore(), &s->st));
    return ca_keys_open(&s->cfg, s->st, &s->k);
}

static void server_close(struct server *s)
{
    ca_keys_free(s->k);
    ca_store_close(s->st);
    memset(s, 0, sizeof(*s));
}

/* Runs one statement on the registry of server name, behind its back. */
static void raw_sql(const char *name, const char *sql)
{
    char path[256];
    struct ca_db *db = NULL;
    if (datastore() != NULL) {
        ASSERT_OK(ca_db_pg_open(datastore(), &db));
    } else {
        snprintf(path, sizeof(path), "%s/%s/mayfly-ca.db", dir, name);
        ASSERT_OK(ca_db_sqlite_open(path, &db));
    }
    ASSERT_OK(db->ops->exec(db, "test", sql, NULL, 0, NULL, NULL, NULL));
    db->ops->close(db);
}

static int rt_setup(void **state)
{
    (void)state;
    mf_x509_global_init();
    if (mft_tmpdir(dir, sizeof(dir), "ca-keys") != 0) {
        return -1;
    }
    if (datastore() == NULL) {
        return 0;
    }
    struct ca_db *db = NULL;
    if (!mf_ok(ca_db_pg_open(datastore(), &db))) {
        return -1;
    }
    mf_res r = db->ops->script(db, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    db->ops->close(db);
    return mf_ok(r) ? 0 : -1;
}

static int rt_teardown(void **state)
{
    (void)state;
    mft_rmdir(dir);
    return 0;
}

static void test_ca_server_id_valid_cases(void **state)
{
    (void)state;
    assert_true(ca_server_id_valid("0f2db7058073fb2c"));
    assert_true(ca_server_id_valid("ca-1"));
    assert_true(ca_server_id_valid("01234567890123456789012345678901"));   /* 32 */
    assert_false(ca_server_id_valid("012345678901234567890123456789012")); /* 33 */
    assert_false(ca_server_id_valid(""));
    assert_false(ca_server_id_valid("CA1"));
    assert_false(ca_server_id_valid("a/b"));
    assert_false(ca_server_id_valid("a b"));
    assert_false(ca_server_id_valid("a\nb"));
}

static void test_ca_keys_open_makes_server_id_ok(void **state)
{
    (void)state;
    struct server s;
    ASSERT_OK(server_open(&s, "a", NULL));
    char id[CA_SERVER_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", ca_keys_server_id(s.k));
    assert_true(ca_server_id_valid(id));
    char path[256], text[64] = "";
    snprintf(path, sizeof(path), "%s/a/keys/server.id", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof(text), f));
    fclose(f);
    text[strcspn(text, "\n")] = '\0';
    assert_string_equal(text, id);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);
    struct mf_bundle *b = ca_keys_bundle(s.k);
    assert_int_equal(b->x509.n, 1);
    assert_int_equal(b->n_jwt, 1);
    assert_int_equal(b->sequence, 1);
    mf_bundle_free(b);
    server_close(&s);

    /* the same server again: same id, same keys, same sequence */
    ASSERT_OK(server_open(&s, "a", NULL));
    assert_string_equal(ca_keys_server_id(s.k), id);
    b = ca_keys_bundle(s.k);
    assert_int_equal(b->x509.n, 1);
    assert_int_equal(b->sequence, 1);
    mf_bundle_free(b);
    server_close(&s);
}

static void test_ca_keys_open_bad_server_id_refused(void **state)
{
    (void)state;
    struct server s;
    ASSERT_OK(server_open(&s, "a", NULL));
    server_close(&s);
    char path[256];
    snprintf(path, sizeof(path), "%s/a/keys/server.id", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("Not/An-Id\n", f);
    fclose(f);
    mf_res r = server_open(&s, "a", NULL);
    assert_int_equal(r.err, MF_ERR_POLICY_CONFIG);
    server_close(&s);
}

/* A registry from before server ids: its rows have no owner and no JWT
 * public key. The server whose data dir holds their files claims them,
 * and the bundle (and its sequence) stays as it was. */
static void test_ca_keys_open_claims_unowned_rows_ok(void **state)
{
    (void)state;
    struct server s;
    ASSERT_OK(server_open(&s, "a", NULL));
    char id[CA_SERVER_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", ca_keys_server_id(s.k));
    server_close(&s);
    raw_sql("a", "UPDATE ca_keys SET server_id = NULL, jwt_pub = NULL");

    ASSERT_OK(server_open(&s, "a", NULL));
    struct mf_bundle *b = ca_keys_bundle(s.k);
    assert_int_equal(b->x509.n, 1);
    assert_int_equal(b->n_jwt, 1);
    assert_int_equal(b->sequence, 1);
    mf_bundle_free(b);
    struct ca_key_row *rows = NULL;
    size_t n = 0;
    ASSERT_OK(ca_store_key_rows(s.st, &rows, &n));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].rec.server, id);
    assert_non_null(rows[0].jwt_pub);
    ca_key_rows_free(rows, n);
    server_close(&s);
}

/* SQLite is one server's: a second data dir on the same file is refused,
 * and says why. */
static void test_ca_keys_open_sqlite_second_server_refused(void **state)
{
    (void)state;
    if (datastore() != NULL) {
        skip();
    }
    struct server a, b;
    ASSERT_OK(server_open(&a, "a", NULL));
    char ds[256];
    snprintf(ds, sizeof(ds), "sqlite:%s/a/mayfly-ca.db", dir);
    mf_res r = server_open(&b, "b", ds);
    assert_int_equal(r.err, MF_ERR_STATE);
    assert_non_null(strstr(mf_err_detail(), "belongs to another mayfly-ca"));
    server_close(&b);
    server_close(&a);
}

/* Two servers on one PostgreSQL: each signs with its own key, both
 * publish both keys, and agree on spiffe_sequence. */
static void test_ca_keys_two_servers_union_ok(void **state)
{
    (void)state;
    if (datastore() == NULL) {
        skip();
    }
    struct server a, b;
    ASSERT_OK(server_open(&a, "a", NULL));
    ASSERT_OK(server_open(&b, "b", NULL));
    assert_string_not_equal(ca_keys_server_id(a.k), ca_keys_server_id(b.k));
    bool changed = false;
    ASSERT_OK(ca_keys_refresh(a.k, &changed));
    assert_true(changed);
    ASSERT_OK(ca_keys_refresh(b.k, &changed));
    assert_false(changed);
    struct mf_bundle *ba = ca_keys_bundle(a.k), *bb = ca_keys_bundle(b.k);
    assert_int_equal(ba->x509.n, 2);
    assert_int_equal(ba->n_jwt, 2);
    assert_int_equal(bb->x509.n, 2);
    assert_int_equal(ba->sequence, bb->sequence);
    assert_int_equal(ba->sequence, 2);
    mf_bundle_free(ba);
    mf_bundle_free(bb);
    struct ca_signer *sa = NULL, *sb = NULL;
    ASSERT_OK(ca_keys_signer(a.k, &sa));
    ASSERT_OK(ca_keys_signer(b.k, &sb));
    assert_string_not_equal(sa->id, sb->id);
    ca_signer_release(sa);
    ca_signer_release(sb);
    /* a restart of a loads only its own key, and publishes both */
    server_close(&a);
    ASSERT_OK(server_open(&a, "a", NULL));
    ba = ca_keys_bundle(a.k);
    assert_int_equal(ba->x509.n, 2);
    assert_int_equal(ba->sequence, 2);
    mf_bundle_free(ba);
    server_close(&a);
    server_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_keys_plan_empty_creates_active),
        cmocka_unit_test(test_ca_keys_plan_before_half_nothing),
        cmocka_unit_test(test_ca_keys_plan_at_half_prepares),
        cmocka_unit_test(test_ca_keys_plan_prepared_waits_until_five_sixths),
        cmocka_unit_test(test_ca_keys_plan_retired_dropped_at_not_after),
        cmocka_unit_test(test_ca_keys_plan_full_cycle_ok),
        cmocka_unit_test(test_ca_keys_plan_outage_recovers),
        cmocka_unit_test(test_ca_keys_plan_expired_active_promotes_prepared),
        cmocka_unit_test(test_ca_keys_ttl_fits_rule),
        cmocka_unit_test(test_ca_server_id_valid_cases),
        cmocka_unit_test_setup_teardown(test_ca_keys_open_makes_server_id_ok, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_ca_keys_open_bad_server_id_refused, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_ca_keys_open_claims_unowned_rows_ok, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_ca_keys_open_sqlite_second_server_refused, rt_setup,
                                        rt_teardown),
        cmocka_unit_test_setup_teardown(test_ca_keys_two_servers_union_ok, rt_setup, rt_teardown),
    };
    return cmocka_run_group_tests_name("ca_keys", tests, NULL, NULL);
}
