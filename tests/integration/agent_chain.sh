#!/usr/bin/env bash
# Full chain from an empty temp dir: a CA, an agent, two workloads under
# different uids each getting only its own identity; propagation time of a
# new entry; rotation before expiry seen on a watch stream; CA down, agent
# restarted while the CA is down, CA back; entry deletion; ban ages out.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
: "${MAYFLY_BIN:?}"
command -v setpriv >/dev/null || skip "setpriv missing"
[ "$(id -u)" = 0 ] || skip "needs root for the other-uid workload"

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

ca_up
TOKEN=$("${CA[@]}" token generate --admin-socket "$ADMIN" --spiffe-id "$AGENT_ID")
"${CA[@]}" entry create --admin-socket "$ADMIN" --spiffe-id spiffe://example.org/root-app \
    --parent-id "$AGENT_ID" --selector unix:uid:0 >/dev/null

start_agent n1 "$T/n1" a --join-token "$TOKEN"
[ "$(stat -c %a "$T/n1/data/agent.svid")" = 600 ] || die "agent.svid not 0600"
[ "$(stat -c %a "$SOCK")" = 666 ] || die "socket not 0666"

# 1. root gets its identity; nobody gets 403 with no key material
wait_until 5 fetch_has root "$SOCK" spiffe://example.org/root-app
if out=$(fetch_as nobody "$SOCK" 2>&1); then die "uid 65534 was served: $out"; fi
echo "$out" | grep -q 403 || die "expected 403, got: $out"
echo "$out" | grep -q 'PRIVATE KEY' && die "403 leaked key material"
# without the security header: 400
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" http://x/v1/x509 || true)
[ "$code" = 400 ] || die "no header: got $code, want 400"
# a wrong value is told apart from a missing header
body=$(curl -s -H 'workload.spiffe.io: yes' --unix-socket "$SOCK" http://x/v1/x509 || true)
grep -q 'must be \\"true\\"' <<<"$body" || die "wrong header value: $body"
"$MAYFLY_BIN/mayfly-agent" healthcheck --socket "$SOCK" >/dev/null || die "healthcheck"

# 2. a new entry reaches its workload fast (measured)
t0=$(date +%s%N)
"${CA[@]}" entry create --admin-socket "$ADMIN" --spiffe-id spiffe://example.org/nobody-app \
    --parent-id "$AGENT_ID" --selector unix:uid:65534 >/dev/null
wait_until 5 fetch_has nobody "$SOCK" spiffe://example.org/nobody-app
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "measured: new entry served to its workload in ${ms} ms"
[ "$ms" -lt 1000 ] || die "propagation took ${ms} ms (>= 1 s)"
# each only its own
fetch_as nobody "$SOCK" | grep -q root-app && die "nobody got root's identity"
fetch_as root "$SOCK" | grep -q nobody-app && die "root got nobody's identity"

# 3. fetch --write: files, modes, symlink refusal
mkdir "$T/out"
"$MAYFLY_BIN/mayfly-agent" fetch x509 --socket "$SOCK" --write "$T/out" >/dev/null
[ "$(stat -c %a "$T/out/svid.0.key")" = 600 ] || die "svid.0.key not 0600"
grep -q 'BEGIN CERTIFICATE' "$T/out/svid.0.pem" || die "svid.0.pem"
grep -q 'BEGIN CERTIFICATE' "$T/out/bundle.0.pem" || die "bundle.0.pem"
ln -s "$T/out" "$T/outlink"
if "$MAYFLY_BIN/mayfly-agent" fetch x509 --socket "$SOCK" --write "$T/outlink" \
    >/dev/null 2>&1; then die "wrote through a symlinked dir"; fi

# 4. rotation before expiry on a watch stream, with --exec reloads
mkdir "$T/w"
SPIFFE_ENDPOINT_SOCKET="unix://$SOCK" "$MAYFLY_BIN/mayfly-agent" watch --write "$T/w" \
    --exec "echo reload >>$T/reloads" >"$T/watch.out" 2>>"$T/watch.log" &
track_pid $!
# second_at is when we first saw the second document: an upper bound of
# its arrival, so the "before expiry" check below errs on the strict side
second_at=""
for ((i = 0; i < 300; i++)); do
    n=$(grep -c 'root-app' "$T/watch.out" 2>/dev/null || true)
    if [ "${n:-0}" -ge 2 ]; then second_at=$(date +%s); break; fi
    sleep 0.1
done
[ -n "$second_at" ] || die "watch never showed a rotation in 30 s"
first_exp=$(grep 'root-app' "$T/watch.out" | head -1 | sed 's/.*expires_at=\([^ ]*\).*/\1/')
second_exp=$(grep 'root-app' "$T/watch.out" | sed -n 2p | sed 's/.*expires_at=\([^ ]*\).*/\1/')
[ "$second_exp" != "$first_exp" ] || die "second document has the same expiry"
[ "$second_at" -lt "$(date -d "$first_exp" +%s)" ] || die "rotated only after expiry"
echo "measured: rotated $(( $(date -d "$first_exp" +%s) - second_at )) s before expiry"
grep -q reload "$T/reloads" || die "--exec did not run"

# 5. CA down: still served; agent restarted while the CA is down: still served
stop_pid "$CA_PID_a"
fetch_as root "$SOCK" | grep -q root-app || die "not served with the CA down"
stop_pid "$AGENT_PID_n1"
start_agent n1 "$T/n1" a
fetch_as root "$SOCK" | grep -q root-app || die "not served after a restart with the CA down"
fetch_as nobody "$SOCK" | grep -q nobody-app || die "nobody not served after restart"
# with SVIDs in its disk cache, it opened its socket without the whole first-sync wait
grep -Eq 'serving [0-9]+ cached SVIDs while the first sync with the CA goes on' "$T/n1/agent.log" ||
    die "the restarted agent did not say it serves its cache before the first sync"

# 6. CA back: renewals resume (a new SVID appears)
old=$(fetch_as root "$SOCK" | sed -n 's/.*expires_at=\([^ ]*\).*/\1/p' | head -1)
ca_up
for ((i = 0; i < 300; i++)); do
    new=$(fetch_as root "$SOCK" 2>/dev/null | sed -n 's/.*expires_at=\([^ ]*\).*/\1/p' | head -1)
    [ -n "$new" ] && [ "$new" != "$old" ] && break
    sleep 0.1
done
[ "$new" != "$old" ] || die "no renewal after the CA came back"

# 7. a deleted entry disappears from its workload at once
id=$("${CA[@]}" entry list --admin-socket "$ADMIN" --json |
    python3 -c 'import json,sys; print([e["id"] for e in json.load(sys.stdin)["entries"] if e["spiffe_id"].endswith("/nobody-app")][0])')
"${CA[@]}" entry delete --admin-socket "$ADMIN" "$id" >/dev/null
wait_until 2 fetch_denied nobody "$SOCK"

# 8. a banned agent's SVIDs age out within one TTL
"${CA[@]}" agent ban --admin-socket "$ADMIN" "$AGENT_ID" >/dev/null
wait_until 30 fetch_denied root "$SOCK"
echo "ok"
