/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_spiffeid: SPIFFE IDs and trust domain names (SPIFFE.md section A).
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * A SPIFFE ID is "spiffe://" + trust domain + optional path of "/segment"s.
 * The parser never repairs input: uppercase in the scheme or trust domain,
 * percent-encoding, empty, "." or ".." segments, a trailing "/", a query or
 * fragment, a port or userinfo are all refused, each with its own error code
 * (see mf_err.h, MF_ERR_ID_*) and a detail naming the offending offset.
 * IDs are at most 2048 bytes and trust domains at most 255 bytes.
 *
 * Once parsed, equality of IDs is byte equality, and equality of trust
 * domains is byte equality of the host part.
 */
#ifndef MF_SPIFFEID_H
#define MF_SPIFFEID_H

#include <stdbool.h>
#include <stddef.h>

#include "api/core/mf_err.h"

#define MF_SPIFFE_ID_MAX     2048 /* bytes, including "spiffe://" (A13) */
#define MF_TD_MAX            255  /* bytes of trust domain name (A15) */
#define MF_SPIFFE_SCHEME     "spiffe://"
#define MF_SPIFFE_SCHEME_LEN 9

/* A validated SPIFFE ID. str is NUL-terminated; the trust domain is the
 * td_len bytes at str + MF_SPIFFE_SCHEME_LEN; the path (possibly empty)
 * starts at str + MF_SPIFFE_SCHEME_LEN + td_len. */
struct mf_spiffe_id {
    char str[MF_SPIFFE_ID_MAX + 1];
    size_t len;
    size_t td_len;
};

/* Parses and validates len bytes at s (need not be NUL-terminated; an
 * embedded NUL is refused). out is cleared first and filled only on
 * success. */
MF_WUR mf_res mf_spiffeid_parse(const char *s, size_t len, struct mf_spiffe_id *out);

/* Convenience for NUL-terminated strings. */
MF_WUR mf_res mf_spiffeid_parse_cstr(const char *s, struct mf_spiffe_id *out);

/* Validates a trust domain given either as a bare name ("example.org") or
 * as a trust domain ID ("spiffe://example.org", with no path). Writes the
 * bare name, NUL-terminated, to out. */
MF_WUR mf_res mf_td_parse(const char *s, size_t len, char out[MF_TD_MAX + 1]);

/* Builds and validates "spiffe://" + td + path; path is "" or starts with
 * "/". td is read as by mf_td_parse (bare name or trust domain ID). A path
 * that does not start with '/' is MF_ERR_ID_PATH_CHAR; a result over 2048
 * bytes is MF_ERR_ID_TOO_LONG (A14: never generated). */
MF_WUR mf_res mf_spiffeid_from_parts(const char *td, const char *path, struct mf_spiffe_id *out);

/* True when the ID has no path (it names a trust domain). */
bool mf_spiffeid_is_td(const struct mf_spiffe_id *id);

/* Copies the bare trust domain name of id into out. */
void mf_spiffeid_td(const struct mf_spiffe_id *id, char out[MF_TD_MAX + 1]);

/* The path part ("" when there is none). Borrowed from id. */
const char *mf_spiffeid_path(const struct mf_spiffe_id *id);

/* True when id belongs to trust domain td (bare name): exact byte equality,
 * never a suffix match. False for a zeroed ID or a NULL td. */
bool mf_spiffeid_member_of(const struct mf_spiffe_id *id, const char *td);

/* Byte equality. A zeroed (never successfully parsed) ID equals nothing, not
 * even another zeroed ID. */
bool mf_spiffeid_eq(const struct mf_spiffe_id *a, const struct mf_spiffe_id *b);

#endif /* MF_SPIFFEID_H */
