package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHistogramQuantile(t *testing.T) {
	bs := []bucket{{0.005, 10}, {0.01, 30}, {0.02, 40}, {math.Inf(1), 40}}
	tests := []struct{ q, want float64 }{
		{0.125, 0.0025}, // rank 5 of the first bucket's 10: halfway from 0
		{0.5, 0.0075},   // rank 20: halfway through (0.005, 0.01]
		{1, 0.02},
	}
	for _, tc := range tests {
		if got := histogramQuantile(tc.q, bs); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("q=%v: got %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := histogramQuantile(0.99, []bucket{{0.01, 1}, {math.Inf(1), 4}}); got != 0.01 {
		t.Errorf("quantile in +Inf: got %v, want the highest finite bound 0.01", got)
	}
	if got := histogramQuantile(0.5, []bucket{{0.01, 0}, {math.Inf(1), 0}}); !math.IsNaN(got) {
		t.Errorf("empty histogram: got %v, want NaN", got)
	}
}

func TestNearestRank(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, tc := range []struct{ q, want float64 }{{0.5, 3}, {0.99, 5}, {1, 5}, {0.2, 1}} {
		if got := nearestRank(xs, tc.q); got != tc.want {
			t.Errorf("q=%v: got %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := nearestRank(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("no samples: got %v, want NaN", got)
	}
}

// The folder bench.sh leaves becomes the page's convergence section.
func TestConvergenceSection(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"meta.tsv":          "from\t1\nto\t4\nwall_s\t3.25\nrequests\t12345\nerrors\t0\nload\twrk -t1 -c16, 4 ms between requests\n",
		"known-ms.txt":      "2.5\n3.1\n40\n",
		"ready-ms.txt":      "8.2\n12.5\n150\n",
		"first-buckets.tsv": "0.01\t1\n0.02\t2\n+Inf\t3\n0.005\t0\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := readConvergence(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	c.markdown(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) })
	md := b.String()
	for _, want := range []string{
		"## Convergence (scale 1 → 4 replicas)",
		"| dlb knows the replica (event received, container inspected) | 3 | 3.1 ms | 40 ms | 40 ms |",
		"| **ready: routable** (its port accepted a connection) | 3 | 12 ms | 150 ms | 150 ms |",
		"| its first request routed to it (histogram) | 3 | ≈ 15 ms | ≈ 20 ms | — |",
		"All 4 replicas were ready 3.2 s after the first `docker run`; the load got 12,345 requests through, 0 of them failed.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}

	os.WriteFile(filepath.Join(dir, "ready-ms.txt"), []byte("8.2\nsoon\n"), 0o644)
	if _, err := readConvergence(dir); err == nil || !strings.Contains(err.Error(), `"soon" is not a number`) {
		t.Errorf("a bad sample: got %v, want an error naming it", err)
	}
}
