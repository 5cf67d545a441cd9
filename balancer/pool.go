package balancer

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Member describes an upstream to add to a pool or to update in it.
type Member struct {
	ID      string // stable key; a change of address keeps the counters
	Name    string
	Address string // host:port
	Weight  int    // relative share for weighted policies; below 1 means 1
	Limit   Limit  // how many requests it may have in flight (zero: no limit)
}

// Check names a source of health verdicts. An upstream is Down while any
// source says it is unhealthy; each source is recorded on its own so that one
// source passing cannot hide another failing.
type Check uint8

const (
	// CheckDocker is the container's own HEALTHCHECK as Docker reports it.
	CheckDocker Check = 1 << iota
	// CheckActive is dlb's active HTTP check (label dlb.health.path).
	CheckActive
	// CheckPassive is passive ejection after refused or reset connections.
	CheckPassive
)

type lifecycle uint8

const (
	lifeStarting lifecycle = iota
	lifeRunning
	lifeDraining
	lifeStopped
)

// member is the pool's private bookkeeping for one upstream.
type member struct {
	up        *Upstream
	life      lifecycle
	unhealthy Check // bit set per failing check
}

func (m *member) state() State {
	switch {
	case m.life == lifeDraining:
		return Draining
	case m.life == lifeStarting:
		return Starting
	case m.life == lifeStopped, m.unhealthy != 0:
		return Down
	}
	return Ready
}

// snapshot is an immutable view of a pool, swapped atomically on change so
// that Pick never takes a lock.
type snapshot struct {
	all   []*Upstream // sorted by name, then ID
	ready []*Upstream // the Ready ones, in the same order
	fresh []*Upstream // the Ready ones no pick has returned yet, in the same order
	// stale is set once no upstream of fresh is left to claim, so that
	// picks stop looking; fresh[:skip] are claimed already.
	stale atomic.Bool
	skip  atomic.Int64
}

// Pool is the set of upstreams that serve one service, and the policy that
// picks among them. Changes take a lock and publish a new snapshot; picks read
// the current snapshot without locking, so adding or removing an upstream
// never blocks a request in flight. Create pools with NewPool.
type Pool struct {
	name   string
	policy atomic.Pointer[policyBox]
	now    func() time.Time

	mu      sync.Mutex
	members map[string]*member
	order   []*member     // the members sorted by name, then ID
	changed chan struct{} // closed and replaced on every change

	snap atomic.Pointer[snapshot]

	queue queue // the requests waiting for a slot (queue.go)
}

type policyBox struct {
	name  string
	p     Policy
	keyed bool // p picks by the request's key
}

// PoolOption changes how NewPool sets up a pool.
type PoolOption func(*Pool)

// WithClock makes the pool read the time from now instead of time.Now (it
// stamps Upstream.ReadySince).
func WithClock(now func() time.Time) PoolOption {
	return func(p *Pool) { p.now = now }
}

// NewPool returns an empty pool named name that picks with round robin.
func NewPool(name string, opts ...PoolOption) *Pool {
	p := &Pool{name: name, members: map[string]*member{}, changed: make(chan struct{}), now: time.Now}
	for _, o := range opts {
		o(p)
	}
	p.snap.Store(&snapshot{})
	pol, _ := NewPolicy(DefaultPolicy)
	p.policy.Store(&policyBox{name: DefaultPolicy, p: pol, keyed: usesKey(pol)})
	return p
}

// Name is the pool's name (the service it serves).
func (p *Pool) Name() string { return p.name }

// Policy returns the name of the pool's policy.
func (p *Pool) Policy() string { return p.policy.Load().name }

// SetPolicy replaces the pool's policy unless it already has one of that
// name; it reports false for an unknown name and leaves the policy as it was.
func (p *Pool) SetPolicy(name string) bool {
	if name == "" {
		name = DefaultPolicy
	}
	if p.policy.Load().name == name {
		return true
	}
	pol, ok := NewPolicy(name)
	if !ok {
		return false
	}
	p.policy.Store(&policyBox{name: name, p: pol, keyed: usesKey(pol)})
	return true
}

// NeedsKey reports whether the pool's policy picks by the request's key, so
// that callers compute one only when it is used.
func (p *Pool) NeedsKey() bool { return p.policy.Load().keyed }

// Pick returns a ready upstream with room for a request with affinity key
// key, avoiding the upstreams in tried (those that already failed this
// request), and claims a slot on it (see Upstream.Claim): the caller frees
// it with End. It returns nil when no ready upstream has room. Pick never
// blocks; Acquire waits.
//
// The policy chooses among the upstreams with room. A policy that picks by
// key waits for its own upstream: nil when that one is full.
//
// An upstream that has just turned ready gets the next pick, then takes its
// turns under the policy: a new replica serves at once, wherever the round
// robin stands and however many replicas the pool has. Policies that pick by
// key are left alone (their mapping of keys to upstreams must hold).
func (p *Pool) Pick(key uint64, tried []*Upstream) *Upstream {
	s := p.snap.Load()
	ready := s.ready
	if len(ready) == 0 {
		return nil
	}
	pol := p.policy.Load()
	if len(s.fresh) > 0 && !pol.keyed && !s.stale.Load() {
		if u := s.claimFresh(tried); u != nil && u.Claim() {
			return u
		}
	}
	if len(tried) > 0 {
		ready = without(ready, tried)
		if len(ready) == 0 {
			return nil
		}
	}
	u := pol.p.Pick(ready, key)
	if u == nil || u.Claim() {
		return u
	}
	if pol.keyed {
		return nil
	}
	return pickWithRoom(pol.p, ready, key)
}

// pickWithRoom picks among the upstreams of ready with room, until a claim
// holds or none has room: the slow path of a pool at its limits.
func pickWithRoom(pol Policy, ready []*Upstream, key uint64) *Upstream {
	var buf [16]*Upstream
	for {
		room := buf[:0]
		for _, u := range ready {
			if u.hasRoom() {
				room = append(room, u)
			}
		}
		if len(room) == 0 {
			return nil
		}
		if u := pol.Pick(room, key); u != nil && u.Claim() {
			return u
		}
	}
}

// claimFresh returns an upstream that turned ready and that no pick has
// returned since, and claims it: each gets exactly one such pick. Upstreams
// in tried are left for a later pick. When none is left to claim, the
// snapshot is marked stale.
func (s *snapshot) claimFresh(tried []*Upstream) *Upstream {
	left := false
	for i := int(s.skip.Load()); i < len(s.fresh); i++ {
		u := s.fresh[i]
		if u.fresh.Load() {
			if slices.Contains(tried, u) {
				left = true
				continue
			}
			if u.fresh.CompareAndSwap(true, false) {
				return u
			}
		}
		if !left { // claimed, and none before it left: start after it next time
			s.skip.Store(int64(i + 1))
		}
	}
	if !left {
		s.stale.Store(true)
	}
	return nil
}

func without(ups, skip []*Upstream) []*Upstream {
	out := make([]*Upstream, 0, len(ups))
	for _, u := range ups {
		if !slices.Contains(skip, u) {
			out = append(out, u)
		}
	}
	return out
}

// Upstreams returns every upstream of the pool, whatever its state, sorted by
// name. The slice is shared: do not modify it.
func (p *Pool) Upstreams() []*Upstream { return p.snap.Load().all }

// Len is the number of upstreams in the pool, whatever their state.
func (p *Pool) Len() int { return len(p.snap.Load().all) }

// ReadyCount is the number of upstreams that can take a request now.
func (p *Pool) ReadyCount() int { return len(p.snap.Load().ready) }

// WaitReady waits until the pool has a ready upstream or ctx is done, and
// reports whether one is ready.
func (p *Pool) WaitReady(ctx context.Context) bool {
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		if p.ReadyCount() > 0 {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return p.ReadyCount() > 0
		}
	}
}

// Changed returns a channel that is closed at the next change to the pool.
func (p *Pool) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// Put adds an upstream, in state Starting, or updates the address and weight
// of the one with the same ID, keeping its name, state and counters.
func (p *Pool) Put(m Member) *Upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	mem, ok := p.members[m.ID]
	if !ok {
		mem = &member{up: &Upstream{id: m.ID, name: m.Name, pool: p}}
		mem.up.address.Store(&m.Address)
		p.members[m.ID] = mem
		i, _ := slices.BinarySearchFunc(p.order, mem.up, compareMember)
		p.order = slices.Insert(p.order, i, mem)
	} else if mem.up.Address() != m.Address {
		addr := m.Address
		mem.up.address.Store(&addr)
	}
	mem.up.weight.Store(int32(max(m.Weight, 1)))
	mem.up.setLimit(m.Limit)
	p.publish()
	return mem.up
}

// Get returns the upstream with the given ID, or nil.
func (p *Pool) Get(id string) *Upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.members[id]; ok {
		return m.up
	}
	return nil
}

// MarkReady records that a starting upstream has shown it can answer; it
// becomes Ready unless a health check holds it Down. It reports whether the
// upstream exists. A draining upstream stays draining.
func (p *Pool) MarkReady(id string) bool {
	return p.change(id, func(m *member) {
		if m.life == lifeStarting {
			m.life = lifeRunning
		}
	})
}

// Restart puts a draining or running upstream back to Starting: the container
// was started again and must pass the readiness gate anew.
func (p *Pool) Restart(id string) bool {
	return p.change(id, func(m *member) { m.life = lifeStarting })
}

// Drain stops new requests to the upstream; requests in flight finish.
func (p *Pool) Drain(id string) bool {
	return p.change(id, func(m *member) { m.life = lifeDraining })
}

// Stop records that the upstream's process has exited: it is Down, and stays
// in the pool (so that requests wait for it) until it is restarted or removed.
func (p *Pool) Stop(id string) bool {
	return p.change(id, func(m *member) { m.life = lifeStopped })
}

// SetHealth records the verdict of one health check on the upstream.
func (p *Pool) SetHealth(id string, c Check, healthy bool) bool {
	return p.change(id, func(m *member) {
		if healthy {
			m.unhealthy &^= c
		} else {
			m.unhealthy |= c
		}
	})
}

// Healthy reports whether check c currently holds the upstream healthy.
func (p *Pool) Healthy(id string, c Check) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.members[id]
	return ok && m.unhealthy&c == 0
}

// Remove takes the upstream out of the pool. Requests in flight to it finish.
func (p *Pool) Remove(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.members[id]
	if !ok {
		return false
	}
	delete(p.members, id)
	if i, found := slices.BinarySearchFunc(p.order, m.up, compareMember); found {
		p.order = slices.Delete(p.order, i, i+1)
	}
	m.up.removed.Store(true)
	m.up.setState(Down, time.Time{})
	p.publish()
	return true
}

func (p *Pool) change(id string, f func(*member)) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.members[id]
	if !ok {
		return false
	}
	before := m.state()
	f(m)
	if m.state() != before {
		p.publish()
	}
	return true
}

func compareMember(m *member, u *Upstream) int {
	if c := strings.Compare(m.up.name, u.name); c != 0 {
		return c
	}
	return strings.Compare(m.up.id, u.id)
}

// publish stores each member's state and a new snapshot, and wakes waiters.
// It costs one pass over the members, kept in order. The caller holds p.mu.
func (p *Pool) publish() {
	s := &snapshot{all: make([]*Upstream, len(p.order))}
	nready := 0
	var now time.Time
	for i, m := range p.order {
		st := m.state()
		if st == Ready && m.up.State() != Ready && now.IsZero() {
			now = p.now()
		}
		m.up.setState(st, now)
		s.all[i] = m.up
		if st == Ready {
			nready++
		}
	}
	s.ready = make([]*Upstream, 0, nready)
	for _, u := range s.all {
		if u.State() == Ready {
			s.ready = append(s.ready, u)
			if u.fresh.Load() {
				s.fresh = append(s.fresh, u)
			}
		}
	}
	p.snap.Store(s)
	close(p.changed)
	p.changed = make(chan struct{})
	if p.queue.waiting.Load() > 0 {
		p.dispatch()
	}
}
