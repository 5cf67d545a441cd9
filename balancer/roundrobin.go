package balancer

import (
	"math/bits"
	"sync/atomic"
)

// RoundRobin sends each request to the next ready upstream in turn. When the
// upstreams' weights differ it is smooth weighted round robin: over any run
// of W picks (W the sum of the weights) each upstream gets exactly its
// weight, and its turns are spread evenly through the run rather than
// bunched (weights 5, 5 and 1 give a b a c b a b b a b a, not a a a a a b b
// b b b c). This is the interleaving nginx's smooth weighted round robin
// gives, computed without shared mutable state: pick n lands at n·g mod W on
// the line of weights, g being a stride near W/φ coprime with W. A pick is
// one atomic add and a binary search; it takes no lock and allocates
// nothing. The zero value is ready to use.
type RoundRobin struct {
	next    atomic.Uint64
	weights weightCache
}

var _ Policy = (*RoundRobin)(nil)

// Pick returns the next upstream in turn.
func (rr *RoundRobin) Pick(ready []*Upstream, _ uint64) *Upstream {
	if len(ready) == 0 {
		return nil
	}
	n := rr.next.Add(1) - 1
	if len(ready) == 1 {
		return ready[0]
	}
	t := rr.weights.table(ready, roundRobinTable)
	if t.equal {
		return ready[n%uint64(len(ready))]
	}
	if t.schedule != nil {
		return t.schedule[n%uint64(len(t.schedule))]
	}
	// A cycle too long to lay out: (n mod W)·g mod W on the line of
	// weights, without overflow whatever W is.
	if t.total < 1<<32 {
		return t.index(n % t.total * t.step % t.total)
	}
	hi, lo := bits.Mul64(n%t.total, t.step)
	_, x := bits.Div64(hi, lo, t.total)
	return t.index(x)
}
