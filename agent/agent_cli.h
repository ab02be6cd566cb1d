/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_cli: the workload subcommands of mayfly-agent, clients of the
 * Workload API socket (--socket PATH, else SPIFFE_ENDPOINT_SOCKET):
 *
 *   fetch x509 [--write DIR]   print the SVIDs; write svid.N.pem, svid.N.key
 *                              (0600) and bundle.0.pem
 *   fetch jwt --audience A [--audience B]... [--spiffe-id ID]
 *                              print one JWT-SVID per line on stdout (one for
 *                              each identity, or for ID), a line about each
 *                              on stderr
 *   validate jwt --audience A --svid TOKEN
 *                              exit 0 and print the SPIFFE ID and claims when
 *                              the agent finds TOKEN valid for A, else 1
 *   watch --write DIR [--exec CMD | --signal SIG --pid-file F]
 *                              rewrite the files on every change, then run
 *                              CMD (sh -c) or signal the process in F
 *   healthcheck                exit 0 when the agent answers /health
 *
 * Files are written inside DIR through a directory handle: a temp file
 * (O_EXCL|O_NOFOLLOW), fsync, renameat. DIR itself or a target that is a
 * symbolic link is refused, so a hostile link cannot redirect a key.
 * Each returns the process exit status.
 */
#ifndef AGENT_CLI_H
#define AGENT_CLI_H

int agent_cli_fetch(int argc, char **argv);
int agent_cli_validate(int argc, char **argv);
int agent_cli_watch(int argc, char **argv);
int agent_cli_healthcheck(int argc, char **argv);

#endif /* AGENT_CLI_H */
