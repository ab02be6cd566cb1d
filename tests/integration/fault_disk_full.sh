#!/usr/bin/env bash
# The CA's data dir runs out of space during writes, two ways: a file size
# limit (RLIMIT_FSIZE lowered on the running CA with prlimit; SIGXFSZ is
# ignored, so writes fail with EFBIG) and, when run as root, a full disk (a
# 3 MiB tmpfs filled up). Each time: the refused write gets a clear error
# (HTTP 507, "disk is full"), the registry is unchanged, the CA keeps
# serving reads and TLS, it accepts writes again as soon as space returns,
# and after kill -9 and a restart every acknowledged write is there and
# `PRAGMA integrity_check` is ok.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
command -v prlimit >/dev/null || skip "prlimit missing"
trap '' XFSZ # inherited by the CA: a write past the limit fails with EFBIG
AG=spiffe://example.org/mayfly/agent/n1

# fill NAME: writes entries until the CA refuses one; the refusal must name
# the disk and change nothing
fill() {
    local name=$1 sock_var="CA_SOCK_$1" i out before
    for i in $(seq 1 3000); do
        before=$(registry_digest "$name")
        if out=$("$CA_BIN" entry create --admin-socket "${!sock_var}" \
            --spiffe-id "spiffe://example.org/$name/w$i" --parent-id $AG \
            --selector "unix:uid:$i" --hint "$(printf '%0200d' "$i")" 2>&1 >"$T/id"); then
            cat "$T/id" >>"$T/acked"
            continue
        fi
        echo "ok (refused): entry $i: $out"
        grep -q 'disk is full' <<<"$out" || die "unclear refusal: $out"
        [ "$(registry_digest "$name")" = "$before" ] || die "the refused write changed the registry"
        return 0
    done
    die "the CA never ran out of space"
}

# survive NAME: reads and TLS still work while writes are refused
survive() {
    local sock_var="CA_SOCK_$1" addr_var="CA_ADDR_$1"
    "$CA_BIN" entry list --admin-socket "${!sock_var}" --json >/dev/null || die "reads refused"
    "$CA_BIN" bundle show --admin-socket "${!sock_var}" >"$T/bundle.pem"
    "$CA_CLIENT" sync --server "${!addr_var}" --bundle "$T/bundle.pem" --dir "$T/n1" >/dev/null ||
        die "agent API down while the disk is full"
}

check_acked() {
    local sock_var="CA_SOCK_$1" lost=0 id
    "$CA_BIN" entry list --admin-socket "${!sock_var}" --json >"$T/list"
    while read -r id; do grep -q "\"$id\"" "$T/list" || lost=$((lost + 1)); done <"$T/acked"
    [ "$lost" = 0 ] || die "$lost acknowledged writes lost"
}

: >"$T/acked"
# --- 1. file size limit
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
"$CA_BIN" bundle show --admin-socket "$CA_SOCK_a" >"$T/bundle.pem"
mkdir -p "$T/n1"
"$CA_CLIENT" attest --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n1" \
    --token "$(fresh_token a $AG)" >/dev/null || die attest
limit=$(($(stat -c %s "$T"/ca/data/mayfly-ca.db* | sort -n | tail -1) + 65536))
prlimit --pid "$CA_PID_a" --fsize="$limit":unlimited
fill a
survive a
prlimit --pid "$CA_PID_a" --fsize=unlimited:unlimited
"$CA_BIN" entry create --admin-socket "$CA_SOCK_a" --spiffe-id spiffe://example.org/after-limit \
    --parent-id $AG --selector unix:uid:1 >>"$T/acked" || die "no recovery after the limit was lifted"
kill -9 "$CA_PID_a"
wait "$CA_PID_a" 2>/dev/null || true
start_ca b "$T/ca"
check_acked b
stop_pid "$CA_PID_b"
[ "$(sqlite3 "$T/ca/data/mayfly-ca.db" 'PRAGMA integrity_check')" = ok ] || die "integrity (limit)"
n1=$(wc -l <"$T/acked")
[ "$n1" -ge 1 ] || die "no write was acknowledged before the limit: nothing was tested"
echo "measured: file size limit: $n1 writes acknowledged, the next refused with 507, recovered when lifted"

# --- 2. a full disk (root: a small tmpfs)
if [ "$(id -u)" = 0 ] && mkdir -p "$T/mnt" && mount -t tmpfs -o size=3m tmpfs "$T/mnt" 2>/dev/null; then
    trap 'rc=$?; umount -l "$T/mnt" 2>/dev/null; (exit $rc); cleanup' EXIT
    start_ca c "$T/mnt/ca"
    LOG_ON_FAIL="$T/mnt/ca/ca.log"
    "$CA_BIN" bundle show --admin-socket "$CA_SOCK_c" >"$T/bundle.pem"
    rm -rf "$T/n1" && mkdir -p "$T/n1"
    "$CA_CLIENT" attest --server "$CA_ADDR_c" --bundle "$T/bundle.pem" --dir "$T/n1" \
        --token "$(fresh_token c $AG)" >/dev/null || die attest
    : >"$T/acked"
    # leave about 64 KiB free
    free_kb=$(df -k --output=avail "$T/mnt" | tail -1)
    dd if=/dev/zero of="$T/mnt/filler" bs=1k count=$((free_kb - 64)) status=none
    fill c
    survive c
    rm -f "$T/mnt/filler"
    "$CA_BIN" entry create --admin-socket "$CA_SOCK_c" --spiffe-id spiffe://example.org/after-full \
        --parent-id $AG --selector unix:uid:1 >>"$T/acked" || die "no recovery after space returned"
    kill -9 "$CA_PID_c"
    wait "$CA_PID_c" 2>/dev/null || true
    start_ca d "$T/mnt/ca"
    check_acked d
    stop_pid "$CA_PID_d"
    [ "$(sqlite3 "$T/mnt/ca/data/mayfly-ca.db" 'PRAGMA integrity_check')" = ok ] || die "integrity (full)"
    echo "measured: full disk: $(wc -l <"$T/acked") writes acknowledged, the next refused with 507, recovered when space returned"
else
    skip "not root or no tmpfs: the full-disk half could not run (the file size limit half passed)"
fi
echo "fault_disk_full: ok"
