#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# `make install` into a temp DESTDIR lays out what a packager expects
# (binaries, libmayfly.so with its soname and only public symbols,
# libmayfly.a, public headers only, mayfly.pc, systemd units, example
# configs, man pages); then a small workload is built against the installed
# mayfly.pc and libmayfly.so alone, and fetches its identity from a real
# CA and agent.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
make_tmp
D="$T/dest"
PREFIX=/opt/mayfly
san=()
# shellcheck disable=SC2054 # one flag: -fsanitize takes a comma list
case "$MAYFLY_BUILD" in */san) san=(-fsanitize=address,undefined) ;; esac

# install-files builds nothing: the tests running beside this one use the
# same binaries, which a rebuild would replace under them
make -s -C "$ROOT" install-files DESTDIR="$D" PREFIX="$PREFIX" BUILD="$MAYFLY_BUILD" \
    BINDIR="$MAYFLY_BIN" SAN="${#san[@]}" >"$T/install.log" 2>&1 ||
    { cat "$T/install.log"; die "make install failed"; }
P="$D$PREFIX"
for f in bin/mayfly-ca bin/mayfly-agent lib/libmayfly.a lib/libmayfly.so lib/libmayfly.so.0 \
    lib/pkgconfig/mayfly.pc share/man/man8/mayfly-ca.8 share/man/man8/mayfly-agent.8 \
    lib/systemd/system/mayfly-ca.service lib/systemd/system/mayfly-agent.service \
    share/mayfly/examples/mayfly-ca.conf share/mayfly/examples/mayfly-agent.conf \
    include/mayfly/api/workload/mf_workload.h include/mayfly/api/core/mf_err.h; do
    [ -e "$P/$f" ] || die "not installed: $f"
done
grep -q "ExecStart=$PREFIX/bin/mayfly-ca" "$P/lib/systemd/system/mayfly-ca.service" ||
    die "the unit does not point at $PREFIX/bin"
# internal headers stay out
for f in api/pki/mf_x509_int.h api/net/mf_http.h api/core/mf_json.h api/internal/mf_httpd.h; do
    [ ! -e "$P/include/mayfly/$f" ] || die "internal header installed: $f"
done
soname=$(readelf -d "$P/lib/libmayfly.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libmayfly.so.0 ] || die "soname is '$soname'"
# only what the public headers declare is exported
nm -D --defined-only "$P/lib/libmayfly.so" | awk '$2 == "T" {print $3}' | sed 's/@.*//' |
    sort >"$T/exported"
n=$(wc -l <"$T/exported")
[ "$n" -gt 50 ] || die "only $n functions exported"
grep -E '^mf_(der|httpd|metrics|selector|http_)' "$T/exported" &&
    die "internal functions exported"
grep -qx mf_workload_fetch_x509 "$T/exported" || die "mf_workload_fetch_x509 not exported"
echo "measured: libmayfly.so exports $n functions"
# the daemons carry no path of the build machine; on the SP build of
# wolfSSL (the default) they run on the private copy installed beside them
for b in mayfly-ca mayfly-agent; do
    rp=$(readelf -d "$P/bin/$b" | sed -n 's/.*R.*PATH.*\[\(.*\)\]/\1/p')
    case "$rp" in *"$ROOT"* | *"$HOME"* | *.cache*) die "$b: RUNPATH points into the build: $rp" ;; esac
done
# (ldd's output is read whole: grep -q would end the pipe early)
built=$(ldd "$MAYFLY_BIN/mayfly-ca")
if [[ "$built" == *wolfssl-sp*/libwolfssl.so.35* ]]; then
    [ -f "$P/lib/mayfly/libwolfssl.so.35" ] || die "the private libwolfssl is not installed"
    inst=$(ldd "$P/bin/mayfly-ca")
    [[ "$inst" == *"=> $P/bin/../lib/mayfly/libwolfssl.so.35"* ]] ||
        die "the installed mayfly-ca does not load $P/lib/mayfly/libwolfssl.so.35: $inst"
    "$P/bin/mayfly-ca" --version >/dev/null || die "the installed mayfly-ca does not run"
    "$P/bin/mayfly-agent" --version >/dev/null || die "the installed mayfly-agent does not run"
    echo "measured: installed daemons load $P/lib/mayfly/libwolfssl.so.35"
fi
# the man page is the --help text
grep -q 'mayfly-agent run' "$P/share/man/man8/mayfly-agent.8" || die "man page without usage"

# a workload built against the installed library alone
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
flags=$(pkg-config --define-prefix --cflags --libs mayfly) || die "pkg-config mayfly"
cc -std=c11 -Wall -Werror "${san[@]}" -o "$T/hello" "$ROOT/tests/install/hello_workload.c" \
    $flags || die "building against the installed library failed"
readelf -d "$T/hello" | grep -q 'libmayfly.so.0' || die "hello is not linked to libmayfly.so.0"

start_ca a "$T/ca"
AG=spiffe://example.org/mayfly/agent/n1
add_entry a spiffe://example.org/hello $AG unix:uid:0 >/dev/null
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $AG)"
out=$(SPIFFE_ENDPOINT_SOCKET="unix://$AGENT_SOCK_n1" LD_LIBRARY_PATH="$P/lib" \
    ASAN_OPTIONS=detect_leaks=1 "$T/hello") || die "the installed workload failed: $out"
[ "$out" = "spiffe_id=spiffe://example.org/hello bundles=1" ] || die "unexpected: $out"
echo "install: ok ($out)"
