package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// swarmTwoNodes runs a swarm of two engines (the machine's as the
// manager, self, and n2, a second one in a network namespace of its own:
// see node2) and dlb on the manager with --provider swarm, in front of a
// service spread over both, under a steady keep-alive load. In turn: the
// tasks of both nodes serve, over the overlay, while the service scales up
// and down; the second node drains; a dlb on each node (mode global,
// host-mode ports) agrees on the pools; the second node is lost (its link
// cut, its processes killed). No request may fail, and dlb's reaction to
// each change is logged.
func swarmTwoNodes(t *testing.T, n2 *node2, self string) {
	start := time.Now()
	n2.start(t, runImage("dlb-demo:dev"), runImage("dlb:dev"))
	n2.join(t)
	t.Logf("second engine started, loaded and joined in %s", time.Since(start).Round(100*time.Millisecond))

	prefix := fmt.Sprintf("dlbsw2%d", os.Getpid())
	net, svc, pool := prefix+"_net", prefix+"_web", prefix+"-web"
	docker(t, "network", "create", "-d", "overlay", "--attachable", "--label", "dlb.test="+prefix, net)
	t.Cleanup(func() { removeNetwork(t, net) })
	// A zone per node, for the service's spread preference.
	docker(t, "node", "update", "--label-add", "dlb-test-zone=1", self)
	docker(t, "node", "update", "--label-add", "dlb-test-zone=2", n2.id)
	t.Cleanup(func() { exec.Command("docker", "service", "rm", svc).Run() })
	docker(t, "service", "create", "-d", "--quiet", "--name", svc, "--no-resolve-image", "--endpoint-mode", "dnsrr",
		"--network", net, "--replicas", "4", "--placement-pref", "spread=node.labels.dlb-test-zone",
		"--restart-delay", "200ms", "--stop-grace-period", "5s",
		"--label", "dlb.enable=true", "--label", "com.docker.stack.namespace="+prefix,
		"--container-label", "dlb.enable=true", "--container-label", "com.docker.compose.project="+prefix, runImage("dlb-demo:dev"))

	d := startSwarmDLB(t, prefix, net)
	d.waitTasksServe(t, svc, pool, 4)
	wantOnNode := func(node string, n int) {
		t.Helper()
		if got := tasksOn(t, svc, node); len(got) != n {
			t.Fatalf("%d tasks of %s run on node %s, want %d (spread over the two nodes)", len(got), svc, node, n)
		}
	}
	wantOnNode(n2.id, 2)

	l := startLoad(t, d.proxyURL+"/", "", 8, 5*time.Minute, 3_000_000)
	logged := 0 // how much of dlb's log earlier phases read
	phase := func(name string, op func()) {
		t.Helper()
		l.slowest.Store(0)
		l.phase(t, name, 500*time.Millisecond, op)
		t.Logf("%-34s slowest request %s", name, time.Duration(l.slowest.Load()).Round(time.Millisecond))
	}
	drains := func(name, desired string, want int) {
		t.Helper()
		logs := d.containerLogs()
		ds := logDurations(logs[logged:], "swarm task draining", "since_change_ms", desired)
		logged = len(logs)
		t.Logf("%-34s dlb drained %d tasks after their DesiredState turned %s: %s", name, len(ds), desired, summary(ds))
		if len(ds) < want {
			t.Errorf("%s: dlb logged %d drains of tasks whose DesiredState turned %s, want %d", name, len(ds), desired, want)
		}
	}
	replaced := func(name string, before []string, gone, n int) {
		t.Helper()
		waitReplaced(t, name, svc, before, gone)
		d.waitTasksServe(t, svc, pool, n)
	}

	// 1. The tasks of both nodes serve; scaling moves them.
	phase("scale 4 -> 8", func() {
		docker(t, "service", "scale", "-d", svc+"=8")
		d.waitTasksServe(t, svc, pool, 8)
	})
	wantOnNode(n2.id, 4)
	phase("scale 8 -> 2", func() {
		before := runningTasks(t, svc)
		docker(t, "service", "scale", "-d", svc+"=2")
		replaced("scale 8 -> 2", before, 6, 2)
	})
	drains("scale 8 -> 2", "remove", 6)
	wantOnNode(n2.id, 1)
	onNode2 := l.servedBy(tasksOn(t, svc, n2.id))
	if onNode2 == 0 {
		t.Errorf("no request of the load was answered by a task on the second node")
	}

	// 2. The second node drains: its task moves to the first.
	phase("node update --availability drain", func() {
		before := runningTasks(t, svc)
		docker(t, "node", "update", "--availability", "drain", n2.id)
		replaced("drain", before, 1, 2)
	})
	drains("node update --availability drain", "shutdown", 1)
	wantOnNode(n2.id, 0)
	docker(t, "node", "update", "--availability", "active", n2.id)
	phase("scale 2 -> 4 (back on node 2)", func() {
		docker(t, "service", "scale", "-d", svc+"=4")
		d.waitTasksServe(t, svc, pool, 4)
	})
	wantOnNode(n2.id, 2)

	// 3. A dlb on each node agrees on the pools.
	phase("a dlb on each node", func() { twoDLB(t, n2, prefix, net, pool, d) })

	// 4. The second node is lost: no answer, no reset.
	phase("second node lost", func() { loseNode2(t, n2, d, svc, pool) })

	l.finish()
	r, f := l.mark()
	t.Logf("all phases: %d requests, %d failed; %d answered by the second node's tasks in phase 1", r, f, onNode2)
	t.Logf("the test took %s", time.Since(start).Round(100*time.Millisecond))
}

// tasksOn lists the container IDs (as runningTasks) of svc's tasks that
// run on node.
func tasksOn(t *testing.T, svc, node string) []string {
	t.Helper()
	return runningTasks(t, svc, "node="+node)
}

// servedBy counts the load's answers from these replicas (the demo
// answers with its hostname, the container's short ID).
func (l *load) servedBy(replicas []string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range replicas {
		n += l.byReplica[r]
	}
	return n
}

// twoDLB promotes the second node to a manager (the Swarm API answers only
// on managers), runs dlb as a global service with host-mode ports, one
// task on each node, each following its own node's engine, and checks
// that both hold the same pool as the first dlb, and serve it, also after a
// scale; then it removes the service and demotes the node again.
func twoDLB(t *testing.T, n2 *node2, prefix, net, pool string, first *swarmDLB) {
	t.Helper()
	docker(t, "node", "promote", n2.id)
	waitFor(t, 60*time.Second, "the second node to be a manager", func() (bool, string) {
		out := string(n2.docker("info", "--format", "{{.Swarm.ControlAvailable}}"))
		return out == "true", out
	})
	svc := prefix + "_dlb"
	port, admin := freePort(t), freePort(t)
	t.Cleanup(func() { exec.Command("docker", "service", "rm", svc).Run() })
	docker(t, "service", "create", "-d", "--quiet", "--name", svc, "--no-resolve-image", "--mode", "global",
		"--network", net, "--mount", "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock,readonly",
		"--publish", "mode=host,target=80,published="+port, "--publish", "mode=host,target=8080,published="+admin,
		runImage("dlb:dev"), "--provider", "swarm", "--project", prefix, "--queue-timeout", "20s", "--log-format", "json")
	dlbs := map[string]*dlbProc{
		"node 1": {t: t, proxyURL: "http://127.0.0.1:" + port, adminURL: "http://127.0.0.1:" + admin},
		"node 2": {t: t, proxyURL: "http://" + node2Addr + ":" + port, adminURL: "http://" + node2Addr + ":" + admin},
	}
	all := map[string]*dlbProc{"the first dlb": &first.dlbProc, "node 1": dlbs["node 1"], "node 2": dlbs["node 2"]}
	agree := func(what string, n int) {
		t.Helper()
		start := time.Now()
		held := map[string]time.Duration{} // when each dlb first held n ready tasks
		waitFor(t, 60*time.Second, fmt.Sprintf("the dlb of each node to hold the %d tasks of pool %s, as the first dlb does (%s)", n, pool, what), func() (bool, string) {
			lists := map[string][]string{}
			for name, d := range all {
				if code, body := get(d.adminURL + "/healthz"); code != 200 {
					return false, fmt.Sprintf("%s: /healthz %d %s", name, code, body)
				}
				lists[name] = poolReplicas(t, d, pool)
				if _, ok := held[name]; !ok && len(lists[name]) == n {
					held[name] = time.Since(start)
				}
			}
			for name, l := range lists {
				if len(l) != n || !slices.Equal(l, lists["the first dlb"]) {
					return false, fmt.Sprintf("%s: %v, the first dlb: %v", name, l, lists["the first dlb"])
				}
			}
			return true, ""
		})
		var earliest, latest time.Duration = time.Hour, 0
		for _, d := range held {
			earliest, latest = min(earliest, d), max(latest, d)
		}
		t.Logf("after %s, the three dlb hold the same %d ready tasks: the first of them %s after the command, the last %s",
			what, n, earliest.Round(time.Millisecond), latest.Round(time.Millisecond))
		for name, d := range dlbs {
			if got, seen := answeredBy(d.proxyURL+"/", 4*n); got != n {
				t.Errorf("the dlb of %s: %s, want the %d tasks", name, seen, n)
			}
		}
	}
	agree("the service started", 4)
	docker(t, "service", "scale", "-d", prefix+"_web=6")
	agree("docker service scale 4 -> 6", 6)
	docker(t, "service", "scale", "-d", prefix+"_web=4")
	agree("docker service scale 6 -> 4", 4)
	docker(t, "service", "rm", svc)
	docker(t, "node", "demote", n2.id)
	waitFor(t, 60*time.Second, "the second node to be a worker again", func() (bool, string) {
		out := string(n2.docker("info", "--format", "{{.Swarm.ControlAvailable}}"))
		return out == "false", out
	})
}

// poolReplicas lists "name address" of a pool's ready replicas in d's
// /api/pools (the name has the task's ID), sorted.
func poolReplicas(t *testing.T, d *dlbProc, pool string) []string {
	code, body := get(d.adminURL + "/api/pools")
	if code != 200 {
		return []string{fmt.Sprintf("/api/pools: %d %s", code, body)}
	}
	var out []string
	for _, p := range d.pools() {
		if p.Name == pool {
			for _, r := range p.Replicas {
				if r.State == "ready" {
					out = append(out, r.Name+" "+r.Address)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// loseNode2 takes the second node away (node2.lose) and measures how long
// dlb keeps sending to its tasks: until it ejects them (a connection that
// fails), and until the swarm says the node is down and dlb removes them.
func loseNode2(t *testing.T, n2 *node2, d *swarmDLB, svc, pool string) {
	t.Helper()
	lost := map[string]bool{} // the replica names in dlb of the tasks on the second node
	tasks := tasksOn(t, svc, n2.id)
	for _, p := range d.pools() {
		if p.Name == pool {
			for _, r := range p.Replicas {
				for _, c := range tasks {
					if r.State == "ready" && strings.Contains(d.taskContainer(t, r.ID), c) {
						lost[r.Name] = true
					}
				}
			}
		}
	}
	if len(lost) != len(tasks) || len(tasks) == 0 {
		t.Fatalf("dlb's pool has %v of the second node's tasks %v", lost, tasks)
	}
	killed := time.Now()
	if err := n2.lose(); err != nil {
		t.Fatal(err)
	}
	var lastSent, notReady, removed, down time.Duration
	downState := ""
	requests := map[string]int64{}
	waitFor(t, 90*time.Second, "dlb to remove the second node's tasks", func() (bool, string) {
		now := time.Since(killed)
		if down == 0 {
			out, _ := exec.Command("docker", "node", "inspect", "--format", "{{.Status.State}}", n2.id).Output()
			if s := strings.TrimSpace(string(out)); s != "" && s != "ready" {
				down, downState = now, s
			}
		}
		ready, present := 0, 0
		var seen []string
		for _, p := range d.pools() {
			if p.Name != pool {
				continue
			}
			for _, r := range p.Replicas {
				if !lost[r.Name] {
					continue
				}
				present++
				seen = append(seen, r.Name+"="+r.State)
				if r.State == "ready" {
					ready++
				}
				if r.Requests > requests[r.Name] {
					requests[r.Name], lastSent = r.Requests, now
				}
			}
		}
		if ready == 0 && notReady == 0 {
			notReady = now
		}
		if present == 0 {
			removed = now
		}
		return present == 0, fmt.Sprintf("%v", seen)
	})
	t.Logf("second node lost: the manager saw it %s after %s; dlb: its tasks out of rotation after %s, removed after %s; the last request sent to them %s after the kill",
		downState, down.Round(time.Millisecond), notReady.Round(time.Millisecond), removed.Round(time.Millisecond), lastSent.Round(time.Millisecond))
	// Swarm reschedules the lost tasks on the first node.
	d.waitTasksServe(t, svc, pool, 4)
}

// taskContainer is the container ID of a swarm task, from the manager.
func (d *swarmDLB) taskContainer(t *testing.T, task string) string {
	t.Helper()
	return docker(t, "inspect", "--format", "{{with .Status.ContainerStatus}}{{.ContainerID}}{{end}}", task)
}
