# shellcheck shell=bash
# Shared helpers for integration tests (source it after `set -euo pipefail`).
#
#   make_tmp                 sets T to a temp dir removed (and its processes
#                            killed) on exit; call it directly, not in $(...)
#   port=$(pick_port)        a free TCP port on 127.0.0.1, reserved for this test
#   start_ca NAME DIR [ARGS] starts mayfly-ca in DIR (on a port of its own
#                            unless --listen is given), waits for its ready line;
#                            sets CA_PID_<NAME>, CA_ADDR_<NAME>, CA_SOCK_<NAME>
#   wait_for_socket PATH [S] waits until a Unix socket exists
#   wait_for_log FILE RE [S] waits until FILE has a line matching RE
#   die MSG                  fails the test with MSG
#   skip MSG                 ends the test as skipped (exit 77): it cannot run
#                            here; counted apart, and a failure under CI=true
#
#   fetch_has WHO SOCK PAT          a fetch as WHO prints PAT
#   fetch_denied WHO SOCK           a fetch as WHO is refused
#
#   start_agent NAME DIR CA [ARGS]  mayfly-agent with data in DIR/data, socket
#                                   DIR/agent.sock, log DIR/agent.log, against
#                                   CA (a start_ca name); waits for its ready
#                                   line; sets AGENT_PID_<NAME>, AGENT_SOCK_<NAME>
#   fresh_token CA AGENT_ID         a join token, on stdout
#   add_entry CA ID PARENT SEL [..] creates an entry, prints its id
#   fetch_as WHO SOCK [ARGS]        `mayfly-agent fetch x509` as root or nobody
#   wait_until SECS CMD...          polls CMD every 0.1 s until it succeeds;
#                                   fails the test after SECS (scaled)
#   registry_digest CA              a digest of entries and agents, to show
#                                   that a refused request changed nothing
#   sanitized                       true when the daemons are built with ASan
#                                   (`make check`): memory bounds do not apply
#
# Binaries come from $MAYFLY_BIN (bin/), tools from $MAYFLY_BUILD/tools.

MAYFLY_BIN=${MAYFLY_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../bin" && pwd)}
MAYFLY_BUILD=${MAYFLY_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build/rel" && pwd)}
CA_BIN="$MAYFLY_BIN/mayfly-ca"
# shellcheck disable=SC2034 # used by the tests that source this file
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
        while IFS= read -r p; do
            if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$p"; then
                echo "FAIL: sanitizer report in $p" >&2
                grep -E -A20 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$p" | head -40 >&2
                bad=1
            fi
        done < <(find "$_LIB_TMP" -name '*.log' 2>/dev/null)
        # "==pid==" lines are memcheck's reports; "--pid--" lines are its
        # notes (such as a syscall it does not know: pidfd_open)
        while IFS= read -r p; do
            grep -q '^==[0-9]*==' "$p" || continue
            echo "FAIL: valgrind report in $p" >&2
            grep '^==[0-9]*==' "$p" | head -60 >&2
            bad=1
        done < <(find "$_LIB_TMP" -name 'vg-*.log' -size +0 2>/dev/null)
        rm -rf "$_LIB_TMP"
    fi
    free_ports
    if [ "$bad" = 1 ] && [ "$rc" = 0 ]; then
        exit 1
    fi
}

make_tmp() {
    _LIB_TMP=$(mktemp -d /tmp/mayfly-it.XXXXXX)
    chmod 700 "$_LIB_TMP"
    trap cleanup EXIT
    # shellcheck disable=SC2034 # the temp dir of the test that sources this
    T=$_LIB_TMP
}

# Remembers a pid so that cleanup kills it.
track_pid() {
    _LIB_PIDS+=("$1")
}

# A free TCP port on 127.0.0.1, for a server that must keep its port across
# a restart (a daemon that binds port 0 reports its address instead; see
# start_ca). Ports come from below the kernel's ephemeral range, so they
# never meet a port-0 bind, and each is reserved with an atomic mkdir, so
# that tests running in parallel never pick the same one; cleanup frees it.
_LIB_PORT_DIR=/tmp/mayfly-test-ports
pick_port() {
    local p owner lo=20000 hi=32000
    mkdir -p "$_LIB_PORT_DIR"
    for _ in $(seq 1 200); do
        p=$((lo + RANDOM % (hi - lo)))
        if ! mkdir "$_LIB_PORT_DIR/$p" 2>/dev/null; then
            # reserved: take it over only if its test is gone
            owner=$(cat "$_LIB_PORT_DIR/$p/owner" 2>/dev/null || echo 1)
            kill -0 "$owner" 2>/dev/null && continue
        fi
        echo $$ >"$_LIB_PORT_DIR/$p/owner"
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
        echo "$p"
        return 0
    done
    die "no free port found"
}

# Frees the ports this test reserved.
free_ports() {
    local d
    for d in "$_LIB_PORT_DIR"/*; do
        [ "$(cat "$d/owner" 2>/dev/null)" = $$ ] && rm -rf "$d"
    done
    return 0
}

wait_for_socket() {
    local path=$1 secs=${2:-10}
    for _ in $(seq 1 $((secs * 20))); do
        [ -S "$path" ] && return 0
        sleep 0.05
    done
    die "socket $path did not appear within ${secs}s"
}

wait_for_log() {
    local file=$1 re=$2 secs=${3:-10}
    for _ in $(seq 1 $((secs * 20))); do
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
    # port 0: the kernel picks a free port and the ready line reports it
    local listen=(--listen "127.0.0.1:0")
    local a
    for a in "$@"; do [ "$a" = --listen ] && listen=(); done
    : >"$dir/ca.log"
    vg_wrap "$dir"
    "${MAYFLY_WRAP[@]}" "$CA_BIN" run --data-dir "$dir/data" --admin-socket "$dir/admin.sock" \
        --trust-domain "${TD:-example.org}" "${listen[@]}" "$@" >>"$dir/ca.log" 2>&1 &
    local pid=$!
    track_pid "$pid"
    for _ in $(seq 1 $((200 * MAYFLY_TIME_SCALE))); do
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

# ---- agents, workloads and the registry ------------------------------------

AGENT_BIN="$MAYFLY_BIN/mayfly-agent"

start_agent() {
    local name=$1 dir=$2 ca=$3
    shift 3
    mkdir -p "$dir"
    local addr_var="CA_ADDR_$ca" sock_var="CA_SOCK_$ca"
    local before
    before=$(grep -c '^mayfly-agent ready' "$dir/agent.log" 2>/dev/null || true)
    if [ ! -f "$dir/bundle.pem" ]; then
        "$CA_BIN" bundle show --admin-socket "${!sock_var}" >"$dir/bundle.pem"
    fi
    vg_wrap "$dir"
    "${MAYFLY_WRAP[@]}" "$AGENT_BIN" run --data-dir "$dir/data" --server "${!addr_var}" \
        --trust-bundle "$dir/bundle.pem" --socket "$dir/agent.sock" "$@" \
        >>"$dir/agent.log" 2>&1 &
    local pid=$!
    track_pid "$pid"
    local now
    for _ in $(seq 1 $((200 * MAYFLY_TIME_SCALE))); do
        now=$(grep -c '^mayfly-agent ready' "$dir/agent.log" 2>/dev/null || true)
        [ "${now:-0}" -gt "${before:-0}" ] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$dir/agent.log" >&2
            die "mayfly-agent $name exited during start"
        fi
        sleep 0.05
    done
    [ "${now:-0}" -gt "${before:-0}" ] || die "mayfly-agent $name not ready"
    printf -v "AGENT_PID_$name" '%s' "$pid"
    printf -v "AGENT_SOCK_$name" '%s' "$dir/agent.sock"
}

fresh_token() {
    local sock_var="CA_SOCK_$1"
    "$CA_BIN" token generate --admin-socket "${!sock_var}" --spiffe-id "$2"
}

add_entry() {
    local sock_var="CA_SOCK_$1" id=$2 parent=$3
    shift 3
    local sels=() s
    for s in "$@"; do sels+=(--selector "$s"); done
    "$CA_BIN" entry create --admin-socket "${!sock_var}" --spiffe-id "$id" --parent-id "$parent" \
        "${sels[@]}"
}

fetch_as() {
    local who=$1 sock=$2
    shift 2
    if [ "$who" = nobody ]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups \
            "$AGENT_BIN" fetch x509 --socket "$sock" "$@"
    else
        "$AGENT_BIN" fetch x509 --socket "$sock" "$@"
    fi
}

wait_until() {
    local secs=$1
    shift
    for _ in $(seq 1 $((secs * 10 * MAYFLY_TIME_SCALE))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "condition not met within ${secs}s: $*"
}

registry_digest() {
    local sock_var="CA_SOCK_$1"
    {
        "$CA_BIN" entry list --admin-socket "${!sock_var}" --json
        "$CA_BIN" agent list --admin-socket "${!sock_var}" --json |
            sed 's/"last_seen": *"[^"]*"//g'
    } | sha256sum | cut -c1-16
}

sanitized() {
    # not `ldd | grep -q`: grep's early exit can fail ldd with SIGPIPE, and
    # pipefail then reports "not sanitized"
    case "$(ldd "$CA_BIN" 2>/dev/null)" in
    *libasan*) return 0 ;;
    *) return 1 ;;
    esac
}

fetch_has() {
    local out
    out=$(fetch_as "$1" "$2" 2>/dev/null) || return 1
    grep -q -- "$3" <<<"$out"
}

fetch_denied() {
    ! fetch_as "$1" "$2" >/dev/null 2>&1
}

# ---- PostgreSQL ----------------------------------------------------------------

# start_pg DIR: a private PostgreSQL server from Debian's postgresql package:
# a new cluster in DIR (initdb as the unprivileged postgres user when run as
# root), listening only on a Unix socket in DIR; sets PG_URI (a libpq URI
# for database "mayfly") and PG_DATA. Skips the test when the package is
# missing. The server is stopped by cleanup (its command line names DIR).
start_pg() {
    local dir=$1 bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$bin" ] && [ -x "$bin/initdb" ] || skip "PostgreSQL server (Debian postgresql) missing"
    local as=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || skip "no postgres user to run the server as"
        as=(runuser -u postgres --)
        chmod 0711 "$T"
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    PG_DATA="$dir/data"
    "${as[@]}" "$bin/initdb" -D "$PG_DATA" -A trust -U mayfly -E UTF8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    "${as[@]}" "$bin/pg_ctl" -D "$PG_DATA" -l "$dir/pg.log" -w -t 30 \
        -o "-k $dir -c listen_addresses='' -c max_connections=200" start >/dev/null ||
        { cat "$dir/pg.log" >&2; die "PostgreSQL did not start"; }
    "${as[@]}" "$bin/createdb" -h "$dir" -U mayfly mayfly || die "createdb failed"
    # shellcheck disable=SC2034 # for the tests that call start_pg
    PG_URI="postgresql:///mayfly?host=$dir&user=mayfly"
    PG_BIN=$bin
    PG_AS=("${as[@]}")
}

# stop_pg [MODE]: stops the server started by start_pg (fast by default;
# "immediate" is a crash); start_pg_again restarts it on the same cluster.
stop_pg() {
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m "${1:-fast}" -w stop >/dev/null
}
start_pg_again() {
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$(dirname "$PG_DATA")/pg.log" -w -t 30 \
        -o "-k $(dirname "$PG_DATA") -c listen_addresses='' -c max_connections=200" \
        start >/dev/null || die "PostgreSQL did not start again"
}

# ---- gRPC clients ---------------------------------------------------------------

# need_grpc_python: sets PY to a python3 that has Debian's python3-grpcio and
# python3-grpc-tools, or skips the test. Debian's packages live with the
# system python, which a pyenv or venv python3 earlier in PATH does not see.
need_grpc_python() {
    local p
    PY=""
    for p in /usr/bin/python3 python3; do
        if "$p" -c 'import grpc, grpc_tools.protoc' >/dev/null 2>&1; then
            PY=$p
            return 0
        fi
    done
    skip "python3-grpcio/python3-grpc-tools missing"
}

# grpc_stubs DIR: the Workload API's Python stubs, generated now from
# api/proto/workload.proto into DIR (made 0755, readable by other uids);
# never committed. Needs PY (need_grpc_python).
grpc_stubs() {
    local proto
    proto="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../api/proto" && pwd)"
    mkdir -m 0755 "$1"
    "$PY" -m grpc_tools.protoc -I"$proto" --python_out="$1" --grpc_python_out="$1" \
        "$proto/workload.proto" || die "cannot generate the gRPC stubs"
    chmod -R a+rX "$1"
}
