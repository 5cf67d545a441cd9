package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestH1TransportHandles(t *testing.T) {
	tr := &h1Transport{maxBody: 64 << 10}
	body := func(n int) io.Reader { return bytes.NewReader(make([]byte, n)) }
	tests := []struct {
		name   string
		method string
		url    string
		body   io.Reader
		header map[string]string
		length int64 // when set, overrides the request's ContentLength
		want   bool
	}{
		{"GET", http.MethodGet, "http://a/", nil, nil, 0, true},
		{"HEAD", http.MethodHead, "http://a/", nil, nil, 0, true},
		{"POST with a small body", http.MethodPost, "http://a/", body(1 << 10), nil, 0, true},
		{"POST with the largest body kept for replay", http.MethodPost, "http://a/", body(64 << 10), nil, 0, true},
		{"POST with a larger body", http.MethodPost, "http://a/", body(64<<10 + 1), nil, 0, false},
		{"POST with a body of unknown length (chunked)", http.MethodPost, "http://a/", body(10), nil, -1, false},
		{"WebSocket upgrade", http.MethodGet, "http://a/", nil, map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, 0, false},
		{"Expect: 100-continue", http.MethodPut, "http://a/", body(10), map[string]string{"Expect": "100-continue"}, 0, false},
		{"CONNECT", http.MethodConnect, "http://a/", nil, nil, 0, false},
		{"https upstream", http.MethodGet, "https://a/", nil, nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.length != 0 {
				req.ContentLength = tt.length
			}
			if got := tr.handles(req); got != tt.want {
				t.Errorf("handles(%s %s, %d-byte body, %v): got %v, want %v", tt.method, tt.url, req.ContentLength, tt.header, got, tt.want)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodPost, "http://a/", body(10))
	req.Trailer = http.Header{"X-Sum": nil}
	if tr.handles(req) {
		t.Errorf("handles(POST with request trailers): got true, want false")
	}
}

// countingBackend is a replica whose server counts the connections it took,
// and may be tuned (idle timeout) before it starts.
type countingBackend struct {
	srv   *httptest.Server
	conns atomic.Int32 // connections accepted
	open  atomic.Int32 // connections open now
}

func newCountingBackend(t *testing.T, h http.HandlerFunc, tune func(*http.Server)) *countingBackend {
	t.Helper()
	b := &countingBackend{srv: httptest.NewUnstartedServer(h)}
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.conns.Add(1)
			b.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			b.open.Add(-1)
		}
	}
	if tune != nil {
		tune(b.srv.Config)
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *countingBackend) addr() string { return b.srv.Listener.Addr().String() }

func TestProxyReusesUpstreamConnections(t *testing.T) {
	be := newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }, nil)
	r, p := poolRoute("web")
	ready(t, p, "web-1", be.addr())
	f := newFront(t, Options{}, []Route{r}, nil)
	for i := range 20 {
		if resp := f.do(t, http.MethodGet, "", "/", nil); resp.status != http.StatusOK || resp.body != "ok" {
			t.Fatalf("GET / #%d: got %d %q, want 200 \"ok\"", i, resp.status, resp.body)
		}
	}
	if got := be.conns.Load(); got != 1 {
		t.Errorf("20 GETs one after another: got %d upstream connections, want 1", got)
	}
}

// The upstream closes a kept-alive connection while it is idle (its idle
// timeout, as Node.js does after 5 s): the next request, even a POST that
// cannot be retried, must go out on a new connection and succeed, on the
// fast engine and through ServeHTTP (HTTP/2's and net/http's requests),
// which looks at an idle connection first only for a request it could not
// send again.
func TestProxyUpstreamClosedAnIdleConnection(t *testing.T) {
	for _, engine := range []struct {
		name string
		wrap func(http.Handler) http.Handler
	}{
		{"fast", nil},
		{"ServeHTTP", func(h http.Handler) http.Handler { return h }},
	} {
		t.Run(engine.name, func(t *testing.T) {
			be := newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "%s %d", r.Method, len(b))
			}, func(s *http.Server) { s.IdleTimeout = 20 * time.Millisecond })
			r, p := poolRoute("web")
			u := ready(t, p, "web-1", be.addr())
			f := newFront(t, Options{}, []Route{r}, engine.wrap)
			methods := []string{http.MethodGet, http.MethodPost, http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPost}
			for i, method := range methods {
				resp := f.do(t, method, "", "/", strings.NewReader("hello"))
				if want := method + " 5"; resp.status != http.StatusOK || resp.body != want {
					t.Fatalf("%s / #%d after the upstream closed the idle connection: got %d %q, want 200 %q", method, i, resp.status, resp.body, want)
				}
				waitFor(t, "the upstream to close the idle connection", func() bool { return be.open.Load() == 0 })
			}
			if got := be.conns.Load(); got != int32(len(methods)) {
				t.Errorf("%d requests, each after the upstream closed the last connection: got %d upstream connections, want %d", len(methods), got, len(methods))
			}
			if u.Failures() != 0 {
				t.Errorf("replica failures after idle closes: got %d, want 0", u.Failures())
			}
		})
	}
}

// closeOnSecondRequest serves the first request of each connection and,
// on the second, reads it and closes the connection without answering: a
// connection that died while the request was on its way.
func closeOnSecondRequest(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	return rawServer(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if i == 1 {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
}

func TestProxyRetriesOnANewConnectionWhenAKeptOneDied(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		body      string
		want      int
		wantConns int32
		key       string
	}{
		{"GET is sent again on a new connection", http.MethodGet, "", http.StatusOK, 2, ""},
		{"PUT with a body too (idempotent)", http.MethodPut, "x", http.StatusOK, 2, ""},
		{"POST with an idempotency key too", http.MethodPost, "x", http.StatusOK, 2, "k-1"},
		{"POST is not (it may have been processed)", http.MethodPost, "x", http.StatusBadGateway, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, accepted := closeOnSecondRequest(t)
			r, p := poolRoute("web")
			u := ready(t, p, "web-1", addr)
			f := newFront(t, Options{}, []Route{r}, nil)
			if resp := f.do(t, http.MethodGet, "", "/", nil); resp.status != http.StatusOK {
				t.Fatalf("first GET: got %d %q, want 200", resp.status, resp.body)
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, f.srv.URL+"/", body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatalf("%s on the connection the upstream then closes: %v", tt.method, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s on the connection the upstream then closes: got %d, want %d", tt.method, resp.StatusCode, tt.want)
			}
			if got := accepted.Load(); got != tt.wantConns {
				t.Errorf("upstream connections: got %d, want %d", got, tt.wantConns)
			}
			waitIdle(t, u)
		})
	}
}

// A client that gives up mid-request closes the upstream connection, so the
// replica sees its request cancelled instead of working for nobody.
func TestProxyClientGoneCancelsTheUpstreamRequest(t *testing.T) {
	for _, path := range []string{"/slow", "/stream"} {
		t.Run(path, func(t *testing.T) {
			started, cancelled := make(chan struct{}), make(chan struct{})
			be := newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/stream" {
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, "data: one\n\n")
					http.NewResponseController(w).Flush()
				}
				close(started)
				select {
				case <-r.Context().Done():
					close(cancelled)
				case <-time.After(10 * time.Second):
				}
			}, nil)
			r, p := poolRoute("web")
			u := ready(t, p, "web-1", be.addr())
			f := newFront(t, Options{}, []Route{r}, nil)
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+path, nil)
			done := make(chan struct{})
			go func() {
				defer close(done)
				resp, err := f.client.Do(req)
				if err == nil {
					io.ReadAll(resp.Body)
					resp.Body.Close()
				}
			}()
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatalf("GET %s: the replica did not get the request within 5s", path)
			}
			cancel()
			<-done
			select {
			case <-cancelled:
			case <-time.After(5 * time.Second):
				t.Fatalf("GET %s: the client left, but after 5s the replica's request is still running", path)
			}
			waitIdle(t, u)
		})
	}
}

func TestProxyForwardsEarlyHints(t *testing.T) {
	be := newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "page")
	}, nil)
	r, p := poolRoute("web")
	ready(t, p, "web-1", be.addr())
	f := newFront(t, Options{}, []Route{r}, nil)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, f.srv.URL+"/", nil)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "page" {
		t.Errorf("GET /: got %d %q, want 200 \"page\"", resp.StatusCode, b)
	}
	if want := "103 </style.css>; rel=preload"; len(hints) != 1 || hints[0] != want {
		t.Errorf("1xx answers the client saw: got %q, want [%q]", hints, want)
	}
}

func TestProxyConnectionCloseFromTheUpstream(t *testing.T) {
	be := newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	}, nil)
	r, p := poolRoute("web")
	ready(t, p, "web-1", be.addr())
	f := newFront(t, Options{}, []Route{r}, nil)
	for i := range 3 {
		if resp := f.do(t, http.MethodGet, "", "/", nil); resp.status != http.StatusOK || resp.body != "bye" {
			t.Fatalf("GET / #%d: got %d %q, want 200 \"bye\"", i, resp.status, resp.body)
		}
	}
	if got := be.conns.Load(); got != 3 {
		t.Errorf("3 answers with Connection: close: got %d upstream connections, want 3", got)
	}
}

func TestFastTransportRejectsAHugeResponseHeader(t *testing.T) {
	be := newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("a", maxResponseHeader))
	}, nil)
	r, p := poolRoute("web")
	ready(t, p, "web-1", be.addr())
	f := newFront(t, Options{}, []Route{r}, nil)
	if resp := f.do(t, http.MethodGet, "", "/", nil); resp.status != http.StatusBadGateway {
		t.Errorf("GET / answered with a %d-byte header: got %d, want 502", maxResponseHeader, resp.status)
	}
}

func TestFastTransportClosesIdleConnectionsAfterTheIdleTimeout(t *testing.T) {
	be := newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }, nil)
	std := &http.Transport{}
	tr := &h1Transport{dial: (&net.Dialer{}).DialContext, std: std, maxIdle: 4, idleTimeout: 30 * time.Millisecond}
	client := &http.Client{Transport: tr}
	for i := range 3 {
		resp, err := client.Get("http://" + be.addr() + "/")
		if err != nil {
			t.Fatalf("GET #%d: %v", i, err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	idle := func() int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.idle)
	}
	if got := idle(); got != 1 {
		t.Errorf("after 3 GETs one after another: got %d idle connections, want 1", got)
	}
	waitFor(t, "the idle connection to be closed", func() bool { return idle() == 0 && be.open.Load() == 0 })
}

// getLoop returns a function that sends GET / to a local backend through
// the transport named kind ("fast": h1Transport, "std": net/http's) and
// reads the answer.
func getLoop(tb testing.TB, kind string) func() {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	tb.Cleanup(srv.Close)
	std := &http.Transport{}
	tb.Cleanup(std.CloseIdleConnections)
	var tr http.RoundTripper = std
	if kind == "fast" {
		fast := &h1Transport{dial: (&net.Dialer{}).DialContext, std: std, maxIdle: 4, idleTimeout: time.Minute}
		tb.Cleanup(fast.closeIdle)
		tr = fast
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	buf := make([]byte, 64)
	return func() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			tb.Fatal(err)
		}
		for err == nil {
			_, err = resp.Body.Read(buf)
		}
		resp.Body.Close()
	}
}

// The point of the fast transport: far fewer allocations per request than
// the standard one (the backend's, in the same process, count for both).
func TestFastTransportAllocatesLessThanStd(t *testing.T) {
	allocs := map[string]float64{}
	for _, kind := range []string{"fast", "std"} {
		get := getLoop(t, kind)
		get()
		allocs[kind] = testing.AllocsPerRun(200, get)
	}
	if allocs["fast"] > allocs["std"]-15 {
		t.Errorf("allocations per GET: got fast %v, std %v; want fast at least 15 fewer", allocs["fast"], allocs["std"])
	}
}

// BenchmarkUpstreamTransport measures one GET at a time through each
// transport to a local backend (whose allocations are counted too).
func BenchmarkUpstreamTransport(b *testing.B) {
	for _, kind := range []string{"fast", "std"} {
		b.Run(kind, func(b *testing.B) {
			get := getLoop(b, kind)
			b.ReportAllocs()
			for b.Loop() {
				get()
			}
		})
	}
}

// goneConn is a connection whose reads fail as the kernel fails them when
// the peer acknowledges nothing for TCP_USER_TIMEOUT (its machine is gone),
// once gone is set.
type goneConn struct {
	net.Conn
	gone *atomic.Bool
}

func (c goneConn) Read(p []byte) (int, error) {
	if c.gone.Load() {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}
	}
	return c.Conn.Read(p)
}

// A kept-alive connection to a replica whose machine is gone fails with
// ETIMEDOUT: the request is not sent again to that replica on a new
// connection (which would wait for the dial timeout on it), but fails at
// once, for the proxy to try another replica and eject this one.
func TestFastTransportGivesUpOnAReplicaThatAcknowledgesNothing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	var gone atomic.Bool
	var dials atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return goneConn{c, &gone}, err
	}
	tr := &h1Transport{dial: dial, std: &http.Transport{}, maxIdle: 4, idleTimeout: time.Minute}
	client := &http.Client{Transport: tr}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	gone.Store(true)
	resp, err = client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, syscall.ETIMEDOUT) {
		t.Errorf("GET on the kept-alive connection to a gone replica: got %v, want ETIMEDOUT", err)
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("connections dialled to the gone replica: %d, want 1 (no second try on it)", got)
	}
}
