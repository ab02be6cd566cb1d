/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_err: the one error family of mayfly.
 * Public: part of the API a workload links (installed with libmayfly).
 *
 * Every fallible function returns mf_res, a one-field struct that the
 * compiler refuses to let callers drop (warn_unused_result). Error codes carry
 * a category in their high byte so that callers can branch on the kind of
 * failure (bad input, denied, crypto, I/O) without listing every code.
 *
 * When an error is raised with MF_BAIL*, the site (file, line, function) and
 * an optional detail sentence are recorded in thread-local storage, so that
 * the caller at the top (a CLI, an HTTP handler) can print one clear line such
 * as "invalid SPIFFE ID: path segment 2 is '..' (SPIFFE-ID 2.2)". Details never
 * contain secrets: callers must not pass key material to MF_BAIL_MSG.
 */
#ifndef MF_ERR_H
#define MF_ERR_H

#include <stdbool.h>
#include <stddef.h>

#define MF_CAT_MASK     0xff00
#define MF_CAT_IO       0x0100
#define MF_CAT_PROTO    0x0200
#define MF_CAT_AUTH     0x0300
#define MF_CAT_POLICY   0x0400
#define MF_CAT_CRYPTO   0x0500
#define MF_CAT_INTERNAL 0x0600
#define MF_CAT_USAGE    0x0700

enum mf_err {
    MF_OK = 0,

    /* I/O: files, sockets, peers that went away */
    MF_ERR_IO = MF_CAT_IO | 1,
    MF_ERR_IO_EOF,       /* peer closed before the message ended */
    MF_ERR_IO_TIMEOUT,   /* deadline passed */
    MF_ERR_IO_CONNECT,   /* could not reach the peer */
    MF_ERR_IO_NOT_FOUND, /* file or object does not exist */
    MF_ERR_IO_PERM,      /* file mode or ownership is unsafe */
    MF_ERR_IO_NOSPACE,   /* disk full or file size limit */
    MF_ERR_IO_SYMLINK,   /* refused to follow a symbolic link */

    /* Malformed input from a peer, a file or a user */
    MF_ERR_PROTO = MF_CAT_PROTO | 1,
    MF_ERR_PROTO_TRUNCATED, /* fewer bytes than the structure needs */
    MF_ERR_PROTO_TOO_LARGE, /* over a size cap */
    MF_ERR_PROTO_JSON,      /* JSON syntax, type or unknown field */
    MF_ERR_PROTO_HTTP,      /* malformed HTTP */
    MF_ERR_PROTO_PEM,       /* malformed PEM or base64 */
    MF_ERR_PROTO_DER,       /* malformed DER / X.509 / PKCS#8 / CSR */
    MF_ERR_PROTO_SELECTOR,  /* malformed or unknown selector */
    MF_ERR_PROTO_DURATION,  /* malformed duration */
    /* SPIFFE ID rules (SPIFFE.md section A); the detail names the offset */
    MF_ERR_ID_EMPTY,              /* empty string */
    MF_ERR_ID_SCHEME,             /* A1: not "spiffe://" */
    MF_ERR_ID_TD_EMPTY,           /* A2: no trust domain */
    MF_ERR_ID_TD_CHAR,            /* A3-A5, A7: character outside [a-z0-9._-] */
    MF_ERR_ID_TD_TOO_LONG,        /* A15: trust domain over 255 bytes */
    MF_ERR_ID_PATH_EMPTY_SEGMENT, /* A9: "//" in the path */
    MF_ERR_ID_TRAILING_SLASH,     /* A9: path ends in "/" */
    MF_ERR_ID_DOT_SEGMENT,        /* A10: segment "." or ".." */
    MF_ERR_ID_PATH_CHAR,          /* A11, A12, A7: character outside [a-zA-Z0-9._-] */
    MF_ERR_ID_TOO_LONG,           /* A13, A14: over 2048 bytes */
    MF_ERR_ID_NO_PATH,            /* B3: a leaf ID needs a path */
    MF_ERR_ID_HAS_PATH,           /* B15: a trust domain ID has no path */
    MF_ERR_ID_WRONG_TD,           /* ID outside the expected trust domain */

    /* Authentication: who the peer is */
    MF_ERR_AUTH = MF_CAT_AUTH | 1,
    MF_ERR_AUTH_MISSING,   /* no credential presented */
    MF_ERR_AUTH_UNTRUSTED, /* chain does not verify against the bundle */
    MF_ERR_AUTH_EXPIRED,   /* outside its validity window */
    MF_ERR_AUTH_TOKEN,     /* join token unknown, used or expired */
    MF_ERR_AUTH_BANNED,    /* agent banned or evicted */
    MF_ERR_AUTH_SVID,      /* certificate breaks an X509-SVID rule */

    /* Authorization and registry rules */
    MF_ERR_POLICY = MF_CAT_POLICY | 1,
    MF_ERR_POLICY_DENIED,     /* caller may not do this */
    MF_ERR_POLICY_NOT_PARENT, /* agent is not the parent of that entry */
    MF_ERR_POLICY_NO_ENTRY,   /* no registration entry matches */
    MF_ERR_POLICY_DUPLICATE,  /* an identical object already exists */
    MF_ERR_POLICY_NOT_FOUND,  /* no such object */
    MF_ERR_POLICY_LIMIT,      /* rate or concurrency limit reached */
    MF_ERR_POLICY_CONFIG,     /* configuration refused (explained in detail) */

    /* Cryptography */
    MF_ERR_CRYPTO = MF_CAT_CRYPTO | 1,
    MF_ERR_CRYPTO_SIG,      /* signature does not verify */
    MF_ERR_CRYPTO_KEY,      /* unsupported or malformed key */
    MF_ERR_CRYPTO_RNG,      /* random generator failed */
    MF_ERR_CRYPTO_MISMATCH, /* key does not match certificate */

    /* Bugs and resource exhaustion */
    MF_ERR_INTERNAL = MF_CAT_INTERNAL | 1,
    MF_ERR_NOMEM,
    MF_ERR_OVERFLOW, /* size arithmetic overflowed */
    MF_ERR_STATE,    /* object used in the wrong state */

    /* The caller (a program or a person) used the API or CLI wrongly */
    MF_ERR_USAGE = MF_CAT_USAGE | 1,
    MF_ERR_USAGE_NULL, /* required pointer was NULL */
    MF_ERR_USAGE_ARG,  /* argument out of range or unknown option */
};

/* The result of every fallible call. Not a bare enum so it cannot be mixed up
 * with int return values, and so that -Wunused-result catches dropped errors. */
typedef struct {
    enum mf_err err;
} mf_res;

#define MF_WUR __attribute__((warn_unused_result))

#define MF_RES_OK ((mf_res){MF_OK})

static inline bool mf_ok(mf_res r)
{
    return r.err == MF_OK;
}

static inline int mf_err_category(enum mf_err e)
{
    return (int)e & MF_CAT_MASK;
}

/* Short, stable name of a code, e.g. "ID_DOT_SEGMENT". Never NULL. */
const char *mf_err_name(enum mf_err e);

/* One sentence describing a code, e.g. "path segment is '.' or '..'". */
const char *mf_err_str(enum mf_err e);

/* Records err at the given site, with an optional printf-style detail, in
 * thread-local storage; returns (mf_res){err}. Used by the macros below. */
mf_res mf_err_raise(enum mf_err err, const char *file, int line, const char *func, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

/* The detail of the last error raised on this thread ("" if none), and the
 * site it was raised at. Valid until the next raise on this thread. */
const char *mf_err_detail(void);
const char *mf_err_site(void);

/* Formats "<str>: <detail>" (or just "<str>") for r into out. */
void mf_err_format(mf_res r, char *out, size_t cap);

/* Forget the last error's detail (call before an operation whose own detail
 * you will print, so that a stale one is never shown). */
void mf_err_clear(void);

/* The expression forms: an mf_res holding e, with the site (and a detail)
 * recorded, for a value to assign or pass on rather than return at once:
 *   rc = MF_RAISE_MSG(MF_ERR_POLICY_DUPLICATE, "entry %s exists", id); */
#define MF_RAISE(e)          mf_err_raise((e), __FILE__, __LINE__, __func__, NULL)
#define MF_RAISE_MSG(e, ...) mf_err_raise((e), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define MF_BAIL(e)          return MF_RAISE(e)
#define MF_BAIL_MSG(e, ...) return MF_RAISE_MSG((e), __VA_ARGS__)

#define MF_TRY(x)                     \
    do {                              \
        mf_res mf_try_r_ = (x);       \
        if (mf_try_r_.err != MF_OK) { \
            return mf_try_r_;         \
        }                             \
    } while (0)

#define MF_ENSURE(cond, e) \
    do {                   \
        if (!(cond)) {     \
            MF_BAIL(e);    \
        }                  \
    } while (0)

#define MF_ENSURE_MSG(cond, e, ...)      \
    do {                                 \
        if (!(cond)) {                   \
            MF_BAIL_MSG(e, __VA_ARGS__); \
        }                                \
    } while (0)

#define MF_ENSURE_REF(p) MF_ENSURE((p) != NULL, MF_ERR_USAGE_NULL)

/* Forms for functions that hold resources: they need a local `mf_res rc` and
 * a single `out:` label that releases everything. */
#define MF_TRY_OUT(x)          \
    do {                       \
        rc = (x);              \
        if (rc.err != MF_OK) { \
            goto out;          \
        }                      \
    } while (0)

#define MF_ENSURE_OUT(cond, e) \
    do {                       \
        if (!(cond)) {         \
            rc = MF_RAISE(e);  \
            goto out;          \
        }                      \
    } while (0)

#define MF_ENSURE_OUT_MSG(cond, e, ...)          \
    do {                                         \
        if (!(cond)) {                           \
            rc = MF_RAISE_MSG((e), __VA_ARGS__); \
            goto out;                            \
        }                                        \
    } while (0)

#define MF_BAIL_OUT(e, ...)                  \
    do {                                     \
        rc = MF_RAISE_MSG((e), __VA_ARGS__); \
        goto out;                            \
    } while (0)

/* wolfCrypt (0 is success) and wolfSSL (WOLFSSL_SUCCESS is success) have
 * their own checks, MF_TRY_WC and MF_TRY_SSL (and _OUT forms), in
 * api/pki/mf_wc.h: api/core does not see wolfSSL. */

/* For calls that return NULL on failure (jansson, libc allocation). */
#define MF_TRY_PTR(p, e) MF_ENSURE((p) != NULL, e)

#endif /* MF_ERR_H */
