/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the agent's config file (key = value lines,
 * --config FILE,
 * agent_config.h): arbitrary bytes in an in-memory file (memfd) through
 * agent_config_parse, with the required flags given on the command line so
 * that the file's values are what decides.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <sys/mman.h>

#include "agent/agent_config.h"
#include "api/core/mf_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
        quiet = 1;
    }
    int fd = memfd_create("fuzz_agent_config", MFD_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char a0[] = "--config", a2[] = "--server", a3[] = "127.0.0.1:1";
    char *argv[] = {a0, path, a2, a3, NULL};
    struct agent_config cfg;
    mf_res r = agent_config_parse(4, argv, &cfg);
    if (mf_ok(r)) {
        if (cfg.data_dir == NULL || cfg.trust_bundle == NULL || cfg.socket == NULL ||
            cfg.max_watches >= cfg.max_conns || cfg.rot.lo_pct > cfg.rot.hi_pct) {
            __builtin_trap();
        }
    }
    agent_config_cleanup(&cfg);
    close(fd);
    return 0;
}
