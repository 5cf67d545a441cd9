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
type Ejector struct {
	MinWindow, MaxWindow, Forgive time.Duration
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

type ejection struct {
	streak   int       // ejections in a row
	active   bool      // ejected now
	returned time.Time // when it was last let back in
}

// Eject takes u out of pool, unless it is already out, and reports whether
// it did so now. The window is returned for logging.
func (e *Ejector) Eject(pool *balancer.Pool, u *balancer.Upstream) (bool, time.Duration) {
	e.mu.Lock()
	if e.state == nil {
		e.state = map[*balancer.Upstream]*ejection{}
	}
	st := e.state[u]
	if st == nil {
		st = &ejection{}
		e.state[u] = st
	}
	if st.active {
		e.mu.Unlock()
		return false, 0
	}
	now := e.now()
	if !st.returned.IsZero() && now.Sub(st.returned) >= e.forgive() {
		st.streak = 0
	}
	window := e.window(st.streak)
	st.streak++
	st.active = true
	e.mu.Unlock()

	if !pool.SetHealth(u.ID(), balancer.CheckPassive, false) {
		e.Forget(u) // not in the pool any more
		return false, 0
	}
	if e.OnChange != nil {
		e.OnChange(u, true)
	}
	e.schedule(pool, u, window)
	return true, window
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

func (e *Ejector) schedule(pool *balancer.Pool, u *balancer.Upstream, d time.Duration) {
	after := e.AfterFunc
	if after == nil {
		after = time.AfterFunc
	}
	after(d, func() { e.probe(pool, u, d) })
}

// probe runs at the end of a window: back in if it answers, else another
// window, twice as long.
func (e *Ejector) probe(pool *balancer.Pool, u *balancer.Upstream, last time.Duration) {
	if pool.Get(u.ID()) != u {
		e.Forget(u)
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
		e.schedule(pool, u, min(last*2, e.window(1<<10)))
		return
	}
	e.mu.Lock()
	if st := e.state[u]; st != nil {
		st.active = false
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
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && op.Timeout()
}
