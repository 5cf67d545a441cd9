package balancer

import (
	"fmt"
	"slices"
	"testing"
)

const hashKeys = 10000

// owners returns the upstream Hash picks for each of hashKeys client
// addresses.
func owners(ups []*Upstream) []*Upstream {
	h := &Hash{}
	out := make([]*Upstream, hashKeys)
	for i := range out {
		out[i] = h.Pick(ups, KeyOf(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255)))
	}
	return out
}

func shares(owner []*Upstream) map[*Upstream]int {
	m := map[*Upstream]int{}
	for _, u := range owner {
		m[u]++
	}
	return m
}

func TestHashSpread(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		tol     float64 // in points of share
	}{
		{"5 equal", []int{1, 1, 1, 1, 1}, 0.02},
		{"2 equal", []int{3, 3}, 0.02},
		{"weighted 1:3", []int{1, 3}, 0.02},
		{"weighted 1:9 canary", []int{9, 1}, 0.02},
		{"weighted 1:2:3:4", []int{1, 2, 3, 4}, 0.02},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ups := ready(tc.weights...)
			got := shares(owners(ups))
			total := 0
			for _, w := range tc.weights {
				total += w
			}
			for i, u := range ups {
				share, want := float64(got[u])/hashKeys, float64(tc.weights[i])/float64(total)
				if !within(share, want, tc.tol) {
					t.Errorf("%s (weight %d) owns %.3f of %d keys, want %.3f±%.2f", u.Name(), tc.weights[i], share, hashKeys, want, tc.tol)
				}
			}
		})
	}
}

// TestHashStable: when an upstream leaves, only the keys it owned move, and
// they spread over all the others; when one joins, keys move only to it.
func TestHashStable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		leaver  int
	}{
		{"5 equal, the middle one leaves", []int{1, 1, 1, 1, 1}, 2},
		{"5 equal, the first one leaves", []int{1, 1, 1, 1, 1}, 0},
		{"weighted 1:2:3:4, the 2 leaves", []int{1, 2, 3, 4}, 1},
		{"weighted 9:1, the canary leaves", []int{9, 1, 9}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ups := ready(tc.weights...)
			before := owners(ups)
			gone := ups[tc.leaver]
			after := owners(slices.Delete(slices.Clone(ups), tc.leaver, tc.leaver+1))
			movedTo := map[*Upstream]int{}
			moved := 0
			for k := range before {
				switch {
				case before[k] == gone:
					moved++
					movedTo[after[k]]++
				case after[k] != before[k]:
					t.Fatalf("key %d moved from %s to %s, though only %s left", k, before[k].Name(), after[k].Name(), gone.Name())
				}
			}
			// The departed upstream's keys spread over the others by weight.
			rest := 0
			for i, w := range tc.weights {
				if i != tc.leaver {
					rest += w
				}
			}
			for i, u := range ups {
				if i == tc.leaver {
					continue
				}
				share, want := float64(movedTo[u])/float64(moved), float64(tc.weights[i])/float64(rest)
				if !within(share, want, 0.05) {
					t.Errorf("%s took %.3f of the %d keys %s had, want %.3f±0.05", u.Name(), share, moved, gone.Name(), want)
				}
			}

			// And back: the upstream joins again, and takes exactly its keys.
			again := owners(ups)
			for k := range again {
				if again[k] != before[k] {
					t.Fatalf("key %d: %s after the upstream came back, %s before it left", k, again[k].Name(), before[k].Name())
				}
			}
		})
	}
}

func TestHashSameKeySameUpstream(t *testing.T) {
	ups := equalReady(7)
	h := &Hash{}
	for i := range 1000 {
		key := KeyOf(fmt.Sprintf("user-%d", i))
		first := h.Pick(ups, key)
		for range 3 {
			if got := h.Pick(ups, key); got != first {
				t.Fatalf("key user-%d: %s, then %s", i, first.Name(), got.Name())
			}
		}
	}
}

func TestKeyOf(t *testing.T) {
	// FNV-1a 64 test vectors (from the FNV reference).
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"", 0xcbf29ce484222325},
		{"a", 0xaf63dc4c8601ec8c},
		{"foobar", 0x85944171f73967e8},
	} {
		if got := KeyOf(tc.in); got != tc.want {
			t.Errorf("KeyOf(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}
