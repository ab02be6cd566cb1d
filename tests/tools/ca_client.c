/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_client: a minimal agent for the CA's integration tests. It speaks the
 * agent-to-CA protocol of docs/api.md through mf_http, one request per run:
 *
 *   ca_client attest --server H:P --bundle PEM --dir DIR --token T [--csr-id ID]
 *   ca_client renew  --server H:P --bundle PEM --dir DIR [--csr-id ID]
 *   ca_client sync   --server H:P --bundle PEM --dir DIR [--revision R] [--wait S]
 *   ca_client sign   --server H:P --bundle PEM --dir DIR --entry ID --spiffe-id ID
 *                    [--count N] [--out FILE]
 *   ca_client raw    --server H:P --bundle PEM --dir DIR --path P [--method M]
 *                    [--body-file F] [--anon 1]
 *
 * For the attack tests: --csr-file F (attest, renew, sign) sends the DER
 * CSR in F instead of a fresh one (every item of a sign batch); raw sends
 * the bytes of F (or nothing) to path P as they are, with the agent's
 * certificate unless --anon 1.
 *
 * DIR holds the agent's key (agent.key) and SVID chain (agent.pem). The
 * first line of stdout is "status=N", then the response body. Exit status:
 * 0 when the CA answered 2xx (and, for sign, every item succeeded), 1 when
 * it refused, 2 on a local error.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api/net/mf_http.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_x509.h"

struct args {
    const char *server, *bundle, *dir, *token, *csr_id, *revision, *wait, *entry, *spiffe_id, *out,
        *td, *csr_file, *body_file, *path, *method;
    int count;
    bool anon;
};

static int die(const char *what, mf_res r)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    fprintf(stderr, "ca_client: %s: %s\n", what, msg);
    return 2;
}

static mf_res read_file(const char *path, size_t max, struct mf_buf *out)
{
    FILE *f = fopen(path, "re");
    MF_ENSURE_MSG(f != NULL, MF_ERR_IO_NOT_FOUND, "cannot open %s", path);
    char chunk[4096];
    size_t got;
    mf_res r = MF_RES_OK;
    mf_buf_init(out, max, MF_BUF_SECRET);
    while (mf_ok(r) && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        r = mf_buf_append(out, chunk, got);
    }
    fclose(f);
    return r;
}

static mf_res write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    MF_ENSURE_MSG(fd >= 0, MF_ERR_IO, "cannot write %s", tmp);
    ssize_t w = write(fd, p, n);
    close(fd);
    MF_ENSURE(w == (ssize_t)n, MF_ERR_IO);
    MF_ENSURE(rename(tmp, path) == 0, MF_ERR_IO);
    return MF_RES_OK;
}

static mf_res connect_ca(const struct args *a, bool mtls, struct mf_certs *chain,
                         struct mf_key **key, struct mf_bundle_set *set, struct mf_http_conn **out)
{
    struct mf_buf text;
    struct mf_bundle *b = NULL;
    MF_TRY(read_file(a->bundle, MF_MAX_BUNDLE, &text));
    mf_res r = mf_bundle_from_pem(a->td, (const char *)text.data, text.len, &b);
    mf_buf_cleanup(&text);
    MF_TRY(r);
    r = mf_bundle_set_put(set, b);
    mf_bundle_free(b);
    MF_TRY(r);
    if (mtls) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/agent.pem", a->dir);
        MF_TRY(read_file(path, MF_MAX_BUNDLE, &text));
        r = mf_certs_from_pem((const char *)text.data, text.len, chain);
        mf_buf_cleanup(&text);
        MF_TRY(r);
        snprintf(path, sizeof(path), "%s/agent.key", a->dir);
        MF_TRY(read_file(path, 16384, &text));
        r = mf_key_from_pem((const char *)text.data, text.len, key);
        mf_buf_cleanup(&text);
        MF_TRY(r);
    }
    char server_id[512];
    snprintf(server_id, sizeof(server_id), "spiffe://%s/mayfly/server", a->td);
    struct mf_tls_client_cfg cfg = {
        .chain = mtls ? chain : NULL,
        .key = mtls ? *key : NULL,
        .trust = set,
        .expect_server_id = server_id,
        .server_id_below = true,
    };
    return mf_http_connect_tls(a->server, &cfg, 10000, out);
}

static const char *g_csr_file; /* --csr-file: a DER CSR to send as it is */

/* A fresh key and a CSR for id (or none); the CSR as base64. */
static mf_res make_csr(const char *id, struct mf_key **key, struct mf_buf *b64)
{
    struct mf_buf der;
    mf_buf_init(&der, MF_MAX_CSR, 0);
    MF_TRY(mf_key_generate(MF_KEY_EC_P256, key));
    mf_res r;
    if (g_csr_file != NULL) {
        mf_buf_cleanup(&der);
        r = read_file(g_csr_file, 1u << 20, &der);
    } else {
        r = mf_csr_create(*key, id, &der);
    }
    if (mf_ok(r)) {
        r = mf_b64_encode(der.data, der.len, b64);
    }
    mf_buf_cleanup(&der);
    return r;
}

/* Writes agent.key and agent.pem from an attest/renew answer. */
static mf_res save_svid(const char *dir, const struct mf_key *key, const json_t *body)
{
    struct mf_buf pem, der, kpem;
    mf_buf_init(&pem, MF_MAX_BUNDLE, 0);
    mf_buf_init(&der, MF_MAX_CERT, 0);
    mf_buf_init(&kpem, 16384, MF_BUF_SECRET);
    mf_res r = MF_RES_OK;
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(body, "x509_svid"), i, v)
    {
        const char *s = json_string_value(v);
        mf_buf_reset(&der);
        if (mf_ok(r) && s != NULL) {
            r = mf_b64_decode(s, strlen(s), &der);
        }
        if (mf_ok(r)) {
            r = mf_pem_encode("CERTIFICATE", der.data, der.len, &pem);
        }
    }
    if (mf_ok(r)) {
        r = mf_key_to_pem(key, &kpem);
    }
    if (mf_ok(r)) {
        r = write_file(dir, "agent.key", kpem.data, kpem.len);
    }
    if (mf_ok(r)) {
        r = write_file(dir, "agent.pem", pem.data, pem.len);
    }
    mf_buf_cleanup(&pem);
    mf_buf_cleanup(&der);
    mf_buf_cleanup(&kpem);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ca_client attest|renew|sync|sign [options]\n");
        return 2;
    }
    const char *cmd = argv[1];
    struct args a = {.td = "example.org", .count = 1};
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--server"))
            a.server = v;
        else if (!strcmp(k, "--bundle"))
            a.bundle = v;
        else if (!strcmp(k, "--dir"))
            a.dir = v;
        else if (!strcmp(k, "--token"))
            a.token = v;
        else if (!strcmp(k, "--csr-id"))
            a.csr_id = v;
        else if (!strcmp(k, "--revision"))
            a.revision = v;
        else if (!strcmp(k, "--wait"))
            a.wait = v;
        else if (!strcmp(k, "--entry"))
            a.entry = v;
        else if (!strcmp(k, "--spiffe-id"))
            a.spiffe_id = v;
        else if (!strcmp(k, "--out"))
            a.out = v;
        else if (!strcmp(k, "--td"))
            a.td = v;
        else if (!strcmp(k, "--count"))
            a.count = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--csr-file"))
            a.csr_file = v;
        else if (!strcmp(k, "--body-file"))
            a.body_file = v;
        else if (!strcmp(k, "--path"))
            a.path = v;
        else if (!strcmp(k, "--method"))
            a.method = v;
        else if (!strcmp(k, "--anon"))
            a.anon = !strcmp(v, "1");
        else {
            fprintf(stderr, "ca_client: unknown option %s\n", k);
            return 2;
        }
    }
    if (a.server == NULL || a.bundle == NULL || a.dir == NULL || a.count < 1 || a.count > 600) {
        fprintf(stderr, "ca_client: --server, --bundle and --dir are required\n");
        return 2;
    }
    g_csr_file = a.csr_file;
    bool attest = !strcmp(cmd, "attest");
    bool anon = attest || (!strcmp(cmd, "raw") && a.anon);
    struct mf_certs chain;
    mf_certs_init(&chain);
    struct mf_key *akey = NULL, *nkey = NULL;
    struct mf_bundle_set set;
    mf_bundle_set_init(&set);
    struct mf_http_conn *c = NULL;
    struct mf_http_resp resp;
    mf_http_resp_init(&resp, 8u * 1024u * 1024u);
    struct mf_buf csr, raw_body;
    mf_buf_init(&csr, 4u * 1024u * 1024u, 0);
    mf_buf_init(&raw_body, 0, 0);
    json_t *req = NULL;
    int rc = 2;
    mf_res r = connect_ca(&a, !anon, &chain, &akey, &set, &c);
    if (!mf_ok(r)) {
        rc = die("connect", r);
        goto out;
    }
    char path[256];
    const char *method = "POST";
    if (attest || !strcmp(cmd, "renew")) {
        r = make_csr(a.csr_id, &nkey, &csr);
        if (!mf_ok(r)) {
            rc = die("csr", r);
            goto out;
        }
        req = attest ? json_pack("{s:s,s:s}", "join_token", a.token ? a.token : "", "csr",
                                 mf_buf_cstr(&csr))
                     : json_pack("{s:s}", "csr", mf_buf_cstr(&csr));
        snprintf(path, sizeof(path), "/v1/%s", cmd);
    } else if (!strcmp(cmd, "sync")) {
        method = "GET";
        snprintf(path, sizeof(path), "/v1/sync?revision=%s&wait=%s", a.revision ? a.revision : "",
                 a.wait ? a.wait : "0");
    } else if (!strcmp(cmd, "sign")) {
        json_t *arr = json_array();
        for (int i = 0; i < a.count; i++) {
            struct mf_key *k = NULL;
            mf_buf_reset(&csr);
            r = make_csr(a.spiffe_id, &k, &csr);
            mf_key_free(k);
            if (!mf_ok(r)) {
                json_decref(arr);
                rc = die("csr", r);
                goto out;
            }
            json_array_append_new(arr, json_pack("{s:s,s:s}", "entry_id", a.entry ? a.entry : "",
                                                 "csr", mf_buf_cstr(&csr)));
        }
        req = json_pack("{s:o}", "requests", arr);
        snprintf(path, sizeof(path), "/v1/sign");
    } else if (!strcmp(cmd, "raw") && a.path != NULL && strlen(a.path) < sizeof(path)) {
        method = a.method != NULL ? a.method : "POST";
        snprintf(path, sizeof(path), "%s", a.path);
        if (a.body_file != NULL) {
            mf_buf_cleanup(&raw_body);
            r = read_file(a.body_file, 64u * 1024u * 1024u, &raw_body);
            if (!mf_ok(r)) {
                rc = die("body", r);
                goto out;
            }
        }
    } else {
        fprintf(stderr, "ca_client: unknown command %s\n", cmd);
        goto out;
    }
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (raw_body.len > 0 || a.body_file != NULL) {
        r = mf_http_request(c, method, path, NULL, raw_body.data, raw_body.len, 90000, &resp);
    } else {
        r = mf_http_request(c, method, path, NULL, text, text ? strlen(text) : 0, 90000, &resp);
    }
    free(text);
    if (!mf_ok(r)) {
        rc = die("request", r);
        goto out;
    }
    printf("status=%d\n", resp.status);
    if (resp.retry_after >= 0) {
        printf("retry_after=%d\n", resp.retry_after);
    }
    if (resp.body.len > 0) {
        fwrite(resp.body.data, 1, resp.body.len, stdout);
    }
    printf("\n");
    rc = resp.status >= 200 && resp.status < 300 ? 0 : 1;
    if (rc == 0 && resp.status == 200 && nkey != NULL) {
        json_error_t jerr;
        json_t *body = json_loadb((const char *)resp.body.data, resp.body.len, 0, &jerr);
        r = save_svid(a.dir, nkey, body);
        json_decref(body);
        if (!mf_ok(r)) {
            rc = die("save", r);
        }
    }
    if (rc == 0 && !strcmp(cmd, "sign")) {
        json_error_t jerr;
        json_t *body = json_loadb((const char *)resp.body.data, resp.body.len, 0, &jerr);
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(body, "results"), i, v)
        {
            if (json_object_get(v, "error") != NULL) {
                rc = 1;
            } else if (i == 0 && a.out != NULL) {
                /* the whole chain, leaf first (intermediate mode adds one) */
                struct mf_buf der, pem;
                mf_buf_init(&der, MF_MAX_CERT, 0);
                mf_buf_init(&pem, MF_MAX_CERT * 8, 0);
                size_t k;
                const json_t *cj;
                bool ok = true;
                json_array_foreach(json_object_get(v, "x509_svid"), k, cj)
                {
                    const char *s = json_string_value(cj);
                    mf_buf_reset(&der);
                    ok = ok && s != NULL && mf_ok(mf_b64_decode(s, strlen(s), &der)) &&
                         mf_ok(mf_pem_encode("CERTIFICATE", der.data, der.len, &pem));
                }
                FILE *f = ok ? fopen(a.out, "we") : NULL;
                if (f) {
                    fwrite(pem.data, 1, pem.len, f);
                    fclose(f);
                }
                mf_buf_cleanup(&der);
                mf_buf_cleanup(&pem);
            }
        }
        json_decref(body);
    }
out:
    json_decref(req);
    mf_buf_cleanup(&csr);
    mf_buf_cleanup(&raw_body);
    mf_http_resp_cleanup(&resp);
    mf_http_close(c);
    mf_bundle_set_cleanup(&set);
    mf_certs_cleanup(&chain);
    mf_key_free(akey);
    mf_key_free(nkey);
    return rc;
}
