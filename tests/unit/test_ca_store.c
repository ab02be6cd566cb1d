/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the registry (ca_store) in a temp dir: entries with
 * duplicate refusal, join tokens (single use, expiry, only hashes stored),
 * agents (ban, evict), the key journal, and reopening (schema kept).
 *
 * With MAYFLY_TEST_DATASTORE set to a postgresql:// URI (as
 * tests/integration/store_pg.sh does, with a server it started), the same
 * tests run on PostgreSQL, each on an empty database, plus a token spent
 * by two connections at once; without it they run on SQLite.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "ca/ca_db.h"
#include "ca/ca_store.h"
#include "mf_test.h"

#define AGENT "spiffe://example.org/mayfly/agent/n1"

static char dir[64];

/* The engine under test: NULL for SQLite in dir, else a PostgreSQL URI. */
static const char *datastore(void)
{
    const char *ds = getenv("MAYFLY_TEST_DATASTORE");
    return ds != NULL && ds[0] != '\0' ? ds : NULL;
}

static mf_res open_store(struct ca_store **st)
{
    return ca_store_open_ds(dir, datastore(), st);
}

static int setup(void **state)
{
    (void)state;
    if (mft_tmpdir(dir, sizeof(dir), "ca-store") != 0) {
        return -1;
    }
    if (datastore() == NULL) {
        return 0;
    }
    /* every test starts from an empty database */
    struct ca_db *db = NULL;
    if (!mf_ok(ca_db_pg_open(datastore(), &db))) {
        return -1;
    }
    mf_res r = db->ops->script(db, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    db->ops->close(db);
    return mf_ok(r) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mft_rmdir(dir);
    return 0;
}

static void fill(struct ca_entry *e, const char *id, const char *sel)
{
    memset(e, 0, sizeof(*e));
    e->spiffe_id = strdup(id);
    e->parent_id = strdup(AGENT);
    e->selectors = calloc(1, sizeof(char *));
    e->selectors[0] = strdup(sel);
    e->n_selectors = 1;
}

static void test_ca_store_entries_roundtrip_and_duplicate(void **state)
{
    (void)state;
    struct ca_store *st = NULL;
    ASSERT_OK(open_store(&st));
    if (datastore() == NULL) {
        struct stat sb;
        char path[128];
        snprintf(path, sizeof(path), "%s/mayfly-ca.db", dir);
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
    }

    struct ca_entry e, dup, got;
    fill(&e, "spiffe://example.org/web", "unix:uid:1");
    e.hint = strdup("h");
    int64_t rev0 = ca_store_revision(st);
    ASSERT_OK(ca_store_entry_create(st, &e));
    assert_int_equal(strlen(e.id), 32);
    assert_true(ca_store_revision(st) > rev0);
    fill(&dup, "spiffe://example.org/web", "unix:uid:1");
    ASSERT_ERR(ca_store_entry_create(st, &dup), MF_ERR_POLICY_DUPLICATE);
    ca_entry_cleanup(&dup);

    ASSERT_OK(ca_store_entry_get(st, e.id, &got));
    assert_string_equal(got.spiffe_id, "spiffe://example.org/web");
    assert_string_equal(got.selectors[0], "unix:uid:1");
    assert_string_equal(got.hint, "h");
    ca_entry_cleanup(&got);

    struct ca_entry *v = NULL;
    size_t n = 0;
    ASSERT_OK(ca_store_entry_list(st, AGENT, &v, &n));
    assert_int_equal(n, 1);
    ca_entries_free(v, n);
    ASSERT_OK(ca_store_entry_list(st, "spiffe://example.org/mayfly/agent/x", &v, &n));
    assert_int_equal(n, 0);
    ca_entries_free(v, n);

    e.ttl = 60;
    ASSERT_OK(ca_store_entry_update(st, &e));
    ASSERT_OK(ca_store_entry_delete(st, e.id));
    ASSERT_ERR(ca_store_entry_delete(st, e.id), MF_ERR_POLICY_NOT_FOUND);
    ASSERT_ERR(ca_store_entry_get(st, e.id, &got), MF_ERR_POLICY_NOT_FOUND);
    ca_entry_cleanup(&e);
    ca_store_close(st);
}

static void test_ca_store_token_single_use_and_expiry(void **state)
{
    (void)state;
    struct ca_store *st = NULL;
    ASSERT_OK(open_store(&st));
    uint8_t h1[32], h2[32], h3[32];
    memset(h1, 1, sizeof(h1));
    memset(h2, 2, sizeof(h2));
    memset(h3, 3, sizeof(h3));
    char id[MF_SPIFFE_ID_MAX + 1];
    ASSERT_OK(ca_store_token_add(st, h1, AGENT, 1000));
    ASSERT_OK(ca_store_token_add(st, h2, AGENT, 1000));
    /* peek does not spend */
    ASSERT_OK(ca_store_token_peek(st, h1, 999, id));
    ASSERT_OK(ca_store_token_peek(st, h1, 999, id));
    ASSERT_OK(ca_store_token_consume(st, h1, 999, id));
    assert_string_equal(id, AGENT);
    ASSERT_ERR(ca_store_token_consume(st, h1, 999, id), MF_ERR_AUTH_TOKEN);
    ASSERT_ERR(ca_store_token_peek(st, h1, 999, id), MF_ERR_AUTH_TOKEN);
    /* expiry is exclusive: at expires_at it is gone */
    ASSERT_ERR(ca_store_token_peek(st, h2, 1000, id), MF_ERR_AUTH_TOKEN);
    ASSERT_ERR(ca_store_token_consume(st, h2, 1000, id), MF_ERR_AUTH_TOKEN);
    ASSERT_ERR(ca_store_token_consume(st, h3, 0, id), MF_ERR_AUTH_TOKEN);
    assert_string_equal(id, "");
    ca_store_close(st);
}

static void test_ca_store_agents_ban_evict(void **state)
{
    (void)state;
    struct ca_store *st = NULL;
    ASSERT_OK(open_store(&st));
    struct ca_agent a;
    /* renew of an unknown agent is refused */
    ASSERT_ERR(ca_store_agent_issued(st, AGENT, "01", 100, 50, false), MF_ERR_POLICY_NOT_FOUND);
    ASSERT_OK(ca_store_agent_issued(st, AGENT, "01", 100, 50, true));
    ASSERT_OK(ca_store_agent_issued(st, AGENT, "02", 200, 60, false));
    ASSERT_OK(ca_store_agent_get(st, AGENT, &a));
    assert_string_equal(a.serial, "02");
    assert_int_equal(a.attested_at, 50);
    assert_false(a.banned);
    ASSERT_OK(ca_store_agent_ban(st, AGENT));
    ASSERT_ERR(ca_store_agent_issued(st, AGENT, "03", 300, 70, false), MF_ERR_AUTH_BANNED);
    ASSERT_ERR(ca_store_agent_issued(st, AGENT, "03", 300, 70, true), MF_ERR_AUTH_BANNED);
    ASSERT_OK(ca_store_agent_get(st, AGENT, &a));
    assert_string_equal(a.serial, "02"); /* the refusal changed nothing */
    assert_true(a.banned);
    ASSERT_OK(ca_store_agent_evict(st, AGENT));
    ASSERT_ERR(ca_store_agent_get(st, AGENT, &a), MF_ERR_POLICY_NOT_FOUND);
    ASSERT_ERR(ca_store_agent_ban(st, AGENT), MF_ERR_POLICY_NOT_FOUND);
    ca_store_close(st);
}

static void test_ca_store_key_journal_survives_reopen(void **state)
{
    (void)state;
    struct ca_store *st = NULL;
    ASSERT_OK(open_store(&st));
    struct ca_key_rec r = {
        .id = "0011223344556677", .state = CA_KEY_PREPARED, .not_before = 10, .not_after = 20};
    const uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    ASSERT_OK(ca_store_key_put(st, &r, der, sizeof(der)));
    ASSERT_OK(ca_store_key_set_state(st, r.id, CA_KEY_ACTIVE));
    ASSERT_OK(ca_store_meta_set(st, "bundle_sequence", 7));
    ca_store_close(st);

    ASSERT_OK(open_store(&st)); /* migrations are idempotent */
    struct ca_key_rec recs[CA_KEYS_MAX];
    uint8_t *ders[CA_KEYS_MAX] = {0};
    size_t lens[CA_KEYS_MAX], n = 0;
    ASSERT_OK(ca_store_key_list(st, recs, ders, lens, &n));
    assert_int_equal(n, 1);
    assert_int_equal(recs[0].state, CA_KEY_ACTIVE);
    assert_int_equal(lens[0], sizeof(der));
    assert_memory_equal(ders[0], der, sizeof(der));
    free(ders[0]);
    int64_t seq = 0;
    ASSERT_OK(ca_store_meta_get(st, "bundle_sequence", &seq));
    assert_int_equal(seq, 7);
    ASSERT_OK(ca_store_key_delete(st, r.id));
    ca_store_close(st);
}

/* Each row names its owner; a row with none is claimed once, by the
 * first server that asks; the JWT public key is kept beside the row. */
static void test_ca_store_key_owner_claimed_once(void **state)
{
    (void)state;
    struct ca_store *st = NULL;
    ASSERT_OK(open_store(&st));
    const uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    const uint8_t pub[] = {0x30, 0x03, 0x02, 0x01, 0x02};
    struct ca_key_rec mine = {
        .id = "00000000000000aa", .state = CA_KEY_ACTIVE, .not_before = 10, .not_after = 20};
    snprintf(mine.server, sizeof(mine.server), "%s", "srv-a");
    struct ca_key_rec old = {
        .id = "00000000000000bb", .state = CA_KEY_RETIRED, .not_before = 5, .not_after = 20};
    ASSERT_OK(ca_store_key_add(st, &mine, der, sizeof(der), pub, sizeof(pub)));
    ASSERT_OK(ca_store_key_put(st, &old, der, sizeof(der)));
    bool claimed = false;
    ASSERT_OK(ca_store_key_claim(st, mine.id, "srv-b", &claimed));
    assert_false(claimed); /* owned already */
    ASSERT_OK(ca_store_key_claim(st, old.id, "srv-b", &claimed));
    assert_true(claimed);
    ASSERT_OK(ca_store_key_claim(st, old.id, "srv-c", &claimed));
    assert_false(claimed);
    ASSERT_OK(ca_store_key_set_jwt_pub(st, old.id, pub, sizeof(pub)));
    struct ca_key_row *rows = NULL;
    size_t n = 0;
    ASSERT_OK(ca_store_key_rows(st, &rows, &n));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].rec.id, old.id); /* oldest first */
    assert_string_equal(rows[0].rec.server, "srv-b");
    assert_string_equal(rows[1].rec.server, "srv-a");
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].cert_len, sizeof(der));
        assert_int_equal(rows[i].jwt_pub_len, sizeof(pub));
        assert_memory_equal(rows[i].jwt_pub, pub, sizeof(pub));
    }
    ca_key_rows_free(rows, n);
    ca_store_close(st);
}

static void test_ca_store_open_refuses_open_dir(void **state)
{
    (void)state;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/loose", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(chmod(sub, 0755), 0);
    struct ca_store *st = NULL;
    ASSERT_ERR(ca_store_open(sub, &st), MF_ERR_IO_PERM);
    assert_null(st);
}

/* Two servers spend one join token at the same instant: exactly one wins. */
struct spender {
    const uint8_t *hash;
    pthread_barrier_t *go;
    struct ca_store *st;
    mf_res r;
};

static void *spend(void *arg)
{
    struct spender *sp = arg;
    char id[MF_SPIFFE_ID_MAX + 1];
    pthread_barrier_wait(sp->go);
    sp->r = ca_store_token_consume(sp->st, sp->hash, 10, id);
    return NULL;
}

static void test_ca_store_token_spent_once_by_two_servers(void **state)
{
    (void)state;
    struct ca_store *a = NULL, *b = NULL;
    ASSERT_OK(open_store(&a));
    ASSERT_OK(open_store(&b)); /* a second connection: another server */
    for (int round = 0; round < 20; round++) {
        uint8_t h[32];
        memset(h, round + 1, sizeof(h));
        ASSERT_OK(ca_store_token_add(a, h, AGENT, 1000));
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct spender x = {.hash = h, .go = &go, .st = a}, y = {.hash = h, .go = &go, .st = b};
        pthread_t tx, ty;
        assert_int_equal(pthread_create(&tx, NULL, spend, &x), 0);
        assert_int_equal(pthread_create(&ty, NULL, spend, &y), 0);
        pthread_join(tx, NULL);
        pthread_join(ty, NULL);
        pthread_barrier_destroy(&go);
        assert_int_equal(mf_ok(x.r) + mf_ok(y.r), 1);
        assert_int_equal((mf_ok(x.r) ? y.r : x.r).err, MF_ERR_AUTH_TOKEN);
    }
    ca_store_close(a);
    ca_store_close(b);
}

/* A change committed through one server reaches another's watcher. */
static int heard; /* atomic */

static void on_change(void *cls)
{
    (void)cls;
    __atomic_add_fetch(&heard, 1, __ATOMIC_RELEASE);
}

static void test_ca_store_watch_hears_other_server(void **state)
{
    (void)state;
    struct ca_store *a = NULL, *b = NULL;
    ASSERT_OK(open_store(&a));
    ASSERT_OK(open_store(&b));
    __atomic_store_n(&heard, 0, __ATOMIC_RELEASE);
    ASSERT_OK(ca_store_watch(a, on_change, NULL));
    ASSERT_ERR(ca_store_watch(a, on_change, NULL), MF_ERR_STATE);
    if (datastore() == NULL) {
        /* SQLite: one server owns the file; nothing to hear */
        ca_store_close(a);
        ca_store_close(b);
        return;
    }
    struct ca_entry e;
    fill(&e, "spiffe://example.org/pushed", "unix:uid:7");
    ASSERT_OK(ca_store_entry_create(b, &e));
    for (int i = 0; i < 200 && __atomic_load_n(&heard, __ATOMIC_ACQUIRE) == 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL); /* a bounded wait for the condition */
    }
    assert_true(__atomic_load_n(&heard, __ATOMIC_ACQUIRE) > 0);
    assert_int_equal(ca_store_revision(a), e.revision);
    ca_entry_cleanup(&e);
    ca_store_close(a);
    ca_store_close(b);
}

/* A SQLite registry copied into an empty one (PostgreSQL when the test
 * has a server): every row kept, a second copy refused. */
static void test_ca_store_copy_all_rows_once(void **state)
{
    (void)state;
    struct ca_store *src = NULL, *dst = NULL;
    char copy[128];
    snprintf(copy, sizeof(copy), "sqlite:%s/copy.db", dir);
    ASSERT_OK(ca_store_open_ds(dir, NULL, &src));
    struct ca_entry e;
    fill(&e, "spiffe://example.org/web", "unix:uid:1");
    e.hint = strdup("h");
    ASSERT_OK(ca_store_entry_create(src, &e));
    uint8_t h[32];
    memset(h, 9, sizeof(h));
    ASSERT_OK(ca_store_token_add(src, h, AGENT, 5000));
    ASSERT_OK(ca_store_agent_issued(src, AGENT, "01", 100, 50, true));
    ASSERT_OK(ca_store_agent_ban(src, AGENT));
    struct ca_key_rec r = {
        .id = "0011223344556677", .state = CA_KEY_ACTIVE, .not_before = 10, .not_after = 20};
    const uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    ASSERT_OK(ca_store_key_put(src, &r, der, sizeof(der)));
    ASSERT_OK(ca_store_meta_set(src, "bundle_sequence", 12));

    ASSERT_OK(ca_store_open_ds(dir, datastore() != NULL ? datastore() : copy, &dst));
    uint64_t counts[CA_STORE_TABLES] = {0};
    ASSERT_OK(ca_store_copy(src, dst, counts));
    assert_int_equal(counts[1], 1); /* entries */
    assert_string_equal(ca_store_table_name(1), "entries");
    assert_int_equal(ca_store_revision(dst), ca_store_revision(src));

    struct ca_entry got;
    ASSERT_OK(ca_store_entry_get(dst, e.id, &got));
    assert_string_equal(got.spiffe_id, e.spiffe_id);
    assert_string_equal(got.hint, "h");
    assert_int_equal(got.revision, e.revision);
    ca_entry_cleanup(&got);
    char id[MF_SPIFFE_ID_MAX + 1];
    ASSERT_OK(ca_store_token_peek(dst, h, 10, id));
    struct ca_agent a;
    ASSERT_OK(ca_store_agent_get(dst, AGENT, &a));
    assert_true(a.banned);
    struct ca_key_rec recs[CA_KEYS_MAX];
    uint8_t *ders[CA_KEYS_MAX] = {0};
    size_t lens[CA_KEYS_MAX], n = 0;
    ASSERT_OK(ca_store_key_list(dst, recs, ders, lens, &n));
    assert_int_equal(n, 1);
    assert_memory_equal(ders[0], der, sizeof(der));
    free(ders[0]);
    int64_t seq = 0;
    ASSERT_OK(ca_store_meta_get(dst, "bundle_sequence", &seq));
    assert_int_equal(seq, 12);
    /* a registry with rows is never a destination */
    ASSERT_ERR(ca_store_copy(src, dst, NULL), MF_ERR_POLICY_DUPLICATE);
    ca_entry_cleanup(&e);
    ca_store_close(src);
    ca_store_close(dst);
}

static void test_ca_store_bad_datastore_refused(void **state)
{
    (void)state;
    struct ca_store *st = NULL;
    mf_err_clear();
    ASSERT_ERR(ca_store_open_ds(dir, "mysql://u:secret@h/db", &st), MF_ERR_USAGE_ARG);
    assert_null(strstr(mf_err_detail(), "secret")); /* never echoed */
    ASSERT_ERR(ca_store_open_ds(dir, "postgresql://u:secret@127.0.0.1:1/db", &st),
               MF_ERR_IO_CONNECT);
    assert_null(strstr(mf_err_detail(), "secret"));
    assert_null(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_store_entries_roundtrip_and_duplicate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ca_store_token_single_use_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_store_agents_ban_evict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_store_key_journal_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_store_key_owner_claimed_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_store_open_refuses_open_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_store_token_spent_once_by_two_servers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ca_store_watch_hears_other_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_store_copy_all_rows_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_store_bad_datastore_refused, setup, teardown),
    };
    return cmocka_run_group_tests_name(datastore() != NULL ? "ca_store (postgresql)" : "ca_store",
                                       tests, NULL, NULL);
}
