#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The wolfSSL selection of the Makefile, read from `make -n` into a build
# directory of the test's own (nothing is built, the tree's build is left
# alone):
#   1. the default (WOLFSSL=sp) compiles against the SP build's headers,
#      links the daemons with its directory in their RUNPATH, and the copies
#      made for `make install` with $ORIGIN/../lib/mayfly only;
#   2. WOLFSSL=system names the SP build nowhere (Debian's libwolfssl);
#   3. switching the selection recompiles every object (the stamp changes);
#   4. any other value is refused with a message naming both choices.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
make_tmp
sp=$(scripts/build-wolfssl-sp.sh --prefix)
[ -f "$sp/.mayfly-built" ] || skip "no SP build of wolfSSL in $sp (scripts/install-deps.sh)"

# plan SELECTION TARGET...: what make would run, with the build under $T
plan() {
    local sel=$1
    shift
    make -n WOLFSSL="$sel" BUILD="$T/b" BINDIR="$T/bin" "$@" 2>&1
}
link_of() { grep -- "-o $1 " "$T/plan" || die "no link line for $1"; }

# 1. the default
plan sp "$T/bin/mayfly-ca" "$T/b/inst/mayfly-ca" >"$T/plan"
grep -q -- "-I$sp/include" "$T/plan" || die "the default does not compile against $sp/include"
link_of "$T/bin/mayfly-ca" | grep -qF -- "-Wl,-rpath,$sp/lib" ||
    die "bin/mayfly-ca is not linked with RUNPATH $sp/lib"
inst=$(link_of "$T/b/inst/mayfly-ca")
grep -qF -- "-Wl,-rpath,'\$ORIGIN/../lib/mayfly'" <<<"$inst" ||
    die "the installed mayfly-ca is not linked with RUNPATH \$ORIGIN/../lib/mayfly"
! grep -qF -- "-rpath,$sp" <<<"$inst" || die "the installed mayfly-ca names the build's wolfSSL"
[ "$(cat "$T/b/wolfssl.sel")" = "sp $sp/lib" ] || die "stamp: $(cat "$T/b/wolfssl.sel")"

# 2. and 3. Debian's libwolfssl, every object compiled again
mkdir -p "$T/b/ca"
touch "$T/b/ca/ca_main.o"
plan system "$T/bin/mayfly-ca" "$T/b/inst/mayfly-ca" >"$T/plan"
! grep -q 'wolfssl-sp' "$T/plan" || die "WOLFSSL=system still names the SP build: $(grep -m1 wolfssl-sp "$T/plan")"
! grep -q -- '-rpath' "$T/plan" || die "WOLFSSL=system links with a RUNPATH"
[ "$(cat "$T/b/wolfssl.sel")" = "system " ] || die "stamp not rewritten: $(cat "$T/b/wolfssl.sel")"
grep -q -- "-c ca/ca_main.c -o $T/b/ca/ca_main.o" "$T/plan" ||
    die "ca_main.o is not compiled again after the switch"

# 4. a typo
out=$(plan bogus "$T/bin/mayfly-ca") && die "WOLFSSL=bogus was accepted"
grep -q "WOLFSSL must be sp (the default) or system" <<<"$out" || die "WOLFSSL=bogus: $out"

echo "ok: SP by default (RUNPATH in bin/, \$ORIGIN for install), WOLFSSL=system, rebuild on switch"
