/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mayfly-ca: subcommand parsing and wiring only.
 *
 * `run` builds the context (store, keys, issuer, agent API, admin API),
 * prints one readiness line on stderr once both sockets accept, and then
 * sits in a loop that reads signals from a signalfd (SIGTERM/SIGINT: clean
 * shutdown) and drives the CA key schedule and server SVID renewal. Signals
 * are blocked before any thread exists, so only the signalfd sees them.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/pki/mf_x509.h"
#include "ca/ca.h"
#include "ca/ca_admin.h"
#include "ca/ca_api.h"
#include "ca/ca_cli.h"
#include "ca/ca_metrics.h"

#define TICK_MS 200

static int fail(const char *what, mf_res r)
{
    char msg[1024];
    mf_err_format(r, msg, sizeof(msg));
    fprintf(stderr, "mayfly-ca: %s: %s\n", what, msg);
    return 1;
}

static int run(int argc, char **argv)
{
    static struct ca_ctx ctx;
    int rc = 1;
    int sfd = -1;
    umask(077);
    mf_res r = mf_harden_process();
    if (!mf_ok(r)) {
        return fail("cannot harden the process", r);
    }
    ca_config_defaults(&ctx.cfg);
    r = ca_config_parse_args(&ctx.cfg, argc, argv);
    if (mf_ok(r)) {
        r = ca_config_validate(&ctx.cfg);
    }
    if (!mf_ok(r)) {
        return fail("bad configuration", r);
    }
    mf_log_setup(ctx.cfg.log_level, ctx.cfg.log_format);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        fprintf(stderr, "mayfly-ca: signalfd: %s\n", strerror(errno));
        return 1;
    }

    pthread_mutex_init(&ctx.ch_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ctx.ch_cond, &ca);
    pthread_condattr_destroy(&ca);
    mf_x509_global_init();
    r = ca_metrics_start(&ctx);
    if (!mf_ok(r)) {
        rc = fail("cannot start the metrics server", r);
        goto out;
    }

    r = ca_store_open(ctx.cfg.data_dir, &ctx.store);
    if (!mf_ok(r)) {
        rc = fail("cannot open the registry", r);
        goto out;
    }
    r = ca_keys_open(&ctx.cfg, ctx.store, &ctx.keys);
    if (!mf_ok(r)) {
        rc = fail("cannot load the CA keys", r);
        goto out;
    }
    r = ca_issuer_new(ctx.cfg.max_signing, ctx.cfg.agent_rate, ctx.cfg.agent_burst, &ctx.issuer);
    if (!mf_ok(r)) {
        rc = fail("cannot set up signing", r);
        goto out;
    }
    r = ca_api_start(&ctx, &ctx.api);
    if (!mf_ok(r)) {
        rc = fail("cannot start the agent API", r);
        goto out;
    }
    r = ca_admin_start(&ctx, &ctx.admin);
    if (!mf_ok(r)) {
        rc = fail("cannot start the admin API", r);
        goto out;
    }
    /* Both sockets are listening (MHD accepts from here on). */
    fprintf(stderr, "mayfly-ca ready listen=%s admin=%s trust_domain=%s\n",
            ca_api_address(ctx.api), ctx.cfg.admin_socket, ctx.cfg.trust_domain);
    fflush(stderr);
    ca_metrics_ready();

    for (;;) {
        struct pollfd pfd = {.fd = sfd, .events = POLLIN};
        int pr = poll(&pfd, 1, TICK_MS);
        if (pr < 0 && errno != EINTR) {
            break;
        }
        if (pr > 0) {
            struct signalfd_siginfo si;
            ssize_t got = read(sfd, &si, sizeof(si));
            if (got == (ssize_t)sizeof(si) && si.ssi_signo != SIGHUP) {
                mf_log_info("signal %u: shutting down", si.ssi_signo);
                break;
            }
        }
        int64_t now = mf_now();
        bool changed = false;
        r = ca_keys_tick(ctx.keys, now, &changed);
        if (!mf_ok(r)) {
            mf_log_err_r(r, "CA key rotation step failed; will retry");
        } else if (changed) {
            ca_ctx_changed(&ctx);
        }
        r = ca_api_maintain(ctx.api, now);
        if (!mf_ok(r)) {
            mf_log_err_r(r, "server SVID renewal failed; will retry");
        }
    }
    rc = 0;
out:
    ca_metrics_stop();
    pthread_mutex_lock(&ctx.ch_mu);
    ctx.stopping = true;
    pthread_cond_broadcast(&ctx.ch_cond);
    pthread_mutex_unlock(&ctx.ch_mu);
    ca_admin_stop(ctx.admin);
    if (ctx.admin != NULL) {
        (void)unlink(ctx.cfg.admin_socket);
    }
    ca_api_stop(ctx.api);
    ca_issuer_free(ctx.issuer);
    ca_keys_free(ctx.keys);
    ca_store_close(ctx.store);
    if (sfd >= 0) {
        close(sfd);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        ca_cli_usage();
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "run") == 0) {
        return run(argc - 2, argv + 2);
    }
    return ca_cli_main(argc - 1, argv + 1);
}
