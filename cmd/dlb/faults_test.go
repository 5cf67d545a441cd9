package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// faultsProject has a service of one replica and one of three; the demo
// app's /fault/ paths reset the connection or answer garbage (faults.go).
const faultsProject = `
services:
  solo:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.path: /solo
      dlb.path.strip: "true"
    networks: [appnet]
  trio:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.path: /trio
      dlb.path.strip: "true"
    networks: [appnet]
networks:
  appnet: {}
`

// timedGet GETs url and returns the status (0 when the request failed)
// and how long the answer took.
func timedGet(url string) (int, time.Duration) {
	start := time.Now()
	code, _ := get(url)
	return code, time.Since(start)
}

// TestFaultsAreNotRetriedIntoTheQueue: a replica's malformed answer on a
// one-replica service is a 502 at once, not after --queue-timeout, and
// leaves nothing in flight; a query of death (a path that makes a replica
// reset the connection) reaches two replicas at most, leaves at least two
// of three serving, and a client beside it loses nothing; on a one-replica
// service it is a 502 at once and the replica stays in.
func TestFaultsAreNotRetriedIntoTheQueue(t *testing.T) {
	requireDocker(t)
	p := newProject(t, faultsProject)
	p.compose("up", "-d", "--no-build", "--scale", "trio=3")
	d := startDLB(t, "--network", "appnet", "--project", p.name) // --queue-timeout 30s, --retries 2
	solo, trio := p.name+"-solo", p.name+"-trio"
	d.waitReady(t, solo, 1, 30*time.Second)
	d.waitReady(t, trio, 3, 30*time.Second)

	t.Run("a malformed answer is a 502 in under 1s", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			want []int
		}{{"/solo/fault/status", []int{502}}, {"/solo/fault/cl-te", []int{502}}} {
			for i := range 3 {
				code, took := timedGet(d.proxyURL + tc.path)
				t.Logf("GET %s #%d: %d in %s", tc.path, i+1, code, took.Round(time.Millisecond))
				if !slices.Contains(tc.want, code) || took > time.Second {
					t.Errorf("GET %s #%d, the only replica answers garbage: %d after %s; want %v in under 1s", tc.path, i+1, code, took, tc.want)
				}
			}
		}
		waitFor(t, 5*time.Second, "solo's replica ready with nothing in flight", func() (bool, string) {
			for _, pool := range d.pools() {
				if pool.Name == solo && len(pool.Replicas) == 1 {
					r := pool.Replicas[0]
					return r.State == "ready" && r.InFlight == 0, fmt.Sprintf("%s, %d in flight", r.State, r.InFlight)
				}
			}
			return false, "no pool " + solo
		})
	})

	for _, tc := range []struct {
		service, pool string
		replicas      int
	}{{"solo", solo, 1}, {"trio", trio, 3}} {
		t.Run(fmt.Sprintf("a query of death on %d replicas", tc.replicas), func(t *testing.T) {
			l := startLoad(t, d.proxyURL+"/"+tc.service+"/", "", 4, 2*time.Minute, 1_000_000)
			defer l.finish()
			l.phase(t, "a query of death every 300ms", 500*time.Millisecond, func() {
				var slowest time.Duration
				for i := range 10 {
					code, took := timedGet(d.proxyURL + "/" + tc.service + "/fault/reset")
					slowest = max(slowest, took)
					if code != 502 || took > time.Second {
						t.Errorf("GET /%s/fault/reset #%d: %d after %s; want 502 in under 1s", tc.service, i+1, code, took)
					}
					if got, want := d.ready(tc.pool), (tc.replicas+1)/2; got < want {
						t.Errorf("after the query of death #%d: %d of %d replicas ready, want at least %d", i+1, got, tc.replicas, want)
					}
					time.Sleep(300 * time.Millisecond) // the pace of the bad client; nothing to wait for
				}
				t.Logf("10 queries of death on %d replicas: the slowest answered in %s", tc.replicas, slowest.Round(time.Millisecond))
			})
			// Two tries per query at most (a third replica is not tried;
			// each may see it a second time on a new connection).
			var resets float64
			for _, r := range d.pools() {
				if r.Name == tc.pool {
					for _, rep := range r.Replicas {
						resets += float64(rep.Failures)
					}
				}
			}
			if most := float64(10 * min(tc.replicas, 2) * 2); resets > most {
				t.Errorf("10 queries of death failed %v times on the replicas, want at most %v", resets, most)
			}
			t.Logf("replica failures counted: %v; ejections refused by the cap: %v", resets,
				series(d.scrape(), "dlb_ejections_refused_total", map[string]string{"service": tc.pool}, "service")[tc.pool])
		})
	}
}

// TestSilentFlood: 10,000 connections from one address (127.0.0.2) that
// send nothing hold at most its share of --max-conns, for the header
// timeout only; clients from another address (127.0.0.1) are served all
// along.
func TestSilentFlood(t *testing.T) {
	// It times no request (the header timeout is checked to 10 s at most
	// past its own), and its own dlb counts the connections: it may share
	// the machine with the other parallel tests. Most of it is the wait
	// for the header timeout.
	parallel(t)
	requireDocker(t)
	const flood, maxConns = 10_000, 8_000
	// This process holds the flood's sockets. Go raises the soft limit to
	// the hard one at start; a raise here is kept (other tests run beside
	// this one and may hold sockets past the old limit).
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < flood+2000 {
		if rl.Max < flood+2000 {
			t.Skipf("the open-file limit (hard %d) is below the %d this test needs", rl.Max, flood+2000)
		}
		rl.Cur = min(rl.Max, flood+4000)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
	}
	p := newProject(t, faultsProject)
	p.compose("up", "-d", "--no-build", "solo")
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--max-conns", fmt.Sprint(maxConns))
	d.waitReady(t, p.name+"-solo", 1, 30*time.Second)
	url := d.proxyURL + "/solo/"

	// The flood, from 127.0.0.2 (Linux answers all of 127.0.0.0/8).
	var (
		mu         sync.Mutex
		conns      []silentConn
		dialFailed atomic.Int64
		wg         sync.WaitGroup
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	// The header timeout counts from each connection's accept. On a busy
	// machine the flood takes longer to dial than the timeout, and its
	// first connections are closed, making room under the share, before
	// its last ones come: those are accepted and held too.
	const header = 10 * time.Second
	start := time.Now()
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	next := atomic.Int64{}
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= flood {
				c, err := dialer.Dial("tcp", d.proxyAddr)
				if err != nil {
					dialFailed.Add(1)
					continue
				}
				mu.Lock()
				conns = append(conns, silentConn{c, time.Now()})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d silent connections from 127.0.0.2 dialed in %s (%d dials failed)", len(conns), time.Since(start).Round(time.Millisecond), dialFailed.Load())

	// Others are served while the flood holds what it may.
	var slowest time.Duration
	for i := range 20 {
		code, took := timedGet(url)
		slowest = max(slowest, took)
		if code != 200 {
			t.Fatalf("GET %s #%d from 127.0.0.1 during the flood: %d after %s, want 200", url, i+1, code, took)
		}
		c, err := net.DialTimeout("tcp", d.proxyAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("a new connection from 127.0.0.1 during the flood: %v", err)
		}
		fmt.Fprintf(c, "GET /solo/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 12)
		n, err := c.Read(buf)
		c.Close()
		if string(buf[:n]) != "HTTP/1.1 200" {
			t.Fatalf("a new connection from 127.0.0.1 during the flood, GET /solo/ #%d: %q %v, want HTTP/1.1 200", i+1, buf[:n], err)
		}
	}
	refused := series(d.scrape(), "dlb_refused_connections_total", nil, "")[""]
	t.Logf("20 clients from 127.0.0.1 served during the flood (slowest %s); %v connections refused", slowest.Round(time.Millisecond), refused)
	// Of the connections made before the first could time out, all but
	// the share were refused.
	early := 0
	for _, c := range conns {
		if c.at.Before(start.Add(header)) {
			early++
		}
	}
	if want := float64(early - maxConns/2); refused < want {
		t.Errorf("dlb_refused_connections_total = %v, want at least %v: %d connections came within the header timeout, 127.0.0.2's share is %d of %d",
			refused, want, early, maxConns/2, maxConns)
	}

	// The silent ones are closed at the header timeout, 10 s after each
	// came (the check allows 10 s more).
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(c.at.Add(header + 10*time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			open++
		}
	}
	if open > 0 {
		t.Errorf("%d of the silent connections still open %s after they came (header timeout %s)", open, header+10*time.Second, header)
	}
	t.Logf("every silent connection closed by %s after the flood began", time.Since(start).Round(100*time.Millisecond))
	if code, took := timedGet(url); code != 200 {
		t.Errorf("GET %s after the flood: %d after %s, want 200", url, code, took)
	}
}

// silentConn is a connection of the flood, and when it was made.
type silentConn struct {
	net.Conn
	at time.Time
}
