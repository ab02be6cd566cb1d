#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The demo (scripts/demo.sh) in CI mode, so that what a newcomer runs first
# is exercised by every test run: it fails when any step of the story fails
# (an identity not served, a handshake that does not verify, a refusal that
# does not happen, no rotation, a sanitizer report under `make check`).
# Uses the binaries in $MAYFLY_BIN; builds nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${MAYFLY_BIN:?}"
# exit 77: skipped (scripts/run-tests.sh)
[ "$(id -u)" = 0 ] || { echo "skip: the demo runs workloads as other uids and needs root"; exit 77; }
command -v setpriv >/dev/null || { echo "skip: setpriv missing"; exit 77; }

out=$(mktemp /tmp/mayfly-demo-test.XXXXXX)
trap 'rm -f "$out"' EXIT
t0=$(date +%s%N)
if ! scripts/demo.sh --ci >"$out" 2>&1; then
    cat "$out"
    echo "FAIL: scripts/demo.sh --ci failed"
    exit 1
fi
ms=$((($(date +%s%N) - t0) / 1000000))
cat "$out"
# CI mode: no escape sequences in the output
if grep -q $'\e' "$out"; then echo "FAIL: colour codes in --ci output"; exit 1; fi
grep -q '^demo: ok$' "$out" || { echo "FAIL: no final ok line"; exit 1; }
echo "measured: the demo ran in ${ms} ms"
[ "$ms" -lt 45000 ] || { echo "FAIL: the demo took ${ms} ms (budget 45 s)"; exit 1; }
