#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# README.md's "By hand" block runs as pasted. The block is extracted
# verbatim (the first ```sh fence after "By hand") and run with `set -e`
# from a directory whose bin/ is the built binaries, so a command line that
# changes without the README, or a race the README does not wait for,
# fails here.
#
# The block listens on the fixed port 8081, so it runs in a network
# namespace of its own (a private loopback: no clash with other tests or
# anything else on the host) and a PID namespace of its own (with its own
# /proc, which LeakSanitizer reads under make check), so that the daemons it
# starts in the background end with it.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
REPO=$(cd ../.. && pwd)
make_tmp
command -v unshare >/dev/null || skip "unshare is not installed"
command -v ip >/dev/null || skip "ip (iproute2) is not installed"
command -v curl >/dev/null || skip "curl is not installed"
unshare --net --pid --fork --mount-proc true 2>/dev/null || skip "cannot create namespaces (not root?)"

awk '/^By hand/ { on = 1 } on && /^```sh$/ { inb = 1; next } inb && /^```$/ { exit } inb' \
    "$REPO/README.md" >"$T/block.sh"
[ -s "$T/block.sh" ] || die "no \"By hand\" sh block in README.md"
grep -q 'mayfly-ca run' "$T/block.sh" || die "the block does not start the CA"
echo "block: $(wc -l <"$T/block.sh") lines"

mkdir "$T/work" "$T/tmp"
ln -s "$(cd "$MAYFLY_BIN" && pwd)" "$T/work/bin"
{
    echo 'set -euo pipefail'
    echo 'ip link set lo up'
    cat "$T/block.sh"
    echo 'ls "$d/out"'
    echo 'echo README-BLOCK-OK'
} >"$T/run.sh"
# --kill-child: when the block's shell ends, so does every process it left
rc=0
(cd "$T/work" && TMPDIR=$T/tmp timeout 60 unshare --net --pid --fork --mount-proc --kill-child \
    bash "$T/run.sh") >"$T/out" 2>&1 || rc=$?
LOG_ON_FAIL=$T/out
[ "$rc" = 0 ] || { cat "$T/out"; die "the README block failed (exit $rc)"; }
grep -q '^README-BLOCK-OK$' "$T/out" || die "the block did not run to its end"
grep -q 'svid 0: spiffe_id=spiffe://example.org/web' "$T/out" || die "no SVID fetched"
grep -q '^svid.0.key$' "$T/out" || die "fetch --write wrote no key"
grep -Eq '^eyJ[A-Za-z0-9_-]+\.' "$T/out" || die "no JWT-SVID printed"
echo "ok: README.md's \"By hand\" block runs as pasted"
