package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/health"
)

// recorder is an Observer that hands each Exchange to the test.
type recorder struct {
	exchanges chan Exchange
	ejections chan string
}

var _ Observer = (*recorder)(nil)

func newRecorder() *recorder {
	return &recorder{exchanges: make(chan Exchange, 16), ejections: make(chan string, 16)}
}

func (rec *recorder) Observe(r *http.Request, e *Exchange) {
	if r == nil || e == nil {
		panic("Observe without a request or an exchange")
	}
	rec.exchanges <- *e
}

func (rec *recorder) Ejected(route *Route, u *balancer.Upstream) {
	rec.ejections <- route.Service + "/" + u.Name()
}

// next waits for the next Exchange.
func (rec *recorder) next(t *testing.T) Exchange {
	t.Helper()
	select {
	case e := <-rec.exchanges:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("the Observer was not called within 5s")
		return Exchange{}
	}
}

// observedProxy is a dlb proxy with an Observer, serving on a real socket,
// routing every host and path to one pool whose replicas are the given
// backends, in the order given (named r0, r1...), all ready.
type observedProxy struct {
	url  string
	pool *balancer.Pool
	ups  []*balancer.Upstream
	rec  *recorder
}

func newObservedProxy(t *testing.T, opts Options, backends ...string) *observedProxy {
	t.Helper()
	op := &observedProxy{pool: balancer.NewPool("web"), rec: newRecorder()}
	for i, addr := range backends {
		id := fmt.Sprintf("r%d", i)
		op.ups = append(op.ups, op.pool.Put(balancer.Member{ID: id, Name: id, Address: addr}))
		op.pool.MarkReady(id)
	}
	router := &Router{}
	router.Set([]Route{{Service: "web", Path: "/", Pool: op.pool}})
	opts.Observer = op.rec
	srv := httptest.NewServer(New(router, opts))
	t.Cleanup(srv.Close)
	op.url = srv.URL
	return op
}

func replicaAt(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func mustGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestObserverSeesForwardedRequest(t *testing.T) {
	const body = "hello from r0\n"
	op := newObservedProxy(t, Options{}, replicaAt(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	before := time.Now()
	for i, wantFirst := range []bool{true, false} {
		code, got := mustGet(t, op.url+"/x")
		if code != 200 || got != body {
			t.Fatalf("request %d: got %d %q, want 200 %q", i, code, got, body)
		}
		e := op.rec.next(t)
		if e.Route == nil || e.Route.Service != "web" {
			t.Errorf("request %d: Route = %+v, want the web route", i, e.Route)
		}
		if e.Upstream != op.ups[0] {
			t.Errorf("request %d: Upstream = %v, want r0", i, e.Upstream)
		}
		if got := e.FirstFor != nil; got != wantFirst {
			t.Errorf("request %d: FirstFor = %v, want set: %v", i, e.FirstFor, wantFirst)
		}
		if e.Status != 200 || e.Bytes != int64(len(body)) || e.Retries != 0 {
			t.Errorf("request %d: status %d, bytes %d, retries %d; want 200, %d, 0", i, e.Status, e.Bytes, e.Retries, len(body))
		}
		if e.Start.Before(before) || e.Duration <= 0 || e.Duration > 5*time.Second {
			t.Errorf("request %d: Start %v (test began %v), Duration %v: want a start after the test began and a short positive duration", i, e.Start, before, e.Duration)
		}
	}
}

// The requests dlb answers itself are observed too.
func TestObserverSeesDLBsOwnAnswers(t *testing.T) {
	t.Run("404 no route", func(t *testing.T) {
		router := &Router{}
		pool := balancer.NewPool("api")
		router.Set([]Route{{Service: "api", Hosts: []string{"api.example"}, Path: "/", Pool: pool}})
		rec := newRecorder()
		srv := httptest.NewServer(New(router, Options{Observer: rec}))
		defer srv.Close()
		code, body := mustGet(t, srv.URL+"/nowhere")
		e := rec.next(t)
		if code != 404 || e.Status != 404 || e.Route != nil || e.Upstream != nil || e.Bytes != int64(len(body)) {
			t.Errorf("got %d; exchange status %d, route %v, upstream %v, bytes %d; want 404, no route, no upstream, %d bytes",
				code, e.Status, e.Route, e.Upstream, e.Bytes, len(body))
		}
	})
	t.Run("503 no ready replica", func(t *testing.T) {
		op := newObservedProxy(t, Options{}, deadAddr(t))
		op.pool.Put(balancer.Member{ID: "starting", Name: "starting", Address: deadAddr(t)})
		op.pool.Remove("r0")
		code, _ := mustGet(t, op.url+"/")
		e := op.rec.next(t)
		if code != 503 || e.Status != 503 || e.Route == nil || e.Upstream != nil {
			t.Errorf("got %d; exchange status %d, route %v, upstream %v; want 503 with the route and no upstream", code, e.Status, e.Route, e.Upstream)
		}
	})
}

// A refused connection is retried on the other replica, and the refusing
// replica is ejected: the Exchange counts the retry, the Observer hears of
// the ejection.
func TestObserverSeesRetriesAndEjections(t *testing.T) {
	op := newObservedProxy(t, Options{Retries: 2, Ejector: &health.Ejector{MinWindow: time.Hour}},
		deadAddr(t), replicaAt(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	code, _ := mustGet(t, op.url+"/")
	e := op.rec.next(t)
	if code != 200 || e.Status != 200 || e.Retries != 1 || e.Upstream != op.ups[1] || e.FirstFor != op.ups[1] {
		t.Errorf("got %d; exchange status %d, retries %d, upstream %v, first for %v; want 200, 1 retry, r1 and r1",
			code, e.Status, e.Retries, e.Upstream, e.FirstFor)
	}
	select {
	case got := <-op.rec.ejections:
		if got != "web/r0" {
			t.Errorf("ejected %s, want web/r0", got)
		}
	default:
		t.Errorf("the Observer did not hear of r0's ejection")
	}
}

func TestObserverSeesClientLeave(t *testing.T) {
	arrived := make(chan struct{})
	op := newObservedProxy(t, Options{}, replicaAt(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", op.url+"/slow", nil)
	go func() {
		<-arrived
		cancel()
	}()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the request was answered (%d), want it cancelled", resp.StatusCode)
	}
	if e := op.rec.next(t); e.Status != StatusClientClosed || e.Upstream != op.ups[0] {
		t.Errorf("exchange status %d, upstream %v; want %d and r0", e.Status, e.Upstream, StatusClientClosed)
	}
}

// With an Observer, server-sent events still reach the client one by one,
// as the replica flushes them.
func TestObserverKeepsStreaming(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	defer let()
	op := newObservedProxy(t, Options{}, replicaAt(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	}))
	// The first event must arrive while the replica holds the stream open.
	first := make(chan string, 1)
	var resp *http.Response
	go func() {
		var err error
		resp, err = http.Get(op.url + "/sse")
		if err != nil {
			first <- err.Error()
			return
		}
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if line != "data: one\n" {
			t.Fatalf("first line %q, want %q", line, "data: one\n")
		}
	case <-time.After(3 * time.Second):
		let()
		t.Fatal("the first event did not arrive within 3s while the stream was open: the proxy buffers it")
	}
	let()
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	want := int64(len("data: one\n\ndata: two\n\n"))
	if e := op.rec.next(t); e.Status != 200 || e.Bytes != want {
		t.Errorf("exchange status %d, bytes %d; want 200, %d", e.Status, e.Bytes, want)
	}
}

// With an Observer, a protocol switch (as WebSocket does) still goes through
// and the connection carries bytes both ways afterwards.
func TestObserverKeepsUpgrades(t *testing.T) {
	op := newObservedProxy(t, Options{}, replicaAt(t, echoUpgrade("echo: ")))
	c, br := dialUpgrade(t, strings.TrimPrefix(op.url, "http://"), "web", "/ws")
	io.WriteString(c, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Fatalf("after the upgrade: read %q, %v; want %q", line, err, "echo: ping\n")
	}
	c.Close()
	if e := op.rec.next(t); e.Status != http.StatusSwitchingProtocols || e.Upstream != op.ups[0] {
		t.Errorf("exchange status %d, upstream %v; want 101 and r0", e.Status, e.Upstream)
	}
}

// A 103 Early Hints before the response is not taken for its status.
func TestObserverSkipsInformational(t *testing.T) {
	op := newObservedProxy(t, Options{}, replicaAt(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusCreated)
	}))
	if code, _ := mustGet(t, op.url+"/"); code != http.StatusCreated {
		t.Fatalf("status %d, want 201", code)
	}
	if e := op.rec.next(t); e.Status != http.StatusCreated {
		t.Errorf("exchange status %d, want 201", e.Status)
	}
}

// BenchmarkObserver compares a proxied request without and with an
// Observer that does nothing.
func BenchmarkObserver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		obs  Observer
	}{{"nil", nil}, {"noop", noopObserver{}}} {
		b.Run(tc.name, func(b *testing.B) {
			pool := balancer.NewPool("web")
			pool.Put(balancer.Member{ID: "a", Name: "a", Address: strings.TrimPrefix(srv.URL, "http://")})
			pool.MarkReady("a")
			router := &Router{}
			router.Set([]Route{{Service: "web", Path: "/", Pool: pool}})
			px := New(router, Options{Observer: tc.obs})
			req := httptest.NewRequest("GET", "/", nil)
			b.ReportAllocs()
			for b.Loop() {
				px.ServeHTTP(discardWriter{h: http.Header{}}, req)
			}
		})
	}
}

type noopObserver struct{}

func (noopObserver) Observe(*http.Request, *Exchange)   {}
func (noopObserver) Ejected(*Route, *balancer.Upstream) {}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

// A body over the route's limit is refused with 413, observed as such; when
// its length was not announced, the connection is closed after the answer
// as it is without an Observer (http.MaxBytesReader sees the client's own
// ResponseWriter).
func TestObserverSees413(t *testing.T) {
	op := newObservedProxy(t, Options{}, replicaAt(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	router := &Router{}
	router.Set([]Route{{Service: "web", Path: "/", Pool: op.pool, RouteOptions: RouteOptions{MaxBody: 1000}}})
	srv := httptest.NewServer(New(router, Options{Observer: op.rec}))
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		length int64 // -1: chunked
	}{{"announced", 5000}, {"chunked", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/upload", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))))
			req.ContentLength = tc.length
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			e := op.rec.next(t)
			if resp.StatusCode != 413 || e.Status != 413 {
				t.Errorf("status %d, observed %d; want 413 and 413", resp.StatusCode, e.Status)
			}
			if !resp.Close {
				t.Errorf("the connection stays open after the 413, want it closed")
			}
		})
	}
}
