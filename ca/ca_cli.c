/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_cli: admin subcommands over the admin socket (see ca_cli.h).
 *
 * The CLI validates only what it needs to build a request; every rule
 * (SPIFFE IDs, selectors, duplicates) is enforced by the server, so that
 * the CLI and the API can never disagree.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/net/mf_http.h"
#include "api/core/mf_json.h"
#include "api/core/mf_time.h"
#include "ca/ca_cli.h"

#define CLI_TIMEOUT_MS 15000
#define CLI_MAX_BODY   MF_MAX_BUNDLE
#define MAX_REPEAT     32

struct opts {
    const char *socket;
    bool json;
    const char *spiffe_id, *parent_id, *ttl, *hint, *format;
    const char *sel[MAX_REPEAT];
    size_t n_sel;
    const char *dns[MAX_REPEAT];
    size_t n_dns;
    bool clear_dns, clear_hint;
    const char *pos[4];
    size_t n_pos;
};

void ca_cli_usage(void)
{
    fputs("usage:\n"
          "  mayfly-ca run --data-dir DIR --admin-socket PATH [--trust-domain TD]\n"
          "                [--listen HOST:PORT] [--svid-ttl DUR] [--ca-ttl DUR] [--token-ttl DUR]\n"
          "                [--upstream-ca-cert FILE --upstream-ca-key FILE] [--config FILE]\n"
          "                [--max-signing N] [--agent-rate N] [--agent-burst N]\n"
          "                [--max-connections N] [--log-level L] [--log-format text|json]\n"
          "                [--metrics-listen HOST:PORT]\n"
          "  mayfly-ca entry create --spiffe-id ID --parent-id AGENT_ID --selector T:K:V...\n"
          "                         [--ttl DUR] [--dns-name N]... [--hint H]\n"
          "  mayfly-ca entry list | show ID | delete ID\n"
          "  mayfly-ca entry update ID [--selector T:K:V]... [--ttl DUR] [--dns-name N]...\n"
          "                            [--no-dns-names] [--hint H] [--no-hint]\n"
          "  mayfly-ca token generate --spiffe-id AGENT_ID [--ttl DUR]\n"
          "  mayfly-ca agent list | show ID | ban ID | evict ID\n"
          "  mayfly-ca bundle show [--format pem|spiffe]\n"
          "  mayfly-ca ca show\n"
          "  mayfly-ca healthcheck\n"
          "every admin subcommand takes --admin-socket PATH (or $MAYFLY_CA_ADMIN_SOCKET)\n"
          "and --json\n",
          stderr);
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

static int parse_opts(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->socket = getenv("MAYFLY_CA_ADMIN_SOCKET");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--no-dns-names") == 0) {
            o->clear_dns = true;
            continue;
        }
        if (strcmp(a, "--no-hint") == 0) {
            o->clear_hint = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (o->n_pos >= 4) {
                return usage_err("too many arguments at '%s'", a);
            }
            o->pos[o->n_pos++] = a;
            continue;
        }
        if (i + 1 >= argc) {
            return usage_err("%s needs a value", a);
        }
        const char *v = argv[++i];
        if (strcmp(a, "--admin-socket") == 0) {
            o->socket = v;
        } else if (strcmp(a, "--spiffe-id") == 0 || strcmp(a, "--spiffeID") == 0) {
            o->spiffe_id = v;
        } else if (strcmp(a, "--parent-id") == 0 || strcmp(a, "--parentID") == 0) {
            o->parent_id = v;
        } else if (strcmp(a, "--ttl") == 0) {
            o->ttl = v;
        } else if (strcmp(a, "--hint") == 0) {
            o->hint = v;
        } else if (strcmp(a, "--format") == 0) {
            o->format = v;
        } else if (strcmp(a, "--selector") == 0) {
            if (o->n_sel >= MAX_REPEAT) {
                return usage_err("too many %s options", a);
            }
            o->sel[o->n_sel++] = v;
        } else if (strcmp(a, "--dns-name") == 0 || strcmp(a, "--dns") == 0) {
            if (o->n_dns >= MAX_REPEAT) {
                return usage_err("too many %s options", a);
            }
            o->dns[o->n_dns++] = v;
        } else {
            return usage_err("unknown option '%s'", a);
        }
    }
    if (o->socket == NULL || o->socket[0] == '\0') {
        return usage_err("%s", "--admin-socket is required");
    }
    return 0;
}

/* One request over the admin socket. Returns 0 with *out holding the body
 * (may be NULL for an empty body) or prints the server's error and
 * returns 1. */
static int call(const struct opts *o, const char *method, const char *path, json_t *body,
                struct mf_http_resp *resp)
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
    if (!mf_ok(r)) {
        char msg[512];
        mf_err_format(r, msg, sizeof(msg));
        fprintf(stderr, "mayfly-ca: cannot reach the CA at %s: %s\n", o->socket, msg);
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

static void print_entry(const json_t *e)
{
    char sels[2048], dns[1024];
    join_arr(json_object_get(e, "selectors"), sels, sizeof(sels));
    join_arr(json_object_get(e, "dns_names"), dns, sizeof(dns));
    printf("Entry ID   : %s\n", jstr(e, "id"));
    printf("SPIFFE ID  : %s\n", jstr(e, "spiffe_id"));
    printf("Parent ID  : %s\n", jstr(e, "parent_id"));
    printf("Selectors  : %s\n", sels);
    printf("TTL        : %lld\n", (long long)json_integer_value(json_object_get(e, "ttl")));
    printf("DNS names  : %s\n", dns);
    printf("Hint       : %s\n", jstr(e, "hint"));
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

static int ttl_arg(const char *s, json_int_t *out)
{
    int64_t v = 0;
    if (!mf_ok(mf_duration_parse(s, &v))) {
        return usage_err("--ttl '%s' is not a duration such as 90s, 10m, 1h", s);
    }
    *out = (json_int_t)v;
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
    if (o->ttl != NULL) {
        json_int_t t = 0;
        int rc = ttl_arg(o->ttl, &t);
        if (rc != 0) {
            json_decref(b);
            return rc;
        }
        json_object_set_new(b, "ttl", json_integer(t));
    }
    if (o->n_dns > 0 || o->clear_dns) {
        json_object_set_new(b, "dns_names", str_list(o->dns, o->n_dns));
    }
    if (o->hint != NULL || o->clear_hint) {
        json_object_set_new(b, "hint", json_string(o->hint ? o->hint : ""));
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
        rc = call(o, "POST", "/v1/entries", body, &resp);
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
    if (strcmp(verb, "list") == 0) {
        rc = call(o, "GET", "/v1/entries", NULL, &resp);
        if (rc == 0) {
            if (o->json) {
                print_json(&resp);
            } else {
                json_t *j = resp_json(&resp);
                size_t i;
                const json_t *e;
                printf("%-32s  %-40s  %-40s  %-6s  %s\n", "ID", "SPIFFE ID", "PARENT ID", "TTL",
                       "SELECTORS");
                json_array_foreach(json_object_get(j, "entries"), i, e)
                {
                    char sels[2048];
                    join_arr(json_object_get(e, "selectors"), sels, sizeof(sels));
                    printf("%-32s  %-40s  %-40s  %-6lld  %s\n", jstr(e, "id"),
                           jstr(e, "spiffe_id"), jstr(e, "parent_id"),
                           (long long)json_integer_value(json_object_get(e, "ttl")), sels);
                }
                json_decref(j);
            }
        }
        mf_http_resp_cleanup(&resp);
        return rc;
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
        rc = call(o, upd ? "PATCH" : "GET", path, body, &resp);
        json_decref(body);
        if (rc == 0) {
            if (o->json) {
                print_json(&resp);
            } else {
                json_t *e = resp_json(&resp);
                print_entry(e);
                json_decref(e);
            }
        }
        mf_http_resp_cleanup(&resp);
        return rc;
    }
    if (strcmp(verb, "delete") == 0) {
        rc = call(o, "DELETE", path, NULL, &resp);
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
    if (o->ttl != NULL) {
        json_int_t t = 0;
        int rc = ttl_arg(o->ttl, &t);
        if (rc != 0) {
            json_decref(body);
            return rc;
        }
        json_object_set_new(body, "ttl", json_integer(t));
    }
    struct mf_http_resp resp;
    int rc = call(o, "POST", "/v1/tokens", body, &resp);
    json_decref(body);
    if (rc == 0) {
        if (o->json) {
            print_json(&resp);
        } else {
            json_t *j = resp_json(&resp);
            printf("%s\n", jstr(j, "token"));
            json_decref(j);
        }
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
    if (strcmp(verb, "list") == 0) {
        rc = call(o, "GET", "/v1/agents", NULL, &resp);
        if (rc == 0) {
            if (o->json) {
                print_json(&resp);
            } else {
                json_t *j = resp_json(&resp);
                size_t i;
                const json_t *a;
                printf("%-48s  %-6s  %-20s  %s\n", "SPIFFE ID", "BANNED", "EXPIRES AT",
                       "LAST SEEN");
                json_array_foreach(json_object_get(j, "agents"), i, a)
                {
                    printf("%-48s  %-6s  %-20s  %s\n", jstr(a, "spiffe_id"),
                           json_is_true(json_object_get(a, "banned")) ? "yes" : "no",
                           jstr(a, "expires_at"), jstr(a, "last_seen"));
                }
                json_decref(j);
            }
        }
        mf_http_resp_cleanup(&resp);
        return rc;
    }
    if (o->n_pos != 1) {
        return usage_err("agent %s needs one agent SPIFFE ID", verb);
    }
    if (strcmp(verb, "show") == 0) {
        /* percent-encode the ID for the query string */
        char path[3 * MF_SPIFFE_ID_MAX + 64];
        size_t used = (size_t)snprintf(path, sizeof(path), "/v1/agents/show?spiffe_id=");
        for (const char *p = o->pos[0]; *p && used + 4 < sizeof(path); p++) {
            unsigned char c = (unsigned char)*p;
            bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
            if (plain) {
                path[used++] = (char)c;
            } else {
                used += (size_t)snprintf(path + used, sizeof(path) - used, "%%%02X", c);
            }
        }
        path[used] = '\0';
        rc = call(o, "GET", path, NULL, &resp);
    } else if (strcmp(verb, "ban") == 0 || strcmp(verb, "evict") == 0) {
        json_t *body = json_pack("{s:s}", "spiffe_id", o->pos[0]);
        rc = call(o, "POST", verb[0] == 'b' ? "/v1/agents/ban" : "/v1/agents/evict", body, &resp);
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
        } else if (o->json) {
            print_json(&resp);
        } else {
            json_t *a = resp_json(&resp);
            print_agent(a);
            json_decref(a);
        }
    }
    mf_http_resp_cleanup(&resp);
    return rc;
}

static int cmd_bundle(const char *verb, struct opts *o)
{
    if (strcmp(verb, "show") != 0) {
        return usage_err("unknown bundle subcommand '%s'", verb);
    }
    const char *fmt = o->format ? o->format : (o->json ? "spiffe" : "pem");
    if (strcmp(fmt, "pem") != 0 && strcmp(fmt, "spiffe") != 0) {
        return usage_err("--format '%s' must be pem or spiffe", fmt);
    }
    char path[64];
    snprintf(path, sizeof(path), "/v1/bundle?format=%s", fmt);
    struct mf_http_resp resp;
    int rc = call(o, "GET", path, NULL, &resp);
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
    int rc = call(o, "GET", "/v1/ca", NULL, &resp);
    if (rc == 0) {
        if (o->json) {
            print_json(&resp);
        } else {
            json_t *j = resp_json(&resp);
            size_t i;
            const json_t *a;
            printf("bundle spiffe_sequence %lld%s\n",
                   (long long)json_integer_value(json_object_get(j, "spiffe_sequence")),
                   json_is_true(json_object_get(j, "upstream")) ? " (intermediate under an "
                                                                  "upstream root)"
                                                                : "");
            printf("%-16s  %-8s  %-20s  %-20s  %s\n", "KEY ID", "STATE", "NOT BEFORE",
                   "NOT AFTER", "FINGERPRINT");
            json_array_foreach(json_object_get(j, "authorities"), i, a)
            {
                printf("%-16s  %-8s  %-20s  %-20s  %s\n", jstr(a, "id"), jstr(a, "state"),
                       jstr(a, "not_before"), jstr(a, "not_after"), jstr(a, "fingerprint"));
            }
            json_decref(j);
        }
    }
    mf_http_resp_cleanup(&resp);
    return rc;
}

int ca_cli_main(int argc, char **argv)
{
    if (argc < 1) {
        ca_cli_usage();
        return 2;
    }
    const char *cmd = argv[0];
    bool has_verb = strcmp(cmd, "healthcheck") != 0;
    if (has_verb && (argc < 2 || strncmp(argv[1], "--", 2) == 0)) {
        return usage_err("'%s' needs a subcommand", cmd);
    }
    const char *verb = has_verb ? argv[1] : "";
    struct opts o;
    int skip = has_verb ? 2 : 1;
    int rc = parse_opts(argc - skip, argv + skip, &o);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(cmd, "entry") == 0) {
        return cmd_entry(verb, &o);
    }
    if (strcmp(cmd, "token") == 0) {
        return cmd_token(verb, &o);
    }
    if (strcmp(cmd, "agent") == 0) {
        return cmd_agent(verb, &o);
    }
    if (strcmp(cmd, "bundle") == 0) {
        return cmd_bundle(verb, &o);
    }
    if (strcmp(cmd, "ca") == 0) {
        return cmd_ca(verb, &o);
    }
    if (strcmp(cmd, "healthcheck") == 0) {
        struct mf_http_resp resp;
        rc = call(&o, "GET", "/health", NULL, &resp);
        if (rc == 0) {
            if (o.json) {
                print_json(&resp);
            } else {
                puts("ok");
            }
        }
        mf_http_resp_cleanup(&resp);
        return rc;
    }
    return usage_err("unknown command '%s'", cmd);
}
