package balancer

import (
	"testing"
	"time"
)

// simulate serves rounds of requests on an adaptive upstream whose every
// slot is in use (a queue waits in front), each request taking
// latency(in flight) or failing when fails(in flight), and returns the
// limit it ends with.
func simulate(rounds int, latency func(n int64) time.Duration, fails func(n int64) bool) (limit int64, failed int) {
	u := newTestUpstream("a", 1)
	u.setLimit(Limit{Auto: true})
	for range rounds {
		n := u.Limit()
		u.inFlight.Store(n)
		for range n {
			bad := fails != nil && fails(n)
			if bad {
				failed++
			}
			u.inFlight.Add(1) // EndAfter takes it back
			u.EndAfter(false, bad, latency(n))
		}
	}
	return u.Limit(), failed
}

func TestAdaptiveLimit(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		latency func(n int64) time.Duration
		fails   func(n int64) bool
		rounds  int
		lo, hi  int64
	}{
		{"latency flat: it grows", func(int64) time.Duration { return 5 * ms }, nil, 200, 100, MaxLimit},
		// 4 cores: from 4 at once, each request takes longer in proportion.
		{"CPU-bound on 4 cores: a few past the cores", func(n int64) time.Duration { return 5 * ms * time.Duration(max(n, 4)) / 4 }, nil, 2000, 5, 16},
		{"fails past 8: near 8", func(int64) time.Duration { return 5 * ms }, func(n int64) bool { return n > 8 }, 2000, 5, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := simulate(tt.rounds, tt.latency, tt.fails)
			if got < tt.lo || got > tt.hi {
				t.Errorf("limit after %d rounds: got %d, want %d to %d", tt.rounds, got, tt.lo, tt.hi)
			}
		})
	}
}

func TestFixedLimitReplacesAnAdaptiveOne(t *testing.T) {
	u := newTestUpstream("a", 1)
	u.setLimit(Limit{Auto: true})
	if !u.Adaptive() || u.Limit() != limiterInitial {
		t.Fatalf("auto: got adaptive %v, limit %d; want true, %d", u.Adaptive(), u.Limit(), limiterInitial)
	}
	u.setLimit(Limit{Max: 3})
	if u.Adaptive() || u.Limit() != 3 {
		t.Errorf("after a fixed limit of 3: got adaptive %v, limit %d; want false, 3", u.Adaptive(), u.Limit())
	}
}
