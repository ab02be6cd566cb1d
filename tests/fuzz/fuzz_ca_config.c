/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the CA's config file ("key = value" lines):
 * arbitrary bytes in an in-memory file (memfd) through mf_opt_parse and ca_config_from_vals,
 * then ca_config_validate. Every string the file can set must stay
 * NUL-terminated within its field.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/mman.h>

#include "api/core/mf_log.h"
#include "ca/ca_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        mf_log_setup(MF_LOG_ERR, MF_LOG_TEXT);
        quiet = 1;
    }
    int fd = memfd_create("fuzz_ca_config", MFD_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    static const struct mf_cmd run = {"run", NULL, 0, 0, "", ca_run_opts, 0};
    struct mf_cmd cmd = run;
    cmd.n_opts = ca_run_n_opts;
    const struct mf_prog prog = {"mayfly-ca", "0", "", &cmd, 1};
    char a0[] = "--config";
    char *argv[] = {a0, path, NULL};
    struct mf_opt_vals vals;
    struct ca_config c;
    ca_config_defaults(&c);
    mf_res r = mf_opt_parse(&prog, &cmd, 2, argv, &vals);
    if (mf_ok(r)) {
        r = ca_config_from_vals(&c, &vals);
    }
    mf_opt_vals_cleanup(&vals);
    if (mf_ok(r)) {
        if (memchr(c.data_dir, '\0', sizeof(c.data_dir)) == NULL ||
            memchr(c.trust_domain, '\0', sizeof(c.trust_domain)) == NULL ||
            memchr(c.listen, '\0', sizeof(c.listen)) == NULL ||
            memchr(c.admin_socket, '\0', sizeof(c.admin_socket)) == NULL ||
            memchr(c.upstream_ca_cert, '\0', sizeof(c.upstream_ca_cert)) == NULL ||
            memchr(c.upstream_ca_key, '\0', sizeof(c.upstream_ca_key)) == NULL) {
            __builtin_trap();
        }
        (void)ca_config_validate(&c);
    }
    close(fd);
    return 0;
}
