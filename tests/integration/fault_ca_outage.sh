#!/usr/bin/env bash
# The CA unreachable for longer than an SVID lifetime, two cases at once:
#  A. longer than the workload SVIDs (4 s) but not the agent's own (30 s):
#     the agent never serves an expired SVID (workloads get 403 once theirs
#     expire), reports the outage, and once the CA is back it renews and
#     serves again by itself, without attesting again;
#  B. longer than the agent's own SVID (5 s): the same while the CA is away;
#     once it is back the CA refuses the expired agent SVID (by design: an
#     expired credential is never renewed, see docs/security.md), the agent
#     says so and what to do, and a restart with a new join token recovers.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
AG=spiffe://example.org/mayfly/agent/n1
pa=$(pick_port)
pb=$(pick_port)
start_ca a "$T/ca_a" --listen "127.0.0.1:$pa" --svid-ttl 30s --ca-ttl 3m
start_ca b "$T/ca_b" --listen "127.0.0.1:$pb" --svid-ttl 5s --ca-ttl 30s
"$CA_BIN" entry create --admin-socket "$CA_SOCK_a" --spiffe-id spiffe://example.org/app \
    --parent-id $AG --selector unix:uid:0 --ttl 4s >/dev/null
add_entry b spiffe://example.org/app $AG unix:uid:0 >/dev/null
start_agent A "$T/A" a --join-token "$(fresh_token a $AG)" --backoff-cap 2s
start_agent B "$T/B" b --join-token "$(fresh_token b $AG)" --backoff-cap 2s
LOG_ON_FAIL="$T/A/agent.log"
served() { fetch_as root "$1" 2>/dev/null | grep -q 'spiffe://example.org/app'; }
wait_until 10 served "$AGENT_SOCK_A"
wait_until 10 served "$AGENT_SOCK_B"

# never anything expired: every SVID a fetch returns expires in the future
no_expired() {
    local s out t now
    for s in "$AGENT_SOCK_A" "$AGENT_SOCK_B"; do
        out=$(fetch_as root "$s" 2>/dev/null) || continue
        now=$(date +%s)
        for t in $(sed -n 's/.*expires_at=\([^ ]*\).*/\1/p' <<<"$out"); do
            [ "$(date -d "$t" +%s)" -ge "$now" ] || die "$s served an SVID that expired at $t"
        done
    done
}

stop_pid "$CA_PID_a"
stop_pid "$CA_PID_b"
t0=$(date +%s)
gone_a="" gone_b=""
while [ $(($(date +%s) - t0)) -lt 9 ]; do
    no_expired
    [ -z "$gone_a" ] && ! served "$AGENT_SOCK_A" && gone_a=$(($(date +%s) - t0))
    [ -z "$gone_b" ] && ! served "$AGENT_SOCK_B" && gone_b=$(($(date +%s) - t0))
    sleep 0.2
done
[ -n "$gone_a" ] && [ -n "$gone_b" ] || die "an expired identity was still offered"
grep -q 'CA unavailable' "$T/A/agent.log" || die "A did not report the outage"

start_ca a2 "$T/ca_a" --listen "127.0.0.1:$pa" --svid-ttl 30s --ca-ttl 3m
start_ca b2 "$T/ca_b" --listen "127.0.0.1:$pb" --svid-ttl 5s --ca-ttl 30s
t1=$(date +%s)
# A: service resumes by itself, with the same agent identity
wait_until 15 served "$AGENT_SOCK_A"
echo "measured: A: workload SVIDs gone ${gone_a}s into the outage, served again $(($(date +%s) - t1))s after the CA returned"
! grep -q 'agent attested' "$T/ca_a/ca.log" || die "A attested again"  # the log restarts with the CA
no_expired
# B: the expired agent SVID is refused, and the agent says what to do
wait_until 15 grep -q 'restart the agent with a new --join-token' "$T/B/agent.log"
served "$AGENT_SOCK_B" && die "B served although its agent SVID had expired"
stop_pid "$AGENT_PID_B"
start_agent B "$T/B" b2 --join-token "$(fresh_token b2 $AG)" --backoff-cap 2s
wait_until 15 served "$AGENT_SOCK_B"
echo "measured: B: agent SVID expired during the outage; refused after it, recovered with a new join token"
echo "fault_ca_outage: ok"
