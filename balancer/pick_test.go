package balancer

import (
	"fmt"
	"testing"
)

// poolOf returns a pool with policy name and n ready members; every third
// has weight 3 when weighted.
func poolOf(tb testing.TB, name string, n int, weighted bool) *Pool {
	tb.Helper()
	ms := make([]Member, n)
	for i := range ms {
		id := fmt.Sprintf("c%05d", i)
		ms[i] = Member{ID: id, Name: "app-" + id, Address: fmt.Sprintf("10.0.%d.%d:80", i>>8, i&255), Weight: 1}
		if weighted && i%3 == 0 {
			ms[i].Weight = 3
		}
	}
	p := NewReadyPool("app", ms)
	if !p.SetPolicy(name) {
		tb.Fatalf("SetPolicy(%q) = false", name)
	}
	return p
}

var pickSizes = []int{3, 100, 10000}

// TestPickAllocatesNothing: a pick from an unchanged pool allocates nothing,
// whatever the policy, the pool's size and its weights.
func TestPickAllocatesNothing(t *testing.T) {
	for _, name := range PolicyNames {
		for _, n := range pickSizes {
			for _, weighted := range []bool{false, true} {
				p := poolOf(t, name, n, weighted)
				key := KeyOf("192.0.2.7")
				runs := 100
				if n > 1000 && name == "hash" {
					runs = 5 // O(n) a pick
				}
				if got := testing.AllocsPerRun(runs, func() { p.Pick(key, nil) }); got != 0 {
					t.Errorf("%s, %d upstreams, weighted %v: Pick allocates %.1f times, want 0", name, n, weighted, got)
				}
			}
		}
	}
}

// TestPickAvoidsTried: a retry never goes to an upstream that already
// failed the request, whatever the policy, key included.
func TestPickAvoidsTried(t *testing.T) {
	for _, name := range PolicyNames {
		p := poolOf(t, name, 3, true)
		for k := range 200 {
			key := KeyOf(fmt.Sprint("client-", k))
			first := p.Pick(key, nil)
			second := p.Pick(key, []*Upstream{first})
			if second == nil || second == first {
				t.Fatalf("%s: retry of key %d after %s failed picked %v", name, k, first.Name(), second)
			}
			if third := p.Pick(key, []*Upstream{first, second}); third == nil || third == first || third == second {
				t.Fatalf("%s: second retry of key %d after %s and %s failed picked %v", name, k, first.Name(), second.Name(), third)
			}
			if none := p.Pick(key, p.Upstreams()); none != nil {
				t.Fatalf("%s: all tried, Pick = %s, want nil", name, none.Name())
			}
		}
	}
}

func TestSetPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ok       bool
		want     string
		needsKey bool
	}{
		{"", true, "round_robin", false},
		{"round_robin", true, "round_robin", false},
		{"least_conn", true, "least_conn", false},
		{"random", true, "random", false},
		{"hash", true, "hash", true},
		{"fastest", false, "round_robin", false},
	} {
		p := NewPool("app")
		if ok := p.SetPolicy(tc.name); ok != tc.ok || p.Policy() != tc.want || p.NeedsKey() != tc.needsKey {
			t.Errorf("SetPolicy(%q) = %v, then Policy() = %q, NeedsKey() = %v; want %v, %q, %v", tc.name, ok, p.Policy(), p.NeedsKey(), tc.ok, tc.want, tc.needsKey)
		}
	}
}

// TestPickFollowsAWeightChange: the weighted policies cache what they derive
// from a snapshot's ready slice; a Put that changes only a weight must still
// publish a new snapshot, so that they see the change.
func TestPickFollowsAWeightChange(t *testing.T) {
	p := NewPool("app")
	for _, id := range []string{"a", "b"} {
		p.Put(Member{ID: id, Name: id, Address: id + ":80", Weight: 1})
		p.MarkReady(id)
	}
	shares := func() map[string]int {
		got := map[string]int{}
		for range 100 {
			got[p.Pick(0, nil).Name()]++
		}
		return got
	}
	if got := shares(); got["a"] != 50 || got["b"] != 50 {
		t.Fatalf("weights 1 and 1: %v, want 50 each", got)
	}
	p.Put(Member{ID: "b", Name: "b", Address: "b:80", Weight: 3})
	if got := shares(); got["a"] != 25 || got["b"] != 75 {
		t.Errorf("after b's weight became 3: %v, want a 25, b 75", got)
	}
}
