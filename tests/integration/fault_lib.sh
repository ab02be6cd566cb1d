# shellcheck shell=bash
# Helpers for the fault, load and attack tests (sourced after lib.sh).
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
# Every daemon runs under $MAYFLY_WRAP (valgrind with MAYFLY_VALGRIND=1).

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
    local i now
    for i in $(seq 1 $((200 * MAYFLY_TIME_SCALE))); do
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
    local secs=$1 i
    shift
    for i in $(seq 1 $((secs * 10 * MAYFLY_TIME_SCALE))); do
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
    ldd "$CA_BIN" 2>/dev/null | grep -q libasan
}
