package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/nettest"
)

// rolloutProject is a demo service "app" behind dlb, whose image comes
// from APP_IMAGE (the image a rollout brings) and is this process's demo
// image by default.
func rolloutProject(t *testing.T) *project {
	return newProject(t, fmt.Sprintf(`
services:
  app:
    image: ${APP_IMAGE:-%s}
    labels:
      dlb.enable: "true"
    networks: [appnet]
    stop_grace_period: 5s
networks:
  appnet: {}
`, runImage("dlb-demo:dev")))
}

// newAppImage builds an image of its own for this test from the demo
// image, with the Dockerfile lines extra (e.g. an ENV), and removes it when
// the test ends (after its containers: build it before newProject).
func newAppImage(t *testing.T, extra string) string {
	t.Helper()
	tag := fmt.Sprintf("dlb-demo:e2e-%d-%s", os.Getpid(), lowerAlnum(t.Name()))
	dir := t.TempDir()
	dockerfile := fmt.Sprintf("FROM %s\nLABEL dlb.test=%q\n%s\n", runImage("dlb-demo:dev"), t.Name(), extra)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	docker(t, "build", "-q", "-t", tag, dir)
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "rmi", "-f", tag).CombinedOutput(); err != nil {
			t.Logf("removing image %s: %v: %s", tag, err, out)
		}
	})
	return tag
}

// rollout runs dlb rollout for service app of p, through d, with the new
// image, and returns its exit code and output; started is called once the
// process runs (to signal it).
func (p *project) rollout(t *testing.T, d *dlbProc, image string, started func(*exec.Cmd, *nettest.Buffer), args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	all := append([]string{"rollout", "-f", p.file, "-p", p.name, "--admin-url", d.adminURL}, args...)
	cmd := exec.CommandContext(ctx, dlbBinary(), append(all, "app")...)
	cmd.Env = append(os.Environ(), "APP_IMAGE="+image)
	var out nettest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if started != nil {
		started(cmd, &out)
	}
	err := cmd.Wait()
	t.Logf("dlb %s app (%s):\n%s", strings.Join(all, " "), time.Since(start).Round(time.Millisecond), out.String())
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("dlb rollout: %v", err)
	return 0, ""
}

// appContainers returns the images of the service's containers (any
// state), by container ID.
func (p *project) appContainers(t *testing.T) map[string]string {
	t.Helper()
	out := docker(t, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Image}} {{.State}}",
		"--filter", "label=com.docker.compose.project="+p.name, "--filter", "label=com.docker.compose.service=app")
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			m[f[0]] = f[1] + " " + f[2]
		}
	}
	return m
}

// poolEvents records what /api/events says of one pool: each message's
// replicas (id to state), as the dashboard sees them.
type poolEvents struct {
	mu   sync.Mutex
	msgs []map[string]string
}

func watchPool(t *testing.T, d *dlbProc, pool string) *poolEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", d.adminURL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/events: %v", err)
	}
	ev := &poolEvents{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var msg struct{ Pools []poolView }
			if json.Unmarshal([]byte(data), &msg) != nil {
				continue
			}
			m := map[string]string{}
			for _, p := range msg.Pools {
				if p.Name == pool {
					for _, r := range p.Replicas {
						m[r.ID] = r.State
					}
				}
			}
			ev.mu.Lock()
			ev.msgs = append(ev.msgs, m)
			ev.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ev
}

// fewestReady is the fewest ready replicas in any message so far.
func (ev *poolEvents) fewestReady() int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	fewest := 1 << 30
	for _, m := range ev.msgs {
		n := 0
		for _, s := range m {
			if s == "ready" {
				n++
			}
		}
		fewest = min(fewest, n)
	}
	return fewest
}

// seen returns the states a replica was seen in, in order, without repeats.
func (ev *poolEvents) seen(id string) []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var states []string
	for _, m := range ev.msgs {
		if s, ok := m[id]; ok && (len(states) == 0 || states[len(states)-1] != s) {
			states = append(states, s)
		}
	}
	return states
}

// noSwarmChange keeps the swarm tests of other test processes from
// creating or leaving a swarm on this engine while the test runs: on Docker
// 20.10 that disconnects the engine's containers from their networks for a
// moment (dlb then finds running replicas "on no network", and requests in
// flight to them hang), which no rollout is to blame for. The lock is
// shared, so the rollout tests run beside each other.
func noSwarmChange(t *testing.T) { lockSwarmTests(t) }

// startRolloutStack starts n replicas of the rollout project behind a dlb,
// and waits until dlb has them all ready.
func startRolloutStack(t *testing.T, n int) (*project, *dlbProc, []string) {
	t.Helper()
	noSwarmChange(t)
	p := rolloutProject(t)
	p.scale("app", n)
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	d.waitReady(t, p.name+"-app", n, 15*time.Second)
	return p, d, p.containers("app")
}

// TestRolloutUnderLoad is the promise: 3 replicas under keep-alive
// load get a new image with no failed request and no stall; exactly 3 run
// the new image at the end, none of the old is left, and a later `up` with
// the same scale does not recreate them. The dashboard's event stream shows
// the new ones arrive while the old still serve, and the old ones leave.
func TestRolloutUnderLoad(t *testing.T) {
	requireDocker(t)
	// The new replicas listen 3 s after they start, as an app that loads
	// for a while: stopping the old ones before dlb has the new ones
	// ready would show as a stall and as fewer than 3 ready.
	image := newAppImage(t, "ENV LISTEN_DELAY=3s")
	p, d, old := startRolloutStack(t, 3)
	pool := p.name + "-app"
	ev := watchPool(t, d, pool)
	l := startLoad(t, d.proxyURL+"/", "", 8, 2*time.Minute, 1_000_000)

	code, out := p.rollout(t, d, image, nil)
	time.Sleep(500 * time.Millisecond) // keep the load on the new replicas for a moment; not a wait for a condition
	l.finish()
	if code != 0 {
		t.Fatalf("dlb rollout: exit code %d, want 0\n%s", code, out)
	}
	if n := strings.Count(out, " ... done in "); n != 4 {
		t.Errorf("dlb rollout printed %d step lines with a duration, want 4:\n%s", n, out)
	}
	requests, failures := l.mark()
	slowest := time.Duration(l.slowest.Load())
	t.Logf("under load: %d requests, %d failed, slowest %s", requests, failures, slowest)
	if failures > 0 {
		t.Errorf("%d of %d requests failed during the rollout, want 0; first failures:\n  %s", failures, requests, strings.Join(l.samples, "\n  "))
	}
	if slowest >= time.Second {
		t.Errorf("slowest request during the rollout took %s, want under 1s", slowest)
	}

	now := p.appContainers(t)
	var fresh []string
	for id, what := range now {
		if slices.Contains(old, id) {
			t.Errorf("old container %s is still there (%s), want it removed", id[:12], what)
		}
		if what != image+" running" {
			t.Errorf("container %s is %q, want %q", id[:12], what, image+" running")
		}
		fresh = append(fresh, id)
	}
	if len(now) != 3 {
		t.Errorf("the service has %d containers after the rollout, want 3: %v", len(now), now)
	}
	d.waitReady(t, pool, 3, 5*time.Second)
	if got := d.ready(pool); got != 3 {
		t.Errorf("dlb has %d ready replicas, want 3", got)
	}

	// The stream showed each new replica ready while dlb never had fewer
	// than 3 ready, and each old one out of rotation before it left.
	if n := ev.fewestReady(); n < 3 {
		t.Errorf("/api/events showed as few as %d ready replicas during the rollout, want at least 3; the messages: %v", n, ev.msgs)
	}
	for _, id := range fresh {
		if s := ev.seen(id); !slices.Contains(s, "ready") {
			t.Errorf("/api/events showed new replica %s as %v, want it ready", id[:12], s)
		}
	}
	for _, id := range old {
		s := ev.seen(id)
		t.Logf("/api/events: old replica %s went %v", id[:12], s)
		if len(s) < 2 || s[0] != "ready" || !slices.Contains(s, "draining") && !slices.Contains(s, "down") {
			t.Errorf("/api/events showed old replica %s as %v, want ready, then draining or down before it left", id[:12], s)
		}
	}

	// Compose's view: the new containers carry the file's configuration.
	p.env = []string{"APP_IMAGE=" + image}
	p.scale("app", 3)
	if again := p.appContainers(t); !maps.Equal(again, now) {
		t.Errorf("a later `up -d --scale app=3` changed the containers: got %v, want %v", again, now)
	}
}

// TestRolloutNeverReady: new replicas that never listen are not ready
// within --timeout: dlb rollout exits non-zero naming one, its state and its
// last log lines; the old replicas keep serving with no failed request, and
// no new container is left.
func TestRolloutNeverReady(t *testing.T) {
	requireDocker(t)
	parallelLong(t) // the three wait on Compose and the engine mostly; TestRolloutUnderLoad, which times requests, runs alone
	image := newAppImage(t, "ENV LISTEN_DELAY=1h")
	p, d, old := startRolloutStack(t, 3)
	l := startLoad(t, d.proxyURL+"/", "", 4, 2*time.Minute, 1_000_000)

	code, out := p.rollout(t, d, image, nil, "--timeout", "3s")
	l.finish()
	if code != 1 {
		t.Errorf("dlb rollout: exit code %d, want 1", code)
	}
	for _, want := range []string{
		"is not ready after 3s (state running; dlb reports it starting)",
		"waiting 1h0m0s before listening", // the replica's log
		"the new replicas are removed; the old ones keep serving",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dlb rollout said:\n%s\nwant it to contain %q", out, want)
		}
	}
	if !strings.Contains(out, "new replica "+p.name+"_app_") && !strings.Contains(out, "new replica "+p.name+"-app-") {
		t.Errorf("dlb rollout said:\n%s\nwant it to name the new replica", out)
	}
	requests, failures := l.mark()
	if failures > 0 || requests < 20 {
		t.Errorf("%d of %d requests failed during the failed rollout, want 0 of at least 20; first failures:\n  %s", failures, requests, strings.Join(l.samples, "\n  "))
	}
	now := p.appContainers(t)
	if len(now) != 3 {
		t.Errorf("the service has containers %v after the failed rollout, want the 3 old ones", now)
	}
	for _, id := range old {
		if now[id] != runImage("dlb-demo:dev")+" running" {
			t.Errorf("old container %s is %q, want it running", id[:12], now[id])
		}
	}
	d.waitReady(t, p.name+"-app", 3, 5*time.Second)
}

// TestRolloutBatch: --batch 1 replaces 3 replicas one at a time; dlb never
// has fewer than 3 ready.
func TestRolloutBatch(t *testing.T) {
	requireDocker(t)
	parallelLong(t) // the three wait on Compose and the engine mostly; TestRolloutUnderLoad, which times requests, runs alone
	image := newAppImage(t, "")
	p, d, old := startRolloutStack(t, 3)
	ev := watchPool(t, d, p.name+"-app")
	l := startLoad(t, d.proxyURL+"/", "", 4, 2*time.Minute, 1_000_000)

	code, out := p.rollout(t, d, image, nil, "--batch", "1")
	l.finish()
	if code != 0 {
		t.Fatalf("dlb rollout --batch 1: exit code %d, want 0\n%s", code, out)
	}
	if n := strings.Count(out, "--scale app=4 app) ... done in"); n != 3 {
		t.Errorf("dlb rollout --batch 1 scaled to 4 %d times, want 3 (one new replica at a time):\n%s", n, out)
	}
	if _, failures := l.mark(); failures > 0 {
		t.Errorf("%d requests failed during the rollout, want 0: %v", failures, l.samples)
	}
	if n := ev.fewestReady(); n < 3 {
		t.Errorf("/api/events showed as few as %d ready replicas, want at least 3; the messages: %v", n, ev.msgs)
	}
	now := p.appContainers(t)
	if len(now) != 3 {
		t.Errorf("the service has %d containers, want 3: %v", len(now), now)
	}
	for id, what := range now {
		if slices.Contains(old, id) || what != image+" running" {
			t.Errorf("container %s is %q (old: %v), want a new one running %s", id[:12], what, slices.Contains(old, id), image)
		}
	}
}

// TestRolloutInterrupted: Ctrl-C while the new replicas start puts the
// service back as it was.
func TestRolloutInterrupted(t *testing.T) {
	requireDocker(t)
	parallelLong(t) // the three wait on Compose and the engine mostly; TestRolloutUnderLoad, which times requests, runs alone
	image := newAppImage(t, "ENV LISTEN_DELAY=1h")
	p, d, old := startRolloutStack(t, 3)

	code, out := p.rollout(t, d, image, func(cmd *exec.Cmd, out *nettest.Buffer) {
		waitFor(t, time.Minute, "dlb rollout to wait for its new replicas", func() (bool, string) {
			return strings.Contains(out.String(), "[2/4] wait until dlb has"), out.String()
		})
		cmd.Process.Signal(syscall.SIGINT)
	})
	if code != 1 || !strings.Contains(out, "interrupted") || !strings.Contains(out, "the old ones keep serving") {
		t.Errorf("dlb rollout, interrupted: exit code %d, output\n%s\nwant 1, saying it was interrupted and the old ones keep serving", code, out)
	}
	now := p.appContainers(t)
	if len(now) != 3 {
		t.Errorf("the service has containers %v after the interrupted rollout, want the 3 old ones", now)
	}
	for _, id := range old {
		if !strings.HasSuffix(now[id], " running") {
			t.Errorf("old container %s is %q, want it running", id[:12], now[id])
		}
	}
	d.waitReady(t, p.name+"-app", 3, 5*time.Second)
}

// TestRolloutRefuses: what dlb rollout refuses before it touches anything
// (exit 2), each with what to fix; no engine is needed for these.
func TestRolloutRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte("services:\n  app:\n    image: shop:1\n    container_name: shop\n    ports: [\"8000:80\"]\n  web:\n    image: web:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no service", []string{"rollout", "-f", file}, []string{"name the service to roll out"}},
		{"an option after the service", []string{"rollout", "-f", file, "web", "--dry-run"}, []string{`"--dry-run" after the services: put the options before SERVICE`}},
		{"negative --batch", []string{"rollout", "-f", file, "--batch", "-2", "web"}, []string{`--batch "-2": must be a number of replicas`}},
		{"zero --timeout", []string{"rollout", "-f", file, "--timeout", "0s", "web"}, []string{`--timeout "0s": must be a positive duration`}},
		{"container_name and a host port", []string{"rollout", "-f", file, "app"}, []string{
			"the new replicas cannot run beside the old ones",
			file + `:4: service "app": container_name: fixes the container name to "shop"`, "Remove container_name: from app",
			file + `:5: service "app": ports: publishes host port 8000:80`, "Remove ports: from app; dlb publishes the port.",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runDLB(t, tt.args...)
			if code != 2 {
				t.Errorf("dlb %q: exit code %d, want 2 (stdout %q, stderr %q)", tt.args, code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("dlb %q: stderr\n%s\nwant it to contain %q", tt.args, stderr, w)
				}
			}
		})
	}
}

// composeFiles finds the files Compose reads, as Compose does: -f, else
// COMPOSE_FILE, else the file of the directory and its override.
func TestComposeFiles(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, f := range []string{"docker-compose.yml", "docker-compose.override.yml"} {
		if err := os.WriteFile(f, []byte("services: {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("COMPOSE_FILE", "")
	if got, want := composeFiles(nil), []string{"docker-compose.yml", "docker-compose.override.yml"}; !slices.Equal(got, want) {
		t.Errorf("composeFiles in a directory: got %q, want %q", got, want)
	}
	if got, want := composeFiles([]string{"a.yaml", "b.yaml"}), []string{"a.yaml", "b.yaml"}; !slices.Equal(got, want) {
		t.Errorf("composeFiles with -f: got %q, want %q", got, want)
	}
	t.Setenv("COMPOSE_FILE", "x.yaml:y.yaml")
	if got, want := composeFiles(nil), []string{"x.yaml", "y.yaml"}; !slices.Equal(got, want) {
		t.Errorf("composeFiles with COMPOSE_FILE: got %q, want %q", got, want)
	}
}
