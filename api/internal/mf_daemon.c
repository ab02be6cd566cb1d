/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_daemon: start-up steps shared by the daemons (see mf_daemon.h).
 */
#include "api/internal/mf_daemon.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <sys/signalfd.h>

#include "api/internal/mf_logfile.h"

int mf_daemon_fail(const char *prog, const char *what, mf_res r)
{
    char msg[1024];
    mf_err_format(r, msg, sizeof(msg));
    fprintf(stderr, "%s: %s: %s\n", prog, what, msg);
    return 1;
}

mf_res mf_daemon_start_logging(enum mf_log_level level, enum mf_log_format format, const char *file)
{
    mf_log_setup(level, format);
    return mf_logfile_open(file);
}

mf_res mf_daemon_block_signals(int *sfd, int sfd_flags)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    MF_ENSURE_MSG(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0, MF_ERR_INTERNAL,
                  "cannot block signals");
    *sfd = signalfd(-1, &set, SFD_CLOEXEC | sfd_flags);
    MF_ENSURE_MSG(*sfd >= 0, MF_ERR_INTERNAL, "signalfd: %s", strerror(errno));
    return MF_RES_OK;
}
