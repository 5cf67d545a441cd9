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

// DefaultPolicy is the policy of a pool whose replicas ask for none.
const DefaultPolicy = "round_robin"

// policies are the policies dlb implements, by name, in the order help and
// error messages list them: the one place a policy's name is given.
var policies = []struct {
	name string
	new  func() Policy
}{
	{DefaultPolicy, func() Policy { return &RoundRobin{} }},
	{"least_conn", func() Policy { return &LeastConn{} }},
	{"random", func() Policy { return &Random{} }},
	{"hash", func() Policy { return &Hash{} }},
}

// NewPolicy returns a new policy of the given name; the empty name is round
// robin. ok is false for an unknown name.
func NewPolicy(name string) (p Policy, ok bool) {
	if name == "" {
		name = DefaultPolicy
	}
	for _, pol := range policies {
		if pol.name == name {
			return pol.new(), true
		}
	}
	return nil, false
}

// PolicyNames lists the names NewPolicy accepts (dlb.balance's values),
// for validation and error messages.
var PolicyNames = func() []string {
	names := make([]string, len(policies))
	for i, p := range policies {
		names[i] = p.name
	}
	return names
}()

// usesKey reports whether p picks by the request's key.
func usesKey(p Policy) bool {
	a, ok := p.(Affinity)
	return ok && a.Affinity()
}
