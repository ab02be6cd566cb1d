/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_daemon: the start-up steps both daemons (mayfly-ca, mayfly-agent)
 * take the same way: logging, signals and the start-up error line.
 * Internal: linked by the daemons only (libmayfly-internal.a).
 */
#ifndef MF_DAEMON_H
#define MF_DAEMON_H

#include "api/core/mf_err.h"
#include "api/core/mf_log.h"

/* Prints "PROG: what: error" on stderr and returns the exit status 1. */
int mf_daemon_fail(const char *prog, const char *what, mf_res r);

/* Sets the log level and format and opens file ("" or NULL: stderr). */
MF_WUR mf_res mf_daemon_start_logging(enum mf_log_level level, enum mf_log_format format,
                                      const char *file);

/* Blocks SIGTERM, SIGINT and SIGHUP and opens *sfd, a signalfd for them
 * (sfd_flags: SFD_CLOEXEC is always added), and ignores SIGPIPE. Call it
 * before any thread exists, so that only the signalfd sees them. */
MF_WUR mf_res mf_daemon_block_signals(int *sfd, int sfd_flags);

#endif /* MF_DAEMON_H */
