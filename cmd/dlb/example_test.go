package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
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
