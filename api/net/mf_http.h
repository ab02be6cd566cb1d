/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_http: a small HTTP/1.1 client for mayfly's own peers: the CA's admin
 * socket and the agent's Workload API socket (plain HTTP over a Unix
 * socket), and the CA's agent API (HTTPS, TLS 1.3 through wolfSSL, mutual
 * authentication with X509-SVIDs).
 * Internal: used inside libmayfly and by the daemons; not installed, and not
 * for workloads to include.
 *
 * Over TLS the server is authenticated the SPIFFE way, not by host name,
 * inside the handshake (mf_tls, the one TLS layer of libmayfly): its chain
 * must verify against the given bundle set (mf_svid_verify) and, when
 * expect_server_id is set, carry exactly that SPIFFE ID (or, with
 * server_id_below, that ID plus one path segment). A server that fails
 * is sent a fatal alert and nothing else; the error (MF_ERR_AUTH_*) reads
 * "refused peer <ID>: chain does not verify: ..." or "refused peer <ID>:
 * not authorized (want server <expected>)". A fatal alert from the server
 * (it refused our certificate) is MF_ERR_AUTH.
 *
 * Responses are bounded: a body larger than max_body fails with
 * MF_ERR_PROTO_TOO_LARGE; headers are capped at 16 KiB. Content-Length and
 * chunked bodies are supported. Every call has a deadline in milliseconds.
 * A connection is used by one thread at a time.
 */
#ifndef MF_HTTP_H
#define MF_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_err.h"
#include "api/pki/mf_bundle.h"
#include "api/pki/mf_spiffeid.h"
#include "api/pki/mf_x509.h"

struct mf_http_conn; /* opaque */

struct mf_tls_client_cfg {
    const struct mf_certs *chain;      /* client certificate chain (mTLS), or NULL */
    const struct mf_key *key;          /* its private key, or NULL */
    const struct mf_bundle_set *trust; /* bundles the server must chain to */
    const char *expect_server_id;      /* exact server SPIFFE ID, or NULL */
    /* when set, the server's ID may also be expect_server_id followed by
     * one more path segment (".../mayfly/server/<server id>"): any one of
     * a family of servers */
    bool server_id_below;
};

/* Connects to a Unix socket path. */
MF_WUR mf_res mf_http_connect_unix(const char *path, int timeout_ms, struct mf_http_conn **out);

/* Connects to "host:port" ("[::1]:8081" for IPv6) and completes a TLS 1.3
 * handshake with the checks described above. */
MF_WUR mf_res mf_http_connect_tls(const char *host_port, const struct mf_tls_client_cfg *cfg,
                                  int timeout_ms, struct mf_http_conn **out);

/* Connects to "host:port" over TLS 1.2 or 1.3 authenticated the web way
 * (the https_web profile of a SPIFFE bundle endpoint): the server's
 * certificate must chain to a root in ca_file (PEM), or to the system's
 * roots when ca_file is NULL or "", and name host (DNS or IP SAN, RFC
 * 6125). A server that fails is MF_ERR_AUTH_UNTRUSTED with wolfSSL's
 * reason. No client certificate is sent. */
MF_WUR mf_res mf_http_connect_web(const char *host_port, const char *ca_file, int timeout_ms,
                                  struct mf_http_conn **out);

/* The server's verified SPIFFE ID (TLS connections only). Borrowed. */
const struct mf_spiffe_id *mf_http_peer_id(const struct mf_http_conn *c);

/* True when another request may be sent on c: no exchange failed midway,
 * the server did not say "Connection: close" (or end a body by closing),
 * and no stream is open. A connection that is not reusable refuses further
 * requests with MF_ERR_STATE; reconnect instead. */
bool mf_http_reusable(const struct mf_http_conn *c);

/* True after a failed mf_http_request on a kept-alive connection (one that
 * had carried a whole exchange) when the failure was a write error or the
 * server closing before a single byte of an answer: the server had closed
 * the idle connection and did not process the request, so the caller may
 * send it again once on a fresh connection. A timeout is never stale. */
bool mf_http_stale(const struct mf_http_conn *c);

#define MF_HTTP_LOCATION_MAX 2048

struct mf_http_resp {
    int status;
    struct mf_buf body;
    char content_type[128];
    int retry_after;                         /* seconds from Retry-After, or -1 */
    char location[MF_HTTP_LOCATION_MAX + 1]; /* Location, or "" (also when longer) */
};

void mf_http_resp_init(struct mf_http_resp *r, size_t max_body);
void mf_http_resp_cleanup(struct mf_http_resp *r);

/* Sends one request and reads the whole response. headers is a
 * NULL-terminated list of "Name: value" lines, or NULL; Host, Content-Length
 * and Content-Type (application/json when body is set) are added. Keeps the
 * connection open for reuse when the server allows it.
 * Errors: MF_ERR_IO_EOF when the server closed before answering (a stale
 * keep-alive connection: reconnect and retry), MF_ERR_PROTO_TRUNCATED when it
 * closed in the middle of the response, MF_ERR_PROTO_HTTP for malformed
 * HTTP, MF_ERR_PROTO_TOO_LARGE over a cap, MF_ERR_IO_TIMEOUT. resp->status
 * is valid on success only. */
MF_WUR mf_res mf_http_request(struct mf_http_conn *c, const char *method, const char *path,
                              const char *const *headers, const void *body, size_t body_len,
                              int timeout_ms, struct mf_http_resp *resp);

/* Streaming responses (the Workload API's watch): sends the request and
 * reads the status line and headers; resp->status is set, resp->body stays
 * empty. Then each mf_http_stream_line call returns the next
 * newline-terminated line of the body (without the newline, and without a
 * CR before it) in line, or MF_ERR_IO_EOF at the end of the body, or
 * MF_ERR_IO_TIMEOUT (nothing is lost: call again to resume).
 * A body that ends inside a line is MF_ERR_PROTO_TRUNCATED; a line over
 * max_line bytes is MF_ERR_PROTO_TOO_LARGE.
 * A non-2xx answer is not a stream: stream_begin then reads its body into
 * resp->body (under resp's cap) and stream_line returns MF_ERR_IO_EOF. */
MF_WUR mf_res mf_http_stream_begin(struct mf_http_conn *c, const char *method, const char *path,
                                   const char *const *headers, int timeout_ms,
                                   struct mf_http_resp *resp);
MF_WUR mf_res mf_http_stream_line(struct mf_http_conn *c, size_t max_line, int timeout_ms,
                                  struct mf_buf *line);

/* From now on, every wait of this connection also watches fd (e.g. an
 * eventfd a stopping daemon writes to): once fd is readable, the call in
 * progress and every later one fail at once with MF_ERR_IO_TIMEOUT and the
 * detail "cancelled". fd is borrowed and must outlive the connection; -1
 * turns this off. The TLS handshake in mf_http_connect_tls is not covered. */
void mf_http_set_cancel_fd(struct mf_http_conn *c, int fd);

void mf_http_close(struct mf_http_conn *c); /* NULL is a no-op */

/* Parses a Workload API endpoint address (SPIFFE.md E7-E9): "unix:///path"
 * or "unix:/path" into a socket path. Other forms are refused, with a detail
 * saying which rule failed. A bare absolute path is accepted too when
 * allow_bare_path is true (command-line convenience). */
MF_WUR mf_res mf_endpoint_parse(const char *addr, bool allow_bare_path, char *path_out, size_t cap);

#endif /* MF_HTTP_H */
