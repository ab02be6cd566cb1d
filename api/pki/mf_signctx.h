/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_signctx: the crypto state a long-lived signing thread keeps for
 * itself, so that signing costs only the signature.
 * Internal: used by the daemons (mayfly-ca's signer pool); not installed,
 * and not for workloads to include.
 *
 * By default every signature and key generation in libmayfly seeds a new
 * wolfCrypt DRBG (wc_InitRng: a health test and a reseed from the kernel,
 * about 14 us) and drops wolfSSL's per-thread precomputed point tables
 * afterwards (wc_ecc_fp_free), so that any thread may sign without keeping
 * memory. A thread that signs all day binds a context instead: until it
 * unbinds, signatures and key generations on that thread draw from the
 * context's one seeded DRBG (which wolfCrypt reseeds itself, every
 * RESEED_INTERVAL requests), and the thread's point tables are kept between
 * operations (built once per thread, so their memory is bounded by the
 * number of such threads). A context belongs to one thread at a time. After
 * a fork the child does not use it: it falls back to a new DRBG per call.
 */
#ifndef MF_SIGNCTX_H
#define MF_SIGNCTX_H

#include <stdint.h>

#include "api/core/mf_err.h"

struct mf_signctx;

/* A new context with a seeded DRBG. */
MF_WUR mf_res mf_signctx_new(struct mf_signctx **out);

/* Wipes and frees c; it must not be bound to a thread. NULL is a no-op. */
void mf_signctx_free(struct mf_signctx *c);

/* Binds c to the calling thread, or unbinds with NULL (which also drops the
 * thread's point tables). c must stay alive while bound. */
void mf_signctx_bind(struct mf_signctx *c);

/* How many signatures and key generations drew from c's DRBG. */
uint64_t mf_signctx_uses(const struct mf_signctx *c);

#endif /* MF_SIGNCTX_H */
