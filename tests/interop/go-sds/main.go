// SPDX-License-Identifier: Apache-2.0
//
// interop-sds speaks Envoy's Secret Discovery Service (SDS v3) to mayfly's
// agent with Envoy's own generated Go types (go-control-plane, the version
// pinned in go.mod) over grpc-go, as an Envoy sidecar would. The socket is
// SPIFFE_ENDPOINT_SOCKET (unix:///...).
//
//	interop-sds xds TD ID              ACK, changed subscription, NACK (not
//	                                   resent), the SPIFFE validator config
//	                                   for TD field by field, half-close
//	interop-sds rotate ID SECS         one stream sees ID's SVID replaced
//	                                   within SECS, without re-subscribing
//	interop-sds fetch ID               FetchSecrets of "default" and of ID
//	interop-sds delta                  DeltaSecrets answers Unimplemented
//	interop-sds denied NAME            StreamSecrets and FetchSecrets of
//	                                   NAME answer PermissionDenied
//	interop-sds trusted-ca TD          ROOTCA as a plain trusted_ca list
//	interop-sds limits                 a request split over several HTTP/2
//	                                   frames is read whole; one over 64 KiB
//	                                   answers ResourceExhausted
//
// Every check prints "ok: ..." lines; any failure prints "FAIL: ..." and
// exits 1.
package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const (
	secretType      = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	spiffeValidator = "envoy.tls.cert_validator.spiffe"
	spiffeTypeURL   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig"
	ioTimeout       = 15 * time.Second
)

func fail(format string, a ...any) {
	fmt.Printf("FAIL: "+format+"\n", a...)
	os.Exit(1)
}

func ok(format string, a ...any) {
	fmt.Printf("ok: "+format+"\n", a...)
}

func dial() (*grpc.ClientConn, secretv3.SecretDiscoveryServiceClient) {
	ep := os.Getenv("SPIFFE_ENDPOINT_SOCKET")
	if !strings.HasPrefix(ep, "unix:///") {
		fail("SPIFFE_ENDPOINT_SOCKET must be a unix:/// address")
	}
	conn, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail("grpc.NewClient(%s): %v", ep, err)
	}
	return conn, secretv3.NewSecretDiscoveryServiceClient(conn)
}

var node = &corev3.Node{Id: "interop-sds", Cluster: "mayfly-interop"}

// stream wraps one StreamSecrets call with a receive deadline.
type stream struct {
	s      secretv3.SecretDiscoveryService_StreamSecretsClient
	cancel context.CancelFunc
}

func openStream(c secretv3.SecretDiscoveryServiceClient, life time.Duration) *stream {
	ctx, cancel := context.WithTimeout(context.Background(), life)
	s, err := c.StreamSecrets(ctx)
	if err != nil {
		cancel()
		fail("StreamSecrets: %v", err)
	}
	return &stream{s: s, cancel: cancel}
}

func (st *stream) send(req *discoveryv3.DiscoveryRequest) {
	req.Node = node
	req.TypeUrl = secretType
	if err := st.s.Send(req); err != nil {
		fail("Send: %v", err)
	}
}

func (st *stream) recv(what string) *discoveryv3.DiscoveryResponse {
	resp, err := st.s.Recv()
	if err != nil {
		fail("%s: Recv: %v", what, err)
	}
	if resp.GetTypeUrl() != secretType {
		fail("%s: type_url %q", what, resp.GetTypeUrl())
	}
	if resp.GetVersionInfo() == "" || resp.GetNonce() == "" {
		fail("%s: version_info %q nonce %q: both must be set", what, resp.GetVersionInfo(),
			resp.GetNonce())
	}
	return resp
}

// ack accepts resp for names.
func (st *stream) ack(resp *discoveryv3.DiscoveryResponse, names ...string) {
	st.send(&discoveryv3.DiscoveryRequest{VersionInfo: resp.GetVersionInfo(),
		ResponseNonce: resp.GetNonce(), ResourceNames: names})
}

// secrets decodes the response's resources, by name.
func secrets(what string, resp *discoveryv3.DiscoveryResponse) map[string]*tlsv3.Secret {
	out := map[string]*tlsv3.Secret{}
	for _, a := range resp.GetResources() {
		if a.GetTypeUrl() != secretType {
			fail("%s: resource of type %q", what, a.GetTypeUrl())
		}
		var s tlsv3.Secret
		if err := a.UnmarshalTo(&s); err != nil {
			fail("%s: resource: %v", what, err)
		}
		if err := s.ValidateAll(); err != nil {
			fail("%s: Envoy's validation rules refuse secret %q: %v", what, s.GetName(), err)
		}
		if _, dup := out[s.GetName()]; dup {
			fail("%s: secret %q twice", what, s.GetName())
		}
		out[s.GetName()] = &s
	}
	return out
}

func names(m map[string]*tlsv3.Secret) string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ",")
}

func wantNames(what string, m map[string]*tlsv3.Secret, want ...string) {
	sort.Strings(want)
	if got := names(m); got != strings.Join(want, ",") {
		fail("%s: secrets [%s], want [%s]", what, got, strings.Join(want, ","))
	}
}

func parsePEMCerts(what string, b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			fail("%s: PEM block %q", what, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			fail("%s: certificate: %v", what, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		fail("%s: no certificate", what)
	}
	return out
}

func uriID(c *x509.Certificate) string {
	if len(c.URIs) != 1 {
		return fmt.Sprintf("(%d URI SANs)", len(c.URIs))
	}
	return c.URIs[0].String()
}

// checkTLS: a TlsCertificate whose leaf carries id and whose key is the
// leaf's; returns the leaf.
func checkTLS(what string, s *tlsv3.Secret, id string) *x509.Certificate {
	tc := s.GetTlsCertificate()
	if tc == nil {
		fail("%s: secret %q is not a tls_certificate", what, s.GetName())
	}
	chain := parsePEMCerts(what, tc.GetCertificateChain().GetInlineBytes())
	if got := uriID(chain[0]); got != id {
		fail("%s: leaf SPIFFE ID %s, want %s", what, got, id)
	}
	blk, _ := pem.Decode(tc.GetPrivateKey().GetInlineBytes())
	if blk == nil || blk.Type != "PRIVATE KEY" {
		fail("%s: private_key is not a PEM PKCS#8 key", what)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		fail("%s: private key: %v", what, err)
	}
	type eq interface{ Equal(crypto.PublicKey) bool }
	signer, isSigner := k.(crypto.Signer)
	if !isSigner {
		fail("%s: private key cannot sign", what)
	}
	pub, isEq := signer.Public().(eq)
	if !isEq || !pub.Equal(chain[0].PublicKey) {
		fail("%s: private key does not match the leaf", what)
	}
	return chain[0]
}

// spiffeTDs decodes a validation context that must be Envoy's SPIFFE
// validator, field by field: name -> trust bundle PEM.
func spiffeTDs(what string, s *tlsv3.Secret) map[string][]byte {
	vc := s.GetValidationContext()
	if vc == nil {
		fail("%s: secret %q is not a validation_context", what, s.GetName())
	}
	if vc.GetTrustedCa() != nil {
		fail("%s: trusted_ca set alongside the SPIFFE validator", what)
	}
	cv := vc.GetCustomValidatorConfig()
	if cv.GetName() != spiffeValidator {
		fail("%s: custom_validator_config.name %q, want %q", what, cv.GetName(), spiffeValidator)
	}
	if cv.GetTypedConfig().GetTypeUrl() != spiffeTypeURL {
		fail("%s: typed_config type_url %q", what, cv.GetTypedConfig().GetTypeUrl())
	}
	var sv tlsv3.SPIFFECertValidatorConfig
	if err := cv.GetTypedConfig().UnmarshalTo(&sv); err != nil {
		fail("%s: SPIFFECertValidatorConfig: %v", what, err)
	}
	if err := sv.ValidateAll(); err != nil {
		fail("%s: Envoy's validation rules refuse the SPIFFE validator config: %v", what, err)
	}
	out := map[string][]byte{}
	for _, td := range sv.GetTrustDomains() {
		if strings.HasPrefix(td.GetName(), "spiffe://") {
			fail("%s: trust domain name %q has the scheme", what, td.GetName())
		}
		out[td.GetName()] = td.GetTrustBundle().GetInlineBytes()
	}
	return out
}

// checkCA: every certificate of the bundle is a CA of trust domain td, and
// leaf (when given) verifies against them.
func checkCA(what, td string, bundle []byte, leaf *x509.Certificate) {
	cas := parsePEMCerts(what, bundle)
	pool := x509.NewCertPool()
	for _, c := range cas {
		if !c.IsCA {
			fail("%s: bundle certificate %s is not a CA", what, c.Subject)
		}
		if id := uriID(c); id != "spiffe://"+td {
			fail("%s: bundle certificate SPIFFE ID %s, want spiffe://%s", what, id, td)
		}
		pool.AddCert(c)
	}
	if leaf != nil {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			fail("%s: the SVID does not verify against the bundle: %v", what, err)
		}
	}
}

func fetchLeaf(c secretv3.SecretDiscoveryServiceClient, id string) *x509.Certificate {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	resp, err := c.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: secretType,
		ResourceNames: []string{id}})
	if err != nil {
		fail("FetchSecrets(%s): %v", id, err)
	}
	m := secrets("fetch", resp)
	wantNames("fetch", m, id)
	return checkTLS("fetch "+id, m[id], id)
}

// xds: the protocol as Envoy speaks it, on one stream of bundles (which
// do not change during the test, so every response is an answer).
func cmdXDS(td, id string) {
	conn, c := dial()
	defer conn.Close()
	leaf := fetchLeaf(c, id)
	st := openStream(c, 3*ioTimeout)
	defer st.cancel()

	// 1. first request: ROOTCA
	st.send(&discoveryv3.DiscoveryRequest{ResourceNames: []string{"ROOTCA"}})
	r1 := st.recv("first response")
	m := secrets("first response", r1)
	wantNames("first response", m, "ROOTCA")
	tds := spiffeTDs("ROOTCA", m["ROOTCA"])
	if len(tds) != 1 || tds[td] == nil {
		fail("ROOTCA: trust domains %v, want exactly %s", mapKeys(tds), td)
	}
	checkCA("ROOTCA", td, tds[td], leaf)
	ok("ROOTCA is Envoy's SPIFFE validator for %s (version %s); %s verifies against it",
		td, r1.GetVersionInfo(), id)

	// 2. ACK, then a changed subscription: the next response is the answer
	// to the new set (an ACK is answered by nothing)
	st.ack(r1, "ROOTCA")
	both := []string{"ROOTCA", "spiffe://" + td}
	st.send(&discoveryv3.DiscoveryRequest{VersionInfo: r1.GetVersionInfo(),
		ResponseNonce: r1.GetNonce(), ResourceNames: both})
	r2 := st.recv("changed subscription")
	m = secrets("changed subscription", r2)
	wantNames("changed subscription", m, both...)
	if r2.GetVersionInfo() == r1.GetVersionInfo() || r2.GetNonce() == r1.GetNonce() {
		fail("changed subscription: version %s nonce %s repeat the first response's",
			r2.GetVersionInfo(), r2.GetNonce())
	}
	tds = spiffeTDs("spiffe://"+td, m["spiffe://"+td])
	checkCA("spiffe://"+td, td, tds[td], leaf)
	ok("ACK of version %s answered by nothing; subscription [%s] answered by version %s",
		r1.GetVersionInfo(), strings.Join(both, " "), r2.GetVersionInfo())

	// 3. NACK r2: the agent must not send it again; the next response is
	// the answer to the next subscription change
	st.send(&discoveryv3.DiscoveryRequest{VersionInfo: r1.GetVersionInfo(),
		ResponseNonce: r2.GetNonce(), ResourceNames: both,
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument),
			Message: "interop-sds rejects version " + r2.GetVersionInfo()}})
	st.send(&discoveryv3.DiscoveryRequest{VersionInfo: r1.GetVersionInfo(),
		ResponseNonce: r2.GetNonce(), ResourceNames: []string{"ALL"}})
	r3 := st.recv("after the NACK")
	m = secrets("after the NACK", r3)
	wantNames("after the NACK (not the rejected version again)", m, "ALL")
	tds = spiffeTDs("ALL", m["ALL"])
	if tds[td] == nil {
		fail("ALL: no trust domain %s among %v", td, mapKeys(tds))
	}
	checkCA("ALL", td, tds[td], leaf)
	ok("NACK of version %s not answered with it again; ALL answered by version %s",
		r2.GetVersionInfo(), r3.GetVersionInfo())

	// 4. a stale nonce (r2's, after r3) is ignored; the ACK of r3 too:
	// half-closing then ends the call with OK and nothing more
	st.send(&discoveryv3.DiscoveryRequest{VersionInfo: r1.GetVersionInfo(),
		ResponseNonce: r2.GetNonce(), ResourceNames: []string{"ROOTCA"}})
	st.ack(r3, "ALL")
	if err := st.s.CloseSend(); err != nil {
		fail("CloseSend: %v", err)
	}
	if resp, err := st.s.Recv(); err != io.EOF {
		fail("after a stale request, an ACK and half-close: %v %v, want the end of the call", resp,
			err)
	}
	ok("stale request ignored; half-close ends the call with OK")
}

func mapKeys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// rotate: one subscription; the agent pushes the renewed SVID.
func cmdRotate(id string, secs int) {
	conn, c := dial()
	defer conn.Close()
	st := openStream(c, time.Duration(secs)*time.Second+ioTimeout)
	defer st.cancel()
	st.send(&discoveryv3.DiscoveryRequest{ResourceNames: []string{id}})
	r1 := st.recv("first response")
	m := secrets("first response", r1)
	wantNames("first response", m, id)
	l1 := checkTLS("first response", m[id], id)
	st.ack(r1, id)
	ok("%s serial %s, version %s", id, l1.SerialNumber.Text(16), r1.GetVersionInfo())
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	for {
		r2 := st.recv("push")
		m = secrets("push", r2)
		wantNames("push", m, id)
		l2 := checkTLS("push", m[id], id)
		st.ack(r2, id)
		if l2.SerialNumber.Cmp(l1.SerialNumber) != 0 {
			if !time.Now().Before(l1.NotAfter) {
				fail("the new SVID came after the old one expired")
			}
			if r2.GetVersionInfo() == r1.GetVersionInfo() {
				fail("a new SVID under the same version %s", r1.GetVersionInfo())
			}
			ok("pushed without re-subscribing: serial %s, version %s, before the old expired",
				l2.SerialNumber.Text(16), r2.GetVersionInfo())
			return
		}
		if time.Now().After(deadline) {
			fail("no new SVID within %d s", secs)
		}
	}
}

func cmdFetch(id string) {
	conn, c := dial()
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	resp, err := c.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: secretType,
		ResourceNames: []string{"default", id}})
	if err != nil {
		fail("FetchSecrets: %v", err)
	}
	if resp.GetTypeUrl() != secretType || resp.GetVersionInfo() == "" {
		fail("FetchSecrets: type_url %q version %q", resp.GetTypeUrl(), resp.GetVersionInfo())
	}
	m := secrets("fetch", resp)
	wantNames("fetch", m, "default", id)
	a := checkTLS("default", m["default"], id)
	b := checkTLS(id, m[id], id)
	if !a.Equal(b) {
		fail("default and %s are different certificates", id)
	}
	ok("FetchSecrets: default and %s are the SVID of %s", id, id)
	// a figure, not a check: the round trip of one FetchSecrets on an open
	// connection (attestation, rendering, the key's PEM), median of 20
	var took []time.Duration
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		if _, err := c.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: node,
			TypeUrl: secretType, ResourceNames: []string{"default", "ROOTCA"}}); err != nil {
			fail("FetchSecrets: %v", err)
		}
		took = append(took, time.Since(t0))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	fmt.Printf("measured: FetchSecrets(default, ROOTCA) round trip, median of 20: %.2f ms\n",
		float64(took[10].Microseconds())/1000)
}

func cmdDelta() {
	conn, c := dial()
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	ds, err := c.DeltaSecrets(ctx)
	if err == nil {
		err = ds.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: secretType,
			ResourceNamesSubscribe: []string{"default"}})
		if err == nil || errors.Is(err, io.EOF) {
			_, err = ds.Recv()
		}
	}
	if status.Code(err) != codes.Unimplemented {
		fail("DeltaSecrets: %v, want Unimplemented", err)
	}
	ok("DeltaSecrets: Unimplemented")
}

func cmdDenied(name string) {
	conn, c := dial()
	defer conn.Close()
	st := openStream(c, ioTimeout)
	defer st.cancel()
	st.send(&discoveryv3.DiscoveryRequest{ResourceNames: []string{"ROOTCA", name}})
	resp, err := st.s.Recv()
	if status.Code(err) != codes.PermissionDenied {
		fail("StreamSecrets(%s): %v %v, want PermissionDenied", name, resp, err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "resource "+name+" is not") {
		fail("StreamSecrets(%s): message %q does not name it as sent", name, msg)
	}
	ok("StreamSecrets(%s): PermissionDenied (%s)", name, status.Convert(err).Message())
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	_, err = c.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: secretType,
		ResourceNames: []string{name}})
	if status.Code(err) != codes.PermissionDenied {
		fail("FetchSecrets(%s): %v, want PermissionDenied", name, err)
	}
	ok("FetchSecrets(%s): PermissionDenied", name)
}

func cmdTrustedCA(td string) {
	conn, c := dial()
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	resp, err := c.FetchSecrets(ctx, &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: secretType,
		ResourceNames: []string{"ROOTCA"}})
	if err != nil {
		fail("FetchSecrets(ROOTCA): %v", err)
	}
	m := secrets("trusted_ca", resp)
	wantNames("trusted_ca", m, "ROOTCA")
	vc := m["ROOTCA"].GetValidationContext()
	if vc == nil || vc.GetCustomValidatorConfig() != nil {
		fail("ROOTCA: want a validation context with trusted_ca only, got %v", m["ROOTCA"])
	}
	checkCA("trusted_ca", td, vc.GetTrustedCa().GetInlineBytes(), nil)
	ok("ROOTCA is a trusted_ca list of %s's authorities", td)
}

// limits: requests of many long names (2000 bytes each, under the 2048
// limit): 30 of them (about 60 KB, over several 16 KiB DATA frames) are
// read whole and refused by name; 40 (about 80 KB) exceed the 64 KiB
// request limit.
func cmdLimits() {
	conn, c := dial()
	defer conn.Close()
	long := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%04d%s", i, strings.Repeat("x", 1996))
		}
		return out
	}
	for _, tc := range []struct {
		n    int
		want codes.Code
	}{{30, codes.PermissionDenied}, {40, codes.ResourceExhausted}} {
		st := openStream(c, ioTimeout)
		st.send(&discoveryv3.DiscoveryRequest{ResourceNames: long(tc.n)})
		resp, err := st.s.Recv()
		st.cancel()
		if status.Code(err) != tc.want {
			fail("%d names of 2000 bytes: %v %v, want %v", tc.n, resp, err, tc.want)
		}
		msg := status.Convert(err).Message()
		if tc.want == codes.PermissionDenied && !strings.Contains(msg, "0000xxxx") {
			fail("%d names: the refusal does not name the first: %q", tc.n, msg)
		}
		ok("%d names of 2000 bytes: %v", tc.n, tc.want)
	}
}

func main() {
	a := os.Args[1:]
	if len(a) == 0 {
		fail("usage: interop-sds xds|rotate|fetch|delta|denied|trusted-ca|limits ...")
	}
	arg := func(i int) string {
		if len(a) <= i {
			fail("%s: missing argument %d", a[0], i)
		}
		return a[i]
	}
	switch a[0] {
	case "xds":
		cmdXDS(arg(1), arg(2))
	case "rotate":
		secs, err := strconv.Atoi(arg(2))
		if err != nil || secs <= 0 {
			fail("rotate: bad SECS %q", arg(2))
		}
		cmdRotate(arg(1), secs)
	case "fetch":
		cmdFetch(arg(1))
	case "delta":
		cmdDelta()
	case "denied":
		cmdDenied(arg(1))
	case "trusted-ca":
		cmdTrustedCA(arg(1))
	case "limits":
		cmdLimits()
	default:
		fail("unknown command %q", a[0])
	}
}
