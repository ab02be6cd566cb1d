#!/usr/bin/env bash
# kill -9 during a stream of writes loses no acknowledged write and corrupts
# nothing: every entry whose creation the CLI acknowledged is there after a
# restart, and SQLite's integrity check passes.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
AG=spiffe://example.org/mayfly/agent/n1
: >"$T/acked"
(
    i=0
    while :; do
        i=$((i + 1))
        # only an ID printed by a successful create counts as acknowledged
        if id=$("$CA_BIN" entry create --admin-socket "$CA_SOCK_a" \
            --spiffe-id "spiffe://example.org/w$i" --parent-id $AG \
            --selector "unix:uid:$i" 2>/dev/null); then
            echo "$id" >>"$T/acked"
        else
            break
        fi
    done
) &
writer=$!
track_pid $writer
# let a few dozen writes through, then kill at an arbitrary moment
for i in $(seq 1 100); do
    [ "$(wc -l <"$T/acked")" -ge 30 ] && break
    sleep 0.05
done
sleep "0.$((RANDOM % 9))"
kill -9 "$CA_PID_a"
wait "$writer" 2>/dev/null || true
n=$(wc -l <"$T/acked")
[ "$n" -ge 30 ] || die "only $n writes before the kill"

start_ca b "$T/ca"
"$CA_BIN" entry list --admin-socket "$CA_SOCK_b" --json >"$T/list"
missing=0
while read -r id; do
    grep -q "\"$id\"" "$T/list" || { echo "lost acknowledged entry $id" >&2; missing=$((missing + 1)); }
done <"$T/acked"
[ "$missing" = 0 ] || die "$missing acknowledged writes lost"
stop_pid "$CA_PID_b"
ok=$(sqlite3 "$T/ca/data/mayfly-ca.db" 'PRAGMA integrity_check')
[ "$ok" = ok ] || die "integrity check: $ok"
[ "$n" -ge 1 ] || die "no write was acknowledged before the kill: nothing was tested"
echo "measured: $n acknowledged writes before kill -9, none lost"
