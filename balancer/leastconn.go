package balancer

import "math/rand/v2"

// LeastConn sends each request to the less busy of two upstreams chosen at
// random ("power of two random choices"): busy meaning requests in flight
// per unit of weight. Two choices avoid the herd that always picking the
// least busy upstream of all causes when many requests arrive at once, and
// cost the same for 3 upstreams as for 10,000. Ties go to the first choice.
// The zero value is ready to use.
type LeastConn struct {
	// Rand is the source of random numbers; nil means the runtime's
	// generator. A source set here must be safe for concurrent use if the
	// policy is (tests set a seeded one and pick from one goroutine).
	Rand rand.Source
}

var _ Policy = (*LeastConn)(nil)

// Pick returns the less loaded of two random upstreams.
func (lc *LeastConn) Pick(ready []*Upstream, _ uint64) *Upstream {
	n := uint64(len(ready))
	switch n {
	case 0:
		return nil
	case 1:
		return ready[0]
	}
	i := below(random(lc.Rand), n)
	j := (i + 1 + below(random(lc.Rand), n-1)) % n // any other one
	a, b := ready[i], ready[j]
	// a.InFlight/a.Weight <= b.InFlight/b.Weight, without division.
	if a.InFlight()*int64(b.Weight()) <= b.InFlight()*int64(a.Weight()) {
		return a
	}
	return b
}
