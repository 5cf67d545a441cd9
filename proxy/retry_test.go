package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// faultyReplica is a replica that answers GET /qod by resetting the
// connection and GET /bad with raw (a malformed response); anything else
// with 200 and its name. requests counts the request heads it read, by
// path.
type faultyReplica struct {
	name, raw string
	mu        sync.Mutex
	requests  map[string]int
}

func (f *faultyReplica) got(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[path]
}

func newFaultyReplica(t *testing.T, name, raw string) (*faultyReplica, string) {
	f := &faultyReplica{name: name, raw: raw, requests: map[string]int{}}
	addr, _ := rawServer(t, func(c net.Conn) {
		serveRequests(c, func(req *http.Request, _ *bufio.Reader) bool {
			f.mu.Lock()
			f.requests[req.URL.Path]++
			f.mu.Unlock()
			switch req.URL.Path {
			case "/qod":
				c.(*net.TCPConn).SetLinger(0)
				return false
			case "/bad":
				io.WriteString(c, f.raw)
				return false
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(name), name)
			return true
		})
	})
	return f, addr
}

// TestMalformedResponseIsAnsweredAtOnce: the only replica of a service
// answers garbage. No restart is coming, so the request does not wait
// --queue-timeout for another replica: 502 at once, nothing left in
// flight, the replica still in rotation.
func TestMalformedResponseIsAnsweredAtOnce(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want []int // statuses accepted (std's Transport takes CL+TE as chunked)
	}{
		{"bad status line", "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok", []int{502}},
		{"no status line", "hello\r\n\r\n", []int{502}},
		{"Content-Length with Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", []int{502, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, p := poolRoute("web")
			rep, addr := newFaultyReplica(t, "web-1", tt.raw)
			u := ready(t, p, "web-1", addr)
			const queue = 30 * time.Second
			f := newFront(t, Options{Retries: 2, QueueTimeout: queue}, []Route{r}, nil)
			start := time.Now()
			resp := f.do(t, "GET", "", "/bad", nil)
			took := time.Since(start)
			if !slices.Contains(tt.want, resp.status) || took > time.Second {
				t.Errorf("GET /bad, the only replica answers %q: %d %q after %s; want %v in under 1s (queue timeout %s)", tt.raw, resp.status, resp.body, took, tt.want, queue)
			}
			waitIdle(t, u)
			if u.State() != balancer.Ready || rep.got("/bad") != 1 {
				t.Errorf("web-1: %s, %d requests for /bad; want ready, 1", u.State(), rep.got("/bad"))
			}
			if resp := f.do(t, "GET", "", "/", nil); resp.status != 200 {
				t.Errorf("GET / after: %d %q, want 200", resp.status, resp.body)
			}
		})
	}
}

// TestQueryOfDeath: a request that makes every replica reset its
// connection goes to two replicas at most, ejects at most half of the
// pool, and a client beside it loses nothing. With one replica, it is
// answered 502 at once and the replica stays in.
func TestQueryOfDeath(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			r, p := poolRoute("web")
			var reps []*faultyReplica
			var ups []*balancer.Upstream
			for i := range n {
				rep, addr := newFaultyReplica(t, fmt.Sprintf("web-%d", i), "")
				reps = append(reps, rep)
				ups = append(ups, ready(t, p, rep.name, addr))
			}
			f := newFront(t, Options{Retries: 2, QueueTimeout: 30 * time.Second}, []Route{r}, nil)

			// A client beside it, all along.
			stop := make(chan struct{})
			var ok, failed atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if resp, err := f.try("GET", "", "/", nil); err != nil || resp.status != 200 {
						failed.Add(1)
					} else {
						ok.Add(1)
					}
				}
			})
			for i := range 5 {
				before := make([]int, n)
				for j, rep := range reps {
					before[j] = rep.got("/qod")
				}
				start := time.Now()
				resp := f.do(t, "GET", "", "/qod", nil)
				if took := time.Since(start); resp.status != http.StatusBadGateway || took > time.Second {
					t.Errorf("GET /qod #%d: %d after %s, want 502 in under 1s", i+1, resp.status, took)
				}
				// Each replica may see it twice: a request that fails on a
				// kept-alive connection with no answer goes again on a new
				// one (the replica may have closed it).
				var reached []string
				for j, rep := range reps {
					if d := rep.got("/qod") - before[j]; d > 0 {
						reached = append(reached, fmt.Sprintf("%s %dx", rep.name, d))
						if d > 2 {
							t.Errorf("GET /qod #%d reached %s %d times, want at most 2", i+1, rep.name, d)
						}
					}
				}
				if len(reached) > 2 {
					t.Errorf("GET /qod #%d reached %v, want two replicas at most", i+1, reached)
				}
				if got := p.ReadyCount(); got < (n+1)/2 {
					t.Errorf("after GET /qod #%d: %d of %d replicas ready, want at least %d", i+1, got, n, (n+1)/2)
				}
			}
			close(stop)
			wg.Wait()
			if failed.Load() > 0 || ok.Load() == 0 {
				t.Errorf("the client beside it: %d ok, %d failed; want some ok and none failed", ok.Load(), failed.Load())
			}
			waitIdle(t, ups...)
		})
	}
}

// TestRetryBudgetBoundsTheTries: when every replica fails every request,
// retries add a fifth of the requests (plus the reserve), not one try per
// retry allowed.
func TestRetryBudgetBoundsTheTries(t *testing.T) {
	r, p := poolRoute("web")
	var reps []*faultyReplica
	for i := range 3 {
		rep, addr := newFaultyReplica(t, fmt.Sprintf("web-%d", i), "HTTP/1.1 2x0 OK\r\n\r\n")
		reps = append(reps, rep)
		ready(t, p, rep.name, addr)
	}
	f := newFront(t, Options{Retries: 2}, []Route{r}, nil)
	const requests = 1000
	start := time.Now()
	for i := range requests {
		if resp := f.do(t, "GET", "", "/bad", nil); resp.status != http.StatusBadGateway {
			t.Fatalf("GET /bad #%d: %d, want 502", i+1, resp.status)
		}
	}
	tries := 0
	for _, rep := range reps {
		tries += rep.got("/bad")
	}
	// Without the budget: two tries each (a request that broke two
	// replicas is not sent to a third). With it, retries are at most a
	// fifth of all tries (retries count as requests too), plus the
	// reserve for a window, plus the reserve's rate for as long as the
	// test ran (retries decay out of the window meanwhile): r <= 0.2 *
	// (requests + r) + reserve, so r <= (0.2 * requests + reserve) / 0.8.
	elapsed := time.Since(start)
	reserve := float64(RetryBudgetMinPerSecond) * (RetryBudgetWindow + elapsed).Seconds()
	pct := float64(RetryBudgetPercent) / 100
	if most := requests + int((pct*requests+reserve)/(1-pct)); tries > most || tries <= requests {
		t.Errorf("%d requests in %s, each failing on every replica: %d tries; want more than %d and at most %d", requests, elapsed.Round(time.Millisecond), tries, requests, most)
	}
	t.Logf("%d requests failing everywhere: %d tries", requests, tries)
}

// TestLostMachineIsNotAQueryOfDeath: a request whose tries met two
// replicas that acknowledged nothing (ETIMEDOUT on a kept-alive
// connection: their machine is gone) goes on to a third replica; one that
// reset two replicas is answered with the error (the query-of-death rule).
// The real-engine test is TestSwarm/TwoNodes, which loses a node under load.
func TestLostMachineIsNotAQueryOfDeath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		errno syscall.Errno
		third bool // the request goes to a third replica
	}{
		{"ETIMEDOUT", syscall.ETIMEDOUT, true},
		{"ECONNRESET", syscall.ECONNRESET, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, pool := poolRoute("web")
			var ups []*balancer.Upstream
			for i := range 4 {
				ups = append(ups, ready(t, pool, fmt.Sprintf("web-%d", i), fmt.Sprintf("192.0.2.%d:80", i+1)))
			}
			p := newTestProxy(t, Options{Retries: 2}, []Route{r})
			req := httptest.NewRequest("GET", "/", nil)
			a := &attempt{Context: req.Context(), route: &r, up: ups[0]}
			a.tried = a.triedBuf[:0]
			ups[0].Begin()
			failed := func() error {
				err := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", tc.errno)}
				return p.failover(req, a, err, a.up.Admissions())
			}
			if err := failed(); err != nil {
				t.Fatalf("first try failed with %s: got %v, want a retry", tc.errno, err)
			}
			second := a.up
			err := failed()
			switch {
			case tc.third && err != nil:
				t.Errorf("second try failed with %s: got %v, want a retry on a third replica", tc.errno, err)
			case tc.third && (a.up == ups[0] || a.up == second):
				t.Errorf("third try goes to %s, which failed the request already", a.up.Name())
			case !tc.third && err == nil:
				t.Errorf("second try failed with %s: retried on %s, want the error (a request that broke two replicas)", tc.errno, a.up.Name())
			}
			a.up.End(err == nil)
		})
	}
}
