#!/usr/bin/env bash
# Oversized and malformed input on every server, each answered with a
# clear refusal (an HTTP 4xx with an error code, a gRPC error status, or a
# closed connection) and nothing changed; every server still answers good
# requests afterwards, and nothing was logged by a sanitizer (under `make
# check`) or valgrind (under `make valgrind`).
#   CA agent API (HTTPS): huge headers, a garbage request line, a body over
#     the pre-authentication cap, bad Content-Length, bad chunking, and JSON
#     that is truncated, deeply nested, duplicated, mistyped, or holds a NUL;
#   CA admin API (Unix socket): the same kinds of HTTP and JSON;
#   agent Workload API (Unix socket, HTTP/1.1 and gRPC on the same socket):
#     huge headers, a body on GET, garbage, a gRPC preface followed by
#     garbage frames, an oversized header block, a message with a length
#     prefix of 4 GiB, a truncated message, a call without the security
#     header.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
command -v python3 >/dev/null || skip "python3 missing"
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
AG=spiffe://example.org/mayfly/agent/n1
add_entry a spiffe://example.org/app $AG unix:uid:0 >/dev/null
"$CA_BIN" bundle show --admin-socket "$CA_SOCK_a" >"$T/bundle.pem"
mkdir -p "$T/n2"
"$CA_CLIENT" attest --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n2" \
    --token "$(fresh_token a spiffe://example.org/mayfly/agent/n2)" >/dev/null || die attest
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $AG)"
wait_until 10 fetch_as root "$AGENT_SOCK_n1"

# raw.py MODE ADDR FILE: sends FILE's bytes (TLS to HOST:PORT, or a Unix
# socket), prints the status line of the answer, "closed" if the server
# closed without one, or "gRPC status N" / "GOAWAY" for HTTP/2 answers
cat >"$T/raw.py" <<'PY'
import os, socket, ssl, sys, time
mode, addr, path = sys.argv[1:4]
wait = float(os.environ.get('RAW_WAIT', '3'))
data = open(path, 'rb').read()
if mode == 'tls':
    host, port = addr.rsplit(':', 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=wait))
else:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(wait)
    s.connect(addr)
try:
    s.sendall(data)
except OSError:
    pass

def h2_events(buf):
    # frames: 9-byte header (length, type, flags, stream id); skip the
    # server's own SETTINGS and acks
    ev, i = [], 0
    while i + 9 <= len(buf):
        n, t, fl = int.from_bytes(buf[i:i + 3], 'big'), buf[i + 3], buf[i + 4]
        if i + 9 + n > len(buf):
            break
        if t == 7:
            ev.append('GOAWAY')
        elif t == 3:
            ev.append('RST_STREAM')
        elif t == 1 and fl & 1:
            ev.append('gRPC trailers')
        i += 9 + n
    return ev

got = b''
timed_out = False
end = time.time() + wait
while time.time() < end and len(got) < 65536:
    try:
        b = s.recv(65536)
    except socket.timeout:
        timed_out = True
        break
    except (OSError, ssl.SSLError):
        break
    if not b:
        break
    got += b
    if got.startswith(b'HTTP/') and b'\r\n' in got:
        break
    if mode == 'h2' and h2_events(got):
        break
if got.startswith(b'HTTP/'):
    print(got.split(b'\r\n', 1)[0].decode('latin1'))
elif mode == 'h2':
    ev = h2_events(got)
    print(' '.join(ev) if ev else ('no answer' if got else 'closed'))
else:
    print(('timeout' if timed_out else 'closed') if not got else 'bytes: ' + repr(got[:40]))
PY
send() { python3 "$T/raw.py" "$@" 2>&1 || true; }

# expect DESC WANT MODE ADDR BYTES-FILE
expect() {
    local desc=$1 want=$2 out
    export RAW_WAIT=${RAW_WAIT:-3}
    shift 2
    out=$(send "$@")
    grep -Eq "$want" <<<"$out" || die "$desc: got '$out', want /$want/"
    echo "ok (refused): $desc: $out"
}
mk() { python3 -c "import sys; sys.stdout.buffer.write($2)" >"$T/$1"; }

before=$(registry_digest a)
# --- CA agent API (TLS)
mk hdr "b'GET /v1/sync HTTP/1.1\r\nHost: x\r\n' + b'X-A: ' + b'a'*200000 + b'\r\n\r\n'"
expect "CA API: 200 KB header" 'HTTP/1.1 4[0-9][0-9]|closed' tls "$CA_ADDR_a" "$T/hdr"
mk garbage "b'GARBAGE\r\n\r\n'"
expect "CA API: garbage request line" 'HTTP/1.1 400|closed' tls "$CA_ADDR_a" "$T/garbage"
mk badhdr "b'GET /v1/sync HTTP/1.1\r\nBad Header Line\r\n\r\n'"
expect "CA API: malformed header line" 'HTTP/1.1 400' tls "$CA_ADDR_a" "$T/badhdr"
mk badver "b'GET /v1/sync HTTP/9.9\r\n\r\n'"
expect "CA API: unknown HTTP version" 'HTTP/1.1 505' tls "$CA_ADDR_a" "$T/badver"
# NUL bytes in the request line: libmicrohttpd waits for more; the
# connection is held until the idle timeout, the daemon carries on
mk nul "b'\x00\x01GARBAGE \xff\xfe\r\n\r\n'"
RAW_WAIT=1 expect "CA API: NUL bytes in the request line (held until the idle timeout)" \
    'timeout|closed|HTTP/1.1 4' tls "$CA_ADDR_a" "$T/nul"
mk big "b'POST /v1/attest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n\r\n' + b'{' + b' '*19999"
expect "CA API: attest body over 16 KiB" 'HTTP/1.1 413' tls "$CA_ADDR_a" "$T/big"
mk neglen "b'POST /v1/attest HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}'"
expect "CA API: negative Content-Length" 'HTTP/1.1 4[0-9][0-9]|closed' tls "$CA_ADDR_a" "$T/neglen"
mk chunk "b'POST /v1/attest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx\r\n'"
expect "CA API: chunk size overflow" 'HTTP/1.1 4[0-9][0-9]|closed' tls "$CA_ADDR_a" "$T/chunk"
for case in 'trunc:{"join_token":"a","csr":"' 'deep:'"$(printf '[%.0s' $(seq 1 10000))" \
    'dup:{"join_token":"a","join_token":"b","csr":"x"}' 'type:{"join_token":["a"],"csr":1}' \
    'nul:{"join_token":"a\u0000b","csr":"x"}' 'unknown:{"join_token":"a","csr":"x","admin":true}' \
    'notobj:"just a string"' 'empty:'; do
    printf '%s' "${case#*:}" >"$T/body"
    out=$("$CA_CLIENT" raw --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n2" \
        --path /v1/attest --anon 1 --body-file "$T/body" 2>&1) && die "CA API: ${case%%:*} JSON accepted"
    grep -q 'status=400' <<<"$out" || die "CA API: ${case%%:*} JSON: $out"
    echo "ok (refused): CA API: ${case%%:*} JSON: $(sed -n 2p <<<"$out" | head -c 160)"
done
# the same on an authenticated endpoint, with a 5 MB body (sign cap 4 MiB)
head -c 5000000 /dev/zero | tr '\0' ' ' >"$T/body"
out=$("$CA_CLIENT" raw --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n2" \
    --path /v1/sign --body-file "$T/body" 2>&1) && die "CA API: 5 MB sign body accepted"
grep -Eq 'status=413|closed the connection before reading the whole request' <<<"$out" ||
    die "CA API: 5 MB sign body: $out"
echo "ok (refused): CA API: 5 MB sign body: $(head -1 <<<"$out")"

# --- CA admin API (Unix socket)
expect "admin: 200 KB header" 'HTTP/1.1 4[0-9][0-9]|closed' unix "$CA_SOCK_a" "$T/hdr"
expect "admin: garbage request line" 'HTTP/1.1 400|closed' unix "$CA_SOCK_a" "$T/garbage"
expect "admin: malformed header line" 'HTTP/1.1 400' unix "$CA_SOCK_a" "$T/badhdr"
mk abig "b'POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n' + b' '*70000"
expect "admin: entry body over 64 KiB" 'HTTP/1.1 413' unix "$CA_SOCK_a" "$T/abig"
for body in '{"spiffe_id":"spiffe://example.org/x","parent_id":"'"$AG"'","selectors":["unix:uid:1"],"spiffe_id":"spiffe://example.org/y"}' \
    '{"spiffe_id":"spiffe://example.org/x","parent_id":"'"$AG"'","selectors":"unix:uid:1"}' \
    '{"spiffe_id":"spiffe://example.org/x","parent_id":"'"$AG"'","selectors":["unix:uid:1"],"ttl":1e99}' \
    '{"spiffe_id":"spiffe://example.org/x\u0000y","parent_id":"'"$AG"'","selectors":["unix:uid:1"]}' \
    "$(printf '{"a":%.0s' $(seq 1 5000))"; do
    code=$(curl -s -o "$T/resp" -w '%{http_code}' --unix-socket "$CA_SOCK_a" \
        -H 'Content-Type: application/json' --data-binary "$body" http://x/v1/entries || true)
    [ "$code" = 400 ] || die "admin: malformed entry JSON got $code: $(cat "$T/resp")"
    grep -q '"error":"invalid_argument"' "$T/resp" || die "admin: no error code"
done
echo "ok (refused): admin: 5 malformed entry bodies (duplicate key, wrong type, huge number, NUL, deep nesting): 400 invalid_argument"
for body in '{"spiffe_id":"'"$AG"'","ttl":-1}' '{"spiffe_id":"'"$AG"'","ttl":"10"}' '{"spiffe_id":5}'; do
    code=$(curl -s -o "$T/resp" -w '%{http_code}' --unix-socket "$CA_SOCK_a" \
        --data-binary "$body" http://x/v1/tokens || true)
    [ "$code" = 400 ] || die "admin: malformed token body got $code"
done
code=$(curl -s -o "$T/resp" -w '%{http_code}' --unix-socket "$CA_SOCK_a" \
    --data-binary '{"spiffe_id":"'"$AG"'","reason":"x"}' http://x/v1/agents/ban || true)
[ "$code" = 400 ] || die "admin: ban with an unknown member got $code"
echo "ok (refused): admin: malformed token and ban bodies: 400"
[ "$(registry_digest a)" = "$before" ] || die "the registry changed"

# --- agent Workload API (HTTP/1.1)
expect "workload: 200 KB header" 'HTTP/1.1 4[0-9][0-9]|closed' unix "$AGENT_SOCK_n1" "$T/hdr"
expect "workload: garbage" 'HTTP/1.1 400|closed' unix "$AGENT_SOCK_n1" "$T/garbage"
expect "workload: malformed header line" 'HTTP/1.1 400' unix "$AGENT_SOCK_n1" "$T/badhdr"
RAW_WAIT=1 expect "workload: NUL bytes in the request line (held until the idle timeout)" \
    'timeout|closed|HTTP/1.1 4' unix "$AGENT_SOCK_n1" "$T/nul"
mk wbody "b'GET /v1/x509 HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\nContent-Length: 100000\r\n\r\n' + b'x'*100000"
expect "workload: 100 KB body on GET" 'HTTP/1.1 4[0-9][0-9]|closed' unix "$AGENT_SOCK_n1" "$T/wbody"
mk wlong "b'GET /v1/x509?' + b'a=b&'*30000 + b' HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n\r\n'"
expect "workload: 120 KB query string" 'HTTP/1.1 4[0-9][0-9]|closed' unix "$AGENT_SOCK_n1" "$T/wlong"
mk wdup "b'GET /v1/x509 HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: false\r\nworkload.spiffe.io: true\r\n\r\n'"
expect "workload: security header false+true" 'HTTP/1.1 400' unix "$AGENT_SOCK_n1" "$T/wdup"

# --- agent Workload API (gRPC on the same socket)
PREFACE="b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + b'\x00\x00\x00\x04\x00\x00\x00\x00\x00'"
mk g1 "$PREFACE + b'\xff'*64"
expect "gRPC: garbage frames after the preface" 'GOAWAY|closed' h2 "$AGENT_SOCK_n1" "$T/g1"
# a HEADERS frame whose block claims 1 MiB (over SETTINGS limits)
mk g2 "$PREFACE + (1<<20).to_bytes(3,'big') + b'\x01\x04\x00\x00\x00\x01' + b'\x00'*1000"
expect "gRPC: 1 MiB header block" 'GOAWAY|closed' h2 "$AGENT_SOCK_n1" "$T/g2"
# a valid HEADERS frame (literal fields, no Huffman) for FetchX509SVID, then
# DATA whose gRPC message prefix claims 4 GiB
cat >"$T/h2.py" <<'PY'
import sys
def lit(n, v):
    n, v = n.encode(), v.encode()
    return b'\x00' + bytes([len(n)]) + n + bytes([len(v)]) + v
def frame(t, flags, sid, p):
    return len(p).to_bytes(3, 'big') + bytes([t, flags]) + sid.to_bytes(4, 'big') + p
hdrs = (lit(':method', 'POST') + lit(':scheme', 'http') + lit(':authority', 'localhost') +
        lit(':path', '/SpiffeWorkloadAPI/FetchX509SVID') + lit('content-type', 'application/grpc') +
        lit('te', 'trailers') + (lit('workload.spiffe.io', 'true') if sys.argv[2] == 'hdr' else b''))
pre = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + frame(4, 0, 0, b'')
body = {'huge': b'\x00\xff\xff\xff\xff' + b'\x00' * 64, 'trunc': b'\x00\x00\x00\x00\x10\x0a',
        'ok': b'\x00\x00\x00\x00\x00'}[sys.argv[3]]
sys.stdout.buffer.write(pre + frame(1, 4, 1, hdrs) + frame(0, 1, 1, body))
PY
python3 "$T/h2.py" x hdr huge >"$T/g3"
expect "gRPC: message length prefix of 4 GiB" 'GOAWAY|RST_STREAM|gRPC trailers' h2 "$AGENT_SOCK_n1" "$T/g3"
python3 "$T/h2.py" x hdr trunc >"$T/g4"
expect "gRPC: truncated message" 'GOAWAY|RST_STREAM|gRPC trailers' h2 "$AGENT_SOCK_n1" "$T/g4"
python3 "$T/h2.py" x nohdr ok >"$T/g5"
expect "gRPC: no security header" 'RST_STREAM|gRPC trailers' h2 "$AGENT_SOCK_n1" "$T/g5"

# --- every server still serves
fetch_as root "$AGENT_SOCK_n1" | grep -q example.org/app || die "the agent no longer serves"
"$AGENT_BIN" healthcheck --socket "$AGENT_SOCK_n1" >/dev/null || die "agent health"
[ "$("$CA_BIN" healthcheck --admin-socket "$CA_SOCK_a")" = ok ] || die "CA health"
"$CA_CLIENT" sync --server "$CA_ADDR_a" --bundle "$T/bundle.pem" --dir "$T/n2" >/dev/null ||
    die "the CA agent API no longer serves"
[ "$(registry_digest a)" = "$before" ] || die "the registry changed"
kill -0 "$AGENT_PID_n1" && kill -0 "$CA_PID_a" || die "a daemon died"
echo "attack_input: ok"
