#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# mayfly-ca on PostgreSQL (a private server from Debian's postgresql
# package, started here): the URI from a 0600 --datastore-file, a full
# chain served from it, PostgreSQL crashed (writes refused with a clear
# error, the agent keeps serving) and restarted (the CA reconnects by
# itself, nothing acknowledged is lost), a short-lived SVID renewed while
# PostgreSQL is down (the server's recall of its last reads), a password on the command line
# and a readable datastore file refused, and a second server on the same
# registry refused with a message that says why.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_pg "$T/pg"
printf '%s\n' "$PG_URI" >"$T/ds"
chmod 600 "$T/ds"

# refusals before anything starts
out=$("$CA_BIN" run --data-dir "$T/x" --admin-socket "$T/x.sock" \
    --datastore 'postgresql://mayfly:hunter2@localhost/mayfly' 2>&1) && die "password accepted"
echo "$out" | grep -q 'password may not be given here' || die "password refusal: $out"
echo "$out" | grep -q hunter2 && die "the password was echoed"
chmod 644 "$T/ds"
out=$("$CA_BIN" run --data-dir "$T/x" --admin-socket "$T/x.sock" --datastore-file "$T/ds" 2>&1) &&
    die "a world-readable datastore file was accepted"
echo "$out" | grep -q 'readable by group or others' || die "mode refusal: $out"
chmod 600 "$T/ds"

start_ca a "$T/ca" --datastore-file "$T/ds"
grep -q "$PG_URI" "$T/ca/ca.log" && die "the datastore was logged"
[ ! -e "$T/ca/data/mayfly-ca.db" ] || die "a SQLite file was made as well"
AG=spiffe://example.org/mayfly/agent/n1
add_entry a spiffe://example.org/web $AG unix:uid:0 >/dev/null
"$CA_BIN" entry create --admin-socket "$CA_SOCK_a" --spiffe-id spiffe://example.org/short \
    --parent-id $AG --selector unix:uid:0 --ttl 6s >/dev/null
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $AG)"
wait_until 10 fetch_has root "$AGENT_SOCK_n1" spiffe://example.org/web
wait_until 10 fetch_has root "$AGENT_SOCK_n1" spiffe://example.org/short
# the short SVID's expiry, as the workload sees it
short_exp() { fetch_as root "$AGENT_SOCK_n1" 2>/dev/null | grep /short | sed -n 's/.*expires_at=\([^ ]*\).*/\1/p'; }
renewed_since() { local e; e=$(short_exp); [ -n "$e" ] && [ "$e" != "$1" ]; }
: >"$T/acked"
for i in 1 2 3 4 5; do
    add_entry a "spiffe://example.org/w$i" $AG "unix:uid:$((1000 + i))" >>"$T/acked"
done
# the agent's sync after these writes re-reads its entry list (an entry
# write drops the server's recalled lists): the outage below starts after
wait_for_log "$T/n1/agent.log" 'entry added .*spiffe://example.org/w5' 10

# PostgreSQL away: writes refused with a clear error, serving goes on
stop_pg immediate # a crash: no shutdown checkpoint
if out=$("$CA_BIN" entry create --admin-socket "$CA_SOCK_a" --spiffe-id spiffe://example.org/down \
    --parent-id $AG --selector unix:uid:9 2>&1); then die "a write succeeded with the database down"; fi
echo "$out" | grep -qi 'database is unreachable' || die "unclear refusal: $out"
fetch_has root "$AGENT_SOCK_n1" spiffe://example.org/web || die "not served with the database down"
echo "ok (refused): database down: $out"
# renewals of what the server already knows go on (--datastore-grace):
# the 6 s SVID is renewed twice while PostgreSQL stays down
e0=$(short_exp)
wait_until 15 renewed_since "$e0" || die "the short SVID was not renewed with the database down"
e1=$(short_exp)
wait_until 15 renewed_since "$e1" || die "no second renewal with the database down"
grep -q 'registry unreachable: .* answered from what it said' "$T/ca/ca.log" ||
    die "the CA did not log that it answered from its last registry reads"
echo "ok: renewed with the database down: expiry $e0 -> $e1 -> $(short_exp)"

# back: the CA reconnects by itself; nothing acknowledged was lost
start_pg_again
wait_until 15 add_entry a spiffe://example.org/after $AG unix:uid:0 >/dev/null
"$CA_BIN" entry list --admin-socket "$CA_SOCK_a" --json >"$T/list"
while read -r id; do
    grep -q "\"$id\"" "$T/list" || die "acknowledged entry $id lost"
done <"$T/acked"
wait_until 10 fetch_has root "$AGENT_SOCK_n1" spiffe://example.org/after

# a second server on the same registry holds its own key; both publish
# both keys (tests/integration/ha_servers.sh goes further)
start_ca b "$T/ca2" --datastore-file "$T/ds"
certs() { "$CA_BIN" bundle show --admin-socket "$1" | grep -c 'BEGIN CERTIFICATE'; }
both_keys() { [ "$(certs "$1")" = 2 ]; }
wait_until 10 both_keys "$CA_SOCK_a"
[ "$(certs "$CA_SOCK_b")" = 2 ] || die "the second server does not publish both keys"
stop_pid "$CA_PID_b"
stop_pid "$AGENT_PID_n1"
stop_pid "$CA_PID_a"

# the way out of SQLite: a CA with its registry in SQLite, stopped, copied
# into a new database, started on it; its agent goes on without a new token
sq_addr=127.0.0.1:$(pick_port) # it comes back on the same port
start_ca s "$T/sq" --listen "$sq_addr"
AS=spiffe://example.org/mayfly/agent/s1
add_entry s spiffe://example.org/kept $AS unix:uid:0 >/dev/null
start_agent s1 "$T/s1" s --join-token "$(fresh_token s $AS)"
wait_until 10 fetch_has root "$AGENT_SOCK_s1" spiffe://example.org/kept
"$CA_BIN" entry list --admin-socket "$CA_SOCK_s" --json >"$T/before"
stop_pid "$CA_PID_s"
"${PG_AS[@]}" "$PG_BIN/createdb" -h "$T/pg" -U mayfly moved || die "createdb moved"
printf '%s\n' "${PG_URI/\/mayfly?//moved?}" >"$T/ds2"
chmod 600 "$T/ds2"
out=$("$CA_BIN" datastore copy --data-dir "$T/sq/data" --to-file "$T/ds2") || die "copy: $out"
echo "$out" | grep -q 'entries=1 agents=1' || die "copy counts: $out"
out=$("$CA_BIN" datastore copy --data-dir "$T/sq/data" --to-file "$T/ds2" 2>&1) &&
    die "a second copy into a registry with rows was accepted"
echo "$out" | grep -q 'not empty' || die "second copy: $out"
start_ca s2 "$T/sq" --listen "$sq_addr" --datastore-file "$T/ds2"
"$CA_BIN" entry list --admin-socket "$CA_SOCK_s2" --json >"$T/after"
cmp -s "$T/before" "$T/after" || die "the entries differ after the move"
add_entry s2 spiffe://example.org/moved $AS unix:uid:0 >/dev/null
wait_until 15 fetch_has root "$AGENT_SOCK_s1" spiffe://example.org/moved
echo "measured: $(wc -l <"$T/acked") entries acknowledged before a PostgreSQL restart, none lost; writes refused while it was down, served throughout"
echo "ca_postgres: ok"
