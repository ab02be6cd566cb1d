#!/usr/bin/env bash
# Connection floods on the CA's agent API that never authenticate, while an
# agent with a 5 s SVID depends on the CA (docs/security.md, rows on
# connection floods). During each flood the agent must still sync (an entry
# created during the flood reaches the workload) and renew its own SVID:
#   A. 1,100 plain TCP connections from 127.0.0.1 (the agent's own address)
#      that never start TLS, reopened whenever the CA closes them;
#   B. 1,100 connections from 22 other loopback addresses that start a TLS
#      handshake (a record header) and stall, reopened likewise: they reach
#      the TLS layer and take server threads, up to the unauthenticated
#      share; the agent's address, known from its earlier authentications,
#      still gets a reserved slot.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 2400 ] || { echo "note: ulimit -n $(ulimit -n) too low, skipped"; exit 0; }
make_tmp
FLOOD="$MAYFLY_BUILD/tools/ca_flood"
AG=spiffe://example.org/mayfly/agent/n1
start_ca a "$T/ca" --svid-ttl 5s --ca-ttl 30s
LOG_ON_FAIL="$T/A/agent.log"
add_entry a spiffe://example.org/before $AG unix:uid:0 >/dev/null
start_agent A "$T/A" a --join-token "$(fresh_token a $AG)" --backoff-cap 1s
served() { fetch_as root "$AGENT_SOCK_A" 2>/dev/null | grep -qF "$1"; }
wait_until 10 served spiffe://example.org/before
renewed_since() { [ "$(renewals)" -gt "$1" ]; }
renewals() { grep -c "set_agent_identity: agent identity" "$T/A/agent.log" || true; }

# flood NAME SECONDS ARGS...: starts ca_flood in the background and waits
# until its first round of connections is open
flood() {
    local name=$1 secs=$2
    shift 2
    "$FLOOD" --connect "$CA_ADDR_a" --seconds "$secs" --reconnect "$@" >"$T/flood_$name.out" 2>&1 &
    FLOOD_PID=$!
    track_pid "$FLOOD_PID"
    wait_until 20 grep -q '^flood: open' "$T/flood_$name.out"
}

# during NAME: while the flood runs, the agent must renew its SVID (which
# also makes it reconnect with the new one: a connection made during the
# flood), then an entry created now must reach the workload, then the
# agent must renew again; prints and asserts all three
during() {
    local name=$1 id=spiffe://example.org/during-$1 r0 t0 t1 r1
    kill -0 "$FLOOD_PID" || die "flood $name ended early"
    r0=$(renewals)
    wait_until 8 renewed_since "$r0"
    t0=$(date +%s%N)
    add_entry a "$id" $AG unix:uid:0 >/dev/null
    wait_until 8 served "$id"
    t1=$(date +%s%N)
    r1=$(renewals)
    wait_until 8 renewed_since "$r1"
    r1=$(renewals)
    kill -0 "$FLOOD_PID" || die "flood $name ended before the checks did: they prove nothing"
    echo "measured: flood $name: $(sed -n 's/^flood: open \(.*\)/\1/p' "$T/flood_$name.out") connections open at start; entry created after a renewal served in $(((t1 - t0) / 1000000)) ms; agent SVID renewed $((r1 - r0)) times during the flood"
    wait "$FLOOD_PID" || die "ca_flood $name failed"
    echo "measured: flood $name: $(grep '^flood: opened' "$T/flood_$name.out")"
}

# A: 1,100 idle TCP connections from 127.0.0.1, for 12 s (past the 10 s
# handshake deadline, so expiry and reconnection are exercised too)
flood A 12 --count 1100 --from 127.0.0.1
during A
# the CA must still hold to its limits: the flood's connections were closed
grep -q 'agent API under connection pressure' "$T/ca/ca.log" ||
    die "the CA did not report the flood"

# B: 1,100 stalled TLS handshakes from 127.0.0.2..127.0.0.23 (50 each)
flood B 12 --count 1100 --from-range 127.0.0.2 22 --hello
during B
served spiffe://example.org/before || die "the first entry is no longer served"
kill -0 "$CA_PID_a" || die "the CA died"
echo "attack_ca_flood: ok"
