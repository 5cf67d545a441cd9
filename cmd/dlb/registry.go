package main

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/rs/zerolog"
)

// registry turns the watcher's replicas into pools and routes: it is the
// discovery.Sink, and the admin API's Source.
type registry struct {
	pools   balancer.Pools
	router  *proxy.Router
	proxy   *proxy.Proxy
	gate    *proxy.Gate
	checker *proxy.Checker
	log     zerolog.Logger
	synced  func() bool
	listed  atomic.Bool              // a full list has been synced once: the routes are known
	left    func(*balancer.Upstream) // if set, told of each replica that left its pool
	// ready, if set, is told how long after its Docker event each replica
	// turned ready.
	ready func(service string, sinceEvent time.Duration)
	// sites, if set, is told every service's hosts and HTTPS labels
	// whenever the routes change.
	sites func([]certs.Site)

	mu       sync.Mutex
	replicas map[string]placed             // by container ID
	services map[string]*service           // by service (pool) name
	changed  atomic.Pointer[chan struct{}] // closed at the next change
}

// placed is a replica and the pool it is in.
type placed struct {
	r    discovery.Replica
	pool *balancer.Pool
}

// service is a pool and the route to it, as its replicas' labels say.
type service struct {
	pool  *balancer.Pool
	route proxy.Route
	site  certs.Site // its HTTPS labels (dlb.tls, dlb.tls.hsts), from the same replica
	from  string     // ID of the container whose labels set the route
}

// routeOf is the route a replica's labels ask for.
func routeOf(r discovery.Replica, pool *balancer.Pool) proxy.Route {
	l := r.Labels
	return proxy.Route{
		Service: r.Service, Hosts: r.Hosts, Path: r.Path, StripPath: l.StripPath,
		Sticky: l.Sticky, StickyCookie: l.StickyCookie, HashHeader: l.HashHeader,
		Scheme: l.Scheme, MaxBody: l.MaxBody, ResponseHeaderTimeout: l.ResponseHeaderTimeout, Pool: pool,
	}
}

func sameRoute(a, b proxy.Route) bool {
	return slices.Equal(a.Hosts, b.Hosts) && a.Path == b.Path && a.StripPath == b.StripPath &&
		a.Sticky == b.Sticky && a.StickyCookie == b.StickyCookie && a.HashHeader == b.HashHeader &&
		a.Scheme == b.Scheme && a.MaxBody == b.MaxBody && a.ResponseHeaderTimeout == b.ResponseHeaderTimeout && a.Pool == b.Pool
}

var _ discovery.Sink = (*registry)(nil)
var _ admin.Source = (*registry)(nil)

func newRegistry(router *proxy.Router, px *proxy.Proxy, log zerolog.Logger) *registry {
	g := &registry{router: router, proxy: px, log: log, gate: &proxy.Gate{}, checker: &proxy.Checker{},
		replicas: map[string]placed{}, services: map[string]*service{}}
	ch := make(chan struct{})
	g.changed.Store(&ch)
	g.checker.OnChange = g.notify
	g.synced = func() bool { return false }
	return g
}

// Sync makes the pools hold exactly the given replicas.
func (g *registry) Sync(rs []discovery.Replica) {
	g.mu.Lock()
	keep := make(map[string]bool, len(rs))
	for _, r := range rs {
		keep[r.ID] = true
	}
	for id := range g.replicas {
		if !keep[id] {
			g.remove(id)
		}
	}
	for _, r := range rs {
		g.update(r)
	}
	g.listed.Store(true)
	g.mu.Unlock()
	g.notify()
}

// Update adds a replica or applies a change to it.
func (g *registry) Update(r discovery.Replica) {
	g.mu.Lock()
	g.update(r)
	g.mu.Unlock()
	g.notify()
}

// Drain stops new requests to a replica; those in flight finish.
func (g *registry) Drain(id string) { g.retire(id, false) }

// Stop marks a replica whose process exited as down; it stays in its pool
// until it is started again or removed, so requests wait for it.
func (g *registry) Stop(id string) { g.retire(id, true) }

// retire takes a replica out of rotation without removing it: draining
// while its process runs, down once it exited (its transport is dropped).
func (g *registry) retire(id string, exited bool) {
	g.mu.Lock()
	p, ok := g.replicas[id]
	var u *balancer.Upstream
	if ok {
		u = p.pool.Get(id)
	}
	// One line per state change: docker stop reports kill, die and stop,
	// and a stop that comes after the die changes nothing.
	if u == nil || !p.r.Running || !exited && u.State() == balancer.Draining {
		g.mu.Unlock()
		return
	}
	g.unwatch(id)
	msg := "replica draining"
	if exited {
		p.pool.Stop(id)
		p.r.Running = false
		g.replicas[id] = p
		msg = "replica stopped"
	} else {
		p.pool.Drain(id)
	}
	g.proxy.Release(u, exited)
	g.log.Info().Str("service", p.pool.Name()).Str("replica", p.r.Name).Int("ready", p.pool.ReadyCount()).Msg(msg)
	g.mu.Unlock()
	g.notify()
}

// Remove takes a replica out of its pool. The pool stays, so that its
// requests get 503 rather than 404 while it has no replica.
func (g *registry) Remove(id string) {
	g.mu.Lock()
	g.remove(id)
	g.mu.Unlock()
	g.notify()
}

func (g *registry) remove(id string) {
	p, ok := g.replicas[id]
	if !ok {
		return
	}
	delete(g.replicas, id)
	g.unwatch(id)
	u := p.pool.Get(id)
	p.pool.Remove(id)
	if u != nil {
		g.proxy.Release(u, true)
		if g.left != nil {
			g.left(u)
		}
	}
	g.log.Info().Str("service", p.pool.Name()).Str("replica", p.r.Name).Int("ready", p.pool.ReadyCount()).Msg("replica removed")
}

func (g *registry) update(r discovery.Replica) {
	old, known := g.replicas[r.ID]
	if known && old.pool.Name() != r.Service {
		g.remove(r.ID) // its dlb.service label changed: move it
		known = false
	}
	pool := g.pools.GetOrCreate(r.Service)
	svc := g.services[r.Service]
	if svc == nil {
		svc = &service{pool: pool}
		g.services[r.Service] = svc
	}
	g.setRoute(svc, r)
	before := pool.Get(r.ID)
	moved := known && old.r.Address() != r.Address()
	// A replica at a new address must show again that it answers there.
	wasServing := known && !moved && old.r.Serving() && before != nil && before.State() != balancer.Draining
	pool.Put(balancer.Member{ID: r.ID, Name: r.Name, Address: r.Address(), Weight: r.Labels.Weight})
	g.replicas[r.ID] = placed{r: r, pool: pool}
	if moved && before != nil {
		g.proxy.Release(before, false)
	}

	// Docker's HEALTHCHECK, when the container has one, decides readiness.
	if r.Health != "" {
		pool.SetHealth(r.ID, balancer.CheckDocker, r.Health != "unhealthy")
	}
	switch {
	case !wasServing:
		if known {
			pool.Restart(r.ID)
			// A restarted container starts afresh: no verdict of the
			// old process holds.
			pool.SetHealth(r.ID, balancer.CheckPassive, true)
			pool.SetHealth(r.ID, balancer.CheckActive, true)
		}
		ev := g.log.Info().Str("service", r.Service).Str("replica", r.Name).Str("address", r.Address())
		if !r.EventTime.IsZero() {
			ev = ev.Dur("since_event_ms", time.Since(r.EventTime))
		}
		ev.Msg("replica starting")
		g.admit(r, pool)
	case r.Health == "healthy":
		g.markReady(r, pool)
	}
}

// markReady lets a replica that showed it can answer take requests, and
// logs, when it was not ready before, how long that took since the Docker
// event that announced it.
func (g *registry) markReady(r discovery.Replica, pool *balancer.Pool) {
	u := pool.Get(r.ID)
	if u == nil || u.State() == balancer.Ready {
		return
	}
	u.SetAnnounced(r.EventTime)
	if !pool.MarkReady(r.ID) || u.State() != balancer.Ready {
		return
	}
	ev := g.log.Info().Str("service", r.Service).Str("replica", r.Name)
	if !r.EventTime.IsZero() {
		since := time.Since(r.EventTime)
		ev = ev.Dur("since_event_ms", since)
		if g.ready != nil {
			g.ready(r.Service, since)
		}
	}
	ev.Msg("replica ready")
}

// admit lets a started replica into its pool once it can answer: when Docker
// says it is healthy if it has a HEALTHCHECK, else when it accepts a TCP
// connection on its port.
func (g *registry) admit(r discovery.Replica, pool *balancer.Pool) {
	if u := pool.Get(r.ID); u != nil {
		u.SetAnnounced(r.EventTime)
	}
	if r.Labels.HealthPath != "" {
		hc := proxy.HealthCheck{Path: r.Labels.HealthPath, Interval: r.Labels.HealthInterval,
			Timeout: r.Labels.HealthTimeout, Admit: r.Health == ""}
		if len(r.Hosts) > 0 && !strings.HasPrefix(r.Hosts[0], "*") {
			hc.Host = r.Hosts[0]
		}
		g.checker.Watch(pool, pool.Get(r.ID), hc)
	}
	if r.Health != "" {
		if r.Health == "healthy" {
			g.markReady(r, pool)
		}
		return
	}
	if r.Labels.HealthPath != "" {
		return // the first passing HTTP check admits it
	}
	g.gate.Start(r.ID, r.Address(), func() {
		g.markReady(r, pool)
		g.notify()
	})
}

// unwatch stops the readiness probe and health checks of a replica.
func (g *registry) unwatch(id string) {
	g.gate.Stop(id)
	g.checker.Unwatch(id)
}

// setRoute records the route a replica's labels ask for, and rebuilds the
// routing table when it differs from the service's current one.
func (g *registry) setRoute(svc *service, r discovery.Replica) {
	want := routeOf(r, svc.pool)
	site := certs.Site{Hosts: r.Hosts, Off: r.Labels.TLSOff, HSTS: r.Labels.HSTS}
	if r.Labels.Balance != "" || svc.from == "" {
		if !svc.pool.SetPolicy(r.Labels.Balance) {
			g.log.Warn().Str("service", r.Service).Str("replica", r.Name).
				Msgf("label %s=%q: this dlb does not implement that policy; keeping %s", discovery.LabelBalance, r.Labels.Balance, svc.pool.Policy())
		}
	}
	if svc.from != "" && sameRoute(svc.route, want) && site.Off == svc.site.Off && site.HSTS == svc.site.HSTS {
		return
	}
	if other, ok := g.replicas[svc.from]; ok && svc.from != r.ID {
		g.log.Warn().Str("service", r.Service).
			Msgf("replicas disagree on the route: %s says host %q path %q, %s says host %q path %q (or other dlb.* route labels differ); using %s's (give all replicas of a service the same labels)",
				other.r.Name, strings.Join(svc.route.Hosts, ","), svc.route.Path, r.Name, strings.Join(r.Hosts, ","), r.Path, r.Name)
	}
	svc.route, svc.site, svc.from = want, site, r.ID
	g.rebuildRoutes()
}

func (g *registry) rebuildRoutes() {
	routes := make([]proxy.Route, 0, len(g.services))
	for _, s := range g.services {
		routes = append(routes, s.route)
	}
	for _, c := range g.router.Set(routes) {
		g.log.Warn().Msg(c)
	}
	if g.sites != nil {
		sites := make([]certs.Site, 0, len(g.services))
		for _, s := range g.services {
			sites = append(sites, s.site)
		}
		g.sites(sites)
	}
}

// notify wakes everyone waiting on Changed.
func (g *registry) notify() {
	ch := make(chan struct{})
	old := g.changed.Swap(&ch)
	close(*old)
}

// Changed returns a channel closed at the next change.
func (g *registry) Changed() <-chan struct{} { return *g.changed.Load() }

// Healthy reports whether the watcher is in sync with Docker.
func (g *registry) Healthy() (bool, string) {
	if g.synced() {
		return true, ""
	}
	return false, "not in sync with Docker: waiting for the engine (see dlb's log)"
}

// Pools returns the admin view of every pool.
func (g *registry) Pools() []admin.Pool {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]admin.Pool, 0, len(g.services))
	for _, p := range g.pools.All() {
		svc := g.services[p.Name()]
		ap := admin.Pool{Name: p.Name(), Policy: p.Policy(), Path: "/", Replicas: []admin.Replica{}}
		if svc != nil {
			ap.Host, ap.Path = strings.Join(svc.route.Hosts, ","), svc.route.Path
		}
		for _, u := range p.Upstreams() {
			ap.Replicas = append(ap.Replicas, admin.Replica{
				ID: u.ID(), Name: u.Name(), Address: u.Address(), State: u.State().String(),
				InFlight: u.InFlight(), Requests: u.Requests(), Failures: u.Failures(),
			})
		}
		out = append(out, ap)
	}
	return out
}
