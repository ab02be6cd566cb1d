/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for agent_cache (persistence: a record written, the cache
 * closed and opened again, gives back the same entry, key and SVID with
 * mode 0600; an expired one is dropped; a corrupt file is skipped; symlinks
 * are refused) and for agent_state (selector matching: an entry matches
 * only when all its selectors are the workload's; expired SVIDs and
 * duplicate hints are not served; no match renders nothing; a workload
 * gets exactly the foreign bundles its SVIDs federate with; answers are
 * rendered once per snapshot and selector set).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "agent/agent_cache.h"
#include "agent/agent_state.h"
#include "api/core/mf_json.h"
#include "api/core/mf_time.h"
#include "mf_test.h"

struct fixture {
    char dir[64];
    struct mft_ident ca;
};

static int64_t fake_now;
static int64_t fake_clock(void)
{
    return fake_now;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_int_equal(mft_tmpdir(f->dir, sizeof(f->dir), "agent-cache"), 0);
    mft_make_ca(&f->ca, "spiffe://example.org", mf_now());
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mf_time_set_clock(NULL);
    mft_rmdir(f->dir);
    mft_free_ident(&f->ca);
    free(f);
    return 0;
}

/* A leaf for id, with its key. */
static void issue(struct fixture *f, const char *id, int64_t now, int64_t ttl, struct mf_key **key,
                  struct mf_certs *chain)
{
    struct mft_ident leaf;
    mft_make_leaf(&leaf, &f->ca, id, now, ttl);
    mf_certs_init(chain);
    ASSERT_OK(mf_certs_push(chain, leaf.cert));
    *key = leaf.key;
    mf_cert_free(leaf.cert);
}

static void entry(const char *json, struct agent_entry *e)
{
    json_t *obj = NULL;
    ASSERT_OK(mf_json_parse(json, strlen(json), 4096, &obj));
    ASSERT_OK(agent_entry_from_json(obj, e));
    json_decref(obj);
}

static void test_agent_cache_store_reload_ok(void **state)
{
    struct fixture *f = *state;
    struct agent_cache c;
    struct agent_entry e;
    struct agent_rec *r = NULL;
    struct mf_key *key = NULL;
    struct mf_certs chain;
    issue(f, "spiffe://example.org/web", mf_now(), 600, &key, &chain);
    ASSERT_OK(agent_cache_open(f->dir, &c));
    entry("{\"id\":\"e1\",\"spiffe_id\":\"spiffe://example.org/web\",\"parent_id\":"
          "\"spiffe://example.org/mayfly/agent/n\",\"selectors\":[\"unix:uid:1000\"],"
          "\"ttl\":600,\"hint\":\"web\",\"revision\":3,\"future_member\":true}",
          &e);
    uint8_t digest[32];
    memcpy(digest, e.digest, sizeof(digest));
    ASSERT_OK(agent_cache_add(&c, &e, &r));
    r->key = key;
    r->chain = chain;
    r->not_after = mf_cert_not_after(chain.v[0]);
    r->renew_at_ms = 1234567;
    ASSERT_OK(agent_cache_store(&c, r));
    agent_cache_close(&c);

    /* the file is private */
    char path[256];
    struct stat st;
    ASSERT_OK(agent_cache_open(f->dir, &c));
    ASSERT_OK(agent_cache_load(&c, "example.org"));
    assert_int_equal(c.n, 1);
    r = agent_cache_find(&c, "e1");
    assert_non_null(r);
    assert_string_equal(r->entry.spiffe_id, "spiffe://example.org/web");
    assert_string_equal(r->entry.hint, "web");
    assert_int_equal(r->entry.n_sels, 1);
    assert_int_equal(r->renew_at_ms, 1234567);
    assert_int_equal(r->entry.ttl, 600);
    /* the entry read back equals the one the CA sent: the first sync after
     * a restart rewrites no file */
    assert_memory_equal(r->entry.digest, digest, sizeof(digest));
    assert_true(mf_cert_matches_key(r->chain.v[0], r->key));
    snprintf(path, sizeof(path), "%s/svids", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    agent_cache_remove(&c, 0);
    assert_int_equal(c.n, 0);
    agent_cache_close(&c);
    ASSERT_OK(agent_cache_open(f->dir, &c));
    ASSERT_OK(agent_cache_load(&c, "example.org"));
    assert_int_equal(c.n, 0); /* removal reached the disk */
    agent_cache_close(&c);
}

static void test_agent_cache_expired_dropped_corrupt_skipped(void **state)
{
    struct fixture *f = *state;
    struct agent_cache c;
    struct agent_entry e;
    struct agent_rec *r = NULL;
    struct mf_key *key = NULL;
    struct mf_certs chain;
    issue(f, "spiffe://example.org/old", mf_now(), 60, &key, &chain);
    ASSERT_OK(agent_cache_open(f->dir, &c));
    entry("{\"id\":\"e2\",\"spiffe_id\":\"spiffe://example.org/old\",\"selectors\":"
          "[\"unix:uid:0\"]}",
          &e);
    ASSERT_OK(agent_cache_add(&c, &e, &r));
    int64_t na = mf_cert_not_after(chain.v[0]);
    r->key = key;
    r->chain = chain; /* moved into the cache */
    ASSERT_OK(agent_cache_store(&c, r));
    /* a corrupt file beside it */
    ASSERT_OK(agent_file_write_atomic(c.svids_fd, "junk.svid", "{}\nxx", 5, 0600, false));
    agent_cache_close(&c);

    mf_time_set_clock(fake_clock);
    fake_now = na + 1;
    ASSERT_OK(agent_cache_open(f->dir, &c));
    ASSERT_OK(agent_cache_load(&c, "example.org"));
    assert_int_equal(c.n, 0);
    agent_cache_close(&c);
}

static void test_agent_file_write_atomic_symlink_refused(void **state)
{
    struct fixture *f = *state;
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    assert_int_equal(symlinkat("/etc/passwd", dfd, "svid.0.key"), 0);
    ASSERT_ERR(agent_file_write_atomic(dfd, "svid.0.key", "x", 1, 0600, true), MF_ERR_IO_SYMLINK);
    ASSERT_ERR(agent_file_write_atomic(dfd, "a/b", "x", 1, 0600, true), MF_ERR_USAGE_ARG);
    ASSERT_OK(agent_file_write_atomic(dfd, "ok.pem", "hello", 5, 0600, true));
    struct stat st;
    assert_int_equal(fstatat(dfd, "ok.pem", &st, 0), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 5);
    close(dfd);
}

/* A write interrupted by kill -9 leaves its temp file; the next open
 * removes it, and nothing else. */
static void test_agent_cache_open_removes_interrupted_writes(void **state)
{
    struct fixture *f = *state;
    struct agent_cache c;
    ASSERT_OK(agent_cache_open(f->dir, &c));
    agent_cache_close(&c);
    char path[512];
    const char *left[] = {"/.agent.svid.00112233aabbccdd.tmp",
                          "/svids/.0123456789abcdef0123456789abcdef.svid.0011223344556677.tmp"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s%s", f->dir, left[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    snprintf(path, sizeof(path), "%s/keep.tmp", f->dir); /* not one of ours */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    ASSERT_OK(agent_cache_open(f->dir, &c));
    agent_cache_close(&c);
    struct stat st;
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s%s", f->dir, left[i]);
        assert_int_equal(stat(path, &st), -1);
    }
    snprintf(path, sizeof(path), "%s/keep.tmp", f->dir);
    assert_int_equal(stat(path, &st), 0);
}

static void sels(const char *const *texts, size_t n, struct mf_selector *out)
{
    for (size_t i = 0; i < n; i++) {
        ASSERT_OK(mf_selector_parse(texts[i], strlen(texts[i]), &out[i]));
    }
}

static void test_agent_snap_match_all_selectors_ok(void **state)
{
    struct fixture *f = *state;
    struct agent_snap *s = NULL;
    struct mf_key *k1 = NULL, *k2 = NULL, *k3 = NULL;
    struct mf_certs c1, c2, c3;
    struct mf_selector want1[2], want2[1], want3[1], have_a[3], have_b[1];
    const char *w1[] = {"unix:uid:1000", "unix:gid:1000"};
    const char *w2[] = {"unix:uid:1001"};
    const char *w3[] = {"unix:uid:1000"};
    const char *ha[] = {"unix:gid:1000", "unix:uid:1000", "unix:user:alice"};
    const char *hb[] = {"unix:uid:1000"};
    sels(w1, 2, want1);
    sels(w2, 1, want2);
    sels(w3, 1, want3);
    sels(ha, 3, have_a);
    sels(hb, 1, have_b);
    int64_t now = mf_now();
    issue(f, "spiffe://example.org/a", now, 600, &k1, &c1);
    issue(f, "spiffe://example.org/b", now, 600, &k2, &c2);
    issue(f, "spiffe://example.org/a2", now, 600, &k3, &c3);
    ASSERT_OK(agent_snap_new("example.org", &s));
    ASSERT_OK(agent_snap_add(s, "spiffe://example.org/a", "main", want1, 2, &c1, k1,
                             mf_cert_not_after(c1.v[0])));
    ASSERT_OK(agent_snap_add(s, "spiffe://example.org/b", "", want2, 1, &c2, k2,
                             mf_cert_not_after(c2.v[0])));
    /* same hint as the first: left out when both match */
    ASSERT_OK(agent_snap_add(s, "spiffe://example.org/a2", "main", want3, 1, &c3, k3,
                             mf_cert_not_after(c3.v[0])));

    /* workload A has uid and gid: gets /a (default, first); /a2 has a dup hint */
    assert_int_equal(agent_snap_count(s, have_a, 3), 1);
    struct mf_buf out;
    size_t count = 0;
    mf_buf_init(&out, AGENT_RENDER_MAX, MF_BUF_SECRET);
    ASSERT_OK(agent_snap_render_x509(s, have_a, 3, &out, &count));
    assert_int_equal(count, 1);
    json_t *doc = NULL;
    ASSERT_OK(mf_json_parse(mf_buf_cstr(&out), out.len, AGENT_RENDER_MAX, &doc));
    const json_t *arr = json_object_get(doc, "svids");
    assert_int_equal(json_array_size(arr), 1);
    const json_t *v = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(v, "spiffe_id")),
                        "spiffe://example.org/a");
    assert_non_null(
        strstr(json_string_value(json_object_get(v, "x509_svid_key")), "BEGIN PRIVATE KEY"));
    assert_non_null(
        strstr(json_string_value(json_object_get(v, "x509_svid")), "BEGIN CERTIFICATE"));
    assert_non_null(json_object_get(v, "expires_at"));
    assert_non_null(json_object_get(doc, "federated_bundles"));
    json_decref(doc);

    /* workload B has only the uid: the two-selector entry does not match,
     * /a2 does (its hint is now unique) */
    mf_buf_reset(&out);
    ASSERT_OK(agent_snap_render_x509(s, have_b, 1, &out, &count));
    assert_int_equal(count, 1);
    assert_non_null(strstr(mf_buf_cstr(&out), "spiffe://example.org/a2"));

    /* nobody: nothing rendered, no key material */
    mf_buf_reset(&out);
    ASSERT_OK(agent_snap_render_x509(s, want2, 0, &out, &count));
    assert_int_equal(count, 0);
    assert_int_equal(out.len, 0);

    /* expired: not served */
    mf_time_set_clock(fake_clock);
    fake_now = mf_cert_not_after(c1.v[0]);
    assert_int_equal(agent_snap_count(s, have_a, 3), 0);
    mf_time_set_clock(NULL);

    mf_buf_cleanup(&out);
    agent_snap_unref(s);
    mf_key_free(k1);
    mf_key_free(k2);
    mf_key_free(k3);
    mf_certs_cleanup(&c1);
    mf_certs_cleanup(&c2);
    mf_certs_cleanup(&c3);
    for (size_t i = 0; i < 2; i++) {
        mf_selector_cleanup(&want1[i]);
    }
    mf_selector_cleanup(&want2[0]);
    mf_selector_cleanup(&want3[0]);
    for (size_t i = 0; i < 3; i++) {
        mf_selector_cleanup(&have_a[i]);
    }
    mf_selector_cleanup(&have_b[0]);
}

/* agent_cache_find through its hash index: every entry of a big cache is
 * found (the right record), across growth and after removals, and unknown
 * ids are not. */
static void test_agent_cache_find_indexed_ok(void **state)
{
    struct fixture *f = *state;
    struct agent_cache c;
    enum { N = 3000 };
    char json[256], id[64];
    ASSERT_OK(agent_cache_open(f->dir, &c));
    for (int i = 0; i < N; i++) {
        struct agent_entry e;
        snprintf(json, sizeof(json),
                 "{\"id\":\"e%d\",\"spiffe_id\":\"spiffe://example.org/w%d\","
                 "\"selectors\":[\"unix:uid:%d\"]}",
                 i, i, 1000 + i);
        entry(json, &e);
        struct agent_rec *r = NULL;
        ASSERT_OK(agent_cache_add(&c, &e, &r));
        if (i % 500 == 0) { /* finds between additions keep the index live */
            assert_ptr_equal(agent_cache_find(&c, r->entry.id), r);
        }
    }
    assert_int_equal(c.n, N);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "e%d", i);
        struct agent_rec *r = agent_cache_find(&c, id);
        assert_non_null(r);
        assert_string_equal(r->entry.id, id);
    }
    assert_null(agent_cache_find(&c, "e-none"));
    /* remove every third one, from the end as a sync does */
    for (size_t i = c.n; i > 0; i--) {
        if ((i - 1) % 3 == 0) {
            agent_cache_remove(&c, i - 1);
        }
    }
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "e%d", i);
        struct agent_rec *r = agent_cache_find(&c, id);
        if (i % 3 == 0) {
            assert_null(r);
        } else {
            assert_non_null(r);
            assert_string_equal(r->entry.id, id);
        }
    }
    agent_cache_close(&c);
}

static int renders;
static mf_res counting_render(const struct agent_snap *s, const struct mf_selector *have,
                              size_t n_have, struct mf_buf *out, size_t *count, void *arg)
{
    renders++;
    return agent_snap_render_x509_fn(s, have, n_have, out, count, arg);
}

/* Answers are rendered once per snapshot and selector set, kept by
 * reference (also past the snapshot's own last reference), and rendered
 * again once an SVID of the snapshot expires or the clock goes back. */
static void test_agent_snap_answer_once_per_snapshot(void **state)
{
    struct fixture *f = *state;
    struct agent_snap *s = NULL;
    struct mf_key *k1 = NULL, *k2 = NULL;
    struct mf_certs c1, c2;
    struct mf_selector want1[1], want2[1];
    const char *w1[] = {"unix:uid:1000"};
    const char *w2[] = {"unix:uid:1001"};
    sels(w1, 1, want1);
    sels(w2, 1, want2);
    int64_t now = mf_now();
    issue(f, "spiffe://example.org/a", now, 600, &k1, &c1);
    issue(f, "spiffe://example.org/b", now, 1200, &k2, &c2);
    ASSERT_OK(agent_snap_new("example.org", &s));
    ASSERT_OK(agent_snap_add(s, "spiffe://example.org/a", "", want1, 1, &c1, k1,
                             mf_cert_not_after(c1.v[0])));
    ASSERT_OK(agent_snap_add(s, "spiffe://example.org/b", "", want2, 1, &c2, k2,
                             mf_cert_not_after(c2.v[0])));
    mf_time_set_clock(fake_clock);
    fake_now = now;
    renders = 0;

    struct agent_answer *a1 = NULL, *a2 = NULL, *b = NULL, *g = NULL;
    ASSERT_OK(agent_snap_answer(s, AGENT_ANSWER_X509_JSON, want1, 1, counting_render, NULL, &a1));
    ASSERT_OK(agent_snap_answer(s, AGENT_ANSWER_X509_JSON, want1, 1, counting_render, NULL, &a2));
    assert_int_equal(renders, 1);
    assert_ptr_equal(a1, a2);
    assert_int_equal(a1->count, 1);
    /* the same bytes as a direct rendering, the key as mf_key_to_pem has it */
    struct mf_buf direct, pem;
    size_t count = 0;
    mf_buf_init(&direct, AGENT_RENDER_MAX, MF_BUF_SECRET);
    mf_buf_init(&pem, 4096, MF_BUF_SECRET);
    ASSERT_OK(agent_snap_render_x509(s, want1, 1, &direct, &count));
    assert_int_equal(direct.len, a1->body.len);
    assert_memory_equal(direct.data, a1->body.data, direct.len);
    ASSERT_OK(mf_key_to_pem(k1, &pem));
    json_t *doc = NULL;
    ASSERT_OK(mf_json_parse(mf_buf_cstr(&direct), direct.len, AGENT_RENDER_MAX, &doc));
    const json_t *v = json_array_get(json_object_get(doc, "svids"), 0);
    assert_string_equal(json_string_value(json_object_get(v, "x509_svid_key")), mf_buf_cstr(&pem));
    json_decref(doc);

    /* another workload, another kind: answers of their own */
    ASSERT_OK(agent_snap_answer(s, AGENT_ANSWER_X509_JSON, want2, 1, counting_render, NULL, &b));
    assert_int_equal(renders, 2);
    assert_ptr_not_equal(a1, b);
    assert_non_null(strstr(mf_buf_cstr(&b->body), "spiffe://example.org/b"));
    ASSERT_OK(agent_snap_answer(s, AGENT_ANSWER_X509_GRPC, want1, 1, counting_render, NULL, &g));
    assert_int_equal(renders, 3);
    assert_ptr_not_equal(a1, g);
    agent_answer_unref(a2);
    agent_answer_unref(b);
    agent_answer_unref(g);

    /* /a reaches its NotAfter: rendered again, without it */
    fake_now = mf_cert_not_after(c1.v[0]);
    ASSERT_OK(agent_snap_answer(s, AGENT_ANSWER_X509_JSON, want1, 1, counting_render, NULL, &a2));
    assert_int_equal(renders, 4);
    assert_ptr_not_equal(a1, a2);
    assert_int_equal(a2->count, 0);
    assert_int_equal(a2->body.len, 0);
    agent_answer_unref(a2);
    /* the clock goes back before that rendering: rendered again */
    fake_now = now;
    ASSERT_OK(agent_snap_answer(s, AGENT_ANSWER_X509_JSON, want1, 1, counting_render, NULL, &a2));
    assert_int_equal(renders, 5);
    assert_int_equal(a2->count, 1);
    agent_answer_unref(a2);

    /* an answer outlives the snapshot while a request still sends it */
    agent_snap_unref(s);
    assert_non_null(strstr(mf_buf_cstr(&a1->body), "spiffe://example.org/a"));
    agent_answer_unref(a1);
    mf_time_set_clock(NULL);

    mf_buf_cleanup(&direct);
    mf_buf_cleanup(&pem);
    mf_key_free(k1);
    mf_key_free(k2);
    mf_certs_cleanup(&c1);
    mf_certs_cleanup(&c2);
    mf_selector_cleanup(&want1[0]);
    mf_selector_cleanup(&want2[0]);
}

/* A foreign bundle of trust domain td (one X.509 authority). */
static struct mf_bundle *foreign(const char *td_id, struct mft_ident *ca)
{
    struct mf_bundle *b = NULL;
    mft_make_ca(ca, td_id, mf_now());
    ASSERT_OK(mf_bundle_new(td_id, &b));
    ASSERT_OK(mf_bundle_add_x509(b, ca->cert));
    b->sequence = 1;
    return b;
}

/* Federation: a workload gets exactly the foreign bundles its SVIDs
 * federate with, each under its own trust domain, through every renderer
 * and the accessor; the cache keeps them across a restart. */
/* A snapshot SVID keeps its strings, selectors and chain array in one block
 * of its own: the caller's copies can go at once, the chain's certificates
 * and the key stay alive through the snapshot's references, and unref
 * releases them all (the sanitizer build sees a leak or a stale read). */
static void test_agent_snap_add_owns_its_copies(void **state)
{
    struct fixture *f = *state;
    struct agent_snap *s = NULL;
    struct mf_key *k = NULL;
    struct mf_certs c, empty;
    struct mf_selector want[2], have[2];
    const char *w[] = {"unix:uid:1000", "unix:gid:50"};
    sels(w, 2, want);
    sels(w, 2, have);
    char *id = strdup("spiffe://example.org/packed");
    assert_non_null(id);
    issue(f, id, mf_now(), 600, &k, &c);
    ASSERT_OK(agent_snap_new("example.org", &s));
    mf_certs_init(&empty);
    ASSERT_ERR(agent_snap_add(s, id, NULL, want, 2, &empty, k, 0), MF_ERR_USAGE_ARG);
    ASSERT_OK(agent_snap_add(s, id, NULL, want, 2, &c, k, mf_cert_not_after(c.v[0])));
    /* the caller's strings, selectors, chain and key all go now */
    memset(id, 'x', strlen(id));
    free(id);
    for (size_t i = 0; i < 2; i++) {
        mf_selector_cleanup(&want[i]);
    }
    mf_certs_cleanup(&c);
    mf_key_free(k);

    assert_int_equal(s->n, 1);
    const struct agent_snap_svid *v = &s->svids[0];
    assert_string_equal(v->spiffe_id, "spiffe://example.org/packed");
    assert_string_equal(v->hint, "");
    assert_int_equal(v->n_sels, 2);
    assert_string_equal(v->sels[0].value, "1000");
    assert_int_equal(v->sels[0].value_len, 4);
    assert_string_equal(v->sels[1].value, "50");
    assert_int_equal(v->chain.n, 1);
    struct mf_buf out;
    size_t count = 0;
    mf_buf_init(&out, AGENT_RENDER_MAX, MF_BUF_SECRET);
    ASSERT_OK(agent_snap_render_x509(s, have, 2, &out, &count));
    assert_int_equal(count, 1);
    assert_non_null(strstr(mf_buf_cstr(&out), "spiffe://example.org/packed"));
    assert_non_null(strstr(mf_buf_cstr(&out), "BEGIN PRIVATE KEY"));
    mf_buf_cleanup(&out);
    agent_snap_unref(s);
    for (size_t i = 0; i < 2; i++) {
        mf_selector_cleanup(&have[i]);
    }
}

static void test_agent_snap_federated_exact(void **state)
{
    struct fixture *f = *state;
    struct agent_snap *s = NULL;
    struct mf_key *k1 = NULL, *k2 = NULL;
    struct mf_certs c1, c2;
    struct mft_ident bca, cca;
    struct mf_selector s1[1], s2[1];
    const char *t1[] = {"unix:uid:1"}, *t2[] = {"unix:uid:2"};
    char fed_b[] = "spiffe://b.test";
    char *fed1[] = {fed_b};
    sels(t1, 1, s1);
    sels(t2, 1, s2);
    int64_t now = mf_now();
    issue(f, "spiffe://example.org/one", now, 600, &k1, &c1);
    issue(f, "spiffe://example.org/two", now, 600, &k2, &c2);
    struct mf_bundle *bb = foreign("spiffe://b.test", &bca);
    struct mf_bundle *cb = foreign("spiffe://c.test", &cca);
    ASSERT_OK(agent_snap_new("example.org", &s));
    ASSERT_OK(agent_snap_add(s, "spiffe://example.org/one", "", s1, 1, &c1, k1,
                             mf_cert_not_after(c1.v[0])));
    ASSERT_OK(agent_snap_add(s, "spiffe://example.org/two", "", s2, 1, &c2, k2,
                             mf_cert_not_after(c2.v[0])));
    ASSERT_OK(agent_snap_set_federates(s, 0, fed1, 1));
    ASSERT_ERR(agent_snap_set_federates(s, 2, fed1, 1), MF_ERR_USAGE_ARG);
    ASSERT_OK(agent_snap_add_federated(s, bb));
    ASSERT_OK(agent_snap_add_federated(s, cb));

    /* the accessor */
    const struct agent_snap_fed *x = agent_state_federated(s, 0, "b.test");
    assert_non_null(x);
    assert_string_equal(x->td_id, "spiffe://b.test");
    assert_ptr_equal(agent_state_federated(s, 0, "spiffe://b.test"), x);
    assert_null(agent_state_federated(s, 0, "c.test")); /* held, not federated with */
    assert_null(agent_state_federated(s, 1, "b.test")); /* the other SVID */
    assert_null(agent_state_federated(s, 2, "b.test")); /* no such SVID */
    assert_null(agent_state_federated(s, 0, "B.test"));
    assert_null(agent_state_federated(s, 0, NULL));
    assert_null(agent_state_federated(NULL, 0, "b.test"));

    /* JSON X.509: uid 1 gets b.test only, uid 2 none */
    struct mf_buf out;
    size_t count = 0;
    json_t *doc = NULL;
    mf_buf_init(&out, AGENT_RENDER_MAX, MF_BUF_SECRET);
    ASSERT_OK(agent_snap_render_x509(s, s1, 1, &out, &count));
    ASSERT_OK(mf_json_parse(mf_buf_cstr(&out), out.len, AGENT_RENDER_MAX, &doc));
    const json_t *fb = json_object_get(doc, "federated_bundles");
    assert_int_equal(json_object_size(fb), 1);
    assert_non_null(
        strstr(json_string_value(json_object_get(fb, "spiffe://b.test")), "BEGIN CERTIFICATE"));
    json_decref(doc);
    mf_buf_reset(&out);
    ASSERT_OK(agent_snap_render_x509(s, s2, 1, &out, &count));
    ASSERT_OK(mf_json_parse(mf_buf_cstr(&out), out.len, AGENT_RENDER_MAX, &doc));
    assert_int_equal(json_object_size(json_object_get(doc, "federated_bundles")), 0);
    json_decref(doc);

    /* bundles: ours plus b.test for uid 1; ours alone for uid 2 */
    mf_buf_reset(&out);
    ASSERT_OK(agent_snap_render_bundles_for(s, s1, 1, &out));
    assert_non_null(strstr(mf_buf_cstr(&out), "\"spiffe://b.test\""));
    assert_null(strstr(mf_buf_cstr(&out), "c.test"));
    mf_buf_reset(&out);
    ASSERT_OK(agent_snap_render_bundles_for(s, s2, 1, &out));
    assert_null(strstr(mf_buf_cstr(&out), "b.test"));

    /* the trust set for JWT validation: one slot per trust domain */
    struct mf_bundle_set set;
    mf_bundle_set_init(&set);
    ASSERT_OK(agent_snap_trust(s, s1, 1, &set));
    assert_int_equal(set.n, 1); /* no own bundle in this snapshot */
    assert_non_null(mf_bundle_set_find(&set, "b.test"));
    mf_bundle_set_cleanup(&set);
    mf_bundle_set_init(&set);
    ASSERT_OK(agent_snap_trust(s, s2, 1, &set));
    assert_int_equal(set.n, 0);
    mf_bundle_set_cleanup(&set);

    /* the cache keeps them (federated.json), and says when they change */
    struct agent_cache c;
    bool changed = false;
    mf_bundle_set_init(&set);
    ASSERT_OK(mf_bundle_set_put(&set, bb));
    ASSERT_OK(agent_cache_open(f->dir, &c));
    ASSERT_OK(agent_cache_set_federated(&c, &set, &changed));
    assert_true(changed);
    ASSERT_OK(agent_cache_set_federated(&c, &set, &changed));
    assert_false(changed);
    agent_cache_close(&c);
    ASSERT_OK(agent_cache_open(f->dir, &c));
    ASSERT_OK(agent_cache_load(&c, "example.org"));
    assert_int_equal(c.fed.n, 1);
    assert_true(mf_bundle_same_keys(mf_bundle_set_find(&c.fed, "b.test"), bb));
    agent_cache_close(&c);
    mf_bundle_set_cleanup(&set);

    mf_buf_cleanup(&out);
    agent_snap_unref(s);
    mf_bundle_free(bb);
    mf_bundle_free(cb);
    mft_free_ident(&bca);
    mft_free_ident(&cca);
    mf_key_free(k1);
    mf_key_free(k2);
    mf_certs_cleanup(&c1);
    mf_certs_cleanup(&c2);
    mf_selector_cleanup(&s1[0]);
    mf_selector_cleanup(&s2[0]);
}

static void test_agent_entry_from_json_bad_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"id\":\"e\",\"spiffe_id\":\"spiffe://example.org/x\",\"selectors\":[]}",
        "{\"id\":\"e\",\"spiffe_id\":\"spiffe://example.org/x\",\"selectors\":[\"k8s:ns:x\"]}",
        "{\"id\":\"e\",\"spiffe_id\":\"http://example.org/x\",\"selectors\":[\"unix:uid:1\"]}",
        "{\"id\":\"e\",\"spiffe_id\":\"spiffe://example.org/x\",\"selectors\":[1]}",
        "{\"spiffe_id\":\"spiffe://example.org/x\",\"selectors\":[\"unix:uid:1\"]}",
        "{\"id\":\"e\",\"spiffe_id\":\"spiffe://example.org/x\",\"selectors\":[\"unix:uid:1\"],"
        "\"ttl\":-5}",
        "{\"id\":\"e\",\"spiffe_id\":\"spiffe://example.org/x\",\"selectors\":[\"unix:uid:1\"],"
        "\"federates_with\":[\"spiffe://b.test/path\"]}",
        "{\"id\":\"e\",\"spiffe_id\":\"spiffe://example.org/x\",\"selectors\":[\"unix:uid:1\"],"
        "\"federates_with\":[7]}",
        "{\"id\":\"e\",\"spiffe_id\":\"spiffe://example.org/x\",\"selectors\":[\"unix:uid:1\"],"
        "\"federates_with\":\"spiffe://b.test\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *obj = NULL;
        struct agent_entry e;
        ASSERT_OK(mf_json_parse(bad[i], strlen(bad[i]), 4096, &obj));
        assert_false(mf_ok(agent_entry_from_json(obj, &e)));
        assert_null(e.id);
        json_decref(obj);
    }
}

/* The digest tells a changed entry: what the agent reads counts, member
 * order and members it does not read do not; the canonical JSON parses back
 * to the same entry. */
static void test_agent_entry_digest_canonical(void **state)
{
    (void)state;
    struct agent_entry a, b;
    const char *base = "{\"id\":\"e1\",\"spiffe_id\":\"spiffe://example.org/web\","
                       "\"selectors\":[\"unix:uid:1000\",\"unix:gid:5\"],\"ttl\":600,"
                       "\"hint\":\"web\",\"dns_names\":[\"web.example\"],"
                       "\"federates_with\":[\"spiffe://peer.test\"]}";
    entry(base, &a);
    entry("{\"revision\":9,\"federates_with\":[\"spiffe://peer.test\"],\"hint\":\"web\","
          "\"ttl\":600,\"dns_names\":[\"web.example\"],\"selectors\":[\"unix:uid:1000\","
          "\"unix:gid:5\"],\"spiffe_id\":\"spiffe://example.org/web\",\"id\":\"e1\","
          "\"parent_id\":\"spiffe://example.org/mayfly/agent/n\"}",
          &b);
    assert_memory_equal(a.digest, b.digest, sizeof(a.digest));
    agent_entry_cleanup(&b);

    /* round trip through the canonical JSON */
    json_t *o = NULL;
    ASSERT_OK(agent_entry_to_json(&a, &o));
    ASSERT_OK(agent_entry_from_json(o, &b));
    json_decref(o);
    assert_memory_equal(a.digest, b.digest, sizeof(a.digest));
    assert_string_equal(b.id, "e1");
    assert_string_equal(b.hint, "web");
    assert_int_equal(b.ttl, 600);
    assert_int_equal(b.n_sels, 2);
    assert_int_equal(b.n_dns, 1);
    assert_string_equal(b.dns[0], "web.example");
    assert_int_equal(b.n_fed, 1);
    assert_string_equal(b.fed[0], "spiffe://peer.test");
    agent_entry_cleanup(&b);

    /* each field the agent reads changes it */
    static const char *const changed[] = {
        "{\"id\":\"e1\",\"spiffe_id\":\"spiffe://example.org/web\",\"selectors\":["
        "\"unix:uid:1000\"],\"ttl\":600,\"hint\":\"web\",\"dns_names\":[\"web.example\"],"
        "\"federates_with\":[\"spiffe://peer.test\"]}",
        "{\"id\":\"e1\",\"spiffe_id\":\"spiffe://example.org/web\",\"selectors\":["
        "\"unix:uid:1000\",\"unix:gid:5\"],\"ttl\":601,\"hint\":\"web\",\"dns_names\":["
        "\"web.example\"],\"federates_with\":[\"spiffe://peer.test\"]}",
        "{\"id\":\"e1\",\"spiffe_id\":\"spiffe://example.org/web\",\"selectors\":["
        "\"unix:uid:1000\",\"unix:gid:5\"],\"ttl\":600,\"dns_names\":[\"web.example\"],"
        "\"federates_with\":[\"spiffe://peer.test\"]}",
        "{\"id\":\"e1\",\"spiffe_id\":\"spiffe://example.org/web\",\"selectors\":["
        "\"unix:uid:1000\",\"unix:gid:5\"],\"ttl\":600,\"hint\":\"web\","
        "\"federates_with\":[\"spiffe://peer.test\"]}",
        "{\"id\":\"e1\",\"spiffe_id\":\"spiffe://example.org/web\",\"selectors\":["
        "\"unix:uid:1000\",\"unix:gid:5\"],\"ttl\":600,\"hint\":\"web\",\"dns_names\":["
        "\"web.example\"]}",
        "{\"id\":\"e1\",\"spiffe_id\":\"spiffe://example.org/api\",\"selectors\":["
        "\"unix:uid:1000\",\"unix:gid:5\"],\"ttl\":600,\"hint\":\"web\",\"dns_names\":["
        "\"web.example\"],\"federates_with\":[\"spiffe://peer.test\"]}",
    };
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
        entry(changed[i], &b);
        assert_memory_not_equal(a.digest, b.digest, sizeof(a.digest));
        agent_entry_cleanup(&b);
    }
    agent_entry_cleanup(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agent_cache_store_reload_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_cache_expired_dropped_corrupt_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_file_write_atomic_symlink_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_cache_open_removes_interrupted_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_cache_find_indexed_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_snap_match_all_selectors_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_snap_add_owns_its_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_snap_federated_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_snap_answer_once_per_snapshot, setup, teardown),
        cmocka_unit_test(test_agent_entry_from_json_bad_refused),
        cmocka_unit_test(test_agent_entry_digest_canonical),
    };
    return cmocka_run_group_tests_name("agent_cache", tests, NULL, NULL);
}
