package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// surge is a bounded closed-loop load from one client address: workers
// send GETs back to back for a while and record every answer's status and
// latency.
type surge struct {
	mu        sync.Mutex
	status    map[int]int
	errs      int
	latencies []time.Duration // of the 200s
	samples   []string        // the first answers that were neither 200 nor 503
	took      time.Duration
}

// runSurge sends GET url with Host host (if set) from source (an IP of
// this host; "": any) with the given number of workers for dur, and returns what they got.
func runSurge(url, host, source string, workers int, dur time.Duration) *surge {
	s := &surge{status: map[int]int{}}
	d := &net.Dialer{Timeout: 5 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			status := map[int]int{}
			errs := 0
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", url, nil)
				if host != "" {
					req.Host = host
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs++
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				status[resp.StatusCode]++
				switch resp.StatusCode {
				case 200:
					lat = append(lat, time.Since(t0))
				case 503:
					if resp.Header.Get("Retry-After") == "" {
						status[-503]++ // a 503 without Retry-After
					}
				default:
					s.mu.Lock()
					if len(s.samples) < 5 {
						s.samples = append(s.samples, fmt.Sprintf("%d %q", resp.StatusCode, strings.TrimSpace(string(body))))
					}
					s.mu.Unlock()
				}
			}
			s.mu.Lock()
			s.latencies = append(s.latencies, lat...)
			for k, v := range status {
				s.status[k] += v
			}
			s.errs += errs
			s.mu.Unlock()
		}()
	}
	wg.Wait()
	s.took = time.Since(start)
	slices.Sort(s.latencies)
	return s
}

// add counts o's answers in s (sort s.latencies after).
func (s *surge) add(o *surge) {
	for k, v := range o.status {
		s.status[k] += v
	}
	s.errs += o.errs
	s.latencies = append(s.latencies, o.latencies...)
	s.took += o.took
	if len(s.samples) < 5 {
		s.samples = append(s.samples, o.samples...)
	}
}

func (s *surge) requests() int {
	n := s.errs
	for k, v := range s.status {
		if k > 0 {
			n += v
		}
	}
	return n
}

// failed counts answers that are neither 200 nor a 503 with Retry-After.
func (s *surge) failed() int { return s.requests() - s.status[200] - s.status[503] + s.status[-503] }

func (s *surge) quantile(q float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	return s.latencies[min(len(s.latencies)-1, int(q*float64(len(s.latencies))))]
}

func (s *surge) String() string {
	return fmt.Sprintf("%d requests in %s: %d ok (%.0f/s), %d shed (503), %d failed; latency of the 200s p50 %s p99 %s",
		s.requests(), s.took.Round(time.Millisecond), s.status[200], float64(s.status[200])/s.took.Seconds(), s.status[503], s.failed(),
		s.quantile(0.5).Round(time.Millisecond), s.quantile(0.99).Round(time.Millisecond))
}

// capacities reads each replica's own count of the most requests it
// served at once and of those it failed for being over its capacity.
func capacities(t *testing.T, d *dlbProc, pool string) (peak, over int) {
	t.Helper()
	for _, p := range d.pools() {
		if p.Name != pool {
			continue
		}
		for _, r := range p.Replicas {
			code, body := get("http://" + r.Address + "/capacity")
			var pk, ov int
			if _, err := fmt.Sscanf(body, "peak %d over %d", &pk, &ov); code != 200 || err != nil {
				t.Fatalf("GET %s/capacity: %d %q", r.Address, code, body)
			}
			peak, over = max(peak, pk), over+ov
		}
	}
	return peak, over
}

const surgeProject = `
services:
  shop:
    image: dlb-demo:dev
    environment:
      CAPACITY: "8"
    labels:
      dlb.enable: "true"
      dlb.host: shop.test
      dlb.max_inflight: "8"
    networks: [appnet]
  flood:
    image: dlb-demo:dev
    environment:
      CAPACITY: "8"
    labels:
      dlb.enable: "true"
      dlb.host: flood.test
      dlb.max_inflight: "8"
      dlb.queue.max: "16"
    networks: [appnet]
networks:
  appnet: {}
`

// TestSurge: two replicas that each serve 8 requests at once (a 9th gets
// 500) behind dlb with dlb.max_inflight=8. 8x their capacity for 9 s
// costs no failed request, no replica ever has more than 8 at once, and
// they serve at least 90% of what they serve through dlb with no queue
// (measured in the same rounds: the machine is shared). A flood from one address past
// dlb.queue.max is shed with 503 while 4 clients from another address get
// only 200s.
func TestSurge(t *testing.T) {
	requireDocker(t)
	p := newProject(t, surgeProject)
	p.compose("up", "-d", "--no-build", "--scale", "shop=2", "--scale", "flood=2")
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--log-level", "info")
	shop, flood := p.name+"-shop", p.name+"-flood"
	d.waitReady(t, shop, 2, 10*time.Second)
	d.waitReady(t, flood, 2, 10*time.Second)

	t.Run("8x overload", func(t *testing.T) {
		// In alternating rounds on this shared machine: through dlb with as
		// many clients as the replicas hold (no queue: what they serve
		// through one more hop now; 2 x 8 / 20 ms = 800/s on an idle
		// machine), then 8x that many for 3 s; 9 s of overload in all.
		s := &surge{status: map[int]int{}}
		var ratios []float64
		for round := range 3 {
			full := runSurge(d.proxyURL+"/slow?ms=20", "shop.test", "127.0.0.1", 16, 2*time.Second)
			over := runSurge(d.proxyURL+"/slow?ms=20", "shop.test", "127.0.0.1", 8*16, 3*time.Second)
			ratio := (float64(over.status[200]) / over.took.Seconds()) / (float64(full.status[200]) / full.took.Seconds())
			t.Logf("round %d: 16 clients, no queue: %s", round+1, full)
			t.Logf("round %d: 128 clients: %s; %.2fx the round's 16 clients", round+1, over, ratio)
			ratios = append(ratios, ratio)
			s.add(over)
		}
		slices.Sort(s.latencies)
		slices.Sort(ratios)
		median := ratios[len(ratios)/2]
		t.Logf("128 clients, 2 replicas x 8 at once, 20 ms requests, 3 x 3 s: %s; median throughput against the replicas' capacity through dlb %.2fx",
			s, median)
		if s.failed() != 0 || s.status[503] != 0 {
			t.Errorf("8x overload: %d failed, %d shed, want none (first: %v)", s.failed(), s.status[503], s.samples)
		}
		if peak, over := capacities(t, d, shop); peak > 8 || over > 0 {
			t.Errorf("replicas: got at most %d requests at once and %d over capacity, want at most 8 and 0", peak, over)
		}
		if median < 0.9 {
			t.Errorf("throughput under 8x overload: median %.2fx (rounds %.2f) of what the replicas serve through dlb with no queue, want at least 0.9x", median, ratios)
		}
	})

	t.Run("flood from one address", func(t *testing.T) {
		var flooder, ordinary *surge
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			flooder = runSurge(d.proxyURL+"/slow?ms=20", "flood.test", "127.0.0.1", 96, 5*time.Second)
		}()
		go func() {
			defer wg.Done()
			ordinary = runSurge(d.proxyURL+"/slow?ms=20", "flood.test", "127.0.0.2", 4, 5*time.Second)
		}()
		wg.Wait()
		t.Logf("flood, 96 clients from 127.0.0.1: %s", flooder)
		t.Logf("4 ordinary clients from 127.0.0.2: %s", ordinary)
		if ordinary.status[200] == 0 || ordinary.status[200] != ordinary.requests() {
			t.Errorf("ordinary clients: got %v (%d transport errors; first: %v), want only 200s", ordinary.status, ordinary.errs, ordinary.samples)
		}
		if flooder.status[503] == 0 || flooder.failed() != 0 {
			t.Errorf("flooder: got %v (%d transport errors; first: %v), want 200s and 503s with Retry-After only", flooder.status, flooder.errs, flooder.samples)
		}
		if _, over := capacities(t, d, flood); over > 0 {
			t.Errorf("replicas: %d requests over capacity, want 0", over)
		}
		starts := 0
		for _, line := range strings.Split(d.logs(), "\n") {
			if strings.Contains(line, "service over capacity") && strings.Contains(line, flood) {
				starts++
			}
		}
		if starts != 1 {
			t.Errorf("dlb's log: got %d lines saying %s started shedding, want 1 for the whole flood", starts, flood)
		}
		waitFor(t, 10*time.Second, "dlb to log that the service stopped shedding", func() (bool, string) {
			return d.logHas("no longer shedding", flood), ""
		})
	})
}

// queueView is what the dashboard shows of a pool's queue.
type queueView struct {
	Shown   bool     `json:"shown"`
	Queued  string   `json:"queued"`
	Shed    string   `json:"shed"`
	Needed  string   `json:"needed"`
	Flights []string `json:"flights"`
}

// dashboardQueue reads the queue beside the replicas of pool's card.
func dashboardQueue(ctx context.Context, pool string) (queueView, error) {
	name, _ := json.Marshal(pool)
	js := `(() => {
  const out = {shown: false, queued: "", shed: "", needed: "", flights: []};
  for (const card of document.querySelectorAll("section.pool")) {
    const title = card.querySelector(".pool-name");
    if (!title || title.textContent !== ` + string(name) + `) continue;
    const q = card.querySelector(".queue");
    out.shown = !!q && getComputedStyle(q).display !== "none";
    out.queued = (card.querySelector(".q-queued") || {}).textContent || "";
    out.shed = (card.querySelector(".q-shed") || {}).textContent || "";
    out.needed = (card.querySelector(".q-needed") || {}).textContent || "";
    for (const v of card.querySelectorAll("li.replica .r-flight .val")) out.flights.push(v.textContent);
  }
  return out;
})()`
	return chromedp.Run(ctx, chromedp.Evaluate[queueView](js))
}

// TestDashboardShowsTheQueue floods a service whose replicas are at their
// dlb.max_inflight and checks that the dashboard draws its queue beside
// them: requests waiting, shed, the replicas the load needs, and each
// replica's in flight against its limit.
func TestDashboardShowsTheQueue(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	chromium := requireBrowser(t)
	requireDocker(t)
	p := newProject(t, surgeProject)
	p.compose("up", "-d", "--no-build", "--scale", "shop=0", "--scale", "flood=2")
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--log-level", "info")
	pool := p.name + "-flood"
	d.waitReady(t, pool, 2, 10*time.Second)

	ctx := newBrowser(t, chromium)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(d.adminURL+"/")); err != nil {
		t.Fatalf("opening %s/ in Chromium: %v", d.adminURL, err)
	}
	waitFor(t, 30*time.Second, "the dashboard to show the queue beside the replicas", func() (bool, string) {
		v, err := dashboardQueue(ctx, pool)
		return err == nil && v.Shown, fmt.Sprintf("%+v %v", v, err)
	})
	done := make(chan *surge, 1)
	go func() { done <- runSurge(d.proxyURL+"/slow?ms=20", "flood.test", "127.0.0.1", 96, 5*time.Second) }()
	var v queueView
	waitFor(t, 9*time.Second, "the dashboard to show requests waiting and shed, and the replicas needed", func() (bool, string) {
		var err error
		v, err = dashboardQueue(ctx, pool)
		return err == nil && strings.HasSuffix(v.Queued, " waiting") && v.Queued != "0 waiting" && strings.Contains(v.Shed, "shed") &&
			v.Shed != "none shed" && strings.HasPrefix(v.Needed, "needs "), fmt.Sprintf("%+v %v", v, err)
	})
	if !slices.ContainsFunc(v.Flights, func(f string) bool { return strings.HasSuffix(f, "/8") }) {
		t.Errorf("replicas' in flight: got %q, want them against their limit (n/8)", v.Flights)
	}
	t.Logf("the dashboard under a flood: %+v; screenshot %s", v, screenshot(t, ctx, "dashboard-surge.png"))
	<-done
}

const adaptiveProject = `
services:
  cpu:
    image: dlb-demo:dev
    environment:
      CORES: "2"
    labels:
      dlb.enable: "true"
      dlb.host: cpu.test
    networks: [appnet]
  capped:
    image: dlb-demo:dev
    environment:
      CAPACITY: "8"
    labels:
      dlb.enable: "true"
      dlb.host: capped.test
    networks: [appnet]
networks:
  appnet: {}
`

// TestAdaptiveLimitAgainstFixed measures --max-inflight auto against fixed
// limits on two kinds of replica, 2 of each, under 64 clients: one whose
// latency grows with concurrency past its 2 "cores" (/work?ms=10: 400/s in
// all at best), and one that fails past 8 at once (/slow?ms=20: 800/s). It
// logs a table (throughput, failed, p50/p99 latency per limit) and checks
// that auto keeps at least 80% of the best fixed limit's throughput with
// at most 1% failed. It takes about 3 minutes: set DLB_LIMIT_SWEEP=1.
func TestAdaptiveLimitAgainstFixed(t *testing.T) {
	if os.Getenv("DLB_LIMIT_SWEEP") != "1" {
		t.Skip("a 3-minute measurement: set DLB_LIMIT_SWEEP=1 to run it")
	}
	requireDocker(t)
	p := newProject(t, adaptiveProject)
	p.compose("up", "-d", "--no-build", "--scale", "cpu=2", "--scale", "capped=2")
	for _, kind := range []struct{ host, path string }{{"cpu.test", "/work?ms=10"}, {"capped.test", "/slow?ms=20"}} {
		best, bestLimit := 0.0, ""
		var auto *surge
		for _, limit := range []string{"0", "2", "4", "8", "16", "auto"} {
			d := startDLB(t, "--network", "appnet", "--project", p.name, "--log-level", "info", "--max-inflight", limit)
			d.waitReady(t, p.name+"-"+strings.TrimSuffix(kind.host, ".test"), 2, 10*time.Second)
			if limit == "auto" {
				runSurge(d.proxyURL+kind.path, kind.host, "127.0.0.1", 64, 5*time.Second) // it learns
			}
			s := runSurge(d.proxyURL+kind.path, kind.host, "127.0.0.1", 64, 10*time.Second)
			t.Logf("%-12s --max-inflight %-4s %s (non-200: %v)", kind.host, limit, s, s.status)
			ok := float64(s.status[200]) / s.took.Seconds()
			if limit == "auto" {
				auto = s
				for _, pv := range d.pools() {
					for _, r := range pv.Replicas {
						if strings.HasSuffix(pv.Name, strings.TrimSuffix(kind.host, ".test")) {
							t.Logf("  learned: %s limit %d", r.Name, r.Limit)
						}
					}
				}
			} else if s.failed() == 0 && ok > best {
				best, bestLimit = ok, limit
			}
			d.stop()
		}
		got := float64(auto.status[200]) / auto.took.Seconds()
		t.Logf("%s: auto %.0f/s against the best fixed limit without failures (%s) %.0f/s: %.2fx", kind.host, got, bestLimit, best, got/best)
		if got < 0.8*best || auto.failed()*100 > auto.requests() {
			t.Errorf("%s: auto served %.0f/s with %d of %d failed; want at least 80%% of the best fixed limit's %.0f/s and at most 1%% failed",
				kind.host, got, auto.failed(), auto.requests(), best)
		}
	}
}
