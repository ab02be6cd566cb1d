/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_policy: pure authorization and validation decisions (see ca_policy.h).
 */
#include "ca/ca_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal/mf_selector.h"

bool ca_policy_is_agent_id(const struct mf_spiffe_id *id, const char *td)
{
    if (id == NULL || td == NULL || !mf_spiffeid_member_of(id, td)) {
        return false;
    }
    const char *path = mf_spiffeid_path(id);
    size_t pl = strlen(CA_AGENT_PATH);
    if (strncmp(path, CA_AGENT_PATH, pl) != 0) {
        return false;
    }
    const char *name = path + pl;
    /* exactly one further segment, non-empty (the parser already refused
     * empty segments and trailing slashes) */
    return name[0] != '\0' && strchr(name, '/') == NULL;
}

static mf_res parse_in_td(const char *td, const char *what, const char *s, struct mf_spiffe_id *out)
{
    MF_ENSURE_MSG(s != NULL && s[0] != '\0', MF_ERR_ID_EMPTY, "%s is required", what);
    mf_res r = mf_spiffeid_parse_cstr(s, out);
    if (!mf_ok(r)) {
        char d[256];
        snprintf(d, sizeof(d), "%s", mf_err_detail());
        MF_BAIL_MSG(r.err, "%s '%s': %s", what, s, d[0] ? d : mf_err_str(r.err));
    }
    MF_ENSURE_MSG(mf_spiffeid_member_of(out, td), MF_ERR_ID_WRONG_TD,
                  "%s '%s' is outside trust domain %s", what, s, td);
    MF_ENSURE_MSG(!mf_spiffeid_is_td(out), MF_ERR_ID_NO_PATH, "%s '%s' has no path", what, s);
    return MF_RES_OK;
}

mf_res ca_policy_agent_id(const char *td, const char *s, struct mf_spiffe_id *out)
{
    MF_ENSURE_REF(td);
    MF_ENSURE_REF(out);
    MF_TRY(parse_in_td(td, "agent ID", s, out));
    /* bad input, not a denial: the caller is allowed, the ID is malformed */
    MF_ENSURE_MSG(ca_policy_is_agent_id(out, td), MF_ERR_USAGE_ARG,
                  "agent ID '%s' must be spiffe://%s" CA_AGENT_PATH "<name>", s, td);
    return MF_RES_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* RFC 1123 host names, with an optional leading "*." wildcard label. */
static bool dns_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CA_DNS_NAME_MAX) {
        return false;
    }
    if (strncmp(s, "*.", 2) == 0) {
        s += 2;
    }
    size_t label = 0;
    char prev = '.';
    for (const char *p = s;; p++) {
        char c = *p;
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || prev == '-') {
                return false;
            }
            if (c == '\0') {
                return true;
            }
            label = 0;
            prev = c;
            continue;
        }
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0)) {
            return false;
        }
        label++;
        prev = c;
    }
}

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* An entry that names an executable (unix:path, unix:sha256) must also name
 * a uid or gid. The agent stamps each connection with the caller's
 * executable when it accepts it, but a process may write its request and
 * exec the trusted binary before that, then let a child that shares the
 * socket read the answer (docs/security.md, "exec hand-off"). With a uid or
 * gid selector that only helps a process already running as that uid or
 * gid, which could run the binary itself anyway; supplementary groups do
 * not count, since many users may hold one. e's selectors are canonical. */
static mf_res exe_needs_ids(const struct ca_entry *e)
{
    bool exe = false, ids = false;
    for (size_t i = 0; i < e->n_selectors; i++) {
        const char *s = e->selectors[i];
        exe = exe || has_prefix(s, "unix:path:") || has_prefix(s, "unix:sha256:");
        ids = ids || has_prefix(s, "unix:uid:") || has_prefix(s, "unix:user:") ||
              has_prefix(s, "unix:gid:") || has_prefix(s, "unix:group:");
    }
    MF_ENSURE_MSG(!exe || ids, MF_ERR_POLICY_DENIED,
                  "an entry with a unix:path or unix:sha256 selector needs a unix:uid, "
                  "unix:user, unix:gid or unix:group selector too: a process can exec the "
                  "trusted binary after connecting to the Workload API and lend it the "
                  "connection, so an executable alone could be borrowed by any local user");
    return MF_RES_OK;
}

mf_res ca_policy_selector_canon(const char *s, char *out, size_t cap)
{
    MF_ENSURE_REF(s);
    struct mf_selector sel = {0};
    mf_res r = mf_selector_parse(s, strlen(s), &sel);
    if (!mf_ok(r)) {
        char d[256];
        snprintf(d, sizeof(d), "%s", mf_err_detail());
        MF_BAIL_MSG(MF_ERR_PROTO_SELECTOR, "selector '%s': %s", s, d[0] ? d : mf_err_str(r.err));
    }
    r = mf_selector_format(&sel, out, cap);
    mf_selector_cleanup(&sel);
    return r;
}

/* federates_with: trust domain IDs (spiffe://<td>, no path) of foreign
 * trust domains, made canonical, sorted, each once. */
static mf_res fed_check(const char *td, struct ca_entry *e)
{
    MF_ENSURE_MSG(e->n_fed <= CA_FED_MAX, MF_ERR_USAGE_ARG,
                  "an entry federates with at most %d trust domains", CA_FED_MAX);
    for (size_t i = 0; i < e->n_fed; i++) {
        struct mf_spiffe_id id;
        char ftd[MF_TD_MAX + 1];
        mf_res r = mf_spiffeid_parse_cstr(e->federates_with[i], &id);
        MF_ENSURE_MSG(mf_ok(r) && mf_spiffeid_path(&id)[0] == '\0', MF_ERR_USAGE_ARG,
                      "--federates-with '%s' must be a trust domain ID such as "
                      "spiffe://example.org",
                      e->federates_with[i]);
        mf_spiffeid_td(&id, ftd);
        MF_ENSURE_MSG(strcmp(ftd, td) != 0, MF_ERR_USAGE_ARG,
                      "--federates-with %s is this CA's own trust domain", e->federates_with[i]);
        char *c = strdup(id.str);
        MF_TRY_PTR(c, MF_ERR_NOMEM);
        free(e->federates_with[i]);
        e->federates_with[i] = c;
    }
    if (e->n_fed > 1) {
        qsort(e->federates_with, e->n_fed, sizeof(char *), cmp_str);
    }
    for (size_t i = 1; i < e->n_fed; i++) {
        MF_ENSURE_MSG(strcmp(e->federates_with[i - 1], e->federates_with[i]) != 0, MF_ERR_USAGE_ARG,
                      "trust domain %s is given twice", e->federates_with[i]);
    }
    return MF_RES_OK;
}

mf_res ca_policy_entry_check(const char *td, int64_t max_ttl, struct ca_entry *e)
{
    MF_ENSURE_REF(td);
    MF_ENSURE_REF(e);
    struct mf_spiffe_id id, parent;
    MF_TRY(parse_in_td(td, "SPIFFE ID", e->spiffe_id, &id));
    MF_ENSURE_MSG(strncmp(mf_spiffeid_path(&id), CA_RESERVED_PATH, strlen(CA_RESERVED_PATH)) != 0,
                  MF_ERR_POLICY_DENIED,
                  "SPIFFE ID '%s' is under the reserved path " CA_RESERVED_PATH, e->spiffe_id);
    MF_TRY(parse_in_td(td, "parent ID", e->parent_id, &parent));
    MF_ENSURE_MSG(ca_policy_is_agent_id(&parent, td), MF_ERR_USAGE_ARG,
                  "parent ID '%s' must be an agent ID spiffe://%s" CA_AGENT_PATH "<name>",
                  e->parent_id, td);

    MF_ENSURE_MSG(e->n_selectors > 0, MF_ERR_PROTO_SELECTOR,
                  "an entry needs at least one selector");
    MF_ENSURE_MSG(e->n_selectors <= MF_SELECTORS_MAX, MF_ERR_PROTO_SELECTOR,
                  "an entry has at most %d selectors", MF_SELECTORS_MAX);
    for (size_t i = 0; i < e->n_selectors; i++) {
        char canon[MF_SELECTOR_STR_MAX];
        MF_TRY(ca_policy_selector_canon(e->selectors[i], canon, sizeof(canon)));
        char *c = strdup(canon);
        MF_TRY_PTR(c, MF_ERR_NOMEM);
        free(e->selectors[i]);
        e->selectors[i] = c;
    }
    qsort(e->selectors, e->n_selectors, sizeof(char *), cmp_str);
    for (size_t i = 1; i < e->n_selectors; i++) {
        MF_ENSURE_MSG(strcmp(e->selectors[i - 1], e->selectors[i]) != 0, MF_ERR_PROTO_SELECTOR,
                      "selector '%s' is given twice", e->selectors[i]);
    }
    MF_TRY(exe_needs_ids(e));
    MF_ENSURE_MSG(e->ttl >= 0 && e->ttl <= max_ttl, MF_ERR_USAGE_ARG,
                  "ttl %lld s is out of range: at most %lld s (1/6 of the CA key lifetime)",
                  (long long)e->ttl, (long long)max_ttl);
    MF_ENSURE_MSG(e->n_dns <= CA_DNS_MAX, MF_ERR_USAGE_ARG, "at most %d DNS names", CA_DNS_MAX);
    for (size_t i = 0; i < e->n_dns; i++) {
        MF_ENSURE_MSG(e->dns_names[i] != NULL && dns_name_ok(e->dns_names[i]), MF_ERR_USAGE_ARG,
                      "DNS name '%s' is not a valid host name",
                      e->dns_names[i] ? e->dns_names[i] : "");
    }
    if (e->hint != NULL) {
        size_t n = strlen(e->hint);
        MF_ENSURE_MSG(n <= CA_HINT_MAX, MF_ERR_USAGE_ARG, "hint is longer than %d bytes",
                      CA_HINT_MAX);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)e->hint[i];
            MF_ENSURE_MSG(c >= 0x20 && c < 0x7f, MF_ERR_USAGE_ARG, "hint must be printable ASCII");
        }
    }
    return fed_check(td, e);
}

mf_res ca_policy_agent_access(const struct ca_agent *a, const char *agent_id)
{
    MF_ENSURE_MSG(a != NULL, MF_ERR_AUTH_BANNED, "agent %s is not attested (evicted or unknown)",
                  agent_id ? agent_id : "?");
    MF_ENSURE_MSG(!a->banned, MF_ERR_AUTH_BANNED, "agent %s is banned", a->spiffe_id);
    return MF_RES_OK;
}

mf_res ca_policy_attest_csr(const char *token_agent_id, const struct mf_spiffe_id *csr_id)
{
    MF_ENSURE_REF(token_agent_id);
    if (csr_id != NULL) {
        MF_ENSURE_MSG(strcmp(csr_id->str, token_agent_id) == 0, MF_ERR_POLICY_DENIED,
                      "CSR asks for %s but the join token is for %s", csr_id->str, token_agent_id);
    }
    return MF_RES_OK;
}

mf_res ca_policy_renew_csr(const char *agent_id, const struct mf_spiffe_id *csr_id)
{
    MF_ENSURE_REF(agent_id);
    if (csr_id != NULL) {
        MF_ENSURE_MSG(strcmp(csr_id->str, agent_id) == 0, MF_ERR_POLICY_DENIED,
                      "CSR asks for %s but the caller is %s", csr_id->str, agent_id);
    }
    return MF_RES_OK;
}

mf_res ca_policy_sign(const char *agent_id, const struct ca_entry *e,
                      const struct mf_spiffe_id *csr_id)
{
    MF_ENSURE_REF(agent_id);
    MF_ENSURE_REF(e);
    MF_ENSURE_MSG(e->parent_id != NULL && strcmp(e->parent_id, agent_id) == 0,
                  MF_ERR_POLICY_NOT_PARENT, "agent %s is not the parent of entry %s", agent_id,
                  e->id);
    MF_ENSURE_MSG(csr_id != NULL, MF_ERR_POLICY_DENIED, "CSR has no URI SAN; it must carry %s",
                  e->spiffe_id);
    MF_ENSURE_MSG(strcmp(csr_id->str, e->spiffe_id) == 0, MF_ERR_POLICY_DENIED,
                  "CSR asks for %s but entry %s is for %s", csr_id->str, e->id, e->spiffe_id);
    return MF_RES_OK;
}

mf_res ca_policy_match_parse(const char *s, enum ca_match *out)
{
    static const char *const names[] = {"superset", "exact", "subset", "any"};
    MF_ENSURE_REF(s);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum ca_match)i;
            return MF_RES_OK;
        }
    }
    return MF_RAISE_MSG(MF_ERR_USAGE_ARG, "match '%s' must be exact, subset, superset or any", s);
}

static bool has_selector(const struct ca_entry *e, const char *s)
{
    for (size_t i = 0; i < e->n_selectors; i++) {
        if (strcmp(e->selectors[i], s) == 0) {
            return true;
        }
    }
    return false;
}

bool ca_policy_entry_matches(const struct ca_entry *e, const struct ca_entry_filter *f)
{
    if (f->spiffe_id != NULL && strcmp(e->spiffe_id, f->spiffe_id) != 0) {
        return false;
    }
    if (f->parent_id != NULL && strcmp(e->parent_id, f->parent_id) != 0) {
        return false;
    }
    if (f->n_selectors == 0) {
        return true;
    }
    /* Both lists are canonical and free of repeats, so counting the given
     * selectors the entry holds decides every mode. */
    size_t common = 0;
    for (size_t i = 0; i < f->n_selectors; i++) {
        common += has_selector(e, f->selectors[i]) ? 1 : 0;
    }
    switch (f->match) {
    case CA_MATCH_EXACT:
        return common == f->n_selectors && common == e->n_selectors;
    case CA_MATCH_SUBSET:
        return common == e->n_selectors;
    case CA_MATCH_ANY:
        return common > 0;
    case CA_MATCH_SUPERSET:
    default:
        return common == f->n_selectors;
    }
}

int64_t ca_policy_entry_ttl(const struct ca_entry *e, int64_t default_ttl)
{
    return (e != NULL && e->ttl > 0) ? e->ttl : default_ttl;
}

const char *ca_policy_reason(mf_res r)
{
    switch (r.err) {
    case MF_OK:
        return "ok";
    case MF_ERR_POLICY_NOT_PARENT:
        return "not_parent";
    case MF_ERR_POLICY_NOT_FOUND:
        return "no_entry";
    case MF_ERR_POLICY_DENIED:
        return "denied";
    case MF_ERR_POLICY_LIMIT:
        return "limit";
    case MF_ERR_AUTH_BANNED:
        return "banned_or_evicted";
    case MF_ERR_AUTH_TOKEN:
        return "bad_token";
    case MF_ERR_AUTH_UNTRUSTED:
    case MF_ERR_AUTH_EXPIRED:
    case MF_ERR_AUTH_MISSING:
    case MF_ERR_AUTH_SVID:
        return "unauthenticated";
    default:
        switch (mf_err_category(r.err)) {
        case MF_CAT_PROTO:
            return "bad_request";
        case MF_CAT_CRYPTO:
            return "bad_csr";
        default:
            return "error";
        }
    }
}
