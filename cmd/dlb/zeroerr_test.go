package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load is a bounded load loop through dlb: workers send GETs, together at
// most loadRate a second, until stopped or until the time or count bound,
// and count every answer that is not 2xx and every transport error.
type load struct {
	requests, failures atomic.Int64
	slowest            atomic.Int64 // the longest request so far, in nanoseconds
	mu                 sync.Mutex
	samples            []string // the first failures, for the message
	byReplica          map[string]int
	stop               chan struct{}
	done               sync.WaitGroup
}

// startLoad starts workers sending GET url with Host host (if set), for at
// most maxDur and maxReq requests in all.
func startLoad(t testing.TB, url, host string, workers int, maxDur time.Duration, maxReq int64) *load {
	t.Helper()
	return startLoadWith(t, loadClient(workers, 15*time.Second), url, host, workers, maxDur, maxReq)
}

// loadClient is a client for a load's workers: a kept-alive connection
// each, and requests that give up after timeout.
func loadClient(workers int, timeout time.Duration) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// loadRate bounds a load's requests a second. A request every 2.5 ms
// leaves no gap in which a scaling step's failure could hide, and the
// tests' assertions are about failures, not throughput. Back to back, each
// load took whatever CPU the engine and the other tests running beside it
// left, and made their Docker operations wait: the suite's parallel phase
// is bound by the two cores.
const loadRate = 400

// startLoadWith is startLoad with the workers' client.
func startLoadWith(t testing.TB, client *http.Client, url, host string, workers int, maxDur time.Duration, maxReq int64) *load {
	t.Helper()
	l := &load{stop: make(chan struct{}), byReplica: map[string]int{}}
	deadline := time.Now().Add(maxDur)
	every := time.Duration(workers) * time.Second / loadRate // one worker's interval
	for i := 0; i < workers; i++ {
		l.done.Add(1)
		next := time.Now().Add(time.Duration(i) * every / time.Duration(workers)) // staggered
		go func() {
			defer l.done.Done()
			pause := time.NewTimer(0)
			defer pause.Stop()
			for time.Now().Before(deadline) && l.requests.Load() < maxReq {
				pause.Reset(time.Until(next))
				select {
				case <-l.stop:
					return
				case <-pause.C:
				}
				// The next request is due an interval after this one, or
				// at once if this one took longer: no burst to catch up.
				if next = next.Add(every); next.Before(time.Now()) {
					next = time.Now()
				}
				req, _ := http.NewRequest("GET", url, nil)
				if host != "" {
					req.Host = host
				}
				start := time.Now()
				resp, err := client.Do(req)
				l.requests.Add(1)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				for took, was := int64(time.Since(start)), l.slowest.Load(); took > was && !l.slowest.CompareAndSwap(was, took); was = l.slowest.Load() {
				}
				if err != nil || resp.StatusCode/100 != 2 {
					l.fail(fmt.Sprintf("%d %q %v", resp.StatusCode, strings.TrimSpace(string(body)), err))
					continue
				}
				l.mu.Lock()
				l.byReplica[strings.TrimSpace(string(body))]++
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { l.finish() })
	return l
}

func (l *load) fail(msg string) {
	l.failures.Add(1)
	l.mu.Lock()
	if len(l.samples) < 10 {
		l.samples = append(l.samples, time.Now().Format("15:04:05.000")+" "+msg)
	}
	l.mu.Unlock()
}

// finish stops the workers and waits for them.
func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.done.Wait()
}

// mark returns the counts so far, to measure one phase.
func (l *load) mark() (requests, failures int64) { return l.requests.Load(), l.failures.Load() }

// phase runs op under the load and then keeps the load on for settle; it
// asserts that the phase cost no failed request and made progress.
func (l *load) phase(t testing.TB, name string, settle time.Duration, op func()) {
	t.Helper()
	r0, f0 := l.mark()
	start := time.Now()
	op()
	time.Sleep(settle) // keep load on a steady state after the operation; not a wait for a condition
	r1, f1 := l.mark()
	t.Logf("%-34s %6d requests, %d failed, in %s", name, r1-r0, f1-f0, time.Since(start).Round(time.Millisecond))
	if f1 > f0 {
		l.mu.Lock()
		t.Errorf("%s: %d of %d requests failed, want 0; first failures:\n  %s", name, f1-f0, r1-r0, strings.Join(l.samples, "\n  "))
		l.mu.Unlock()
	}
	if r1-r0 < 20 {
		t.Errorf("%s: only %d requests went through during the phase; the load loop is stuck", name, r1-r0)
	}
}

func docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := dockerOutput(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// dockerOutput runs the docker CLI with args, for at most two minutes, and
// returns what it printed (stdout and stderr).
func dockerOutput(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return string(out), err
}

// containers lists the IDs of a Compose service's containers.
func (p *project) containers(service string) []string {
	p.t.Helper()
	out := docker(p.t, "ps", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project="+p.name,
		"--filter", "label=com.docker.compose.service="+service)
	return strings.Fields(out)
}

// waitReady waits until pool has exactly n ready replicas and no other.
func (d *dlbProc) waitReady(t testing.TB, pool string, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("pool %s to have exactly %d replicas, all ready", pool, n), func() (bool, string) {
		var states []string
		for _, p := range d.pools() {
			if p.Name == pool {
				for _, r := range p.Replicas {
					states = append(states, r.Name+"="+r.State)
				}
			}
		}
		ready := 0
		for _, s := range states {
			if strings.HasSuffix(s, "=ready") {
				ready++
			}
		}
		return ready == n && len(states) == n, strings.Join(states, " ")
	})
}

const zeroErrorProject = `
services:
  app:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
    networks: [appnet]
    stop_grace_period: 5s
  solo:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.host: solo.test
    networks: [appnet]
networks:
  appnet: {}
`

// TestZeroErrorScaling checks dlb's promise under a steady load of 16
// concurrent clients: scaling up and down, killing, restarting and
// recreating replicas costs no failed request.
func TestZeroErrorScaling(t *testing.T) {
	parallelLong(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, zeroErrorProject)
	p.compose("up", "-d", "--no-build", "--scale", "app=2", "--scale", "solo=1")
	// Compose recreates every replica at once (--force-recreate), so the
	// service has none for as long as that takes: dlb holds requests for
	// up to --queue-timeout, which must cover it (1-6 s measured here on a
	// quiet machine, 17.7 s once beside the Swarm tests). The clients wait
	// longer than that, so that a request dlb holds is dlb's to answer:
	// one held past the queue timeout fails as its 503.
	const queueTimeout = 20 * time.Second
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--queue-timeout", queueTimeout.String())
	app, solo := p.name+"-app", p.name+"-solo"
	d.waitReady(t, app, 2, 10*time.Second)
	d.waitReady(t, solo, 1, 10*time.Second)

	l := startLoadWith(t, loadClient(16, queueTimeout+5*time.Second), d.proxyURL+"/", "", 16, 5*time.Minute, 2_000_000)
	settle := 1500 * time.Millisecond

	l.phase(t, "scale app 2 -> 6", settle, func() {
		p.scale("app", 6)
		d.waitReady(t, app, 6, 10*time.Second)
	})
	l.phase(t, "scale app 6 -> 2", settle, func() {
		p.scale("app", 2)
		d.waitReady(t, app, 2, 10*time.Second)
	})
	l.phase(t, "docker kill -s KILL one replica", settle, func() {
		killed := p.containers("app")[0]
		docker(t, "kill", "-s", "KILL", killed)
		waitFor(t, 10*time.Second, "the killed replica to be down", func() (bool, string) {
			for _, pv := range d.pools() {
				for _, r := range pv.Replicas {
					if r.ID == killed {
						return r.State == "down", r.State
					}
				}
			}
			return true, "gone"
		})
		p.scale("app", 2) // starts the killed container again
		d.waitReady(t, app, 2, 10*time.Second)
	})
	l.phase(t, "docker restart one replica", settle, func() {
		docker(t, "restart", "-t", "5", p.containers("app")[0])
		d.waitReady(t, app, 2, 15*time.Second)
	})
	l.phase(t, "compose up --force-recreate", settle, func() {
		p.compose("up", "-d", "--no-build", "--force-recreate", "--scale", "app=2", "app")
		d.waitReady(t, app, 2, 15*time.Second)
	})
	// Slow requests in flight on replicas that are scaled away finish: the
	// replicas drain on the kill event, and finish what they have.
	slow := startLoad(t, d.proxyURL+"/slow?ms=400", "", 8, 2*time.Minute, 100_000)
	p.scale("app", 4)
	d.waitReady(t, app, 4, 10*time.Second)
	slow.phase(t, "scale 4 -> 2 with 400ms requests", settle, func() {
		p.scale("app", 2)
		d.waitReady(t, app, 2, 15*time.Second)
	})
	slow.finish()

	l.finish()
	if got := len(l.byReplica); got < 6 {
		t.Errorf("the load was answered by %d distinct replicas over all phases, want at least 6 (the scaled-up ones took traffic)", got)
	}

	// A one-replica service restarted: requests wait for it instead of failing.
	ls := startLoad(t, d.proxyURL+"/", "solo.test", 16, 2*time.Minute, 500_000)
	ls.phase(t, "restart the only replica of solo", settle, func() {
		docker(t, "restart", "-t", "5", p.containers("solo")[0])
		d.waitReady(t, solo, 1, 15*time.Second)
	})
	ls.finish()
}

// TestReadinessGate: replicas that listen only 2 s after starting (and have
// no HEALTHCHECK) get no request before they listen; a replica whose
// HEALTHCHECK fails gets none at all.
func TestReadinessGate(t *testing.T) {
	requireDocker(t)
	p := newProject(t, `
services:
  late:
    image: dlb-demo:dev
    environment:
      LISTEN_DELAY: 2s
    labels:
      dlb.enable: "true"
    networks: [appnet]
  good:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.service: checked
      dlb.host: checked.test
    healthcheck:
      test: ["CMD", "/demo", "-check", "http://127.0.0.1/healthz"]
      interval: 1s
      timeout: 5s
      retries: 3
    networks: [appnet]
  bad:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.service: checked
      dlb.host: checked.test
    healthcheck:
      test: ["CMD", "/demo", "-check", "http://127.0.0.1:9/nothing-listens-here"]
      interval: 1s
      timeout: 1s
      retries: 1
    networks: [appnet]
networks:
  appnet: {}
`)
	p.compose("up", "-d", "--no-build", "--scale", "late=1", "--scale", "good=2", "--scale", "bad=1")
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	late := p.name + "-late"
	d.waitReady(t, late, 1, 15*time.Second)

	l := startLoad(t, d.proxyURL+"/", "", 16, 2*time.Minute, 500_000)
	l.phase(t, "scale late 1 -> 4 (listen after 2s)", time.Second, func() {
		p.scale("late", 4)
		// Right after Compose returns the new replicas are not listening:
		// they must be held back as starting.
		starting := 0
		for _, pv := range d.pools() {
			for _, r := range pv.Replicas {
				if pv.Name == late && r.State == "starting" {
					starting++
				}
			}
		}
		if starting == 0 {
			t.Errorf("right after scaling up, no replica of %s was starting: the readiness gate let them in before they listened", late)
		}
		d.waitReady(t, late, 4, 15*time.Second)
	})
	l.finish()
	for _, pv := range d.pools() {
		for _, r := range pv.Replicas {
			if pv.Name == late && r.Failures != 0 {
				t.Errorf("replica %s had %d failed requests: it got traffic before it listened", r.Name, r.Failures)
			}
		}
	}

	// The HEALTHCHECK pool: two healthy replicas serve, the failing one gets nothing.
	waitFor(t, 30*time.Second, "the two healthy replicas of checked to be ready", func() (bool, string) {
		return d.ready("checked") == 2, fmt.Sprintf("%d ready", d.ready("checked"))
	})
	lc := startLoad(t, d.proxyURL+"/", "checked.test", 16, time.Minute, 200_000)
	lc.phase(t, "load on a pool with an unhealthy replica", 2*time.Second, func() {})
	lc.finish()
	bad := p.containers("bad")[0]
	for _, pv := range d.pools() {
		for _, r := range pv.Replicas {
			if r.ID == bad && (r.Requests != 0 || r.State == "ready") {
				t.Errorf("replica %s, whose HEALTHCHECK fails, is %s with %d requests; want no request", r.Name, r.State, r.Requests)
			}
		}
	}
}

// socketProxy is a pass-through TCP proxy to the Docker socket that a test
// can cut (closing every connection and refusing new ones) and restore.
type socketProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

func newSocketProxy(t testing.TB) *socketProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sp := &socketProxy{ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); sp.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			sp.mu.Lock()
			if sp.cut {
				sp.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				sp.mu.Unlock()
				c.Close()
				continue
			}
			sp.conns[c], sp.conns[up] = true, true
			sp.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return sp
}

func (sp *socketProxy) addr() string { return "tcp://" + sp.ln.Addr().String() }

func (sp *socketProxy) setCut(cut bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.cut = cut
	if cut {
		for c := range sp.conns {
			c.Close()
		}
		sp.conns = map[net.Conn]bool{}
	}
}

// TestEngineLoss: with dlb connected to Docker through a TCP proxy of the
// socket (as through a read-only socket proxy), cutting the connection keeps
// the last pools serving and /healthz at 503; after it is restored, the
// pools match the containers within 2 s.
func TestEngineLoss(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, appProject)
	p.scale("app", 3)
	sp := newSocketProxy(t)
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--docker-host", sp.addr())
	pool := p.name + "-app"
	d.waitReady(t, pool, 3, 10*time.Second)

	sp.setCut(true)
	waitFor(t, 10*time.Second, "/healthz to report the lost engine", func() (bool, string) {
		code, body := get(d.adminURL + "/healthz")
		return code == http.StatusServiceUnavailable, fmt.Sprintf("%d %s", code, body)
	})
	if got := spread(t, d.proxyURL+"/", 30); len(got) != 3 {
		t.Errorf("while Docker is unreachable, dlb served from %d replicas, want the 3 it knew: %v", len(got), got)
	}

	// Change the containers while dlb cannot see it: one goes, two come.
	gone := p.containers("app")[0]
	docker(t, "rm", "-f", gone)
	p.scale("app", 4)
	want := map[string]bool{}
	for _, id := range p.containers("app") {
		want[id] = true
	}

	sp.setCut(false)
	restored := time.Now()
	took := waitFor(t, 2*time.Second, "the pools to match the containers after the engine came back", func() (bool, string) {
		var seen []string
		match := true
		n := 0
		for _, pv := range d.pools() {
			if pv.Name != pool {
				continue
			}
			for _, r := range pv.Replicas {
				seen = append(seen, r.Name+"="+r.State)
				if !want[r.ID] || r.State != "ready" {
					match = false
				}
				n++
			}
		}
		return match && n == len(want), strings.Join(seen, " ")
	})
	t.Logf("pools converged %s after the Docker connection was restored", took)
	code, _ := get(d.adminURL + "/healthz")
	if code != 200 {
		t.Errorf("/healthz after reconnect = %d, want 200", code)
	}
	if got := spread(t, d.proxyURL+"/", 40); len(got) != 4 {
		t.Errorf("after reconnect %d replicas answered, want 4: %v", len(got), got)
	}
	_ = restored
	if !d.logHas("lost the Docker event stream") {
		t.Errorf("dlb's log does not say it lost the Docker event stream")
	}
}
