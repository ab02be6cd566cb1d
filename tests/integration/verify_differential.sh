#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Differential test of the X509-SVID chain verifier against
# `openssl verify -x509_strict`. Each case builds a fresh chain with the
# openssl command line (root, zero to two intermediates, a leaf), varying one
# property from a valid SPIFFE chain: criticality of basicConstraints, name
# constraints, empty names, SAN criticality, pathLen, keyUsage, EKU, key
# identifiers, validity, the SPIFFE IDs of intermediates, ... and asks both
#   openssl verify -x509_strict -CAfile root -untrusted inters leaf
#   x509tool verify leaf+inters root        (mf_x509_verify_chain)
# for a verdict. The rule is not a table of expected answers but a relation:
# mayfly refuses everything OpenSSL refuses. Mayfly may refuse more (SPIFFE
# is stricter than RFC 5280: one URI SAN, an ID with a path, no path in a
# CA's ID, ...); those cases are printed as `note:` lines. A case where
# mayfly accepts what OpenSSL refuses fails the test. The valid chains must
# be accepted by both, so that a verifier refusing everything cannot pass.
#
# Prints one line per case and `measured: N cases, N agree, N stricter`.
# Needs MAYFLY_BUILD (x509tool in $MAYFLY_BUILD/tools).
set -euo pipefail

: "${MAYFLY_BUILD:?MAYFLY_BUILD must point at the build directory}"
X509=$MAYFLY_BUILD/tools/x509tool
[ -x "$X509" ] || { echo "FAIL: $X509 not built"; exit 1; }
command -v openssl >/dev/null || { echo "FAIL: openssl not installed"; exit 1; }

W=$(mktemp -d /tmp/mayfly-diff.XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W"

fail() { echo "FAIL: $*"; exit 1; }

# Extension sections. Each case names one section per certificate; the
# defaults (root, inter, leaf) make a chain both verifiers accept.
cat >ext.cnf <<'EOF'
[req]
distinguished_name = dn
[dn]

[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = hash
[root_bc_noncrit]
basicConstraints = CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
[root_pathlen0]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
[root_pathlen1]
basicConstraints = critical, CA:TRUE, pathlen:1
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
[root_no_ku]
basicConstraints = critical, CA:TRUE
subjectAltName = URI:spiffe://example.org
[root_no_ski]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = none
[root_nc_ok]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
nameConstraints = critical, permitted;URI:example.org
[root_nc_ok_noncrit]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
nameConstraints = permitted;URI:example.org
[root_nc_other]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
nameConstraints = critical, permitted;URI:other.org
[root_nc_other_noncrit]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
nameConstraints = permitted;URI:other.org
[root_nc_excluded_noncrit]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
nameConstraints = excluded;URI:example.org
[root_nc_subdomain_noncrit]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
nameConstraints = permitted;URI:.example.org
[root_nc_dns_noncrit]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
nameConstraints = permitted;DNS:other.org

[inter]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[inter_bc_noncrit]
basicConstraints = CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
[inter_no_bc]
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
[inter_not_ca]
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
[inter_no_certsign]
basicConstraints = critical, CA:TRUE
keyUsage = critical, cRLSign, digitalSignature
subjectAltName = URI:spiffe://example.org
[inter_pathlen0]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
[inter_id_path]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org/ca
[inter_id_slash]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org/
[inter_no_san]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[inter_no_aki]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
authorityKeyIdentifier = none
[inter_no_ski]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = none
[inter_nc_other_noncrit]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
nameConstraints = permitted;URI:other.org
[inter_nc_ok_crit]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
nameConstraints = critical, permitted;URI:example.org
[inter_nc_excl_crit]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
nameConstraints = critical, excluded;URI:example.org
[inter_eku]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://example.org
extendedKeyUsage = serverAuth, clientAuth
[inter_other_td]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectAltName = URI:spiffe://other.org

[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:spiffe://example.org/w
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[leaf_ku_spire]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment, keyAgreement
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:spiffe://example.org/w
[leaf_no_bc]
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/w
[leaf_bc_noncrit]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/w
[leaf_pathlen]
basicConstraints = critical, CA:FALSE, pathlen:0
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/w
[leaf_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign
subjectAltName = URI:spiffe://example.org/w
[leaf_certsign]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyCertSign
subjectAltName = URI:spiffe://example.org/w
[leaf_crlsign]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, cRLSign
subjectAltName = URI:spiffe://example.org/w
[leaf_no_ku]
basicConstraints = critical, CA:FALSE
subjectAltName = URI:spiffe://example.org/w
[leaf_ku_noncrit]
basicConstraints = critical, CA:FALSE
keyUsage = digitalSignature
subjectAltName = URI:spiffe://example.org/w
[leaf_ku_no_ds]
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyAgreement
subjectAltName = URI:spiffe://example.org/w
[leaf_eku_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = URI:spiffe://example.org/w
[leaf_eku_code]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectAltName = URI:spiffe://example.org/w
[leaf_san_crit]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = critical, URI:spiffe://example.org/w
[leaf_no_san]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
[leaf_two_uris]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/a, URI:spiffe://example.org/b
[leaf_dns]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/w, DNS:w.example.org, DNS:other.org
[leaf_no_path]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org
[leaf_other_td]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://other.org/w
[leaf_sub_td]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://a.example.org/w
[leaf_https]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:https://example.org/w
[leaf_no_aki]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/w
authorityKeyIdentifier = none
[leaf_aki_crit]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/w
authorityKeyIdentifier = critical, keyid
[leaf_ski_crit]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/w
subjectKeyIdentifier = critical, hash
[leaf_policy_crit]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/w
certificatePolicies = critical, 1.3.6.1.4.1.55555.1
EOF

n_cases=0
n_agree=0
n_stricter=0
n_accepted=0

# cert NAME SECTION SUBJECT DAYS [ISSUER]: NAME.pem and NAME.key, self-signed
# without ISSUER, otherwise signed by ISSUER.pem/.key.
cert() {
    local name=$1 sec=$2 subj=$3 days=$4 issuer=${5:-}
    openssl ecparam -name prime256v1 -genkey -noout -out "$name.key" || return 1
    if [ -z "$issuer" ]; then
        openssl req -x509 -new -key "$name.key" -subj "$subj" -days "$days" -config ext.cnf \
            -extensions "$sec" -out "$name.pem" || return 1
    else
        openssl req -new -key "$name.key" -subj "$subj" -config ext.cnf -out "$name.csr" ||
            return 1
        openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" \
            -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile ext.cnf \
            -extensions "$sec" -out "$name.pem" 2>/dev/null || return 1
    fi
}

# check NAME key=value...: builds one chain and compares the verdicts.
#   root= inter= inter2= leaf=   extension sections ("-" for no intermediate)
#   rsubj= isubj= lsubj=         subjects ("/" is the empty Name)
#   idays=                       the intermediate's lifetime in days
#   at=                          verify this many days from now (default 0)
check() {
    local name=$1
    shift
    local root=root inter=- inter2=- leaf=leaf rsubj=/O=Diff/CN=root isubj=/O=Diff/CN=inter
    local lsubj=/O=Diff/CN=leaf idays=30 at=0 kv
    for kv in "$@"; do
        case "$kv" in
        root=*) root=${kv#*=} ;;
        inter=*) inter=${kv#*=} ;;
        inter2=*) inter2=${kv#*=} ;;
        leaf=*) leaf=${kv#*=} ;;
        rsubj=*) rsubj=${kv#*=} ;;
        isubj=*) isubj=${kv#*=} ;;
        lsubj=*) lsubj=${kv#*=} ;;
        idays=*) idays=${kv#*=} ;;
        at=*) at=${kv#*=} ;;
        *) fail "case $name: bad argument $kv" ;;
        esac
    done
    local d="c_$name"
    mkdir "$d"
    (
        cd "$d"
        cp ../ext.cnf .
        cert root "$root" "$rsubj" 60 || exit 1
        local top=root
        : >inters.pem
        if [ "$inter" != - ]; then
            cert inter "$inter" "$isubj" "$idays" root || exit 1
            top=inter
            cat inter.pem >>inters.pem
        fi
        if [ "$inter2" != - ]; then
            cert inter2 "$inter2" "/O=Diff/CN=inter2" 30 "$top" || exit 1
            top=inter2
            cat inter2.pem >inters.tmp
            cat inters.pem >>inters.tmp
            mv inters.tmp inters.pem
        fi
        cert leaf "$leaf" "$lsubj" 30 "$top" || exit 1
        cat leaf.pem inters.pem >chain.pem
    ) || fail "case $name: could not build the chain"

    local t ossl_args=() ossl mf ossl_ok=0 mf_ok=0
    t=$(($(date +%s) + at * 86400))
    [ -s "$d/inters.pem" ] && ossl_args=(-untrusted "$d/inters.pem")
    if ossl=$(openssl verify -x509_strict -attime "$t" -CAfile "$d/root.pem" "${ossl_args[@]}" \
        "$d/leaf.pem" 2>&1); then
        ossl_ok=1
    fi
    if mf=$("$X509" verify "$d/chain.pem" "$d/root.pem" --at "$t" --td example.org 2>&1); then
        mf_ok=1
    fi
    ossl=$(grep -m1 -o 'error [0-9]* at [0-9]* depth lookup: .*' <<<"$ossl" || echo "$ossl")
    n_cases=$((n_cases + 1))
    if [ $ossl_ok = $mf_ok ]; then
        n_agree=$((n_agree + 1))
        if [ $mf_ok = 1 ]; then
            n_accepted=$((n_accepted + 1))
            echo "ok: $name: both accept"
        else
            echo "ok: $name: both refuse (openssl: $ossl | mayfly: $mf)"
        fi
    elif [ $mf_ok = 0 ]; then
        n_stricter=$((n_stricter + 1))
        echo "note: $name: mayfly stricter than openssl (mayfly: $mf)"
    else
        echo "FAIL: $name: mayfly accepts what openssl refuses (openssl: $ossl)"
        LAXER+=("$name")
    fi
}

# must_accept NAME ...: a valid chain; both verifiers must accept it
must_accept() {
    local before=$n_accepted
    check "$@"
    [ $n_accepted -gt "$before" ] || NOT_ACCEPTED+=("$1")
}

LAXER=()
NOT_ACCEPTED=()

# ---- valid chains ----------------------------------------------------------------
must_accept direct
must_accept via_inter inter=inter
must_accept via_two_inters inter=inter inter2=inter
must_accept leaf_spire_key_usage leaf=leaf_ku_spire
must_accept leaf_without_bc leaf=leaf_no_bc
must_accept leaf_dns_sans leaf=leaf_dns
must_accept leaf_empty_subject_san_critical leaf=leaf_san_crit lsubj=/
must_accept inter_without_san inter=inter_no_san
must_accept root_pathlen1_one_inter root=root_pathlen1 inter=inter
must_accept inter_pathlen0_direct inter=inter_pathlen0
must_accept root_nc_permitted_crit root=root_nc_ok inter=inter
must_accept root_nc_permitted_noncrit root=root_nc_ok_noncrit
must_accept inter_nc_permitted_crit inter=inter_nc_ok_crit

# ---- basicConstraints ----------------------------------------------------------
check root_bc_not_critical root=root_bc_noncrit
check inter_bc_not_critical inter=inter_bc_noncrit
check inter_without_bc inter=inter_no_bc
check inter_ca_false inter=inter_not_ca
check leaf_bc_not_critical leaf=leaf_bc_noncrit
check leaf_pathlen_ca_false leaf=leaf_pathlen
check leaf_ca_true leaf=leaf_ca
check root_pathlen0_exceeded root=root_pathlen0 inter=inter
check inter_pathlen0_exceeded inter=inter_pathlen0 inter2=inter
check root_pathlen1_two_inters root=root_pathlen1 inter=inter inter2=inter

# ---- nameConstraints -------------------------------------------------------------
check root_nc_outside_crit root=root_nc_other
check root_nc_outside_noncrit root=root_nc_other_noncrit
check root_nc_outside_noncrit_via_inter root=root_nc_other_noncrit inter=inter
check root_nc_excluded_noncrit root=root_nc_excluded_noncrit
check root_nc_subdomain_only_noncrit root=root_nc_subdomain_noncrit
check root_nc_dns_only_noncrit root=root_nc_dns_noncrit leaf=leaf_dns
check inter_nc_outside_noncrit inter=inter_nc_other_noncrit
check inter_nc_excluded_crit inter=inter_nc_excl_crit

# ---- names -------------------------------------------------------------------------
check root_empty_subject rsubj=/
check inter_empty_issuer rsubj=/ inter=inter
check inter_empty_subject inter=inter isubj=/
check leaf_empty_subject_san_noncritical lsubj=/
check leaf_empty_subject_no_san leaf=leaf_no_san lsubj=/

# ---- keyUsage, EKU -----------------------------------------------------------------
check root_without_key_usage root=root_no_ku
check inter_without_keycertsign inter=inter_no_certsign
check leaf_keycertsign leaf=leaf_certsign
check leaf_crlsign leaf=leaf_crlsign
check leaf_without_key_usage leaf=leaf_no_ku
check leaf_key_usage_not_critical leaf=leaf_ku_noncrit
check leaf_without_digital_signature leaf=leaf_ku_no_ds
check leaf_eku_server_only leaf=leaf_eku_server
check leaf_eku_code_signing leaf=leaf_eku_code
check inter_with_eku inter=inter_eku

# ---- key identifiers, unknown critical extensions ---------------------------------
check root_without_ski root=root_no_ski
check inter_without_ski inter=inter_no_ski
check inter_without_aki inter=inter_no_aki
check leaf_without_aki leaf=leaf_no_aki
check leaf_aki_critical leaf=leaf_aki_crit
check leaf_ski_critical leaf=leaf_ski_crit
check leaf_critical_policy leaf=leaf_policy_crit

# ---- SPIFFE IDs --------------------------------------------------------------------
check leaf_without_san leaf=leaf_no_san
check leaf_two_uri_sans leaf=leaf_two_uris
check leaf_id_without_path leaf=leaf_no_path
check leaf_https_uri leaf=leaf_https
check leaf_other_trust_domain leaf=leaf_other_td
check leaf_sub_trust_domain_nc root=root_nc_ok_noncrit leaf=leaf_sub_td
check inter_id_with_path inter=inter_id_path
check inter_id_trailing_slash inter=inter_id_slash
check inter_other_trust_domain inter=inter_other_td

# ---- validity ------------------------------------------------------------------------
check expired_inter inter=inter idays=1 at=2
check all_expired at=90
check not_yet_valid at=-1

echo "measured: $n_cases cases, $n_agree agree, $n_stricter stricter"
[ ${#NOT_ACCEPTED[@]} -eq 0 ] || fail "valid chains not accepted by both: ${NOT_ACCEPTED[*]}"
[ ${#LAXER[@]} -eq 0 ] || fail "mayfly laxer than openssl -x509_strict: ${LAXER[*]}"
[ "$n_cases" -eq $((n_agree + n_stricter)) ] || fail "case count"
echo "mayfly refuses everything openssl -x509_strict refuses"
