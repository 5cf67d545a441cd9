package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkConvergence measures how fast dlb follows the fleet on the real
// engine: for each replica that joins, the time from the Docker event that
// announced it to the moment it is ready in its pool (routable), as dlb logs
// it ("replica ready", since_event). It scales the demo service from 0 to 1
// and then from 1 to N (DLB_BENCH_REPLICAS, default 50) and reports the
// median and p99 in milliseconds. Run it with
//
//	go test -run '^$' -bench Convergence -benchtime 1x ./cmd/dlb
func BenchmarkConvergence(b *testing.B) {
	n := 50
	if v, err := strconv.Atoi(os.Getenv("DLB_BENCH_REPLICAS")); err == nil && v > 1 {
		n = v
	}
	for _, step := range []struct {
		name     string
		from, to int
	}{{"0to1", 0, 1}, {fmt.Sprintf("1to%d", n), 1, n}} {
		b.Run(step.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				med, p99, count := convergeOnce(b, step.from, step.to)
				b.ReportMetric(med, "ms-median")
				b.ReportMetric(p99, "ms-p99")
				b.ReportMetric(float64(count), "replicas")
			}
		})
	}
}

// convergeOnce scales a fresh project from `from` to `to` replicas behind a
// fresh dlb and returns the median and p99 event-to-ready times of the new
// replicas, in ms.
func convergeOnce(b *testing.B, from, to int) (median, p99 float64, count int) {
	b.Helper()
	tb := testing.TB(b)
	requireDocker(tb)
	p := newProject(tb, appProject)
	if from > 0 {
		p.scale("app", from)
	}
	d := startDLB(tb, "--network", "appnet", "--project", p.name, "--log-level", "info")
	pool := p.name + "-app"
	if from > 0 {
		d.waitReady(tb, pool, from, 30*time.Second)
	}
	before := len(sinceEvent(d.logs()))
	b.ResetTimer()
	p.scale("app", to)
	d.waitReady(tb, pool, to, 5*time.Minute)
	b.StopTimer()
	samples := sinceEvent(d.logs())[before:]
	if len(samples) < to-from {
		b.Fatalf("dlb logged %d event-to-ready times for %d new replicas", len(samples), to-from)
	}
	slices.Sort(samples)
	return samples[len(samples)/2], samples[min(len(samples)-1, len(samples)*99/100)], len(samples)
}

// sinceEvent returns, in log order, the since_event (ms) of every "replica
// ready" line of a JSON log.
func sinceEvent(log string) []float64 {
	var out []float64
	for _, line := range strings.Split(log, "\n") {
		var m struct {
			Message    string   `json:"message"`
			SinceEvent *float64 `json:"since_event"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Message == "replica ready" && m.SinceEvent != nil {
			out = append(out, *m.SinceEvent)
		}
	}
	return out
}
