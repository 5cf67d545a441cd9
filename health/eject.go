package health

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// Ejector takes upstreams that refuse or reset connections out of their
// pool for a short window that doubles with each ejection in a row (from
// MinWindow to MaxWindow), then probes them with a TCP connect and lets them
// back in when it succeeds. An upstream that stays in for Forgive is
// forgiven: its next ejection starts again at MinWindow. The zero value uses
// 1s, 30s and 30s.
//
// An upstream that cannot be reached (Unreachable) serves nobody, and is
// ejected whatever the others do. One that reset a connection it had
// accepted may have met a request that breaks every replica (a "query of
// death"), so those ejections are capped: at most MaxEjectedPercent of the
// pool's serving replicas (ready, or out by this Ejector) are out at once,
// as Envoy's outlier detection caps them (max_ejection_percent). At the cap
// the replicas that failed least stay in: one that fails more than an
// ejected one takes its place.
type Ejector struct {
	MinWindow, MaxWindow, Forgive time.Duration
	// MaxEjectedPercent caps the ejections for resets (see above); 0 means
	// DefaultMaxEjectedPercent. A pool of one replica never loses it to a
	// reset; of two or three, at most one.
	MaxEjectedPercent int
	// Now and AfterFunc are the clock; nil means the time package's.
	Now       func() time.Time
	AfterFunc func(time.Duration, func()) *time.Timer
	// Probe reports whether addr accepts a connection; nil means a TCP
	// connect with a 1s timeout.
	Probe func(addr string) bool
	// OnChange, if set, is called when an upstream is ejected or let back in.
	OnChange func(u *balancer.Upstream, ejected bool)

	mu    sync.Mutex
	state map[*balancer.Upstream]*ejection
}

// DefaultMaxEjectedPercent is Ejector.MaxEjectedPercent's default: half of
// a pool's serving replicas, rounded down.
const DefaultMaxEjectedPercent = 50

type ejection struct {
	streak   int       // ejections in a row
	active   bool      // ejected now
	reset    bool      // ejected now for a reset (capped), not for being unreachable
	resets   int       // resets it was ejected or kept in for, each within Forgive of the last: the cap keeps the lowest in
	lastSet  time.Time // when resets last grew
	gen      int       // ejections so far: a probe scheduled for an earlier one does nothing
	returned time.Time // when it was last let back in
}

// Verdict is what Eject did.
type Verdict struct {
	// Ejected is set when the upstream was taken out now, for Window.
	Ejected bool
	Window  time.Duration
	// Capped is set when the cap kept it in: ejecting it would have left
	// too few replicas serving.
	Capped bool
	// Returned is the upstream let back in early to make room for this
	// one (it failed less), or nil.
	Returned *balancer.Upstream
}

// Eject takes u, which failed a request with err, out of pool, unless it
// is out already or the cap keeps it in (see Ejector).
func (e *Ejector) Eject(pool *balancer.Pool, u *balancer.Upstream, err error) Verdict {
	capped := !Unreachable(err)
	e.mu.Lock()
	if e.state == nil {
		e.state = map[*balancer.Upstream]*ejection{}
	}
	st := e.stateOf(u)
	if st.active {
		e.mu.Unlock()
		return Verdict{}
	}
	var back *balancer.Upstream
	if capped {
		if now := e.now(); now.Sub(st.lastSet) < e.forgive() {
			st.resets++
		} else {
			st.resets = 1
		}
		st.lastSet = e.now()
		var room bool
		if room, back = e.room(pool, st); !room {
			e.mu.Unlock()
			return Verdict{Capped: true}
		}
		if back != nil {
			bs := e.state[back]
			bs.active, bs.reset, bs.returned = false, false, e.now()
		}
	}
	now := e.now()
	if !st.returned.IsZero() && now.Sub(st.returned) >= e.forgive() {
		st.streak = 0
	}
	window := e.window(st.streak)
	st.streak++
	st.active, st.reset = true, capped
	st.gen++
	gen := st.gen
	e.mu.Unlock()

	if back != nil {
		pool.SetHealth(back.ID(), balancer.CheckPassive, true)
		if e.OnChange != nil {
			e.OnChange(back, false)
		}
	}
	if !pool.SetHealth(u.ID(), balancer.CheckPassive, false) {
		e.Forget(u) // not in the pool any more
		return Verdict{Returned: back}
	}
	if e.OnChange != nil {
		e.OnChange(u, true)
	}
	e.schedule(pool, u, window, gen)
	return Verdict{Ejected: true, Window: window, Returned: back}
}

// stateOf returns u's record, made when new. Called with mu held.
func (e *Ejector) stateOf(u *balancer.Upstream) *ejection {
	st := e.state[u]
	if st == nil {
		st = &ejection{}
		e.state[u] = st
	}
	return st
}

// room reports whether the cap lets the upstream of st out for a reset:
// the pool's serving replicas are those ready and those out by this
// Ejector; at most MaxEjectedPercent of them (rounded down) may be out. At
// the cap, the one out for resets that failed least (fewer resets than
// st's) is returned as back: it comes in for st's to go out. Called with
// mu held.
func (e *Ejector) room(pool *balancer.Pool, st *ejection) (ok bool, back *balancer.Upstream) {
	serving, out := 0, 0
	var least *ejection
	for _, x := range pool.Upstreams() {
		xs := e.state[x]
		switch {
		case xs != nil && xs.active:
			serving++
			out++
			if xs.reset && xs.resets < st.resets && (least == nil || xs.resets < least.resets) {
				least, back = xs, x
			}
		case x.State() == balancer.Ready:
			serving++
		}
	}
	pct := e.MaxEjectedPercent
	if pct <= 0 {
		pct = DefaultMaxEjectedPercent
	}
	if out+1 <= serving*min(pct, 100)/100 {
		return true, nil
	}
	return back != nil, back
}

// window is the ejection time after streak ejections in a row.
func (e *Ejector) window(streak int) time.Duration {
	minW, maxW := e.MinWindow, e.MaxWindow
	if minW <= 0 {
		minW = time.Second
	}
	if maxW <= 0 {
		maxW = 30 * time.Second
	}
	w := minW
	for i := 0; i < streak && w < maxW; i++ {
		w *= 2
	}
	return min(w, maxW)
}

func (e *Ejector) forgive() time.Duration {
	if e.Forgive > 0 {
		return e.Forgive
	}
	return 30 * time.Second
}

func (e *Ejector) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Ejector) schedule(pool *balancer.Pool, u *balancer.Upstream, d time.Duration, gen int) {
	after := e.AfterFunc
	if after == nil {
		after = time.AfterFunc
	}
	after(d, func() { e.probe(pool, u, d, gen) })
}

// probe runs at the end of the window of ejection gen: back in if it
// answers, else another window, twice as long. It does nothing when that
// ejection has ended (the cap let u back in early).
func (e *Ejector) probe(pool *balancer.Pool, u *balancer.Upstream, last time.Duration, gen int) {
	if pool.Get(u.ID()) != u {
		e.Forget(u)
		return
	}
	e.mu.Lock()
	st := e.state[u]
	current := st != nil && st.active && st.gen == gen
	e.mu.Unlock()
	if !current {
		return
	}
	probe := e.Probe
	if probe == nil {
		probe = tcpProbe
	}
	if !probe(u.Address()) {
		e.mu.Lock()
		if st := e.state[u]; st != nil {
			st.streak++
		}
		e.mu.Unlock()
		e.schedule(pool, u, min(last*2, e.window(1<<10)), gen)
		return
	}
	e.mu.Lock()
	if st := e.state[u]; st != nil && st.gen == gen {
		st.active, st.reset = false, false
		st.returned = e.now()
	}
	e.mu.Unlock()
	pool.SetHealth(u.ID(), balancer.CheckPassive, true)
	if e.OnChange != nil {
		e.OnChange(u, false)
	}
}

// Forget drops what is known of u (it left its pool).
func (e *Ejector) Forget(u *balancer.Upstream) {
	e.mu.Lock()
	delete(e.state, u)
	e.mu.Unlock()
}

func tcpProbe(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Ejectable reports whether err says the upstream itself is broken (it
// refused or reset the connection, did not answer the connect, or its
// kernel stopped acknowledging what was sent: ETIMEDOUT, as when its
// machine is gone), as opposed to the client leaving or the upstream being
// removed by dlb.
func Ejectable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	return errors.Is(err, syscall.ECONNRESET) || Unreachable(err)
}

// Unreachable reports whether err says the upstream could not be reached
// at all: it refused the connection, its host is unreachable, the connect
// timed out, or its kernel stopped acknowledging what was sent (ETIMEDOUT,
// as when its machine is gone). Such an upstream serves no request,
// whatever the request.
func Unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && op.Timeout()
}
