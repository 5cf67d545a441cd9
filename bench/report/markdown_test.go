package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormatters(t *testing.T) {
	tests := []struct{ got, want string }{
		{thousands(1234567.4), "1,234,567"},
		{thousands(999), "999"},
		{thousands(1000), "1,000"},
		{thousands(math.NaN()), "—"},
		{latency(850), "850 µs"},
		{latency(2914), "2.91 ms"},
		{latency(1.5e6), "1.50 s"},
		{latency(math.NaN()), "—"},
		{cpu(41.26), "41.3"},
		{cpu(math.NaN()), "—"},
		{ratio(1.234), "1.23×"},
		{ratio(math.Inf(1)), "—"},
		{plural(1, "round"), "1 round"},
		{plural(3, "round"), "3 rounds"},
	}
	for i, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("case %d: got %q, want %q", i, tc.got, tc.want)
		}
	}
}

// TestRunWritesPageAndChart runs the whole report on sample runs, as bench.sh does.
func TestRunWritesPageAndChart(t *testing.T) {
	dir := t.TempDir()
	runsPath := filepath.Join(dir, "benchmarks-runs.tsv")
	conf := filepath.Join(dir, "nginx.conf")
	for path, body := range map[string]string{runsPath: sampleRuns, conf: "worker_processes 2;\n"} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := options{
		runs: runsPath, md: filepath.Join(dir, "benchmarks.md"), png: filepath.Join(dir, "benchmarks.png"),
		machine: "2 CPUs", command: "make bench", replicas: 3, duration: 10, threads: 2, workers: 2,
		targets: []string{"dlb", "nginx", "haproxy", "direct"},
		skip:    pairs{{"dlb", "cmd/dlb does not exist yet"}},
		attach:  pairs{{"nginx.conf", conf}},
	}
	if err := run(o); err != nil {
		t.Fatalf("run: %v", err)
	}
	md, err := os.ReadFile(o.md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## 64 connections",
		"`wrk -t2 -c64 -d10s`, median of 2 rounds",
		"| dlb | skipped: cmd/dlb does not exist yet |",
		"| nginx | 15,000 | 3.50 ms | 10.00 ms | 45.0 | 1.00× | 1.00× | 1.00× | 1.00× | 0 |",
		"| haproxy | 17,500 | 2.65 ms | 8.40 ms | 33.0 | 1.20× |",
		"| direct | 29,000 | 2.10 ms | 7.20 ms | — | 2.15× |",
		"![req/s, p99 latency and proxy CPU per request, by target and concurrency](benchmarks.png)",
		"[`benchmarks-runs.tsv`](benchmarks-runs.tsv)",
		"<details><summary>nginx.conf</summary>",
		"worker_processes 2;",
		"## Convergence\n\nNot measured in this run (`BENCH_CONVERGENCE=0`).",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("benchmarks.md lacks %q; it reads:\n%s", want, md)
		}
	}
	b, err := os.ReadFile(o.png)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Errorf("%s is not a PNG", o.png)
	}
	if _, err := os.Stat(o.md + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("a temporary file was left behind: %v", err)
	}
}

func TestRunNeedsRuns(t *testing.T) {
	if err := run(options{}); err == nil || !strings.Contains(err.Error(), "-runs") {
		t.Errorf("run without -runs: err = %v, want one naming -runs", err)
	}
}
