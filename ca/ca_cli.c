/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_cli: admin subcommands over the admin socket (see ca_cli.h).
 *
 * The CLI validates only what it needs to build a request; every rule
 * (SPIFFE IDs, selectors, duplicates) is enforced by the server, so that
 * the CLI and the API can never disagree.
 */
#include "ca/ca_cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "api/core/mf_json.h"
#include "api/core/mf_text.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_opt.h"
#include "api/net/mf_http.h"
#include "ca/ca_config.h"
#include "ca/ca_dscopy.h"

#define CLI_TIMEOUT_MS 15000
#define CLI_MAX_BODY   MF_MAX_BUNDLE
#define MAX_REPEAT     MF_OPT_LIST_MAX

struct opts {
    const char *socket;
    bool json;
    const char *spiffe_id, *parent_id, *ttl, *hint, *format, *wait, *match;
    const char *trust_domain, *endpoint_url, *profile, *endpoint_id, *bundle;
    const char *sel[MAX_REPEAT];
    size_t n_sel;
    const char *dns[MAX_REPEAT];
    size_t n_dns;
    const char *fed[MAX_REPEAT];
    size_t n_fed;
    bool clear_dns, clear_hint, clear_fed;
    const char *pos[4];
    size_t n_pos;
};

/* Options every admin command takes. */
#define SOCK_OPT                                                                                  \
    {"admin-socket",          MF_OPT_STR, "PATH", NULL, "the CA's admin socket", MF_OPT_REQUIRED, \
     "MAYFLY_CA_ADMIN_SOCKET"},                                                                   \
    {                                                                                             \
        "json", MF_OPT_BOOL, NULL, NULL, "print the API's JSON instead of text", 0, NULL          \
    }
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct mf_opt o_plain[] = {SOCK_OPT};
static const struct mf_opt o_entry_create[] = {
    SOCK_OPT,
    {"spiffe-id", MF_OPT_STR, "ID", NULL, "SPIFFE ID of the workload", MF_OPT_REQUIRED, NULL},
    {"parent-id", MF_OPT_STR, "AGENT_ID", NULL, "SPIFFE ID of the agent that may serve it",
     MF_OPT_REQUIRED, NULL},
    {"selector", MF_OPT_LIST, "TYPE:KEY:VALUE", NULL, "selector the workload must match", 0, NULL},
    {"ttl", MF_OPT_DUR, "DUR", NULL, "SVID lifetime (default: the CA's svid-ttl)", 0, NULL},
    {"dns-name", MF_OPT_LIST, "NAME", NULL, "DNS SAN of the SVID", 0, NULL},
    {"hint", MF_OPT_STR, "HINT", NULL, "hint passed to the workload", 0, NULL},
    {"federates-with", MF_OPT_LIST, "spiffe://TD", NULL,
     "foreign trust domain whose bundle the workload receives", 0, NULL},
};
static const struct mf_opt o_entry_update[] = {
    SOCK_OPT,
    {"selector", MF_OPT_LIST, "TYPE:KEY:VALUE", NULL, "new selector list", 0, NULL},
    {"ttl", MF_OPT_DUR, "DUR", NULL, "new SVID lifetime", 0, NULL},
    {"dns-name", MF_OPT_LIST, "NAME", NULL, "new DNS SAN list", 0, NULL},
    {"no-dns-names", MF_OPT_BOOL, NULL, NULL, "remove every DNS SAN", 0, NULL},
    {"hint", MF_OPT_STR, "HINT", NULL, "new hint", 0, NULL},
    {"no-hint", MF_OPT_BOOL, NULL, NULL, "remove the hint", 0, NULL},
    {"federates-with", MF_OPT_LIST, "spiffe://TD", NULL, "new list of federated trust domains", 0,
     NULL},
    {"no-federation", MF_OPT_BOOL, NULL, NULL, "federate with no trust domain", 0, NULL},
};
static const struct mf_opt o_entry_query[] = {
    SOCK_OPT,
    {"spiffe-id", MF_OPT_STR, "ID", NULL, "only entries with this SPIFFE ID", 0, NULL},
    {"parent-id", MF_OPT_STR, "AGENT_ID", NULL, "only entries parented to this agent", 0, NULL},
    {"selector", MF_OPT_LIST, "TYPE:KEY:VALUE", NULL, "only entries whose selectors match these", 0,
     NULL},
    {"match", MF_OPT_STR, "MODE", "superset",
     "how --selector compares: exact (the same set), subset (the entry's are among them), "
     "superset (the entry has them all), any (one in common)",
     0, NULL},
};
static const struct mf_opt o_token[] = {
    SOCK_OPT,
    {"spiffe-id", MF_OPT_STR, "AGENT_ID", NULL, "SPIFFE ID the agent will get", MF_OPT_REQUIRED,
     NULL},
    {"ttl", MF_OPT_DUR, "DUR", NULL, "token lifetime (default: the CA's token-ttl)", 0, NULL},
};
static const struct mf_opt o_bundle[] = {
    SOCK_OPT,
    {"format", MF_OPT_STR, "pem|spiffe", NULL, "output format (default: pem; spiffe with --json)",
     0, NULL},
    {"trust-domain", MF_OPT_STR, "TD", NULL, "a foreign trust domain's bundle (default: ours)", 0,
     NULL},
};
#define TD_OPT                                                                                    \
    {                                                                                             \
        "trust-domain", MF_OPT_STR, "TD", NULL, "the foreign trust domain", MF_OPT_REQUIRED, NULL \
    }
static const struct mf_opt o_td[] = {SOCK_OPT, TD_OPT};
static const struct mf_opt o_bundle_set[] = {
    SOCK_OPT,
    TD_OPT,
    {"bundle", MF_OPT_STR, "FILE", NULL, "its bundle: SPIFFE bundle (JWKS) or PEM certificates",
     MF_OPT_REQUIRED, NULL},
};
static const struct mf_opt o_fed_write[] = {
    SOCK_OPT,
    TD_OPT,
    {"endpoint-url", MF_OPT_STR, "URL", NULL, "https:// URL of its bundle endpoint", 0, NULL},
    {"profile", MF_OPT_STR, "PROFILE", NULL,
     "https_spiffe (default: the endpoint presents an SVID) or https_web", 0, NULL},
    {"endpoint-spiffe-id", MF_OPT_STR, "ID", NULL, "https_spiffe: the SPIFFE ID of the endpoint", 0,
     NULL},
    {"bundle", MF_OPT_STR, "FILE", NULL,
     "bootstrap bundle of the trust domain (JWKS or PEM), to authenticate the first fetch", 0,
     NULL},
};
static const struct mf_opt o_health[] = {
    SOCK_OPT,
    {"wait", MF_OPT_DUR, "DUR", "0s", "retry until the CA answers, for up to DUR", 0, NULL},
};

static const struct mf_opt o_dscopy[] = {
    {"data-dir", MF_OPT_STR, "DIR", NULL, "the stopped CA's data dir (its keys stay there)",
     MF_OPT_REQUIRED, NULL},
    {"from", MF_OPT_STR, "DS", NULL, "source registry (default: SQLite in data-dir)", 0, NULL},
    {"to", MF_OPT_STR, "DS", NULL, "new, empty registry: postgresql://... or sqlite:PATH", 0, NULL},
    {"to-file", MF_OPT_STR, "FILE", NULL, "a 0600 file holding the destination (with a password)",
     0, NULL},
};

static const struct mf_cmd cmds[] = {
    {"run", NULL, 0, 0, "run the CA (options also as config keys, see --config)", ca_run_opts, 0},
    {"entry create", NULL, 0, 0, "register a workload; prints its entry ID", o_entry_create,
     N(o_entry_create)},
    {"entry list", NULL, 0, 0, "list the entries (every one, or those the filters select)",
     o_entry_query, N(o_entry_query)},
    {"entry show", "ID", 1, 1, "show one entry", o_plain, N(o_plain)},
    {"entry update", "ID", 1, 1, "change an entry", o_entry_update, N(o_entry_update)},
    {"entry delete", "ID", 1, 1, "delete an entry; its workloads lose the identity", o_plain,
     N(o_plain)},
    {"entry count", NULL, 0, 0, "count the entries (every one, or those the filters select)",
     o_entry_query, N(o_entry_query)},
    {"token generate", NULL, 0, 0, "print a single-use join token for an agent", o_token,
     N(o_token)},
    {"agent list", NULL, 0, 0, "list attested agents", o_plain, N(o_plain)},
    {"agent show", "AGENT_ID", 1, 1, "show one agent", o_plain, N(o_plain)},
    {"agent entries", "AGENT_ID", 1, 1, "list the entries the agent receives (parented to it)",
     o_plain, N(o_plain)},
    {"agent ban", "AGENT_ID", 1, 1, "refuse the agent's renewals", o_plain, N(o_plain)},
    {"agent evict", "AGENT_ID", 1, 1, "forget the agent (it may attest again)", o_plain,
     N(o_plain)},
    {"agent count", NULL, 0, 0, "count attested agents", o_plain, N(o_plain)},
    {"bundle show", NULL, 0, 0, "print the trust bundle (ours, or a foreign one)", o_bundle,
     N(o_bundle)},
    {"bundle set", NULL, 0, 0, "store a foreign trust domain's bundle (static)", o_bundle_set,
     N(o_bundle_set)},
    {"bundle list", NULL, 0, 0, "list the foreign bundles", o_plain, N(o_plain)},
    {"bundle delete", NULL, 0, 0, "delete a foreign bundle", o_td, N(o_td)},
    {"federation create", NULL, 0, 0, "federate with a trust domain through its bundle endpoint",
     o_fed_write, N(o_fed_write)},
    {"federation list", NULL, 0, 0, "list the federation relationships", o_plain, N(o_plain)},
    {"federation show", NULL, 0, 0, "show one relationship and its last fetch", o_td, N(o_td)},
    {"federation update", NULL, 0, 0, "change a relationship", o_fed_write, N(o_fed_write)},
    {"federation delete", NULL, 0, 0, "end a relationship and drop its bundle", o_td, N(o_td)},
    {"federation refresh", NULL, 0, 0, "fetch a relationship's bundle now", o_td, N(o_td)},
    {"ca show", NULL, 0, 0, "list the CA signing keys", o_plain, N(o_plain)},
    {"healthcheck", NULL, 0, 0, "exit 0 when the admin API answers", o_health, N(o_health)},
    {"datastore copy", NULL, 0, 0,
     "copy a stopped CA's registry into a new, empty one (SQLite to PostgreSQL)", o_dscopy,
     N(o_dscopy)},
};

const struct mf_prog *ca_cli_prog(void)
{
    /* run's table lives with the settings it fills (ca_config.c) */
    static struct mf_cmd all[N(cmds)];
    static struct mf_prog prog;
    static const char help[] =
        "The admin commands talk to a running CA over its admin socket\n"
        "(--admin-socket or $MAYFLY_CA_ADMIN_SOCKET). Every option may be written\n"
        "--name VALUE or --name=VALUE. Durations: 90s, 10m, 1h, 7d.\n"
        "SIGHUP makes `run` reopen --log-file and re-read log-level and\n"
        "log-format from its flags and config file.";
    return mf_opt_prog_init(&prog, "mayfly-ca", help, all, cmds, N(cmds), ca_run_opts,
                            ca_run_n_opts);
}

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mayfly-ca: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see mayfly-ca --help)\n", stderr);
    return 2;
}

static void get_list(const struct mf_opt_vals *v, const char *name, const char **dst, size_t *n)
{
    const struct mf_opt_val *x = mf_opt_val(v, name);
    *n = 0;
    for (size_t i = 0; x != NULL && i < x->n && i < MAX_REPEAT; i++) {
        dst[(*n)++] = x->list[i];
    }
}

static void opts_from(const struct mf_opt_vals *v, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->socket = mf_opt_get(v, "admin-socket");
    o->json = mf_opt_bool(v, "json");
    o->spiffe_id = mf_opt_get(v, "spiffe-id");
    o->parent_id = mf_opt_get(v, "parent-id");
    o->ttl = mf_opt_get(v, "ttl");
    o->hint = mf_opt_get(v, "hint");
    o->format = mf_opt_get(v, "format");
    o->wait = mf_opt_get(v, "wait");
    o->match = mf_opt_get(v, "match");
    o->trust_domain = mf_opt_get(v, "trust-domain");
    o->endpoint_url = mf_opt_get(v, "endpoint-url");
    o->profile = mf_opt_get(v, "profile");
    o->endpoint_id = mf_opt_get(v, "endpoint-spiffe-id");
    o->bundle = mf_opt_get(v, "bundle");
    get_list(v, "selector", o->sel, &o->n_sel);
    get_list(v, "dns-name", o->dns, &o->n_dns);
    o->clear_dns = mf_opt_bool(v, "no-dns-names");
    o->clear_hint = mf_opt_bool(v, "no-hint");
    get_list(v, "federates-with", o->fed, &o->n_fed);
    o->clear_fed = mf_opt_bool(v, "no-federation");
    for (size_t i = 0; i < v->n_pos && i < 4; i++) {
        o->pos[o->n_pos++] = v->pos[i];
    }
}

/* One request over the admin socket. Returns 0 with *out holding the body
 * (may be NULL for an empty body) or prints the server's error and
 * returns 1. */
static int call(const struct opts *o, const char *method, const char *path, json_t *body,
                struct mf_http_resp *resp, bool quiet)
{
    struct mf_http_conn *c = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    mf_http_resp_init(resp, CLI_MAX_BODY);
    mf_err_clear();
    mf_res r = mf_http_connect_unix(o->socket, CLI_TIMEOUT_MS, &c);
    if (mf_ok(r)) {
        r = mf_http_request(c, method, path, NULL, text, text ? strlen(text) : 0, CLI_TIMEOUT_MS,
                            resp);
    }
    mf_http_close(c);
    free(text);
    if (!mf_ok(r) && quiet) {
        return 1;
    }
    if (!mf_ok(r)) {
        char msg[512];
        mf_err_format(r, msg, sizeof(msg));
        fprintf(stderr, "mayfly-ca: cannot reach the CA at %s: %s\n", o->socket, msg);
        return 1;
    }
    if (resp->status >= 400 && quiet) {
        return 1;
    }
    if (resp->status >= 400) {
        json_error_t jerr;
        json_t *e = json_loadb((const char *)resp->body.data, resp->body.len, 0, &jerr);
        const char *m = e ? json_string_value(json_object_get(e, "message")) : NULL;
        const char *code = e ? json_string_value(json_object_get(e, "error")) : NULL;
        fprintf(stderr, "mayfly-ca: %s (%s, HTTP %d)\n", m ? m : "request failed",
                code ? code : "error", resp->status);
        json_decref(e);
        return 1;
    }
    return 0;
}

static json_t *resp_json(const struct mf_http_resp *resp)
{
    json_error_t jerr;
    return json_loadb((const char *)resp->body.data, resp->body.len, 0, &jerr);
}

static void print_json(const struct mf_http_resp *resp)
{
    json_t *j = resp_json(resp);
    if (j != NULL) {
        char *s = json_dumps(j, JSON_INDENT(2));
        if (s != NULL) {
            puts(s);
            free(s);
        }
        json_decref(j);
    } else {
        fwrite(resp->body.data, 1, resp->body.len, stdout);
    }
}

/* The answer as it came (--json) or as print shows it. */
static void print_resp(const struct opts *o, const struct mf_http_resp *resp,
                       void (*print)(const json_t *))
{
    if (o->json) {
        print_json(resp);
    } else {
        json_t *j = resp_json(resp);
        print(j);
        json_decref(j);
    }
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void join_arr(const json_t *arr, char *out, size_t cap)
{
    out[0] = '\0';
    size_t used = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        int n = snprintf(out + used, cap - used, "%s%s", i ? "," : "", json_string_value(v));
        if (n < 0 || (size_t)n >= cap - used) {
            break;
        }
        used += (size_t)n;
    }
}

/* The lifetime the entry's SVIDs get: its own ttl, or the CA's default
 * for ttl 0 (said so, since 0 itself would read as "no lifetime"). */
static void print_ttl(const json_t *e)
{
    json_int_t ttl = json_integer_value(json_object_get(e, "ttl"));
    json_int_t eff = json_integer_value(json_object_get(e, "effective_ttl"));
    if (ttl == 0 && eff > 0) {
        printf("TTL        : %lld (the CA's default)\n", (long long)eff);
    } else {
        printf("TTL        : %lld\n", (long long)ttl);
    }
}

static json_int_t eff_ttl(const json_t *e)
{
    const json_t *eff = json_object_get(e, "effective_ttl");
    return json_integer_value(eff != NULL ? eff : json_object_get(e, "ttl"));
}

static void print_entry(const json_t *e)
{
    char sels[2048], dns[1024];
    join_arr(json_object_get(e, "selectors"), sels, sizeof(sels));
    join_arr(json_object_get(e, "dns_names"), dns, sizeof(dns));
    printf("Entry ID   : %s\n", jstr(e, "id"));
    printf("SPIFFE ID  : %s\n", jstr(e, "spiffe_id"));
    printf("Parent ID  : %s\n", jstr(e, "parent_id"));
    printf("Selectors  : %s\n", sels);
    print_ttl(e);
    printf("DNS names  : %s\n", dns);
    printf("Hint       : %s\n", jstr(e, "hint"));
    if (json_array_size(json_object_get(e, "federates_with")) > 0) {
        char fed[4096];
        join_arr(json_object_get(e, "federates_with"), fed, sizeof(fed));
        printf("Federates  : %s\n", fed);
    }
    printf("Revision   : %lld\n", (long long)json_integer_value(json_object_get(e, "revision")));
}

static void print_agent(const json_t *a)
{
    printf("SPIFFE ID   : %s\n", jstr(a, "spiffe_id"));
    printf("Serial      : %s\n", jstr(a, "serial"));
    printf("Expires at  : %s\n", jstr(a, "expires_at"));
    printf("Attested at : %s\n", jstr(a, "attested_at"));
    printf("Last seen   : %s\n", jstr(a, "last_seen"));
    printf("Banned      : %s\n", json_is_true(json_object_get(a, "banned")) ? "yes" : "no");
}

static void print_agents(const json_t *j)
{
    size_t i;
    const json_t *a;
    printf("%-48s  %-6s  %-20s  %s\n", "SPIFFE ID", "BANNED", "EXPIRES AT", "LAST SEEN");
    json_array_foreach(json_object_get(j, "agents"), i, a)
    {
        printf("%-48s  %-6s  %-20s  %s\n", jstr(a, "spiffe_id"),
               json_is_true(json_object_get(a, "banned")) ? "yes" : "no", jstr(a, "expires_at"),
               jstr(a, "last_seen"));
    }
}

static void print_cas(const json_t *j)
{
    size_t i;
    const json_t *a;
    printf("bundle spiffe_sequence %lld%s\n",
           (long long)json_integer_value(json_object_get(j, "spiffe_sequence")),
           json_is_true(json_object_get(j, "upstream")) ? " (intermediate under an upstream root)"
                                                        : "");
    printf("this server %s\n", jstr(j, "server_id"));
    printf("%-16s  %-8s  %-20s  %-20s  %-16s  %s\n", "KEY ID", "STATE", "NOT BEFORE", "NOT AFTER",
           "SERVER", "FINGERPRINT");
    json_array_foreach(json_object_get(j, "authorities"), i, a)
    {
        printf("%-16s  %-8s  %-20s  %-20s  %-16s  %s\n", jstr(a, "id"), jstr(a, "state"),
               jstr(a, "not_before"), jstr(a, "not_after"), jstr(a, "server_id"),
               jstr(a, "fingerprint"));
    }
}

static void print_token(const json_t *j)
{
    printf("%s\n", jstr(j, "token"));
}

static int ttl_arg(const char *s, json_int_t *out)
{
    int64_t v = 0;
    if (!mf_ok(mf_duration_parse(s, &v))) {
        return usage_err("--ttl '%s' is not a duration such as 90s, 10m, 1h", s);
    }
    *out = (json_int_t)v;
    return 0;
}

/* --ttl, when given, into body's "ttl". Returns 0, or the usage exit
 * status (body is left to the caller). */
static int put_ttl(const struct opts *o, json_t *body)
{
    if (o->ttl != NULL) {
        json_int_t t = 0;
        int rc = ttl_arg(o->ttl, &t);
        if (rc != 0) {
            return rc;
        }
        json_object_set_new(body, "ttl", json_integer(t));
    }
    return 0;
}

static json_t *str_list(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
    }
    return a;
}

static int entry_body(const struct opts *o, bool patch, json_t **out)
{
    json_t *b = json_object();
    if (!patch) {
        if (o->spiffe_id == NULL || o->parent_id == NULL) {
            json_decref(b);
            return usage_err("%s", "entry create needs --spiffe-id and --parent-id");
        }
        json_object_set_new(b, "spiffe_id", json_string(o->spiffe_id));
        json_object_set_new(b, "parent_id", json_string(o->parent_id));
    } else if (o->spiffe_id != NULL || o->parent_id != NULL) {
        json_decref(b);
        return usage_err("%s", "the SPIFFE ID and parent of an entry cannot change; delete and "
                               "create it instead");
    }
    /* An empty selector list is sent as such and refused by the server, so
     * the message comes from one place. */
    if (!patch || o->n_sel > 0) {
        json_object_set_new(b, "selectors", str_list(o->sel, o->n_sel));
    }
    int ttl_rc = put_ttl(o, b);
    if (ttl_rc != 0) {
        json_decref(b);
        return ttl_rc;
    }
    if (o->n_dns > 0 || o->clear_dns) {
        json_object_set_new(b, "dns_names", str_list(o->dns, o->n_dns));
    }
    if (o->hint != NULL || o->clear_hint) {
        json_object_set_new(b, "hint", json_string(o->hint ? o->hint : ""));
    }
    if (o->n_fed > 0 || o->clear_fed) {
        json_object_set_new(b, "federates_with", str_list(o->fed, o->n_fed));
    }
    *out = b;
    return 0;
}

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* GET /v1/entries with the filters in the query string, percent-encoded. */
static int entry_query(const struct opts *o, bool count, const char *spiffe_id,
                       const char *parent_id)
{
    struct mf_buf path;
    mf_buf_init(&path, 64 * 1024, 0);
    mf_res r = mf_buf_append_str(&path, "/v1/entries");
    char sep = '?';
    const char *keys[MAX_REPEAT + 3], *vals[MAX_REPEAT + 3];
    size_t n = 0;
    if (spiffe_id != NULL) {
        keys[n] = "spiffe_id", vals[n++] = spiffe_id;
    }
    if (parent_id != NULL) {
        keys[n] = "parent_id", vals[n++] = parent_id;
    }
    for (size_t i = 0; i < o->n_sel; i++) {
        keys[n] = "selector", vals[n++] = o->sel[i];
    }
    /* the server refuses a mode without selectors; the default needs none */
    if (o->match != NULL && (o->n_sel > 0 || strcmp(o->match, "superset") != 0)) {
        keys[n] = "match", vals[n++] = o->match;
    }
    for (size_t i = 0; mf_ok(r) && i < n; i++) {
        r = mf_buf_printf(&path, "%c%s=", sep, keys[i]);
        if (mf_ok(r)) {
            r = mf_pct_append(&path, vals[i], MF_PCT_UNRESERVED);
        }
        sep = '&';
    }
    if (!mf_ok(r)) {
        mf_buf_cleanup(&path);
        return usage_err("%s", "the filters are too long");
    }
    struct mf_http_resp resp;
    int rc = call(o, "GET", mf_buf_cstr(&path), NULL, &resp, false);
    mf_buf_cleanup(&path);
    if (rc == 0) {
        json_t *j = resp_json(&resp);
        const json_t *arr = json_object_get(j, "entries");
        if (count && o->json) {
            printf("{\"count\":%zu}\n", json_array_size(arr));
        } else if (count) {
            printf("%zu\n", json_array_size(arr));
        } else if (o->json) {
            print_json(&resp);
        } else {
            size_t i;
            const json_t *e;
            printf("%-32s  %-40s  %-40s  %-6s  %s\n", "ID", "SPIFFE ID", "PARENT ID", "TTL",
                   "SELECTORS");
            json_array_foreach(arr, i, e)
            {
                char sels[2048];
                join_arr(json_object_get(e, "selectors"), sels, sizeof(sels));
                printf("%-32s  %-40s  %-40s  %-6lld  %s\n", jstr(e, "id"), jstr(e, "spiffe_id"),
                       jstr(e, "parent_id"), (long long)eff_ttl(e), sels);
            }
        }
        json_decref(j);
    }
    mf_http_resp_cleanup(&resp);
    return rc;
}

static int cmd_entry(const char *verb, struct opts *o)
{
    struct mf_http_resp resp;
    json_t *body = NULL;
    char path[256];
    int rc;
    if (strcmp(verb, "create") == 0) {
        if ((rc = entry_body(o, false, &body)) != 0) {
            return rc;
        }
        rc = call(o, "POST", "/v1/entries", body, &resp, false);
        json_decref(body);
        if (rc == 0) {
            json_t *e = resp_json(&resp);
            if (o->json) {
                print_json(&resp);
            } else {
                printf("%s\n", jstr(e, "id"));
            }
            json_decref(e);
        }
        mf_http_resp_cleanup(&resp);
        return rc;
    }
    if (strcmp(verb, "list") == 0 || strcmp(verb, "count") == 0) {
        return entry_query(o, verb[0] == 'c', o->spiffe_id, o->parent_id);
    }
    if (o->n_pos != 1 || !id_ok(o->pos[0])) {
        return usage_err("entry %s needs one entry ID (hex)", verb);
    }
    snprintf(path, sizeof(path), "/v1/entries/%s", o->pos[0]);
    if (strcmp(verb, "show") == 0 || strcmp(verb, "update") == 0) {
        bool upd = verb[0] == 'u';
        if (upd && (rc = entry_body(o, true, &body)) != 0) {
            return rc;
        }
        rc = call(o, upd ? "PATCH" : "GET", path, body, &resp, false);
        json_decref(body);
        if (rc == 0) {
            print_resp(o, &resp, print_entry);
        }
        mf_http_resp_cleanup(&resp);
        return rc;
    }
    if (strcmp(verb, "delete") == 0) {
        rc = call(o, "DELETE", path, NULL, &resp, false);
        if (rc == 0) {
            if (o->json) {
                printf("{\"deleted\":\"%s\"}\n", o->pos[0]);
            } else {
                printf("deleted %s\n", o->pos[0]);
            }
        }
        mf_http_resp_cleanup(&resp);
        return rc;
    }
    return usage_err("unknown entry subcommand '%s'", verb);
}

static int cmd_token(const char *verb, struct opts *o)
{
    if (strcmp(verb, "generate") != 0) {
        return usage_err("unknown token subcommand '%s'", verb);
    }
    if (o->spiffe_id == NULL) {
        return usage_err("%s", "token generate needs --spiffe-id AGENT_ID");
    }
    json_t *body = json_pack("{s:s}", "spiffe_id", o->spiffe_id);
    int ttl_rc = put_ttl(o, body);
    if (ttl_rc != 0) {
        json_decref(body);
        return ttl_rc;
    }
    struct mf_http_resp resp;
    int rc = call(o, "POST", "/v1/tokens", body, &resp, false);
    json_decref(body);
    if (rc == 0) {
        print_resp(o, &resp, print_token);
    }
    /* the body held the token */
    mf_buf_reset(&resp.body);
    mf_http_resp_cleanup(&resp);
    return rc;
}

static int cmd_agent(const char *verb, struct opts *o)
{
    struct mf_http_resp resp;
    int rc;
    if (strcmp(verb, "count") == 0) {
        rc = call(o, "GET", "/v1/agents", NULL, &resp, false);
        if (rc == 0) {
            json_t *j = resp_json(&resp);
            size_t n = json_array_size(json_object_get(j, "agents"));
            printf(o->json ? "{\"count\":%zu}\n" : "%zu\n", n);
            json_decref(j);
        }
        mf_http_resp_cleanup(&resp);
        return rc;
    }
    if (strcmp(verb, "list") == 0) {
        rc = call(o, "GET", "/v1/agents", NULL, &resp, false);
        if (rc == 0) {
            print_resp(o, &resp, print_agents);
        }
        mf_http_resp_cleanup(&resp);
        return rc;
    }
    if (o->n_pos != 1) {
        return usage_err("agent %s needs one agent SPIFFE ID", verb);
    }
    if (strcmp(verb, "entries") == 0) {
        /* what the agent's sync receives: the entries parented to it */
        return entry_query(o, false, NULL, o->pos[0]);
    }
    if (strcmp(verb, "show") == 0) {
        /* the ID, percent-encoded, in the query string */
        char path[3 * MF_SPIFFE_ID_MAX + 64];
        int used = snprintf(path, sizeof(path), "/v1/agents/show?spiffe_id=");
        if (!mf_pct_encode(o->pos[0], MF_PCT_UNRESERVED, path + used,
                           sizeof(path) - (size_t)used)) {
            return usage_err("agent %s: the SPIFFE ID is too long", verb);
        }
        rc = call(o, "GET", path, NULL, &resp, false);
    } else if (strcmp(verb, "ban") == 0 || strcmp(verb, "evict") == 0) {
        json_t *body = json_pack("{s:s}", "spiffe_id", o->pos[0]);
        rc = call(o, "POST", verb[0] == 'b' ? "/v1/agents/ban" : "/v1/agents/evict", body, &resp,
                  false);
        json_decref(body);
    } else {
        return usage_err("unknown agent subcommand '%s'", verb);
    }
    if (rc == 0) {
        if (verb[0] == 'e') {
            if (o->json) {
                printf("{\"evicted\":\"%s\"}\n", o->pos[0]);
            } else {
                printf("evicted %s\n", o->pos[0]);
            }
        } else {
            print_resp(o, &resp, print_agent);
        }
    }
    mf_http_resp_cleanup(&resp);
    return rc;
}

/* ---- federation ---------------------------------------------------------- */

/* Reads a bundle file (PEM or JWKS) into a new string. */
static int read_bundle_file(const char *path, char **out)
{
    *out = NULL;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "mayfly-ca: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct mf_buf b;
    mf_buf_init(&b, MF_MAX_BUNDLE, 0);
    char chunk[4096];
    size_t n;
    mf_res r = MF_RES_OK;
    while (mf_ok(r) && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        r = mf_buf_append(&b, chunk, n);
    }
    bool err = ferror(f) != 0;
    fclose(f);
    if (!mf_ok(r) || err || b.len == 0) {
        fprintf(stderr, "mayfly-ca: %s: %s\n", path,
                !mf_ok(r) ? "larger than a bundle may be" : (err ? "read error" : "empty file"));
        mf_buf_cleanup(&b);
        return 1;
    }
    *out = strdup(mf_buf_cstr(&b));
    mf_buf_cleanup(&b);
    if (*out == NULL) {
        fprintf(stderr, "mayfly-ca: out of memory\n");
        return 1;
    }
    return 0;
}

static void print_federation(const json_t *f)
{
    printf("Trust domain : %s\n", jstr(f, "trust_domain"));
    printf("Endpoint URL : %s\n", jstr(f, "endpoint_url"));
    printf("Profile      : %s\n", jstr(f, "profile"));
    if (json_object_get(f, "endpoint_spiffe_id") != NULL) {
        printf("Endpoint ID  : %s\n", jstr(f, "endpoint_spiffe_id"));
    }
    printf("Last fetch   : %s\n", jstr(f, "last_attempt"));
    printf("Last success : %s\n", jstr(f, "last_success"));
    printf("Next refresh : %s\n", jstr(f, "next_refresh"));
    if (json_object_get(f, "last_error") != NULL) {
        printf("Last error   : %s\n", jstr(f, "last_error"));
    }
}

static void print_federations(const json_t *j)
{
    size_t i;
    const json_t *f;
    printf("%-24s  %-12s  %-20s  %s\n", "TRUST DOMAIN", "PROFILE", "LAST SUCCESS", "ENDPOINT URL");
    json_array_foreach(json_object_get(j, "federations"), i, f)
    {
        printf("%-24s  %-12s  %-20s  %s\n", jstr(f, "trust_domain"), jstr(f, "profile"),
               jstr(f, "last_success"), jstr(f, "endpoint_url"));
    }
}

static void print_fbundle(const json_t *b)
{
    printf("Trust domain     : %s\n", jstr(b, "trust_domain"));
    printf("Source           : %s\n", jstr(b, "source"));
    printf("spiffe_sequence  : %lld\n",
           (long long)json_integer_value(json_object_get(b, "spiffe_sequence")));
    printf("Fetched/set at   : %s\n", jstr(b, "fetched_at"));
    printf("X.509 authorities: %lld\n",
           (long long)json_integer_value(json_object_get(b, "x509_authorities")));
    printf("JWT authorities  : %lld\n",
           (long long)json_integer_value(json_object_get(b, "jwt_authorities")));
}

static void print_fbundles(const json_t *j)
{
    size_t i;
    const json_t *b;
    printf("%-24s  %-8s  %-8s  %-20s  %s\n", "TRUST DOMAIN", "SOURCE", "SEQUENCE", "FETCHED AT",
           "AUTHORITIES (X.509/JWT)");
    json_array_foreach(json_object_get(j, "bundles"), i, b)
    {
        printf("%-24s  %-8s  %-8lld  %-20s  %lld/%lld\n", jstr(b, "trust_domain"),
               jstr(b, "source"),
               (long long)json_integer_value(json_object_get(b, "spiffe_sequence")),
               jstr(b, "fetched_at"),
               (long long)json_integer_value(json_object_get(b, "x509_authorities")),
               (long long)json_integer_value(json_object_get(b, "jwt_authorities")));
    }
}

static void print_refresh(const json_t *j)
{
    printf("%s: %s (spiffe_sequence %lld)\n", jstr(j, "trust_domain"),
           json_is_true(json_object_get(j, "changed")) ? "new bundle stored" : "unchanged",
           (long long)json_integer_value(json_object_get(j, "spiffe_sequence")));
}

/* A call whose answer is printed by print (or shown as JSON). */
static int call_print(struct opts *o, const char *method, const char *path, json_t *body,
                      void (*print)(const json_t *))
{
    struct mf_http_resp resp;
    int rc = call(o, method, path, body, &resp, false);
    json_decref(body);
    if (rc == 0 && print != NULL) {
        print_resp(o, &resp, print);
    }
    mf_http_resp_cleanup(&resp);
    return rc;
}

/* GET path?trust_domain=<td, percent-encoded>[&format=F] */
static int td_path(const char *base, const char *td, const char *fmt, char *out, size_t cap)
{
    int used = snprintf(out, cap, "%s?trust_domain=", base);
    if (used < 0 || (size_t)used >= cap ||
        !mf_pct_encode(td, MF_PCT_UNRESERVED, out + used, cap - (size_t)used)) {
        return usage_err("--trust-domain is too long");
    }
    if (fmt != NULL) {
        size_t l = strlen(out);
        if (snprintf(out + l, cap - l, "&format=%s", fmt) >= (int)(cap - l)) {
            return usage_err("--format is too long");
        }
    }
    return 0;
}

static int cmd_foreign_bundle(const char *verb, struct opts *o)
{
    char path[3 * MF_SPIFFE_ID_MAX + 64];
    if (strcmp(verb, "list") == 0) {
        return call_print(o, "GET", "/v1/bundles", NULL, print_fbundles);
    }
    if (o->trust_domain == NULL) {
        return usage_err("bundle %s needs --trust-domain", verb);
    }
    if (strcmp(verb, "show") == 0) {
        const char *fmt = o->format ? o->format : (o->json ? NULL : "pem");
        if (fmt != NULL && strcmp(fmt, "pem") != 0 && strcmp(fmt, "spiffe") != 0) {
            return usage_err("--format '%s' must be pem or spiffe", fmt);
        }
        int rc = td_path("/v1/bundles/show", o->trust_domain, fmt, path, sizeof(path));
        if (rc != 0) {
            return rc;
        }
        struct mf_http_resp resp;
        rc = call(o, "GET", path, NULL, &resp, false);
        if (rc == 0) {
            if (fmt != NULL && fmt[0] == 'p') {
                fwrite(resp.body.data, 1, resp.body.len, stdout);
            } else {
                print_json(&resp);
            }
        }
        mf_http_resp_cleanup(&resp);
        return rc;
    }
    if (strcmp(verb, "delete") == 0) {
        int rc = call_print(o, "POST", "/v1/bundles/delete",
                            json_pack("{s:s}", "trust_domain", o->trust_domain), NULL);
        if (rc == 0 && !o->json) {
            printf("deleted the bundle of %s\n", o->trust_domain);
        }
        return rc;
    }
    if (strcmp(verb, "set") == 0) {
        char *text = NULL;
        if (o->bundle == NULL) {
            return usage_err("bundle set needs --bundle FILE");
        }
        if (read_bundle_file(o->bundle, &text) != 0) {
            return 1;
        }
        json_t *body = json_pack("{s:s,s:s}", "trust_domain", o->trust_domain, "bundle", text);
        free(text);
        if (body == NULL) {
            return usage_err("%s is not UTF-8 text", o->bundle);
        }
        return call_print(o, "POST", "/v1/bundles", body, print_fbundle);
    }
    return usage_err("unknown bundle subcommand '%s'", verb);
}

static int cmd_federation(const char *verb, struct opts *o)
{
    char path[3 * MF_SPIFFE_ID_MAX + 64];
    if (strcmp(verb, "list") == 0) {
        return call_print(o, "GET", "/v1/federations", NULL, print_federations);
    }
    if (o->trust_domain == NULL) {
        return usage_err("federation %s needs --trust-domain", verb);
    }
    if (strcmp(verb, "show") == 0) {
        int rc = td_path("/v1/federations/show", o->trust_domain, NULL, path, sizeof(path));
        return rc != 0 ? rc : call_print(o, "GET", path, NULL, print_federation);
    }
    if (strcmp(verb, "delete") == 0) {
        int rc = call_print(o, "POST", "/v1/federations/delete",
                            json_pack("{s:s}", "trust_domain", o->trust_domain), NULL);
        if (rc == 0 && !o->json) {
            printf("deleted the federation with %s\n", o->trust_domain);
        }
        return rc;
    }
    if (strcmp(verb, "refresh") == 0) {
        return call_print(o, "POST", "/v1/federations/refresh",
                          json_pack("{s:s}", "trust_domain", o->trust_domain), print_refresh);
    }
    bool create = strcmp(verb, "create") == 0;
    if (!create && strcmp(verb, "update") != 0) {
        return usage_err("unknown federation subcommand '%s'", verb);
    }
    if (create && o->endpoint_url == NULL) {
        return usage_err("federation create needs --endpoint-url");
    }
    json_t *body = json_pack("{s:s}", "trust_domain", o->trust_domain);
    if (o->endpoint_url != NULL) {
        json_object_set_new(body, "endpoint_url", json_string(o->endpoint_url));
    }
    if (o->profile != NULL) {
        json_object_set_new(body, "profile", json_string(o->profile));
    }
    if (o->endpoint_id != NULL) {
        json_object_set_new(body, "endpoint_spiffe_id", json_string(o->endpoint_id));
    }
    if (o->bundle != NULL) {
        char *text = NULL;
        if (read_bundle_file(o->bundle, &text) != 0) {
            json_decref(body);
            return 1;
        }
        json_object_set_new(body, "bundle", json_string(text));
        free(text);
    }
    return call_print(o, "POST", create ? "/v1/federations" : "/v1/federations/update", body,
                      print_federation);
}

static int cmd_bundle(const char *verb, struct opts *o)
{
    if (strcmp(verb, "show") != 0 || o->trust_domain != NULL) {
        return cmd_foreign_bundle(verb, o);
    }
    const char *fmt = o->format ? o->format : (o->json ? "spiffe" : "pem");
    if (strcmp(fmt, "pem") != 0 && strcmp(fmt, "spiffe") != 0) {
        return usage_err("--format '%s' must be pem or spiffe", fmt);
    }
    char path[64];
    snprintf(path, sizeof(path), "/v1/bundle?format=%s", fmt);
    struct mf_http_resp resp;
    int rc = call(o, "GET", path, NULL, &resp, false);
    if (rc == 0) {
        if (fmt[0] == 'p') {
            fwrite(resp.body.data, 1, resp.body.len, stdout);
        } else {
            print_json(&resp);
        }
    }
    mf_http_resp_cleanup(&resp);
    return rc;
}

static int cmd_ca(const char *verb, struct opts *o)
{
    if (strcmp(verb, "show") != 0) {
        return usage_err("unknown ca subcommand '%s'", verb);
    }
    struct mf_http_resp resp;
    int rc = call(o, "GET", "/v1/ca", NULL, &resp, false);
    if (rc == 0) {
        print_resp(o, &resp, print_cas);
    }
    mf_http_resp_cleanup(&resp);
    return rc;
}

/* healthcheck [--wait DUR]: retries until the admin API answers, so that a
 * script can start the CA in the background and go on once it serves. */
static int cmd_health(const struct opts *o)
{
    int64_t wait = 0;
    if (o->wait != NULL && !mf_ok(mf_duration_parse(o->wait, &wait))) {
        return usage_err("--wait '%s' is not a duration", o->wait);
    }
    int64_t deadline = mf_mono_ms() + wait * 1000;
    for (;;) {
        struct mf_http_resp resp;
        bool last = mf_mono_ms() >= deadline;
        int rc = call(o, "GET", "/health", NULL, &resp, !last);
        if (rc == 0) {
            if (o->json) {
                print_json(&resp);
            } else {
                puts("ok");
            }
        }
        mf_http_resp_cleanup(&resp);
        if (rc == 0 || last) {
            return rc;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int ca_cli_main(const struct mf_cmd *cmd, const struct mf_opt_vals *v)
{
    struct opts o;
    opts_from(v, &o);
    const char *sp = strchr(cmd->name, ' ');
    const char *verb = sp != NULL ? sp + 1 : "";
    if (strncmp(cmd->name, "entry ", 6) == 0) {
        return cmd_entry(verb, &o);
    }
    if (strncmp(cmd->name, "token ", 6) == 0) {
        return cmd_token(verb, &o);
    }
    if (strncmp(cmd->name, "agent ", 6) == 0) {
        return cmd_agent(verb, &o);
    }
    if (strncmp(cmd->name, "bundle ", 7) == 0) {
        return cmd_bundle(verb, &o);
    }
    if (strncmp(cmd->name, "ca ", 3) == 0) {
        return cmd_ca(verb, &o);
    }
    if (strncmp(cmd->name, "federation ", 11) == 0) {
        return cmd_federation(verb, &o);
    }
    if (strcmp(cmd->name, "healthcheck") == 0) {
        return cmd_health(&o);
    }
    if (strcmp(cmd->name, "datastore copy") == 0) {
        return ca_datastore_copy_main(v);
    }
    return usage_err("unknown command '%s'", cmd->name);
}
