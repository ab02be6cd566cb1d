#!/usr/bin/env bash
# Runs every unit test binary and every integration test script, and ends
# with one summary line "tests: N passed, N failed, N skipped" and the wall
# time. Called by `make test`.
#
# Unit test binaries run in parallel. Integration scripts run in parallel
# too, MAYFLY_TEST_JOBS at a time (default: twice the cores, since most of
# their time is spent waiting on the daemons they start); a script whose
# header holds the line "# mayfly-test: serial" (load tests, anything that
# wants the machine to itself) runs alone once the others are done.
#
# A test passes by exiting 0, is skipped by exiting 77 (lib.sh's `skip`,
# cmocka's skip()), and fails otherwise. A skipped test is counted apart,
# never as passed; with CI=true a skip is a failure, because CI's machine is
# set up by the project's own scripts and has everything every test needs.
#
# Environment: BUILD (object dir), BINDIR (binaries), MAYFLY_VALGRIND=1 to run
# each program under valgrind memcheck, MAYFLY_TEST_JOBS. Arguments, if any,
# are name filters.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
BUILD=${BUILD:-build/rel}
BINDIR=${BINDIR:-bin}
mkdir -p "$BINDIR"
MAYFLY_BIN=$(cd "$BINDIR" && pwd)
MAYFLY_BUILD=$(cd "$BUILD" && pwd)
export MAYFLY_BIN MAYFLY_BUILD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cores=$(nproc 2>/dev/null || echo 2)
jobs=${MAYFLY_TEST_JOBS:-$((cores * 2))}
ci=false
[ "${CI:-}" = true ] && ci=true

passed=0
failed=0
skipped=0
failures=()
skips=()
t_start=$(date +%s)
log_dir=$(mktemp -d /tmp/mayfly-tests.XXXXXX)

want() {
    [ "$#" -le 1 ] && return 0
    local name=$1
    shift
    local f
    for f in "$@"; do case "$name" in *"$f"*) return 0 ;; esac; done
    return 1
}

vg=()
if [ "${MAYFLY_VALGRIND:-0}" = 1 ]; then
    vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite)
    export MAYFLY_VALGRIND
    jobs=$cores
fi

# cmocka's summary lines: "[  PASSED  ] 5 test(s)." and friends
cmocka_count() {
    sed -n "s/.*\[  $1  \] \([0-9]*\) test.*/\1/p" "$2" | tail -1
}

# record NAME RC LOG SECONDS KIND: counts one finished test and reports it
record() {
    local name=$1 rc=$2 out=$3 secs=$4 kind=$5 n p s
    if [ "$kind" = unit ]; then
        p=$(cmocka_count PASSED "$out")
        n=$(cmocka_count FAILED "$out")
        s=$(cmocka_count SKIPPED "$out")
    else
        p=1 n=1 s=1
    fi
    if [ "$rc" = 77 ] || { [ "$kind" = unit ] && [ "$rc" = 0 ] && [ "${s:-0}" -gt 0 ]; }; then
        local why
        why=$(sed -n 's/^skip: //p' "$out" | head -1)
        [ -n "$why" ] || why="see $out"
        if $ci; then
            failed=$((failed + ${s:-1}))
            [ "$kind" = unit ] && passed=$((passed + ${p:-0}))
            failures+=("$name")
            echo "FAIL  $name: skipped, and CI must run every test ($why)"
            return
        fi
        skipped=$((skipped + ${s:-1}))
        [ "$kind" = unit ] && passed=$((passed + ${p:-0}))
        skips+=("$name")
        echo "skip  $name: $why"
        return
    fi
    if [ "$rc" = 0 ]; then
        passed=$((passed + ${p:-1}))
        if [ "$kind" = unit ]; then
            echo "ok    $name (${p:-1})"
        else
            echo "ok    $name (${secs}s)"
            grep -E '^(measured|note):' "$out" | sed 's/^/      /' || true
        fi
        return
    fi
    failed=$((failed + ${n:-1}))
    [ "$kind" = unit ] && passed=$((passed + ${p:-0}))
    failures+=("$name")
    echo "FAIL  $name (exit $rc, ${secs}s)"
    tail -n 60 "$out" | sed 's/^/      /'
}

# A pool of background jobs: run_job NAME KIND CMD... starts one when a slot
# is free; drain waits for all. Each job writes its exit status and duration
# next to its log when it ends; the pool polls for those files (wait -n
# cannot be trusted to report a job that ended before it was called).
declare -A job_name=() job_kind=()
reap_one() {
    local pid name
    while :; do
        for pid in "${!job_name[@]}"; do
            name=${job_name[$pid]}
            [ -f "$log_dir/$name.rc" ] || continue
            wait "$pid" 2>/dev/null || true
            local kind=${job_kind[$pid]} rc secs
            unset "job_name[$pid]" "job_kind[$pid]"
            read -r rc secs <"$log_dir/$name.rc"
            record "$name" "$rc" "$log_dir/$name.log" "$secs" "$kind"
            return 0
        done
        sleep 0.1
    done
}
run_job() {
    local name=$1 kind=$2
    shift 2
    while [ "${#job_name[@]}" -ge "$jobs" ]; do reap_one; done
    (
        s=$(date +%s)
        "$@" >"$log_dir/$name.log" 2>&1 </dev/null
        rc=$?
        echo "$rc $(($(date +%s) - s))" >"$log_dir/$name.rc.tmp"
        mv "$log_dir/$name.rc.tmp" "$log_dir/$name.rc"
    ) &
    job_name[$!]=$name
    job_kind[$!]=$kind
}
drain() {
    while [ "${#job_name[@]}" -gt 0 ]; do reap_one; done
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    want "$name" "$@" || continue
    run_job "$name" unit "${vg[@]}" "$t"
done
drain

serial=()
for t in tests/integration/*.sh; do
    [ -f "$t" ] || continue
    case "$t" in */lib.sh | *_lib.sh) continue ;; esac
    name=$(basename "$t" .sh)
    want "$name" "$@" || continue
    if head -n 20 "$t" | grep -q '^# mayfly-test: serial'; then
        serial+=("$t")
        continue
    fi
    run_job "$name" integration timeout 300 bash "$t"
done
drain
for t in "${serial[@]:-}"; do
    [ -n "$t" ] || continue
    run_job "$(basename "$t" .sh)" integration timeout 300 bash "$t"
    drain
done

if [ "$failed" -eq 0 ]; then
    rm -rf "$log_dir"
else
    echo "logs kept in $log_dir; failed: ${failures[*]}"
fi
[ "${#skips[@]}" -eq 0 ] || echo "skipped: ${skips[*]}"
echo "wall time: $(($(date +%s) - t_start))s"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
