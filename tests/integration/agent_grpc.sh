#!/usr/bin/env bash
# The standard SPIFFE Workload API over gRPC, driven by a client we did not
# write: Debian's python3-grpcio, with stubs generated now by
# python3-grpc-tools from api/proto/workload.proto (into the temp dir, never
# committed). On the agent's one socket, as SPIFFE_ENDPOINT_SOCKET:
# FetchX509SVID (DER chain verifies against the bundle, PKCS#8 key matches
# the leaf), a stream that sees a rotation, the error codes (no security
# header, a uid with no entry), FetchX509Bundles, FetchJWTSVID then
# ValidateJWTSVID, forged and expired JWTs refused, FetchJWTBundles;
# many concurrent streams; clients that never read; and the JSON API and
# the CLI still answering on the same socket.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
: "${MAYFLY_BIN:?}"
command -v setpriv >/dev/null || skip "setpriv missing"
[ "$(id -u)" = 0 ] || skip "needs root for the other-uid workload"

need_grpc_python

make_tmp
chmod 0755 "$T" # the other-uid workload must reach the agent's socket
ADMIN="$T/ca/admin.sock"
SOCK="$T/n1/agent.sock"
# the CA comes back on the same port: a reserved one below the ephemeral
# range, which no outgoing connection of a parallel test can be holding
CA_PORT=$(pick_port)
ca_up() { start_ca a "$T/ca" --listen "127.0.0.1:$CA_PORT" --svid-ttl 20s --ca-ttl 10m; }
CA=("$MAYFLY_BIN/mayfly-ca")
AGENT_ID=spiffe://example.org/mayfly/agent/node1
APP=spiffe://example.org/grpc-app
CHECK="$(cd ../grpc && pwd)/workload_check.py"

grpc_stubs "$T/gen"
export MAYFLY_GRPC_GEN="$T/gen" SPIFFE_ENDPOINT_SOCKET="unix://$SOCK"
export MAYFLY_CA_KEYS="$T/ca/data/keys" MAYFLY_CA="${CA[0]}" MAYFLY_ADMIN="$ADMIN"
export MAYFLY_PARENT="$AGENT_ID"
check() { "$PY" "$CHECK" "$@" || die "check $1"; }

ca_up
TOKEN=$("${CA[@]}" token generate --admin-socket "$ADMIN" --spiffe-id "$AGENT_ID")
"${CA[@]}" entry create --admin-socket "$ADMIN" --spiffe-id "$APP" \
    --parent-id "$AGENT_ID" --selector unix:uid:0 >/dev/null
# the CA publishes a JWT key next to its X.509 authority
"${CA[@]}" bundle show --admin-socket "$ADMIN" --format spiffe |
    "$PY" -c 'import json,sys; k=json.load(sys.stdin)["keys"]; j=[x for x in k if x["use"]=="jwt-svid"]; assert j and all(x.get("kid") for x in j), k' ||
    die "no jwt-svid key with a kid in the CA bundle"

start_agent n1 "$T/n1" a --join-token "$TOKEN"
wait_until 5 fetch_has root "$SOCK" "$APP"

# 1. X.509 over gRPC, on the socket the JSON API uses too
check x509 "$APP"
check x509-bundles
check no-header
setpriv --reuid=65534 --regid=65534 --clear-groups env MAYFLY_GRPC_GEN="$T/gen" \
    SPIFFE_ENDPOINT_SOCKET="$SPIFFE_ENDPOINT_SOCKET" "$PY" "$CHECK" denied ||
    die "check denied"
fetch_as root "$SOCK" | grep -q "$APP" || die "the JSON API stopped answering on the socket"

# 2. JWT-SVIDs end to end
check jwt-bundles
check jwt "$APP"
tok=$("$MAYFLY_BIN/mayfly-agent" fetch jwt --audience cli-aud --socket "$SOCK" 2>/dev/null)
[ -n "$tok" ] || die "fetch jwt printed no token"
"$MAYFLY_BIN/mayfly-agent" validate jwt --audience cli-aud --svid "$tok" --socket "$SOCK" |
    grep -q "spiffe_id=$APP" || die "validate jwt refused the agent's own token"
if "$MAYFLY_BIN/mayfly-agent" validate jwt --audience other --svid "$tok" \
    --socket "$SOCK" >/dev/null 2>&1; then die "validate jwt took a wrong audience"; fi
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'workload.spiffe.io: true' \
    --unix-socket "$SOCK" http://x/v1/jwt || true)
[ "$code" = 400 ] || die "GET /v1/jwt without audience: $code, want 400"
curl -sf -H 'workload.spiffe.io: true' --unix-socket "$SOCK" http://x/v1/jwt/bundles |
    grep -q '"kid"' || die "GET /v1/jwt/bundles"

# the CA's JWT endpoint itself, with another TLS stack, as this agent; an
# entry parented to another agent is refused like a missing one
"${CA[@]}" entry create --admin-socket "$ADMIN" --spiffe-id spiffe://example.org/elsewhere \
    --parent-id spiffe://example.org/mayfly/agent/node2 --selector unix:uid:0 >/dev/null
check ca-jwt "$CA_ADDR_a" "$T/n1/bundle.pem" "$T/n1/data/agent.svid" "$APP" \
    spiffe://example.org/elsewhere

# 3. a stream sees a rotation (20 s SVIDs renew at about 10 s); JWT-SVIDs,
# as short here, are renewed at half their life
check rotation "$APP" 30
check jwt-renew "$APP"

# 4. many streams at once; clients that never read cost bounded memory
check many-streams 200
check slow-readers "$AGENT_PID_n1" "$APP" 8 16 100
check x509 "$APP"

# a clean shutdown with streams open; under `make check` any sanitizer
# report (leaks are reported at exit) fails the test
"$PY" - "$SOCK" "$T/streams-open" <<'PY' &
import sys, time, grpc
sys.path.insert(0, __import__("os").environ["MAYFLY_GRPC_GEN"])
import workload_pb2 as pb, workload_pb2_grpc as rpc
s = rpc.SpiffeWorkloadAPIStub(grpc.insecure_channel("unix://" + sys.argv[1]))
its = [s.FetchX509SVID(pb.X509SVIDRequest(), metadata=[("workload.spiffe.io", "true")])
       for _ in range(5)]
for it in its:
    next(it)
open(sys.argv[2], "w").close()
time.sleep(30)
PY
held=$!
track_pid "$held"
wait_until 10 test -f "$T/streams-open"
# the CA first: the agent's worker then leaves its long poll at once and
# shuts down fully (from inside a 30 s long poll it is abandoned, and a
# sanitizer would report everything it owns)
n0=$(grep -c 'CA unavailable' "$T/n1/agent.log" || true)
stop_pid "$CA_PID_a"
wait_until 10 sh -c "[ \$(grep -c 'CA unavailable' '$T/n1/agent.log') -gt $n0 ]"
stop_pid "$AGENT_PID_n1"
kill "$held" 2>/dev/null || true
grep -q 'shutting down' "$T/n1/agent.log" || die "the agent did not shut down cleanly"
if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*/*.log; then
    grep -E -A20 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*/*.log | head -40
    die "sanitizer report"
fi
echo "ok"
