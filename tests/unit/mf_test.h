/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_test.h: what the unit tests share, written once: assertions on mf_res,
 * throw-away identities (a CA and leaves it issues), temporary directories,
 * and an in-process libmicrohttpd server on a Unix socket (the mock CA or
 * agent that test_http and test_workload talk to).
 *
 * Header-only: the Makefile builds each tests/unit/test_*.c as a binary of
 * its own, so the helpers are static (and marked unused, since no test
 * needs all of them). Include it after <cmocka.h>'s own prerequisites
 * (<setjmp.h>, <stdarg.h>, <stddef.h>); it includes <cmocka.h> itself.
 */
#ifndef MF_TEST_H
#define MF_TEST_H

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "api/core/mf_err.h"
#include "api/internal/mf_httpd.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

#define MFT_UNUSED __attribute__((unused))

/* Fails the test, with the error's detail, unless x is MF_RES_OK. */
#define ASSERT_OK(x)                                                  \
    do {                                                              \
        mf_res t_r_ = (x);                                            \
        if (!mf_ok(t_r_)) {                                           \
            char t_m_[512];                                           \
            mf_err_format(t_r_, t_m_, sizeof(t_m_));                  \
            fail_msg("%s: %s (%s)", #x, t_m_, mf_err_name(t_r_.err)); \
        }                                                             \
    } while (0)

/* Fails the test unless x fails with exactly the error code want. */
#define ASSERT_ERR(x, want)                                                                  \
    do {                                                                                     \
        mf_res t_r_ = (x);                                                                   \
        if (t_r_.err != (want)) {                                                            \
            fail_msg("%s: got %s (%s), want %s", #x, mf_err_name(t_r_.err), mf_err_detail(), \
                     mf_err_name(want));                                                     \
        }                                                                                    \
    } while (0)

/* ---- identities ------------------------------------------------------------ */

/* A P-256 key and a certificate for it. */
struct mft_ident {
    struct mf_key *key;
    struct mf_cert *cert;
};

/* A self-signed CA certificate for trust domain td_id
 * ("spiffe://example.org") and its new P-256 key in *key, valid from now
 * for ttl seconds. */
static MFT_UNUSED struct mf_cert *mft_ca_cert(const char *td_id, int64_t now, int64_t ttl,
                                              struct mf_key **key)
{
    struct mf_spiffe_id id;
    struct mf_cert *c = NULL;
    ASSERT_OK(mf_spiffeid_parse_cstr(td_id, &id));
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, key));
    ASSERT_OK(mf_x509_self_signed(&id, *key, now, ttl, &c));
    return c;
}

/* A certificate for spiffe_id and subject signed by ca / ca_key, valid from
 * now for ttl seconds; an intermediate CA when is_ca. */
static MFT_UNUSED struct mf_cert *mft_issue(const struct mf_cert *ca, const struct mf_key *ca_key,
                                            const char *spiffe_id, const struct mf_pubkey *subject,
                                            int64_t now, int64_t ttl, bool is_ca)
{
    struct mf_spiffe_id id;
    struct mf_cert *c = NULL;
    ASSERT_OK(mf_spiffeid_parse_cstr(spiffe_id, &id));
    struct mf_issue_req req = {
        .id = &id, .subject_key = subject, .now = now, .ttl = ttl, .is_ca = is_ca};
    ASSERT_OK(mf_x509_issue(&req, ca, ca_key, &c));
    return c;
}

/* A self-signed CA for trust domain td_id ("spiffe://example.org"), valid
 * from now for two days. */
static MFT_UNUSED void mft_make_ca(struct mft_ident *out, const char *td_id, int64_t now)
{
    out->cert = mft_ca_cert(td_id, now, 2 * 86400, &out->key);
}

/* An X509-SVID for spiffe_id issued by ca, valid from now for ttl seconds. */
static MFT_UNUSED void mft_make_leaf(struct mft_ident *out, const struct mft_ident *ca,
                                     const char *spiffe_id, int64_t now, int64_t ttl)
{
    struct mf_pubkey *pub = NULL;
    ASSERT_OK(mf_key_generate(MF_KEY_EC_P256, &out->key));
    ASSERT_OK(mf_key_public(out->key, &pub));
    out->cert = mft_issue(ca->cert, ca->key, spiffe_id, pub, now, ttl, false);
    mf_pubkey_free(pub);
}

static MFT_UNUSED void mft_free_ident(struct mft_ident *i)
{
    mf_key_free(i->key);
    mf_cert_free(i->cert);
    memset(i, 0, sizeof(*i));
}

/* ---- temporary directories --------------------------------------------- */

/* Makes a fresh directory "/tmp/mf-<name>-XXXXXX" in dir (cap bytes).
 * Returns 0, or -1 (for setup functions, which cannot assert). */
static MFT_UNUSED int mft_tmpdir(char *dir, size_t cap, const char *name)
{
    int n = snprintf(dir, cap, "/tmp/mf-%s-XXXXXX", name);
    if (n <= 0 || (size_t)n >= cap) {
        return -1;
    }
    return mkdtemp(dir) != NULL ? 0 : -1;
}

/* Removes everything under the directory open as fd (closed here), to any
 * depth, without following symlinks; best effort. */
static MFT_UNUSED void mft_rm_under(int fd)
{
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        (void)close(fd);
        return;
    }
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
            continue;
        }
        /* not a file: a directory, emptied first */
        int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
            mft_rm_under(sub);
            (void)unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
        }
    }
    closedir(d);
}

/* Removes dir and everything in it (what `rm -rf` does, without a shell);
 * best effort. */
static MFT_UNUSED void mft_rmdir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        mft_rm_under(fd);
    }
    (void)rmdir(dir);
}

/* ---- a mock HTTP server ------------------------------------------------- */

/* Starts libmicrohttpd on a new Unix socket at sock (mode 0600), answering
 * with handler(cls, ...), with mayfly's own limits (64 connections, 64 KiB
 * of memory each) and timeout_s seconds of idle time (0: none, for watch
 * streams). flags are MHD threading flags; notify, when not NULL, is told
 * of every connection. Returns NULL on failure. */
static MFT_UNUSED struct MHD_Daemon *mft_mhd_unix(const char *sock, unsigned int flags,
                                                  MHD_AccessHandlerCallback handler, void *cls,
                                                  MHD_NotifyConnectionCallback notify,
                                                  void *notify_cls, unsigned int timeout_s)
{
    int fd = -1;
    if (!mf_ok(mf_httpd_listen_unix(sock, 0600, 16, &fd))) {
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags | MHD_USE_ERROR_LOG, 0, NULL, NULL, handler, cls, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_NOTIFY_COMPLETED, mf_httpd_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, notify,
        notify_cls, MHD_OPTION_CONNECTION_LIMIT, 64, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (d == NULL) {
        close(fd);
    }
    return d;
}

#endif /* MF_TEST_H */
