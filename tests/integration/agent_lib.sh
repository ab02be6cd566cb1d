# shellcheck shell=bash
# Helpers for the agent integration tests (sourced). Every process started
# here is recorded in AL_PIDS and killed by al_cleanup; nothing is killed by
# name. Waits are bounded.

AL_PIDS=()
AL_T=""

# Valgrind (make valgrind, MAYFLY_VALGRIND=1): the CA and the agent started
# here run under memcheck, each reporting into $AL_T/vg-<pid>.log; with -q a
# report holds errors only ("==pid==" lines), and al_cleanup fails the test
# on any. Waits scale by AL_SCALE.
AL_WRAP=()
AL_SCALE=1
if [ "${MAYFLY_VALGRIND:-0}" = 1 ]; then
    AL_SCALE=10
fi
al_wrap() {
    if [ "${MAYFLY_VALGRIND:-0}" = 1 ]; then
        AL_WRAP=(valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
            --errors-for-leak-kinds=definite
            --suppressions="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/valgrind.supp"
            --log-file="$AL_T/vg-%p.log")
    fi
}

al_fail() { echo "FAIL: $*" >&2; exit 1; }
al_note() { echo "note: $*"; }

al_setup() {
    AL_T=$(mktemp -d /tmp/mayfly-agent-it.XXXXXX)
    chmod 0755 "$AL_T"            # the other-uid workload must reach the socket
    mkdir -m 0755 "$AL_T/run"
    trap al_cleanup EXIT
}

al_cleanup() {
    local rc=$?
    for p in "${AL_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${AL_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ -n "$AL_T" ]; then
        for f in "$AL_T"/vg-*.log; do
            [ -s "$f" ] && grep -q '^==[0-9]*==' "$f" || continue # "--pid--": notes
            echo "FAIL: valgrind report in $f"; grep '^==[0-9]*==' "$f" | head -60
            [ "$rc" -ne 0 ] || rc=1
        done
    fi
    if [ "$rc" -ne 0 ] && [ -n "$AL_T" ]; then
        for f in "$AL_T"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $f"; tail -n 30 "$f"
        done
    fi
    [ -n "$AL_T" ] && rm -rf "$AL_T"
    exit "$rc"
}

al_pick_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# al_wait_log FILE PATTERN SECONDS
al_wait_log() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    al_fail "timed out waiting for '$2' in $1"
}

# al_start_ca NAME (uses AL_PORT, AL_ADMIN, AL_SVID_TTL)
al_start_ca() {
    al_wrap
    "${AL_WRAP[@]}" "$MAYFLY_BIN/mayfly-ca" run --data-dir "$AL_T/ca" --trust-domain example.org \
        --listen "127.0.0.1:$AL_PORT" --admin-socket "$AL_ADMIN" \
        --svid-ttl "${AL_SVID_TTL:-20s}" --ca-ttl 10m >>"$AL_T/ca.log" 2>&1 &
    AL_CA_PID=$!
    AL_PIDS+=("$AL_CA_PID")
    local i
    for ((i = 0; i < 100 * AL_SCALE; i++)); do
        [ -S "$AL_ADMIN" ] && "$MAYFLY_BIN/mayfly-ca" healthcheck --admin-socket "$AL_ADMIN" \
            >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    al_fail "CA did not come up"
}

al_stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# al_start_agent [extra args...] (uses AL_SOCK, AL_PORT)
al_start_agent() {
    local before
    before=$(grep -c 'mayfly-agent ready' "$AL_T/agent.log" 2>/dev/null || true)
    al_wrap
    "${AL_WRAP[@]}" "$MAYFLY_BIN/mayfly-agent" run --data-dir "$AL_T/agent" --server "127.0.0.1:$AL_PORT" \
        --trust-bundle "$AL_T/bundle.pem" --socket "$AL_SOCK" "$@" >>"$AL_T/agent.log" 2>&1 &
    AL_AGENT_PID=$!
    AL_PIDS+=("$AL_AGENT_PID")
    local i
    for ((i = 0; i < 150 * AL_SCALE; i++)); do
        local now
        now=$(grep -c 'mayfly-agent ready' "$AL_T/agent.log" 2>/dev/null || true)
        [ "${now:-0}" -gt "${before:-0}" ] && return 0
        kill -0 "$AL_AGENT_PID" 2>/dev/null || al_fail "agent exited"
        sleep 0.1
    done
    al_fail "agent did not become ready"
}

# al_fetch [as-nobody]: prints the fetch output; returns its status
al_fetch() {
    if [ "${1:-}" = nobody ]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups \
            "$MAYFLY_BIN/mayfly-agent" fetch x509 --socket "unix://$AL_SOCK"
    else
        "$MAYFLY_BIN/mayfly-agent" fetch x509 --socket "unix://$AL_SOCK"
    fi
}

# al_wait_fetch WHO PATTERN SECONDS: until a fetch prints PATTERN
al_wait_fetch() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        al_fetch "$1" 2>/dev/null | grep -q -- "$2" && return 0
        sleep 0.05
    done
    al_fail "$1 never got $2"
}

# al_wait_denied WHO SECONDS: until a fetch is refused
al_wait_denied() {
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        al_fetch "$1" >/dev/null 2>&1 || return 0
        sleep 0.2
    done
    al_fail "$1 still served after $2 s"
}
