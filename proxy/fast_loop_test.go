//go:build linux

package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/internal/nettest"
	"github.com/dlb-lb/dlb/listener"
	"golang.org/x/sys/unix"
)

// The fast data path's event loops (fast_loop_linux.go), tested over real
// sockets for what a client sees: a connection goes from its loop to a
// goroutine and back as its requests call for, and keeps the timeouts,
// the client watch, the connection limit and the shutdown the goroutine
// path and net/http have.

// loopFront serves a Proxy over routes on loopback as dlb does: the
// FastServer in front of net/http, which serves the connections it hands
// off. idle is the server's IdleTimeout (0: 120s), which the
// FastServer's loops keep too; wrap, when set, wraps the listener (a
// connection limit).
type loopFront struct {
	addr string
	fs   *FastServer
	std  *http.Server
}

// newLoopFront serves routes with a FastServer on loopback; configure
// changes the std server's
// settings (its timeouts) before the FastServer reads them.
func newLoopFront(t *testing.T, opts Options, routes []Route, idle time.Duration, wrap func(net.Listener) net.Listener, configure ...func(*http.Server)) *loopFront {
	t.Helper()
	px := newTestProxy(t, opts, routes)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	if idle <= 0 {
		idle = 120 * time.Second
	}
	lf := &loopFront{addr: ln.Addr().String(), std: &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle}}
	for _, c := range configure {
		c(lf.std)
	}
	lf.fs = NewFastServer(px, lf.std, 0, nil)
	go lf.fs.Serve(ln)
	go lf.std.Serve(lf.fs.Handoffs(ln.Addr()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lf.shutdown(ctx)
		lf.std.Close()
	})
	return lf
}

// shutdown shuts dlb down gracefully, as cmd/dlb does.
func (lf *loopFront) shutdown(ctx context.Context) error {
	return errors.Join(lf.fs.Shutdown(ctx), lf.std.Shutdown(ctx))
}

// held reports how many client connections the event loops hold and how
// many goroutines serve.
func (lf *loopFront) held() (inLoops int64, onGoroutines int) {
	lf.fs.mu.Lock()
	loops := lf.fs.loops
	onGoroutines = len(lf.fs.conns)
	lf.fs.mu.Unlock()
	for _, l := range loops {
		inLoops += l.live.Load()
	}
	return inLoops, onGoroutines
}

// waitHeld waits until the loops hold loops client connections and
// goroutines serve goroutines.
func (lf *loopFront) waitHeld(t *testing.T, what string, loops int64, goroutines int) {
	t.Helper()
	var l int64
	var g int
	deadline := time.Now().Add(5 * time.Second)
	for l, g = lf.held(); l != loops || g != goroutines; l, g = lf.held() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d connections in the event loops, %d on goroutines after 5s; want %d, %d", what, l, g, loops, goroutines)
		}
		time.Sleep(time.Millisecond)
	}
}

// rawClient is one client connection, driven by hand so that every
// request surely goes on it.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	rc, err := tryDial(t, addr)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// tryDial is dialRaw for a connection that may be refused.
func tryDial(t *testing.T, addr string) (*rawClient, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}, nil
}

// request is the bytes of a request (with a body when body is not empty).
func request(method, target, body string) string {
	if body == "" && method != http.MethodPost {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, target)
	}
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", method, target, len(body), body)
}

func (rc *rawClient) send(raw string) error {
	rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(rc.c, raw)
	return err
}

// read reads a response (within 10s).
func (rc *rawClient) read() (status int, body string, closing bool, err error) {
	return rc.readFor(http.MethodGet)
}

// readFor reads the response to a request of method.
func (rc *rawClient) readFor(method string) (status int, body string, closing bool, err error) {
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		return 0, "", false, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, "", false, fmt.Errorf("reading the body: %w", err)
	}
	return resp.StatusCode, string(b), resp.Close, nil
}

func (rc *rawClient) try(method, target, body string) (int, string, error) {
	if err := rc.send(request(method, target, body)); err != nil {
		return 0, "", err
	}
	status, b, _, err := rc.readFor(method)
	return status, b, err
}

// do sends a request and wants 200 with body want.
func (rc *rawClient) do(method, target, body, want string) {
	rc.t.Helper()
	status, got, err := rc.try(method, target, body)
	if err != nil {
		rc.t.Fatalf("%s %s: %v", method, target, err)
	}
	if status != http.StatusOK || got != want {
		rc.t.Fatalf("%s %s: got %d with a body of %d bytes (%.40q), want 200 with %d bytes (%.40q)", method, target, status, len(got), got, len(want), want)
	}
}

// closedWithin waits up to d for the server to close the connection; it
// returns how long it took, or an error if bytes came or it stayed open.
func (rc *rawClient) closedWithin(d time.Duration) (time.Duration, error) {
	start := time.Now()
	rc.c.SetReadDeadline(start.Add(d))
	n, err := rc.br.Read(make([]byte, 1))
	el := time.Since(start)
	var ne net.Error
	switch {
	case n > 0:
		return el, fmt.Errorf("got bytes, want the connection closed")
	case errors.As(err, &ne) && ne.Timeout():
		return el, fmt.Errorf("still open after %s", d)
	}
	return el, nil // EOF or reset
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	slices.Sort(s)
	return s
}

// pattern is a body of n bytes that names its replica.
func pattern(name string, n int) string {
	return strings.Repeat(name+".", n/(len(name)+1)+1)[:n]
}

// holding returns the channels of loopReplica's /hold and a release that
// closes hold once. The test registers release as a cleanup once its
// replicas and front are up, so that it runs before they close (which
// waits for their handlers) should the test fail.
func holding() (held chan string, hold chan struct{}, release func()) {
	held, hold = make(chan string, 1), make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(hold) }) }
	return held, hold, release
}

// loopReplica is a replica's handler: a body naming the replica and the
// target; ?size=N a body of pattern(name+tag, N) (?tag=); ?sleep=D waits D before the
// head, ?bodysleep=D sends the head and half the body, then waits D for
// the rest; ?chunked=1 sends it chunked, in two parts; hold, when not nil, is waited on by /hold, after telling
// held. A POST gets name:body back.
func loopReplica(name string, held chan<- string, hold <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/hold" && hold != nil {
			held <- name
			<-hold
		}
		q := r.URL.Query()
		if d, _ := time.ParseDuration(q.Get("sleep")); d > 0 {
			time.Sleep(d)
		}
		body := name + " " + r.URL.RequestURI()
		if r.Method == http.MethodPost {
			body = name + ":" + string(b)
		}
		if n, err := strconv.Atoi(q.Get("size")); err == nil {
			body = pattern(name+q.Get("tag"), n)
		}
		if q.Get("chunked") != "" {
			io.WriteString(w, body[:len(body)/2])
			w.(http.Flusher).Flush()
			io.WriteString(w, body[len(body)/2:])
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if d, _ := time.ParseDuration(q.Get("bodysleep")); d > 0 {
			io.WriteString(w, body[:len(body)/2])
			w.(http.Flusher).Flush()
			time.Sleep(d)
			body = body[len(body)/2:]
		}
		io.WriteString(w, body)
	}
}

// TestLoopKeepAliveAcrossHandOffs: on one client connection, GETs go round
// robin over 3 replicas, served in the loop (no goroutine has the
// connection while a replica answers); a POST, a response larger than the
// loop's replica buffer (a goroutine relays it) and pipelined GETs follow
// on the same connection, all answered right, and the connection is back
// in its loop after.
func TestLoopKeepAliveAcrossHandOffs(t *testing.T) {
	r, p := poolRoute("web")
	names := []string{"web-1", "web-2", "web-3"}
	held, hold, release := holding()
	for _, name := range names {
		ready(t, p, name, newBackend(t, name, loopReplica(name, held, hold)).addr())
	}
	lf := newLoopFront(t, Options{}, []Route{r}, 0, nil)
	t.Cleanup(release)
	rc := dialRaw(t, lf.addr)

	// The first three GETs show the rotation; every request after goes to
	// the next replica in it.
	var order []string
	k := 0
	next := func() string { k++; return order[(k-1)%3] }
	for i := range 30 {
		status, body, err := rc.try("GET", fmt.Sprintf("/rr/%d", i), "")
		if err != nil || status != 200 {
			t.Fatalf("GET %d on one connection: %d %q %v, want 200", i, status, body, err)
		}
		name, _, _ := strings.Cut(body, " ")
		if i < 3 {
			order = append(order, name)
			if i == 2 && fmt.Sprint(sorted(order)) != fmt.Sprint(names) {
				t.Fatalf("the first 3 GETs went to %v, want one to each of %v", order, names)
			}
		}
		if want := next(); name != want {
			t.Fatalf("GET %d on one connection went to %s, want %s (round robin over %v)", i, name, want, order)
		}
	}
	lf.waitHeld(t, "after 30 GETs", 1, 0)

	// A GET the replica holds: the loop waits for its answer, no goroutine.
	if err := rc.send(request("GET", "/hold", "")); err != nil {
		t.Fatal(err)
	}
	var name string
	select {
	case name = <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("GET /hold did not reach a replica within 5s")
	}
	if l, g := lf.held(); l != 1 || g != 0 {
		t.Errorf("while a replica answers a plain GET: %d connections in the loops, %d on goroutines; want 1, 0 (the loop serves it)", l, g)
	}
	release()
	if status, body, _, err := rc.read(); err != nil || status != 200 || body != next()+" /hold" {
		t.Fatalf("GET /hold: %d %q %v, want 200 from %s", status, body, err, name)
	}

	rc.do("POST", "/post", "a body", next()+":a body")
	rc.do("GET", "/big?size=20000", "", pattern(next(), 20000))
	rc.do("POST", "/big?size=9000", "x", pattern(next(), 9000))
	rc.do("GET", "/after", "", next()+" /after")
	rc.do("GET", "/c?chunked=1", "", next()+" /c?chunked=1")
	rc.do("GET", "/c?chunked=1&size=20000", "", pattern(next(), 20000))
	rc.do("HEAD", "/h?size=20000", "", "") // Content-Length 20000, no body
	next()
	rc.do("GET", "/h", "", next()+" /h")
	lf.waitHeld(t, "after large responses (a goroutine relayed them)", 1, 0)

	// Pipelined: in one write, answered in order.
	var raw strings.Builder
	for i := range 9 {
		raw.WriteString(request("GET", fmt.Sprintf("/p/%d", i), ""))
	}
	raw.WriteString(request("GET", "/p/big?size=5000", ""))
	if err := rc.send(raw.String()); err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		want := fmt.Sprintf("%s /p/%d", next(), i)
		if status, body, _, err := rc.read(); err != nil || status != 200 || body != want {
			t.Fatalf("pipelined GET %d: %d %q %v, want 200 %q", i, status, body, err, want)
		}
	}
	if status, body, _, err := rc.read(); err != nil || status != 200 || body != pattern(next(), 5000) {
		t.Fatalf("pipelined GET /p/big: %d (%d bytes) %v, want 200 with 5000 bytes", status, len(body), err)
	}
	rc.do("GET", "/last", "", next()+" /last")
	lf.waitHeld(t, "after pipelined requests", 1, 0)
}

// TestLoopSlowReplica: a response slower than the loop's patience (1s)
// still arrives intact, late head or late body, and the connection goes on;
// a route's response header timeout shorter than that patience answers
// 504 at about that timeout, not at the patience.
func TestLoopSlowReplica(t *testing.T) {
	r, p := poolRoute("web")
	timed := r
	timed.Path, timed.ResponseHeaderTimeout = "/timed", 300*time.Millisecond
	b := newBackend(t, "a", loopReplica("a", nil, nil))
	ready(t, p, "a", b.addr())
	lf := newLoopFront(t, Options{}, []Route{r, timed}, 0, nil)

	rc := dialRaw(t, lf.addr)
	rc.do("GET", "/warm", "", "a /warm") // the replica connection is kept alive for the loop
	for _, target := range []string{"/late-head?sleep=1500ms&size=3000", "/late-body?bodysleep=1500ms&size=3000"} {
		start := time.Now()
		rc.do("GET", target, "", pattern("a", 3000))
		if el := time.Since(start); el < 1500*time.Millisecond {
			t.Fatalf("GET %s: answered after %s, before the replica did (1.5s)", target, el)
		}
		rc.do("GET", "/next", "", "a /next")
	}
	if reqs, _ := b.requests(); len(reqs) != 5 {
		var targets []string
		for _, r := range reqs {
			targets = append(targets, r.URL.RequestURI())
		}
		t.Fatalf("the replica got %q, want each of the 5 requests once", targets)
	}

	rc = dialRaw(t, lf.addr)
	rc.do("GET", "/timed/warm", "", "a /timed/warm")
	start := time.Now()
	status, body, err := rc.try("GET", "/timed/late?sleep=1500ms", "")
	el := time.Since(start)
	if err != nil || status != http.StatusGatewayTimeout || el < 250*time.Millisecond || el > 900*time.Millisecond {
		t.Fatalf("GET from a replica that answers after 1.5s, route response header timeout 300ms: %d %q %v after %s; want 504 after about 300ms", status, body, err, el)
	}
}

// TestLoopResponseHeaderTimeoutIsNotARetry: a replica that sends no
// response head within the response header timeout gets the request once,
// and the client 504 after that timeout; a timeout is not a kept-alive
// connection the replica had closed (sending the GET again on a new
// connection would answer 504 after twice the timeout).
func TestLoopResponseHeaderTimeoutIsNotARetry(t *testing.T) {
	r, p := poolRoute("web")
	r.ResponseHeaderTimeout = 300 * time.Millisecond
	b := newBackend(t, "a", loopReplica("a", nil, nil))
	ready(t, p, "a", b.addr())
	lf := newLoopFront(t, Options{}, []Route{r}, 0, nil)
	rc := dialRaw(t, lf.addr)
	rc.do("GET", "/warm", "", "a /warm") // the next request goes on a kept-alive connection
	start := time.Now()
	status, body, err := rc.try("GET", "/late?sleep=1500ms", "")
	el := time.Since(start)
	reqs, _ := b.requests()
	var targets []string
	for _, r := range reqs {
		targets = append(targets, r.URL.RequestURI())
	}
	if err != nil || status != http.StatusGatewayTimeout || el > 500*time.Millisecond || len(reqs) != 2 {
		t.Fatalf("GET from a replica that answers after 1.5s, response header timeout 300ms: %d %q %v after %s, the replica got %q; want 504 after about 300ms, the request sent once", status, body, err, el, targets)
	}
}

// TestLoopClientGoneClosesTheReplicaConnection: a client that closes its
// connection while a replica works on its request gets that replica
// connection closed at once (the replica's work is cancelled): in the
// loop, well before its patience would hand the exchange to a goroutine's
// client watch; and after that patience, by that watch.
func TestLoopClientGoneClosesTheReplicaConnection(t *testing.T) {
	got, closed := make(chan struct{}, 1), make(chan time.Time, 1)
	addr, _ := rawServer(t, func(c net.Conn) {
		serveRequests(c, func(req *http.Request, br *bufio.Reader) bool {
			if req.URL.Path != "/slow" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				return true
			}
			got <- struct{}{}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
				closed <- time.Now()
			}
			return false
		})
	})
	r, p := poolRoute("web")
	ready(t, p, "a", addr)
	lf := newLoopFront(t, Options{}, []Route{r}, 0, nil)
	for _, wait := range []time.Duration{0, loopPatience + 100*time.Millisecond} {
		rc := dialRaw(t, lf.addr)
		rc.do("GET", "/warm", "", "ok") // the replica connection is kept alive for the loop
		if err := rc.send(request("GET", "/slow", "")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("GET /slow did not reach the replica within 5s")
		}
		if wait > 0 {
			// The exchange outlasts the loop's patience: a goroutine
			// has it.
			at := time.Now().Add(wait)
			waitFor(t, "the exchange to outlast the loop's patience", func() bool {
				_, g := lf.held()
				return time.Now().After(at) && g == 1
			})
		}
		start := time.Now()
		rc.c.Close()
		select {
		case at := <-closed:
			if el := at.Sub(start); el > 500*time.Millisecond {
				t.Fatalf("the replica connection was closed %s after its client left (%s after the request); want at once (under 500ms)", el, wait)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the replica connection of a client that left (%s after the request) is still open after 5s", wait)
		}
	}
}

// TestLoopIdleTimeout: an idle client connection is closed after the idle
// timeout, also after a goroutine served it; one with a request in flight
// longer than that, or one busy with requests, is not.
func TestLoopIdleTimeout(t *testing.T) {
	// Long enough that the busy client's requests, a third of it apart,
	// keep coming in time on a loaded machine.
	const idle = time.Second
	r, p := poolRoute("web")
	ready(t, p, "a", newBackend(t, "a", loopReplica("a", nil, nil)).addr())
	lf := newLoopFront(t, Options{}, []Route{r}, idle, nil)

	// A busy one, meanwhile: a slow answer (the replica connection is kept
	// alive for it: the loop waits for it), then a request every 100ms for
	// 1s.
	busy := make(chan error, 1)
	brc := dialRaw(t, lf.addr)
	brc.do("GET", "/", "", "a /")
	if err := brc.send(request("GET", "/slow?sleep=1500ms", "")); err != nil {
		t.Fatal(err)
	}
	go func(rc *rawClient) {
		busy <- func() error {
			if status, body, _, err := rc.read(); err != nil || status != 200 {
				return fmt.Errorf("GET answered in 1.5s, idle timeout %s: %d %q %v; want 200", idle, status, body, err)
			}
			tick := time.NewTicker(idle / 3)
			defer tick.Stop()
			for i := range 10 {
				<-tick.C
				if status, body, err := rc.try("GET", "/", ""); err != nil || status != 200 {
					return fmt.Errorf("GET %d, %s after the last: %d %q %v; want 200", i, idle/3, status, body, err)
				}
			}
			return nil
		}()
	}(brc)

	for _, target := range []string{"/small", "/big?size=20000"} {
		rc := dialRaw(t, lf.addr)
		status, _, err := rc.try("GET", target, "")
		if err != nil || status != 200 {
			t.Fatalf("GET %s: %d %v", target, status, err)
		}
		el, err := rc.closedWithin(5 * time.Second)
		if err != nil || el < idle*2/3 || el > 3*idle {
			t.Errorf("a connection idle after GET %s, idle timeout %s: closed after %s (%v); want about %s", target, idle, el, err, idle)
		}
	}
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
}

// TestLoopConnLimitAcrossHandOffs: under a connection limit, connections
// that go from their loop to a goroutine and back (a large response, then
// a plain GET, and again) count once each: the limit's next one is
// refused; once they close, their places all come back.
func TestLoopConnLimitAcrossHandOffs(t *testing.T) {
	const max = 4
	var refused atomic.Int64
	limit := listener.NewConnLimit(max, 0, func() { refused.Add(1) })
	r, p := poolRoute("web")
	ready(t, p, "a", newBackend(t, "a", loopReplica("a", nil, nil)).addr())
	lf := newLoopFront(t, Options{}, []Route{r}, 0, limit.Listener)

	// serveAll dials max connections and has each go back and forth
	// between its loop and a goroutine; it stops at the first failure.
	serveAll := func() ([]*rawClient, error) {
		var rcs []*rawClient
		for i := range max {
			rc, err := tryDial(t, lf.addr)
			if err != nil {
				return rcs, fmt.Errorf("connection %d: %v", i, err)
			}
			rcs = append(rcs, rc)
			for j := range 3 {
				if status, body, err := rc.try("GET", "/", ""); err != nil || status != 200 {
					return rcs, fmt.Errorf("connection %d, GET %d: %d %q %v", i, j, status, body, err)
				}
				if status, body, err := rc.try("POST", "/big?size=20000", "x"); err != nil || status != 200 || body != pattern("a", 20000) {
					return rcs, fmt.Errorf("connection %d, POST %d for 20000 bytes: %d (%d bytes) %v", i, j, status, len(body), err)
				}
			}
		}
		return rcs, nil
	}
	closeAll := func(rcs []*rawClient) {
		for _, rc := range rcs {
			rc.c.Close()
		}
	}
	// over checks that the connection over the limit is refused.
	over := func(what string, want int64) {
		t.Helper()
		// The reset may come while it connects.
		if rc, err := tryDial(t, lf.addr); err == nil {
			if status, _, err := rc.try("GET", "/", ""); err == nil {
				t.Fatalf("%s: connection %d (limit %d) got %d, want it refused", what, max+1, max, status)
			}
			rc.c.Close()
		}
		waitFor(t, fmt.Sprintf("%s: %d connections refused", what, want), func() bool { return refused.Load() == want })
	}

	rcs, err := serveAll()
	if err != nil {
		t.Fatal(err)
	}
	lf.waitHeld(t, "connections back from goroutines", max, 0)
	over("with the limit's connections open", 1)
	closeAll(rcs)
	lf.waitHeld(t, "connections closed by their clients", 0, 0)

	// Their places come back (dlb sees the closes soon after: try until it
	// has), and no more than max.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rcs, err = serveAll()
		if err == nil {
			break
		}
		closeAll(rcs)
		if time.Now().After(deadline) {
			t.Fatalf("%d new connections after the first ones closed, for 5s: %v", max, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	over("with the new connections open", refused.Load()+1)
	closeAll(rcs)
}

// TestLoopShutdown: Shutdown closes idle connections at once, and returns
// once the request in flight has its whole response.
func TestLoopShutdown(t *testing.T) {
	r, p := poolRoute("web")
	held, hold, release := holding()
	ready(t, p, "a", newBackend(t, "a", loopReplica("a", held, hold)).addr())
	lf := newLoopFront(t, Options{}, []Route{r}, 0, nil)
	t.Cleanup(release)
	var idle []*rawClient
	for range 3 {
		rc := dialRaw(t, lf.addr)
		rc.do("GET", "/", "", "a /")
		idle = append(idle, rc)
	}
	busy := dialRaw(t, lf.addr)
	busy.do("GET", "/", "", "a /")
	if err := busy.send(request("GET", "/hold?size=3000", "")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("GET /hold did not reach the replica within 5s")
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- lf.shutdown(ctx)
	}()
	for i, rc := range idle {
		if el, err := rc.closedWithin(5 * time.Second); err != nil {
			t.Fatalf("idle connection %d during Shutdown: %v (after %s); want it closed", i, err, el)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	release()
	status, body, closing, err := busy.read()
	if err != nil || status != 200 || body != pattern("a", 3000) {
		t.Fatalf("the request in flight during Shutdown: %d (%d bytes) %v; want 200 with its 3000 bytes", status, len(body), err)
	}
	if !closing {
		t.Errorf("the response during Shutdown: no Connection: close")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return within 5s of the last response")
	}
	if el, err := busy.closedWithin(5 * time.Second); err != nil {
		t.Fatalf("the busy connection after Shutdown: %v (after %s); want it closed", err, el)
	}
	if c, err := net.DialTimeout("tcp", lf.addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a connection after Shutdown was accepted")
	}
}

// TestLoopClientThatDoesNotRead: a client that pipelines requests and
// reads none of the responses holds its own connection, never the event
// loop it shares with others: they are served meanwhile. When it reads,
// it gets every response, in order and whole.
func TestLoopClientThatDoesNotRead(t *testing.T) {
	r, p := poolRoute("web")
	b := newBackend(t, "a", loopReplica("a", nil, nil))
	ready(t, p, "a", b.addr())
	lf := newLoopFront(t, Options{}, []Route{r}, 0, nil)
	warm := dialRaw(t, lf.addr)
	warm.do("GET", "/", "", "a /")

	stuck := dialSmallWindow(t, lf.addr)
	// More responses than dlb's socket can buffer (here it took 1.5 MB;
	// tcp_wmem's largest buffer is 4 MiB by default).
	n := 2000
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if most, err := strconv.Atoi(f[2]); err == nil {
				n = min(max(n, most/3000*3/2), 20000)
			}
		}
	}
	var raw strings.Builder
	for i := range n {
		raw.WriteString(request("GET", fmt.Sprintf("/?size=3000&tag=%d", i), ""))
	}
	sent := make(chan error, 1)
	go func() { sent <- stuck.send(raw.String()) }()
	// Its loop hands it to a goroutine when its socket takes no more.
	// (The first client is idle in its loop.)
	lf.waitHeld(t, "a client that reads nothing, on a goroutine", 1, 1)

	// Connections in every loop (they are dealt round robin), one after
	// the other, are served.
	for i := range runtime.GOMAXPROCS(0) + 1 {
		rc := dialRaw(t, lf.addr)
		for j := range 3 {
			rc.do("GET", fmt.Sprintf("/other/%d/%d", i, j), "", fmt.Sprintf("a /other/%d/%d", i, j))
		}
		rc.c.Close()
	}

	if err := <-sent; err != nil {
		t.Fatalf("sending %d pipelined requests: %v", n, err)
	}
	for i := range n {
		status, body, _, err := stuck.read()
		if err != nil || status != 200 || body != pattern(fmt.Sprint("a", i), 3000) {
			t.Fatalf("pipelined response %d read late: %d (%d bytes) %v; want 200 with 3000 bytes", i, status, len(body), err)
		}
	}
	if reqs, _ := b.requests(); len(reqs) != n+1+3*(runtime.GOMAXPROCS(0)+1) {
		t.Errorf("the replica got %d requests, want %d", len(reqs), n+1+3*(runtime.GOMAXPROCS(0)+1))
	}
}

// TestLoopReplicaClosesKeptAliveConnections: a replica that closes each
// connection after one or two responses, without saying so (as one whose
// keep-alive timeout is short does), gets every request once, POSTs too,
// and the client 200 for each: a replica connection closed while idle, in
// the transport's pool or in a loop's, is not used again for a request
// that cannot be sent twice.
func TestLoopReplicaClosesKeptAliveConnections(t *testing.T) {
	for _, perConn := range []int{1, 2} {
		t.Run(fmt.Sprintf("after %d", perConn), func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			served := make(chan struct{}, 64)
			addr, _ := rawServer(t, func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := range perConn {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					b, _ := io.ReadAll(req.Body)
					body := req.Method + " " + req.URL.Path + " " + string(b)
					mu.Lock()
					got = append(got, body)
					mu.Unlock()
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
					if i == perConn-1 {
						c.Close()
					}
					served <- struct{}{}
				}
			})
			r, p := poolRoute("web")
			ready(t, p, "a", addr)
			lf := newLoopFront(t, Options{}, []Route{r}, 0, nil)
			rc := dialRaw(t, lf.addr)
			var want []string
			for i := range 12 {
				// A POST comes right after a replica connection
				// closed: the first of a new one was a GET (a
				// goroutine dialed it), the second one (the loop
				// took it) too.
				method, path, body := "GET", fmt.Sprintf("/g/%d", i), ""
				if i > 0 && i%2 == perConn%2 {
					method, path, body = "POST", fmt.Sprintf("/p/%d", i), fmt.Sprintf("body %d", i)
				}
				want = append(want, method+" "+path+" "+body)
				rc.do(method, path, body, want[i])
				select {
				case <-served:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s %s: the replica did not close its connection within 5s", method, path)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("the replica got %q, want %q (each once)", got, want)
			}
		})
	}
}

// countObserver counts the requests done.
type countObserver struct{ n atomic.Int64 }

func (o *countObserver) Observe(*http.Request, *Exchange)   { o.n.Add(1) }
func (o *countObserver) Ejected(*Route, *balancer.Upstream) {}

// dialSmallWindow connects with a receive buffer as small as Linux allows,
// set before connecting (a client that reads slowly).
func dialSmallWindow(t *testing.T, addr string) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1) })
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

// serverSocket returns dlb's file descriptor of the client connection c
// (the one whose local address is addr and whose peer is c's), waiting for
// it up to 5s.
func serverSocket(t *testing.T, addr string, c net.Conn) int {
	t.Helper()
	peer := c.LocalAddr().String()
	found := -1
	waitFor(t, "dlb's socket of the client connection", func() bool {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range fds {
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			la, err1 := syscall.Getsockname(fd)
			pa, err2 := syscall.Getpeername(fd)
			if err1 != nil || err2 != nil {
				continue
			}
			l4, ok1 := la.(*syscall.SockaddrInet4)
			p4, ok2 := pa.(*syscall.SockaddrInet4)
			if ok1 && ok2 && fmt.Sprintf("%s:%d", net.IP(l4.Addr[:]), l4.Port) == addr && fmt.Sprintf("%s:%d", net.IP(p4.Addr[:]), p4.Port) == peer {
				found = fd
				return true
			}
		}
		return false
	})
	return found
}

// TestLoopLastResponseToAFullSocket: the response that ends a connection
// (to a request with Connection: close, or during Shutdown) reaches the
// client whole when the client's socket cannot take it at once: a client
// that has not read the previous responses yet, whose connection dlb keeps
// a small send buffer for (set here, after those responses, as small as
// Linux allows). The same on a kept-alive connection, for comparison.
func TestLoopLastResponseToAFullSocket(t *testing.T) {
	for _, end := range []string{"kept alive", "Connection: close", "Shutdown"} {
		t.Run(end, func(t *testing.T) {
			r, p := poolRoute("web")
			held, hold, release := holding()
			b := newBackend(t, "a", loopReplica("a", held, hold))
			ready(t, p, "a", b.addr())
			obs := &countObserver{}
			lf := newLoopFront(t, Options{Observer: obs}, []Route{r}, 0, nil)
			t.Cleanup(release)
			rc := dialSmallWindow(t, lf.addr)
			rc.do("GET", "/", "", "a /") // the replica connection is kept alive for the loop
			const fill = 5
			for j := range fill {
				if err := rc.send(request("GET", fmt.Sprintf("/?size=2000&tag=%d", j), "")); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "the responses the client does not read yet", func() bool { return obs.n.Load() == 1+fill })
			if l, g := lf.held(); l != 1 || g != 0 {
				t.Fatalf("after %d responses of 2000 bytes: %d connections in the loops, %d on goroutines; want it in its loop (its socket took them)", fill, l, g)
			}
			// (Its event loop has it now: the descriptor stays.)
			fd := serverSocket(t, lf.addr, rc.c)
			if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 1); err != nil {
				t.Fatal(err)
			}
			raw := "GET /?size=3900&tag=last HTTP/1.1\r\nHost: x\r\n\r\n"
			switch end {
			case "Connection: close":
				raw = "GET /?size=3900&tag=last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
			case "Shutdown":
				raw = "GET /hold?size=3900&tag=last HTTP/1.1\r\nHost: x\r\n\r\n"
			}
			if err := rc.send(raw); err != nil {
				t.Fatal(err)
			}
			shut := make(chan error, 1)
			if end == "Shutdown" {
				select {
				case <-held:
				case <-time.After(5 * time.Second):
					t.Fatal("GET /hold did not reach the replica within 5s")
				}
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					shut <- lf.shutdown(ctx)
				}()
				waitFor(t, "Shutdown to close the listener", func() bool {
					c, err := net.Dial("tcp", lf.addr)
					if err == nil {
						c.Close()
					}
					return err != nil
				})
				release()
			}
			// Once the last response is written (or not), the client
			// reads at full speed.
			waitFor(t, "the last response", func() bool { return obs.n.Load() == 2+fill })
			if err := rc.c.(*net.TCPConn).SetReadBuffer(1 << 20); err != nil {
				t.Fatal(err)
			}
			for j := range fill {
				if status, body, _, err := rc.read(); err != nil || status != 200 || body != pattern(fmt.Sprint("a", j), 2000) {
					t.Fatalf("response %d: %d (%d bytes) %v; want 200 with 2000 bytes", j, status, len(body), err)
				}
			}
			status, body, closing, err := rc.read()
			if err != nil || status != 200 || body != pattern("alast", 3900) || closing != (end != "kept alive") {
				t.Fatalf("a response of 3900 bytes to a client whose socket is full (%s): %d (%d bytes) %v, closing %v; want 200 with its 3900 bytes", end, status, len(body), err, closing)
			}
			switch end {
			case "kept alive":
				rc.do("GET", "/next", "", "a /next")
			case "Shutdown":
				if err := <-shut; err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			}
		})
	}
}

// TestSlowReaderIsReset: a client that takes none of a large response for
// the write timeout is cut off with a reset, not a FIN, whichever engine
// serves it: a FIN would wait
// in FIN-WAIT-1 behind the megabytes dlb's socket still holds, for as long
// as the client keeps its window shut. The client sees ECONNRESET.
func TestSlowReaderIsReset(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	r, p := poolRoute("web")
	ready(t, p, "a", newBackend(t, "a", loopReplica("a", nil, nil)).addr())
	lf := newLoopFront(t, Options{WriteTimeout: writeTimeout}, []Route{r}, 0, nil)
	for _, tc := range []struct{ name, path string }{
		{"fast engine", "/?size=16777216"},
		{"net/http", "/a/../?size=16777216"}, // a dot segment: handed off
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialSmallWindow(t, lf.addr)
			if err := rc.send(request("GET", tc.path, "")); err != nil {
				t.Fatal(err)
			}
			waitReset(t, rc.c, "GET "+tc.path, writeTimeout)
		})
	}
}

// waitReset waits for dlb to reset c, a client's TCP socket that read
// nothing of a large response (TCP_CLOSE within 30s: the replica makes
// 16 MiB first, slow under -race on a busy machine), and checks that what
// came before the reset ends in ECONNRESET.
func waitReset(t *testing.T, c net.Conn, what string, writeTimeout time.Duration) {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	state := func() uint8 {
		var info *unix.TCPInfo
		raw.Control(func(fd uintptr) { info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
		if info == nil {
			return 0
		}
		return info.State
	}
	start := time.Now()
	nettest.WaitWithin(t, 30*time.Second, what+", not read, to reset the client's socket (TCP_CLOSE)", func() bool { return state() == unix.BPF_TCP_CLOSE })
	t.Logf("%s, not read: reset after %s (write timeout %s)", what, time.Since(start).Round(time.Millisecond), writeTimeout)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reading what came of %s after the write timeout: %v, want ECONNRESET", what, err)
	}
}
