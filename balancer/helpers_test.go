package balancer

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// ready returns upstreams u0, u1, ... in state Ready with the given weights.
func ready(weights ...int) []*Upstream {
	out := make([]*Upstream, len(weights))
	for i, w := range weights {
		out[i] = newTestUpstream(fmt.Sprintf("u%d", i), w)
	}
	return out
}

// equalReady returns n Ready upstreams of weight 1.
func equalReady(n int) []*Upstream {
	w := make([]int, n)
	for i := range w {
		w[i] = 1
	}
	return ready(w...)
}

func newTestUpstream(id string, weight int) *Upstream {
	u := &Upstream{id: id, name: id}
	addr := id + ":80"
	u.address.Store(&addr)
	u.weight.Store(int32(weight))
	u.state.Store(int32(Ready))
	return u
}

// count picks n times with key 0 and counts the picks by upstream name.
func count(p Policy, ups []*Upstream, n int) map[string]int {
	got := map[string]int{}
	for i := 0; i < n; i++ {
		got[p.Pick(ups, 0).Name()]++
	}
	return got
}

// lockedSource is a seeded source safe for concurrent use, for tests.
type lockedSource struct {
	mu sync.Mutex
	r  *rand.PCG
}

func seeded(seed uint64) *lockedSource {
	return &lockedSource{r: rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)}
}

func (s *lockedSource) Uint64() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Uint64()
}

// within reports whether got is want±tol.
func within(got, want, tol float64) bool { return got >= want-tol && got <= want+tol }
