package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// convergence is what bench.sh measured while it scaled the backends behind
// a dlb from From to To containers under a light steady load. bench.sh
// leaves it in a folder:
//
//	meta.tsv           KEY<TAB>VALUE: from, to, wall_s (first docker run to
//	                   all ready), requests and errors (wrk's, during the
//	                   scale), load (a description of it)
//	known-ms.txt       one number per new replica: Docker event -> dlb knows
//	                   it ("replica starting" in dlb's log, since_event_ms)
//	ready-ms.txt       the same to "replica ready": routable
//	first-buckets.tsv  LE<TAB>COUNT: dlb_event_to_first_request_seconds,
//	                   cumulative, from dlb's /metrics after the scale
type convergence struct {
	From, To         int
	Wall             float64 // seconds
	Requests, Errors int64
	Load             string
	Known, Ready     []float64 // ms, exact
	First            []bucket  // cumulative, by le (seconds); +Inf last
}

type bucket struct{ LE, Count float64 }

func readConvergence(dir string) (*convergence, error) {
	c := &convergence{}
	meta, err := readPairs(filepath.Join(dir, "meta.tsv"))
	if err != nil {
		return nil, err
	}
	for key, dst := range map[string]*int{"from": &c.From, "to": &c.To} {
		if *dst, err = strconv.Atoi(meta[key]); err != nil {
			return nil, fmt.Errorf("meta.tsv: %s: %w", key, err)
		}
	}
	if c.Wall, err = strconv.ParseFloat(meta["wall_s"], 64); err != nil {
		return nil, fmt.Errorf("meta.tsv: wall_s: %w", err)
	}
	for key, dst := range map[string]*int64{"requests": &c.Requests, "errors": &c.Errors} {
		if *dst, err = strconv.ParseInt(meta[key], 10, 64); err != nil {
			return nil, fmt.Errorf("meta.tsv: %s: %w", key, err)
		}
	}
	c.Load = meta["load"]
	if c.Known, err = readNumbers(filepath.Join(dir, "known-ms.txt")); err != nil {
		return nil, err
	}
	if c.Ready, err = readNumbers(filepath.Join(dir, "ready-ms.txt")); err != nil {
		return nil, err
	}
	pairs, err := readLines(filepath.Join(dir, "first-buckets.tsv"))
	if err != nil {
		return nil, err
	}
	for _, line := range pairs {
		le, count, ok := strings.Cut(line, "\t")
		b := bucket{}
		var e1, e2 error
		if b.LE, e1 = strconv.ParseFloat(le, 64); le == "+Inf" {
			b.LE, e1 = math.Inf(1), nil
		}
		b.Count, e2 = strconv.ParseFloat(count, 64)
		if !ok || e1 != nil || e2 != nil {
			return nil, fmt.Errorf("first-buckets.tsv: %q: want LE<TAB>COUNT", line)
		}
		c.First = append(c.First, b)
	}
	slices.SortFunc(c.First, func(a, b bucket) int { return cmpFloat(a.LE, b.LE) })
	return c, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := strings.TrimSpace(s.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out, s.Err()
}

func readPairs(path string) (map[string]string, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, "\t")
		if !ok {
			return nil, fmt.Errorf("%s: %q: want KEY<TAB>VALUE", filepath.Base(path), l)
		}
		m[k] = v
	}
	return m, nil
}

func readNumbers(path string) ([]float64, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	out := make([]float64, 0, len(lines))
	for _, l := range lines {
		v, err := strconv.ParseFloat(l, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a number", filepath.Base(path), l)
		}
		out = append(out, v)
	}
	return out, nil
}

// nearestRank is the q-quantile of xs by the nearest-rank method; NaN when
// xs is empty.
func nearestRank(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// histogramQuantile estimates the q-quantile of a cumulative histogram as
// Prometheus' histogram_quantile does: linear within the bucket that holds
// it, from 0 for the first bucket; the highest finite bound when it falls in
// +Inf. NaN when the histogram is empty.
func histogramQuantile(q float64, bs []bucket) float64 {
	if len(bs) == 0 || bs[len(bs)-1].Count == 0 {
		return math.NaN()
	}
	rank := q * bs[len(bs)-1].Count
	lower, below := 0.0, 0.0
	for i, b := range bs {
		if b.Count >= rank {
			if math.IsInf(b.LE, 1) {
				if i == 0 {
					return math.NaN()
				}
				return bs[i-1].LE
			}
			if b.Count == below {
				return b.LE
			}
			return lower + (b.LE-lower)*(rank-below)/(b.Count-below)
		}
		lower, below = b.LE, b.Count
	}
	return math.NaN()
}

func (c *convergence) markdown(pf func(string, ...any)) {
	n := c.To - c.From
	pf("## Convergence (scale %d → %d replicas)\n\n", c.From, c.To)
	pf("With one backend behind a fresh dlb and a light steady load on it (%s), %d more backend containers were started at once ", c.Load, n)
	pf("(`docker run`, 8 at a time). Each new replica's times start at the Docker event that announced it (`start`; these have no HEALTHCHECK, so dlb then waits for their port to accept a connection). ")
	pf("The first two rows are exact, from dlb's log (`since_event_ms` of its \"replica starting\" and \"replica ready\" lines); ")
	pf("the last is estimated from dlb's `dlb_event_to_first_request_seconds` histogram as Prometheus' `histogram_quantile` would (linear within a bucket).\n\n")
	pf("| from the Docker event to | replicas | median | p99 | max |\n|---|--:|--:|--:|--:|\n")
	row := func(what string, xs []float64) {
		pf("| %s | %d | %s | %s | %s |\n", what, len(xs), ms(nearestRank(xs, .5)), ms(nearestRank(xs, .99)), ms(nearestRank(xs, 1)))
	}
	row("dlb knows the replica (event received, container inspected)", c.Known)
	row("**ready: routable** (its port accepted a connection)", c.Ready)
	count := 0.0
	if len(c.First) > 0 {
		count = c.First[len(c.First)-1].Count
	}
	pf("| its first request routed to it (histogram) | %.0f | ≈ %s | ≈ %s | — |\n\n",
		count, ms(1e3*histogramQuantile(.5, c.First)), ms(1e3*histogramQuantile(.99, c.First)))
	pf("All %d replicas were ready %.1f s after the first `docker run`; the load got %s requests through, %d of them failed.\n",
		c.To, c.Wall, thousands(float64(c.Requests)), c.Errors)
}

// ms formats milliseconds.
func ms(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
}
