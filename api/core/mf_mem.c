/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_mem: wiping, constant-time comparison, locked secret storage and the
 * kernel CSPRNG. See mf_mem.h.
 */
#include "api/core/mf_mem.h"

#include <errno.h>
#include <pthread.h>
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

static size_t page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

static size_t page_round(size_t n)
{
    size_t page = page_size();
    size_t r;
    if (!mf_add_size(n, page - 1, &r)) {
        return 0;
    }
    return r / page * page;
}

/* A locked, undumpable mapping of len bytes (a multiple of the page). */
static void *locked_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    /* Both are best effort: RLIMIT_MEMLOCK may be small for an unprivileged
     * user; the secret is still wiped on free. */
    (void)mlock(p, len);
    (void)madvise(p, len, MADV_DONTDUMP);
    return p;
}

static void locked_unmap(void *p, size_t len)
{
    mf_wipe(p, len);
    (void)munlock(p, len);
    (void)munmap(p, len);
}

/*
 * Slabs: secrets of up to MF_SECRET_SLAB_MAX bytes share locked pages. Each
 * slab is one page: this header at its start, then equal slots of the
 * request size rounded up to 16 bytes (13 keys of 304 bytes in a 4 KiB
 * page, instead of a page and a mapping each). Slabs with a free slot are on
 * one list; a slab whose last slot is freed is wiped and unmapped. A freed
 * slot is wiped at once, so a slot is all zero when handed out. The header
 * of a slab is found from any of its slots by rounding down to the page.
 */
#define SLAB_MAGIC    0x6d66736c61627321ull /* "mfslabs!" */
#define SLAB_ALIGN    16u
#define SLAB_MAX_SLOT 256u /* bits in used[] */

struct slab {
    uint64_t magic;
    struct slab *prev, *next; /* on the list of slabs with a free slot */
    uint32_t slot;            /* bytes per slot */
    uint32_t n_slots;
    uint32_t n_used;
    uint32_t pad;
    uint64_t used[SLAB_MAX_SLOT / 64];
};

#define SLAB_HDR (((sizeof(struct slab) + SLAB_ALIGN - 1) / SLAB_ALIGN) * SLAB_ALIGN)

static pthread_mutex_t slab_mu = PTHREAD_MUTEX_INITIALIZER;
static struct slab *slab_free_list; /* slabs with at least one free slot */
static size_t slab_pages;           /* slabs mapped */

static void slab_unlink(struct slab *sl)
{
    if (sl->prev != NULL) {
        sl->prev->next = sl->next;
    } else {
        slab_free_list = sl->next;
    }
    if (sl->next != NULL) {
        sl->next->prev = sl->prev;
    }
    sl->prev = sl->next = NULL;
}

static void slab_link(struct slab *sl)
{
    sl->prev = NULL;
    sl->next = slab_free_list;
    if (slab_free_list != NULL) {
        slab_free_list->prev = sl;
    }
    slab_free_list = sl;
}

static size_t slot_of(size_t n)
{
    size_t want = n == 0 ? 1 : n;
    return (want + SLAB_ALIGN - 1) / SLAB_ALIGN * SLAB_ALIGN;
}

static void *slab_alloc(size_t slot)
{
    size_t page = page_size();
    pthread_mutex_lock(&slab_mu);
    struct slab *sl = slab_free_list;
    while (sl != NULL && sl->slot != slot) {
        sl = sl->next;
    }
    if (sl == NULL) {
        sl = locked_map(page);
        if (sl == NULL) {
            pthread_mutex_unlock(&slab_mu);
            return NULL;
        }
        size_t n = (page - SLAB_HDR) / slot;
        sl->magic = SLAB_MAGIC;
        sl->slot = (uint32_t)slot;
        sl->n_slots = (uint32_t)(n < SLAB_MAX_SLOT ? n : SLAB_MAX_SLOT);
        slab_link(sl);
        slab_pages++;
    }
    uint32_t i = 0;
    while (i < sl->n_slots && (sl->used[i / 64] >> (i % 64) & 1u) != 0) {
        i++;
    }
    /* a slab on the list has a free slot */
    sl->used[i / 64] |= (uint64_t)1 << (i % 64);
    if (++sl->n_used == sl->n_slots) {
        slab_unlink(sl);
    }
    pthread_mutex_unlock(&slab_mu);
    return (uint8_t *)sl + SLAB_HDR + (size_t)i * slot;
}

static void slab_free(void *p, size_t slot)
{
    size_t page = page_size();
    struct slab *sl = (struct slab *)((uintptr_t)p / page * page);
    size_t off = (size_t)((uint8_t *)p - (uint8_t *)sl);
    if (sl->magic != SLAB_MAGIC || sl->slot != slot || off < SLAB_HDR ||
        (off - SLAB_HDR) % slot != 0 || (off - SLAB_HDR) / slot >= sl->n_slots) {
        abort(); /* not a slot of ours, or freed with another size */
    }
    uint32_t i = (uint32_t)((off - SLAB_HDR) / slot);
    mf_wipe(p, slot);
    pthread_mutex_lock(&slab_mu);
    if ((sl->used[i / 64] >> (i % 64) & 1u) == 0) {
        abort(); /* double free */
    }
    sl->used[i / 64] &= ~((uint64_t)1 << (i % 64));
    bool was_full = sl->n_used == sl->n_slots;
    sl->n_used--;
    if (sl->n_used == 0) {
        if (!was_full) {
            slab_unlink(sl);
        }
        slab_pages--;
        pthread_mutex_unlock(&slab_mu);
        locked_unmap(sl, page);
        return;
    }
    if (was_full) {
        slab_link(sl);
    }
    pthread_mutex_unlock(&slab_mu);
}

/* see mf_mem.h */
void *mf_secret_alloc(size_t n)
{
    if (n <= MF_SECRET_SLAB_MAX) {
        return slab_alloc(slot_of(n));
    }
    size_t len = page_round(n);
    if (len == 0) {
        return NULL;
    }
    return locked_map(len);
}

/* see mf_mem.h */
void mf_secret_free(void *p, size_t n)
{
    if (p == NULL) {
        return;
    }
    if (n <= MF_SECRET_SLAB_MAX) {
        slab_free(p, slot_of(n));
        return;
    }
    locked_unmap(p, page_round(n));
}

/* see mf_mem.h */
size_t mf_secret_slab_pages(void)
{
    pthread_mutex_lock(&slab_mu);
    size_t n = slab_pages;
    pthread_mutex_unlock(&slab_mu);
    return n;
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
