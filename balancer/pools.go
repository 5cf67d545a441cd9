package balancer

import (
	"slices"
	"strings"
	"sync"
)

// Pools is the set of pools keyed by service name. The zero value is empty
// and ready to use.
type Pools struct {
	mu sync.RWMutex
	m  map[string]*Pool
}

// Get returns the pool named name, or nil.
func (ps *Pools) Get(name string) *Pool {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.m[name]
}

// GetOrCreate returns the pool named name, creating an empty one if needed.
func (ps *Pools) GetOrCreate(name string) *Pool {
	if p := ps.Get(name); p != nil {
		return p
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.m[name]; ok {
		return p
	}
	if ps.m == nil {
		ps.m = map[string]*Pool{}
	}
	p := NewPool(name)
	ps.m[name] = p
	return p
}

// All returns every pool, sorted by name.
func (ps *Pools) All() []*Pool {
	ps.mu.RLock()
	out := make([]*Pool, 0, len(ps.m))
	for _, p := range ps.m {
		out = append(out, p)
	}
	ps.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Pool) int { return strings.Compare(a.name, b.name) })
	return out
}
