#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Running it for real: the example config files, the documented options and
# what systemd sees.
#   1. The option names in the code (ca_config.c's keys, agent_config.c's
#      table), in packaging/mayfly-{ca,agent}.conf and in the option tables of
#      docs/operations.md are the same sets: an option added without its
#      documentation, or documented without existing, fails here.
#   2. Every key of each example file, commented-out ones included, is
#      accepted with the example's value: a file with all of them and one
#      bogus key last fails on that bogus key and nothing before it.
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
# ("config" is compared there too, but names the file itself, not a key)
ca_src=$(grep -o 'strcmp(key, "[a-z_]*")' "$REPO/ca/ca_config.c" | sed 's/.*"\(.*\)".*/\1/' |
    grep -vx config | sorted)
ag_src=$(grep -o '^ *O("[a-z-]*"' "$REPO/agent/agent_config.c" | sed 's/.*"\(.*\)"/\1/' | sorted)
ca_conf=$(sed -n 's/^#\{0,1\} \{0,1\}\([a-z_]*\) = .*/\1/p' "$PKG/mayfly-ca.conf" | sorted)
ag_conf=$(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))))' \
    "$PKG/mayfly-agent.conf" | sorted)
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
# the agent's example is JSON (no comments): it leaves out only the one-time
# join token and backoff-base, whose 500 ms default is finer than the
# whole-second durations of the file (docs/operations.md says so)
same "mayfly-agent keys: code vs packaging/mayfly-agent.conf (+ join-token, backoff-base)" \
    "$ag_src" "$(printf '%s\njoin-token\nbackoff-base\n' "$ag_conf" | sorted)"

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
grep -q "ca-all.conf:$((n_lines + 1)): unknown option 'zz_not_an_option'" "$T/ca-all.out" ||
    { cat "$T/ca-all.out"; die "mayfly-ca refused the example config before the bogus key"; }
echo "ok: mayfly-ca accepts all $(echo "$ca_conf" | wc -l) keys of the example"

# agent: the example plus the two keys it leaves out, then a bogus key
python3 - "$PKG/mayfly-agent.conf" "$T/agent-all.conf" "$T" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))  # jansson keeps this order when iterating
c["data-dir"] = sys.argv[3] + "/all/agent"
c["join-token"] = "0" * 64
c["backoff-base"] = "1s"
c["zz-not-an-option"] = "1"
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
if "$MAYFLY_BIN/mayfly-agent" run --config "$T/agent-all.conf" >"$T/agent-all.out" 2>&1; then
    die "mayfly-agent accepted an unknown key"
fi
grep -q 'unknown key "zz-not-an-option"' "$T/agent-all.out" ||
    { cat "$T/agent-all.out"; die "mayfly-agent refused the example config before the bogus key"; }
# that proof needs the keys read in file order: a bad value early must be
# what is reported, not the bogus key at the end
python3 - "$T/agent-all.conf" "$T/agent-order.conf" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["renew-window"] = "not-a-window"
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
if "$MAYFLY_BIN/mayfly-agent" run --config "$T/agent-order.conf" >"$T/agent-order.out" 2>&1; then
    die "mayfly-agent accepted a bad renew-window"
fi
grep -q 'zz-not-an-option' "$T/agent-order.out" && die "the agent does not read its config in order"
grep -q 'renew-window' "$T/agent-order.out" || { cat "$T/agent-order.out"; die "bad value not named"; }
echo "ok: mayfly-agent accepts all $(echo "$ag_src" | wc -l) keys"

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
python3 - "$PKG/mayfly-agent.conf" "$T/agent.conf" "$T" "$CA_ADDR" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
t = sys.argv[3]
c.update({"data-dir": t + "/agent", "socket": t + "/agent.sock", "server": sys.argv[4],
          "trust-bundle": t + "/bundle.pem", "metrics-listen": "127.0.0.1:0"})
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
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
