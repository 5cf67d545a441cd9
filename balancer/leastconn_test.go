package balancer

import "testing"

func TestLeastConn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		weights  []int
		inFlight []int64
		want     []float64 // share of picks per upstream, ±0.02
	}{
		{"one upstream", []int{1}, []int64{7}, []float64{1}},
		{"of two, the idle one always", []int{1, 1}, []int64{1, 0}, []float64{0, 1}},
		{"equal load: even", []int{1, 1, 1}, []int64{3, 3, 3}, []float64{1. / 3, 1. / 3, 1. / 3}},
		// Two random choices: the idle one wins whenever it is drawn (2/3),
		// the busiest never.
		{"loads 0, 5, 10", []int{1, 1, 1}, []int64{0, 5, 10}, []float64{2. / 3, 1. / 3, 0}},
		{"load per unit of weight: 4/4 beats 4/1", []int{1, 4}, []int64{4, 4}, []float64{0, 1}},
		{"load per unit of weight: 3/1 loses to 8/4", []int{1, 4}, []int64{3, 8}, []float64{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ups := ready(tc.weights...)
			for i, n := range tc.inFlight {
				ups[i].inFlight.Store(n)
			}
			lc := &LeastConn{Rand: seeded(7)}
			const n = 30000
			got := count(lc, ups, n)
			for i, u := range ups {
				share := float64(got[u.Name()]) / n
				if !within(share, tc.want[i], 0.02) {
					t.Errorf("%s (in flight %d, weight %d) got %.3f of %d picks, want %.3f±0.02 (all: %v)", u.Name(), tc.inFlight[i], tc.weights[i], share, n, tc.want[i], got)
				}
			}
		})
	}
}

// TestLeastConnFollowsLoad: with requests that stay in flight, the picks
// even out the load, which round robin would not do for uneven requests.
func TestLeastConnFollowsLoad(t *testing.T) {
	ups := equalReady(4)
	ups[0].inFlight.Store(50) // a replica stuck with slow requests
	lc := &LeastConn{Rand: seeded(3)}
	for range 150 {
		lc.Pick(ups, 0).Claim() // never ends: load accumulates
	}
	// 200 in flight in all: 50 each is perfect balance.
	for _, u := range ups {
		if n := u.InFlight(); n < 45 || n > 55 {
			t.Errorf("%s has %d in flight after 150 picks, want 50±5 (u0 started with 50)", u.Name(), n)
		}
	}
}

// TestLeastConnSeeded: the same seed gives the same picks.
func TestLeastConnSeeded(t *testing.T) {
	ups := equalReady(10)
	a, b := &LeastConn{Rand: seeded(42)}, &LeastConn{Rand: seeded(42)}
	for i := range 100 {
		if x, y := a.Pick(ups, 0), b.Pick(ups, 0); x != y {
			t.Fatalf("pick %d: %s and %s from the same seed", i, x.Name(), y.Name())
		}
	}
}
