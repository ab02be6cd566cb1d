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
 * identity, start the CA worker, wait for the first sync (briefly when the
 * disk cache had SVIDs to serve) so the first workloads are not refused
 * needlessly, then open the socket and
 * print the readiness line. SIGTERM/SIGINT shut down cleanly; SIGHUP
 * reloads the log settings. Each step is a function below, and run() reads
 * as the list of them.
 */
#include <pthread.h>
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
#include "api/internal/mf_daemon.h"
#include "api/internal/mf_logfile.h"
#include "api/internal/mf_opt.h"

/* How long the socket waits for the first sync with the CA: the whole wait
 * when the disk cache had nothing to serve (every workload would be refused
 * until then), a short one when it had SVIDs (they are served at once; the
 * short wait lets a small registry's changes made while the agent was down
 * apply before the first answer) */
#define FIRST_SYNC_WAIT_MS      5000
#define FIRST_SYNC_WAIT_WARM_MS 100

/* Everything `run` holds, so that each step is a small function. */
struct run {
    int argc; /* the flags of run, kept to re-read them on SIGHUP */
    char **argv;
    struct agent_config cfg;
    struct agent_attestor att;
    struct agent_state state;
    struct agent_worker worker;
    struct agent_sock sock;
    struct agent_jwt *jwt;
    int sfd;
    bool att_ok, state_ok, worker_ok, sock_ok;
};

static int fail(const char *what, mf_res r)
{
    return mf_daemon_fail("mayfly-agent", what, r);
}

/* Returns an exit status, or -1 to go on. */
static int load_config(struct run *run)
{
    mf_res r = agent_config_parse(run->argc, run->argv, &run->cfg);
    if (!mf_ok(r)) {
        return mf_opt_usage_error(agent_cli_prog(), agent_config_cmd(), r);
    }
    return run->cfg.vals->help ? 0 : -1;
}

/* Attest or reload the identity and start the CA worker; then wait briefly
 * for the first sync, so the first workloads are not refused needlessly. */
static int start_identity(struct run *run)
{
    mf_res r = agent_metrics_start(&run->cfg);
    if (!mf_ok(r)) {
        return fail("metrics", r);
    }
    r = agent_attestor_init(&run->att, run->cfg.hash_max);
    run->att_ok = mf_ok(r);
    if (mf_ok(r)) {
        r = agent_state_init(&run->state);
        run->state_ok = mf_ok(r);
    }
    if (mf_ok(r)) {
        r = agent_worker_init(&run->worker, &run->cfg, &run->state);
        run->worker_ok = true;
    }
    if (mf_ok(r)) {
        r = agent_worker_start(&run->worker);
    }
    if (mf_ok(r)) {
        /* JWT-SVIDs are fetched on demand, over a CA connection of their own */
        r = agent_jwt_new(run->cfg.server, run->worker.td, &run->state, &run->jwt);
    }
    if (!mf_ok(r)) {
        return fail("start", r);
    }
    size_t cached = run->worker.n_loaded;
    if (agent_worker_wait_synced(&run->worker,
                                 cached > 0 ? FIRST_SYNC_WAIT_WARM_MS : FIRST_SYNC_WAIT_MS)) {
        return 0;
    }
    if (cached > 0) {
        mf_log_info("serving %zu cached SVIDs while the first sync with the CA goes on", cached);
    } else {
        mf_log_warn("CA not reached yet; serving the cached SVIDs meanwhile");
    }
    return 0;
}

static int start_socket(struct run *run)
{
    struct agent_sock_cfg scfg = {
        .path = run->cfg.socket,
        .max_conns = run->cfg.max_conns,
        .max_conns_per_uid = run->cfg.max_conns_per_uid,
        .max_watches = run->cfg.max_watches,
        .conn_timeout_s = run->cfg.conn_timeout_s,
        .idle_timeout_s = run->cfg.idle_timeout_s,
        .jwt = run->jwt,
        .allow_verifiers = run->cfg.allow_verifiers,
        .sds_validator = run->cfg.sds_validator,
    };
    mf_res r = agent_sock_start(&run->sock, &scfg, &run->state, &run->att);
    if (!mf_ok(r)) {
        return fail("socket", r);
    }
    run->sock_ok = true;
    return 0;
}

static void say_ready(struct run *run)
{
    fprintf(stderr, "mayfly-agent ready socket=%s spiffe_id=%s\n", run->cfg.socket,
            run->worker.agent_id.str);
    fflush(stderr);
    agent_metrics_ready();
}

/* SIGHUP: re-read the flags and the config file; apply the log settings
 * (the log file is reopened in any case, for logrotate); name every other
 * changed option, which needs a restart. A file that no longer parses
 * changes nothing. The old settings stay in force (the worker and the
 * socket hold pointers into them). */
static void reload(struct run *run)
{
    struct agent_config nc;
    char skipped[512] = "";
    size_t used = 0;
    mf_res r = agent_config_parse(run->argc, run->argv, &nc);
    if (!mf_ok(r)) {
        /* the log file is reopened all the same: logrotate moved it */
        mf_res lr = mf_logfile_open(run->cfg.log_file);
        if (!mf_ok(lr)) {
            mf_log_err_r(lr, "SIGHUP: cannot reopen the log file");
        }
        mf_log_err_r(r, "SIGHUP: the configuration does not parse; nothing changed");
        agent_config_cleanup(&nc);
        return;
    }
    const struct mf_cmd *cmd = agent_config_cmd();
    for (size_t i = 0; i < cmd->n_opts; i++) {
        if (!(cmd->opts[i].flags & MF_OPT_RELOAD) && mf_opt_changed(run->cfg.vals, nc.vals, i)) {
            int k = snprintf(skipped + used, sizeof(skipped) - used, " %s", cmd->opts[i].name);
            if (k > 0 && (size_t)k < sizeof(skipped) - used) {
                used += (size_t)k;
            }
        }
    }
    r = mf_daemon_start_logging(nc.log_level, nc.log_format, nc.log_file);
    if (!mf_ok(r)) {
        mf_log_err_r(r, "SIGHUP: cannot reopen the log file; logging continues where it was");
    }
    mf_log_info("SIGHUP: reloaded log-level=%s log-format=%s log-file=%s; every other option "
                "needs a restart",
                mf_opt_get(nc.vals, "log-level"), mf_opt_get(nc.vals, "log-format"),
                nc.log_file != NULL ? nc.log_file : "(stderr)");
    if (used > 0) {
        mf_log_warn("SIGHUP: changed but not reloaded (restart to apply):%s", skipped);
    }
    agent_config_cleanup(&nc);
}

/* Until SIGTERM or SIGINT. */
static void signal_loop(struct run *run)
{
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(run->sfd, &si, sizeof(si));
        if (n != (ssize_t)sizeof(si)) {
            continue;
        }
        if (si.ssi_signo == SIGHUP) {
            reload(run);
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            mf_log_info("shutting down (signal %u)", si.ssi_signo);
            return;
        }
    }
}

static void stop(struct run *run)
{
    agent_metrics_stop();
    if (run->state_ok) {
        agent_state_stop(&run->state);
    }
    if (run->sock_ok) {
        agent_sock_stop(&run->sock);
        (void)unlink(run->cfg.socket);
    }
    agent_jwt_free(run->jwt);
    if (run->worker_ok) {
        agent_worker_stop(&run->worker);
        agent_worker_cleanup(&run->worker);
    }
    if (run->state_ok && !run->worker.started) {
        agent_state_cleanup(&run->state);
    }
    if (run->att_ok) {
        agent_attestor_cleanup(&run->att);
    }
    if (run->sfd >= 0) {
        close(run->sfd);
    }
    agent_config_cleanup(&run->cfg);
}

static int run(const struct mf_prog *prog, const struct mf_cmd *cmd, int argc, char **argv)
{
    (void)prog;
    (void)cmd;
    static struct run run = {.sfd = -1};
    run.argc = argc;
    run.argv = argv;
    int rc = load_config(&run);
    if (rc >= 0) {
        agent_config_cleanup(&run.cfg);
        return rc;
    }
    mf_res r = mf_daemon_start_logging(run.cfg.log_level, run.cfg.log_format, run.cfg.log_file);
    if (mf_ok(r)) {
        r = mf_harden_process();
    }
    umask(077);
    if (mf_ok(r)) {
        r = mf_daemon_block_signals(&run.sfd, 0);
    }
    rc = mf_ok(r) ? 0 : fail("start", r);
    if (rc == 0) {
        rc = start_identity(&run);
    }
    if (rc == 0) {
        rc = start_socket(&run);
    }
    if (rc == 0) {
        say_ready(&run);
        signal_loop(&run);
    }
    stop(&run);
    return rc;
}

int main(int argc, char **argv)
{
    return mf_opt_dispatch(agent_cli_prog(), argc, argv, run, agent_cli_main);
}
