package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/listener"
)

// testCert is a self-signed certificate for 127.0.0.1, and a pool that
// trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dlb test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"x"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// tlsFront serves px over TLS on loopback as dlb does with --listen-tls:
// a FastTLSServer in front of the TLS server on the fast data path,
// net/http's TLS server alone on the std one. Its responses carry
// Strict-Transport-Security for host x.
type tlsFront struct {
	addr  string
	roots *x509.CertPool
	fs    *FastServer // nil on the std data path
}

func newTLSFront(t testing.TB, px *Proxy, parkAfter time.Duration, configure ...func(*http.Server)) *tlsFront {
	t.Helper()
	cert, roots := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sts := func(host string) string {
		if host == "x" {
			return "max-age=60"
		}
		return ""
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := sts(r.Host); v != "" {
			w.Header().Set("Strict-Transport-Security", v)
		}
		px.ServeHTTP(w, r)
	})
	srv := listener.NewServer(h, listener.ServerOptions{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	for _, c := range configure {
		c(srv.Server)
	}
	f := &tlsFront{addr: ln.Addr().String(), roots: roots}
	f.fs = NewFastTLSServer(px, srv.Server, parkAfter, sts)
	go f.fs.Serve(ln)
	go srv.Serve(f.fs.Handoffs(ln.Addr()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if f.fs != nil {
			f.fs.Shutdown(ctx)
		}
		srv.Shutdown(ctx)
	})
	return f
}

// dial opens a TLS connection offering protos by ALPN.
func (f *tlsFront) dial(t *testing.T, protos ...string) *tlsClient {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", f.addr, &tls.Config{RootCAs: f.roots, NextProtos: protos})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &tlsClient{c: c, br: bufio.NewReader(c)}
}

// fastConns is how many client connections the fast path's goroutines
// serve (-1 on the std data path).
func (f *tlsFront) fastConns() int {
	if f.fs == nil {
		return -1
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return len(f.fs.conns)
}

// waitFastConns waits, on the fast data path, until its goroutines serve n
// client connections (those that left are forgotten, parked ones are not
// counted).
func (f *tlsFront) waitFastConns(t *testing.T, what string, n int) {
	t.Helper()
	if f.fs == nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for got := f.fastConns(); got != n; got = f.fastConns() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the fast path serves %d connections after 5s, want %d", what, got, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// tlsReplica answers with its name, the target and the X-Forwarded-Proto
// it got (also in X-Proto); /204 and /304 with those statuses,
// /chunked in two chunks, /close with a body that ends when it closes the
// connection; a POST gets its body back.
func tlsReplica(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		proto := r.Header.Get("X-Forwarded-Proto")
		w.Header().Set("X-Proto", proto)
		body := name + " " + r.URL.RequestURI() + " " + proto
		if r.Method == http.MethodPost {
			body = name + ":" + string(b)
		}
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		case "/chunked":
			io.WriteString(w, body[:len(body)/2])
			w.(http.Flusher).Flush()
			io.WriteString(w, body[len(body)/2:])
		case "/close":
			c, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nX-Proto: %s\r\n\r\n%s", proto, body)
			bw.Flush()
			c.Close()
		default:
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			io.WriteString(w, body)
		}
	}
}

// TestFastTLS: HTTP/1.1 over TLS (ALPN http/1.1, or none) is served by the
// fast path, in its event loops, with keep-alive round robin as on plain
// HTTP/1.1 (TestRelayOverPlainAndTLS and TestConformanceResponses run the
// relay's cases on both); ALPN h2 goes to dlb's HTTP/2
// server (internal/h2), with
// X-Forwarded-Proto: https; plain HTTP to the TLS port gets 400.
func TestFastTLS(t *testing.T) {
	r, p := poolRoute("web")
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		ready(t, p, name, newBackend(t, name, tlsReplica(name)).addr())
	}
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0)

	for _, alpn := range [][]string{{"http/1.1"}, nil} {
		t.Run(fmt.Sprintf("ALPN %q", alpn), func(t *testing.T) {
			rc := f.dial(t, alpn...)
			seen := map[string]bool{}
			for i := range 3 {
				status, body, _, err := rc.sendRead(request("GET", "/a?i="+fmt.Sprint(i), ""), "GET")
				if err != nil || status != 200 || !strings.HasSuffix(body, fmt.Sprintf(" /a?i=%d https", i)) {
					t.Fatalf("GET %d: got %d %q (%v), want 200 \"web-N /a?i=%d https\"", i, status, body, err, i)
				}
				seen[strings.Fields(body)[0]] = true
			}
			if len(seen) != 3 {
				t.Errorf("3 GETs on one connection reached %v, want all 3 replicas (round robin)", seen)
			}
			f.waitFastConns(t, "after 3 GETs on one connection: an event loop holds it", 0)
		})
	}

	t.Run("h2", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}, ForceAttemptHTTP2: true}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + f.addr + "/two")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Proto != "HTTP/2.0" || resp.StatusCode != 200 || !strings.HasSuffix(string(body), " /two https") {
			t.Fatalf("got %s %d %q, want HTTP/2.0 200 ending in \" /two https\"", resp.Proto, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("got Strict-Transport-Security %q for host %q, want none (only x has one)", got, f.addr)
		}
	})

	t.Run("plain HTTP to the TLS port", func(t *testing.T) {
		rc := dialPlain(t, f.addr)
		status, _, _, err := rc.sendRead(request("GET", "/", ""), "GET")
		if err != nil || status != 400 {
			t.Fatalf("got %d (%v), want 400", status, err)
		}
	})
}

// TestFastTLSHandshakeTimeout: a client that connects and sends nothing is
// closed after the header timeout, and meanwhile others are served (as
// net/http's server does too).
func TestFastTLSHandshakeTimeout(t *testing.T) {
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", tlsReplica("web-1")).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0, func(s *http.Server) { s.ReadHeaderTimeout = 300 * time.Millisecond })
	silent := dialPlain(t, f.addr)
	rc := f.dial(t, "http/1.1")
	if status, body, _, err := rc.sendRead(request("GET", "/", ""), "GET"); err != nil || status != 200 {
		t.Fatalf("beside a silent connection: got %d %q (%v), want 200", status, body, err)
	}
	if err := silent.closedWithin(2 * time.Second); err != nil {
		t.Fatalf("a connection that sends no handshake: %v, want it closed after about 300ms", err)
	}
}

// TestFastTLSParked: an idle TLS connection has no goroutine (an event
// loop holds it, or off Linux a parking) and is served again, TLS state
// and all, when its next request comes.
func TestFastTLSParked(t *testing.T) {
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", tlsReplica("web-1")).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 50*time.Millisecond)
	if f.fs == nil {
		t.Skip("the fast path's parking")
	}
	rc := f.dial(t, "http/1.1")
	for i := range 3 {
		if status, body, _, err := rc.sendRead(request("GET", "/", ""), "GET"); err != nil || status != 200 || body != "web-1 / https" {
			t.Fatalf("request %d: got %d %q (%v), want 200 \"web-1 / https\"", i, status, body, err)
		}
		f.waitFastConns(t, fmt.Sprintf("request %d answered: the connection parked", i), 0)
	}
}

// tlsClient is one client connection (TLS or not), driven by hand so that
// every request surely goes on it.
type tlsClient struct {
	c    net.Conn
	br   *bufio.Reader
	last *http.Response // the last response read, its body read
}

func (tc *tlsClient) send(raw string) error {
	tc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(tc.c, raw)
	return err
}

// readFor reads the final response to a request of method (within 10s).
func (tc *tlsClient) readFor(method string) (status int, body string, closing bool, err error) {
	tc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(tc.br, &http.Request{Method: method})
	for err == nil && resp.StatusCode < 200 { // 100 Continue: the final response follows
		resp, err = http.ReadResponse(tc.br, &http.Request{Method: method})
	}
	if err != nil {
		return 0, "", false, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	tc.last = resp
	return resp.StatusCode, string(b), resp.Close, err
}

// sendRead sends raw and reads the response to method.
func (tc *tlsClient) sendRead(raw, method string) (status int, body string, closing bool, err error) {
	if err := tc.send(raw); err != nil {
		return 0, "", false, err
	}
	return tc.readFor(method)
}

// closedWithin reports whether the server closes the connection within d,
// sending nothing more.
func (tc *tlsClient) closedWithin(d time.Duration) error {
	tc.c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(tc.br)
	var ne net.Error
	switch {
	case len(b) > 0:
		return fmt.Errorf("got %d more bytes, want the connection closed", len(b))
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("still open after %s", d)
	}
	return nil // end of file, or reset
}

// dialPlain opens a plain TCP connection.
func dialPlain(t *testing.T, addr string) *tlsClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &tlsClient{c: c, br: bufio.NewReader(c)}
}

// TestFastTLSShutdownFinishesHandshakes: a connection accepted before
// Shutdown, whose handshake is still to come, gets its request answered
// (with Connection: close) rather than cut, as on net/http's server.
func TestFastTLSShutdownFinishesHandshakes(t *testing.T) {
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", tlsReplica("web-1")).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0)
	if f.fs == nil {
		t.Skip("the fast path's shutdown")
	}
	raw := dialPlain(t, f.addr)
	f.waitFastConns(t, "a connection accepted", 1)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- f.fs.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond) // Shutdown has begun
	tc := tls.Client(raw.c, &tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1"})
	c := &tlsClient{c: tc, br: bufio.NewReader(tc)}
	status, body, closing, err := c.sendRead(request("GET", "/", ""), "GET")
	if err != nil || status != 200 || body != "web-1 / https" || !closing {
		t.Fatalf("a request after the handshake, during Shutdown: got %d %q (closing %v, %v), want 200 \"web-1 / https\" with Connection: close", status, body, closing, err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v, want nil once the request is answered", err)
	}
}

// TestFastTLSClientGone: a TLS client that leaves (close_notify, then its
// FIN) while a replica answers slowly is noticed, and the replica's
// request is cancelled, as for a plain client.
func TestFastTLSClientGone(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0)
	rc := f.dial(t, "http/1.1")
	if err := rc.send(request("GET", "/slow", "")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the request is at the replica
	rc.c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the replica's request was not cancelled within 5s of the client's leaving")
	}
}
