#!/usr/bin/env bash
# Installs, from Debian packages, everything mayfly needs to build, test,
# lint, fuzz, benchmark and run its demo, then builds the SP build of
# wolfSSL that mayfly links by default (scripts/build-wolfssl-sp.sh: from
# Debian's source package of the installed version, cached in
# ~/.cache/mayfly/wolfssl-sp-<Debian version>-r<rev>, built again only when
# that version or the script's options change), and the static libmicrohttpd
# without HTTPS that mayfly-agent links by default (scripts/build-mhd-lite.sh:
# the same way, in ~/.cache/mayfly/mhd-lite-<Debian version>-r<rev>).
# Idempotent: when every package is present and both builds are there it
# only checks and returns (well under a second).
#
#   scripts/install-deps.sh          install what is missing (needs root)
#   scripts/install-deps.sh --check  exit 1 if anything is missing
#   WOLFSSL=system scripts/install-deps.sh
#                                    skip the SP build (for `make WOLFSSL=system`)
#   MHD=system scripts/install-deps.sh
#                                    skip the agent's libmicrohttpd (for
#                                    `make MHD=system`)
set -euo pipefail
cd "$(dirname "$0")/.."

# private_build SCRIPT WHAT [--check]: the library SCRIPT builds into its
# cache (WHAT names it in messages): built when missing, or with --check
# only reported missing
private_build() {
    local prefix
    prefix=$("$1" --prefix) || return 1
    [ -f "$prefix/.mayfly-built" ] && return 0
    if [ "${3:-}" = --check ]; then
        echo "missing: $2 in $prefix ($1)" >&2
        return 1
    fi
    echo "install-deps: building $2 into $prefix (once)" >&2
    "$1" >&2
}

# sp_build: the SP wolfSSL, unless WOLFSSL=system
sp_build() {
    [ "${WOLFSSL:-sp}" = system ] && return 0
    private_build scripts/build-wolfssl-sp.sh "the SP build of wolfSSL" "$@"
}

# mhd_build: the agent's libmicrohttpd without HTTPS, unless MHD=system
mhd_build() {
    [ "${MHD:-lite}" = system ] && return 0
    private_build scripts/build-mhd-lite.sh "the agent's libmicrohttpd without HTTPS" "$@"
}

PACKAGES=(
    build-essential make pkg-config git ca-certificates
    libwolfssl-dev          # X.509, keys, CSRs, ECDSA, TLS 1.3 (client)
    libjansson-dev          # JSON
    libmicrohttpd-dev       # HTTP servers (CA API, admin, Workload API); its
                            # source package makes the agent's static copy
    libgnutls28-dev         # TLS backend of libmicrohttpd (CA API)
    libsqlite3-dev sqlite3  # registry and agent state
    libpq-dev postgresql    # the registry on PostgreSQL, and the server its tests start
    libnghttp2-dev          # HTTP/2 for the gRPC Workload API
    libprotobuf-c-dev protobuf-c-compiler  # protobuf for the gRPC Workload API
    libcmocka-dev           # unit tests
    openssl                 # interop tests and the demo's s_server/s_client
    clang libclang-rt-14-dev  # libFuzzer harnesses
    python3 python3-grpcio python3-grpc-tools  # gRPC interop tests
    python3-venv            # py-spiffe interop test (install-interop-deps.sh py)
    libfaketime             # clock-jump fault tests
    procps psmisc util-linux  # ps, kill, setpriv/runuser in tests
    curl                    # Workload API over a Unix socket in tests and demo
    valgrind                # make valgrind
    shellcheck clang-format # make lint
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    if [ "${1:-}" = "--check" ]; then
        rc=0
        sp_build --check || rc=1
        mhd_build --check || rc=1
        exit "$rc"
    fi
    sp_build
    mhd_build
    exit
fi
if [ "${1:-}" = "--check" ]; then
    echo "missing packages: ${missing[*]}" >&2
    exit 1
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: need root to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
sp_build
mhd_build
