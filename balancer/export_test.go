package balancer

import "slices"

// NewReadyPool returns a pool named name holding ms, all ready, published as
// one snapshot. It is for benchmarks of large pools only: Put and MarkReady
// publish a sorted snapshot per change, so building a pool of 10,000 with
// them takes most of a minute.
func NewReadyPool(name string, ms []Member) *Pool {
	p := NewPool(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range ms {
		u := &Upstream{id: m.ID, name: m.Name}
		u.address.Store(&m.Address)
		u.weight.Store(int32(max(m.Weight, 1)))
		mem := &member{up: u, life: lifeRunning}
		p.members[m.ID] = mem
		p.order = append(p.order, mem)
	}
	slices.SortFunc(p.order, func(a, b *member) int { return compareMember(a, b.up) })
	p.publish()
	return p
}
