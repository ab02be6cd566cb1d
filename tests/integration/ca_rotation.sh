#!/usr/bin/env bash
# CA rotation without restart on a short --ca-ttl: the next key is prepared
# (published in the bundle) at 1/2, signs from 5/6, and the old key leaves
# the bundle once everything it signed has expired; spiffe_sequence goes up
# on every change; the server SVID renews itself. Also: a --svid-ttl that
# does not fit is refused at start with a message that says what to change.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp

# refused configuration
if "$CA_BIN" run --data-dir "$T/bad" --admin-socket "$T/bad.sock" --listen 127.0.0.1:0 \
    --svid-ttl 1h --ca-ttl 2h 2>"$T/err"; then
    die "svid-ttl 1h with ca-ttl 2h accepted"
fi
grep -q 'lower --svid-ttl to 20m or raise --ca-ttl to 6h' "$T/err" || die "message: $(cat "$T/err")"
echo "ok (refused): $(cat "$T/err")"

start_ca a "$T/ca" --ca-ttl 24s --svid-ttl 4s
LOG_ON_FAIL="$T/ca/ca.log"
S=(--admin-socket "$CA_SOCK_a")
seq_of() { "$CA_BIN" bundle show "${S[@]}" --format spiffe | sed -n 's/.*"spiffe_sequence": \([0-9]*\).*/\1/p'; }
certs_in_bundle() { "$CA_BIN" bundle show "${S[@]}" | grep -c 'BEGIN CERTIFICATE'; }
state_count() { "$CA_BIN" ca show "${S[@]}" --json | grep -c "\"state\": \"$1\"" || true; }

[ "$(seq_of)" = 1 ] && [ "$(certs_in_bundle)" = 1 ] || die "start state"
first=$("$CA_BIN" ca show "${S[@]}" --json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)

# Agent SVIDs live 4 s here, so each step attests a fresh agent.
AG=spiffe://example.org/mayfly/agent/n1
fresh_agent() {
    "$CA_BIN" bundle show "${S[@]}" >"$T/bundle.pem"
    rm -rf "$T/n1" && mkdir -p "$T/n1"
    "$CA_CLIENT" attest --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n1" \
        --token "$("$CA_BIN" token generate "${S[@]}" --spiffe-id $AG)" >/dev/null || die attest
}
fresh_agent

wait_for_log "$T/ca/ca.log" 'ca key created .*state=prepared' 15
[ "$(state_count prepared)" = 1 ] && [ "$(state_count active)" = 1 ] || die "prepared state"
[ "$(certs_in_bundle)" = 2 ] || die "prepared key not published"
[ "$(seq_of)" = 2 ] || die "sequence after prepare: $(seq_of)"
echo "prepared: $("$CA_BIN" ca show "${S[@]}" | tail -n +2 | awk '{print $1, $2}' | paste -sd' ')"

wait_for_log "$T/ca/ca.log" 'ca key activated' 15
wait_for_log "$T/ca/ca.log" 'ca key retired' 2
[ "$(state_count retired)" = 1 ] && [ "$(state_count active)" = 1 ] || die "after activation"
[ "$(certs_in_bundle)" -ge 2 ] || die "retired key left the bundle too early"
# the agent renews; now the new key signs
fresh_agent
"$CA_CLIENT" renew --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n1" >/dev/null \
    || die "renew after activation"
tail -n 5 "$T/ca/ca.log" | grep "issued spiffe_id=$AG" | grep -vq "ca_key=$first" \
    || die "new key does not sign"
openssl verify -CAfile "$T/bundle.pem" "$T/n1/agent.pem" >/dev/null || die "chain after rotation"

wait_for_log "$T/ca/ca.log" "ca key dropped from bundle id=$first" 15
"$CA_BIN" ca show "${S[@]}" | grep -q "$first" && die "old key still listed"
s=$(seq_of)
[ "$s" -ge 4 ] || die "sequence after drop: $s"
echo "measured: full prepare/activate/retire/drop cycle, spiffe_sequence now $s"
# the server SVID (4s) renewed itself several times; TLS still works
n=$(grep -c 'issued spiffe_id=spiffe://example.org/mayfly/server' "$T/ca/ca.log")
[ "$n" -ge 3 ] || die "server SVID renewed only $n times"
[ "$n" -le 30 ] || die "server SVID renewed $n times: renewal is not at half life"
fresh_agent
"$CA_CLIENT" sync --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n1" >/dev/null \
    || die "TLS after server SVID renewals"
echo "ca_rotation: ok"
