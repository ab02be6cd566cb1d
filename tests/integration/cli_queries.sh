#!/usr/bin/env bash
# mayfly-ca entry list/count filters (--spiffe-id, --parent-id, --selector
# with each --match mode), agent entries, agent count and the effective TTL,
# on entries built so that every mode selects a different set.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_ca a "$T/ca" --svid-ttl 30m
LOG_ON_FAIL="$T/ca/ca.log"
S=(--admin-socket "$CA_SOCK_a")
A1=spiffe://example.org/mayfly/agent/n1
A2=spiffe://example.org/mayfly/agent/n2
mk() { # NAME PARENT SPIFFE_PATH SELECTOR...
    local n=$1 p=$2 sid=$3
    shift 3
    local a=() s
    for s in "$@"; do a+=(--selector "$s"); done
    printf -v "E_$n" '%s' "$("$CA_BIN" entry create "${S[@]}" --parent-id "$p" \
        --spiffe-id "spiffe://example.org/$sid" "${a[@]}")"
}
mk 1 $A1 web unix:uid:1000
mk 2 $A1 web unix:uid:1000 unix:gid:50
mk 3 $A1 api unix:uid:1000 unix:gid:50 unix:user:web
mk 4 $A2 db unix:gid:50
mk 5 $A2 root unix:uid:0
"$CA_BIN" entry update "${S[@]}" "$E_3" --ttl 5m >/dev/null

# the entry names (1..5) a command lists, sorted, on one line
names() {
    local out ids=() n
    out=$("$CA_BIN" "$@" "${S[@]}" --json) || return 1
    for n in 1 2 3 4 5; do
        local v="E_$n"
        grep -q "\"${!v}\"" <<<"$out" && ids+=("$n")
    done
    echo "${ids[*]:-}"
}
expect() { # WANT ARGS...
    local want=$1 got
    shift
    got=$(names "$@") || die "$* failed"
    [ "$got" = "$want" ] || die "$*: got '$got', want '$want'"
}
Q=(--selector unix:uid:1000 --selector unix:gid:50)
expect "1 2 3 4 5" entry list
expect "5" entry list --selector unix:uid:0
expect "2" entry list "${Q[@]}" --match exact
expect "1 2 4" entry list "${Q[@]}" --match subset
expect "2 3" entry list "${Q[@]}" --match superset
expect "2 3" entry list "${Q[@]}"
expect "1 2 3 4" entry list "${Q[@]}" --match any
expect "1 2" entry list --spiffe-id spiffe://example.org/web
expect "4 5" entry list --parent-id $A2
expect "2 3" entry list --parent-id $A1 --selector unix:gid:50
expect "" entry list --spiffe-id spiffe://example.org/web --selector unix:uid:0
expect "1 2 3" agent entries $A1
expect "4 5" agent entries $A2
# the text form lists the same rows
[ "$("$CA_BIN" entry list "${S[@]}" "${Q[@]}" --match exact | tail -n +2 | wc -l)" = 1 ] \
    || die "text list"
"$CA_BIN" entry list "${S[@]}" --selector unix:uid:0 | grep -q "$E_5" || die "text list row"

# counts, with the same filters
[ "$("$CA_BIN" entry count "${S[@]}")" = 5 ] || die "entry count"
[ "$("$CA_BIN" entry count "${S[@]}" "${Q[@]}" --match subset)" = 3 ] || die "count subset"
[ "$("$CA_BIN" entry count "${S[@]}" --parent-id $A2)" = 2 ] || die "count parent"
[ "$("$CA_BIN" entry count "${S[@]}" --parent-id $A2 --json)" = '{"count":2}' ] ||
    die "count --json"
[ "$("$CA_BIN" agent count "${S[@]}")" = 0 ] || die "agent count before"
start_agent n1 "$T/n1" a --join-token "$(fresh_token a $A1)"
LOG_ON_FAIL="$T/n1/agent.log"
[ "$("$CA_BIN" agent count "${S[@]}")" = 1 ] || die "agent count after"

# bad filters are refused, never ignored
for bad in "--match bogus --selector unix:uid:0" "--selector nope" "--spiffe-id not-an-id" \
    "--parent-id http://x/y"; do
    # shellcheck disable=SC2086
    if "$CA_BIN" entry list "${S[@]}" $bad >/dev/null 2>"$T/err"; then
        die "entry list $bad accepted"
    fi
    [ "$(wc -l <"$T/err")" = 1 ] || die "entry list $bad: not one line: $(cat "$T/err")"
done
code=$(curl -s -o "$T/body" -w '%{http_code}' --unix-socket "$CA_SOCK_a" \
    'http://x/v1/entries?selectors=unix:uid:0')
[ "$code" = 400 ] && grep -q "unknown query argument" "$T/body" || die "unknown arg: $code"
code=$(curl -s -o "$T/body" -w '%{http_code}' --unix-socket "$CA_SOCK_a" \
    'http://x/v1/entries?match=any')
[ "$code" = 400 ] || die "match without selectors: $code"

# effective TTL: ttl 0 is the CA's --svid-ttl (30m), shown as such
"$CA_BIN" entry show "${S[@]}" "$E_1" | grep -q '^TTL *: 1800 (the CA.s default)$' ||
    die "text TTL of a default entry"
"$CA_BIN" entry show "${S[@]}" "$E_3" | grep -q '^TTL *: 300$' || die "text TTL of a 5m entry"
j=$("$CA_BIN" entry show "${S[@]}" "$E_1" --json)
grep -q '"ttl": 0' <<<"$j" && grep -q '"effective_ttl": 1800' <<<"$j" || die "json: $j"
"$CA_BIN" entry show "${S[@]}" "$E_3" --json | grep -q '"effective_ttl": 300' || die "json 5m"
"$CA_BIN" entry list "${S[@]}" --spiffe-id spiffe://example.org/root | grep -q ' 1800 ' ||
    die "list TTL column"
# entry create prints the entry ID alone (the whole entry with --json)
c=$("$CA_BIN" entry create "${S[@]}" --parent-id $A2 --spiffe-id spiffe://example.org/c \
    --selector unix:uid:7 --json)
grep -q '"effective_ttl": 1800' <<<"$c" || die "create --json: $c"
echo "cli_queries: ok"
