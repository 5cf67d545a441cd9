package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/nettest"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/health"
)

// backend is a real HTTP server standing for one replica. By default it
// answers with its name and records what it received.
type backend struct {
	name string
	srv  *httptest.Server

	mu   sync.Mutex
	seen []*http.Request // with Body replaced by bodies[i]
	body [][]byte
}

// newBackend starts a replica named name; h, when not nil, answers instead
// of the default handler (the request is recorded first).
func newBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h != nil {
			b.record(r, nil)
			h(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.record(r, body)
		io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) record(r *http.Request, body []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = append(b.seen, r)
	b.body = append(b.body, body)
}

// requests returns what the backend received so far, and the bodies.
func (b *backend) requests() ([]*http.Request, [][]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*http.Request(nil), b.seen...), append([][]byte(nil), b.body...)
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

// ready puts a ready upstream named name for addr in p.
func ready(t *testing.T, p *balancer.Pool, name, addr string) *balancer.Upstream {
	t.Helper()
	u := p.Put(balancer.Member{ID: "id-" + name, Name: name, Address: addr})
	if !p.MarkReady(u.ID()) {
		t.Fatalf("MarkReady(%s): got false, want true", u.ID())
	}
	return u
}

// deadAddr returns a 127.0.0.1 address where nothing listens: connecting
// to it is refused at once. Where it can (deadaddr_unix_test.go), the port
// stays bound, without listening, until the test ends, so no other listener
// (of this test binary or another one running beside it) can take it
// meanwhile and swallow the connection.
func deadAddr(t *testing.T) string {
	t.Helper()
	addr, _ := nettest.ReservePort(t)
	return addr
}

// rawServer listens on loopback and runs serve, on its own goroutine, for
// each connection it accepts; accepted counts them.
func rawServer(t *testing.T, serve func(net.Conn)) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go serve(c)
		}
	}()
	return ln.Addr().String(), accepted
}

// serveRequests reads the requests on c, their bodies drained, and calls
// answer with each (and c's reader) until it returns false or the
// connection ends; then it closes c.
func serveRequests(c net.Conn, answer func(req *http.Request, br *bufio.Reader) bool) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if !answer(req, br) {
			return
		}
	}
}

// resetAddr returns the address of a listener that reads the start of each
// request, then resets the connection without answering. accepted counts
// the connections it took.
func resetAddr(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	return rawServer(t, func(c net.Conn) {
		buf := make([]byte, 4<<10)
		c.Read(buf)
		c.(*net.TCPConn).SetLinger(0) // close with RST
		c.Close()
	})
}

// front is dlb's proxy served by a real HTTP server, in front of routes.
type front struct {
	px     *Proxy
	srv    *httptest.Server
	client *http.Client
}

// newFront serves a Proxy with opts over routes. wrap, when not nil, wraps
// the proxy's handler; configure changes the server before it starts.
func newFront(t *testing.T, opts Options, routes []Route, wrap func(http.Handler) http.Handler, configure ...func(*http.Server)) *front {
	t.Helper()
	f := &front{px: newTestProxy(t, opts, routes)}
	var h http.Handler = f.px
	if wrap != nil {
		h = wrap(f.px)
	}
	f.srv = serveFront(t, f.px, h, wrap == nil, configure...)
	t.Cleanup(f.srv.Close)
	f.client = f.srv.Client()
	f.client.Timeout = 10 * time.Second
	return f
}

// newTestProxy returns a Proxy with opts over routes.
func newTestProxy(t *testing.T, opts Options, routes []Route) *Proxy {
	t.Helper()
	rt := &Router{}
	if c := rt.Set(routes); len(c) > 0 {
		t.Fatalf("Set: got conflicts %q", c)
	}
	return New(rt, opts)
}

// poolRoute is the catch-all route to a new pool named service.
func poolRoute(service string) (Route, *balancer.Pool) {
	p := balancer.NewPool(service)
	return Route{Service: service, Path: "/", Pool: p}, p
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request through the front and reads the whole answer.
func (f *front) do(t *testing.T, method, host, path string, body io.Reader) response {
	t.Helper()
	resp, err := f.try(method, host, path, body)
	if err != nil {
		t.Fatalf("%s %s (Host %q): %v", method, path, host, err)
	}
	return resp
}

// try is do for other goroutines than the test's: it returns the error.
func (f *front) try(method, host, path string, body io.Reader) (response, error) {
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		return response{}, err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("reading the body: %w", err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}, nil
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	nettest.WaitFor(t, what, cond)
}

// waitIdle waits for every upstream's in-flight count to return to 0.
func waitIdle(t *testing.T, ups ...*balancer.Upstream) {
	t.Helper()
	for _, u := range ups {
		waitFor(t, fmt.Sprintf("%s to have no request in flight (has %d)", u.Name(), u.InFlight()), func() bool { return u.InFlight() == 0 })
	}
}

func TestProxyRoundRobin(t *testing.T) {
	r, p := poolRoute("web")
	var ups []*balancer.Upstream
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		ups = append(ups, ready(t, p, name, newBackend(t, name, nil).addr()))
	}
	f := newFront(t, Options{}, []Route{r}, nil)

	got := map[string]int{}
	for range 30 {
		resp := f.do(t, http.MethodGet, "", "/", nil)
		if resp.status != http.StatusOK {
			t.Fatalf("GET /: got status %d %q, want 200", resp.status, resp.body)
		}
		got[resp.body]++
	}
	want := map[string]int{"web-1": 10, "web-2": 10, "web-3": 10}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("30 requests: got %v, want %v", got, want)
	}
	waitIdle(t, ups...)
	for _, u := range ups {
		if u.Requests() != 10 || u.Failures() != 0 {
			t.Errorf("%s: got %d requests, %d failures; want 10, 0", u.Name(), u.Requests(), u.Failures())
		}
	}
}

func TestProxyUnknownRouteIs404(t *testing.T) {
	r, p := poolRoute("api")
	ready(t, p, "api-1", newBackend(t, "api-1", nil).addr())
	r.Path = "/api"
	f := newFront(t, Options{}, []Route{r}, nil)

	resp := f.do(t, http.MethodGet, "nowhere.example:8080", "/x/y", nil)
	if resp.status != http.StatusNotFound {
		t.Errorf("GET /x/y: got status %d, want 404", resp.status)
	}
	for _, s := range []string{`"nowhere.example"`, `"/x/y"`} {
		if !strings.Contains(resp.body, s) {
			t.Errorf("GET /x/y: got body %q, want it to name %s", resp.body, s)
		}
	}
}

func TestProxyEmptyPoolIs503AtOnce(t *testing.T) {
	r, _ := poolRoute("web") // a service scaled to 0
	const queue = 5 * time.Second
	f := newFront(t, Options{QueueTimeout: queue}, []Route{r}, nil)

	start := time.Now()
	resp := f.do(t, http.MethodGet, "", "/", nil)
	took := time.Since(start)
	if resp.status != http.StatusServiceUnavailable {
		t.Errorf("GET /: got status %d, want 503", resp.status)
	}
	if got := resp.header.Get("Retry-After"); got == "" {
		t.Errorf("GET /: got no Retry-After header, want one")
	}
	if !strings.Contains(resp.body, `"web"`) {
		t.Errorf("GET /: got body %q, want it to name the service", resp.body)
	}
	// An empty pool is not worth waiting for: no queueing.
	if took > time.Second {
		t.Errorf("GET /: answered after %v, want well before the %v queue timeout", took, queue)
	}
}

func TestProxyNoReadyReplicaIs503AfterTheQueueTimeout(t *testing.T) {
	r, p := poolRoute("web")
	p.Put(balancer.Member{ID: "id-web-1", Name: "web-1", Address: deadAddr(t)}) // starting, never ready
	const queue = 100 * time.Millisecond
	f := newFront(t, Options{QueueTimeout: queue}, []Route{r}, nil)

	start := time.Now()
	resp := f.do(t, http.MethodGet, "", "/", nil)
	took := time.Since(start)
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
		t.Errorf("GET /: got status %d, Retry-After %q; want 503 with Retry-After", resp.status, resp.header.Get("Retry-After"))
	}
	if took < queue || took > 5*time.Second {
		t.Errorf("GET /: answered after %v, want after the %v queue timeout", took, queue)
	}
}

func TestProxyQueuesUntilAReplicaIsReady(t *testing.T) {
	r, p := poolRoute("web")
	web := newBackend(t, "web-1", nil)
	u := p.Put(balancer.Member{ID: "id-web-1", Name: "web-1", Address: web.addr()}) // starting
	arrived := make(chan struct{}, 1)
	f := newFront(t, Options{QueueTimeout: 5 * time.Second}, []Route{r}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			h.ServeHTTP(w, r)
		})
	})

	type result struct {
		resp response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := f.try(http.MethodGet, "", "/", nil)
		done <- result{resp, err}
	}()
	<-arrived
	// The request found no ready replica and waits; the replica passes its
	// readiness gate a moment later.
	time.AfterFunc(50*time.Millisecond, func() { p.MarkReady(u.ID()) })
	got := <-done
	if got.err != nil || got.resp.status != http.StatusOK || got.resp.body != "web-1" {
		t.Errorf("GET / queued for a starting replica: got %d %q, %v; want 200 \"web-1\"", got.resp.status, got.resp.body, got.err)
	}
	waitIdle(t, u)
}

func TestProxyRetriesWhenTheConnectionIsRefused(t *testing.T) {
	large := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB: not kept in memory
	tests := []struct {
		name    string
		method  string
		body    []byte
		chunked bool // send the body without a Content-Length
	}{
		{"GET", http.MethodGet, nil, false},
		{"POST with a small body", http.MethodPost, []byte("hello"), false},
		{"POST with a large body", http.MethodPost, large, false},
		{"POST with a chunked body", http.MethodPost, []byte("hello, chunked"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, p := poolRoute("web")
			dead := ready(t, p, "a-dead", deadAddr(t)) // picked first: names sort
			live := newBackend(t, "b-live", nil)
			alive := ready(t, p, "b-live", live.addr())
			f := newFront(t, Options{Retries: 1}, []Route{r}, nil)

			var body io.Reader
			if tt.body != nil {
				body = bytes.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // hides the length
				}
			}
			resp := f.do(t, tt.method, "", "/", body)
			if resp.status != http.StatusOK || resp.body != "b-live" {
				t.Fatalf("%s / with a-dead picked first: got %d %q, want 200 \"b-live\"", tt.method, resp.status, resp.body)
			}
			reqs, bodies := live.requests()
			if len(reqs) != 1 {
				t.Fatalf("b-live: got %d requests, want 1", len(reqs))
			}
			if reqs[0].Method != tt.method || !bytes.Equal(bodies[0], tt.body) {
				t.Errorf("b-live: got %s with a %d-byte body, want %s with the full %d-byte body", reqs[0].Method, len(bodies[0]), tt.method, len(tt.body))
			}
			waitIdle(t, dead, alive)
			if dead.Failures() != 1 || alive.Failures() != 0 || alive.Requests() != 1 {
				t.Errorf("counters: got a-dead %d failures, b-live %d failures %d requests; want 1, 0, 1",
					dead.Failures(), alive.Failures(), alive.Requests())
			}
		})
	}
}

// Once a request reached a replica, it is retried only if it is idempotent
// and its body can be sent again.
func TestProxyRetryAfterAReset(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		size     int // body bytes
		want     int // status
		wantLive int // requests b-live got
	}{
		{"GET is retried", http.MethodGet, 0, http.StatusOK, 1},
		{"PUT with a small body is retried", http.MethodPut, 1 << 10, http.StatusOK, 1},
		{"POST with a small body is not retried (not idempotent)", http.MethodPost, 1 << 10, http.StatusBadGateway, 0},
		{"POST with a large body is not retried", http.MethodPost, 128 << 10, http.StatusBadGateway, 0},
		{"PUT with a large body is not retried (the body is spent)", http.MethodPut, 128 << 10, http.StatusBadGateway, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, p := poolRoute("web")
			resetting, accepted := resetAddr(t)
			bad := ready(t, p, "a-reset", resetting) // picked first: names sort
			live := newBackend(t, "b-live", nil)
			ready(t, p, "b-live", live.addr())
			f := newFront(t, Options{Retries: 2}, []Route{r}, nil)

			var body io.Reader
			if tt.size > 0 {
				body = bytes.NewReader(bytes.Repeat([]byte("x"), tt.size))
			}
			resp := f.do(t, tt.method, "", "/", body)
			if resp.status != tt.want {
				t.Errorf("%s / (%d bytes) to a replica that resets: got status %d %q, want %d", tt.method, tt.size, resp.status, resp.body, tt.want)
			}
			if got := accepted.Load(); got < 1 {
				t.Errorf("a-reset: got %d connections, want the request to have reached it", got)
			}
			reqs, bodies := live.requests()
			if len(reqs) != tt.wantLive {
				t.Errorf("b-live: got %d requests, want %d", len(reqs), tt.wantLive)
			}
			if len(reqs) == 1 && len(bodies[0]) != tt.size {
				t.Errorf("b-live: got a %d-byte body, want %d", len(bodies[0]), tt.size)
			}
			waitIdle(t, bad)
			if bad.Failures() != 1 {
				t.Errorf("a-reset: got %d failures, want 1", bad.Failures())
			}
		})
	}
}

func TestProxyWhenEveryReplicaRefuses(t *testing.T) {
	tests := []struct {
		name     string
		replicas int
		retries  int
		want     int
	}{
		{"one replica, no retries", 1, 0, http.StatusBadGateway},
		{"retries left but no replica left", 2, 5, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, p := poolRoute("web")
			var ups []*balancer.Upstream
			for i := range tt.replicas {
				ups = append(ups, ready(t, p, fmt.Sprintf("web-%d", i), deadAddr(t)))
			}
			f := newFront(t, Options{Retries: tt.retries}, []Route{r}, nil)
			resp := f.do(t, http.MethodGet, "", "/", nil)
			if resp.status != tt.want {
				t.Errorf("GET / with %d refusing replicas, %d retries: got %d %q, want %d", tt.replicas, tt.retries, resp.status, resp.body, tt.want)
			}
			waitIdle(t, ups...)
			for _, u := range ups {
				if u.Failures() != 1 {
					t.Errorf("%s: got %d failures, want 1", u.Name(), u.Failures())
				}
			}
		})
	}
}

func TestProxyHeaders(t *testing.T) {
	r, p := poolRoute("web")
	web := newBackend(t, "web-1", nil)
	ready(t, p, "web-1", web.addr())
	f := newFront(t, Options{}, []Route{r}, nil)

	resp := f.do(t, http.MethodGet, "App.Example.com:8443", "/path?q=1", nil)
	if resp.status != http.StatusOK {
		t.Fatalf("GET: got status %d %q, want 200", resp.status, resp.body)
	}
	reqs, _ := web.requests()
	if len(reqs) != 1 {
		t.Fatalf("backend: got %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	tests := []struct {
		name, got, want string
	}{
		{"Host", got.Host, "App.Example.com:8443"},
		{"URL", got.URL.RequestURI(), "/path?q=1"},
		{"X-Forwarded-For", got.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		{"X-Forwarded-Host", got.Header.Get("X-Forwarded-Host"), "App.Example.com:8443"},
		{"X-Forwarded-Proto", got.Header.Get("X-Forwarded-Proto"), "http"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("backend saw %s %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestProxyStreamsServerSentEvents(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	finish := func() { once.Do(func() { close(release) }) }
	r, p := poolRoute("events")
	sse := newBackend(t, "events-1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	})
	t.Cleanup(finish) // runs before the backend's Close, which waits for the handler
	u := ready(t, p, "events-1", sse.addr())
	f := newFront(t, Options{}, []Route{r}, nil)

	resp, err := f.client.Get(f.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The backend holds the stream open: the first event must come through
	// before the stream ends (else this read times out with the client).
	first, err := br.ReadString('\n')
	if err != nil || first != "data: one\n" {
		t.Fatalf("first line of the stream while it is open: got %q, %v; want \"data: one\\n\"", first, err)
	}
	finish()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest of the stream: got %q, %v; want \"\\ndata: two\\n\\n\"", rest, err)
	}
	waitIdle(t, u)
}

func TestProxyUpgrade(t *testing.T) {
	r, p := poolRoute("ws")
	echo := newBackend(t, "ws-1", echoUpgrade(""))
	u := ready(t, p, "ws-1", echo.addr())
	f := newFront(t, Options{}, []Route{r}, nil)

	conn, br := dialUpgrade(t, f.srv.Listener.Addr().String(), "app.example.com", "/ws")
	for _, msg := range []string{"ping\n", "second message\n"} {
		io.WriteString(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Errorf("echo through the upgraded connection: got %q, %v; want %q", got, err, msg)
		}
	}
	if got := u.InFlight(); got != 1 {
		t.Errorf("InFlight while the connection is upgraded: got %d, want 1", got)
	}
	conn.Close()
	waitIdle(t, u)
}

func TestProxyCountsRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	finish := func() { once.Do(func() { close(release) }) }
	hold := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "done")
	}
	r, p := poolRoute("web")
	ups := []*balancer.Upstream{
		ready(t, p, "web-1", newBackend(t, "web-1", hold).addr()),
		ready(t, p, "web-2", newBackend(t, "web-2", hold).addr()),
	}
	t.Cleanup(finish)
	f := newFront(t, Options{}, []Route{r}, nil)

	const n = 6
	var wg sync.WaitGroup
	statuses := make(chan string, n)
	for range n {
		wg.Go(func() {
			resp, err := f.try(http.MethodGet, "", "/", nil)
			statuses <- fmt.Sprint(resp.status, err)
		})
	}
	inFlight := func() int64 { return ups[0].InFlight() + ups[1].InFlight() }
	waitFor(t, fmt.Sprintf("%d requests in flight", n), func() bool { return inFlight() == n })
	if a, b := ups[0].InFlight(), ups[1].InFlight(); a != n/2 || b != n/2 {
		t.Errorf("InFlight: got web-1 %d, web-2 %d; want %d each", a, b, n/2)
	}
	finish()
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != "200 <nil>" {
			t.Errorf("GET /: got status and error %q, want 200 <nil>", s)
		}
	}
	waitIdle(t, ups...)
	if got := ups[0].Requests() + ups[1].Requests(); got != n {
		t.Errorf("Requests: got %d, want %d", got, n)
	}
}

// echoUpgrade is a replica that accepts "Upgrade: echo" and then answers
// each line it reads with prefix and the line.
func echoUpgrade(prefix string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "echo") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			http.Error(w, "want Connection: Upgrade, Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString(prefix + line)
			brw.Flush()
		}
	}
}

// dialUpgrade opens a connection to addr, asks for "Upgrade: echo" on path
// with the given Host, and checks the 101. The connection closes with the test.
func dialUpgrade(t *testing.T, addr, host, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", path, host)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to the upgrade: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("upgrade: got %s with Upgrade %q, want 101 Switching Protocols with Upgrade echo", resp.Status, resp.Header.Get("Upgrade"))
	}
	return conn, br
}

// Before dlb has listed the containers once, a request no route matches
// may be for a service that exists: 503 with Retry-After, not 404.
func TestProxyBeforeTheRoutesAreKnownIs503(t *testing.T) {
	var routed atomic.Bool
	f := newFront(t, Options{Routed: routed.Load}, nil, nil)
	resp := f.do(t, http.MethodGet, "shop.example", "/", nil)
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" || !strings.Contains(resp.body, "not synced with Docker") {
		t.Errorf("GET / before the first list: got %d %q (Retry-After %q); want 503 with Retry-After, naming the sync", resp.status, resp.body, resp.header.Get("Retry-After"))
	}
	routed.Store(true)
	if resp := f.do(t, http.MethodGet, "shop.example", "/", nil); resp.status != http.StatusNotFound {
		t.Errorf("GET / once the routes are known: got %d %q, want 404", resp.status, resp.body)
	}
}

// The only replica of a service refuses a connection: it is being
// restarted, and dlb has not heard of it yet. It is ejected; the request
// waits for it to be let in again and is answered there, instead of being
// held until the queue timeout and answered 503.
func TestProxyRetriesTheOnlyReplicaOnceItIsBack(t *testing.T) {
	r, p := poolRoute("web")
	u := ready(t, p, "web-1", deadAddr(t))
	web := newBackend(t, "web-1", nil)
	ej := &health.Ejector{AfterFunc: func(d time.Duration, f func()) *time.Timer {
		return time.NewTimer(time.Hour) // no probe: the restart brings it back
	}}
	ej.OnChange = func(_ *balancer.Upstream, ejected bool) {
		if ejected { // restarted (here at another address), through the readiness gate
			go func() {
				p.Restart(u.ID())
				p.Put(balancer.Member{ID: u.ID(), Name: "web-1", Address: web.addr()})
				p.SetHealth(u.ID(), balancer.CheckPassive, true)
				p.MarkReady(u.ID())
			}()
		}
	}
	const queue = 5 * time.Second
	f := newFront(t, Options{Retries: 2, QueueTimeout: queue, Ejector: ej}, []Route{r}, nil)
	start := time.Now()
	resp := f.do(t, http.MethodGet, "", "/", nil)
	if took := time.Since(start); resp.status != http.StatusOK || resp.body != "web-1" || took > queue/2 {
		t.Errorf("GET / as the only replica restarts: got %d %q after %s; want 200 \"web-1\" well before the %s queue timeout", resp.status, resp.body, took, queue)
	}
	waitIdle(t, u)
	if u.Failures() != 1 || u.Requests() != 2 {
		t.Errorf("web-1: got %d requests, %d failed; want 2, 1 (the refused one)", u.Requests(), u.Failures())
	}
}
