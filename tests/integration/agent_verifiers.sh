#!/usr/bin/env bash
# Verifiers without an identity: a uid with no entry is refused the bundles
# (GET /v1/bundles, /v1/jwt/bundles; gRPC FetchX509Bundles,
# FetchJWTBundles) and JWT validation (POST /v1/jwt/validate, gRPC
# ValidateJWTSVID) by default, like the SVIDs; with
# --allow-unauthenticated-verifiers (restart, same data dir) it gets them.
# A uid with an entry gets them either way.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
command -v setpriv >/dev/null || skip "setpriv missing"
command -v curl >/dev/null || skip "curl missing"
[ "$(id -u)" = 0 ] || skip "needs root for the other-uid workload"
need_grpc_python

make_tmp
chmod 0755 "$T"
AG=spiffe://example.org/mayfly/agent/v1
APP=spiffe://example.org/verifier-app
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
add_entry a "$APP" "$AG" unix:uid:0 >/dev/null
start_agent v "$T/v" a --join-token "$(fresh_token a "$AG")"
LOG_ON_FAIL="$T/v/agent.log"
SOCK="$T/v/agent.sock"
wait_until 5 fetch_has root "$SOCK" "$APP"
TOK=$("$AGENT_BIN" fetch jwt --socket "$SOCK" --audience v-aud)
[ -n "$TOK" ] || die "no JWT-SVID for root"

grpc_stubs "$T/gen"
cat >"$T/gen/verifiers.py" <<'PYEOF'
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc
import workload_pb2 as pb
import workload_pb2_grpc as pb_grpc
want, tok = sys.argv[1], sys.argv[2]
s = pb_grpc.SpiffeWorkloadAPIStub(grpc.insecure_channel(os.environ["SPIFFE_ENDPOINT_SOCKET"]))
MD = [("workload.spiffe.io", "true")]
def first(it):
    m = next(it)
    it.cancel()
    return m
calls = [
    ("FetchX509Bundles", lambda: len(first(s.FetchX509Bundles(pb.X509BundlesRequest(), metadata=MD)).bundles)),
    ("FetchJWTBundles", lambda: len(first(s.FetchJWTBundles(pb.JWTBundlesRequest(), metadata=MD)).bundles)),
    ("ValidateJWTSVID", lambda: s.ValidateJWTSVID(
        pb.ValidateJWTSVIDRequest(audience="v-aud", svid=tok), metadata=MD).spiffe_id),
]
bad = 0
for name, fn in calls:
    try:
        got = fn()
        res = "ok" if got else "empty"
    except grpc.RpcError as e:
        res = e.code().name
    print("%s uid %d: %s" % (name, os.getuid(), res))
    if res != want:
        bad += 1
sys.exit(1 if bad else 0)
PYEOF
chmod -R a+rX "$T/gen"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
grpc_as() { # WHO WANT
    local pre=()
    [ "$1" = nobody ] && pre=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    "${pre[@]}" env SPIFFE_ENDPOINT_SOCKET="unix://$SOCK" "$PY" "$T/gen/verifiers.py" "$2" "$TOK"
}
# JSON: status of each verifier call as WHO, space separated
json_as() {
    local pre=() out="" c
    [ "$1" = nobody ] && pre=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    local H=(-s -o /dev/null -w '%{http_code}' -H 'workload.spiffe.io: true' --unix-socket "$SOCK")
    c=$("${pre[@]}" curl "${H[@]}" http://x/v1/bundles); out+="$c "
    c=$("${pre[@]}" curl "${H[@]}" http://x/v1/jwt/bundles); out+="$c "
    c=$("${pre[@]}" curl "${H[@]}" -X POST -H 'Content-Type: application/json' \
        --data "{\"audience\":\"v-aud\",\"svid\":\"$TOK\"}" http://x/v1/jwt/validate)
    out+="$c"
    echo "$out"
}

# default: an entry-less uid gets nothing; root (with an entry) everything
[ "$(json_as nobody)" = "403 403 403" ] || die "JSON as nobody: $(json_as nobody)"
[ "$(json_as root)" = "200 200 200" ] || die "JSON as root: $(json_as root)"
grpc_as nobody PERMISSION_DENIED || die "gRPC as nobody not refused"
grpc_as root ok || die "gRPC as root refused"
nobody "$AGENT_BIN" validate jwt --socket "$SOCK" --audience v-aud --svid "$TOK" \
    >/dev/null 2>&1 && die "validate jwt as nobody accepted"
grep -q 'workload denied.*path=/v1/jwt/validate' "$T/v/agent.log" || die "no denial logged"

# with the option, any local process may verify (restart on the same data dir)
stop_pid "$AGENT_PID_v"
start_agent v "$T/v" a --allow-unauthenticated-verifiers
wait_until 5 fetch_has root "$SOCK" "$APP"
[ "$(json_as nobody)" = "200 200 200" ] || die "JSON as nobody with the option: $(json_as nobody)"
grpc_as nobody ok || die "gRPC as nobody with the option"
nobody "$AGENT_BIN" validate jwt --socket "$SOCK" --audience v-aud --svid "$TOK" |
    grep -q "spiffe_id=$APP" || die "validate jwt as nobody with the option"
# the SVIDs themselves stay refused
fetch_denied nobody "$SOCK" || die "nobody got an SVID with the option"
echo "agent_verifiers: ok"
