#!/usr/bin/env bash
# go-spiffe v2, unchanged (the version pinned in tests/interop/go/go.mod),
# against a real CA and agent: the program tests/interop/go finds the agent
# through SPIFFE_ENDPOINT_SOCKET alone and checks
#   - workloadapi: the X.509 context (SVID verified against the fetched
#     bundles, key matching its leaf), FetchX509SVIDs, FetchX509Bundles;
#   - a WatchX509Context that sees a new SVID (10 s entry TTL) before the
#     old one expires;
#   - FetchJWTSVID, FetchJWTBundles, jwtsvid.ParseAndValidate against those
#     bundles (and its refusals), ValidateJWTSVID through the agent;
#   - spiffetls mTLS with tlsconfig.AuthorizeID against bin/mayfly-mtls (a
#     workload of another uid) in both directions, and a peer that an
#     authorizer does not allow refused, on each side and in each direction.
# A machine without Go, or without access to the Go module proxy, reports
# the test as skipped.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
: "${MAYFLY_BIN:?}"
command -v setpriv >/dev/null || skip "setpriv missing"
[ "$(id -u)" = 0 ] || skip "needs root for the other-uid workload"
command -v go >/dev/null || skip "no Go toolchain (go-spiffe interop)"
MTLS="$MAYFLY_BIN/mayfly-mtls"
[ -x "$MTLS" ] || die "$MTLS not built"

rc=0
../../scripts/install-interop-deps.sh go || rc=$?
case $rc in
0) ;;
3 | 4) skip "go-spiffe modules not available here (install-interop-deps.sh go: $rc)" ;;
*) die "install-interop-deps.sh go failed ($rc)" ;;
esac

make_tmp
chmod 0755 "$T" # the other-uid workload must reach the agent's socket
SRC="$(cd ../interop/go && pwd)"
GO_BIN="$T/interop-go"
t0=$(date +%s%N)
# the default module and build caches (under ~): warm, this is a relink
(cd "$SRC" && go build -o "$GO_BIN" .) || die "go build of tests/interop/go"
echo "measured: go build of the go-spiffe client took $((($(date +%s%N) - t0) / 1000000)) ms"
echo "note: $(cd "$SRC" && go list -m github.com/spiffe/go-spiffe/v2), $(go version | cut -d' ' -f3)"

TD=example.org
AGENT_ID=spiffe://$TD/mayfly/agent/node1
GO_APP=spiffe://$TD/go-app
C_APP=spiffe://$TD/c-app
OTHER=spiffe://$TD/someone-else
start_ca a "$T/ca"
TOKEN=$(fresh_token a "$AGENT_ID")
# a short TTL for the Go workload's SVID, so that it rotates within seconds
"$CA_BIN" entry create --admin-socket "$CA_SOCK_a" --spiffe-id "$GO_APP" \
    --parent-id "$AGENT_ID" --selector unix:uid:0 --ttl 10s >/dev/null
add_entry a "$C_APP" "$AGENT_ID" unix:uid:65534 >/dev/null
start_agent n1 "$T/n1" a --join-token "$TOKEN"
SOCK=$AGENT_SOCK_n1
wait_until 10 fetch_has root "$SOCK" "$GO_APP"
wait_until 10 fetch_has nobody "$SOCK" "$C_APP"
export SPIFFE_ENDPOINT_SOCKET="unix://$SOCK"

gocheck() { "$GO_BIN" "$@" || die "go-spiffe check: $*"; }

# the watch runs while the other checks go on
"$GO_BIN" watch "$GO_APP" 30 >"$T/watch.out" 2>&1 &
watch_pid=$!
track_pid "$watch_pid"

# 1. X.509 and JWT through workloadapi
gocheck x509 "$GO_APP"
gocheck jwt "$GO_APP" interop-aud

# 2. mTLS with mayfly-mtls (uid 65534, $C_APP), both directions
as_c() {
    setpriv --reuid=65534 --regid=65534 --clear-groups \
        env SPIFFE_ENDPOINT_SOCKET="$SPIFFE_ENDPOINT_SOCKET" "$MTLS" "$@"
}
# c_server NAME ALLOW: a one-shot mayfly-mtls server on a port of its own;
# sets C_ADDR and C_PID
c_server() {
    : >"$T/$1.log"
    as_c server --listen 127.0.0.1:0 --allow-id "$2" --once >"$T/$1.log" 2>&1 &
    C_PID=$!
    track_pid "$C_PID"
    LOG_ON_FAIL="$T/$1.log" wait_for_log "$T/$1.log" '^server: listening on ' 10
    C_ADDR=$(sed -n 's/^server: listening on \([^;]*\);.*/\1/p' "$T/$1.log")
}
# go_server NAME ALLOW [--refused]: a one-shot go-spiffe server; sets
# G_ADDR and G_PID
go_server() {
    local name=$1
    shift
    "$GO_BIN" listen "$T/$name.addr" "$@" >"$T/$name.out" 2>&1 &
    G_PID=$!
    track_pid "$G_PID"
    LOG_ON_FAIL="$T/$name.out" wait_until 10 test -s "$T/$name.addr"
    G_ADDR=$(cat "$T/$name.addr")
}

# go client -> mayfly-mtls server
c_server s1 "$GO_APP"
gocheck dial "$C_ADDR" "$C_APP"
wait "$C_PID" || { cat "$T/s1.log"; die "mayfly-mtls server did not accept the go-spiffe client"; }
grep -q "accepted peer $GO_APP" "$T/s1.log" || die "mayfly-mtls server: no 'accepted peer $GO_APP'"
grep -q 'received from .*"hello from go-spiffe"' "$T/s1.log" || die "mayfly-mtls server: no message"
echo "ok: go-spiffe client -> mayfly-mtls server"

# mayfly-mtls client -> go server
go_server g1 "$C_APP"
out=$(as_c client --connect "$G_ADDR" --expect-id "$GO_APP" --message "hello from C" 2>>"$T/c-client.log") ||
    { echo "$out"; cat "$T/g1.out"; die "mayfly-mtls client against the go-spiffe server"; }
grep -q 'server replied: "got your message: hello from C"' <<<"$out" || die "no answer: $out"
wait "$G_PID" || { cat "$T/g1.out"; die "go-spiffe server"; }
cat "$T/g1.out"
echo "ok: mayfly-mtls client -> go-spiffe server"

# 3. refused peers
# the go client does not authorize the server's ID
c_server s2 "$GO_APP"
gocheck dial "$C_ADDR" "$OTHER" --refused
if wait "$C_PID"; then die "mayfly-mtls server reported success with a refusing client"; fi
# the mayfly-mtls server does not authorize the go client's ID
c_server s3 "$OTHER"
gocheck dial "$C_ADDR" "$C_APP" --refused
if wait "$C_PID"; then die "mayfly-mtls server accepted $GO_APP with --allow-id $OTHER"; fi
grep -q "refused peer $GO_APP" "$T/s3.log" || { cat "$T/s3.log"; die "mayfly-mtls server: no 'refused peer'"; }
# the go server does not authorize the mayfly-mtls client's ID
go_server g2 "$OTHER" --refused
if out=$(as_c client --connect "$G_ADDR" --expect-id "$GO_APP" 2>>"$T/c-client.log"); then
    die "mayfly-mtls client completed an exchange with a server that refuses it: $out"
fi
wait "$G_PID" || { cat "$T/g2.out"; die "go-spiffe server accepted $C_APP while authorizing $OTHER"; }
grep '^ok' "$T/g2.out"
# the mayfly-mtls client does not authorize the go server's ID
go_server g3 "$C_APP" --refused
if out=$(as_c client --connect "$G_ADDR" --expect-id "$OTHER" 2>>"$T/c-client.log"); then
    die "mayfly-mtls client accepted $GO_APP while expecting $OTHER: $out"
fi
grep -q 'not who I expected' <<<"$out" || die "mayfly-mtls client: $out"
wait "$G_PID" || { cat "$T/g3.out"; die "go-spiffe server completed an exchange with a refusing client"; }
grep '^ok' "$T/g3.out"
echo "ok: each side refuses a peer its authorizer does not allow, in both directions"

# 4. the watch saw a rotation before expiry
wait "$watch_pid" || { cat "$T/watch.out"; die "go-spiffe watch"; }
cat "$T/watch.out"
echo "ok"
