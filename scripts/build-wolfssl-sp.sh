#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds wolfSSL from Debian's own source package (the same version, with
# the same Debian patches and configure flags as the installed
# libwolfssl-dev), adding --enable-sp --enable-sp-asm: wolfSSL's
# single-precision P-256 code with x86_64 assembly, and --disable-sakke (see
# below). mayfly builds and links against it by default (the Makefile's
# WOLFSSL=sp; `make WOLFSSL=system` uses Debian's libwolfssl instead).
#
# It installs into a private prefix, nothing in /usr is touched:
#   ${XDG_CACHE_HOME:-~/.cache}/mayfly/wolfssl-sp-<Debian version>-r<BUILD_REV>
# (WOLFSSL_SP_PREFIX overrides it). The prefix is named after the version of
# the installed libwolfssl-dev and the revision of this script's options, so
# a clean clone reuses a finished build, and a new Debian version (a
# security update) or a change of options here gets a build of its own. The
# library keeps Debian's soname and option set (plus SP), so it is
# ABI-compatible with Debian's.
#
#   scripts/build-wolfssl-sp.sh            build (idempotent: a finished
#                                          build is reused at once)
#   scripts/build-wolfssl-sp.sh --prefix   print the prefix, build nothing
#
# Needs root for apt-get (deb-src lines are added to
# /etc/apt/sources.list.d/mayfly-deb-src.sources when missing: one deb-src
# entry for each `deb` entry the machine already has, same URIs, suites,
# components and key, so no mirror is named here; scripts/lib/debsrc.sh,
# shared with scripts/build-mhd-lite.sh).
#
#   scripts/build-wolfssl-sp.sh --print-deb-src ROOTDIR
#       prints the deb-src entries it would write for the apt configuration
#       under ROOTDIR (ROOTDIR/etc/apt/...), and builds nothing
set -euo pipefail

DEBSRC_TAG=wolfssl-sp
# print_deb_src, as_root, ensure_deb_src, ensure_packages
# shellcheck source=scripts/lib/debsrc.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/debsrc.sh"

if [ "${1:-}" = "--print-deb-src" ]; then
    [ "$#" -eq 2 ] || { echo "usage: $0 --print-deb-src ROOTDIR" >&2; exit 2; }
    print_deb_src "$2"
    exit
fi

# The revision of the options below: bump it when SP_FLAGS or SP_CPPFLAGS
# change, so that every checkout builds the library again.
BUILD_REV=4

# deb_version: the version of Debian's wolfSSL this build follows
deb_version() {
    dpkg-query -W -f='${Version}' libwolfssl-dev 2>/dev/null ||
        dpkg-query -W -f='${Version}' libwolfssl35 2>/dev/null || true
}

# default_prefix: where the build for the installed Debian version lives
default_prefix() {
    cache_prefix wolfssl-sp "$(deb_version)" "$BUILD_REV" libwolfssl-dev
}

if [ "${1:-}" = "--prefix" ]; then
    [ "$#" -eq 1 ] || { echo "usage: $0 --prefix" >&2; exit 2; }
    if [ -n "${WOLFSSL_SP_PREFIX:-}" ]; then echo "$WOLFSSL_SP_PREFIX"; else default_prefix; fi
    exit
fi
[ "$#" -eq 0 ] || { echo "usage: $0 [--prefix | --print-deb-src ROOTDIR]" >&2; exit 2; }

PREFIX=${WOLFSSL_SP_PREFIX:-$(default_prefix)}
WORK=${WOLFSSL_SP_WORK:-$PREFIX-src}
VERSION=$(deb_version)

built() {
    [ -f "$PREFIX/lib/libwolfssl.so.35" ] && [ -f "$PREFIX/include/wolfssl/options.h" ] &&
        [ -f "$PREFIX/.mayfly-built" ]
}
build_once "$PREFIX" built

# deb-src for the suites the machine already uses
ensure_deb_src
ensure_packages dpkg-dev build-essential autoconf automake libtool

# a half-finished build from before is started again from the source
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
echo "wolfssl-sp: apt-get source wolfssl${VERSION:+=$VERSION}"
apt-get source -qq "wolfssl${VERSION:+=$VERSION}" >/dev/null
src=$(find . -maxdepth 1 -type d -name 'wolfssl-5.*' | head -1)
[ -n "$src" ] || { echo "wolfssl-sp: no source tree" >&2; exit 1; }
cd "$src"

# Debian's configure flags, read from its debian/rules so that the option
# set (and so the ABI of the structs mayfly's headers see) stays the same.
deb_flags=$(sed -n '/dh_auto_configure/,/^[^\t ]/p' debian/rules |
    grep -o -- '--enable-[A-Za-z0-9_=-]*\|--disable-[A-Za-z0-9_=-]*\|--with-[A-Za-z0-9_=-]*\|C[A-Z]*FLAGS=[^ \\]*' |
    tr '\n' ' ')
# --enable-sp=...: what --enable-sp turns on (SP code for RSA and DH of
# 2048, 3072 and 4096 bits, and for P-256, P-384 and P-521) without P-521,
# which mayfly never uses (its keys are P-256 or P-384): P-521 stays on
# wolfSSL's generic code, and its SP code and thread-local point cache
# (37 KiB a thread) are left out.
# --disable-sakke: --enable-distro turns SAKKE on, and with SP that adds
# sp_cache_1024, a 1 MiB thread-local table (1.35 MiB of static TLS per
# thread in all). glibc carves static TLS out of each thread's stack, so
# every pthread_create with a smaller stack fails: the CA's MHD threads ask
# for 512 KiB and mayfly-ca could not start. mayfly uses no SAKKE/ECCSI.
# --enable-static and -ffunction-sections -fdata-sections (CFLAGS below):
# mayfly-agent links the static archive with --gc-sections and so carries
# only the functions it calls (the Makefile's WOLFSSL_AGENT_LIB).
SP_FLAGS="--enable-sp=2048,3072,4096,ec256,ec384 --enable-sp-asm --disable-sakke --enable-static"
# --enable-intelasm (x86_64 only): AES-GCM with AES-NI and PCLMULQDQ, and
# SHA-256/384/512 with AVX2, each chosen at run time from CPUID with the
# plain C code as fallback. Debian's build has neither, so every mayfly TLS
# client (the agent, ca_client, bench/loadgen) spent most of its CPU in
# table-driven AES and GHASH: 11 us per certificate of a /v1/sign answer
# against 1 us with AES-NI. A CPU without AES-NI or AVX2 runs the C code
# (configure adds only -maes, for the intrinsics of the AES-NI key
# schedule, which run only when CPUID says so). It adds fields to wolfSSL
# structs mayfly never holds by value (wc_Sha512, Poly1305); the ones it
# does hold keep their layout (tests/integration/wolfssl_abi.sh).
case "$(uname -m)" in
x86_64) SP_FLAGS="$SP_FLAGS --enable-intelasm" ;;
esac
# FP_ENTRIES=2: with FP_ECC (Debian's --enable-fpecc) every thread keeps a
# cache of precomputed tables for the last points it multiplied, one array
# per curve (P-256, P-384, and ecc.c's own), all thread-local. With
# wolfSSL's default of 16 (15 in ecc.c) they come to 358 KiB of static TLS,
# which glibc zeroes in every new thread: 360 KiB resident per thread of
# every process linked with the library. The cache evicts the entry used
# least, so two entries keep the table of the key a process verifies over
# and over (its CA's) while the other entry takes the keys seen once (each
# CSR's); the TLS comes to 30 KiB. Signing with the base point uses SP's
# static table and is not affected; FP_ENTRIES sizes only static arrays
# inside the library, never a struct in its headers.
SP_CPPFLAGS="-DFP_ENTRIES=2"

# The compiler flags dpkg-buildpackage would use (debian/rules asks for
# hardening=+all).
bf() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
echo "wolfssl-sp: Debian configure flags: $deb_flags"
[ -f configure ] || ./autogen.sh >/dev/null 2>&1 || autoreconf -fi >/dev/null
# shellcheck disable=SC2086
CFLAGS="$(bf CFLAGS) -ffunction-sections -fdata-sections" CPPFLAGS="$(bf CPPFLAGS) $SP_CPPFLAGS" LDFLAGS="$(bf LDFLAGS)" \
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
echo "$VERSION r$BUILD_REV $deb_flags $SP_FLAGS $SP_CPPFLAGS" >"$PREFIX/.mayfly-built"
# the sources and objects are not needed any more
cd "$PREFIX"
rm -rf "$WORK"
echo "wolfssl-sp: installed in $PREFIX"
