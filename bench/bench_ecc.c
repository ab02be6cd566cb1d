/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_ecc: the crypto floor itself, P-256 operations per second straight
 * from wolfCrypt (no libmayfly), so that the same source can be built
 * against Debian's wolfSSL and against the SP build of
 * scripts/build-wolfssl-sp.sh and run side by side.
 *
 *   bench_ecc [--threads N] [--seconds S]
 *
 * prints one line per operation:
 *   ecc op=<keygen|sign|verify|verify+sign> threads=N per_s=X version=<wolfSSL version>
 * (the same binary runs on either build of wolfSSL through LD_LIBRARY_PATH:
 * the caller's tags say which)
 * where verify+sign is one ECDSA verification plus one signature, the
 * public-key work a CA does per CSR (proof of possession, then the leaf).
 *
 * Verification rotates over POOL distinct keys, as a CA sees a new public
 * key in every CSR: Debian's wolfSSL is built with FP_ECC, which caches
 * precomputed tables for points it meets repeatedly, so verifying with one
 * key over and over would measure a cache a CA never hits. Signing uses one
 * key, as the CA does (the base point's table is cached either way).
 *
 * This is the only program in mayfly that includes wolfSSL headers outside
 * api/: measuring wolfCrypt without our wrappers is its purpose.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "bench/bench_util.h"

#define POOL 64 /* more than FP_ECC's cache entries (FP_ENTRIES, 15) */

enum op { OP_KEYGEN, OP_SIGN, OP_VERIFY, OP_BOTH, OP_N };
static const char *const op_names[OP_N] = {"keygen", "sign", "verify", "verify+sign"};

struct job {
    enum op op;
    int64_t deadline_ns;
    uint64_t done;
    int err;
    pthread_t th;
};

static void *run(void *arg)
{
    struct job *j = arg;
    WC_RNG rng;
    ecc_key *keys = calloc(POOL, sizeof(*keys)), tmp;
    byte hash[32], (*sigs)[ECC_MAX_SIG_SIZE] = calloc(POOL, ECC_MAX_SIG_SIZE);
    word32 slens[POOL];
    int ok = 0, n_keys = 0;
    size_t next = 0;
    if (keys == NULL || sigs == NULL || wc_InitRng(&rng) != 0) {
        free(keys);
        free(sigs);
        j->err = 1;
        return NULL;
    }
    if (wc_RNG_GenerateBlock(&rng, hash, sizeof(hash)) != 0) {
        j->err = 1;
        goto out;
    }
    for (; n_keys < POOL; n_keys++) {
        slens[n_keys] = ECC_MAX_SIG_SIZE;
        if (wc_ecc_init(&keys[n_keys]) != 0) {
            j->err = 1;
            goto out;
        }
        if (wc_ecc_make_key_ex(&rng, 32, &keys[n_keys], ECC_SECP256R1) != 0 ||
            wc_ecc_sign_hash(hash, sizeof(hash), sigs[n_keys], &slens[n_keys], &rng,
                             &keys[n_keys]) != 0) {
            n_keys++;
            j->err = 1;
            goto out;
        }
    }
    ecc_key *key = &keys[0];
    byte sig[ECC_MAX_SIG_SIZE];
    while (bench_ns() < j->deadline_ns) {
        for (int k = 0; k < 8; k++) {
            int r = 0;
            word32 l = sizeof(sig);
            switch (j->op) {
            case OP_KEYGEN:
                r = wc_ecc_init(&tmp);
                if (r == 0) {
                    r = wc_ecc_make_key_ex(&rng, 32, &tmp, ECC_SECP256R1);
                    wc_ecc_free(&tmp);
                }
                break;
            case OP_SIGN:
                r = wc_ecc_sign_hash(hash, sizeof(hash), sig, &l, &rng, key);
                break;
            case OP_VERIFY:
            case OP_BOTH: {
                size_t v = next++ % POOL;
                r = wc_ecc_verify_hash(sigs[v], slens[v], hash, sizeof(hash), &ok, &keys[v]);
                r = r == 0 && ok == 1 ? 0 : -1;
                if (r == 0 && j->op == OP_BOTH) {
                    r = wc_ecc_sign_hash(hash, sizeof(hash), sig, &l, &rng, key);
                }
                break;
            }
            default:
                r = -1;
                break;
            }
            if (r != 0) {
                j->err = 1;
                goto out;
            }
            j->done++;
        }
    }
out:
    for (int i = 0; i < n_keys; i++) {
        wc_ecc_free(&keys[i]);
    }
    free(keys);
    free(sigs);
    wc_FreeRng(&rng);
#ifdef FP_ECC
    wc_ecc_fp_free();
#endif
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 1, seconds = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0) {
            threads = bench_long("--threads", argv[i + 1], 1, 64);
        } else if (strcmp(argv[i], "--seconds") == 0) {
            seconds = bench_long("--seconds", argv[i + 1], 1, 600);
        } else {
            fprintf(stderr, "usage: bench_ecc [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    if (wolfCrypt_Init() != 0) {
        fprintf(stderr, "bench_ecc: wolfCrypt_Init failed\n");
        return 2;
    }
    struct job jobs[64];
    for (int op = 0; op < OP_N; op++) {
        int64_t t0 = bench_ns();
        for (long t = 0; t < threads; t++) {
            memset(&jobs[t], 0, sizeof(jobs[t]));
            jobs[t].op = (enum op)op;
            jobs[t].deadline_ns = t0 + (int64_t)seconds * 1000000000LL;
            if (pthread_create(&jobs[t].th, NULL, run, &jobs[t]) != 0) {
                fprintf(stderr, "bench_ecc: pthread_create failed\n");
                return 2;
            }
        }
        uint64_t done = 0;
        int err = 0;
        for (long t = 0; t < threads; t++) {
            pthread_join(jobs[t].th, NULL);
            done += jobs[t].done;
            err |= jobs[t].err;
        }
        double secs = (double)(bench_ns() - t0) / 1e9;
        if (err) {
            fprintf(stderr, "bench_ecc: %s failed\n", op_names[op]);
            return 1;
        }
        printf("ecc op=%s threads=%ld per_s=%.0f version=%s\n", op_names[op], threads,
               (double)done / secs, wolfSSL_lib_version());
        fflush(stdout);
    }
    wolfCrypt_Cleanup();
    return 0;
}
