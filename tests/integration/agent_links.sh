#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# mayfly-agent links only what it uses: no GnuTLS, no SQLite. Debian's
# libmicrohttpd.so.12 is built with HTTPS and loads GnuTLS and its stack,
# so by default (MHD=lite) the agent links the static, HTTPS-less
# libmicrohttpd of scripts/build-mhd-lite.sh instead. Checked here:
#   1. the Makefile, read from `make -n` into a build directory of the
#      test's own (the tree's build is left alone): with MHD=lite both links
#      of the agent (bin/ and the copy for `make install`) name the archive
#      and not -lmicrohttpd, while mayfly-ca keeps -lmicrohttpd; the agent
#      depends on the selection's stamp; MHD=system links -lmicrohttpd and
#      rewrites the stamp; a missing build and a typo are refused, naming
#      the way out;
#   2. the built agent: no NEEDED libmicrohttpd (bin/ and the install
#      copy), libmicrohttpd inside it, and none of libgnutls, libsqlite3,
#      libp11-kit, libnettle, libhogweed, libgmp, libtasn1 or libmicrohttpd
#      anywhere in the tree of libraries ldd resolves. The same ldd check
#      on mayfly-ca, which serves HTTPS, must find GnuTLS and SQLite, so the
#      check is seen to catch them when they are there.
#   3. with the SP build of wolfSSL (WOLFSSL=sp, the default) the agent
#      links that build's static archive with --gc-sections: both agent
#      links name the archive and not -lwolfssl, the CA keeps -lwolfssl;
#      the built agent needs no libwolfssl and holds wolfSSL's code, and
#      the CA's ldd tree has libwolfssl (the control). Under
#      WOLFSSL=system the agent must need Debian's libwolfssl instead.
# A tree built with `make MHD=system` links Debian's libmicrohttpd, and so
# GnuTLS, by choice: the test is skipped there, never passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
make_tmp

AGENT=$MAYFLY_BIN/mayfly-agent
INST_AGENT=$MAYFLY_BUILD/inst/mayfly-agent
STAMP=$MAYFLY_BUILD/mhd.sel
[ -x "$AGENT" ] || die "no $AGENT (run make)"
[ -f "$STAMP" ] || die "no $STAMP: the Makefile records its libmicrohttpd selection there"
read -r sel archive <"$STAMP" || true
case "$sel" in
lite) ;;
system) skip "built with MHD=system: the agent loads Debian's libmicrohttpd, and GnuTLS with it" ;;
*) die "$STAMP holds '$sel $archive'" ;;
esac
[ -f "$archive" ] || die "$STAMP names $archive, which does not exist"
[ "$STAMP" -nt "$AGENT" ] && die "$AGENT is older than the selection in $STAMP (run make)"

# ---- 1. the Makefile ---------------------------------------------------------

# the tree's own wolfSSL selection, so that make accepts the plan
read -r wsel wlib <"$MAYFLY_BUILD/wolfssl.sel" || true
wolf=(WOLFSSL="$wsel")
[ "$wsel" = sp ] && wolf+=(WOLFSSL_SP_PREFIX="${wlib%/lib}")
lite_prefix=${archive%/lib/libmicrohttpd.a}

# plan SELECTION [MAKE ARGS...]: what make would run, with the build under $T
plan() {
    local sel=$1
    shift
    make -n "${wolf[@]}" MHD="$sel" MHD_LITE_PREFIX="$lite_prefix" BUILD="$T/b" \
        BINDIR="$T/bin" "$@" 2>&1
}
link_of() { grep -- "-o $1 " "$T/plan" || die "no link line for $1"; }
targets=("$T/bin/mayfly-agent" "$T/b/inst/mayfly-agent" "$T/bin/mayfly-ca")

plan lite "${targets[@]}" >"$T/plan" || die "make -n failed: $(tail -3 "$T/plan")"
for a in "$T/bin/mayfly-agent" "$T/b/inst/mayfly-agent"; do
    l=$(link_of "$a")
    [[ "$l" == *" $archive "* ]] || die "MHD=lite: $a is not linked with $archive: $l"
    [[ "$l" != *-lmicrohttpd* ]] || die "MHD=lite: $a is linked with -lmicrohttpd: $l"
done
[[ "$(link_of "$T/bin/mayfly-ca")" == *-lmicrohttpd* ]] ||
    die "mayfly-ca is no longer linked with Debian's libmicrohttpd"
[ "$(cat "$T/b/mhd.sel")" = "lite $archive" ] || die "stamp: $(cat "$T/b/mhd.sel")"
# the link depends on the stamp, so a switch links the agent again
deps=$(plan lite -p "$T/bin/mayfly-agent" | grep "^$T/bin/mayfly-agent:") ||
    die "no rule for mayfly-agent in make's database"
[[ "$deps" == *" $T/b/mhd.sel"* ]] || die "mayfly-agent does not depend on the stamp: $deps"

plan system "${targets[@]}" >"$T/plan" || die "make -n MHD=system failed: $(tail -3 "$T/plan")"
l=$(link_of "$T/bin/mayfly-agent")
[[ "$l" == *-lmicrohttpd* && "$l" != *"$archive"* ]] ||
    die "MHD=system: the agent is not linked with Debian's libmicrohttpd: $l"
[ "$(cat "$T/b/mhd.sel")" = "system " ] || die "stamp not rewritten: $(cat "$T/b/mhd.sel")"

# refused: a typo, and a missing build (which names both ways out)
out=$(plan bogus "$T/bin/mayfly-agent") && die "MHD=bogus was accepted"
[[ "$out" == *"MHD must be lite (the default) or system"* ]] || die "MHD=bogus: $out"
out=$(make -n "${wolf[@]}" MHD=lite MHD_LITE_PREFIX="$T/none" BUILD="$T/b" BINDIR="$T/bin" \
    "$T/bin/mayfly-agent" 2>&1) && die "a missing lite build was accepted"
[[ "$out" == *"scripts/install-deps.sh"*"make MHD=system"* ]] || die "missing lite build: $out"

# ---- 2. the built agent ------------------------------------------------------

# needed FILE: the sonames FILE names itself
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
for a in "$AGENT" "$INST_AGENT"; do
    [ -f "$a" ] || die "no $a (run make)"
    n=$(needed "$a")
    [ -n "$n" ] || die "readelf found no NEEDED entry in $a"
    case "$n" in *libmicrohttpd*) die "$a needs Debian's libmicrohttpd: $(tr '\n' ' ' <<<"$n")" ;; esac
done
# libmicrohttpd is inside the agent, and without HTTPS
syms=$(nm "$AGENT" 2>/dev/null) || die "nm $AGENT failed (stripped?)"
grep -q ' T MHD_start_daemon$' <<<"$syms" || die "$AGENT does not hold MHD_start_daemon"
case "$syms" in *gnutls_*) die "$AGENT holds GnuTLS symbols" ;; esac

FORBIDDEN=(libgnutls libsqlite3 libp11-kit libnettle libhogweed libgmp libtasn1)

# libs FILE: every library ldd resolves for FILE, directly or through
# another (read whole: grep -q would end the pipe early)
libs() {
    local out
    out=$(ldd "$1") || die "ldd $1 failed"
    case "$out" in *"not found"*) die "ldd $1: unresolved libraries, the tree is incomplete: $out" ;; esac
    [[ "$out" == *libc.so.6* ]] || die "ldd $1 lists no libc: $out"
    awk '{ print $1 }' <<<"$out"
}
# banned FILE: the forbidden libraries FILE loads, one a line
banned() {
    local l f
    for l in $(libs "$1"); do
        for f in "${FORBIDDEN[@]}" "${@:2}"; do
            case "$l" in "$f".so*) echo "$l" ;; esac
        done
    done
}

# the control: the CA links GnuTLS and SQLite, and the check sees them
ca=$(banned "$CA_BIN")
[[ "$ca" == *libgnutls.so* && "$ca" == *libsqlite3.so* ]] ||
    die "the check found no GnuTLS and SQLite in mayfly-ca: '$ca'"

bad=$(banned "$AGENT" libmicrohttpd)
[ -z "$bad" ] || die "mayfly-agent loads $(echo "$bad" | tr '\n' ' ')"
all=$(libs "$AGENT")
[[ "$all" == *libjansson.so* && "$all" == *libnghttp2.so* ]] ||
    die "ldd does not list the agent's own libraries: $all"

# ---- 3. wolfSSL ---------------------------------------------------------------

case "$wsel" in
sp)
    warchive=$wlib/libwolfssl.a
    [ -f "$warchive" ] || die "the SP build in $wlib has no static archive (run scripts/install-deps.sh)"
    plan lite "${targets[@]}" >"$T/plan" || die "make -n failed: $(tail -3 "$T/plan")"
    for a in "$T/bin/mayfly-agent" "$T/b/inst/mayfly-agent"; do
        l=$(link_of "$a")
        [[ "$l" == *" $warchive "* && "$l" == *--gc-sections* ]] ||
            die "WOLFSSL=sp: $a is not linked with $warchive and --gc-sections: $l"
        [[ "$l" != *-lwolfssl* ]] || die "WOLFSSL=sp: $a is linked with -lwolfssl: $l"
    done
    [[ "$(link_of "$T/bin/mayfly-ca")" == *-lwolfssl* ]] ||
        die "mayfly-ca is no longer linked with the shared wolfSSL"
    for a in "$AGENT" "$INST_AGENT"; do
        case "$(needed "$a")" in *libwolfssl*) die "$a needs a shared libwolfssl" ;; esac
    done
    grep -q ' T wolfSSL_new$' <<<"$syms" || die "$AGENT does not hold wolfSSL_new"
    grep -q ' T wc_ecc_verify_hash$' <<<"$syms" || die "$AGENT does not hold wc_ecc_verify_hash"
    [[ "$(libs "$CA_BIN")" == *libwolfssl.so* ]] || die "ldd finds no libwolfssl in mayfly-ca"
    [[ "$all" != *libwolfssl* ]] || die "mayfly-agent loads a shared libwolfssl: $all"
    wmsg="wolfSSL linked in from $warchive"
    ;;
system)
    [[ "$(needed "$AGENT")" == *libwolfssl.so* ]] ||
        die "WOLFSSL=system: $AGENT does not need Debian's libwolfssl"
    wmsg="Debian's shared libwolfssl (WOLFSSL=system)"
    ;;
*) die "$MAYFLY_BUILD/wolfssl.sel holds '$wsel $wlib'" ;;
esac

echo "measured: mayfly-agent loads $(echo "$all" | grep -c '\.so') libraries: $(echo "$all" | grep '\.so' | tr '\n' ' ')"
echo "ok: agent links $archive, not -lmicrohttpd (CA does); stamp relinks; no GnuTLS/SQLite/p11-kit/nettle/GMP in its ldd tree; $wmsg"
