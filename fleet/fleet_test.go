package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/dlb-lb/dlb/internal/nettest"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/rs/zerolog"
)

// testRegistry is a Fleet wired as serve wires it, with its proxy served
// by a real HTTP server, and one source, "docker", whose calls its
// Sync, Update, Drain, Stop and Remove make.
type testRegistry struct {
	*Fleet
	src    discovery.Sink
	router *proxy.Router
	front  *httptest.Server
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	router := &proxy.Router{}
	px := proxy.New(router, proxy.Options{})
	g := New(Options{Router: router, Proxy: px, Log: zerolog.Nop()})
	front := httptest.NewServer(px)
	t.Cleanup(front.Close)
	tr := &testRegistry{Fleet: g, src: g.Source("docker"), router: router, front: front}
	t.Cleanup(func() { // end the readiness probes still running
		for _, p := range g.Pools() {
			for _, r := range p.Replicas {
				g.Remove(r.ID)
			}
		}
	})
	return tr
}

func (tr *testRegistry) Sync(rs []discovery.Replica) { tr.src.Sync(rs) }
func (tr *testRegistry) Update(r discovery.Replica)  { tr.src.Update(r) }

// get sends GET path with Host host through the proxy and returns the status
// and body.
func (tr *testRegistry) get(t *testing.T, host, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, tr.front.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	c := tr.front.Client()
	c.Timeout = 10 * time.Second
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// state is the state of replica id in pool, or "absent".
func (tr *testRegistry) state(pool, id string) string {
	p := tr.pools.Get(pool)
	if p == nil {
		return "no pool " + pool
	}
	if u := p.Get(id); u != nil {
		return u.State().String()
	}
	return "absent"
}

// waitState polls until replica id of pool is in state want, failing after
// a few seconds.
func (tr *testRegistry) waitState(t *testing.T, pool, id, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for tr.state(pool, id) != want {
		if time.Now().After(deadline) {
			t.Fatalf("replica %s of pool %s: got state %q after 3s, want %q", id, pool, tr.state(pool, id), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// routeOf is the service the router sends host and path to, or "".
func (tr *testRegistry) routeOf(host, path string) string {
	if r := tr.router.Lookup(host, path); r != nil {
		return r.Service
	}
	return ""
}

// backend starts an HTTP server answering with name; it returns its address.
func backend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// refusedAddr is a 127.0.0.1 address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	addr, _ := nettest.ReservePort(t)
	return addr
}

// replicaOf is the replica the watcher reports for a running container named
// name of service web, at addr, changed by opts.
func replicaOf(t *testing.T, name, addr string, opts ...func(*discovery.Replica)) discovery.Replica {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	r := discovery.Replica{
		ID: "id-" + name, Name: name, Service: "web", Path: "/",
		Network: "appnet", IP: host, Port: p, Running: true,
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func inService(s string) func(*discovery.Replica) {
	return func(r *discovery.Replica) { r.Service = s }
}
func onRoute(path string, hosts ...string) func(*discovery.Replica) {
	return func(r *discovery.Replica) { r.Path, r.Hosts = path, hosts }
}
func withHealth(h string) func(*discovery.Replica) {
	return func(r *discovery.Replica) { r.Health = h }
}

func TestFleetAdmitsANewReplicaOnceItListens(t *testing.T) {
	tr := newTestRegistry(t)
	addr := refusedAddr(t)
	tr.Update(replicaOf(t, "web-1", addr))
	if got := tr.state("web", "id-web-1"); got != "starting" {
		t.Errorf("after Update, before it listens: got state %q, want starting", got)
	}
	if code, body := tr.get(t, "example.com", "/"); code != http.StatusServiceUnavailable {
		t.Errorf("GET / while the only replica starts: got %d %q, want 503", code, body)
	}

	ln, err := net.Listen("tcp", addr) // the process starts listening
	if err != nil {
		t.Skipf("listening on %s again: %v", addr, err)
	}
	defer ln.Close()
	tr.waitState(t, "web", "id-web-1", "ready")
}

func TestFleetServesAReadyReplica(t *testing.T) {
	tr := newTestRegistry(t)
	tr.Update(replicaOf(t, "web-1", backend(t, "web-1")))
	tr.waitState(t, "web", "id-web-1", "ready")
	if code, body := tr.get(t, "example.com", "/"); code != http.StatusOK || body != "web-1" {
		t.Errorf("GET /: got %d %q, want 200 \"web-1\"", code, body)
	}
}

// With a HEALTHCHECK, Docker's verdict decides, not the TCP gate.
func TestFleetFollowsDockerHealth(t *testing.T) {
	tr := newTestRegistry(t)
	addr := backend(t, "web-1") // listening all along
	steps := []struct {
		health string
		want   string
	}{
		{"starting", "starting"},
		{"healthy", "ready"},
		{"unhealthy", "down"},
		{"healthy", "ready"},
		{"healthy", "ready"},
	}
	for i, s := range steps {
		tr.Update(replicaOf(t, "web-1", addr, withHealth(s.health)))
		if got := tr.state("web", "id-web-1"); got != s.want {
			t.Errorf("step %d, Update with health %q: got state %q, want %q", i, s.health, got, s.want)
		}
	}
}

func TestFleetLifecycle(t *testing.T) {
	tr := newTestRegistry(t)
	r := replicaOf(t, "web-1", backend(t, "web-1"), withHealth("healthy"))
	tr.Update(r)
	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"repeated update", func() { tr.Update(r) }, "ready"},
		{"drain (docker stop)", func() { tr.Drain(r.ID) }, "draining"},
		{"stop (process exited)", func() { tr.Stop(r.ID) }, "down"},
		{"started again, not healthy yet", func() { tr.Update(replicaOf(t, "web-1", r.Address(), withHealth("starting"))) }, "starting"},
		{"healthy again", func() { tr.Update(r) }, "ready"},
		{"paused", func() { tr.Drain(r.ID) }, "draining"},
		{"unpaused", func() { tr.Update(r) }, "ready"},
		{"removed", func() { tr.Remove(r.ID) }, "absent"},
		{"unknown IDs are ignored", func() { tr.Drain("nope"); tr.Stop("nope"); tr.Remove("nope") }, "absent"},
	}
	for _, s := range steps {
		s.do()
		if got := tr.state("web", r.ID); got != s.want {
			t.Errorf("after %s: got state %q, want %q", s.name, got, s.want)
		}
	}
}

// A stopped replica stays in its pool (requests wait for it); a draining or
// stopped one gets no requests.
func TestFleetStoppedReplicaStaysInItsPool(t *testing.T) {
	tr := newTestRegistry(t)
	tr.Update(replicaOf(t, "web-1", backend(t, "web-1"), withHealth("healthy")))
	tr.Update(replicaOf(t, "web-2", backend(t, "web-2"), withHealth("healthy")))
	tr.Stop("id-web-1")
	if got := tr.pools.Get("web").Len(); got != 2 {
		t.Errorf("pool web after Stop: got %d replicas, want 2", got)
	}
	for range 4 {
		if code, body := tr.get(t, "example.com", "/"); code != http.StatusOK || body != "web-2" {
			t.Errorf("GET / with web-1 stopped: got %d %q, want 200 \"web-2\"", code, body)
		}
	}
}

func TestFleetEmptyPoolStillRoutes(t *testing.T) {
	tr := newTestRegistry(t)
	tr.Update(replicaOf(t, "web-1", backend(t, "web-1"), withHealth("healthy"), onRoute("/app")))
	tr.Remove("id-web-1")
	if p := tr.pools.Get("web"); p == nil || p.Len() != 0 {
		t.Fatalf("pool web after its last replica left: got %v, want an empty pool", p)
	}
	if code, body := tr.get(t, "example.com", "/app/x"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /app/x with no replica left: got %d %q, want 503 (the service exists, scaled to 0)", code, body)
	}
	if code, _ := tr.get(t, "example.com", "/other"); code != http.StatusNotFound {
		t.Errorf("GET /other: got %d, want 404 (no service there)", code)
	}
}

func TestFleetRouteFollowsTheLabels(t *testing.T) {
	tr := newTestRegistry(t)
	addr := backend(t, "web-1")
	steps := []struct {
		name    string
		replica discovery.Replica
		lookups map[[2]string]string // host, path -> service ("" none)
	}{
		{
			name:    "host and path",
			replica: replicaOf(t, "web-1", addr, withHealth("healthy"), onRoute("/api", "a.example.com")),
			lookups: map[[2]string]string{
				{"a.example.com", "/api/x"}: "web",
				{"a.example.com", "/"}:      "",
				{"b.example.com", "/api"}:   "",
			},
		},
		{
			name:    "other host, root path",
			replica: replicaOf(t, "web-1", addr, withHealth("healthy"), onRoute("/", "b.example.com")),
			lookups: map[[2]string]string{
				{"b.example.com", "/x"}:   "web",
				{"a.example.com", "/api"}: "",
			},
		},
		{
			name:    "any host",
			replica: replicaOf(t, "web-1", addr, withHealth("healthy")),
			lookups: map[[2]string]string{
				{"a.example.com", "/api"}: "web",
				{"c.example.com", "/"}:    "web",
			},
		},
	}
	for _, s := range steps {
		tr.Update(s.replica)
		for hp, want := range s.lookups {
			if got := tr.routeOf(hp[0], hp[1]); got != want {
				t.Errorf("after %s: Lookup(%q, %q): got %q, want %q", s.name, hp[0], hp[1], got, want)
			}
		}
	}
	if got := tr.state("web", "id-web-1"); got != "ready" {
		t.Errorf("label changes: got state %q, want the replica still ready", got)
	}
}

func TestFleetReplicasOfAServiceShareAPool(t *testing.T) {
	tr := newTestRegistry(t)
	tr.Update(replicaOf(t, "web-1", backend(t, "web-1"), withHealth("healthy")))
	tr.Update(replicaOf(t, "web-2", backend(t, "web-2"), withHealth("healthy")))
	tr.Update(replicaOf(t, "api-1", backend(t, "api-1"), withHealth("healthy"), inService("api"), onRoute("/api")))
	tests := []struct {
		pool string
		want int
	}{
		{"web", 2},
		{"api", 1},
	}
	for _, tt := range tests {
		if got := tr.pools.Get(tt.pool).Len(); got != tt.want {
			t.Errorf("pool %s: got %d replicas, want %d", tt.pool, got, tt.want)
		}
	}
	got := map[string]int{}
	for range 4 {
		_, body := tr.get(t, "example.com", "/")
		got[body]++
	}
	if want := map[string]int{"web-1": 2, "web-2": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("4 requests to /: got %v, want %v", got, want)
	}
	if _, body := tr.get(t, "example.com", "/api/x"); body != "api-1" {
		t.Errorf("GET /api/x: got %q, want api-1", body)
	}
}

func TestFleetReplicaMovesWhenItsServiceChanges(t *testing.T) {
	tr := newTestRegistry(t)
	addr := backend(t, "web-1")
	tr.Update(replicaOf(t, "web-1", addr, withHealth("healthy"), inService("alpha"), onRoute("/a")))
	tr.Update(replicaOf(t, "web-1", addr, withHealth("healthy"), inService("beta"), onRoute("/b")))
	if got := tr.state("alpha", "id-web-1"); got != "absent" {
		t.Errorf("pool alpha after the move: got web-1 %s, want absent", got)
	}
	if got := tr.state("beta", "id-web-1"); got != "ready" {
		t.Errorf("pool beta after the move: got web-1 %s, want ready", got)
	}
	if code, body := tr.get(t, "example.com", "/b"); code != http.StatusOK || body != "web-1" {
		t.Errorf("GET /b: got %d %q, want 200 web-1", code, body)
	}
	if code, _ := tr.get(t, "example.com", "/a"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /a: got %d, want 503 (alpha has no replica left)", code)
	}
}

func TestFleetSync(t *testing.T) {
	tr := newTestRegistry(t)
	addr := backend(t, "any")
	r := func(name string) discovery.Replica { return replicaOf(t, name, addr, withHealth("healthy")) }
	steps := []struct {
		name  string
		input []discovery.Replica
		want  map[string]string // id -> state
	}{
		{"first list", []discovery.Replica{r("web-1"), r("web-2")}, map[string]string{"id-web-1": "ready", "id-web-2": "ready", "id-web-3": "absent"}},
		{"after a reconnect", []discovery.Replica{r("web-2"), r("web-3")}, map[string]string{"id-web-1": "absent", "id-web-2": "ready", "id-web-3": "ready"}},
		{"nothing left", nil, map[string]string{"id-web-1": "absent", "id-web-2": "absent", "id-web-3": "absent"}},
	}
	for _, s := range steps {
		tr.Sync(s.input)
		for id, want := range s.want {
			if got := tr.state("web", id); got != want {
				t.Errorf("after Sync (%s): %s: got %q, want %q", s.name, id, got, want)
			}
		}
	}
	if code, _ := tr.get(t, "example.com", "/"); code != http.StatusServiceUnavailable {
		t.Errorf("GET / after Sync with nothing: got %d, want 503", code)
	}
}

func TestFleetPools(t *testing.T) {
	tr := newTestRegistry(t)
	tr.Update(replicaOf(t, "web-2", "10.0.0.3:8080", withHealth("healthy"), onRoute("/api", "a.example.com", "b.example.com")))
	tr.Update(replicaOf(t, "web-1", "10.0.0.2:8080", withHealth("starting"), onRoute("/api", "a.example.com", "b.example.com")))
	tr.Update(replicaOf(t, "api-1", "10.0.1.2:80", withHealth("unhealthy"), inService("api")))
	got := tr.Pools()
	want := []admin.Pool{
		{Name: "api", Host: "", Path: "/", Policy: "round_robin", Replicas: []admin.Replica{
			{ID: "id-api-1", Name: "api-1", Address: "10.0.1.2:80", State: "starting"},
		}, Queue: admin.Queue{Max: balancer.DefaultQueueMax}},
		{Name: "web", Host: "a.example.com,b.example.com", Path: "/api", Policy: "round_robin", Replicas: []admin.Replica{
			{ID: "id-web-1", Name: "web-1", Address: "10.0.0.2:8080", State: "starting"},
			{ID: "id-web-2", Name: "web-2", Address: "10.0.0.3:8080", State: "ready"},
		}, Queue: admin.Queue{Max: balancer.DefaultQueueMax}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Pools:\n got %+v\nwant %+v", got, want)
	}
}

func TestFleetChangedAndHealthy(t *testing.T) {
	tr := newTestRegistry(t)
	ch := tr.Changed()
	tr.Update(replicaOf(t, "web-1", "10.0.0.2:80", withHealth("starting")))
	select {
	case <-ch:
	default:
		t.Error("Changed: still open after Update, want closed")
	}
	if ok, reason := tr.Healthy(); ok || reason == "" {
		t.Errorf("Healthy before the watcher synced: got %v %q, want false and a reason", ok, reason)
	}
	tr.Sync(nil) // the watcher's first full list
	if ok, reason := tr.Healthy(); !ok || reason != "" {
		t.Errorf("Healthy once synced: got %v %q, want true", ok, reason)
	}
}

// A replica's address can change while it is still starting (a network
// connect/disconnect event during start-up). The readiness gate must then
// probe the new address: the old one may never answer, or may answer for
// another container.
func TestFleetGateFollowsAnAddressChangeWhileStarting(t *testing.T) {
	tr := newTestRegistry(t)
	tr.Update(replicaOf(t, "web-1", refusedAddr(t))) // starting, its gate probing the old address
	if got := tr.state("web", "id-web-1"); got != "starting" {
		t.Fatalf("after Update at an address nobody listens on: got state %q, want starting", got)
	}
	newAddr := backend(t, "web-1")
	tr.Update(replicaOf(t, "web-1", newAddr))
	if got := tr.pools.Get("web").Get("id-web-1").Address(); got != newAddr {
		t.Fatalf("after Update with a new address: got upstream address %s, want %s", got, newAddr)
	}
	tr.waitState(t, "web", "id-web-1", "ready")
}

// When a replica's dlb.service changes and the new service claims the same
// host and path, the old, now empty pool must not keep the route: requests
// must reach the replica, not get 503 from a pool nobody is in.
func TestFleetRenamedServiceKeepsServing(t *testing.T) {
	tr := newTestRegistry(t)
	addr := backend(t, "web-1")
	tr.Update(replicaOf(t, "web-1", addr, withHealth("healthy"), inService("alpha")))
	if code, body := tr.get(t, "example.com", "/"); code != http.StatusOK {
		t.Fatalf("GET / before the rename: got %d %q, want 200", code, body)
	}
	tr.Update(replicaOf(t, "web-1", addr, withHealth("healthy"), inService("beta")))
	if got := tr.state("beta", "id-web-1"); got != "ready" {
		t.Fatalf("after the rename: got web-1 %s in pool beta, want ready", got)
	}
	if code, body := tr.get(t, "example.com", "/"); code != http.StatusOK || body != "web-1" {
		t.Errorf("GET / after dlb.service changed from alpha to beta: got %d %q (route to %q), want 200 \"web-1\" (route to beta)",
			code, body, tr.routeOf("example.com", "/"))
	}
}

// docker stop reports kill, die, then stop: the replica's log says draining,
// then stopped, one line per state change (the stop after the die changes
// nothing).
func TestFleetLogsEachStateChangeOnce(t *testing.T) {
	tr := newTestRegistry(t)
	var buf bytes.Buffer
	tr.log = zerolog.New(&buf)
	r := replicaOf(t, "web-1", backend(t, "web-1"), withHealth("healthy"))
	tr.Update(r)
	buf.Reset()
	tr.Drain(r.ID) // kill
	tr.Drain(r.ID) // a second stop signal
	tr.Stop(r.ID)  // die
	tr.Drain(r.ID) // stop
	tr.Stop(r.ID)  // an inspect that finds it not running
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		got = append(got, fmt.Sprint(m["message"]))
	}
	if want := []string{"replica draining", "replica stopped"}; !slices.Equal(got, want) {
		t.Errorf("log of kill, kill, die, stop, inspect: got %q, want %q", got, want)
	}
	if got := tr.state("web", r.ID); got != "down" {
		t.Errorf("after docker stop: got state %q, want down", got)
	}
}

// TestFleetSettled: settled once the routes are known and no replica is
// still starting; a replica that starts later unsettles it again.
func TestFleetSettled(t *testing.T) {
	tr := newTestRegistry(t)
	if tr.Settled() {
		t.Error("Settled before any sync: want false")
	}
	tr.Sync(nil)
	if !tr.Settled() {
		t.Error("Settled after an empty sync: want true")
	}
	addr := refusedAddr(t)
	tr.Update(replicaOf(t, "web-1", addr))
	if tr.Settled() {
		t.Error("Settled while web-1 starts: want false")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("listening on %s again: %v", addr, err)
	}
	defer ln.Close()
	tr.waitState(t, "web", "id-web-1", "ready")
	if !tr.Settled() {
		t.Error("Settled once web-1 is ready: want true")
	}
}

// A replica's dlb.max_inflight wins over the fleet's default
// (--max-inflight); dlb.queue.* bound its service's queue.
func TestFleetLimitsAndQueue(t *testing.T) {
	router := &proxy.Router{}
	g := New(Options{Router: router, Log: zerolog.Nop(), MaxInflight: balancer.Limit{Max: 4}})
	src := g.Source("docker")
	t.Cleanup(func() {
		for _, p := range g.Pools() {
			for _, r := range p.Replicas {
				g.Remove(r.ID)
			}
		}
	})
	labelled := replicaOf(t, "web-1", "10.0.0.2:80", func(r *discovery.Replica) {
		r.Labels.MaxInflight, r.Labels.MaxInflightSet = balancer.Limit{Auto: true}, true
		r.Labels.QueueMax, r.Labels.QueueTimeout = 50, 3*time.Second
	})
	src.Update(labelled)
	src.Update(replicaOf(t, "web-2", "10.0.0.3:80"))
	pool := g.pools.Get("web")
	tests := []struct {
		id       string
		limit    int64
		adaptive bool
	}{{"id-web-1", 8, true}, {"id-web-2", 4, false}}
	for _, tt := range tests {
		u := pool.Get(tt.id)
		if u.Limit() != tt.limit || u.Adaptive() != tt.adaptive {
			t.Errorf("%s: got limit %d, adaptive %v; want %d, %v", tt.id, u.Limit(), u.Adaptive(), tt.limit, tt.adaptive)
		}
	}
	if pool.QueueMax() != 50 || pool.QueueTimeout() != 3*time.Second {
		t.Errorf("queue: got max %d, timeout %v; want 50, 3s (dlb.queue.max, dlb.queue.timeout)", pool.QueueMax(), pool.QueueTimeout())
	}
}
