/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x509tool: a small command line over libmayfly's mf_x509 module, for the
 * OpenSSL interoperability test (tests/integration/interop_openssl.sh).
 *
 *   x509tool mkca DIR TD [--p384] [--ttl S]        DIR/ca.pem, DIR/ca.key
 *   x509tool mkinter DIR [--p384] [--ttl S]        DIR/inter.pem, .key (signed by ca)
 *   x509tool issue DIR SPIFFE_ID [--inter] [--dns N]... [--ttl S] [--p384] [--out NAME]
 *                                                  DIR/NAME.pem (chain), DIR/NAME.key
 *   x509tool issue-csr DIR CSR OUT.pem [--inter] [--ttl S]
 *   x509tool csr KEY.pem CSR.pem [SPIFFE_ID] [--p384]
 *   x509tool csr-check CSR.pem|CSR.der             prints the SPIFFE ID or "(none)"
 *   x509tool verify CHAIN.pem BUNDLE.pem [--at T] [--td TD]
 *                                                  prints the SPIFFE ID; with
 *                                                  --td, BUNDLE.pem is the
 *                                                  bundle of trust domain TD
 *                                                  and mf_svid_verify picks it
 *   x509tool show CERT.pem                         id, serial, validity, ca
 *
 * On failure it prints "x509tool: <error>" on stderr and exits 1 (2 for
 * usage errors). Not installed; a test helper.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

#define FILE_MAX     (1024u * 1024u)
#define PATH_MAX_LEN 4096
#define MAX_DNS      16

struct opts {
    bool p384;
    bool inter;
    int64_t ttl;
    int64_t at;
    bool have_at;
    const char *out;
    const char *td; /* verify: the bundle's trust domain */
    const char *dns[MAX_DNS];
    size_t n_dns;
    const char *pos[4];
    size_t n_pos;
};

static mf_res parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    MF_ENSURE_MSG(errno == 0 && end != s && *end == '\0', MF_ERR_USAGE_ARG, "not a number: %s", s);
    *out = v;
    return MF_RES_OK;
}

static mf_res parse_opts(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->out = "leaf";
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--p384") == 0) {
            o->p384 = true;
        } else if (strcmp(a, "--inter") == 0) {
            o->inter = true;
        } else if (strcmp(a, "--ttl") == 0 && i + 1 < argc) {
            MF_TRY(parse_i64(argv[++i], &o->ttl));
        } else if (strcmp(a, "--at") == 0 && i + 1 < argc) {
            MF_TRY(parse_i64(argv[++i], &o->at));
            o->have_at = true;
        } else if (strcmp(a, "--td") == 0 && i + 1 < argc) {
            o->td = argv[++i];
        } else if (strcmp(a, "--out") == 0 && i + 1 < argc) {
            o->out = argv[++i];
        } else if (strcmp(a, "--dns") == 0 && i + 1 < argc) {
            MF_ENSURE_MSG(o->n_dns < MAX_DNS, MF_ERR_USAGE_ARG, "too many --dns");
            o->dns[o->n_dns++] = argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            MF_BAIL_MSG(MF_ERR_USAGE_ARG, "unknown option %s", a);
        } else {
            MF_ENSURE_MSG(o->n_pos < 4, MF_ERR_USAGE_ARG, "too many arguments");
            o->pos[o->n_pos++] = a;
        }
    }
    return MF_RES_OK;
}

static mf_res read_file(const char *path, struct mf_buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    MF_ENSURE_MSG(fd >= 0, MF_ERR_IO_NOT_FOUND, "%s: %s", path, strerror(errno));
    mf_res rc = MF_RES_OK;
    uint8_t chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = MF_RAISE_MSG(MF_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            break;
        }
        rc = mf_buf_append(out, chunk, (size_t)n);
        if (!mf_ok(rc)) {
            break;
        }
    }
    mf_wipe(chunk, sizeof(chunk));
    close(fd);
    return rc;
}

static mf_res write_file(const char *path, const struct mf_buf *b, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    MF_ENSURE_MSG(fd >= 0, MF_ERR_IO, "%s: %s", path, strerror(errno));
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(fd, b->data + off, b->len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            close(fd);
            MF_BAIL_MSG(MF_ERR_IO, "%s: %s", path, strerror(e));
        }
        off += (size_t)n;
    }
    MF_ENSURE_MSG(close(fd) == 0, MF_ERR_IO, "%s: %s", path, strerror(errno));
    return MF_RES_OK;
}

static mf_res join(char *out, const char *dir, const char *name, const char *ext)
{
    int n = snprintf(out, PATH_MAX_LEN, "%s/%s%s", dir, name, ext);
    MF_ENSURE_MSG(n > 0 && n < PATH_MAX_LEN, MF_ERR_USAGE_ARG, "path too long");
    return MF_RES_OK;
}

static mf_res load_key(const char *path, struct mf_key **out)
{
    mf_res rc;
    struct mf_buf b;
    mf_buf_init(&b, FILE_MAX, MF_BUF_SECRET);
    MF_TRY_OUT(read_file(path, &b));
    MF_TRY_OUT(mf_key_from_pem((const char *)b.data, b.len, out));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&b);
    return rc;
}

static mf_res load_certs(const char *path, struct mf_certs *out)
{
    mf_res rc;
    struct mf_buf b;
    mf_buf_init(&b, FILE_MAX, 0);
    MF_TRY_OUT(read_file(path, &b));
    MF_TRY_OUT(mf_certs_from_pem((const char *)b.data, b.len, out));
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&b);
    return rc;
}

/* Writes DIR/NAME.pem (cert, then extra chain certs) and DIR/NAME.key. */
static mf_res save_pair(const char *dir, const char *name, struct mf_cert *cert,
                        const struct mf_certs *extra, const struct mf_key *key)
{
    char path[PATH_MAX_LEN];
    mf_res rc;
    struct mf_certs chain;
    struct mf_buf pem, kpem;
    mf_certs_init(&chain);
    mf_buf_init(&pem, FILE_MAX, 0);
    mf_buf_init(&kpem, FILE_MAX, MF_BUF_SECRET);
    MF_TRY_OUT(mf_certs_push(&chain, cert));
    for (size_t i = 0; extra != NULL && i < extra->n; i++) {
        MF_TRY_OUT(mf_certs_push(&chain, extra->v[i]));
    }
    MF_TRY_OUT(mf_certs_to_pem(&chain, &pem));
    MF_TRY_OUT(join(path, dir, name, ".pem"));
    MF_TRY_OUT(write_file(path, &pem, 0644));
    if (key != NULL) {
        MF_TRY_OUT(mf_key_to_pem(key, &kpem));
        MF_TRY_OUT(join(path, dir, name, ".key"));
        MF_TRY_OUT(write_file(path, &kpem, 0600));
    }
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&chain);
    mf_buf_cleanup(&pem);
    mf_buf_cleanup(&kpem);
    return rc;
}

/* The signing pair: DIR/ca or DIR/inter; the chain above the signer (the
 * intermediate itself when signing with it) goes to extra. */
static mf_res load_signer(const char *dir, bool inter, struct mf_cert **cert, struct mf_key **key,
                          struct mf_certs *extra)
{
    char path[PATH_MAX_LEN];
    struct mf_certs cs;
    mf_certs_init(&cs);
    mf_res rc;
    MF_TRY_OUT(join(path, dir, inter ? "inter" : "ca", ".pem"));
    MF_TRY_OUT(load_certs(path, &cs));
    MF_TRY_OUT(join(path, dir, inter ? "inter" : "ca", ".key"));
    MF_TRY_OUT(load_key(path, key));
    *cert = mf_cert_ref(cs.v[0]);
    if (inter) {
        MF_TRY_OUT(mf_certs_push(extra, cs.v[0]));
    }
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&cs);
    return rc;
}

static mf_res cmd_mkca(const struct opts *o)
{
    MF_ENSURE_MSG(o->n_pos == 2, MF_ERR_USAGE_ARG, "usage: mkca DIR TD");
    char td[MF_TD_MAX + 1];
    struct mf_spiffe_id id;
    MF_TRY(mf_td_parse(o->pos[1], strlen(o->pos[1]), td));
    MF_TRY(mf_spiffeid_from_parts(td, "", &id));
    mf_res rc;
    struct mf_key *key = NULL;
    struct mf_cert *cert = NULL;
    MF_TRY_OUT(mf_key_generate(o->p384 ? MF_KEY_EC_P384 : MF_KEY_EC_P256, &key));
    MF_TRY_OUT(mf_x509_self_signed(&id, key, mf_now(), o->ttl > 0 ? o->ttl : 86400, &cert));
    MF_TRY_OUT(save_pair(o->pos[0], "ca", cert, NULL, key));
    rc = MF_RES_OK;
out:
    mf_cert_free(cert);
    mf_key_free(key);
    return rc;
}

static mf_res issue_common(const struct opts *o, const struct mf_spiffe_id *id,
                           const struct mf_pubkey *pub, bool is_ca, struct mf_cert **out,
                           struct mf_certs *extra)
{
    mf_res rc;
    struct mf_cert *signer = NULL;
    struct mf_key *skey = NULL;
    MF_TRY_OUT(load_signer(o->pos[0], o->inter, &signer, &skey, extra));
    struct mf_issue_req req = {
        .id = id,
        .subject_key = pub,
        .now = mf_now(),
        .ttl = o->ttl > 0 ? o->ttl : (is_ca ? 86400 : 3600),
        .dns_names = o->dns,
        .n_dns = o->n_dns,
        .is_ca = is_ca,
    };
    MF_TRY_OUT(mf_x509_issue(&req, signer, skey, out));
    rc = MF_RES_OK;
out:
    mf_cert_free(signer);
    mf_key_free(skey);
    return rc;
}

static mf_res cmd_mkinter(const struct opts *o)
{
    MF_ENSURE_MSG(o->n_pos == 1 && !o->inter, MF_ERR_USAGE_ARG, "usage: mkinter DIR");
    char path[PATH_MAX_LEN];
    mf_res rc;
    struct mf_certs ca, extra;
    struct mf_key *key = NULL;
    struct mf_pubkey *pub = NULL;
    struct mf_cert *cert = NULL;
    mf_certs_init(&ca);
    mf_certs_init(&extra);
    MF_TRY_OUT(join(path, o->pos[0], "ca", ".pem"));
    MF_TRY_OUT(load_certs(path, &ca));
    struct mf_spiffe_id tdid;
    const struct mf_spiffe_id *td = &tdid;
    MF_ENSURE_OUT_MSG(mf_cert_spiffe_id(ca.v[0], &tdid), MF_ERR_USAGE_ARG, "CA has no SPIFFE ID");
    MF_TRY_OUT(mf_key_generate(o->p384 ? MF_KEY_EC_P384 : MF_KEY_EC_P256, &key));
    MF_TRY_OUT(mf_key_public(key, &pub));
    MF_TRY_OUT(issue_common(o, td, pub, true, &cert, &extra));
    MF_TRY_OUT(save_pair(o->pos[0], "inter", cert, NULL, key));
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&ca);
    mf_certs_cleanup(&extra);
    mf_cert_free(cert);
    mf_pubkey_free(pub);
    mf_key_free(key);
    return rc;
}

static mf_res cmd_issue(const struct opts *o)
{
    MF_ENSURE_MSG(o->n_pos == 2, MF_ERR_USAGE_ARG, "usage: issue DIR SPIFFE_ID");
    struct mf_spiffe_id id;
    MF_TRY(mf_spiffeid_parse_cstr(o->pos[1], &id));
    mf_res rc;
    struct mf_certs extra;
    struct mf_key *key = NULL;
    struct mf_pubkey *pub = NULL;
    struct mf_cert *cert = NULL;
    mf_certs_init(&extra);
    MF_TRY_OUT(mf_key_generate(o->p384 ? MF_KEY_EC_P384 : MF_KEY_EC_P256, &key));
    MF_TRY_OUT(mf_key_public(key, &pub));
    MF_TRY_OUT(issue_common(o, &id, pub, false, &cert, &extra));
    MF_TRY_OUT(save_pair(o->pos[0], o->out, cert, &extra, key));
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&extra);
    mf_cert_free(cert);
    mf_pubkey_free(pub);
    mf_key_free(key);
    return rc;
}

/* A CSR file: PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST") or
 * DER. */
static mf_res load_csr(const char *path, struct mf_csr **out)
{
    mf_res rc;
    struct mf_buf b, der;
    struct mf_cur cur;
    char label[64];
    mf_buf_init(&b, FILE_MAX, 0);
    mf_buf_init(&der, MF_MAX_CSR, 0);
    MF_TRY_OUT(read_file(path, &b));
    if (b.len > 0 && b.data[0] == 0x30) {
        MF_TRY_OUT(mf_csr_verify(b.data, b.len, out));
    } else {
        mf_cur_init(&cur, b.data, b.len);
        MF_TRY_OUT(mf_pem_next(&cur, label, sizeof(label), &der));
        MF_ENSURE_OUT_MSG(strcmp(label, "CERTIFICATE REQUEST") == 0 ||
                              strcmp(label, "NEW CERTIFICATE REQUEST") == 0,
                          MF_ERR_PROTO_PEM, "PEM block is a %s, not a CERTIFICATE REQUEST", label);
        MF_TRY_OUT(mf_csr_verify(der.data, der.len, out));
    }
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&b);
    mf_buf_cleanup(&der);
    return rc;
}

static mf_res cmd_issue_csr(const struct opts *o)
{
    MF_ENSURE_MSG(o->n_pos == 3, MF_ERR_USAGE_ARG, "usage: issue-csr DIR CSR OUT.pem");
    mf_res rc;
    struct mf_csr *csr = NULL;
    struct mf_cert *cert = NULL;
    struct mf_certs extra, chain;
    struct mf_buf pem;
    mf_certs_init(&extra);
    mf_certs_init(&chain);
    mf_buf_init(&pem, FILE_MAX, 0);
    MF_TRY_OUT(load_csr(o->pos[1], &csr));
    MF_ENSURE_OUT_MSG(mf_csr_spiffe_id(csr) != NULL, MF_ERR_AUTH_SVID, "CSR has no SPIFFE ID");
    MF_TRY_OUT(issue_common(o, mf_csr_spiffe_id(csr), mf_csr_pubkey(csr), false, &cert, &extra));
    MF_TRY_OUT(mf_certs_push(&chain, cert));
    for (size_t i = 0; i < extra.n; i++) {
        MF_TRY_OUT(mf_certs_push(&chain, extra.v[i]));
    }
    MF_TRY_OUT(mf_certs_to_pem(&chain, &pem));
    MF_TRY_OUT(write_file(o->pos[2], &pem, 0644));
    rc = MF_RES_OK;
out:
    mf_csr_free(csr);
    mf_cert_free(cert);
    mf_certs_cleanup(&extra);
    mf_certs_cleanup(&chain);
    mf_buf_cleanup(&pem);
    return rc;
}

static mf_res cmd_csr(const struct opts *o)
{
    MF_ENSURE_MSG(o->n_pos == 2 || o->n_pos == 3, MF_ERR_USAGE_ARG,
                  "usage: csr KEY.pem CSR.pem [SPIFFE_ID]");
    mf_res rc;
    struct mf_key *key = NULL;
    struct mf_buf der, pem, kpem;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    mf_buf_init(&pem, FILE_MAX, 0);
    mf_buf_init(&kpem, FILE_MAX, MF_BUF_SECRET);
    MF_TRY_OUT(mf_key_generate(o->p384 ? MF_KEY_EC_P384 : MF_KEY_EC_P256, &key));
    MF_TRY_OUT(mf_csr_create(key, o->n_pos == 3 ? o->pos[2] : NULL, &der));
    MF_TRY_OUT(mf_pem_encode("CERTIFICATE REQUEST", der.data, der.len, &pem));
    MF_TRY_OUT(mf_key_to_pem(key, &kpem));
    MF_TRY_OUT(write_file(o->pos[0], &kpem, 0600));
    MF_TRY_OUT(write_file(o->pos[1], &pem, 0644));
    rc = MF_RES_OK;
out:
    mf_key_free(key);
    mf_buf_cleanup(&der);
    mf_buf_cleanup(&pem);
    mf_buf_cleanup(&kpem);
    return rc;
}

static mf_res cmd_csr_check(const struct opts *o)
{
    MF_ENSURE_MSG(o->n_pos == 1, MF_ERR_USAGE_ARG, "usage: csr-check FILE");
    struct mf_csr *csr = NULL;
    MF_TRY(load_csr(o->pos[0], &csr));
    const struct mf_spiffe_id *id = mf_csr_spiffe_id(csr);
    printf("%s\n", id != NULL ? id->str : "(none)");
    mf_csr_free(csr);
    return MF_RES_OK;
}

static mf_res cmd_verify(const struct opts *o)
{
    MF_ENSURE_MSG(o->n_pos == 2, MF_ERR_USAGE_ARG, "usage: verify CHAIN.pem BUNDLE.pem");
    mf_res rc;
    struct mf_certs chain, bundle;
    struct mf_spiffe_id id;
    struct mf_bundle *b = NULL;
    struct mf_bundle_set set;
    struct mf_buf pem;
    int64_t now = o->have_at ? o->at : mf_now();
    mf_certs_init(&chain);
    mf_certs_init(&bundle);
    mf_bundle_set_init(&set);
    mf_buf_init(&pem, FILE_MAX, 0);
    MF_TRY_OUT(load_certs(o->pos[0], &chain));
    if (o->td != NULL) {
        /* the relying party's path: the bundle of the leaf's trust domain
         * (B23), as a workload, the agent and the CA verify */
        MF_TRY_OUT(read_file(o->pos[1], &pem));
        MF_TRY_OUT(mf_bundle_from_pem(o->td, (const char *)pem.data, pem.len, &b));
        MF_TRY_OUT(mf_bundle_set_put(&set, b));
        MF_TRY_OUT(mf_svid_verify(&chain, &set, now, &id));
    } else {
        MF_TRY_OUT(load_certs(o->pos[1], &bundle));
        MF_TRY_OUT(mf_x509_verify_chain(&chain, &bundle, now, &id));
    }
    printf("%s\n", id.str);
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&chain);
    mf_certs_cleanup(&bundle);
    mf_bundle_free(b);
    mf_bundle_set_cleanup(&set);
    mf_buf_cleanup(&pem);
    return rc;
}

static mf_res cmd_show(const struct opts *o)
{
    MF_ENSURE_MSG(o->n_pos == 1, MF_ERR_USAGE_ARG, "usage: show CERT.pem");
    struct mf_certs cs;
    mf_certs_init(&cs);
    mf_res rc = load_certs(o->pos[0], &cs);
    if (mf_ok(rc)) {
        const struct mf_cert *c = cs.v[0];
        char serial[MF_SERIAL_HEX_MAX];
        mf_cert_serial_hex(c, serial);
        const char *id = mf_cert_spiffe_id_str(c);
        printf("id %s\nserial %s\nnot_before %lld\nnot_after %lld\nca %s\n",
               id != NULL ? id : "(none)", serial, (long long)mf_cert_not_before(c),
               (long long)mf_cert_not_after(c), mf_cert_is_ca(c) ? "true" : "false");
    }
    mf_certs_cleanup(&cs);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: x509tool mkca|mkinter|issue|issue-csr|csr|csr-check|verify|show "
                        "...\n");
        return 2;
    }
    struct opts o;
    mf_res r = parse_opts(argc, argv, &o);
    const char *cmd = argv[1];
    if (mf_ok(r)) {
        if (strcmp(cmd, "mkca") == 0) {
            r = cmd_mkca(&o);
        } else if (strcmp(cmd, "mkinter") == 0) {
            r = cmd_mkinter(&o);
        } else if (strcmp(cmd, "issue") == 0) {
            r = cmd_issue(&o);
        } else if (strcmp(cmd, "issue-csr") == 0) {
            r = cmd_issue_csr(&o);
        } else if (strcmp(cmd, "csr") == 0) {
            r = cmd_csr(&o);
        } else if (strcmp(cmd, "csr-check") == 0) {
            r = cmd_csr_check(&o);
        } else if (strcmp(cmd, "verify") == 0) {
            r = cmd_verify(&o);
        } else if (strcmp(cmd, "show") == 0) {
            r = cmd_show(&o);
        } else {
            r = MF_RAISE_MSG(MF_ERR_USAGE_ARG, "unknown command %s", cmd);
        }
    }
    if (!mf_ok(r)) {
        char line[768];
        mf_err_format(r, line, sizeof(line));
        fprintf(stderr, "x509tool: %s: %s\n", mf_err_name(r.err), line);
        return mf_err_category(r.err) == MF_CAT_USAGE ? 2 : 1;
    }
    return 0;
}
