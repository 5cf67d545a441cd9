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
// it ("replica ready", since_event_ms). It scales the demo service from 0 to 1
// and then from 1 to N (DLB_BENCH_REPLICAS, default 50) and reports the
// median and p99 in milliseconds; the discovery-ms figures are the part of
// it until dlb knew the replica ("replica starting": event received,
// container inspected), the rest is the wait for its port to accept a
// connection. Run it with
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
				ready, known := convergeOnce(b, step.from, step.to)
				// Logged too: a failure in the clean-up would drop the metrics.
				b.Logf("%s: event to ready: median %.1f ms, p99 %.1f ms; event to starting: median %.1f ms, p99 %.1f ms; %d replicas",
					step.name, quantile(ready, 0.5), quantile(ready, 0.99), quantile(known, 0.5), quantile(known, 0.99), len(ready))
				b.ReportMetric(quantile(ready, 0.5), "ms-median")
				b.ReportMetric(quantile(ready, 0.99), "ms-p99")
				b.ReportMetric(quantile(known, 0.5), "discovery-ms-median")
				b.ReportMetric(quantile(known, 0.99), "discovery-ms-p99")
				b.ReportMetric(float64(len(ready)), "replicas")
			}
		})
	}
}

// convergeOnce scales a fresh project from `from` to `to` replicas behind a
// fresh dlb and returns, in ms, the event-to-ready and event-to-starting
// times of the new replicas.
func convergeOnce(b *testing.B, from, to int) (ready, known []float64) {
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
	logs := d.logs()
	readyBefore, knownBefore := len(sinceEvent(logs, "replica ready")), len(sinceEvent(logs, "replica starting"))
	b.ResetTimer()
	p.scale("app", to)
	d.waitReady(tb, pool, to, 5*time.Minute)
	b.StopTimer()
	logs = d.logs()
	ready, known = sinceEvent(logs, "replica ready")[readyBefore:], sinceEvent(logs, "replica starting")[knownBefore:]
	if len(ready) < to-from || len(known) < to-from {
		b.Fatalf("dlb logged %d event-to-ready and %d event-to-starting times for %d new replicas", len(ready), len(known), to-from)
	}
	return ready, known
}

// quantile returns the q-quantile (nearest rank) of xs.
func quantile(xs []float64, q float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[min(len(s)-1, int(float64(len(s))*q))]
}

// sinceEvent returns, in log order, the since_event_ms (ms) of every line of a
// JSON log with the message msg ("replica ready", "replica starting").
func sinceEvent(log, msg string) []float64 {
	var out []float64
	for _, line := range strings.Split(log, "\n") {
		var m struct {
			Message    string   `json:"message"`
			SinceEvent *float64 `json:"since_event_ms"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Message == msg && m.SinceEvent != nil {
			out = append(out, *m.SinceEvent)
		}
	}
	return out
}
