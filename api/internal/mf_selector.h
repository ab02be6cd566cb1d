/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_selector: workload selectors, written "type:key:value" as SPIRE does,
 * e.g. "unix:uid:1000", "unix:path:/usr/bin/curl".
 *
 * Only the unix selectors of DESIGN.md exist; any other type or key is
 * refused (MF_ERR_PROTO_SELECTOR) with a detail that names it. Values are
 * validated per key:
 *   unix:uid, unix:gid, unix:supplementary_gid  decimal, no sign or leading
 *                                               zeros, <= 4294967294
 *   unix:user, unix:group    a POSIX-portable name: [A-Za-z0-9._-], 1-32
 *                            bytes, not starting with '-'
 *   unix:path                absolute path, no NUL, no "//", "/./", "/../"
 *                            (nor a final "/." or "/.."), at most 4096 bytes
 *   unix:sha256              64 lowercase hex digits
 * Canonical text form is the same "type:key:value" string.
 *
 * An entry matches a workload when every one of its selectors is among the
 * selectors discovered for the workload (mf_selectors_match).
 */
#ifndef MF_SELECTOR_H
#define MF_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "api/core/mf_err.h"

#define MF_SELECTOR_VALUE_MAX 4096
#define MF_SELECTOR_STR_MAX   (MF_SELECTOR_VALUE_MAX + 32)
#define MF_SELECTORS_MAX      32 /* per registration entry */

enum mf_sel_kind {
    MF_SEL_UNIX_UID = 0,
    MF_SEL_UNIX_USER,
    MF_SEL_UNIX_GID,
    MF_SEL_UNIX_GROUP,
    MF_SEL_UNIX_SUPPLEMENTARY_GID,
    MF_SEL_UNIX_PATH,
    MF_SEL_UNIX_SHA256,
};

/* value is heap-allocated and owned by the selector: release it with
 * mf_selector_cleanup(). A zeroed struct is a valid empty selector. */
struct mf_selector {
    enum mf_sel_kind kind;
    char *value;      /* NUL-terminated */
    size_t value_len; /* strlen(value) */
};

void mf_selector_cleanup(struct mf_selector *sel);
/* Cleans up n selectors and frees the array itself; (NULL, 0) is a no-op. */
void mf_selectors_free(struct mf_selector *sels, size_t n);

/* Deep copy; dst is filled only on success. */
MF_WUR mf_res mf_selector_copy(const struct mf_selector *src, struct mf_selector *dst);

/* Parses len bytes at s ("unix:uid:1000"). out is filled only on success. */
MF_WUR mf_res mf_selector_parse(const char *s, size_t len, struct mf_selector *out);

/* Builds a selector from a kind and a value, validating the value. */
MF_WUR mf_res mf_selector_make(enum mf_sel_kind kind, const char *value, struct mf_selector *out);

/* Writes the canonical "type:key:value" text into out (cap bytes, at least
 * MF_SELECTOR_STR_MAX is always enough). A smaller buffer that cannot hold
 * it is MF_ERR_USAGE_ARG and leaves out as ""; a selector with no value is
 * MF_ERR_STATE. */
MF_WUR mf_res mf_selector_format(const struct mf_selector *sel, char *out, size_t cap);

/* "unix:uid" for MF_SEL_UNIX_UID, etc. */
const char *mf_selector_kind_name(enum mf_sel_kind kind);

/* Total order (kind, then value bytes); 0 when equal. */
int mf_selector_cmp(const struct mf_selector *a, const struct mf_selector *b);

/* True when each of the n_want selectors is in have[0..n_have). An empty
 * want set never matches (an entry must have at least one selector). */
bool mf_selectors_match(const struct mf_selector *want, size_t n_want,
                        const struct mf_selector *have, size_t n_have);

#endif /* MF_SELECTOR_H */
