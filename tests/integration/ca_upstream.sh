#!/usr/bin/env bash
# Intermediate mode: mayfly-ca signs under an existing root given with
# --upstream-ca-cert/--upstream-ca-key. The bundle is that root, agents get
# a chain (leaf, then the CA's intermediate) that OpenSSL verifies up to
# the root, and an upstream key readable by others is refused at start.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
TD=example.org
R="$T/root"
mkdir -p "$R"

# an operator's root, made with OpenSSL (no SPIFFE ID: B24 allows that)
openssl ecparam -name prime256v1 -genkey -noout -out "$R/ec.key" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$R/ec.key" -out "$R/root.key"
chmod 600 "$R/root.key"
openssl req -x509 -new -key "$R/root.key" -days 30 -subj "/O=Example Root CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$R/root.pem" 2>/dev/null

# a world-readable upstream key is refused, with a message naming the file
chmod 644 "$R/root.key"
if "$CA_BIN" run --data-dir "$T/bad" --admin-socket "$T/bad.sock" --trust-domain $TD \
    --listen "127.0.0.1:$(pick_port)" --upstream-ca-cert "$R/root.pem" \
    --upstream-ca-key "$R/root.key" >"$T/bad.log" 2>&1; then
    die "CA started with a world-readable upstream key"
fi
grep -q "root.key" "$T/bad.log" || die "refusal does not name the key file: $(cat "$T/bad.log")"
echo "ok (refused): $(grep -m1 root.key "$T/bad.log")"
chmod 600 "$R/root.key"

start_ca up "$T/ca" --upstream-ca-cert "$R/root.pem" --upstream-ca-key "$R/root.key"
LOG_ON_FAIL="$T/ca/ca.log"
S=(--admin-socket "$CA_SOCK_up")

# the bundle is the root itself
"$CA_BIN" bundle show "${S[@]}" --format pem >"$T/bundle.pem"
[ "$(openssl x509 -in "$T/bundle.pem" -noout -fingerprint -sha256)" = \
  "$(openssl x509 -in "$R/root.pem" -noout -fingerprint -sha256)" ] || die "bundle is not the root"

# an agent attests and gets leaf + intermediate, verifying up to the root
A=spiffe://$TD/mayfly/agent/n1
tok=$("$CA_BIN" token generate "${S[@]}" --spiffe-id $A)
mkdir -p "$T/n1"
"$CA_CLIENT" attest --server "$CA_ADDR_up" --bundle "$T/bundle.pem" --dir "$T/n1" \
    --token "$tok" >"$T/out" || die "attest: $(cat "$T/out")"
n=$(grep -c 'BEGIN CERTIFICATE' "$T/n1/agent.pem")
[ "$n" -ge 2 ] || die "agent chain has $n certificate(s), want leaf + intermediate"
openssl verify -x509_strict -CAfile "$R/root.pem" -untrusted "$T/n1/agent.pem" \
    "$T/n1/agent.pem" >/dev/null || die "agent chain does not verify up to the root"
# the intermediate is the CA's signing certificate: CA:TRUE and spiffe://<td>
awk '/BEGIN CERT/{n++} n==2' "$T/n1/agent.pem" >"$T/inter.pem"
openssl x509 -in "$T/inter.pem" -noout -text >"$T/inter.txt"
grep -A1 'Basic Constraints: critical' "$T/inter.txt" | grep -q 'CA:TRUE' || die "intermediate is not a CA"
grep -Eq "URI:spiffe://$TD(,|\$)" "$T/inter.txt" || die "intermediate lacks URI:spiffe://$TD"
openssl verify -CAfile "$R/root.pem" "$T/inter.pem" >/dev/null || die "intermediate not signed by the root"

# workload SVIDs signed through the API chain to the root too
eid=$("$CA_BIN" entry create "${S[@]}" --spiffe-id spiffe://$TD/web --parent-id $A \
    --selector unix:uid:1000)
"$CA_CLIENT" sign --server "$CA_ADDR_up" --bundle "$T/bundle.pem" --dir "$T/n1" \
    --entry "$eid" --spiffe-id spiffe://$TD/web --out "$T/web.pem" >"$T/out" \
    || die "sign: $(cat "$T/out")"
openssl verify -x509_strict -CAfile "$R/root.pem" -untrusted "$T/web.pem" "$T/web.pem" \
    >/dev/null || die "workload SVID does not verify up to the root"
openssl x509 -in "$T/web.pem" -noout -ext subjectAltName | grep -q "URI:spiffe://$TD/web" \
    || die "workload SVID URI SAN"
echo "ok: intermediate mode: bundle = root, agent and workload chains verify with openssl -x509_strict"
