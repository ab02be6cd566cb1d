#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Interoperability of mf_x509 with the OpenSSL command line, both ways:
#   - certificates we issue (CA, intermediate, leaves) pass `openssl verify`
#     (-x509_strict, TLS client and server purposes) and show the SPIFFE
#     profile in `openssl x509 -text`;
#   - CSRs made by `openssl req` are accepted with the right ID, and the bad
#     ones (corrupted signature, two URI SANs, invalid ID, CA:TRUE, RSA key)
#     are refused with a clear error;
#   - our CSRs pass `openssl req -verify`;
#   - a SPIFFE leaf made by `openssl x509 -req` under an OpenSSL CA verifies
#     with x509tool, and the broken ones (two URI SANs, CA:TRUE as leaf) do
#     not; an OpenSSL-made CA key (SEC 1 PEM) can issue through libmayfly.
#
# Needs MAYFLY_BUILD (x509tool in $MAYFLY_BUILD/tools). Exits non-zero on the
# first failure.
set -euo pipefail

: "${MAYFLY_BUILD:?MAYFLY_BUILD must point at the build directory}"
X509=$MAYFLY_BUILD/tools/x509tool
[ -x "$X509" ] || { echo "FAIL: $X509 not built"; exit 1; }
command -v openssl >/dev/null || { echo "FAIL: openssl not installed"; exit 1; }

W=$(mktemp -d /tmp/mayfly-interop.XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W"

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

# expect_refused DESCRIPTION REGEX COMMAND...: the command must fail and its
# output must match REGEX (case-insensitive).
expect_refused() {
    local desc=$1 pat=$2 out
    shift 2
    if out=$("$@" 2>&1); then
        fail "$desc: accepted ($out)"
    fi
    grep -qiE -- "$pat" <<<"$out" || fail "$desc: unexpected error: $out"
    ok "$desc refused: $out"
}

# expect_output DESCRIPTION WANT COMMAND...: the command succeeds and prints
# exactly WANT.
expect_output() {
    local desc=$1 want=$2 out
    shift 2
    out=$("$@" 2>&1) || fail "$desc: failed: $out"
    [ "$out" = "$want" ] || fail "$desc: got '$out', want '$want'"
    ok "$desc: $out"
}

# has_line_after TEXT HEADER VALUE: VALUE is on the line after HEADER.
has_line_after() {
    grep -A1 -F -- "$2" <<<"$1" | tail -n1 | grep -qF -- "$3"
}

flip_last_byte() {
    local f=$1 size last
    size=$(stat -c %s "$f")
    last=$(tail -c1 "$f" | od -An -tu1 | tr -d ' ')
    printf "$(printf '\\%03o' $((last ^ 1)))" |
        dd of="$f" bs=1 seek=$((size - 1)) conv=notrunc status=none
}

# ---- 1. our CA, intermediate and leaves under openssl verify -----------------

mkdir a b
"$X509" mkca a example.org
"$X509" mkinter a
"$X509" issue a spiffe://example.org/web --dns web.example.org --dns '*.web.example.org'
"$X509" issue a spiffe://example.org/db --inter --out viainter
"$X509" mkca b other.org
openssl x509 -in a/viainter.pem -out a/viainter_leaf.pem

for purpose in sslserver sslclient; do
    openssl verify -x509_strict -purpose "$purpose" -CAfile a/ca.pem a/leaf.pem >/dev/null ||
        fail "openssl verify ($purpose) of a direct leaf"
    openssl verify -x509_strict -purpose "$purpose" -CAfile a/ca.pem -untrusted a/inter.pem \
        a/viainter_leaf.pem >/dev/null || fail "openssl verify ($purpose) via the intermediate"
done
ok "openssl verify -x509_strict accepts the direct and intermediate chains"
if openssl verify -CAfile b/ca.pem a/leaf.pem >/dev/null 2>&1; then
    fail "openssl accepted a leaf under another trust domain's CA"
fi
if openssl verify -CAfile a/ca.pem a/viainter_leaf.pem >/dev/null 2>&1; then
    fail "openssl accepted the intermediate-issued leaf without the intermediate"
fi
ok "openssl refuses the wrong CA and the missing intermediate"

# ---- 2. the SPIFFE profile as openssl prints it ------------------------------

leaf_text=$(openssl x509 -in a/leaf.pem -noout -text)
grep -qF "URI:spiffe://example.org/web" <<<"$leaf_text" || fail "leaf lacks the URI SAN"
grep -qF "DNS:web.example.org" <<<"$leaf_text" || fail "leaf lacks the DNS SAN"
[ "$(grep -c 'URI:' <<<"$leaf_text")" = 1 ] || fail "leaf SAN line count"
has_line_after "$leaf_text" "X509v3 Basic Constraints: critical" "CA:FALSE" ||
    fail "leaf basicConstraints is not critical CA:FALSE"
# RFC 8813: an EC leaf signs, it never enciphers keys
[ "$(grep -A1 -F "X509v3 Key Usage: critical" <<<"$leaf_text" | tail -n1 | xargs)" = \
    "Digital Signature" ] || fail "leaf keyUsage is not digitalSignature alone"
has_line_after "$leaf_text" "X509v3 Extended Key Usage:" \
    "TLS Web Server Authentication, TLS Web Client Authentication" || fail "leaf EKU"
grep -qF "X509v3 Subject Key Identifier" <<<"$leaf_text" || fail "leaf SKI"
grep -qF "X509v3 Authority Key Identifier" <<<"$leaf_text" || fail "leaf AKI"
grep -qE "Subject: O ?= ?SPIFFE, serialNumber ?= ?[0-9a-f]{32}" <<<"$leaf_text" ||
    fail "leaf subject"
serial=$(openssl x509 -in a/leaf.pem -noout -serial | cut -d= -f2)
[[ "$serial" =~ ^[0-7][0-9A-F]{31}$ ]] || fail "leaf serial $serial is not 128-bit positive"
ok "leaf: URI+DNS SAN, CA:FALSE critical, keyUsage critical, EKU, SKI/AKI, serial $serial"

ca_text=$(openssl x509 -in a/ca.pem -noout -text)
has_line_after "$ca_text" "X509v3 Basic Constraints: critical" "CA:TRUE" || fail "CA basicConstraints"
has_line_after "$ca_text" "X509v3 Key Usage: critical" "Certificate Sign, CRL Sign" ||
    fail "CA keyUsage"
grep -qF "URI:spiffe://example.org" <<<"$ca_text" || fail "CA URI SAN"
if grep -qF "Extended Key Usage" <<<"$ca_text"; then fail "CA carries an EKU"; fi
ok "CA: CA:TRUE critical, keyCertSign+cRLSign critical, URI spiffe://example.org, no EKU"

# the private key file is PKCS#8 and matches the certificate
[ "$(openssl pkey -in a/leaf.key -pubout)" = "$(openssl x509 -in a/leaf.pem -noout -pubkey)" ] ||
    fail "leaf key does not match its certificate"
head -n1 a/leaf.key | grep -qF -- "-----BEGIN PRIVATE KEY-----" || fail "key is not PKCS#8 PEM"
ok "leaf key is PKCS#8 and matches the certificate"

# NotBefore = now - 10 s and the NotAfter cap at the issuer's NotAfter
mkdir c
"$X509" mkca c example.org --ttl 120
"$X509" issue c spiffe://example.org/capped --ttl 3600
ca_end=$(openssl x509 -in c/ca.pem -noout -enddate)
leaf_end=$(openssl x509 -in c/leaf.pem -noout -enddate)
[ "$ca_end" = "$leaf_end" ] || fail "NotAfter not capped: leaf $leaf_end, CA $ca_end"
nb=$("$X509" show c/leaf.pem | sed -n 's/^not_before //p')
nb_ossl=$(date -d "$(openssl x509 -in c/leaf.pem -noout -startdate | cut -d= -f2)" +%s)
[ "$nb" = "$nb_ossl" ] || fail "NotBefore differs: $nb vs openssl $nb_ossl"
now=$(date +%s)
[ $((now - nb)) -ge 10 ] && [ $((now - nb)) -le 20 ] || fail "NotBefore is not about now - 10"
ok "leaf NotAfter capped at the CA's ($leaf_end), NotBefore = issue time - 10 s"

# ---- 3. x509tool verify: trust domains and time -------------------------------

expect_output "verify direct leaf" "spiffe://example.org/web" "$X509" verify a/leaf.pem a/ca.pem
expect_output "verify leaf + intermediate" "spiffe://example.org/db" \
    "$X509" verify a/viainter.pem a/ca.pem
expect_refused "leaf without its intermediate" "AUTH_UNTRUSTED" \
    "$X509" verify a/viainter_leaf.pem a/ca.pem
expect_refused "leaf against another trust domain's bundle" "AUTH_UNTRUSTED" \
    "$X509" verify a/leaf.pem b/ca.pem
na=$("$X509" show a/leaf.pem | sed -n 's/^not_after //p')
expect_refused "leaf after its NotAfter" "AUTH_EXPIRED.*expired" \
    "$X509" verify a/leaf.pem a/ca.pem --at $((na + 1))
expect_output "leaf at its NotAfter" "spiffe://example.org/web" \
    "$X509" verify a/leaf.pem a/ca.pem --at "$na"

# ---- 4. CSRs made by openssl req ------------------------------------------------

openssl ecparam -name prime256v1 -genkey -noout -out w256.key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out w384.key 2>/dev/null
openssl req -new -key w256.key -subj "/O=workload" \
    -addext "subjectAltName=URI:spiffe://example.org/ns/w,DNS:w.example.org" -out w256.csr
openssl req -new -key w384.key -subj "/O=workload" \
    -addext "subjectAltName=URI:spiffe://example.org/w384" -out w384.csr
openssl req -in w256.csr -outform der -out w256.der
expect_output "openssl P-256 CSR (PEM)" "spiffe://example.org/ns/w" "$X509" csr-check w256.csr
expect_output "openssl P-256 CSR (DER)" "spiffe://example.org/ns/w" "$X509" csr-check w256.der
expect_output "openssl P-384 CSR" "spiffe://example.org/w384" "$X509" csr-check w384.csr
openssl req -new -key w256.key -subj "/O=workload" -out noid.csr
expect_output "openssl CSR without SAN" "(none)" "$X509" csr-check noid.csr

# issue from the CSR and let openssl check the result and the key binding
"$X509" issue-csr a w256.csr w256.pem
openssl verify -x509_strict -CAfile a/ca.pem w256.pem >/dev/null || fail "cert from CSR"
[ "$(openssl pkey -in w256.key -pubout)" = "$(openssl x509 -in w256.pem -noout -pubkey)" ] ||
    fail "certificate from CSR does not carry the CSR's key"
openssl x509 -in w256.pem -noout -text | grep -qF "URI:spiffe://example.org/ns/w" ||
    fail "certificate from CSR lacks the ID"
ok "certificate issued from an openssl CSR verifies and carries the CSR's key and ID"

cp w256.der bad_sig.der
flip_last_byte bad_sig.der
expect_refused "CSR with a corrupted signature byte" "CRYPTO_SIG.*signature" \
    "$X509" csr-check bad_sig.der
openssl req -new -key w256.key -subj "/O=workload" \
    -addext "subjectAltName=URI:spiffe://example.org/a,URI:spiffe://example.org/b" -out two.csr
expect_refused "CSR with two URI SANs" "2 URI SANs" "$X509" csr-check two.csr
openssl req -new -key w256.key -subj "/O=workload" \
    -addext "subjectAltName=URI:spiffe://Example.org/a" -out upper.csr
expect_refused "CSR with an uppercase trust domain" "ID_TD_CHAR.*trust domain" \
    "$X509" csr-check upper.csr
openssl req -new -key w256.key -subj "/O=workload" \
    -addext "subjectAltName=URI:spiffe://example.org/a/../b" -out dots.csr
expect_refused "CSR with a dot segment" "ID_DOT_SEGMENT" "$X509" csr-check dots.csr
openssl req -new -key w256.key -subj "/O=workload" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "subjectAltName=URI:spiffe://example.org/a" -out ca.csr
expect_refused "CSR asking for CA:TRUE" "cA=TRUE" "$X509" csr-check ca.csr
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
openssl req -new -key rsa.key -subj "/O=workload" \
    -addext "subjectAltName=URI:spiffe://example.org/a" -out rsa.csr
expect_refused "CSR with an RSA key" "CRYPTO_KEY.*not EC" "$X509" csr-check rsa.csr
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1 -out k1.key 2>/dev/null
openssl req -new -key k1.key -subj "/O=workload" \
    -addext "subjectAltName=URI:spiffe://example.org/a" -out k1.csr
expect_refused "CSR on secp256k1" "CRYPTO_KEY.*curve" "$X509" csr-check k1.csr
head -c $(($(stat -c %s w256.der) - 7)) w256.der >trunc.der
expect_refused "truncated CSR" "PROTO_DER" "$X509" csr-check trunc.der

# our CSRs under openssl req -verify
"$X509" csr ours.key ours.csr spiffe://example.org/ours
openssl req -in ours.csr -verify -noout 2>&1 | grep -q "verify OK" || fail "openssl req -verify"
openssl req -in ours.csr -noout -text | grep -qF "URI:spiffe://example.org/ours" ||
    fail "our CSR lacks the URI SAN"
"$X509" csr ours384.key ours384.csr spiffe://example.org/ours --p384
openssl req -in ours384.csr -verify -noout 2>&1 | grep -q "verify OK" || fail "P-384 CSR verify"
ok "openssl req -verify accepts our P-256 and P-384 CSRs"

# ---- 5. certificates made by openssl x509 -req under an OpenSSL CA ------------

mkdir o
openssl ecparam -name prime256v1 -genkey -out o/ca.key # EC PARAMETERS + SEC 1 key
openssl req -x509 -new -key o/ca.key -subj "/O=OpenSSL Test CA" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectAltName=URI:spiffe://example.org" -out o/ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out o/leaf.key
openssl req -new -key o/leaf.key -subj "/O=leaf" -out o/leaf.csr
cat >o/ext.cnf <<'EOF'
[good]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:spiffe://example.org/ossl-leaf, DNS:ossl.example.org
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[two_uris]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org/a, URI:spiffe://example.org/b
[ca_leaf]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign
subjectAltName = URI:spiffe://example.org/sneaky
[no_path]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectAltName = URI:spiffe://example.org
EOF
for s in good two_uris ca_leaf no_path; do
    openssl x509 -req -in o/leaf.csr -CA o/ca.pem -CAkey o/ca.key -CAcreateserial -days 1 \
        -extfile o/ext.cnf -extensions "$s" -out "o/$s.pem" 2>/dev/null
done
expect_output "openssl-made SPIFFE leaf" "spiffe://example.org/ossl-leaf" \
    "$X509" verify o/good.pem o/ca.pem
expect_refused "openssl-made leaf with two URI SANs" "2 URI SANs" \
    "$X509" verify o/two_uris.pem o/ca.pem
expect_refused "openssl-made leaf with CA:TRUE" "cA=TRUE" "$X509" verify o/ca_leaf.pem o/ca.pem
expect_refused "openssl-made leaf without an ID path" "no path" \
    "$X509" verify o/no_path.pem o/ca.pem
expect_refused "openssl-made leaf against our CA" "AUTH_UNTRUSTED" \
    "$X509" verify o/good.pem a/ca.pem
expect_refused "our leaf against the openssl CA" "AUTH_UNTRUSTED" \
    "$X509" verify a/leaf.pem o/ca.pem

# libmayfly issuing under the OpenSSL CA with its SEC 1 key
"$X509" issue o spiffe://example.org/from-mayfly --out mf
openssl verify -x509_strict -CAfile o/ca.pem o/mf.pem >/dev/null ||
    fail "openssl verify of a leaf issued by libmayfly under an OpenSSL CA"
expect_output "mayfly leaf under the OpenSSL CA" "spiffe://example.org/from-mayfly" \
    "$X509" verify o/mf.pem o/ca.pem
expect_refused "issuing outside the CA's trust domain" "ID_WRONG_TD" \
    "$X509" issue o spiffe://other.org/x --out wrong

echo "all interop checks passed"
