#!/usr/bin/env bash
# Agent-to-CA calls survive a kept-alive connection the CA closed while it
# was idle (its idle timeout, here a restart of the CA on the same port,
# which closes it the same way): the first `fetch jwt` after it succeeds,
# sent once more on a fresh connection; the retry is counted. A CA that is
# really down is reported as "CA unreachable at ADDR: connection refused".
# JWT-SVIDs are counted on both sides.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
AG=spiffe://example.org/mayfly/agent/n1
port=$(pick_port)
mca=$(pick_port)
mag=$(pick_port)
start_ca a "$T/ca" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mca"
add_entry a spiffe://example.org/app $AG unix:uid:0 >/dev/null
start_agent A "$T/A" a --join-token "$(fresh_token a $AG)" --metrics-listen "127.0.0.1:$mag"
LOG_ON_FAIL="$T/A/agent.log"
jwt() { "$AGENT_BIN" fetch jwt --audience "$1" --socket "$AGENT_SOCK_A"; }
metric() { curl -fsS "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
wait_until 10 jwt warm >/dev/null

# the CA goes away and comes back on the same port: the agent's kept-alive
# connection for JWTs is now closed at the far end
stop_pid "$CA_PID_a"
start_ca a2 "$T/ca" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mca"
for i in 1 2 3 4 5; do
    jwt "after-restart-$i" >/dev/null || die "fetch jwt $i after the CA restart failed on the first try"
    # each try on a connection the CA closed again
    if [ "$i" -lt 5 ]; then
        stop_pid "$CA_PID_a2"
        start_ca a2 "$T/ca" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mca"
    fi
done
re=$(metric "$mag" mayfly_agent_ca_reconnects_total)
[ "${re%.*}" -ge 5 ] || die "reconnects counted: ${re:-none}, want >= 5"
got=$(metric "$mag" mayfly_agent_jwt_svids_fetched_total)
[ "${got%.*}" -ge 6 ] || die "agent counted ${got:-no} JWT-SVIDs fetched"
issued=$(metric "$mca" mayfly_ca_jwt_svids_issued_total)
[ "${issued%.*}" -ge 1 ] || die "CA counted ${issued:-no} JWT-SVIDs issued"
echo "measured: 5/5 first-try fetches after a CA restart, reconnects=$re"

# a real outage says so
stop_pid "$CA_PID_a2"
out=$(jwt outage 2>&1) && die "fetch jwt succeeded with the CA down"
wait_until 10 grep -q "CA unreachable at 127.0.0.1:$port: connection refused" "$T/A/agent.log" ||
    { echo "$out" >&2; die "the outage is not reported as such"; }
fail=$(curl -fsS "http://127.0.0.1:$mag/metrics" |
    awk '$1 ~ /^mayfly_agent_jwt_svid_failures_total\{reason="ca_unreachable"\}/ {print $2}')
[ "${fail%.*}" -ge 1 ] || die "the failed fetch was not counted"

# attestation against the CA that is down keeps the real cause in its
# retry line (it said "success": the cause was overwritten before the log)
mkdir -p "$T/B"
cp "$T/A/bundle.pem" "$T/B/bundle.pem"
"$AGENT_BIN" run --data-dir "$T/B/data" --server "127.0.0.1:$port" --trust-bundle "$T/B/bundle.pem" \
    --socket "$T/B/agent.sock" --join-token not-a-real-token --backoff-cap 1s >"$T/B/agent.log" 2>&1 &
bpid=$!
track_pid "$bpid"
wait_until 10 grep -q 'attestation failed; retrying' "$T/B/agent.log"
stop_pid "$bpid"
grep 'attestation failed; retrying' "$T/B/agent.log" | head -1 | grep -q "CA unreachable at 127.0.0.1:$port: connection refused" ||
    die "attestation retry line lost its cause: $(grep 'attestation failed' "$T/B/agent.log" | head -1)"
echo "agent_lifecycle_stale: ok"
