#!/usr/bin/env bash
# Full chain from an empty temp dir: a CA, an agent, two workloads under
# different uids each getting only its own identity; propagation time of a
# new entry; rotation before expiry seen on a watch stream; CA down, agent
# restarted while the CA is down, CA back; entry deletion; ban ages out.
set -euo pipefail
cd "$(dirname "$0")"
source ./agent_lib.sh
: "${MAYFLY_BIN:?}"
command -v setpriv >/dev/null || skip "setpriv missing"
[ "$(id -u)" = 0 ] || skip "needs root for the other-uid workload"

al_setup
AL_PORT=$(al_pick_port)
AL_ADMIN="$AL_T/admin.sock"
AL_SOCK="$AL_T/run/agent.sock"
AL_SVID_TTL=20s
CA=("$MAYFLY_BIN/mayfly-ca")
AGENT_ID=spiffe://example.org/mayfly/agent/node1

al_start_ca
"${CA[@]}" bundle show --admin-socket "$AL_ADMIN" --format pem >"$AL_T/bundle.pem"
TOKEN=$("${CA[@]}" token generate --admin-socket "$AL_ADMIN" --spiffe-id "$AGENT_ID")
"${CA[@]}" entry create --admin-socket "$AL_ADMIN" --spiffe-id spiffe://example.org/root-app \
    --parent-id "$AGENT_ID" --selector unix:uid:0 >/dev/null

al_start_agent --join-token "$TOKEN"
[ "$(stat -c %a "$AL_T/agent/agent.svid")" = 600 ] || al_fail "agent.svid not 0600"
[ "$(stat -c %a "$AL_SOCK")" = 666 ] || al_fail "socket not 0666"

# 1. root gets its identity; nobody gets 403 with no key material
al_wait_fetch root spiffe://example.org/root-app 5
if out=$(al_fetch nobody 2>&1); then al_fail "uid 65534 was served: $out"; fi
echo "$out" | grep -q 403 || al_fail "expected 403, got: $out"
echo "$out" | grep -q 'PRIVATE KEY' && al_fail "403 leaked key material"
# without the security header: 400
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$AL_SOCK" http://x/v1/x509 || true)
[ "$code" = 400 ] || al_fail "no header: got $code, want 400"
"$MAYFLY_BIN/mayfly-agent" healthcheck --socket "$AL_SOCK" >/dev/null || al_fail "healthcheck"

# 2. a new entry reaches its workload fast (measured)
t0=$(date +%s%N)
"${CA[@]}" entry create --admin-socket "$AL_ADMIN" --spiffe-id spiffe://example.org/nobody-app \
    --parent-id "$AGENT_ID" --selector unix:uid:65534 >/dev/null
al_wait_fetch nobody spiffe://example.org/nobody-app 5
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "measured: new entry served to its workload in ${ms} ms"
[ "$ms" -lt 1000 ] || al_fail "propagation took ${ms} ms (>= 1 s)"
# each only its own
al_fetch nobody | grep -q root-app && al_fail "nobody got root's identity"
al_fetch root | grep -q nobody-app && al_fail "root got nobody's identity"

# 3. fetch --write: files, modes, symlink refusal
mkdir "$AL_T/out"
"$MAYFLY_BIN/mayfly-agent" fetch x509 --socket "$AL_SOCK" --write "$AL_T/out" >/dev/null
[ "$(stat -c %a "$AL_T/out/svid.0.key")" = 600 ] || al_fail "svid.0.key not 0600"
grep -q 'BEGIN CERTIFICATE' "$AL_T/out/svid.0.pem" || al_fail "svid.0.pem"
grep -q 'BEGIN CERTIFICATE' "$AL_T/out/bundle.0.pem" || al_fail "bundle.0.pem"
ln -s "$AL_T/out" "$AL_T/outlink"
if "$MAYFLY_BIN/mayfly-agent" fetch x509 --socket "$AL_SOCK" --write "$AL_T/outlink" \
    >/dev/null 2>&1; then al_fail "wrote through a symlinked dir"; fi

# 4. rotation before expiry on a watch stream, with --exec reloads
mkdir "$AL_T/w"
SPIFFE_ENDPOINT_SOCKET="unix://$AL_SOCK" "$MAYFLY_BIN/mayfly-agent" watch --write "$AL_T/w" \
    --exec "echo reload >>$AL_T/reloads" >"$AL_T/watch.out" 2>>"$AL_T/watch.log" &
AL_PIDS+=($!)
# second_at is when we first saw the second document: an upper bound of
# its arrival, so the "before expiry" check below errs on the strict side
second_at=""
for ((i = 0; i < 300; i++)); do
    n=$(grep -c 'root-app' "$AL_T/watch.out" 2>/dev/null || true)
    if [ "${n:-0}" -ge 2 ]; then second_at=$(date +%s); break; fi
    sleep 0.1
done
[ -n "$second_at" ] || al_fail "watch never showed a rotation in 30 s"
first_exp=$(grep 'root-app' "$AL_T/watch.out" | head -1 | sed 's/.*expires_at=\([^ ]*\).*/\1/')
second_exp=$(grep 'root-app' "$AL_T/watch.out" | sed -n 2p | sed 's/.*expires_at=\([^ ]*\).*/\1/')
[ "$second_exp" != "$first_exp" ] || al_fail "second document has the same expiry"
[ "$second_at" -lt "$(date -d "$first_exp" +%s)" ] || al_fail "rotated only after expiry"
echo "measured: rotated $(( $(date -d "$first_exp" +%s) - second_at )) s before expiry"
grep -q reload "$AL_T/reloads" || al_fail "--exec did not run"

# 5. CA down: still served; agent restarted while the CA is down: still served
al_stop_pid "$AL_CA_PID"
al_fetch root | grep -q root-app || al_fail "not served with the CA down"
al_stop_pid "$AL_AGENT_PID"
al_start_agent
al_fetch root | grep -q root-app || al_fail "not served after a restart with the CA down"
al_fetch nobody | grep -q nobody-app || al_fail "nobody not served after restart"

# 6. CA back: renewals resume (a new SVID appears)
old=$(al_fetch root | sed -n 's/.*expires_at=\([^ ]*\).*/\1/p' | head -1)
al_start_ca
for ((i = 0; i < 300; i++)); do
    new=$(al_fetch root 2>/dev/null | sed -n 's/.*expires_at=\([^ ]*\).*/\1/p' | head -1)
    [ -n "$new" ] && [ "$new" != "$old" ] && break
    sleep 0.1
done
[ "$new" != "$old" ] || al_fail "no renewal after the CA came back"

# 7. a deleted entry disappears from its workload at once
id=$("${CA[@]}" entry list --admin-socket "$AL_ADMIN" --json |
    python3 -c 'import json,sys; print([e["id"] for e in json.load(sys.stdin)["entries"] if e["spiffe_id"].endswith("/nobody-app")][0])')
"${CA[@]}" entry delete --admin-socket "$AL_ADMIN" "$id" >/dev/null
al_wait_denied nobody 2

# 8. a banned agent's SVIDs age out within one TTL
"${CA[@]}" agent ban --admin-socket "$AL_ADMIN" "$AGENT_ID" >/dev/null
al_wait_denied root 30
echo "ok"
