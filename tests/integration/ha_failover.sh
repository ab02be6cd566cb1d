#!/usr/bin/env bash
# Two mayfly-ca servers on one PostgreSQL, four agents given both
# addresses (each draws one and sticks to it), 20 s SVIDs so that signing
# never stops, and every workload fetching in a loop:
#  - kill -9 of the server that has agents: they move to the other one,
#    a new entry reaches them through it (failover time printed), no fetch
#    fails and no fetch ever returns an expired SVID;
#  - the killed server back, then PostgreSQL restarted under writes through
#    both servers: every acknowledged entry is there afterwards, and the
#    workloads are served throughout.
# mayfly-test: serial (two CAs, four agents and fetch loops at once)
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_pg "$T/pg"
printf '%s\n' "$PG_URI" >"$T/ds"
chmod 600 "$T/ds"
TTL=(--svid-ttl 20s --ca-ttl 2m)
start_ca a "$T/ca_a" --datastore-file "$T/ds" "${TTL[@]}"
start_ca b "$T/ca_b" --datastore-file "$T/ds" "${TTL[@]}"
has_both_keys() { [ "$("$CA_BIN" bundle show --admin-socket "$1" | grep -c 'BEGIN CERT')" = 2 ]; }
wait_until 5 has_both_keys "$CA_SOCK_a"

AG=()
for i in 1 2 3 4; do
    id=spiffe://example.org/mayfly/agent/n$i
    AG+=("$id")
    add_entry a "spiffe://example.org/w$i" "$id" unix:uid:0 >/dev/null
    # shellcheck disable=SC2034 # read by start_agent through their names
    CA_ADDR_ab="$CA_ADDR_a,$CA_ADDR_b" CA_SOCK_ab=$CA_SOCK_a
    start_agent n$i "$T/n$i" ab --join-token "$(fresh_token a "$id")"
    wait_until 10 fetch_has root "$T/n$i/agent.sock" "spiffe://example.org/w$i"
done
drawn() { sed -n 's/.*CA server drawn server=\([^ ]*\).*/\1/p' "$T/n$1/agent.log" | tail -1; }
count_on() {
    local n=0 i
    for i in 1 2 3 4; do [ "$(drawn $i)" = "$1" ] && n=$((n + 1)); done
    echo $n
}
# the victim is the server with more agents (with both agents on one
# server, that one)
if [ "$(count_on "$CA_ADDR_a")" -ge "$(count_on "$CA_ADDR_b")" ]; then
    victim=a survivor=b
else
    victim=b survivor=a
fi
vaddr="CA_ADDR_$victim" saddr="CA_ADDR_$survivor"
vpid="CA_PID_$victim"
moved=()
for i in 1 2 3 4; do [ "$(drawn $i)" = "${!vaddr}" ] && moved+=("$i"); done
echo "agents drawn: $(count_on "$CA_ADDR_a") on a, $(count_on "$CA_ADDR_b") on b; killing $victim"

# every workload fetches in a loop; each SVID's expires_at must be ahead
fetch_loop() {
    local i=$1 out now
    while [ ! -e "$T/stop" ]; do
        now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
        if ! out=$("$AGENT_BIN" fetch x509 --socket "$T/n$i/agent.sock" 2>&1); then
            echo "n$i fetch failed at $now: $out" >>"$T/bad"
        else
            while read -r exp; do
                [[ "$exp" > "$now" ]] || echo "n$i served an SVID expiring $exp at $now" >>"$T/bad"
            done < <(sed -n 's/.*expires_at=\([^ ]*\).*/\1/p' <<<"$out")
            echo x >>"$T/fetches"
        fi
        sleep 0.05
    done
}
: >"$T/bad"
: >"$T/fetches"
loops=()
for i in 1 2 3 4; do
    fetch_loop $i &
    loops+=($!)
done
fetched() { [ "$(wc -l <"$T/fetches")" -ge "$1" ]; }
wait_until 10 fetched 20

kill -9 "${!vpid}"
t0=$(date +%s%N)
for i in "${moved[@]}"; do
    add_entry "$survivor" "spiffe://example.org/after$i" "${AG[$((i - 1))]}" unix:uid:0 >/dev/null
done
for i in "${moved[@]}"; do
    wait_until 15 fetch_has root "$T/n$i/agent.sock" "spiffe://example.org/after$i"
done
ms=$((($(date +%s%N) - t0) / 1000000))
for i in "${moved[@]}"; do
    grep -q "moved to another CA server server=${!saddr}" "$T/n$i/agent.log" ||
        die "agent n$i did not log its move"
done
# renewals go on with the surviving server alone
n0=$(grep -c 'issued spiffe_id=spiffe://example.org/w' "$T/ca_$survivor/ca.log" || true)
more_issued() { [ "$(grep -c 'issued spiffe_id=spiffe://example.org/w' "$T/ca_$survivor/ca.log")" -ge $((n0 + 2)) ]; }
wait_until 25 more_issued
[ ! -s "$T/bad" ] || die "during failover: $(head -5 "$T/bad")"
echo "measured: failover: ${#moved[@]} agents of the killed server served a new entry through the other ${ms} ms after kill -9; $(wc -l <"$T/fetches") fetches, none failed, none expired"

# the killed server back; PostgreSQL restarted under writes through both
start_ca "$victim" "$T/ca_$victim" --datastore-file "$T/ds" "${TTL[@]}"
: >"$T/acked"
writer() {
    local n=0 s
    while [ ! -e "$T/stop_w" ]; do
        n=$((n + 1))
        for s in a b; do
            local sock="CA_SOCK_$s" id="spiffe://example.org/pg/$s$n"
            if "$CA_BIN" entry create --admin-socket "${!sock}" --spiffe-id "$id" \
                --parent-id "${AG[0]}" --selector "unix:uid:$((2000 + n))" >/dev/null 2>&1; then
                echo "$id" >>"$T/acked"
            fi
        done
    done
}
writer &
wpid=$!
acked() { [ "$(wc -l <"$T/acked")" -ge "$1" ]; }
wait_until 10 acked 6
stop_pg immediate
before=$(wc -l <"$T/acked")
start_pg_again
wait_until 15 acked $((before + 6))
touch "$T/stop_w"
wait $wpid
for s in a b; do
    sock="CA_SOCK_$s"
    "$CA_BIN" entry list --admin-socket "${!sock}" --json >"$T/list_$s"
    while read -r id; do
        grep -q "\"$id\"" "$T/list_$s" || die "acknowledged entry $id missing on server $s"
    done <"$T/acked"
done
touch "$T/stop"
for p in "${loops[@]}"; do wait "$p"; done
[ ! -s "$T/bad" ] || die "during the PostgreSQL restart: $(head -5 "$T/bad")"
echo "measured: PostgreSQL restarted under writes through two servers: $(wc -l <"$T/acked") entries acknowledged, none lost; $(wc -l <"$T/fetches") fetches in all, none failed, none expired"
echo "ha_failover: ok"
