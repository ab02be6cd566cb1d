#!/usr/bin/env bash
# kill -9 of the agent under fetch load while it rewrites its cache (20
# entries whose SVIDs live 6 s, so a rotation is written every few hundred
# ms). After each kill every cache file is whole (a JSON header line, one
# PKCS#8 key that matches the first certificate); the agent restarts
# without a join token and serves from its cache, the last time with the CA
# stopped; with the CA back it renews again.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
port=$(pick_port)
start_ca a "$T/ca" --listen "127.0.0.1:$port" --svid-ttl 1m
LOG_ON_FAIL="$T/n1/agent.log"
AG=spiffe://example.org/mayfly/agent/n1
for i in $(seq 1 20); do
    "$CA_BIN" entry create --admin-socket "$CA_SOCK_a" --spiffe-id "spiffe://example.org/app$i" \
        --parent-id $AG --selector unix:uid:0 --ttl 6s >/dev/null
done
# one longer-lived SVID to be served from the cache while the CA is down
"$CA_BIN" entry create --admin-socket "$CA_SOCK_a" --spiffe-id spiffe://example.org/stable \
    --parent-id $AG --selector unix:uid:0 --ttl 1m >/dev/null
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $AG)"
served() { [ "$(fetch_as root "$AGENT_SOCK_n1" 2>/dev/null | grep -c '^svid')" = 21 ]; }
served_stable() { fetch_as root "$AGENT_SOCK_n1" 2>/dev/null | grep -q example.org/stable; }
wait_until 15 served

# every cache file whole: header JSON, a key matching the first certificate
check_cache() {
    local f n=0 key cert
    for f in "$T"/n1/data/agent.svid "$T"/n1/data/svids/*.svid; do
        [ -f "$f" ] || continue
        head -1 "$f" | python3 -c 'import json,sys; json.loads(sys.stdin.read())' ||
            die "$f: header is not JSON"
        key=$(sed -n '/BEGIN PRIVATE KEY/,/END PRIVATE KEY/p' "$f" | openssl pkey -pubout 2>/dev/null) ||
            die "$f: no whole key"
        cert=$(sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' "$f" | openssl x509 -pubkey -noout 2>/dev/null) ||
            die "$f: no whole certificate"
        [ "$key" = "$cert" ] || die "$f: key and certificate do not match"
        n=$((n + 1))
    done
    [ "$n" -ge 2 ] || die "only $n cache files"
}

: >"$T/ok"
: >"$T/fail"
for _ in 1 2 3 4; do
    (
        for i in $(seq 1 100000); do
            [ -f "$T/stop" ] && break
            if fetch_as root "$AGENT_SOCK_n1" >/dev/null 2>&1; then
                echo >>"$T/ok"
            else
                echo >>"$T/fail"
                sleep 0.05
            fi
        done
    ) &
    track_pid $!
done

for round in 1 2 3; do
    sleep "$((1 + RANDOM % 2)).$((RANDOM % 9))"
    kill -9 "$AGENT_PID_n1"
    wait "$AGENT_PID_n1" 2>/dev/null || true
    check_cache
    if [ "$round" = 3 ]; then
        stop_pid "$CA_PID_a" # the last restart has no CA to talk to
    fi
    rm -f "$AGENT_SOCK_n1"
    start_agent n1 "$T/n1" a
    if [ "$round" = 3 ]; then
        # from the cache alone: whatever has not expired, here the 1 m SVID
        wait_until 5 served_stable
    else
        wait_until 15 served
    fi
done
touch "$T/stop"
# a running agent may be between a temp file and its rename: stop it
# cleanly, so that what is left is only what the kills left
stop_pid "$AGENT_PID_n1"
stale=$(find "$T/n1/data" -name '.*.tmp' | wc -l)
[ "$stale" = 0 ] || die "$stale temp files left behind after restarts"
rm -f "$AGENT_SOCK_n1"
start_agent n1 "$T/n1" a

# the CA back: renewals resume (the 6 s SVIDs are replaced)
start_ca b "$T/ca" --listen "127.0.0.1:$port" --svid-ttl 1m
before=$(grep -c 'svid issued' "$T/n1/agent.log")
wait_until 20 sh -c "[ \$(grep -c 'svid issued' '$T/n1/agent.log') -gt $before ]"
wait_until 15 served
echo "measured: 3 kills under fetch load: $(wc -l <"$T/ok") fetches served, $(wc -l <"$T/fail") refused (agent down or restarting); every cache file whole, no temp file left"
echo "fault_agent_kill9: ok"
