#!/usr/bin/env bash
# Clock jumps (libfaketime, a control file read on every call; the
# monotonic clock stays real, as with a wall-clock step):
#  agent: +2h (past every lifetime: it serves nothing, since by its clock
#         everything expired), back to real time (serves again by itself);
#         -1h (it keeps serving what it has; a new entry cannot be taken, as
#         its SVID looks not yet valid), back (the new entry arrives).
#  CA:    +90 s (the leaves and the server SVID it issues are dated in the
#         future, so the agent refuses them and keeps serving its valid
#         SVIDs), back (renewals resume by themselves); -1h (it issues
#         leaves that already expired, which the agent refuses), back
#         (renewals resume). Nothing expired is ever served.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
FT=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[ -f "$FT" ] || skip "libfaketime (Debian faketime) missing"
[ "$MAYFLY_TIME_SCALE" = 1 ] || skip "not under valgrind (LD_PRELOAD)"
AG=spiffe://example.org/mayfly/agent/n1
# faked NAME: the daemons started next read their clock offset from $T/NAME.ft
faked() {
    echo "+0" >"$T/$1.ft"
    # (under ASan the preload comes before the sanitizer's runtime)
    MAYFLY_WRAP=(env LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$T/$1.ft" FAKETIME_NO_CACHE=1
        FAKETIME_DONT_FAKE_MONOTONIC=1
        ASAN_OPTIONS="verify_asan_link_order=0:${ASAN_OPTIONS:-detect_leaks=1}")
}
vg_wrap() { :; } # keep MAYFLY_WRAP as set by faked (start_ca/start_agent call vg_wrap)
# jump NAME OFFSET: a new offset, written aside and renamed into place, so
# that libfaketime (which reads the file on every call) never sees it empty
jump() { echo "$2" >"$T/$1.ft.new" && mv "$T/$1.ft.new" "$T/$1.ft"; }
served() { fetch_as root "$1" 2>/dev/null | grep -q "$2"; }
issued() { grep -c 'svid issued' "$1/agent.log" || true; }
no_expired() {
    local out t now
    out=$(fetch_as root "$1" 2>/dev/null) || return 0
    now=$(date +%s)
    for t in $(sed -n 's/.*expires_at=\([^ ]*\).*/\1/p' <<<"$out"); do
        [ "$(date -d "$t" +%s)" -ge "$now" ] || die "$1 served an SVID that expired at $t"
    done
}
# renewed DIR N SECS: the agent in DIR takes a new SVID (issued count > N)
renewed() {
    for _ in $(seq 1 $(($3 * 10))); do
        [ "$(issued "$1")" -gt "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# --- the agent's clock
start_ca a "$T/ca_a" --svid-ttl 1m --ca-ttl 10m
add_entry a spiffe://example.org/app $AG unix:uid:0 >/dev/null
faked agent
start_agent A "$T/A" a --join-token "$(fresh_token a $AG)" --backoff-cap 2s
MAYFLY_WRAP=()
LOG_ON_FAIL="$T/A/agent.log"
wait_until 10 served "$AGENT_SOCK_A" example.org/app
jump agent +2h
wait_until 5 sh -c "! '$AGENT_BIN' fetch x509 --socket '$AGENT_SOCK_A' >/dev/null 2>&1"
jump agent +0
wait_until 15 served "$AGENT_SOCK_A" example.org/app
no_expired "$AGENT_SOCK_A"
echo "ok: agent +2h: nothing served; back: served again"
jump agent -1h
add_entry a spiffe://example.org/late $AG unix:uid:0 >/dev/null
# the agent was sent the new SVID and refused it (not yet valid by its clock)
wait_for_log "$T/A/agent.log" 'signing spiffe://example.org/late failed' 10
served "$AGENT_SOCK_A" example.org/app || die "agent -1h stopped serving valid SVIDs"
served "$AGENT_SOCK_A" example.org/late && die "agent -1h took an SVID not yet valid by its clock"
no_expired "$AGENT_SOCK_A"
jump agent +0
wait_until 15 served "$AGENT_SOCK_A" example.org/late
echo "ok: agent -1h: kept serving, refused a new SVID; back: took it"

# --- the CA's clock
faked ca
start_ca b "$T/ca_b" --svid-ttl 1m --ca-ttl 10m
MAYFLY_WRAP=()
"$CA_BIN" entry create --admin-socket "$CA_SOCK_b" --spiffe-id spiffe://example.org/app \
    --parent-id $AG --selector unix:uid:0 --ttl 20s >/dev/null
start_agent B "$T/B" b --join-token "$(fresh_token b $AG)" --backoff-cap 2s
LOG_ON_FAIL="$T/B/agent.log"
wait_until 10 served "$AGENT_SOCK_B" example.org/app
n0=$(grep -c 'signing spiffe://example.org/app failed' "$T/B/agent.log" || true)
jump ca +90
# a renewal during the jump got a leaf dated in the future, and refused it
wait_until 20 sh -c "[ \$(grep -c 'signing spiffe://example.org/app failed' '$T/B/agent.log') -gt $n0 ]"
no_expired "$AGENT_SOCK_B"
n=$(issued "$T/B")
jump ca +0
renewed "$T/B" "$n" 25 || die "no renewal after the CA's clock came back from +90 s"
served "$AGENT_SOCK_B" example.org/app || die "CA +90 s: not served after"
no_expired "$AGENT_SOCK_B"
echo "ok: CA +90 s: leaves dated in the future refused; back: renewals resumed"
n0=$(grep -c 'signing spiffe://example.org/app failed' "$T/B/agent.log" || true)
jump ca -1h
# a renewal during the jump got an expired leaf, and refused it
wait_until 20 sh -c "[ \$(grep -c 'signing spiffe://example.org/app failed' '$T/B/agent.log') -gt $n0 ]"
no_expired "$AGENT_SOCK_B"
n=$(issued "$T/B")
jump ca +0
renewed "$T/B" "$n" 25 || die "no renewal after the CA's clock came back from -1h"
served "$AGENT_SOCK_B" example.org/app || die "CA -1h: not served after"
no_expired "$AGENT_SOCK_B"
echo "ok: CA -1h: expired leaves refused; back: renewals resumed"
echo "fault_clock: ok"
