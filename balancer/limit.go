package balancer

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limit is how many requests a replica may have in flight through dlb. The
// zero value is no limit.
type Limit struct {
	// Max is the fixed limit (0: none); ignored when Auto is set.
	Max int
	// Auto learns the limit from the replica's latency and failures (an
	// adaptive limiter, see limiter).
	Auto bool
}

// MaxLimit is the largest fixed limit ParseLimit accepts, and the ceiling of
// an adaptive one.
const MaxLimit = 100000

// ParseLimit reads a limit as dlb.max_inflight and --max-inflight give it:
// a whole number (0: no limit) or "auto".
func ParseLimit(v string) (Limit, error) {
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "auto") {
		return Limit{Auto: true}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > MaxLimit {
		return Limit{}, fmt.Errorf("not a limit: give a whole number from 0 (no limit) to %d, or auto", MaxLimit)
	}
	return Limit{Max: n}, nil
}

// String is the limit as ParseLimit reads it.
func (l Limit) String() string {
	if l.Auto {
		return "auto"
	}
	return strconv.Itoa(l.Max)
}

// Limit is the most requests the upstream may have in flight now (0: no
// limit); an adaptive one changes as it learns.
func (u *Upstream) Limit() int64 { return u.limit.Load() }

// Adaptive reports whether the upstream's limit is learned: its End calls
// should say how long the request took (EndAfter).
func (u *Upstream) Adaptive() bool { return u.adaptive.Load() != nil }

// setLimit applies l; an adaptive limit keeps what it has learned when it
// is set again. The caller is the upstream's pool, under its lock.
func (u *Upstream) setLimit(l Limit) {
	switch {
	case l.Auto:
		if u.adaptive.Load() == nil {
			lim := newLimiter()
			u.limit.Store(lim.current())
			u.adaptive.Store(lim)
		}
	default:
		u.adaptive.Store(nil)
		u.limit.Store(int64(max(l.Max, 0)))
	}
}

// Claim takes a slot on the upstream for a request when it has room, and
// reports whether it did: two callers can never both take its last slot.
// A slot taken is freed by End. Pool.Pick and Pool.Acquire claim the slot
// of the upstream they return; Claim is for an upstream chosen otherwise
// (a sticky client's).
func (u *Upstream) Claim() bool {
	lim := u.limit.Load()
	if lim <= 0 {
		u.inFlight.Add(1)
		return true
	}
	for {
		n := u.inFlight.Load()
		if n >= lim {
			return false
		}
		if u.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// hasRoom reports whether the upstream can take a request now.
func (u *Upstream) hasRoom() bool {
	lim := u.limit.Load()
	return lim <= 0 || u.inFlight.Load() < lim
}

// limiter learns a replica's concurrency limit from the requests it
// serves, in the manner of Envoy's adaptive concurrency filter and Netflix's
// concurrency-limits Gradient2. It keeps noLoad, the latency of the replica
// with no queue inside it: the lowest average of a window of samples, and
// every probeEvery windows measured afresh in a window at probeLimit (so a
// replica whose unloaded latency grew is seen as it is now). Per window it
// compares the window's average with noLoad: while the average stays within
// tolerance times noLoad and the limit was reached, the limit grows by its
// square root (room to find more); beyond, it shrinks in proportion. A
// failed or overloaded answer (5xx) cuts it by a fifth at once. It reads no
// clock: its time is the replica's own latencies and its count of samples.
type limiter struct {
	mu      sync.Mutex
	limit   float64
	noLoad  float64 // seconds; 0 until the first window
	sum     float64 // this window's latencies, in seconds
	n       int     // this window's samples
	full    bool    // the limit was reached in this window
	dropped bool    // a request failed or was answered as overloaded in this window
	windows int     // windows since the last probe
	probing float64 // the limit to go back to after a probe window; 0: not probing
}

const (
	limiterInitial   = 8
	limiterMin       = 1
	limiterTolerance = 2.0 // latency up to twice the unloaded one is not a queue
	limiterSmoothing = 0.2
	probeEvery       = 500 // windows
	probeLimit       = 2
)

func newLimiter() *limiter { return &limiter{limit: limiterInitial} }

func (l *limiter) current() int64 { return int64(math.Ceil(l.limit)) }

// sample records one request of the upstream; it may move u's limit.
func (l *limiter) sample(u *Upstream, took time.Duration, dropped bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u.inFlight.Load() >= l.current() {
		l.full = true
	}
	if dropped {
		// Back off at once: the replica says it is over its capacity.
		if !l.dropped && l.probing == 0 {
			l.limit = max(limiterMin, l.limit*0.8)
			u.limit.Store(l.current())
		}
		l.dropped = true
	} else if took > 0 {
		l.sum += took.Seconds()
		l.n++
	}
	if l.n+btoi(l.dropped) < max(int(l.limit), 10) {
		return
	}
	l.update()
	u.limit.Store(l.current())
}

func (l *limiter) update() {
	defer func() { l.sum, l.n, l.full, l.dropped = 0, 0, false, false }()
	if l.n == 0 {
		return
	}
	avg := l.sum / float64(l.n)
	if l.probing > 0 {
		l.noLoad, l.limit, l.probing, l.windows = avg, l.probing, 0, 0
		return
	}
	if l.noLoad == 0 || avg < l.noLoad {
		l.noLoad = avg
	}
	if l.windows++; l.windows >= probeEvery && l.limit > probeLimit {
		l.probing, l.limit = l.limit, probeLimit
		return
	}
	if l.dropped {
		return
	}
	gradient := min(1, max(0.5, limiterTolerance*l.noLoad/avg))
	next := l.limit * gradient
	if gradient == 1 && l.full {
		next += math.Sqrt(l.limit)
	}
	l.limit = min(MaxLimit, max(limiterMin, l.limit*(1-limiterSmoothing)+next*limiterSmoothing))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
