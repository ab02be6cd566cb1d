/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_cli: the admin subcommands of mayfly-ca (entry, token, agent, bundle,
 * ca, healthcheck), each a client of the admin API over the admin socket.
 * Tables for people by default, the API's JSON with --json. A failure prints
 * one line on stderr; exit status 0 ok, 1 refused or failed, 2 bad usage.
 */
#ifndef CA_CLI_H
#define CA_CLI_H

/* argv[0] is the subcommand ("entry", "token", ...). */
int ca_cli_main(int argc, char **argv);

/* The usage text of every subcommand. */
void ca_cli_usage(void);

#endif /* CA_CLI_H */
