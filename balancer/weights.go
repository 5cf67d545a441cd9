package balancer

import (
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// This file holds what several policies share: a random source, the affinity
// key of a string, a 64-bit mixer, and the weight table that weighted
// policies derive from a pool's ready upstreams.

// KeyOf returns the affinity key of s (for example a client address or a
// header value) for Pool.Pick: its 64-bit FNV-1a hash. It does not allocate.
func KeyOf(s string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}

// mix64 scrambles x so that every input bit affects every output bit (the
// finaliser of the SplitMix64 generator), turning FNV's weak low bits and
// nearby keys into independent-looking numbers.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// random returns a random number from src, or from the runtime's generator
// (safe for concurrent use, no lock) when src is nil.
func random(src rand.Source) uint64 {
	if src == nil {
		return rand.Uint64()
	}
	return src.Uint64()
}

// below maps a uniformly random x to [0, n) without division (Lemire's
// multiply-shift); the bias is at most n/2^64.
func below(x, n uint64) uint64 {
	hi, _ := bits.Mul64(x, n)
	return hi
}

// weightTable is what weighted policies need to know about one ready slice.
// It is built once per slice (a pool publishes a new slice on every change,
// weights included) and then only read.
type weightTable struct {
	ready []*Upstream // the slice it describes (kept to compare identity)
	equal bool        // all weights are equal: policies fall back to their unweighted form
	total uint64      // sum of the weights (divided by their GCD when they differ)
	cum   []uint64    // cum[i] = sum of the weights of ready[:i+1] (divided by their GCD); nil when equal
	// Weighted round robin's: the order of one cycle of total picks when
	// total <= maxSchedule, else the stride of its fallback (coprime with
	// total, near total/φ).
	schedule []*Upstream
	step     uint64

	// Hashing's: each upstream's seed (the hash of its ID) and, when the
	// weights differ, 1/weight, side by side so that scoring every upstream
	// reads memory in order.
	seeds   []uint64
	inverse []float64
}

// tableKind says which policy's extras a weight table carries.
type tableKind uint8

const (
	plainTable      tableKind = iota // equal, total, cum
	roundRobinTable                  // and schedule or step
	hashTable                        // and seeds and inverse
)

// maxSchedule bounds the cycle weighted round robin lays out in memory
// (8 bytes a pick), and maxScheduleWork the steps to build it (cycle length
// times upstreams: a few milliseconds at most). Larger pools of differing
// weights (hundreds of upstreams, or weights in the hundreds) use the
// stride instead.
const (
	maxSchedule     = 1 << 16
	maxScheduleWork = 1 << 22
)

// weightCache holds the table of the last ready slice a policy saw, so that
// picks from an unchanged pool do not rebuild it. Safe for concurrent use:
// reading the table takes no lock; a rebuild (after a pool change, or for a
// retry's filtered slice) takes one, so that concurrent picks build it once.
type weightCache struct {
	last atomic.Pointer[weightTable]
	mu   sync.Mutex
}

// table returns the weight table of ready, building it (with the extras of
// kind) when ready is not the slice of the cached table. Only a rebuild
// allocates.
func (c *weightCache) table(ready []*Upstream, kind tableKind) *weightTable {
	if t := c.last.Load(); t != nil && sameSlice(t.ready, ready) {
		return t
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.last.Load(); t != nil && sameSlice(t.ready, ready) {
		return t
	}
	t := newWeightTable(ready, kind)
	c.last.Store(t)
	return t
}

// sameSlice reports whether a and b are the same slice (same array, same
// length), not merely equal ones.
func sameSlice(a, b []*Upstream) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func newWeightTable(ready []*Upstream, kind tableKind) *weightTable {
	t := &weightTable{ready: ready, equal: true}
	for i, u := range ready {
		w := uint64(u.Weight())
		t.total += w
		if i > 0 && w != uint64(ready[0].Weight()) {
			t.equal = false
		}
	}
	if kind == hashTable {
		t.seeds = make([]uint64, len(ready))
		for i, u := range ready {
			t.seeds[i] = mix64(KeyOf(u.ID()))
		}
		if !t.equal {
			t.inverse = make([]float64, len(ready))
			for i, u := range ready {
				t.inverse[i] = 1 / float64(u.Weight())
			}
		}
	}
	if t.equal {
		return t
	}
	// Weights 18 and 6 are weights 3 and 1: a shorter cycle, and a smoother one.
	var g uint64
	for _, u := range ready {
		g = gcd(uint64(u.Weight()), g)
	}
	t.cum = make([]uint64, len(ready))
	var sum uint64
	for i, u := range ready {
		sum += uint64(u.Weight()) / g
		t.cum[i] = sum
	}
	t.total = sum
	switch {
	case kind != roundRobinTable:
	case sum <= maxSchedule && sum*uint64(len(ready)) <= maxScheduleWork:
		t.schedule = smoothSchedule(ready, t.cum)
	default:
		t.step = goldenStride(sum)
	}
	return t
}

// smoothSchedule lays out one cycle of nginx's smooth weighted round robin
// (nginx commit 52327e0627f4): each turn, every upstream's current weight
// grows by its weight, the one with the highest goes next (the first of
// equals), and its current weight drops by the total. Weights 5, 1, 1 give
// a a b a c a a. Each upstream gets exactly its weight per cycle, spread
// between the others' turns. Building costs total·len(ready) steps, once per
// pool change.
func smoothSchedule(ready []*Upstream, cum []uint64) []*Upstream {
	weight := make([]int64, len(cum))
	current := make([]int64, len(cum))
	prev := uint64(0)
	for i, c := range cum {
		weight[i], prev = int64(c-prev), c
	}
	total := int64(prev)
	out := make([]*Upstream, total)
	for k := range out {
		best := 0
		for i, w := range weight {
			current[i] += w
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		out[k] = ready[best]
	}
	return out
}

// index returns the upstream whose share of [0, total) holds x.
func (t *weightTable) index(x uint64) *Upstream {
	lo, hi := 0, len(t.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if t.cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return t.ready[lo]
}

// goldenStride returns the number coprime with n nearest to n/φ (φ the golden
// ratio). Stepping around [0, n) by it visits every number once per n steps,
// and consecutive steps land far apart (the three-distance theorem): weighted
// round robin's fallback for cycles too long to lay out, exact in its shares
// though less even in its spacing than the schedule.
func goldenStride(n uint64) uint64 {
	if n < 3 {
		return 1
	}
	g := uint64(float64(n)*0.6180339887498949 + 0.5)
	for d := uint64(0); ; d++ {
		if c := g + d; c < n && gcd(c, n) == 1 {
			return c
		}
		if d < g {
			if c := g - d; c > 0 && gcd(c, n) == 1 {
				return c
			}
		}
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
