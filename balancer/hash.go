package balancer

import "math"

// Hash sends all requests with the same key (the proxy derives it from the
// client address, or from a header named by dlb.hash.header) to the same
// upstream, with rendezvous (highest random weight) hashing: every upstream
// scores the key, and the highest score wins. When an upstream leaves, only
// the keys it had move, spread over the others; when one joins, it takes
// only its own share from each. With differing weights the score is
// weighted (w / -ln(u), u the score as a number in (0, 1)), so an upstream
// of weight 2 gets twice the keys of one of weight 1, with the same
// stability. A pick scores every ready upstream, reading two arrays built
// once per pool change: it costs O(n) and allocates nothing. The zero value
// is ready to use.
type Hash struct {
	weights weightCache
}

var (
	_ Policy   = (*Hash)(nil)
	_ Affinity = (*Hash)(nil)
)

// Affinity reports true: Hash picks by the request's key.
func (*Hash) Affinity() bool { return true }

// Pick returns the upstream with the highest score for key.
func (h *Hash) Pick(ready []*Upstream, key uint64) *Upstream {
	switch len(ready) {
	case 0:
		return nil
	case 1:
		return ready[0]
	}
	t := h.weights.table(ready, hashTable)
	key = mix64(key)
	best := 0
	if t.inverse == nil {
		var top uint64
		for i, seed := range t.seeds {
			if s := mix64(key ^ seed); s > top || i == 0 {
				best, top = i, s
			}
		}
		return ready[best]
	}
	// Highest w / -ln(u) is lowest -ln(u) / w. Since -ln(u) >= 1-u, an
	// upstream whose (1-u) / w is already not lower than the lowest so far
	// cannot win, and its logarithm is not worth computing: after the first
	// few upstreams, almost none is.
	low := math.Inf(1)
	for i, seed := range t.seeds {
		u := (float64(mix64(key^seed)>>11) + 0.5) / (1 << 53) // in (0, 1)
		inv := t.inverse[i]
		if (1-u)*inv >= low {
			continue
		}
		if s := -math.Log(u) * inv; s < low {
			best, low = i, s
		}
	}
	return ready[best]
}
