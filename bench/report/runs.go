package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// runColumns is the header bench.sh writes to runs.tsv, one row per wrk run.
// cpu_us_req is "NA" where no proxy stands between wrk and the backend.
var runColumns = []string{"round", "conns", "target", "rps", "p50_us", "p99_us", "requests", "errors", "cpu_us_req"}

// baseline is the target every other one is compared with, run by run.
// A target named NAME-PROTOCOL (dlb-https, dlb-h2) is compared with
// nginx-PROTOCOL, nginx over the same protocol.
const baseline = "nginx"

// protocol is the part of a target's name after its first '-' ("" for
// plain HTTP/1.1), which names the rows compared with each other.
func protocol(target string) string {
	if i := strings.IndexByte(target, '-'); i >= 0 {
		return target[i+1:]
	}
	return ""
}

// baselineOf is the target that target is compared with.
func baselineOf(target string) string {
	if p := protocol(target); p != "" {
		return baseline + "-" + p
	}
	return baseline
}

// Run is one wrk run against one target.
type Run struct {
	Round, Conns int
	Target       string
	RPS          float64 // requests per second over the whole run
	P50, P99     float64 // latency percentiles, microseconds
	Requests     int64
	Errors       int64   // socket errors, timeouts and non-2xx/3xx answers
	CPU          float64 // proxy CPU microseconds per request; NaN when not measured
}

// parseRuns reads runs.tsv; it insists on the exact header so that a change
// to bench.sh that shifts a column fails here instead of mislabelling numbers.
func parseRuns(r io.Reader) ([]Run, error) {
	sc := bufio.NewScanner(r)
	var runs []Run
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" {
			continue
		}
		f := strings.Split(text, "\t")
		if line == 1 {
			if !slices.Equal(f, runColumns) {
				return nil, fmt.Errorf("line 1: header is %q, want %q", text, strings.Join(runColumns, "\t"))
			}
			continue
		}
		if len(f) != len(runColumns) {
			return nil, fmt.Errorf("line %d: %d fields, want %d (%s)", line, len(f), len(runColumns), strings.Join(runColumns, " "))
		}
		var run Run
		var err error
		num := func(i int) float64 {
			if err != nil {
				return 0
			}
			if f[i] == "NA" {
				return math.NaN()
			}
			var v float64
			v, err = strconv.ParseFloat(f[i], 64)
			if err != nil {
				err = fmt.Errorf("line %d: column %s: %q is not a number (or NA)", line, runColumns[i], f[i])
			}
			return v
		}
		run.Round = int(num(0))
		run.Conns = int(num(1))
		run.Target = f[2]
		run.RPS, run.P50, run.P99 = num(3), num(4), num(5)
		run.Requests, run.Errors = int64(num(6)), int64(num(7))
		run.CPU = num(8)
		if err != nil {
			return nil, err
		}
		if run.Target == "" {
			return nil, fmt.Errorf("line %d: empty target", line)
		}
		runs = append(runs, run)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, errors.New("no runs: the bench recorded nothing")
	}
	return runs, nil
}

// Ratios compare a target with the baseline; NaN where either side is missing.
type Ratios struct{ RPS, P50, P99, CPU float64 }

// Summary is one target at one concurrency: medians over the rounds.
type Summary struct {
	Conns    int
	Target   string
	Rounds   int
	RPS      float64
	P50, P99 float64 // microseconds
	CPU      float64 // microseconds per request; NaN when not measured
	Errors   int64   // all rounds together
	// VsBaseline is the median over rounds of target ÷ baseline in the same
	// round, so slow drift of the shared machine cancels out.
	VsBaseline Ratios
}

// summarise groups runs by concurrency (in first-seen order) and target (in
// the order given, then any others in first-seen order).
func summarise(runs []Run, order []string) []Summary {
	var conns []int
	targets := slices.Clone(order)
	type key struct {
		conns  int
		target string
	}
	group := map[key][]Run{}
	type baseKey struct {
		round, conns int
		baseline     string
	}
	base := map[baseKey]Run{} // the baselines' runs
	for _, r := range runs {
		if !slices.Contains(conns, r.Conns) {
			conns = append(conns, r.Conns)
		}
		if !slices.Contains(targets, r.Target) {
			targets = append(targets, r.Target)
		}
		k := key{r.Conns, r.Target}
		group[k] = append(group[k], r)
		if r.Target == baselineOf(r.Target) {
			base[baseKey{r.Round, r.Conns, r.Target}] = r
		}
	}

	var out []Summary
	for _, c := range conns {
		for _, t := range targets {
			g := group[key{c, t}]
			if len(g) == 0 {
				continue
			}
			s := Summary{Conns: c, Target: t, Rounds: len(g)}
			var rps, p50, p99, cpu, rRPS, rP50, rP99, rCPU []float64
			for _, r := range g {
				rps, p50, p99, cpu = append(rps, r.RPS), append(p50, r.P50), append(p99, r.P99), append(cpu, r.CPU)
				s.Errors += r.Errors
				if b, ok := base[baseKey{r.Round, c, baselineOf(t)}]; ok {
					rRPS = append(rRPS, r.RPS/b.RPS)
					rP50 = append(rP50, r.P50/b.P50)
					rP99 = append(rP99, r.P99/b.P99)
					rCPU = append(rCPU, r.CPU/b.CPU)
				}
			}
			s.RPS, s.P50, s.P99, s.CPU = median(rps), median(p50), median(p99), median(cpu)
			s.VsBaseline = Ratios{median(rRPS), median(rP50), median(rP99), median(rCPU)}
			out = append(out, s)
		}
	}
	return out
}

// median of the values that are numbers; NaN when there are none.
func median(vs []float64) float64 {
	var xs []float64
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
