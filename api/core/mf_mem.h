/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_mem: secrets and careful arithmetic.
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * mf_wipe() clears memory in a way the compiler may not elide; mf_ct_eq()
 * compares in time independent of where the inputs differ. mf_secret_*
 * allocates page-aligned storage that is locked in RAM (best effort), kept
 * out of core dumps, and wiped before it is returned to the system. Size
 * arithmetic on untrusted lengths goes through mf_add_size/mf_mul_size.
 */
#ifndef MF_MEM_H
#define MF_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"
#include "api/core/mf_text.h"

/* Clears n bytes at p; p may be NULL when n is 0. */
void mf_wipe(void *p, size_t n);

/* True when the n bytes at a and b are equal; runs in time that depends on n
 * only. */
bool mf_ct_eq(const void *a, const void *b, size_t n);

/* mlock'd (best effort), MADV_DONTDUMP storage for key material, all zero
 * when handed out. Up to MF_SECRET_SLAB_MAX bytes come from locked slab
 * pages shared by several secrets (16-byte aligned slots); larger sizes get
 * page-aligned mappings of their own. Returns NULL on failure.
 * mf_secret_free, with the size given to mf_secret_alloc, wipes the storage
 * at once and unmaps a page nothing else uses any more;
 * mf_secret_free(NULL, n) is a no-op. Thread-safe. */
#define MF_SECRET_SLAB_MAX 1024u
void *mf_secret_alloc(size_t n);
void mf_secret_free(void *p, size_t n);
/* Slab pages mapped now (tests, diagnostics). */
size_t mf_secret_slab_pages(void);

/* Overflow-checked size arithmetic: store a+b (a*b) in *out and return true,
 * or return false and leave *out untouched. */
static inline bool mf_add_size(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return false;
    }
    *out = r;
    return true;
}

static inline bool mf_mul_size(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r)) {
        return false;
    }
    *out = r;
    return true;
}

/* Fills buf with n bytes from the kernel CSPRNG (getrandom). */
MF_WUR mf_res mf_random(void *buf, size_t n);

/* A uniform random integer in [lo, hi] (inclusive), without modulo bias. */
MF_WUR mf_res mf_random_range(uint64_t lo, uint64_t hi, uint64_t *out);

/* Copies at most max bytes of s into a new NUL-terminated string; fails with
 * MF_ERR_PROTO_TOO_LARGE if s is longer than max. *out is NULL on failure. */
MF_WUR mf_res mf_strdup_max(const char *s, size_t max, char **out);

/* Frees the first n strings of v, then v itself (v NULL: nothing). For
 * the calloc'd string arrays the daemons keep (selectors, DNS names), also
 * when an array is only partly filled after a failure. */
void mf_strv_free(char **v, size_t n);

/* *out = a new array of copies of src[0..n-1], or NULL when n is 0.
 * MF_ERR_NOMEM (nothing allocated) when memory runs out. Free it with
 * mf_strv_free(*out, n). */
MF_WUR mf_res mf_strv_dup(char *const *src, size_t n, char ***out);

/* mf_hex() lives in mf_text.h (included above), with the other encoders. */

/* Makes a process unfit for core dumps and ptrace by other users: sets
 * PR_SET_DUMPABLE to 0 and RLIMIT_CORE to 0. For daemons, at start. */
MF_WUR mf_res mf_harden_process(void);

#endif /* MF_MEM_H */
