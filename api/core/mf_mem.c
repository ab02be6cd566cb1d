/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_mem: wiping, constant-time comparison, locked secret storage and the
 * kernel CSPRNG. See mf_mem.h.
 */
#include "api/core/mf_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>

/* see mf_mem.h */
void mf_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0) {
        explicit_bzero(p, n);
    }
}

/* see mf_mem.h */
bool mf_ct_eq(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= (uint8_t)(x[i] ^ y[i]);
    }
    return acc == 0;
}

static size_t page_round(size_t n)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t page = ps > 0 ? (size_t)ps : 4096;
    size_t r;
    if (!mf_add_size(n, page - 1, &r)) {
        return 0;
    }
    return r / page * page;
}

/* see mf_mem.h */
void *mf_secret_alloc(size_t n)
{
    size_t len = page_round(n == 0 ? 1 : n);
    if (len == 0) {
        return NULL;
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    /* Both are best effort: RLIMIT_MEMLOCK may be small for an unprivileged
     * user; the key is still wiped on free. */
    (void)mlock(p, len);
    (void)madvise(p, len, MADV_DONTDUMP);
    return p;
}

/* see mf_mem.h */
void mf_secret_free(void *p, size_t n)
{
    if (p == NULL) {
        return;
    }
    size_t len = page_round(n == 0 ? 1 : n);
    mf_wipe(p, len);
    (void)munlock(p, len);
    (void)munmap(p, len);
}

/* see mf_mem.h */
mf_res mf_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            MF_BAIL_MSG(MF_ERR_CRYPTO_RNG, "getrandom: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
    return MF_RES_OK;
}

/* see mf_mem.h */
mf_res mf_random_range(uint64_t lo, uint64_t hi, uint64_t *out)
{
    MF_ENSURE_REF(out);
    MF_ENSURE(lo <= hi, MF_ERR_USAGE_ARG);
    uint64_t span = hi - lo;
    if (span == UINT64_MAX) {
        uint64_t v;
        MF_TRY(mf_random(&v, sizeof(v)));
        *out = v;
        return MF_RES_OK;
    }
    uint64_t n = span + 1;
    /* Reject values in the short last stretch so every result is equally
     * likely. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    for (;;) {
        uint64_t v;
        MF_TRY(mf_random(&v, sizeof(v)));
        if (v < limit) {
            *out = lo + v % n;
            return MF_RES_OK;
        }
    }
}

/* see mf_mem.h */
mf_res mf_strdup_max(const char *s, size_t max, char **out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE_REF(s);
    /* max + 1 would wrap to 0 for SIZE_MAX and silently return "". */
    size_t n = strnlen(s, max == SIZE_MAX ? max : max + 1);
    MF_ENSURE(n <= max, MF_ERR_PROTO_TOO_LARGE);
    char *p = malloc(n + 1);
    MF_TRY_PTR(p, MF_ERR_NOMEM);
    memcpy(p, s, n);
    p[n] = '\0';
    *out = p;
    return MF_RES_OK;
}

/* see mf_mem.h */
void mf_strv_free(char **v, size_t n)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* see mf_mem.h */
mf_res mf_strv_dup(char *const *src, size_t n, char ***out)
{
    MF_ENSURE_REF(out);
    *out = NULL;
    if (n == 0) {
        return MF_RES_OK;
    }
    MF_ENSURE_REF(src);
    char **v = calloc(n, sizeof(*v));
    MF_TRY_PTR(v, MF_ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup(src[i]);
        if (v[i] == NULL) {
            mf_strv_free(v, i);
            MF_BAIL(MF_ERR_NOMEM);
        }
    }
    *out = v;
    return MF_RES_OK;
}

/* see mf_mem.h */
mf_res mf_harden_process(void)
{
    struct rlimit rl = {0, 0};
    MF_ENSURE_MSG(setrlimit(RLIMIT_CORE, &rl) == 0, MF_ERR_INTERNAL, "setrlimit: %s",
                  strerror(errno));
    MF_ENSURE_MSG(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0, MF_ERR_INTERNAL, "prctl: %s",
                  strerror(errno));
    return MF_RES_OK;
}
