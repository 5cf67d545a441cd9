package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// A replica limited to 2 in flight, with a queue of 2: 4 requests at once
// are all served (2 wait their turn), the replica never has more than 2,
// and a 5th from the same client, with the queue full, gets 503 with
// Retry-After at once. On net/http's server and on the fast path.
func TestProxyHoldsTheLimitAndShedsPastTheQueue(t *testing.T) {
	for _, engine := range []string{"fast", "std"} {
		t.Run(engine, func(t *testing.T) {
			release := make(chan struct{})
			var now, peak atomic.Int64
			web := newBackend(t, "web-1", func(w http.ResponseWriter, r *http.Request) {
				n := now.Add(1)
				defer now.Add(-1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				<-release
				w.Write([]byte("web-1"))
			})
			r, p := poolRoute("web")
			u := p.Put(balancer.Member{ID: "id-web-1", Name: "web-1", Address: web.addr(), Limit: balancer.Limit{Max: 2}})
			p.MarkReady(u.ID())
			p.SetQueue(2, 0)
			var wrap func(http.Handler) http.Handler
			if engine == "std" {
				wrap = func(h http.Handler) http.Handler { return h } // net/http's server serves every request
			}
			f := newFront(t, Options{QueueTimeout: 5 * time.Second}, []Route{r}, wrap)

			done := make(chan response, 4)
			for range 4 {
				go func() {
					resp, err := f.try(http.MethodGet, "", "/", nil)
					if err != nil {
						resp.body = err.Error()
					}
					done <- resp
				}()
			}
			waitFor(t, "2 requests at the replica and 2 queued", func() bool { return now.Load() == 2 && p.QueueStats().Queued == 2 })
			start := time.Now()
			shed := f.do(t, http.MethodGet, "", "/", nil)
			if shed.status != http.StatusServiceUnavailable || shed.header.Get("Retry-After") == "" || !strings.Contains(shed.body, "queue is full") {
				t.Errorf("GET / with the queue full: got %d %q (Retry-After %q), want 503 with Retry-After saying the queue is full",
					shed.status, shed.body, shed.header.Get("Retry-After"))
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("GET / with the queue full: answered after %v, want at once", took)
			}
			close(release)
			for range 4 {
				if resp := <-done; resp.status != http.StatusOK || resp.body != "web-1" {
					t.Errorf("a request that waited its turn: got %d %q, want 200 \"web-1\"", resp.status, resp.body)
				}
			}
			if got := peak.Load(); got != 2 {
				t.Errorf("the replica's most requests at once: got %d, want its limit 2", got)
			}
			waitIdle(t, u)
		})
	}
}

// A client that goes away while its request waits in the queue leaves the
// queue: its place goes to nobody's request, and no replica serves it.
func TestProxyQueuedClientThatLeaves(t *testing.T) {
	for _, engine := range []string{"fast", "std"} {
		t.Run(engine, func(t *testing.T) {
			release := make(chan struct{})
			var served atomic.Int64
			web := newBackend(t, "web-1", func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				<-release
			})
			r, p := poolRoute("web")
			u := p.Put(balancer.Member{ID: "id-web-1", Name: "web-1", Address: web.addr(), Limit: balancer.Limit{Max: 1}})
			p.MarkReady(u.ID())
			var wrap func(http.Handler) http.Handler
			if engine == "std" {
				wrap = func(h http.Handler) http.Handler { return h }
			}
			f := newFront(t, Options{QueueTimeout: time.Minute}, []Route{r}, wrap)
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			t.Cleanup(free) // before the servers close, even when the test fails
			done := make(chan struct{})
			go func() { f.try(http.MethodGet, "", "/", nil); close(done) }()
			waitFor(t, "the first request at the replica", func() bool { return served.Load() == 1 })

			c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
			waitFor(t, "the second request in the queue", func() bool { return p.QueueStats().Queued == 1 })
			c.Close()
			waitFor(t, "the queue to be empty once its client left", func() bool { return p.QueueStats().Queued == 0 })
			free()
			<-done
			waitIdle(t, u)
			if got := served.Load(); got != 1 {
				t.Errorf("requests the replica saw: got %d, want 1 (not the one whose client left)", got)
			}
		})
	}
}
