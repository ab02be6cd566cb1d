/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mayfly-ca: subcommand parsing and wiring only.
 *
 * `run` builds the context (store, keys, issuer, agent API, admin API),
 * prints one readiness line on stderr once both sockets accept, and then
 * sits in a loop that reads signals from a signalfd (SIGTERM/SIGINT: clean
 * shutdown, SIGHUP: reload the log settings and the signing limits) and drives the CA key schedule
 * and server SVID renewal. Each step of that sequence is a function below,
 * and run() reads as the list of them.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/signalfd.h>
#include <sys/stat.h>

#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_daemon.h"
#include "api/internal/mf_logfile.h"
#include "api/internal/mf_opt.h"
#include "api/pki/mf_x509.h"
#include "ca/ca.h"
#include "ca/ca_admin.h"
#include "ca/ca_api.h"
#include "ca/ca_bundle_ep.h"
#include "ca/ca_cli.h"
#include "ca/ca_fed.h"
#include "ca/ca_metrics.h"

#define TICK_MS 200

/* Everything `run` holds, so that each step is a small function. */
struct run {
    struct ca_ctx ctx;
    const struct mf_prog *prog;
    const struct mf_cmd *cmd;
    int argc; /* the flags of run, kept to re-read them on SIGHUP */
    char **argv;
    struct mf_opt_vals vals; /* the values in force (compared on SIGHUP) */
    int sfd;
};

static int fail(const char *what, mf_res r)
{
    return mf_daemon_fail("mayfly-ca", what, r);
}

/* Flags and config file into cfg. Returns an exit status, or -1 to go on. */
static int load_config(struct run *run)
{
    mf_res r = mf_opt_parse(run->prog, run->cmd, run->argc, run->argv, &run->vals);
    if (mf_ok(r) && run->vals.help) {
        return 0;
    }
    if (mf_ok(r)) {
        r = ca_config_from_vals(&run->ctx.cfg, &run->vals);
    }
    if (!mf_ok(r)) {
        return mf_opt_usage_error(run->prog, run->cmd, r);
    }
    /* a combination of valid values that cannot work is bad usage too */
    r = ca_config_validate(&run->ctx.cfg);
    return mf_ok(r) ? -1 : mf_opt_usage_error(run->prog, run->cmd, r);
}

static void init_ctx(struct ca_ctx *ctx)
{
    pthread_mutex_init(&ctx->ch_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ctx->ch_cond, &ca);
    pthread_condattr_destroy(&ca);
    mf_x509_global_init();
}

/* A change notice from another server sharing the registry: it may have
 * been a key change (the bundle is every server's keys), so the bundle is
 * brought up to date before the long polls wake. */
static void store_changed(void *cls)
{
    struct ca_ctx *ctx = cls;
    bool changed = false;
    mf_res r = ca_keys_refresh(ctx->keys, &changed);
    if (!mf_ok(r)) {
        mf_log_warn_r(r, "cannot reload the bundle from the registry; will retry");
    }
    ca_ctx_changed(ctx);
}

/* The registry, the CA keys and the signer. */
static int open_store(struct ca_ctx *ctx)
{
    mf_res r = ca_store_open_ds(ctx->cfg.data_dir, ctx->cfg.datastore, &ctx->store);
    if (!mf_ok(r)) {
        return fail("cannot open the registry", r);
    }
    r = ca_store_set_recall(ctx->store, ctx->cfg.datastore_grace);
    if (!mf_ok(r)) {
        return fail("cannot keep the registry's last answers", r);
    }
    r = ca_keys_open(&ctx->cfg, ctx->store, &ctx->keys);
    if (!mf_ok(r)) {
        return fail("cannot load the CA keys", r);
    }
    /* with a database shared by several servers, their changes wake this
     * server's long polls too, and their key changes reach its bundle; a
     * change made between loading the keys and listening is caught by one
     * refresh after */
    r = ca_store_watch(ctx->store, store_changed, ctx);
    if (!mf_ok(r)) {
        return fail("cannot watch the registry", r);
    }
    bool changed = false;
    r = ca_keys_refresh(ctx->keys, &changed);
    if (!mf_ok(r)) {
        return fail("cannot load the bundle", r);
    }
    r = ca_issuer_new(ctx->cfg.max_signing, ctx->cfg.agent_rate, ctx->cfg.agent_burst,
                      &ctx->issuer);
    if (!mf_ok(r)) {
        return fail("cannot set up signing", r);
    }
    r = ca_sign_pool_new(ctx->cfg.signers, &ctx->signers);
    if (!mf_ok(r)) {
        return fail("cannot start the signer threads", r);
    }
    return 0;
}

/* Metrics, the agent API and the admin API. */
static int start_servers(struct ca_ctx *ctx)
{
    mf_res r = ca_metrics_start(ctx);
    if (!mf_ok(r)) {
        return fail("cannot start the metrics server", r);
    }
    r = ca_api_start(ctx, &ctx->api);
    if (!mf_ok(r)) {
        return fail("cannot start the agent API", r);
    }
    r = ca_admin_start(ctx, &ctx->admin);
    if (!mf_ok(r)) {
        return fail("cannot start the admin API", r);
    }
    r = ca_bundle_ep_start(ctx, &ctx->bep);
    if (!mf_ok(r)) {
        return fail("cannot start the bundle endpoint", r);
    }
    r = ca_fed_start(ctx, &ctx->fed);
    if (!mf_ok(r)) {
        return fail("cannot start federation", r);
    }
    return 0;
}

/* Both sockets are listening (MHD accepts from here on). */
static void say_ready(const struct ca_ctx *ctx)
{
    fprintf(stderr, "mayfly-ca ready listen=%s admin=%s trust_domain=%s%s%s\n",
            ca_api_address(ctx->api), ctx->cfg.admin_socket, ctx->cfg.trust_domain,
            ctx->bep != NULL ? " bundle_endpoint=" : "", ca_bundle_ep_address(ctx->bep));
    fflush(stderr);
    ca_metrics_ready();
}

/* SIGHUP: re-read the flags and the config file; apply the log settings
 * (level, format, file: the file is reopened in any case, for logrotate)
 * and the signing limits (max-signing, agent-rate, agent-burst);
 * name every other changed option, which needs a restart. A file that no
 * longer parses changes nothing. */
static void reload(struct run *run)
{
    struct mf_opt_vals nv;
    struct ca_config nc;
    char skipped[512] = "";
    size_t used = 0;
    mf_res r = mf_opt_parse(run->prog, run->cmd, run->argc, run->argv, &nv);
    if (mf_ok(r)) {
        r = ca_config_from_vals(&nc, &nv);
    }
    if (!mf_ok(r)) {
        /* the log file is reopened all the same: logrotate moved it */
        mf_res lr = mf_logfile_open(run->ctx.cfg.log_file);
        if (!mf_ok(lr)) {
            mf_log_err_r(lr, "SIGHUP: cannot reopen the log file");
        }
        mf_log_err_r(r, "SIGHUP: the configuration does not parse; nothing changed");
        ca_config_wipe(&nc);
        mf_opt_vals_cleanup(&nv);
        return;
    }
    for (size_t i = 0; i < run->cmd->n_opts; i++) {
        const struct mf_opt *o = &run->cmd->opts[i];
        if (!(o->flags & MF_OPT_RELOAD) && mf_opt_changed(&run->vals, &nv, i)) {
            int k = snprintf(skipped + used, sizeof(skipped) - used, " %s", o->name);
            if (k > 0 && (size_t)k < sizeof(skipped) - used) {
                used += (size_t)k;
            }
        }
    }
    r = ca_issuer_set_limits(run->ctx.issuer, nc.max_signing, nc.agent_rate, nc.agent_burst);
    if (mf_ok(r)) {
        run->ctx.cfg.max_signing = nc.max_signing;
        run->ctx.cfg.agent_rate = nc.agent_rate;
        run->ctx.cfg.agent_burst = nc.agent_burst;
    } else {
        mf_log_err_r(r, "SIGHUP: cannot change the signing limits");
    }
    memcpy(run->ctx.cfg.log_file, nc.log_file, sizeof(nc.log_file));
    run->ctx.cfg.log_level = nc.log_level;
    run->ctx.cfg.log_format = nc.log_format;
    r = mf_daemon_start_logging(run->ctx.cfg.log_level, run->ctx.cfg.log_format,
                                run->ctx.cfg.log_file);
    if (!mf_ok(r)) {
        mf_log_err_r(r, "SIGHUP: cannot reopen the log file; logging continues where it was");
    }
    mf_log_info("SIGHUP: reloaded log-level=%s log-format=%s log-file=%s max-signing=%u "
                "agent-rate=%u agent-burst=%u; every other option needs a restart",
                mf_opt_get(&nv, "log-level"), mf_opt_get(&nv, "log-format"),
                nc.log_file[0] != '\0' ? nc.log_file : "(stderr)", nc.max_signing, nc.agent_rate,
                nc.agent_burst);
    if (used > 0) {
        mf_log_warn("SIGHUP: changed but not reloaded (restart to apply):%s", skipped);
    }
    mf_opt_vals_cleanup(&run->vals);
    run->vals = nv;
    ca_config_wipe(&nc); /* its datastore string may hold a password */
}

/* One tick of the CA key schedule and of the server SVID's renewal. */
static void maintain(struct ca_ctx *ctx)
{
    int64_t now = mf_now();
    bool changed = false;
    mf_res r = ca_keys_tick(ctx->keys, now, &changed);
    if (!mf_ok(r)) {
        mf_log_err_r(r, "CA key rotation step failed; will retry");
    } else if (changed) {
        ca_ctx_changed(ctx);
    }
    r = ca_api_maintain(ctx->api, now);
    if (!mf_ok(r)) {
        mf_log_err_r(r, "server SVID renewal failed; will retry");
    }
    r = ca_bundle_ep_maintain(ctx->bep, now);
    if (!mf_ok(r)) {
        mf_log_err_r(r, "bundle endpoint SVID renewal failed; will retry");
    }
}

/* Until SIGTERM or SIGINT. */
static void signal_loop(struct run *run)
{
    for (;;) {
        struct pollfd pfd = {.fd = run->sfd, .events = POLLIN};
        int pr = poll(&pfd, 1, TICK_MS);
        if (pr < 0 && errno != EINTR) {
            return;
        }
        if (pr > 0) {
            struct signalfd_siginfo si;
            ssize_t got = read(run->sfd, &si, sizeof(si));
            if (got == (ssize_t)sizeof(si) && si.ssi_signo == SIGHUP) {
                reload(run);
            } else if (got == (ssize_t)sizeof(si)) {
                mf_log_info("signal %u: shutting down", si.ssi_signo);
                return;
            }
        }
        maintain(&run->ctx);
    }
}

static void stop(struct run *run)
{
    struct ca_ctx *ctx = &run->ctx;
    ca_metrics_stop();
    pthread_mutex_lock(&ctx->ch_mu);
    ctx->stopping = true;
    pthread_cond_broadcast(&ctx->ch_cond);
    pthread_mutex_unlock(&ctx->ch_mu);
    ca_admin_stop(ctx->admin); /* its handlers use ctx->fed */
    if (ctx->admin != NULL) {
        (void)unlink(ctx->cfg.admin_socket);
    }
    ca_fed_stop(ctx->fed);
    ctx->fed = NULL;
    ca_bundle_ep_stop(ctx->bep);
    ctx->bep = NULL;
    ca_api_stop(ctx->api);
    /* no server thread can submit any more */
    ca_sign_pool_free(ctx->signers);
    ca_issuer_free(ctx->issuer);
    /* the watcher refreshes the keys: it ends before they are freed */
    ca_store_unwatch(ctx->store);
    ca_keys_free(ctx->keys);
    ca_store_close(ctx->store);
    ca_config_wipe(&ctx->cfg);
    if (run->sfd >= 0) {
        close(run->sfd);
    }
    mf_opt_vals_cleanup(&run->vals);
}

static int run(const struct mf_prog *prog, const struct mf_cmd *cmd, int argc, char **argv)
{
    static struct run run = {.sfd = -1};
    run.prog = prog;
    run.cmd = cmd;
    run.argc = argc;
    run.argv = argv;
    umask(077);
    mf_res r = mf_harden_process();
    if (!mf_ok(r)) {
        return fail("cannot harden the process", r);
    }
    int rc = load_config(&run);
    if (rc >= 0) {
        mf_opt_vals_cleanup(&run.vals);
        return rc;
    }
    r = mf_daemon_start_logging(run.ctx.cfg.log_level, run.ctx.cfg.log_format,
                                run.ctx.cfg.log_file);
    if (mf_ok(r)) {
        r = mf_daemon_block_signals(&run.sfd, SFD_NONBLOCK);
    }
    if (!mf_ok(r)) {
        mf_opt_vals_cleanup(&run.vals);
        return fail("cannot start", r);
    }
    init_ctx(&run.ctx);
    rc = open_store(&run.ctx);
    if (rc == 0) {
        rc = start_servers(&run.ctx);
    }
    if (rc == 0) {
        say_ready(&run.ctx);
        signal_loop(&run);
    }
    stop(&run);
    return rc;
}

int main(int argc, char **argv)
{
    return mf_opt_dispatch(ca_cli_prog(), argc, argv, run, ca_cli_main);
}
