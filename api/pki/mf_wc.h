/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_wc: the glue between libmayfly and wolfSSL/wolfCrypt: library set-up
 * (mf_x509_global_init, declared in mf_x509.h), error strings, and the
 * check macros for the two return conventions.
 * Internal: used inside libmayfly and by the daemons; not installed, and not
 * for workloads to include.
 *
 * It is the lowest file of api/pki that touches wolfSSL (the order is in
 * mf_der.h). wolfCrypt (wc_*) returns 0 on success and a negative code
 * otherwise; wolfSSL (wolfSSL_*) returns WOLFSSL_SUCCESS, which is 1, on
 * success and anything else on failure. The two are easy to mix up, so each
 * has its own macro and a call is checked with the one for its family,
 * never the other (STYLE.md, "Adapters"). Both record the library's code
 * and its message in the error detail.
 */
#ifndef MF_WC_H
#define MF_WC_H

#include <stddef.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "api/core/mf_err.h"

/* The message wolfCrypt gives for a wc_* return code. Never NULL; static
 * storage. */
const char *mf_wc_errstr(int code);

/* The message for a failed wolfSSL_* call that returned ret: ret's own
 * when it is a (negative) error code, else the newest error queued on this
 * thread, else "failure". Empties the thread's error queue. Writes at most
 * cap bytes (NUL-terminated) to buf and returns buf. */
const char *mf_ssl_errstr(int ret, char *buf, size_t cap);

#define MF_SSL_ERRSTR_MAX 96

/* One check for each convention; fail is MF_BAIL_MSG (return) or
 * MF_BAIL_OUT (set rc, goto out). */
#define MF_WC_CHECK_(x, e, fail)                                               \
    do {                                                                       \
        int mf_wc_r_ = (x);                                                    \
        if (mf_wc_r_ != 0) {                                                   \
            fail((e), "wolfCrypt: %s (%d)", mf_wc_errstr(mf_wc_r_), mf_wc_r_); \
        }                                                                      \
    } while (0)

#define MF_SSL_CHECK_(x, e, fail)                                                                 \
    do {                                                                                          \
        int mf_ssl_r_ = (x);                                                                      \
        if (mf_ssl_r_ != WOLFSSL_SUCCESS) {                                                       \
            char mf_ssl_s_[MF_SSL_ERRSTR_MAX];                                                    \
            fail((e), "wolfSSL: %s (%d)", mf_ssl_errstr(mf_ssl_r_, mf_ssl_s_, sizeof(mf_ssl_s_)), \
                 mf_ssl_r_);                                                                      \
        }                                                                                         \
    } while (0)

/* For wc_* calls: anything but 0 raises e with "wolfCrypt: <str> (<code>)".
 * The _OUT form is for functions with an `mf_res rc` and an `out:` label. */
#define MF_TRY_WC(x, e)     MF_WC_CHECK_((x), (e), MF_BAIL_MSG)
#define MF_TRY_WC_OUT(x, e) MF_WC_CHECK_((x), (e), MF_BAIL_OUT)

/* For wolfSSL_* calls: anything but WOLFSSL_SUCCESS raises e with
 * "wolfSSL: <str> (<ret>)" (see mf_ssl_errstr). */
#define MF_TRY_SSL(x, e)     MF_SSL_CHECK_((x), (e), MF_BAIL_MSG)
#define MF_TRY_SSL_OUT(x, e) MF_SSL_CHECK_((x), (e), MF_BAIL_OUT)

#endif /* MF_WC_H */
