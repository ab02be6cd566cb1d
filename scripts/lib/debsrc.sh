# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# Helpers shared by the scripts that build a library from Debian's own
# source package of an installed version (build-wolfssl-sp.sh,
# build-mhd-lite.sh). Sourced, never run. The caller sets DEBSRC_TAG, the
# name its messages start with.
#
#   print_deb_src ROOTDIR   the deb-src entries derived from ROOTDIR's apt
#                           configuration (see below)
#   as_root CMD...          CMD as root (sudo unless already root)
#   ensure_deb_src          adds deb-src entries to this machine's apt
#                           configuration when it has none, then updates
#   ensure_packages PKG...  installs whichever of PKG is not installed
#   cache_prefix NAME VERSION REV PKG
#                           where the build of NAME for Debian version
#                           VERSION (of PKG) and option revision REV lives
#   build_once PREFIX BUILT_FN
#                           exits 0 when BUILT_FN says PREFIX holds a
#                           finished build, else takes PREFIX's build lock
#                           (checking again under it) and clears PREFIX
#
# No mirror is named anywhere: the deb-src entries copy the URIs, suites,
# components and key of the machine's own `deb` entries.

: "${DEBSRC_TAG:=deb-src}"

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
        echo "$DEBSRC_TAG: no enabled 'deb' entry in $etc/sources.list or" \
            "$etc/sources.list.d/*.list|*.sources to derive deb-src lines from;" \
            "add deb-src lines for the suite you use by hand" >&2
        return 1
    fi
    printf '%s\n' "$out"
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_deb_src: deb-src for the suites the machine already uses, written
# to /etc/apt/sources.list.d/mayfly-deb-src.sources when apt has none
ensure_deb_src() {
    local deb_src
    if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "$DEBSRC_TAG: adding deb-src lines"
        deb_src=$(print_deb_src /)
        printf '%s\n' "$deb_src" | as_root tee /etc/apt/sources.list.d/mayfly-deb-src.sources >/dev/null
        as_root apt-get update -qq
    fi
}

# ensure_packages PKG...: the packages a build needs, installed when missing
ensure_packages() {
    local need=() p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        as_root apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

# cache_prefix NAME VERSION REV PKG: the private prefix of a build, named
# after the Debian version it follows and the revision of the options it
# was built with, so that a security update or a change of options gets a
# build of its own and a clean clone reuses a finished one
cache_prefix() {
    if [ -z "$2" ]; then
        echo "$DEBSRC_TAG: $4 is not installed (run scripts/install-deps.sh)" >&2
        return 1
    fi
    # a version may hold ':' (epoch) and '+', keep the name plain
    printf '%s/mayfly/%s-%s-r%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}" "$1" "${2//[^A-Za-z0-9.+-]/_}" "$3"
}

# build_once PREFIX BUILT_FN: exits the calling script (status 0) when
# BUILT_FN finds a finished build in PREFIX. Otherwise takes the build lock
# of PREFIX (fd 9, held until the script ends: two checkouts may ask at
# once, the second waits and then finds the first one's build), checks
# again under it, and removes whatever a half-finished build left there.
build_once() {
    if "$2"; then
        echo "$DEBSRC_TAG: already built in $1"
        exit 0
    fi
    mkdir -p "$(dirname "$1")"
    exec 9>"$1.lock"
    flock 9
    if "$2"; then
        echo "$DEBSRC_TAG: already built in $1"
        exit 0
    fi
    rm -rf "$1"
}
