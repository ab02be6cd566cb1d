/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness for mf_jwt_validate, in two modes chosen by the first
 * byte of the input:
 *   'S' + claims text: the harness signs the claims itself (header ES256,
 *       kid "k1", its own key, which the bundle trusts), so the fuzzer
 *       reaches what comes after the signature: sub, aud, exp, nbf, iat
 *       and any other claim, however malformed;
 *   anything else: the bytes are a token as a workload would send it.
 * Beyond "no crash, no leak, no UB", it checks what validation promises: a
 * refused token leaves the output cleared and its detail printable; an
 * accepted one has a SPIFFE ID in example.org as sub, the audience "svc"
 * among 1..MF_JWT_AUD_MAX audiences, an exp not past the leeway at the
 * fixed "now", the alg ES256 and kid "k1" (only that key can verify).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/mf_err.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_jwt.h"
#include "api/pki/mf_x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1800000000

#define CHECK(c)                                   \
    do {                                           \
        if (!(c)) {                                \
            fprintf(stderr, "fuzz_jwt: %s\n", #c); \
            abort();                               \
        }                                          \
    } while (0)

static struct mf_key *key;
static struct mf_bundle_set set;

static void init_once(void)
{
    struct mf_bundle *b = NULL;
    struct mf_pubkey *pk = NULL;
    if (key != NULL) {
        return;
    }
    CHECK(mf_ok(mf_key_generate(MF_KEY_EC_P256, &key)));
    CHECK(mf_ok(mf_bundle_new("example.org", &b)));
    CHECK(mf_ok(mf_key_public(key, &pk)));
    CHECK(mf_ok(mf_bundle_add_jwt(b, "k1", pk)));
    mf_bundle_set_init(&set);
    CHECK(mf_ok(mf_bundle_set_put(&set, b)));
    mf_bundle_free(b);
}

/* A token over the given claims bytes, signed by the trusted key. */
static void sign_claims(const uint8_t *claims, size_t n, struct mf_buf *out)
{
    static const char hdr[] = "{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"JWT\"}";
    struct mf_buf sig;
    mf_buf_init(&sig, 256, 0);
    CHECK(mf_ok(mf_b64url_encode((const uint8_t *)hdr, sizeof(hdr) - 1, out)));
    CHECK(mf_ok(mf_buf_append_u8(out, '.')));
    CHECK(mf_ok(mf_b64url_encode(claims, n, out)));
    CHECK(mf_ok(mf_key_sign_jose(key, out->data, out->len, &sig)));
    CHECK(mf_ok(mf_buf_append_u8(out, '.')));
    CHECK(mf_ok(mf_b64url_encode(sig.data, sig.len, out)));
    mf_buf_cleanup(&sig);
}

static void validate(const char *tok, size_t len)
{
    struct mf_jwt j;
    mf_res r = mf_jwt_validate(tok, len, &set, "svc", NOW, &j);
    if (!mf_ok(r)) {
        CHECK(j.claims == NULL && j.aud == NULL && j.n_aud == 0 && j.sub.len == 0);
        for (const char *p = mf_err_detail(); *p != '\0'; p++) {
            CHECK(*p >= 0x20 && *p < 0x7f);
        }
        return;
    }
    CHECK(mf_spiffeid_member_of(&j.sub, "example.org"));
    CHECK(j.n_aud >= 1 && j.n_aud <= MF_JWT_AUD_MAX);
    const char *svc[] = {"svc"};
    bool found = false;
    for (size_t i = 0; i < j.n_aud; i++) {
        found = found || strcmp(j.aud[i], "svc") == 0;
    }
    CHECK(found);
    CHECK(j.n_aud != 1 || mf_jwt_aud_equal(&j, svc, 1));
    CHECK(j.exp > NOW - MF_JWT_LEEWAY);
    CHECK(strcmp(j.alg, "ES256") == 0);
    CHECK(j.kid[0] == '\0' || strcmp(j.kid, "k1") == 0);
    CHECK(json_is_object(j.claims));
    mf_jwt_cleanup(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size > 0 && data[0] == 'S') {
        if (size - 1 > MF_JWT_MAX / 2) {
            return 0;
        }
        struct mf_buf tok;
        mf_buf_init(&tok, 2 * MF_JWT_MAX, 0);
        sign_claims(data + 1, size - 1, &tok);
        validate(mf_buf_cstr(&tok), tok.len);
        mf_buf_cleanup(&tok);
        return 0;
    }
    validate((const char *)data, size);
    return 0;
}
