/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_wc: wolfSSL/wolfCrypt set-up and error strings for the pki layer (and
 * for api/net and api/workload, which include mf_wc.h for the check
 * macros). The bottom of api/pki's wolfSSL side: see mf_der.h for the order.
 */
#include "api/pki/mf_wc.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/settings.h>

#include "api/pki/mf_x509.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;
static bool have_thread_key;
static const int thread_marker = 1;

/* The distro wolfCrypt is built with FP_ECC and HAVE_THREAD_LS: each thread
 * that runs an ECC operation grows its own fixed-point cache (about 1.6 MB),
 * which wolfCrypt frees only when that thread calls wc_ecc_fp_free(). A
 * thread-specific key with this destructor does it when the thread exits,
 * so short-lived threads (HTTP workers) do not leak their caches. */
static void thread_exit(void *p)
{
    (void)p;
    wc_ecc_fp_free();
}

static void global_init_once(void)
{
    /* Also initialises wolfCrypt, which sets up the fixed-point ECC cache
     * lock. */
    (void)wolfSSL_Init();
    have_thread_key = pthread_key_create(&thread_key, thread_exit) == 0;
}

/* see mf_x509.h */
void mf_x509_global_init(void)
{
    (void)pthread_once(&init_once, global_init_once);
    if (have_thread_key && pthread_getspecific(thread_key) == NULL) {
        (void)pthread_setspecific(thread_key, &thread_marker);
    }
}

/* see mf_wc.h */
const char *mf_wc_errstr(int code)
{
    return wc_GetErrorString(code);
}

/* see mf_wc.h */
const char *mf_ssl_errstr(int ret, char *buf, size_t cap)
{
    /* A failing wolfSSL_* call returns either its negative error code or
     * just WOLFSSL_FAILURE (0), with the reason (as the positive code) on
     * this thread's error queue. The queue may also hold older errors
     * nobody read, so the newest entry is taken, and the queue is emptied
     * so that the next failure starts clean. */
    unsigned long queued = ret < 0 ? 0 : wolfSSL_ERR_peek_last_error();
    wolfSSL_ERR_clear_error();
    if (cap == 0) {
        return buf;
    }
    if (ret >= 0 && queued == 0) {
        (void)snprintf(buf, cap, "failure");
        return buf;
    }
    /* wolfSSL's formatter takes the code with either sign */
    wolfSSL_ERR_error_string_n(ret < 0 ? (unsigned long)(long)ret : queued, buf,
                               (unsigned long)cap);
    return buf;
}
