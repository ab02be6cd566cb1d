#!/usr/bin/env bash
# Load on the Workload API socket: 1,000 concurrent connections (each
# making 3 requests on its connection) plus 100 slow clients that trickle
# one header byte every 200 ms and never finish. Every well-behaved request
# must get its SVID (200) within a generous 5 s; the latency percentiles are
# reported, not asserted. The agent must still answer afterwards.
# mayfly-test: serial (a load test: it wants the machine to itself)
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
# one descriptor per connection on both sides, plus room
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 2400 ] || skip "ulimit -n $(ulimit -n) too low"
CLIENTS=1000
SLOW=100
if [ "$MAYFLY_TIME_SCALE" -gt 1 ]; then
    CLIENTS=100 # under valgrind: the same paths, fewer threads
    SLOW=20
fi
start_ca a "$T/ca"
LOG_ON_FAIL="$T/n1/agent.log"
AG=spiffe://example.org/mayfly/agent/n1
add_entry a spiffe://example.org/web $AG unix:uid:0 >/dev/null
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $AG)" \
    --max-connections $((CLIENTS + SLOW + 100)) --max-watches 50
wait_until 10 fetch_as root "$AGENT_SOCK_n1"

"$MAYFLY_BUILD/tools/wl_load" --socket "$AGENT_SOCK_n1" --clients "$CLIENTS" --requests 3 \
    --slow "$SLOW" --bound-ms $((5000 * MAYFLY_TIME_SCALE)) >"$T/load.out" 2>&1 ||
    die "load: $(cat "$T/load.out")"
cat "$T/load.out"
fetch_as root "$AGENT_SOCK_n1" | grep -q 'spiffe://example.org/web' || die "not served after load"
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$AGENT_PID_n1/status")
echo "measured: agent peak RSS (VmHWM) $((hwm / 1024)) MiB after $CLIENTS connections"
echo "load_workload: ok"
