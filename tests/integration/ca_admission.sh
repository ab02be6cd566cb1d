#!/usr/bin/env bash
# Admission control: an agent over its signing rate gets 429 with
# Retry-After, and its bucket refills. (The capacity gate, 503, is unit
# tested in test_ca_issue.c, where it can be driven deterministically.)
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_ca a "$T/ca" --agent-rate 1 --agent-burst 3
LOG_ON_FAIL="$T/ca/ca.log"
S=(--admin-socket "$CA_SOCK_a")
AG=spiffe://example.org/mayfly/agent/n1
"$CA_BIN" bundle show "${S[@]}" >"$T/bundle.pem"
mkdir -p "$T/n1"
client() { "$CA_CLIENT" "$1" --server "$CA_ADDR_a" --bundle "$T/bundle.pem" "${@:2}"; }
client attest --dir "$T/n1" --token "$("$CA_BIN" token generate "${S[@]}" --spiffe-id $AG)" \
    >/dev/null || die attest
e=$("$CA_BIN" entry create "${S[@]}" --spiffe-id spiffe://example.org/web --parent-id $AG \
    --selector unix:uid:1)
limited=0
for _ in 1 2 3 4 5 6; do
    if ! client sign --dir "$T/n1" --entry "$e" --spiffe-id spiffe://example.org/web >"$T/out"; then
        grep -q 'status=429' "$T/out" || die "expected 429: $(cat "$T/out")"
        grep -q 'retry_after=[1-9]' "$T/out" || die "no Retry-After"
        limited=$((limited + 1))
    fi
done
[ "$limited" -ge 2 ] || die "rate limit never applied ($limited)"
echo "measured: $limited of 6 rapid signing requests refused with 429 at rate 1/s burst 3"
sleep 1.2
client sign --dir "$T/n1" --entry "$e" --spiffe-id spiffe://example.org/web >/dev/null \
    || die "bucket did not refill"
echo "ca_admission: ok"
