/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_config: options of `mayfly-agent run`, from flags and an optional
 * JSON config file (--config FILE) whose keys are the flag names without
 * the dashes ("data-dir", "server", ...). Flags win over the file.
 */
#ifndef AGENT_CONFIG_H
#define AGENT_CONFIG_H

#include <stdint.h>

#include <jansson.h>

#include "agent/agent_rotate.h"
#include "api/core/mf_err.h"
#include "api/core/mf_log.h"

struct agent_config {
    const char *data_dir;
    const char *server;       /* host:port */
    const char *trust_bundle; /* PEM file */
    const char *join_token;   /* may be NULL after the first attestation */
    const char *socket;       /* Workload API socket path */
    const char *trust_domain; /* NULL: taken from the trust bundle */
    struct agent_rotate_cfg rot;
    enum mf_log_level log_level;
    enum mf_log_format log_format;
    unsigned max_conns;       /* Workload API connections at once */
    unsigned max_conns_per_uid; /* of which from one uid (root exempt); 0: max_conns / 4 */
    unsigned max_watches;     /* of which watch streams */
    unsigned conn_timeout_s;  /* a connection's first request complete within */
    unsigned idle_timeout_s;  /* a connection without a call closed after */
    uint64_t hash_max;        /* executables hashed for unix:sha256 up to this */
    const char *metrics_listen; /* host:port of /live /ready /metrics; NULL = off */
    int64_t expiry_warning_ms;  /* warn when an unrenewed SVID is this close to expiry */
    json_t *file;             /* the config file (owns its strings) */
};

/* Parses argv (after "run"). Refuses unknown options and missing required
 * ones with a message naming them. */
MF_WUR mf_res agent_config_parse(int argc, char **argv, struct agent_config *cfg);
void agent_config_cleanup(struct agent_config *cfg);

#endif /* AGENT_CONFIG_H */
