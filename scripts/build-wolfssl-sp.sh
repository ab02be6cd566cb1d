#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds wolfSSL from Debian's own source package (the same 5.5.4 with the
# same Debian patches and configure flags as libwolfssl35), adding
# --enable-sp --enable-sp-asm: wolfSSL's single-precision P-256 code with
# x86_64 assembly, and --disable-sakke (see below). Installs into a private prefix (default build/wolfssl-sp);
# nothing in /usr is touched. The library is ABI-compatible with Debian's
# (same soname, same option set plus SP), so a mayfly built against Debian's
# headers runs on it through LD_LIBRARY_PATH:
#
#   scripts/build-wolfssl-sp.sh
#   LD_LIBRARY_PATH=$PWD/build/wolfssl-sp/lib bin/mayfly-ca run ...
#
# Needs root for apt-get (deb-src lines are added to
# /etc/apt/sources.list.d/mayfly-deb-src.sources when missing).
# Idempotent: a finished build is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREFIX=${WOLFSSL_SP_PREFIX:-$ROOT/build/wolfssl-sp}
WORK=${WOLFSSL_SP_WORK:-$ROOT/build/wolfssl-sp-src}

if [ -f "$PREFIX/lib/libwolfssl.so.35" ] && [ -f "$PREFIX/include/wolfssl/options.h" ] &&
    [ -f "$PREFIX/.mayfly-built" ]; then
    echo "wolfssl-sp: already built in $PREFIX"
    exit 0
fi

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# deb-src for the suites the machine already uses
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "wolfssl-sp: adding deb-src lines"
    as_root tee /etc/apt/sources.list.d/mayfly-deb-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    as_root apt-get update -qq
fi

need=()
for p in dpkg-dev build-essential autoconf automake libtool; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    as_root apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$WORK"
cd "$WORK"
src=$(find . -maxdepth 1 -type d -name 'wolfssl-5.*' | head -1)
if [ -z "$src" ]; then
    echo "wolfssl-sp: apt-get source wolfssl"
    apt-get source -qq wolfssl >/dev/null
    src=$(find . -maxdepth 1 -type d -name 'wolfssl-5.*' | head -1)
fi
[ -n "$src" ] || { echo "wolfssl-sp: no source tree" >&2; exit 1; }
cd "$src"

# Debian's configure flags, read from its debian/rules so that the option
# set (and so the ABI of the structs mayfly's headers see) stays the same.
deb_flags=$(sed -n '/dh_auto_configure/,/^[^\t ]/p' debian/rules |
    grep -o -- '--enable-[A-Za-z0-9_=-]*\|--disable-[A-Za-z0-9_=-]*\|--with-[A-Za-z0-9_=-]*\|C[A-Z]*FLAGS=[^ \\]*' |
    tr '\n' ' ')
# --disable-sakke: --enable-distro turns SAKKE on, and with SP that adds
# sp_cache_1024, a 1 MiB thread-local table (1.35 MiB of static TLS per
# thread in all). glibc carves static TLS out of each thread's stack, so
# every pthread_create with a smaller stack fails: the CA's MHD threads ask
# for 512 KiB and mayfly-ca could not start. mayfly uses no SAKKE/ECCSI;
# without it the TLS is about 215 KiB (the P-256/P-384 point caches).
SP_FLAGS="--enable-sp --enable-sp-asm --disable-sakke"

# The compiler flags dpkg-buildpackage would use (debian/rules asks for
# hardening=+all).
bf() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
echo "wolfssl-sp: Debian configure flags: $deb_flags"
[ -f configure ] || ./autogen.sh >/dev/null 2>&1 || autoreconf -fi >/dev/null
# shellcheck disable=SC2086
CFLAGS="$(bf CFLAGS)" CPPFLAGS="$(bf CPPFLAGS)" LDFLAGS="$(bf LDFLAGS)" \
    ./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" \
    $deb_flags $SP_FLAGS >configure.out 2>&1 ||
    { tail -30 configure.out >&2; exit 1; }
make clean >/dev/null 2>&1 || true
make -j"$(nproc)" >make.out 2>&1 || { tail -30 make.out >&2; exit 1; }
make install >install.out 2>&1 || { tail -30 install.out >&2; exit 1; }
# like debian/libwolfssl-dev.install: the generated options.h is not part
# of upstream's install
install -m 0644 wolfssl/options.h "$PREFIX/include/wolfssl/options.h"
grep -q 'WOLFSSL_SP_X86_64_ASM\|WOLFSSL_HAVE_SP_ECC' "$PREFIX/include/wolfssl/options.h" ||
    echo "wolfssl-sp: warning: SP options not in options.h" >&2
echo "$deb_flags $SP_FLAGS" >"$PREFIX/.mayfly-built"
echo "wolfssl-sp: installed in $PREFIX"
