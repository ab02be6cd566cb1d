/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_cli: fetch, watch and healthcheck. See agent_cli.h.
 */
#include "agent/agent_cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include "agent/agent_cache.h"
#include "agent/agent_config.h"
#include "api/core/mf_json.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_text.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_opt.h"
#include "api/net/mf_http.h"
#include "api/pki/mf_jwt.h"

#define TIMEOUT_MS    5000
#define DOC_MAX       (8u * 1024u * 1024u)
#define SOCK_PATH_MAX 108

static const char *const hdrs[] = {"workload.spiffe.io: true", NULL};

struct cli_opts {
    const char *socket;
    const char *write_dir;
    const char *exec_cmd;
    const char *signal_name;
    const char *pid_file;
    const char *aud[MF_JWT_AUD_MAX]; /* --audience, repeatable (JWT) */
    size_t n_aud;
    const char *spiffe_id; /* --spiffe-id (fetch jwt) */
    const char *svid;      /* --svid (validate jwt) */
    bool too_many_aud;
    int64_t wait_ms; /* --wait: retry that long */
};

static void print_err(const char *what, mf_res r)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    fprintf(stderr, "mayfly-agent: %s: %s\n", what, msg);
}

#define SOCK_OPT                                                                 \
    {                                                                            \
        "socket", MF_OPT_STR, "PATH", NULL,                                      \
            "the agent's Workload API socket, a path or unix:///path (default: " \
            "$SPIFFE_ENDPOINT_SOCKET)",                                          \
            0, NULL                                                              \
    }
#define WAIT_OPT(what)                                                                  \
    {                                                                                   \
        "wait", MF_OPT_DUR, "DUR", "0s", "retry until " what ", for up to DUR", 0, NULL \
    }
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct mf_opt o_fetch_x509[] = {
    SOCK_OPT,
    {"write", MF_OPT_STR, "DIR", NULL,
     "write svid.N.pem, svid.N.key (0600), bundle.0.pem into DIR (an existing directory only "
     "you can write)",
     0, NULL},
    WAIT_OPT("the agent serves an identity to this process"),
};
static const struct mf_opt o_fetch_jwt[] = {
    SOCK_OPT,
    {"audience", MF_OPT_LIST, "AUD", NULL, "audience of the token", MF_OPT_REQUIRED, NULL},
    {"spiffe-id", MF_OPT_STR, "ID", NULL, "only the token of this identity", 0, NULL},
    WAIT_OPT("the agent serves an identity to this process"),
};
static const struct mf_opt o_validate[] = {
    SOCK_OPT,
    {"audience", MF_OPT_STR, "AUD", NULL, "the audience the token must carry", MF_OPT_REQUIRED,
     NULL},
    {"svid", MF_OPT_STR, "TOKEN", NULL, "the JWT-SVID to check", MF_OPT_REQUIRED, NULL},
};
static const struct mf_opt o_watch[] = {
    SOCK_OPT,
    {"write", MF_OPT_STR, "DIR", NULL, "keep the files of fetch x509 current in DIR",
     MF_OPT_REQUIRED, NULL},
    {"exec", MF_OPT_STR, "CMD", NULL, "run CMD (sh -c) after each rewrite", 0, NULL},
    {"signal", MF_OPT_STR, "SIG", NULL, "or send SIG (HUP, USR1...) after each rewrite", 0, NULL},
    {"pid-file", MF_OPT_STR, "FILE", NULL, "to the process whose pid FILE holds", 0, NULL},
};
static const struct mf_opt o_health[] = {
    SOCK_OPT,
    WAIT_OPT("the agent answers"),
};

static const struct mf_cmd cmds[] = {
    {"run", NULL, 0, 0, "run the node agent (options also as config keys, see --config)", NULL, 0},
    {"fetch x509", NULL, 0, 0, "print this process's X509-SVIDs", o_fetch_x509, N(o_fetch_x509)},
    {"fetch jwt", NULL, 0, 0, "print one JWT-SVID per identity on stdout", o_fetch_jwt,
     N(o_fetch_jwt)},
    {"validate jwt", NULL, 0, 0, "exit 0 when the agent finds the token valid", o_validate,
     N(o_validate)},
    {"watch", NULL, 0, 0, "rewrite the files on every change, then reload a process", o_watch,
     N(o_watch)},
    {"healthcheck", NULL, 0, 0, "exit 0 when the agent answers /health", o_health, N(o_health)},
};

/* see agent_cli.h */
const struct mf_prog *agent_cli_prog(void)
{
    /* run's table lives with the settings it fills (agent_config.c) */
    static struct mf_cmd all[N(cmds)];
    static struct mf_prog prog;
    static const char help[] =
        "The workload commands talk to a running agent over its Workload API\n"
        "socket. Every option may be written --name VALUE or --name=VALUE.\n"
        "Durations: 90s, 10m, 1h. SIGHUP makes `run` reopen --log-file and\n"
        "re-read log-level and log-format from its flags and config file.";
    return mf_opt_prog_init(&prog, "mayfly-agent", help, all, cmds, N(cmds), agent_run_opts,
                            agent_run_n_opts);
}

static void opts_from(const struct mf_opt_vals *v, struct cli_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->socket = mf_opt_get(v, "socket");
    o->write_dir = mf_opt_get(v, "write");
    o->exec_cmd = mf_opt_get(v, "exec");
    o->signal_name = mf_opt_get(v, "signal");
    o->pid_file = mf_opt_get(v, "pid-file");
    o->spiffe_id = mf_opt_get(v, "spiffe-id");
    o->svid = mf_opt_get(v, "svid");
    const struct mf_opt_val *aud = mf_opt_val(v, "audience");
    if (aud != NULL && aud->n > 0) {
        for (size_t i = 0; i < aud->n && i < MF_JWT_AUD_MAX; i++) {
            o->aud[o->n_aud++] = aud->list[i];
        }
        o->too_many_aud = aud->n > MF_JWT_AUD_MAX;
    } else if (aud != NULL && aud->s != NULL) {
        o->aud[o->n_aud++] = aud->s;
    }
    const char *w = mf_opt_get(v, "wait");
    int64_t secs = 0;
    o->wait_ms = w != NULL && mf_ok(mf_duration_parse(w, &secs)) ? secs * 1000 : 0;
}

/* Sleeps 100 ms and says whether a retry is still within --wait. */
static bool retry(int64_t deadline_ms)
{
    if (mf_mono_ms() >= deadline_ms) {
        return false;
    }
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return true;
}

static mf_res socket_path(const struct cli_opts *o, char path[SOCK_PATH_MAX])
{
    if (o->socket != NULL) {
        return mf_endpoint_parse(o->socket, true, path, SOCK_PATH_MAX);
    }
    const char *env = getenv("SPIFFE_ENDPOINT_SOCKET");
    MF_ENSURE_MSG(env != NULL, MF_ERR_USAGE_ARG,
                  "no --socket and SPIFFE_ENDPOINT_SOCKET is not set");
    return mf_endpoint_parse(env, false, path, SOCK_PATH_MAX);
}

/* Opens DIR for writing files into. Everything is then written with
 * openat/renameat relative to the returned handle, so swapping DIR after
 * this check redirects nothing. Refused, with the path and the reason:
 *   - a symbolic link, with or without a trailing slash ("link/" would
 *     make open(2) follow it despite O_NOFOLLOW, so slashes are stripped);
 *   - a directory that group or others may write to, or that is owned by
 *     someone other than the caller or root: whoever can write there can
 *     plant or swap names between our check and our rename. */
static mf_res open_out_dir(const char *dir, int *fd)
{
    char path[4096];
    struct stat st;
    *fd = -1;
    size_t n = strlen(dir);
    MF_ENSURE_MSG(n > 0 && n < sizeof(path), MF_ERR_USAGE_ARG, "--write: bad directory '%s'", dir);
    memcpy(path, dir, n + 1);
    while (n > 1 && path[n - 1] == '/') {
        path[--n] = '\0';
    }
    /* "link/." and "link/.." resolve link as a parent, beyond O_NOFOLLOW */
    const char *last = strrchr(path, '/');
    last = last != NULL ? last + 1 : path;
    MF_ENSURE_MSG(strcmp(last, ".") != 0 && strcmp(last, "..") != 0, MF_ERR_USAGE_ARG,
                  "--write %s: name the directory itself, not '.' or '..'", dir);
    int d = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0) {
        bool link =
            errno == ELOOP || (errno == ENOTDIR && lstat(path, &st) == 0 && S_ISLNK(st.st_mode));
        MF_BAIL_MSG(link ? MF_ERR_IO_SYMLINK : MF_ERR_IO, "--write %s: %s", dir,
                    link ? "is a symbolic link; give the real directory" : strerror(errno));
    }
    if (fstat(d, &st) != 0) {
        close(d);
        MF_BAIL_MSG(MF_ERR_IO, "--write %s: %s", dir, strerror(errno));
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        close(d);
        MF_BAIL_MSG(MF_ERR_IO_PERM,
                    "--write %s: the directory is writable by %s (mode %04o); other users "
                    "could swap the files written there: use a directory only you can write",
                    dir, (st.st_mode & S_IWOTH) != 0 ? "others" : "its group",
                    (unsigned)(st.st_mode & 07777));
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        close(d);
        MF_BAIL_MSG(MF_ERR_IO_PERM,
                    "--write %s: the directory belongs to uid %u, not to you (uid %u) or root; "
                    "its owner could swap the files written there",
                    dir, (unsigned)st.st_uid, (unsigned)geteuid());
    }
    *fd = d;
    return MF_RES_OK;
}

/* DIR is safe (open_out_dir) and this process may create files in it. */
static mf_res check_out_dir(const char *dir)
{
    int d = -1;
    MF_TRY(open_out_dir(dir, &d));
    int rc = faccessat(d, ".", W_OK | X_OK, AT_EACCESS);
    int e = errno;
    close(d);
    MF_ENSURE_MSG(rc == 0, MF_ERR_IO_PERM, "--write %s: cannot create files there: %s", dir,
                  strerror(e));
    return MF_RES_OK;
}

/* A name in DIR that --write may replace: absent or a regular file. */
static mf_res writable_name(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return MF_RES_OK;
    }
    MF_ENSURE_MSG(!S_ISLNK(st.st_mode), MF_ERR_IO_SYMLINK, "%s is a symbolic link", name);
    MF_ENSURE_MSG(S_ISREG(st.st_mode), MF_ERR_IO_PERM, "%s is not a regular file", name);
    return MF_RES_OK;
}

/* Removes the federated.<td>.pem files (regular files only) of trust
 * domains that fed no longer holds: a workload must stop trusting a domain
 * whose federation ended (SPIFFE.md F14). Best effort: a file that cannot
 * be removed is reported on stderr. */
static void drop_stale_federated(int dfd, const json_t *fed)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l <= 14 || strncmp(de->d_name, "federated.", 10) != 0 ||
            strcmp(de->d_name + l - 4, ".pem") != 0 || l - 14 > MF_TD_MAX) {
            continue;
        }
        char id[MF_TD_MAX + 16];
        snprintf(id, sizeof(id), "spiffe://%.*s", (int)(l - 14), de->d_name + 10);
        struct stat st;
        if (json_object_get(fed, id) != NULL ||
            fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (unlinkat(dfd, de->d_name, 0) != 0) {
            fprintf(stderr, "mayfly-agent: cannot remove %s: %s\n", de->d_name, strerror(errno));
        }
    }
    closedir(d);
}

/* Writes the files for one /v1/x509 document. Keys first, so a reader who
 * sees a new certificate never pairs it with an old key for longer than
 * the two renames take; bundle last. */
static mf_res write_files(const char *dir, const json_t *doc)
{
    mf_res rc;
    int dfd = -1;
    const json_t *svids = NULL;
    char name[64];
    MF_TRY(mf_json_array(doc, "svids", true, 1000, &svids));
    MF_ENSURE_MSG(json_array_size(svids) > 0, MF_ERR_PROTO_JSON, "no SVIDs in the answer");
    MF_TRY(open_out_dir(dir, &dfd));
    /* Everything is checked before anything is written, so that a refusal
     * (a malformed member, a planted symlink) leaves DIR as it was, without
     * a new key beside an old certificate (attack_local.sh). */
    for (size_t i = 0; i < json_array_size(svids); i++) {
        const json_t *s = json_array_get(svids, i);
        const char *v = NULL;
        MF_TRY_OUT(mf_json_str(s, "x509_svid", true, DOC_MAX, &v));
        MF_TRY_OUT(mf_json_str(s, "x509_svid_key", true, DOC_MAX, &v));
        MF_TRY_OUT(mf_json_str(s, "bundle", true, DOC_MAX, &v));
        snprintf(name, sizeof(name), "svid.%zu.key", i);
        MF_TRY_OUT(writable_name(dfd, name));
        snprintf(name, sizeof(name), "svid.%zu.pem", i);
        MF_TRY_OUT(writable_name(dfd, name));
    }
    MF_TRY_OUT(writable_name(dfd, "bundle.0.pem"));
    /* one file per foreign trust domain, never merged into ours (SPIFFE.md
     * F13): federated.<td>.pem */
    const json_t *fed = NULL;
    MF_TRY_OUT(mf_json_object(doc, "federated_bundles", false, &fed));
    const char *ftd;
    const json_t *fpem;
    json_object_foreach((json_t *)(uintptr_t)fed, ftd, fpem)
    {
        char bare[MF_TD_MAX + 1];
        char fname[MF_TD_MAX + 32];
        MF_TRY_OUT(mf_td_parse(ftd, strlen(ftd), bare));
        MF_ENSURE_OUT_MSG(json_is_string(fpem), MF_ERR_PROTO_JSON,
                          "federated bundle of %s is not a string", ftd);
        snprintf(fname, sizeof(fname), "federated.%s.pem", bare);
        MF_TRY_OUT(writable_name(dfd, fname));
    }
    for (size_t i = 0; i < json_array_size(svids); i++) {
        const json_t *s = json_array_get(svids, i);
        const char *cert = NULL, *key = NULL, *bundle = NULL;
        MF_TRY_OUT(mf_json_str(s, "x509_svid", true, DOC_MAX, &cert));
        MF_TRY_OUT(mf_json_str(s, "x509_svid_key", true, DOC_MAX, &key));
        MF_TRY_OUT(mf_json_str(s, "bundle", true, DOC_MAX, &bundle));
        snprintf(name, sizeof(name), "svid.%zu.key", i);
        MF_TRY_OUT(agent_file_write_atomic(dfd, name, key, strlen(key), 0600, true));
        snprintf(name, sizeof(name), "svid.%zu.pem", i);
        MF_TRY_OUT(agent_file_write_atomic(dfd, name, cert, strlen(cert), 0644, true));
        if (i == 0) {
            MF_TRY_OUT(
                agent_file_write_atomic(dfd, "bundle.0.pem", bundle, strlen(bundle), 0644, true));
        }
    }
    json_object_foreach((json_t *)(uintptr_t)fed, ftd, fpem)
    {
        char bare[MF_TD_MAX + 1];
        char fname[MF_TD_MAX + 32];
        MF_TRY_OUT(mf_td_parse(ftd, strlen(ftd), bare));
        snprintf(fname, sizeof(fname), "federated.%s.pem", bare);
        const char *pem = json_string_value(fpem);
        MF_TRY_OUT(agent_file_write_atomic(dfd, fname, pem, strlen(pem), 0644, true));
    }
    drop_stale_federated(dfd, fed);
    rc = MF_RES_OK;
out:
    close(dfd);
    return rc;
}

static void print_doc(const json_t *doc)
{
    const json_t *svids = json_object_get(doc, "svids");
    for (size_t i = 0; i < json_array_size(svids); i++) {
        const json_t *s = json_array_get(svids, i);
        const char *id = json_string_value(json_object_get(s, "spiffe_id"));
        const char *exp = json_string_value(json_object_get(s, "expires_at"));
        const char *hint = json_string_value(json_object_get(s, "hint"));
        printf("svid %zu: spiffe_id=%s expires_at=%s%s%s\n", i, id != NULL ? id : "?",
               exp != NULL ? exp : "?", hint != NULL && hint[0] != '\0' ? " hint=" : "",
               hint != NULL ? hint : "");
    }
    const char *ftd;
    const json_t *fpem;
    json_object_foreach(json_object_get(doc, "federated_bundles"), ftd, fpem)
    {
        (void)fpem;
        printf("federated bundle: %s\n", ftd);
    }
    fflush(stdout);
}

/* Wipes and frees a document's text (it holds private keys). */
static void wipe_buf(struct mf_buf *b)
{
    if (b->data != NULL) {
        mf_wipe(b->data, b->len);
    }
}

static int explain_status(const struct mf_http_resp *resp)
{
    fprintf(stderr, "mayfly-agent: the agent answered %d: %.*s\n", resp->status,
            (int)(resp->body.len > 300 ? 300 : resp->body.len), mf_buf_cstr(&resp->body));
    return 1;
}

/* ---- JWT-SVIDs ---------------------------------------------------------------- */

/* One request to the agent into resp (initialised here with cap). Within
 * --wait, retried every 100 ms while the agent is not there yet, or does
 * not serve this process an identity yet (403: its entry is still on the
 * way from the CA), or is not ready (503). */
static mf_res exchange(const struct cli_opts *o, const char *method, const char *path,
                       const struct mf_buf *body, size_t cap, struct mf_http_resp *resp)
{
    char sock[SOCK_PATH_MAX];
    int64_t deadline = mf_mono_ms() + o->wait_ms;
    mf_http_resp_init(resp, cap);
    MF_TRY(socket_path(o, sock));
    for (;;) {
        struct mf_http_conn *c = NULL;
        mf_res r = mf_http_connect_unix(sock, TIMEOUT_MS, &c);
        if (mf_ok(r)) {
            r = mf_http_request(c, method, path, hdrs, body != NULL ? body->data : NULL,
                                body != NULL ? body->len : 0, TIMEOUT_MS, resp);
        }
        mf_http_close(c);
        bool again = !mf_ok(r) || resp->status == 403 || resp->status == 503;
        if (!again || !retry(deadline)) {
            return r;
        }
        wipe_buf(&resp->body);
        mf_http_resp_cleanup(resp);
        mf_http_resp_init(resp, cap);
    }
}

/* One exchange with the agent; *doc is the parsed 200 body. Returns the
 * exit status (0, or 1 with one line on stderr). */
static int jwt_call(const struct cli_opts *o, const char *what, const char *method,
                    const char *path, const struct mf_buf *body, json_t **doc)
{
    struct mf_http_resp resp;
    int status = 1;
    *doc = NULL;
    mf_res r = exchange(o, method, path, body, DOC_MAX, &resp);
    if (mf_ok(r) && resp.status == 200) {
        r = mf_json_parse(mf_buf_cstr(&resp.body), resp.body.len, DOC_MAX, doc);
        status = mf_ok(r) ? 0 : 1;
    }
    if (!mf_ok(r)) {
        print_err(what, r);
    } else if (resp.status != 200) {
        status = explain_status(&resp);
    }
    /* tokens are bearer credentials */
    wipe_buf(&resp.body);
    mf_http_resp_cleanup(&resp);
    return status;
}

/* fetch jwt: one token per line on stdout (scripts take it from there), a
 * description of each on stderr. */
static int fetch_jwt(const struct cli_opts *opts)
{
    struct cli_opts o = *opts;
    struct mf_buf path;
    json_t *doc = NULL;
    if (o.too_many_aud) {
        fprintf(stderr,
                "mayfly-agent fetch jwt: at most %d --audience (see mayfly-agent fetch "
                "jwt --help)\n",
                MF_JWT_AUD_MAX);
        return 2;
    }
    mf_buf_init(&path, 64 * 1024, 0);
    mf_res r = mf_buf_append_str(&path, "/v1/jwt?");
    for (size_t i = 0; mf_ok(r) && i < o.n_aud; i++) {
        r = mf_buf_append_str(&path, i > 0 ? "&audience=" : "audience=");
        if (mf_ok(r)) {
            r = mf_pct_append(&path, o.aud[i], MF_PCT_UNRESERVED);
        }
    }
    if (mf_ok(r) && o.spiffe_id != NULL) {
        r = mf_buf_append_str(&path, "&spiffe_id=");
        if (mf_ok(r)) {
            r = mf_pct_append(&path, o.spiffe_id, MF_PCT_UNRESERVED);
        }
    }
    if (!mf_ok(r)) {
        print_err("fetch jwt", r);
        mf_buf_cleanup(&path);
        return 2;
    }
    int status = jwt_call(&o, "fetch jwt", "GET", mf_buf_cstr(&path), NULL, &doc);
    mf_buf_cleanup(&path);
    const json_t *svids = json_object_get(doc, "svids");
    for (size_t i = 0; status == 0 && i < json_array_size(svids); i++) {
        const json_t *v = json_array_get(svids, i);
        const char *id = json_string_value(json_object_get(v, "spiffe_id"));
        const char *tok = json_string_value(json_object_get(v, "svid"));
        const char *exp = json_string_value(json_object_get(v, "expires_at"));
        fprintf(stderr, "svid %zu: spiffe_id=%s expires_at=%s\n", i, id != NULL ? id : "?",
                exp != NULL ? exp : "?");
        printf("%s\n", tok != NULL ? tok : "");
    }
    fflush(stdout);
    json_decref(doc);
    return status;
}

static int validate_jwt(const struct cli_opts *opts)
{
    struct cli_opts o = *opts;
    struct mf_buf body;
    json_t *req = NULL, *doc = NULL;
    mf_buf_init(&body, MF_JWT_MAX + 4096, MF_BUF_SECRET);
    req = json_pack("{s:s,s:s}", "audience", o.aud[0], "svid", o.svid);
    mf_res r = req != NULL ? mf_json_dump(req, &body)
                           : MF_RAISE_MSG(MF_ERR_USAGE_ARG, "audience and svid must be UTF-8");
    json_decref(req);
    int status = 2;
    if (!mf_ok(r)) {
        print_err("validate jwt", r);
    } else {
        status = jwt_call(&o, "validate jwt", "POST", "/v1/jwt/validate", &body, &doc);
    }
    if (status == 0) {
        const char *id = json_string_value(json_object_get(doc, "spiffe_id"));
        char *claims = json_dumps(json_object_get(doc, "claims"), JSON_COMPACT | JSON_SORT_KEYS);
        printf("valid: spiffe_id=%s\nclaims: %s\n", id != NULL ? id : "?",
               claims != NULL ? claims : "{}");
        fflush(stdout);
        free(claims);
    }
    json_decref(doc);
    mf_buf_cleanup(&body);
    return status;
}

static int fetch_x509(const struct cli_opts *opts)
{
    const struct cli_opts o = *opts;
    struct mf_http_resp resp;
    json_t *doc = NULL;
    int status = 1;
    mf_res r = exchange(&o, "GET", "/v1/x509", NULL, DOC_MAX, &resp);
    if (!mf_ok(r)) {
        print_err("fetch", r);
        goto out;
    }
    if (resp.status != 200) {
        status = explain_status(&resp);
        goto out;
    }
    r = mf_json_parse(mf_buf_cstr(&resp.body), resp.body.len, DOC_MAX, &doc);
    if (mf_ok(r) && o.write_dir != NULL) {
        r = write_files(o.write_dir, doc);
    }
    if (!mf_ok(r)) {
        print_err("fetch", r);
        goto out;
    }
    print_doc(doc);
    status = 0;
out:
    json_decref(doc);
    wipe_buf(&resp.body);
    mf_http_resp_cleanup(&resp);
    return status;
}

static int healthcheck(const struct cli_opts *opts)
{
    struct mf_http_resp resp;
    int status = 1;
    mf_res r = exchange(opts, "GET", "/health", NULL, 4096, &resp);
    if (!mf_ok(r)) {
        print_err("healthcheck", r);
    } else if (resp.status != 200) {
        status = explain_status(&resp);
    } else {
        printf("agent is healthy\n");
        status = 0;
    }
    mf_http_resp_cleanup(&resp);
    return status;
}

static int signal_number(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
                {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CONT", SIGCONT}};
    if (strncmp(s, "SIG", 3) == 0) {
        s += 3;
    }
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (strcmp(s, sigs[i].name) == 0) {
            return sigs[i].sig;
        }
    }
    return -1;
}

/* Runs the reload action after the files were rewritten. */
static void reload(const struct cli_opts *o, int sig)
{
    if (o->exec_cmd != NULL) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", o->exec_cmd, (char *)NULL);
            _exit(127);
        }
        int st = 0;
        if (pid < 0) {
            fprintf(stderr, "mayfly-agent: cannot run --exec command: %s\n", strerror(errno));
        } else if (waitpid(pid, &st, 0) != pid) {
            fprintf(stderr, "mayfly-agent: cannot wait for --exec command: %s\n", strerror(errno));
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
            fprintf(stderr, "mayfly-agent: --exec command exited 127 (not found?)\n");
        } else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
            fprintf(stderr, "mayfly-agent: --exec command exited %d\n", WEXITSTATUS(st));
        } else if (WIFSIGNALED(st)) {
            fprintf(stderr, "mayfly-agent: --exec command killed by signal %d (%s)\n", WTERMSIG(st),
                    strsignal(WTERMSIG(st)));
        }
    } else if (o->pid_file != NULL) {
        struct mf_buf text;
        mf_buf_init(&text, 64, 0);
        mf_res r = agent_file_read(AT_FDCWD, o->pid_file, &text);
        long pid = 0;
        if (mf_ok(r)) {
            char *end = NULL;
            errno = 0;
            pid = strtol(mf_buf_cstr(&text), &end, 10);
            if (errno != 0 || end == mf_buf_cstr(&text) || (*end != '\0' && *end != '\n')) {
                pid = 0;
            }
        }
        if (!mf_ok(r)) {
            char msg[256];
            mf_err_format(r, msg, sizeof(msg));
            fprintf(stderr, "mayfly-agent: cannot read --pid-file %s: %s\n", o->pid_file, msg);
        } else if (pid <= 1 || pid > INT_MAX) {
            /* 0, -1 and 1 would signal a group, everyone or init */
            fprintf(stderr,
                    "mayfly-agent: --pid-file %s does not hold a process ID (got '%.32s')\n",
                    o->pid_file, mf_buf_cstr(&text));
        } else if (kill((pid_t)pid, sig) != 0) {
            fprintf(stderr, "mayfly-agent: cannot signal pid %ld: %s\n", pid, strerror(errno));
        }
        mf_buf_cleanup(&text);
    }
}

#define DIR_CHECK_MS 2000 /* how often watch looks at its --write directory */

/* The files the workload reads can no longer be kept current: says so and
 * returns the exit status 1. */
static int write_failed(const char *dir, mf_res r)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    fprintf(stderr, "mayfly-agent watch: cannot write to %s: %s; exiting\n", dir, msg);
    return 1;
}

static int watch(const struct cli_opts *opts)
{
    const struct cli_opts o = *opts;
    char path[SOCK_PATH_MAX];
    int sig = 0;
    unsigned failures = 0;
    int status = -1; /* set when the watch must end */

    if ((o.exec_cmd != NULL && o.signal_name != NULL) ||
        ((o.signal_name != NULL) != (o.pid_file != NULL))) {
        fprintf(stderr, "mayfly-agent watch: give --exec CMD, or --signal SIG with --pid-file F "
                        "(see mayfly-agent watch --help)\n");
        return 2;
    }
    if (o.signal_name != NULL && (sig = signal_number(o.signal_name)) < 0) {
        fprintf(stderr, "mayfly-agent: unknown signal %s\n", o.signal_name);
        return 2;
    }
    mf_res r = socket_path(&o, path);
    if (!mf_ok(r)) {
        print_err("watch", r);
        return 2;
    }
    /* a directory that would be refused at every write is refused now, at
     * once, rather than after the first SVID arrives (checked again then) */
    r = check_out_dir(o.write_dir);
    if (!mf_ok(r)) {
        print_err("watch", r);
        return 1;
    }
    bool served = false; /* an identity arrived in this run */
    for (;;) {
        struct mf_http_conn *c = NULL;
        struct mf_http_resp resp;
        struct mf_buf line;
        mf_http_resp_init(&resp, 64 * 1024);
        mf_buf_init(&line, DOC_MAX, MF_BUF_SECRET);
        r = mf_http_connect_unix(path, TIMEOUT_MS, &c);
        if (mf_ok(r)) {
            r = mf_http_stream_begin(c, "GET", "/v1/x509?watch=true", hdrs, TIMEOUT_MS, &resp);
        }
        if (mf_ok(r) && resp.status != 200) {
            (void)explain_status(&resp);
            if (served && resp.status == 403) {
                /* the stream broke and the identity went meanwhile */
                fprintf(stderr, "mayfly-agent: identity withdrawn; exiting\n");
                status = 1;
            }
        }
        while (mf_ok(r) && resp.status == 200) {
            mf_buf_reset(&line);
            /* quiet for an SVID's whole half-life is normal; meanwhile the
             * directory is looked at every few seconds, so that one removed
             * or made unwritable ends the watch then, not at the next
             * rotation hours later */
            r = mf_http_stream_line(c, DOC_MAX, DIR_CHECK_MS, &line);
            if (r.err == MF_ERR_IO_TIMEOUT) {
                r = MF_RES_OK;
                mf_res dr = check_out_dir(o.write_dir);
                if (!mf_ok(dr)) {
                    status = write_failed(o.write_dir, dr);
                    break;
                }
                continue;
            }
            if (!mf_ok(r) || line.len == 0) {
                continue;
            }
            json_t *doc = NULL;
            mf_res pr = mf_json_parse(mf_buf_cstr(&line), line.len, DOC_MAX, &doc);
            if (mf_ok(pr) && json_object_get(doc, "error") != NULL) {
                /* E18: the last line of a stream whose identity is gone */
                fprintf(stderr, "mayfly-agent: identity withdrawn: %s; exiting\n",
                        mf_buf_cstr(&line));
                json_decref(doc);
                status = 1;
                break;
            }
            if (!mf_ok(pr)) {
                print_err("watch", pr);
                json_decref(doc);
                continue;
            }
            pr = write_files(o.write_dir, doc);
            if (mf_ok(pr)) {
                print_doc(doc);
            }
            json_decref(doc);
            if (!mf_ok(pr)) {
                /* the directory went away or turned unsafe: the files the
                 * workload reads can no longer be kept current, so say so
                 * and stop rather than serve stale ones in silence */
                status = write_failed(o.write_dir, pr);
                break;
            }
            reload(&o, sig);
            served = true;
            failures = 0;
        }
        if (!mf_ok(r)) {
            print_err("watch", r);
        }
        mf_buf_cleanup(&line);
        mf_http_resp_cleanup(&resp);
        mf_http_close(c);
        if (status >= 0) {
            return status;
        }
        /* E17/E19: reconnect, backing off linearly up to 30 s */
        failures++;
        sleep(failures < 30 ? failures : 30);
    }
}

/* see agent_cli.h */
int agent_cli_main(const struct mf_cmd *cmd, const struct mf_opt_vals *v)
{
    struct cli_opts o;
    opts_from(v, &o);
    if (strcmp(cmd->name, "fetch x509") == 0) {
        return fetch_x509(&o);
    }
    if (strcmp(cmd->name, "fetch jwt") == 0) {
        return fetch_jwt(&o);
    }
    if (strcmp(cmd->name, "validate jwt") == 0) {
        return validate_jwt(&o);
    }
    if (strcmp(cmd->name, "watch") == 0) {
        return watch(&o);
    }
    if (strcmp(cmd->name, "healthcheck") == 0) {
        return healthcheck(&o);
    }
    fprintf(stderr, "mayfly-agent: unknown command %s\n", cmd->name);
    return 2;
}
