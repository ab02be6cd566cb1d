#!/usr/bin/env bash
# One local user floods the Workload API socket; everyone else is still
# served (docs/security.md, rows 29-31):
#   1. a burst of 135 connections from a uid with no identity (65534), each
#      sending half a request line, held 1 s, then closed: afterwards a
#      workload of another uid (1001) fetches over JSON and gRPC within 2 s.
#      Run with --max-connections-per-uid equal to --max-connections, so the
#      burst reaches the global limit: the agent used to hand libmicrohttpd
#      more connections than its limit, which wedged it for good.
#   2. the same uid holds as many connections as it can, 100 slow-header
#      JSON and 100 idle gRPC ones, with the default share: the agent keeps
#      exactly its share (a quarter of --max-connections), root and uid 1001
#      fetch throughout, and the slow headers are closed at
#      --connection-timeout after accept although each trickles a byte
#      every 500 ms.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null ||
    { echo "note: needs root and setpriv for the other-uid cases, skipped"; exit 0; }
chmod 755 "$T"
FLOOD="$MAYFLY_BUILD/tools/wl_flood"
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups "$@"; }
need_grpc_python
grpc_stubs "$T/gen"
# one FetchX509SVID over gRPC as uid $1, within 2 s; prints the SPIFFE ID
grpc_fetch() {
    as "$1" env PYTHONPATH="$T/gen" "$PY" - "$2" <<'PY'
import sys, grpc
import workload_pb2 as pb, workload_pb2_grpc as rpc
ch = grpc.insecure_channel("unix://" + sys.argv[1])
s = rpc.SpiffeWorkloadAPIStub(ch)
it = s.FetchX509SVID(pb.X509SVIDRequest(), metadata=[("workload.spiffe.io", "true")],
                     timeout=2)
print(next(it).svids[0].spiffe_id)
it.cancel()
PY
}
json_fetch() { # as uid $1, within 2 s
    if [ "$1" = 0 ]; then
        timeout 2 "$AGENT_BIN" fetch x509 --socket "$2"
    else
        timeout 2 setpriv --reuid="$1" --regid="$1" --clear-groups \
            "$AGENT_BIN" fetch x509 --socket "$2"
    fi
}

start_ca a "$T/ca"
AG=spiffe://example.org/mayfly/agent/n1
add_entry a spiffe://example.org/root-app $AG unix:uid:0 >/dev/null
add_entry a spiffe://example.org/app $AG unix:uid:1001 >/dev/null

# --- 1. the burst
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $AG)" --max-connections 128 \
    --max-connections-per-uid 128
LOG_ON_FAIL="$T/n1/agent.log"
chmod 755 "$T/n1"
wait_until 10 json_fetch 1001 "$AGENT_SOCK_n1"
out=$(as 65534 "$FLOOD" --socket "$AGENT_SOCK_n1" --burst 135 --hold-ms 1000) ||
    die "wl_flood: $out"
t0=$(date +%s%N)
ok=""
for _ in $(seq 1 20); do
    if json_fetch 1001 "$AGENT_SOCK_n1" 2>/dev/null | grep -q spiffe://example.org/app &&
        grpc_fetch 1001 "$AGENT_SOCK_n1" >/dev/null 2>&1; then
        ok=1
        break
    fi
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
[ -n "$ok" ] && [ "$ms" -le 2000 ] ||
    die "after the burst ($out) uid 1001 was not served within 2 s (${ms} ms)"
grpc_fetch 1001 "$AGENT_SOCK_n1" | grep -q spiffe://example.org/app || die "gRPC after the burst"
echo "measured: burst of 135 half requests from uid 65534 ($out), held 1 s: uid 1001 served over JSON and gRPC ${ms} ms after it ended"
json_fetch 0 "$AGENT_SOCK_n1" | grep -q root-app || die "root after the burst"
stop_pid "$AGENT_PID_n1"

# --- 2. one uid holds all it can
start_agent n1 "$T/n1" a --max-connections 128 --connection-timeout 3
wait_until 10 json_fetch 1001 "$AGENT_SOCK_n1"
as 65534 "$FLOOD" --socket "$AGENT_SOCK_n1" --json 100 --grpc 100 --trickle-ms 500 \
    --hold-ms 6000 >"$T/flood.out" 2>&1 &
fl=$!
track_pid "$fl"
wait_until 10 grep -q '^kept=' "$T/flood.out"
served=0
while kill -0 "$fl" 2>/dev/null; do
    json_fetch 1001 "$AGENT_SOCK_n1" | grep -q spiffe://example.org/app ||
        die "uid 1001 refused during the flood ($(cat "$T/flood.out"))"
    json_fetch 0 "$AGENT_SOCK_n1" | grep -q root-app || die "root refused during the flood"
    grpc_fetch 1001 "$AGENT_SOCK_n1" >/dev/null || die "uid 1001 refused over gRPC during the flood"
    served=$((served + 1))
done
wait "$fl" || die "wl_flood: $(cat "$T/flood.out")"
cat "$T/flood.out"
kept=$(sed -n 's/^kept=\([0-9]*\) .*/\1/p' "$T/flood.out")
life=$(sed -n 's/.*json_max_life_ms=\([0-9]*\).*/\1/p' "$T/flood.out")
jopen=$(sed -n 's/^json_open=\([0-9]*\) .*/\1/p' "$T/flood.out")
[ "$served" -ge 3 ] || die "only $served rounds of fetches during the flood"
[ "$kept" -le 32 ] && [ "$kept" -ge 1 ] || die "the flooding uid kept $kept connections (share 32)"
[ "$jopen" = 0 ] || die "$jopen slow-header connections outlived --connection-timeout 3"
[ "$life" -le 4500 ] || die "a slow header lived $life ms (deadline 3 s after accept)"
echo "measured: uid 65534 flooding with 200 connections kept $kept (share 32 of 128); $served rounds of root, uid 1001 JSON and gRPC fetches all served; slow headers closed after at most $life ms (deadline 3 s)"
echo "attack_wl_flood: ok"
