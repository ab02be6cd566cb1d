#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks mayfly-agent's gRPC Workload API with a client we did not write.

The client is Debian's python3-grpcio; the message classes are generated at
test time (by tests/integration/agent_grpc.sh, with python3-grpc-tools) from
api/proto/workload.proto into $MAYFLY_GRPC_GEN, never committed. X.509 and
JWT checks use python3-cryptography when it is present and fall back to
`openssl` otherwise.

    workload_check.py CHECK [ARGS...]

Environment: SPIFFE_ENDPOINT_SOCKET (unix:///path), MAYFLY_GRPC_GEN (stubs),
and for some checks MAYFLY_CA_KEYS (the CA's keys dir), MAYFLY_CA (the
mayfly-ca binary) and MAYFLY_ADMIN (its admin socket). Each check prints
"ok: ..." lines and exits 0, or prints "FAIL: ..." and exits 1.
"""
import base64
import datetime
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.environ["MAYFLY_GRPC_GEN"])
import grpc  # noqa: E402
import workload_pb2 as pb  # noqa: E402
import workload_pb2_grpc as pb_grpc  # noqa: E402

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    HAVE_CRYPTO = True
except ImportError:
    HAVE_CRYPTO = False
if os.environ.get("MAYFLY_NO_PYCRYPTO"):  # exercise the openssl fallbacks
    HAVE_CRYPTO = False

TD_ID = "spiffe://example.org"
MD = [("workload.spiffe.io", "true")]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def ok(msg):
    print("ok: " + msg)
    sys.stdout.flush()


def target():
    ep = os.environ["SPIFFE_ENDPOINT_SOCKET"]
    if not ep.startswith("unix:"):
        fail("SPIFFE_ENDPOINT_SOCKET must be a unix: URI, got " + ep)
    return ep  # grpc accepts unix:///path as it is


def stub(own_connection=False):
    # gRPC shares one connection among channels to the same target unless
    # told to keep a pool of its own
    opts = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
    return pb_grpc.SpiffeWorkloadAPIStub(grpc.insecure_channel(target(), options=opts))


def expect_code(fn, code, what, contains=None):
    try:
        r = fn()
        if hasattr(r, "__next__"):
            next(r)
    except grpc.RpcError as e:
        if e.code() != code:
            fail("%s: got %s (%s), want %s" % (what, e.code(), e.details(), code))
        if contains and contains not in (e.details() or ""):
            fail("%s: message %r lacks %r" % (what, e.details(), contains))
        ok("%s -> %s (%s)" % (what, code.name, e.details()))
        return e
    fail("%s: succeeded, want %s" % (what, code))


# ---- X.509 ------------------------------------------------------------------------------

def split_der(blob):
    """Concatenated DER certificates -> list of DER certificates."""
    out, i = [], 0
    while i < len(blob):
        if blob[i] != 0x30:
            fail("concatenated DER: byte %d is not a SEQUENCE" % i)
        n = blob[i + 1]
        if n < 0x80:
            hdr, ln = 2, n
        else:
            k = n & 0x7F
            hdr, ln = 2 + k, int.from_bytes(blob[i + 2:i + 2 + k], "big")
        out.append(blob[i:i + hdr + ln])
        i += hdr + ln
    return out


def pem(der):
    b = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def verify_chain_crypto(chain, roots, spiffe_id):
    certs = [x509.load_der_x509_certificate(d) for d in chain]
    anchors = [x509.load_der_x509_certificate(d) for d in roots]
    now = time.time()
    leaf = certs[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if uris != [spiffe_id]:
        fail("leaf URI SANs %r, want [%r]" % (uris, spiffe_id))
    if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
        fail("leaf is a CA")
    for c in certs + anchors:
        # cryptography 38 gives naive datetimes in UTC
        nb = c.not_valid_before.replace(tzinfo=datetime.timezone.utc).timestamp()
        na = c.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp()
        if not nb <= now < na:
            fail("certificate %s is outside its validity window" % c.subject.rfc4514_string())
    # walk: each certificate must be signed by the next one, the last by a root
    for i, c in enumerate(certs):
        issuers = certs[i + 1:i + 2] if i + 1 < len(certs) else anchors
        good = False
        for iss in issuers:
            if iss.subject != c.issuer:
                continue
            try:
                iss.public_key().verify(c.signature, c.tbs_certificate_bytes,
                                        ec.ECDSA(c.signature_hash_algorithm))
                good = True
            except Exception:  # noqa: BLE001 - try the next authority
                continue
        if not good:
            fail("certificate %d of the chain does not verify against the bundle" % i)
    return leaf


def verify_chain_openssl(chain, roots):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "roots.pem"), "w") as f:
            f.write("".join(pem(r) for r in roots))
        with open(os.path.join(d, "untrusted.pem"), "w") as f:
            f.write("".join(pem(c) for c in chain[1:]) or pem(roots[0]))
        with open(os.path.join(d, "leaf.pem"), "w") as f:
            f.write(pem(chain[0]))
        r = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "roots.pem"),
                            "-untrusted", os.path.join(d, "untrusted.pem"),
                            os.path.join(d, "leaf.pem")], capture_output=True, text=True)
        if r.returncode != 0:
            fail("openssl verify: " + r.stdout + r.stderr)


def openssl(args, data=None):
    r = subprocess.run(["openssl"] + args, input=data, capture_output=True)
    if r.returncode != 0:
        fail("openssl %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r.stdout


def key_matches_openssl(key_der, leaf_der):
    with tempfile.TemporaryDirectory() as d:
        kf, cf = os.path.join(d, "k.der"), os.path.join(d, "c.der")
        with open(kf, "wb") as f:
            f.write(key_der)
        with open(cf, "wb") as f:
            f.write(leaf_der)
        if openssl(["pkey", "-inform", "DER", "-in", kf, "-pubout"]) != \
                openssl(["x509", "-inform", "DER", "-in", cf, "-pubkey", "-noout"]):
            fail("the private key does not match the leaf")


def check_svid(svid, spiffe_id):
    """The DER chain verifies against the bundle and the PKCS#8 key matches."""
    if svid.spiffe_id != spiffe_id:
        fail("spiffe_id %r, want %r" % (svid.spiffe_id, spiffe_id))
    chain, roots = split_der(svid.x509_svid), split_der(svid.bundle)
    if not chain or not roots:
        fail("empty chain or bundle")
    key = svid.x509_svid_key
    # PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER 0, SEQUENCE { id-ecPublicKey ... } ... }
    if key[0] != 0x30 or b"\x02\x01\x00\x30" not in key[:8] or \
            b"\x06\x07\x2a\x86\x48\xce\x3d\x02\x01" not in key[:32]:
        fail("x509_svid_key is not an unencrypted PKCS#8 EC key")
    if HAVE_CRYPTO:
        leaf = verify_chain_crypto(chain, roots, spiffe_id)
        priv = serialization.load_der_private_key(key, password=None)
        if priv.public_key().public_numbers() != leaf.public_key().public_numbers():
            fail("the private key does not match the leaf")
    else:
        key_matches_openssl(key, chain[0])
    verify_chain_openssl(chain, roots)  # and a second, independent verifier
    return chain[0]


def x509_svid(spiffe_id):
    it = stub().FetchX509SVID(pb.X509SVIDRequest(), metadata=MD)
    m = next(it)
    it.cancel()
    if len(m.svids) < 1:
        fail("no SVIDs")
    check_svid(m.svids[0], spiffe_id)
    if len(m.federated_bundles) != 0:
        fail("unexpected federated bundles")
    ok("FetchX509SVID: %s, chain of %d verifies against the bundle, PKCS#8 key matches the leaf"
       % (spiffe_id, len(split_der(m.svids[0].x509_svid))))


def rotation(spiffe_id, secs):
    """One stream sees the SVID rotate: a second complete message, new leaf."""
    it = stub().FetchX509SVID(pb.X509SVIDRequest(), metadata=MD)
    t0 = time.time()
    first = check_svid(next(it).svids[0], spiffe_id)
    timer = threading.Timer(float(secs), it.cancel)
    timer.start()
    try:
        for m in it:
            s = check_svid(m.svids[0], spiffe_id)
            if s != first:
                ok("stream saw a rotation after %.1f s (new leaf, full state)" % (time.time() - t0))
                return
    except grpc.RpcError as e:
        fail("stream ended: %s %s" % (e.code(), e.details()))
    finally:
        timer.cancel()
        it.cancel()
    fail("no rotation on the stream within %s s" % secs)


def x509_bundles():
    it = stub().FetchX509Bundles(pb.X509BundlesRequest(), metadata=MD)
    m = next(it)
    it.cancel()
    if list(m.bundles.keys()) != [TD_ID]:
        fail("bundles keyed %r, want [%r]" % (list(m.bundles.keys()), TD_ID))
    roots = split_der(m.bundles[TD_ID])
    it = stub().FetchX509SVID(pb.X509SVIDRequest(), metadata=MD)
    svid_bundle = next(it).svids[0].bundle
    it.cancel()
    if split_der(svid_bundle) != roots:
        fail("FetchX509Bundles and the SVID's bundle differ")
    ok("FetchX509Bundles keyed by %s, %d authorities" % (TD_ID, len(roots)))


def no_header():
    s = stub()
    for name, call in [
            ("FetchX509SVID", lambda: s.FetchX509SVID(pb.X509SVIDRequest())),
            ("FetchX509Bundles", lambda: s.FetchX509Bundles(pb.X509BundlesRequest())),
            ("FetchJWTSVID", lambda: s.FetchJWTSVID(pb.JWTSVIDRequest(audience=["a"]))),
            ("FetchJWTBundles", lambda: s.FetchJWTBundles(pb.JWTBundlesRequest())),
            ("ValidateJWTSVID",
             lambda: s.ValidateJWTSVID(pb.ValidateJWTSVIDRequest(audience="a", svid="x")))]:
        expect_code(call, grpc.StatusCode.INVALID_ARGUMENT, name + " without the header",
                    "security header")
    expect_code(lambda: s.FetchX509SVID(pb.X509SVIDRequest(),
                                        metadata=[("workload.spiffe.io", "True")]),
                grpc.StatusCode.INVALID_ARGUMENT, "header value 'True'")
    expect_code(lambda: s.FetchWITBundles(pb.WITBundlesRequest(), metadata=MD),
                grpc.StatusCode.UNIMPLEMENTED, "FetchWITBundles")


def denied():
    s = stub()
    for name, call in [
            ("FetchX509SVID", lambda: s.FetchX509SVID(pb.X509SVIDRequest(), metadata=MD)),
            ("FetchX509Bundles", lambda: s.FetchX509Bundles(pb.X509BundlesRequest(), metadata=MD)),
            ("FetchJWTSVID",
             lambda: s.FetchJWTSVID(pb.JWTSVIDRequest(audience=["a"]), metadata=MD)),
            ("FetchJWTBundles", lambda: s.FetchJWTBundles(pb.JWTBundlesRequest(), metadata=MD))]:
        expect_code(call, grpc.StatusCode.PERMISSION_DENIED, name + " for uid %d" % os.getuid(),
                    "no identity")


# ---- JWT --------------------------------------------------------------------------------

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwks():
    it = stub().FetchJWTBundles(pb.JWTBundlesRequest(), metadata=MD)
    m = next(it)
    it.cancel()
    if list(m.bundles.keys()) != [TD_ID]:
        fail("JWT bundles keyed %r" % list(m.bundles.keys()))
    return json.loads(m.bundles[TD_ID])


def jwt_bundles():
    doc = jwks()
    keys = doc.get("keys", [])
    if not keys:
        fail("no JWT keys: %r" % doc)
    for k in keys:
        if not k.get("kid") or k.get("kty") != "EC" or k.get("crv") != "P-256" or "d" in k:
            fail("bad JWT key %r" % k)
        if "use" in k or "x5c" in k:
            fail("JWT bundle carries a key of another kind: %r" % k)
    ok("FetchJWTBundles: JWKS of %d key(s), each with kid %s" % (
        len(keys), ",".join(k["kid"] for k in keys)))


def der_int(n):
    b = n.to_bytes(33, "big").lstrip(b"\x00")
    if not b or b[0] & 0x80:
        b = b"\x00" + b
    return b"\x02" + bytes([len(b)]) + b


def raw_to_der_sig(sig):
    body = der_int(int.from_bytes(sig[:32], "big")) + der_int(int.from_bytes(sig[32:], "big"))
    return b"\x30" + bytes([len(body)]) + body


def der_sig_to_raw(der):
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (short lengths for P-256)
    i = 2
    out = b""
    for _ in range(2):
        n = der[i + 1]
        out += int.from_bytes(der[i + 2:i + 2 + n], "big").to_bytes(32, "big")
        i += 2 + n
    return out


def verify_jws_independently(token, doc):
    """Our own token checked with another implementation (cryptography, or
    openssl), not with mayfly."""
    h, c, s = token.split(".")
    hdr = json.loads(unb64url(h))
    if hdr.get("alg") != "ES256" or not hdr.get("kid") or set(hdr) - {"alg", "kid", "typ"}:
        fail("JWT header %r" % hdr)
    key = [k for k in doc["keys"] if k["kid"] == hdr["kid"]]
    if len(key) != 1:
        fail("kid %s not in the JWT bundle" % hdr["kid"])
    x, y, sig = unb64url(key[0]["x"]), unb64url(key[0]["y"]), unb64url(s)
    if HAVE_CRYPTO:
        pub = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                            ec.SECP256R1()).public_key()
        pub.verify(raw_to_der_sig(sig), (h + "." + c).encode(), ec.ECDSA(hashes.SHA256()))
    else:
        # SubjectPublicKeyInfo of an uncompressed P-256 point
        spki = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + \
            b"\x04" + x + y
        with tempfile.TemporaryDirectory() as d:
            pf, sf = os.path.join(d, "pub.der"), os.path.join(d, "sig.der")
            with open(pf, "wb") as f:
                f.write(spki)
            with open(sf, "wb") as f:
                f.write(raw_to_der_sig(sig))
            openssl(["dgst", "-sha256", "-verify", pf, "-keyform", "DER", "-signature", sf],
                    (h + "." + c).encode())
    return hdr, json.loads(unb64url(c))


def sign_es256(key_pem_path, header, claims):
    si = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    if HAVE_CRYPTO:
        with open(key_pem_path, "rb") as f:
            priv = serialization.load_pem_private_key(f.read(), password=None)
        der = priv.sign(si.encode(), ec.ECDSA(hashes.SHA256()))
    else:
        der = openssl(["dgst", "-sha256", "-sign", key_pem_path], si.encode())
    return si + "." + b64url(der_sig_to_raw(der))


def jwt(spiffe_id):
    s = stub()
    r = s.FetchJWTSVID(pb.JWTSVIDRequest(audience=["svc-a", "svc-b"]), metadata=MD)
    if len(r.svids) != 1 or r.svids[0].spiffe_id != spiffe_id:
        fail("FetchJWTSVID answered %r" % r)
    token = r.svids[0].svid
    doc = jwks()
    hdr, claims = verify_jws_independently(token, doc)
    if claims["sub"] != spiffe_id or sorted(claims["aud"]) != ["svc-a", "svc-b"]:
        fail("claims %r" % claims)
    if not (time.time() < claims["exp"] <= time.time() + 301):
        fail("exp %r is not within the 5 min TTL" % claims["exp"])
    ok("FetchJWTSVID: ES256, kid %s, aud %s, signature verifies with the JWKS" % (
        hdr["kid"], claims["aud"]))

    v = s.ValidateJWTSVID(pb.ValidateJWTSVIDRequest(audience="svc-b", svid=token), metadata=MD)
    if v.spiffe_id != spiffe_id or v.claims.fields["sub"].string_value != spiffe_id:
        fail("ValidateJWTSVID answered %r" % v)
    got_aud = sorted(x.string_value for x in v.claims.fields["aud"].list_value.values)
    if got_aud != ["svc-a", "svc-b"] or int(v.claims.fields["exp"].number_value) != claims["exp"]:
        fail("ValidateJWTSVID claims %r" % v.claims)
    ok("ValidateJWTSVID round trip: %s, claims sub/aud/exp as signed" % v.spiffe_id)

    again = s.FetchJWTSVID(pb.JWTSVIDRequest(audience=["svc-b", "svc-a"]), metadata=MD)
    if again.svids[0].svid != token:
        fail("the same audience set did not come from the cache")
    ok("the same (SPIFFE ID, audience set) is served from the cache")

    bad = [
        ("another audience", token, "svc-c", "audience"),
        ("signature byte flipped", flip_sig(token), "svc-a", "signature"),
        ("alg none", b64url(b'{"alg":"none"}') + "." + token.split(".")[1] + ".", "svc-a",
         None),
        ("alg HS256", b64url(b'{"alg":"HS256","kid":"%s"}' % hdr["kid"].encode()) + "." +
         token.split(".")[1] + "." + token.split(".")[2], "svc-a", "not allowed"),
        ("JWS JSON serialization", json.dumps({"payload": token.split(".")[1]}), "svc-a", None),
        ("unknown kid", b64url(b'{"alg":"ES256","kid":"nope","typ":"JWT"}') + "." +
         token.split(".")[1] + "." + token.split(".")[2], "svc-a", "kid"),
        ("crit header", b64url(json.dumps({"alg": "ES256", "kid": hdr["kid"],
                                           "crit": ["x"]}).encode()) + "." +
         token.split(".")[1] + "." + token.split(".")[2], "svc-a", None),
    ]
    for what, tok, aud, contains in bad:
        expect_code(lambda: s.ValidateJWTSVID(pb.ValidateJWTSVIDRequest(audience=aud, svid=tok),
                                              metadata=MD),
                    grpc.StatusCode.INVALID_ARGUMENT, "ValidateJWTSVID, " + what, contains)
    expect_code(lambda: s.ValidateJWTSVID(pb.ValidateJWTSVIDRequest(svid=token), metadata=MD),
                grpc.StatusCode.INVALID_ARGUMENT, "ValidateJWTSVID without audience",
                "audience must be specified")
    expect_code(lambda: s.FetchJWTSVID(pb.JWTSVIDRequest(), metadata=MD),
                grpc.StatusCode.INVALID_ARGUMENT, "FetchJWTSVID without audience",
                "audience must be specified")
    expect_code(lambda: s.FetchJWTSVID(pb.JWTSVIDRequest(
        audience=["a"], spiffe_id="spiffe://example.org/not-mine"), metadata=MD),
        grpc.StatusCode.PERMISSION_DENIED, "FetchJWTSVID for an ID not granted")

    keys_dir = os.environ.get("MAYFLY_CA_KEYS")
    if keys_dir:
        key_file = os.path.join(keys_dir, hdr["kid"] + ".jwt.key")
        now = int(time.time())
        good = sign_es256(key_file, {"alg": "ES256", "kid": hdr["kid"], "typ": "JWT"},
                          {"sub": spiffe_id, "aud": "svc-a", "exp": now + 60, "iat": now})
        v = s.ValidateJWTSVID(pb.ValidateJWTSVIDRequest(audience="svc-a", svid=good),
                              metadata=MD)
        if v.spiffe_id != spiffe_id:
            fail("a token signed with the CA's JWT key was refused")
        ok("control: a token we signed with the CA's JWT key (aud as a string) validates")
        expired = sign_es256(key_file, {"alg": "ES256", "kid": hdr["kid"], "typ": "JWT"},
                             {"sub": spiffe_id, "aud": ["svc-a"], "exp": now - 3600,
                              "iat": now - 3900})
        expect_code(lambda: s.ValidateJWTSVID(pb.ValidateJWTSVIDRequest(
            audience="svc-a", svid=expired), metadata=MD),
            grpc.StatusCode.INVALID_ARGUMENT, "ValidateJWTSVID, expired an hour ago", "expired")
        other_td = sign_es256(key_file, {"alg": "ES256", "kid": hdr["kid"]},
                              {"sub": "spiffe://other.org/x", "aud": ["svc-a"],
                               "exp": now + 60})
        expect_code(lambda: s.ValidateJWTSVID(pb.ValidateJWTSVIDRequest(
            audience="svc-a", svid=other_td), metadata=MD),
            grpc.StatusCode.INVALID_ARGUMENT, "ValidateJWTSVID, sub in a trust domain we "
            "hold no bundle for", "other.org")
    else:
        fail("MAYFLY_CA_KEYS (the CA's keys dir) is needed for the expired-token check")


def jwt_renew(spiffe_id):
    """A cached JWT-SVID is handed out until half its life has passed, then
    a new one is fetched (here the CA's --svid-ttl makes tokens short)."""
    s = stub()
    aud = ["renew-%d" % os.getpid()]
    t1 = s.FetchJWTSVID(pb.JWTSVIDRequest(audience=aud, spiffe_id=spiffe_id),
                        metadata=MD).svids[0].svid
    c1 = json.loads(unb64url(t1.split(".")[1]))
    half = c1["iat"] + (c1["exp"] - c1["iat"]) / 2.0
    if time.time() < half - 1:
        t = s.FetchJWTSVID(pb.JWTSVIDRequest(audience=aud), metadata=MD).svids[0].svid
        if t != t1:
            fail("a new token before half of the old one's life")
    time.sleep(max(0.0, half - time.time()) + 1.0)
    t2 = s.FetchJWTSVID(pb.JWTSVIDRequest(audience=aud), metadata=MD).svids[0].svid
    c2 = json.loads(unb64url(t2.split(".")[1]))
    if t2 == t1 or c2["iat"] < half - 1:
        fail("no renewal after half of the token's life (%r then %r)" % (c1, c2))
    ok("JWT-SVID of %d s renewed after half its life (iat %d -> %d)" % (
        c1["exp"] - c1["iat"], c1["iat"], c2["iat"]))


def flip_sig(token):
    h, c, s = token.split(".")
    sig = bytearray(unb64url(s))
    sig[10] ^= 0x01
    return h + "." + c + "." + b64url(bytes(sig))


# ---- many streams, slow readers ----------------------------------------------------------

def many_streams(n):
    """n concurrent streams over a few channels: every one gets its first
    message; the agent counts one long-lived slot per connection."""
    n = int(n)
    stubs = [stub(own_connection=True) for _ in range(4)]
    its = [stubs[i % 4].FetchX509SVID(pb.X509SVIDRequest(), metadata=MD) for i in range(n)]
    t0 = time.time()
    got = sum(1 for it in its if len(next(it).svids) >= 1)
    for it in its:
        it.cancel()
    if got != n:
        fail("%d of %d streams got their first message" % (got, n))
    ok("%d concurrent streams on 4 connections all served in %.2f s" % (n, time.time() - t0))


def h2_frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def hpack_literal(name, value):
    # literal header field without indexing, new name (RFC 7541 6.2.2), short strings
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def raw_stream_requests(sock, first_id, count):
    hdrs = b"".join(hpack_literal(k, v) for k, v in [
        (b":method", b"POST"), (b":scheme", b"http"),
        (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID"), (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        (b"workload.spiffe.io", b"true")])
    out = b""
    for i in range(count):
        sid = first_id + 2 * i
        out += h2_frame(0x1, 0x4, sid, hdrs)                # HEADERS, END_HEADERS
        out += h2_frame(0x0, 0x1, sid, b"\x00\x00\x00\x00\x00")  # DATA, END_STREAM
    sock.sendall(out)


def under_asan(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def churn_entries(n):
    """2n changes that a uid-0 workload sees: an entry (and soon its SVID)
    appears, then goes; each is a new complete message for every stream."""
    ca, admin = os.environ["MAYFLY_CA"], os.environ["MAYFLY_ADMIN"]
    parent = os.environ.get("MAYFLY_PARENT", "spiffe://example.org/mayfly/agent/node1")
    for i in range(n):
        out = subprocess.run([ca, "entry", "create", "--admin-socket", admin, "--spiffe-id",
                              "spiffe://example.org/churn%d" % i, "--parent-id", parent,
                              "--selector", "unix:uid:0", "--json"],
                             capture_output=True, text=True, check=True)
        eid = json.loads(out.stdout)["id"]
        time.sleep(0.1)  # signed and published
        subprocess.run([ca, "entry", "delete", "--admin-socket", admin, eid],
                       capture_output=True, check=True)
        time.sleep(0.05)


def slow_readers(agent_pid, spiffe_id, conns, streams, churn):
    """Clients that open streams and never read: HTTP/2 flow control (an
    initial window of 0 or 64 bytes) keeps the DATA in the agent. While many state changes
    are published, each stream holds at most its newest message: the
    agent's memory must not grow with the number of changes, and other
    clients must still be served."""
    agent_pid, conns, streams, churn = int(agent_pid), int(conns), int(streams), int(churn)
    path = target()[len("unix://"):]
    # a first round without slow readers: what churn alone costs the agent
    # (allocator arenas, caches) is paid before measuring
    churn_entries(churn)
    socks = []
    for i in range(conns):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(path)
        # preface, then SETTINGS_INITIAL_WINDOW_SIZE: 0 (no DATA may come) on
        # half the connections, 64 bytes (every message stops half-sent) on
        # the others
        c.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                  h2_frame(0x4, 0, 0, struct.pack(">HI", 0x4, 0 if i % 2 == 0 else 64)))
        raw_stream_requests(c, 1, streams)
        socks.append(c)
    time.sleep(1.0)
    before = rss_kib(agent_pid)
    churn_entries(churn)
    time.sleep(2.0)
    after = rss_kib(agent_pid)
    # the agent still serves a normal client at once
    t0 = time.time()
    it = stub().FetchX509SVID(pb.X509SVIDRequest(), metadata=MD)
    check_svid(next(it).svids[0], spiffe_id)
    it.cancel()
    for c in socks:
        c.close()
    grow = after - before
    print("measured: %d never-reading streams on %d connections, %d entry changes: "
          "agent RSS %d -> %d KiB (%+d KiB); a normal client served in %.2f s"
          % (conns * streams, conns, 2 * churn, before, after, grow, time.time() - t0))
    # unbounded, every change would wait in every stream (streams x changes x
    # about 1.5 KiB: 38 MiB with 128 streams and 200 changes); bounded, each
    # stream holds one message whatever the number of changes. Under
    # AddressSanitizer freed memory sits in its quarantine: RSS says nothing.
    if under_asan(agent_pid):
        print("note: the agent runs under AddressSanitizer: RSS growth not judged")
    elif grow > 6 * 1024:
        fail("the agent grew by %d KiB while clients did not read" % grow)
    ok("slow readers: memory bounded, others served")


def ca_jwt(ca_addr, bundle_pem, agent_svid, own_id, other_agent_id):
    """POST /v1/jwt on the CA, as the agent (its own SVID from agent.svid),
    with Python's TLS stack: a token for an entry parented to the agent
    verifies with the CA's JWKS; an ID with no such entry is refused with
    403 (and the same answer for another agent's entry), bad bodies 400."""
    import http.client
    import ssl
    with open(agent_svid) as f:
        text = f.read()
    key = text[text.index("-----BEGIN PRIVATE KEY-----"):text.index("-----END PRIVATE KEY-----")]
    key += "-----END PRIVATE KEY-----\n"
    certs = text[text.index("-----BEGIN CERTIFICATE-----"):]
    with tempfile.TemporaryDirectory() as d:
        kf, cf = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
        with open(kf, "w") as f:
            f.write(key)
        with open(cf, "w") as f:
            f.write(certs)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # the server is named by its URI SAN, not a host name
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(bundle_pem)
        ctx.load_cert_chain(cf, kf)
        host, port = ca_addr.rsplit(":", 1)

        def post(body):
            c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            c.request("POST", "/v1/jwt", body=raw, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            out = (r.status, json.loads(r.read() or b"{}"))
            c.close()
            return out

        st, doc = post({"spiffe_id": own_id, "audience": ["ca-test"]})
        if st != 200 or doc.get("spiffe_id") != own_id:
            fail("POST /v1/jwt for an own entry: %d %r" % (st, doc))
        _, claims = verify_jws_independently(doc["token"], jwks())
        if claims["sub"] != own_id or claims["aud"] != ["ca-test"]:
            fail("claims %r" % claims)
        ok("CA POST /v1/jwt: token for %s verifies with the published JWKS" % own_id)
        for what, body, want in [
                ("an ID with no entry", {"spiffe_id": "spiffe://example.org/nobody-here",
                                         "audience": ["a"]}, 403),
                ("another agent's entry", {"spiffe_id": other_agent_id, "audience": ["a"]}, 403),
                ("no audience", {"spiffe_id": own_id, "audience": []}, 400),
                ("an unknown member", {"spiffe_id": own_id, "audience": ["a"], "ttl": 9}, 400),
                ("a bad SPIFFE ID", {"spiffe_id": "spiffe://Example.org/x", "audience": ["a"]},
                 400),
                ("17 audiences", {"spiffe_id": own_id,
                                  "audience": ["a%d" % i for i in range(17)]}, 413),
                ("not JSON", b"{", 400)]:
            st, doc = post(body)
            if st != want:
                fail("POST /v1/jwt with %s: %d %r, want %d" % (what, st, doc, want))
            ok("CA POST /v1/jwt with %s -> %d %s" % (what, st, doc.get("error")))


CHECKS = {
    "ca-jwt": ca_jwt,
    "x509": x509_svid,
    "rotation": rotation,
    "x509-bundles": x509_bundles,
    "no-header": no_header,
    "denied": denied,
    "jwt": jwt,
    "jwt-bundles": jwt_bundles,
    "jwt-renew": jwt_renew,
    "many-streams": many_streams,
    "slow-readers": slow_readers,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CHECKS:
        print("usage: workload_check.py {%s} [ARGS...]" % "|".join(CHECKS))
        sys.exit(2)
    CHECKS[sys.argv[1]](*sys.argv[2:])
