package fleet

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/discovery"
)

// A source's resync drops its replicas that are gone, and only those: a
// second source's replicas of the same service stay.
func TestFleetSourcesSyncApart(t *testing.T) {
	tr := newTestRegistry(t)
	swarm := tr.Source("swarm")
	addr := backend(t, "any")
	r := func(name string) discovery.Replica { return replicaOf(t, name, addr, withHealth("healthy")) }
	steps := []struct {
		name string
		do   func()
		want map[string]string // id -> state in pool web
	}{
		{"docker lists web-1 and web-2", func() { tr.Sync([]discovery.Replica{r("web-1"), r("web-2")}) },
			map[string]string{"id-web-1": "ready", "id-web-2": "ready"}},
		{"swarm lists task-1", func() { swarm.Sync([]discovery.Replica{r("task-1")}) },
			map[string]string{"id-web-1": "ready", "id-web-2": "ready", "id-task-1": "ready"}},
		{"docker resyncs without web-1", func() { tr.Sync([]discovery.Replica{r("web-2")}) },
			map[string]string{"id-web-1": "absent", "id-web-2": "ready", "id-task-1": "ready"}},
		{"swarm resyncs with nothing", func() { swarm.Sync(nil) },
			map[string]string{"id-web-2": "ready", "id-task-1": "absent"}},
		{"swarm adds task-2 by event", func() { swarm.Update(r("task-2")) },
			map[string]string{"id-web-2": "ready", "id-task-2": "ready"}},
		{"docker resyncs with nothing", func() { tr.Sync(nil) },
			map[string]string{"id-web-2": "absent", "id-task-2": "ready"}},
	}
	for _, s := range steps {
		s.do()
		for id, want := range s.want {
			if got := tr.state("web", id); got != want {
				t.Errorf("after %s: %s: got %q, want %q", s.name, id, got, want)
			}
		}
	}
}

// The fleet is in sync while every source is; its routes are known once
// every source has synced once.
func TestFleetHealthyNeedsEverySource(t *testing.T) {
	tr := newTestRegistry(t)
	check := func(step string, wantHealthy, wantRouted bool) {
		t.Helper()
		if ok, reason := tr.Healthy(); ok != wantHealthy || ok != (reason == "") {
			t.Errorf("%s: Healthy got %v %q, want %v (and a reason when false)", step, ok, reason, wantHealthy)
		}
		if got := tr.Routed(); got != wantRouted {
			t.Errorf("%s: Routed got %v, want %v", step, got, wantRouted)
		}
	}
	check("before any sync", false, false)
	swarm := tr.Source("swarm")
	tr.Sync(nil)
	check("docker synced, swarm not yet", false, false)
	swarm.Sync(nil)
	check("both synced", true, true)
	swarm.Lost()
	check("swarm lost its engine", false, true)
	swarm.Sync(nil)
	check("swarm synced again", true, true)
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu     sync.Mutex
	ready  []string
	left   []string
	sites  [][]string // hosts of each site, per call
	events []string   // "source action"
}

func (o *recorder) ReplicaReady(service string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ready = append(o.ready, service)
}

func (o *recorder) ReplicaLeft(u *balancer.Upstream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.left = append(o.left, u.Name())
}

func (o *recorder) SourceEvent(source, action string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, source+" "+action)
}

func (o *recorder) SitesChanged(sites []certs.Site) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var hosts []string
	for _, s := range sites {
		hosts = append(hosts, s.Hosts...)
	}
	o.sites = append(o.sites, hosts)
}

// The Observer hears of a replica turning ready, of the routes' hosts, and
// of a replica leaving; a drain or stop is no leaving.
func TestFleetObserver(t *testing.T) {
	var o recorder
	f := New(Options{Observer: &o})
	src := f.Source("docker")
	src.Event("start")
	r := replicaOf(t, "web-1", backend(t, "web-1"), withHealth("healthy"), onRoute("/", "a.example.com"))
	r.EventTime = time.Now()
	src.Update(r)
	src.Drain(r.ID)
	src.Stop(r.ID)
	o.mu.Lock()
	left := slices.Clone(o.left)
	o.mu.Unlock()
	if len(left) != 0 {
		t.Errorf("after drain and stop: ReplicaLeft got %q, want none", left)
	}
	src.Remove(r.ID)
	o.mu.Lock()
	defer o.mu.Unlock()
	if want := []string{"web"}; !slices.Equal(o.ready, want) {
		t.Errorf("ReplicaReady got %q, want %q", o.ready, want)
	}
	if want := []string{"web-1"}; !slices.Equal(o.left, want) {
		t.Errorf("ReplicaLeft got %q, want %q", o.left, want)
	}
	if want := []string{"docker start"}; !slices.Equal(o.events, want) {
		t.Errorf("SourceEvent got %q, want %q", o.events, want)
	}
	if len(o.sites) != 1 || !slices.Equal(o.sites[0], []string{"a.example.com"}) {
		t.Errorf("SitesChanged got %q, want one call with [a.example.com]", o.sites)
	}
}
