package main

// Real-engine tests of what dlb shows of its traffic: /metrics, the admin
// API, the access log and `dlb status`, against a real dlb in front of real
// containers.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/dlb-lb/dlb/internal/nettest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads dlb's /metrics with the Prometheus text parser.
func (d *dlbProc) scrape() map[string]*dto.MetricFamily {
	d.t.Helper()
	resp, err := httpClient.Get(d.adminURL + "/metrics")
	if err != nil {
		d.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		d.t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		d.t.Fatalf("GET /metrics: not the Prometheus text format: %v", err)
	}
	return fams
}

// series returns the value of each series of a metric whose labels include
// match, keyed by the value of label by (a histogram gives its count).
// histogram returns the sample count and sum of the histogram series that
// match.
func histogram(fams map[string]*dto.MetricFamily, name string, match map[string]string) (count, sum float64) {
	for _, m := range fams[name].GetMetric() {
		ok := true
		for _, l := range m.GetLabel() {
			if v, in := match[l.GetName()]; in && v != l.GetValue() {
				ok = false
			}
		}
		if ok && m.Histogram != nil {
			count += float64(m.Histogram.GetSampleCount())
			sum += m.Histogram.GetSampleSum()
		}
	}
	return count, sum
}

func series(fams map[string]*dto.MetricFamily, name string, match map[string]string, by string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range match {
			if labels[k] != v {
				continue next
			}
		}
		v := 0.0
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Histogram != nil:
			v = float64(m.Histogram.GetSampleCount())
		}
		out[labels[by]] += v
	}
	return out
}

// execDLB runs the dlb binary with args and returns its exit code and output.
func execDLB(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dlbBinary(), args...)
	var out, errOut nettest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("dlb %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errOut.String()
}

// replicaNames are the names of a pool's replicas in /api/pools.
func (d *dlbProc) replicaNames(pool string) []string {
	var names []string
	for _, p := range d.pools() {
		if p.Name == pool {
			for _, r := range p.Replicas {
				names = append(names, r.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestObserveTraffic follows a service through scale up, traffic and scale
// down, as a user watching /metrics, /api/pools, the access log and
// `dlb status` would.
func TestObserveTraffic(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, appProject)
	p.scale("app", 2)
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--access-log")
	pool := p.name + "-app"
	svc := map[string]string{"service": pool}
	d.waitReady(t, pool, 2, 5*time.Second)

	// dlb status: a table like docker ps, exit 0.
	code, out, errOut := execDLB(t, "status", "--admin-url", d.adminURL)
	if code != 0 || !strings.HasPrefix(out, "SERVICE") || errOut != "" {
		t.Fatalf("dlb status with 2 ready replicas: exit %d, stdout %q, stderr %q; want 0 and a table", code, out, errOut)
	}
	for _, name := range d.replicaNames(pool) {
		if !strings.Contains(out, name) || !strings.Contains(out, pool+"   */") {
			t.Errorf("dlb status does not show replica %s of %s:\n%s", name, pool, out)
		}
	}
	t.Logf("dlb status:\n%s", out)

	// Traffic: per-replica counters match /api/pools and what was sent.
	got := spread(t, d.proxyURL+"/", 40)
	if len(got) != 2 {
		t.Fatalf("40 requests answered by %v, want both replicas", got)
	}
	fams := d.scrape()
	perReplica := series(fams, "dlb_requests_total", map[string]string{"service": pool, "code": "2xx"}, "replica")
	api := map[string]float64{}
	for _, pv := range d.pools() {
		for _, r := range pv.Replicas {
			if pv.Name == pool {
				api[r.Name] = float64(r.Requests)
			}
		}
	}
	if len(perReplica) != 2 || perReplica[""] != 0 || perReplica[d.replicaNames(pool)[0]]+perReplica[d.replicaNames(pool)[1]] != 40 {
		t.Errorf("dlb_requests_total{code=2xx} by replica = %v, want 40 requests over the 2 replicas %v", perReplica, d.replicaNames(pool))
	}
	for name, n := range api {
		if perReplica[name] != n {
			t.Errorf("replica %s: dlb_requests_total says %v, /api/pools says %v", name, perReplica[name], n)
		}
	}
	if got := series(fams, "dlb_replicas", svc, "state"); got["ready"] != 2 || got["starting"] != 0 {
		t.Errorf("dlb_replicas by state = %v, want 2 ready", got)
	}
	if got := series(fams, "dlb_ready_to_first_request_seconds", svc, "service")[pool]; got != 2 {
		t.Errorf("dlb_ready_to_first_request_seconds count = %v, want 2 (one per replica)", got)
	}
	if got := series(fams, "dlb_request_duration_seconds", svc, "service")[pool]; got != 40 {
		t.Errorf("dlb_request_duration_seconds count = %v, want 40", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s (the Go and process collectors)", name)
		}
	}

	// The access log: one JSON line per request, with every field.
	code2, _ := getHost(d.proxyURL+"/access-log-probe", "probe.example")
	if code2 != 200 {
		t.Fatalf("GET /access-log-probe: %d", code2)
	}
	var line map[string]any
	waitFor(t, 2*time.Second, "the access log line of /access-log-probe", func() (bool, string) {
		for _, l := range strings.Split(d.stdout.String(), "\n") {
			if strings.Contains(l, "/access-log-probe") {
				line = nil
				return json.Unmarshal([]byte(l), &line) == nil, l
			}
		}
		return false, fmt.Sprintf("%d bytes of stdout", len(d.stdout.String()))
	})
	for k, want := range map[string]any{"client": "127.0.0.1", "method": "GET", "host": "probe.example",
		"path": "/access-log-probe", "status": 200.0, "service": pool} {
		if line[k] != want {
			t.Errorf("access log %s = %#v, want %#v (line %v)", k, line[k], want, line)
		}
	}
	if r, _ := line["replica"].(string); !slices.Contains(d.replicaNames(pool), r) {
		t.Errorf("access log replica = %#v, want one of %v", line["replica"], d.replicaNames(pool))
	}
	if b, _ := line["bytes"].(float64); b < 2 {
		t.Errorf("access log bytes = %#v, want the size of the hostname answer", line["bytes"])
	}
	if ms, _ := line["duration_ms"].(float64); ms <= 0 || ms > 5000 {
		t.Errorf("access log duration = %#v ms, want a positive number of milliseconds", line["duration_ms"])
	}
	if ts, _ := line["time"].(string); ts == "" {
		t.Errorf("access log time missing: %v", line)
	} else if when, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(when) > time.Minute || time.Since(when) < 0 {
		t.Errorf("access log time %q: want a recent RFC 3339 time (%v)", ts, err)
	}
	t.Logf("access log line: %v", line)

	// Scale up: the new replica shows in the gauges and its own counter;
	// Docker's events are counted.
	before := d.replicaNames(pool)
	p.scale("app", 3)
	waitFor(t, 5*time.Second, "dlb_replicas{state=ready} = 3", func() (bool, string) {
		got := series(d.scrape(), "dlb_replicas", svc, "state")
		return got["ready"] == 3, fmt.Sprint(got)
	})
	spread(t, d.proxyURL+"/", 30)
	fams = d.scrape()
	perReplica = series(fams, "dlb_requests_total", map[string]string{"service": pool, "code": "2xx"}, "replica")
	var added string
	for _, name := range d.replicaNames(pool) {
		if !slices.Contains(before, name) {
			added = name
		}
	}
	if added == "" || perReplica[added] < 9 {
		t.Errorf("after scaling to 3: dlb_requests_total of the new replica %q = %v, want about 10 of 30 (all: %v)", added, perReplica[added], perReplica)
	}
	if got := series(fams, "dlb_docker_events_total", map[string]string{"action": "start"}, "action")["start"]; got < 1 {
		t.Errorf(`dlb_docker_events_total{action="start"} = %v after a container started, want >= 1`, got)
	}
	if got := series(fams, "dlb_ready_to_first_request_seconds", svc, "service")[pool]; got != 3 {
		t.Errorf("dlb_ready_to_first_request_seconds count = %v, want 3", got)
	}
	// The 2 first replicas were there before dlb: only the third came with
	// a Docker event to time from.
	for _, name := range []string{"dlb_event_to_ready_seconds", "dlb_event_to_first_request_seconds"} {
		count, sum := histogram(fams, name, svc)
		if count != 1 || sum <= 0 || sum > 5 {
			t.Errorf("%s: count %v, sum %vs; want 1 replica, timed in (0, 5s]", name, count, sum)
		}
	}

	// SSE through dlb, with the metrics observing: events arrive one by one.
	assertStreams(t, d.proxyURL+"/sse?n=5")

	// A WebSocket through dlb works with the metrics and the access log on,
	// and counts as a 1xx (101 Switching Protocols) of the replica it went to.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://"+d.proxyAddr+"/ws", nil)
	if err != nil {
		t.Fatalf("WebSocket through dlb: %v", err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("observed")); err != nil {
		t.Fatalf("WebSocket write: %v", err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "observed" {
		t.Fatalf("WebSocket echo: %q, %v; want %q", msg, err, "observed")
	}
	ws.Close(websocket.StatusNormalClosure, "done")
	wsReplica := resp.Header.Get("X-Replica")
	waitFor(t, 5*time.Second, "the WebSocket to be counted as a 1xx", func() (bool, string) {
		got := series(d.scrape(), "dlb_requests_total", map[string]string{"service": pool, "code": "1xx"}, "replica")
		var total float64
		for _, n := range got {
			total += n
		}
		return total == 1, fmt.Sprintf("1xx by replica %v (the echo says it is %s)", got, wsReplica)
	})
	if !strings.Contains(d.stdout.String(), `"path":"/ws","status":101`) {
		t.Errorf("no access log line for /ws with status 101")
	}

	// Scale down: the removed replicas' series disappear.
	p.scale("app", 1)
	var kept []string
	waitFor(t, 20*time.Second, "the removed replicas' series to disappear", func() (bool, string) {
		kept = d.replicaNames(pool)
		fams := d.scrape()
		names := series(fams, "dlb_requests_total", svc, "replica")
		states := series(fams, "dlb_replicas", svc, "state")
		var left []string
		for name := range names {
			if name != "" && !slices.Contains(kept, name) {
				left = append(left, name)
			}
		}
		return len(kept) == 1 && len(left) == 0 && states["ready"] == 1 && states["draining"] == 0,
			fmt.Sprintf("replicas %v in /api/pools, series of %v, states %v", kept, slices.Sorted(maps.Keys(names)), states)
	})
	spread(t, d.proxyURL+"/", 5)
	if got := series(d.scrape(), "dlb_requests_total", map[string]string{"service": pool, "code": "2xx"}, "replica"); got[kept[0]] < 5 || len(got) != 1 {
		t.Errorf("after 5 more requests, dlb_requests_total{code=2xx} by replica = %v, want only the remaining replica %s, with at least 5", got, kept[0])
	}

	// Scaled to 0: dlb status says which service has no ready replica.
	p.scale("app", 0)
	waitFor(t, 20*time.Second, "the pool to be empty", func() (bool, string) {
		n := len(d.replicaNames(pool))
		return n == 0, fmt.Sprintf("%d replicas", n)
	})
	code, out, errOut = execDLB(t, "status", "--admin-url", d.adminURL)
	if code != 1 || !strings.Contains(errOut, pool) || !strings.Contains(errOut, "no ready replica") || !strings.Contains(out, pool) {
		t.Errorf("dlb status after scaling to 0: exit %d, stdout %q, stderr %q; want 1, naming %s", code, out, errOut, pool)
	}

	// Nothing at --admin-url: exit 2, naming the flag.
	code, out, errOut = execDLB(t, "status", "--admin-url", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(errOut, "--admin-url") || out != "" {
		t.Errorf("dlb status --admin-url http://127.0.0.1:1: exit %d, stdout %q, stderr %q; want 2 and a message naming --admin-url", code, out, errOut)
	}
	t.Logf("dlb status with nothing at --admin-url: %s", strings.TrimSpace(errOut))
}

// assertStreams checks that the events of a server-sent event stream
// reach the client as they are sent, not all at once at the end.
func assertStreams(t *testing.T, url string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	var first, last time.Time
	events := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") {
			if events == 0 {
				first = time.Now()
			}
			last = time.Now()
			events++
		}
	}
	// The replica sends one event every 100 ms: 5 events span 400 ms.
	if events != 5 || last.Sub(first) < 300*time.Millisecond {
		t.Errorf("GET %s: %d events, the last %s after the first; want 5 events spread over about 400ms (not buffered)", url, events, last.Sub(first))
	}
}
