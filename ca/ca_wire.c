/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_wire: JSON forms of entries, agents, certificate chains and bundles.
 */
#include "ca/ca_wire.h"

#include <stdlib.h>
#include <string.h>

#include "api/core/mf_json.h"
#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"
#include "api/internal/mf_selector.h"
#include "api/pki/mf_spiffeid.h"

static json_t *str_array(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

mf_res ca_entry_to_json(const struct ca_entry *e, json_t **out)
{
    MF_ENSURE_REF(e);
    *out = NULL;
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:o*,s:I,s:o*,s:s?,s:I}", "id", e->id, "spiffe_id", e->spiffe_id,
                  "parent_id", e->parent_id, "selectors", str_array(e->selectors, e->n_selectors),
                  "ttl", (json_int_t)e->ttl, "dns_names", str_array(e->dns_names, e->n_dns), "hint",
                  e->hint, "revision", (json_int_t)e->revision);
    MF_TRY_PTR(o, MF_ERR_NOMEM);
    /* only when set, so that entries without federation read as before */
    if (e->n_fed > 0 &&
        json_object_set_new(o, "federates_with", str_array(e->federates_with, e->n_fed)) != 0) {
        json_decref(o);
        MF_BAIL(MF_ERR_NOMEM);
    }
    *out = o;
    return MF_RES_OK;
}

mf_res ca_agent_to_json(const struct ca_agent *a, json_t **out)
{
    MF_ENSURE_REF(a);
    *out = NULL;
    char exp[MF_RFC3339_LEN], att[MF_RFC3339_LEN], seen[MF_RFC3339_LEN];
    mf_time_format(a->expires_at, exp);
    mf_time_format(a->attested_at, att);
    mf_time_format(a->last_seen, seen);
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "spiffe_id", a->spiffe_id, "serial", a->serial,
                  "expires_at", exp, "attested_at", att, "last_seen", seen, "banned", a->banned);
    MF_TRY_PTR(o, MF_ERR_NOMEM);
    *out = o;
    return MF_RES_OK;
}

mf_res ca_certs_to_json(const struct mf_certs *cs, json_t **out)
{
    mf_res rc;
    MF_ENSURE_REF(cs);
    *out = NULL;
    struct mf_buf b;
    mf_buf_init(&b, 2 * MF_MAX_CERT, 0);
    json_t *a = json_array();
    MF_ENSURE_OUT(a != NULL, MF_ERR_NOMEM);
    for (size_t i = 0; i < cs->n; i++) {
        size_t len = 0;
        const uint8_t *der = mf_cert_der(cs->v[i], &len);
        mf_buf_reset(&b);
        MF_TRY_OUT(mf_b64_encode(der, len, &b));
        MF_ENSURE_OUT(json_array_append_new(a, json_string(mf_buf_cstr(&b))) == 0, MF_ERR_NOMEM);
    }
    *out = a;
    a = NULL;
    rc = MF_RES_OK;
out:
    json_decref(a);
    mf_buf_cleanup(&b);
    return rc;
}

mf_res ca_bundle_to_json(const struct mf_bundle *bundle, json_t **out)
{
    mf_res rc;
    MF_ENSURE_REF(bundle);
    *out = NULL;
    struct mf_buf b;
    mf_buf_init(&b, MF_MAX_BUNDLE, 0);
    MF_TRY_OUT(mf_bundle_to_jwks(bundle, &b));
    json_error_t jerr;
    json_t *o = json_loadb((const char *)b.data, b.len, 0, &jerr);
    MF_ENSURE_OUT(o != NULL, MF_ERR_INTERNAL);
    *out = o;
    rc = MF_RES_OK;
out:
    mf_buf_cleanup(&b);
    return rc;
}

static mf_res strs_from_json(const json_t *arr, size_t max, size_t max_len, const char *what,
                             char ***out, size_t *n_out)
{
    size_t n = json_array_size(arr);
    MF_ENSURE_MSG(n <= max, MF_ERR_PROTO_JSON, "%s: at most %zu items", what, max);
    char **v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n) {
        MF_TRY_PTR(v, MF_ERR_NOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(arr, i);
        const char *s = json_string_value(it);
        size_t len = json_string_length(it);
        if (!json_is_string(it) || len > max_len || strlen(s) != len) {
            mf_strv_free(v, i);
            MF_BAIL_MSG(MF_ERR_PROTO_JSON, "%s[%zu] must be a string of at most %zu bytes", what, i,
                        max_len);
        }
        v[i] = strdup(s);
        if (v[i] == NULL) {
            mf_strv_free(v, i);
            MF_BAIL(MF_ERR_NOMEM);
        }
    }
    *out = v;
    *n_out = n;
    return MF_RES_OK;
}

/* The string array key of obj (at most max strings of max_len), when
 * present or required, in place of *v (n of them); adds bit to *mask
 * when present. */
static mf_res replace_strs(const json_t *obj, const char *key, bool required, size_t max,
                           size_t max_len, char ***v, size_t *n, unsigned bit, unsigned *mask)
{
    const json_t *arr = NULL;
    MF_TRY(mf_json_array(obj, key, required, max, &arr));
    if (arr != NULL) {
        char **nv = NULL;
        size_t nn = 0;
        MF_TRY(strs_from_json(arr, max, max_len, key, &nv, &nn));
        mf_strv_free(*v, *n);
        *v = nv;
        *n = nn;
        *mask |= bit;
    }
    return MF_RES_OK;
}

mf_res ca_entry_from_json(const json_t *obj, bool patch, struct ca_entry *e, unsigned *set_mask)
{
    MF_ENSURE_REF(obj);
    MF_ENSURE_REF(e);
    static const char *const create_keys[] = {"spiffe_id", "parent_id",      "selectors", "ttl",
                                              "dns_names", "federates_with", "hint",      NULL};
    static const char *const patch_keys[] = {"selectors",      "ttl",  "dns_names",
                                             "federates_with", "hint", NULL};
    MF_TRY(mf_json_only_keys(obj, patch ? patch_keys : create_keys));
    unsigned mask = 0;
    if (!patch) {
        const char *sid = NULL, *pid = NULL;
        MF_TRY(mf_json_str(obj, "spiffe_id", true, MF_SPIFFE_ID_MAX, &sid));
        MF_TRY(mf_json_str(obj, "parent_id", true, MF_SPIFFE_ID_MAX, &pid));
        free(e->spiffe_id);
        free(e->parent_id);
        e->spiffe_id = strdup(sid);
        e->parent_id = strdup(pid);
        MF_ENSURE(e->spiffe_id != NULL && e->parent_id != NULL, MF_ERR_NOMEM);
    }
    MF_TRY(replace_strs(obj, "selectors", !patch, MF_SELECTORS_MAX, MF_SELECTOR_STR_MAX,
                        &e->selectors, &e->n_selectors, 1, &mask));
    if (json_object_get(obj, "ttl") != NULL) {
        int64_t ttl = 0;
        MF_TRY(mf_json_int(obj, "ttl", true, 0, INT32_MAX, &ttl));
        e->ttl = ttl;
        mask |= 2;
    }
    MF_TRY(replace_strs(obj, "dns_names", false, CA_DNS_MAX, CA_DNS_NAME_MAX, &e->dns_names,
                        &e->n_dns, 4, &mask));
    MF_TRY(replace_strs(obj, "federates_with", false, CA_FED_MAX, MF_SPIFFE_ID_MAX,
                        &e->federates_with, &e->n_fed, 16, &mask));
    if (json_object_get(obj, "hint") != NULL) {
        const char *hint = NULL;
        MF_TRY(mf_json_str(obj, "hint", false, CA_HINT_MAX, &hint));
        free(e->hint);
        e->hint = NULL;
        if (hint != NULL && hint[0] != '\0') {
            e->hint = strdup(hint);
            MF_TRY_PTR(e->hint, MF_ERR_NOMEM);
        }
        mask |= 8;
    }
    if (set_mask != NULL) {
        *set_mask = mask;
    }
    return MF_RES_OK;
}
