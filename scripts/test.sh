#!/usr/bin/env bash
# The one command that goes from a fresh Debian machine to a green test run:
# installs what is missing, builds with -Werror, runs every test.
#   scripts/test.sh          unit + integration tests
#   scripts/test.sh check    the same under AddressSanitizer + UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
case "${1:-test}" in
    test) make -j"$jobs" all && make -j"$jobs" test ;;
    check) make -j"$jobs" SAN=1 all && make -j"$jobs" check ;;
    *) echo "usage: scripts/test.sh [test|check]" >&2; exit 2 ;;
esac
