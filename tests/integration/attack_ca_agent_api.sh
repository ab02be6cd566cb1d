#!/usr/bin/env bash
# Attacks on the CA's agent API, each refused clearly (an HTTP error with a
# JSON error code, or a per-item error in a batch) with the registry
# unchanged (entries and agents compared before and after):
#   CSRs: a bad signature, two URI SANs, CA:TRUE, a foreign trust domain,
#         each on attest, renew and sign (a refused attestation leaves its
#         token usable); an ID not parented to the caller;
#   tokens: replay of a spent token;
#   agent SVIDs: an expired one, a banned agent's, one from another trust
#         domain (a second CA), a certificate that is not an agent ID.
# shellcheck disable=SC2154 # CA_*_<n>, AGENT_*_<n> are set by lib.sh (printf -v)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
make_tmp
start_ca a "$T/ca" --agent-rate 1000 --agent-burst 1000
start_ca e "$T/ca_e" --svid-ttl 2s --ca-ttl 2m # for the expired agent SVID
TD=other.org start_ca o "$T/ca_o"               # another trust domain
LOG_ON_FAIL="$T/ca/ca.log"
A1=spiffe://example.org/mayfly/agent/n1
A2=spiffe://example.org/mayfly/agent/n2
A3=spiffe://example.org/mayfly/agent/n3
for c in a e o; do
    sv="CA_SOCK_$c"
    "$CA_BIN" bundle show --admin-socket "${!sv}" >"$T/bundle_$c.pem"
done
client() { # client CA CMD ARGS...: ca_client against CA's agent API
    local av="CA_ADDR_$1" td=example.org
    [ "$1" = o ] && td=other.org
    "$CA_CLIENT" "$2" --server "${!av}" --bundle "$T/bundle_$1.pem" --td $td "${@:3}"
}
mkdir -p "$T/n1" "$T/n3" "$T/x" "$T/ex" "$T/o1"
client a attest --dir "$T/n1" --token "$(fresh_token a $A1)" >/dev/null || die "attest n1"
client a attest --dir "$T/n3" --token "$(fresh_token a $A3)" >/dev/null || die "attest n3"
client e attest --dir "$T/ex" --token "$(fresh_token e $A1)" >/dev/null || die "attest (e)"
client o attest --dir "$T/o1" --token "$(fresh_token o spiffe://other.org/mayfly/agent/n1)" \
    >/dev/null || die "attest (other.org)"
e1=$(add_entry a spiffe://example.org/web $A1 unix:uid:1000)
e2=$(add_entry a spiffe://example.org/db $A2 unix:uid:1001)

# CSRs, as DER, made by openssl
openssl ecparam -name prime256v1 -genkey -noout -out "$T/k.pem" 2>/dev/null
csr() { # csr NAME EXTRA-ADDEXT...
    local name=$1 args=()
    shift
    for x in "$@"; do args+=(-addext "$x"); done
    openssl req -new -key "$T/k.pem" -subj /O=x "${args[@]}" -outform der -out "$T/$name.der"
}
csr good "subjectAltName=URI:spiffe://example.org/web"
cp "$T/good.der" "$T/badsig.der"
last=$(tail -c1 "$T/badsig.der" | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $((last ^ 1)))" |
    dd of="$T/badsig.der" bs=1 seek=$(($(stat -c %s "$T/badsig.der") - 1)) conv=notrunc status=none
csr twouri "subjectAltName=URI:spiffe://example.org/web,URI:spiffe://example.org/db"
csr catrue "basicConstraints=critical,CA:TRUE" "subjectAltName=URI:spiffe://example.org/web"
csr foreign "subjectAltName=URI:spiffe://other.org/web"

# refused DESC WANT CMD...: CMD must fail with a status line matching WANT
# (a regex) and an error code in the body, and leave the registry as it was
REG=a # the CA whose registry must not change
refused() {
    local desc=$1 want=$2 before out
    shift 2
    before=$(registry_digest $REG)
    if out=$("$@" 2>&1); then die "$desc: accepted: $(head -c 300 <<<"$out")"; fi
    grep -Eq "$want" <<<"$out" || die "$desc: unexpected answer: $(head -c 400 <<<"$out")"
    grep -q '"error":"[a-z_]*"' <<<"$out" || die "$desc: no error code: $(head -c 300 <<<"$out")"
    [ "$(registry_digest $REG)" = "$before" ] || die "$desc: the registry changed"
    echo "ok (refused): $desc: $(grep -o '"error":"[a-z_]*","message":"[^"]*"' <<<"$out" | head -1)"
}

tok=$(fresh_token a $A2)
for bad in badsig twouri catrue foreign; do
    refused "attest with CSR $bad" 'status=(400|401|403)' \
        client a attest --dir "$T/x" --token "$tok" --csr-file "$T/$bad.der"
    refused "renew with CSR $bad" 'status=(400|403)' \
        client a renew --dir "$T/n1" --csr-file "$T/$bad.der"
    refused "sign with CSR $bad" 'status=200' \
        client a sign --dir "$T/n1" --entry "$e1" --spiffe-id x --csr-file "$T/$bad.der"
done
refused "sign an entry parented to another agent" 'permission_denied' \
    client a sign --dir "$T/n1" --entry "$e2" --spiffe-id spiffe://example.org/db
# the refused attestations did not spend the token; now it is spent
client a attest --dir "$T/x" --token "$tok" >/dev/null || die "the token was spent by a refusal"
refused "token replay" 'status=401' client a attest --dir "$T/x2" --token "$tok"

# an expired agent SVID (2 s): wait until its NotAfter has passed
ex_end=$(date -d "$(openssl x509 -enddate -noout -in "$T/ex/agent.pem" | cut -d= -f2)" +%s)
past_end() { [ "$(date +%s)" -gt "$ex_end" ]; }
wait_until 5 past_end
REG=e
for cmd in renew sync; do
    refused "$cmd with an expired agent SVID" 'status=401' client e $cmd --dir "$T/ex"
done
refused "sign with an expired agent SVID" 'status=401' \
    client e sign --dir "$T/ex" --entry "$e1" --spiffe-id spiffe://example.org/web
REG=a
# a banned agent
"$CA_BIN" agent ban --admin-socket "$CA_SOCK_a" $A3 >/dev/null
for cmd in renew sync; do
    refused "$cmd by a banned agent" 'status=403' client a $cmd --dir "$T/n3"
done
refused "attest again as a banned agent" 'status=(401|403)' \
    client a attest --dir "$T/x3" --token "$(fresh_token a $A3)"
# an agent SVID of another trust domain, presented to this CA
for cmd in renew sync; do
    refused "$cmd with an other.org agent SVID" 'status=401' \
        "$CA_CLIENT" $cmd --server "$CA_ADDR_a" --bundle "$T/bundle_a.pem" --dir "$T/o1"
done
refused "sign with an other.org agent SVID" 'status=401' \
    "$CA_CLIENT" sign --server "$CA_ADDR_a" --bundle "$T/bundle_a.pem" --dir "$T/o1" \
    --entry "$e1" --spiffe-id spiffe://example.org/web
# a valid SVID of this trust domain that is not an agent's (a workload's)
mkdir -p "$T/wl"
client a sign --dir "$T/n1" --entry "$e1" --spiffe-id spiffe://example.org/web \
    --csr-file "$T/good.der" --out "$T/wl/agent.pem" >/dev/null || die "sign for the workload"
cp "$T/k.pem" "$T/wl/agent.key"
for cmd in renew sync; do
    refused "$cmd with a workload SVID (not an agent ID)" 'status=403' client a $cmd --dir "$T/wl"
done
echo "attack_ca_agent_api: ok"
