package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// freePort returns a TCP port that is free on every interface, for a
// process or a published container port of the test's to listen on. It is
// taken outside the kernel's ephemeral range (ip_local_port_range), which
// the machine's outgoing connections draw their local ports from: a port
// from inside it can be a keep-alive connection's of another test by the
// time the engine binds it, and then the container does not start ("bind:
// address already in use") for as long as that connection lives. No port
// is handed out twice in a run, and each run starts at a place of its own,
// so that two runs on one machine rarely meet.
func freePort(t *testing.T) string {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
		ports.lo, ports.hi = portsOutsideEphemeral()
		ports.next = ports.lo + os.Getpid()%(ports.hi-ports.lo)
	}
	for range ports.hi - ports.lo {
		p := ports.next
		if ports.next++; ports.next == ports.hi {
			ports.next = ports.lo
		}
		if ports.given[p] {
			continue
		}
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		ports.given[p] = true
		return strconv.Itoa(p)
	}
	t.Fatalf("no free TCP port in %d-%d, outside the ephemeral range", ports.lo, ports.hi-1)
	return ""
}

var ports struct {
	mu     sync.Mutex
	given  map[int]bool
	lo, hi int // [lo, hi)
	next   int
}

// portsOutsideEphemeral is the larger of the two spans of unprivileged
// ports around the kernel's ephemeral range.
func portsOutsideEphemeral() (lo, hi int) {
	first, last := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, z int
		if n, _ := fmt.Sscan(string(b), &a, &z); n == 2 && a <= z {
			first, last = a, z
		}
	}
	below, above := max(first-10000, 1024), last+1
	switch {
	case max(first-below, 65536-above) < 100:
		return 1024, 65536 // a range that leaves nothing out: any port
	case first-below >= 65536-above:
		return below, first
	}
	return above, 65536
}

// TestExampleStack runs the repository's own docker-compose.yaml as the
// README's `make demo` does — dlb in a container, the socket mounted
// read-only, --network appnet — and checks that three replicas take turns
// on the published port and five after scaling.
func TestExampleStack(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	root, _ := filepath.Abs("../..")
	port, adminPort := freePort(t), freePort(t)
	name := fmt.Sprintf("dlbexample%d", os.Getpid())
	cc := composeCommand()
	// The file as the README runs it, with this process's images instead of
	// make demo's dlb:dev and dlb-demo:dev (which a fresh machine lacks and
	// tests must not build).
	override := filepath.Join(t.TempDir(), "images.yaml")
	images := fmt.Sprintf("services:\n  app:\n    image: %s\n  dlb:\n    image: %s\n", runImage("dlb-demo:dev"), runImage("dlb:dev"))
	if err := os.WriteFile(override, []byte(images), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		full := append(append(cc[1:], "-p", name, "-f", filepath.Join(root, "docker-compose.yaml"), "-f", override), args...)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cc[0], full...)
		cmd.Env = append(os.Environ(), "DLB_PORT="+port, "DLB_ADMIN_PORT="+adminPort)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", cc[0], strings.Join(full, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dlb's log:\n%s", run("logs", "--no-color", "dlb"))
		}
		(&project{t: t, name: name}).down()
	})
	run("up", "-d", "--no-build", "--scale", "app=3")
	url := "http://127.0.0.1:" + port + "/"

	waitFor(t, 20*time.Second, "3 replicas to take turns behind the example's dlb", answeredByN(url, 3))
	run("up", "-d", "--no-build", "--scale", "app=5", "app")
	took := waitFor(t, 2*time.Second, "5 replicas to take turns after scaling", answeredByN(url, 5))
	t.Logf("example stack: 5 replicas answered %s after compose returned", took)
	if code, body := get("http://127.0.0.1:" + adminPort + "/healthz"); code != 200 {
		t.Errorf("admin /healthz on the published admin port: %d %q, want 200", code, body)
	}
	logs := run("logs", "--no-color", "dlb")
	if !strings.Contains(logs, "running in a container") {
		t.Errorf("dlb in the example did not find its own container; its log:\n%s", logs)
	}
}
