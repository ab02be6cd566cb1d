# SPDX-License-Identifier: Apache-2.0
"""py-spiffe (the `spiffe` package, pinned in requirements.txt), unchanged,
against mayfly's agent. The client finds the socket through
SPIFFE_ENDPOINT_SOCKET only: no address is ever passed to the library.

    python pyspiffe_check.py SPIFFE_ID AUDIENCE

Checks X.509 SVIDs and bundles (the chain verified against the fetched
bundle, the key matching the leaf), JWT-SVIDs and JWT bundles, a JWT-SVID
validated locally with JwtSvid.parse_and_validate (and its refusals) and
through the agent. Prints one "ok:" line per check; the first failure
prints "FAIL: ..." and exits 1.
"""
import importlib.metadata
import os
import sys

from cryptography.hazmat.primitives import serialization

import spiffe
import spiffe.errors
import spiffe.svid.errors
from spiffe import JwtSvid, SpiffeId, WorkloadApiClient, X509Source

TIMEOUT = 20.0


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def ok(msg):
    print("ok: " + msg)


def spki(key):
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def check_svid(svid, bundle_set, want):
    """The SVID is `want`, its chain ends at an authority of its trust
    domain's bundle, and its key belongs to its leaf."""
    if str(svid.spiffe_id) != want:
        fail("X509-SVID is %s, want %s" % (svid.spiffe_id, want))
    if spki(svid.private_key.public_key()) != spki(svid.leaf.public_key()):
        fail("the SVID's private key does not match its leaf")
    bundle = bundle_set.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
    if bundle is None or not bundle.x509_authorities:
        fail("no X.509 bundle for %s" % svid.spiffe_id.trust_domain)
    chain = svid.cert_chain
    for child, parent in zip(chain, chain[1:]):
        child.verify_directly_issued_by(parent)
    top = chain[-1]
    for ca in bundle.x509_authorities:
        try:
            top.verify_directly_issued_by(ca)
            return bundle
        except Exception:  # noqa: BLE001 - try the next authority
            continue
    fail("the SVID's chain does not end at an authority of the bundle")


def main():
    if len(sys.argv) != 3:
        print("usage: pyspiffe_check.py SPIFFE_ID AUDIENCE", file=sys.stderr)
        sys.exit(2)
    want, aud = sys.argv[1], sys.argv[2]
    if not os.environ.get("SPIFFE_ENDPOINT_SOCKET", "").startswith("unix://"):
        fail("SPIFFE_ENDPOINT_SOCKET must be a unix:// address")
    print("note: py-spiffe (spiffe) %s, grpcio %s, python %s" % (
        importlib.metadata.version("spiffe"), importlib.metadata.version("grpcio"),
        sys.version.split()[0]))

    client = WorkloadApiClient(default_timeout=TIMEOUT)

    # X.509
    ctx = client.fetch_x509_context()
    svid = ctx.default_svid
    bundle = check_svid(svid, ctx.x509_bundle_set, want)
    ok("fetch_x509_context: %s, serial %d, expires %s, chain verified against %d "
       "authorities of %s" % (svid.spiffe_id, svid.leaf.serial_number,
                              svid.leaf.not_valid_after_utc.isoformat(),
                              len(bundle.x509_authorities), bundle.trust_domain))
    one = client.fetch_x509_svid()
    check_svid(one, ctx.x509_bundle_set, want)
    ok("fetch_x509_svid: %s" % one.spiffe_id)
    svids = client.fetch_x509_svids()
    if not svids or str(svids[0].spiffe_id) != want:
        fail("fetch_x509_svids: %r" % [str(s.spiffe_id) for s in svids])
    ok("fetch_x509_svids: %d SVID(s)" % len(svids))
    bundles = client.fetch_x509_bundles()
    b2 = bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
    if b2 is None or b2 != bundle:
        fail("fetch_x509_bundles: the bundle of %s differs from the X.509 context's"
             % svid.spiffe_id.trust_domain)
    ok("fetch_x509_bundles: %d bundle(s), the same as in the X.509 context"
       % len(bundles.bundles))
    with X509Source(timeout_in_seconds=TIMEOUT) as source:
        src_svid = source.get_x509_context().default_svid
        check_svid(src_svid, ctx.x509_bundle_set, want)
        ok("X509Source: %s" % src_svid.spiffe_id)

    # JWT
    jwt_svid = client.fetch_jwt_svid(audience={aud, aud + "-2"})
    if str(jwt_svid.spiffe_id) != want:
        fail("fetch_jwt_svid: subject %s, want %s" % (jwt_svid.spiffe_id, want))
    ok("fetch_jwt_svid: %s, audience %s, exp %d"
       % (jwt_svid.spiffe_id, sorted(jwt_svid.audience), jwt_svid.expiry))
    jwt_bundles = client.fetch_jwt_bundles()
    jb = jwt_bundles.get_bundle_for_trust_domain(jwt_svid.spiffe_id.trust_domain)
    if jb is None or not jb.jwt_authorities:
        fail("fetch_jwt_bundles: no JWT authorities for %s" % jwt_svid.spiffe_id.trust_domain)
    ok("fetch_jwt_bundles: %d JWT authorities for %s, kids %s"
       % (len(jb.jwt_authorities), jb.trust_domain, sorted(jb.jwt_authorities)))

    token = jwt_svid.token
    v = JwtSvid.parse_and_validate(token, jb, {aud})
    if str(v.spiffe_id) != want:
        fail("parse_and_validate: subject %s" % v.spiffe_id)
    ok("JwtSvid.parse_and_validate with the fetched JWT bundle: %s" % v.spiffe_id)
    try:
        JwtSvid.parse_and_validate(token, jb, {"someone-else"})
        fail("parse_and_validate took a wrong audience")
    except spiffe.svid.errors.JwtSvidError as e:
        ok("parse_and_validate refused a wrong audience: %s" % e)
    head, body, sig = token.split(".")
    flipped = sig[:10] + ("B" if sig[10] == "A" else "A") + sig[11:]
    forged = ".".join((head, body, flipped))
    try:
        JwtSvid.parse_and_validate(forged, jb, {aud})
        fail("parse_and_validate took a token with a changed signature")
    except (spiffe.svid.errors.JwtSvidError, spiffe.errors.PySpiffeError) as e:
        ok("parse_and_validate refused a changed signature: %s" % e)

    # the agent's own validation, through the library
    v2 = client.validate_jwt_svid(token, aud)
    if str(v2.spiffe_id) != want:
        fail("validate_jwt_svid: subject %s" % v2.spiffe_id)
    ok("validate_jwt_svid (agent): %s" % v2.spiffe_id)
    try:
        client.validate_jwt_svid(forged, aud)
        fail("validate_jwt_svid (agent) took a token with a changed signature")
    except spiffe.errors.PySpiffeError as e:
        ok("validate_jwt_svid (agent) refused a changed signature: %s" % e)

    # a subject the caller does not have is refused by the agent
    try:
        client.fetch_jwt_svid(audience={aud}, subject=SpiffeId(want + "-not-mine"))
        fail("fetch_jwt_svid gave a JWT-SVID for an identity the caller does not have")
    except spiffe.errors.PySpiffeError as e:
        ok("fetch_jwt_svid refused another subject: %s" % e)
    client.close()
    print("ok: every py-spiffe check passed")


if __name__ == "__main__":
    main()
