package balancer

// Policy chooses one of a pool's ready upstreams for a request. ready is never
// empty and must not be modified or kept; key is the request's affinity key
// (for example a hash of the client address), which policies without affinity
// ignore. A Policy is shared by all requests to a pool and must be safe for
// concurrent use. Pick returns nil only when it cannot choose.
type Policy interface {
	Pick(ready []*Upstream, key uint64) *Upstream
}

// Affinity is implemented by policies that pick by the request's key. The
// proxy computes a key (Pool.NeedsKey) only for pools whose policy has
// affinity; the others are given 0.
type Affinity interface {
	Affinity() bool
}

// NewPolicy returns a new policy of the given name; the empty name is round
// robin. ok is false for an unknown name.
func NewPolicy(name string) (p Policy, ok bool) {
	switch name {
	case "", "round_robin":
		return &RoundRobin{}, true
	case "least_conn":
		return &LeastConn{}, true
	case "random":
		return &Random{}, true
	case "hash":
		return &Hash{}, true
	}
	return nil, false
}

// PolicyNames lists the names NewPolicy accepts, for error messages.
var PolicyNames = []string{"round_robin", "least_conn", "random", "hash"}

// usesKey reports whether p picks by the request's key.
func usesKey(p Policy) bool {
	a, ok := p.(Affinity)
	return ok && a.Affinity()
}
