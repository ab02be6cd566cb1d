#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the libmicrohttpd that mayfly-agent links: a static library from
# Debian's own source package of the installed libmicrohttpd-dev version
# (the same version, with Debian's patches and compiler hardening flags),
# configured without HTTPS. The agent serves plain HTTP only, on its Unix
# socket and its metrics port; Debian's libmicrohttpd.so.12 is built with
# GnuTLS and makes every process that loads it load GnuTLS, p11-kit,
# nettle, hogweed, GMP, libtasn1, libidn2, libunistring and libffi too,
# about 2.3 MiB resident in an idle agent. mayfly-ca serves HTTPS and keeps
# Debian's shared library. The Makefile's MHD=lite (the default) links the
# agent against this build; `make MHD=system` links Debian's instead.
#
# It installs into a private prefix, nothing in /usr is touched:
#   ${XDG_CACHE_HOME:-~/.cache}/mayfly/mhd-lite-<Debian version>-r<BUILD_REV>
# (MHD_LITE_PREFIX overrides it): lib/libmicrohttpd.a, include/microhttpd.h
# and nothing else. The prefix is named after the version of the installed
# libmicrohttpd-dev and the revision of this script's options, so a clean
# clone reuses a finished build, and a new Debian version (a security
# update) or a change of options here gets a build of its own. The header
# is the one Debian installs, byte for byte (checked below), so mayfly
# compiles against /usr/include/microhttpd.h either way.
#
#   scripts/build-mhd-lite.sh            build (idempotent: a finished build
#                                        is reused at once)
#   scripts/build-mhd-lite.sh --prefix   print the prefix, build nothing
#
# Needs root for apt-get when deb-src entries or build tools are missing
# (the same handling as scripts/build-wolfssl-sp.sh: scripts/lib/debsrc.sh).
set -euo pipefail

DEBSRC_TAG=mhd-lite
# shellcheck source=scripts/lib/debsrc.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/debsrc.sh"

# The revision of the options below: bump it when LITE_FLAGS change, so
# that every checkout builds the library again.
BUILD_REV=1

# deb_version: the version of Debian's libmicrohttpd this build follows
deb_version() {
    dpkg-query -W -f='${Version}' libmicrohttpd-dev 2>/dev/null || true
}

# default_prefix: where the build for the installed Debian version lives
default_prefix() {
    cache_prefix mhd-lite "$(deb_version)" "$BUILD_REV" libmicrohttpd-dev
}

if [ "${1:-}" = "--prefix" ]; then
    [ "$#" -eq 1 ] || { echo "usage: $0 --prefix" >&2; exit 2; }
    if [ -n "${MHD_LITE_PREFIX:-}" ]; then echo "$MHD_LITE_PREFIX"; else default_prefix; fi
    exit
fi
[ "$#" -eq 0 ] || { echo "usage: $0 [--prefix]" >&2; exit 2; }

PREFIX=${MHD_LITE_PREFIX:-$(default_prefix)}
WORK=${MHD_LITE_WORK:-$PREFIX-src}
VERSION=$(deb_version)

built() {
    [ -f "$PREFIX/lib/libmicrohttpd.a" ] && [ -f "$PREFIX/include/microhttpd.h" ] &&
        [ -f "$PREFIX/.mayfly-built" ]
}
build_once "$PREFIX" built

ensure_deb_src
ensure_packages dpkg-dev build-essential

# The source package and version the installed -dev package was built from
# (a binary-only rebuild carries a version of its own).
src_pkg=$(dpkg-query -W -f='${source:Package}' libmicrohttpd-dev)
src_ver=$(dpkg-query -W -f='${source:Version}' libmicrohttpd-dev)

# a half-finished build from before is started again from the source
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
echo "mhd-lite: apt-get source $src_pkg=$src_ver"
apt-get source -qq "$src_pkg=$src_ver" >/dev/null
src=$(find . -maxdepth 1 -type d -name "$src_pkg-*" | head -1)
[ -n "$src" ] || { echo "mhd-lite: no source tree" >&2; exit 1; }
cd "$src"

# What the agent needs is HTTP/1.1 with threads, poll and an inter-thread
# channel (the defaults, as in Debian's build). Left out:
#   --disable-https --without-gnutls  the point: no GnuTLS (nor libgcrypt)
#   --disable-curl --disable-doc --disable-examples  test programs that link
#       libcurl, the manual and the examples: nothing the library holds
#   --disable-nls                     no message catalogues
#   --disable-postprocessor --disable-bauth --disable-dauth
#   --disable-httpupgrade             form parsing, Basic and Digest
#       authentication and protocol upgrades: the agent uses none of them,
#       and without them that code cannot be reached by the local processes
#       that talk to its socket. A call to one of them would fail to link.
# --enable-static --disable-shared --with-pic: one archive, position-
# independent, linked into the agent (a PIE).
LITE_FLAGS="--disable-https --without-gnutls --enable-static --disable-shared --with-pic
    --with-threads=posix --disable-curl --disable-doc --disable-examples --disable-nls
    --disable-postprocessor --disable-bauth --disable-dauth --disable-httpupgrade"
LITE_FLAGS=$(printf '%s' "$LITE_FLAGS" | tr -s ' \n' '  ')

# The compiler flags dpkg-buildpackage would use (debian/rules asks for
# hardening=+all: the library parses untrusted input).
bf() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
echo "mhd-lite: configure $LITE_FLAGS"
# shellcheck disable=SC2086
CFLAGS="$(bf CFLAGS)" CPPFLAGS="$(bf CPPFLAGS)" LDFLAGS="$(bf LDFLAGS)" \
    ./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" $LITE_FLAGS >configure.out 2>&1 ||
    { tail -30 configure.out >&2; exit 1; }
if grep -q '^#define HTTPS_SUPPORT' MHD_config.h; then
    echo "mhd-lite: configure enabled HTTPS anyway" >&2
    exit 1
fi
# the library alone: not the tests, the manual or the examples
make -C src/microhttpd -j"$(nproc)" >make.out 2>&1 || { tail -30 make.out >&2; exit 1; }

# The archive must not name GnuTLS or libgcrypt, not even as an undefined
# symbol, and must hold the entry points the agent calls.
lib=src/microhttpd/.libs/libmicrohttpd.a
syms=$(nm "$lib" 2>/dev/null)
members=$(ar t "$lib")
case "$syms" in
*gnutls_* | *gcry_*)
    echo "mhd-lite: $lib references GnuTLS or libgcrypt:" >&2
    nm -A "$lib" 2>/dev/null | grep -E 'gnutls_|gcry_' | head -5 >&2
    exit 1
    ;;
esac
case "$members" in
*https*)
    echo "mhd-lite: $lib holds the HTTPS code: $members" >&2
    exit 1
    ;;
esac
for f in MHD_start_daemon MHD_add_connection MHD_queue_response; do
    grep -q " T $f\$" <<<"$syms" || { echo "mhd-lite: $lib does not define $f" >&2; exit 1; }
done
# mayfly compiles against Debian's header; it must be this version's
cmp -s src/include/microhttpd.h /usr/include/microhttpd.h || {
    echo "mhd-lite: the source's microhttpd.h differs from /usr/include/microhttpd.h" \
        "(libmicrohttpd-dev $VERSION); build with make MHD=system" >&2
    exit 1
}

install -d "$PREFIX/lib" "$PREFIX/include"
install -m 0644 "$lib" "$PREFIX/lib/libmicrohttpd.a"
install -m 0644 src/include/microhttpd.h "$PREFIX/include/microhttpd.h"
echo "$VERSION r$BUILD_REV $LITE_FLAGS" >"$PREFIX/.mayfly-built"
# the sources and objects are not needed any more
cd "$PREFIX"
rm -rf "$WORK"
echo "mhd-lite: installed in $PREFIX"
