#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Backup and restore of the CA's data dir, both ways docs/operations.md gives:
#   A. online: `sqlite3 mayfly-ca.db ".backup FILE"` while the CA runs and an
#      agent is attached, then the keys/ directory; an entry made after the
#      backup; the CA killed and its data dir destroyed; the backup restored;
#      the CA restarted on the same address.
#   B. offline: stop, copy the data dir, destroy it, copy it back, start.
# After each restore: the entries are those of the backup (the later one is
# gone), the trust bundle is byte for byte the same (the CA keys survived),
# and the agent that attested before the backup renews its SVIDs again
# without a new join token.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
command -v sqlite3 >/dev/null || die "sqlite3 (the CLI) is needed: scripts/install-deps.sh"
make_tmp
PORT=$(pick_port)
AGENT_ID=spiffe://example.org/mayfly/agent/b1
CA=("$CA_BIN")
DATA=$T/ca/data
LOG_ON_FAIL=$T/ca/ca.log

adm() { "${CA[@]}" "$@" --admin-socket "$T/ca/admin.sock"; }
entry_ids() { adm entry list --json | python3 -c \
    'import json,sys; print(" ".join(sorted(e["spiffe_id"] + "=" + e["id"] for e in json.load(sys.stdin)["entries"])))'; }

start_ca b "$T/ca" --listen "127.0.0.1:$PORT" --svid-ttl 20s --ca-ttl 10m
adm bundle show --format pem >"$T/bundle.pem"
adm entry create --spiffe-id spiffe://example.org/app1 --parent-id "$AGENT_ID" \
    --selector "unix:uid:$(id -u)" >/dev/null
adm entry create --spiffe-id spiffe://example.org/app2 --parent-id "$AGENT_ID" \
    --selector unix:uid:12345 >/dev/null
TOKEN=$(adm token generate --spiffe-id "$AGENT_ID")
"$MAYFLY_BIN/mayfly-agent" run --data-dir "$T/agent" --server "127.0.0.1:$PORT" \
    --trust-bundle "$T/bundle.pem" --join-token "$TOKEN" --socket "$T/agent.sock" \
    >"$T/agent.log" 2>&1 &
track_pid $!
wait_for_log "$T/agent.log" 'mayfly-agent ready' 15
fetch_exp() { "$MAYFLY_BIN/mayfly-agent" fetch x509 --socket "$T/agent.sock" 2>/dev/null |
    sed -n 's/.*app1 expires_at=\([^ ]*\).*/\1/p'; }
for _ in $(seq 1 100); do [ -n "$(fetch_exp)" ] && break; sleep 0.05; done
[ -n "$(fetch_exp)" ] || die "no SVID before the backup"

# ---- A. online backup ----------------------------------------------------------------------
before_ids=$(entry_ids)
before_bundle=$(adm bundle show --format spiffe)
mkdir -m 0700 "$T/backup"
sqlite3 "$DATA/mayfly-ca.db" ".backup '$T/backup/mayfly-ca.db'"
cp -a "$DATA/keys" "$T/backup/keys"
echo "ok: online backup: $(du -sh "$T/backup" | cut -f1) ($(ls "$T/backup/keys" | wc -l) key files)"
# a change after the backup, which the restore must undo
adm entry create --spiffe-id spiffe://example.org/after-backup --parent-id "$AGENT_ID" \
    --selector unix:uid:23456 >/dev/null
entry_ids | grep -q after-backup || die "the later entry was not created"

# disaster: the CA dies and its data dir is gone
stop_pid "$CA_PID_b" KILL
rm -rf "$DATA"
[ ! -e "$DATA" ] || die "the data dir still exists"

# restore, with the mode the CA insists on
mkdir -m 0700 "$DATA"
cp -a "$T/backup/mayfly-ca.db" "$T/backup/keys" "$DATA/"
start_ca b "$T/ca" --listen "127.0.0.1:$PORT" --svid-ttl 20s --ca-ttl 10m
[ "$(entry_ids)" = "$before_ids" ] || die "entries after restore: $(entry_ids), want $before_ids"
[ "$(adm bundle show --format spiffe)" = "$before_bundle" ] || die "the bundle changed"
echo "ok: after the online restore: same entries ($(echo "$before_ids" | wc -w)), same bundle"

# the agent, which attested before the backup, renews again (20 s SVIDs
# renew within about 7 s)
old=$(fetch_exp)
renewed() { local e; e=$(fetch_exp); [ -n "$e" ] && [ "$e" != "$old" ]; }
for _ in $(seq 1 300); do renewed && break; sleep 0.1; done
renewed || die "the agent did not renew after the restore"
echo "ok: the agent renewed from the restored CA (app1 now expires $(fetch_exp))"

# ---- B. stop, copy, start --------------------------------------------------------------------
stop_pid "$CA_PID_b"
rm -rf "$T/backup2"
cp -a "$DATA" "$T/backup2"
rm -rf "$DATA"
cp -a "$T/backup2" "$DATA"
[ "$(stat -c %a "$DATA")" = 700 ] || die "cp -a did not keep mode 0700"
start_ca b "$T/ca" --listen "127.0.0.1:$PORT" --svid-ttl 20s --ca-ttl 10m
[ "$(entry_ids)" = "$before_ids" ] || die "entries after the offline restore differ"
[ "$(adm bundle show --format spiffe)" = "$before_bundle" ] || die "the bundle changed (offline)"
old=$(fetch_exp)
for _ in $(seq 1 300); do renewed && break; sleep 0.1; done
renewed || die "the agent did not renew after the offline restore"
echo "ok: stop-copy-start keeps entries, bundle and the agent's standing"

# a backup without its keys is refused loudly, not silently re-keyed
stop_pid "$CA_PID_b"
rm -rf "$DATA/keys"
if "${CA[@]}" run --data-dir "$DATA" --admin-socket "$T/ca/admin2.sock" \
    --listen 127.0.0.1:0 >"$T/nokeys.log" 2>&1; then
    die "the CA started without its key files"
fi
echo "ok (refused): a data dir without keys/: $(grep -m1 'mayfly-ca:' "$T/nokeys.log")"
echo "ok"
