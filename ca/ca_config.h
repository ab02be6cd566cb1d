/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_config: the settings of `mayfly-ca run`, from flags and an optional
 * config file.
 *
 * Every flag "--foo-bar VALUE" has the config-file key "foo_bar". Parsing
 * (flags, the "key = value" file, --help) is mf_opt's, from the table
 * ca_run_opts; an unknown key is refused (a typo must not silently fall back
 * to a default), and flags win over the file.
 */
#ifndef CA_CONFIG_H
#define CA_CONFIG_H

#include <limits.h>
#include <stdint.h>

#include "api/core/mf_err.h"
#include "api/core/mf_log.h"
#include "api/internal/mf_opt.h"
#include "api/pki/mf_spiffeid.h"

#define CA_DEFAULT_SVID_TTL          3600
#define CA_DEFAULT_DATASTORE_GRACE   600 /* 10 min */
#define CA_DEFAULT_CA_TTL            86400
#define CA_DEFAULT_TOKEN_TTL         600
#define CA_DEFAULT_HANDSHAKE_TIMEOUT 10
#define CA_HANDSHAKE_TIMEOUT_MAX     60

struct ca_config {
    char data_dir[PATH_MAX];
    char trust_domain[MF_TD_MAX + 1]; /* bare name */
    char listen[256];                 /* host:port */
    char admin_socket[108];           /* sun_path size */
    int64_t svid_ttl;                 /* default leaf TTL (agents, server, entries) */
    int64_t ca_ttl;                   /* lifetime of each CA signing key */
    int64_t token_ttl;                /* default join-token TTL */
    char upstream_ca_cert[PATH_MAX];  /* "" unless running as an intermediate */
    char upstream_ca_key[PATH_MAX];
    enum mf_log_level log_level;
    enum mf_log_format log_format;
    unsigned max_signing;            /* concurrent signing requests (capacity, 503 beyond) */
    unsigned signers;                /* signer threads (0 = one per online core) */
    unsigned agent_rate;             /* signing requests per second per agent (429 beyond) */
    unsigned agent_burst;            /* bucket depth per agent */
    unsigned max_connections;        /* agent API connections served at once (threads) */
    unsigned max_connections_per_ip; /* agent API connections from one address, all states */
    int64_t handshake_timeout;       /* accept to first authenticated request, seconds */
    char log_file[PATH_MAX];         /* "" = stderr */
    char metrics_listen[256]; /* host:port of /live /ready /metrics; "" = off (ca_metrics.h) */
    /* the registry's engine: "" = SQLite in data_dir, "sqlite:PATH", or a
     * postgresql:// URI (ca_store.h); may hold a password when it came from
     * datastore_file, so it is never logged, and wiped by ca_config_wipe */
    char datastore[2048];
    int64_t datastore_grace; /* seconds a recalled registry answer lives (ca_recall.h); 0 = off */
    /* federation (ca_bundle_ep.h, ca_fed.h) */
    char bundle_endpoint[256];           /* host:port of the bundle endpoint; "" = off */
    char bundle_endpoint_cert[PATH_MAX]; /* https_web: certificate chain PEM ("" = https_spiffe) */
    char bundle_endpoint_key[PATH_MAX];  /* https_web: its key (mode 0600) */
    int64_t bundle_refresh_hint;         /* spiffe_refresh_hint served; 0 = from ca_ttl */
    int64_t federation_min_refresh;      /* floor of a relationship's refresh interval */
    char federation_ca_file[PATH_MAX];   /* https_web roots; "" = the system's */
};

/* Wipes what may be secret in c (the datastore string). */
void ca_config_wipe(struct ca_config *c);

/* Fills c with the defaults (trust domain example.org, listen 127.0.0.1:8081). */
void ca_config_defaults(struct ca_config *c);

/* Sets one option by its config-file key (value is text as on the command
 * line). MF_ERR_USAGE_ARG for an unknown key or a bad value, with a detail. */
MF_WUR mf_res ca_config_set(struct ca_config *c, const char *key, const char *value);

/* The options of `mayfly-ca run` (mf_opt.h). */
extern const struct mf_opt ca_run_opts[];
extern const size_t ca_run_n_opts;

/* Fills c from parsed options: the defaults, then every value given (from
 * the table's defaults, the file or a flag) through ca_config_set. */
MF_WUR mf_res ca_config_from_vals(struct ca_config *c, const struct mf_opt_vals *v);

/* Refuses settings that cannot work together, with a detail that says what to
 * change: a missing data dir, a --svid-ttl that does not fit in the CA key's
 * activation window (see ca_keys.h), half of an upstream pair. */
MF_WUR mf_res ca_config_validate(const struct ca_config *c);

#endif /* CA_CONFIG_H */
