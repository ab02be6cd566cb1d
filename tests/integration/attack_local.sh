#!/usr/bin/env bash
# Local attacks, each refused with nothing changed:
#   - the CA's admin socket from an unprivileged uid (setpriv, uid 65534):
#     the 0600 mode stops it, and with the mode loosened by mistake the
#     SO_PEERCRED uid check answers 403; the registry is unchanged;
#   - `mayfly-agent fetch x509 --write DIR` where DIR is a symlink, and where
#     svid.0.key, svid.0.pem or bundle.0.pem is a planted symlink to a file
#     of the victim's: refused, the victim file untouched, no key written;
#   - the Workload API asked by a uid that no entry matches: 403, no key.
# (A recycled pid during workload attestation is tested where it can be
# forced: tests/unit/test_agent_regress.c.)
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null ||
    skip "needs root and setpriv for the other-uid cases"
chmod 755 "$T" # uid 65534 must reach the sockets
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
AG=spiffe://example.org/mayfly/agent/n1
add_entry a spiffe://example.org/app $AG unix:uid:0 >/dev/null
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# --- the admin socket from uid 65534
before=$(registry_digest a)
chmod 755 "$T/ca"
if out=$(nobody "$CA_BIN" entry create --admin-socket "$CA_SOCK_a" \
    --spiffe-id spiffe://example.org/evil --parent-id $AG --selector unix:uid:65534 2>&1); then
    die "uid 65534 created an entry: $out"
fi
echo "ok (refused): admin socket 0600 as uid 65534: $out"
if nobody "$CA_BIN" token generate --admin-socket "$CA_SOCK_a" --spiffe-id $AG >/dev/null 2>&1; then
    die "uid 65534 got a join token"
fi
chmod 666 "$CA_SOCK_a" # an operator's mistake: the uid check still holds
if out=$(nobody "$CA_BIN" entry create --admin-socket "$CA_SOCK_a" \
    --spiffe-id spiffe://example.org/evil --parent-id $AG --selector unix:uid:65534 2>&1); then
    die "uid 65534 created an entry through a 0666 socket: $out"
fi
grep -q '403' <<<"$out" || die "expected 403 from the uid check: $out"
echo "ok (refused): admin socket loosened to 0666, as uid 65534: $out"
out=$(nobody "$CA_BIN" token generate --admin-socket "$CA_SOCK_a" --spiffe-id $AG 2>&1) &&
    die "uid 65534 got a join token through a 0666 socket"
grep -q 'admin request refused for uid 65534' "$T/ca/ca.log" || die "refusal not logged"
chmod 600 "$CA_SOCK_a"
[ "$(registry_digest a)" = "$before" ] || die "the registry changed"

# --- --write and planted symlinks
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $AG)"
chmod 755 "$T/n1"
wait_until 10 fetch_as root "$AGENT_SOCK_n1"
echo "victim" >"$T/victim"
chmod 644 "$T/victim"
mkdir -p "$T/real" "$T/out"
ln -s "$T/real" "$T/linkdir"
if out=$(fetch_as root "$AGENT_SOCK_n1" --write "$T/linkdir" 2>&1); then
    die "wrote through a symlinked directory"
fi
[ -z "$(ls -A "$T/real")" ] || die "files appeared behind the symlinked directory"
echo "ok (refused): --write into a symlinked directory: $out"
for f in svid.0.key svid.0.pem bundle.0.pem; do
    rm -rf "$T/out" && mkdir "$T/out"
    ln -s "$T/victim" "$T/out/$f"
    if out=$(fetch_as root "$AGENT_SOCK_n1" --write "$T/out" 2>&1); then
        die "--write replaced the planted symlink $f"
    fi
    [ "$(cat "$T/victim")" = victim ] || die "the victim file was overwritten through $f"
    [ -L "$T/out/$f" ] || die "the planted $f was replaced"
    if grep -qs 'PRIVATE KEY' "$T/victim" "$T"/out/*; then die "a key was written next to $f"; fi
    echo "ok (refused): --write with $f planted as a symlink: $out"
done
# and an ordinary directory still works
rm -rf "$T/out" && mkdir "$T/out"
fetch_as root "$AGENT_SOCK_n1" --write "$T/out" >/dev/null || die "--write into a plain dir"
[ "$(stat -c %a "$T/out/svid.0.key")" = 600 ] || die "key mode"

# --- the Workload API for a uid no entry matches
if out=$(fetch_as nobody "$AGENT_SOCK_n1" 2>&1); then die "uid 65534 was served: $out"; fi
grep -q 403 <<<"$out" || die "expected 403: $out"
grep -q 'PRIVATE KEY' <<<"$out" && die "a refusal carried key material"
echo "ok (refused): Workload API as uid 65534 without an entry: $out"
echo "attack_local: ok"
