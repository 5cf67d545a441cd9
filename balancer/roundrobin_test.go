package balancer_test

import (
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/dlb-lb/dlb/balancer"
)

func TestRoundRobinOrder(t *testing.T) {
	ready := pool(t, "a", "b", "c").Upstreams()
	var rr balancer.RoundRobin // the zero value is ready to use
	var got []string
	for range 7 {
		got = append(got, rr.Pick(ready, 0).Name())
	}
	if want := []string{"a", "b", "c", "a", "b", "c", "a"}; !slices.Equal(got, want) {
		t.Errorf("7 picks: got %q, want %q", got, want)
	}
}

func TestRoundRobinShares(t *testing.T) {
	tests := []struct {
		name  string
		input []string // replicas
		picks int
		want  map[string]int
	}{
		{"one", []string{"a"}, 10, map[string]int{"a": 10}},
		{"three", []string{"a", "b", "c"}, 300, map[string]int{"a": 100, "b": 100, "c": 100}},
		{"five", []string{"a", "b", "c", "d", "e"}, 50, map[string]int{"a": 10, "b": 10, "c": 10, "d": 10, "e": 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pool(t, tt.input...)
			got := map[string]int{}
			for range tt.picks {
				got[p.Pick(0, nil).Name()]++
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("%d picks from %q: got %v, want %v", tt.picks, tt.input, got, tt.want)
			}
		})
	}
}

// Concurrent picks share the counter: 300 picks from 3 goroutines still give
// each replica exactly 100.
func TestRoundRobinSharesUnderConcurrency(t *testing.T) {
	p := pool(t, "a", "b", "c")
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			local := map[string]int{}
			for range 100 {
				local[p.Pick(0, nil).Name()]++
			}
			mu.Lock()
			for k, v := range local {
				got[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if want := map[string]int{"a": 100, "b": 100, "c": 100}; !maps.Equal(got, want) {
		t.Errorf("300 concurrent picks: got %v, want %v", got, want)
	}
}

func TestRoundRobinEmpty(t *testing.T) {
	var rr balancer.RoundRobin
	if got := rr.Pick(nil, 0); got != nil {
		t.Errorf("Pick(nil): got %v, want nil", got.Name())
	}
}

func TestNewPolicy(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		wantOK bool
	}{
		{"empty is round robin", "", true},
		{"round robin", "round_robin", true},
		{"unknown", "least_conn_typo", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := balancer.NewPolicy(tt.input)
			if ok != tt.wantOK || (p != nil) != tt.wantOK {
				t.Errorf("NewPolicy(%q): got %T, %v; want ok %v", tt.input, p, ok, tt.wantOK)
			}
		})
	}
	for _, name := range balancer.PolicyNames {
		if _, ok := balancer.NewPolicy(name); !ok {
			t.Errorf("NewPolicy(%q) of PolicyNames: got false, want true", name)
		}
	}
}
