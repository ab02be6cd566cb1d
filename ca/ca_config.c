/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_config: flags and config file of `mayfly-ca run` (see ca_config.h).
 *
 * One table (ca_run_opts) declares every option for the parser, --help and
 * the config file; ca_config_set() turns each value into its setting, with
 * the range checks, so that a flag and its config-file key can never drift
 * apart.
 */
#include "ca/ca_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "ca/ca_keys.h"
#include "ca/ca_signer.h"

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
    c->federation_min_refresh = 5;
    c->datastore_grace = CA_DEFAULT_DATASTORE_GRACE;
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
                  MF_ERR_USAGE_ARG, "%s: '%s' is not a whole number in %u..%u", key, value, lo, hi);
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

/* True when a postgresql:// URI carries a password ("user:pass@host") or
 * a password= parameter. */
static bool has_password(const char *v)
{
    const char *rest = NULL;
    if (strncmp(v, "postgresql://", 13) == 0) {
        rest = v + 13;
    } else if (strncmp(v, "postgres://", 11) == 0) {
        rest = v + 11;
    } else {
        return false;
    }
    const char *at = strchr(rest, '@');
    const char *slash = strchr(rest, '/');
    if (at != NULL && (slash == NULL || at < slash)) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon != NULL) {
            return true;
        }
    }
    return strstr(rest, "password=") != NULL;
}

static mf_res check_datastore(const char *v)
{
    MF_ENSURE_MSG(strncmp(v, "sqlite:", 7) == 0 || strncmp(v, "postgresql://", 13) == 0 ||
                      strncmp(v, "postgres://", 11) == 0,
                  MF_ERR_USAGE_ARG, "datastore: must be sqlite:PATH or a postgresql:// URI");
    return MF_RES_OK;
}

/* datastore_file: the datastore string, alone in a file only we can read
 * (it may hold a password). */
static mf_res read_datastore_file(struct ca_config *c, const char *path)
{
    mf_res rc;
    char buf[sizeof(c->datastore) + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    MF_ENSURE_MSG(fd >= 0, MF_ERR_USAGE_ARG, "datastore_file: cannot open %s: %s", path,
                  strerror(errno));
    struct stat st;
    MF_ENSURE_OUT_MSG(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), MF_ERR_USAGE_ARG,
                      "datastore_file: %s is not a regular file", path);
    MF_ENSURE_OUT_MSG((st.st_mode & 077) == 0, MF_ERR_IO_PERM,
                      "datastore_file: %s is readable by group or others (mode %03o); chmod 600 "
                      "it",
                      path, (unsigned)(st.st_mode & 0777));
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    MF_ENSURE_OUT_MSG(n > 0 && (size_t)n < sizeof(buf) - 1, MF_ERR_USAGE_ARG,
                      "datastore_file: %s is empty or longer than %zu bytes", path,
                      sizeof(c->datastore) - 1);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    MF_TRY_OUT(check_datastore(buf));
    MF_TRY_OUT(set_str(c->datastore, sizeof(c->datastore), "datastore_file", buf));
    rc = MF_RES_OK;
out:
    mf_wipe(buf, sizeof(buf));
    close(fd);
    return rc;
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
    if (strcmp(key, "signers") == 0) {
        return set_uint(&c->signers, key, value, 0, CA_SIGNERS_MAX);
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
    if (strcmp(key, "log_file") == 0) {
        return set_str(c->log_file, sizeof(c->log_file), key, value);
    }
    if (strcmp(key, "metrics_listen") == 0) {
        MF_ENSURE_MSG(strrchr(value, ':') != NULL, MF_ERR_USAGE_ARG,
                      "metrics_listen: '%s' is not HOST:PORT", value);
        return set_str(c->metrics_listen, sizeof(c->metrics_listen), key, value);
    }
    if (strcmp(key, "datastore") == 0) {
        /* a flag shows in ps and a config file is often world-readable */
        MF_ENSURE_MSG(!has_password(value), MF_ERR_USAGE_ARG,
                      "datastore: a password may not be given here; put the URI in a 0600 "
                      "file named by datastore_file, or the password in PGPASSFILE");
        MF_TRY(check_datastore(value));
        return set_str(c->datastore, sizeof(c->datastore), key, value);
    }
    if (strcmp(key, "datastore_file") == 0) {
        return read_datastore_file(c, value);
    }
    if (strcmp(key, "bundle_endpoint") == 0) {
        MF_ENSURE_MSG(strrchr(value, ':') != NULL, MF_ERR_USAGE_ARG,
                      "bundle_endpoint: '%s' is not HOST:PORT", value);
        return set_str(c->bundle_endpoint, sizeof(c->bundle_endpoint), key, value);
    }
    if (strcmp(key, "bundle_endpoint_cert") == 0) {
        return set_str(c->bundle_endpoint_cert, sizeof(c->bundle_endpoint_cert), key, value);
    }
    if (strcmp(key, "bundle_endpoint_key") == 0) {
        return set_str(c->bundle_endpoint_key, sizeof(c->bundle_endpoint_key), key, value);
    }
    if (strcmp(key, "bundle_refresh_hint") == 0) {
        return set_dur(&c->bundle_refresh_hint, key, value);
    }
    if (strcmp(key, "datastore_grace") == 0) {
        if (strcmp(value, "0") == 0) {
            c->datastore_grace = 0;
            return MF_RES_OK;
        }
        return set_dur(&c->datastore_grace, key, value);
    }
    if (strcmp(key, "federation_min_refresh") == 0) {
        return set_dur(&c->federation_min_refresh, key, value);
    }
    if (strcmp(key, "federation_ca_file") == 0) {
        return set_str(c->federation_ca_file, sizeof(c->federation_ca_file), key, value);
    }
    MF_BAIL_MSG(MF_ERR_USAGE_ARG, "unknown option '%s'", key);
}

void ca_config_wipe(struct ca_config *c)
{
    if (c != NULL) {
        mf_wipe(c->datastore, sizeof(c->datastore));
    }
}

#define RUN_OPT(n, k, a, d, h, f)                \
    {                                            \
        n, k, a, d, h, MF_OPT_CONFIG | (f), NULL \
    }
const struct mf_opt ca_run_opts[] = {
    RUN_OPT("data-dir", MF_OPT_STR, "DIR", NULL, "registry and CA keys, mode 0700",
            MF_OPT_REQUIRED),
    RUN_OPT("admin-socket", MF_OPT_STR, "PATH", NULL, "Unix socket of the admin API (0600)",
            MF_OPT_REQUIRED),
    RUN_OPT("trust-domain", MF_OPT_STR, "TD", "example.org", "trust domain served", 0),
    RUN_OPT("listen", MF_OPT_STR, "HOST:PORT", "127.0.0.1:8081",
            "agent API address (port 0 picks one)", 0),
    RUN_OPT("svid-ttl", MF_OPT_DUR, "DUR", "1h", "default X509-SVID lifetime (<= ca-ttl/6)", 0),
    RUN_OPT("ca-ttl", MF_OPT_DUR, "DUR", "24h", "lifetime of each CA signing key", 0),
    RUN_OPT("token-ttl", MF_OPT_DUR, "DUR", "10m", "default join-token lifetime", 0),
    RUN_OPT("upstream-ca-cert", MF_OPT_STR, "FILE", NULL,
            "upstream CA certificate: run as its intermediate", 0),
    RUN_OPT("upstream-ca-key", MF_OPT_STR, "FILE", NULL, "the upstream CA's private key", 0),
    RUN_OPT("max-signing", MF_OPT_NUM, "N", "8", "signing requests at once (1..1024)",
            MF_OPT_RELOAD),
    RUN_OPT("signers", MF_OPT_NUM, "N", "0",
            "signer threads: verify CSRs and sign (0 = one per core, up to 256)", 0),
    RUN_OPT("agent-rate", MF_OPT_NUM, "N", "50", "signing requests per second per agent",
            MF_OPT_RELOAD),
    RUN_OPT("agent-burst", MF_OPT_NUM, "N", "100", "depth of that token bucket", MF_OPT_RELOAD),
    RUN_OPT("max-connections", MF_OPT_NUM, "N", "1024", "agent API connections (4..65536)", 0),
    RUN_OPT("max-connections-per-ip", MF_OPT_NUM, "N", "256",
            "agent API connections from one address", 0),
    RUN_OPT("handshake-timeout", MF_OPT_DUR, "DUR", "10s",
            "accept to first authenticated request (1s..60s)", 0),
    RUN_OPT("log-level", MF_OPT_STR, "LEVEL", "info", "error, warn, info or debug", MF_OPT_RELOAD),
    RUN_OPT("log-format", MF_OPT_STR, "FORMAT", "text", "text or json", MF_OPT_RELOAD),
    RUN_OPT("log-file", MF_OPT_STR, "FILE", NULL,
            "append log lines to FILE instead of stderr; reopened on SIGHUP", MF_OPT_RELOAD),
    RUN_OPT("metrics-listen", MF_OPT_STR, "HOST:PORT", NULL,
            "address of /live, /ready, /metrics (default: off)", 0),
    RUN_OPT("datastore", MF_OPT_STR, "DS", NULL,
            "registry: sqlite:PATH or postgresql://... (default: SQLite in data-dir)", 0),
    RUN_OPT("datastore-file", MF_OPT_STR, "FILE", NULL,
            "a 0600 file holding the datastore (for a URI with a password)", 0),
    RUN_OPT("datastore-grace", MF_OPT_STR, "DUR", "10m",
            "PostgreSQL unreachable: renew from what it said at most this long ago (0: off)", 0),
    RUN_OPT("bundle-endpoint", MF_OPT_STR, "HOST:PORT", NULL,
            "serve the SPIFFE bundle to federated trust domains here (default: off)", 0),
    RUN_OPT("bundle-endpoint-cert", MF_OPT_STR, "FILE", NULL,
            "https_web profile: the endpoint's certificate chain (default: https_spiffe)", 0),
    RUN_OPT("bundle-endpoint-key", MF_OPT_STR, "FILE", NULL,
            "https_web profile: its private key (mode 0600)", 0),
    RUN_OPT("bundle-refresh-hint", MF_OPT_DUR, "DUR", NULL,
            "spiffe_refresh_hint served (default: ca-ttl/12, at most 5m)", 0),
    RUN_OPT("federation-min-refresh", MF_OPT_DUR, "DUR", "5s",
            "shortest interval between two fetches of a foreign bundle", 0),
    RUN_OPT("federation-ca-file", MF_OPT_STR, "FILE", NULL,
            "roots for https_web bundle endpoints (default: the system's)", 0),
    {"config", MF_OPT_STR, "FILE", NULL, "config file of key = value lines", 0, NULL},
};
const size_t ca_run_n_opts = sizeof(ca_run_opts) / sizeof(ca_run_opts[0]);

mf_res ca_config_from_vals(struct ca_config *c, const struct mf_opt_vals *v)
{
    MF_ENSURE_REF(c);
    MF_ENSURE_REF(v);
    ca_config_defaults(c);
    for (size_t i = 0; i < v->cmd->n_opts; i++) {
        const struct mf_opt *o = &v->cmd->opts[i];
        if (v->v[i].s == NULL || !(o->flags & MF_OPT_CONFIG)) {
            continue;
        }
        char key[64];
        size_t n = strlen(o->name);
        MF_ENSURE(n < sizeof(key), MF_ERR_INTERNAL);
        for (size_t k = 0; k <= n; k++) {
            key[k] = o->name[k] == '-' ? '_' : o->name[k];
        }
        MF_TRY(ca_config_set(c, key, v->v[i].s));
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
    MF_ENSURE_MSG((c->bundle_endpoint_cert[0] == '\0') == (c->bundle_endpoint_key[0] == '\0'),
                  MF_ERR_USAGE_ARG,
                  "--bundle-endpoint-cert and --bundle-endpoint-key must be given together");
    MF_ENSURE_MSG(c->bundle_endpoint_cert[0] == '\0' || c->bundle_endpoint[0] != '\0',
                  MF_ERR_USAGE_ARG, "--bundle-endpoint-cert needs --bundle-endpoint");
    char why[512];
    if (!ca_keys_ttl_fits(c->svid_ttl, c->ca_ttl, why, sizeof(why))) {
        MF_BAIL_MSG(MF_ERR_POLICY_CONFIG, "%s", why);
    }
    return MF_RES_OK;
}
