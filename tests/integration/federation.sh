#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# mayfly-test: serial
#
# Federation between two complete deployments on one machine, a.test and
# b.test (a CA and an agent each), over https_spiffe bundle endpoints both
# ways (SPIFFE.md section F):
#   - bad relationships and bundle files are refused with a clear error;
#   - a workload in each domain receives the other's bundle, in its own
#     federated.<td>.pem file, and they do mutual TLS with openssl
#     s_server/s_client on the written files and with mayfly-mtls;
#   - an entry without --federates-with gets no foreign bundle;
#   - b.test's CA rotates on a short --ca-ttl: a.test picks up the next key
#     from the endpoint before it signs, and mTLS keeps working with new
#     SVIDs and no manual step;
#   - b.test's endpoint stopped: a.test keeps the last bundle and logs each
#     failed fetch with the age of the bundle kept;
#   - an https_web relationship against a certificate made here with
#     openssl (a third CA, c.test, serving it), and its key must be 0600.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
: "${MAYFLY_BIN:?}"
command -v openssl >/dev/null || skip "openssl missing"
command -v setpriv >/dev/null || skip "setpriv missing"
[ "$(id -u)" = 0 ] || skip "needs root for the other-uid workload"

make_tmp
chmod 0755 "$T"
CA=("$CA_BIN")
MTLS=$MAYFLY_BIN/mayfly-mtls

# ---- a web PKI made for the test (https_web) ----------------------------------
mkdir "$T/web"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=mayfly test web root" -keyout "$T/web/root.key" -out "$T/web/root.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$T/web/ep.key" -out "$T/web/ep.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$T/web/ext"
openssl x509 -req -in "$T/web/ep.csr" -CA "$T/web/root.pem" -CAkey "$T/web/root.key" \
    -CAcreateserial -days 1 -extfile "$T/web/ext" -out "$T/web/ep.pem" 2>/dev/null
chmod 600 "$T/web/ep.key"

# ---- two deployments ------------------------------------------------------------
# b.test rotates fast: a key lives 24 s, the next is published at 12 s and
# signs from 20 s (ca_keys.h), with a served refresh hint of 2 s
MPORT=$(pick_port)
TD=a.test start_ca A "$T/a" --bundle-endpoint 127.0.0.1:0 --federation-min-refresh 1s \
    --federation-ca-file "$T/web/root.pem" --metrics-listen "127.0.0.1:$MPORT"
TD=b.test start_ca B "$T/b" --bundle-endpoint 127.0.0.1:0 --federation-min-refresh 1s \
    --ca-ttl 24s --svid-ttl 4s
LOG_ON_FAIL=$T/a/ca.log
ep_of() { sed -n 's/^mayfly-ca ready .* bundle_endpoint=\([^ ]*\).*/\1/p' "$1/ca.log" | tail -1; }
EP_A=$(ep_of "$T/a")
EP_B=$(ep_of "$T/b")
[ -n "$EP_A" ] && [ -n "$EP_B" ] || die "no bundle endpoint in the ready lines"

# the endpoint serves the SPIFFE bundle at / and nothing else
doc=$(curl -sk "https://$EP_B/")
grep -q '"spiffe_sequence":' <<<"$doc" || die "endpoint: no spiffe_sequence in $doc"
grep -q '"spiffe_refresh_hint":2' <<<"$doc" || die "endpoint: refresh hint is not 2 s: $doc"
grep -q '"use":"jwt-svid"' <<<"$doc" || die "endpoint: no JWT key"
[ "$(curl -sk -o /dev/null -w '%{http_code}' "https://$EP_B/other")" = 404 ] || die "not 404"
[ "$(curl -sk -o /dev/null -w '%{http_code}' -X POST "https://$EP_B/")" = 405 ] || die "not 405"
# https_spiffe: the endpoint presents spiffe://b.test/mayfly/bundle-endpoint
echo | openssl s_client -connect "$EP_B" 2>/dev/null | openssl x509 -noout -ext subjectAltName |
    grep -q 'URI:spiffe://b.test/mayfly/bundle-endpoint' || die "endpoint SVID"
echo "ok: b.test's endpoint serves its bundle over https_spiffe"

"${CA[@]}" bundle show --admin-socket "$CA_SOCK_A" --format spiffe >"$T/a.jwks"
"${CA[@]}" bundle show --admin-socket "$CA_SOCK_B" --format spiffe >"$T/b.jwks"
"${CA[@]}" bundle show --admin-socket "$CA_SOCK_B" >"$T/b.pem"

# ---- bad input ------------------------------------------------------------------------
fed_a() { "${CA[@]}" federation "$@" --admin-socket "$CA_SOCK_A"; }
echo 'not a bundle' >"$T/junk"
expect_fail "our own trust domain" fed_a create --trust-domain a.test \
    --endpoint-url "https://$EP_B/" --endpoint-spiffe-id spiffe://b.test/mayfly/bundle-endpoint
expect_fail "an invalid trust domain" fed_a create --trust-domain 'B..test' \
    --endpoint-url "https://$EP_B/" --endpoint-spiffe-id spiffe://b.test/x
expect_fail "an http URL" fed_a create --trust-domain b.test --endpoint-url "http://$EP_B/" \
    --endpoint-spiffe-id spiffe://b.test/mayfly/bundle-endpoint --bundle "$T/b.jwks"
expect_fail "a URL with userinfo" fed_a create --trust-domain b.test \
    --endpoint-url "https://u:p@$EP_B/" --endpoint-spiffe-id spiffe://b.test/x --bundle "$T/b.jwks"
expect_fail "https_spiffe without an endpoint ID" fed_a create --trust-domain b.test \
    --endpoint-url "https://$EP_B/" --bundle "$T/b.jwks"
expect_fail "a self-served endpoint without a bootstrap bundle" fed_a create \
    --trust-domain b.test --endpoint-url "https://$EP_B/" \
    --endpoint-spiffe-id spiffe://b.test/mayfly/bundle-endpoint
expect_fail "a bad bundle file" fed_a create --trust-domain b.test --endpoint-url "https://$EP_B/" \
    --endpoint-spiffe-id spiffe://b.test/mayfly/bundle-endpoint --bundle "$T/junk"
expect_fail "bundle set of a bad file" "${CA[@]}" bundle set --admin-socket "$CA_SOCK_A" \
    --trust-domain x.test --bundle "$T/junk"
expect_fail "an unknown profile" fed_a create --trust-domain b.test --profile https_x \
    --endpoint-url "https://$EP_B/" --endpoint-spiffe-id spiffe://b.test/e --bundle "$T/b.jwks"
expect_fail "federates-with our own trust domain" "${CA[@]}" entry create \
    --admin-socket "$CA_SOCK_A" --spiffe-id spiffe://a.test/x \
    --parent-id spiffe://a.test/mayfly/agent/n --selector unix:uid:1 \
    --federates-with spiffe://a.test
expect_fail "federates-with an ID with a path" "${CA[@]}" entry create \
    --admin-socket "$CA_SOCK_A" --spiffe-id spiffe://a.test/x \
    --parent-id spiffe://a.test/mayfly/agent/n --selector unix:uid:1 \
    --federates-with spiffe://b.test/x
[ "$("${CA[@]}" federation list --admin-socket "$CA_SOCK_A" --json | grep -c trust_domain)" = 0 ] ||
    die "a refused relationship was stored"

# ---- federation both ways (https_spiffe, bootstrap bundles; one in PEM) ---------------
fed_a create --trust-domain b.test --endpoint-url "https://$EP_B/" \
    --endpoint-spiffe-id spiffe://b.test/mayfly/bundle-endpoint --bundle "$T/b.pem" >/dev/null
"${CA[@]}" federation create --admin-socket "$CA_SOCK_B" --trust-domain a.test \
    --endpoint-url "https://$EP_A/" --endpoint-spiffe-id spiffe://a.test/mayfly/bundle-endpoint \
    --bundle "$T/a.jwks" >/dev/null
expect_fail "a second relationship with b.test" fed_a create --trust-domain b.test \
    --endpoint-url "https://$EP_B/" --endpoint-spiffe-id spiffe://b.test/e --bundle "$T/b.jwks"
fetched() { grep -q "fetched the bundle of $2 from" "$1/ca.log"; }
wait_until 10 fetched "$T/a" b.test
wait_until 10 fetched "$T/b" a.test
out=$(fed_a refresh --trust-domain b.test)
grep -q 'b.test: ' <<<"$out" || die "refresh: $out"
fed_a show --trust-domain b.test | grep -q 'Last success : 20' || die "show: no last success"
"${CA[@]}" bundle list --admin-socket "$CA_SOCK_A" | grep -q '^b.test .*endpoint' ||
    die "a.test holds no fetched bundle of b.test"
echo "ok: a.test and b.test fetch each other's bundles"

# ---- agents and entries -------------------------------------------------------------
AID=spiffe://a.test/mayfly/agent/na
BID=spiffe://b.test/mayfly/agent/nb
EID=$("${CA[@]}" entry create --admin-socket "$CA_SOCK_A" --spiffe-id spiffe://a.test/web \
    --parent-id "$AID" --selector unix:uid:0 --federates-with spiffe://b.test)
"${CA[@]}" entry create --admin-socket "$CA_SOCK_A" --spiffe-id spiffe://a.test/plain \
    --parent-id "$AID" --selector unix:uid:65534 >/dev/null
"${CA[@]}" entry create --admin-socket "$CA_SOCK_B" --spiffe-id spiffe://b.test/client \
    --parent-id "$BID" --selector unix:uid:0 --federates-with spiffe://a.test >/dev/null
"${CA[@]}" entry show --admin-socket "$CA_SOCK_A" "$EID" | grep -q 'Federates  : spiffe://b.test' ||
    die "entry show does not show federates_with"
SOCK_A=$T/na/agent.sock
SOCK_B=$T/nb/agent.sock
start_agent na "$T/na" A --join-token "$(fresh_token A "$AID")"
start_agent nb "$T/nb" B --join-token "$(fresh_token B "$BID")"
wait_until 10 fetch_has root "$SOCK_A" 'federated bundle: spiffe://b.test'
wait_until 10 fetch_has root "$SOCK_B" 'federated bundle: spiffe://a.test'
wait_until 10 fetch_has nobody "$SOCK_A" spiffe://a.test/plain
if fetch_as nobody "$SOCK_A" | grep -q 'federated'; then
    die "an entry without --federates-with received a foreign bundle"
fi
curl -s -H 'workload.spiffe.io: true' --unix-socket "$SOCK_A" http://x/v1/bundles |
    grep -q '"spiffe://b.test"' || die "/v1/bundles lacks b.test for the federated workload"
curl -s -H 'workload.spiffe.io: true' --unix-socket "$SOCK_A" http://x/v1/jwt/bundles |
    grep -q '"spiffe://b.test"' || die "/v1/jwt/bundles lacks b.test for the federated workload"
echo "ok: the agents deliver exactly the federated bundles"

# the same over gRPC, when the Python gRPC packages are here (agent_grpc.sh
# needs them anyway)
PY=""
for p in /usr/bin/python3 python3; do
    if [ -z "$PY" ] && "$p" -c 'import grpc, grpc_tools.protoc' >/dev/null 2>&1; then PY=$p; fi
done
if [ -n "$PY" ]; then
    grpc_stubs "$T/gen"
    grpc_feds() { # grpc_feds UID: the federated trust domains each RPC gives
        setpriv --reuid="$1" --regid="$1" --clear-groups env MAYFLY_GRPC_GEN="$T/gen" \
            "$PY" - "$SOCK_A" <<'PY'
import os, sys, grpc
sys.path.insert(0, os.environ["MAYFLY_GRPC_GEN"])
import workload_pb2 as pb, workload_pb2_grpc as rpc
s = rpc.SpiffeWorkloadAPIStub(grpc.insecure_channel("unix://" + sys.argv[1]))
md = [("workload.spiffe.io", "true")]
x = next(s.FetchX509SVID(pb.X509SVIDRequest(), metadata=md, timeout=5))
b = next(s.FetchX509Bundles(pb.X509BundlesRequest(), metadata=md, timeout=5))
j = next(s.FetchJWTBundles(pb.JWTBundlesRequest(), metadata=md, timeout=5))
assert all(len(v) > 0 for v in x.federated_bundles.values())
print(",".join(sorted(x.federated_bundles)), ",".join(sorted(b.bundles)),
      ",".join(sorted(j.bundles)))
PY
    }
    out=$(grpc_feds 0)
    [ "$out" = "spiffe://b.test spiffe://a.test,spiffe://b.test spiffe://a.test,spiffe://b.test" ] ||
        die "gRPC, federated workload: $out"
    out=$(grpc_feds 65534)
    [ "$out" = " spiffe://a.test spiffe://a.test" ] || die "gRPC, other workload: $out"
    echo "ok: gRPC FetchX509SVID, FetchX509Bundles, FetchJWTBundles carry exactly b.test"
else
    echo "note: python3 gRPC packages missing; the gRPC renderers are not checked here"
fi

# a JWT-SVID of b.test validates at a.test's agent, for the federated workload only
tok=$("$AGENT_BIN" fetch jwt --socket "$SOCK_B" --audience spiffe://a.test/web 2>/dev/null)
[ -n "$tok" ] || die "no JWT-SVID from b.test's agent"
out=$("$AGENT_BIN" validate jwt --socket "$SOCK_A" --audience spiffe://a.test/web --svid "$tok")
grep -q 'valid: spiffe_id=spiffe://b.test/client' <<<"$out" || die "validate: $out"
if setpriv --reuid=65534 --regid=65534 --clear-groups "$AGENT_BIN" validate jwt \
    --socket "$SOCK_A" --audience spiffe://a.test/web --svid "$tok" >/dev/null 2>&1; then
    die "a workload without federation validated a b.test JWT-SVID"
fi
echo "ok: a b.test JWT-SVID validates for the federated workload, not for the other"

# ---- mTLS with openssl on the written files ------------------------------------------
write_files() {
    rm -rf "$1"
    mkdir -p "$1"
    "$AGENT_BIN" fetch x509 --socket "$2" --write "$1" >/dev/null
}
openssl_mtls() {
    write_files "$T/wa" "$SOCK_A"
    write_files "$T/wb" "$SOCK_B"
    [ -f "$T/wa/federated.b.test.pem" ] && [ -f "$T/wb/federated.a.test.pem" ] ||
        die "no federated.<td>.pem file"
    cmp -s "$T/wa/bundle.0.pem" "$T/wa/federated.b.test.pem" && die "bundles merged"
    local port srv_out="$T/s_server.out" cli_out="$T/s_client.out"
    port=$(pick_port)
    rm -f "$T/s_server.in"
    mkfifo "$T/s_server.in"
    exec 7<>"$T/s_server.in"
    openssl s_server -naccept 1 -accept "127.0.0.1:$port" -tls1_3 -cert "$T/wa/svid.0.pem" \
        -key "$T/wa/svid.0.key" -CAfile "$T/wa/federated.b.test.pem" -Verify 1 \
        -verify_return_error <"$T/s_server.in" >"$srv_out" 2>&1 &
    local spid=$!
    track_pid "$spid"
    wait_until 5 grep -q ACCEPT "$srv_out"
    echo 'hello a.test from b.test' | openssl s_client -connect "127.0.0.1:$port" -tls1_3 \
        -cert "$T/wb/svid.0.pem" -key "$T/wb/svid.0.key" -CAfile "$T/wb/federated.a.test.pem" \
        -verify_return_error >"$cli_out" 2>&1 || die "s_client failed: $(tail -5 "$cli_out")"
    wait_until 5 bash -c "! kill -0 $spid 2>/dev/null"
    exec 7>&-
    grep -q 'Verify return code: 0 (ok)' "$cli_out" || die "s_client did not verify a.test"
    grep -q 'hello a.test from b.test' "$srv_out" || die "s_server got no message"
}
openssl_mtls
echo "ok: openssl s_server (a.test) and s_client (b.test) did mTLS on the written files"
# the same client against our own bundle only is refused: no pooled trust
write_files "$T/wb" "$SOCK_B"
if openssl verify -CAfile "$T/wb/bundle.0.pem" "$T/wa/svid.0.pem" >/dev/null 2>&1; then
    die "b.test's own bundle verified an a.test SVID"
fi

# ---- mTLS with mayfly-mtls --------------------------------------------------------------
mtls_once() { # mtls_once FLAG VALUE: the client's --expect-id or --expect-td
    local out="$T/mtls-server.out"
    : >"$out"
    "$MTLS" server --listen 127.0.0.1:0 --allow-td b.test --once \
        --socket "unix://$SOCK_A" >"$out" 2>&1 &
    local spid=$!
    track_pid "$spid"
    wait_until 10 grep -q '^server: listening on' "$out"
    local addr
    addr=$(sed -n 's/^server: listening on \([^;]*\);.*/\1/p' "$out")
    "$MTLS" client --connect "$addr" "$1" "$2" \
        --socket "unix://$SOCK_B" >"$T/mtls-client.out" 2>&1 ||
        die "mayfly-mtls client failed: $(cat "$T/mtls-client.out")"
    wait "$spid" || die "mayfly-mtls server refused: $(cat "$out")"
    grep -q 'accepted peer spiffe://b.test/client' "$out" || die "server: $(cat "$out")"
}
mtls_once --expect-id spiffe://a.test/web
echo "ok: mayfly-mtls server (a.test, --allow-td b.test) and client (b.test) did mTLS"

# ---- b.test rotates ------------------------------------------------------------------------
active_key() {
    "${CA[@]}" ca show --admin-socket "$CA_SOCK_B" | awk '$2 == "active" {print $1}'
}
b_seq() {
    "${CA[@]}" bundle list --admin-socket "$CA_SOCK_A" | awk '$1 == "b.test" {print $3}'
}
first_key=$(active_key)
seq0=$(b_seq)
issuer0=$(openssl x509 -in "$T/wb/svid.0.pem" -noout -issuer)
# a.test learns the next key (a higher sequence) while the first still signs
learned() { [ "$(b_seq)" -gt "$seq0" ]; }
wait_until 30 learned
[ "$(active_key)" = "$first_key" ] || die "a.test learned b.test's next key only after it signed"
echo "ok: a.test fetched b.test's next CA key before it signs"
rotated() { [ "$(active_key)" != "$first_key" ]; }
wait_until 30 rotated
# b.test's workload gets an SVID from the new key (svid-ttl 4 s)
new_svid() {
    write_files "$T/wb" "$SOCK_B"
    [ "$(openssl x509 -in "$T/wb/svid.0.pem" -noout -issuer)" != "$issuer0" ]
}
wait_until 15 new_svid
openssl_mtls
mtls_once --expect-td a.test
echo "ok: after b.test's rotation, mTLS works both ways with no manual step"

# ---- b.test's endpoint stopped ---------------------------------------------------------------
kill "$CA_PID_B"
wait "$CA_PID_B" 2>/dev/null || true
wait_until 10 grep -q 'cannot fetch the bundle of b.test .*keeping the last bundle (spiffe_sequence [0-9]*, fetched [0-9]*s ago)' "$T/a/ca.log"
grep -m1 'cannot fetch the bundle of b.test' "$T/a/ca.log"
"${CA[@]}" bundle list --admin-socket "$CA_SOCK_A" | grep -q '^b.test ' || die "bundle dropped"
fed_a show --trust-domain b.test | grep -q 'Last error   : ' || die "show: no last error"
expect_fail "a refresh of an unreachable endpoint" fed_a refresh --trust-domain b.test
fetch_has root "$SOCK_A" 'federated bundle: spiffe://b.test' || die "agent lost b.test"
# an unreachable peer blocks nothing: an entry federating with it is created at once
t0=$(date +%s%N)
"${CA[@]}" entry create --admin-socket "$CA_SOCK_A" --spiffe-id spiffe://a.test/late \
    --parent-id "$AID" --selector unix:uid:4242 --federates-with spiffe://b.test >/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
echo "measured: entry create with b.test unreachable took ${ms} ms"
metrics=$(curl -s "http://127.0.0.1:$MPORT/metrics")
grep -Eq '^mayfly_ca_federation_fetches_total\{result="stored"\} [1-9]' <<<"$metrics" ||
    die "no stored fetch counted: $(grep federation <<<"$metrics")"
grep -Eq '^mayfly_ca_federation_fetches_total\{result="failed"\} [1-9]' <<<"$metrics" ||
    die "no failed fetch counted: $(grep federation <<<"$metrics")"
echo "ok: with b.test's endpoint down, a.test keeps the last bundle and says so"

# ---- https_web --------------------------------------------------------------------------------
chmod 644 "$T/web/ep.key"
if "${CA[@]}" run --data-dir "$T/c0" --admin-socket "$T/c0.sock" --trust-domain c.test \
    --listen 127.0.0.1:0 --bundle-endpoint 127.0.0.1:0 --bundle-endpoint-cert "$T/web/ep.pem" \
    --bundle-endpoint-key "$T/web/ep.key" >"$T/c0.log" 2>&1; then
    die "a CA started with a bundle endpoint key open to others"
fi
grep -q 'chmod 600' "$T/c0.log" || die "no clear error for the 0644 key: $(cat "$T/c0.log")"
chmod 600 "$T/web/ep.key"
TD=c.test start_ca C "$T/c" --bundle-endpoint 127.0.0.1:0 \
    --bundle-endpoint-cert "$T/web/ep.pem" --bundle-endpoint-key "$T/web/ep.key"
EP_C=$(ep_of "$T/c")
port_c=${EP_C##*:}
fed_a create --trust-domain c.test --profile https_web \
    --endpoint-url "https://127.0.0.1:$port_c/" >/dev/null
wait_until 10 fetched "$T/a" c.test
fed_a refresh --trust-domain c.test | grep -q 'c.test: ' || die "https_web refresh"
# a redirect is followed with the same checks (F9): a small HTTPS server with
# the same certificate sends a.test to c.test's endpoint
rport=$(pick_port)
python3 - "$rport" "$T/web/ep.pem" "$T/web/ep.key" "https://127.0.0.1:$port_c/" \
    >"$T/redirect.log" 2>&1 <<'PY' &
import http.server, ssl, sys
port, cert, key, target = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()
srv = http.server.HTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", flush=True)
srv.serve_forever()
PY
track_pid $!
wait_until 10 grep -q listening "$T/redirect.log"
fed_a update --trust-domain c.test --endpoint-url "https://127.0.0.1:$rport/old" >/dev/null
fed_a refresh --trust-domain c.test | grep -q 'c.test: ' || die "refresh through a redirect"
grep -q "federation: c.test redirects (HTTP 302) to https://127.0.0.1:$port_c/" "$T/a/ca.log" ||
    die "the redirect was not logged"
fed_a show --trust-domain c.test | grep -q "Endpoint URL : https://127.0.0.1:$rport/old" ||
    die "the redirect target was stored"
# the certificate names 127.0.0.1, not localhost: refused
fed_a update --trust-domain c.test --endpoint-url "https://localhost:$port_c/" >/dev/null
expect_fail "an https_web endpoint whose certificate names another host" \
    fed_a refresh --trust-domain c.test
fed_a delete --trust-domain c.test >/dev/null
expect_fail "show a deleted relationship" fed_a show --trust-domain c.test
"${CA[@]}" bundle list --admin-socket "$CA_SOCK_A" | grep -q '^c.test ' &&
    die "deleting the relationship left its bundle"
echo "ok: https_web against an openssl-made certificate; wrong host refused"

# ---- static bundles ----------------------------------------------------------------------------
"${CA[@]}" bundle set --admin-socket "$CA_SOCK_A" --trust-domain d.test --bundle "$T/b.pem" \
    >/dev/null
"${CA[@]}" bundle show --admin-socket "$CA_SOCK_A" --trust-domain d.test | grep -q 'BEGIN CERT' ||
    die "bundle show of a static bundle"
"${CA[@]}" bundle delete --admin-socket "$CA_SOCK_A" --trust-domain d.test >/dev/null
expect_fail "show a deleted bundle" "${CA[@]}" bundle show --admin-socket "$CA_SOCK_A" \
    --trust-domain d.test
echo "ok: static bundles set, shown and deleted"

# ---- the entry stops federating -----------------------------------------------------------------
write_files "$T/wa" "$SOCK_A"
[ -f "$T/wa/federated.b.test.pem" ] || die "no federated.b.test.pem before the update"
"${CA[@]}" entry update --admin-socket "$CA_SOCK_A" "$EID" --no-federation >/dev/null
no_fed() { ! fetch_as root "$SOCK_A" | grep -q 'federated bundle'; }
wait_until 10 no_fed
"$AGENT_BIN" fetch x509 --socket "$SOCK_A" --write "$T/wa" >/dev/null
[ -f "$T/wa/federated.b.test.pem" ] && die "fetch --write left the ended federation's bundle"
[ -f "$T/wa/bundle.0.pem" ] || die "fetch --write lost our own bundle"
echo "ok: an entry that stops federating loses the foreign bundle, files included"
