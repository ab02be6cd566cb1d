/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_text: the small text encodings every layer needs, written once: hex
 * and percent-encoding.
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * Nothing here allocates; the mf_buf forms append to a caller's capped
 * buffer, and the array forms never write past cap and always leave a NUL.
 */
#ifndef MF_TEXT_H
#define MF_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void mf_hex(const uint8_t *in, size_t n, char *out);

/* The two lowercase hex digits of b into out[0..1] (no NUL). */
void mf_hex_byte(uint8_t b, char out[2]);

/* The value of one hex digit (either case), or -1 when c is not one. */
int mf_hex_value(char c);

/* Which bytes percent-encoding leaves as they are; every other byte
 * becomes "%XX" with upper-case hex (RFC 3986 section 2.1). */
enum mf_pct_set {
    /* RFC 3986 2.3 unreserved: ALPHA, DIGIT, '-', '.', '_', '~'. For a
     * query value or a path segment. */
    MF_PCT_UNRESERVED = 0,
    /* gRPC's grpc-message header: printable ASCII 0x20-0x7e except '%'. */
    MF_PCT_GRPC = 1,
};

/* Appends s (NUL-terminated) percent-encoded to out. Fails only when out's
 * cap is reached (out may then hold a prefix). */
MF_WUR mf_res mf_pct_append(struct mf_buf *out, const char *s, enum mf_pct_set set);

/* Percent-encodes s into out (cap bytes, cap >= 1): as much of s as fits
 * in whole escapes, then a NUL. Returns false when s was cut short. */
bool mf_pct_encode(const char *s, enum mf_pct_set set, char *out, size_t cap);

#endif /* MF_TEXT_H */
