/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_json: strict JSON for untrusted input, on top of jansson.
 * Internal: used inside libmayfly and by the daemons; not installed, and not
 * for workloads to include.
 *
 * mf_json_parse checks the size first, then decodes with
 * JSON_REJECT_DUPLICATES and requires an object at the top. The typed
 * getters refuse wrong types and out-of-range values, and mf_json_only_keys
 * refuses unknown members: input is rejected, never repaired. Errors are
 * MF_ERR_PROTO_JSON (or _TOO_LARGE) with a detail naming the member.
 *
 * jansson values are not thread-safe: never share one between threads.
 */
#ifndef MF_JSON_H
#define MF_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"

/* Decodes len bytes (need not be NUL-terminated) into a new object; *out is
 * NULL on failure. max is the size cap checked before parsing. */
MF_WUR mf_res mf_json_parse(const char *buf, size_t len, size_t max, json_t **out);
/* The same, accepting any top-level value (array, string...). */
MF_WUR mf_res mf_json_parse_any(const char *buf, size_t len, size_t max, json_t **out);

/* Refuses any member of obj not listed in allowed (a NULL-terminated list). */
MF_WUR mf_res mf_json_only_keys(const json_t *obj, const char *const *allowed);

/* Typed getters. With required false, an absent member (or JSON null) sets
 * *out to NULL / leaves the default in *out and succeeds. Strings are
 * refused when longer than max bytes or when they contain a NUL. */
MF_WUR mf_res mf_json_str(const json_t *obj, const char *key, bool required, size_t max,
                          const char **out);
MF_WUR mf_res mf_json_int(const json_t *obj, const char *key, bool required, int64_t min,
                          int64_t max, int64_t *out);
MF_WUR mf_res mf_json_bool(const json_t *obj, const char *key, bool required, bool *out);
/* An array of at most max_items; *out borrowed from obj. */
MF_WUR mf_res mf_json_array(const json_t *obj, const char *key, bool required, size_t max_items,
                            const json_t **out);
MF_WUR mf_res mf_json_object(const json_t *obj, const char *key, bool required, const json_t **out);

/* Compact encoding of v appended to out (JSON_COMPACT | JSON_SORT_KEYS
 * off, insertion order kept). */
MF_WUR mf_res mf_json_dump(const json_t *v, struct mf_buf *out);

/* Appends s as a JSON string (quoted; '"', '\\' and control characters
 * escaped, everything else copied as is): for answers written straight
 * into a buffer rather than built as jansson values. s must be valid
 * UTF-8; what the daemons write this way is. */
MF_WUR mf_res mf_json_put_str(struct mf_buf *out, const char *s);

#endif /* MF_JSON_H */
