package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSwarm runs the Swarm tests on one swarm, made for them (or the
// engine's own, when it is a manager already), beside each other and
// beside the package's other parallel tests. Making a swarm and using one
// (overlay networks, services, tasks) disturbs no other container of the
// engine; leaving one cuts the engine's containers off their bridge
// networks, for good. So the swarm it makes is left by TestMain, once
// every test of the package is over. A second engine joins it for
// TwoNodes, so it is advertised on the second engine's link where the
// machine can make one (see node2), on loopback otherwise. The one-node
// tests keep their tasks on this engine's node (node.id == self): the
// second node comes and goes.
func TestSwarm(t *testing.T) {
	// Not parallel's: it takes no slot, only making the swarm (and the
	// second engine) for its subtests, which take theirs.
	t.Parallel()
	requireDocker(t)
	holdSwarmLock(t)
	n2, noNode2 := newNode2(t)
	addr := "127.0.0.1"
	if n2 != nil {
		addr = node2HostAddr
	}
	own := initSwarm(t, addr)
	self := docker(t, "info", "--format", "{{.Swarm.NodeID}}")
	t.Run("ZeroErrors", func(t *testing.T) {
		parallelLong(t)
		swarmZeroErrors(t, self)
	})
	t.Run("ExampleStack", func(t *testing.T) {
		parallel(t)
		swarmExampleStack(t, self)
	})
	t.Run("TwoNodes", func(t *testing.T) {
		parallelLong(t)
		switch {
		case n2 == nil:
			t.Skip(noNode2)
		case !own:
			t.Skip("the engine is a manager of a swarm this test did not create: it adds a node only to a swarm of its own; run it on an engine in no swarm")
		}
		swarmTwoNodes(t, n2, self)
	})
}

// swarmZeroErrors runs dlb as a container on a one-node swarm, with
// --provider swarm, under a steady keep-alive load from the host through
// its published port, and changes a service every way Swarm can: scale
// 3 -> 6 -> 2, rolling updates (start-first, stop-first, a new image), a
// rollback, a task's container killed. No request may fail, and the new
// tasks must serve. It logs how fast dlb drained the tasks whose
// DesiredState left running, and admitted the new ones, from dlb's log.
//
// The engine here has no IPVS: services use --endpoint-mode dnsrr (no
// VIP), nothing is published through the ingress mesh, and dlb reaches
// tasks over an attachable overlay network, which the host cannot reach.
// The service's tasks run on node self.
func swarmZeroErrors(t *testing.T, self string) {
	start := time.Now()
	prefix := fmt.Sprintf("dlbsw%d", os.Getpid())
	net := prefix + "_net"
	svc := prefix + "_web" // a stack's naming: dlb calls its pool prefix-web
	pool := prefix + "-web"
	v1, v2 := runImage("dlb-demo:dev"), "dlb-demo:"+prefix+"-v2"

	docker(t, "network", "create", "-d", "overlay", "--attachable", "--label", "dlb.test="+prefix, net)
	t.Cleanup(func() { removeNetwork(t, net) })
	docker(t, "tag", v1, v2)
	t.Cleanup(func() { exec.Command("docker", "rmi", v2).Run() })
	t.Cleanup(func() { exec.Command("docker", "service", "rm", svc).Run() })
	docker(t, "service", "create", "-d", "--quiet", "--name", svc, "--no-resolve-image", "--endpoint-mode", "dnsrr",
		"--network", net, "--replicas", "3", "--restart-delay", "200ms", "--stop-grace-period", "5s",
		// Swarm watches each updated task for 5 s by default before the
		// next: 1 s makes the updates and the rollback as dense for dlb,
		// and the test half a minute shorter.
		"--update-monitor", "1s", "--rollback-monitor", "1s",
		"--constraint", "node.id=="+self,
		"--label", "dlb.enable=true", "--label", "com.docker.stack.namespace="+prefix,
		"--container-label", "dlb.enable=true", "--container-label", "com.docker.compose.project="+prefix, v1)

	d := startSwarmDLB(t, prefix, net)
	d.waitTasksServe(t, svc, pool, 3)

	l := startLoad(t, d.proxyURL+"/", "", 8, 4*time.Minute, 2_000_000)
	settle := 500 * time.Millisecond
	phases := []struct {
		name string
		args []string
		n    int // running tasks after
		gone int // how many of the tasks that ran before are replaced
	}{
		{"scale 3 -> 6", []string{"service", "scale", "-d", svc + "=6"}, 6, 0},
		{"scale 6 -> 2", []string{"service", "scale", "-d", svc + "=2"}, 2, 4},
		{"update --force start-first", []string{"service", "update", "-d", "--force", "--update-order", "start-first", svc}, 2, 2},
		{"update --force stop-first", []string{"service", "update", "-d", "--force", "--update-order", "stop-first", svc}, 2, 2},
		{"update --image (second tag)", []string{"service", "update", "-d", "--no-resolve-image", "--image", v2, svc}, 2, 2},
		{"rollback", []string{"service", "rollback", "-d", svc}, 2, 2},
		{"docker kill one task", nil, 2, 1},
	}
	for _, ph := range phases {
		l.phase(t, ph.name, settle, func() {
			before := runningTasks(t, svc)
			if ph.args == nil {
				docker(t, "kill", before[0])
			} else {
				docker(t, ph.args...)
			}
			// The command returns before Swarm acts: wait until the old
			// tasks are replaced, then until the new ones serve.
			waitReplaced(t, ph.name, svc, before, ph.gone)
			d.waitTasksServe(t, svc, pool, ph.n)
		})
	}
	l.finish()
	r, f := l.mark()
	t.Logf("all phases: %d requests, %d failed, slowest %s", r, f, time.Duration(l.slowest.Load()).Round(time.Millisecond))

	logs := d.containerLogs()
	// Scale-down sets DesiredState remove; updates, rollbacks, shutdown.
	for _, ds := range []string{"remove", "shutdown"} {
		drains := logDurations(logs, "swarm task draining", "since_change_ms", ds)
		sinceEvent := logDurations(logs, "swarm task draining", "since_service_event_ms", ds)
		t.Logf("DesiredState %s: task UpdatedAt -> drained in dlb (%d tasks): %s; the service event -> drained: %s",
			ds, len(drains), summary(drains), summary(sinceEvent))
		if ds == "remove" && len(drains) < 4 {
			t.Errorf("dlb logged %d drains of tasks for the scale-down, want the 4 it removed", len(drains))
		}
	}
	readies := logDurations(logs, "replica ready", "since_event_ms", "")
	t.Logf("task running -> ready in dlb (%d tasks): %s", len(readies), summary(readies))
	t.Logf("the test took %s", time.Since(start).Round(100*time.Millisecond))
}

// The machine-wide lock of the Swarm tests: TestSwarm and
// bench/swarm-drain.sh hold it exclusively while the engine is in a swarm
// they made; tests that only need no swarm of another process to come or go
// hold it shared (lockSwarmTests). Two test processes of this checkout or
// another cannot leave a swarm, or tear a second engine down, under each
// other's feet. A process holds it on one file (flock locks are per open
// file: two of one process would exclude each other): shared while any of
// its tests asks, exclusively from TestSwarm's start until TestMain has
// left the swarm, which its shared users need no more than that.
var swarmLock struct {
	sync.Mutex
	f      *os.File
	shared int  // tests of this process that hold it shared
	excl   bool // held exclusively, until TestMain
}

// lockSwarmFile opens the lock's file once; swarmLock is held.
func lockSwarmFile() error {
	if swarmLock.f != nil {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "dlb-swarm-test.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	swarmLock.f = f
	return err
}

// lockSwarmTests holds the Swarm tests' lock shared until the test ends
// (after the cleanups registered later).
func lockSwarmTests(t *testing.T) {
	t.Helper()
	swarmLock.Lock()
	defer swarmLock.Unlock()
	if err := lockSwarmFile(); err != nil {
		t.Fatal(err)
	}
	if swarmLock.shared == 0 && !swarmLock.excl {
		if err := syscall.Flock(int(swarmLock.f.Fd()), syscall.LOCK_SH); err != nil {
			t.Fatal(err)
		}
	}
	swarmLock.shared++
	t.Cleanup(func() {
		swarmLock.Lock()
		defer swarmLock.Unlock()
		if swarmLock.shared--; swarmLock.shared == 0 && !swarmLock.excl {
			syscall.Flock(int(swarmLock.f.Fd()), syscall.LOCK_UN)
		}
	})
}

// holdSwarmLock holds the Swarm tests' lock exclusively for the rest of the
// process: TestMain lets it go after every test.
func holdSwarmLock(t *testing.T) {
	t.Helper()
	swarmLock.Lock()
	defer swarmLock.Unlock()
	if err := lockSwarmFile(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(swarmLock.f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	swarmLock.excl = true
	runAfterAll(func() error {
		swarmLock.Lock()
		defer swarmLock.Unlock()
		swarmLock.excl = false
		how := syscall.LOCK_UN
		if swarmLock.shared > 0 {
			how = syscall.LOCK_SH
		}
		return syscall.Flock(int(swarmLock.f.Fd()), how)
	})
}

// afterAll are what TestSwarm leaves to TestMain, to run once every test is
// over, last registered first: leaving the swarm, removing the second
// engine's link, letting the lock go.
var afterAll struct {
	sync.Mutex
	fns []func() error
}

func runAfterAll(f func() error) {
	afterAll.Lock()
	defer afterAll.Unlock()
	afterAll.fns = append(afterAll.fns, f)
}

// finishAfterAll runs what was left to TestMain, and reports its errors.
func finishAfterAll() error {
	afterAll.Lock()
	fns := afterAll.fns
	afterAll.fns = nil
	afterAll.Unlock()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		errs = append(errs, fns[i]())
	}
	return errors.Join(errs...)
}

// initSwarm makes the engine the manager of a swarm advertised at addr,
// under holdSwarmLock, and reports whether that swarm is one it created
// (and TestMain leaves, with the docker_gwbridge network it brought, after
// every test): only to such a swarm may a test add nodes. When the engine is a
// manager of the user's swarm it uses it, leaving it as it is; it skips
// when the engine is a worker. The node of a swarm it creates is labelled,
// so that a run killed before its cleanup leaves a swarm the next run
// knows as its own and leaves.
func initSwarm(t *testing.T, addr string) (own bool) {
	t.Helper()
	// The lock says no Swarm test runs: containers with their label are
	// a killed run's.
	if left := strings.Fields(docker(t, "ps", "-aq", "--filter", "label="+swarmTestLabel)); len(left) > 0 {
		t.Logf("removing the containers %v an earlier, killed run of a Swarm test left", left)
		docker(t, append([]string{"rm", "-f"}, left...)...)
	}
	state := strings.Fields(docker(t, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeAddr}}"))
	hadGWBridge := exec.Command("docker", "network", "inspect", "docker_gwbridge").Run() == nil
	switch {
	case len(state) == 3 && state[0] == "active" && state[2] == node2HostAddr:
		// Advertised on the two-node test's own address: a swarm that
		// test made, left behind broken (its veth gone, the manager
		// unable to answer even for its own node) by a run that was
		// killed or could not leave in time.
		t.Log("the engine is in a swarm the two-node test made and did not leave: leaving it")
		if err := leave(); err != nil {
			t.Fatalf("leaving the swarm an earlier run left: %v", err)
		}
		hadGWBridge = false // that swarm brought it
	case len(state) == 3 && state[0] == "active" && state[1] == "true":
		label, _ := exec.Command("docker", "node", "inspect", "self", "--format", `{{index .Spec.Labels "`+swarmTestLabel+`"}}`).Output()
		if strings.TrimSpace(string(label)) == "" {
			t.Log("the engine is a swarm manager already: using its swarm, leaving it as it is")
			return false
		}
		// A swarm this test made, left behind by a run that was killed
		// (the lock says no other run uses it).
		if state[2] == addr {
			t.Log("the engine is in a swarm an earlier run of this test made and did not leave: using it, then leaving it")
			leaveSwarm(t, false)
			return true
		}
		t.Log("the engine is in a swarm an earlier run of this test made and did not leave: leaving it")
		if err := leave(); err != nil {
			t.Fatalf("leaving the swarm an earlier run left: %v", err)
		}
		hadGWBridge = false // that swarm brought it
	case len(state) >= 2 && state[0] == "active":
		t.Skip("the engine is a swarm worker: the Swarm API answers only on managers; run this test on a manager or outside any swarm")
	case len(state) == 0 || state[0] != "inactive":
		t.Skipf("the engine's swarm state is %q: cannot use it for this test", strings.Join(state, " "))
	}
	args := []string{"swarm", "init", "--advertise-addr", addr}
	if addr != "127.0.0.1" {
		// Other nodes join here: the managers' port listens on this
		// address only, not on every interface of the machine.
		args = append(args, "--listen-addr", addr+":2377")
	}
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Skipf("cannot initialise a swarm (docker %s: %v: %s)", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	leaveSwarm(t, hadGWBridge)
	docker(t, "node", "update", "--label-add", swarmTestLabel+"=true", docker(t, "info", "--format", "{{.Swarm.NodeID}}"))
	return true
}

// swarmTestLabel marks the node of a swarm that initSwarm created, and the
// containers the Swarm tests run beside their services.
const swarmTestLabel = "dlb-test-swarm"

// leaveSwarm has TestMain leave the swarm once every test is over, and
// remove the docker_gwbridge network unless it was there before the swarm.
func leaveSwarm(t *testing.T, hadGWBridge bool) {
	runAfterAll(func() error {
		if err := leave(); err != nil {
			return fmt.Errorf("leaving the swarm TestSwarm created: %w", err)
		}
		if !hadGWBridge {
			// The engine lets go of the bridge's last endpoint a moment
			// after the swarm is left.
			deadline := time.Now().Add(20 * time.Second)
			for {
				out, err := exec.Command("docker", "network", "rm", "docker_gwbridge").CombinedOutput()
				if err == nil || exec.Command("docker", "network", "inspect", "docker_gwbridge").Run() != nil {
					break
				}
				if time.Now().After(deadline) {
					attached, _ := exec.Command("docker", "network", "inspect", "-f", "{{len .Containers}}", "docker_gwbridge").Output()
					if strings.Contains(string(out), "active endpoints") && strings.TrimSpace(string(attached)) == "0" {
						// No container is attached, yet the engine holds
						// an endpoint: its own leak (seen on Docker
						// 20.10), which only a restart of dockerd clears.
						// Nothing of this run is left on it.
						fmt.Fprintln(os.Stderr, "note: docker_gwbridge stays: the engine holds an endpoint of no container on it (a dockerd leak; a restart of dockerd clears it)")
						break
					}
					return fmt.Errorf("could not remove docker_gwbridge, which the swarm TestSwarm created brought: %s", strings.TrimSpace(string(out)))
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		return nil
	})
}

// leave makes the engine leave its swarm. A loaded engine's manager can
// take longer than the command waits ("context deadline exceeded"): it is
// asked again until the engine says it is in no swarm, for up to 2 min.
func leave() error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := exec.Command("docker", "swarm", "leave", "--force").CombinedOutput()
		if err == nil {
			return nil
		}
		state, _ := exec.Command("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").Output()
		if strings.TrimSpace(string(state)) == "inactive" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("docker swarm leave --force: %v: %s", err, strings.TrimSpace(string(out)))
		}
		time.Sleep(2 * time.Second)
	}
}

// removeNetwork removes a network of the test once the containers of the
// removed services on it are gone, which takes the engine a few seconds.
func removeNetwork(t *testing.T, name string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("docker", "network", "rm", name).CombinedOutput()
		if err == nil || strings.Contains(string(out), "not found") {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("removing network %s: %v: %s", name, err, out)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// swarmDLB is dlb running as a container on the swarm's overlay network.
type swarmDLB struct {
	dlbProc
	name string // the container's
}

// startSwarmDLB runs dlb in a container on net, with the socket mounted
// read-only and its ports published on loopback, and waits until it is in
// sync with the swarm. It follows containers too (--provider docker,swarm):
// the tasks' containers, labelled as a Compose project's of --project, must
// not be reported twice, and both sources must sync.
func startSwarmDLB(t *testing.T, prefix, net string) *swarmDLB {
	t.Helper()
	name := prefix + "_dlb"
	args := []string{"run", "-d", "--name", name, "--network", net, "--label", "dlb.test=" + prefix, "--label", swarmTestLabel + "=true",
		"-v", "/var/run/docker.sock:/var/run/docker.sock:ro", "-p", "127.0.0.1::80", "-p", "127.0.0.1::8080",
		runImage("dlb:dev"), "--provider", "docker,swarm", "--project", prefix, "--queue-timeout", "20s",
		"--log-format", "json", "--log-level", "debug"}
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
	runOnOverlay(t, name, args)
	d := &swarmDLB{dlbProc: dlbProc{t: t}, name: name}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dlb's log:\n%s", d.containerLogs())
		}
	})
	d.proxyURL = "http://" + docker(t, "port", name, "80/tcp")
	d.adminURL = "http://" + docker(t, "port", name, "8080/tcp")
	waitFor(t, 20*time.Second, "dlb's /healthz to say it is in sync with the swarm", func() (bool, string) {
		code, body := get(d.adminURL + "/healthz")
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})
	return d
}

// runOnOverlay runs `docker run` args, which start the container name on
// an attachable overlay. The engine asks the swarm's manager for the
// container's address there and gives up after 20 s ("attaching to network
// failed ... context deadline exceeded"), leaving the container created but
// not started; a manager busy placing tasks on a loaded machine took that
// long in a CI run. That is the engine's limit, not dlb's, so the container
// is removed and run again, up to three tries, each logged.
func runOnOverlay(t *testing.T, name string, args []string) {
	t.Helper()
	for try := 1; ; try++ {
		start := time.Now()
		out, err := dockerOutput(args...)
		if err == nil {
			return
		}
		if try == 3 || !strings.Contains(out, "attaching to network failed") {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("docker run %s, try %d: the engine could not attach it to the overlay in %s; running it again:\n%s",
			name, try, time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(out))
		docker(t, "rm", "-f", name)
	}
}

func (d *swarmDLB) containerLogs() string {
	out, _ := exec.Command("docker", "logs", d.name).CombinedOutput()
	return string(out)
}

// waitReplaced waits until gone of the tasks before (runningTasks) of svc
// no longer run.
func waitReplaced(t *testing.T, what, svc string, before []string, gone int) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%s: %d of the tasks %v to be replaced", what, gone, before), func() (bool, string) {
		now := runningTasks(t, svc)
		left := 0
		for _, id := range before {
			if slices.Contains(now, id) {
				left++
			}
		}
		return len(before)-left >= gone, fmt.Sprintf("running now: %v", now)
	})
}

// runningTasks lists the container IDs (12 characters: the demo's
// hostname) of the service's tasks that run and should, and pass the
// docker service ps filters (node=ID).
func runningTasks(t *testing.T, svc string, filters ...string) []string {
	t.Helper()
	args := []string{"service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running"}
	for _, f := range filters {
		args = append(args, "--filter", f)
	}
	ids := strings.Fields(docker(t, append(args, svc)...))
	if len(ids) == 0 {
		return nil
	}
	out := docker(t, append([]string{"inspect", "--format", "{{.Status.State}} {{with .Status.ContainerStatus}}{{.ContainerID}}{{end}}"}, ids...)...)
	var cs []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "running" {
			cs = append(cs, f[1][:12])
		}
	}
	slices.Sort(cs)
	return cs
}

// waitTasksServe waits until n tasks of svc run, and they, and only they,
// answer through dlb, and dlb's pool holds them all ready and nothing else.
func (d *swarmDLB) waitTasksServe(t *testing.T, svc, pool string, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d tasks of %s to run and be the ones that answer", n, svc), func() (bool, string) {
		tasks := runningTasks(t, svc)
		if len(tasks) != n {
			return false, fmt.Sprintf("%d tasks run: %v", len(tasks), tasks)
		}
		var states []string
		ready := 0
		for _, p := range d.pools() {
			if p.Name != pool {
				t.Errorf("dlb has a pool %s beside %s (the tasks' containers reported by the container watcher too?)", p.Name, pool)
			}
			if p.Name == pool {
				for _, r := range p.Replicas {
					states = append(states, r.Name+"="+r.State)
					if r.State == "ready" {
						ready++
					}
				}
			}
		}
		if ready != n || len(states) != n {
			return false, fmt.Sprintf("pool %s: %v", pool, states)
		}
		seen := map[string]bool{}
		for i := 0; i < 4*n+4; i++ {
			code, body := get(d.proxyURL + "/")
			if code != 200 {
				t.Errorf("a request while waiting for the tasks: got %d %q, want 200", code, body)
				return false, body
			}
			seen[strings.TrimSpace(body)] = true
		}
		var got []string
		for h := range seen {
			got = append(got, h)
		}
		slices.Sort(got)
		return slices.Equal(got, tasks), fmt.Sprintf("answered by %v, tasks %v", got, tasks)
	})
}

// logDurations reads field (milliseconds) from dlb's JSON log lines with
// this message, and this desired_state unless it is "".
func logDurations(logs, message, field, desired string) []time.Duration {
	var out []time.Duration
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["message"] != message || desired != "" && m["desired_state"] != desired {
			continue
		}
		if ms, ok := m[field].(float64); ok {
			out = append(out, time.Duration(ms*float64(time.Millisecond)))
		}
	}
	return out
}

// summary is the median and max of ds.
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return fmt.Sprintf("median %s, max %s", ds[len(ds)/2].Round(100*time.Microsecond), ds[len(ds)-1].Round(100*time.Microsecond))
}

// swarmExampleStack deploys examples/swarm/stack.yaml as the README says
// (docker stack deploy), with this process's images and free ports, its
// tasks placed on node self: the three tasks take turns on dlb's
// published port, then five after docker service scale.
func swarmExampleStack(t *testing.T, self string) {
	root, _ := filepath.Abs("../..")
	b, err := os.ReadFile(filepath.Join(root, "examples/swarm/stack.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stack := fmt.Sprintf("dlbswex%d", os.Getpid())
	port, adminPort := freePort(t), freePort(t)
	// The admin token, a secret of the test's own, created as the file's
	// comment says for dlb_admin_token.
	secret, token := stack+"_token", fmt.Sprintf("tok%d", time.Now().UnixNano())
	create := exec.Command("docker", "secret", "create", secret, "-")
	create.Stdin = strings.NewReader(token + "\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("docker secret create %s: %v: %s", secret, err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "secret", "rm", secret).Run() })
	yaml := strings.NewReplacer(
		"image: dlb:dev", "image: "+runImage("dlb:dev"),
		"image: dlb-demo:dev", "image: "+runImage("dlb-demo:dev"),
		"published: 8000", "published: "+port,
		"published: 8080", "published: "+adminPort,
		`"--project", "shop"`, `"--project", "`+stack+`"`,
		"external: true", "external: true\n    name: "+secret,
		"      replicas: 3\n", "      replicas: 3\n      placement:\n        constraints: [\"node.id == "+self+"\"]\n",
		`constraints: ["node.role == manager"]`, `constraints: ["node.id == `+self+`"]`,
	).Replace(string(b))
	if n := strings.Count(yaml, "node.id == "+self); n != 2 {
		t.Fatalf("the example stack file changed: could not place its two services on this node (%d placed)", n)
	}
	for _, want := range []string{runImage("dlb:dev"), runImage("dlb-demo:dev"), port, adminPort, stack, secret} {
		if !strings.Contains(yaml, want) {
			t.Fatalf("the example stack file changed: could not set %s in it", want)
		}
	}
	file := filepath.Join(t.TempDir(), "stack.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNetwork(t, stack+"_appnet") })
	t.Cleanup(func() {
		if t.Failed() {
			// Why a task did not start (its image, a port taken) is
			// in the task's error, which no container log holds.
			out, _ := exec.Command("docker", "stack", "ps", "--no-trunc", "--format", "{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}", stack).CombinedOutput()
			t.Logf("the stack's tasks:\n%s", out)
			out, _ = exec.Command("docker", "service", "logs", "--raw", stack+"_dlb").CombinedOutput()
			t.Logf("dlb's log:\n%s", out)
		}
		exec.Command("docker", "stack", "rm", stack).Run()
	})
	docker(t, "stack", "deploy", "-c", file, stack)
	url := "http://127.0.0.1:" + port + "/"
	waitFor(t, 60*time.Second, "the example stack's 3 tasks to take turns behind its dlb", answeredByN(url, 3))
	docker(t, "service", "scale", "-d", stack+"_app=5")
	took := waitFor(t, 30*time.Second, "5 tasks to take turns after docker service scale", answeredByN(url, 5))
	t.Logf("example stack: 5 tasks answered %s after docker service scale returned", took)
	admin := "http://127.0.0.1:" + adminPort
	if code, body := get(admin + "/healthz"); code != 200 {
		t.Errorf("admin /healthz on the published admin port: %d %q, want 200", code, body)
	}
	// The admin port is public in the example: the API asks for the secret.
	if code, _ := get(admin + "/api/pools"); code != http.StatusUnauthorized {
		t.Errorf("admin /api/pools without the token: %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", admin+"/api/pools", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("admin /api/pools with the secret's token: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
}
