#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The SP build of wolfSSL (scripts/build-wolfssl-sp.sh) adds options to
# Debian's (SP code, and on x86_64 AES-NI and AVX2 code), yet a binary
# built against one must run on the other: `make WOLFSSL=system` and the
# benchmark's other-library rows swap the library under a finished binary.
#   1. every wolfSSL struct that mayfly's own code holds by value or
#      allocates with sizeof (ecc_key, WC_RNG, DecodedCert,
#      WOLFSSL_ALERT_HISTORY, WOLFSSL_BUFFER_INFO) has the same size and
#      alignment under both sets of headers;
#   2. on x86_64 the SP build carries the AES-NI and AVX2 options and code
#      (AES-GCM for every TLS client of mayfly's, SHA-256 for signatures);
#   3. a program built against Debian's headers, run on the SP library,
#      signs and verifies a P-256 signature, with the same results as on
#      Debian's library.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
make_tmp
sp=$(scripts/build-wolfssl-sp.sh --prefix)
[ -f "$sp/.mayfly-built" ] || skip "no SP build of wolfSSL in $sp (scripts/install-deps.sh)"
[ -f /usr/include/wolfssl/options.h ] || skip "no Debian wolfSSL headers (libwolfssl-dev)"

cat >"$T/layout.c" <<'EOF'
#include <stdio.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#define SHOW(t) printf("%s %zu %zu\n", #t, sizeof(t), _Alignof(t))
int main(void)
{
    SHOW(ecc_key);
    SHOW(WC_RNG);
    SHOW(struct DecodedCert);
    SHOW(WOLFSSL_ALERT_HISTORY);
    SHOW(WOLFSSL_BUFFER_INFO);
    return 0;
}
EOF
# 1. the same layout under both sets of headers
cc -std=c11 -I"$sp/include" "$T/layout.c" -o "$T/layout-sp" || die "layout.c does not build on $sp"
cc -std=c11 "$T/layout.c" -o "$T/layout-deb" || die "layout.c does not build on Debian's headers"
"$T/layout-sp" >"$T/sp.txt"
"$T/layout-deb" >"$T/deb.txt"
[ "$(wc -l <"$T/sp.txt")" = 5 ] || die "layout: $(cat "$T/sp.txt")"
diff "$T/deb.txt" "$T/sp.txt" >"$T/diff.txt" ||
    die "struct layouts differ between Debian's headers and $sp (size, alignment): $(cat "$T/diff.txt")"

# 2. the x86_64 speed-ups are in
if [ "$(uname -m)" = x86_64 ]; then
    for opt in WOLFSSL_AESNI USE_INTEL_SPEEDUP WOLFSSL_SP_X86_64_ASM; do
        grep -q "^#define $opt\$" "$sp/include/wolfssl/options.h" || die "$opt is not in $sp's options.h"
    done
    syms=$(nm "$sp/lib/libwolfssl.a" 2>/dev/null)
    for s in AES_GCM_encrypt_avx2 AES_GCM_decrypt_avx2 Transform_Sha256_AVX2; do
        grep -q " T $s\$" <<<"$syms" || die "$s is not in $sp/lib/libwolfssl.a"
    done
fi

# 3. built against Debian's headers, run on either library: a new P-256 key
# signs a SHA-256 digest, the signature verifies and a flipped bit does
# not, the key exports; the digests printed by the two runs are equal
cat >"$T/sig.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>
int main(void)
{
    ecc_key key;
    WC_RNG rng;
    byte hash[WC_SHA256_DIGEST_SIZE], sig[ECC_MAX_SIG_SIZE], pub[65];
    word32 sig_len = sizeof(sig), pub_len = sizeof(pub);
    int ok = 0;
    if (wc_InitRng(&rng) != 0 || wc_ecc_init(&key) != 0)
        return 1;
    if (wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1) != 0)
        return 2;
    if (wc_Sha256Hash((const byte *)"mayfly", 6, hash) != 0)
        return 3;
    if (wc_ecc_sign_hash(hash, sizeof(hash), sig, &sig_len, &rng, &key) != 0)
        return 4;
    if (wc_ecc_verify_hash(sig, sig_len, hash, sizeof(hash), &ok, &key) != 0 || ok != 1)
        return 5;
    sig[sig_len / 2] ^= 1;
    if (wc_ecc_verify_hash(sig, sig_len, hash, sizeof(hash), &ok, &key) == 0 && ok == 1)
        return 6;
    if (wc_ecc_export_x963(&key, pub, &pub_len) != 0 || pub_len != 65)
        return 7;
    for (size_t i = 0; i < sizeof(hash); i++)
        printf("%02x", hash[i]);
    printf("\n");
    wc_ecc_free(&key);
    wc_FreeRng(&rng);
    return 0;
}
EOF
# shellcheck disable=SC2046 # pkg-config output is a list of flags
cc -std=c11 "$T/sig.c" -o "$T/sig" $(env -u PKG_CONFIG_PATH pkg-config --libs wolfssl) ||
    die "sig.c does not build on Debian's wolfSSL"
deb=$("$T/sig") || die "on Debian's wolfSSL: exit status $?"
on_sp=$(LD_LIBRARY_PATH="$sp/lib" "$T/sig") || die "on $sp/lib: exit status $?"
[ "$deb" = "$on_sp" ] || die "SHA-256 differs: Debian $deb, SP $on_sp"
# (ldd's output is read whole first: with pipefail, grep -q quitting early
# could fail the pipeline through ldd's SIGPIPE)
deps=$(LD_LIBRARY_PATH="$sp/lib" ldd "$T/sig")
grep -qF "$sp/lib/libwolfssl" <<<"$deps" || die "the SP run did not load $sp/lib: $deps"

echo "ok: same struct layouts on Debian's and the SP wolfSSL headers; x86_64 speed-ups in; a Debian-built program signs and verifies on both"
