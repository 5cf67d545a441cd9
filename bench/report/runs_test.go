package main

import (
	"math"
	"slices"
	"strings"
	"testing"
)

const header = "round\tconns\ttarget\trps\tp50_us\tp99_us\trequests\terrors\tcpu_us_req\n"

// sampleRuns: two rounds at 64 connections; haproxy is 10% faster than nginx
// in round 1 and 30% faster in round 2, while both drift between rounds.
const sampleRuns = header +
	"1\t64\tnginx\t20000\t3000\t9000\t60000\t0\t40\n" +
	"1\t64\thaproxy\t22000\t2700\t8000\t66000\t0\t36\n" +
	"1\t64\tdirect\t30000\t2000\t7000\t90000\t0\tNA\n" +
	"2\t64\thaproxy\t13000\t2600\t8800\t39000\t2\t30\n" +
	"2\t64\tnginx\t10000\t4000\t11000\t30000\t0\t50\n" +
	"2\t64\tdirect\t28000\t2200\t7400\t84000\t0\tNA\n"

func TestParseRuns(t *testing.T) {
	runs, err := parseRuns(strings.NewReader(sampleRuns))
	if err != nil {
		t.Fatalf("parseRuns: %v", err)
	}
	if len(runs) != 6 {
		t.Fatalf("got %d runs, want 6", len(runs))
	}
	got := runs[3]
	if got.Round != 2 || got.Conns != 64 || got.Target != "haproxy" || got.RPS != 13000 || got.Errors != 2 || got.CPU != 30 {
		t.Errorf("row 4 = %+v, want round 2, 64 conns, haproxy, 13000 req/s, 2 errors, 30 us", got)
	}
	if !math.IsNaN(runs[2].CPU) {
		t.Errorf("NA CPU should read as NaN, got %v", runs[2].CPU)
	}
}

func TestParseRunsErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "no runs"},
		{"header only", header, "no runs"},
		{"wrong header", "round\tconns\n1\t64\n", "line 1: header is"},
		{"short row", header + "1\t64\tnginx\n", "line 2: 3 fields, want 9"},
		{"not a number", header + "1\t64\tnginx\tfast\t1\t1\t1\t0\t1\n", `column rps: "fast" is not a number`},
		{"empty target", header + "1\t64\t\t1\t1\t1\t1\t0\t1\n", "line 2: empty target"},
	}
	for _, tc := range tests {
		_, err := parseRuns(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestSummarise(t *testing.T) {
	runs, err := parseRuns(strings.NewReader(sampleRuns))
	if err != nil {
		t.Fatal(err)
	}
	rows := summarise(runs, []string{"dlb", "nginx", "haproxy", "direct"})
	var order []string
	for _, r := range rows {
		order = append(order, r.Target)
	}
	if got, want := strings.Join(order, ","), "nginx,haproxy,direct"; got != want {
		t.Fatalf("rows = %s, want %s (the given order, without targets that have no runs)", got, want)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	hap := rows[1]
	near("haproxy median req/s", hap.RPS, 17500)
	near("haproxy median p50", hap.P50, 2650)
	near("haproxy median CPU", hap.CPU, 33)
	// Per-round ratios 1.1 and 1.3: their median, not the ratio of medians (17500/15000).
	near("haproxy req/s vs nginx", hap.VsBaseline.RPS, 1.2)
	near("haproxy CPU vs nginx", hap.VsBaseline.CPU, (36.0/40+30.0/50)/2)
	if hap.Errors != 2 || hap.Rounds != 2 {
		t.Errorf("haproxy errors, rounds = %d, %d; want 2, 2", hap.Errors, hap.Rounds)
	}
	near("nginx vs itself", rows[0].VsBaseline.RPS, 1)
	if d := rows[2]; !math.IsNaN(d.CPU) || !math.IsNaN(d.VsBaseline.CPU) {
		t.Errorf("direct CPU and its ratio should be NaN (not measured), got %v and %v", d.CPU, d.VsBaseline.CPU)
	}
}

// TestSummariseByProtocol: a TLS row is compared with nginx over the same
// protocol in the same round, not with plain nginx.
func TestSummariseByProtocol(t *testing.T) {
	runs, err := parseRuns(strings.NewReader(header +
		"1\t64\tnginx\t20000\t3000\t9000\t60000\t0\t40\n" +
		"1\t64\tnginx-https\t10000\t3000\t9000\t30000\t0\t80\n" +
		"1\t64\tdlb-https\t12000\t3000\t9000\t36000\t0\t60\n" +
		"1\t64\tnginx-h2\t8000\tNA\tNA\t24000\t0\t100\n" +
		"1\t64\tdlb-h2\t6000\tNA\tNA\t18000\t0\t150\n"))
	if err != nil {
		t.Fatalf("parseRuns: %v", err)
	}
	for _, tc := range []struct {
		target   string
		rps, cpu float64
	}{
		{"dlb-https", 1.2, 0.75},
		{"dlb-h2", 0.75, 1.5},
		{"nginx-h2", 1, 1},
	} {
		i := slices.IndexFunc(summarise(runs, nil), func(s Summary) bool { return s.Target == tc.target })
		s := summarise(runs, nil)[i]
		if s.VsBaseline.RPS != tc.rps || s.VsBaseline.CPU != tc.cpu {
			t.Errorf("%s vs its nginx: got req/s %.2fx, CPU %.2fx; want %.2fx, %.2fx", tc.target, s.VsBaseline.RPS, s.VsBaseline.CPU, tc.rps, tc.cpu)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
		{"one", []float64{7}, 7},
		{"NaN left out", []float64{math.NaN(), 5, 1}, 3},
	}
	for _, tc := range tests {
		if got := median(tc.in); got != tc.want {
			t.Errorf("%s: median(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
	if got := median([]float64{math.NaN()}); !math.IsNaN(got) {
		t.Errorf("median of no numbers = %v, want NaN", got)
	}
}
