package balancer

import "sync/atomic"

// RoundRobin sends each request to the next ready upstream in turn.
// The zero value is ready to use.
type RoundRobin struct {
	next atomic.Uint64
}

var _ Policy = (*RoundRobin)(nil)

// Pick returns the next upstream in turn.
func (rr *RoundRobin) Pick(ready []*Upstream, _ uint64) *Upstream {
	if len(ready) == 0 {
		return nil
	}
	n := rr.next.Add(1) - 1
	return ready[n%uint64(len(ready))]
}
