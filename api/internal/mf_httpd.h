/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_httpd: helpers shared by mayfly's libmicrohttpd servers (the CA's agent
 * API and admin API, the agent's Workload API).
 *
 * - listening on a Unix socket safely (umask set before bind, stale socket
 *   replaced only if it is a socket, final mode applied);
 * - the peer credentials (SO_PEERCRED) of a connection;
 * - collecting a request body under a cap with the *con_cls idiom, answering
 *   on the handler's second call so that keep-alive survives (STYLE.md);
 * - JSON and error replies in the shape of docs/api.md.
 *
 * The typical access handler:
 *
 *   struct mf_httpd_req *req;
 *   enum MHD_Result r;
 *   if (!mf_httpd_body(conn, con_cls, upload_data, upload_size, MF_MAX_BODY, &req, &r))
 *       return r;                 // still reading, or already answered
 *   ... req->body holds the whole body (req->body.len bytes) ...
 *   return mf_httpd_reply_json(conn, 200, obj);
 *
 * and MHD_OPTION_NOTIFY_COMPLETED set to mf_httpd_completed.
 */
#ifndef MF_HTTPD_H
#define MF_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>
#include <sys/types.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_x509.h"

/* Binds and listens on a Unix socket at path with the given mode (e.g.
 * 0600 for the admin socket, 0666 for the Workload API). A leftover socket
 * file is removed; any other file type at path is refused (MF_ERR_IO_PERM,
 * MF_ERR_IO_SYMLINK for a symbolic link), and so is a socket that a running
 * server still accepts on (MF_ERR_IO). The socket is created under umask
 * 0777 (nobody can connect yet) and then chmod'ed to mode. The umask is
 * process-wide: call this at start-up, before other threads create files.
 * Pass the fd to MHD with MHD_OPTION_LISTEN_SOCKET; MHD closes it on stop. */
MF_WUR mf_res mf_httpd_listen_unix(const char *path, mode_t mode, int backlog, int *fd_out);

/* Binds and listens on TCP "host:port" ("[::1]:8081" for IPv6; an empty
 * host means every address; port 0 picks a free one). Writes the bound
 * address, port resolved, to addr (cap bytes) for logs and ready lines. */
MF_WUR mf_res mf_httpd_listen_tcp(const char *host_port, int backlog, int *fd_out, char *addr,
                                  size_t cap);

/* SO_PEERCRED of the connection's socket (pid, uid, gid at connect time).
 * MF_ERR_AUTH_MISSING when the connection is not on a Unix socket. */
MF_WUR mf_res mf_httpd_peer_cred(struct MHD_Connection *conn, struct ucred *out);

/* The TLS client's certificate chain as it sent it (leaf first, at most 8
 * certificates of MF_MAX_CERT bytes), parsed;
 * out is initialised here and owned by the caller (mf_certs_cleanup).
 * Nothing is verified: pass the chain to mf_svid_verify. MF_ERR_AUTH_MISSING
 * on a plain connection or when the client sent no certificate.
 *
 * MHD 0.9.75 with GnuTLS 3.7 (Debian 12), checked in tests/unit/test_http.c:
 * - MHD asks for a client certificate only when MHD_OPTION_HTTPS_MEM_TRUST
 *   is given, and then as GNUTLS_CERT_REQUEST (optional): a client without
 *   one still completes the handshake, so a handler must refuse it itself.
 *   MHD does not verify the client chain against MEM_TRUST either: a client
 *   certificate from another CA completes the handshake too. MEM_TRUST only
 *   triggers the request, so the handler verifies with mf_svid_verify.
 * - Without MHD_OPTION_HTTPS_PRIORITIES MHD uses the system/NORMAL GnuTLS
 *   priorities, which negotiate TLS 1.3 with a TLS 1.3 client. Passing
 *   "NORMAL:-VERS-ALL:+VERS-TLS1.3" (accepted, tested) refuses older ones.
 * - wolfSSL (FP_ECC) caches curve points per thread and frees them only when
 *   that thread calls wc_ecc_fp_free(): MHD threads that parse or verify
 *   certificates leak that cache when they exit (see the test's
 *   arm_ecc_cleanup). */
MF_WUR mf_res mf_httpd_peer_chain(struct MHD_Connection *conn, struct mf_certs *out);

struct mf_httpd_req {
    struct mf_buf body;
    bool too_large;
    void *user; /* per-request state for the handler */
    void (*user_free)(void *user);
};

/* Collects the request body. Returns true when the whole request is in and
 * the handler should answer it (*req_out set); returns false when the handler
 * must return *result right away (more data to read, or a 413 was queued).
 * Over the cap: when Content-Length already says so, 413 is queued on the
 * first call and MHD closes the connection without reading the body (over
 * TCP the client may then see a reset rather than the 413); otherwise the
 * rest of the body is read and dropped, and 413 is the answer. */
bool mf_httpd_body(struct MHD_Connection *conn, void **con_cls, const char *upload_data,
                   size_t *upload_size, size_t max, struct mf_httpd_req **req_out,
                   enum MHD_Result *result);

/* MHD_OPTION_NOTIFY_COMPLETED callback freeing what mf_httpd_body made. */
void mf_httpd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe);

/* Replies; each creates, queues and destroys the response. */
enum MHD_Result mf_httpd_reply_json(struct MHD_Connection *conn, unsigned status,
                                    json_t *body /* stolen */);
enum MHD_Result mf_httpd_reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Maps an mf_res to status and code (400 invalid_argument, 403
 * permission_denied, 404 not_found, 409 already_exists, 413 too_large,
 * 429 rate_limited, 500 internal...) with the error's detail as message. */
enum MHD_Result mf_httpd_reply_res(struct MHD_Connection *conn, mf_res r);
enum MHD_Result mf_httpd_reply_buf(struct MHD_Connection *conn, unsigned status,
                                   const char *content_type, const void *data, size_t len);
/* The same with the contents of b (a buffer that is not MF_BUF_SECRET),
 * whose block MHD takes over and frees once sent: no copy of a large
 * answer. b is left empty, and cleaning it up stays safe. */
enum MHD_Result mf_httpd_reply_take(struct MHD_Connection *conn, unsigned status,
                                    const char *content_type, struct mf_buf *b);

/* The value of a request header or query argument, or NULL. */
const char *mf_httpd_header(struct MHD_Connection *conn, const char *name);
const char *mf_httpd_query(struct MHD_Connection *conn, const char *name);

#endif /* MF_HTTPD_H */
