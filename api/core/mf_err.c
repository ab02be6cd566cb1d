/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_err: names and sentences for error codes, and the thread-local record of
 * the last error raised (its site and detail). See mf_err.h.
 */
#include "api/core/mf_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_record {
    enum mf_err err;
    const char *file;
    int line;
    const char *func;
    char detail[512];
    char site[160];
};

static _Thread_local struct err_record last;

struct err_desc {
    enum mf_err err;
    const char *name;
    const char *str;
};

static const struct err_desc descs[] = {
    {MF_OK, "OK", "success"},
    {MF_ERR_IO, "IO", "input/output error"},
    {MF_ERR_IO_EOF, "IO_EOF", "connection closed early"},
    {MF_ERR_IO_TIMEOUT, "IO_TIMEOUT", "timed out"},
    {MF_ERR_IO_CONNECT, "IO_CONNECT", "cannot connect"},
    {MF_ERR_IO_NOT_FOUND, "IO_NOT_FOUND", "not found"},
    {MF_ERR_IO_PERM, "IO_PERM", "unsafe file permissions"},
    {MF_ERR_IO_NOSPACE, "IO_NOSPACE", "no space left"},
    {MF_ERR_IO_SYMLINK, "IO_SYMLINK", "refusing to follow a symbolic link"},
    {MF_ERR_PROTO, "PROTO", "malformed input"},
    {MF_ERR_PROTO_TRUNCATED, "PROTO_TRUNCATED", "input truncated"},
    {MF_ERR_PROTO_TOO_LARGE, "PROTO_TOO_LARGE", "input too large"},
    {MF_ERR_PROTO_JSON, "PROTO_JSON", "invalid JSON"},
    {MF_ERR_PROTO_HTTP, "PROTO_HTTP", "invalid HTTP"},
    {MF_ERR_PROTO_PEM, "PROTO_PEM", "invalid PEM"},
    {MF_ERR_PROTO_DER, "PROTO_DER", "invalid DER"},
    {MF_ERR_PROTO_SELECTOR, "PROTO_SELECTOR", "invalid selector"},
    {MF_ERR_PROTO_DURATION, "PROTO_DURATION", "invalid duration"},
    {MF_ERR_ID_EMPTY, "ID_EMPTY", "invalid SPIFFE ID: empty"},
    {MF_ERR_ID_SCHEME, "ID_SCHEME", "invalid SPIFFE ID: scheme must be \"spiffe://\""},
    {MF_ERR_ID_TD_EMPTY, "ID_TD_EMPTY", "invalid SPIFFE ID: trust domain is empty"},
    {MF_ERR_ID_TD_CHAR, "ID_TD_CHAR",
     "invalid SPIFFE ID: trust domain may contain only a-z 0-9 . - _"},
    {MF_ERR_ID_TD_TOO_LONG, "ID_TD_TOO_LONG",
     "invalid SPIFFE ID: trust domain longer than 255 bytes"},
    {MF_ERR_ID_PATH_EMPTY_SEGMENT, "ID_PATH_EMPTY_SEGMENT",
     "invalid SPIFFE ID: path has an empty segment"},
    {MF_ERR_ID_TRAILING_SLASH, "ID_TRAILING_SLASH", "invalid SPIFFE ID: path ends with '/'"},
    {MF_ERR_ID_DOT_SEGMENT, "ID_DOT_SEGMENT", "invalid SPIFFE ID: path segment is '.' or '..'"},
    {MF_ERR_ID_PATH_CHAR, "ID_PATH_CHAR",
     "invalid SPIFFE ID: path may contain only a-z A-Z 0-9 . - _ and '/'"},
    {MF_ERR_ID_TOO_LONG, "ID_TOO_LONG", "invalid SPIFFE ID: longer than 2048 bytes"},
    {MF_ERR_ID_NO_PATH, "ID_NO_PATH", "SPIFFE ID has no path (a workload ID needs one)"},
    {MF_ERR_ID_HAS_PATH, "ID_HAS_PATH", "SPIFFE ID has a path (a trust domain ID has none)"},
    {MF_ERR_ID_WRONG_TD, "ID_WRONG_TD", "SPIFFE ID is outside the trust domain"},
    {MF_ERR_AUTH, "AUTH", "authentication failed"},
    {MF_ERR_AUTH_MISSING, "AUTH_MISSING", "no credential presented"},
    {MF_ERR_AUTH_UNTRUSTED, "AUTH_UNTRUSTED", "certificate not trusted"},
    {MF_ERR_AUTH_EXPIRED, "AUTH_EXPIRED", "credential expired or not yet valid"},
    {MF_ERR_AUTH_TOKEN, "AUTH_TOKEN", "join token unknown, used or expired"},
    {MF_ERR_AUTH_BANNED, "AUTH_BANNED", "agent is banned"},
    {MF_ERR_AUTH_SVID, "AUTH_SVID", "certificate is not a valid X509-SVID"},
    {MF_ERR_POLICY, "POLICY", "refused by policy"},
    {MF_ERR_POLICY_DENIED, "POLICY_DENIED", "permission denied"},
    {MF_ERR_POLICY_NOT_PARENT, "POLICY_NOT_PARENT", "caller is not the parent of that identity"},
    {MF_ERR_POLICY_NO_ENTRY, "POLICY_NO_ENTRY", "no registration entry matches"},
    {MF_ERR_POLICY_DUPLICATE, "POLICY_DUPLICATE", "already exists"},
    {MF_ERR_POLICY_NOT_FOUND, "POLICY_NOT_FOUND", "no such object"},
    {MF_ERR_POLICY_LIMIT, "POLICY_LIMIT", "limit reached, retry later"},
    {MF_ERR_POLICY_CONFIG, "POLICY_CONFIG", "configuration refused"},
    {MF_ERR_CRYPTO, "CRYPTO", "cryptographic operation failed"},
    {MF_ERR_CRYPTO_SIG, "CRYPTO_SIG", "signature does not verify"},
    {MF_ERR_CRYPTO_KEY, "CRYPTO_KEY", "unsupported or malformed key"},
    {MF_ERR_CRYPTO_RNG, "CRYPTO_RNG", "random number generator failed"},
    {MF_ERR_CRYPTO_MISMATCH, "CRYPTO_MISMATCH", "key does not match certificate"},
    {MF_ERR_INTERNAL, "INTERNAL", "internal error"},
    {MF_ERR_NOMEM, "NOMEM", "out of memory"},
    {MF_ERR_OVERFLOW, "OVERFLOW", "size overflow"},
    {MF_ERR_STATE, "STATE", "object in wrong state"},
    {MF_ERR_USAGE, "USAGE", "usage error"},
    {MF_ERR_USAGE_NULL, "USAGE_NULL", "required argument missing"},
    {MF_ERR_USAGE_ARG, "USAGE_ARG", "invalid argument"},
};

static const struct err_desc *find(enum mf_err e)
{
    for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++) {
        if (descs[i].err == e) {
            return &descs[i];
        }
    }
    return NULL;
}

/* see mf_err.h */
const char *mf_err_name(enum mf_err e)
{
    const struct err_desc *d = find(e);
    return d != NULL ? d->name : "UNKNOWN";
}

/* see mf_err.h */
const char *mf_err_str(enum mf_err e)
{
    const struct err_desc *d = find(e);
    return d != NULL ? d->str : "unknown error";
}

/* see mf_err.h */
mf_res mf_err_raise(enum mf_err err, const char *file, int line, const char *func, const char *fmt,
                    ...)
{
    last.err = err;
    last.file = file;
    last.line = line;
    last.func = func;
    last.detail[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(last.detail, sizeof(last.detail), fmt, ap);
        va_end(ap);
    }
    (void)snprintf(last.site, sizeof(last.site), "%s:%d %s", file != NULL ? file : "?", line,
                   func != NULL ? func : "?");
    return (mf_res){err};
}

/* see mf_err.h */
const char *mf_err_detail(void)
{
    return last.detail;
}

/* see mf_err.h */
const char *mf_err_site(void)
{
    return last.site;
}

/* see mf_err.h */
void mf_err_clear(void)
{
    last.err = MF_OK;
    last.detail[0] = '\0';
    last.site[0] = '\0';
}

/* see mf_err.h */
void mf_err_format(mf_res r, char *out, size_t cap)
{
    if (cap == 0) {
        return;
    }
    if (r.err == last.err && last.detail[0] != '\0') {
        (void)snprintf(out, cap, "%s: %s", mf_err_str(r.err), last.detail);
    } else {
        (void)snprintf(out, cap, "%s", mf_err_str(r.err));
    }
}
