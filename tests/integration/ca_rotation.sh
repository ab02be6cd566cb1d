#!/usr/bin/env bash
# CA rotation without restart on the default --ca-ttl (24h), by moving the
# CA's wall clock (libfaketime, a control file read on every call; the
# monotonic clock stays real): the next key is prepared (published in the
# bundle) at 1/2, signs from 5/6, and the old key leaves the bundle once
# everything it signed has expired; spiffe_sequence goes up on every
# change; the server SVID renews itself. The clients (ca_client, openssl)
# share the CA's clock, so they see its certificates as valid. The CA's
# schedule runs on every tick (200 ms of monotonic time) against the wall
# clock, so a jump is noticed within a tick. Also: a --svid-ttl that does
# not fit is refused at start with a message that says what to change.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
FT=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[ -f "$FT" ] || skip "libfaketime (Debian faketime) missing"
[ "$MAYFLY_TIME_SCALE" = 1 ] || skip "not under valgrind (LD_PRELOAD)"

# refused configuration
if "$CA_BIN" run --data-dir "$T/bad" --admin-socket "$T/bad.sock" --listen 127.0.0.1:0 \
    --svid-ttl 1h --ca-ttl 2h 2>"$T/err"; then
    die "svid-ttl 1h with ca-ttl 2h accepted"
fi
grep -q 'lower --svid-ttl to 20m or raise --ca-ttl to 6h' "$T/err" || die "message: $(cat "$T/err")"
echo "ok (refused): $(cat "$T/err")"

# ft CMD...: runs CMD on the CA's clock ($T/ca.ft holds the offset)
# (under ASan the preload comes before the sanitizer's runtime)
FTENV=(env LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$T/ca.ft" FAKETIME_NO_CACHE=1
    FAKETIME_DONT_FAKE_MONOTONIC=1
    ASAN_OPTIONS="verify_asan_link_order=0:${ASAN_OPTIONS:-detect_leaks=1}")
ft() { "${FTENV[@]}" "$@"; }
jump() { echo "$1" >"$T/ca.ft"; }
echo "+0" >"$T/ca.ft"
MAYFLY_WRAP=("${FTENV[@]}")
vg_wrap() { :; } # keep MAYFLY_WRAP (start_ca calls vg_wrap)
start_ca a "$T/ca" --ca-ttl 24h --svid-ttl 1h
MAYFLY_WRAP=()
LOG_ON_FAIL="$T/ca/ca.log"
S=(--admin-socket "$CA_SOCK_a")
seq_of() { "$CA_BIN" bundle show "${S[@]}" --format spiffe | sed -n 's/.*"spiffe_sequence": \([0-9]*\).*/\1/p'; }
certs_in_bundle() { "$CA_BIN" bundle show "${S[@]}" | grep -c 'BEGIN CERTIFICATE'; }
state_count() { "$CA_BIN" ca show "${S[@]}" --json | grep -c "\"state\": \"$1\"" || true; }
seq_at_least() { [ "$(seq_of)" -ge "$1" ]; }
logged() { grep -Eq -- "$1" "$T/ca/ca.log"; }

[ "$(seq_of)" = 1 ] && [ "$(certs_in_bundle)" = 1 ] || die "start state"
first=$("$CA_BIN" ca show "${S[@]}" --json | sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' | head -1)

# Each step attests a fresh agent (on the CA's clock).
AG=spiffe://example.org/mayfly/agent/n1
fresh_agent() {
    "$CA_BIN" bundle show "${S[@]}" >"$T/bundle.pem"
    rm -rf "$T/n1" && mkdir -p "$T/n1"
    ft "$CA_CLIENT" attest --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n1" \
        --token "$("$CA_BIN" token generate "${S[@]}" --spiffe-id $AG)" >/dev/null || die attest
}
fresh_agent

# 1/2 of 24h (+1 min of margin): the next key is prepared
jump +43260
wait_until 5 logged 'ca key created .*state=prepared'
[ "$(state_count prepared)" = 1 ] && [ "$(state_count active)" = 1 ] || die "prepared state"
[ "$(certs_in_bundle)" = 2 ] || die "prepared key not published"
[ "$(seq_of)" = 2 ] || die "sequence after prepare: $(seq_of)"
echo "prepared: $("$CA_BIN" ca show "${S[@]}" | tail -n +2 | awk '{print $1, $2}' | paste -sd' ')"
# 10 min before 5/6: an agent whose SVID (1h, old key) spans the activation
jump +71400
wait_until 5 logged "issued spiffe_id=spiffe://example.org/mayfly/server/[0-9a-f]* .*not_after=$(ft date -u -d +1hour +%Y-%m-%dT%H)"
fresh_agent
grep "issued spiffe_id=$AG" "$T/ca/ca.log" | tail -1 | grep -q "ca_key=$first" || die "old key does not sign before 5/6"

# 5/6 of 24h (+1 min): the prepared key signs, the old one is retired
jump +72060
wait_until 5 logged 'ca key activated'
wait_until 2 logged 'ca key retired'
[ "$(seq_of)" = 2 ] || die "sequence after activation: $(seq_of) (the set of keys did not change)"
[ "$(state_count retired)" = 1 ] && [ "$(state_count active)" = 1 ] || die "after activation"
[ "$(certs_in_bundle)" -ge 2 ] || die "retired key left the bundle too early"
# the agent attested before the activation renews; now the new key signs
ft "$CA_CLIENT" renew --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n1" >/dev/null \
    || die "renew across the activation"
tail -n 5 "$T/ca/ca.log" | grep "issued spiffe_id=$AG" | grep -vq "ca_key=$first" \
    || die "new key does not sign"
ft openssl verify -CAfile "$T/bundle.pem" "$T/n1/agent.pem" >/dev/null || die "chain after rotation"
fresh_agent

# 24h (+30 s): the old key expired and leaves the bundle (the next
# key's own 1/2 comes 30 s later)
jump +86430
wait_until 5 logged "ca key dropped from bundle id=$first"
"$CA_BIN" ca show "${S[@]}" | grep -q "$first" && die "old key still listed"
# (wait for the published bundle, not only the log line)
wait_until 5 seq_at_least 3
[ "$(certs_in_bundle)" = 1 ] || die "bundle after drop: $(certs_in_bundle) certificates"
# 24h + 2 min: the second key's 1/2, the third key is prepared
jump +86520
wait_until 5 seq_at_least 4
[ "$(state_count prepared)" = 1 ] && [ "$(state_count active)" = 1 ] || die "second prepare"
s=$(seq_of)
[ "$s" = 4 ] || die "sequence after drop and prepare: $s"
echo "measured: full prepare/activate/retire/drop cycle, spiffe_sequence now $s"
# the server SVID (1h) expired at every jump and renewed itself; TLS still works
n=$(grep -c "issued spiffe_id=spiffe://example.org/mayfly/server/" "$T/ca/ca.log")
[ "$n" -ge 3 ] || die "server SVID renewed only $n times"
[ "$n" -le 30 ] || die "server SVID renewed $n times: renewal is not at half life"
fresh_agent
ft "$CA_CLIENT" sync --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n1" >/dev/null \
    || die "TLS after server SVID renewals"
echo "ca_rotation: ok"
