#!/usr/bin/env bash
# mayfly-ca from an empty temp dir with one command; entries, tokens, agents,
# bundle and CA keys managed through the CLI; every refusal is one clear line
# on stderr, a non-zero exit, and changes nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_ca a "$T/ca"
LOG_ON_FAIL="$T/ca/ca.log"
S=(--admin-socket "$CA_SOCK_a")
AG=spiffe://example.org/mayfly/agent/node1

# data dir, db and keys are private
[ "$(stat -c %a "$T/ca/data")" = 700 ] || die "data dir mode"
[ "$(stat -c %a "$T/ca/data/mayfly-ca.db")" = 600 ] || die "db mode"
[ "$(stat -c %a "$T/ca/admin.sock")" = 600 ] || die "admin socket mode"
for k in "$T"/ca/data/keys/*.key; do
    [ "$(stat -c %a "$k")" = 600 ] || die "key file mode $k"
done

[ "$("$CA_BIN" healthcheck "${S[@]}")" = ok ] || die healthcheck
"$CA_BIN" ca show "${S[@]}" | grep -q ' active ' || die "ca show has no active key"
"$CA_BIN" bundle show "${S[@]}" | grep -q 'BEGIN CERTIFICATE' || die "bundle pem"
"$CA_BIN" bundle show "${S[@]}" --format spiffe | grep -q '"x509-svid"' || die "bundle spiffe"
"$CA_BIN" bundle show "${S[@]}" --format spiffe | grep -q '"spiffe_sequence": 1' || die "sequence"

id=$("$CA_BIN" entry create "${S[@]}" --spiffe-id spiffe://example.org/web \
    --parent-id $AG --selector unix:uid:1000 --selector unix:path:/usr/bin/web \
    --ttl 5m --dns-name web.internal --hint web)
[[ "$id" =~ ^[0-9a-f]{32}$ ]] || die "entry create printed '$id'"
"$CA_BIN" entry show "${S[@]}" "$id" | grep -q 'unix:path:/usr/bin/web,unix:uid:1000' \
    || die "selectors not canonical"
"$CA_BIN" entry show "${S[@]}" "$id" --json | grep -q '"ttl": 300' || die "ttl"
"$CA_BIN" entry list "${S[@]}" | grep -q "$id" || die "entry list"
"$CA_BIN" entry list "${S[@]}" --json | grep -q '"dns_names"' || die "entry list --json"
"$CA_BIN" entry update "${S[@]}" "$id" --selector unix:uid:1001 --ttl 2m >/dev/null
"$CA_BIN" entry show "${S[@]}" "$id" --json | grep -q '"unix:uid:1001"' || die "update"

n_before=$("$CA_BIN" entry list "${S[@]}" --json | grep -c '"spiffe_id"' || true)
expect_fail "invalid SPIFFE ID" "$CA_BIN" entry create "${S[@]}" \
    --spiffe-id 'spiffe://example.org/a/../b' --parent-id $AG --selector unix:uid:1
expect_fail "ID outside the trust domain" "$CA_BIN" entry create "${S[@]}" \
    --spiffe-id spiffe://other.org/web --parent-id $AG --selector unix:uid:1
expect_fail "parent outside the trust domain" "$CA_BIN" entry create "${S[@]}" \
    --spiffe-id spiffe://example.org/x --parent-id spiffe://other.org/mayfly/agent/n \
    --selector unix:uid:1
expect_fail "unknown selector type" "$CA_BIN" entry create "${S[@]}" \
    --spiffe-id spiffe://example.org/x --parent-id $AG --selector k8s:ns:default
expect_fail "empty selector list" "$CA_BIN" entry create "${S[@]}" \
    --spiffe-id spiffe://example.org/x --parent-id $AG
"$CA_BIN" entry create "${S[@]}" --spiffe-id spiffe://example.org/dup --parent-id $AG \
    --selector unix:uid:7 >/dev/null
expect_fail "duplicate entry" "$CA_BIN" entry create "${S[@]}" \
    --spiffe-id spiffe://example.org/dup --parent-id $AG --selector unix:uid:7
expect_fail "ttl beyond 1/6 of the CA TTL" "$CA_BIN" entry create "${S[@]}" \
    --spiffe-id spiffe://example.org/long --parent-id $AG --selector unix:uid:1 --ttl 24h
expect_fail "reserved path" "$CA_BIN" entry create "${S[@]}" \
    --spiffe-id spiffe://example.org/mayfly/agent/evil --parent-id $AG --selector unix:uid:1
# an executable alone can be borrowed by exec (docs/security.md): refused
# with the reason, at create and at update, exit code 1
rc=0
err=$("$CA_BIN" entry create "${S[@]}" --spiffe-id spiffe://example.org/exe-only \
    --parent-id $AG --selector unix:path:/usr/bin/web 2>&1 >/dev/null) || rc=$?
[ "$rc" = 1 ] || die "path-only entry: exit $rc, want 1: $err"
grep -q 'needs a unix:uid, unix:user, unix:gid or unix:group selector' <<<"$err" ||
    die "path-only entry refused without the reason: $err"
echo "ok (refused): path-only entry: $err"
expect_fail "sha256-only entry" "$CA_BIN" entry create "${S[@]}" \
    --spiffe-id spiffe://example.org/exe-only --parent-id $AG \
    --selector unix:sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
expect_fail "update to a path-only entry" "$CA_BIN" entry update "${S[@]}" "$id" \
    --selector unix:path:/usr/bin/web
"$CA_BIN" entry show "${S[@]}" "$id" --json | grep -q '"unix:uid:1001"' ||
    die "a refused update changed the entry"
expect_fail "unknown entry" "$CA_BIN" entry show "${S[@]}" 0123456789abcdef0123456789abcdef
expect_fail "unknown option" "$CA_BIN" entry list "${S[@]}" --bogus 1
n_after=$("$CA_BIN" entry list "${S[@]}" --json | grep -c '"spiffe_id"' || true)
[ "$n_after" = $((n_before + 1)) ] || die "refusals changed the registry ($n_before -> $n_after)"

tok=$("$CA_BIN" token generate "${S[@]}" --spiffe-id $AG --ttl 10m)
[[ "$tok" =~ ^[0-9a-f]{64}$ ]] || die "token generate printed '$tok'"
expect_fail "token for a non-agent ID" "$CA_BIN" token generate "${S[@]}" \
    --spiffe-id spiffe://example.org/web
# the token itself is never stored or logged
grep -q "$tok" "$T/ca/ca.log" && die "token in the log"
if command -v sqlite3 >/dev/null; then
    sqlite3 "$T/ca/data/mayfly-ca.db" .dump | grep -q "$tok" && die "token in the db"
fi
grep -aq "$tok" "$T"/ca/data/mayfly-ca.db* && die "token bytes in the db files"

"$CA_BIN" entry delete "${S[@]}" "$id" | grep -q "deleted $id" || die "delete"
expect_fail "deleted entry" "$CA_BIN" entry show "${S[@]}" "$id"
"$CA_BIN" agent list "${S[@]}" | grep -q 'SPIFFE ID' || die "agent list"
expect_fail "ban unknown agent" "$CA_BIN" agent ban "${S[@]}" spiffe://example.org/mayfly/agent/nobody

# bad input is called bad input (400), with the limit it broke, not a denial
out=$("$CA_BIN" entry create "${S[@]}" --spiffe-id spiffe://example.org/w \
    --parent-id spiffe://example.org/web --selector unix:uid:1 2>&1) && die "a workload parent"
grep -q 'must be an agent ID.*HTTP 400' <<<"$out" || die "bad parent: $out"
out=$("$CA_BIN" token generate "${S[@]}" --spiffe-id spiffe://example.org/web 2>&1) &&
    die "a token for a workload ID"
grep -q 'invalid argument.*HTTP 400' <<<"$out" || die "token for a workload ID: $out"
out=$("$CA_BIN" token generate "${S[@]}" --spiffe-id spiffe://example.org/mayfly/agent/t \
    --ttl 8d 2>&1) && die "an 8 d token"
grep -q '1 s to 604800 s (7 days)' <<<"$out" || die "token ttl: $out"

# a socket that is not there: one line, non-zero
expect_fail "no CA" "$CA_BIN" healthcheck --admin-socket "$T/nope.sock"
echo "ca_cli: ok"
