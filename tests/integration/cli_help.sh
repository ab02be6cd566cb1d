#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The command lines of both binaries, parsed by the one table-driven parser
# (api/internal/mf_opt.c):
#   - --help on every command and subcommand: usage on stdout, exit 0, and
#     every option it lists is also in the program's --help, so the man page
#     made from that is complete;
#   - --version prints "NAME 0.2.0" (the Makefile's VERSION), exit 0;
#   - --flag=value works like --flag value, for run and for the subcommands;
#   - an unknown flag, a flag of another subcommand, an underscore spelling,
#     a missing value, a missing subcommand: one line naming the command,
#     exit 2; a CA that cannot be reached: exit 1.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
REPO=$(cd ../.. && pwd)
make_tmp
AG=$MAYFLY_BIN/mayfly-agent
VERSION=$(sed -n 's/^VERSION := //p' "$REPO/Makefile")

# exit_is WANT DESC CMD...: runs CMD, checks its status
exit_is() {
    local want=$1 desc=$2 rc=0
    shift 2
    "$@" >"$T/o" 2>"$T/e" || rc=$?
    [ "$rc" = "$want" ] || { cat "$T/o" "$T/e"; die "$desc: exit $rc, want $want"; }
}

for b in "$CA_BIN" "$AG"; do
    name=$(basename "$b")
    exit_is 0 "$name --version" "$b" --version
    [ "$(cat "$T/o")" = "$name $VERSION" ] || die "$name --version printed '$(cat "$T/o")'"
    exit_is 0 "$name --help" "$b" --help
    cp "$T/o" "$T/$name.help"
    exit_is 2 "$name without arguments" "$b"
    exit_is 2 "$name bogus" "$b" bogus
    grep -q "unknown command 'bogus'" "$T/e" || die "$name bogus: $(cat "$T/e")"
    # every command named in the program's help
    cmds=$(sed -n "s/^usage: $name \\([a-z0-9]*\\( [a-z0-9]*\\)\\{0,1\\}\\)\\( [A-Z_]*\\)\\{0,1\\}\\( \\[options\\]\\)\\{0,1\\}$/\\1/p" \
        "$T/$name.help" | sed 's/ [A-Z_]*$//')
    n=0
    while read -r cmd; do
        [ -n "$cmd" ] || continue
        # shellcheck disable=SC2086
        exit_is 0 "$name $cmd --help" "$b" $cmd --help
        grep -q "^usage: $name $cmd" "$T/o" || die "$name $cmd --help: $(head -1 "$T/o")"
        # each option of the command is in the program's help (the man page)
        for opt in $(grep -o '^    --[a-z0-9-]*' "$T/o" | tr -d ' '); do
            grep -q -- " $opt" "$T/$name.help" || die "$name --help lacks $opt of $cmd"
        done
        # an unknown flag names the command, exit 2
        # shellcheck disable=SC2086
        exit_is 2 "$name $cmd --bogus" "$b" $cmd --bogus=1
        grep -q "^$name $cmd: unknown option '--bogus'" "$T/e" ||
            die "$name $cmd --bogus: $(cat "$T/e")"
        n=$((n + 1))
    done <<<"$cmds"
    [ "$n" -ge 6 ] || die "$name: only $n commands found in --help"
    echo "ok: $name: --version, --help, and --help and a refused flag on each of $n commands"
done

# the man page is complete: every option of every command is in it
if [ -x "$REPO/scripts/gen-man.sh" ]; then
    "$REPO/scripts/gen-man.sh" "$CA_BIN" "$VERSION" >"$T/ca.8"
    for opt in --data-dir --log-file --handshake-timeout --no-dns-names --wait --format; do
        grep -q -- "\\-\\-${opt#--}\|$opt" "$T/ca.8" || die "man page lacks $opt"
    done
    echo "ok: the man page lists run's and the subcommands' options"
fi

# misuse: exit 2, one line naming the command
exit_is 2 "flag of another subcommand" "$CA_BIN" bundle show --ttl 5 --admin-socket "$T/x"
grep -q "^mayfly-ca bundle show: unknown option '--ttl'" "$T/e" || die "$(cat "$T/e")"
exit_is 2 "underscore alias" "$CA_BIN" run --svid_ttl 5m --data-dir "$T/d" --admin-socket "$T/s"
exit_is 2 "old alias" "$CA_BIN" entry create --spiffeID spiffe://example.org/x \
    --admin-socket "$T/x"
exit_is 2 "missing value" "$CA_BIN" entry list --admin-socket
exit_is 2 "missing subcommand" "$CA_BIN" entry
grep -q "'entry' needs a subcommand: create, list, show, update, delete" "$T/e" ||
    die "$(cat "$T/e")"
exit_is 2 "unknown subcommand" "$CA_BIN" entry frobnicate
exit_is 2 "bad duration" "$CA_BIN" token generate --admin-socket "$T/x" --spiffe-id x --ttl soon
exit_is 2 "missing required" "$CA_BIN" token generate --admin-socket "$T/x"
exit_is 2 "extra argument" "$CA_BIN" entry show a b --admin-socket "$T/x"
exit_is 2 "agent: write is not a jwt flag" "$AG" fetch jwt --audience a --write "$T"
exit_is 2 "agent: missing run options" "$AG" run --data-dir "$T/a"
grep -q "^mayfly-agent run: --server is required" "$T/e" || die "$(cat "$T/e")"
exit_is 2 "agent: watch without --write" "$AG" watch --socket "$T/x"
exit_is 1 "CA not reachable" "$CA_BIN" healthcheck --admin-socket "$T/nope.sock"
exit_is 1 "agent not reachable" "$AG" healthcheck --socket "$T/nope.sock"
echo "ok: misuse exits 2 naming the command; an unreachable daemon exits 1"

# --wait: gives up after the duration, with exit 1
t0=$(date +%s%N)
exit_is 1 "healthcheck --wait on nothing" "$CA_BIN" healthcheck --admin-socket "$T/nope.sock" --wait 1s
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ] || die "--wait 1s took $ms ms"
echo "measured: healthcheck --wait 1s on a missing socket gave up after $ms ms"

# the = form, on run and on the subcommands, with the CA in the background:
# healthcheck --wait is the readiness wait
mkdir -p "$T/ca"
"$CA_BIN" run --data-dir="$T/ca/data" --admin-socket="$T/ca/admin.sock" \
    --listen=127.0.0.1:0 --svid-ttl=10m --log-level=info >"$T/ca/ca.log" 2>&1 &
track_pid $!
LOG_ON_FAIL=$T/ca/ca.log
exit_is 0 "healthcheck --wait" "$CA_BIN" healthcheck --admin-socket="$T/ca/admin.sock" --wait=10s
[ "$(cat "$T/o")" = ok ] || die "healthcheck printed $(cat "$T/o")"
exit_is 0 "bundle show --format=spiffe" "$CA_BIN" bundle show --admin-socket="$T/ca/admin.sock" \
    --format=spiffe
grep -q '"x509-svid"' "$T/o" || die "bundle --format=spiffe"
MAYFLY_CA_ADMIN_SOCKET=$T/ca/admin.sock exit_is 0 "entry create, = form, socket from env" \
    "$CA_BIN" entry create --spiffe-id=spiffe://example.org/eq \
    --parent-id=spiffe://example.org/mayfly/agent/n --selector=unix:uid:7 --selector=unix:gid:7 \
    --ttl=2m --json
grep -q '"ttl": 120' "$T/o" || die "--ttl=2m not applied: $(cat "$T/o")"
grep -q '"unix:gid:7"' "$T/o" || die "repeated --selector= not collected"
exit_is 1 "refused by the server" "$CA_BIN" entry create --admin-socket "$T/ca/admin.sock" \
    --spiffe-id=spiffe://other.org/x --parent-id=spiffe://example.org/mayfly/agent/n \
    --selector=unix:uid:7
echo "ok: --flag=value on run and on the subcommands; a server refusal exits 1"
