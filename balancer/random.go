package balancer

import "math/rand/v2"

// Random sends each request to an upstream chosen at random, each with a
// chance proportional to its weight (uniform when the weights are equal).
// The zero value is ready to use.
type Random struct {
	// Rand is the source of random numbers; nil means the runtime's
	// generator. A source set here must be safe for concurrent use if the
	// policy is.
	Rand    rand.Source
	weights weightCache
}

var _ Policy = (*Random)(nil)

// Pick returns a random upstream.
func (r *Random) Pick(ready []*Upstream, _ uint64) *Upstream {
	switch len(ready) {
	case 0:
		return nil
	case 1:
		return ready[0]
	}
	x := random(r.Rand)
	t := r.weights.table(ready, plainTable)
	if t.equal {
		return ready[below(x, uint64(len(ready)))]
	}
	return t.index(below(x, t.total))
}
