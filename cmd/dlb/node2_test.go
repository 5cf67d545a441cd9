package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A second Docker Engine on this machine, standing in for a second machine
// of a swarm: its own dockerd (and the containerd it starts) in a network
// namespace of its own, joined to the machine's engine over a veth pair.
//
//	machine engine (manager)             node2 (worker, or manager)
//	198.18.23.1/30 on veth dlbn2h  <---> 198.18.23.2/30 on dlbn2n, in netns dlb-test-node2
//
// Everything it makes has one fixed name, so that a run killed midway
// leaves what the next run recognises and removes first (under
// holdSwarmLock: one such node on the machine at a time):
//   - the network namespace dlb-test-node2 and the veth pair dlbn2h/dlbn2n
//     (the pair goes with the namespace);
//   - the state directory /var/lib/dlb-test-node2: --data-root, --exec-root
//     (containerd's state and socket are under it), --pidfile, the API
//     socket, the daemon's log;
//   - the cgroup dlb-test-node2 in every hierarchy: dockerd starts in its
//     engine child, and its containers run under it (--cgroup-parent), so
//     every process of the node is found there, whichever way it went.
//
// dockerd runs in a mount namespace of its own (a slave of the machine's):
// what it mounts (its containers' namespaces, shm) stays there and goes
// with its last process, and its /run is a tmpfs of its own, where it also
// listens on /var/run/docker.sock, as a second machine's engine does (a
// container of node2 that mounts the socket gets node2's). Its iptables
// rules and sysctls are those of its network namespace. It uses the vfs
// storage driver: no mount for an image layer, and the test images are a
// few MB.
const (
	node2Name     = "dlb-test-node2" // the netns, the cgroup, the node's hostname
	node2HostVeth = "dlbn2h"
	node2Veth     = "dlbn2n"
	node2Dir      = "/var/lib/dlb-test-node2"
	node2HostAddr = "198.18.23.1" // the machine's side: the manager advertises it
	node2Addr     = "198.18.23.2" // RFC 2544's benchmarking range: not on the machine, not Docker's
)

// node2 is a running second engine.
type node2 struct {
	host string    // its API, for docker -H
	id   string    // its swarm node ID, once joined
	exec *exec.Cmd // nsenter, which becomes dockerd
}

// newNode2 removes what a killed run of it left, then makes the network
// namespace and the veth pair, which TestMain removes after every test;
// start starts the engine. The test must hold holdSwarmLock. Where the
// machine cannot hold a second engine it returns nil and says why.
func newNode2(t *testing.T) (*node2, string) {
	t.Helper()
	if why := node2Unavailable(); why != "" {
		return nil, why
	}
	if err := removeNode2(); err != nil {
		t.Fatalf("removing what an earlier run left of the second engine: %v", err)
	}
	// The manager advertises the host's side of the link: it goes after
	// the swarm is left, once every test is over.
	runAfterAll(func() error {
		if err := removeNode2(); err != nil {
			return fmt.Errorf("removing the second engine: %w", err)
		}
		if left := node2Leftovers(); len(left) > 0 {
			return fmt.Errorf("the second engine left %s behind", strings.Join(left, ", "))
		}
		return nil
	})
	ip := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	for _, args := range [][]string{
		{"netns", "add", node2Name},
		{"link", "add", node2HostVeth, "type", "veth", "peer", "name", node2Veth, "netns", node2Name},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return nil, fmt.Sprintf("this machine cannot give a second Docker Engine a network of its own (ip %s: %v: %s); a container without CAP_NET_ADMIN cannot", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	ip("addr", "add", node2HostAddr+"/30", "dev", node2HostVeth)
	ip("link", "set", node2HostVeth, "up")
	ip("-n", node2Name, "addr", "add", node2Addr+"/30", "dev", node2Veth)
	ip("-n", node2Name, "link", "set", node2Veth, "up")
	ip("-n", node2Name, "link", "set", "lo", "up")
	// The overlay network carries the swarm's traffic in VXLAN: without
	// it there is no second node to speak of.
	if out, err := exec.Command("ip", "-n", node2Name, "link", "add", "dlbn2vx", "type", "vxlan", "id", "4242", "dstport", "4789").CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("the kernel cannot make a VXLAN device, which Swarm's overlay networks need (ip link add type vxlan: %v: %s)", err, bytes.TrimSpace(out))
	}
	ip("-n", node2Name, "link", "del", "dlbn2vx")
	return &node2{host: "unix://" + filepath.Join(node2Dir, "docker.sock")}, ""
}

// node2Unavailable says what this machine lacks for a second engine, or "".
func node2Unavailable() string {
	if os.Geteuid() != 0 {
		return "a second Docker Engine needs root (network namespaces, cgroups, dockerd): run the tests as root"
	}
	for _, bin := range []string{"dockerd", "containerd", "runc", "ip", "nsenter", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Sprintf("a second Docker Engine needs %s, which is not on PATH (Debian: apt-get install docker.io iproute2 util-linux)", bin)
		}
	}
	if _, err := os.Stat(filepath.Dir(node2Cgroup())); err != nil {
		return fmt.Sprintf("a second Docker Engine's processes are kept in a cgroup, and %s is not there: %v", filepath.Dir(node2Cgroup()), err)
	}
	// No /sys/module/vxlan says nothing: VXLAN may be built in. newNode2's
	// test device says whether the kernel makes one.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Sprintf("listing the machine's addresses: %v", err)
	}
	_, ours, _ := net.ParseCIDR(node2HostAddr + "/30")
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && ours.Contains(n.IP) && !node2VethUp() {
			return fmt.Sprintf("the machine already has the address %s in %s, which the second engine's veth pair uses", n, ours)
		}
	}
	return ""
}

func node2VethUp() bool { return exec.Command("ip", "link", "show", node2HostVeth).Run() == nil }

// node2Cgroup is the cgroup the second engine's processes run under: in
// the pids hierarchy on cgroup v1, in the unified one on v2.
func node2Cgroup() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return filepath.Join("/sys/fs/cgroup", node2Name)
	}
	return filepath.Join("/sys/fs/cgroup/pids", node2Name)
}

// node2Cgroups lists the second engine's cgroup in every hierarchy that
// has it (cgroup v1: one per controller; v2: the one).
func node2Cgroups() []string {
	hier, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", node2Name))
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", node2Name)); err == nil {
		hier = append(hier, filepath.Join("/sys/fs/cgroup", node2Name))
	}
	return hier
}

// start starts dockerd in the namespace, waits for its API, and loads the
// images into it (there is no registry to pull from).
func (n *node2) start(t *testing.T, images ...string) {
	t.Helper()
	for _, d := range []string{filepath.Join(node2Dir, "data"), filepath.Join(node2Dir, "exec"), filepath.Join(node2Cgroup(), "engine")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Its own (empty) daemon.json: the machine's may set a data root or a
	// storage driver that these flags would contradict.
	conf := filepath.Join(node2Dir, "daemon.json")
	if err := os.WriteFile(conf, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(node2Dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	dockerd := strings.Join([]string{"exec dockerd",
		"--config-file", conf,
		"--data-root", filepath.Join(node2Dir, "data"),
		"--exec-root", filepath.Join(node2Dir, "exec"),
		"--pidfile", filepath.Join(node2Dir, "dockerd.pid"),
		"-H", n.host, "-H", "unix:///var/run/docker.sock",
		"--storage-driver", "vfs",
		"--cgroup-parent", "/" + node2Name,
	}, " ")
	script := fmt.Sprintf("echo $$ > %s && hostname %s && mount -t tmpfs %s /run && %s",
		filepath.Join(node2Cgroup(), "engine", "cgroup.procs"), node2Name, node2Name, dockerd)
	n.exec = exec.Command("nsenter", "--net=/run/netns/"+node2Name, "unshare", "--mount", "--uts", "--propagation", "slave", "sh", "-c", script)
	n.exec.Stdout, n.exec.Stderr = logf, logf
	n.exec.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // not in the test's process group: a ^C reaches the test, whose cleanup stops the node
	if err := n.exec.Start(); err != nil {
		t.Fatalf("starting the second dockerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- n.exec.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for n.docker("version", "--format", "{{.Server.Version}}") == nil {
		select {
		case err := <-exited:
			t.Fatalf("the second dockerd exited at start (%v); its log:\n%s", err, n.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second dockerd did not answer within 60s; its log:\n%s", n.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the second dockerd's log (last 40 lines):\n%s", lastLines(n.log(), 40))
		}
	})
	save := exec.Command("docker", append([]string{"save"}, images...)...)
	load := exec.Command("docker", "-H", n.host, "load", "-q")
	pipe, err := save.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	var saveErr, loadOut bytes.Buffer
	save.Stderr, load.Stdout, load.Stderr = &saveErr, &loadOut, &loadOut
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	if err := load.Run(); err != nil {
		save.Process.Kill()
		save.Wait()
		t.Fatalf("loading %v into the second engine: %v: %s", images, err, loadOut.String())
	}
	if err := save.Wait(); err != nil {
		t.Fatalf("docker save %v: %v: %s", images, err, saveErr.String())
	}
}

// docker runs a docker command against the second engine; it returns its
// output, or nil and the error.
func (n *node2) docker(args ...string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", n.host}, args...)...).Output()
	if err != nil {
		return nil
	}
	return bytes.TrimSpace(out)
}

// must is docker, failing the test on an error.
func (n *node2) must(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", n.host}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker -H %s %s: %v\n%s", n.host, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (n *node2) log() string {
	b, _ := os.ReadFile(filepath.Join(node2Dir, "dockerd.log"))
	return string(b)
}

func lastLines(s string, k int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], "\n")
}

// join makes the node a worker of the machine engine's swarm, and waits
// until the manager sees it ready.
func (n *node2) join(t *testing.T) {
	t.Helper()
	token := docker(t, "swarm", "join-token", "-q", "worker")
	n.must(t, "swarm", "join", "--token", token, "--advertise-addr", node2Addr, "--listen-addr", node2Addr+":2377", node2HostAddr+":2377")
	n.id = n.must(t, "info", "--format", "{{.Swarm.NodeID}}")
	n.waitState(t, "ready")
}

// waitState waits until the manager sees the node in state (ready, down).
func (n *node2) waitState(t *testing.T, state string) time.Duration {
	t.Helper()
	return waitFor(t, 60*time.Second, "the manager to see the second node "+state, func() (bool, string) {
		out, _ := exec.Command("docker", "node", "inspect", "--format", "{{.Status.State}}", n.id).Output()
		got := strings.TrimSpace(string(out))
		return got == state, got
	})
}

// lose takes the node away as a machine that loses power does: its link
// goes down first (the host's side stays up: packets to the node are lost,
// not refused, and nothing on the node answers a reset), then every
// process of it (dockerd, containerd, shims, the containers) gets SIGKILL.
func (n *node2) lose() error {
	if out, err := exec.Command("ip", "-n", node2Name, "link", "set", node2Veth, "down").CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s link set %s down: %v: %s", node2Name, node2Veth, err, bytes.TrimSpace(out))
	}
	return killCgroup(node2Cgroup())
}

// killCgroup sends SIGKILL to every process under dir until none is left.
func killCgroup(dir string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids := 0
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil // a cgroup that went while walking
			}
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
					pids++
				}
			}
			return nil
		})
		if err != nil || pids == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes in %s outlive SIGKILL for 20s", dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeNode2 removes everything a second engine (of this run, or of one
// that was killed) made; what is not there is skipped.
func removeNode2() error {
	var errs []error
	if err := killCgroup(node2Cgroup()); err != nil {
		errs = append(errs, err)
	}
	// The cgroups, deepest first, in every hierarchy (runc makes its
	// containers' in each).
	for _, h := range node2Cgroups() {
		var dirs []string
		filepath.WalkDir(h, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dirs[i], err))
			}
		}
	}
	if _, err := os.Stat(filepath.Join("/run/netns", node2Name)); err == nil {
		if out, err := exec.Command("ip", "netns", "del", node2Name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", node2Name, err, bytes.TrimSpace(out)))
		}
	}
	// The pair goes with the namespace, a moment after its last process.
	for deadline := time.Now().Add(5 * time.Second); node2VethUp() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if node2VethUp() {
		if out, err := exec.Command("ip", "link", "del", node2HostVeth).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", node2HostVeth, err, bytes.TrimSpace(out)))
		}
	}
	if err := os.RemoveAll(node2Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// node2Leftovers names what of a second engine is still on the machine.
func node2Leftovers() []string {
	var left []string
	if _, err := os.Stat(filepath.Join("/run/netns", node2Name)); err == nil {
		left = append(left, "the network namespace "+node2Name)
	}
	if node2VethUp() {
		left = append(left, "the veth "+node2HostVeth)
	}
	if _, err := os.Stat(node2Dir); err == nil {
		left = append(left, node2Dir)
	}
	if hier := node2Cgroups(); len(hier) > 0 {
		left = append(left, "the cgroups "+strings.Join(hier, " "))
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(b, []byte(node2Name)) {
		left = append(left, "mounts of "+node2Name+" (see /proc/self/mountinfo)")
	}
	return left
}
