/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_admin: the CA's admin API (HTTP/1.1 + JSON on a Unix socket, mode
 * 0600; docs/api.md). Only root or the CA's own uid may call it, checked
 * per connection with SO_PEERCRED on top of the file mode.
 */
#ifndef CA_ADMIN_H
#define CA_ADMIN_H

#include "api/mf_err.h"
#include "ca/ca.h"

MF_WUR mf_res ca_admin_start(struct ca_ctx *ctx, struct ca_admin **out);
void ca_admin_stop(struct ca_admin *a);

#endif /* CA_ADMIN_H */
