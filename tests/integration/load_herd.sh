#!/usr/bin/env bash
# A herd of 200 agents (simulated by ca_herd, each attested with its own
# join token and holding its own SVID) renews at the same instant, each
# twice in a row, against a CA with tight admission settings: the CA's peak
# RSS stays bounded, admission control engages (429 or 503, always with
# Retry-After), every agent gets through once it honours Retry-After, and
# the CA is healthy afterwards.
# mayfly-test: serial (a load test: it wants the machine to itself)
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
ulimit -n 4096 2>/dev/null || true
AGENTS=200
[ "$MAYFLY_TIME_SCALE" -gt 1 ] && AGENTS=40 # under valgrind
RSS_BOUND_MB=192
HERD="$MAYFLY_BUILD/tools/ca_herd"
mkdir -p "$T/herd"
# attest the herd at the default rates (attestation is limited per source IP)
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
"$CA_BIN" bundle show --admin-socket "$CA_SOCK_a" >"$T/bundle.pem"
"$HERD" attest --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --admin-socket "$CA_SOCK_a" \
    --dir "$T/herd" --agents "$AGENTS" >/dev/null || die "herd attestation"
stop_pid "$CA_PID_a"

# the same CA (same data dir) with tight limits: 2 signings at once, one
# request per agent per second
start_ca b "$T/ca" --max-signing 2 --agent-rate 1 --agent-burst 1
hwm_before=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$CA_PID_b/status")
"$HERD" renew --server "$CA_ADDR_b" --bundle "$T/bundle.pem" --dir "$T/herd" \
    --agents "$AGENTS" --repeat 2 >"$T/herd.out" 2>&1 || die "herd: $(cat "$T/herd.out")"
line=$(grep '^herd:' "$T/herd.out")
echo "$line"
val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
[ "$(val renewed)" = $((AGENTS * 2)) ] || die "not every renewal went through: $line"
[ $(($(val rate_limited) + $(val unavailable))) -gt 0 ] || die "admission control never engaged"
[ "$(val no_retry_after)" = 0 ] || die "a 429/503 came without Retry-After"
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$CA_PID_b/status")
echo "measured: $AGENTS agents renewing at once: $(val rate_limited) x 429 and $(val unavailable) x 503 (all with Retry-After), all renewed in $(val seconds) s; CA peak RSS (VmHWM) $((hwm / 1024)) MiB (before: $((hwm_before / 1024)) MiB)"
# the bound holds for the real build; valgrind and ASan add their own
if [ "$MAYFLY_TIME_SCALE" = 1 ] && ! sanitized; then
    [ $((hwm / 1024)) -lt $RSS_BOUND_MB ] || die "CA peak RSS $((hwm / 1024)) MiB over $RSS_BOUND_MB MiB"
else
    echo "note: RSS bound not checked under valgrind or ASan"
fi
[ "$("$CA_BIN" healthcheck --admin-socket "$CA_SOCK_b")" = ok ] || die "CA unhealthy after the herd"
n=$("$CA_BIN" agent list --admin-socket "$CA_SOCK_b" --json | grep -c '"spiffe_id"')
[ "$n" = "$AGENTS" ] || die "agent list has $n agents"
echo "load_herd: ok"
