/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_config: options of `mayfly-agent run`, from flags and an optional
 * config file (--config FILE) of "key = value" lines whose keys are the
 * flag names with '_' for '-' ("data_dir", "server", ...): mf_opt's format,
 * the same as mayfly-ca's. Flags win over the file.
 */
#ifndef AGENT_CONFIG_H
#define AGENT_CONFIG_H

#include <stdint.h>

#include "agent/agent_rotate.h"
#include "agent/agent_sds.h"
#include "api/core/mf_err.h"
#include "api/core/mf_log.h"
#include "api/internal/mf_opt.h"

struct agent_config {
    const char *data_dir;
    const char *server;          /* host:port */
    const char *trust_bundle;    /* PEM file */
    const char *join_token;      /* may be NULL after the first attestation */
    const char *join_token_file; /* or the token in this file (re-read when needed) */
    const char *socket;          /* Workload API socket path */
    const char *trust_domain;    /* NULL: taken from the trust bundle */
    struct agent_rotate_cfg rot;
    enum mf_log_level log_level;
    enum mf_log_format log_format;
    unsigned max_conns;         /* Workload API connections at once */
    unsigned max_conns_per_uid; /* of which from one uid (root exempt); 0: max_conns / 4 */
    unsigned max_watches;       /* of which watch streams */
    unsigned conn_timeout_s;    /* a connection's first request complete within */
    unsigned idle_timeout_s;    /* a connection without a call closed after */
    uint64_t hash_max;          /* executables hashed for unix:sha256 up to this */
    const char *metrics_listen; /* host:port of /live /ready /metrics; NULL = off */
    int64_t expiry_warning_ms;  /* warn when an unrenewed SVID is this close to expiry */
    const char *log_file;       /* NULL: stderr */
    bool allow_verifiers;       /* bundles and JWT validation for callers with no entry */
    enum agent_sds_validator sds_validator; /* Envoy SDS validation contexts */
    struct mf_opt_vals *vals;               /* the parsed options (own the file's strings) */
};

/* The options of `run` (mf_opt.h). */
extern const struct mf_opt agent_run_opts[];
extern const size_t agent_run_n_opts;
const struct mf_cmd *agent_config_cmd(void);

/* Parses argv (after "run"). Refuses unknown options and missing required
 * ones with a message naming them. On --help, prints the usage and returns
 * MF_OK with cfg->vals->help set. Call agent_config_cleanup() in every
 * case. */
MF_WUR mf_res agent_config_parse(int argc, char **argv, struct agent_config *cfg);
void agent_config_cleanup(struct agent_config *cfg);

#endif /* AGENT_CONFIG_H */
