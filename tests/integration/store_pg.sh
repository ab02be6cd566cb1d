#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The registry's unit tests (test_ca_store) again, on a real PostgreSQL
# server started here in a temp dir: the same queries and one schema
# history on both engines, a join token spent by two connections at once
# succeeding exactly once, and a change committed through one connection
# heard by another's watcher (LISTEN/NOTIFY, no polling), and a SQLite
# registry copied into PostgreSQL with every row; then the key journal's
# tests (test_ca_keys), with two servers on the one registry.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_pg "$T/pg"
MAYFLY_TEST_DATASTORE=$PG_URI "$MAYFLY_BUILD/tests/test_ca_store" >"$T/unit.log" 2>&1 ||
    { cat "$T/unit.log"; die "test_ca_store on PostgreSQL"; }
grep -q 'PASSED.*10 test' "$T/unit.log" || { cat "$T/unit.log"; die "not every test ran"; }
MAYFLY_TEST_DATASTORE=$PG_URI "$MAYFLY_BUILD/tests/test_ca_keys" >"$T/keys.log" 2>&1 ||
    { cat "$T/keys.log"; die "test_ca_keys on PostgreSQL"; }
grep -q 'OK \] test_ca_keys_two_servers_union_ok' "$T/keys.log" ||
    { cat "$T/keys.log"; die "the two-server test did not run"; }
echo "measured: $(grep -c '\[       OK \]' "$T/unit.log") registry tests passed on PostgreSQL $("$PG_BIN/postgres" -V | grep -oE '[0-9]+\.[0-9]+' | head -1)"
echo "store_pg: ok"
