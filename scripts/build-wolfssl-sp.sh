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
#   ${XDG_CACHE_HOME:-~/.cache}/mayfly/wolfssl-sp-<Debian version>
# (WOLFSSL_SP_PREFIX overrides it). The prefix is named after the version of
# the installed libwolfssl-dev, so a clean clone reuses a finished build, and
# a new Debian version (a security update) gets a build of its own. The
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
# components and key, so no mirror is named here).
#
#   scripts/build-wolfssl-sp.sh --print-deb-src ROOTDIR
#       prints the deb-src entries it would write for the apt configuration
#       under ROOTDIR (ROOTDIR/etc/apt/...), and builds nothing
set -euo pipefail

# print_deb_src ROOTDIR: a deb822 deb-src stanza for each enabled `deb`
# entry in ROOTDIR/etc/apt/sources.list, sources.list.d/*.list (one-line
# format) and sources.list.d/*.sources (deb822), in the order apt reads
# them. Fails, saying so, when there is no `deb` entry to copy.
print_deb_src() {
    local etc=${1%/}/etc/apt files=() f out
    [ -f "$etc/sources.list" ] && files+=("$etc/sources.list")
    for f in "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    out=
    if [ "${#files[@]}" -gt 0 ]; then
        out=$(awk '
            function lc(s) { return tolower(s) }
            function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
            function has_word(list, w,    n, a, i) {
                n = split(list, a, /[ \t]+/)
                for (i = 1; i <= n; i++) if (a[i] == w) return 1
                return 0
            }
            function emit(uris, suites, comps, signed, trusted) {
                if (nout++) print ""
                print "Types: deb-src"
                print "URIs:" uris
                print "Suites:" suites
                if (trim(comps) != "") print "Components:" comps
                if (signed != "") print "Signed-By:" signed
                if (trusted != "") print "Trusted:" trusted
            }
            # deb822: fields until a blank line; continuation lines
            # (leading blank) belong to the field before, so an inline
            # Signed-By key is copied whole; "#" lines are comments
            function flush() {
                if (has_word(trim(f["types"]), "deb") && lc(trim(f["enabled"])) != "no" &&
                    trim(f["uris"]) != "" && trim(f["suites"]) != "")
                    emit(f["uris"], f["suites"], f["components"], f["signed-by"], f["trusted"])
                split("", f)
                key = ""
            }
            FNR == 1 { flush() }
            FILENAME ~ /\.sources$/ {
                if ($0 ~ /^#/) next
                if ($0 ~ /^[ \t]*$/) { flush(); next }
                if ($0 ~ /^[ \t]/) { if (key != "") f[key] = f[key] "\n" $0; next }
                i = index($0, ":")
                if (i == 0) next
                key = lc(substr($0, 1, i - 1))
                f[key] = substr($0, i + 1)
                next
            }
            # one-line: deb [ opt=val ... ] URI SUITE [COMPONENT...]
            {
                line = $0
                sub(/#.*/, "", line)
                n = split(line, w, /[ \t]+/)
                j = 1
                if (w[j] == "") j++
                if (w[j] != "deb") next
                j++
                opts = ""
                if (substr(w[j], 1, 1) == "[") {
                    while (j <= n) {
                        opts = opts " " w[j]
                        if (w[j] ~ /\]$/) { j++; break }
                        j++
                    }
                    gsub(/[][]/, "", opts)
                }
                if (j + 1 > n) next
                uri = w[j]; suite = w[j + 1]; comps = ""
                for (k = j + 2; k <= n; k++) if (w[k] != "") comps = comps " " w[k]
                signed = ""; trusted = ""
                m = split(trim(opts), o, /[ \t]+/)
                for (k = 1; k <= m; k++) {
                    if (o[k] ~ /^signed-by=/) signed = " " substr(o[k], 11)
                    if (o[k] ~ /^trusted=/) trusted = " " substr(o[k], 9)
                }
                emit(" " uri, " " suite, comps, signed, trusted)
            }
            END { flush() }
        ' "${files[@]}")
    fi
    if [ -z "$out" ]; then
        echo "wolfssl-sp: no enabled 'deb' entry in $etc/sources.list or" \
            "$etc/sources.list.d/*.list|*.sources to derive deb-src lines from;" \
            "add deb-src lines for the suite you use by hand" >&2
        return 1
    fi
    printf '%s\n' "$out"
}

if [ "${1:-}" = "--print-deb-src" ]; then
    [ "$#" -eq 2 ] || { echo "usage: $0 --print-deb-src ROOTDIR" >&2; exit 2; }
    print_deb_src "$2"
    exit
fi

# deb_version: the version of Debian's wolfSSL this build follows
deb_version() {
    dpkg-query -W -f='${Version}' libwolfssl-dev 2>/dev/null ||
        dpkg-query -W -f='${Version}' libwolfssl35 2>/dev/null || true
}

# default_prefix: where the build for the installed Debian version lives
default_prefix() {
    local v
    v=$(deb_version)
    if [ -z "$v" ]; then
        echo "wolfssl-sp: libwolfssl-dev is not installed (run scripts/install-deps.sh)" >&2
        return 1
    fi
    # a version may hold ':' (epoch) and '+', keep the name plain
    printf '%s/mayfly/wolfssl-sp-%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}" "${v//[^A-Za-z0-9.+-]/_}"
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
if built; then
    echo "wolfssl-sp: already built in $PREFIX"
    exit 0
fi
# one build at a time per prefix (two checkouts may ask at once): the
# second waits, then finds the first one's build
mkdir -p "$(dirname "$PREFIX")"
exec 9>"$PREFIX.lock"
flock 9
if built; then
    echo "wolfssl-sp: already built in $PREFIX"
    exit 0
fi
rm -rf "$PREFIX"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# deb-src for the suites the machine already uses
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "wolfssl-sp: adding deb-src lines"
    deb_src=$(print_deb_src /)
    printf '%s\n' "$deb_src" | as_root tee /etc/apt/sources.list.d/mayfly-deb-src.sources >/dev/null
    as_root apt-get update -qq
fi

need=()
for p in dpkg-dev build-essential autoconf automake libtool; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    as_root apt-get install -y -qq "${need[@]}" >/dev/null
fi

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
echo "$VERSION $deb_flags $SP_FLAGS" >"$PREFIX/.mayfly-built"
# the sources and objects are not needed any more
cd "$PREFIX"
rm -rf "$WORK"
echo "wolfssl-sp: installed in $PREFIX"
