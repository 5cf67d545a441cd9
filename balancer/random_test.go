package balancer

import "testing"

func TestRandom(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		want    []float64 // share of picks per upstream, ±0.01
	}{
		{"one upstream", []int{1}, []float64{1}},
		{"uniform", []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}},
		{"equal weights above 1: uniform", []int{4, 4}, []float64{.5, .5}},
		{"canary 9:1", []int{9, 1}, []float64{.9, .1}},
		{"1:2:3:4", []int{1, 2, 3, 4}, []float64{.1, .2, .3, .4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ups := ready(tc.weights...)
			r := &Random{Rand: seeded(11)}
			const n = 40000
			got := count(r, ups, n)
			for i, u := range ups {
				share := float64(got[u.Name()]) / n
				if !within(share, tc.want[i], 0.01) {
					t.Errorf("%s (weight %d) got %.3f of %d picks, want %.3f±0.01 (all: %v)", u.Name(), tc.weights[i], share, n, tc.want[i], got)
				}
			}
		})
	}
}

func TestRandomSeeded(t *testing.T) {
	ups := ready(1, 2, 3, 4, 5)
	a, b := &Random{Rand: seeded(5)}, &Random{Rand: seeded(5)}
	for i := range 100 {
		if x, y := a.Pick(ups, 0), b.Pick(ups, 0); x != y {
			t.Fatalf("pick %d: %s and %s from the same seed", i, x.Name(), y.Name())
		}
	}
}
