/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for the trust bundle decoders: the SPIFFE JWKS, the plain
 * JWT JWKS and the bundle map, all fed the same arbitrary bytes.
 *
 * Beyond "no crash, no leak, no UB", it checks one property: whatever a
 * decoder accepts, our encoder can write back, and decoding that text again
 * gives the same number of keys of each kind (and, for the map, the same
 * trust domains). A failure of that property aborts, so libFuzzer keeps the
 * input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_bundle.h"

#define FUZZ_TD "example.org"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, mf_res r)
{
    fprintf(stderr, "fuzz_bundle: %s: %s: %s\n", what, mf_err_name(r.err), mf_err_detail());
    abort();
}

static void same_counts(const struct mf_bundle *a, const struct mf_bundle *b, const char *what)
{
    if (a->x509.n != b->x509.n || a->n_jwt != b->n_jwt || !mf_bundle_same_keys(a, b)) {
        fprintf(stderr, "fuzz_bundle: %s: %zu/%zu keys became %zu/%zu\n", what, a->x509.n, a->n_jwt,
                b->x509.n, b->n_jwt);
        abort();
    }
}

typedef mf_res (*encode_fn)(const struct mf_bundle *, struct mf_buf *);
typedef mf_res (*decode_fn)(const char *, const char *, size_t, struct mf_bundle **);

static void bundle_round_trip(const uint8_t *data, size_t size, decode_fn dec, encode_fn enc,
                              const char *what)
{
    struct mf_bundle *first = NULL;
    if (!mf_ok(dec(FUZZ_TD, (const char *)data, size, &first))) {
        return;
    }
    struct mf_buf out;
    /* keys are deduplicated and capped, so the encoding stays well within
     * twice the input cap */
    mf_buf_init(&out, 2u * MF_MAX_BUNDLE, 0);
    mf_res r = enc(first, &out);
    if (!mf_ok(r)) {
        fail(what, r);
    }
    struct mf_bundle *second = NULL;
    r = dec(FUZZ_TD, (const char *)out.data, out.len, &second);
    if (!mf_ok(r)) {
        fail(what, r);
    }
    same_counts(first, second, what);
    if (enc == mf_bundle_to_jwks && second->sequence != first->sequence) {
        fprintf(stderr, "fuzz_bundle: sequence changed\n");
        abort();
    }
    mf_bundle_free(second);
    mf_bundle_free(first);
    mf_buf_cleanup(&out);
}

static void map_round_trip(const uint8_t *data, size_t size)
{
    struct mf_bundle_set first;
    if (!mf_ok(mf_bundle_set_from_map((const char *)data, size, &first))) {
        return;
    }
    struct mf_buf out;
    mf_buf_init(&out, 2u * MF_MAX_BUNDLE, 0);
    mf_res r = mf_bundle_set_to_map(&first, &out);
    if (!mf_ok(r)) {
        fail("map encode", r);
    }
    struct mf_bundle_set second;
    r = mf_bundle_set_from_map((const char *)out.data, out.len, &second);
    if (!mf_ok(r)) {
        fail("map decode", r);
    }
    if (first.n != second.n) {
        fprintf(stderr, "fuzz_bundle: map of %zu became %zu\n", first.n, second.n);
        abort();
    }
    for (size_t i = 0; i < first.n; i++) {
        const struct mf_bundle *b = mf_bundle_set_find(&second, first.v[i]->td);
        if (b == NULL) {
            fprintf(stderr, "fuzz_bundle: trust domain lost\n");
            abort();
        }
        same_counts(first.v[i], b, "map");
    }
    mf_bundle_set_cleanup(&second);
    mf_bundle_set_cleanup(&first);
    mf_buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bundle_round_trip(data, size, mf_bundle_from_jwks, mf_bundle_to_jwks, "jwks");
    bundle_round_trip(data, size, mf_bundle_from_jwt_jwks, mf_bundle_jwt_jwks, "jwt jwks");
    map_round_trip(data, size);
    return 0;
}
