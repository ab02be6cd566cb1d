/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_config: flags and config file of `mayfly-agent run`: one table
 * (agent_run_opts) for the parser, --help and the file; set_opt() turns
 * each value into its setting.
 */
#include "agent/agent_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_attest.h"
#include "agent/agent_metrics.h"
#include "api/core/mf_time.h"

#define OPT(n, k, a, d, h, f)                    \
    {                                            \
        n, k, a, d, h, MF_OPT_CONFIG | (f), NULL \
    }
const struct mf_opt agent_run_opts[] = {
    OPT("data-dir", MF_OPT_STR, "DIR", NULL, "the agent's identity and SVID cache (0700)",
        MF_OPT_REQUIRED),
    OPT("server", MF_OPT_STR, "HOST:PORT[,...]", NULL,
        "address of the CA; several servers of one trust domain comma-separated (the agent "
        "sticks to one, moving on when it fails)",
        MF_OPT_REQUIRED),
    OPT("trust-bundle", MF_OPT_STR, "FILE", NULL, "PEM CA certificates to trust at first contact",
        MF_OPT_REQUIRED),
    OPT("socket", MF_OPT_STR, "PATH", NULL, "Workload API socket to serve", MF_OPT_REQUIRED),
    OPT("join-token", MF_OPT_STR, "TOKEN", NULL, "single-use token for the first attestation", 0),
    OPT("join-token-file", MF_OPT_STR, "FILE", NULL,
        "file holding the join token (mode 0600 or stricter); re-read after an eviction", 0),
    OPT("trust-domain", MF_OPT_STR, "TD", NULL, "trust domain (default: from the trust bundle)", 0),
    OPT("renew-window", MF_OPT_STR, "LO-HI", "45-55",
        "renew at a point drawn in this percentage range of an SVID's life", 0),
    OPT("backoff-base", MF_OPT_DUR, "DUR", NULL, "first retry delay (default: 500ms)", 0),
    OPT("backoff-cap", MF_OPT_DUR, "DUR", "30s", "longest retry delay", 0),
    OPT("log-level", MF_OPT_STR, "LEVEL", "info", "error, warn, info or debug", MF_OPT_RELOAD),
    OPT("log-format", MF_OPT_STR, "FORMAT", "text", "text or json", MF_OPT_RELOAD),
    OPT("log-file", MF_OPT_STR, "FILE", NULL,
        "append log lines to FILE instead of stderr; reopened on SIGHUP", MF_OPT_RELOAD),
    OPT("max-connections", MF_OPT_NUM, "N", "128", "Workload API connections at once", 0),
    OPT("max-connections-per-uid", MF_OPT_NUM, "N", NULL,
        "of which from one uid (default: a quarter of max-connections)", 0),
    OPT("max-watches", MF_OPT_NUM, "N", "96", "of which long-lived (watch, gRPC)", 0),
    OPT("connection-timeout", MF_OPT_NUM, "SECONDS", "10",
        "a connection's first request complete within", 0),
    OPT("idle-timeout", MF_OPT_NUM, "SECONDS", "30", "an idle connection closed after", 0),
    OPT("hash-max-bytes", MF_OPT_NUM, "N", "268435456",
        "executables hashed for unix:sha256 up to this size", 0),
    OPT("metrics-listen", MF_OPT_STR, "HOST:PORT", NULL,
        "address of /live, /ready, /metrics (default: off)", 0),
    OPT("expiry-warning", MF_OPT_DUR, "DUR", "5m",
        "warn when an unrenewed SVID is this close to expiry (0: off)", 0),
    OPT("allow-unauthenticated-verifiers", MF_OPT_BOOL, NULL, "false",
        "let processes with no entry fetch bundles and validate JWT-SVIDs", 0),
    OPT("sds-validator", MF_OPT_STR, "KIND", "spiffe",
        "Envoy SDS validation contexts: spiffe (Envoy's SPIFFE validator) or trusted_ca", 0),
    {"config", MF_OPT_STR, "FILE", NULL, "config file of key = value lines", 0, NULL},
};
const size_t agent_run_n_opts = sizeof(agent_run_opts) / sizeof(agent_run_opts[0]);

static const struct mf_cmd run_cmd = {
    "run",
    NULL,
    0,
    0,
    "run the node agent (options also as config keys, see --config)",
    agent_run_opts,
    sizeof(agent_run_opts) / sizeof(agent_run_opts[0]),
};
static const struct mf_prog run_prog = {"mayfly-agent", MAYFLY_VERSION, "", &run_cmd, 1};

const struct mf_cmd *agent_config_cmd(void)
{
    return &run_cmd;
}

static mf_res parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    MF_ENSURE_MSG(s[0] != '\0', MF_ERR_USAGE_ARG, "empty number");
    for (const char *p = s; *p != '\0'; p++) {
        MF_ENSURE_MSG(*p >= '0' && *p <= '9', MF_ERR_USAGE_ARG, "not a number: %s", s);
        MF_ENSURE(!__builtin_mul_overflow(v, 10u, &v), MF_ERR_USAGE_ARG);
        MF_ENSURE(!__builtin_add_overflow(v, (uint64_t)(*p - '0'), &v), MF_ERR_USAGE_ARG);
    }
    MF_ENSURE_MSG(v <= max, MF_ERR_USAGE_ARG, "number too large: %s", s);
    *out = v;
    return MF_RES_OK;
}

static mf_res set_num(unsigned *dst, const char *v)
{
    uint64_t n = 0;
    MF_TRY(parse_uint(v, 1000000, &n));
    *dst = (unsigned)n;
    return MF_RES_OK;
}

static mf_res set_ms(int64_t *dst, const char *v)
{
    int64_t secs = 0;
    MF_TRY(mf_duration_parse(v, &secs));
    *dst = secs * 1000;
    return MF_RES_OK;
}

/* "45-55" */
static mf_res set_window(struct agent_rotate_cfg *rot, const char *v)
{
    const char *dash = strchr(v, '-');
    MF_ENSURE_MSG(dash != NULL && dash - v < 8, MF_ERR_USAGE_ARG,
                  "--renew-window wants LO-HI percentages, like 45-55");
    char lo[8];
    memcpy(lo, v, (size_t)(dash - v));
    lo[dash - v] = '\0';
    uint64_t l = 0, h = 0;
    MF_TRY(parse_uint(lo, 99, &l));
    MF_TRY(parse_uint(dash + 1, 99, &h));
    rot->lo_pct = (unsigned)l;
    rot->hi_pct = (unsigned)h;
    return agent_rotate_cfg_check(rot);
}

/* One option's text into its setting. */
static mf_res set_opt(struct agent_config *cfg, const char *name, const char *v)
{
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {
        {"data-dir", offsetof(struct agent_config, data_dir)},
        {"server", offsetof(struct agent_config, server)},
        {"trust-bundle", offsetof(struct agent_config, trust_bundle)},
        {"join-token", offsetof(struct agent_config, join_token)},
        {"join-token-file", offsetof(struct agent_config, join_token_file)},
        {"socket", offsetof(struct agent_config, socket)},
        {"trust-domain", offsetof(struct agent_config, trust_domain)},
        {"metrics-listen", offsetof(struct agent_config, metrics_listen)},
        {"log-file", offsetof(struct agent_config, log_file)},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (strcmp(name, strs[i].name) == 0) {
            *(const char **)(void *)((char *)cfg + strs[i].off) = v;
            return MF_RES_OK;
        }
    }
    if (strcmp(name, "renew-window") == 0) {
        return set_window(&cfg->rot, v);
    }
    if (strcmp(name, "backoff-base") == 0) {
        return set_ms(&cfg->rot.backoff_base_ms, v);
    }
    if (strcmp(name, "backoff-cap") == 0) {
        return set_ms(&cfg->rot.backoff_cap_ms, v);
    }
    if (strcmp(name, "expiry-warning") == 0) {
        return set_ms(&cfg->expiry_warning_ms, v);
    }
    if (strcmp(name, "log-level") == 0) {
        return mf_log_level_parse(v, &cfg->log_level);
    }
    if (strcmp(name, "log-format") == 0) {
        return mf_log_format_parse(v, &cfg->log_format);
    }
    if (strcmp(name, "max-connections") == 0) {
        return set_num(&cfg->max_conns, v);
    }
    if (strcmp(name, "max-connections-per-uid") == 0) {
        return set_num(&cfg->max_conns_per_uid, v);
    }
    if (strcmp(name, "max-watches") == 0) {
        return set_num(&cfg->max_watches, v);
    }
    if (strcmp(name, "connection-timeout") == 0) {
        return set_num(&cfg->conn_timeout_s, v);
    }
    if (strcmp(name, "idle-timeout") == 0) {
        return set_num(&cfg->idle_timeout_s, v);
    }
    if (strcmp(name, "allow-unauthenticated-verifiers") == 0) {
        MF_ENSURE_MSG(strcmp(v, "true") == 0 || strcmp(v, "false") == 0, MF_ERR_USAGE_ARG,
                      "%s must be true or false", name);
        cfg->allow_verifiers = strcmp(v, "true") == 0;
        return MF_RES_OK;
    }
    if (strcmp(name, "sds-validator") == 0) {
        return agent_sds_validator_parse(v, &cfg->sds_validator);
    }
    if (strcmp(name, "hash-max-bytes") == 0) {
        return parse_uint(v, UINT64_MAX, &cfg->hash_max);
    }
    MF_BAIL_MSG(MF_ERR_INTERNAL, "option %s has no setting", name);
}

/* see agent_config.h */
mf_res agent_config_parse(int argc, char **argv, struct agent_config *cfg)
{
    MF_ENSURE_REF(cfg);
    memset(cfg, 0, sizeof(*cfg));
    agent_rotate_cfg_default(&cfg->rot);
    cfg->log_level = MF_LOG_INFO;
    cfg->log_format = MF_LOG_TEXT;
    cfg->hash_max = AGENT_HASH_MAX_DEFAULT;
    cfg->expiry_warning_ms = AGENT_EXPIRY_WARNING_MS_DEFAULT;
    cfg->vals = calloc(1, sizeof(*cfg->vals));
    MF_ENSURE_MSG(cfg->vals != NULL, MF_ERR_NOMEM, "out of memory");
    MF_TRY(mf_opt_parse(&run_prog, &run_cmd, argc, argv, cfg->vals));
    if (cfg->vals->help) {
        return MF_RES_OK;
    }
    for (size_t i = 0; i < run_cmd.n_opts; i++) {
        const struct mf_opt *o = &run_cmd.opts[i];
        const char *v = cfg->vals->v[i].s;
        if (v == NULL || !(o->flags & MF_OPT_CONFIG)) {
            continue;
        }
        mf_res r = set_opt(cfg, o->name, v);
        if (!mf_ok(r)) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", mf_err_detail());
            MF_BAIL_MSG(MF_ERR_USAGE_ARG, "--%s '%s': %s", o->name, v, msg);
        }
    }
    MF_ENSURE_MSG(cfg->join_token == NULL || cfg->join_token_file == NULL, MF_ERR_USAGE_ARG,
                  "give --join-token or --join-token-file, not both");
    MF_ENSURE_MSG(cfg->max_conns >= 2 && cfg->max_watches < cfg->max_conns, MF_ERR_USAGE_ARG,
                  "--max-watches must be below --max-connections");
    MF_ENSURE_MSG(cfg->conn_timeout_s >= 1, MF_ERR_USAGE_ARG, "--connection-timeout >= 1");
    MF_ENSURE_MSG(cfg->idle_timeout_s >= 1, MF_ERR_USAGE_ARG, "--idle-timeout >= 1");
    if (cfg->max_conns_per_uid == 0) {
        /* a quarter: one local user never holds more than that */
        cfg->max_conns_per_uid = cfg->max_conns / 4 > 0 ? cfg->max_conns / 4 : 1;
    }
    MF_ENSURE_MSG(cfg->max_conns_per_uid <= cfg->max_conns, MF_ERR_USAGE_ARG,
                  "--max-connections-per-uid must be at most --max-connections");
    return agent_rotate_cfg_check(&cfg->rot);
}

/* see agent_config.h */
void agent_config_cleanup(struct agent_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    mf_opt_vals_cleanup(cfg->vals);
    free(cfg->vals);
    cfg->vals = NULL;
}
