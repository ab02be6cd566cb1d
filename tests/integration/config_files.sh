#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Running it for real: the example config files, the documented options and
# what systemd sees.
#   1. The config keys each binary accepts (from the option tables behind
#      `run --help`), those in packaging/mayfly-{ca,agent}.conf and those in
#      the option tables of docs/operations.md are the same sets: an option
#      added without its documentation, or documented without existing,
#      fails here.
#   2. Every key of each example file, commented-out ones included, is
#      accepted with the example's value: a file with all of them and one
#      bogus key last fails on that bogus key (FILE:LINE) and nothing before
#      it; a bad value is reported with its line, exit 2; flags win.
#   3. The example files, with their paths pointed into a temp dir, start the
#      CA and the agent; both become ready, tell a stand-in for systemd
#      READY=1 (and STOPPING=1 on SIGTERM) over $NOTIFY_SOCKET, and answer
#      /ready with 200 on the metrics address taken from the file.
#   4. With $JOURNAL_STREAM naming their stderr, log lines start with a
#      journal priority ("<6>info ...") and carry no timestamp.
#   5. The systemd units pass `systemd-analyze verify` without a warning
#      (when systemd-analyze is installed).
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
REPO=$(cd ../.. && pwd)
PKG=$REPO/packaging
DOC=$REPO/docs/operations.md
command -v python3 >/dev/null || die "python3 is needed"
make_tmp

# ---- 1. code, examples and docs agree ----------------------------------------------------------
sorted() { tr ' ' '\n' | sed '/^$/d' | sort -u; }
# the keys each binary accepts, from the table behind its --help
help_keys() { "$1" run --help | grep -o '\[config: [a-z_]*\]' | sed 's/.*: \(.*\)]/\1/' | sorted; }
ca_src=$(help_keys "$CA_BIN")
ag_src=$(help_keys "$MAYFLY_BIN/mayfly-agent")
conf_keys() { sed -n 's/^#\{0,1\} \{0,1\}\([a-z_]*\) = .*/\1/p' "$1" | sorted; }
ca_conf=$(conf_keys "$PKG/mayfly-ca.conf")
ag_conf=$(conf_keys "$PKG/mayfly-agent.conf")
# docs: the second column of the rows of each daemon's option table
doc_keys() {
    awk -v h="$1" '
        $0 ~ "^### " { on = ($0 == h) }
        on && /^\| `--/ { split($0, c, "|"); k = c[3]; gsub(/[ `]/, "", k); print k }
    ' "$DOC" | sorted
}
ca_doc=$(doc_keys "### mayfly-ca options")
ag_doc=$(doc_keys "### mayfly-agent options")
[ -n "$ca_src" ] && [ -n "$ag_src" ] || die "cannot read the option tables from the code"
same() {
    if [ "$2" != "$3" ]; then
        echo "--- $1: left vs right"
        diff <(echo "$2") <(echo "$3") || true
        die "$1 differ"
    fi
    echo "ok: $1 ($(echo "$2" | wc -l) keys)"
}
same "mayfly-ca keys: code vs packaging/mayfly-ca.conf" "$ca_src" "$ca_conf"
same "mayfly-ca keys: code vs docs/operations.md" "$ca_src" "$ca_doc"
same "mayfly-agent keys: code vs docs/operations.md" "$ag_src" "$ag_doc"
same "mayfly-agent keys: code vs packaging/mayfly-agent.conf" "$ag_src" "$ag_conf"

# ---- 2. every key accepted with the example's value -------------------------------------------
# CA: uncomment everything, point paths into $T, end with a bogus key
sed -e 's/^# \([a-z_]* = \)/\1/' \
    -e "s#^data_dir = .*#data_dir = $T/all/ca#" \
    -e "s#^admin_socket = .*#admin_socket = $T/all/admin.sock#" \
    -e "s#^upstream_ca_cert = .*#upstream_ca_cert = $T/none.pem#" \
    -e "s#^upstream_ca_key = .*#upstream_ca_key = $T/none.key#" \
    "$PKG/mayfly-ca.conf" >"$T/ca-all.conf"
n_lines=$(wc -l <"$T/ca-all.conf")
echo "zz_not_an_option = 1" >>"$T/ca-all.conf"
if "$CA_BIN" run --config "$T/ca-all.conf" >"$T/ca-all.out" 2>&1; then
    die "mayfly-ca accepted an unknown key"
fi
grep -q "ca-all.conf:$((n_lines + 1)): unknown key 'zz_not_an_option'" "$T/ca-all.out" ||
    { cat "$T/ca-all.out"; die "mayfly-ca refused the example config before the bogus key"; }
echo "ok: mayfly-ca accepts all $(echo "$ca_conf" | wc -l) keys of the example"

# agent: the same, with the same parser
sed -e 's/^# \([a-z_]* = \)/\1/' \
    -e "s#^data_dir = .*#data_dir = $T/all/agent#" \
    -e "s#^log_file = .*#log_file = $T/all-agent.log#" \
    "$PKG/mayfly-agent.conf" >"$T/agent-all.conf"
n_lines=$(wc -l <"$T/agent-all.conf")
echo "zz_not_an_option = 1" >>"$T/agent-all.conf"
if "$MAYFLY_BIN/mayfly-agent" run --config "$T/agent-all.conf" >"$T/agent-all.out" 2>&1; then
    die "mayfly-agent accepted an unknown key"
fi
grep -q "agent-all.conf:$((n_lines + 1)): unknown key 'zz_not_an_option'" "$T/agent-all.out" ||
    { cat "$T/agent-all.out"; die "mayfly-agent refused the example config before the bogus key"; }
# a bad value is reported with its line, and a value of the wrong kind too
sed 's/^max_watches = .*/max_watches = many/' "$T/agent-all.conf" >"$T/agent-bad.conf"
bad_line=$(grep -n '^max_watches' "$T/agent-bad.conf" | cut -d: -f1)
rc=0
"$MAYFLY_BIN/mayfly-agent" run --config "$T/agent-bad.conf" >"$T/agent-bad.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || die "bad value: exit $rc, want 2"
grep -q "agent-bad.conf:$bad_line: --max-watches: 'many' is not a whole number" "$T/agent-bad.out" ||
    { cat "$T/agent-bad.out"; die "bad value not reported with its line"; }
echo "ok: mayfly-agent accepts all $(echo "$ag_conf" | wc -l) keys of the example"

# flags win over the file
sed -e "s#^data_dir = .*#data_dir = $T/nope/ca#" -e "s#^admin_socket = .*#admin_socket = $T/x.sock#" \
    -e 's/^svid_ttl = .*/svid_ttl = 10h/' "$PKG/mayfly-ca.conf" >"$T/ca-ttl.conf"
rc=0
"$CA_BIN" run --config "$T/ca-ttl.conf" >"$T/ca-ttl.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || { cat "$T/ca-ttl.out"; die "svid_ttl 10h > ca_ttl/6 accepted (exit $rc)"; }
"$CA_BIN" run --config "$T/ca-ttl.conf" --svid-ttl 1h --data-dir "$T/flags-win" \
    --admin-socket "$T/fw.sock" --listen 127.0.0.1:0 >"$T/fw.out" 2>&1 &
fw=$!
track_pid $fw
wait_for_log "$T/fw.out" '^mayfly-ca ready' 10
stop_pid $fw
echo "ok: flags win over the file"

# ---- 3 and 4. the examples start both daemons, under a stand-in systemd ------------------------------
notify_listener() { # notify_listener SOCKET OUT: prints each datagram, then "--"
    python3 -u - "$1" >"$2" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode())
    print("--")
PY
    track_pid $!
    wait_for_socket "$1" 5
}
mkdir -m 0700 "$T/run"
notify_listener "$T/run/ca.notify" "$T/ca.notify.out"
sed -e "s#^data_dir = .*#data_dir = $T/ca#" \
    -e "s#^admin_socket = .*#admin_socket = $T/admin.sock#" \
    -e "s#^listen = .*#listen = 127.0.0.1:0#" \
    -e "s#^svid_ttl = .*#svid_ttl = 1m#" \
    -e "s#^\# metrics_listen = .*#metrics_listen = 127.0.0.1:0#" \
    "$PKG/mayfly-ca.conf" >"$T/ca.conf"
: >"$T/ca.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/ca.log") NOTIFY_SOCKET=$T/run/ca.notify \
    "$CA_BIN" run --config "$T/ca.conf" 2>>"$T/ca.log" &
CA_PID=$!
track_pid "$CA_PID"
LOG_ON_FAIL=$T/ca.log
wait_for_log "$T/ca.log" '^mayfly-ca ready' 10
wait_for_log "$T/ca.notify.out" '^READY=1' 5
CA_ADDR=$(sed -n 's/^mayfly-ca ready listen=\([^ ]*\).*/\1/p' "$T/ca.log")
CA_M=$(sed -n 's/.*metrics listening address=\([^ ]*\).*/\1/p' "$T/ca.log")
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$CA_M/ready")" = 200 ] || die "CA /ready"
grep -q '^<6>info ' "$T/ca.log" || die "no journal priority prefix in the CA's log"
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$T/ca.log" && die "timestamps in a journal-bound log"
echo "ok: the CA starts from the example, notifies READY=1, logs for the journal"

"$CA_BIN" bundle show --admin-socket "$T/admin.sock" --format pem >"$T/bundle.pem"
TOKEN=$("$CA_BIN" token generate --admin-socket "$T/admin.sock" \
    --spiffe-id spiffe://example.org/mayfly/agent/cfg)
sed -e "s#^data_dir = .*#data_dir = $T/agent#" \
    -e "s#^socket = .*#socket = $T/agent.sock#" \
    -e "s#^server = .*#server = $CA_ADDR#" \
    -e "s#^trust_bundle = .*#trust_bundle = $T/bundle.pem#" \
    -e "s#^metrics_listen = .*#metrics_listen = 127.0.0.1:0#" \
    "$PKG/mayfly-agent.conf" >"$T/agent.conf"
notify_listener "$T/run/agent.notify" "$T/agent.notify.out"
: >"$T/agent.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/agent.log") NOTIFY_SOCKET=$T/run/agent.notify \
    "$MAYFLY_BIN/mayfly-agent" run --config "$T/agent.conf" --join-token "$TOKEN" 2>>"$T/agent.log" &
AGENT_PID=$!
track_pid "$AGENT_PID"
LOG_ON_FAIL=$T/agent.log
wait_for_log "$T/agent.log" 'mayfly-agent ready' 15
wait_for_log "$T/agent.notify.out" '^READY=1' 5
AG_M=$(sed -n 's/.*metrics listening address=\([^ ]*\).*/\1/p' "$T/agent.log")
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$AG_M/ready")" = 200 ] || die "agent /ready"
grep -q '^<6>info ' "$T/agent.log" || die "no journal priority prefix in the agent's log"
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$T/agent.log" && die "timestamps in a journal-bound log"
echo "ok: the agent starts from the example, notifies READY=1, logs for the journal"

# the CA first: it ends the agent's long poll, so the agent's worker joins at
# once on SIGTERM (a worker left inside a 30 s long poll is abandoned after
# 2 s, and LeakSanitizer then reports the agent's state under make check)
stop_pid "$CA_PID"
stop_pid "$AGENT_PID"
wait_for_log "$T/agent.notify.out" '^STOPPING=1' 5
wait_for_log "$T/ca.notify.out" '^STOPPING=1' 5
echo "ok: both tell systemd STOPPING=1 on SIGTERM"

# ---- 5. the units ------------------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
    mkdir "$T/units"
    # ExecStart must name an existing executable for verify to pass
    sed "s#/usr/local/bin/mayfly-ca#$CA_BIN#" "$PKG/systemd/mayfly-ca.service" \
        >"$T/units/mayfly-ca.service"
    sed "s#/usr/local/bin/mayfly-agent#$MAYFLY_BIN/mayfly-agent#" \
        "$PKG/systemd/mayfly-agent.service" >"$T/units/mayfly-agent.service"
    out=$(systemd-analyze verify "$T/units/mayfly-ca.service" "$T/units/mayfly-agent.service" 2>&1 || true)
    # a host without systemd as PID 1 may add notes about the system manager;
    # only lines naming our files count
    bad=$(echo "$out" | grep -F "$T/units/" || true)
    [ -z "$bad" ] || { echo "$bad"; die "systemd-analyze verify complained"; }
    for k in Type=notify RuntimeDirectory= StateDirectory= NoNewPrivileges=yes ProtectSystem=strict \
        ProtectHome= PrivateTmp=yes PrivateDevices=yes MemoryDenyWriteExecute=yes \
        'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' SystemCallFilter=@system-service \
        CapabilityBoundingSet=; do
        for u in mayfly-ca mayfly-agent; do
            grep -q "^$k" "$PKG/systemd/$u.service" || die "$u.service lacks $k"
        done
    done
    echo "ok: systemd-analyze verify passes both units, which carry the sandboxing options"
else
    echo "note: systemd-analyze not installed; units not verified"
fi
echo "ok"
