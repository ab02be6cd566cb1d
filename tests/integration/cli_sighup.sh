#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# SIGHUP, for both daemons started from a config file with --log-file:
#   - the log file is reopened: after `mv LOG LOG.1; kill -HUP`, new lines go
#     to a new LOG (mode 0600), as logrotate needs;
#   - log_level is re-read from the file: a daemon started at `warn` logs
#     the info line "SIGHUP: reloaded log-level=info ..." only if the new
#     level took effect;
#   - an option that cannot be reloaded (svid_ttl, max_connections) is named
#     in a warning; a file that no longer parses changes nothing, is logged
#     as an error (the log file is still reopened), and the daemon keeps
#     serving.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
make_tmp
AG=$MAYFLY_BIN/mayfly-agent

# ---- the CA ----------------------------------------------------------------------------------
cat >"$T/ca.conf" <<CONF
data_dir = $T/ca
admin_socket = $T/admin.sock
listen = 127.0.0.1:0
log_level = warn
log_file = $T/ca.log
svid_ttl = 1h
CONF
"$CA_BIN" run --config "$T/ca.conf" 2>"$T/ca.err" &
CA_PID=$!
track_pid $CA_PID
LOG_ON_FAIL=$T/ca.err
"$CA_BIN" healthcheck --admin-socket "$T/admin.sock" --wait 10s >/dev/null
[ "$(stat -c %a "$T/ca.log")" = 600 ] || die "log file mode $(stat -c %a "$T/ca.log")"
grep -q ' info ' "$T/ca.log" && die "info lines logged at level warn"
grep -q '^mayfly-ca ready' "$T/ca.err" || die "the ready line is not on stderr"
CA_ADDR=$(sed -n 's/^mayfly-ca ready listen=\([^ ]*\).*/\1/p' "$T/ca.err")

mv "$T/ca.log" "$T/ca.log.1"
sed -i -e 's/^log_level = .*/log_level = info/' -e 's/^svid_ttl = .*/svid_ttl = 2h/' "$T/ca.conf"
echo 'agent_rate = 7' >>"$T/ca.conf"
kill -HUP $CA_PID
wait_for_log "$T/ca.log" 'SIGHUP: reloaded log-level=info log-format=text' 5
grep -q 'SIGHUP: reloaded .* agent-rate=7 ' "$T/ca.log" ||
    die "the CA did not reload its signing limits: $(cat "$T/ca.log")"
grep -q 'SIGHUP: changed but not reloaded (restart to apply): svid-ttl' "$T/ca.log" ||
    die "the CA did not name svid-ttl as not reloaded: $(cat "$T/ca.log")"
grep -q 'SIGHUP' "$T/ca.log.1" && die "the CA logged to the moved file after SIGHUP"
[ "$(stat -c %a "$T/ca.log")" = 600 ] || die "reopened log file mode"
echo "ok: CA: log file reopened, log-level reloaded, svid-ttl named as not reloaded"

echo "this is not a config line" >>"$T/ca.conf"
mv "$T/ca.log" "$T/ca.log.2"
kill -HUP $CA_PID
wait_for_log "$T/ca.log" 'SIGHUP: the configuration does not parse; nothing changed' 5
"$CA_BIN" healthcheck --admin-socket "$T/admin.sock" >/dev/null || die "CA down after a bad reload"
sed -i '$d' "$T/ca.conf"
echo "ok: CA: a broken file on SIGHUP changes nothing"

# ---- the agent -------------------------------------------------------------------------------
"$CA_BIN" bundle show --admin-socket "$T/admin.sock" >"$T/bundle.pem"
tok=$("$CA_BIN" token generate --admin-socket "$T/admin.sock" \
    --spiffe-id spiffe://example.org/mayfly/agent/hup)
cat >"$T/agent.conf" <<CONF
data_dir = $T/agent
server = $CA_ADDR
trust_bundle = $T/bundle.pem
socket = $T/agent.sock
log_level = warn
log_file = $T/agent.log
max_connections = 128
CONF
"$AG" run --config "$T/agent.conf" --join-token "$tok" 2>"$T/agent.err" &
AG_PID=$!
track_pid $AG_PID
LOG_ON_FAIL=$T/agent.err
"$AG" healthcheck --socket "$T/agent.sock" --wait 15s >/dev/null
grep -q ' info ' "$T/agent.log" && die "agent: info lines logged at level warn"
mv "$T/agent.log" "$T/agent.log.1"
sed -i -e 's/^log_level = .*/log_level = info/' -e 's/^max_connections = .*/max_connections = 200/' \
    "$T/agent.conf"
kill -HUP $AG_PID
wait_for_log "$T/agent.log" 'SIGHUP: reloaded log-level=info log-format=text' 5
grep -q 'SIGHUP: changed but not reloaded (restart to apply): max-connections' "$T/agent.log" ||
    die "the agent did not name max-connections: $(cat "$T/agent.log")"
"$AG" healthcheck --socket "$T/agent.sock" >/dev/null || die "agent down after SIGHUP"
echo "ok: agent: log file reopened, log-level reloaded, max-connections named as not reloaded"
stop_pid $CA_PID
stop_pid $AG_PID
echo "ok"
