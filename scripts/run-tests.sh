#!/usr/bin/env bash
# Runs every unit test binary, then every integration test script, and ends
# with one summary line "tests: N passed, N failed". Called by `make test`.
# Environment: BUILD (object dir), BINDIR (binaries), MAYFLY_VALGRIND=1 to run
# each program under valgrind memcheck. Arguments, if any, are name filters.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/rel}
BINDIR=${BINDIR:-bin}
mkdir -p "$BINDIR"
export MAYFLY_BIN=$(cd "$BINDIR" && pwd)
export MAYFLY_BUILD=$(cd "$BUILD" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
failures=()
log_dir=$(mktemp -d /tmp/mayfly-tests.XXXXXX)

want() {
    [ "$#" -le 1 ] && return 0
    local name=$1; shift
    for f in "$@"; do case "$name" in *"$f"*) return 0 ;; esac; done
    return 1
}

vg=()
if [ "${MAYFLY_VALGRIND:-0}" = 1 ]; then
    vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite)
    export MAYFLY_VALGRIND
fi

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    want "$name" "$@" || continue
    out="$log_dir/$name.log"
    if "${vg[@]}" "$t" >"$out" 2>&1; then
        n=$(sed -n 's/.*\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
        passed=$((passed + ${n:-1}))
        echo "ok    $name (${n:-1})"
    else
        n=$(sed -n 's/.*\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
        p=$(sed -n 's/.*\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
        failed=$((failed + ${n:-1}))
        passed=$((passed + ${p:-0}))
        failures+=("$name")
        echo "FAIL  $name"
        tail -n 40 "$out" | sed 's/^/      /'
    fi
done

for t in tests/integration/*.sh; do
    [ -f "$t" ] || continue
    case "$t" in */lib.sh | *_lib.sh) continue ;; esac
    name=$(basename "$t" .sh)
    want "$name" "$@" || continue
    out="$log_dir/$name.log"
    start=$(date +%s)
    if timeout 300 bash "$t" >"$out" 2>&1; then
        passed=$((passed + 1))
        echo "ok    $name ($(( $(date +%s) - start ))s)"
        grep -E '^(measured|note):' "$out" | sed 's/^/      /' || true
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL  $name"
        tail -n 60 "$out" | sed 's/^/      /'
    fi
done

if [ "$failed" -eq 0 ]; then
    rm -rf "$log_dir"
else
    echo "logs kept in $log_dir; failed: ${failures[*]}"
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
