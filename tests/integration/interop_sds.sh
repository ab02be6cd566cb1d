#!/usr/bin/env bash
# Envoy's Secret Discovery Service (SDS v3) on the agent's socket, spoken
# with Envoy's own generated Go types (go-control-plane, pinned in
# tests/interop/go-sds/go.mod) over grpc-go, as an Envoy sidecar would:
#   - StreamSecrets: ROOTCA as Envoy's SPIFFE validator for our trust
#     domain, checked field by field (the bundle's CAs parsed, the SVID
#     verified against them); an ACK; a changed subscription; a NACK that
#     is logged and not answered with the same version; ALL; a stale nonce
#     ignored; half-close ends the call;
#   - a stream that receives the rotated SVID (10 s entry TTL) without
#     re-subscribing;
#   - FetchSecrets of "default" and of the SVID's SPIFFE ID;
#   - DeltaSecrets answers Unimplemented;
#   - another workload's SPIFFE ID, a foreign trust domain and an unknown
#     name answer PermissionDenied;
#   - an agent run with --sds-validator trusted_ca serves ROOTCA as a plain
#     trusted_ca list;
#   - a request split over several HTTP/2 DATA frames is read whole, one
#     over 64 KiB answers ResourceExhausted.
# A machine without Go, or without access to the Go module proxy, reports
# the test as skipped.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
: "${MAYFLY_BIN:?}"
[ "$(id -u)" = 0 ] || skip "needs root (entries select unix:uid:0)"
command -v go >/dev/null || skip "no Go toolchain (go-control-plane SDS interop)"

rc=0
../../scripts/install-interop-deps.sh go || rc=$?
case $rc in
0) ;;
3 | 4) skip "go-control-plane modules not available here (install-interop-deps.sh go: $rc)" ;;
*) die "install-interop-deps.sh go failed ($rc)" ;;
esac

make_tmp
SRC="$(cd ../interop/go-sds && pwd)"
SDS_BIN="$T/interop-sds"
t0=$(date +%s%N)
(cd "$SRC" && go build -o "$SDS_BIN" .) || die "go build of tests/interop/go-sds"
echo "measured: go build of the SDS client took $((($(date +%s%N) - t0) / 1000000)) ms"
echo "note: $(cd "$SRC" && go list -m github.com/envoyproxy/go-control-plane/envoy), $(go version | cut -d' ' -f3)"

TD=example.org
AGENT_ID=spiffe://$TD/mayfly/agent/node1
AGENT2_ID=spiffe://$TD/mayfly/agent/node2
APP=spiffe://$TD/envoy-app
APP2=spiffe://$TD/envoy-app2
OTHER=spiffe://$TD/someone-else
start_ca a "$T/ca"
# a short TTL, so that the SVID rotates within seconds
"$CA_BIN" entry create --admin-socket "$CA_SOCK_a" --spiffe-id "$APP" \
    --parent-id "$AGENT_ID" --selector unix:uid:0 --ttl 10s >/dev/null
add_entry a "$OTHER" "$AGENT_ID" unix:uid:65534 >/dev/null
add_entry a "$APP2" "$AGENT2_ID" unix:uid:0 >/dev/null
start_agent n1 "$T/n1" a --join-token "$(fresh_token a "$AGENT_ID")"
start_agent n2 "$T/n2" a --join-token "$(fresh_token a "$AGENT2_ID")" --sds-validator trusted_ca
wait_until 10 fetch_has root "$AGENT_SOCK_n1" "$APP"
wait_until 10 fetch_has root "$AGENT_SOCK_n2" "$APP2"

sds() {
    SPIFFE_ENDPOINT_SOCKET="unix://$1" "$SDS_BIN" "${@:2}" || die "SDS check: ${*:2}"
}

# the rotation stream runs while the other checks go on
SPIFFE_ENDPOINT_SOCKET="unix://$AGENT_SOCK_n1" "$SDS_BIN" rotate "$APP" 30 >"$T/rotate.out" 2>&1 &
rot_pid=$!
track_pid "$rot_pid"

sds "$AGENT_SOCK_n1" xds "$TD" "$APP"
LOG_ON_FAIL="$T/n1/agent.log" wait_for_log "$T/n1/agent.log" 'SDS client rejected a response' 10
grep 'SDS client rejected a response' "$T/n1/agent.log" | grep -q 'interop-sds rejects version' ||
    die "the NACK's message is not in the agent's log"
echo "ok: the NACK is logged with the client's message"
sds "$AGENT_SOCK_n1" fetch "$APP"
sds "$AGENT_SOCK_n1" delta
sds "$AGENT_SOCK_n1" denied "$OTHER"
sds "$AGENT_SOCK_n1" denied "spiffe://elsewhere.test"
sds "$AGENT_SOCK_n1" denied "no such%secret"
sds "$AGENT_SOCK_n2" trusted-ca "$TD"
sds "$AGENT_SOCK_n1" limits

wait "$rot_pid" || { cat "$T/rotate.out"; die "SDS rotation stream"; }
cat "$T/rotate.out"
echo "ok"
