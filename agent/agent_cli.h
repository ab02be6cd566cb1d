/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_cli: the workload subcommands of mayfly-agent, clients of the
 * Workload API socket (--socket PATH, else SPIFFE_ENDPOINT_SOCKET):
 *
 *   fetch x509 [--write DIR] [--wait DUR]
 *                              print the SVIDs; write svid.N.pem, svid.N.key
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
 *   healthcheck [--wait DUR]   exit 0 when the agent answers /health
 *
 * --wait retries, every 100 ms, while the agent is not there yet or has no
 * identity for the caller yet, so that a script needs no sleep.
 *
 * Files are written inside DIR through a directory handle: a temp file
 * (O_EXCL|O_NOFOLLOW), fsync, renameat. DIR itself or a target that is a
 * symbolic link is refused, so a hostile link cannot redirect a key.
 * Each returns the process exit status.
 */
#ifndef AGENT_CLI_H
#define AGENT_CLI_H

#include "api/internal/mf_opt.h"

/* Every command of mayfly-agent, run included, with its options. */
const struct mf_prog *agent_cli_prog(void);

/* Runs a workload command with its parsed options; returns the exit
 * status (0 ok, 1 failed or refused, 2 bad usage). */
int agent_cli_main(const struct mf_cmd *cmd, const struct mf_opt_vals *v);

#endif /* AGENT_CLI_H */
