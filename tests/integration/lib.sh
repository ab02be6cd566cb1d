# shellcheck shell=bash
# Shared helpers for integration tests (source it after `set -euo pipefail`).
#
#   make_tmp                 sets T to a temp dir removed (and its processes
#                            killed) on exit; call it directly, not in $(...)
#   port=$(pick_port)        a free TCP port on 127.0.0.1
#   start_ca NAME DIR [ARGS] starts mayfly-ca in DIR, waits for its ready line;
#                            sets CA_PID_<NAME>, CA_ADDR_<NAME>, CA_SOCK_<NAME>
#   wait_for_socket PATH [S] waits until a Unix socket exists
#   wait_for_log FILE RE [S] waits until FILE has a line matching RE
#   die MSG                  fails the test with MSG
#   skip MSG                 ends the test as skipped (exit 77): it cannot run
#                            here; counted apart, and a failure under CI=true
#
# Binaries come from $MAYFLY_BIN (bin/), tools from $MAYFLY_BUILD/tools.

MAYFLY_BIN=${MAYFLY_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../bin" && pwd)}
MAYFLY_BUILD=${MAYFLY_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build/rel" && pwd)}
CA_BIN="$MAYFLY_BIN/mayfly-ca"
CA_CLIENT="$MAYFLY_BUILD/tools/ca_client"

_LIB_PIDS=()
_LIB_TMP=""

# Valgrind (make valgrind, MAYFLY_VALGRIND=1): every daemon that a test
# starts through start_ca or $MAYFLY_WRAP runs under memcheck. Each writes
# its report to vg-<pid>.log next to its own log; with -q a report holds
# errors only, so cleanup fails the test on any of them (invalid reads and
# writes, uses of uninitialised values, definite leaks). Waits in
# tests scale by MAYFLY_TIME_SCALE (10 under valgrind, else 1).
MAYFLY_WRAP=()
MAYFLY_TIME_SCALE=1
if [ "${MAYFLY_VALGRIND:-0}" = 1 ]; then
    MAYFLY_TIME_SCALE=10
    MAYFLY_VG_SUPP="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/valgrind.supp"
    # vg_wrap DIR: sets MAYFLY_WRAP to write its reports into DIR
    vg_wrap() {
        MAYFLY_WRAP=(valgrind -q --error-exitcode=99 --leak-check=full
            --show-leak-kinds=definite --errors-for-leak-kinds=definite
            --suppressions="$MAYFLY_VG_SUPP" --log-file="$1/vg-%p.log")
    }
else
    vg_wrap() { MAYFLY_WRAP=(); }
fi

die() {
    echo "FAIL: $*" >&2
    if [ -n "${LOG_ON_FAIL:-}" ] && [ -f "$LOG_ON_FAIL" ]; then
        echo "--- $LOG_ON_FAIL (last 30 lines)" >&2
        tail -n 30 "$LOG_ON_FAIL" >&2
    fi
    exit 1
}

skip() {
    echo "skip: $*"
    exit 77
}

cleanup() {
    local rc=$? p bad=0
    for p in "${_LIB_PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${_LIB_PIDS[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    if [ -n "$_LIB_TMP" ]; then
        # daemons started in subshells are not in _LIB_PIDS: every one of
        # them has its data or socket under the temp dir, so find them there
        pkill -TERM -f -- "$_LIB_TMP" 2>/dev/null || true
        for p in $(seq 1 $((40 * MAYFLY_TIME_SCALE))); do
            pgrep -f -- "$_LIB_TMP" >/dev/null 2>&1 || break
            sleep 0.05
        done
        pkill -KILL -f -- "$_LIB_TMP" 2>/dev/null || true
        # under `make check` the daemons run with ASan/UBSan: a report in
        # any log fails the test even if the scenario passed
        for p in $(find "$_LIB_TMP" -name '*.log' 2>/dev/null); do
            if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$p"; then
                echo "FAIL: sanitizer report in $p" >&2
                grep -E -A20 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$p" | head -40 >&2
                bad=1
            fi
        done
        # "==pid==" lines are memcheck's reports; "--pid--" lines are its
        # notes (such as a syscall it does not know: pidfd_open)
        for p in $(find "$_LIB_TMP" -name 'vg-*.log' -size +0 2>/dev/null); do
            grep -q '^==[0-9]*==' "$p" || continue
            echo "FAIL: valgrind report in $p" >&2
            grep '^==[0-9]*==' "$p" | head -60 >&2
            bad=1
        done
        rm -rf "$_LIB_TMP"
    fi
    if [ "$bad" = 1 ] && [ "$rc" = 0 ]; then
        exit 1
    fi
}

make_tmp() {
    _LIB_TMP=$(mktemp -d /tmp/mayfly-it.XXXXXX)
    chmod 700 "$_LIB_TMP"
    trap cleanup EXIT
    T=$_LIB_TMP
}

# Remembers a pid so that cleanup kills it.
track_pid() {
    _LIB_PIDS+=("$1")
}

pick_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

wait_for_socket() {
    local path=$1 secs=${2:-10} i
    for i in $(seq 1 $((secs * 20))); do
        [ -S "$path" ] && return 0
        sleep 0.05
    done
    die "socket $path did not appear within ${secs}s"
}

wait_for_log() {
    local file=$1 re=$2 secs=${3:-10} i
    for i in $(seq 1 $((secs * 20))); do
        grep -Eq -- "$re" "$file" 2>/dev/null && return 0
        sleep 0.05
    done
    die "'$re' did not appear in $file within ${secs}s"
}

# start_ca NAME DIR [extra args...]: data in DIR/data, log in DIR/ca.log,
# admin socket DIR/admin.sock, a random port unless --listen is given.
start_ca() {
    local name=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    local port
    port=$(pick_port)
    local listen=(--listen "127.0.0.1:$port")
    local a
    for a in "$@"; do [ "$a" = --listen ] && listen=(); done
    : >"$dir/ca.log"
    vg_wrap "$dir"
    "${MAYFLY_WRAP[@]}" "$CA_BIN" run --data-dir "$dir/data" --admin-socket "$dir/admin.sock" \
        --trust-domain "${TD:-example.org}" "${listen[@]}" "$@" >>"$dir/ca.log" 2>&1 &
    local pid=$!
    track_pid "$pid"
    local i
    for i in $(seq 1 $((200 * MAYFLY_TIME_SCALE))); do
        if grep -q '^mayfly-ca ready' "$dir/ca.log"; then
            break
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/ca.log" >&2
            die "mayfly-ca $name exited during start"
        fi
        sleep 0.05
    done
    grep -q '^mayfly-ca ready' "$dir/ca.log" ||
        die "mayfly-ca $name not ready within $((10 * MAYFLY_TIME_SCALE))s"
    local addr
    addr=$(sed -n 's/^mayfly-ca ready listen=\([^ ]*\).*/\1/p' "$dir/ca.log" | tail -1)
    printf -v "CA_PID_$name" '%s' "$pid"
    printf -v "CA_ADDR_$name" '%s' "$addr"
    printf -v "CA_SOCK_$name" '%s' "$dir/admin.sock"
}

# stop_pid PID [SIGNAL]: signals and reaps a tracked process.
stop_pid() {
    kill "-${2:-TERM}" "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# expect_fail DESC CMD...: the command must exit non-zero and print one
# line on stderr.
expect_fail() {
    local desc=$1
    shift
    local err
    if err=$("$@" 2>&1 >/dev/null); then
        die "$desc: expected a failure, got success"
    fi
    [ -n "$err" ] || die "$desc: failed without a message"
    echo "ok (refused): $desc: $err"
}
