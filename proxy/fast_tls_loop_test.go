package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/nettest"
)

// The event loops serve HTTPS connections once their handshake is done:
// these tests drive TLS records that the loop gets in pieces, in bursts,
// and cut short, over real sockets.

// clientConn is the network connection under a test's TLS client: once
// trickle is set, each byte it writes is a write of its own, so that a
// record reaches the server in pieces across its reads; while batch is
// set, what it writes waits for flush, so that many records reach the
// server in one segment. seen keeps what it read once record is set.
type clientConn struct {
	net.Conn
	trickle atomic.Bool
	mu      sync.Mutex
	batch   bool
	held    []byte
	record  atomic.Bool
	seen    bytes.Buffer
}

func (c *clientConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.batch {
		c.held = append(c.held, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	if !c.trickle.Load() {
		return c.Conn.Write(p)
	}
	for i := range p {
		if _, err := c.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.record.Load() {
		c.mu.Lock()
		c.seen.Write(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// flush writes what was held with one write, and stops holding.
func (c *clientConn) flush() error {
	c.mu.Lock()
	held := c.held
	c.batch, c.held = false, nil
	c.mu.Unlock()
	_, err := c.Conn.Write(held)
	return err
}

// dialVia opens a TLS connection over a clientConn (TLS 1.2 at most when
// tls12 is set: its alerts' record type is in the clear).
func (f *tlsFront) dialVia(t *testing.T, tls12 bool) (*tlsClient, *clientConn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cc := &clientConn{Conn: nc}
	cfg := &tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}
	if tls12 {
		cfg.MaxVersion = tls.VersionTLS12
	}
	c := tls.Client(cc, cfg)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	return &tlsClient{c: c, br: bufio.NewReader(c)}, cc
}

// waitLoopsHold waits until the event loops hold n client connections
// and no goroutine serves one.
func (f *tlsFront) waitLoopsHold(t *testing.T, what string, n int) {
	t.Helper()
	nettest.WaitWithin(t, 10*time.Second, what, func() bool {
		held := 0
		for _, l := range f.fs.loops {
			held += int(l.live.Load())
		}
		return held == n && f.fastConns() == 0
	})
}

// A request whose records come a byte at a time (each byte of plain text
// a record, each byte of a record a write of its own) is served, and the
// connection goes on serving requests in its event loop.
func TestFastTLSRecordsInPieces(t *testing.T) {
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", tlsReplica("web-1")).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0)
	rc, cc := f.dialVia(t, false)
	if status, body, _, err := rc.sendRead(request("GET", "/first", ""), "GET"); err != nil || status != 200 || body != "web-1 /first https" {
		t.Fatalf("first request: got %d %q (%v), want 200 \"web-1 /first https\"", status, body, err)
	}
	f.waitLoopsHold(t, "after the first request", 1)
	cc.trickle.Store(true)
	raw := request("POST", "/p", "slowly")
	rc.c.SetDeadline(time.Now().Add(30 * time.Second))
	for i := range len(raw) {
		if _, err := io.WriteString(rc.c, raw[i:i+1]); err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
	}
	if status, body, _, err := rc.readFor("POST"); err != nil || status != 200 || body != "web-1:slowly" {
		t.Fatalf("a request a byte at a time: got %d %q (%v), want 200 \"web-1:slowly\"", status, body, err)
	}
	cc.trickle.Store(false)
	f.waitLoopsHold(t, "after the request in pieces", 1)
	for i := range 3 {
		if status, body, _, err := rc.sendRead(request("GET", "/next", ""), "GET"); err != nil || status != 200 || body != "web-1 /next https" {
			t.Fatalf("request %d after it: got %d %q (%v), want 200 \"web-1 /next https\"", i, status, body, err)
		}
	}
}

// A burst of pipelined requests, each its own record, all in one segment,
// is answered in order: requests the event loop serves, one it hands to
// net/http (a target with '%') with those that follow it already
// decrypted, and a POST.
func TestFastTLSPipelinedBurst(t *testing.T) {
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", tlsReplica("web-1")).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0)
	rc, cc := f.dialVia(t, false)
	if status, _, _, err := rc.sendRead(request("GET", "/warm", ""), "GET"); err != nil || status != 200 {
		t.Fatalf("first request: got %d (%v), want 200", status, err)
	}
	var want []string
	cc.mu.Lock()
	cc.batch = true
	cc.mu.Unlock()
	for i := range 100 {
		var raw string
		switch i {
		case 50:
			raw, want = request("POST", "/p", "body"), append(want, "web-1:body")
		case 98:
			raw, want = request("GET", "/a%20b", ""), append(want, "web-1 /a%20b https")
		default:
			raw, want = request("GET", fmt.Sprintf("/%d", i), ""), append(want, fmt.Sprintf("web-1 /%d https", i))
		}
		if _, err := io.WriteString(rc.c, raw); err != nil { // one record each
			t.Fatal(err)
		}
	}
	if err := cc.flush(); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		method := "GET"
		if i == 50 {
			method = "POST"
		}
		status, body, _, err := rc.readFor(method)
		if err != nil || status != 200 || body != w {
			t.Fatalf("response %d of 100: got %d %q (%v), want 200 %q", i, status, body, err, w)
		}
	}
}

// A client that resets its connection in the middle of a large response
// costs nothing else: the fast path lets the connection go, and the next
// client is served.
func TestFastTLSClientResetsMidResponse(t *testing.T) {
	big := strings.Repeat("x", 8<<20)
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			io.WriteString(w, big)
			return
		}
		io.WriteString(w, "small")
	}).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0)
	for range 3 {
		rc, _ := f.dialVia(t, false)
		if err := rc.send(request("GET", "/big", "")); err != nil {
			t.Fatal(err)
		}
		rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(rc.br, make([]byte, 64<<10)); err != nil {
			t.Fatalf("the start of a large response: %v", err)
		}
		tcp := rc.c.(*tls.Conn).NetConn().(*clientConn).Conn.(*net.TCPConn)
		tcp.SetLinger(0)
		tcp.Close() // a reset, with most of the response still to come
	}
	rc := f.dial(t, "http/1.1")
	if status, body, _, err := rc.sendRead(request("GET", "/", ""), "GET"); err != nil || status != 200 || body != "small" {
		t.Fatalf("after 3 clients reset mid-response: got %d %q (%v), want 200 \"small\"", status, body, err)
	}
	f.waitLoopsHold(t, "after 3 resets: the one client left is idle in its loop", 1)
}

// A TLS connection closes as TLS says: a client's close_notify is answered
// with the server's and the connection ends, and a connection the idle
// timeout ends gets close_notify before the FIN.
func TestFastTLSCloseNotify(t *testing.T) {
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", tlsReplica("web-1")).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0, func(s *http.Server) { s.IdleTimeout = 500 * time.Millisecond })
	// closedWithNotify reads to the end and reports whether what came was
	// one alert record (TLS 1.2: type 21, in the clear) and then the FIN.
	closedWithNotify := func(rc *tlsClient, cc *clientConn) error {
		rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(rc.br)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("still open after 5s")
		}
		cc.mu.Lock()
		seen := append([]byte(nil), cc.seen.Bytes()...)
		cc.mu.Unlock()
		if len(seen) < 5 || seen[0] != 21 || len(seen) != 5+int(seen[3])<<8+int(seen[4]) {
			return fmt.Errorf("got % x (%v) before the end, want one alert record (close_notify)", seen, err)
		}
		return nil
	}
	t.Run("the client's close_notify", func(t *testing.T) {
		rc, cc := f.dialVia(t, true)
		if status, _, _, err := rc.sendRead(request("GET", "/", ""), "GET"); err != nil || status != 200 {
			t.Fatalf("got %d (%v), want 200", status, err)
		}
		f.waitLoopsHold(t, "after a request", 1)
		cc.record.Store(true)
		if err := rc.c.(*tls.Conn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if err := closedWithNotify(rc, cc); err != nil {
			t.Fatalf("after the client's close_notify: %v", err)
		}
		f.waitLoopsHold(t, "after the client left", 0)
	})
	t.Run("idle timeout", func(t *testing.T) {
		rc, cc := f.dialVia(t, true)
		if status, _, _, err := rc.sendRead(request("GET", "/", ""), "GET"); err != nil || status != 200 {
			t.Fatalf("got %d (%v), want 200", status, err)
		}
		cc.record.Store(true)
		if err := closedWithNotify(rc, cc); err != nil {
			t.Fatalf("an idle connection past the idle timeout: %v", err)
		}
	})
}

// A 50 MB upload over TLS to a replica that echoes it while reading it
// arrives whole, and its echo comes back whole.
func TestFastTLSUploadToReplicaThatAnswersWhileReading(t *testing.T) {
	route, pool := poolRoute("echo")
	ready(t, pool, "echo-1", newBackend(t, "echo-1", echoWhileReading).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{route}), 0)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 2 * time.Minute, Transport: tr}
	checkEchoes(t, c, "https://"+f.addr+"/echo", 100<<10, 50<<20)
}

// A connection whose handshake is done, in its event loop when Shutdown
// begins, has its first request answered (with Connection: close): a
// client sends it right after the handshake.
func TestFastTLSShutdownAnswersANewConnection(t *testing.T) {
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", tlsReplica("web-1")).addr())
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0)
	rc, _ := f.dialVia(t, false)
	f.waitLoopsHold(t, "after the handshake", 1)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- f.fs.Shutdown(ctx)
	}()
	nettest.WaitWithin(t, 5*time.Second, "Shutdown to begin", f.fs.closing.Load)
	status, body, closing, err := rc.sendRead(request("GET", "/", ""), "GET")
	if err != nil || status != 200 || body != "web-1 / https" || !closing {
		t.Fatalf("the first request of a connection new at Shutdown: got %d %q (closing %v, %v), want 200 \"web-1 / https\" with Connection: close", status, body, closing, err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v, want nil once the request is answered", err)
	}
}

// An HTTPS client that takes none of a large response for the write
// timeout is cut off with a reset, as a plain one is, without a wait for a
// close_notify it will not read either.
func TestFastTLSSlowReaderIsReset(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	r, p := poolRoute("web")
	ready(t, p, "a", newBackend(t, "a", loopReplica("a", nil, nil)).addr())
	f := newTLSFront(t, newTestProxy(t, Options{WriteTimeout: writeTimeout}, []Route{r}), 0)
	rc := dialSmallWindow(t, f.addr)
	c := tls.Client(rc.c, &tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1"})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request("GET", "/?size=16777216", "")); err != nil {
		t.Fatal(err)
	}
	waitReset(t, rc.c, "GET /?size=16777216 over TLS", writeTimeout)
	f.waitLoopsHold(t, "after the reset", 0)
}
