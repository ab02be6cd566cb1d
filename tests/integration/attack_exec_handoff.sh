#!/usr/bin/env bash
# An identity cannot be borrowed by exec (docs/security.md, rows 29-31).
# As an unprivileged uid (setpriv, uid 4321) with an entry
# unix:uid:4321 + unix:path:$T/trusted:
#   - control: $T/trusted itself connects and gets its SVID and key, over
#     the JSON API (after a GET /health on the same connection) and gRPC;
#   - attack: another binary connects, forks a helper that keeps the
#     socket, execs $T/trusted and the helper asks for the SVID: refused,
#     no key, over both protocols, both when the helper writes the first
#     bytes and when the connecting process said hello itself before the
#     exec (the agent has then surely accepted the connection: 403, "the
#     executable changed since the connection was made");
#   - the same after the connecting process fetched its own SVID on the
#     connection (an entry trusts the attacking binary too), so that the
#     agent keeps that attestation for the connection: still refused.
# The exec_handoff tool (tests/tools/exec_handoff.c) plays both roles.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null ||
    { echo "note: needs root and setpriv for the other-uid workload, skipped"; exit 0; }
chmod 755 "$T"
U=4321
as_user() { setpriv --reuid=$U --regid=$U --clear-groups "$@"; }
install -m 755 "$MAYFLY_BUILD/tools/exec_handoff" "$T/handoff"
install -m 755 "$MAYFLY_BUILD/tools/exec_handoff" "$T/trusted" # same bytes, another inode

start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
AG=spiffe://example.org/mayfly/agent/n1
add_entry a spiffe://example.org/trusted $AG unix:uid:$U "unix:path:$T/trusted" >/dev/null
add_entry a spiffe://example.org/handoff $AG unix:uid:$U "unix:path:$T/handoff" >/dev/null
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $AG)"
chmod 755 "$T/n1"
LOG_ON_FAIL="$T/n1/agent.log"
S=$AGENT_SOCK_n1

# --- controls: the trusted binary itself is served, on both protocols
wait_until 15 as_user "$T/trusted" direct http "$S"
out=$(as_user "$T/trusted" direct http "$S") || die "trusted binary refused (JSON): $out"
grep -q 'status=200 key=1' <<<"$out" || die "control (JSON): $out"
echo "ok (served): the trusted binary itself, JSON API: $out"
out=$(as_user "$T/trusted" direct grpc "$S" 2>&1) || die "trusted binary refused (gRPC): $out"
echo "ok (served): the trusted binary itself, gRPC: $out"

# --- the hand-off: must get nothing
for proto in http grpc; do
    for hello in first hello; do
        rc=0
        out=$(as_user "$T/handoff" handoff $proto "$S" "$T/trusted" $hello) || rc=$?
        [ "$rc" = 3 ] || die "exec hand-off ($proto, $hello): rc=$rc, want 3 (no key): $out"
        grep -q 'key=0' <<<"$out" || die "exec hand-off ($proto, $hello): $out"
        if [ $proto = http ] && [ $hello = hello ]; then
            grep -q 'status=403' <<<"$out" || die "exec hand-off (JSON, hello): want 403: $out"
        fi
        echo "ok (refused): exec hand-off, $proto, helper's request $([ $hello = hello ] &&
            echo after a hello || echo first): $out"
    done
done
# an attested, kept-alive connection: what attestation proved is kept for it,
# and an exec since is still caught
rc=0
out=$(as_user "$T/handoff" handoff http "$S" "$T/trusted" fetch) || rc=$?
[ "$rc" = 3 ] || die "exec hand-off after an attested fetch: rc=$rc, want 3 (no key): $out"
grep -q 'status=403 key=0' <<<"$out" || die "exec hand-off after an attested fetch: $out"
echo "ok (refused): exec hand-off, JSON, after the connecting process fetched its own SVID: $out"
grep -q 'the executable changed since the connection was made' "$T/n1/agent.log" ||
    die "the changed executable was not logged"
grep -q 'were written by pid' "$T/n1/agent.log" || die "the other writer was not logged"
# and the trusted binary is still served afterwards
out=$(as_user "$T/trusted" direct http "$S") || die "trusted binary refused after the attacks"
echo "attack_exec_handoff: ok"
