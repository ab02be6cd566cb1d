/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_logfile: --log-file of both daemons, and its reopening on SIGHUP.
 * Internal: linked by the daemons only (libmayfly-internal.a).
 *
 * The log goes to one descriptor that never changes number: the first
 * open hands it to mf_log_set_fd(), and every reopen opens the path anew
 * and dup2()s it over that descriptor. dup2 replaces it atomically, so a
 * thread logging at that instant writes whole lines to the old file or to
 * the new one, never to a closed or reused descriptor. This is what
 * logrotate's "move, then SIGHUP" needs.
 */
#ifndef MF_LOGFILE_H
#define MF_LOGFILE_H

#include "api/core/mf_err.h"

/* Opens (or reopens) path for appending, mode 0600, and sends the log there;
 * path "" or NULL sends it back to stderr. */
MF_WUR mf_res mf_logfile_open(const char *path);

#endif /* MF_LOGFILE_H */
