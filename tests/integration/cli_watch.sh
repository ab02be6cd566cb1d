#!/usr/bin/env bash
# mayfly-agent watch as docs/api.md says: --exec statuses decoded in the log
# (exited N, killed by signal S); a failed --signal names the pid and errno;
# the watch ends (status 1, one clear line) when its --write directory is
# removed or made unwritable, and when the identity is withdrawn (entry
# deleted: the stream's last line is permission_denied).
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
command -v setpriv >/dev/null || skip "setpriv missing"
[ "$(id -u)" = 0 ] || skip "needs root for the other-uid workload"

make_tmp
chmod 0755 "$T"
AG=spiffe://example.org/mayfly/agent/w1
APP=spiffe://example.org/watched
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
EID=$(add_entry a "$APP" "$AG" unix:uid:65534)
start_agent w "$T/w" a --join-token "$(fresh_token a "$AG")"
LOG_ON_FAIL="$T/w/agent.log"
SOCK="$T/w/agent.sock"
wait_until 5 fetch_has nobody "$SOCK" "$APP"

# run_watch NAME ARGS...: watch as nobody into $T/NAME in the background;
# its stderr in $T/NAME.log, its exit status in $T/NAME.rc
run_watch() {
    local n=$1
    shift
    mkdir -m 0700 "$T/$n"
    chown 65534:65534 "$T/$n"
    (
        set +e
        setpriv --reuid=65534 --regid=65534 --clear-groups "$AGENT_BIN" watch \
            --socket "$SOCK" --write "$T/$n" "$@" >"$T/$n.out" 2>"$T/$n.log"
        echo $? >"$T/$n.rc"
    ) &
}
# ended NAME RC TEXT: the watch exited with RC and said TEXT
ended() {
    wait_until 10 test -s "$T/$1.rc" || die "watch $1 still running: $(cat "$T/$1.log")"
    [ "$(cat "$T/$1.rc")" = "$2" ] || die "watch $1 exited $(cat "$T/$1.rc"), want $2"
    grep -q -- "$3" "$T/$1.log" || die "watch $1 did not say '$3': $(cat "$T/$1.log")"
}

# --exec exiting 3, then the directory removed
run_watch x1 --exec 'exit 3'
wait_until 10 grep -q -- '--exec command exited 3$' "$T/x1.log" || die "x1: $(cat "$T/x1.log")"
[ -s "$T/x1/svid.0.pem" ] || die "x1 wrote no files"
rm -rf "$T/x1"
ended x1 1 "cannot write to $T/x1: .*exiting"

# --exec killed by a signal, then the directory made unwritable
run_watch x2 --exec 'kill -KILL $$'
wait_until 10 grep -q -- '--exec command killed by signal 9' "$T/x2.log" ||
    die "x2: $(cat "$T/x2.log")"
chmod 0500 "$T/x2"
ended x2 1 "cannot create files there: Permission denied; exiting"

# --signal to a pid that is gone names it and the errno, then the entry
# is deleted and the watch ends
sleep 0 &
dead=$!
wait "$dead" || true
echo "$dead" >"$T/pidfile"
chmod 0644 "$T/pidfile"
run_watch x3 --signal HUP --pid-file "$T/pidfile"
wait_until 10 grep -q "cannot signal pid $dead: No such process" "$T/x3.log" ||
    die "x3: $(cat "$T/x3.log")"
"$CA_BIN" entry delete --admin-socket "$CA_SOCK_a" "$EID" >/dev/null
ended x3 1 "identity withdrawn"
grep -q "permission_denied" "$T/x3.log" || die "x3 did not show the agent's reason"
echo "cli_watch: ok"
