package balancer

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func TestRoundRobinSequence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		want    string // the first picks, by index
	}{
		{"one", []int{1}, "0000"},
		{"equal weights take turns", []int{1, 1, 1}, "012012012"},
		{"equal weights above 1 take turns too", []int{5, 5}, "0101"},
		// nginx's own example (commit 52327e0627f4): a a b a c a a.
		{"5:1:1 as nginx interleaves it", []int{5, 1, 1}, "0010200" + "0010200"},
		{"5:5:1 interleaves, no runs of five", []int{5, 5, 1}, "01012010101" + "01012010101"},
		{"9:1 gives the light one one pick in ten", []int{9, 1}, "0000010000" + "0000010000"},
		{"18:6 is 3:1", []int{18, 6}, "0010" + "0010"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ups := ready(tc.weights...)
			rr := &RoundRobin{}
			var b strings.Builder
			for range len(tc.want) {
				b.WriteString(strings.TrimPrefix(rr.Pick(ups, 0).Name(), "u"))
			}
			if got := b.String(); got != tc.want {
				t.Errorf("picks = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestRoundRobinSmooth checks, for random weights, the two promises of
// smooth weighted round robin: in every run of W consecutive picks (W the
// sum of the weights) each upstream gets exactly its weight, and no
// upstream of weight w gets more than ceil(w/(W-w))+1 picks in a row (its
// turns are spread between the others', not bunched).
func TestRoundRobinSmooth(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := 2 + r.IntN(8)
		weights := make([]int, n)
		total := 0
		for i := range weights {
			weights[i] = 1 + r.IntN(20)
			total += weights[i]
		}
		ups := ready(weights...)
		rr := &RoundRobin{}
		rr.next.Store(r.Uint64N(1 << 40)) // start anywhere in the cycle
		picks := make([]int, 3*total)
		index := map[*Upstream]int{}
		for i, u := range ups {
			index[u] = i
		}
		for i := range picks {
			picks[i] = index[rr.Pick(ups, 0)]
		}
		for start := 0; start+total <= len(picks); start++ {
			got := make([]int, n)
			for _, p := range picks[start : start+total] {
				got[p]++
			}
			for i := range got {
				if got[i] != weights[i] {
					t.Fatalf("weights %v: picks %d..%d gave upstream %d %d picks, want %d (its weight)", weights, start, start+total, i, got[i], weights[i])
				}
			}
		}
		run := 1
		for i := 1; i < len(picks); i++ {
			if picks[i] != picks[i-1] {
				run = 1
				continue
			}
			run++
			w := weights[picks[i]]
			if others := total - w; others > 0 {
				if limit := (w+others-1)/others + 1; run > limit {
					t.Fatalf("weights %v: upstream %d (weight %d) got %d picks in a row, want at most %d; picks %v", weights, picks[i], w, run, limit, picks)
				}
			}
		}
	}
}

// TestRoundRobinConcurrent: picks from many goroutines at once still give
// each upstream exactly its share over whole cycles.
func TestRoundRobinConcurrent(t *testing.T) {
	ups := ready(3, 1, 6) // W = 10
	rr := &RoundRobin{}
	const goroutines, each = 8, 1000 // 8000 picks: 800 cycles
	counts := make([][3]int, goroutines)
	index := map[*Upstream]int{ups[0]: 0, ups[1]: 1, ups[2]: 2}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				counts[g][index[rr.Pick(ups, 0)]]++
			}
		}()
	}
	wg.Wait()
	var got [3]int
	for _, c := range counts {
		for i := range c {
			got[i] += c[i]
		}
	}
	if want := [3]int{2400, 800, 4800}; got != want {
		t.Errorf("8000 concurrent picks over weights 3:1:6 = %v, want %v", got, want)
	}
}

// TestRoundRobinNewSlice: a pool change publishes a new ready slice, and the
// policy follows it (here a weight change) instead of its cached table.
func TestRoundRobinNewSlice(t *testing.T) {
	ups := ready(1, 1)
	rr := &RoundRobin{}
	if got := count(rr, ups, 100); got["u0"] != 50 || got["u1"] != 50 {
		t.Fatalf("equal weights: %v, want 50 each", got)
	}
	ups[1].weight.Store(3)
	changed := []*Upstream{ups[0], ups[1]}
	if got := count(rr, changed, 100); got["u0"] != 25 || got["u1"] != 75 {
		t.Errorf("after u1's weight became 3: %v, want u0 25, u1 75", got)
	}
}

// TestRoundRobinLongCycle: a pool whose cycle is too long to lay out (100
// upstreams of weights 1000 and 999: 99,950 picks a cycle) still gives each
// upstream exactly its weight per cycle, without allocating.
func TestRoundRobinLongCycle(t *testing.T) {
	weights := make([]int, 100)
	total := 0
	for i := range weights {
		weights[i] = 1000 - i%2
		total += weights[i]
	}
	ups := ready(weights...)
	rr := &RoundRobin{}
	if tbl := newWeightTable(ups, roundRobinTable); tbl.schedule != nil || tbl.step == 0 {
		t.Fatalf("a %d-pick cycle over %d upstreams was laid out (%d entries); want the stride", total, len(ups), len(tbl.schedule))
	}
	got := map[*Upstream]int{}
	for range total {
		got[rr.Pick(ups, 0)]++
	}
	for i, u := range ups {
		if got[u] != weights[i] {
			t.Errorf("upstream %d got %d picks of a %d-pick cycle, want %d (its weight)", i, got[u], total, weights[i])
		}
	}
	if allocs := testing.AllocsPerRun(1000, func() { rr.Pick(ups, 0) }); allocs != 0 {
		t.Errorf("Pick allocates %.1f times, want 0", allocs)
	}
}
