package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/internal/nettest"
)

// TestClientResetIsNotTheReplicasFault: a client that resets its own upload
// half way leaves the replica in rotation, with no failure counted.
func TestClientResetIsNotTheReplicasFault(t *testing.T) {
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "a")
	})
	route, pool := poolRoute("svc")
	up := ready(t, pool, "a", b.addr())
	f := newFront(t, Options{Retries: 2}, []Route{route}, nil)
	addr := f.srv.Listener.Addr().String()
	for range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
		c.Write(make([]byte, 256<<10))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	// Bad chunk framing and a short small body: 400, the client's fault.
	for _, req := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0x5\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + "10000\r\n" + strings.Repeat("a", 70000) + "\r\nzz\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("bad chunk framing: %v %v, want 400", resp, err)
		}
	}
	waitIdle(t, up)
	if up.State() != balancer.Ready || up.Failures() != 0 {
		t.Fatalf("after client resets and bad chunks: replica %s with %d failures; want ready, 0", up.State(), up.Failures())
	}
	if r := f.do(t, "GET", "", "/", nil); r.status != 200 {
		t.Fatalf("GET / after client resets: %d %q", r.status, r.body)
	}
}

// TestWriteTimeoutCutsOffAClientThatDoesNotRead: the replica's stream ends
// (its connection is let go) within the write timeout of the client
// stopping reading.
func TestWriteTimeoutCutsOffAClientThatDoesNotRead(t *testing.T) {
	ended := make(chan time.Time, 1)
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for i := 0; i < 200<<20/len(buf); i++ {
			if _, err := w.Write(buf); err != nil {
				break
			}
		}
		ended <- time.Now()
	})
	route, pool := poolRoute("svc")
	ready(t, pool, "a", b.addr())
	f := newFront(t, Options{WriteTimeout: 300 * time.Millisecond}, []Route{route}, nil)
	c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	start := time.Now()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case at := <-ended:
		if el := at.Sub(start); el > 3*time.Second {
			t.Fatalf("the replica's stream to a client that reads nothing ended after %s; want about 300ms", el)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the replica's stream to a client that reads nothing still runs after 10s (write timeout 300ms)")
	}
}

// TestResponseHeaderTimeout: a hung replica gets the request 504 within the
// timeout, counted as its failure but not ejected; a route's own timeout
// wins; the time a slow upload takes does not count, nor does the time a
// streamed body takes after its head; on the fast engine and through
// ServeHTTP.
func TestResponseHeaderTimeout(t *testing.T) {
	for name, wrap := range map[string]func(http.Handler) http.Handler{
		"fast":      nil,
		"ServeHTTP": func(h http.Handler) http.Handler { return h },
	} {
		t.Run(name, func(t *testing.T) { testResponseHeaderTimeout(t, wrap) })
	}
}

func testResponseHeaderTimeout(t *testing.T, wrap func(http.Handler) http.Handler) {
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/stream": // chunked, a part every 200ms: 1s in all
			for i := range 5 {
				fmt.Fprintf(w, "part %d;", i)
				w.(http.Flusher).Flush()
				time.Sleep(200 * time.Millisecond)
			}
			return
		case "/late-body": // its length known, its body 600ms after its head
			w.Header().Set("Content-Length", "4")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			time.Sleep(600 * time.Millisecond)
			io.WriteString(w, "late")
			return
		}
		d, _ := time.ParseDuration(r.URL.Query().Get("sleep"))
		time.Sleep(d)
		io.WriteString(w, "a")
	})
	route, pool := poolRoute("svc")
	up := ready(t, pool, "a", b.addr())
	slow := route
	slow.Path, slow.ResponseHeaderTimeout = "/slow", 2*time.Second
	f := newFront(t, Options{ResponseHeaderTimeout: 300 * time.Millisecond}, []Route{route, slow}, wrap)
	start := time.Now()
	r := f.do(t, "GET", "", "/?sleep=3s", nil)
	if el := time.Since(start); r.status != http.StatusGatewayTimeout || el > 2*time.Second {
		t.Fatalf("GET from a replica that hangs 3s, timeout 300ms: %d after %s; want 504 after about 300ms", r.status, el)
	}
	if r := f.do(t, "GET", "", "/slow?sleep=600ms", nil); r.status != 200 {
		t.Fatalf("GET /slow (route timeout 2s) from a replica that takes 600ms: %d %q, want 200", r.status, r.body)
	}
	// An upload that takes 1s (longer than the timeout) to send.
	pr, pw := io.Pipe()
	go func() {
		for range 10 {
			pw.Write(make([]byte, 1000))
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	if r := f.do(t, "POST", "", "/?sleep=0s", pr); r.status != 200 {
		t.Fatalf("a 1s upload with a 300ms response header timeout: %d %q, want 200", r.status, r.body)
	}
	if r := f.do(t, "GET", "", "/stream", nil); r.status != 200 || r.body != "part 0;part 1;part 2;part 3;part 4;" {
		t.Fatalf("GET /stream (a 1s chunked body after its head, header timeout 300ms): %d %q, want 200 and every part", r.status, r.body)
	}
	if r := f.do(t, "GET", "", "/late-body", nil); r.status != 200 || r.body != "late" {
		t.Fatalf("GET /late-body (its body 600ms after its head, header timeout 300ms): %d %q, want 200 \"late\"", r.status, r.body)
	}
	waitIdle(t, up)
	if up.State() != balancer.Ready {
		t.Fatalf("a slow replica was taken out (%s); want it kept in rotation", up.State())
	}
}

// TestBodyTimeoutCutsOffASlowBody: a body that brings a byte every 100ms
// gets 408 with Connection: close within the body timeout, on the fast
// engine (a body it keeps) and on net/http (a larger one); the replica is
// not blamed.
func TestBodyTimeoutCutsOffASlowBody(t *testing.T) {
	for _, size := range []int{1000, 1000000} { // kept for replay, and streamed
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
			})
			route, pool := poolRoute("svc")
			up := ready(t, pool, "a", b.addr())
			f := newFront(t, Options{BodyTimeout: 500 * time.Millisecond}, []Route{route}, nil)
			c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nx", size)
			out := nettest.Drip(c, 100*time.Millisecond)
			if el := time.Since(start); el > 2*time.Second || !strings.HasPrefix(out, "HTTP/1.1 408") {
				t.Fatalf("a body of a byte every 100ms, body timeout 500ms: after %s got %.50q; want 408 after about 500ms", el, out)
			}
			if resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil); err != nil || !resp.Close {
				t.Errorf("the 408 to a stalled body: %q (%v); want it to say Connection: close", out, err)
			}
			if up.Failures() != 0 || up.State() != balancer.Ready {
				t.Fatalf("after a client's slow body: replica %s, %d failures; want ready, 0", up.State(), up.Failures())
			}
		})
	}
}

// TestGRPCStreamsHaveNoBodyOrHeaderTimeout: a gRPC call's body may pause and
// its response header come late, as streams do.
func TestGRPCStreamsHaveNoBodyOrHeaderTimeout(t *testing.T) {
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(400 * time.Millisecond)
		io.WriteString(w, "a")
	})
	route, pool := poolRoute("svc")
	ready(t, pool, "a", b.addr())
	f := newFront(t, Options{BodyTimeout: 200 * time.Millisecond, ResponseHeaderTimeout: 200 * time.Millisecond}, []Route{route}, nil)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("x"))
		time.Sleep(500 * time.Millisecond)
		pw.Write([]byte("y"))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", f.srv.URL+"/svc/Method", pr)
	req.Header.Set("Content-Type", "application/grpc+proto")
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a gRPC call pausing 500ms with body and header timeouts of 200ms: %d, want 200", resp.StatusCode)
	}
}

// TestSilentConnectionIsClosedAtTheHeaderTimeout: a new connection that
// sends nothing holds its place under --max-conns for the header timeout,
// not the idle timeout; one that sent a request then idles keeps the idle
// timeout; a first request that comes in a little while is served.
func TestSilentConnectionIsClosedAtTheHeaderTimeout(t *testing.T) {
	const header = 300 * time.Millisecond
	r, p := poolRoute("web")
	ready(t, p, "a", newBackend(t, "a", loopReplica("a", nil, nil)).addr())
	lf := newLoopFront(t, Options{}, []Route{r}, time.Minute, nil, func(s *http.Server) { s.ReadHeaderTimeout = header })

	silent := dialRaw(t, lf.addr)
	kept := dialRaw(t, lf.addr)
	if status, body, err := kept.try("GET", "/", ""); err != nil || status != 200 {
		t.Fatalf("GET /: %d %q %v", status, body, err)
	}
	late := dialRaw(t, lf.addr)
	time.Sleep(header / 3) // the client's think time: within the header timeout
	if status, body, err := late.try("GET", "/", ""); err != nil || status != 200 {
		t.Errorf("GET / sent %s after connecting (header timeout %s): %d %q %v, want 200", header/3, header, status, body, err)
	}
	if el, err := silent.closedWithin(5 * time.Second); err != nil || el > 3*header {
		t.Errorf("a connection that sends nothing, header timeout %s, idle timeout 1m: closed after %s (%v), want about %s", header, el, err, header)
	}
	if _, err := kept.closedWithin(3 * header); err == nil {
		t.Errorf("a connection idle after its request was closed within %s, want the idle timeout (1m) to apply", 3*header)
	}
}
