#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Health and metrics of both daemons, scraped over HTTP and parsed strictly:
#   - a CA and an agent with --metrics-listen 127.0.0.1:0 (the bound address
#     is read from their logs); /live and /ready answer 200, unknown paths
#     404, other methods 405, HEAD works;
#   - a workload fetches its SVID, a request without the security header and
#     (as root) a process with no entry are refused; a renewal happens;
#   - both /metrics documents are parsed by a strict exposition-format 0.0.4
#     parser (HELP/TYPE before samples, label syntax and escapes, float
#     values, no duplicate series, counters >= 0, histogram buckets with
#     increasing "le", monotone counts, +Inf == _count, _sum present); the
#     parser is first shown to reject broken documents;
#   - the values say what happened: SVIDs issued >= 1 on both sides, denials
#     by reason, a fetch latency and a renewal lag observed, expiry gauges in
#     range, ready == 1;
#   - with the CA stopped, the agent logs the expiry warning for an SVID that
#     could not be renewed and counts it.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"

make_tmp
chmod 0755 "$T" # the uid-65534 fetch must reach the agent socket
AGENT_ID=spiffe://example.org/mayfly/agent/m1
LOG_ON_FAIL=$T/agent.log

# ---- the strict parser --------------------------------------------------------------------
cat >"$T/promparse.py" <<'PY'
"""Strict parser for the Prometheus text exposition format 0.0.4, as far as
mayfly's daemons produce it. Exits 1 with a message on the first violation;
otherwise prints one line per sample: name{labels} value (labels sorted)."""
import math
import re
import sys

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
TYPES = {'counter', 'gauge', 'histogram', 'summary', 'untyped'}


def fail(lineno, msg):
    sys.stderr.write('exposition error at line %d: %s\n' % (lineno, msg))
    sys.exit(1)


def parse_value(s, lineno):
    if s in ('NaN', '+Inf', '-Inf', 'Inf'):
        return {'NaN': math.nan, '+Inf': math.inf, 'Inf': math.inf, '-Inf': -math.inf}[s]
    if not re.fullmatch(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?', s):
        fail(lineno, 'bad value %r' % s)
    return float(s)


def parse_labels(s, lineno):
    """s is the text between the braces. Returns a dict."""
    out = {}
    i = 0
    while i < len(s):
        m = LABEL.match(s, i)
        if not m:
            fail(lineno, 'bad label name at %r' % s[i:])
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            fail(lineno, 'expected =" after label %s' % name)
        i += 2
        val = []
        while True:
            if i >= len(s):
                fail(lineno, 'unterminated label value')
            c = s[i]
            if c == '\\':
                nxt = s[i + 1:i + 2]
                if nxt not in ('\\', '"', 'n'):
                    fail(lineno, 'bad escape \\%s in label value' % nxt)
                val.append({'\\': '\\', '"': '"', 'n': '\n'}[nxt])
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == '\n':
                fail(lineno, 'newline in label value')
            else:
                val.append(c)
                i += 1
        if name in out:
            fail(lineno, 'label %s twice' % name)
        out[name] = ''.join(val)
        if i < len(s):
            if s[i] != ',':
                fail(lineno, 'expected , between labels')
            i += 1
            if i == len(s):
                fail(lineno, 'trailing comma in labels')
    return out


def main(path):
    data = open(path, 'rb').read()
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        fail(0, 'not UTF-8')
    if text and not text.endswith('\n'):
        fail(0, 'document does not end with a newline')
    families = {}   # name -> {'type', 'help', 'samples'}
    order = []
    current = None
    seen = set()
    for lineno, line in enumerate(text.split('\n')[:-1] if text else [], 1):
        if line == '':
            fail(lineno, 'empty line')
        if line.startswith('#'):
            parts = line.split(' ', 3)
            if len(parts) >= 3 and parts[1] in ('HELP', 'TYPE'):
                name = parts[2]
                if not NAME.fullmatch(name):
                    fail(lineno, 'bad metric name %r' % name)
                fam = families.setdefault(name, {'type': None, 'help': None, 'samples': []})
                if fam['samples']:
                    fail(lineno, '%s for %s after its samples' % (parts[1], name))
                if parts[1] == 'HELP':
                    if fam['help'] is not None:
                        fail(lineno, 'second HELP for %s' % name)
                    fam['help'] = parts[3] if len(parts) > 3 else ''
                    if re.search(r'\\[^\\n]', fam['help'].replace('\\\\', '')):
                        fail(lineno, 'bad escape in HELP')
                else:
                    if fam['type'] is not None:
                        fail(lineno, 'second TYPE for %s' % name)
                    if len(parts) != 4 or parts[3] not in TYPES:
                        fail(lineno, 'bad TYPE line')
                    fam['type'] = parts[3]
                if name not in order:
                    order.append(name)
                current = name
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)', line)
        if not m:
            fail(lineno, 'not a sample line: %r' % line)
        sname, labels, value = m.group(1), parse_labels(m.group(3) or '', lineno), m.group(4)
        v = parse_value(value, lineno)
        fam_name = None
        if current is not None:
            ftype = families[current]['type']
            if sname == current:
                fam_name = current
            elif ftype == 'histogram' and sname in (current + '_bucket', current + '_sum',
                                                    current + '_count'):
                fam_name = current
        if fam_name is None:
            fail(lineno, 'sample %s outside its family (HELP/TYPE must come first)' % sname)
        fam = families[fam_name]
        if fam['type'] is None:
            fail(lineno, 'sample before TYPE for %s' % fam_name)
        key = (sname, tuple(sorted(labels.items())))
        if key in seen:
            fail(lineno, 'duplicate series %s %s' % key)
        seen.add(key)
        if fam['type'] == 'counter' and not (v >= 0):
            fail(lineno, 'counter %s is %r' % (sname, v))
        if fam['type'] == 'histogram' and sname.endswith('_bucket') and 'le' not in labels:
            fail(lineno, 'bucket without le')
        fam['samples'].append((sname, labels, v, lineno))
    for name in order:
        fam = families[name]
        if fam['type'] is None or fam['help'] is None:
            fail(0, '%s lacks HELP or TYPE' % name)
        if fam['type'] == 'counter' and not name.endswith('_total'):
            fail(0, 'counter %s does not end in _total' % name)
        if fam['type'] != 'histogram':
            continue
        buckets = [(s[1], s[2], s[3]) for s in fam['samples'] if s[0] == name + '_bucket']
        sums = [s for s in fam['samples'] if s[0] == name + '_sum']
        counts = [s for s in fam['samples'] if s[0] == name + '_count']
        if not buckets or len(sums) != 1 or len(counts) != 1:
            fail(0, 'histogram %s needs buckets, one _sum and one _count' % name)
        prev_le, prev_n = -math.inf, 0
        for labels, n, ln in buckets:
            le = parse_value(labels['le'], ln)
            if not le > prev_le:
                fail(ln, 'le not increasing in %s' % name)
            if n < prev_n or n != int(n):
                fail(ln, 'bucket counts of %s not monotone whole numbers' % name)
            prev_le, prev_n = le, n
        if prev_le != math.inf:
            fail(0, 'histogram %s has no +Inf bucket' % name)
        if counts[0][2] != prev_n:
            fail(0, '%s_count %r != +Inf bucket %r' % (name, counts[0][2], prev_n))
    for name in order:
        for sname, labels, v, _ in families[name]['samples']:
            lab = ','.join('%s="%s"' % kv for kv in sorted(labels.items()))
            print('%s%s %r' % (sname, '{%s}' % lab if lab else '', v))


main(sys.argv[1])
PY
parse() { python3 "$T/promparse.py" "$1"; }
# value FILE SERIES: the parsed value of one series (as printed by the parser)
value() { awk -v s="$2" '$1 == s { print $2 }' "$1"; }
ge() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$1" "$2"; }
between() {
    python3 -c 'import sys; v=float(sys.argv[1]); sys.exit(0 if float(sys.argv[2]) <= v <= float(sys.argv[3]) else 1)' \
        "$1" "$2" "$3"
}

# the parser must be able to fail
bad() {
    printf '%b' "$2" >"$T/bad.txt"
    if parse "$T/bad.txt" >/dev/null 2>&1; then die "parser accepted: $1"; fi
}
bad "sample before TYPE" 'x 1\n'
bad "duplicate series" '# HELP a_total h\n# TYPE a_total counter\na_total 1\na_total 2\n'
bad "bad escape" '# HELP a_total h\n# TYPE a_total counter\na_total{l="\\q"} 1\n'
bad "negative counter" '# HELP a_total h\n# TYPE a_total counter\na_total -1\n'
bad "non-monotone buckets" '# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n'
bad "+Inf != count" '# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n'
bad "le not increasing" '# HELP h h\n# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'
bad "no newline at end" '# HELP g h\n# TYPE g gauge\ng 1'
bad "bad value" '# HELP g h\n# TYPE g gauge\ng one\n'
printf '# HELP g h\n# TYPE g gauge\ng{a="x\\"y\\\\z\\n"} +Inf\n' >"$T/good.txt"
parse "$T/good.txt" >/dev/null || die "parser refused a valid document"
echo "ok: the parser refuses broken documents"

# ---- the chain ---------------------------------------------------------------------------------
start_ca m "$T/ca" --svid-ttl 20s --ca-ttl 10m --metrics-listen 127.0.0.1:0
CA_M=$(sed -n 's/.*metrics listening address=\([^ ]*\).*/\1/p' "$T/ca/ca.log" | tail -1)
[ -n "$CA_M" ] || die "the CA did not log its metrics address"
CA=("$CA_BIN")
"${CA[@]}" bundle show --admin-socket "$CA_SOCK_m" --format pem >"$T/bundle.pem"
TOKEN=$("${CA[@]}" token generate --admin-socket "$CA_SOCK_m" --spiffe-id "$AGENT_ID")
"${CA[@]}" entry create --admin-socket "$CA_SOCK_m" --spiffe-id spiffe://example.org/m-app \
    --parent-id "$AGENT_ID" --selector "unix:uid:$(id -u)" >/dev/null

SOCK=$T/agent.sock
"$MAYFLY_BIN/mayfly-agent" run --data-dir "$T/agent" --server "$CA_ADDR_m" \
    --trust-bundle "$T/bundle.pem" --join-token "$TOKEN" --socket "$SOCK" \
    --metrics-listen 127.0.0.1:0 --expiry-warning 12s >"$T/agent.log" 2>&1 &
track_pid $!
wait_for_log "$T/agent.log" 'mayfly-agent ready' 15
AG_M=$(sed -n 's/.*metrics listening address=\([^ ]*\).*/\1/p' "$T/agent.log" | tail -1)
[ -n "$AG_M" ] || die "the agent did not log its metrics address"

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
for a in "$CA_M" "$AG_M"; do
    [ "$(code "http://$a/live")" = 200 ] || die "/live on $a"
    [ "$(code "http://$a/ready")" = 200 ] || die "/ready on $a"
    [ "$(code "http://$a/nope")" = 404 ] || die "/nope on $a is not 404"
    [ "$(code -X POST "http://$a/metrics")" = 405 ] || die "POST /metrics on $a is not 405"
    [ "$(code -I "http://$a/metrics")" = 200 ] || die "HEAD /metrics on $a"
    ct=$(curl -s -o /dev/null -w '%{content_type}' "http://$a/metrics")
    [ "$ct" = "text/plain; version=0.0.4; charset=utf-8" ] || die "content type on $a: $ct"
done
echo "ok: /live, /ready, 404, 405, HEAD and the content type on both daemons"

# ---- traffic ------------------------------------------------------------------------------------
for _ in $(seq 1 100); do
    "$MAYFLY_BIN/mayfly-agent" fetch x509 --socket "$SOCK" 2>/dev/null | grep -q m-app && break
    sleep 0.05
done
"$MAYFLY_BIN/mayfly-agent" fetch x509 --socket "$SOCK" | grep -q m-app || die "no SVID served"
[ "$(code --unix-socket "$SOCK" http://x/v1/x509)" = 400 ] || die "no header: not 400"
denied_nobody=0
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    if setpriv --reuid=65534 --regid=65534 --clear-groups "$MAYFLY_BIN/mayfly-agent" fetch x509 \
        --socket "$SOCK" >/dev/null 2>&1; then die "uid 65534 was served"; fi
    denied_nobody=1
fi
# a renewal on schedule (20 s SVIDs renew after 3.5-6.5 s)
for _ in $(seq 1 300); do
    curl -s "http://$AG_M/metrics" >"$T/agent.prom"
    grep -q '^mayfly_agent_svid_renewals_total{kind="workload"} [1-9]' "$T/agent.prom" && break
    sleep 0.05
done

# ---- scrape and parse ---------------------------------------------------------------------------
curl -s "http://$CA_M/metrics" >"$T/ca.prom"
# one gRPC call the agent refuses (FetchJWTSVID without an audience), over
# HTTP/2 with curl: it must be counted by method and code
printf '\0\0\0\0\0' >"$T/empty.grpc"
curl -s --http2-prior-knowledge --unix-socket "$SOCK" -H 'content-type: application/grpc' \
    -H 'te: trailers' -H 'workload.spiffe.io: true' --data-binary @"$T/empty.grpc" \
    -o /dev/null http://localhost/SpiffeWorkloadAPI/FetchJWTSVID || true
curl -s "http://$AG_M/metrics" >"$T/agent.prom"
parse "$T/ca.prom" >"$T/ca.parsed" || die "the CA's /metrics is not valid exposition format"
parse "$T/agent.prom" >"$T/agent.parsed" || die "the agent's /metrics is not valid exposition format"
echo "ok: both documents parse strictly ($(wc -l <"$T/ca.parsed") + $(wc -l <"$T/agent.parsed") samples)"

check() { # check FILE SERIES OP ARGS...
    local v
    v=$(value "$1" "$2")
    [ -n "$v" ] || die "$2 missing from $1"
    case "$3" in
        ge) ge "$v" "$4" || die "$2 is $v, want >= $4" ;;
        in) between "$v" "$4" "$5" || die "$2 is $v, want in [$4, $5]" ;;
        *) die "bad check" ;;
    esac
    echo "ok: $2 = $v"
}
check "$T/ca.parsed" 'mayfly_ca_svids_issued_total{kind="workload"}' ge 1
check "$T/ca.parsed" 'mayfly_ca_svids_issued_total{kind="agent"}' ge 1
check "$T/ca.parsed" 'mayfly_ca_svids_issued_total{kind="server"}' ge 1
check "$T/ca.parsed" 'mayfly_ca_signing_seconds_count' ge 3
check "$T/ca.parsed" 'mayfly_ca_signing_key_expiry_seconds' in 1 600
check "$T/ca.parsed" 'mayfly_ca_ready' in 1 1
check "$T/agent.parsed" 'mayfly_agent_svids_issued_total' ge 1
check "$T/agent.parsed" 'mayfly_agent_svid_renewals_total{kind="workload"}' ge 1
check "$T/agent.parsed" 'mayfly_agent_renewal_lag_seconds_count' ge 1
check "$T/agent.parsed" 'mayfly_agent_workload_fetch_seconds_count' ge 1
check "$T/agent.parsed" 'mayfly_agent_svid_expiry_seconds' in 1 20
check "$T/agent.parsed" 'mayfly_agent_own_svid_expiry_seconds' in 1 20
check "$T/agent.parsed" 'mayfly_agent_grpc_requests_total{code="invalid_argument",method="fetch_jwt_svid"}' ge 1
check "$T/agent.parsed" 'mayfly_agent_build_info{version="0.2.0"}' in 1 1
check "$T/ca.parsed" 'mayfly_ca_build_info{version="0.2.0"}' in 1 1
check "$T/ca.parsed" 'mayfly_ca_entries' in 1 1
check "$T/ca.parsed" 'mayfly_ca_agents' in 1 1
check "$T/agent.parsed" 'mayfly_agent_cache_entries' in 1 1
check "$T/agent.parsed" 'mayfly_agent_cache_svids' in 1 1
check "$T/agent.parsed" 'mayfly_agent_ready' in 1 1
check "$T/agent.parsed" 'mayfly_agent_workload_denied_total{reason="missing_security_header"}' ge 1
# label values are lower-case, and no name stutters
grep -hE '^mayfly_[a-z_]+\{' "$T/agent.prom" "$T/ca.prom" | sed 's/le="+Inf"//' |
    grep -E '="[^"]*[A-Z]' &&
    die "a label value with upper case"
grep -E '^mayfly_(agent_agent|ca_ca)_' "$T/agent.prom" "$T/ca.prom" && die "a stuttering name"
if [ "$denied_nobody" = 1 ]; then
    check "$T/agent.parsed" 'mayfly_agent_workload_denied_total{reason="no_matching_entry"}' ge 1
fi

# ---- the expiry warning -----------------------------------------------------------------------
stop_pid "$CA_PID_m"
wait_for_log "$T/agent.log" 'svid near expiry and not renewed.*spiffe://example.org/' 25
grep 'svid near expiry' "$T/agent.log" | head -1
curl -s "http://$AG_M/metrics" >"$T/agent2.prom"
parse "$T/agent2.prom" >"$T/agent2.parsed" || die "the agent's /metrics is not valid after the outage"
check "$T/agent2.parsed" 'mayfly_agent_expiry_warnings_total' ge 1
check "$T/agent2.parsed" 'mayfly_agent_svids_expiring' ge 1
check "$T/agent2.parsed" 'mayfly_agent_ca_errors_total' ge 1
echo "ok"
