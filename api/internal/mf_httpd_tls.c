/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mf_httpd_tls: the peer's certificate chain on a libmicrohttpd TLS
 * connection (see mf_httpd.h). A file of its own because it needs GnuTLS,
 * libmicrohttpd's TLS backend, which only the CA links: the agent's HTTP
 * servers are plain Unix sockets.
 */
#include <gnutls/gnutls.h>

#include <microhttpd.h>

#include "api/internal/mf_httpd.h"

#define PEER_CHAIN_MAX 8 /* certificates in a client chain */

/* see mf_httpd.h */
mf_res mf_httpd_peer_chain(struct MHD_Connection *conn, struct mf_certs *out)
{
    mf_res rc;
    struct mf_certs cs;
    mf_certs_init(&cs);
    MF_ENSURE_REF(conn);
    MF_ENSURE_REF(out);
    mf_certs_init(out);

    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    MF_ENSURE_MSG(ci != NULL && ci->tls_session != NULL, MF_ERR_AUTH_MISSING,
                  "not a TLS connection");
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned n = 0;
    const gnutls_datum_t *list = gnutls_certificate_get_peers(s, &n);
    MF_ENSURE_MSG(list != NULL && n > 0, MF_ERR_AUTH_MISSING, "no client certificate");
    MF_ENSURE_MSG(n <= PEER_CHAIN_MAX, MF_ERR_PROTO_TOO_LARGE,
                  "client chain has %u certificates (at most %d)", n, PEER_CHAIN_MAX);
    for (unsigned i = 0; i < n; i++) {
        struct mf_cert *c = NULL;
        MF_ENSURE_OUT_MSG(list[i].size <= MF_MAX_CERT, MF_ERR_PROTO_TOO_LARGE,
                          "client certificate %u is %u bytes", i, list[i].size);
        MF_TRY_OUT(mf_cert_from_der(list[i].data, list[i].size, &c));
        rc = mf_certs_push(&cs, c);
        mf_cert_free(c); /* the list holds its own reference */
        if (!mf_ok(rc)) {
            goto out;
        }
    }
    *out = cs;
    mf_certs_init(&cs);
    rc = MF_RES_OK;
out:
    mf_certs_cleanup(&cs);
    return rc;
}
