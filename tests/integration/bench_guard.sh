#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The benchmark cannot lie by omission: bench/report.py, the report step of
# scripts/bench.sh (BENCH_QUICK=1 too), is run on fabricated raw results
# (nothing is measured, no time is asserted):
#   1. a complete run: exit 0, no "Failed measurements" section, and every
#      headline row names its baseline;
#   2. a signing run that returned 0 certs/s: exit 1, and both stderr and
#      the report name the measurement and say it measured nothing;
#   3. a measurement that bench.sh recorded as timed out: exit 1, named;
#   4. a missing baseline (no cfssl rows): exit 1, "cfssl signing rate not
#      measured";
#   5. failed requests inside a measurement (errors=3): exit 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
make_tmp

good() {
    cat <<'EOF'
machine nproc=2 kernel=test mem_mb=1000
mode quick=1 runs=1 sp=1 default_lib=sp started=2026-01-01T00:00:00Z
sec=ecc lib=sp run=1 th=1 | ecc op=sign threads=1 per_s=40000 version=5.5.4
sec=floor lib=sp run=1 | floor threads=1 per_s=8000 cpu_us_per_cert=120.0
sec=floor lib=sp run=1 | floor threads=2 per_s=15000 cpu_us_per_cert=125.0
sec=floor lib=debian run=1 | floor threads=1 per_s=900 cpu_us_per_cert=1100.0
sec=floor lib=debian run=1 | floor threads=2 per_s=1600 cpu_us_per_cert=1150.0
sec=sign lib=sp run=1 | loadgen target=mayfly conns=2 batch=500 certs_per_s=11000 req_p50_ms=80.0 req_p99_ms=120.0 requests=40 errors=0 rejected=0 server_cpu_us_per_cert=140.0 client_cpu_us_per_cert=10.0
sec=sign lib=debian run=1 | loadgen target=mayfly conns=2 batch=500 certs_per_s=1200 req_p50_ms=800.0 req_p99_ms=900.0 requests=5 errors=0 rejected=0 server_cpu_us_per_cert=1100.0 client_cpu_us_per_cert=10.0
sec=cfssl run=1 | loadgen target=cfssl conns=2 batch=1 certs_per_s=3000 req_p50_ms=0.6 req_p99_ms=3.0 requests=6000 errors=0 rejected=0 server_cpu_us_per_cert=350.0 client_cpu_us_per_cert=20.0
sec=wl server=agent run=1 | wlload mode=keepalive clients=64 fetches_per_s=50000 p50_us=900 p99_us=3000 max_us=5000 errors=0 server_cpu_us_per_fetch=15.0
sec=wl server=bare run=1 | wlload mode=keepalive clients=64 fetches_per_s=80000 p50_us=500 p99_us=2000 max_us=4000 errors=0 server_cpu_us_per_fetch=10.0
sec=grpc proto=grpc run=1 | grpcload mode=keepalive clients=1 fetches_per_s=18000 p50_us=40 p99_us=90 max_us=400 errors=0 goaways=0 server_cpu_us_per_fetch=30.0
sec=grpc proto=json run=1 | wlload mode=keepalive clients=1 fetches_per_s=30000 p50_us=30 p99_us=60 max_us=300 errors=0 server_cpu_us_per_fetch=15.0
sec=grpc proto=grpc run=1 | grpcload mode=keepalive clients=64 fetches_per_s=40000 p50_us=1500 p99_us=4000 max_us=6000 errors=0 goaways=0 server_cpu_us_per_fetch=30.0
sec=grpc proto=json run=1 | wlload mode=keepalive clients=64 fetches_per_s=70000 p50_us=900 p99_us=3000 max_us=5000 errors=0 server_cpu_us_per_fetch=15.0
sec=mem what=agent_idle_0svid | rss_kb=6000 hwm_kb=6500 anon_kb=2000 threads=5
sec=mem what=agent_n1 n=1000 | rss_kb=7800 hwm_kb=8000 anon_kb=3800 threads=5
sec=mem what=agent_n2 n=10000 | rss_kb=40000 hwm_kb=41000 anon_kb=36000 threads=5
sec=cold what=agent_1svid run=1 | cold ms=20
sec=cold what=agent_10000svid run=1 | cold ms=450
sec=prop | propagate trials=20 p50_ms=25.0 p90_ms=30.0 max_ms=45.0 mean_ms=26.0 cli_p50_ms=9.0 timeouts=0
sec=storm | storm_poll fetches=400 svids_checked=40000 expired=0 last_second=0 min_remaining_s=26 denied=0 errors=0
sec=storm | storm_cpu ca_cpu_s=5.1 agent_cpu_s=9.8 wall_s=40 n=1000 ttl=60
sec=storm | storm_issued n=3000 ca_issued=3001 agent_warnings=0
load_after 1 1 1 elapsed_s=10
EOF
}

# report NAME RESULTS [FAILURES]: runs the report step; sets RC, OUT, ERR
report() {
    local n=$1
    printf '%s\n' "$2" >"$T/$n.txt"
    printf '%s' "${3:-}" >"$T/$n.fail"
    RC=0
    python3 bench/report.py --results "$T/$n.txt" --failures "$T/$n.fail" --out "$T/$n.md" \
        --img "$T/img" --storm-ttl 60 --storm-secs 40 --storm-n 1000 2>"$T/$n.err" || RC=$?
    OUT=$T/$n.md
    ERR=$T/$n.err
}

# failed NAME PATTERN: exit 1, PATTERN on stderr and in the report's
# "Failed measurements" section
failed() {
    [ "$RC" = 1 ] || die "$1: report exited $RC, want 1 (stderr: $(cat "$ERR"))"
    grep -q 'bench: FAILED' "$ERR" || die "$1: no FAILED line on stderr: $(cat "$ERR")"
    grep -qF -- "$2" "$ERR" || die "$1: stderr does not say '$2': $(cat "$ERR")"
    grep -q '^## Failed measurements' "$OUT" || die "$1: the report has no Failed measurements section"
    sed -n '/^## Failed measurements/,/^## Headline/p' "$OUT" | grep -qF -- "$2" ||
        die "$1: the report's failure section does not say '$2'"
}

# 1. complete
report good "$(good)"
[ "$RC" = 0 ] || die "complete results: report exited $RC: $(cat "$ERR")"
! grep -q '^## Failed measurements' "$OUT" || die "complete results reported as failed"
head_rows=$(sed -n '/^## Headline figures/,/^## 1\./p' "$OUT" | grep -c '^| [^m-]' || true)
[ "$head_rows" -ge 8 ] || die "only $head_rows headline rows in the complete report"
for b in 'in-process floor, 2 threads: 15,000' 'cfssl serve: 3,000' 'bare libmicrohttpd: 80,000' \
    'no SVIDs: 5.86 MiB' 'the CLI process alone (p50): 9' 'SVIDs checked: 40,000' \
    'Debian wolfSSL: 900 /s' 'CPU per SVID: CA 1,699 µs, agent 3,267 µs'; do
    grep -qF -- "$b" "$OUT" || die "complete report: no baseline '$b'"
done

# 2. a signing run that measured nothing
report zero "$(good | sed '/^sec=sign lib=sp/s/certs_per_s=11000/certs_per_s=0/')"
failed "zero rate" "sec=sign lib=sp conns=2 batch=500 run=1: certs_per_s=0 (loadgen measured nothing)"

# 3. a measurement bench.sh saw time out (its row is missing too)
report timeout "$(good | grep -v '^sec=prop')" \
    "$(printf 'sec=prop\ttimed out after 300 s: propagate\n')"
failed "timeout" "sec=prop: timed out after 300 s: propagate"
failed "timeout" 'headline "propagation, CLI to watch stream (p50 / max)": propagation p50 not measured'

# 4. a baseline missing
report nocfssl "$(good | grep -v '^sec=cfssl')"
failed "no baseline" 'headline "CA signing vs cfssl (certs/s)": cfssl signing rate not measured'

# 4b. the storm's CPU figures missing
report nocpu "$(good | grep -v '^sec=storm | storm_cpu')"
failed "no storm CPU" 'rotation storm: expired SVIDs served / least lifetime left": agent CPU per SVID not measured'

# 5. failed requests inside a measurement
report errors "$(good | sed '/server=agent/s/errors=0/errors=3/')"
failed "request errors" "3 request(s) failed (wlload)"

echo "ok: the report step fails loudly on zero, timed-out, missing and erroring measurements"
