/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_cli: the admin subcommands of mayfly-ca (entry, token, agent, bundle,
 * ca, healthcheck), each a client of the admin API over the admin socket.
 * Tables for people by default, the API's JSON with --json. A failure prints
 * one line on stderr; exit status 0 ok, 1 refused or failed, 2 bad usage.
 */
#ifndef CA_CLI_H
#define CA_CLI_H

#include "api/internal/mf_opt.h"

/* Every command of mayfly-ca, run included, with its options (mf_opt.h). */
const struct mf_prog *ca_cli_prog(void);

/* Runs an admin command with its parsed options; returns the exit status. */
int ca_cli_main(const struct mf_cmd *cmd, const struct mf_opt_vals *v);

#endif /* CA_CLI_H */
