/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_config: flags and config file of `mayfly-ca run` (see ca_config.h).
 *
 * One table maps each key to its setter, so that a flag and its config-file
 * key can never drift apart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_time.h"
#include "ca/ca_config.h"
#include "ca/ca_keys.h"

#define CONFIG_FILE_MAX (64u * 1024u)

void ca_config_defaults(struct ca_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->trust_domain, sizeof(c->trust_domain), "%s", "example.org");
    snprintf(c->listen, sizeof(c->listen), "%s", "127.0.0.1:8081");
    c->svid_ttl = CA_DEFAULT_SVID_TTL;
    c->ca_ttl = CA_DEFAULT_CA_TTL;
    c->token_ttl = CA_DEFAULT_TOKEN_TTL;
    c->log_level = MF_LOG_INFO;
    c->log_format = MF_LOG_TEXT;
    c->max_signing = 8;
    c->agent_rate = 50;
    c->agent_burst = 100;
    c->max_connections = 1024;
    c->max_connections_per_ip = 256;
    c->handshake_timeout = CA_DEFAULT_HANDSHAKE_TIMEOUT;
}

static mf_res set_str(char *dst, size_t cap, const char *key, const char *value)
{
    size_t n = strlen(value);
    MF_ENSURE_MSG(n > 0, MF_ERR_USAGE_ARG, "%s: empty value", key);
    MF_ENSURE_MSG(n < cap, MF_ERR_USAGE_ARG, "%s: value longer than %zu bytes", key, cap - 1);
    memcpy(dst, value, n + 1);
    return MF_RES_OK;
}

static mf_res set_uint(unsigned *dst, const char *key, const char *value, unsigned lo, unsigned hi)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    MF_ENSURE_MSG(errno == 0 && end != value && *end == '\0' && value[0] != '-' && v >= lo &&
                      v <= hi,
                  MF_ERR_USAGE_ARG, "%s: '%s' is not a whole number in %u..%u", key, value, lo,
                  hi);
    *dst = (unsigned)v;
    return MF_RES_OK;
}

static mf_res set_dur(int64_t *dst, const char *key, const char *value)
{
    int64_t v = 0;
    mf_res r = mf_duration_parse(value, &v);
    MF_ENSURE_MSG(mf_ok(r) && v > 0, MF_ERR_USAGE_ARG,
                  "%s: '%s' is not a duration such as 90s, 10m, 1h", key, value);
    *dst = v;
    return MF_RES_OK;
}

mf_res ca_config_set(struct ca_config *c, const char *key, const char *value)
{
    MF_ENSURE_REF(c);
    MF_ENSURE_REF(key);
    MF_ENSURE_REF(value);
    if (strcmp(key, "data_dir") == 0) {
        return set_str(c->data_dir, sizeof(c->data_dir), key, value);
    }
    if (strcmp(key, "trust_domain") == 0) {
        char td[MF_TD_MAX + 1];
        mf_res r = mf_td_parse(value, strlen(value), td);
        MF_ENSURE_MSG(mf_ok(r), MF_ERR_USAGE_ARG, "trust_domain: '%s' is not a valid trust domain",
                      value);
        return set_str(c->trust_domain, sizeof(c->trust_domain), key, td);
    }
    if (strcmp(key, "listen") == 0) {
        MF_ENSURE_MSG(strrchr(value, ':') != NULL, MF_ERR_USAGE_ARG,
                      "listen: '%s' is not HOST:PORT", value);
        return set_str(c->listen, sizeof(c->listen), key, value);
    }
    if (strcmp(key, "admin_socket") == 0) {
        return set_str(c->admin_socket, sizeof(c->admin_socket), key, value);
    }
    if (strcmp(key, "svid_ttl") == 0) {
        return set_dur(&c->svid_ttl, key, value);
    }
    if (strcmp(key, "ca_ttl") == 0) {
        return set_dur(&c->ca_ttl, key, value);
    }
    if (strcmp(key, "token_ttl") == 0) {
        return set_dur(&c->token_ttl, key, value);
    }
    if (strcmp(key, "upstream_ca_cert") == 0) {
        return set_str(c->upstream_ca_cert, sizeof(c->upstream_ca_cert), key, value);
    }
    if (strcmp(key, "upstream_ca_key") == 0) {
        return set_str(c->upstream_ca_key, sizeof(c->upstream_ca_key), key, value);
    }
    if (strcmp(key, "log_level") == 0) {
        mf_res r = mf_log_level_parse(value, &c->log_level);
        MF_ENSURE_MSG(mf_ok(r), MF_ERR_USAGE_ARG, "log_level: '%s' is not error|warn|info|debug",
                      value);
        return MF_RES_OK;
    }
    if (strcmp(key, "log_format") == 0) {
        mf_res r = mf_log_format_parse(value, &c->log_format);
        MF_ENSURE_MSG(mf_ok(r), MF_ERR_USAGE_ARG, "log_format: '%s' is not text|json", value);
        return MF_RES_OK;
    }
    if (strcmp(key, "max_signing") == 0) {
        return set_uint(&c->max_signing, key, value, 1, 1024);
    }
    if (strcmp(key, "agent_rate") == 0) {
        return set_uint(&c->agent_rate, key, value, 1, 1000000);
    }
    if (strcmp(key, "agent_burst") == 0) {
        return set_uint(&c->agent_burst, key, value, 1, 1000000);
    }
    if (strcmp(key, "max_connections") == 0) {
        return set_uint(&c->max_connections, key, value, 4, 65536);
    }
    if (strcmp(key, "max_connections_per_ip") == 0) {
        return set_uint(&c->max_connections_per_ip, key, value, 1, 65536);
    }
    if (strcmp(key, "handshake_timeout") == 0) {
        MF_TRY(set_dur(&c->handshake_timeout, key, value));
        MF_ENSURE_MSG(c->handshake_timeout <= CA_HANDSHAKE_TIMEOUT_MAX, MF_ERR_USAGE_ARG,
                      "handshake_timeout: '%s' is over %ds", value, CA_HANDSHAKE_TIMEOUT_MAX);
        return MF_RES_OK;
    }
    if (strcmp(key, "metrics_listen") == 0) {
        MF_ENSURE_MSG(strrchr(value, ':') != NULL, MF_ERR_USAGE_ARG,
                      "metrics_listen: '%s' is not HOST:PORT", value);
        return set_str(c->metrics_listen, sizeof(c->metrics_listen), key, value);
    }
    MF_BAIL_MSG(MF_ERR_USAGE_ARG, "unknown option '%s'", key);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

mf_res ca_config_load_file(struct ca_config *c, const char *path)
{
    mf_res rc;
    struct mf_buf text;
    mf_buf_init(&text, CONFIG_FILE_MAX, 0);
    FILE *f = fopen(path, "re");
    MF_ENSURE_OUT_MSG(f != NULL, MF_ERR_IO_NOT_FOUND, "cannot open config file %s: %s", path,
                      strerror(errno));
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        MF_TRY_OUT(mf_buf_append(&text, chunk, got));
    }
    MF_ENSURE_OUT_MSG(!ferror(f), MF_ERR_IO, "cannot read config file %s", path);
    MF_ENSURE_OUT_MSG(text.len == 0 || memchr(text.data, '\0', text.len) == NULL, MF_ERR_USAGE_ARG,
                      "config file %s contains a NUL byte", path);

    char *p = text.len ? (char *)text.data : NULL;
    int lineno = 0;
    while (p != NULL && *p != '\0') {
        lineno++;
        char *nl = strchr(p, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        char *line = trim(p);
        p = nl ? nl + 1 : NULL;
        if (*line == '\0' || *line == '#') {
            continue;
        }
        char *eq = strchr(line, '=');
        MF_ENSURE_OUT_MSG(eq != NULL, MF_ERR_USAGE_ARG, "%s:%d: expected 'key = value'", path,
                          lineno);
        *eq = '\0';
        char *key = trim(line);
        char *val = trim(eq + 1);
        /* Allow "value" in quotes, as people write in TOML-like files. */
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        rc = ca_config_set(c, key, val);
        if (!mf_ok(rc)) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", mf_err_detail());
            MF_BAIL_OUT(MF_ERR_USAGE_ARG, "%s:%d: %s", path, lineno, msg);
        }
    }
    rc = MF_RES_OK;
out:
    if (f != NULL) {
        fclose(f);
    }
    mf_buf_cleanup(&text);
    return rc;
}

/* "--svid-ttl" -> "svid_ttl" */
static mf_res flag_key(const char *flag, char *out, size_t cap)
{
    MF_ENSURE_MSG(strncmp(flag, "--", 2) == 0 && flag[2] != '\0', MF_ERR_USAGE_ARG,
                  "unexpected argument '%s'", flag);
    size_t n = strlen(flag + 2);
    MF_ENSURE_MSG(n < cap, MF_ERR_USAGE_ARG, "unknown option '%s'", flag);
    for (size_t i = 0; i <= n; i++) {
        char ch = flag[2 + i];
        out[i] = ch == '-' ? '_' : ch;
    }
    return MF_RES_OK;
}

mf_res ca_config_parse_args(struct ca_config *c, int argc, char **argv)
{
    MF_ENSURE_REF(c);
    /* First pass: the config file, so that flags override it. */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            MF_ENSURE_MSG(i + 1 < argc, MF_ERR_USAGE_ARG, "--config needs a value");
            MF_TRY(ca_config_load_file(c, argv[i + 1]));
        }
    }
    for (int i = 0; i < argc; i += 2) {
        char key[64];
        MF_TRY(flag_key(argv[i], key, sizeof(key)));
        MF_ENSURE_MSG(i + 1 < argc, MF_ERR_USAGE_ARG, "%s needs a value", argv[i]);
        if (strcmp(key, "config") != 0) {
            mf_res r = ca_config_set(c, key, argv[i + 1]);
            if (!mf_ok(r)) {
                /* Name the flag as the user typed it. */
                char msg[512];
                snprintf(msg, sizeof(msg), "%s", mf_err_detail());
                if (strncmp(msg, "unknown option", 14) == 0) {
                    MF_BAIL_MSG(MF_ERR_USAGE_ARG, "unknown option '%s'", argv[i]);
                }
                return r;
            }
        }
    }
    return MF_RES_OK;
}

mf_res ca_config_validate(const struct ca_config *c)
{
    MF_ENSURE_REF(c);
    MF_ENSURE_MSG(c->data_dir[0] != '\0', MF_ERR_USAGE_ARG, "--data-dir is required");
    MF_ENSURE_MSG(c->admin_socket[0] != '\0', MF_ERR_USAGE_ARG, "--admin-socket is required");
    MF_ENSURE_MSG((c->upstream_ca_cert[0] == '\0') == (c->upstream_ca_key[0] == '\0'),
                  MF_ERR_USAGE_ARG,
                  "--upstream-ca-cert and --upstream-ca-key must be given together");
    char why[512];
    if (!ca_keys_ttl_fits(c->svid_ttl, c->ca_ttl, why, sizeof(why))) {
        MF_BAIL_MSG(MF_ERR_POLICY_CONFIG, "%s", why);
    }
    return MF_RES_OK;
}
