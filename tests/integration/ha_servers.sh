#!/usr/bin/env bash
# Three mayfly-ca servers on one PostgreSQL registry, agents spread over
# them: every server publishes every server's key; an entry made through
# server A reaches a workload whose agent talks to server B (propagation
# printed, each under 1 s); an SVID signed by one server verifies with the
# bundle another server's agent serves; a join token spent at once on two
# servers succeeds on exactly one; a ban made through A is refused by B
# and C within one second.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_pg "$T/pg"
printf '%s\n' "$PG_URI" >"$T/ds"
chmod 600 "$T/ds"

for s in a b c; do
    start_ca $s "$T/ca_$s" --datastore-file "$T/ds"
done

# every server's own key, and every server publishes all three
certs() { "$CA_BIN" bundle show --admin-socket "$1" | grep -c 'BEGIN CERTIFICATE'; }
has_all_keys() { [ "$(certs "$1")" = 3 ]; }
for s in a b c; do
    sock="CA_SOCK_$s"
    wait_until 5 has_all_keys "${!sock}"
done
ids=$(for s in a b c; do cat "$T/ca_$s/data/keys/server.id"; done | sort -u | wc -l)
[ "$ids" = 3 ] || die "the servers do not have three distinct ids"
"$CA_BIN" ca show --admin-socket "$CA_SOCK_b" --json >"$T/cas"
for s in a b c; do
    grep -q "\"server_id\": \"$(cat "$T/ca_$s/data/keys/server.id")\"" "$T/cas" ||
        die "ca show on b does not list server $s's key"
done
seq_of() { "$CA_BIN" bundle show --admin-socket "$1" --format spiffe |
    sed -n 's/.*"spiffe_sequence": \([0-9]*\).*/\1/p'; }
[ "$(seq_of "$CA_SOCK_a")" = "$(seq_of "$CA_SOCK_c")" ] || die "servers disagree on spiffe_sequence"
echo "ok: 3 servers, 3 keys, each bundle holds all three (spiffe_sequence $(seq_of "$CA_SOCK_a"))"

# agents spread over the servers; tokens made through A, spent on B and C
A1=spiffe://example.org/mayfly/agent/n1
A2=spiffe://example.org/mayfly/agent/n2
add_entry a spiffe://example.org/base $A1 unix:uid:0 >/dev/null
add_entry a spiffe://example.org/base2 $A2 unix:uid:0 >/dev/null
start_agent n1 "$T/n1" b --join-token "$(fresh_token a $A1)"
start_agent n2 "$T/n2" c --join-token "$(fresh_token a $A2)"
wait_until 10 fetch_has root "$AGENT_SOCK_n1" spiffe://example.org/base
wait_until 10 fetch_has root "$AGENT_SOCK_n2" spiffe://example.org/base2

# an entry created through A reaches n1, whose agent talks to B
lat=()
for i in 1 2 3 4 5; do
    id=spiffe://example.org/prop$i
    t0=$(date +%s%N)
    add_entry a "$id" $A1 unix:uid:0 >/dev/null
    ok=
    for _ in $(seq 1 300); do
        if fetch_has root "$AGENT_SOCK_n1" "$id"; then
            ok=1
            break
        fi
    done
    [ -n "$ok" ] || die "entry $id never reached the agent on server b"
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ms" -lt 1000 ] || die "entry $id took $ms ms to cross servers"
    lat+=("$ms")
done
sorted=$(printf '%s\n' "${lat[@]}" | sort -n)
echo "measured: propagation p50 $(sed -n 3p <<<"$sorted") ms max $(tail -1 <<<"$sorted") ms (entry made on server a, served by the agent of server b, 5 entries)"

# an SVID signed by B verifies with the bundle that C's agent serves
mkdir -p "$T/w1" "$T/w2"
fetch_as root "$AGENT_SOCK_n1" --write "$T/w1" >/dev/null
fetch_as root "$AGENT_SOCK_n2" --write "$T/w2" >/dev/null
openssl verify -CAfile "$T/w2/bundle.0.pem" -untrusted "$T/w1/svid.0.pem" "$T/w1/svid.0.pem" \
    >/dev/null || die "server b's SVID does not verify with the bundle of server c's agent"
echo "ok: an SVID signed by server b verifies with server c's agent's bundle"

# a join token spent at once on two servers succeeds on exactly one
"$CA_BIN" bundle show --admin-socket "$CA_SOCK_a" >"$T/bundle.pem"
A3=spiffe://example.org/mayfly/agent/race
for round in 1 2 3; do
    tok=$(fresh_token a $A3)
    mkdir -p "$T/r$round/b" "$T/r$round/c"
    "$CA_CLIENT" attest --server "$CA_ADDR_b" --bundle "$T/bundle.pem" --dir "$T/r$round/b" \
        --token "$tok" >"$T/r$round/b.out" 2>&1 &
    pb=$!
    "$CA_CLIENT" attest --server "$CA_ADDR_c" --bundle "$T/bundle.pem" --dir "$T/r$round/c" \
        --token "$tok" >"$T/r$round/c.out" 2>&1 &
    pc=$!
    rb=0 rc=0
    wait $pb || rb=$?
    wait $pc || rc=$?
    wins=$(((rb == 0) + (rc == 0)))
    [ "$wins" = 1 ] || die "round $round: token spent $wins times (b: $rb, c: $rc)"
    [ $rb = 0 ] && winner=b || winner=c
    grep -q 'status=401\|status=403' "$T/r$round/$([ $winner = b ] && echo c || echo b).out" ||
        die "round $round: the loser was not refused: $(cat "$T/r$round/"*.out)"
done
echo "ok: a join token spent at once on servers b and c succeeded exactly once (3 rounds)"

# a ban made through A is refused by B and C within one second
refused() { ! "$CA_CLIENT" sync --server "$1" --bundle "$T/bundle.pem" --dir "$T/r3/$winner" \
    --wait 0 >"$T/sync.out" 2>&1 && grep -q 'banned' "$T/sync.out"; }
for s in b c; do
    addr="CA_ADDR_$s"
    "$CA_CLIENT" sync --server "${!addr}" --bundle "$T/bundle.pem" --dir "$T/r3/$winner" \
        --wait 0 >/dev/null || die "the attested agent cannot sync with server $s"
done
"$CA_BIN" agent ban --admin-socket "$CA_SOCK_a" $A3 >/dev/null
wait_until 1 refused "$CA_ADDR_b"
wait_until 1 refused "$CA_ADDR_c"
echo "ok: a ban made through server a is refused by servers b and c within 1 s"

# each server stops cleanly on SIGTERM while the others keep announcing
# changes (a key refresh must never run into a server that is stopping)
gone() { ! kill -0 "$1" 2>/dev/null; }
for s in c b; do
    pid="CA_PID_$s"
    add_entry a "spiffe://example.org/stop$s" $A1 unix:uid:0 >/dev/null
    kill -TERM "${!pid}"
    wait_until 5 gone "${!pid}"
done
echo "ha_servers: ok"
