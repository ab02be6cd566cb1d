#!/usr/bin/env bash
# Eviction ends cleanly, without touching the agent's data dir:
#  A. a running agent that is evicted notices at its next sync, says it
#     needs a new join token, drops its identity, and attests again as soon
#     as a new token appears in --join-token-file; then serves again;
#  B. an agent evicted while it was down, restarted with a new --join-token,
#     finds its saved identity refused and attests with the new token
#     (before: "reusing the agent identity" and a loop of refusals).
# The token never appears in a log; a token file open to others is refused.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
AG=spiffe://example.org/mayfly/agent/n1
start_ca a "$T/ca"
add_entry a spiffe://example.org/app $AG unix:uid:0 >/dev/null
LOG_ON_FAIL="$T/A/agent.log"
served() { fetch_as root "$AGENT_SOCK_A" 2>/dev/null | grep -q 'spiffe://example.org/app'; }
tokfile="$T/token"
(umask 077 && fresh_token a $AG >"$tokfile")
tok1=$(cat "$tokfile")

# a token file others can read is refused, naming the fix
mkdir -p "$T/bad"
chmod 644 "$tokfile"
bundle="$T/bad/bundle.pem"
"$CA_BIN" bundle show --admin-socket "$CA_SOCK_a" >"$bundle"
if "$AGENT_BIN" run --data-dir "$T/bad/data" --server "$CA_ADDR_a" --trust-bundle "$bundle" \
    --socket "$T/bad/agent.sock" --join-token-file "$tokfile" >"$T/bad/agent.log" 2>&1; then
    die "the agent started with a token file of mode 644"
fi
grep -q 'chmod 600' "$T/bad/agent.log" || die "the mode refusal does not say what to do"
chmod 600 "$tokfile"

start_agent A "$T/A" a --join-token-file "$tokfile" --backoff-cap 2s
wait_until 10 served

# A: evicted while running
"$CA_BIN" agent evict --admin-socket "$CA_SOCK_a" $AG >/dev/null
t0=$(date +%s)
wait_until 40 grep -q 'evicted by the CA.*new join token' "$T/A/agent.log"
echo "measured: A noticed the eviction after $(($(date +%s) - t0))s"
grep 'evicted by the CA' "$T/A/agent.log" | grep -q ' error ' || die "the eviction is not an error line"
[ ! -e "$T/A/data/agent.svid" ] || die "the evicted identity is still on disk"
(umask 077 && fresh_token a $AG >"$tokfile.new") && mv "$tokfile.new" "$tokfile"
tok2=$(cat "$tokfile")
t1=$(date +%s)
wait_until 15 grep -q 'attested again after the eviction' "$T/A/agent.log"
wait_until 10 served
echo "measured: A attested again $(($(date +%s) - t1))s after the new token was written"
kill -0 "$AGENT_PID_A" || die "agent A exited"

# B: evicted while down, restarted with a new token on the command line
stop_pid "$AGENT_PID_A"
[ -e "$T/A/data/agent.svid" ] || die "the new identity was not saved"
"$CA_BIN" agent evict --admin-socket "$CA_SOCK_a" $AG >/dev/null
tok3=$(fresh_token a $AG)
start_agent A "$T/A" a --join-token "$tok3" --backoff-cap 2s
wait_until 40 grep -q 'attested again after the eviction' <(sed -n '/reusing the agent identity/,$p' "$T/A/agent.log")
wait_until 10 served
n=$("$CA_BIN" agent list --admin-socket "$CA_SOCK_a" | grep -c "$AG" || true)
[ "$n" -eq 1 ] || die "the CA lists the agent $n times"

for t in "$tok1" "$tok2" "$tok3"; do
    ! grep -qF -- "$t" "$T/A/agent.log" "$T/ca/ca.log" "$T/bad/agent.log" || die "a join token was logged"
done
# the CA's refusal names the agent
grep -q "denied.*spiffe_id=$AG.*reason=banned_or_evicted" "$T/ca/ca.log" ||
    die "the CA's denial does not name the agent"
echo "agent_lifecycle_evict: ok"
