/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mf_workload: the Workload API client, its strict parser
 * and the watching X.509 source.
 *
 * A fake Workload API runs in-process: libmicrohttpd (one thread per
 * connection, so that a watch stream may block) on a Unix socket in a
 * mkdtemp directory, built with the mf_httpd helpers. It serves JSON built
 * from certificates issued here with mf_x509 (a CA for example.org, SVIDs
 * for /a and /b, a rotated /a, and a foreign CA), refuses requests without
 * the security header with 400 as the agent does, and can be told to answer
 * 403, a malformed body, or to push further lines (a rotation, an invalid
 * update, a withdrawal) on open watch streams. No network.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>
#include <jansson.h>
#include <microhttpd.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/core/mf_json.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_httpd.h"
#include "api/net/mf_http.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"
#include "api/workload/mf_workload.h"
#include "tests/unit/mf_test.h"

#define T_MS      5000
#define PATH_CAP  256
#define LINES_MAX 16

/* ---- certificates ---------------------------------------------------------- */

static struct {
    struct mft_ident ca;    /* spiffe://example.org */
    struct mft_ident a;     /* spiffe://example.org/a */
    struct mft_ident b;     /* spiffe://example.org/b */
    struct mft_ident a2;    /* spiffe://example.org/a, rotated */
    struct mft_ident other; /* spiffe://other.org (a second CA) */
    struct mft_ident o;     /* spiffe://other.org/x */
} F;

static void serial_of(const struct mf_cert *c, char out[MF_SERIAL_HEX_MAX])
{
    mf_cert_serial_hex(c, out);
}

/* ---- documents --------------------------------------------------------------- */

struct spec {
    const struct mft_ident *leaf;      /* certificate of the SVID */
    const struct mft_ident *key;       /* whose key to send (normally leaf) */
    const char *spiffe_id;             /* NULL: the leaf's */
    const char *hint;                  /* NULL: no member */
    const struct mft_ident *bundle_ca; /* NULL: F.ca */
    const char *key_label;             /* NULL: keep "PRIVATE KEY" */
};

static char *pem_of_cert(const struct mf_cert *c)
{
    struct mf_certs cs;
    struct mf_buf b;
    mf_certs_init(&cs);
    mf_buf_init(&b, 1u << 20, 0);
    ASSERT_OK(mf_certs_push(&cs, (struct mf_cert *)(uintptr_t)c));
    ASSERT_OK(mf_certs_to_pem(&cs, &b));
    char *s = strdup(mf_buf_cstr(&b));
    mf_buf_cleanup(&b);
    mf_certs_cleanup(&cs);
    return s;
}

/* Replaces every "from" in s by "to" (test helper; s is malloc'd). */
static char *replace_all(char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = strstr(s, from); p != NULL; p = strstr(p + fl, from)) {
        n++;
    }
    char *out = malloc(strlen(s) + n * (tl + 1) + 1);
    assert_non_null(out);
    char *w = out;
    const char *r = s;
    for (const char *p = strstr(r, from); p != NULL; p = strstr(r, from)) {
        memcpy(w, r, (size_t)(p - r));
        w += p - r;
        memcpy(w, to, tl);
        w += tl;
        r = p + fl;
    }
    memcpy(w, r, strlen(r) + 1);
    free(s);
    return out;
}

static json_t *svid_obj(const struct spec *s)
{
    char when[MF_RFC3339_LEN];
    struct mf_buf kp;
    mf_buf_init(&kp, 8192, MF_BUF_SECRET);
    ASSERT_OK(mf_key_to_pem(s->key != NULL ? s->key->key : s->leaf->key, &kp));
    char *key = strdup(mf_buf_cstr(&kp));
    mf_buf_cleanup(&kp);
    if (s->key_label != NULL) {
        key = replace_all(key, "PRIVATE KEY", s->key_label);
    }
    char *chain = pem_of_cert(s->leaf->cert);
    char *bundle = pem_of_cert((s->bundle_ca != NULL ? s->bundle_ca : &F.ca)->cert);
    mf_time_format(mf_cert_not_after(s->leaf->cert), when);
    const char *id = s->spiffe_id != NULL ? s->spiffe_id : mf_cert_spiffe_id_str(s->leaf->cert);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "spiffe_id", id, "x509_svid", chain,
                          "x509_svid_key", key, "bundle", bundle, "expires_at", when);
    assert_non_null(o);
    if (s->hint != NULL) {
        assert_int_equal(json_object_set_new(o, "hint", json_string(s->hint)), 0);
    }
    memset(key, 0, strlen(key));
    free(key);
    free(chain);
    free(bundle);
    return o;
}

static json_t *doc_obj(const struct spec *specs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(json_array_append_new(arr, svid_obj(&specs[i])), 0);
    }
    json_t *root = json_pack("{s:o, s:{}}", "svids", arr, "federated_bundles");
    assert_non_null(root);
    return root;
}

static char *dump(json_t *root)
{
    char *s = json_dumps(root, JSON_COMPACT);
    assert_non_null(s);
    json_decref(root);
    return s;
}

static char *doc(const struct spec *specs, size_t n)
{
    return dump(doc_obj(specs, n));
}

static mf_res parse_str(const char *s, struct mf_x509_context **out)
{
    return mf_x509_context_parse(s, strlen(s), mf_now(), out);
}

/* ---- the fake Workload API ------------------------------------------------- */

enum mode { SERVE_DOC, SERVE_403, SERVE_400, SERVE_503, SERVE_RAW };

static char g_dir[64];
static char g_sock[128];
static struct MHD_Daemon *g_mhd;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
/* protected by g_mu: */
static enum mode g_mode;
static char *g_doc;              /* GET /v1/x509 answer (SERVE_DOC/RAW) */
static char *g_lines[LINES_MAX]; /* watch stream: lines pushed so far */
static size_t g_nlines;
static bool g_stop;               /* end every stream */
static unsigned g_end_gen;        /* bump to end the open streams */
static atomic_int g_no_header;    /* requests refused for lacking the header */
static atomic_int g_watch_starts; /* watch streams begun */

struct stream {
    size_t next;      /* index of the next line to send */
    unsigned end_gen; /* g_end_gen when the stream began */
    char *pending;    /* owned copy with '\n' */
    size_t off;
};

static void stream_free(void *cls)
{
    struct stream *st = cls;
    free(st->pending);
    free(st);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    (void)pos;
    for (;;) {
        if (st->pending != NULL) {
            size_t len = strlen(st->pending);
            size_t n = len - st->off;
            if (n > max) {
                n = max;
            }
            memcpy(buf, st->pending + st->off, n);
            st->off += n;
            if (st->off == len) {
                free(st->pending);
                st->pending = NULL;
                st->off = 0;
            }
            return (ssize_t)n;
        }
        pthread_mutex_lock(&g_mu);
        while (!g_stop && g_end_gen == st->end_gen && st->next >= g_nlines) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            (void)pthread_cond_timedwait(&g_cv, &g_mu, &ts);
        }
        if (g_stop || g_end_gen != st->end_gen) {
            pthread_mutex_unlock(&g_mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        const char *line = g_lines[st->next++];
        size_t len = strlen(line);
        st->pending = malloc(len + 2);
        if (st->pending != NULL) {
            memcpy(st->pending, line, len);
            memcpy(st->pending + len, "\n", 2);
        }
        pthread_mutex_unlock(&g_mu);
        if (st->pending == NULL) {
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static enum MHD_Result start_stream(struct MHD_Connection *conn)
{
    struct stream *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return MHD_NO;
    }
    pthread_mutex_lock(&g_mu);
    /* the current state first (E13), then whatever is pushed later */
    st->next = g_nlines > 0 ? g_nlines - 1 : 0;
    st->end_gen = g_end_gen;
    pthread_mutex_unlock(&g_mu);
    atomic_fetch_add(&g_watch_starts, 1);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (r == NULL) {
        free(st);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct mf_httpd_req *req = NULL;
    enum MHD_Result ret;
    if (!mf_httpd_body(conn, con_cls, upload_data, upload_size, 1024, &req, &ret)) {
        return ret;
    }
    const char *h = mf_httpd_header(conn, "workload.spiffe.io");
    if (h == NULL || strcmp(h, "true") != 0) {
        atomic_fetch_add(&g_no_header, 1);
        return mf_httpd_reply_error(conn, 400, "invalid_argument",
                                    "security header missing from request");
    }
    if (strcmp(method, "GET") != 0 || strcmp(url, "/v1/x509") != 0) {
        return mf_httpd_reply_error(conn, 404, "not_found", "no such endpoint");
    }
    pthread_mutex_lock(&g_mu);
    enum mode m = g_mode;
    char *body = g_doc != NULL ? strdup(g_doc) : NULL;
    pthread_mutex_unlock(&g_mu);
    switch (m) {
    case SERVE_403:
        ret = mf_httpd_reply_error(conn, 403, "permission_denied", "no identity issued");
        break;
    case SERVE_400:
        ret = mf_httpd_reply_error(conn, 400, "invalid_argument", "bad\nthing");
        break;
    case SERVE_503:
        ret = mf_httpd_reply_error(conn, 503, "unavailable", "starting");
        break;
    case SERVE_DOC:
    case SERVE_RAW:
    default: {
        const char *w = mf_httpd_query(conn, "watch");
        if (w != NULL && strcmp(w, "true") == 0) {
            ret = start_stream(conn);
        } else {
            ret = mf_httpd_reply_buf(conn, 200, "application/json", body != NULL ? body : "",
                                     body != NULL ? strlen(body) : 0);
        }
        break;
    }
    }
    free(body);
    return ret;
}

static void set_mode(enum mode m, const char *body)
{
    pthread_mutex_lock(&g_mu);
    g_mode = m;
    free(g_doc);
    g_doc = body != NULL ? strdup(body) : NULL;
    pthread_mutex_unlock(&g_mu);
}

/* Appends a line to the watch stream (and makes it the current state). */
static void push_line(const char *line)
{
    pthread_mutex_lock(&g_mu);
    assert_true(g_nlines < LINES_MAX);
    g_lines[g_nlines++] = strdup(line);
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void end_streams(void)
{
    pthread_mutex_lock(&g_mu);
    g_end_gen++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void reset_server(void)
{
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_nlines; i++) {
        free(g_lines[i]);
        g_lines[i] = NULL;
    }
    g_nlines = 0;
    g_end_gen++;
    g_mode = SERVE_DOC;
    free(g_doc);
    g_doc = NULL;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static int group_setup(void **state)
{
    (void)state;
    int64_t now = mf_now();
    mft_make_ca(&F.ca, "spiffe://example.org", now - 3600);
    mft_make_leaf(&F.a, &F.ca, "spiffe://example.org/a", now, 3600);
    mft_make_leaf(&F.b, &F.ca, "spiffe://example.org/b", now, 3600);
    mft_make_leaf(&F.a2, &F.ca, "spiffe://example.org/a", now, 7200);
    mft_make_ca(&F.other, "spiffe://other.org", now - 3600);
    mft_make_leaf(&F.o, &F.other, "spiffe://other.org/x", now, 3600);

    if (mft_tmpdir(g_dir, sizeof(g_dir), "workload") != 0) {
        return -1;
    }
    snprintf(g_sock, sizeof(g_sock), "%s/agent.sock", g_dir);
    /* a thread per connection: watch streams block in their reader */
    g_mhd = mft_mhd_unix(g_sock, MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                         handler, NULL, NULL, NULL, 0);
    return g_mhd != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    pthread_mutex_lock(&g_mu);
    g_stop = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    MHD_stop_daemon(g_mhd);
    reset_server();
    mft_rmdir(g_dir);
    mft_free_ident(&F.ca);
    mft_free_ident(&F.a);
    mft_free_ident(&F.b);
    mft_free_ident(&F.a2);
    mft_free_ident(&F.other);
    mft_free_ident(&F.o);
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    reset_server();
    atomic_store(&g_no_header, 0);
    atomic_store(&g_watch_starts, 0);
    return 0;
}

static void addr_of(char *out, size_t cap)
{
    snprintf(out, cap, "unix://%s", g_sock);
}

/* ---- parsing ------------------------------------------------------------------ */

static void test_mf_x509_context_parse_two_svids_ok(void **state)
{
    (void)state;
    struct spec s[] = {{.leaf = &F.a, .hint = "first"}, {.leaf = &F.b, .hint = "second"}};
    char *d = doc(s, 2);
    struct mf_x509_context *x = NULL;
    ASSERT_OK(parse_str(d, &x));
    assert_int_equal(x->n_svids, 2);
    const struct mf_x509_svid *def = mf_x509_context_default(x);
    assert_string_equal(def->id.str, "spiffe://example.org/a");
    assert_string_equal(def->hint, "first");
    assert_int_equal(def->chain.n, 1);
    assert_true(mf_cert_matches_key(def->chain.v[0], def->key));
    assert_int_equal(def->expires_at, mf_cert_not_after(F.a.cert));
    assert_string_equal(mf_x509_context_by_hint(x, "second")->id.str, "spiffe://example.org/b");
    assert_null(mf_x509_context_by_hint(x, "third"));
    assert_int_equal(x->bundles.n, 1);
    assert_non_null(mf_bundle_set_find(&x->bundles, "example.org"));
    mf_x509_context_free(x);
    free(d);
}

static void test_mf_x509_context_parse_duplicate_hint_first_wins(void **state)
{
    (void)state;
    struct spec s[] = {{.leaf = &F.a, .hint = "h"}, {.leaf = &F.b, .hint = "h"}};
    char *d = doc(s, 2);
    struct mf_x509_context *x = NULL;
    ASSERT_OK(parse_str(d, &x));
    assert_int_equal(x->n_svids, 1);
    assert_string_equal(x->svids[0].id.str, "spiffe://example.org/a");
    mf_x509_context_free(x);
    free(d);
}

static void test_mf_x509_context_parse_key_mismatch_refused(void **state)
{
    (void)state;
    struct spec s[] = {{.leaf = &F.a}, {.leaf = &F.b, .key = &F.a}};
    char *d = doc(s, 2);
    struct mf_x509_context *x = NULL;
    /* one bad SVID refuses the whole update (E27) */
    ASSERT_ERR(parse_str(d, &x), MF_ERR_CRYPTO_MISMATCH);
    assert_null(x);
    free(d);
}

static void test_mf_x509_context_parse_id_not_leaf_refused(void **state)
{
    (void)state;
    struct spec s[] = {{.leaf = &F.a, .spiffe_id = "spiffe://example.org/b"}};
    char *d = doc(s, 1);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(parse_str(d, &x), MF_ERR_AUTH_SVID);
    free(d);
}

static void test_mf_x509_context_parse_bad_id_refused(void **state)
{
    (void)state;
    struct spec s1[] = {{.leaf = &F.a, .spiffe_id = "spiffe://example.org"}};
    struct spec s2[] = {{.leaf = &F.a, .spiffe_id = "spiffe://Example.org/a"}};
    char *d1 = doc(s1, 1);
    char *d2 = doc(s2, 1);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(parse_str(d1, &x), MF_ERR_ID_NO_PATH);
    ASSERT_ERR(parse_str(d2, &x), MF_ERR_ID_TD_CHAR);
    free(d1);
    free(d2);
}

static void test_mf_x509_context_parse_foreign_bundle_untrusted(void **state)
{
    (void)state;
    /* an SVID that does not chain to the bundle it came with */
    struct spec s[] = {{.leaf = &F.a, .bundle_ca = &F.other}};
    char *d = doc(s, 1);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(parse_str(d, &x), MF_ERR_AUTH_UNTRUSTED);
    free(d);
}

static void test_mf_x509_context_parse_expired_refused(void **state)
{
    (void)state;
    struct spec s[] = {{.leaf = &F.a}};
    char *d = doc(s, 1);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(mf_x509_context_parse(d, strlen(d), mf_cert_not_after(F.a.cert) + 1, &x),
               MF_ERR_AUTH_EXPIRED);
    free(d);
}

static void test_mf_x509_context_parse_sec1_key_label_refused(void **state)
{
    (void)state;
    struct spec s[] = {{.leaf = &F.a, .key_label = "EC PRIVATE KEY"}};
    char *d = doc(s, 1);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(parse_str(d, &x), MF_ERR_PROTO_PEM);
    free(d);
}

static void test_mf_x509_context_parse_key_in_chain_refused(void **state)
{
    (void)state;
    json_t *root = doc_obj((struct spec[]){{.leaf = &F.a}}, 1);
    json_t *o = json_array_get(json_object_get(root, "svids"), 0);
    /* a chain that carries something other than certificates */
    char *chain = malloc(16384);
    snprintf(chain, 16384, "%s%s", json_string_value(json_object_get(o, "x509_svid")),
             json_string_value(json_object_get(o, "x509_svid_key")));
    json_object_set_new(o, "x509_svid", json_string(chain));
    free(chain);
    char *d = dump(root);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(parse_str(d, &x), MF_ERR_PROTO_PEM);
    free(d);
}

static void test_mf_x509_context_parse_two_keys_refused(void **state)
{
    (void)state;
    json_t *root = doc_obj((struct spec[]){{.leaf = &F.a}}, 1);
    json_t *o = json_array_get(json_object_get(root, "svids"), 0);
    const char *k = json_string_value(json_object_get(o, "x509_svid_key"));
    char *two = malloc(2 * strlen(k) + 1);
    memcpy(two, k, strlen(k));
    memcpy(two + strlen(k), k, strlen(k) + 1);
    json_object_set_new(o, "x509_svid_key", json_string(two));
    free(two);
    char *d = dump(root);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(parse_str(d, &x), MF_ERR_PROTO_PEM);
    free(d);
}

static void test_mf_x509_context_parse_unknown_member_refused(void **state)
{
    (void)state;
    json_t *root = doc_obj((struct spec[]){{.leaf = &F.a}}, 1);
    json_object_set_new(json_array_get(json_object_get(root, "svids"), 0), "extra", json_true());
    char *d1 = dump(root);
    root = doc_obj((struct spec[]){{.leaf = &F.a}}, 1);
    json_object_set_new(root, "crl", json_array());
    char *d2 = dump(root);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(parse_str(d1, &x), MF_ERR_PROTO_JSON);
    ASSERT_ERR(parse_str(d2, &x), MF_ERR_PROTO_JSON);
    free(d1);
    free(d2);
}

static void test_mf_x509_context_parse_wrong_types_refused(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"svids\":{}}",
        "{\"svids\":[]}",
        "{\"svids\":[1]}",
        "{\"svids\":[{\"spiffe_id\":5}]}",
        "[]",
        "{\"svids\":[],\"svids\":[]}",
        "{\"svids\":[{\"spiffe_id\":\"spiffe://example.org/a\",\"spiffe_id\":\"x\"}]}",
        "{\"svids\":[",
        "",
        "{\"svids\":[{\"spiffe_id\":\"spiffe://example.org/a\\u0000\"}]}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct mf_x509_context *x = NULL;
        mf_res r = parse_str(docs[i], &x);
        if (mf_ok(r) || mf_err_category(r.err) != MF_CAT_PROTO) {
            fail_msg("doc %zu: got %s", i, mf_err_name(r.err));
        }
        assert_null(x);
    }
}

static void test_mf_x509_context_parse_missing_member_refused(void **state)
{
    (void)state;
    static const char *const members[] = {"spiffe_id", "x509_svid", "x509_svid_key", "bundle",
                                          "expires_at"};
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        json_t *root = doc_obj((struct spec[]){{.leaf = &F.a}}, 1);
        json_object_del(json_array_get(json_object_get(root, "svids"), 0), members[i]);
        char *d = dump(root);
        struct mf_x509_context *x = NULL;
        ASSERT_ERR(parse_str(d, &x), MF_ERR_PROTO_JSON);
        free(d);
    }
}

static void test_mf_x509_context_parse_bad_expires_at_refused(void **state)
{
    (void)state;
    json_t *root = doc_obj((struct spec[]){{.leaf = &F.a}}, 1);
    json_object_set_new(json_array_get(json_object_get(root, "svids"), 0), "expires_at",
                        json_string("tomorrow"));
    char *d = dump(root);
    struct mf_x509_context *x = NULL;
    mf_res r = parse_str(d, &x);
    assert_false(mf_ok(r));
    assert_null(x);
    free(d);
}

static void test_mf_x509_context_parse_cap_plus_one_refused(void **state)
{
    (void)state;
    size_t n = MF_WORKLOAD_DOC_MAX + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(mf_x509_context_parse(big, n, mf_now(), &x), MF_ERR_PROTO_TOO_LARGE);
    /* at the cap it is read (and refused for what it says, not its size) */
    ASSERT_ERR(mf_x509_context_parse(big + 1, n - 1, mf_now(), &x), MF_ERR_PROTO_JSON);
    free(big);
}

static void test_mf_x509_context_parse_error_doc_no_entry(void **state)
{
    (void)state;
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(
        parse_str("{\"error\":\"permission_denied\",\"message\":\"no identity issued\"}", &x),
        MF_ERR_POLICY_NO_ENTRY);
    assert_string_equal(mf_err_detail(), "no identity issued");
    ASSERT_ERR(parse_str("{\"error\":\"internal\"}", &x), MF_ERR_PROTO);
}

static void test_mf_x509_context_parse_federated_ok(void **state)
{
    (void)state;
    json_t *root = doc_obj((struct spec[]){{.leaf = &F.a}}, 1);
    char *pem = pem_of_cert(F.other.cert);
    json_object_set_new(json_object_get(root, "federated_bundles"), "spiffe://other.org",
                        json_string(pem));
    char *d = dump(root);
    struct mf_x509_context *x = NULL;
    ASSERT_OK(parse_str(d, &x));
    assert_int_equal(x->bundles.n, 2);
    const struct mf_bundle *ob = mf_bundle_set_find(&x->bundles, "other.org");
    assert_non_null(ob);
    assert_int_equal(ob->x509.n, 1);
    mf_x509_context_free(x);
    free(d);

    /* a federated entry may not replace the SVIDs' own trust domain */
    root = doc_obj((struct spec[]){{.leaf = &F.a}}, 1);
    json_object_set_new(json_object_get(root, "federated_bundles"), "example.org",
                        json_string(pem));
    d = dump(root);
    ASSERT_ERR(parse_str(d, &x), MF_ERR_PROTO_JSON);
    free(d);
    root = doc_obj((struct spec[]){{.leaf = &F.a}}, 1);
    json_object_set_new(json_object_get(root, "federated_bundles"), "spiffe://other.org/x",
                        json_string(pem));
    d = dump(root);
    ASSERT_ERR(parse_str(d, &x), MF_ERR_ID_HAS_PATH);
    free(d);
    free(pem);
}

static void test_mf_x509_context_add_svid_mismatch_refused(void **state)
{
    (void)state;
    struct mf_x509_context *x = NULL;
    struct mf_certs chain;
    struct mf_key *k = NULL;
    mf_certs_init(&chain);
    ASSERT_OK(mf_x509_context_new(&x));
    ASSERT_OK(mf_certs_push(&chain, F.a.cert));
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &k));
    ASSERT_ERR(mf_x509_context_add_svid(x, &chain, k, NULL), MF_ERR_CRYPTO_MISMATCH); /* k freed */
    assert_int_equal(x->n_svids, 0);
    mf_x509_context_free(x);
    mf_certs_cleanup(&chain);
}

/* ---- endpoint ----------------------------------------------------------------- */

static void test_mf_workload_socket_path_env_ok(void **state)
{
    (void)state;
    char path[PATH_CAP];
    assert_int_equal(unsetenv(MF_WORKLOAD_ENV), 0);
    ASSERT_ERR(mf_workload_socket_path(NULL, path, sizeof(path)), MF_ERR_USAGE_ARG);
    assert_int_equal(setenv(MF_WORKLOAD_ENV, "unix:///run/agent.sock", 1), 0);
    ASSERT_OK(mf_workload_socket_path(NULL, path, sizeof(path)));
    assert_string_equal(path, "/run/agent.sock");
    /* explicit configuration wins over the environment (E7) */
    ASSERT_OK(mf_workload_socket_path("/tmp/x.sock", path, sizeof(path)));
    assert_string_equal(path, "/tmp/x.sock");
    /* the environment must be a URI (E8) */
    assert_int_equal(setenv(MF_WORKLOAD_ENV, "/run/agent.sock", 1), 0);
    assert_false(mf_ok(mf_workload_socket_path(NULL, path, sizeof(path))));
    assert_int_equal(setenv(MF_WORKLOAD_ENV, "unix://host/x", 1), 0);
    assert_false(mf_ok(mf_workload_socket_path(NULL, path, sizeof(path))));
    assert_int_equal(unsetenv(MF_WORKLOAD_ENV), 0);
}

/* ---- fetch ---------------------------------------------------------------------- */

static void test_mf_workload_fetch_x509_ok(void **state)
{
    (void)state;
    struct spec s[] = {{.leaf = &F.a, .hint = "a"}, {.leaf = &F.b, .hint = "b"}};
    char *d = doc(s, 2);
    set_mode(SERVE_DOC, d);
    char addr[PATH_CAP];
    addr_of(addr, sizeof(addr));
    struct mf_x509_context *x = NULL;
    ASSERT_OK(mf_workload_fetch_x509(addr, T_MS, &x));
    assert_int_equal(x->n_svids, 2);
    assert_string_equal(x->svids[0].id.str, "spiffe://example.org/a");
    assert_string_equal(x->svids[1].id.str, "spiffe://example.org/b");
    assert_int_equal(atomic_load(&g_no_header), 0); /* the security header went along */
    mf_x509_context_free(x);

    /* the same through SPIFFE_ENDPOINT_SOCKET */
    assert_int_equal(setenv(MF_WORKLOAD_ENV, addr, 1), 0);
    ASSERT_OK(mf_workload_fetch_x509(NULL, T_MS, &x));
    assert_int_equal(x->n_svids, 2);
    mf_x509_context_free(x);
    assert_int_equal(unsetenv(MF_WORKLOAD_ENV), 0);
    free(d);
}

static void test_mf_workload_fetch_x509_403_no_entry(void **state)
{
    (void)state;
    set_mode(SERVE_403, NULL);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(mf_workload_fetch_x509(g_sock, T_MS, &x), MF_ERR_POLICY_NO_ENTRY);
    assert_string_equal(mf_err_detail(), "no identity issued");
    assert_null(x);
}

static void test_mf_workload_fetch_x509_400_usage(void **state)
{
    (void)state;
    set_mode(SERVE_400, NULL);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(mf_workload_fetch_x509(g_sock, T_MS, &x), MF_ERR_USAGE_ARG);
    /* the server's message is kept, with control characters neutralised */
    assert_non_null(strstr(mf_err_detail(), "bad?thing"));
    set_mode(SERVE_503, NULL);
    ASSERT_ERR(mf_workload_fetch_x509(g_sock, T_MS, &x), MF_ERR_IO);
}

static void test_mf_workload_server_without_header_400(void **state)
{
    (void)state;
    /* what the client must never do: a request without the header */
    struct mf_http_conn *c = NULL;
    struct mf_http_resp resp;
    mf_http_resp_init(&resp, 4096);
    ASSERT_OK(mf_http_connect_unix(g_sock, T_MS, &c));
    ASSERT_OK(mf_http_request(c, "GET", "/v1/x509", NULL, NULL, 0, T_MS, &resp));
    assert_int_equal(resp.status, 400);
    assert_int_equal(atomic_load(&g_no_header), 1);
    mf_http_close(c);
    mf_http_resp_cleanup(&resp);
}

static void test_mf_workload_fetch_x509_malformed_refused(void **state)
{
    (void)state;
    struct mf_x509_context *x = NULL;
    set_mode(SERVE_RAW, "{\"svids\":[");
    ASSERT_ERR(mf_workload_fetch_x509(g_sock, T_MS, &x), MF_ERR_PROTO_JSON);
    set_mode(SERVE_RAW, "");
    ASSERT_ERR(mf_workload_fetch_x509(g_sock, T_MS, &x), MF_ERR_PROTO_JSON);
    struct spec s[] = {{.leaf = &F.a, .key = &F.b}};
    char *d = doc(s, 1);
    set_mode(SERVE_DOC, d);
    ASSERT_ERR(mf_workload_fetch_x509(g_sock, T_MS, &x), MF_ERR_CRYPTO_MISMATCH);
    assert_null(x);
    free(d);
}

static void test_mf_workload_fetch_x509_refused_connect(void **state)
{
    (void)state;
    char path[PATH_CAP];
    struct mf_x509_context *x = NULL;
    /* no socket file at all */
    snprintf(path, sizeof(path), "%s/missing.sock", g_dir);
    ASSERT_ERR(mf_workload_fetch_x509(path, T_MS, &x), MF_ERR_IO_CONNECT);
    /* a socket file nobody listens on: connection refused */
    snprintf(path, sizeof(path), "%s/dead.sock", g_dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
    ASSERT_ERR(mf_workload_fetch_x509(path, T_MS, &x), MF_ERR_IO_CONNECT);
    (void)unlink(path);
    /* this client speaks over Unix sockets only */
    assert_false(mf_ok(mf_workload_fetch_x509("tcp://127.0.0.1:1", T_MS, &x)));
    assert_null(x);
}

/* ---- the watching source ---------------------------------------------------------- */

struct seen {
    pthread_mutex_t mu;
    int updates;
    int withdrawals;
    char serial[MF_SERIAL_HEX_MAX];
};

static void on_update(void *arg, struct mf_x509_context *x)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->mu);
    if (x == NULL) {
        s->withdrawals++;
    } else {
        s->updates++;
        serial_of(mf_x509_context_default(x)->chain.v[0], s->serial);
    }
    pthread_mutex_unlock(&s->mu);
}

static int seen_updates(struct seen *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->updates;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static int seen_withdrawals(struct seen *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->withdrawals;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void wait_for(int (*get)(struct seen *), struct seen *s, int want)
{
    int64_t until = mf_mono_ms() + T_MS;
    while (get(s) < want) {
        if (mf_mono_ms() > until) {
            fail_msg("waited in vain for %d (have %d)", want, get(s));
        }
        usleep(10 * 1000);
    }
}

static void current_serial(struct mf_x509_source *src, char out[MF_SERIAL_HEX_MAX])
{
    struct mf_x509_context *x = NULL;
    ASSERT_OK(mf_x509_source_get(src, &x));
    serial_of(mf_x509_context_default(x)->chain.v[0], out);
    mf_x509_context_free(x);
}

static void test_mf_x509_source_watch_rotation_ok(void **state)
{
    (void)state;
    struct spec s1[] = {{.leaf = &F.a}};
    struct spec s2[] = {{.leaf = &F.a2}};
    char *d1 = doc(s1, 1);
    char *d2 = doc(s2, 1);
    char want1[MF_SERIAL_HEX_MAX], want2[MF_SERIAL_HEX_MAX], got[MF_SERIAL_HEX_MAX];
    serial_of(F.a.cert, want1);
    serial_of(F.a2.cert, want2);
    push_line(d1);

    struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct mf_x509_source_opts o = {.on_update = on_update, .arg = &seen};
    struct mf_x509_source *src = NULL;
    char addr[PATH_CAP];
    addr_of(addr, sizeof(addr));
    ASSERT_OK(mf_x509_source_new(addr, &o, &src));
    ASSERT_OK(mf_x509_source_wait(src, T_MS));
    current_serial(src, got);
    assert_string_equal(got, want1);
    uint64_t g1 = mf_x509_source_generation(src);

    /* a reader keeps its snapshot across the rotation */
    struct mf_x509_context *held = NULL;
    ASSERT_OK(mf_x509_source_get(src, &held));

    push_line(d2);
    wait_for(seen_updates, &seen, 2);
    current_serial(src, got);
    assert_string_equal(got, want2);
    assert_string_equal(seen.serial, want2);
    assert_true(mf_x509_source_generation(src) > g1);
    serial_of(held->svids[0].chain.v[0], got);
    assert_string_equal(got, want1);
    mf_x509_context_free(held);

    /* an invalid update is refused whole; the current state stays */
    push_line("{\"svids\":[{\"spiffe_id\":\"spiffe://example.org/a\"}]}");
    push_line(d1);
    wait_for(seen_updates, &seen, 3);
    current_serial(src, got);
    assert_string_equal(got, want1);
    assert_int_equal(atomic_load(&g_watch_starts), 1); /* one stream throughout */
    assert_int_equal(atomic_load(&g_no_header), 0);

    int64_t t0 = mf_mono_ms();
    mf_x509_source_free(src);
    assert_true(mf_mono_ms() - t0 < 2000); /* prompt shutdown */
    free(d1);
    free(d2);
}

static void test_mf_x509_source_reconnects_ok(void **state)
{
    (void)state;
    struct spec s1[] = {{.leaf = &F.a}};
    struct spec s2[] = {{.leaf = &F.b}};
    char *d1 = doc(s1, 1);
    char *d2 = doc(s2, 1);
    push_line(d1);
    struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct mf_x509_source_opts o = {
        .on_update = on_update, .arg = &seen, .backoff_min_ms = 20, .backoff_max_ms = 50};
    struct mf_x509_source *src = NULL;
    ASSERT_OK(mf_x509_source_new(g_sock, &o, &src));
    ASSERT_OK(mf_x509_source_wait(src, T_MS));
    /* the agent restarts: the stream ends and the state changed meanwhile */
    push_line(d2);
    wait_for(seen_updates, &seen, 2);
    end_streams();
    wait_for(seen_updates, &seen, 3);
    assert_true(atomic_load(&g_watch_starts) >= 2);
    struct mf_x509_context *x = NULL;
    ASSERT_OK(mf_x509_source_get(src, &x));
    assert_string_equal(x->svids[0].id.str, "spiffe://example.org/b");
    mf_x509_context_free(x);
    mf_x509_source_free(src);
    free(d1);
    free(d2);
}

static void test_mf_x509_source_withdrawn_no_entry(void **state)
{
    (void)state;
    struct spec s1[] = {{.leaf = &F.a}};
    char *d1 = doc(s1, 1);
    push_line(d1);
    struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct mf_x509_source_opts o = {
        .on_update = on_update, .arg = &seen, .backoff_min_ms = 20, .backoff_max_ms = 50};
    struct mf_x509_source *src = NULL;
    ASSERT_OK(mf_x509_source_new(g_sock, &o, &src));
    ASSERT_OK(mf_x509_source_wait(src, T_MS));
    /* E18: the agent ends the stream with permission denied */
    set_mode(SERVE_403, NULL);
    push_line("{\"error\":\"permission_denied\",\"message\":\"no identity issued\"}");
    wait_for(seen_withdrawals, &seen, 1);
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(mf_x509_source_get(src, &x), MF_ERR_POLICY_NO_ENTRY);
    assert_null(x);
    /* and comes back when an identity is granted again */
    set_mode(SERVE_DOC, NULL);
    push_line(d1);
    end_streams();
    wait_for(seen_updates, &seen, 2);
    ASSERT_OK(mf_x509_source_wait(src, T_MS));
    mf_x509_source_free(src);
    free(d1);
}

static void test_mf_x509_source_wait_timeout_reports_error(void **state)
{
    (void)state;
    set_mode(SERVE_403, NULL);
    struct mf_x509_source *src = NULL;
    struct mf_x509_source_opts o = {.backoff_min_ms = 20, .backoff_max_ms = 40};
    ASSERT_OK(mf_x509_source_new(g_sock, &o, &src));
    ASSERT_ERR(mf_x509_source_wait(src, 300), MF_ERR_IO_TIMEOUT);
    assert_non_null(strstr(mf_err_detail(), "no identity issued"));
    struct mf_x509_context *x = NULL;
    ASSERT_ERR(mf_x509_source_get(src, &x), MF_ERR_POLICY_NO_ENTRY);
    mf_x509_source_free(src);

    /* nothing listening: still a clean timeout, and a clean shutdown */
    char path[PATH_CAP];
    snprintf(path, sizeof(path), "%s/none.sock", g_dir);
    ASSERT_OK(mf_x509_source_new(path, NULL, &src));
    ASSERT_ERR(mf_x509_source_wait(src, 100), MF_ERR_IO_TIMEOUT);
    ASSERT_ERR(mf_x509_source_get(src, &x), MF_ERR_STATE);
    mf_x509_source_free(src);
    mf_x509_source_free(NULL);
}

static void test_mf_x509_source_new_bad_address_refused(void **state)
{
    (void)state;
    struct mf_x509_source *src = NULL;
    ASSERT_ERR(mf_x509_source_new("unix://host/x", NULL, &src), MF_ERR_USAGE_ARG);
    assert_null(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_x509_context_parse_two_svids_ok),
        cmocka_unit_test(test_mf_x509_context_parse_duplicate_hint_first_wins),
        cmocka_unit_test(test_mf_x509_context_parse_key_mismatch_refused),
        cmocka_unit_test(test_mf_x509_context_parse_id_not_leaf_refused),
        cmocka_unit_test(test_mf_x509_context_parse_bad_id_refused),
        cmocka_unit_test(test_mf_x509_context_parse_foreign_bundle_untrusted),
        cmocka_unit_test(test_mf_x509_context_parse_expired_refused),
        cmocka_unit_test(test_mf_x509_context_parse_sec1_key_label_refused),
        cmocka_unit_test(test_mf_x509_context_parse_key_in_chain_refused),
        cmocka_unit_test(test_mf_x509_context_parse_two_keys_refused),
        cmocka_unit_test(test_mf_x509_context_parse_unknown_member_refused),
        cmocka_unit_test(test_mf_x509_context_parse_wrong_types_refused),
        cmocka_unit_test(test_mf_x509_context_parse_missing_member_refused),
        cmocka_unit_test(test_mf_x509_context_parse_bad_expires_at_refused),
        cmocka_unit_test(test_mf_x509_context_parse_cap_plus_one_refused),
        cmocka_unit_test(test_mf_x509_context_parse_error_doc_no_entry),
        cmocka_unit_test(test_mf_x509_context_parse_federated_ok),
        cmocka_unit_test(test_mf_x509_context_add_svid_mismatch_refused),
        cmocka_unit_test(test_mf_workload_socket_path_env_ok),
        cmocka_unit_test_setup(test_mf_workload_fetch_x509_ok, test_setup),
        cmocka_unit_test_setup(test_mf_workload_fetch_x509_403_no_entry, test_setup),
        cmocka_unit_test_setup(test_mf_workload_fetch_x509_400_usage, test_setup),
        cmocka_unit_test_setup(test_mf_workload_server_without_header_400, test_setup),
        cmocka_unit_test_setup(test_mf_workload_fetch_x509_malformed_refused, test_setup),
        cmocka_unit_test_setup(test_mf_workload_fetch_x509_refused_connect, test_setup),
        cmocka_unit_test_setup(test_mf_x509_source_watch_rotation_ok, test_setup),
        cmocka_unit_test_setup(test_mf_x509_source_reconnects_ok, test_setup),
        cmocka_unit_test_setup(test_mf_x509_source_withdrawn_no_entry, test_setup),
        cmocka_unit_test_setup(test_mf_x509_source_wait_timeout_reports_error, test_setup),
        cmocka_unit_test(test_mf_x509_source_new_bad_address_refused),
    };
    return cmocka_run_group_tests_name("workload", tests, group_setup, group_teardown);
}
