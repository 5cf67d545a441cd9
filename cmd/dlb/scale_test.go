package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// appProject is a Compose project with a labelled demo service "app" on
// network appnet, as the README's example has it (without dlb itself).
const appProject = `
services:
  app:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.port: "80"
    networks: [appnet]
networks:
  appnet: {}
`

// TestScaleThroughDLB is the README's promise, checked as a user would:
// three replicas take turns, five do right after scaling up, one after
// scaling down, and none gives a fast 503.
func TestScaleThroughDLB(t *testing.T) {
	parallelLong(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, appProject)
	p.scale("app", 3)
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	pool := p.name + "-app"

	d.waitReady(t, pool, 3, 5*time.Second)
	got := spread(t, d.proxyURL+"/", 300)
	if len(got) != 3 {
		t.Fatalf("300 requests over 3 replicas were answered by %d replicas: %v", len(got), got)
	}
	for replica, n := range got {
		if n < 95 || n > 105 {
			t.Errorf("replica %s answered %d of 300 requests, want 100±5 (all: %v)", replica, n, got)
		}
	}

	// /api/pools shows every replica with its address on the network.
	for _, pv := range d.pools() {
		if pv.Name != pool {
			continue
		}
		for _, r := range pv.Replicas {
			if !strings.HasSuffix(r.Address, ":80") || r.ID == "" || !strings.HasPrefix(r.Name, p.name+"_app_") && !strings.HasPrefix(r.Name, p.name+"-app-") {
				t.Errorf("/api/pools replica = %+v, want an id, a Compose name and an ip:80 address", r)
			}
		}
	}

	p.scale("app", 5)
	took := waitFor(t, time.Second, "all 5 replicas to answer through dlb", answeredByN(d.proxyURL+"/", 5))
	t.Logf("after `compose up --scale app=5` returned, all 5 replicas answered within %s", took)

	p.scale("app", 1)
	waitFor(t, time.Second, "only one replica to answer", answeredByN(d.proxyURL+"/", 1))

	p.scale("app", 0)
	// A request that came before dlb saw the last replica go (the engine's
	// destroy event can trail compose's return) would wait for one, as
	// through a recreate (TestRecreateKeepsTheQueue); once dlb has seen it
	// go, the answer is an immediate 503.
	d.waitEmpty(t, 5*time.Second, pool, "dlb to remove the last replica")
	waitFor(t, time.Second, "503 once the service has no replica", func() (bool, string) {
		start := time.Now()
		resp, err := httpClient.Get(d.proxyURL + "/")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusServiceUnavailable {
			return false, fmt.Sprintf("status %d", resp.StatusCode)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
		if took > 50*time.Millisecond {
			return false, fmt.Sprintf("503 took %s, want < 50ms", took)
		}
		return true, ""
	})

	code, body := getHost(d.proxyURL+"/anything", "unknown.example")
	if code != http.StatusServiceUnavailable {
		// The catch-all pool still exists (with no replica): 503, not 404.
		t.Errorf("GET with an unknown host while the catch-all pool is empty: %d %q, want 503", code, body)
	}
}

// TestBadLabelSkipped: a container with a malformed label is skipped with one
// warning that names it, the label and the value; the others keep serving.
func TestBadLabelSkipped(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, strings.Replace(appProject, "networks:\n  appnet: {}", `  bad:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.port: "http"
    networks: [appnet]
networks:
  appnet: {}`, 1))
	p.compose("up", "-d", "--no-build", "--scale", "app=2", "--scale", "bad=1")
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	waitFor(t, 5*time.Second, "a warning about the bad label", func() (bool, string) {
		return d.logHas(`"level":"warn"`, p.name, "bad", `dlb.port=\"http\"`, "not a port number"), "no such warning"
	})
	got := spread(t, d.proxyURL+"/", 20)
	if len(got) != 2 {
		t.Errorf("replicas answering = %v, want the 2 app replicas", got)
	}
	for _, pv := range d.pools() {
		if strings.HasSuffix(pv.Name, "-bad") {
			t.Errorf("the badly labelled service got a pool: %+v", pv)
		}
	}
}

// TestWrongNetworkSkipped: a container that is not on --network is skipped
// with a warning that says so and names the flag.
func TestWrongNetworkSkipped(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, `
services:
  app:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
    networks: [appnet]
  lost:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
    networks: [other]
networks:
  appnet: {}
  other: {}
`)
	p.compose("up", "-d", "--no-build")
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	waitFor(t, 5*time.Second, "a warning about the container on the wrong network", func() (bool, string) {
		return d.logHas(`"level":"warn"`, "lost", `is not on network \"appnet\" (--network)`), "no such warning"
	})
	if code, body := get(d.proxyURL + "/"); code != 200 {
		t.Errorf("GET through dlb: %d %q, want 200 from app", code, body)
	}
}

// TestRecreateKeepsTheQueue replaces a service's only replica the way
// Compose v2 recreates one (and a script's docker rm and docker run do):
// the old container stops and is removed before the new one starts, so
// dlb has no replica for a moment. A request that came while the old one
// was stopping waits and is answered by the new one. Then the service
// loses its replica for good (scaled to 0): a request waiting then gets 503
// at its queue timeout, and the ones after it at once.
func TestRecreateKeepsTheQueue(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, appProject)
	p.scale("app", 1)
	const queueTimeout = 4 * time.Second
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--queue-timeout", queueTimeout.String())
	pool := p.name + "-app"
	d.waitReady(t, pool, 1, 5*time.Second)
	old := docker(t, "ps", "-q", "--filter", "label=com.docker.compose.project="+p.name)
	// The new replica, created beside the old one as Compose v2 does, with
	// the labels Compose gives its containers.
	newID := docker(t, "create", "--network", p.network("appnet"),
		"--label", "com.docker.compose.project="+p.name, "--label", "com.docker.compose.service=app",
		"--label", "com.docker.compose.container-number=2", "--label", "dlb.enable=true", "--label", "dlb.port=80",
		runImage("dlb-demo:dev"))

	// asked sends GET / and reports its answer once it is back.
	type answer struct {
		code int
		body string
		took time.Duration
	}
	asked := func() <-chan answer {
		out := make(chan answer, 1)
		go func() {
			start := time.Now()
			code, body := get(d.proxyURL + "/")
			out <- answer{code, body, time.Since(start)}
		}()
		return out
	}
	queued := func() (bool, string) {
		_, body := get(d.adminURL + "/metrics")
		want := fmt.Sprintf("dlb_queued_requests{service=%q} 1", pool)
		return strings.Contains(body, want), "no " + want + " in /metrics"
	}
	stopped := func() (bool, string) {
		n := d.ready(pool)
		return n == 0, fmt.Sprintf("%d ready", n)
	}
	// leaves stops the container id, the pool's only replica, sends a
	// request that waits in the queue for a replica, then removes the
	// container; dlb then has none.
	leaves := func(id string) <-chan answer {
		docker(t, "stop", id)
		waitFor(t, 10*time.Second, "the stopped replica out of rotation", stopped)
		waiting := asked()
		waitFor(t, 10*time.Second, "the request to wait in the queue", queued)
		docker(t, "rm", id)
		d.waitEmpty(t, 10*time.Second, pool, "dlb to remove the replica")
		return waiting
	}

	first := leaves(old)
	docker(t, "start", newID)
	a := <-first
	if a.code != http.StatusOK || !strings.HasPrefix(newID, strings.TrimSpace(a.body)) {
		t.Fatalf("the request that waited through the recreate: %d %q after %s, want 200 from the new replica %.12s", a.code, a.body, a.took, newID)
	}
	t.Logf("the request that waited through the recreate was answered by the new replica after %s", a.took.Round(time.Millisecond))

	// Scaled to 0: the last replica stops and is removed; nothing comes.
	second := leaves(newID)
	code, body := get(d.proxyURL + "/")
	if code != http.StatusServiceUnavailable {
		t.Errorf("a request to the service with no replica: %d %q, want 503 at once", code, body)
	}
	a = <-second
	if a.code != http.StatusServiceUnavailable || a.took > queueTimeout+3*time.Second {
		t.Errorf("the request waiting when the last replica went: %d %q after %s, want 503 at its queue timeout (%s)", a.code, a.body, a.took.Round(time.Millisecond), queueTimeout)
	}
	t.Logf("the request waiting when the last replica went: %d after %s (queue timeout %s)", a.code, a.took.Round(time.Millisecond), queueTimeout)
}
