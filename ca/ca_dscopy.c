/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_dscopy: `mayfly-ca datastore copy`, the way out of SQLite: every row
 * of one registry copied into a new, empty one (ca_store_copy), with the
 * CA stopped. It opens both stores itself; nothing goes through the admin
 * socket, since the CA must not write meanwhile.
 */
#include "ca/ca_dscopy.h"

#include <stdio.h>
#include <string.h>

#include "api/core/mf_mem.h"
#include "ca/ca_config.h"
#include "ca/ca_store.h"

static int fail(const char *what, mf_res r)
{
    char msg[512];
    mf_err_format(r, msg, sizeof(msg));
    fprintf(stderr, "mayfly-ca: %s: %s\n", what, msg);
    return r.err == MF_ERR_USAGE_ARG ? 2 : 1;
}

/* Reads --to or --to-file into cfg->datastore, with the checks of the run
 * options (no password on the command line, a 0600 file). */
static mf_res destination(const struct mf_opt_vals *v, struct ca_config *cfg)
{
    const char *to = mf_opt_get(v, "to");
    const char *to_file = mf_opt_get(v, "to-file");
    MF_ENSURE_MSG((to != NULL) != (to_file != NULL), MF_ERR_USAGE_ARG,
                  "give exactly one of --to and --to-file");
    return to != NULL ? ca_config_set(cfg, "datastore", to)
                      : ca_config_set(cfg, "datastore_file", to_file);
}

/* see ca_dscopy.h */
int ca_datastore_copy_main(const struct mf_opt_vals *v)
{
    struct ca_config src_cfg, dst_cfg;
    struct ca_store *src = NULL, *dst = NULL;
    int rc = 1;
    ca_config_defaults(&src_cfg);
    ca_config_defaults(&dst_cfg);
    const char *dir = mf_opt_get(v, "data-dir");
    const char *from = mf_opt_get(v, "from");
    mf_res r = from != NULL ? ca_config_set(&src_cfg, "datastore", from) : MF_RES_OK;
    if (!mf_ok(r)) {
        rc = fail("--from", r);
        goto out;
    }
    r = destination(v, &dst_cfg);
    if (!mf_ok(r)) {
        rc = fail("destination", r);
        goto out;
    }
    r = ca_store_open_ds(dir, src_cfg.datastore, &src);
    if (!mf_ok(r)) {
        rc = fail("cannot open the source registry", r);
        goto out;
    }
    r = ca_store_open_ds(dir, dst_cfg.datastore, &dst);
    if (!mf_ok(r)) {
        rc = fail("cannot open the destination registry", r);
        goto out;
    }
    uint64_t counts[CA_STORE_TABLES] = {0};
    r = ca_store_copy(src, dst, counts);
    if (!mf_ok(r)) {
        rc = fail("copy refused, nothing written", r);
        goto out;
    }
    printf("copied");
    for (size_t i = 0; i < CA_STORE_TABLES; i++) {
        printf(" %s=%llu", ca_store_table_name(i), (unsigned long long)counts[i]);
    }
    printf("\n");
    rc = 0;
out:
    ca_store_close(src);
    ca_store_close(dst);
    ca_config_wipe(&src_cfg);
    ca_config_wipe(&dst_cfg);
    return rc;
}
