/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_config: flags and config file of `mayfly-agent run`.
 */
#include <stdlib.h>
#include <string.h>

#include "agent/agent_attest.h"
#include "agent/agent_config.h"
#include "agent/agent_metrics.h"
#include "api/core/mf_json.h"
#include "api/core/mf_time.h"

#define CONFIG_MAX (64u * 1024u)

enum opt_kind { OPT_STR, OPT_UINT, OPT_PCT_RANGE, OPT_DUR_MS, OPT_LEVEL, OPT_FORMAT };

struct opt {
    const char *name;
    enum opt_kind kind;
    size_t off;
};

#define O(n, k, f) {n, k, offsetof(struct agent_config, f)}
static const struct opt opts[] = {
    O("data-dir", OPT_STR, data_dir),
    O("server", OPT_STR, server),
    O("trust-bundle", OPT_STR, trust_bundle),
    O("join-token", OPT_STR, join_token),
    O("socket", OPT_STR, socket),
    O("trust-domain", OPT_STR, trust_domain),
    O("renew-window", OPT_PCT_RANGE, rot),
    O("backoff-base", OPT_DUR_MS, rot.backoff_base_ms),
    O("backoff-cap", OPT_DUR_MS, rot.backoff_cap_ms),
    O("log-level", OPT_LEVEL, log_level),
    O("log-format", OPT_FORMAT, log_format),
    O("max-connections", OPT_UINT, max_conns),
    O("max-connections-per-uid", OPT_UINT, max_conns_per_uid),
    O("max-watches", OPT_UINT, max_watches),
    O("connection-timeout", OPT_UINT, conn_timeout_s),
    O("idle-timeout", OPT_UINT, idle_timeout_s),
    O("hash-max-bytes", OPT_UINT, hash_max),
    O("metrics-listen", OPT_STR, metrics_listen),
    O("expiry-warning", OPT_DUR_MS, expiry_warning_ms),
};

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

static mf_res set_opt(struct agent_config *cfg, const struct opt *o, const char *v)
{
    char *base = (char *)cfg;
    uint64_t n = 0;
    switch (o->kind) {
    case OPT_STR:
        *(const char **)(void *)(base + o->off) = v;
        return MF_RES_OK;
    case OPT_UINT:
        if (strcmp(o->name, "hash-max-bytes") == 0) {
            return parse_uint(v, UINT64_MAX, &cfg->hash_max);
        }
        MF_TRY(parse_uint(v, 1000000, &n));
        *(unsigned *)(void *)(base + o->off) = (unsigned)n;
        return MF_RES_OK;
    case OPT_PCT_RANGE: {
        /* "45-55" */
        const char *dash = strchr(v, '-');
        MF_ENSURE_MSG(dash != NULL && dash - v < 8, MF_ERR_USAGE_ARG,
                      "--renew-window wants LO-HI percentages, like 45-55");
        char lo[8];
        memcpy(lo, v, (size_t)(dash - v));
        lo[dash - v] = '\0';
        uint64_t l = 0, h = 0;
        MF_TRY(parse_uint(lo, 99, &l));
        MF_TRY(parse_uint(dash + 1, 99, &h));
        cfg->rot.lo_pct = (unsigned)l;
        cfg->rot.hi_pct = (unsigned)h;
        return agent_rotate_cfg_check(&cfg->rot);
    }
    case OPT_DUR_MS: {
        int64_t secs = 0;
        MF_TRY(mf_duration_parse(v, &secs));
        *(int64_t *)(void *)(base + o->off) = secs * 1000;
        return MF_RES_OK;
    }
    case OPT_LEVEL:
        return mf_log_level_parse(v, &cfg->log_level);
    case OPT_FORMAT:
        return mf_log_format_parse(v, &cfg->log_format);
    default:
        MF_BAIL(MF_ERR_INTERNAL);
    }
}

static const struct opt *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

static mf_res load_file(struct agent_config *cfg, const char *path)
{
    json_error_t jerr;
    json_t *f = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    MF_ENSURE_MSG(f != NULL, MF_ERR_USAGE_ARG, "config %s: %s (line %d)", path, jerr.text,
                  jerr.line);
    if (!json_is_object(f)) {
        json_decref(f);
        MF_BAIL_MSG(MF_ERR_USAGE_ARG, "config %s: not a JSON object", path);
    }
    cfg->file = f;
    const char *key;
    json_t *val;
    json_object_foreach(f, key, val)
    {
        const struct opt *o = find_opt(key, strlen(key));
        MF_ENSURE_MSG(o != NULL, MF_ERR_USAGE_ARG, "config %s: unknown key \"%s\"", path, key);
        MF_ENSURE_MSG(json_is_string(val), MF_ERR_USAGE_ARG,
                      "config %s: \"%s\" must be a string", path, key);
        MF_TRY(set_opt(cfg, o, json_string_value(val)));
    }
    return MF_RES_OK;
}

/* see agent_config.h */
mf_res agent_config_parse(int argc, char **argv, struct agent_config *cfg)
{
    MF_ENSURE_REF(cfg);
    memset(cfg, 0, sizeof(*cfg));
    agent_rotate_cfg_default(&cfg->rot);
    cfg->log_level = MF_LOG_INFO;
    cfg->log_format = MF_LOG_TEXT;
    cfg->max_conns = 128;
    cfg->max_watches = 96;
    cfg->conn_timeout_s = 10;
    cfg->idle_timeout_s = 30;
    cfg->hash_max = AGENT_HASH_MAX_DEFAULT;
    cfg->expiry_warning_ms = AGENT_EXPIRY_WARNING_MS_DEFAULT;

    /* the file first, so that flags override it */
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            MF_TRY(load_file(cfg, argv[i + 1]));
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        MF_ENSURE_MSG(strncmp(a, "--", 2) == 0, MF_ERR_USAGE_ARG, "unexpected argument %s", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const char *val = eq != NULL ? eq + 1 : NULL;
        if (val == NULL) {
            MF_ENSURE_MSG(i + 1 < argc, MF_ERR_USAGE_ARG, "%s needs a value", a);
            val = argv[++i];
        }
        if (nlen == 6 && memcmp(name, "config", 6) == 0) {
            continue;
        }
        const struct opt *o = find_opt(name, nlen);
        MF_ENSURE_MSG(o != NULL, MF_ERR_USAGE_ARG, "unknown option %s", a);
        MF_TRY(set_opt(cfg, o, val));
    }
    MF_ENSURE_MSG(cfg->data_dir != NULL, MF_ERR_USAGE_ARG, "--data-dir is required");
    MF_ENSURE_MSG(cfg->server != NULL, MF_ERR_USAGE_ARG, "--server is required");
    MF_ENSURE_MSG(cfg->trust_bundle != NULL, MF_ERR_USAGE_ARG, "--trust-bundle is required");
    MF_ENSURE_MSG(cfg->socket != NULL, MF_ERR_USAGE_ARG, "--socket is required");
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
    json_decref(cfg->file);
    cfg->file = NULL;
}
