#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# mayfly's demo: from a fresh machine to two workloads that prove their
# SPIFFE identities to each other with mutual TLS, in well under a minute.
#
#   scripts/demo.sh           install what is missing, build, run the story
#   scripts/demo.sh --ci      the same without colours or pauses; exits
#                             non-zero when any step fails (also CI=true)
#   scripts/demo.sh --keep    keep the temp dir (logs, certificates) at the end
#   scripts/demo.sh --no-build  use the binaries already in bin/
#
# With MAYFLY_BIN set (as the test runner does), the binaries there are used
# and nothing is installed or built.
#
# The story: a CA and a node agent start in a temp dir; the operator
# registers three workloads under three uids (root, 65534 and 65533, started
# with setpriv); each asks the agent for its identity; the frontend and the
# backend do mutual TLS with plain `openssl s_server`/`s_client` on the
# fetched files, then with bin/mayfly-mtls (libmayfly + wolfSSL); the
# backend's authorizer refuses the batch job, the frontend refuses a server
# it did not expect, a process with no entry gets 403; and one rotation is
# watched live. Everything started here is killed by pid on exit and the
# temp dir is removed. Needs root (to run workloads under other uids).
set -uo pipefail

cd "$(dirname "$0")/.." || exit
REPO=$(pwd)

CI_MODE=0
KEEP=0
BUILD=1
usage() {
    sed -n '4,14p' "$0" | sed 's/^# \{0,1\}//'
}
for a in "$@"; do
    case "$a" in
        --ci) CI_MODE=1 ;;
        --keep) KEEP=1 ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
case "${CI:-}" in true | 1 | yes) CI_MODE=1 ;; esac
[ -n "${MAYFLY_BIN:-}" ] && BUILD=0

# ---- presentation ---------------------------------------------------------------------

if [ "$CI_MODE" = 0 ] && [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]; then
    B=$'\e[1m' D=$'\e[2m' G=$'\e[32m' R=$'\e[31m' Y=$'\e[33m' C=$'\e[36m' N=$'\e[0m'
    PAUSE=0.6
else
    B='' D='' G='' R='' Y='' C='' N=''
    PAUSE=0
fi

T0=$(date +%s%N)
SECTION=0
section() {
    SECTION=$((SECTION + 1))
    [ "$SECTION" -gt 1 ] && [ "$PAUSE" != 0 ] && sleep "$PAUSE"
    printf '\n%s== %d. %s ==%s\n' "$B" "$SECTION" "$1" "$N"
}
say() { printf '  %s\n' "$*"; }
cmd() { printf '  %s$ %s%s\n' "$D" "$*" "$N"; }
good() { printf '  %s%s%s\n' "$G" "$*" "$N"; }
refused() { printf '  %s%s%s\n' "$Y" "$*" "$N"; }
# quote LABEL FILE: a program's own words, indented and labelled
quote() {
    local label=$1 file=$2
    sed "s/^/    ${C}[${label}]${N} /" "$file"
}

FAILED_LOGS=()
fail() {
    printf '\n%sDEMO FAILED: %s%s\n' "$R" "$*" "$N" >&2
    local f
    for f in "${FAILED_LOGS[@]}"; do
        [ -s "$f" ] || continue
        printf -- '--- %s (last 25 lines)\n' "$f" >&2
        tail -n 25 "$f" >&2
    done
    exit 1
}

# ---- processes and cleanup ------------------------------------------------------------

PIDS=()
T=""
cleanup() {
    local rc=$? p
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null
    done
    # built with SAN=1 (make check), a sanitizer report in any log fails the
    # demo even when the story went through
    if [ -n "$T" ] && [ -d "$T" ] &&
        grep -lEq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log "$T"/*.out 2>/dev/null; then
        echo "DEMO FAILED: sanitizer report:" >&2
        grep -E -A20 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log "$T"/*.out | head -40 >&2
        [ "$rc" = 0 ] && rc=1
    fi
    if [ -n "$T" ] && [ -d "$T" ]; then
        if [ "$KEEP" = 1 ]; then
            echo "kept $T"
        else
            rm -rf "$T"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
trap 'exit 141' PIPE

# wait_for SECONDS DESCRIPTION COMMAND...: polls every 50 ms
wait_for() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 20; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    fail "timed out after ${secs}s waiting for $what"
}

# as_uid UID COMMAND...: runs COMMAND as that uid (and gid), no extra groups.
# setpriv execs the command, so for `as_uid ... &` started through bg_as_uid
# the pid in $! is the command's own, and cleanup can kill it by pid.
as_uid() {
    local uid=$1
    shift
    if [ "$uid" = "$(id -u)" ]; then
        "$@"
    else
        setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"
    fi
}
# bg_as_uid UID IN OUT COMMAND...: as_uid in the background, stdin from IN,
# output to OUT; records the pid (the command's own, thanks to exec)
bg_as_uid() {
    local uid=$1 in=$2 out=$3
    shift 3
    if [ "$uid" = "$(id -u)" ]; then
        (exec "$@" <"$in" >"$out" 2>&1) &
    else
        (exec setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@" <"$in" >"$out" 2>&1) &
    fi
    PIDS+=($!)
}

metrics_addr() { sed -n 's/.*metrics listening address=\([^ ]*\).*/\1/p' "$1" | tail -1; }

# ---- 0. preconditions ----------------------------------------------------------------

printf '%smayfly demo%s: two workloads prove who they are to each other with mutual TLS\n' "$B" "$N"

if [ "$(id -u)" != 0 ]; then
    echo "The demo runs workloads under several uids (with setpriv), so it needs root:" >&2
    echo "  sudo scripts/demo.sh" >&2
    exit 2
fi

section "Install and build"
if [ "$BUILD" = 1 ]; then
    BUILD_LOG=$(mktemp /tmp/mayfly-demo-build.XXXXXX)
    FAILED_LOGS=("$BUILD_LOG")
    scripts/install-deps.sh >"$BUILD_LOG" 2>&1 || fail "scripts/install-deps.sh failed"
    say "Debian packages present (scripts/install-deps.sh)."
    jobs=$(nproc 2>/dev/null || echo 2)
    cmd "make -j$jobs"
    make -j"$jobs" all >>"$BUILD_LOG" 2>&1 || fail "the build failed"
    rm -f "$BUILD_LOG"
    FAILED_LOGS=()
    BIN=$REPO/bin
else
    BIN=${MAYFLY_BIN:-$REPO/bin}
fi
for b in mayfly-ca mayfly-agent mayfly-mtls; do
    [ -x "$BIN/$b" ] || fail "$BIN/$b is missing (run make)"
done
for t in openssl setpriv curl; do
    command -v "$t" >/dev/null || fail "$t is not installed (scripts/install-deps.sh installs it)"
done
say "Using $BIN: mayfly-ca, mayfly-agent and mayfly-mtls (built with -Werror)."

TD=example.org
AGENT_ID=spiffe://$TD/mayfly/agent/demo-node
FRONT_ID=spiffe://$TD/frontend
BACK_ID=spiffe://$TD/backend
BATCH_ID=spiffe://$TD/batch-job
FRONT_UID=0
BACK_UID=65534
BATCH_UID=65533
STRANGER_UID=65532

T=$(mktemp -d /tmp/mayfly-demo.XXXXXX)
chmod 0755 "$T" # workloads of other uids must reach the agent socket and binaries
mkdir -m 0755 "$T/run" "$T/bin"
# copies that every uid may run, wherever the repository lives
cp "$BIN/mayfly-agent" "$BIN/mayfly-mtls" "$T/bin/"
CA=("$BIN/mayfly-ca")
ADMIN=$T/admin.sock
SOCK=$T/run/agent.sock
export SPIFFE_ENDPOINT_SOCKET=unix://$SOCK
CA_LOG=$T/ca.log
AGENT_LOG=$T/agent.log
FAILED_LOGS=("$CA_LOG" "$AGENT_LOG")

# ---- 1. the CA --------------------------------------------------------------------------

section "Start the CA"
cmd "mayfly-ca run --trust-domain $TD --svid-ttl 20s --ca-ttl 10m --data-dir \$T/ca ..."
"${CA[@]}" run --data-dir "$T/ca" --trust-domain "$TD" --listen 127.0.0.1:0 \
    --admin-socket "$ADMIN" --svid-ttl 20s --ca-ttl 10m --metrics-listen 127.0.0.1:0 \
    >"$CA_LOG" 2>&1 &
PIDS+=($!)
CA_PID=$!
wait_for 10 "the CA's ready line" grep -q '^mayfly-ca ready' "$CA_LOG"
kill -0 "$CA_PID" 2>/dev/null || fail "the CA exited"
CA_ADDR=$(sed -n 's/^mayfly-ca ready listen=\([^ ]*\).*/\1/p' "$CA_LOG")
"${CA[@]}" bundle show --admin-socket "$ADMIN" --format pem >"$T/bundle.pem" ||
    fail "cannot read the trust bundle"
say "The CA of trust domain $TD made its signing key and listens for agents on $CA_ADDR"
say "(TLS 1.3, mutual). Operators talk to it on a root-only admin socket."
say "SVIDs will live 20 s here (1 h by default), so that you can watch one rotate."

# ---- 2. the agent -----------------------------------------------------------------------

section "Start the node agent"
cmd "mayfly-ca token generate --spiffe-id $AGENT_ID"
TOKEN=$("${CA[@]}" token generate --admin-socket "$ADMIN" --spiffe-id "$AGENT_ID") ||
    fail "cannot create a join token"
cmd "mayfly-agent run --join-token ${TOKEN:0:8}... --server $CA_ADDR --socket \$T/run/agent.sock ..."
"$BIN/mayfly-agent" run --data-dir "$T/agent" --server "$CA_ADDR" --trust-bundle "$T/bundle.pem" \
    --join-token "$TOKEN" --socket "$SOCK" --metrics-listen 127.0.0.1:0 >"$AGENT_LOG" 2>&1 &
PIDS+=($!)
AGENT_PID=$!
wait_for 15 "the agent's ready line" grep -q 'mayfly-agent ready' "$AGENT_LOG"
kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent exited"
say "The agent proved itself to the CA once, with a single-use join token (node attestation),"
say "and received its own SVID: $AGENT_ID."
say "The token is now spent. From here on the agent renews with that SVID over mutual TLS,"
say "and serves the Workload API on $SOCK."

# ---- 3. registration --------------------------------------------------------------------

section "Register three workloads"
register() {
    "${CA[@]}" entry create --admin-socket "$ADMIN" --spiffe-id "$1" --parent-id "$AGENT_ID" \
        --selector "unix:uid:$2" >/dev/null || fail "cannot register $1"
}
cmd "mayfly-ca entry create --spiffe-id $FRONT_ID --parent-id $AGENT_ID --selector unix:uid:$FRONT_UID"
register "$FRONT_ID" "$FRONT_UID"
register "$BACK_ID" "$BACK_UID"
register "$BATCH_ID" "$BATCH_UID"
say "frontend   $FRONT_ID   for processes of uid $FRONT_UID (root)"
say "backend    $BACK_ID    for processes of uid $BACK_UID (nobody)"
say "batch-job  $BATCH_ID  for processes of uid $BATCH_UID: a real workload, but not"
say "           one the backend should talk to"
say "The CA pushed the entries to the agent, which made a fresh key for each, sent the CA"
say "only a CSR, and cached the signed SVIDs. No private key ever leaves this node."

# ---- 4. fetch ----------------------------------------------------------------------------

section "Each workload asks the agent who it is"
# fetch NAME UID: fetch x509 --write into $T/NAME as that uid; prints the pid
fetch_as() {
    local name=$1 uid=$2 dir=$T/$1
    mkdir -m 0700 "$dir"
    chown "$uid:$uid" "$dir"
    wait_for 5 "an SVID for $name" as_uid "$uid" "$T/bin/mayfly-agent" fetch x509
    as_uid "$uid" sh -c 'echo "pid $$"; exec "$@"' sh \
        "$T/bin/mayfly-agent" fetch x509 --write "$dir" >"$dir.out" 2>&1 ||
        { cat "$dir.out" >&2; fail "$name could not fetch its SVID"; }
}
describe() {
    local name=$1 uid=$2 want=$3 pem=$T/$1/svid.0.pem
    local san serial until
    san=$(openssl x509 -in "$pem" -noout -ext subjectAltName 2>/dev/null | grep -o 'URI:[^, ]*')
    serial=$(openssl x509 -in "$pem" -noout -serial | cut -d= -f2)
    until=$(openssl x509 -in "$pem" -noout -enddate | cut -d= -f2)
    [ "$san" = "URI:$want" ] || fail "$name got '$san', not URI:$want"
    say "$name: process $(sed -n 's/^pid //p' "$T/$1.out") asked. The kernel says it runs as uid $uid"
    say "  (SO_PEERCRED, checked through a pidfd), so the selector unix:uid:$uid matched and the"
    say "  agent handed it an X509-SVID with ${B}$san${N},"
    say "  serial ${serial:0:16}..., valid until $until, plus its key and the trust bundle."
}
cmd "mayfly-agent fetch x509 --write \$T/frontend        (as uid $FRONT_UID)"
fetch_as frontend "$FRONT_UID"
describe frontend "$FRONT_UID" "$FRONT_ID"
cmd "setpriv --reuid=$BACK_UID mayfly-agent fetch x509 --write \$T/backend"
fetch_as backend "$BACK_UID"
describe backend "$BACK_UID" "$BACK_ID"
[ "$(stat -c %a "$T/frontend/svid.0.key")" = 600 ] || fail "svid.0.key is not mode 0600"

# ---- 5. openssl ----------------------------------------------------------------------------

section "Mutual TLS with plain OpenSSL, on the fetched files"
say "backend runs openssl s_server as uid $BACK_UID with its SVID; it demands a client certificate"
say "that chains to the bundle. frontend connects with openssl s_client and its own SVID."
cmd "openssl s_server -cert svid.0.pem -key svid.0.key -CAfile bundle.0.pem -Verify 1 -verify_return_error"
cmd "openssl s_client -cert svid.0.pem -key svid.0.key -CAfile bundle.0.pem -verify_return_error"
OSSL_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SRV_OUT=$T/s_server.out
CLI_OUT=$T/s_client.out
FAILED_LOGS+=("$SRV_OUT" "$CLI_OUT")
# s_server quits when its stdin ends: a FIFO that we hold open (fd 7) never ends
mkfifo "$T/s_server.in"
exec 7<>"$T/s_server.in"
bg_as_uid "$BACK_UID" "$T/s_server.in" "$SRV_OUT" openssl s_server -naccept 1 \
    -accept "127.0.0.1:$OSSL_PORT" -tls1_3 -cert "$T/backend/svid.0.pem" \
    -key "$T/backend/svid.0.key" -CAfile "$T/backend/bundle.0.pem" -Verify 1 -verify_return_error
SRV_PID=$!
wait_for 5 "openssl s_server" grep -q ACCEPT "$SRV_OUT"
printf 'hello backend, this is the frontend speaking through openssl\n' |
    openssl s_client -connect "127.0.0.1:$OSSL_PORT" -tls1_3 \
        -cert "$T/frontend/svid.0.pem" -key "$T/frontend/svid.0.key" \
        -CAfile "$T/frontend/bundle.0.pem" -verify_return_error >"$CLI_OUT" 2>&1 ||
    fail "openssl s_client failed"
wait_for 5 "openssl s_server to finish" bash -c "! kill -0 $SRV_PID"
exec 7>&-
# the first certificate each side printed is the peer's leaf
peer_san() {
    awk '/-----BEGIN CERTIFICATE-----/{p=1} p{print} /-----END CERTIFICATE-----/{exit}' "$1" |
        openssl x509 -noout -ext subjectAltName 2>/dev/null | grep -o 'URI:[^, ]*'
}
server_san=$(peer_san "$CLI_OUT")
client_san=$(peer_san "$SRV_OUT")
grep -q 'Verify return code: 0 (ok)' "$CLI_OUT" || fail "s_client did not verify the server"
[ "$server_san" = "URI:$BACK_ID" ] || fail "s_client saw '$server_san', not URI:$BACK_ID"
[ "$client_san" = "URI:$FRONT_ID" ] || fail "s_server saw '$client_san', not URI:$FRONT_ID"
grep -q 'hello backend' "$SRV_OUT" || fail "s_server did not receive the message"
good "frontend: the server's chain verified against the bundle (Verify return code: 0),"
good "          and its certificate names $server_san"
good "backend:  the client's chain verified, and its certificate names $client_san"
good "backend received: \"$(grep -m1 'hello backend' "$SRV_OUT")\""
say "OpenSSL proved the identities; it cannot say who may talk to whom. That is next."

# ---- 6. mayfly-mtls ---------------------------------------------------------------------------

section "Mutual TLS with a C workload on libmayfly (bin/mayfly-mtls)"
say "Each side gets its SVID straight from the Workload API and keeps it current across"
say "rotations; after the handshake it checks the peer's SPIFFE ID against its policy."
cmd "setpriv --reuid=$BACK_UID mayfly-mtls server --listen 127.0.0.1:0 --allow-id $FRONT_ID"
MTLS_SRV=$T/mtls-server.out
FAILED_LOGS+=("$MTLS_SRV")
bg_as_uid "$BACK_UID" /dev/null "$MTLS_SRV" "$T/bin/mayfly-mtls" server --listen 127.0.0.1:0 \
    --allow-id "$FRONT_ID"
MTLS_SRV_PID=$!
wait_for 10 "mayfly-mtls server" grep -q '^server: listening on' "$MTLS_SRV"
MTLS_ADDR=$(sed -n 's/^server: listening on \([^;]*\);.*/\1/p' "$MTLS_SRV")
# server_says FROM_LINE: the server's output from that line on
server_says() { tail -n +"$1" "$MTLS_SRV" | grep -v '^my SVID rotated' || true; }
quote backend <(grep -v '^my SVID rotated' "$MTLS_SRV")
cmd "mayfly-mtls client --connect $MTLS_ADDR --expect-id $BACK_ID"
from=$(($(wc -l <"$MTLS_SRV") + 1))
as_uid "$FRONT_UID" "$T/bin/mayfly-mtls" client --connect "$MTLS_ADDR" --expect-id "$BACK_ID" \
    --message "hello backend, this is the frontend on libmayfly" >"$T/mtls-client.out" 2>&1 ||
    { quote frontend "$T/mtls-client.out"; fail "the mayfly-mtls exchange failed"; }
quote frontend "$T/mtls-client.out"
wait_for 5 "the server's answer" grep -q '^answered' "$MTLS_SRV"
quote backend <(server_says "$from")
grep -q "as expected" "$T/mtls-client.out" || fail "the client did not confirm the server's ID"
grep -q "accepted peer $FRONT_ID" "$MTLS_SRV" || fail "the server did not accept the frontend"
good "Both sides proved their SPIFFE IDs, and each was the one the other expected."

# ---- 7. refusals ---------------------------------------------------------------------------

section "Refusals"
say "a) batch-job holds a perfectly valid SVID, but the backend accepts only $FRONT_ID:"
from=$(($(wc -l <"$MTLS_SRV") + 1))
cmd "setpriv --reuid=$BATCH_UID mayfly-mtls client --connect $MTLS_ADDR --expect-id $BACK_ID"
wait_for 5 "an SVID for batch-job" as_uid "$BATCH_UID" "$T/bin/mayfly-agent" fetch x509
if as_uid "$BATCH_UID" "$T/bin/mayfly-mtls" client --connect "$MTLS_ADDR" --expect-id "$BACK_ID" \
    --message "let me in" >"$T/batch.out" 2>&1; then
    quote batch-job "$T/batch.out"
    fail "the backend accepted batch-job"
fi
wait_for 5 "the server's verdict" bash -c "tail -n +$from '$MTLS_SRV' | grep -q 'refused peer'"
quote batch-job "$T/batch.out"
quote backend <(server_says "$from")
grep -q "refused peer $BATCH_ID" "$MTLS_SRV" || fail "the server did not name the refused peer"
grep -q "let me in" "$MTLS_SRV" && fail "the server read data from a refused peer"
refused "Refused by the backend's authorizer: right trust domain, wrong SPIFFE ID."

say "b) frontend wants the database, but the address it was given is the backend's:"
cmd "mayfly-mtls client --connect $MTLS_ADDR --expect-id spiffe://$TD/database"
if as_uid "$FRONT_UID" "$T/bin/mayfly-mtls" client --connect "$MTLS_ADDR" \
    --expect-id "spiffe://$TD/database" --message "secret query" >"$T/wrong.out" 2>&1; then
    quote frontend "$T/wrong.out"
    fail "the client talked to a server it did not expect"
fi
quote frontend "$T/wrong.out"
grep -q "secret query" "$MTLS_SRV" && fail "the client sent data to the wrong server"
refused "Refused by the client: it sent nothing to a server that is not who it expected."

say "c) a process of uid $STRANGER_UID has no registration entry at all:"
cmd "setpriv --reuid=$STRANGER_UID mayfly-agent fetch x509"
if as_uid "$STRANGER_UID" "$T/bin/mayfly-agent" fetch x509 >"$T/stranger.out" 2>&1; then
    fail "a process with no entry was given an identity"
fi
quote uid-$STRANGER_UID "$T/stranger.out"
grep -q 403 "$T/stranger.out" || fail "expected 403 permission_denied"
grep -q 'PRIVATE KEY' "$T/stranger.out" && fail "the 403 carried key material"
wait_for 5 "the agent's denial log line" grep -q "workload denied.*uid=$STRANGER_UID" "$AGENT_LOG"
say "The agent's log: $(grep "workload denied.*uid=$STRANGER_UID" "$AGENT_LOG" | tail -1 |
    sed 's/^.*workload denied/workload denied/')"
refused "Refused by the agent: 403 permission_denied, and no key material."
kill -0 "$MTLS_SRV_PID" 2>/dev/null || fail "the mayfly-mtls server did not survive the refusals"

# ---- 8. rotation ----------------------------------------------------------------------------

section "Rotation, live"
say "Every SVID is renewed at a moment drawn once in 45-55 % of its life. Watching the"
say "frontend's SVID (mayfly-agent watch rewrites the files atomically and runs a command):"
cmd "mayfly-agent watch --write \$T/watch --exec 'openssl x509 -in \$T/watch/svid.0.pem -noout -serial -enddate'"
mkdir -m 0700 "$T/watch"
WATCH_OUT=$T/watch.out
FAILED_LOGS+=("$WATCH_OUT")
"$T/bin/mayfly-agent" watch --write "$T/watch" \
    --exec "openssl x509 -in $T/watch/svid.0.pem -noout -serial -enddate" >"$WATCH_OUT" 2>&1 &
PIDS+=($!)
WATCH_PID=$!
t_first=""
for ((i = 0; i < 600; i++)); do
    n=$(grep -c '^serial=' "$WATCH_OUT" 2>/dev/null || true)
    [ "${n:-0}" -ge 1 ] && [ -z "$t_first" ] && t_first=$(date +%s%N)
    [ "${n:-0}" -ge 2 ] && break
    kill -0 "$WATCH_PID" 2>/dev/null || fail "the watch stopped"
    sleep 0.05
done
[ "${n:-0}" -ge 2 ] || fail "no rotation seen within 30 s"
t_second=$(date +%s%N)
old_serial=$(grep '^serial=' "$WATCH_OUT" | sed -n 1p | cut -d= -f2)
new_serial=$(grep '^serial=' "$WATCH_OUT" | sed -n 2p | cut -d= -f2)
old_end=$(grep '^notAfter=' "$WATCH_OUT" | sed -n 1p | cut -d= -f2)
new_end=$(grep '^notAfter=' "$WATCH_OUT" | sed -n 2p | cut -d= -f2)
[ "$old_serial" != "$new_serial" ] || fail "the rotated SVID has the same serial"
left=$(($(date -d "$old_end" +%s) - t_second / 1000000000))
[ "$left" -gt 0 ] || fail "rotated only after the old SVID expired"
say "before:  serial ${old_serial:0:16}...  expires $old_end"
good "after:   serial ${new_serial:0:16}...  expires $new_end"
say "The new SVID arrived $(((t_second - t_first) / 1000000)) ms into the watch, ${left} s before the old one"
say "would have expired. Nothing was revoked: the old certificate simply ages out."
kill "$WATCH_PID" 2>/dev/null
server_rot=$(grep -c '^my SVID rotated' "$MTLS_SRV" || true)
[ "${server_rot:-0}" -ge 1 ] &&
    say "Meanwhile the mayfly-mtls server picked up ${server_rot} rotation(s) of its own SVID without a restart."

# ---- done ----------------------------------------------------------------------------------

section "Done"
scrape() { curl -s --max-time 2 "http://$1/metrics" 2>/dev/null; }
ca_m=$(metrics_addr "$CA_LOG")
ag_m=$(metrics_addr "$AGENT_LOG")
if [ -n "$ca_m" ] && [ -n "$ag_m" ]; then
    issued=$(scrape "$ca_m" | awk '/^mayfly_ca_svids_issued_total\{/{s+=$2} END{print s+0}')
    renewals=$(scrape "$ag_m" | awk '/^mayfly_agent_svid_renewals_total\{/{s+=$2} END{print s+0}')
    ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$ag_m/ready" || true)
    [ "$ready" = 200 ] || fail "the agent's /ready answered $ready"
    [ "${issued:-0}" -ge 3 ] || fail "the CA's metrics show $issued SVIDs issued"
    say "The CA signed $issued SVIDs so far, the agent renewed $renewals on schedule"
    say "(Prometheus text on http://$ca_m/metrics and http://$ag_m/metrics; /ready says 200)."
fi
secs=$((($(date +%s%N) - T0) / 1000000))
say "Finished in $((secs / 1000)).$(((secs % 1000) / 100)) s. Stopping the CA, the agent and the workloads;"
if [ "$KEEP" = 1 ]; then
    say "logs and certificates stay in $T."
else
    say "removing $T."
fi
say "Next: README.md, docs/operations.md (running it for real), docs/security.md."
printf '%sdemo: ok%s\n' "$G" "$N"
