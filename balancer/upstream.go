// Package balancer holds the upstream pools and picks a replica for each
// request. It knows nothing of Docker or of the network: an Upstream is an
// address with counters and a state, a Pool is a set of them, and a Policy
// chooses among a pool's ready members.
package balancer

import (
	"sync/atomic"
	"time"
)

// State is where an upstream is in its life. Only Ready upstreams are picked.
type State int32

const (
	// Starting: the container runs but has not yet shown it can answer
	// (no healthy HEALTHCHECK, no accepted TCP connection yet).
	Starting State = iota
	// Ready: it gets new requests.
	Ready
	// Draining: it is being stopped; requests in flight finish, no new ones start.
	Draining
	// Down: it fails its health checks, or its process has exited; no
	// requests until it passes again or is restarted.
	Down
)

var stateNames = [...]string{Starting: "starting", Ready: "ready", Draining: "draining", Down: "down"}

// String returns the lower-case name used in logs and the admin API.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Upstream is one replica that a pool can send requests to. It is created and
// changed by its Pool; readers may call its methods from any goroutine. Its
// counters survive every change to the pool for as long as the replica stays.
type Upstream struct {
	id   string
	name string

	address atomic.Pointer[string]
	weight  atomic.Int32
	state   atomic.Int32

	inFlight atomic.Int64
	requests atomic.Int64
	failures atomic.Int64

	// limit is the most requests it may have in flight (0: no limit); an
	// adaptive limiter, when set, moves it. pool is the pool that created
	// it, whose queue a freed slot wakes.
	limit    atomic.Int64
	adaptive atomic.Pointer[limiter]
	pool     *Pool

	readySince atomic.Int64 // unix nanoseconds; 0 while not Ready
	announced  atomic.Int64 // unix nanoseconds; 0 when unknown
	unserved   atomic.Bool  // Ready, and no request has begun since
	fresh      atomic.Bool  // Ready, and no Pool.Pick has returned it since
	removed    atomic.Bool
	admissions atomic.Uint64 // times it turned Ready
}

// ID is the stable key of the upstream (for a container, its full ID).
func (u *Upstream) ID() string { return u.id }

// Name is the human name (for a container, its name).
func (u *Upstream) Name() string { return u.name }

// Address is where requests go, as host:port.
func (u *Upstream) Address() string { return *u.address.Load() }

// Weight is the upstream's relative share for weighted policies (at least 1).
func (u *Upstream) Weight() int { return int(u.weight.Load()) }

// State is the upstream's current state.
func (u *Upstream) State() State { return State(u.state.Load()) }

// InFlight is the number of requests being served by the upstream right now.
func (u *Upstream) InFlight() int64 { return u.inFlight.Load() }

// Requests is the number of requests sent to the upstream since it joined.
func (u *Upstream) Requests() int64 { return u.requests.Load() }

// Failures is the number of requests that failed at the transport level
// (refused, reset, timed out) on this upstream since it joined.
func (u *Upstream) Failures() int64 { return u.failures.Load() }

// ReadySince is when the upstream last turned Ready, by its pool's clock;
// the zero time while it is not Ready.
func (u *Upstream) ReadySince() time.Time {
	if ns := u.readySince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Admissions counts the times the upstream has turned Ready since it joined
// its pool. A request that failed on it may try it again once the count has
// grown: it was let back in (restarted, or probed back after an ejection).
func (u *Upstream) Admissions() uint64 { return u.admissions.Load() }

// Announced is when the upstream's source announced the start of its
// current run (for a container, the time of the Docker event that made it
// ready to be let in); the zero time when unknown. It is forgotten when the
// upstream stops being Ready.
func (u *Upstream) Announced() time.Time {
	if ns := u.announced.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// SetAnnounced records what Announced returns; the zero time forgets it.
func (u *Upstream) SetAnnounced(t time.Time) {
	if t.IsZero() {
		u.announced.Store(0)
		return
	}
	u.announced.Store(t.UnixNano())
}

// Removed reports whether the upstream has left its pool for good (an
// upstream put back under the same ID is a new Upstream).
func (u *Upstream) Removed() bool { return u.removed.Load() }

// Begin records a request sent to the upstream, in the slot that Pool.Pick,
// Pool.Acquire or Claim took for it. first is true for exactly one request
// after each time the upstream turned Ready: the first it was sent since
// (how long it waited for traffic is the time since ReadySince).
func (u *Upstream) Begin() (first bool) {
	u.requests.Add(1)
	return u.unserved.Load() && u.unserved.CompareAndSwap(true, false)
}

// End frees the slot of a request (every slot taken is freed by exactly one
// End, once the response has been copied to the client, or when the slot
// went unused); failed says whether the upstream failed it at the transport
// level. The freed slot goes to the first request in the pool's queue that
// can use it.
func (u *Upstream) End(failed bool) { u.EndAfter(failed, false, 0) }

// EndAfter is End for a request that took took from Begin to its end (0:
// not measured); overloaded says the replica answered it as an overloaded
// one does (a 5xx). An adaptive limit (Adaptive) learns from both; only
// callers that see an Adaptive upstream need to measure took.
func (u *Upstream) EndAfter(failed, overloaded bool, took time.Duration) {
	if l := u.adaptive.Load(); l != nil {
		l.sample(u, took, failed || overloaded)
	}
	u.inFlight.Add(-1)
	if failed {
		u.failures.Add(1)
	}
	if u.pool != nil && u.pool.queue.waiting.Load() > 0 {
		u.pool.dispatch()
	}
}

// setState stores the upstream's state; now is the time, needed only when
// the upstream turns Ready. The caller is the upstream's pool, under its lock.
func (u *Upstream) setState(s State, now time.Time) {
	switch was := u.State(); {
	case s == Ready && was != Ready:
		u.readySince.Store(now.UnixNano())
		u.admissions.Add(1)
		u.unserved.Store(true)
		u.fresh.Store(true)
	case s != Ready && was == Ready:
		u.readySince.Store(0)
		u.unserved.Store(false)
		u.fresh.Store(false)
		u.announced.Store(0)
	}
	u.state.Store(int32(s))
}
