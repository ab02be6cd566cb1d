/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_cache: entries, keys and SVIDs in memory and in 0600 files written
 * atomically. See agent_cache.h for the layout and the reasons for it.
 */
#include "agent/agent_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "agent/agent_rotate.h"
#include "api/core/mf_buf.h"
#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/pki/mf_spiffeid.h"

#define SVIDS_DIR   "svids"
#define AGENT_FILE  "agent.svid"
#define BUNDLE_FILE "bundle.json"
#define FED_FILE    "federated.json"
#define FED_MAX     32 /* trust domains one entry federates with (the CA's cap) */
#define MAX_TTL     (10ll * 365 * 24 * 3600)

/* ---- entries ------------------------------------------------------------ */

/* see agent_cache.h */
void agent_entry_cleanup(struct agent_entry *e)
{
    if (e == NULL) {
        return;
    }
    free(e->id);
    free(e->spiffe_id);
    free(e->hint);
    mf_selectors_free(e->sels, e->n_sels);
    for (size_t i = 0; i < e->n_dns; i++) {
        free(e->dns[i]);
    }
    free(e->dns);
    mf_strv_free(e->fed, e->n_fed);
    memset(e, 0, sizeof(*e));
}

/* Appends each string of v[0..n) to the array arr. */
static mf_res json_push_strs(json_t *arr, char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        MF_ENSURE(json_array_append_new(arr, json_string(v[i])) == 0, MF_ERR_NOMEM);
    }
    return MF_RES_OK;
}

/* see agent_cache.h */
mf_res agent_entry_to_json(const struct agent_entry *e, json_t **out)
{
    mf_res rc;
    MF_ENSURE_REF(e);
    MF_ENSURE_REF(out);
    *out = NULL;
    char *sel = NULL;
    json_t *o = json_object(), *sels = json_array(), *dns = NULL, *fed = NULL;
    MF_ENSURE_OUT(o != NULL && sels != NULL, MF_ERR_NOMEM);
    MF_ENSURE_OUT(json_object_set_new(o, "id", json_string(e->id)) == 0 &&
                      json_object_set_new(o, "spiffe_id", json_string(e->spiffe_id)) == 0,
                  MF_ERR_NOMEM);
    if (e->hint != NULL && e->hint[0] != '\0') {
        MF_ENSURE_OUT(json_object_set_new(o, "hint", json_string(e->hint)) == 0, MF_ERR_NOMEM);
    }
    if (e->ttl > 0) {
        MF_ENSURE_OUT(json_object_set_new(o, "ttl", json_integer((json_int_t)e->ttl)) == 0,
                      MF_ERR_NOMEM);
    }
    sel = malloc(MF_SELECTOR_STR_MAX);
    MF_ENSURE_OUT(sel != NULL, MF_ERR_NOMEM);
    for (size_t i = 0; i < e->n_sels; i++) {
        MF_TRY_OUT(mf_selector_format(&e->sels[i], sel, MF_SELECTOR_STR_MAX));
        MF_ENSURE_OUT(json_array_append_new(sels, json_string(sel)) == 0, MF_ERR_NOMEM);
    }
    MF_ENSURE_OUT(json_object_set(o, "selectors", sels) == 0, MF_ERR_NOMEM);
    if (e->n_dns > 0) {
        dns = json_array();
        MF_ENSURE_OUT(dns != NULL, MF_ERR_NOMEM);
        MF_TRY_OUT(json_push_strs(dns, e->dns, e->n_dns));
        MF_ENSURE_OUT(json_object_set(o, "dns_names", dns) == 0, MF_ERR_NOMEM);
    }
    if (e->n_fed > 0) {
        fed = json_array();
        MF_ENSURE_OUT(fed != NULL, MF_ERR_NOMEM);
        MF_TRY_OUT(json_push_strs(fed, e->fed, e->n_fed));
        MF_ENSURE_OUT(json_object_set(o, "federates_with", fed) == 0, MF_ERR_NOMEM);
    }
    *out = o;
    o = NULL;
    rc = MF_RES_OK;
out:
    free(sel);
    json_decref(sels);
    json_decref(dns);
    json_decref(fed);
    json_decref(o);
    return rc;
}

/* The digest of e's canonical JSON (agent_entry_to_json). */
static mf_res entry_digest(const struct agent_entry *e, uint8_t out[32])
{
    mf_res rc;
    json_t *o = NULL;
    char *text = NULL;
    MF_TRY(agent_entry_to_json(e, &o));
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    MF_ENSURE_OUT(text != NULL, MF_ERR_NOMEM);
    MF_TRY_OUT(mf_sha256((const uint8_t *)text, strlen(text), out));
    rc = MF_RES_OK;
out:
    free(text);
    json_decref(o);
    return rc;
}

/* see agent_cache.h */
mf_res agent_entry_from_json(const json_t *obj, struct agent_entry *out)
{
    mf_res rc;
    struct agent_entry e = {0};
    const char *id = NULL, *sid = NULL, *hint = NULL;
    const json_t *sels = NULL, *dns = NULL, *fed = NULL;
    struct mf_spiffe_id parsed;

    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE_MSG(json_is_object(obj), MF_ERR_PROTO_JSON, "entry is not an object");
    MF_TRY(mf_json_str(obj, "id", true, AGENT_ENTRY_ID_MAX, &id));
    MF_TRY(mf_json_str(obj, "spiffe_id", true, MF_SPIFFE_ID_MAX, &sid));
    MF_TRY(mf_spiffeid_parse_cstr(sid, &parsed));
    MF_TRY(mf_json_str(obj, "hint", false, AGENT_HINT_MAX, &hint));
    MF_TRY(mf_json_int(obj, "ttl", false, 0, MAX_TTL, &e.ttl));
    MF_TRY(mf_json_array(obj, "selectors", true, MF_SELECTORS_MAX, &sels));
    MF_TRY(mf_json_array(obj, "dns_names", false, AGENT_DNS_MAX, &dns));
    MF_TRY(mf_json_array(obj, "federates_with", false, FED_MAX, &fed));
    MF_ENSURE_MSG(id[0] != '\0', MF_ERR_PROTO_JSON, "entry id is empty");

    e.id = strdup(id);
    e.spiffe_id = strdup(sid);
    e.hint = strdup(hint != NULL ? hint : "");
    MF_ENSURE_OUT(e.id != NULL && e.spiffe_id != NULL && e.hint != NULL, MF_ERR_NOMEM);

    size_t ns = json_array_size(sels);
    MF_ENSURE_OUT_MSG(ns > 0, MF_ERR_PROTO_JSON, "entry %s has no selectors", id);
    e.sels = calloc(ns, sizeof(*e.sels));
    MF_ENSURE_OUT(e.sels != NULL, MF_ERR_NOMEM);
    for (size_t i = 0; i < ns; i++) {
        const json_t *s = json_array_get(sels, i);
        MF_ENSURE_OUT_MSG(json_is_string(s), MF_ERR_PROTO_JSON, "selector is not a string");
        MF_TRY_OUT(mf_selector_parse(json_string_value(s), json_string_length(s), &e.sels[i]));
        e.n_sels++;
    }
    size_t nd = dns != NULL ? json_array_size(dns) : 0;
    if (nd > 0) {
        e.dns = calloc(nd, sizeof(*e.dns));
        MF_ENSURE_OUT(e.dns != NULL, MF_ERR_NOMEM);
        for (size_t i = 0; i < nd; i++) {
            const json_t *s = json_array_get(dns, i);
            MF_ENSURE_OUT_MSG(json_is_string(s) && json_string_length(s) <= 253 &&
                                  strlen(json_string_value(s)) == json_string_length(s),
                              MF_ERR_PROTO_JSON, "bad dns name");
            e.dns[i] = strdup(json_string_value(s));
            MF_ENSURE_OUT(e.dns[i] != NULL, MF_ERR_NOMEM);
            e.n_dns++;
        }
    }
    size_t nf = fed != NULL ? json_array_size(fed) : 0;
    if (nf > 0) {
        e.fed = calloc(nf, sizeof(*e.fed));
        MF_ENSURE_OUT(e.fed != NULL, MF_ERR_NOMEM);
        for (size_t i = 0; i < nf; i++) {
            const char *ts = json_string_value(json_array_get(fed, i));
            struct mf_spiffe_id tid;
            MF_ENSURE_OUT_MSG(ts != NULL && mf_ok(mf_spiffeid_parse_cstr(ts, &tid)) &&
                                  mf_spiffeid_is_td(&tid),
                              MF_ERR_PROTO_JSON,
                              "entry %s: federates_with[%zu] is not a trust "
                              "domain ID",
                              id, i);
            e.fed[i] = strdup(tid.str);
            MF_ENSURE_OUT(e.fed[i] != NULL, MF_ERR_NOMEM);
            e.n_fed++;
        }
    }
    MF_TRY_OUT(entry_digest(&e, e.digest));
    *out = e;
    memset(&e, 0, sizeof(e));
    rc = MF_RES_OK;
out:
    agent_entry_cleanup(&e);
    return rc;
}

/* see agent_cache.h */
bool agent_entry_needs_resign(const struct agent_entry *a, const struct agent_entry *b)
{
    if (strcmp(a->spiffe_id, b->spiffe_id) != 0 || a->ttl != b->ttl || a->n_dns != b->n_dns) {
        return true;
    }
    for (size_t i = 0; i < a->n_dns; i++) {
        if (strcmp(a->dns[i], b->dns[i]) != 0) {
            return true;
        }
    }
    return false;
}

/* ---- files -------------------------------------------------------------- */

/* see agent_cache.h */
mf_res agent_file_write_atomic(int dirfd, const char *name, const void *data, size_t len,
                               mode_t mode, bool refuse_symlink)
{
    mf_res rc;
    char tmp[300];
    uint64_t rnd = 0;
    struct stat st;
    int fd = -1;
    bool created = false;

    MF_ENSURE_REF(name);
    MF_ENSURE(strchr(name, '/') == NULL && strlen(name) < 200, MF_ERR_USAGE_ARG);
    if (refuse_symlink && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        MF_ENSURE_MSG(!S_ISLNK(st.st_mode), MF_ERR_IO_SYMLINK, "%s is a symbolic link", name);
        MF_ENSURE_MSG(S_ISREG(st.st_mode), MF_ERR_IO_PERM, "%s is not a regular file", name);
    }
    MF_TRY(mf_random(&rnd, sizeof(rnd)));
    int n = snprintf(tmp, sizeof(tmp), ".%s.%016llx.tmp", name, (unsigned long long)rnd);
    MF_ENSURE(n > 0 && (size_t)n < sizeof(tmp), MF_ERR_INTERNAL);

    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    MF_ENSURE_OUT_MSG(fd >= 0, MF_ERR_IO, "create %s: %s", tmp, strerror(errno));
    created = true;
    /* the umask may have narrowed the mode; never widened, but be exact */
    MF_ENSURE_OUT(fchmod(fd, mode) == 0, MF_ERR_IO);
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        MF_ENSURE_OUT_MSG(w > 0, errno == ENOSPC ? MF_ERR_IO_NOSPACE : MF_ERR_IO, "write %s: %s",
                          tmp, strerror(errno));
        p += w;
        left -= (size_t)w;
    }
    MF_ENSURE_OUT_MSG(fsync(fd) == 0, MF_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
    MF_ENSURE_OUT(close(fd) == 0, MF_ERR_IO);
    fd = -1;
    MF_ENSURE_OUT_MSG(renameat(dirfd, tmp, dirfd, name) == 0, MF_ERR_IO, "rename to %s: %s", name,
                      strerror(errno));
    created = false;
    /* the rename itself is durable only once the directory is synced */
    (void)fsync(dirfd);
    rc = MF_RES_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (created) {
        (void)unlinkat(dirfd, tmp, 0);
    }
    return rc;
}

/* see agent_cache.h */
mf_res agent_file_read(int dirfd, const char *name, struct mf_buf *out)
{
    mf_res rc;
    char chunk[4096];
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        MF_BAIL_MSG(errno == ENOENT ? MF_ERR_IO_NOT_FOUND
                                    : (errno == ELOOP ? MF_ERR_IO_SYMLINK : MF_ERR_IO),
                    "open %s: %s", name, strerror(errno));
    }
    struct stat st;
    MF_ENSURE_OUT(fstat(fd, &st) == 0, MF_ERR_IO);
    MF_ENSURE_OUT_MSG(S_ISREG(st.st_mode), MF_ERR_IO_PERM, "%s is not a regular file", name);
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        MF_ENSURE_OUT(n >= 0, MF_ERR_IO);
        if (n == 0) {
            break;
        }
        MF_TRY_OUT(mf_buf_append(out, chunk, (size_t)n));
    }
    rc = MF_RES_OK;
out:
    mf_wipe(chunk, sizeof(chunk));
    close(fd);
    return rc;
}

/* Header line, then key PEM, then chain PEM. */
static mf_res svid_file_encode(const json_t *header, const struct mf_key *key,
                               const struct mf_certs *chain, struct mf_buf *out)
{
    MF_TRY(mf_json_dump(header, out));
    MF_TRY(mf_buf_append_u8(out, '\n'));
    MF_TRY(mf_key_to_pem(key, out));
    MF_TRY(mf_certs_to_pem(chain, out));
    return MF_RES_OK;
}

/* Parses a .svid file; *header, *key and chain are set only on success. */
static mf_res svid_file_decode(const struct mf_buf *file, json_t **header, struct mf_key **key,
                               struct mf_certs *chain)
{
    mf_res rc;
    json_t *h = NULL;
    struct mf_key *k = NULL;
    struct mf_certs cs;
    struct mf_buf der;
    char label[64];

    *header = NULL;
    *key = NULL;
    mf_certs_init(&cs);
    mf_buf_init(&der, AGENT_SVID_FILE_MAX, MF_BUF_SECRET);
    const char *text = mf_buf_cstr(file);
    const char *nl = memchr(text, '\n', file->len);
    MF_ENSURE_OUT_MSG(nl != NULL, MF_ERR_PROTO, "no header line");
    MF_TRY_OUT(mf_json_parse(text, (size_t)(nl - text), AGENT_SVID_FILE_MAX, &h));
    struct mf_cur cur;
    mf_cur_init(&cur, nl + 1, file->len - (size_t)(nl + 1 - text));
    for (;;) {
        mf_buf_reset(&der);
        mf_res r = mf_pem_next(&cur, label, sizeof(label), &der);
        if (r.err == MF_ERR_IO_EOF) {
            break;
        }
        MF_TRY_OUT(r);
        if (strcmp(label, "PRIVATE KEY") == 0) {
            MF_ENSURE_OUT_MSG(k == NULL, MF_ERR_PROTO, "two keys");
            MF_TRY_OUT(mf_key_from_der(der.data, der.len, &k));
        } else if (strcmp(label, "CERTIFICATE") == 0) {
            struct mf_cert *c = NULL;
            /* the leaf carries the key read above: its point is not
             * checked on the curve twice */
            MF_TRY_OUT(mf_cert_from_der_with_key(der.data, der.len, k, &c));
            rc = mf_certs_push(&cs, c);
            mf_cert_free(c);
            MF_TRY_OUT(rc);
        } else {
            MF_BAIL_OUT(MF_ERR_PROTO, "unexpected PEM block");
        }
    }
    MF_ENSURE_OUT_MSG(k != NULL && cs.n > 0, MF_ERR_PROTO, "key or certificate missing");
    MF_ENSURE_OUT_MSG(mf_cert_matches_key(cs.v[0], k), MF_ERR_CRYPTO_MISMATCH,
                      "key does not match certificate");
    *header = h;
    *key = k;
    *chain = cs;
    h = NULL;
    k = NULL;
    mf_certs_init(&cs);
    rc = MF_RES_OK;
out:
    json_decref(h);
    mf_key_free(k);
    mf_certs_cleanup(&cs);
    mf_buf_cleanup(&der);
    return rc;
}

static mf_res rec_file_name(const char *entry_id, char out[40])
{
    uint8_t d[32];
    char hex[65];
    MF_TRY(mf_sha256((const uint8_t *)entry_id, strlen(entry_id), d));
    mf_hex(d, 16, hex);
    int n = snprintf(out, 40, "%s.svid", hex);
    MF_ENSURE(n > 0 && n < 40, MF_ERR_INTERNAL);
    return MF_RES_OK;
}

/* ---- the cache ---------------------------------------------------------- */

/* Opens (or creates) a private directory, refusing symlinks and other
 * owners, and narrowing a mode that is too open. */
static mf_res open_private_dir(int at, const char *path, int *fd_out)
{
    struct stat st;
    *fd_out = -1;
    int fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        MF_ENSURE_MSG(mkdirat(at, path, 0700) == 0 || errno == EEXIST, MF_ERR_IO, "mkdir %s: %s",
                      path, strerror(errno));
        fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    MF_ENSURE_MSG(fd >= 0, errno == ELOOP || errno == ENOTDIR ? MF_ERR_IO_SYMLINK : MF_ERR_IO,
                  "open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || st.st_uid != geteuid()) {
        close(fd);
        MF_BAIL_MSG(MF_ERR_IO_PERM, "%s is not owned by this user", path);
    }
    if ((st.st_mode & 077) != 0 && fchmod(fd, 0700) != 0) {
        close(fd);
        MF_BAIL_MSG(MF_ERR_IO_PERM, "cannot make %s private", path);
    }
    *fd_out = fd;
    return MF_RES_OK;
}

/* Removes the temp files (".<name>.<hex>.tmp", see agent_file_write_atomic)
 * that a process killed in the middle of a write left in dirfd: only one
 * agent uses a data dir, so at open none of them can be a write under way. */
static void sweep_tmp(int dirfd, const char *path)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] != '.' || l < 6 || strcmp(de->d_name + l - 4, ".tmp") != 0) {
            continue;
        }
        if (unlinkat(dirfd, de->d_name, 0) == 0) {
            mf_log_info("removed %s/%s, left by an interrupted write", path, de->d_name);
        }
    }
    closedir(d);
}

/* see agent_cache.h */
mf_res agent_cache_open(const char *dir, struct agent_cache *c)
{
    MF_ENSURE_REF(dir);
    MF_ENSURE_REF(c);
    memset(c, 0, sizeof(*c));
    c->dirfd = -1;
    c->svids_fd = -1;
    MF_TRY(open_private_dir(AT_FDCWD, dir, &c->dirfd));
    mf_res r = open_private_dir(c->dirfd, SVIDS_DIR, &c->svids_fd);
    if (!mf_ok(r)) {
        close(c->dirfd);
        c->dirfd = -1;
        return r;
    }
    sweep_tmp(c->dirfd, dir);
    sweep_tmp(c->svids_fd, SVIDS_DIR);
    return MF_RES_OK;
}

static void rec_cleanup(struct agent_rec *r)
{
    agent_entry_cleanup(&r->entry);
    mf_key_free(r->key);
    mf_certs_cleanup(&r->chain);
    memset(r, 0, sizeof(*r));
}

/* see agent_cache.h */
void agent_cache_close(struct agent_cache *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        rec_cleanup(&c->v[i]);
    }
    free(c->v);
    free(c->index);
    mf_bundle_free(c->bundle);
    mf_bundle_set_cleanup(&c->fed);
    if (c->svids_fd >= 0) {
        close(c->svids_fd);
    }
    if (c->dirfd >= 0) {
        close(c->dirfd);
    }
    memset(c, 0, sizeof(*c));
    c->dirfd = -1;
    c->svids_fd = -1;
}

/* see agent_cache.h */
/* FNV-1a of an entry id. */
static size_t id_hash(const char *id)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return (size_t)h;
}

/* Puts position pos into the index (which has room). */
static void index_put(struct agent_cache *c, size_t pos)
{
    size_t mask = c->index_cap - 1;
    size_t s = id_hash(c->v[pos].entry.id) & mask;
    while (c->index[s] != 0) {
        s = (s + 1) & mask;
    }
    c->index[s] = pos + 1;
}

/* (Re)builds the index for n records; false when memory is short (callers
 * then scan). */
static bool index_build(struct agent_cache *c)
{
    size_t cap = 16;
    while (cap < 2 * c->n + 2) {
        cap *= 2;
    }
    size_t *ix = calloc(cap, sizeof(*ix));
    if (ix == NULL) {
        return false;
    }
    free(c->index);
    c->index = ix;
    c->index_cap = cap;
    for (size_t i = 0; i < c->n; i++) {
        index_put(c, i);
    }
    return true;
}

static void index_drop(struct agent_cache *c)
{
    free(c->index);
    c->index = NULL;
    c->index_cap = 0;
}

/* see agent_cache.h */
struct agent_rec *agent_cache_find(struct agent_cache *c, const char *id)
{
    if (c->index == NULL && !index_build(c)) {
        for (size_t i = 0; i < c->n; i++) {
            if (strcmp(c->v[i].entry.id, id) == 0) {
                return &c->v[i];
            }
        }
        return NULL;
    }
    size_t mask = c->index_cap - 1;
    for (size_t s = id_hash(id) & mask; c->index[s] != 0; s = (s + 1) & mask) {
        struct agent_rec *r = &c->v[c->index[s] - 1];
        if (strcmp(r->entry.id, id) == 0) {
            return r;
        }
    }
    return NULL;
}

/* see agent_cache.h */
mf_res agent_cache_reserve(struct agent_cache *c, size_t n)
{
    MF_ENSURE_REF(c);
    if (n <= c->cap) {
        return MF_RES_OK;
    }
    size_t bytes;
    MF_ENSURE(mf_mul_size(n, sizeof(*c->v), &bytes), MF_ERR_OVERFLOW);
    struct agent_rec *nv = realloc(c->v, bytes);
    MF_TRY_PTR(nv, MF_ERR_NOMEM);
    c->v = nv;
    c->cap = n;
    return MF_RES_OK;
}

/* see agent_cache.h */
mf_res agent_cache_add(struct agent_cache *c, struct agent_entry *entry, struct agent_rec **out)
{
    MF_ENSURE_REF(entry);
    *out = NULL;
    if (c->n == c->cap) {
        MF_TRY(agent_cache_reserve(c, c->cap == 0 ? 8 : c->cap * 2));
    }
    struct agent_rec *r = &c->v[c->n++];
    memset(r, 0, sizeof(*r));
    mf_certs_init(&r->chain);
    r->entry = *entry;
    memset(entry, 0, sizeof(*entry));
    if (c->index != NULL) {
        if (2 * c->n + 2 <= c->index_cap) {
            index_put(c, c->n - 1);
        } else if (!index_build(c)) {
            index_drop(c); /* scanned until memory allows */
        }
    }
    *out = r;
    return MF_RES_OK;
}

/* see agent_cache.h */
void agent_cache_remove(struct agent_cache *c, size_t i)
{
    char name[40];
    if (i >= c->n) {
        return;
    }
    if (mf_ok(rec_file_name(c->v[i].entry.id, name))) {
        (void)unlinkat(c->svids_fd, name, 0);
    }
    rec_cleanup(&c->v[i]);
    memmove(&c->v[i], &c->v[i + 1], (c->n - i - 1) * sizeof(*c->v));
    c->n--;
    index_drop(c); /* positions moved: rebuilt at the next find */
}

/* see agent_cache.h */
mf_res agent_cache_store(struct agent_cache *c, struct agent_rec *rec)
{
    mf_res rc;
    char name[40];
    struct mf_buf file;
    json_t *h = NULL;

    MF_ENSURE_REF(rec);
    MF_ENSURE(rec->key != NULL && rec->chain.n > 0, MF_ERR_STATE);
    mf_buf_init(&file, AGENT_SVID_FILE_MAX, MF_BUF_SECRET);
    MF_TRY_OUT(rec_file_name(rec->entry.id, name));
    json_t *entry = NULL;
    MF_TRY_OUT(agent_entry_to_json(&rec->entry, &entry));
    h = json_pack("{s:o,s:I}", "entry", entry, "renew_at_ms", (json_int_t)rec->renew_at_ms);
    MF_ENSURE_OUT(h != NULL, MF_ERR_NOMEM);
    MF_TRY_OUT(svid_file_encode(h, rec->key, &rec->chain, &file));
    MF_TRY_OUT(agent_file_write_atomic(c->svids_fd, name, file.data, file.len, 0600, false));
    rc = MF_RES_OK;
out:
    json_decref(h);
    mf_buf_cleanup(&file);
    return rc;
}

/* Loads one per-entry file into the cache. */
/* One cached SVID file, read and checked off the worker thread (on the
 * pool when there is one), then put in the cache in directory order. */
struct load_item {
    char *name;
    struct agent_entry e;
    struct mf_key *key;
    struct mf_certs chain;
    int64_t renew;
    int64_t not_after;
    mf_res r;
    char why[256];
};

struct load_job {
    struct agent_cache *c;
    struct load_item *v;
};

static void load_decode(void *arg, size_t i)
{
    struct load_job *job = arg;
    struct agent_cache *c = job->c;
    struct load_item *it = &job->v[i];
    mf_res rc;
    struct mf_buf file;
    json_t *h = NULL;
    const json_t *eobj = NULL;

    mf_buf_init(&file, AGENT_SVID_FILE_MAX, MF_BUF_SECRET);
    MF_TRY_OUT(agent_file_read(c->svids_fd, it->name, &file));
    MF_TRY_OUT(svid_file_decode(&file, &h, &it->key, &it->chain));
    MF_TRY_OUT(mf_json_object(h, "entry", true, &eobj));
    MF_TRY_OUT(mf_json_int(h, "renew_at_ms", true, 0, INT64_MAX, &it->renew));
    MF_TRY_OUT(agent_entry_from_json(eobj, &it->e));
    const char *id = mf_cert_spiffe_id_str(it->chain.v[0]);
    MF_ENSURE_OUT_MSG(id != NULL && strcmp(id, it->e.spiffe_id) == 0, MF_ERR_AUTH_SVID,
                      "SVID does not carry the entry's SPIFFE ID");
    it->not_after = mf_cert_not_after(it->chain.v[0]);
    rc = MF_RES_OK;
out:
    json_decref(h);
    mf_buf_cleanup(&file);
    it->r = rc;
    if (!mf_ok(rc)) {
        mf_err_format(rc, it->why, sizeof(it->why));
    }
}

static void load_item_cleanup(struct load_item *it)
{
    free(it->name);
    agent_entry_cleanup(&it->e);
    mf_key_free(it->key);
    mf_certs_cleanup(&it->chain);
}

/* Puts a decoded file into the cache (takes its key and chain). */
static mf_res load_insert(struct agent_cache *c, struct load_item *it)
{
    if (!agent_svid_servable(it->not_after)) {
        /* an expired SVID is never served: forget it, the entry returns
         * with the CA's next full list */
        (void)unlinkat(c->svids_fd, it->name, 0);
        return MF_RES_OK;
    }
    if (agent_cache_find(c, it->e.id) != NULL) {
        return MF_RES_OK;
    }
    struct agent_rec *r = NULL;
    MF_TRY(agent_cache_add(c, &it->e, &r));
    r->key = it->key;
    it->key = NULL;
    r->chain = it->chain;
    mf_certs_init(&it->chain);
    r->not_after = it->not_after;
    r->renew_at_ms = it->renew;
    return MF_RES_OK;
}

/* see agent_cache.h */
mf_res agent_cache_load(struct agent_cache *c, const char *td)
{
    mf_res rc = MF_RES_OK;
    struct mf_buf text;
    DIR *d = NULL;
    struct load_item *items = NULL;
    size_t n = 0, cap = 0;

    mf_buf_init(&text, MF_MAX_BUNDLE, 0);
    mf_res r = agent_file_read(c->dirfd, BUNDLE_FILE, &text);
    if (mf_ok(r)) {
        struct mf_bundle *b = NULL;
        r = mf_bundle_from_jwks(td, mf_buf_cstr(&text), text.len, &b);
        if (mf_ok(r)) {
            mf_bundle_free(c->bundle);
            c->bundle = b;
        } else {
            mf_log_warn_r(r, "ignoring %s", BUNDLE_FILE);
        }
    } else if (r.err != MF_ERR_IO_NOT_FOUND) {
        mf_log_warn_r(r, "ignoring %s", BUNDLE_FILE);
    }
    mf_buf_reset(&text);
    r = agent_file_read(c->dirfd, FED_FILE, &text);
    if (mf_ok(r)) {
        struct mf_bundle_set fs;
        r = mf_bundle_set_from_map(mf_buf_cstr(&text), text.len, &fs);
        if (mf_ok(r)) {
            mf_bundle_set_cleanup(&c->fed);
            c->fed = fs;
        } else {
            mf_log_warn_r(r, "ignoring %s", FED_FILE);
        }
    } else if (r.err != MF_ERR_IO_NOT_FOUND) {
        mf_log_warn_r(r, "ignoring %s", FED_FILE);
    }

    int fd = dup(c->svids_fd);
    MF_ENSURE_OUT(fd >= 0, MF_ERR_IO);
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        MF_BAIL_OUT(MF_ERR_IO, "opendir svids: %s", strerror(errno));
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".svid") != 0) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap == 0 ? 64 : cap * 2, bytes;
            MF_ENSURE_OUT(mf_mul_size(ncap, sizeof(*items), &bytes), MF_ERR_OVERFLOW);
            struct load_item *nv = realloc(items, bytes);
            MF_ENSURE_OUT(nv != NULL, MF_ERR_NOMEM);
            items = nv;
            cap = ncap;
        }
        memset(&items[n], 0, sizeof(items[n]));
        mf_certs_init(&items[n].chain);
        items[n].name = strdup(de->d_name);
        MF_ENSURE_OUT(items[n].name != NULL, MF_ERR_NOMEM);
        n++;
    }
    /* reading, parsing and checking every file (the key's public half is
     * computed from its scalar) is most of an agent's start: in parallel */
    struct load_job job = {.c = c, .v = items};
    if (c->pool != NULL) {
        agent_pool_run(c->pool, n, load_decode, &job);
    } else {
        for (size_t i = 0; i < n; i++) {
            load_decode(&job, i);
        }
    }
    for (size_t i = 0; i < n; i++) {
        r = items[i].r;
        if (mf_ok(r)) {
            r = load_insert(c, &items[i]);
        } else {
            r = MF_RAISE_MSG(r.err, "%s", items[i].why);
        }
        if (!mf_ok(r)) {
            mf_log_warn_r(r, "ignoring cached SVID file %s", items[i].name);
        }
    }
    rc = MF_RES_OK;
out:
    for (size_t i = 0; i < n; i++) {
        load_item_cleanup(&items[i]);
    }
    free(items);
    if (d != NULL) {
        closedir(d);
    }
    mf_buf_cleanup(&text);
    return rc;
}

/* see agent_cache.h */
mf_res agent_cache_set_bundle(struct agent_cache *c, struct mf_bundle *b)
{
    mf_res rc;
    struct mf_buf text;
    MF_ENSURE_REF(b);
    mf_buf_init(&text, MF_MAX_BUNDLE, 0);
    MF_TRY_OUT(mf_bundle_to_jwks(b, &text));
    MF_TRY_OUT(agent_file_write_atomic(c->dirfd, BUNDLE_FILE, text.data, text.len, 0600, false));
    mf_bundle_free(c->bundle);
    c->bundle = mf_bundle_ref(b);
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&text);
    return rc;
}

static bool sets_equal(const struct mf_bundle_set *a, const struct mf_bundle_set *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        const struct mf_bundle *o = mf_bundle_set_find(b, a->v[i]->td);
        if (o == NULL || !mf_bundle_same_keys(a->v[i], o) || o->sequence != a->v[i]->sequence) {
            return false;
        }
    }
    return true;
}

/* see agent_cache.h */
mf_res agent_cache_set_federated(struct agent_cache *c, const struct mf_bundle_set *set,
                                 bool *changed)
{
    mf_res rc;
    struct mf_buf text;
    struct mf_bundle_set copy;
    MF_ENSURE_REF(set);
    MF_ENSURE_REF(changed);
    *changed = false;
    if (sets_equal(&c->fed, set)) {
        return MF_RES_OK;
    }
    mf_bundle_set_init(&copy);
    mf_buf_init(&text, MF_MAX_BUNDLE, 0);
    for (size_t i = 0; i < set->n; i++) {
        MF_TRY_OUT(mf_bundle_set_put(&copy, set->v[i]));
    }
    MF_TRY_OUT(mf_bundle_set_to_map(set, &text));
    MF_TRY_OUT(agent_file_write_atomic(c->dirfd, FED_FILE, text.data, text.len, 0600, false));
    mf_bundle_set_cleanup(&c->fed);
    c->fed = copy;
    mf_bundle_set_init(&copy);
    *changed = true;
    rc = MF_RES_OK;
out:
    mf_bundle_set_cleanup(&copy);
    mf_buf_cleanup(&text);
    return rc;
}

/* see agent_cache.h */
mf_res agent_cache_load_agent(struct agent_cache *c, struct mf_key **key, struct mf_certs *chain,
                              int64_t *renew_at_ms)
{
    mf_res rc;
    struct mf_buf file;
    json_t *h = NULL;
    MF_ENSURE_REF(key);
    *key = NULL;
    mf_buf_init(&file, AGENT_SVID_FILE_MAX, MF_BUF_SECRET);
    MF_TRY_OUT(agent_file_read(c->dirfd, AGENT_FILE, &file));
    MF_TRY_OUT(svid_file_decode(&file, &h, key, chain));
    rc = mf_json_int(h, "renew_at_ms", true, 0, INT64_MAX, renew_at_ms);
    if (!mf_ok(rc)) {
        mf_key_free(*key);
        *key = NULL;
        mf_certs_cleanup(chain);
        goto out;
    }
    rc = MF_RES_OK;
out:
    json_decref(h);
    mf_buf_cleanup(&file);
    return rc;
}

/* see agent_cache.h */
mf_res agent_cache_save_agent(struct agent_cache *c, const struct mf_key *key,
                              const struct mf_certs *chain, int64_t renew_at_ms)
{
    mf_res rc;
    struct mf_buf file;
    json_t *h = NULL;
    MF_ENSURE(chain != NULL && chain->n > 0, MF_ERR_STATE);
    mf_buf_init(&file, AGENT_SVID_FILE_MAX, MF_BUF_SECRET);
    const char *id = mf_cert_spiffe_id_str(chain->v[0]);
    h = json_pack("{s:s,s:I}", "spiffe_id", id != NULL ? id : "", "renew_at_ms",
                  (json_int_t)renew_at_ms);
    MF_ENSURE_OUT(h != NULL, MF_ERR_NOMEM);
    MF_TRY_OUT(svid_file_encode(h, key, chain, &file));
    MF_TRY_OUT(agent_file_write_atomic(c->dirfd, AGENT_FILE, file.data, file.len, 0600, false));
    rc = MF_RES_OK;
out:
    json_decref(h);
    mf_buf_cleanup(&file);
    return rc;
}
