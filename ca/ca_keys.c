/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_keys: CA key journal and rotation (see ca_keys.h for the schedule).
 *
 * Crash safety: a new key is first written to its own file (temp file,
 * fsync, rename, fsync of the directory), and only then recorded in the
 * store; a crash in between leaves an unused file and nothing else. State
 * changes of one rotation step go into a single store transaction. A
 * retired key's file is deleted at once: it will never sign again, and a key
 * that is gone cannot leak.
 *
 * JWT keys follow the same steps: each CA key generation has its own
 * JWT-SVID signing key (ES256, kid = the generation's id) in
 * "<id>.jwt.key", with its public half in "<id>.jwt.pub" so that a retired
 * generation's JWT key stays in the bundle (and JWT-SVIDs it signed stay
 * verifiable) after its private half was deleted. Both are written before
 * the generation is recorded in the store.
 */
#include "ca/ca_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/pki/mf_jwt.h"
#include "ca/ca_store.h"

#define KEY_FILE_MAX (16u * 1024u)

const char *ca_key_state_name(enum ca_key_state s)
{
    switch (s) {
    case CA_KEY_PREPARED:
        return "prepared";
    case CA_KEY_ACTIVE:
        return "active";
    case CA_KEY_RETIRED:
        return "retired";
    default:
        return "unknown";
    }
}

int64_t ca_keys_max_leaf_ttl(int64_t ca_ttl)
{
    return ca_ttl / 6;
}

bool ca_keys_ttl_fits(int64_t svid_ttl, int64_t ca_ttl, char *why, size_t cap)
{
    int64_t max = ca_keys_max_leaf_ttl(ca_ttl);
    if (svid_ttl > 0 && svid_ttl <= max && max > 0) {
        if (cap > 0) {
            why[0] = '\0';
        }
        return true;
    }
    char a[32], b[32], c[32], d[32];
    mf_duration_format(svid_ttl, a, sizeof(a));
    mf_duration_format(ca_ttl, b, sizeof(b));
    mf_duration_format(max > 0 ? max : 0, c, sizeof(c));
    mf_duration_format(svid_ttl * 6, d, sizeof(d));
    snprintf(why, cap,
             "--svid-ttl %s does not fit --ca-ttl %s: a CA key signs until 5/6 of its life, so "
             "leaves may last at most 1/6 of it (%s); lower --svid-ttl to %s or raise --ca-ttl "
             "to %s",
             a, b, c, c, d);
    return false;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

void ca_keys_plan(int64_t now, const struct ca_key_rec *recs, size_t n, struct ca_plan *out)
{
    memset(out, 0, sizeof(*out));
    out->activate = -1;
    out->retire = -1;
    out->next_event = INT64_MAX;
    int active = -1, prepared = -1;
    for (size_t i = 0; i < n && i < CA_KEYS_MAX; i++) {
        if (recs[i].state == CA_KEY_ACTIVE &&
            (active < 0 || recs[i].not_before > recs[active].not_before)) {
            active = (int)i;
        }
        if (recs[i].state == CA_KEY_PREPARED &&
            (prepared < 0 || recs[i].not_before > recs[prepared].not_before)) {
            prepared = (int)i;
        }
    }
    bool active_ok = active >= 0 && now < recs[active].not_after;
    bool prepared_ok = prepared >= 0 && now < recs[prepared].not_after;

    if (!active_ok) {
        /* No key may sign: promote the prepared one or make a new one. */
        if (prepared_ok) {
            out->activate = prepared;
        } else {
            out->create_active = true;
        }
        out->retire = active;
    } else {
        const struct ca_key_rec *a = &recs[active];
        int64_t life = a->not_after - a->not_before;
        int64_t t_prepare = a->not_before + life / 2;
        int64_t t_activate = a->not_before + (life * 5) / 6;
        if (prepared < 0) {
            if (now >= t_prepare) {
                out->prepare = true;
            } else {
                out->next_event = min64(out->next_event, t_prepare);
            }
        } else if (prepared_ok) {
            if (now >= t_activate) {
                out->activate = prepared;
                out->retire = active;
            } else {
                out->next_event = min64(out->next_event, t_activate);
            }
        }
        out->next_event = min64(out->next_event, a->not_after);
    }
    for (size_t i = 0; i < n && i < CA_KEYS_MAX; i++) {
        bool expired = now >= recs[i].not_after;
        bool drop = (recs[i].state == CA_KEY_RETIRED && expired) ||
                    (recs[i].state == CA_KEY_PREPARED && expired && (int)i != out->activate);
        if (drop) {
            out->drop[out->n_drop++] = (int)i;
        } else if (recs[i].state == CA_KEY_RETIRED || recs[i].state == CA_KEY_PREPARED) {
            out->next_event = min64(out->next_event, recs[i].not_after);
        }
    }
}

/* ---- runtime ------------------------------------------------------------------ */

struct key_slot {
    struct ca_key_rec rec;
    struct mf_cert *cert;
    struct mf_key *key;        /* NULL once retired (or moved to the signer) */
    struct mf_key *jwt_key;    /* the same, for the JWT-SVID key */
    struct mf_pubkey *jwt_pub; /* NULL for a generation made before JWT keys */
};

struct ca_keys {
    pthread_mutex_t mu;          /* protects every field below */
    const struct ca_config *cfg; /* borrowed, immutable */
    struct ca_store *store;      /* borrowed; thread-safe itself */
    struct mf_spiffe_id td_id;
    struct key_slot slots[CA_KEYS_MAX];
    size_t n;
    struct ca_signer *signer; /* the active key, or NULL */
    struct mf_bundle *bundle; /* published bundle: every server's keys */
    int64_t next_event;
    int64_t others_next;                  /* earliest NotAfter of another server's key */
    bool dirty;                           /* the bundle must be rebuilt (a publish failed) */
    char server_id[CA_SERVER_ID_MAX + 1]; /* this server's id (keys/server.id) */
    struct mf_cert *up_cert;              /* upstream mode: the issuer of our keys */
    struct mf_key *up_key;
    struct mf_certs up_roots; /* upstream mode: the bundle */
};

void ca_signer_release(struct ca_signer *s)
{
    if (s == NULL) {
        return;
    }
    if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) {
        return;
    }
    mf_cert_free(s->cert);
    mf_key_free(s->key);
    mf_key_free(s->jwt_key);
    mf_certs_cleanup(&s->chain);
    free(s);
}

/* suffix: ".key" (CA key), ".jwt.key" and ".jwt.pub" (JWT key) */
static mf_res key_path(const struct ca_config *cfg, const char *id, const char *suffix, char *out,
                       size_t cap)
{
    int n = snprintf(out, cap, "%s/keys/%s%s", cfg->data_dir, id, suffix);
    MF_ENSURE(n > 0 && (size_t)n < cap, MF_ERR_USAGE_ARG);
    return MF_RES_OK;
}

/* Reads a PEM key file, refusing one that group or others may read, or
 * that is not a regular file owned by us. */
static mf_res read_key_file(const char *path, struct mf_key **out)
{
    mf_res rc;
    struct mf_buf text;
    mf_buf_init(&text, KEY_FILE_MAX, MF_BUF_SECRET);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    MF_ENSURE_OUT_MSG(fd >= 0, errno == ELOOP ? MF_ERR_IO_SYMLINK : MF_ERR_IO_NOT_FOUND,
                      "cannot open key file %s: %s", path, strerror(errno));
    struct stat sb;
    MF_ENSURE_OUT(fstat(fd, &sb) == 0, MF_ERR_IO);
    MF_ENSURE_OUT_MSG(S_ISREG(sb.st_mode), MF_ERR_IO_PERM, "key file %s is not a regular file",
                      path);
    MF_ENSURE_OUT_MSG((sb.st_mode & 077) == 0, MF_ERR_IO_PERM,
                      "key file %s is readable by group or others (mode %03o); refusing to "
                      "start: chmod 600 it (and consider the key exposed)",
                      path, (unsigned)(sb.st_mode & 0777));
    MF_ENSURE_OUT_MSG(sb.st_uid == geteuid(), MF_ERR_IO_PERM, "key file %s is not owned by us",
                      path);
    uint8_t chunk[4096];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR) {
            continue;
        }
        MF_ENSURE_OUT(got >= 0, MF_ERR_IO);
        if (got == 0) {
            break;
        }
        rc = mf_buf_append(&text, chunk, (size_t)got);
        mf_wipe(chunk, sizeof(chunk));
        MF_TRY_OUT(rc);
    }
    MF_TRY_OUT(mf_key_from_pem(mf_buf_cstr(&text), text.len, out));
    rc = MF_RES_OK;
out:
    mf_wipe(chunk, sizeof(chunk));
    if (fd >= 0) {
        close(fd);
    }
    mf_buf_cleanup(&text);
    return rc;
}

static mf_res fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    MF_ENSURE_MSG(fd >= 0, MF_ERR_IO, "cannot open %s: %s", dir, strerror(errno));
    int r = fsync(fd);
    close(fd);
    MF_ENSURE_MSG(r == 0, MF_ERR_IO, "fsync %s: %s", dir, strerror(errno));
    return MF_RES_OK;
}

/* Writes pem (a key or public key PEM, wiped by the caller) to
 * <data_dir>/keys/<id><suffix>, 0600, atomically and durably. */
static mf_res write_pem_file(const struct ca_config *cfg, const char *id, const char *suffix,
                             const struct mf_buf *pem)
{
    mf_res rc;
    char dir[4096], path[4096], tmp[4200];
    int fd = -1;
    int n = snprintf(dir, sizeof(dir), "%s/keys", cfg->data_dir);
    MF_ENSURE_OUT(n > 0 && (size_t)n < sizeof(dir), MF_ERR_USAGE_ARG);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        MF_BAIL_OUT(MF_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    }
    MF_TRY_OUT(key_path(cfg, id, suffix, path, sizeof(path)));
    n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    MF_ENSURE_OUT(n > 0 && (size_t)n < sizeof(tmp), MF_ERR_USAGE_ARG);
    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    MF_ENSURE_OUT_MSG(fd >= 0, MF_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < pem->len) {
        ssize_t w = write(fd, pem->data + off, pem->len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        MF_ENSURE_OUT_MSG(w > 0, errno == ENOSPC ? MF_ERR_IO_NOSPACE : MF_ERR_IO, "write %s: %s",
                          tmp, strerror(errno));
        off += (size_t)w;
    }
    MF_ENSURE_OUT_MSG(fsync(fd) == 0, MF_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
    close(fd);
    fd = -1;
    MF_ENSURE_OUT_MSG(rename(tmp, path) == 0, MF_ERR_IO, "rename %s: %s", tmp, strerror(errno));
    MF_TRY_OUT(fsync_dir(dir));
    rc = MF_RES_OK;
out:
    if (fd >= 0) {
        close(fd);
        (void)unlink(tmp);
    }
    return rc;
}

static mf_res write_key_file(const struct ca_config *cfg, const char *id, const char *suffix,
                             const struct mf_key *key)
{
    struct mf_buf pem;
    mf_buf_init(&pem, KEY_FILE_MAX, MF_BUF_SECRET);
    mf_res r = mf_key_to_pem(key, &pem);
    if (mf_ok(r)) {
        r = write_pem_file(cfg, id, suffix, &pem);
    }
    mf_buf_cleanup(&pem);
    return r;
}

static void remove_key_file(const struct ca_config *cfg, const char *id, const char *suffix)
{
    char path[4096];
    if (mf_ok(key_path(cfg, id, suffix, path, sizeof(path)))) {
        (void)unlink(path);
    }
}

/* Every file of generation id: the CA key and both halves of its JWT key. */
static void remove_generation_files(const struct ca_config *cfg, const char *id)
{
    remove_key_file(cfg, id, ".key");
    remove_key_file(cfg, id, ".jwt.key");
    remove_key_file(cfg, id, ".jwt.pub");
}

/* A new JWT-SVID key for generation id, written as "<id>.jwt.key" and
 * "<id>.jwt.pub" before anything refers to it. */
static mf_res jwt_key_create(const struct ca_config *cfg, const char *id, struct mf_key **key,
                             struct mf_pubkey **pub)
{
    mf_res rc;
    struct mf_buf der, pem;
    *key = NULL;
    *pub = NULL;
    mf_buf_init(&der, KEY_FILE_MAX, 0);
    mf_buf_init(&pem, KEY_FILE_MAX, 0);
    MF_TRY_OUT(mf_key_generate(MF_KEY_EC_P256, key));
    MF_TRY_OUT(mf_key_public(*key, pub));
    MF_TRY_OUT(mf_pubkey_to_der(*pub, &der));
    MF_TRY_OUT(mf_pem_encode("PUBLIC KEY", der.data, der.len, &pem));
    MF_TRY_OUT(write_key_file(cfg, id, ".jwt.key", *key));
    MF_TRY_OUT(write_pem_file(cfg, id, ".jwt.pub", &pem));
    rc = MF_RES_OK;
out:
    if (!mf_ok(rc)) {
        mf_key_free(*key);
        mf_pubkey_free(*pub);
        *key = NULL;
        *pub = NULL;
        remove_key_file(cfg, id, ".jwt.key");
    }
    mf_buf_cleanup(&der);
    mf_buf_cleanup(&pem);
    return rc;
}

/* Reads "<id>.jwt.pub" (MF_ERR_IO_NOT_FOUND when the generation predates
 * JWT keys). */
static mf_res read_jwt_pub(const struct ca_config *cfg, const char *id, struct mf_pubkey **out)
{
    mf_res rc;
    char path[4096], label[32];
    struct mf_buf text, der;
    *out = NULL;
    mf_buf_init(&text, KEY_FILE_MAX, 0);
    mf_buf_init(&der, KEY_FILE_MAX, 0);
    MF_TRY_OUT(key_path(cfg, id, ".jwt.pub", path, sizeof(path)));
    FILE *f = fopen(path, "re");
    MF_ENSURE_OUT_MSG(f != NULL, MF_ERR_IO_NOT_FOUND, "cannot open %s", path);
    char chunk[1024];
    size_t got;
    rc = MF_RES_OK;
    while (mf_ok(rc) && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = mf_buf_append(&text, chunk, got);
    }
    fclose(f);
    MF_TRY_OUT(rc);
    struct mf_cur cur;
    mf_cur_init(&cur, text.data, text.len);
    MF_TRY_OUT(mf_pem_next(&cur, label, sizeof(label), &der));
    MF_ENSURE_OUT_MSG(strcmp(label, "PUBLIC KEY") == 0, MF_ERR_PROTO_PEM, "%s: not a PUBLIC KEY",
                      path);
    MF_TRY_OUT(mf_pubkey_from_der(der.data, der.len, out));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&text);
    mf_buf_cleanup(&der);
    return rc;
}

/* A new, independent copy of a public key (keys are not refcounted). */
static mf_res pubkey_dup(const struct mf_pubkey *pk, struct mf_pubkey **out)
{
    struct mf_buf der;
    mf_buf_init(&der, KEY_FILE_MAX, 0);
    mf_res r = mf_pubkey_to_der(pk, &der);
    if (mf_ok(r)) {
        r = mf_pubkey_from_der(der.data, der.len, out);
    }
    mf_buf_cleanup(&der);
    return r;
}

/* The slot of our own key id, or NULL. */
static struct key_slot *own_slot(struct ca_keys *k, const char *id)
{
    for (size_t i = 0; i < k->n; i++) {
        if (strcmp(k->slots[i].rec.id, id) == 0) {
            return &k->slots[i];
        }
    }
    return NULL;
}

/* Adds one journal row to bundle b: its CA certificate (unless an upstream
 * root is what relying parties trust) and its JWT key. */
static mf_res bundle_add_row(struct ca_keys *k, struct mf_bundle *b, const struct ca_key_row *row)
{
    mf_res rc;
    struct mf_cert *cert = NULL;
    struct mf_pubkey *pk = NULL;
    if (k->up_cert == NULL) {
        MF_TRY(mf_cert_from_der(row->cert, row->cert_len, &cert));
        rc = mf_bundle_add_x509(b, cert);
        mf_cert_free(cert);
        MF_TRY(rc);
    }
    if (row->jwt_pub != NULL) {
        MF_TRY(mf_pubkey_from_der(row->jwt_pub, row->jwt_pub_len, &pk));
    } else {
        /* one of ours from before the journal kept JWT keys: from its file */
        const struct key_slot *s = own_slot(k, row->rec.id);
        if (s == NULL || s->jwt_pub == NULL) {
            return MF_RES_OK;
        }
        MF_TRY(pubkey_dup(s->jwt_pub, &pk));
    }
    return mf_bundle_add_jwt(b, row->rec.id, pk);
}

/* A digest of the bundle's authorities, to tell when they changed. */
static mf_res bundle_digest(const struct mf_bundle *b, int64_t *out)
{
    MF_ENSURE_REF(b);
    mf_res rc = MF_RES_OK;
    int64_t fp = 0;
    for (size_t i = 0; i < b->x509.n; i++) {
        size_t len = 0;
        const uint8_t *der = mf_cert_der(b->x509.v[i], &len);
        uint8_t h[32];
        MF_TRY(mf_sha256(der, len, h));
        int64_t part = 0;
        memcpy(&part, h, sizeof(part));
        fp ^= part;
    }
    for (size_t i = 0; i < b->n_jwt; i++) {
        struct mf_buf der;
        uint8_t h[32];
        mf_buf_init(&der, KEY_FILE_MAX, 0);
        rc = mf_pubkey_to_der(b->jwt[i].key, &der);
        if (mf_ok(rc)) {
            rc = mf_sha256(der.data, der.len, h);
        }
        mf_buf_cleanup(&der);
        MF_TRY(rc);
        int64_t part = 0;
        memcpy(&part, h + 8, sizeof(part));
        fp ^= part;
    }
    *out = fp;
    return MF_RES_OK;
}

/* Builds the bundle from the registry, in one write transaction so that
 * servers publishing at once agree: every server's keys (ordered by
 * NotBefore, so every server builds the same bundle), after dropping
 * another server's keys whose NotAfter has passed (a server that is gone
 * for good leaves nothing behind). Caller holds k->mu and has begun the
 * transaction; *fp_out is the digest of the authorities. */
static mf_res build_bundle(struct ca_keys *k, int64_t now, struct mf_bundle **out)
{
    mf_res rc;
    struct ca_key_row *rows = NULL;
    size_t n = 0;
    struct mf_bundle *b = NULL;
    *out = NULL;
    k->others_next = INT64_MAX;
    MF_TRY_OUT(ca_store_key_rows(k->store, &rows, &n));
    MF_TRY_OUT(mf_bundle_new(k->cfg->trust_domain, &b));
    if (k->up_cert != NULL) {
        for (size_t i = 0; i < k->up_roots.n; i++) {
            MF_TRY_OUT(mf_bundle_add_x509(b, k->up_roots.v[i]));
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct ca_key_rec *r = &rows[i].rec;
        bool own = strcmp(r->server, k->server_id) == 0;
        if (!own && now >= r->not_after) {
            /* every leaf and token it signed has expired */
            MF_TRY_OUT(ca_store_key_delete(k->store, r->id));
            mf_log_event(MF_LOG_INFO, __func__, "ca key of another server dropped from bundle",
                         "id", r->id, "server", r->server[0] != '\0' ? r->server : "-", NULL);
            continue;
        }
        if (!own && r->not_after < k->others_next) {
            k->others_next = r->not_after;
        }
        MF_TRY_OUT(bundle_add_row(k, b, &rows[i]));
    }
    *out = b;
    b = NULL;
    rc = MF_RES_OK;
out:
    mf_bundle_free(b);
    ca_key_rows_free(rows, n);
    return rc;
}

/* Rebuilds the signer and the bundle (build_bundle); bumps the bundle's
 * spiffe_sequence when its keys changed, on whichever server saw it
 * first. Caller holds k->mu. */
static mf_res publish(struct ca_keys *k, int64_t now, bool *changed)
{
    mf_res rc;
    struct mf_bundle *b = NULL;
    struct ca_signer *sg = NULL;
    int64_t seq = 0, prev_fp = 0, fp = 0;
    k->dirty = true;
    MF_TRY(ca_store_begin(k->store));
    rc = build_bundle(k, now, &b);
    if (mf_ok(rc)) {
        rc = bundle_digest(b, &fp);
    }
    /* spiffe_sequence goes up whenever the set of authorities changes, and
     * survives restarts: a digest of the authorities is kept next to it. */
    if (mf_ok(rc)) {
        rc = ca_store_meta_get(k->store, "bundle_sequence", &seq);
    }
    if (mf_ok(rc)) {
        rc = ca_store_meta_get(k->store, "bundle_keys", &prev_fp);
    }
    bool bump = mf_ok(rc) && (seq == 0 || fp != prev_fp);
    if (bump) {
        seq++;
        rc = ca_store_meta_set(k->store, "bundle_sequence", seq);
        if (mf_ok(rc)) {
            rc = ca_store_meta_set(k->store, "bundle_keys", fp);
        }
    }
    if (!mf_ok(rc)) {
        ca_store_rollback(k->store);
        goto out;
    }
    MF_TRY_OUT(ca_store_commit(k->store));
    MF_ENSURE_OUT(b != NULL, MF_ERR_INTERNAL);
    if (bump || k->bundle == NULL || k->bundle->sequence != (uint64_t)seq) {
        *changed = true;
    }
    b->sequence = (uint64_t)seq;

    int active = -1;
    for (size_t i = 0; i < k->n; i++) {
        if (k->slots[i].rec.state == CA_KEY_ACTIVE && k->slots[i].key != NULL) {
            active = (int)i;
        }
    }
    if (active >= 0 && (k->signer == NULL || strcmp(k->signer->id, k->slots[active].rec.id))) {
        sg = calloc(1, sizeof(*sg));
        MF_ENSURE_OUT(sg != NULL, MF_ERR_NOMEM);
        sg->refs = 1;
        mf_certs_init(&sg->chain);
        memcpy(sg->id, k->slots[active].rec.id, sizeof(sg->id));
        sg->cert = mf_cert_ref(k->slots[active].cert);
        /* The signer owns the key; the slot keeps a pointer only while
         * active (it is dropped on retirement). */
        sg->key = k->slots[active].key;
        k->slots[active].key = NULL;
        sg->jwt_key = k->slots[active].jwt_key;
        k->slots[active].jwt_key = NULL;
        if (k->up_cert != NULL) {
            MF_TRY_OUT(mf_certs_push(&sg->chain, k->slots[active].cert));
        }
        ca_signer_release(k->signer);
        k->signer = sg;
        sg = NULL;
    }
    mf_bundle_free(k->bundle);
    k->bundle = b;
    b = NULL;
    k->dirty = false;
    rc = MF_RES_OK;
out:
    mf_bundle_free(b);
    ca_signer_release(sg);
    return rc;
}

static mf_res make_key(struct ca_keys *k, int64_t now, enum ca_key_state state)
{
    mf_res rc;
    struct mf_key *key = NULL, *jwt_key = NULL;
    struct mf_pubkey *pub = NULL, *jwt_pub = NULL;
    struct mf_cert *cert = NULL;
    struct mf_buf pub_der;
    mf_buf_init(&pub_der, KEY_FILE_MAX, 0);
    MF_ENSURE(k->n < CA_KEYS_MAX, MF_ERR_STATE);
    uint8_t rnd[8];
    char id[CA_KEY_ID_LEN];
    MF_TRY_OUT(mf_random(rnd, sizeof(rnd)));
    mf_hex(rnd, sizeof(rnd), id);
    MF_TRY_OUT(mf_key_generate(MF_KEY_EC_P256, &key));
    if (k->up_cert != NULL) {
        MF_TRY_OUT(mf_key_public(key, &pub));
        struct mf_issue_req req = {
            .id = &k->td_id,
            .subject_key = pub,
            .now = now,
            .ttl = k->cfg->ca_ttl,
            .is_ca = true,
        };
        MF_TRY_OUT(mf_x509_issue(&req, k->up_cert, k->up_key, &cert));
    } else {
        MF_TRY_OUT(mf_x509_self_signed(&k->td_id, key, now, k->cfg->ca_ttl, &cert));
    }
    MF_TRY_OUT(write_key_file(k->cfg, id, ".key", key));
    rc = jwt_key_create(k->cfg, id, &jwt_key, &jwt_pub);
    if (!mf_ok(rc)) {
        remove_key_file(k->cfg, id, ".key");
        goto out;
    }
    struct ca_key_rec rec;
    memset(&rec, 0, sizeof(rec));
    memcpy(rec.id, id, sizeof(id));
    memcpy(rec.server, k->server_id, sizeof(rec.server));
    rec.state = state;
    rec.not_before = mf_cert_not_before(cert);
    rec.not_after = mf_cert_not_after(cert);
    size_t len = 0;
    const uint8_t *der = mf_cert_der(cert, &len);
    rc = mf_pubkey_to_der(jwt_pub, &pub_der);
    if (mf_ok(rc)) {
        rc = ca_store_key_add(k->store, &rec, der, len, pub_der.data, pub_der.len);
    }
    if (!mf_ok(rc)) {
        remove_generation_files(k->cfg, id);
        goto out;
    }
    struct key_slot *s = &k->slots[k->n++];
    s->rec = rec;
    s->cert = cert;
    s->key = key;
    s->jwt_key = jwt_key;
    s->jwt_pub = jwt_pub;
    cert = NULL;
    key = NULL;
    jwt_key = NULL;
    jwt_pub = NULL;
    char fp[MF_FINGERPRINT_LEN], na[MF_RFC3339_LEN];
    mf_cert_fingerprint(s->cert, fp);
    mf_time_format(rec.not_after, na);
    mf_log_event(MF_LOG_INFO, __func__, "ca key created", "id", id, "state",
                 ca_key_state_name(state), "not_after", na, "fingerprint", fp, NULL);
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&pub_der);
    mf_key_free(key);
    mf_key_free(jwt_key);
    mf_pubkey_free(pub);
    mf_pubkey_free(jwt_pub);
    mf_cert_free(cert);
    return rc;
}

static void slot_clear(struct key_slot *s)
{
    mf_cert_free(s->cert);
    mf_key_free(s->key);
    mf_key_free(s->jwt_key);
    mf_pubkey_free(s->jwt_pub);
    memset(s, 0, sizeof(*s));
}

/* Applies one plan; caller holds k->mu. *acted is set when anything moved. */
static mf_res apply_plan(struct ca_keys *k, int64_t now, bool *acted)
{
    struct ca_key_rec recs[CA_KEYS_MAX];
    for (size_t i = 0; i < k->n; i++) {
        recs[i] = k->slots[i].rec;
    }
    struct ca_plan p;
    ca_keys_plan(now, recs, k->n, &p);
    k->next_event = p.next_event;
    *acted = false;

    if (p.retire >= 0 || p.activate >= 0) {
        MF_TRY(ca_store_begin(k->store));
        mf_res r = MF_RES_OK;
        if (p.retire >= 0) {
            r = ca_store_key_set_state(k->store, recs[p.retire].id, CA_KEY_RETIRED);
        }
        if (mf_ok(r) && p.activate >= 0) {
            r = ca_store_key_set_state(k->store, recs[p.activate].id, CA_KEY_ACTIVE);
        }
        if (!mf_ok(r)) {
            ca_store_rollback(k->store);
            return r;
        }
        MF_TRY(ca_store_commit(k->store));
        if (p.retire >= 0) {
            struct key_slot *s = &k->slots[p.retire];
            s->rec.state = CA_KEY_RETIRED;
            mf_key_free(s->key);
            s->key = NULL;
            mf_key_free(s->jwt_key);
            s->jwt_key = NULL;
            /* the JWT key's public half stays: tokens it signed live on */
            remove_key_file(k->cfg, s->rec.id, ".key");
            remove_key_file(k->cfg, s->rec.id, ".jwt.key");
            mf_log_event(MF_LOG_INFO, __func__, "ca key retired", "id", s->rec.id, NULL);
        }
        if (p.activate >= 0) {
            k->slots[p.activate].rec.state = CA_KEY_ACTIVE;
            mf_log_event(MF_LOG_INFO, __func__, "ca key activated", "id",
                         k->slots[p.activate].rec.id, NULL);
        }
        *acted = true;
    }
    /* Drop from the highest index so the lower ones stay valid. */
    for (size_t d = p.n_drop; d > 0; d--) {
        int i = p.drop[d - 1];
        MF_TRY(ca_store_key_delete(k->store, recs[i].id));
        remove_generation_files(k->cfg, recs[i].id);
        mf_log_event(MF_LOG_INFO, __func__, "ca key dropped from bundle", "id", recs[i].id, NULL);
        size_t idx = 0;
        for (; idx < k->n; idx++) {
            if (strcmp(k->slots[idx].rec.id, recs[i].id) == 0) {
                break;
            }
        }
        if (idx < k->n) {
            slot_clear(&k->slots[idx]);
            memmove(&k->slots[idx], &k->slots[idx + 1], (k->n - idx - 1) * sizeof(k->slots[0]));
            k->n--;
            memset(&k->slots[k->n], 0, sizeof(k->slots[0]));
        }
        *acted = true;
    }
    if (p.create_active) {
        MF_TRY(make_key(k, now, CA_KEY_ACTIVE));
        *acted = true;
    } else if (p.prepare) {
        MF_TRY(make_key(k, now, CA_KEY_PREPARED));
        *acted = true;
    }
    return MF_RES_OK;
}

mf_res ca_keys_tick(struct ca_keys *k, int64_t now, bool *changed)
{
    MF_ENSURE_REF(k);
    *changed = false;
    pthread_mutex_lock(&k->mu);
    mf_res rc = MF_RES_OK;
    bool any = false;
    /* A long outage may need several steps (retire, drop, create). */
    for (int i = 0; i < 6; i++) {
        bool acted = false;
        rc = apply_plan(k, now, &acted);
        if (!mf_ok(rc) || !acted) {
            break;
        }
        any = true;
    }
    if (mf_ok(rc) && (any || k->dirty || k->bundle == NULL || now >= k->others_next)) {
        rc = publish(k, now, changed);
    }
    pthread_mutex_unlock(&k->mu);
    return rc;
}

mf_res ca_keys_refresh(struct ca_keys *k, bool *changed)
{
    MF_ENSURE_REF(k);
    MF_ENSURE_REF(changed);
    *changed = false;
    int64_t seq = 0;
    /* the sequence moves with every change of any server's keys: when it
     * is ours, so is the bundle (a cheap read, done on every notice) */
    MF_TRY(ca_store_meta_get(k->store, "bundle_sequence", &seq));
    pthread_mutex_lock(&k->mu);
    mf_res rc = MF_RES_OK;
    if (k->dirty || k->bundle == NULL || k->bundle->sequence != (uint64_t)seq) {
        rc = publish(k, mf_now(), changed);
    }
    pthread_mutex_unlock(&k->mu);
    return rc;
}

const char *ca_keys_server_id(const struct ca_keys *k)
{
    return k != NULL ? k->server_id : "";
}

int64_t ca_keys_next_event(struct ca_keys *k)
{
    pthread_mutex_lock(&k->mu);
    int64_t t = min64(k->next_event, k->others_next);
    pthread_mutex_unlock(&k->mu);
    return t;
}

mf_res ca_keys_signer(struct ca_keys *k, struct ca_signer **out)
{
    MF_ENSURE_REF(k);
    *out = NULL;
    pthread_mutex_lock(&k->mu);
    struct ca_signer *s = k->signer;
    if (s != NULL) {
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
    }
    pthread_mutex_unlock(&k->mu);
    MF_ENSURE_MSG(s != NULL, MF_ERR_STATE, "no active CA key");
    *out = s;
    return MF_RES_OK;
}

mf_res ca_keys_sign_jwt(struct ca_keys *k, const char *sub, const char *const *aud, size_t n_aud,
                        int64_t now, int64_t ttl, struct mf_buf *out, int64_t *exp_out)
{
    struct ca_signer *sg = NULL;
    MF_ENSURE_REF(exp_out);
    MF_ENSURE_MSG(ttl > 0, MF_ERR_USAGE_ARG, "JWT-SVID TTL must be positive");
    MF_TRY(ca_keys_signer(k, &sg));
    if (sg->jwt_key == NULL) {
        ca_signer_release(sg);
        MF_BAIL_MSG(MF_ERR_STATE, "the active CA key has no JWT key");
    }
    /* like a leaf, a token never outlives the generation that signed it:
     * its public key leaves the bundle at that NotAfter */
    int64_t exp = now + ttl;
    if (exp > mf_cert_not_after(sg->cert)) {
        exp = mf_cert_not_after(sg->cert);
    }
    struct mf_jwt_claims_req req = {.sub = sub, .aud = aud, .n_aud = n_aud, .iat = now, .exp = exp};
    mf_res r = mf_jwt_sign(sg->jwt_key, sg->id, &req, out);
    ca_signer_release(sg);
    if (mf_ok(r)) {
        *exp_out = exp;
    }
    return r;
}

struct mf_bundle *ca_keys_bundle(struct ca_keys *k)
{
    pthread_mutex_lock(&k->mu);
    struct mf_bundle *b = k->bundle ? mf_bundle_ref(k->bundle) : NULL;
    pthread_mutex_unlock(&k->mu);
    return b;
}

mf_res ca_keys_describe(struct ca_keys *k, json_t **out)
{
    MF_ENSURE_REF(k);
    *out = NULL;
    struct ca_key_row *rows = NULL;
    size_t n = 0;
    MF_TRY(ca_store_key_rows(k->store, &rows, &n));
    json_t *o = json_object();
    json_t *arr = json_array();
    if (o == NULL || arr == NULL) {
        json_decref(o);
        json_decref(arr);
        ca_key_rows_free(rows, n);
        MF_BAIL(MF_ERR_NOMEM);
    }
    json_object_set_new(o, "authorities", arr);
    /* every server's keys, as the registry holds them */
    for (size_t i = 0; i < n; i++) {
        const struct ca_key_rec *r = &rows[i].rec;
        struct mf_cert *cert = NULL;
        if (!mf_ok(mf_cert_from_der(rows[i].cert, rows[i].cert_len, &cert))) {
            continue;
        }
        char serial[MF_SERIAL_HEX_MAX], fp[MF_FINGERPRINT_LEN], nb[MF_RFC3339_LEN],
            na[MF_RFC3339_LEN];
        mf_cert_serial_hex(cert, serial);
        mf_cert_fingerprint(cert, fp);
        mf_cert_free(cert);
        mf_time_format(r->not_before, nb);
        mf_time_format(r->not_after, na);
        json_t *a = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id", r->id, "state",
                              ca_key_state_name(r->state), "serial", serial, "not_before", nb,
                              "not_after", na, "fingerprint", fp, "server_id", r->server);
        if (a != NULL) {
            json_array_append_new(arr, a);
        }
    }
    ca_key_rows_free(rows, n);
    pthread_mutex_lock(&k->mu);
    json_object_set_new(o, "spiffe_sequence",
                        json_integer(k->bundle ? (json_int_t)k->bundle->sequence : 0));
    json_object_set_new(o, "upstream", json_boolean(k->up_cert != NULL));
    json_object_set_new(o, "server_id", json_string(k->server_id));
    pthread_mutex_unlock(&k->mu);
    *out = o;
    return MF_RES_OK;
}

static mf_res load_upstream(struct ca_keys *k)
{
    mf_res rc;
    struct mf_buf text;
    mf_buf_init(&text, MF_MAX_BUNDLE, 0);
    FILE *f = fopen(k->cfg->upstream_ca_cert, "re");
    MF_ENSURE_OUT_MSG(f != NULL, MF_ERR_IO_NOT_FOUND, "cannot open %s: %s",
                      k->cfg->upstream_ca_cert, strerror(errno));
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        MF_TRY_OUT(mf_buf_append(&text, chunk, got));
    }
    mf_certs_init(&k->up_roots);
    MF_TRY_OUT(mf_certs_from_pem(mf_buf_cstr(&text), text.len, &k->up_roots));
    /* The first certificate signs our keys; the file's certificates are the
     * bundle (normally just that root). */
    k->up_cert = mf_cert_ref(k->up_roots.v[0]);
    MF_ENSURE_OUT_MSG(mf_cert_is_ca(k->up_cert), MF_ERR_POLICY_CONFIG,
                      "%s: the first certificate is not a CA", k->cfg->upstream_ca_cert);
    MF_TRY_OUT(read_key_file(k->cfg->upstream_ca_key, &k->up_key));
    MF_ENSURE_OUT_MSG(mf_cert_matches_key(k->up_cert, k->up_key), MF_ERR_CRYPTO_MISMATCH,
                      "%s does not match %s", k->cfg->upstream_ca_key, k->cfg->upstream_ca_cert);
    rc = MF_RES_OK;
out:
    if (f != NULL) {
        fclose(f);
    }
    mf_buf_cleanup(&text);
    return rc;
}

/* Loads a generation's JWT key. A generation made before JWT keys existed
 * gets one now unless it is retired (it signs nothing any more). */
static mf_res load_jwt_key(struct ca_keys *k, struct key_slot *s)
{
    mf_res r = read_jwt_pub(k->cfg, s->rec.id, &s->jwt_pub);
    if (r.err == MF_ERR_IO_NOT_FOUND) {
        if (s->rec.state == CA_KEY_RETIRED) {
            return MF_RES_OK;
        }
        MF_TRY(jwt_key_create(k->cfg, s->rec.id, &s->jwt_key, &s->jwt_pub));
        mf_log_event(MF_LOG_INFO, __func__, "jwt key created", "id", s->rec.id, NULL);
        return MF_RES_OK;
    }
    MF_TRY(r);
    if (s->rec.state == CA_KEY_RETIRED) {
        return MF_RES_OK;
    }
    char path[4096];
    struct mf_pubkey *pk = NULL;
    MF_TRY(key_path(k->cfg, s->rec.id, ".jwt.key", path, sizeof(path)));
    MF_TRY(read_key_file(path, &s->jwt_key));
    MF_TRY(mf_key_public(s->jwt_key, &pk));
    bool same = mf_pubkey_eq(pk, s->jwt_pub);
    mf_pubkey_free(pk);
    MF_ENSURE_MSG(same, MF_ERR_CRYPTO_MISMATCH, "%s does not match its .jwt.pub", path);
    return MF_RES_OK;
}

/* see ca_keys.h */
bool ca_server_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > CA_SERVER_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

/* This server's id: "<data_dir>/keys/server.id", made (8 random bytes as
 * hex) on first start. It lives beside the keys because it names them: a
 * data dir restored with its keys is the same server again. */
static mf_res load_server_id(const struct ca_config *cfg, char out[CA_SERVER_ID_MAX + 1])
{
    char path[4096], text[CA_SERVER_ID_MAX + 8];
    MF_TRY(key_path(cfg, "server", ".id", path, sizeof(path)));
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        MF_ENSURE_MSG(errno == ENOENT, MF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        uint8_t rnd[8];
        struct mf_buf b;
        MF_TRY(mf_random(rnd, sizeof(rnd)));
        mf_hex(rnd, sizeof(rnd), out);
        mf_buf_init(&b, 64, 0);
        mf_res r = mf_buf_printf(&b, "%s\n", out);
        if (mf_ok(r)) {
            r = write_pem_file(cfg, "server", ".id", &b);
        }
        mf_buf_cleanup(&b);
        MF_TRY(r);
        mf_log_event(MF_LOG_INFO, __func__, "server id created", "server_id", out, NULL);
        return MF_RES_OK;
    }
    size_t got = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[got] = '\0';
    while (got > 0 && (text[got - 1] == '\n' || text[got - 1] == '\r')) {
        text[--got] = '\0';
    }
    MF_ENSURE_MSG(ca_server_id_valid(text), MF_ERR_POLICY_CONFIG,
                  "%s must hold 1 to %d of a-z, 0-9 and '-'", path, CA_SERVER_ID_MAX);
    memcpy(out, text, got + 1);
    return MF_RES_OK;
}

/* True when this data dir holds a file of generation id. */
static bool holds_generation(const struct ca_config *cfg, const char *id)
{
    static const char *const suffixes[] = {".key", ".jwt.pub"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char path[4096];
        struct stat sb;
        if (mf_ok(key_path(cfg, id, suffixes[i], path, sizeof(path))) && lstat(path, &sb) == 0) {
            return true;
        }
    }
    return false;
}

/* Is row ours? A row with no owner (written before servers had ids) is
 * claimed by the server whose data dir holds its files. On an engine one
 * server owns (SQLite), every row must be ours: anything else means the
 * registry is another server's, or the keys were not restored. */
static mf_res own_row(struct ca_keys *k, const struct ca_key_row *row, bool *own)
{
    const struct ca_key_rec *r = &row->rec;
    *own = strcmp(r->server, k->server_id) == 0;
    if (!*own && r->server[0] == '\0' && holds_generation(k->cfg, r->id)) {
        MF_TRY(ca_store_key_claim(k->store, r->id, k->server_id, own));
        if (*own) {
            mf_log_event(MF_LOG_INFO, __func__, "ca key claimed by this server", "id", r->id,
                         "server_id", k->server_id, NULL);
        }
    }
    if (!*own && !ca_store_shared(k->store)) {
        char path[4096];
        MF_TRY(key_path(k->cfg, r->id, ".key", path, sizeof(path)));
        MF_BAIL_MSG(MF_ERR_STATE,
                    "the registry holds CA key %s of server %s but %s does not exist: the "
                    "registry belongs to another mayfly-ca (a SQLite registry has one server; "
                    "several servers share PostgreSQL), or the data dir was restored without "
                    "its keys/",
                    r->id, r->server[0] != '\0' ? r->server : "(none)", path);
    }
    return MF_RES_OK;
}

/* Loads one of our rows into a slot: its certificate, and its keys unless
 * it is retired. */
static mf_res load_own(struct ca_keys *k, const struct ca_key_row *row)
{
    MF_ENSURE_MSG(k->n < CA_KEYS_MAX, MF_ERR_STATE, "more than %d CA keys of this server",
                  CA_KEYS_MAX);
    struct key_slot *s = &k->slots[k->n];
    s->rec = row->rec;
    memcpy(s->rec.server, k->server_id, sizeof(s->rec.server));
    MF_TRY(mf_cert_from_der(row->cert, row->cert_len, &s->cert));
    k->n++;
    if (s->rec.state != CA_KEY_RETIRED) {
        char path[4096];
        MF_TRY(key_path(k->cfg, s->rec.id, ".key", path, sizeof(path)));
        mf_res rc = read_key_file(path, &s->key);
        if (rc.err == MF_ERR_IO_NOT_FOUND) {
            MF_BAIL_MSG(MF_ERR_STATE,
                        "the registry holds CA key %s of this server (%s) but %s does not "
                        "exist: the data dir was restored without its keys/",
                        s->rec.id, k->server_id, path);
        }
        MF_TRY(rc);
        MF_ENSURE_MSG(mf_cert_matches_key(s->cert, s->key), MF_ERR_CRYPTO_MISMATCH,
                      "key file %s does not match its certificate", path);
    }
    MF_TRY(load_jwt_key(k, s));
    if (row->jwt_pub == NULL && s->jwt_pub != NULL) {
        /* a row from before the journal kept JWT keys: record it, so that
         * the other servers publish it too */
        struct mf_buf der;
        mf_buf_init(&der, KEY_FILE_MAX, 0);
        mf_res r = mf_pubkey_to_der(s->jwt_pub, &der);
        if (mf_ok(r)) {
            r = ca_store_key_set_jwt_pub(k->store, s->rec.id, der.data, der.len);
        }
        mf_buf_cleanup(&der);
        MF_TRY(r);
    }
    return MF_RES_OK;
}

mf_res ca_keys_open(const struct ca_config *cfg, struct ca_store *store, struct ca_keys **out)
{
    mf_res rc;
    MF_ENSURE_REF(cfg);
    MF_ENSURE_REF(store);
    *out = NULL;
    struct ca_key_row *rows = NULL;
    size_t n = 0;
    struct ca_keys *k = calloc(1, sizeof(*k));
    MF_TRY_PTR(k, MF_ERR_NOMEM);
    pthread_mutex_init(&k->mu, NULL);
    mf_certs_init(&k->up_roots);
    k->cfg = cfg;
    k->store = store;
    k->next_event = INT64_MAX;
    k->others_next = INT64_MAX;
    MF_TRY_OUT(mf_spiffeid_from_parts(cfg->trust_domain, "", &k->td_id));
    MF_TRY_OUT(load_server_id(cfg, k->server_id));
    if (cfg->upstream_ca_cert[0] != '\0') {
        MF_TRY_OUT(load_upstream(k));
    }
    MF_TRY_OUT(ca_store_key_rows(store, &rows, &n));
    for (size_t i = 0; i < n; i++) {
        bool own = false;
        MF_TRY_OUT(own_row(k, &rows[i], &own));
        if (own) {
            MF_TRY_OUT(load_own(k, &rows[i]));
        }
    }
    bool changed = false;
    MF_TRY_OUT(ca_keys_tick(k, mf_now(), &changed));
    *out = k;
    k = NULL;
    rc = MF_RES_OK;
out:
    ca_key_rows_free(rows, n);
    ca_keys_free(k);
    return rc;
}

void ca_keys_free(struct ca_keys *k)
{
    if (k == NULL) {
        return;
    }
    for (size_t i = 0; i < k->n; i++) {
        slot_clear(&k->slots[i]);
    }
    ca_signer_release(k->signer);
    mf_bundle_free(k->bundle);
    mf_cert_free(k->up_cert);
    mf_key_free(k->up_key);
    mf_certs_cleanup(&k->up_roots);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
