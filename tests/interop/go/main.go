// SPDX-License-Identifier: Apache-2.0
//
// interop-go drives mayfly's agent with go-spiffe v2, used as it ships:
// the socket comes from SPIFFE_ENDPOINT_SOCKET only (no address option is
// ever passed to the library), so this is what any Go workload sees.
//
//	interop-go x509 ID                 fetch the X.509 context and bundles
//	interop-go watch ID SECS           a watch sees a new SVID before the old expires
//	interop-go jwt ID AUDIENCE         JWT-SVID, JWT bundles, ParseAndValidate
//	interop-go dial ADDR PEER_ID       spiffetls mTLS client (mayfly-mtls protocol)
//	interop-go listen ADDRFILE PEER_ID spiffetls mTLS server, one connection
//
// dial and listen take --refused: the check then passes only when the
// connection fails (the authorizer, ours or the peer's, refused it).
// Every check prints "ok: ..." lines; any failure prints "FAIL: ..." and
// exits 1.
package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

const ioTimeout = 10 * time.Second

func fail(format string, a ...any) {
	fmt.Printf("FAIL: "+format+"\n", a...)
	os.Exit(1)
}

func ok(format string, a ...any) {
	fmt.Printf("ok: "+format+"\n", a...)
}

func mustID(s string) spiffeid.ID {
	id, err := spiffeid.FromString(s)
	if err != nil {
		fail("bad SPIFFE ID %q: %v", s, err)
	}
	return id
}

// newClient opens a Workload API client on SPIFFE_ENDPOINT_SOCKET: no
// address option, so the library's own discovery is what is tested.
func newClient(ctx context.Context) *workloadapi.Client {
	if !strings.HasPrefix(os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "unix://") {
		fail("SPIFFE_ENDPOINT_SOCKET must be a unix:// address")
	}
	c, err := workloadapi.New(ctx)
	if err != nil {
		fail("workloadapi.New: %v", err)
	}
	return c
}

// sameKey: the SVID's private key belongs to its leaf certificate.
func sameKey(svid *x509svid.SVID) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	pub, isEq := svid.PrivateKey.Public().(eq)
	return isEq && pub.Equal(svid.Certificates[0].PublicKey)
}

func checkX509(want spiffeid.ID) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newClient(ctx)
	defer c.Close()

	xc, err := c.FetchX509Context(ctx)
	if err != nil {
		fail("FetchX509Context: %v", err)
	}
	svid := xc.DefaultSVID()
	if svid == nil || svid.ID != want {
		fail("default X509-SVID is %v, want %s", svid, want)
	}
	id, _, err := x509svid.Verify(svid.Certificates, xc.Bundles)
	if err != nil || id != want {
		fail("x509svid.Verify of the SVID against the fetched bundles: id=%s err=%v", id, err)
	}
	if !sameKey(svid) {
		fail("the SVID's private key does not match its leaf")
	}
	b, found := xc.Bundles.Get(want.TrustDomain())
	if !found || len(b.X509Authorities()) == 0 {
		fail("no X.509 bundle for %s in the X.509 context", want.TrustDomain())
	}
	ok("FetchX509Context: %s, serial %s, expires %s, verified against %d authorities of %s",
		svid.ID, svid.Certificates[0].SerialNumber, svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339),
		len(b.X509Authorities()), b.TrustDomain())

	all, err := c.FetchX509SVIDs(ctx)
	if err != nil || len(all) == 0 || all[0].ID != want {
		fail("FetchX509SVIDs: %d SVIDs, err=%v", len(all), err)
	}
	ok("FetchX509SVIDs: %d SVID(s), the first %s", len(all), all[0].ID)

	bs, err := c.FetchX509Bundles(ctx)
	if err != nil {
		fail("FetchX509Bundles: %v", err)
	}
	b2, found := bs.Get(want.TrustDomain())
	if !found || !b2.Equal(b) {
		fail("FetchX509Bundles: the bundle of %s differs from the X.509 context's", want.TrustDomain())
	}
	ok("FetchX509Bundles: %d bundle(s), %s the same as in the X.509 context", bs.Len(), want.TrustDomain())
}

// watcher records the first SVID seen and the first different one.
type watcher struct {
	want    spiffeid.ID
	first   *x509.Certificate
	rotated chan *x509.Certificate
	errs    chan error
}

func (w *watcher) OnX509ContextUpdate(xc *workloadapi.X509Context) {
	svid := xc.DefaultSVID()
	if svid == nil || svid.ID != w.want {
		w.errs <- fmt.Errorf("update without the expected SVID %s", w.want)
		return
	}
	if _, _, err := x509svid.Verify(svid.Certificates, xc.Bundles); err != nil {
		w.errs <- fmt.Errorf("an update's SVID does not verify: %v", err)
		return
	}
	leaf := svid.Certificates[0]
	if w.first == nil {
		w.first = leaf
		ok("watch: first SVID serial %s, expires %s", leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339))
		return
	}
	if leaf.SerialNumber.Cmp(w.first.SerialNumber) != 0 {
		select {
		case w.rotated <- leaf:
		default:
		}
	}
}

func (w *watcher) OnX509ContextWatchError(err error) {
	// the library reconnects by itself; a cancelled context ends the watch
	if !errors.Is(err, context.Canceled) {
		fmt.Printf("note: watch error (the library retries): %v\n", err)
	}
}

func checkWatch(want spiffeid.ID, secs int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	c := newClient(ctx)
	defer c.Close()
	w := &watcher{want: want, rotated: make(chan *x509.Certificate, 1), errs: make(chan error, 16)}
	done := make(chan error, 1)
	go func() { done <- c.WatchX509Context(ctx, w) }()
	select {
	case leaf := <-w.rotated:
		now := time.Now()
		if !now.Before(w.first.NotAfter) {
			fail("watch: the new SVID came at %s, after the old one expired at %s",
				now.UTC().Format(time.RFC3339), w.first.NotAfter.UTC().Format(time.RFC3339))
		}
		if !leaf.NotAfter.After(w.first.NotAfter) {
			fail("watch: the new SVID does not outlive the old one")
		}
		ok("watch: new SVID serial %s, expires %s", leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339))
		fmt.Printf("measured: go-spiffe watch saw the rotation %.1f s before the old SVID expired\n",
			w.first.NotAfter.Sub(now).Seconds())
	case err := <-w.errs:
		fail("watch: %v", err)
	case err := <-done:
		fail("watch ended without a rotation within %d s: %v", secs, err)
	}
}

func checkJWT(want spiffeid.ID, aud string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newClient(ctx)
	defer c.Close()

	svid, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: aud, ExtraAudiences: []string{aud + "-2"}})
	if err != nil {
		fail("FetchJWTSVID: %v", err)
	}
	if svid.ID != want {
		fail("FetchJWTSVID: subject %s, want %s", svid.ID, want)
	}
	ok("FetchJWTSVID: %s, audience %v, expires %s", svid.ID, svid.Audience, svid.Expiry.UTC().Format(time.RFC3339))

	bundles, err := c.FetchJWTBundles(ctx)
	if err != nil {
		fail("FetchJWTBundles: %v", err)
	}
	b, found := bundles.Get(want.TrustDomain())
	if !found || len(b.JWTAuthorities()) == 0 {
		fail("FetchJWTBundles: no JWT authorities for %s", want.TrustDomain())
	}
	ok("FetchJWTBundles: %d JWT authorities for %s", len(b.JWTAuthorities()), b.TrustDomain())

	token := svid.Marshal()
	got, err := jwtsvid.ParseAndValidate(token, bundles, []string{aud})
	if err != nil || got.ID != want {
		fail("jwtsvid.ParseAndValidate with the fetched JWT bundles: %v", err)
	}
	ok("jwtsvid.ParseAndValidate: %s, audience %v", got.ID, got.Audience)

	// the relying-party checks refuse what they must
	if _, err := jwtsvid.ParseAndValidate(token, bundles, []string{"someone-else"}); err == nil {
		fail("jwtsvid.ParseAndValidate took a wrong audience")
	} else {
		ok("jwtsvid.ParseAndValidate refused a wrong audience: %v", err)
	}
	parts := strings.Split(token, ".")
	sig := []byte(parts[2])
	// flip one base64url character in the middle of the signature
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	forged := parts[0] + "." + parts[1] + "." + string(sig)
	if _, err := jwtsvid.ParseAndValidate(forged, bundles, []string{aud}); err == nil {
		fail("jwtsvid.ParseAndValidate took a token with a changed signature")
	} else {
		ok("jwtsvid.ParseAndValidate refused a changed signature: %v", err)
	}
	empty := jwtbundle.NewSet()
	if _, err := jwtsvid.ParseAndValidate(token, empty, []string{aud}); err == nil {
		fail("jwtsvid.ParseAndValidate took a token without a bundle for its trust domain")
	}

	// the agent's own validation, through the library
	v, err := c.ValidateJWTSVID(ctx, token, aud)
	if err != nil || v.ID != want {
		fail("ValidateJWTSVID: %v", err)
	}
	ok("ValidateJWTSVID (agent): %s", v.ID)
	if _, err := c.ValidateJWTSVID(ctx, forged, aud); err == nil {
		fail("ValidateJWTSVID (agent) took a token with a changed signature")
	} else {
		ok("ValidateJWTSVID (agent) refused a changed signature: %v", err)
	}
}

// readLine reads one line (without its newline) with a deadline.
func readLine(conn net.Conn, r *bufio.Reader) (string, error) {
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	s, err := r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func writeLine(conn net.Conn, s string) error {
	_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := conn.Write([]byte(s + "\n"))
	return err
}

// source is an X509Source on SPIFFE_ENDPOINT_SOCKET, kept current by the
// library across rotations.
func source(ctx context.Context) *workloadapi.X509Source {
	if !strings.HasPrefix(os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "unix://") {
		fail("SPIFFE_ENDPOINT_SOCKET must be a unix:// address")
	}
	src, err := workloadapi.NewX509Source(ctx)
	if err != nil {
		fail("workloadapi.NewX509Source: %v", err)
	}
	return src
}

// dial: a go-spiffe mTLS client against mayfly-mtls's server: the server
// greets, we send a line, it answers "got your message: <line>".
func dial(addr string, peer spiffeid.ID, refused bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src := source(ctx)
	defer src.Close()
	err := func() error {
		conn, err := spiffetls.DialWithMode(ctx, "tcp", addr,
			spiffetls.MTLSClientWithSource(tlsconfig.AuthorizeID(peer), src))
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		// with TLS 1.3 the server checks our certificate after our side of
		// the handshake is done: its refusal shows up on the first read
		hello, err := readLine(conn, r)
		if err != nil {
			return fmt.Errorf("no greeting: %w", err)
		}
		ok("dial: connected to %s, which proved %s; it says %q", addr, peer, hello)
		msg := "hello from go-spiffe"
		if err := writeLine(conn, msg); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		ans, err := readLine(conn, r)
		if err != nil {
			return fmt.Errorf("no answer: %w", err)
		}
		if ans != "got your message: "+msg {
			return fmt.Errorf("unexpected answer %q", ans)
		}
		ok("dial: server answered %q", ans)
		return nil
	}()
	switch {
	case refused && err == nil:
		fail("dial: the connection to %s (authorizing %s) was not refused", addr, peer)
	case refused:
		ok("dial: refused as expected: %v", err)
	case err != nil:
		fail("dial %s: %v", addr, err)
	}
}

// listen: a go-spiffe mTLS server for one mayfly-mtls client. It listens on
// 127.0.0.1:0 and writes its address to ADDRFILE (temp name, then rename)
// for the test to start the client.
func listen(addrFile string, peer spiffeid.ID, refused bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src := source(ctx)
	defer src.Close()
	me, err := src.GetX509SVID()
	if err != nil {
		fail("listen: no SVID: %v", err)
	}
	ln, err := spiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0",
		spiffetls.MTLSServerWithSource(tlsconfig.AuthorizeID(peer), src))
	if err != nil {
		fail("listen: %v", err)
	}
	defer ln.Close()
	tmp := addrFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
		fail("listen: %v", err)
	}
	if err := os.Rename(tmp, addrFile); err != nil {
		fail("listen: %v", err)
	}
	fmt.Printf("listen: on %s as %s, authorizing %s\n", ln.Addr(), me.ID, peer)
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	conn, err := ln.Accept()
	if err != nil {
		fail("listen: accept: %v", err)
	}
	defer conn.Close()
	err = func() error {
		_ = conn.SetDeadline(time.Now().Add(ioTimeout))
		got, err := conn.(interface {
			PeerID() (spiffeid.ID, error)
		}).PeerID()
		if err != nil {
			return err
		}
		ok("listen: client proved %s", got)
		if err := writeLine(conn, fmt.Sprintf("hello %s, this is %s", got, me.ID)); err != nil {
			return fmt.Errorf("greet: %w", err)
		}
		r := bufio.NewReader(conn)
		msg, err := readLine(conn, r)
		if err != nil {
			return fmt.Errorf("no message: %w", err)
		}
		ok("listen: received %q", msg)
		return writeLine(conn, "got your message: "+msg)
	}()
	switch {
	case refused && err == nil:
		fail("listen: a client that %s does not authorize was accepted", peer)
	case refused:
		ok("listen: refused the client as expected: %v", err)
	case err != nil:
		fail("listen: %v", err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: interop-go x509 ID | watch ID SECS | jwt ID AUD | "+
		"dial ADDR PEER_ID [--refused] | listen ADDRFILE PEER_ID [--refused]")
	os.Exit(2)
}

func main() {
	args := os.Args[1:]
	refused := false
	if n := len(args); n > 0 && args[n-1] == "--refused" {
		refused = true
		args = args[:n-1]
	}
	if len(args) < 2 {
		usage()
	}
	switch {
	case args[0] == "x509" && len(args) == 2:
		checkX509(mustID(args[1]))
	case args[0] == "watch" && len(args) == 3:
		secs, err := strconv.Atoi(args[2])
		if err != nil {
			usage()
		}
		checkWatch(mustID(args[1]), secs)
	case args[0] == "jwt" && len(args) == 3:
		checkJWT(mustID(args[1]), args[2])
	case args[0] == "dial" && len(args) == 3:
		dial(args[1], mustID(args[2]), refused)
	case args[0] == "listen" && len(args) == 3:
		listen(args[1], mustID(args[2]), refused)
	default:
		usage()
	}
}
