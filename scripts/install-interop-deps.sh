#!/usr/bin/env bash
# Installs the pinned third-party SPIFFE client libraries that the interop
# tests (tests/integration/interop_*.sh) drive against mayfly, with the
# machine's own package-manager configuration. Idempotent and fast when
# everything is there already.
#
#   scripts/install-interop-deps.sh go   downloads the Go modules that
#                                        tests/interop/go/go.sum and
#                                        tests/interop/go-sds/go.sum pin into
#                                        the Go module cache (GOMODCACHE)
#   scripts/install-interop-deps.sh py   makes a venv with the exact versions
#                                        of tests/interop/python/requirements.txt
#                                        and prints its python on stdout
#   scripts/install-interop-deps.sh      both
#
# Exit status: 0 done; 3 the toolchain is missing (no go, or no python3 with
# venv); 4 the packages could not be had (no registry access). The tests
# report 3 and 4 as skipped, never as passed.
#
# The venv lives in $MAYFLY_INTEROP_CACHE (default ~/.cache/mayfly-interop),
# one per (python version, requirements) pair, so that a change of pins
# makes a new one and repeated runs reuse it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MAYFLY_INTEROP_CACHE:-${HOME:-/root}/.cache/mayfly-interop}

install_go() {
    command -v go >/dev/null 2>&1 || {
        echo "install-interop-deps: no go toolchain in PATH" >&2
        return 3
    }
    # go.sum pins every module by hash; a module already in the cache is
    # not fetched again
    local d
    for d in go go-sds; do
        (cd "$ROOT/tests/interop/$d" && go mod download) >&2 || {
            echo "install-interop-deps: cannot download the Go modules of tests/interop/$d" >&2
            return 4
        }
    done
}

pick_python() {
    local p
    # Debian's python first: it stays put across sessions; then PATH's
    for p in /usr/bin/python3 python3; do
        if "$p" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            command -v "$p"
            return 0
        fi
    done
    return 1
}

install_py() {
    local py req key dir
    py=$(pick_python) || {
        echo "install-interop-deps: no python3 with venv and ensurepip" >&2
        return 3
    }
    req="$ROOT/tests/interop/python/requirements.txt"
    key=$({ "$py" -c 'import sys; print(sys.version)'; cat "$req"; } | sha256sum | cut -c1-12)
    dir="$CACHE/py-$key"
    mkdir -p "$CACHE"
    (
        # one installer at a time per cache (tests run in parallel)
        flock 9
        [ -f "$dir/.complete" ] && exit 0
        rm -rf "$dir"
        "$py" -m venv "$dir" >&2 || exit 3
        # --no-deps: requirements.txt lists the whole closure, each pinned
        "$dir/bin/python" -m pip install -q --no-deps -r "$req" >&2 || {
            rm -rf "$dir"
            echo "install-interop-deps: cannot install $req" >&2
            exit 4
        }
        "$dir/bin/python" -c 'import spiffe' || exit 4
        touch "$dir/.complete"
    ) 9>"$CACHE/.lock"
    echo "$dir/bin/python"
}

case "${1:-all}" in
go) install_go ;;
py) install_py ;;
all) install_go && install_py >/dev/null ;;
*)
    echo "usage: $0 [go|py]" >&2
    exit 2
    ;;
esac
