package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/fleet"
	"github.com/dlb-lb/dlb/proxy"
	dto "github.com/prometheus/client_model/go"
)

// Metrics is the fleet's observer too (cmd/dlb passes it to fleet.Options).
var _ fleet.Observer = (*Metrics)(nil)

// sample finds the value of the metric name with exactly the given labels;
// for a histogram, its sample count. ok is false when there is none.
func sample(t *testing.T, m *Metrics, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			if !sameLabels(mt.GetLabel(), labels) {
				continue
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue(), true
			case mt.Gauge != nil:
				return mt.Gauge.GetValue(), true
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	n := 0
	for _, l := range got {
		if l.GetValue() == "" {
			continue // an empty label is no label
		}
		if want[l.GetName()] != l.GetValue() {
			return false
		}
		n++
	}
	for _, v := range want {
		if v == "" {
			n++
		}
	}
	return n == len(want)
}

// histogramSum is the sum of the histogram name with the given labels.
func histogramSum(t *testing.T, m *Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	families, _ := m.Registry().Gather()
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			if f.GetName() == name && sameLabels(mt.GetLabel(), labels) && mt.Histogram != nil {
				return mt.Histogram.GetSampleSum()
			}
		}
	}
	t.Fatalf("no histogram %s%v", name, labels)
	return 0
}

func want(t *testing.T, m *Metrics, name string, labels map[string]string, value float64) {
	t.Helper()
	got, ok := sample(t, m, name, labels)
	if !ok {
		t.Errorf("%s%v: no such series, want %v", name, labels, value)
	} else if got != value {
		t.Errorf("%s%v = %v, want %v", name, labels, got, value)
	}
}

func wantNone(t *testing.T, m *Metrics, name string, labels map[string]string) {
	t.Helper()
	if got, ok := sample(t, m, name, labels); ok {
		t.Errorf("%s%v = %v, want no such series", name, labels, got)
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// fixture is a pool "web" with ready replicas web-1 and web-2, and its route.
type fixture struct {
	clock  *clock
	pools  poolList
	pool   *balancer.Pool
	route  *proxy.Route
	m      *Metrics
	w1, w2 *balancer.Upstream
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{clock: &clock{t: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}}
	f.pool = balancer.NewPool("web", balancer.WithClock(f.clock.now))
	f.pools = poolList{f.pool}
	f.w1 = f.pool.Put(balancer.Member{ID: "1", Name: "web-1", Address: "10.0.0.1:80"})
	f.w2 = f.pool.Put(balancer.Member{ID: "2", Name: "web-2", Address: "10.0.0.2:80"})
	f.pool.MarkReady("1")
	f.pool.MarkReady("2")
	f.route = &proxy.Route{Service: "web", Path: "/", Pool: f.pool}
	f.m = New(f.pools)
	return f
}

// poolList is a fixed list of pools.
type poolList []*balancer.Pool

func (l poolList) All() []*balancer.Pool { return l }

// request sends an Exchange for one request through the Metrics.
func (f *fixture) request(u *balancer.Upstream, status int, retries int) {
	e := &proxy.Exchange{Route: f.route, Upstream: u, Status: status, Start: f.clock.t,
		Duration: 30 * time.Millisecond, Retries: retries}
	if u != nil && u.Claim() && u.Begin() {
		e.FirstFor = u
	}
	if u != nil {
		u.End(false)
	}
	f.m.Observe(httptest.NewRequest("GET", "/", nil), e)
}

func TestRequestsByReplicaAndClass(t *testing.T) {
	f := newFixture(t)
	for range 3 {
		f.request(f.w1, 200, 0)
	}
	f.request(f.w2, 204, 0)
	f.request(f.w2, 502, 2)
	f.request(nil, 503, 0)
	f.m.Observe(httptest.NewRequest("GET", "/", nil), &proxy.Exchange{Status: 404, Duration: time.Millisecond})
	f.request(f.w1, proxy.StatusClientClosed, 0)
	f.request(f.w2, 101, 0)

	for _, tc := range []struct {
		service, replica, code string
		want                   float64
	}{
		{"web", "web-1", "2xx", 3},
		{"web", "web-1", "4xx", 1},
		{"web", "web-2", "2xx", 1},
		{"web", "web-2", "5xx", 1},
		{"web", "web-2", "1xx", 1},
		{"web", "", "5xx", 1},
		{"", "", "4xx", 1},
	} {
		want(t, f.m, "dlb_requests_total", map[string]string{"service": tc.service, "replica": tc.replica, "code": tc.code}, tc.want)
	}
	want(t, f.m, "dlb_retries_total", map[string]string{"service": "web"}, 2)
	want(t, f.m, "dlb_request_duration_seconds", map[string]string{"service": "web"}, 8)
	want(t, f.m, "dlb_request_duration_seconds", map[string]string{"service": ""}, 1)
}

// The wait of a new replica is counted once, from ReadySince (pool clock)
// to the Start of its first request; again after it turns ready anew.
func TestReadyToFirstRequest(t *testing.T) {
	f := newFixture(t)
	f.clock.t = f.clock.t.Add(250 * time.Millisecond)
	f.request(f.w1, 200, 0)
	f.request(f.w1, 200, 0)
	labels := map[string]string{"service": "web"}
	want(t, f.m, "dlb_ready_to_first_request_seconds", labels, 1)
	if got := histogramSum(t, f.m, "dlb_ready_to_first_request_seconds", labels); got != 0.25 {
		t.Errorf("sum of waits = %v, want 0.25", got)
	}

	f.pool.SetHealth("1", balancer.CheckActive, false)
	f.pool.SetHealth("1", balancer.CheckActive, true)
	f.clock.t = f.clock.t.Add(time.Second)
	f.request(f.w1, 200, 0)
	want(t, f.m, "dlb_ready_to_first_request_seconds", labels, 2)
	if got := histogramSum(t, f.m, "dlb_ready_to_first_request_seconds", labels); got != 1.25 {
		t.Errorf("sum of waits = %v, want 1.25", got)
	}
}

// The time from a replica's Docker event to its first request is counted
// once, and not again after it turns ready anew with no event to time from.
func TestEventToReadyAndFirstRequest(t *testing.T) {
	f := newFixture(t)
	labels := map[string]string{"service": "web"}
	f.m.ReplicaReady("web", 40*time.Millisecond)
	want(t, f.m, "dlb_event_to_ready_seconds", labels, 1)
	if got := histogramSum(t, f.m, "dlb_event_to_ready_seconds", labels); got != 0.04 {
		t.Errorf("dlb_event_to_ready_seconds sum = %v, want 0.04", got)
	}

	f.w1.SetAnnounced(f.clock.t.Add(-100 * time.Millisecond))
	f.clock.t = f.clock.t.Add(50 * time.Millisecond)
	f.request(f.w1, 200, 0)
	f.request(f.w1, 200, 0)
	f.request(f.w2, 200, 0) // never announced: listed at start
	want(t, f.m, "dlb_event_to_first_request_seconds", labels, 1)
	if got := histogramSum(t, f.m, "dlb_event_to_first_request_seconds", labels); got < 0.1499 || got > 0.1501 {
		t.Errorf("dlb_event_to_first_request_seconds sum = %v, want 0.15", got)
	}

	f.pool.SetHealth("1", balancer.CheckActive, false)
	f.pool.SetHealth("1", balancer.CheckActive, true)
	f.request(f.w1, 200, 0)
	want(t, f.m, "dlb_event_to_first_request_seconds", labels, 1)
}

// A replica's series go when it leaves; a request that ends after that is
// counted without a replica; a new container of the same name starts afresh.
func TestForgetDeletesSeries(t *testing.T) {
	f := newFixture(t)
	f.request(f.w1, 200, 0)
	f.request(f.w1, 500, 0)
	f.request(f.w2, 200, 0)

	f.pool.Remove("1")
	f.m.ReplicaLeft(f.w1)
	for _, code := range []string{"2xx", "5xx"} {
		wantNone(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "web-1", "code": code})
	}
	want(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "web-2", "code": "2xx"}, 1)

	f.request(f.w1, 200, 0) // was in flight when web-1 left
	wantNone(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "web-1", "code": "2xx"})
	want(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "", "code": "2xx"}, 1)

	again := f.pool.Put(balancer.Member{ID: "1b", Name: "web-1", Address: "10.0.0.3:80"})
	f.pool.MarkReady("1b")
	f.request(again, 200, 0)
	want(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "web-1", "code": "2xx"}, 1)
}

// Compose recreating a container: the new one has the old one's name
// while the old one is still in the pool. When the old one leaves, the new
// one's counting goes on in fresh series.
func TestForgetWithNameReused(t *testing.T) {
	f := newFixture(t)
	fresh := f.pool.Put(balancer.Member{ID: "1new", Name: "web-1", Address: "10.0.0.9:80"})
	f.pool.MarkReady("1new")
	f.request(f.w1, 200, 0)
	f.request(fresh, 200, 0)
	want(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "web-1", "code": "2xx"}, 2)

	f.pool.Remove("1")
	f.m.ReplicaLeft(f.w1)
	f.request(fresh, 200, 0)
	want(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "web-1", "code": "2xx"}, 1)
}

// Requests and removals at once: under -race, and no series is left of a
// replica once it is gone.
func TestForgetWhileCounting(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				f.request(f.w1, 200, 0)
			}
		})
	}
	f.pool.Remove("1")
	f.m.ReplicaLeft(f.w1)
	wg.Wait()
	wantNone(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "web-1", "code": "2xx"})
	gone, _ := sample(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "web-1", "code": "2xx"})
	without, _ := sample(t, f.m, "dlb_requests_total", map[string]string{"service": "web", "replica": "", "code": "2xx"})
	if gone+without > 2000 {
		t.Errorf("counted %v requests, more than the 2000 sent", gone+without)
	}
}

func TestReplicasByStateAtScrape(t *testing.T) {
	f := newFixture(t)
	f.pool.Put(balancer.Member{ID: "3", Name: "web-3", Address: "10.0.0.3:80"}) // starting
	f.pool.Put(balancer.Member{ID: "4", Name: "web-4", Address: "10.0.0.4:80"})
	f.pool.MarkReady("4")
	f.pool.Drain("4")
	f.pool.Put(balancer.Member{ID: "5", Name: "web-5", Address: "10.0.0.5:80"})
	f.pool.Stop("5")
	f.w1.Claim()
	f.w2.Claim()
	f.w2.Claim()

	for state, n := range map[string]float64{"starting": 1, "ready": 2, "draining": 1, "down": 1} {
		want(t, f.m, "dlb_replicas", map[string]string{"service": "web", "state": state}, n)
	}
	want(t, f.m, "dlb_in_flight_requests", map[string]string{"service": "web"}, 3)

	// The gauges follow the pool with nothing kept in sync by hand.
	f.pool.Remove("3")
	f.pool.MarkReady("5")
	f.pool.Restart("5")
	f.pool.MarkReady("5")
	f.w2.End(false)
	for state, n := range map[string]float64{"starting": 0, "ready": 3, "draining": 1, "down": 0} {
		want(t, f.m, "dlb_replicas", map[string]string{"service": "web", "state": state}, n)
	}
	want(t, f.m, "dlb_in_flight_requests", map[string]string{"service": "web"}, 2)
}

func TestQueueAtScrape(t *testing.T) {
	f := newFixture(t)
	f.pool.Put(balancer.Member{ID: "1", Name: "web-1", Address: "10.0.0.1:80", Limit: balancer.Limit{Max: 1}})
	f.pool.Put(balancer.Member{ID: "2", Name: "web-2", Address: "10.0.0.2:80", Limit: balancer.Limit{Max: 2}})
	f.pool.SetQueue(5, 0)
	for range 3 {
		f.pool.Pick(0, nil)
	}
	// No room and no time to wait: shed at once.
	if _, err := f.pool.Acquire(t.Context(), balancer.Ask{}); err == nil {
		t.Fatal("Acquire with every replica at its limit and no timeout: got a replica, want 503")
	}
	labels := map[string]string{"service": "web"}
	want(t, f.m, "dlb_in_flight_limit", labels, 3)
	want(t, f.m, "dlb_in_flight_requests", labels, 3)
	want(t, f.m, "dlb_queue_max", labels, 5)
	want(t, f.m, "dlb_queued_requests", labels, 0)
	want(t, f.m, "dlb_shed_requests_total", labels, 1)
	want(t, f.m, "dlb_queue_timeouts_total", labels, 0)
}

func TestEventsAndEjections(t *testing.T) {
	f := newFixture(t)
	for _, a := range []string{"start", "start", "die", "health_status: healthy"} {
		f.m.SourceEvent("docker", a)
	}
	f.m.Ejected(f.route, f.w1)
	want(t, f.m, "dlb_docker_events_total", map[string]string{"action": "start"}, 2)
	want(t, f.m, "dlb_docker_events_total", map[string]string{"action": "die"}, 1)
	want(t, f.m, "dlb_docker_events_total", map[string]string{"action": "health_status: healthy"}, 1)
	want(t, f.m, "dlb_ejections_total", map[string]string{"service": "web"}, 1)
}

// TestRefusedRetriesAndEjections: a request whose retry the budget refused,
// or whose replica the ejection cap kept in, is counted for its service.
func TestRefusedRetriesAndEjections(t *testing.T) {
	f := newFixture(t)
	for _, e := range []proxy.Exchange{
		{Route: f.route, Upstream: f.w1, Status: 502, RetryRefused: true},
		{Route: f.route, Upstream: f.w1, Status: 502, RetryRefused: true, EjectionCapped: true},
		{Route: f.route, Upstream: f.w2, Status: 200, Retries: 1},
	} {
		f.m.Observe(httptest.NewRequest("GET", "/", nil), &e)
	}
	want(t, f.m, "dlb_retries_refused_total", map[string]string{"service": "web"}, 2)
	want(t, f.m, "dlb_ejections_refused_total", map[string]string{"service": "web"}, 1)
	want(t, f.m, "dlb_retries_total", map[string]string{"service": "web"}, 1)
}

// The handler speaks the text format, with the Go and process collectors.
func TestHandler(t *testing.T) {
	f := newFixture(t)
	f.request(f.w1, 200, 0)
	srv := httptest.NewServer(f.m)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	for _, line := range []string{
		`dlb_requests_total{code="2xx",replica="web-1",service="web"} 1`,
		`dlb_replicas{service="web",state="ready"} 2`,
		`dlb_retries_total{service="web"} 0`, // at 0 from the service's first request
		`dlb_ejections_total{service="web"} 0`,
		"# TYPE dlb_request_duration_seconds histogram",
		"# TYPE go_goroutines gauge",
		"# TYPE process_resident_memory_bytes gauge",
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks the line %q", line)
		}
	}
}

// BenchmarkObserve is the cost of counting one request.
func BenchmarkObserve(b *testing.B) {
	pool := balancer.NewPool("web")
	u := pool.Put(balancer.Member{ID: "1", Name: "web-1", Address: "10.0.0.1:80"})
	pool.MarkReady("1")
	m := New(poolList{pool})
	r := httptest.NewRequest("GET", "/", nil)
	e := &proxy.Exchange{Route: &proxy.Route{Service: "web", Pool: pool}, Upstream: u, Status: 200,
		Start: time.Now(), Duration: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(r, e)
		}
	})
}
