package main

// Real-engine tests of the ways replicas come and go where the engine's
// events reach dlb late (a busy engine): a replica refuses connections
// before dlb hears it is stopping, a new container takes an old one's name
// and address, and two stacks of one Compose file share an engine.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/nettest"
)

// TestRestartOnlyReplica: the one replica of a service is restarted under
// two keep-alive clients. The replica refuses connections before its kill
// event reaches dlb; a request that meets the refusal has no other replica
// and must wait for this one to come back (--queue-timeout), not get 503.
func TestRestartOnlyReplica(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, `
services:
  solo:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
    environment:
      GRACE: 1s
    networks: [appnet]
networks:
  appnet: {}
`)
	p.scale("solo", 1)
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	pool := p.name + "-solo"
	d.waitReady(t, pool, 1, 15*time.Second)

	l := startLoad(t, d.proxyURL+"/", "", 2, 2*time.Minute, 1_000_000)
	l.rounds(t, "docker restart -t 2 of the only replica", 3, 500*time.Millisecond, func() {
		docker(t, "restart", "-t", "2", p.containers("solo")[0])
		d.waitReady(t, pool, 1, 20*time.Second)
	})
}

// rounds runs op n times under the load, each a phase that must cost no
// request, then stops the load and logs its totals.
func (l *load) rounds(t testing.TB, what string, n int, settle time.Duration, op func()) {
	t.Helper()
	for i := 1; i <= n; i++ {
		l.phase(t, fmt.Sprintf("%s, #%d", what, i), settle, op)
	}
	l.finish()
	r, f := l.mark()
	t.Logf("%s, %d rounds: %d requests, %d failed", what, n, r, f)
}

// TestForceRecreateUnderLoad: `compose up --force-recreate` of a 2-replica
// service under 16 keep-alive clients. Compose v1 renames each old
// container, creates a new one under its name (which may get the other old
// one's address), starts it and removes the old one: replicas must be told
// apart by container ID, never by name or address.
func TestForceRecreateUnderLoad(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, `
services:
  app:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
    environment:
      GRACE: 2s
    stop_grace_period: 5s
    networks: [appnet]
networks:
  appnet: {}
`)
	p.scale("app", 2)
	// Compose stops both old replicas at once: the service has none until
	// a new one listens (1-7 s here, the longest on a busy machine), which
	// the default --queue-timeout covers: the user sets nothing.
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	pool := p.name + "-app"
	d.waitReady(t, pool, 2, 15*time.Second)

	l := startLoad(t, d.proxyURL+"/", "", 16, 3*time.Minute, 3_000_000)
	l.rounds(t, "up --force-recreate of 2 replicas", 2, time.Second, func() {
		p.compose("up", "-d", "--no-build", "--force-recreate", "--scale", "app=2", "app")
		d.waitReady(t, pool, 2, 20*time.Second)
	})
}

// TestTwoStacksOneEngine starts the README's Compose stack (dlb in a
// container, --network appnet) twice on one engine, as projects of their
// own with their own published ports. Each dlb must serve only its own
// project's replicas, and every request must be answered within 1 s.
func TestTwoStacksOneEngine(t *testing.T) {
	requireDocker(t)
	yaml, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type stack struct {
		p     *project
		proxy string // http://127.0.0.1:port
		admin string
	}
	var stacks []*stack
	for range 2 {
		p := newProject(t, string(yaml))
		// Published on loopback, on ports the engine picks.
		p.env = []string{"DLB_PORT=127.0.0.1:0", "DLB_ADMIN_PORT=0"}
		stacks = append(stacks, &stack{p: p})
	}
	// Both come up at once, as on an engine that runs both.
	errs := make([]error, len(stacks))
	outs := make([]string, len(stacks))
	var wg sync.WaitGroup
	for i, s := range stacks {
		wg.Go(func() { outs[i], errs[i] = s.p.run("up", "-d", "--no-build", "--scale", "app=2") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%v\n%s", err, outs[i])
		}
	}
	for _, s := range stacks {
		id := s.p.containers("dlb")[0]
		s.proxy = "http://" + docker(t, "port", id, "80/tcp")
		s.admin = "http://" + docker(t, "port", id, "8080/tcp")
	}
	for _, s := range stacks {
		own := map[string]bool{}
		for _, id := range s.p.containers("app") {
			own[id[:12]] = true // the demo answers with its hostname: the short ID
		}
		var seen []string
		waitFor(t, 20*time.Second, "dlb of "+s.p.name+" to have exactly its 2 replicas, ready", func() (bool, string) {
			code, body := get(s.admin + "/api/pools")
			var ps []poolView
			if code != 200 || json.Unmarshal([]byte(body), &ps) != nil {
				return false, fmt.Sprintf("%d %s", code, body)
			}
			seen = seen[:0]
			ready := 0
			for _, pv := range ps {
				for _, r := range pv.Replicas {
					seen = append(seen, r.Name+"="+r.State)
					if r.State == "ready" {
						ready++
					}
				}
			}
			return ready == 2 && len(seen) == 2, strings.Join(seen, " ")
		})
		for _, other := range stacks {
			if other != s && strings.Contains(strings.Join(seen, " "), other.p.name) {
				t.Errorf("dlb of %s lists replicas of %s: %s", s.p.name, other.p.name, seen)
			}
		}
		l := startLoad(t, s.proxy+"/", "", 4, time.Minute, 200_000)
		l.phase(t, "load on "+s.p.name, 2*time.Second, func() {})
		l.finish()
		for replica := range l.byReplica {
			if !own[replica] {
				t.Errorf("stack %s was answered by %q, not one of its replicas %v", s.p.name, replica, own)
			}
		}
		if slowest := time.Duration(l.slowest.Load()); slowest > time.Second {
			t.Errorf("stack %s: the slowest request took %s, want under 1s", s.p.name, slowest)
		}
		// The other project's replicas are skipped, each with one warning.
		logs := docker(t, "logs", s.p.containers("dlb")[0])
		for _, other := range stacks {
			if other == s {
				continue
			}
			for _, id := range other.p.containers("app") {
				name := docker(t, "inspect", "-f", "{{.Name}}", id)[1:]
				if n := strings.Count(logs, "container "+name+": is not on dlb's network"); n != 1 {
					t.Errorf("dlb of %s warned %d times that %s is not on its network, want once; its log:\n%s", s.p.name, n, name, logs)
				}
			}
		}
		r, f := l.mark()
		t.Logf("stack %s: %d requests, %d failed, slowest %s", s.p.name, r, f, time.Duration(l.slowest.Load()).Round(time.Millisecond))
	}
}

// TestNetworkThatDoesNotExistYet: --network names no network of the engine.
// dlb says so at start, and says again when the network appears.
func TestNetworkThatDoesNotExistYet(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	name := fmt.Sprintf("dlbt%dlatenet", os.Getpid())
	d := startDLB(t, "--network", name, "--project", name)
	waitFor(t, 10*time.Second, "dlb to warn that --network names no network", func() (bool, string) {
		return d.logHas(`"level":"warn"`, "--network "+name+": the engine has no network of that name"), d.logs()
	})
	docker(t, "network", "create", "proj_"+name)
	t.Cleanup(func() { docker(t, "network", "rm", "proj_"+name) })
	waitFor(t, 15*time.Second, "dlb to see the network appear", func() (bool, string) {
		return d.logHas("--network "+name+": the network exists now", "proj_"+name), d.logs()
	})
}

// TestShortNetworkNameOfSeveralProjects: dlb on the host, --network a
// Compose short name that two projects' networks answer to, and no
// --project. dlb says so once, naming both networks and --project.
func TestShortNetworkNameOfSeveralProjects(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	short := fmt.Sprintf("net%d", os.Getpid()) // no other project's network answers to it
	file := strings.ReplaceAll(`
services:
  app:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
    networks: [SHORT]
networks:
  SHORT: {}
`, "SHORT", short)
	a, b := newProject(t, file), newProject(t, file)
	a.scale("app", 1)
	b.scale("app", 1)
	d := startDLB(t, "--network", short)
	d.waitReady(t, b.name+"-app", 1, 15*time.Second)
	d.waitReady(t, a.name+"-app", 1, 15*time.Second)
	// A restart brings each container's events again: still one warning.
	docker(t, "restart", "-t", "1", a.containers("app")[0])
	d.waitReady(t, a.name+"-app", 1, 15*time.Second)
	n := strings.Count(d.logs(), "--network "+short+" matches the networks of several Compose projects")
	if n != 1 || !d.logHas(a.network(short), b.network(short), "--project") {
		t.Errorf("dlb warned %d times that --network %s matches several projects' networks, want once naming %s, %s and --project; log:\n%s",
			n, short, a.network(short), b.network(short), d.logs())
	}
}

// TestConsoleLogHasNoColourOffATerminal: with --log-format console and
// stderr a pipe (as under docker compose logs), no escape codes.
func TestConsoleLogHasNoColourOffATerminal(t *testing.T) {
	parallel(t)      // waits on the engine mostly (see e2e_test.go)
	requireDocker(t) // for the binary
	cmd := exec.Command(dlbBinary(), "--log-format", "console", "--listen", "127.0.0.1:0", "--admin=",
		"--docker-host", "tcp://"+refusedAddr(t))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("dlb exited before it said it was starting")
			}
			if strings.Contains(line, "\x1b[") {
				t.Fatalf("console log line to a pipe has colour codes: %q", line)
			}
			if strings.Contains(line, "dlb starting") {
				return
			}
		case <-deadline:
			t.Fatal("dlb did not say it was starting within 10s")
		}
	}
}

// refusedAddr is a 127.0.0.1 address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	addr, _ := nettest.ReservePort(t)
	return addr
}
