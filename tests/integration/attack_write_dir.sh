#!/usr/bin/env bash
# `--write DIR` cannot be redirected (docs/security.md, rows 33-34), for
# `mayfly-agent fetch x509` and `mayfly-agent watch`:
#   - DIR a symlink to a real directory, given as "link", "link/", "link//"
#     and "link/.": refused, nothing appears behind the link;
#   - DIR writable by others (0777, 1777) or by its group (0775), or owned
#     by another uid: refused with the path and the reason, nothing written;
#   - control: a 0700 or 0755 directory of the caller's, given with or
#     without a trailing slash, is written.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
AG=spiffe://example.org/mayfly/agent/n1
add_entry a spiffe://example.org/app $AG unix:uid:"$(id -u)" >/dev/null
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $AG)"
LOG_ON_FAIL="$T/n1/agent.log"
S=$AGENT_SOCK_n1
wait_until 10 fetch_as root "$S"

# refused: DESC DIR WHY-REGEX [EMPTY-DIR]; run for fetch and for watch
refused() {
    local desc=$1 dir=$2 why=$3 behind=${4:-}
    local out rc=0
    out=$("$AGENT_BIN" fetch x509 --socket "$S" --write "$dir" 2>&1) || rc=$?
    [ "$rc" != 0 ] || die "fetch --write $desc: written"
    grep -Eq "$why" <<<"$out" || die "fetch --write $desc: no reason: $out"
    echo "ok (refused): fetch --write $desc: $out"
    rc=0
    out=$(timeout 10 "$AGENT_BIN" watch --socket "$S" --write "$dir" 2>&1) || rc=$?
    [ "$rc" = 1 ] || die "watch --write $desc: exit $rc, want 1: $out"
    grep -Eq "$why" <<<"$out" || die "watch --write $desc: no reason: $out"
    echo "ok (refused): watch --write $desc: $out"
    if [ -n "$behind" ]; then
        [ -z "$(ls -A "$behind")" ] || die "$desc: files appeared in $behind"
    fi
}

mkdir -m 0700 "$T/real"
ln -s "$T/real" "$T/link"
refused "a symlinked dir" "$T/link" 'is a symbolic link' "$T/real"
refused "a symlinked dir with a trailing slash" "$T/link/" 'is a symbolic link' "$T/real"
refused "a symlinked dir with two slashes" "$T/link//" 'is a symbolic link' "$T/real"
refused "a symlinked dir as link/." "$T/link/." "not '\.' or '\.\.'" "$T/real"

for mode in 0777 1777 0775 0757; do
    mkdir -m "$mode" "$T/open$mode"
    refused "a $mode dir" "$T/open$mode" "open$mode: the directory is writable by" "$T/open$mode"
done
mkdir -m 0700 "$T/theirs"
chown 4321:4321 "$T/theirs"
refused "a dir owned by uid 4321" "$T/theirs" 'belongs to uid 4321' "$T/theirs"

# control: the caller's own directories, with or without a trailing slash
for mode in 0700 0755; do
    rm -rf "$T/mine" && mkdir -m "$mode" "$T/mine"
    "$AGENT_BIN" fetch x509 --socket "$S" --write "$T/mine/" >/dev/null ||
        die "fetch --write into a $mode dir of mine"
    [ "$(stat -c %a "$T/mine/svid.0.key")" = 600 ] || die "key mode"
    grep -q 'BEGIN CERTIFICATE' "$T/mine/svid.0.pem" || die "no certificate written"
done
echo "ok (written): fetch --write into the caller's 0700 and 0755 directories"
echo "attack_write_dir: ok"
