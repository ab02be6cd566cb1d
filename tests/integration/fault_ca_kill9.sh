#!/usr/bin/env bash
# kill -9 of the CA under signing load: batch signing, agent renewals and
# registry writes all in flight. The node agent keeps serving its workloads
# while the CA is gone; the CA restarts on the same address with every
# acknowledged write (entries, the agent's recorded SVID serial) intact and
# `PRAGMA integrity_check` = ok; the agent resumes by itself (a new entry
# reaches its workload again); signing works again.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
port=$(pick_port)
start_ca a "$T/ca" --listen "127.0.0.1:$port" --agent-rate 1000 --agent-burst 1000
LOG_ON_FAIL="$T/ca/ca.log"
A1=spiffe://example.org/mayfly/agent/n1
A2=spiffe://example.org/mayfly/agent/n2
A3=spiffe://example.org/mayfly/agent/n3 # parent of the written entries (never attests)
add_entry a spiffe://example.org/app $A1 unix:uid:0 >/dev/null
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $A1)"
wait_until 10 fetch_as root "$AGENT_SOCK_n1"

# a simulated second agent that signs batches and renews its own SVID
"$CA_BIN" bundle show --admin-socket "$CA_SOCK_a" >"$T/bundle.pem"
client() { "$CA_CLIENT" "$1" --server "127.0.0.1:$port" --bundle "$T/bundle.pem" "${@:2}"; }
mkdir -p "$T/n2"
client attest --dir "$T/n2" --token "$(fresh_token a $A2)" >/dev/null || die "attest n2"
e2=$(add_entry a spiffe://example.org/batch $A2 unix:uid:4242)

: >"$T/acked"
: >"$T/serials"
: >"$T/signed"
( # acknowledged registry writes
    i=0
    while id=$("$CA_BIN" entry create --admin-socket "$CA_SOCK_a" \
        --spiffe-id "spiffe://example.org/w$i" --parent-id $A3 --selector "unix:uid:$((10000 + i))" \
        2>/dev/null); do
        echo "$id" >>"$T/acked"
        i=$((i + 1))
    done
) &
track_pid $!
( # acknowledged renewals of n2's own SVID (the CA records each serial)
    while client renew --dir "$T/n2" >/dev/null 2>&1; do
        openssl x509 -in "$T/n2/agent.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' |
            sed 's/^0*//' >>"$T/serials"
    done
) &
track_pid $!
( # batch signing load
    while client sign --dir "$T/n2" --entry "$e2" --spiffe-id spiffe://example.org/batch \
        --count 50 >/dev/null 2>&1; do
        echo x >>"$T/signed"
    done
) &
track_pid $!
loaded() {
    [ "$(wc -l <"$T/acked")" -ge 20 ] && [ "$(wc -l <"$T/serials")" -ge 5 ] &&
        [ "$(wc -l <"$T/signed")" -ge 3 ]
}
wait_until 20 loaded
sleep "0.$((RANDOM % 9))"
kill -9 "$CA_PID_a"
wait "$CA_PID_a" 2>/dev/null || true
sleep 0.3 # the load loops see the CA gone and stop

# the agent keeps serving with the CA gone
fetch_as root "$AGENT_SOCK_n1" | grep -q spiffe://example.org/app || die "not served with the CA killed"

start_ca b "$T/ca" --listen "127.0.0.1:$port"
"$CA_BIN" entry list --admin-socket "$CA_SOCK_b" --json >"$T/list"
lost=0
while read -r id; do grep -q "\"$id\"" "$T/list" || lost=$((lost + 1)); done <"$T/acked"
[ "$lost" = 0 ] || die "$lost acknowledged entries lost"
# n2's recorded serial: the last acknowledged one, or a newer one whose
# answer the kill cut off; never an older one
have=$("$CA_BIN" agent show --admin-socket "$CA_SOCK_b" $A2 | sed -n 's/^Serial *: *//p' |
    tr 'A-F' 'a-f' | sed 's/^0*//')
last=$(tail -1 "$T/serials")
if [ "$have" != "$last" ] && grep -qx "$have" "$T/serials"; then
    die "the CA went back to an older SVID serial of n2 ($have, last acknowledged $last)"
fi
# the agent resumes by itself: a new entry reaches its workload
add_entry b spiffe://example.org/after $A1 unix:uid:0 >/dev/null
wait_until 20 sh -c "'$AGENT_BIN' fetch x509 --socket '$AGENT_SOCK_n1' | grep -q example.org/after"
client sign --dir "$T/n2" --entry "$e2" --spiffe-id spiffe://example.org/batch >/dev/null ||
    die "signing after the restart"
stop_pid "$CA_PID_b"
ok=$(sqlite3 "$T/ca/data/mayfly-ca.db" 'PRAGMA integrity_check')
[ "$ok" = ok ] || die "integrity check: $ok"
echo "measured: kill -9 after $(wc -l <"$T/acked") entry writes, $(wc -l <"$T/serials") renewals, $(wc -l <"$T/signed") batches of 50: nothing acknowledged lost, integrity ok, agent served throughout"
echo "fault_ca_kill9: ok"
