#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# scripts/build-wolfssl-sp.sh adds deb-src entries when the machine has
# none. It names no mirror: it copies the URIs, suites, components and key
# of the machine's own `deb` entries. Checked here with
# `--print-deb-src ROOTDIR` on sample apt configurations in a temp dir
# (nothing is built, apt is not run):
#   1. one-line format (sources.list and sources.list.d/*.list): options in
#      [ ] (signed-by, trusted kept, arch dropped), a flat repository, and
#      comments, commented-out entries and deb-src lines skipped;
#   2. deb822 (*.sources): several URIs and suites, comment lines inside a
#      stanza, an inline multi-line Signed-By key copied whole, and
#      stanzas with Enabled: no or Types: deb-src only skipped;
#   3. no `deb` entry at all (empty, only deb-src, only disabled): refused
#      with exit status 1 and a message saying why, nothing printed;
#   4. --prefix: WOLFSSL_SP_PREFIX when set, else a directory of the user's
#      cache named after the installed Debian version of libwolfssl-dev;
#   5. the same for scripts/build-mhd-lite.sh (the agent's libmicrohttpd,
#      whose deb-src handling is the same code, scripts/lib/debsrc.sh):
#      MHD_LITE_PREFIX when set, else the cache named after the installed
#      libmicrohttpd-dev and the script's BUILD_REV; anything else refused.
# The host names are reserved example names (RFC 2606).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
make_tmp

# A finished build in a private prefix: were --print-deb-src not
# understood, the script would stop at "already built", never building.
export WOLFSSL_SP_PREFIX=$T/prefix
mkdir -p "$T/prefix/lib" "$T/prefix/include/wolfssl"
touch "$T/prefix/lib/libwolfssl.so.35" "$T/prefix/include/wolfssl/options.h" \
    "$T/prefix/.mayfly-built"

print() { scripts/build-wolfssl-sp.sh --print-deb-src "$1"; }

# expect ROOT FILE: the output for ROOT is FILE's text exactly
expect() {
    local got
    got=$(print "$1" 2>"$T/err") || die "--print-deb-src $1 failed: $(cat "$T/err")"
    if [ "$got" != "$(cat "$2")" ]; then
        diff -u "$2" <(printf '%s\n' "$got") >&2 || true
        die "--print-deb-src $1: unexpected output (diff above)"
    fi
}

# 1. one-line format
r=$T/oneline
mkdir -p "$r/etc/apt/sources.list.d"
cat >"$r/etc/apt/sources.list" <<'EOF'
# the main archive
deb http://mirror.example/debian stable main contrib
deb-src http://mirror.example/debian stable main
#deb http://old.example/debian oldstable main
  deb [arch=amd64 signed-by=/usr/share/keyrings/a.gpg] http://a.example/debian stable-updates main # tail

EOF
cat >"$r/etc/apt/sources.list.d/extra.list" <<'EOF'
deb [ trusted=yes ] http://flat.example/repo ./
EOF
# apt reads neither of these
echo 'deb http://ignored.example/debian stable main' >"$r/etc/apt/sources.list.d/x.list.disabled"
echo 'deb http://ignored.example/debian stable main' >"$r/etc/apt/sources.list.d/x.save"
cat >"$T/want1" <<'EOF'
Types: deb-src
URIs: http://mirror.example/debian
Suites: stable
Components: main contrib

Types: deb-src
URIs: http://a.example/debian
Suites: stable-updates
Components: main
Signed-By: /usr/share/keyrings/a.gpg

Types: deb-src
URIs: http://flat.example/repo
Suites: ./
Trusted: yes
EOF
expect "$r" "$T/want1"

# 2. deb822, the format of a fresh Debian 12
r=$T/deb822
mkdir -p "$r/etc/apt/sources.list.d"
cat >"$r/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
# a comment inside the stanza
URIs: http://mirror.example/debian http://mirror2.example/debian
Suites: bookworm bookworm-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg


Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no
EOF
cat >"$r/etc/apt/sources.list.d/vendor.sources" <<'EOF'
types: deb deb-src
uris: http://vendor.example/apt
suites: stable
components: main
signed-by:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 AAAAB3NzaC1yc2EAAAADAQABAAABAQ
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb-src
URIs: http://srconly.example/apt
Suites: stable
Components: main
EOF
cat >"$T/want2" <<'EOF'
Types: deb-src
URIs: http://mirror.example/debian http://mirror2.example/debian
Suites: bookworm bookworm-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://vendor.example/apt
Suites: stable
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 AAAAB3NzaC1yc2EAAAADAQABAAABAQ
 -----END PGP PUBLIC KEY BLOCK-----
EOF
expect "$r" "$T/want2"

# 3. nothing to copy: refused, and said why
refused() {
    local rc=0 out
    out=$(print "$1" 2>"$T/err") || rc=$?
    [ "$rc" = 1 ] || die "--print-deb-src $1: exit $rc, want 1 (output: $out)"
    [ -z "$out" ] || die "--print-deb-src $1: printed something while refusing: $out"
    grep -q "no enabled 'deb' entry" "$T/err" ||
        die "--print-deb-src $1: no reason given: $(cat "$T/err")"
}
r=$T/none
mkdir -p "$r"
refused "$r"
mkdir -p "$r/etc/apt/sources.list.d"
refused "$r"
printf '# nothing\ndeb-src http://mirror.example/debian stable main\n' >"$r/etc/apt/sources.list"
printf 'Types: deb\nURIs: http://m.example/d\nSuites: s\nComponents: main\nEnabled: no\n' \
    >"$r/etc/apt/sources.list.d/off.sources"
refused "$r"

# prefix_ok SCRIPT ENVVAR NAME PKG: SCRIPT --prefix follows ENVVAR when set,
# else names the cache after PKG's installed version and SCRIPT's BUILD_REV,
# without creating anything
prefix_ok() {
    local script=$1 var=$2 name=$3 pkg=$4 ver rev want got
    [ "$(scripts/"$script" --prefix)" = "${!var}" ] || die "$script --prefix ignores $var"
    ver=$(dpkg-query -W -f='${Version}' "$pkg")
    rev=$(sed -n 's/^BUILD_REV=\([0-9]*\)$/\1/p' "scripts/$script")
    [ -n "$rev" ] || die "no BUILD_REV in scripts/$script"
    want="$T/cache/mayfly/$name-${ver//[^A-Za-z0-9.+-]/_}-r$rev"
    got=$(env -u "$var" XDG_CACHE_HOME="$T/cache" "scripts/$script" --prefix)
    [ "$got" = "$want" ] || die "$script --prefix: got $got, want $want"
    [ ! -e "$T/cache/mayfly" ] || die "$script --prefix created $T/cache/mayfly"
}

# 4. where the build lives
prefix_ok build-wolfssl-sp.sh WOLFSSL_SP_PREFIX wolfssl-sp libwolfssl-dev

# 5. where the agent's libmicrohttpd lives (a finished build again, so
# that an argument not understood cannot start one)
export MHD_LITE_PREFIX=$T/mhd
mkdir -p "$T/mhd/lib" "$T/mhd/include"
touch "$T/mhd/lib/libmicrohttpd.a" "$T/mhd/include/microhttpd.h" "$T/mhd/.mayfly-built"
prefix_ok build-mhd-lite.sh MHD_LITE_PREFIX mhd-lite libmicrohttpd-dev
rc=0
scripts/build-mhd-lite.sh --bogus >"$T/out" 2>&1 || rc=$?
if [ "$rc" != 2 ] || ! grep -q usage "$T/out"; then
    die "mhd-lite --bogus: exit $rc, want 2 and the usage: $(cat "$T/out")"
fi

echo "ok: deb-src derived from one-line and deb822 entries, refused without any; prefix per version and option revision (wolfSSL SP and the agent's libmicrohttpd)"
