#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# mayfly's benchmarks (issue 7): builds the programs in bench/, runs every
# measurement against real processes on loopback, and writes
# docs/benchmarks.md (docs/img/*.png when gnuplot is there). Every figure is
# the median of RUNS runs, with its baseline measured in the same run.
#
#   scripts/bench.sh                 full run (what `make bench` runs), ~10-14 min
#   BENCH_QUICK=1 scripts/bench.sh   smoke run, ~2-3 min, scaled down, writes
#                                    build/bench/benchmarks.md (not the doc)
#
# wolfSSL: the crypto floor and CA signing are measured on both builds of
# wolfSSL, the SP build (scripts/build-wolfssl-sp.sh, mayfly's default) and
# Debian's libwolfssl (`make WOLFSSL=system`), whichever the binaries were
# linked with; the other one is swapped in with LD_LIBRARY_PATH (same
# soname and ABI). WOLFSSL_SP=1 builds the SP library first when missing.
#
# Other knobs: BENCH_RUNS (runs per figure), BENCH_OUT (the markdown file),
# BENCH_KEEP=1 (keep the work dir), BENCH_TIMEOUT (seconds one measuring
# program may take, default 300). Needs root: the Workload API checks use
# other uids (setresuid), and missing tools (cfssl, gnuplot) are installed
# with apt-get.
#
# No figure is a pass/fail goal, but a run cannot lie by omission: a
# measurement that fails (nonzero exit), times out, prints nothing or
# reports a zero rate, and a headline figure or baseline that is missing,
# is recorded, the other measurements still run, the report is still
# written (with a "Failed measurements" section at its top), and then the
# script exits with status 1, naming each failure and why on stderr.
# BENCH_QUICK=1 follows the same rule. bench/report.py applies it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build/rel}
BINDIR=${BINDIR:-bin}
QUICK=${BENCH_QUICK:-0}
SP=${WOLFSSL_SP:-0}
SP_PREFIX=$(scripts/build-wolfssl-sp.sh --prefix)
# Debian's libwolfssl, whatever PKG_CONFIG_PATH says
SYS_LIBDIR=$(env -u PKG_CONFIG_PATH pkg-config --variable=libdir wolfssl)
BB=$ROOT/$BUILD/bench
T_START=$(date +%s)

if [ "$QUICK" = 1 ]; then
    RUNS=${BENCH_RUNS:-1}
    SIGN_RUNS=$RUNS
    OUT=${BENCH_OUT:-$ROOT/build/bench/benchmarks.md}
    ECC_S=1 FLOOR_S=1 SIGN_S=2 WL_S=1
    SIGN_CONFIGS="2:500"
    CFSSL_CONNS="2"
    WL_CLIENTS="1 16 64"
    MEM_N1=1000 MEM_N2=2000 CA_N=10000
    PROP_TRIALS=20
    STORM_N=1000 STORM_TTL=30 STORM_SECS=40 STORM_UIDS=10
else
    RUNS=${BENCH_RUNS:-3}
    # the signing comparison (floor, mayfly-ca, cfssl) takes the most noise
    # from the shared host: its median is over more runs
    SIGN_RUNS=${BENCH_RUNS:-5}
    OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
    ECC_S=1 FLOOR_S=2 SIGN_S=4 WL_S=2
    SIGN_CONFIGS="2:100 2:500 4:500"
    CFSSL_CONNS="1 2 4"
    WL_CLIENTS="1 16 64"
    MEM_N1=1000 MEM_N2=10000 CA_N=100000
    PROP_TRIALS=50
    STORM_N=10000 STORM_TTL=60 STORM_SECS=135 STORM_UIDS=20
fi

log() { printf '[bench %4ss] %s\n' "$(($(date +%s) - T_START))" "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "bench: run as root (other-uid workloads, apt-get)" >&2; exit 1; }
[ -x "$BINDIR/mayfly-ca" ] && [ -x "$BINDIR/mayfly-agent" ] && [ -f "$BUILD/libmayfly.a" ] ||
    { echo "bench: run 'make all' first" >&2; exit 1; }
[ -x "$BUILD/tools/ca_client" ] || { echo "bench: $BUILD/tools/ca_client missing" >&2; exit 1; }

# ---- tools -------------------------------------------------------------------
apt_ok=1
want_pkg() { # want_pkg COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$apt_ok" = 1 ] || return 1
    log "installing $2"
    if ! { apt-get install -y -qq "$2" >/dev/null 2>&1 ||
           { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$2" >/dev/null 2>&1; }; }; then
        apt_ok=0
        log "could not install $2"
        return 1
    fi
}
HAVE_CFSSL=0; want_pkg cfssl golang-cfssl && want_pkg cfssljson golang-cfssl && HAVE_CFSSL=1
HAVE_GNUPLOT=0; want_pkg gnuplot gnuplot-nox && HAVE_GNUPLOT=1
command -v python3 >/dev/null || want_pkg python3 python3-minimal

if [ "$SP" = 1 ]; then
    log "building wolfSSL with SP assembly (scripts/build-wolfssl-sp.sh)"
    scripts/build-wolfssl-sp.sh >&2
fi
HAVE_SP=0
[ -f "$SP_PREFIX/lib/libwolfssl.so.35" ] && [ -f "$SP_PREFIX/include/wolfssl/options.h" ] && HAVE_SP=1
# the wolfSSL the binaries were linked with (their RUNPATH), the default
DEFAULT_LIB=debian
case "$(ldd "$BINDIR/mayfly-ca" | awk '/libwolfssl/ {print $3}')" in
"$SP_PREFIX"/*) DEFAULT_LIB=sp ;;
esac
# libpath LIB: the LD_LIBRARY_PATH that runs a binary on LIB
libpath() {
    if [ "$1" = "$DEFAULT_LIB" ]; then echo ""; elif [ "$1" = sp ]; then echo "$SP_PREFIX/lib"; else echo "$SYS_LIBDIR"; fi
}

# ---- build the bench programs --------------------------------------------------
# Until the Makefile has a rule for bench/ (requested), the same flags as
# the Makefile's, by hand.
WARN="-Wall -Wextra -Wpedantic -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
-Wmissing-prototypes -Wcast-qual -Wwrite-strings -Wvla -Wnull-dereference -Wimplicit-fallthrough"
HARDEN="-D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIE"
LDH="-pie -Wl,-z,relro,-z,now,-z,noexecstack"
PKGS="wolfssl jansson libmicrohttpd sqlite3 gnutls"
BENCH_PCP=${PKG_CONFIG_PATH:-}
RPATH=
if [ "$DEFAULT_LIB" = sp ]; then
    BENCH_PCP=$SP_PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
    RPATH=-Wl,-rpath,$SP_PREFIX/lib
fi
export PKG_CONFIG_PATH=$BENCH_PCP
pkg-config --exists libnghttp2 libprotobuf-c 2>/dev/null && PKGS="$PKGS libnghttp2 libprotobuf-c"
mkdir -p "$BB"
# flag lists ($WARN, $LDH, pkg-config output) are meant to split into words
# shellcheck disable=SC2086,SC2046
for src in bench/*.c; do
    n=$(basename "$src" .c)
    if [ "$n" = bench_ecc ]; then
        cc -std=c11 -D_GNU_SOURCE -O2 -g -I. $(pkg-config --cflags wolfssl) $WARN $HARDEN "$src" \
            -o "$BB/$n" $LDH $RPATH $(pkg-config --libs wolfssl) -lpthread
        continue
    fi
    cc -std=c11 -D_GNU_SOURCE -O2 -g -I. -I"$BUILD/gen" $(pkg-config --cflags $PKGS) $WARN $HARDEN \
        "$src" -o "$BB/$n" $LDH $RPATH "$BUILD/libmayfly-internal.a" "$BUILD/libmayfly.a" \
        $(pkg-config --libs $PKGS) -lpthread -lm
done
log "bench programs built in $BB"

# ---- work dir, processes, cleanup ---------------------------------------------------
W=$(mktemp -d /tmp/mayfly-bench.XXXXXX)
chmod 755 "$W"
RES=$W/results.txt
FAILS=$W/failures.txt
: >"$RES"
: >"$FAILS"
TIMEOUT=${BENCH_TIMEOUT:-300}
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work dir kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop() { # stop PID: TERM, bounded wait, then KILL
    local p=$1
    kill "$p" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

pick_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# fail WHAT WHY: records a failed measurement (the run goes on, then exits 1)
fail() {
    printf '%s\t%s\n' "$1" "$2" >>"$FAILS"
    log "FAILED: $1: $2"
}

# r TAGS... -- CMD...: runs CMD (a program under `timeout $TIMEOUT`, or a
# shell function), appends "TAGS | <each output line>" to results. A nonzero
# exit, a timeout or no output at all is a failed measurement.
r() {
    local tags=()
    while [ "$1" != -- ]; do tags+=("$1"); shift; done
    shift
    local out rc=0 why
    local run=(timeout "$TIMEOUT")
    [ "$(type -t "$1")" = function ] && run=()
    out=$("${run[@]}" "$@" 2>"$W/last.err") || rc=$?
    cat "$W/last.err" >>"$W/errors.log"
    if [ "$rc" != 0 ]; then
        if [ "$rc" = 124 ] && [ "${#run[@]}" -gt 0 ]; then
            why="timed out after $TIMEOUT s"
        else
            why="exit status $rc"
        fi
        why="$why: $(basename "$1")$(tail -1 "$W/last.err" | sed 's/^/: /')"
        fail "${tags[*]}" "$why"
    elif [ -z "$out" ]; then
        fail "${tags[*]}" "$(basename "$1") printed no result"
    fi
    [ -n "$out" ] && printf '%s\n' "$out" | sed "s|^|${tags[*]} \| |" >>"$RES"
    printf '%s\n' "$out"
}
[ "$HAVE_SP" = 1 ] ||
    fail "sec=sp" "no SP build of wolfSSL in $SP_PREFIX (run scripts/install-deps.sh or WOLFSSL_SP=1)"
note() { printf 'note %s\n' "$*" >>"$RES"; }

# start_ca NAME DIR [LIBPATH] [ARGS...]: sets CA_PID, CA_ADDR, CA_SOCK
start_ca() {
    local name=$1 dir=$2 libp=$3
    shift 3
    mkdir -p "$dir"
    local port
    port=$(pick_port)
    local t0
    t0=$(date +%s%N)
    LD_LIBRARY_PATH=$libp "$ROOT/$BINDIR/mayfly-ca" run --data-dir "$dir/data" \
        --admin-socket "$dir/admin.sock" --trust-domain example.org --listen "127.0.0.1:$port" \
        "$@" >>"$dir/ca.log" 2>&1 &
    CA_PID=$!
    PIDS+=("$CA_PID")
    for _ in $(seq 1 6000); do
        grep -q '^mayfly-ca ready' "$dir/ca.log" 2>/dev/null && break
        kill -0 "$CA_PID" 2>/dev/null || { tail -5 "$dir/ca.log" >&2; echo "bench: CA $name died" >&2; return 1; }
        sleep 0.01
    done
    CA_READY_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
    CA_ADDR=127.0.0.1:$port
    CA_SOCK=$dir/admin.sock
    "$ROOT/$BINDIR/mayfly-ca" bundle show --admin-socket "$CA_SOCK" --format pem >"$dir/bundle.pem"
}

# start_agent DIR SOCK BUNDLE SERVER [ARGS...]: sets AGENT_PID
start_agent() {
    local dir=$1 sock=$2 bundle=$3 server=$4
    shift 4
    mkdir -p "$dir"
    "$ROOT/$BINDIR/mayfly-agent" run --data-dir "$dir/data" --server "$server" \
        --trust-bundle "$bundle" --socket "$sock" "$@" >>"$dir/agent.log" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
}

wait_ready_agent() { # wait_ready_agent LOG N_BEFORE SECONDS
    for _ in $(seq 1 $(($3 * 20))); do
        [ "$(grep -c 'mayfly-agent ready' "$1" 2>/dev/null || true)" -gt "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

# wait_issued LOG N SECONDS: until the agent log has N "svid issued" lines
wait_issued() {
    local n=0
    for _ in $(seq 1 $(($3 * 10))); do
        n=$(grep -c 'svid issued' "$1" 2>/dev/null || true)
        [ "${n:-0}" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

mem_of() { # mem_of PID: "rss_kb=.. hwm_kb=.. anon_kb=.. threads=.."
    awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} /^RssAnon/{a=$2} /^Threads/{t=$2}
         END{printf "rss_kb=%d hwm_kb=%d anon_kb=%d threads=%d\n", r, h, a, t}' "/proc/$1/status"
}
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }

CA_BIN=$ROOT/$BINDIR/mayfly-ca
TD=example.org

# ---- machine -------------------------------------------------------------------------
{
    echo "machine nproc=$(nproc) kernel=$(uname -r) mem_mb=$(free -m | awk '/^Mem/{print $2}')"
    echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "wolfssl $(pkg-config --modversion wolfssl) mhd=$(pkg-config --modversion libmicrohttpd) cfssl=$(dpkg-query -W -f='${Version}' golang-cfssl 2>/dev/null || echo none)"
    echo "git $(git rev-parse --short HEAD 2>/dev/null || echo ?) dirty=$(git status --porcelain 2>/dev/null | grep -c . || true)"
    echo "mode quick=$QUICK runs=$RUNS sign_runs=$SIGN_RUNS sp=$HAVE_SP default_lib=$DEFAULT_LIB started=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "load_before $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$RES"

# ---- 7. crypto floor ---------------------------------------------------------------------
log "crypto floor: wolfCrypt P-256 (Debian$([ "$HAVE_SP" = 1 ] && echo ', SP'))"
for run in $(seq 1 "$RUNS"); do
    for th in 1 2; do
        r sec=ecc lib=debian run="$run" -- env LD_LIBRARY_PATH="$(libpath debian)" \
            "$BB/bench_ecc" --threads "$th" --seconds "$ECC_S" >/dev/null
        if [ "$HAVE_SP" = 1 ]; then
            r sec=ecc lib=sp run="$run" -- env LD_LIBRARY_PATH="$(libpath sp)" \
                "$BB/bench_ecc" --threads "$th" --seconds "$ECC_S" >/dev/null
        fi
    done
done

# ---- 1. CA signing: floor, mayfly-ca, cfssl -------------------------------------------
# The servers start first and stay up; then each run measures the in-process
# floor, mayfly-ca (each library, each configuration) and cfssl back to back,
# so that the three meet the same load on this shared machine: the medians
# over runs, and the ratios between them, do not depend on which of them
# happened to run while the host was busiest.

# sign_setup LIB LIBPATH: a CA, an agent identity from a join token
# (tests/tools/ca_client), one entry; SIGN_PID/ADDR/DIR/EID[LIB] for the runs
declare -A SIGN_PID SIGN_ADDR SIGN_DIR SIGN_EID
sign_setup() {
    local lib=$1 libp=$2 d=$W/sign-$1
    start_ca "sign-$lib" "$d" "$libp" --agent-rate 10000 --agent-burst 10000 || return 1
    local agent=spiffe://$TD/mayfly/agent/loadgen tok
    tok=$("$CA_BIN" token generate --admin-socket "$CA_SOCK" --spiffe-id "$agent")
    mkdir -p "$d/id"
    "$ROOT/$BUILD/tools/ca_client" attest --server "$CA_ADDR" --bundle "$d/bundle.pem" \
        --dir "$d/id" --token "$tok" >/dev/null
    SIGN_EID[$lib]=$("$CA_BIN" entry create --admin-socket "$CA_SOCK" \
        --spiffe-id "spiffe://$TD/bench/sign" --parent-id "$agent" --selector unix:uid:4242 --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    SIGN_PID[$lib]=$CA_PID
    SIGN_ADDR[$lib]=$CA_ADDR
    SIGN_DIR[$lib]=$d
}
sign_round() { # sign_round LIB RUN: loadgen in each configuration
    local lib=$1 run=$2 d=${SIGN_DIR[$1]} cfg
    for cfg in $SIGN_CONFIGS; do
        r sec=sign lib="$lib" run="$run" -- "$BB/loadgen" mayfly --server "${SIGN_ADDR[$lib]}" \
            --bundle "$d/bundle.pem" --dir "$d/id" --entry "${SIGN_EID[$lib]}" \
            --spiffe-id "spiffe://$TD/bench/sign" --conns "${cfg%%:*}" --batch "${cfg##*:}" \
            --seconds "$SIGN_S" --warmup 1 --server-pid "${SIGN_PID[$lib]}" >/dev/null
    done
}
floor_round() { # floor_round LIB LIBPATH RUN: mf_csr_verify + mf_x509_issue in process
    local th
    for th in 1 2; do
        r sec=floor lib="$1" run="$3" -- env LD_LIBRARY_PATH="$2" "$BB/bench_floor" \
            --threads "$th" --seconds "$FLOOR_S" --csrs 500 >/dev/null
    done
}

SIGN_LIBS=debian
[ "$HAVE_SP" = 1 ] && SIGN_LIBS="debian sp"
log "CA signing: starting mayfly-ca ($SIGN_LIBS)$([ "$HAVE_CFSSL" = 1 ] && echo ' and cfssl serve')"
SIGN_OK=""
for lib in $SIGN_LIBS; do
    if sign_setup "$lib" "$(libpath "$lib")"; then
        SIGN_OK="$SIGN_OK $lib"
    else
        fail "sec=sign lib=$lib" "the CA did not start"
    fi
done
CFSSL_PID=""
if [ "$HAVE_CFSSL" = 1 ]; then
    d=$W/cfssl
    mkdir -p "$d"
    (
        cd "$d"
        echo '{"CN":"mayfly bench CA","key":{"algo":"ecdsa","size":256}}' >ca-csr.json
        cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca
        echo '{"signing":{"default":{"expiry":"1h","usages":["digital signature",
              "key encipherment","server auth","client auth"]}}}' >config.json
    )
    CFSSL_PORT=$(pick_port)
    cfssl serve -address 127.0.0.1 -port "$CFSSL_PORT" -ca "$d/ca.pem" -ca-key "$d/ca-key.pem" \
        -config "$d/config.json" >"$d/cfssl.log" 2>&1 &
    CFSSL_PID=$!
    PIDS+=("$CFSSL_PID")
    for _ in $(seq 1 100); do grep -q 'Now listening' "$d/cfssl.log" && break; sleep 0.05; done
else
    note "cfssl=not_installed"
    fail "sec=cfssl" "golang-cfssl could not be installed: no cfssl baseline"
fi
for run in $(seq 1 "$SIGN_RUNS"); do
    log "CA signing, run $run of $SIGN_RUNS: floor, mayfly-ca, cfssl"
    floor_round debian "$(libpath debian)" "$run"
    [ "$HAVE_SP" = 1 ] && floor_round sp "$(libpath sp)" "$run"
    for lib in $SIGN_OK; do
        sign_round "$lib" "$run"
    done
    if [ -n "$CFSSL_PID" ]; then
        for c in $CFSSL_CONNS; do
            r sec=cfssl run="$run" -- "$BB/loadgen" cfssl --addr "127.0.0.1:$CFSSL_PORT" \
                --conns "$c" --seconds "$SIGN_S" --warmup 1 --server-pid "$CFSSL_PID" >/dev/null
        done
    fi
done
for lib in $SIGN_OK; do
    r sec=sign_mem lib="$lib" -- mem_of "${SIGN_PID[$lib]}" >/dev/null
    stop "${SIGN_PID[$lib]}"
done
if [ -n "$CFSSL_PID" ]; then
    r sec=cfssl_mem -- mem_of "$CFSSL_PID" >/dev/null
    stop "$CFSSL_PID"
fi

# ---- a small chain: Workload API, propagation, agent cold start ---------------------------
log "small chain: CA + agent with one SVID"
d=$W/chain
start_ca chain "$d" "" --agent-rate 10000 --agent-burst 10000
AGENT=spiffe://$TD/mayfly/agent/node1
"$CA_BIN" entry create --admin-socket "$CA_SOCK" --spiffe-id "spiffe://$TD/bench/wl" \
    --parent-id "$AGENT" --selector unix:uid:0 >/dev/null
tok=$("$CA_BIN" token generate --admin-socket "$CA_SOCK" --spiffe-id "$AGENT")
# shellcheck disable=SC2174 # $W exists (mktemp -d): only run is made
mkdir -m 755 -p "$W/run"
ASOCK=$W/run/agent.sock
# The Workload API runs open a new connection per call from 64 clients: raise
# the admission limits so that the tables measure serving, not admission
# (docs/benchmarks.md, section 2).
WL_LIMITS=(--max-connections 512 --max-watches 384)
start_agent "$d/agent" "$ASOCK" "$d/bundle.pem" "$CA_ADDR" --join-token "$tok" "${WL_LIMITS[@]}"
wait_ready_agent "$d/agent/agent.log" 0 20 || { tail "$d/agent/agent.log" >&2; exit 1; }
"$BB/firstfetch" --socket "$ASOCK" --header --timeout-ms 10000 >/dev/null
sleep 1
r sec=mem what=agent_idle_1svid -- mem_of "$AGENT_PID" >/dev/null
CHAIN_CA_PID=$CA_PID

# ---- 2. Workload API vs a bare libmicrohttpd server ----------------------------------------
log "Workload API: agent vs bare libmicrohttpd"
body=$(r sec=probe -- "$BB/wlload" --socket "$ASOCK" --clients 1 --seconds 1 --warmup 0 |
    sed -n 's/.*body_bytes=\([0-9]*\).*/\1/p')
body=${body:-2000}
BSOCK=$W/run/bare.sock
"$BB/bare_httpd" --socket "$BSOCK" --size "$body" 2>"$W/bare.log" &
BARE_PID=$!
PIDS+=("$BARE_PID")
for _ in $(seq 1 100); do grep -q ready "$W/bare.log" && break; sleep 0.05; done
# Check the agent before each run, and restart it (from its data dir) if it
# no longer answers: a run must not measure a dead agent.
STUCK=0
ensure_agent() {
    "$BB/firstfetch" --socket "$ASOCK" --header --timeout-ms 3000 >/dev/null 2>&1 && return 0
    STUCK=$((STUCK + 1))
    log "the agent no longer answers; restarting it"
    stop "$AGENT_PID"
    start_agent "$d/agent" "$ASOCK" "$d/bundle.pem" "$CA_ADDR" "${WL_LIMITS[@]}"
    "$BB/firstfetch" --socket "$ASOCK" --header --timeout-ms 20000 >/dev/null || true
}
for run in $(seq 1 "$RUNS"); do
    for mode in keepalive newconn; do
        for c in $WL_CLIENTS; do
            ensure_agent
            r sec=wl server=agent run="$run" -- "$BB/wlload" --socket "$ASOCK" --clients "$c" \
                --mode "$mode" --seconds "$WL_S" --warmup 1 --server-pid "$AGENT_PID" >/dev/null
            r sec=wl server=bare run="$run" -- "$BB/wlload" --socket "$BSOCK" --clients "$c" \
                --mode "$mode" --seconds "$WL_S" --warmup 1 --server-pid "$BARE_PID" >/dev/null
        done
    done
done
stop "$BARE_PID"
r sec=mem what=agent_after_wl -- mem_of "$AGENT_PID" >/dev/null
ensure_agent
note "wl_agent_restarts=$STUCK"

# ---- 2b. Workload API over gRPC, against the JSON API in the same run -----------------------
# bench/grpcload: FetchX509SVID over HTTP/2 (nghttp2 client), the time to the
# first message of each call; bench/wlload on the same agent right after.
log "Workload API: gRPC FetchX509SVID vs the JSON API"
for run in $(seq 1 "$RUNS"); do
    for mode in keepalive newconn; do
        for c in $WL_CLIENTS; do
            ensure_agent
            r sec=grpc proto=grpc run="$run" -- "$BB/grpcload" --socket "$ASOCK" --clients "$c" \
                --mode "$mode" --seconds "$WL_S" --warmup 1 --server-pid "$AGENT_PID" >/dev/null
            r sec=grpc proto=json run="$run" -- "$BB/wlload" --socket "$ASOCK" --clients "$c" \
                --mode "$mode" --seconds "$WL_S" --warmup 1 --server-pid "$AGENT_PID" >/dev/null
        done
    done
done

# ---- 4. propagation -----------------------------------------------------------------------
log "propagation: CLI entry create -> watch stream ($PROP_TRIALS trials)"
r sec=prop -- "$BB/propagate" --socket "$ASOCK" --ca-bin "$CA_BIN" --admin-socket "$CA_SOCK" \
    --parent "$AGENT" --selector unix:uid:0 --trials "$PROP_TRIALS" --prefix /prop/t >/dev/null

# ---- 6a. agent cold start (small cache) ------------------------------------------------------
coldstart_agent() { # coldstart_agent TAG DIR SOCK BUNDLE SERVER
    local tag=$1 dir=$2 sock=$3 bundle=$4 server=$5 run
    for run in $(seq 1 "$RUNS"); do
        stop "$AGENT_PID"
        local t0 t1
        t0=$(date +%s%N)
        start_agent "$dir" "$sock" "$bundle" "$server"
        t1=$("$BB/firstfetch" --socket "$sock" --header --timeout-ms 120000 |
            sed -n 's/.*realtime_ns=\([0-9]*\).*/\1/p' || true)
        if [ -n "$t1" ]; then
            echo "sec=cold what=$tag run=$run | cold ms=$(( (t1 - t0) / 1000000 ))" >>"$RES"
        else
            fail "sec=cold what=$tag run=$run" "no successful fetch within 120 s of the restart"
        fi
    done
}
log "agent cold start (1 cached SVID)"
coldstart_agent agent_1svid "$d/agent" "$ASOCK" "$d/bundle.pem" "$CA_ADDR"
stop "$AGENT_PID"
stop "$CHAIN_CA_PID"

# ---- 3. memory: agent with N1 and N2 SVIDs --------------------------------------------------
log "memory: agent with $MEM_N1 and $MEM_N2 SVIDs"
d=$W/mem
start_ca mem "$d" "" --agent-rate 10000 --agent-burst 10000
MEM_AGENT=spiffe://$TD/mayfly/agent/mem
tok=$("$CA_BIN" token generate --admin-socket "$CA_SOCK" --spiffe-id "$MEM_AGENT")
MSOCK=$W/run/mem.sock
start_agent "$d/agent" "$MSOCK" "$d/bundle.pem" "$CA_ADDR" --join-token "$tok"
wait_ready_agent "$d/agent/agent.log" 0 20
sleep 2
r sec=mem what=agent_idle_0svid -- mem_of "$AGENT_PID" >/dev/null
t0=$(date +%s%N)
# one entry for uid 0 (this script), so that the cold start below can fetch
"$CA_BIN" entry create --admin-socket "$CA_SOCK" --spiffe-id "spiffe://$TD/mem/root" \
    --parent-id "$MEM_AGENT" --selector unix:uid:0 --ttl 3600 >/dev/null
r sec=bulk what=agent_entries_1 -- "$BB/bulkload" --admin-socket "$CA_SOCK" --count $((MEM_N1 - 1)) \
    --parent "$MEM_AGENT" --prefix /mem/w --uids 100 --uid-base 20000 --ttl 3600 >/dev/null
if wait_issued "$d/agent/agent.log" "$MEM_N1" 600; then
    echo "sec=issue what=n1 | issue n=$MEM_N1 ms=$(( ($(date +%s%N) - t0) / 1000000 ))" >>"$RES"
    sleep 2
    r sec=mem what=agent_n1 n="$MEM_N1" -- mem_of "$AGENT_PID" >/dev/null
else
    fail "sec=issue what=n1" "the agent did not install $MEM_N1 SVIDs within 600 s"
fi
t0=$(date +%s%N)
r sec=bulk what=agent_entries_2 -- "$BB/bulkload" --admin-socket "$CA_SOCK" \
    --count $((MEM_N2 - MEM_N1)) --start $((MEM_N1 - 1)) --parent "$MEM_AGENT" --prefix /mem/w \
    --uids 100 --uid-base 20000 --ttl 3600 >/dev/null
if wait_issued "$d/agent/agent.log" "$MEM_N2" 900; then
    echo "sec=issue what=n2 | issue n=$((MEM_N2 - MEM_N1)) ms=$(( ($(date +%s%N) - t0) / 1000000 ))" >>"$RES"
    sleep 2
    r sec=mem what=agent_n2 n="$MEM_N2" -- mem_of "$AGENT_PID" >/dev/null
    r sec=mem what=ca_with_agent_n2 n="$MEM_N2" -- mem_of "$CA_PID" >/dev/null
    log "agent cold start with $MEM_N2 cached SVIDs"
    coldstart_agent "agent_${MEM_N2}svid" "$d/agent" "$MSOCK" "$d/bundle.pem" "$CA_ADDR"
    r sec=mem what=agent_n2_restarted n="$MEM_N2" -- mem_of "$AGENT_PID" >/dev/null
else
    note "mem_n2_timeout=1"
    fail "sec=issue what=n2" "the agent did not install $MEM_N2 SVIDs within 900 s"
fi
stop "$AGENT_PID"
stop "$CA_PID"

# ---- 3b/6b. CA with CA_N entries; CA cold start -----------------------------------------------
log "CA with $CA_N entries (bulk load through the admin API)"
d=$W/big
start_ca big "$d" ""
r sec=mem what=ca_empty -- mem_of "$CA_PID" >/dev/null
r sec=bulk what=ca_entries -- "$BB/bulkload" --admin-socket "$CA_SOCK" --count "$CA_N" \
    --parent "spiffe://$TD/mayfly/agent/big" --prefix /big/w --uids 1000 --uid-base 30000 \
    --conns 4 >/dev/null
r sec=mem what=ca_n n="$CA_N" -- mem_of "$CA_PID" >/dev/null
for run in $(seq 1 "$RUNS"); do
    stop "$CA_PID"
    rm -f "$d/ca.log"
    start_ca big "$d" ""
    "$BB/firstfetch" --socket "$CA_SOCK" --path /health --timeout-ms 60000 >/dev/null || true
    echo "sec=cold what=ca_${CA_N}_entries run=$run | cold ms=$CA_READY_MS" >>"$RES"
done
r sec=mem what=ca_n_restarted n="$CA_N" -- mem_of "$CA_PID" >/dev/null
stop "$CA_PID"

# ---- 5. rotation storm -------------------------------------------------------------------------
log "rotation storm: $STORM_N SVIDs, TTL ${STORM_TTL}s, ${STORM_SECS}s"
d=$W/storm
start_ca storm "$d" "" --ca-ttl 1h --svid-ttl 10m
STORM_AGENT=spiffe://$TD/mayfly/agent/storm
r sec=bulk what=storm_entries -- "$BB/bulkload" --admin-socket "$CA_SOCK" --count "$STORM_N" \
    --parent "$STORM_AGENT" --prefix /storm/w --uids "$STORM_UIDS" --uid-base 10000 \
    --ttl "$STORM_TTL" >/dev/null
tok=$("$CA_BIN" token generate --admin-socket "$CA_SOCK" --spiffe-id "$STORM_AGENT")
SSOCK=$W/run/storm.sock
ca_cpu0=$(cpu_of "$CA_PID")
storm_t0=$(date +%s)
start_agent "$d/agent" "$SSOCK" "$d/bundle.pem" "$CA_ADDR" --join-token "$tok"
wait_ready_agent "$d/agent/agent.log" 0 60 ||
    fail "sec=storm" "the storm agent was not ready within 60 s"
uids=$(seq -s, 10000 $((10000 + STORM_UIDS - 1)))
timeout "$((STORM_SECS + TIMEOUT))" "$BB/storm_poll" --socket "$SSOCK" --uids "$uids" \
    --seconds "$STORM_SECS" --interval-ms 1000 >"$d/poll.out" 2>>"$W/errors.log" &
POLL_PID=$!
PIDS+=("$POLL_PID")
# sample memory every 2 s while the storm runs
end=$(( $(date +%s) + STORM_SECS ))
while [ "$(date +%s)" -lt "$end" ]; do
    echo "sample t=$(( $(date +%s) - storm_t0 )) ca $(mem_of "$CA_PID") agent $(mem_of "$AGENT_PID")" >>"$d/mem.samples"
    sleep 2
done
poll_rc=0
wait "$POLL_PID" 2>/dev/null || poll_rc=$?
[ "$poll_rc" = 0 ] || fail "sec=storm" "storm_poll exited with status $poll_rc"
[ -s "$d/poll.out" ] || fail "sec=storm" "storm_poll printed no result"
storm_t1=$(date +%s)
ca_cpu1=$(cpu_of "$CA_PID")
# the agent started inside the storm: all its CPU time is the storm's
agent_cpu=$(cpu_of "$AGENT_PID")
hz=$(getconf CLK_TCK)
sed 's/^/sec=storm | /' "$d/poll.out" >>"$RES"
{
    echo "sec=storm | storm_cpu ca_cpu_s=$(python3 -c "print(round(($ca_cpu1-$ca_cpu0)/$hz,1))") agent_cpu_s=$(python3 -c "print(round($agent_cpu/$hz,1))") wall_s=$((storm_t1 - storm_t0)) n=$STORM_N ttl=$STORM_TTL"
    echo "sec=storm | storm_mem ca $(mem_of "$CA_PID" | sed 's/\([a-z_]*\)=/ca_\1=/g') $(mem_of "$AGENT_PID" | sed 's/\([a-z_]*\)=/agent_\1=/g')"
    echo "sec=storm | storm_issued n=$(grep -c 'svid issued' "$d/agent/agent.log" || true) ca_issued=$(grep -c 'ca_issue_leaf: issued' "$d/ca.log" || true) agent_warnings=$(grep -c ' warn ' "$d/agent/agent.log" || true)"
} >>"$RES"
cp "$d/agent/agent.log" "$W/storm_agent.log"
echo "$storm_t0" >"$W/storm_t0.txt"
cp "$d/mem.samples" "$W/storm_mem.txt" 2>/dev/null || true
stop "$POLL_PID"
stop "$AGENT_PID"
stop "$CA_PID"

# ---- 8. several CA servers on one PostgreSQL (bench/ha.sh) -----------------------------------
# cross-server propagation and failover time; noted as not measured
# without PostgreSQL
# shellcheck source=bench/ha.sh
source "$ROOT/bench/ha.sh"
ha_bench
# ---- end of 8 ------------------------------------------------------------------------------------

echo "load_after $(cut -d' ' -f1-3 /proc/loadavg) elapsed_s=$(( $(date +%s) - T_START ))" >>"$RES"

# ---- the report -----------------------------------------------------------------------------------
log "writing $OUT"
mkdir -p "$(dirname "$OUT")"
IMG=$ROOT/docs/img
[ "$QUICK" = 1 ] && IMG=$(dirname "$OUT")/img
mkdir -p "$IMG"
cmd="scripts/bench.sh"
[ "$QUICK" = 1 ] && cmd="BENCH_QUICK=1 scripts/bench.sh"
[ "$SP" = 1 ] && cmd="WOLFSSL_SP=1 $cmd"
mkdir -p "$ROOT/build/bench"
cp "$RES" "$ROOT/build/bench/benchmarks-raw.txt"
report_rc=0
python3 bench/report.py --results "$RES" --failures "$FAILS" --storm-log "$W/storm_agent.log" \
    --storm-t0 "$(cat "$W/storm_t0.txt" 2>/dev/null || echo 0)" \
    --storm-mem "$W/storm_mem.txt" --out "$OUT" --img "$IMG" \
    --gnuplot "$HAVE_GNUPLOT" --command "$cmd" --storm-ttl "$STORM_TTL" \
    --storm-secs "$STORM_SECS" --storm-n "$STORM_N" || report_rc=$?
if [ -s "$W/errors.log" ]; then
    log "stderr of the runs (last lines):"
    tail -5 "$W/errors.log" >&2
fi
if [ "$report_rc" != 0 ]; then
    log "FAILED after $(( $(date +%s) - T_START )) s: the measurements above are missing or" \
        "wrong (the report in $OUT says which)"
    exit 1
fi
log "done in $(( $(date +%s) - T_START )) s"
