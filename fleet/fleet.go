// Package fleet is dlb's control plane: it turns what sources of replicas
// report ("a container started", "is stopping", "died", "is gone") into
// pool and route changes.
//
// # A replica's life
//
// A source (the Docker watcher of package discovery, the Swarm source of
// package discovery/swarm) reports to the Fleet through the discovery.Sink
// that Fleet.Source returns for it:
//
//   - Update: a replica appeared, or changed. A new or restarted replica
//     enters its service's pool as starting; the readiness gate (a TCP
//     connect), its HTTP health check (dlb.health.path) or Docker's
//     HEALTHCHECK admits it as ready. A changed label moves it (dlb.service)
//     or changes its service's route; the routing table is rebuilt only when
//     a route differs.
//   - Drain: its container is being stopped or paused; requests in flight
//     finish, no new ones come.
//   - Stop: its process exited; it stays in its pool, down, so that
//     requests wait for it to start again (docker restart, a restart
//     policy), up to the proxy's queue timeout.
//   - Remove: it is gone, or no longer one of dlb's. Its pool and route stay,
//     answering 503, so that a service with no replica is told apart from an
//     unknown one.
//   - Sync: a full list of the source's replicas (at start and after each
//     reconnect): the source's replicas not in it are removed, the others
//     updated. Replicas of other sources are left alone.
//   - Lost: the source lost its engine; what it reported stays, and the
//     Fleet is not in sync until the source syncs again.
//   - Event: the source is handling one of its engine's events; the
//     Observer hears of it (metrics count them).
//
// The Fleet is in sync (Healthy) while every source is; its routes are
// known (Routed) once every source has synced once. Observers learn of the
// changes through one Observer; the admin API reads the Fleet as its
// admin.Source.
package fleet

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/health"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/rs/zerolog"
)

// Observer is told of the Fleet's changes (metrics, the certificate
// keeper). Its methods are called with the Fleet's lock held, or from a
// readiness probe's goroutine: they must not block, nor call the Fleet.
type Observer interface {
	// ReplicaReady says a replica of service turned ready, sinceEvent after
	// the source's event that announced it.
	ReplicaReady(service string, sinceEvent time.Duration)
	// ReplicaLeft says a replica left its pool for good.
	ReplicaLeft(u *balancer.Upstream)
	// SitesChanged gives every service's hosts and HTTPS labels whenever
	// the routes change.
	SitesChanged(sites []certs.Site)
	// SourceEvent says a source is handling one of its engine's events
	// (for Docker, the action: "start", "die", "health_status: healthy"...).
	SourceEvent(source, action string)
}

// Releaser is what the Fleet needs of a proxy: to be told that a replica
// left rotation, with removed true when its process exited or it is gone
// (its connections, even those being made, are dropped) and false when it
// drains or moved (its idle connections are closed, those in flight
// finish). *proxy.Proxy is one; a TCP proxy can be another.
type Releaser interface {
	Release(u *balancer.Upstream, removed bool)
}

var _ Releaser = (*proxy.Proxy)(nil)

// Options configure a Fleet. The zero value works: a Fleet of its own
// pools and router, observed by no one.
type Options struct {
	// Router gets the routes the replicas' labels ask for; nil: a new one
	// (see Fleet.Router).
	Router *proxy.Router
	// Proxy, if set, is told when a replica leaves rotation, so that it
	// drops (or lets finish) its connections to it.
	Proxy Releaser
	// Pools holds the pools; nil: the Fleet's own. Give it to share the
	// pools with a reader made before the Fleet (metrics).
	Pools *balancer.Pools
	// Observer, if set, is told of the changes.
	Observer Observer
	// Log gets a line per state change of a replica, the warnings about
	// labels that disagree, and a line when a service starts and stops
	// shedding requests. The zero value logs nothing.
	Log zerolog.Logger
	// MaxInflight is the limit of a replica whose dlb.max_inflight label is
	// absent (--max-inflight); the zero value is no limit.
	MaxInflight balancer.Limit
}

// Fleet keeps the pools and routes that the replicas of every source ask
// for. Create one with New; its methods are safe for concurrent use.
type Fleet struct {
	pools    *balancer.Pools
	router   *proxy.Router
	proxy    Releaser
	gate     *health.Gate
	checker  *health.Checker
	observer Observer
	log      zerolog.Logger
	limit    balancer.Limit // Options.MaxInflight
	listed   atomic.Bool    // every source has synced once: the routes are known

	mu       sync.Mutex
	sources  map[string]*sourceState       // by source name
	replicas map[string]placed             // by replica (container) ID
	services map[string]*service           // by service (pool) name
	changed  atomic.Pointer[chan struct{}] // closed at the next change
}

// sourceState is what the Fleet knows of a source's sync.
type sourceState struct {
	synced bool // synced, and not lost since
	once   bool // synced at least once
}

// placed is a replica, the pool it is in and the source that reported it.
type placed struct {
	r      discovery.Replica
	pool   *balancer.Pool
	source string
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
	return proxy.Route{Service: r.Service, Hosts: r.Hosts, Path: r.Path, RouteOptions: r.Labels.RouteOptions, Pool: pool}
}

var _ admin.Source = (*Fleet)(nil)

// New returns a Fleet with no replica and no source.
func New(o Options) *Fleet {
	f := &Fleet{pools: o.Pools, router: o.Router, proxy: o.Proxy, observer: o.Observer, log: o.Log, limit: o.MaxInflight,
		gate: &health.Gate{}, checker: &health.Checker{},
		sources: map[string]*sourceState{}, replicas: map[string]placed{}, services: map[string]*service{}}
	if f.pools == nil {
		f.pools = &balancer.Pools{}
	}
	if f.router == nil {
		f.router = &proxy.Router{}
	}
	ch := make(chan struct{})
	f.changed.Store(&ch)
	f.checker.OnChange = f.notify
	return f
}

// Router is the router whose routes the Fleet keeps.
func (f *Fleet) Router() *proxy.Router { return f.router }

// Source registers a source of replicas by name and returns the Sink it
// reports to. Until it syncs, the Fleet is not in sync.
func (f *Fleet) Source(name string) discovery.Sink {
	f.mu.Lock()
	f.source(name)
	f.listed.Store(f.allSynced(func(s *sourceState) bool { return s.once }))
	f.mu.Unlock()
	return source{f: f, name: name}
}

// source is the state of the named source, registered if new.
func (f *Fleet) source(name string) *sourceState {
	s := f.sources[name]
	if s == nil {
		s = &sourceState{}
		f.sources[name] = s
	}
	return s
}

// allSynced reports whether there is a source and every one is ok.
func (f *Fleet) allSynced(ok func(*sourceState) bool) bool {
	for _, s := range f.sources {
		if !ok(s) {
			return false
		}
	}
	return len(f.sources) > 0
}

// source is one source's view of the Fleet: the discovery.Sink it reports to.
type source struct {
	f    *Fleet
	name string
}

var _ discovery.Sink = source{}

func (s source) Sync(rs []discovery.Replica) { s.f.Sync(s.name, rs) }
func (s source) Update(r discovery.Replica)  { s.f.Update(s.name, r) }
func (s source) Drain(id string)             { s.f.Drain(id) }
func (s source) Stop(id string)              { s.f.Stop(id) }
func (s source) Remove(id string)            { s.f.Remove(id) }
func (s source) Lost()                       { s.f.Lost(s.name) }
func (s source) Event(action string) {
	if s.f.observer != nil {
		s.f.observer.SourceEvent(s.name, action)
	}
}

// Sync makes the pools hold exactly the given replicas of source: its
// replicas not among them are removed, those of other sources stay.
func (f *Fleet) Sync(source string, rs []discovery.Replica) {
	f.mu.Lock()
	keep := make(map[string]bool, len(rs))
	for _, r := range rs {
		keep[r.ID] = true
	}
	for id, p := range f.replicas {
		if p.source == source && !keep[id] {
			f.remove(id)
		}
	}
	for _, r := range rs {
		f.update(source, r)
	}
	s := f.source(source)
	s.synced, s.once = true, true
	f.listed.Store(f.allSynced(func(s *sourceState) bool { return s.once }))
	f.mu.Unlock()
	f.notify()
}

// Lost says source lost its engine: its replicas stay as they are, but the
// Fleet is not in sync until the source syncs again.
func (f *Fleet) Lost(source string) {
	f.mu.Lock()
	f.source(source).synced = false
	f.mu.Unlock()
	f.notify()
}

// Routed reports whether every source has synced once, so that the routes
// are known: until then a request for an unknown host may be for a replica
// not yet listed.
func (f *Fleet) Routed() bool { return f.listed.Load() }

// Settled reports whether the routes are known and no replica is still
// starting (waiting for its first check): a dlb that takes the sockets over
// from another then serves from its first request with the pools the old
// one has.
func (f *Fleet) Settled() bool {
	if !f.Routed() {
		return false
	}
	for _, p := range f.pools.All() {
		for _, u := range p.Upstreams() {
			if u.State() == balancer.Starting {
				return false
			}
		}
	}
	return true
}

// Update adds a replica of source or applies a change to it.
func (f *Fleet) Update(source string, r discovery.Replica) {
	f.mu.Lock()
	f.update(source, r)
	f.mu.Unlock()
	f.notify()
}

// Drain stops new requests to a replica; those in flight finish.
func (f *Fleet) Drain(id string) { f.retire(id, false) }

// Stop marks a replica whose process exited as down; it stays in its pool
// until it is started again or removed, so requests wait for it.
func (f *Fleet) Stop(id string) { f.retire(id, true) }

// retire takes a replica out of rotation without removing it: draining
// while its process runs, down once it exited (its transport is dropped).
func (f *Fleet) retire(id string, exited bool) {
	f.mu.Lock()
	p, ok := f.replicas[id]
	var u *balancer.Upstream
	if ok {
		u = p.pool.Get(id)
	}
	// One line per state change: docker stop reports kill, die and stop,
	// and a stop that comes after the die changes nothing.
	if u == nil || !p.r.Running || !exited && u.State() == balancer.Draining {
		f.mu.Unlock()
		return
	}
	f.unwatch(id)
	msg := "replica draining"
	if exited {
		p.pool.Stop(id)
		p.r.Running = false
		f.replicas[id] = p
		msg = "replica stopped"
	} else {
		p.pool.Drain(id)
	}
	f.release(u, exited)
	f.log.Info().Str("service", p.pool.Name()).Str("replica", p.r.Name).Int("ready", p.pool.ReadyCount()).Msg(msg)
	f.mu.Unlock()
	f.notify()
}

// Remove takes a replica out of its pool. The pool stays, so that its
// requests get 503 rather than 404 while it has no replica.
func (f *Fleet) Remove(id string) {
	f.mu.Lock()
	f.remove(id)
	f.mu.Unlock()
	f.notify()
}

func (f *Fleet) remove(id string) {
	p, ok := f.replicas[id]
	if !ok {
		return
	}
	delete(f.replicas, id)
	f.unwatch(id)
	u := p.pool.Get(id)
	p.pool.Remove(id)
	if u != nil {
		f.release(u, true)
		if f.observer != nil {
			f.observer.ReplicaLeft(u)
		}
	}
	f.log.Info().Str("service", p.pool.Name()).Str("replica", p.r.Name).Int("ready", p.pool.ReadyCount()).Msg("replica removed")
}

func (f *Fleet) update(source string, r discovery.Replica) {
	old, known := f.replicas[r.ID]
	if known && old.pool.Name() != r.Service {
		f.remove(r.ID) // its dlb.service label changed: move it
		known = false
	}
	pool := f.pools.GetOrCreate(r.Service)
	svc := f.services[r.Service]
	if svc == nil {
		svc = &service{pool: pool}
		f.services[r.Service] = svc
		f.logShedding(pool)
	}
	f.setRoute(svc, r)
	before := pool.Get(r.ID)
	moved := known && old.r.Address() != r.Address()
	// A replica at a new address must show again that it answers there.
	wasServing := known && !moved && old.r.Serving() && before != nil && before.State() != balancer.Draining
	limit := f.limit
	if r.Labels.MaxInflightSet {
		limit = r.Labels.MaxInflight
	}
	pool.Put(balancer.Member{ID: r.ID, Name: r.Name, Address: r.Address(), Weight: r.Labels.Weight, Limit: limit})
	f.replicas[r.ID] = placed{r: r, pool: pool, source: source}
	if moved && before != nil {
		f.release(before, false)
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
		ev := f.log.Info().Str("service", r.Service).Str("replica", r.Name).Str("address", r.Address())
		if !r.EventTime.IsZero() {
			ev = ev.Dur("since_event_ms", time.Since(r.EventTime))
		}
		ev.Msg("replica starting")
		f.admit(r, pool)
	case r.Health == "healthy":
		f.markReady(r, pool)
	}
}

// markReady lets a replica that showed it can answer take requests, and
// logs, when it was not ready before, how long that took since the Docker
// event that announced it.
func (f *Fleet) markReady(r discovery.Replica, pool *balancer.Pool) {
	u := pool.Get(r.ID)
	if u == nil || u.State() == balancer.Ready {
		return
	}
	u.SetAnnounced(r.EventTime)
	if !pool.MarkReady(r.ID) || u.State() != balancer.Ready {
		return
	}
	ev := f.log.Info().Str("service", r.Service).Str("replica", r.Name)
	if !r.EventTime.IsZero() {
		since := time.Since(r.EventTime)
		ev = ev.Dur("since_event_ms", since)
		if f.observer != nil {
			f.observer.ReplicaReady(r.Service, since)
		}
	}
	ev.Msg("replica ready")
}

// admit lets a started replica into its pool once it can answer: when Docker
// says it is healthy if it has a HEALTHCHECK, else when it accepts a TCP
// connection on its port.
func (f *Fleet) admit(r discovery.Replica, pool *balancer.Pool) {
	if u := pool.Get(r.ID); u != nil {
		u.SetAnnounced(r.EventTime)
	}
	if r.Labels.HealthPath != "" {
		hc := health.Check{Path: r.Labels.HealthPath, Interval: r.Labels.HealthInterval,
			Timeout: r.Labels.HealthTimeout, Admit: r.Health == ""}
		if len(r.Hosts) > 0 && !strings.HasPrefix(r.Hosts[0], "*") {
			hc.Host = r.Hosts[0]
		}
		f.checker.Watch(pool, pool.Get(r.ID), hc)
	}
	if r.Health != "" {
		if r.Health == "healthy" {
			f.markReady(r, pool)
		}
		return
	}
	if r.Labels.HealthPath != "" {
		return // the first passing HTTP check admits it
	}
	f.gate.Start(r.ID, r.Address(), func() {
		f.markReady(r, pool)
		f.notify()
	})
}

// release tells the proxy that u left rotation: its connections are
// dropped when its process exited, else those in flight may finish.
func (f *Fleet) release(u *balancer.Upstream, exited bool) {
	if f.proxy != nil {
		f.proxy.Release(u, exited)
	}
}

// unwatch stops the readiness probe and health checks of a replica.
func (f *Fleet) unwatch(id string) {
	f.gate.Stop(id)
	f.checker.Unwatch(id)
}

// setRoute records the route a replica's labels ask for, and rebuilds the
// routing table when it differs from the service's current one.
func (f *Fleet) setRoute(svc *service, r discovery.Replica) {
	want := routeOf(r, svc.pool)
	site := certs.Site{Hosts: r.Hosts, Off: r.Labels.TLSOff, HSTS: r.Labels.HSTS}
	if r.Labels.Balance != "" || svc.from == "" {
		// discovery accepts only balancer.PolicyNames: the policy exists.
		svc.pool.SetPolicy(r.Labels.Balance)
	}
	if r.Labels.QueueMax != 0 || r.Labels.QueueTimeout != 0 || svc.from == "" || svc.from == r.ID {
		svc.pool.SetQueue(r.Labels.QueueMax, r.Labels.QueueTimeout)
	}
	if svc.from != "" && svc.route.Same(want) && site.Off == svc.site.Off && site.HSTS == svc.site.HSTS {
		return
	}
	if other, ok := f.replicas[svc.from]; ok && svc.from != r.ID {
		f.log.Warn().Str("service", r.Service).
			Msgf("replicas disagree on the route: %s says host %q path %q, %s says host %q path %q (or other dlb.* route labels differ); using %s's (give all replicas of a service the same labels)",
				other.r.Name, strings.Join(svc.route.Hosts, ","), svc.route.Path, r.Name, strings.Join(r.Hosts, ","), r.Path, r.Name)
	}
	svc.route, svc.site, svc.from = want, site, r.ID
	f.rebuildRoutes()
}

func (f *Fleet) rebuildRoutes() {
	routes := make([]proxy.Route, 0, len(f.services))
	for _, s := range f.services {
		routes = append(routes, s.route)
	}
	for _, c := range f.router.Set(routes) {
		f.log.Warn().Msg(c)
	}
	if f.observer != nil {
		sites := make([]certs.Site, 0, len(f.services))
		for _, s := range f.services {
			sites = append(sites, s.site)
		}
		f.observer.SitesChanged(sites)
	}
}

// notify wakes everyone waiting on Changed.
func (f *Fleet) notify() {
	ch := make(chan struct{})
	old := f.changed.Swap(&ch)
	close(*old)
}

// Changed returns a channel closed at the next change.
func (f *Fleet) Changed() <-chan struct{} { return *f.changed.Load() }

// Healthy reports whether every source is in sync with its engine.
func (f *Fleet) Healthy() (bool, string) {
	f.mu.Lock()
	synced := f.allSynced(func(s *sourceState) bool { return s.synced })
	f.mu.Unlock()
	if synced {
		return true, ""
	}
	return false, "not in sync with Docker: waiting for the engine (see dlb's log)"
}

// Pools returns the admin view of every pool.
func (f *Fleet) Pools() []admin.Pool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]admin.Pool, 0, len(f.services))
	for _, p := range f.pools.All() {
		svc := f.services[p.Name()]
		ap := admin.Pool{Name: p.Name(), Policy: p.Policy(), Path: "/", Replicas: []admin.Replica{}}
		if svc != nil {
			ap.Host, ap.Path = strings.Join(svc.route.Hosts, ","), svc.route.Path
		}
		for _, u := range p.Upstreams() {
			ap.Replicas = append(ap.Replicas, admin.Replica{
				ID: u.ID(), Name: u.Name(), Address: u.Address(), State: u.State().String(),
				InFlight: u.InFlight(), Requests: u.Requests(), Failures: u.Failures(),
				Limit: u.Limit(), Adaptive: u.Adaptive(),
			})
		}
		st := p.QueueStats()
		ap.Queue = admin.Queue{Queued: st.Queued, Max: st.Max, Shed: st.Shed, TimedOut: st.TimedOut, Shedding: p.Shedding(),
			ArrivalPerS: st.Arrival, DrainPerS: st.Drain, PerReplicaPerS: st.PerReplica, ReplicasNeeded: st.Needed}
		if st.Served > 0 {
			ap.Queue.WaitMS = float64(st.Waited.Microseconds()) / 1000 / float64(st.Served)
		}
		out = append(out, ap)
	}
	return out
}

// logShedding logs when pool starts shedding requests (its queue is full,
// or they waited their timeout) and when it stops (it shed none for a
// while): one line each, with the figures a user needs to scale the
// service.
func (f *Fleet) logShedding(pool *balancer.Pool) {
	pool.OnShedding(func(shedding bool) {
		st := pool.QueueStats()
		if shedding {
			ev := f.log.Warn().Str("service", pool.Name()).Int("queued", st.Queued).Int("queue_max", st.Max).Int("ready", pool.ReadyCount())
			if st.Needed > 0 {
				ev = ev.Int("replicas_needed", st.Needed)
			}
			ev.Msg("service over capacity: shedding requests with 503 (its queue is full, or no replica had room in time); scale it out")
			return
		}
		f.log.Info().Str("service", pool.Name()).Int64("shed_total", st.Shed).Msg("service no longer shedding: it has shed no request for a while")
	})
}
