#!/usr/bin/env bash
# A banned agent stops quietly: one error line "banned by the CA", then no
# warn line per backoff step as if the CA were down (before: a warning
# every few seconds, forever); it keeps serving what is still valid. The
# CA's denial log names the agent it refused and why.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
AG=spiffe://example.org/mayfly/agent/n1
start_ca a "$T/ca"
add_entry a spiffe://example.org/app $AG unix:uid:0 >/dev/null
start_agent A "$T/A" a --join-token "$(fresh_token a $AG)" --backoff-cap 1s
LOG_ON_FAIL="$T/A/agent.log"
served() { fetch_as root "$AGENT_SOCK_A" 2>/dev/null | grep -q 'spiffe://example.org/app'; }
wait_until 10 served

"$CA_BIN" agent ban --admin-socket "$CA_SOCK_a" $AG >/dev/null
wait_until 40 grep -q 'error .*banned by the CA' "$T/A/agent.log"
mark=$(wc -l <"$T/A/agent.log")
# a window of 6 backoff caps: an agent that took the ban for an outage
# would have warned about 6 times by now
deadline=$(($(date +%s) + 6))
while [ "$(date +%s)" -lt "$deadline" ]; do
    served || die "the banned agent stopped serving an SVID that is still valid"
    sleep 0.5
done
warns=$(tail -n +"$((mark + 1))" "$T/A/agent.log" | grep -c ' warn ' || true)
errs=$(grep -c 'banned by the CA' "$T/A/agent.log" || true)
echo "measured: after the ban: $errs error line(s), $warns warn line(s) in 6 s"
[ "$errs" -eq 1 ] || die "'banned by the CA' said $errs times"
[ "$warns" -eq 0 ] || die "$warns warn lines in 6 s after the ban"
kill -0 "$AGENT_PID_A" || die "the agent exited"
grep -q "denied.*spiffe_id=$AG.*reason=banned_or_evicted" "$T/ca/ca.log" ||
    die "the CA's denial does not name the agent"
echo "agent_lifecycle_ban: ok"
