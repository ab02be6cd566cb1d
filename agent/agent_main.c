/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mayfly-agent: subcommand parsing and wiring, nothing else.
 *
 *   run          the node agent (agent_config.h for the options)
 *   fetch x509    \
 *   fetch jwt      |
 *   validate jwt    > workload subcommands (agent_cli.h)
 *   watch          |
 *   healthcheck   /
 *
 * `run` order: harden the process, set the umask, block signals before any
 * thread exists (they are read from a signalfd), attest or reload the
 * identity, start the CA worker, wait briefly for the first sync so the
 * first workloads are not refused needlessly, then open the socket and
 * print the readiness line. SIGTERM/SIGINT shut down cleanly.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "agent/agent_attest.h"
#include "agent/agent_cli.h"
#include "agent/agent_config.h"
#include "agent/agent_jwt.h"
#include "agent/agent_metrics.h"
#include "agent/agent_sock.h"
#include "agent/agent_state.h"
#include "agent/agent_worker.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"

#define FIRST_SYNC_WAIT_MS 5000

static void usage(void)
{
    fprintf(stderr,
            "usage: mayfly-agent run --data-dir DIR --server HOST:PORT --trust-bundle FILE\n"
            "                        [--join-token TOKEN] --socket PATH [--config FILE]\n"
            "                        [--trust-domain TD] [--renew-window 45-55]\n"
            "                        [--log-level L] [--log-format text|json]\n"
            "                        [--metrics-listen HOST:PORT] [--expiry-warning DUR]\n"
            "       mayfly-agent fetch x509 [--socket PATH] [--write DIR]\n"
            "       mayfly-agent fetch jwt --audience A [--audience B]... [--spiffe-id ID]\n"
            "       mayfly-agent validate jwt --audience A --svid TOKEN [--socket PATH]\n"
            "       mayfly-agent watch --write DIR [--exec CMD | --signal SIG --pid-file F]\n"
            "       mayfly-agent healthcheck [--socket PATH]\n");
}

static void fail(const char *what, mf_res r)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    fprintf(stderr, "mayfly-agent: %s: %s\n", what, msg);
}

static int run(int argc, char **argv)
{
    struct agent_config cfg;
    struct agent_attestor att;
    struct agent_state state;
    struct agent_worker worker;
    struct agent_sock sock;
    struct agent_jwt *jwt = NULL;
    sigset_t set;
    int sfd = -1, status = 1;
    bool att_ok = false, state_ok = false, worker_ok = false, sock_ok = false;

    mf_res r = agent_config_parse(argc, argv, &cfg);
    if (!mf_ok(r)) {
        fail("run", r);
        agent_config_cleanup(&cfg);
        usage();
        return 2;
    }
    mf_log_setup(cfg.log_level, cfg.log_format);
    r = mf_harden_process();
    if (!mf_ok(r)) {
        fail("hardening", r);
        goto out;
    }
    umask(077);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
        (sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
        fprintf(stderr, "mayfly-agent: cannot set up signals\n");
        goto out;
    }

    r = agent_metrics_start(&cfg);
    if (!mf_ok(r)) {
        fail("metrics", r);
        goto out;
    }
    r = agent_attestor_init(&att, cfg.hash_max);
    att_ok = mf_ok(r);
    if (mf_ok(r)) {
        r = agent_state_init(&state);
        state_ok = mf_ok(r);
    }
    if (mf_ok(r)) {
        r = agent_worker_init(&worker, &cfg, &state);
        worker_ok = true;
    }
    if (mf_ok(r)) {
        r = agent_worker_start(&worker);
    }
    if (!mf_ok(r)) {
        fail("start", r);
        goto out;
    }
    /* JWT-SVIDs are fetched on demand, over a CA connection of their own */
    r = agent_jwt_new(cfg.server, worker.td, &state, &jwt);
    if (!mf_ok(r)) {
        fail("start", r);
        goto out;
    }
    if (!agent_worker_wait_synced(&worker, FIRST_SYNC_WAIT_MS)) {
        mf_log_warn("CA not reached yet; serving the cached SVIDs meanwhile");
    }
    struct agent_sock_cfg scfg = {
        .path = cfg.socket,
        .max_conns = cfg.max_conns,
        .max_conns_per_uid = cfg.max_conns_per_uid,
        .max_watches = cfg.max_watches,
        .conn_timeout_s = cfg.conn_timeout_s,
        .idle_timeout_s = cfg.idle_timeout_s,
        .jwt = jwt,
    };
    r = agent_sock_start(&sock, &scfg, &state, &att);
    if (!mf_ok(r)) {
        fail("socket", r);
        goto out;
    }
    sock_ok = true;
    fprintf(stderr, "mayfly-agent ready socket=%s spiffe_id=%s\n", cfg.socket,
            worker.agent_id.str);
    fflush(stderr);
    agent_metrics_ready();

    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof(si));
        if (n != (ssize_t)sizeof(si)) {
            continue;
        }
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            mf_log_info("shutting down (signal %u)", si.ssi_signo);
            break;
        }
    }
    status = 0;
out:
    agent_metrics_stop();
    if (state_ok) {
        agent_state_stop(&state);
    }
    if (sock_ok) {
        agent_sock_stop(&sock);
        (void)unlink(cfg.socket);
    }
    agent_jwt_free(jwt);
    if (worker_ok) {
        agent_worker_stop(&worker);
        agent_worker_cleanup(&worker);
    }
    if (state_ok && !worker.started) {
        agent_state_cleanup(&state);
    }
    if (att_ok) {
        agent_attestor_cleanup(&att);
    }
    if (sfd >= 0) {
        close(sfd);
    }
    agent_config_cleanup(&cfg);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0) {
        return run(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "fetch") == 0) {
        return agent_cli_fetch(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "validate") == 0) {
        return agent_cli_validate(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "watch") == 0) {
        return agent_cli_watch(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "healthcheck") == 0) {
        return agent_cli_healthcheck(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage();
        return 0;
    }
    fprintf(stderr, "mayfly-agent: unknown command %s\n", cmd);
    usage();
    return 2;
}
