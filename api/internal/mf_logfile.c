/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_logfile: the log file and its reopening (see mf_logfile.h).
 */
#include "api/internal/mf_logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "api/core/mf_log.h"

/* only the main thread opens and reopens (start-up, then the signal loop) */
static int log_fd = -1;

mf_res mf_logfile_open(const char *path)
{
    int fd = -1;
    if (path != NULL && path[0] != '\0') {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        MF_ENSURE_MSG(fd >= 0, MF_ERR_IO, "cannot open log file %s: %s", path, strerror(errno));
    } else {
        if (log_fd < 0) {
            return MF_RES_OK; /* already stderr */
        }
        fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        MF_ENSURE_MSG(fd >= 0, MF_ERR_IO, "cannot duplicate stderr: %s", strerror(errno));
    }
    if (log_fd < 0) {
        log_fd = fd;
        mf_log_set_fd(log_fd);
        return MF_RES_OK;
    }
    int r = dup3(fd, log_fd, O_CLOEXEC);
    int e = errno;
    close(fd);
    MF_ENSURE_MSG(r >= 0, MF_ERR_IO, "cannot switch the log file: %s", strerror(e));
    mf_log_set_fd(log_fd); /* the same number, another file: look at it again */
    return MF_RES_OK;
}
