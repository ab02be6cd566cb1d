/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_dscopy: `mayfly-ca datastore copy --data-dir DIR [--from DS]
 * (--to DS | --to-file FILE)`: copies a stopped CA's registry (SQLite in
 * DIR by default) into a new, empty one, typically PostgreSQL; the CA keys
 * stay in DIR/keys. Prints one line of row counts; exit 0, 1 when refused
 * (the destination is not empty, a store cannot be opened), 2 on bad usage.
 */
#ifndef CA_DSCOPY_H
#define CA_DSCOPY_H

#include "api/internal/mf_opt.h"

int ca_datastore_copy_main(const struct mf_opt_vals *v);

#endif /* CA_DSCOPY_H */
