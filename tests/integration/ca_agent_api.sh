#!/usr/bin/env bash
# The agent-facing API end to end with real processes: attestation with a
# join token (single use, expiring), renewal over mTLS, entry sync by long
# poll (a new entry arrives well under a second), batch signing limited to
# the caller's own entries, bans and evictions, SPIFFE section B conformance
# of issued leaves, and a restart that keeps entries and keys.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
S=(--admin-socket "$CA_SOCK_a")
A1=spiffe://example.org/mayfly/agent/n1
A2=spiffe://example.org/mayfly/agent/n2
"$CA_BIN" bundle show "${S[@]}" >"$T/bundle.pem"
client() { "$CA_CLIENT" "$1" --server "$CA_ADDR_a" --bundle "$T/bundle.pem" "${@:2}"; }
mkdir -p "$T/n1" "$T/n2" "$T/x"

# --- attestation: a token works once, and not after it expires
tok=$("$CA_BIN" token generate "${S[@]}" --spiffe-id $A1)
client attest --dir "$T/n1" --token "$tok" >"$T/out" || die "attest: $(cat "$T/out")"
grep -q "\"spiffe_id\":\"$A1\"" "$T/out" || die "attest answer"
grep -q '"spiffe_sequence"' "$T/out" || die "attest answer has no bundle"
if client attest --dir "$T/x" --token "$tok" >"$T/out"; then die "reused token accepted"; fi
grep -q 'status=401' "$T/out" || die "reused token: $(cat "$T/out")"
short=$("$CA_BIN" token generate "${S[@]}" --spiffe-id $A2 --ttl 1s)
sleep 1.2
if client attest --dir "$T/x" --token "$short" >"$T/out"; then die "expired token accepted"; fi
grep -q 'expired\|unknown' "$T/out" || die "expired token: $(cat "$T/out")"
if client attest --dir "$T/x" --token "not-a-token" >"$T/out"; then die "bogus token accepted"; fi
tok2=$("$CA_BIN" token generate "${S[@]}" --spiffe-id $A2)
if client attest --dir "$T/x" --token "$tok2" --csr-id $A1 >"$T/out"; then
    die "CSR for another agent's ID accepted"
fi
# a refused attestation leaves the token unspent
client attest --dir "$T/n2" --token "$tok2" >/dev/null || die "attest n2"
"$CA_BIN" agent list "${S[@]}" | grep -q "$A2" || die "agent list lacks n2"
"$CA_BIN" agent show "${S[@]}" $A1 | grep -q 'Banned      : no' || die "agent show"

# --- the agent SVID conforms to SPIFFE section B
openssl x509 -in "$T/n1/agent.pem" -noout -text >"$T/agent.txt"
grep -q "URI:$A1" "$T/agent.txt" || die "agent SVID URI SAN"
grep -A1 'Basic Constraints: critical' "$T/agent.txt" | grep -q 'CA:FALSE' || die "B5"
grep -A1 'Key Usage: critical' "$T/agent.txt" | grep -q 'Digital Signature' || die "B6/B7"
grep -q 'Certificate Sign' "$T/agent.txt" && die "B9"
grep -A1 'Extended Key Usage' "$T/agent.txt" | grep -q 'TLS Web Server Authentication, TLS Web Client Authentication' || die "B10"
openssl verify -CAfile "$T/bundle.pem" "$T/n1/agent.pem" >/dev/null || die "agent SVID does not chain to the bundle"

# --- renewal over mTLS
old_serial=$(openssl x509 -in "$T/n1/agent.pem" -noout -serial)
client renew --dir "$T/n1" >"$T/out" || die "renew: $(cat "$T/out")"
[ "$(openssl x509 -in "$T/n1/agent.pem" -noout -serial)" != "$old_serial" ] || die "renew kept serial"
if client renew --dir "$T/n1" --csr-id $A2 >"$T/out"; then die "renew for another ID accepted"; fi

# --- sync: only the caller's entries; unchanged state is not resent
e1=$("$CA_BIN" entry create "${S[@]}" --spiffe-id spiffe://example.org/web --parent-id $A1 \
    --selector unix:uid:1000 --ttl 10m)
e2=$("$CA_BIN" entry create "${S[@]}" --spiffe-id spiffe://example.org/db --parent-id $A2 \
    --selector unix:uid:1001)
client sync --dir "$T/n1" >"$T/sync" || die "sync"
grep -q "$e1" "$T/sync" || die "sync lacks own entry"
grep -q "$e2" "$T/sync" && die "sync shows another agent's entry"
rev=$(sed -n 's/.*"revision":"\([0-9a-f]*\)".*/\1/p' "$T/sync")
[ -n "$rev" ] || die "no revision"
client sync --dir "$T/n1" --revision "$rev" --wait 1 >"$T/out" || die "sync 204"
grep -q 'status=204' "$T/out" || die "unchanged state resent: $(head -c 200 "$T/out")"

# long poll: a new entry reaches the waiting agent well under a second later
client sync --dir "$T/n1" --revision "$rev" --wait 20 >"$T/lp" &
lp=$!
track_pid $lp
sleep 0.5
t0=$(date +%s%N)
e3=$("$CA_BIN" entry create "${S[@]}" --spiffe-id spiffe://example.org/api --parent-id $A1 \
    --selector unix:uid:1002)
wait $lp || die "long poll failed: $(cat "$T/lp")"
t1=$(date +%s%N)
grep -q "$e3" "$T/lp" || die "long poll answer lacks the new entry"
ms=$(((t1 - t0) / 1000000))
echo "measured: new entry reached the long-polling agent in ${ms} ms (includes CLI start)"
[ "$ms" -lt 1000 ] || die "entry took ${ms} ms"

# --- batch signing
client sign --dir "$T/n1" --entry "$e1" --spiffe-id spiffe://example.org/web --count 20 \
    --out "$T/web.pem" >"$T/out" || die "sign: $(head -c 300 "$T/out")"
[ "$(grep -o '"expires_at"' "$T/out" | wc -l)" = 20 ] || die "batch of 20"
openssl verify -CAfile "$T/bundle.pem" "$T/web.pem" >/dev/null || die "leaf does not chain"
openssl x509 -in "$T/web.pem" -noout -text >"$T/leaf.txt"
grep -q 'URI:spiffe://example.org/web' "$T/leaf.txt" || die "leaf SAN"
[ "$(grep -o 'URI:' "$T/leaf.txt" | wc -l)" = 1 ] || die "B1: exactly one URI SAN"
nb=$(date -d "$(openssl x509 -in "$T/web.pem" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$T/web.pem" -noout -enddate | cut -d= -f2)" +%s)
[ $((na - nb)) -eq 610 ] || die "leaf lifetime $((na - nb)) != entry ttl 600 + 10 s cushion"
grep -q 'issued spiffe_id=spiffe://example.org/web serial=[0-9a-f]* not_after=.* agent=spiffe://example.org/mayfly/agent/n1' \
    "$T/ca/ca.log" || die "issuance log line"

# not the parent: n1 may not sign n2's entry, nor a CSR for another ID
if client sign --dir "$T/n1" --entry "$e2" --spiffe-id spiffe://example.org/db >"$T/out"; then
    die "signed an entry not parented to the caller"
fi
grep -q '"error":"permission_denied"' "$T/out" || die "not-parent result: $(cat "$T/out")"
if client sign --dir "$T/n1" --entry "$e1" --spiffe-id spiffe://example.org/db >"$T/out"; then
    die "signed a CSR whose ID differs from the entry"
fi
grep -q 'denied spiffe_id=spiffe://example.org/web agent=spiffe://example.org/mayfly/agent/n1 reason=' \
    "$T/ca/ca.log" || die "denial log line"

# --- ban: no renewal, no signing; evict: must attest again
"$CA_BIN" agent ban "${S[@]}" $A2 | grep -q 'Banned      : yes' || die "ban"
if client renew --dir "$T/n2" >"$T/out"; then die "banned agent renewed"; fi
grep -q 'status=403' "$T/out" || die "banned renew: $(cat "$T/out")"
if client sync --dir "$T/n2" >"$T/out"; then die "banned agent synced"; fi
tok3=$("$CA_BIN" token generate "${S[@]}" --spiffe-id $A2)
if client attest --dir "$T/x" --token "$tok3" >"$T/out"; then die "banned agent re-attested"; fi
"$CA_BIN" agent evict "${S[@]}" $A1 >/dev/null
if client renew --dir "$T/n1" >"$T/out"; then die "evicted agent renewed"; fi

# --- malformed and oversized requests are refused
if client sign --dir "$T/n1" --entry "" --spiffe-id spiffe://example.org/web >"$T/out"; then
    die "empty entry id"
fi

# --- restart keeps entries and keys
fp_before=$("$CA_BIN" ca show "${S[@]}" --json | grep -o '"fingerprint": "[0-9a-f]*"' | sort)
stop_pid "$CA_PID_a"
[ -S "$T/ca/admin.sock" ] && die "admin socket left behind after SIGTERM"
start_ca b "$T/ca"
S=(--admin-socket "$CA_SOCK_b")
fp_after=$("$CA_BIN" ca show "${S[@]}" --json | grep -o '"fingerprint": "[0-9a-f]*"' | sort)
[ "$fp_before" = "$fp_after" ] || die "CA keys changed across restart"
"$CA_BIN" entry show "${S[@]}" "$e3" >/dev/null || die "entry lost across restart"
"$CA_BIN" bundle show "${S[@]}" | cmp -s - "$T/bundle.pem" || die "bundle changed across restart"
"$CA_BIN" bundle show "${S[@]}" --format spiffe | grep -q '"spiffe_sequence": 1' \
    || die "sequence moved across restart"
echo "ca_agent_api: ok"
