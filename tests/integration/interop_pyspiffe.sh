#!/usr/bin/env bash
# py-spiffe (the `spiffe` package at the version pinned in
# tests/interop/python/requirements.txt), unchanged, against a real CA and
# agent: tests/interop/python/pyspiffe_check.py finds the agent through
# SPIFFE_ENDPOINT_SOCKET alone and fetches X.509 SVIDs and bundles (chain
# verified against the bundle), JWT-SVIDs and JWT bundles, validates a
# JWT-SVID with JwtSvid.parse_and_validate and through the agent, and sees
# the refusals (wrong audience, changed signature, another subject).
# A machine where the pinned packages cannot be installed reports the test
# as skipped.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
: "${MAYFLY_BIN:?}"

rc=0
t0=$(date +%s%N)
PY=$(../../scripts/install-interop-deps.sh py) || rc=$?
case $rc in
0) ;;
3 | 4) skip "py-spiffe not installable here (install-interop-deps.sh py: $rc)" ;;
*) die "install-interop-deps.sh py failed ($rc)" ;;
esac
echo "measured: py-spiffe venv ready in $((($(date +%s%N) - t0) / 1000000)) ms ($PY)"
CHECK="$(cd ../interop/python && pwd)/pyspiffe_check.py"

make_tmp
TD=example.org
AGENT_ID=spiffe://$TD/mayfly/agent/node1
PY_APP=spiffe://$TD/py-app
start_ca a "$T/ca"
TOKEN=$(fresh_token a "$AGENT_ID")
add_entry a "$PY_APP" "$AGENT_ID" "unix:uid:$(id -u)" >/dev/null
start_agent n1 "$T/n1" a --join-token "$TOKEN"
SOCK=$AGENT_SOCK_n1
wait_until 10 fetch_has root "$SOCK" "$PY_APP"
export SPIFFE_ENDPOINT_SOCKET="unix://$SOCK"

"$PY" "$CHECK" "$PY_APP" interop-aud || die "py-spiffe checks"

echo "ok"
