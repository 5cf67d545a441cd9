package main

// Real-engine tests: they build dlb and the demo backend, start Compose
// projects on the local Docker Engine and send real HTTP through a real dlb
// process. Set DLB_SKIP_DOCKER=1 to skip them on a machine without Docker;
// otherwise a missing engine fails them with a message saying so.
//
// Most wait on the engine and Compose far more than they use the CPU, so
// they call parallel (make test runs them four at a time, the longest
// first: slots_test.go). Those that time requests (a slowest request under
// 1s, a 502 in under 1s, replicas still starting when Compose returns) or
// measure throughput do not: Go runs a package's sequential tests first,
// one at a time, then the parallel ones. TestSwarm's three tests run in
// parallel too, on the one swarm it makes: leaving a swarm cuts the
// engine's containers off their networks, so TestMain leaves it after
// every test.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/internal/nettest"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// TestMain leaves the swarm TestSwarm made (with what it brought) once
// every test is over, and removes the binaries built for the real-engine
// tests, and this process's image tags.
func TestMain(m *testing.M) {
	flag.Parse()
	takeParallelFlag()
	code := m.Run()
	if err := finishAfterAll(); err != nil {
		fmt.Fprintf(os.Stderr, "after the tests: %v\n", err)
		code = max(code, 1)
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
		removeImages(runImage("dlb:dev"), runImage("dlb-demo:dev"), runImage("dlb-grpc:dev"),
			runImage(nextImage), runImage(brokenImage))
	}
	os.Exit(code)
}

// removeImages removes these tags of this process's. A container of a
// removed swarm service can outlive the test by seconds (the engine
// removes a service's tasks after the command returns), and an image in
// use stays: it tries again for a while.
func removeImages(tags ...string) {
	deadline := time.Now().Add(30 * time.Second)
	for len(tags) > 0 {
		var left []string
		for _, tag := range tags {
			out, err := exec.Command("docker", "rmi", tag).CombinedOutput()
			if err != nil && !strings.Contains(string(out), "No such image") {
				left = append(left, tag)
			}
		}
		if tags = left; len(tags) > 0 && time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "after the tests: could not remove the images %s (docker rmi)\n", strings.Join(tags, ", "))
			return
		}
		if len(tags) > 0 {
			time.Sleep(time.Second)
		}
	}
}

// runImage is the tag this test process builds the image named tag (e.g.
// dlb-demo:dev) under; newProject rewrites image: lines to it. Tests running
// at the same time from another checkout cannot swap the images under this
// one's feet, and make demo's own :dev images are left alone.
func runImage(tag string) string {
	return strings.TrimSuffix(tag, ":dev") + fmt.Sprintf(":e2e-%d", os.Getpid())
}

// requireDocker skips the test when DLB_SKIP_DOCKER=1 and fails it, saying
// how to fix it, when the Docker Engine cannot be reached.
func requireDocker(t testing.TB) {
	t.Helper()
	if os.Getenv("DLB_SKIP_DOCKER") == "1" {
		t.Skip("DLB_SKIP_DOCKER=1: skipping a test that needs a Docker Engine")
	}
	if testing.Short() {
		t.Skip("-short: skipping a test that needs a Docker Engine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Fatalf("this test needs a Docker Engine and cannot reach one (%v: %s); start dockerd, or set DLB_SKIP_DOCKER=1 to skip the real-engine tests", err, bytes.TrimSpace(out))
	}
	buildOnce.Do(buildAll)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// buildAll compiles dlb and the demo backends (static) and builds the images
// dlb:dev, dlb-demo:dev and dlb-grpc:dev from them, tagged per process (see
// runImage): FROM scratch, nothing is pulled.
func buildAll() {
	var err error
	if buildDir, err = os.MkdirTemp("", "dlb-e2e-"); err != nil {
		buildErr = err
		return
	}
	root, _ := filepath.Abs("../..")
	// One go command builds the three (it compiles what they share once);
	// it names each binary after its directory.
	bin := filepath.Join(buildDir, "bin")
	build := []string{"go", "build", "-trimpath", "-o", bin + string(filepath.Separator), "./cmd/dlb", "./examples/demo", "./examples/grpc"}
	cmd := exec.Command(build[0], build[1:]...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("%s: %v\n%s", strings.Join(build, " "), err, out)
		return
	}
	if buildErr = os.Rename(filepath.Join(bin, "grpc"), filepath.Join(bin, "grpc-demo")); buildErr != nil {
		return
	}
	images := []struct{ tag, dockerfile string }{
		{"dlb:dev", filepath.Join(root, "Dockerfile")},
		{"dlb-demo:dev", filepath.Join(root, "examples/demo/Dockerfile")},
		{"dlb-grpc:dev", filepath.Join(root, "examples/grpc/Dockerfile")},
	}
	errs := make([]error, len(images))
	var wg sync.WaitGroup
	for i, img := range images {
		wg.Go(func() {
			// Only this process's tag: dlb:dev and dlb-demo:dev are make
			// demo's (with its version stamp), and tests must not
			// overwrite them.
			cmd := exec.Command("docker", "build", "-q", "-t", runImage(img.tag), "-f", img.dockerfile, buildDir)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("docker build %s: %v\n%s", img.tag, err, out)
			}
		})
	}
	wg.Wait()
	buildErr = errors.Join(errs...)
}

func dlbBinary() string { return filepath.Join(buildDir, "bin", "dlb") }

// composeCommand is `docker compose` when Compose v2 is there, else docker-compose.
var composeCommand = sync.OnceValue(func() []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	return []string{"docker-compose"}
})

// project is a Compose project of a test, removed when the test ends.
type project struct {
	t    testing.TB
	name string
	file string
	env  []string // extra environment for Compose (variables the file uses)
	more []string // more Compose files, after file
}

var projectSeq struct {
	sync.Mutex
	n int
}

// newProject writes a Compose file and returns its project, not started.
func newProject(t testing.TB, yaml string) *project {
	t.Helper()
	projectSeq.Lock()
	projectSeq.n++
	seq := strconv.Itoa(projectSeq.n)
	projectSeq.Unlock()
	name := lowerAlnum(fmt.Sprintf("dlbt%d%s", os.Getpid(), t.Name()))
	// At most 40 characters, and the sequence number is kept: two projects
	// of one test must not share a name.
	name = name[:min(len(name), 40-len(seq))] + seq
	file := filepath.Join(t.TempDir(), "docker-compose.yaml")
	for _, img := range []string{"dlb:dev", "dlb-demo:dev", "dlb-grpc:dev"} {
		yaml = strings.ReplaceAll(yaml, "image: "+img, "image: "+runImage(img))
	}
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &project{t: t, name: name, file: file}
	t.Cleanup(p.down)
	return p
}

// lowerAlnum is s in lower case with only its letters a-z and digits, for
// names of Docker objects made from a test's name.
func lowerAlnum(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.ToLower(s))
}

// down removes the project's containers (killed: the test is over), its
// networks and its volumes, as compose down -v --remove-orphans would,
// through the Engine's API: it finds them by the project label Compose
// puts on each. A Compose v1 call costs more than a second of CPU, and the
// tests run on two cores beside each other. After many containers the
// engine may still count an endpoint on the network for a moment ("has
// active endpoints"): removing it is tried again for up to 15 s. Docker
// 20.10 can also keep such a stale endpoint until dockerd restarts
// (moby/moby#43286): the containers are gone, only the empty network
// stays, so that is logged, not failed.
func (p *project) down() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testDocker()
	if err != nil {
		p.t.Errorf("removing project %s: %v", p.name, err)
		return
	}
	mine := filters.NewArgs(filters.Arg("label", discovery.LabelComposeProject+"="+p.name))
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: mine})
	if err != nil {
		p.t.Errorf("removing project %s: listing its containers: %v", p.name, err)
		return
	}
	var wg sync.WaitGroup
	for _, ct := range cs {
		wg.Go(func() {
			err := c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
			if err != nil && !errdefs.IsNotFound(err) {
				p.t.Errorf("removing project %s: container %s: %v", p.name, ct.ID[:12], err)
			}
		})
	}
	wg.Wait()
	nets, err := c.NetworkList(ctx, network.ListOptions{Filters: mine})
	if err != nil {
		p.t.Errorf("removing project %s: listing its networks: %v", p.name, err)
	}
	for _, n := range nets {
		for deadline := time.Now().Add(15 * time.Second); ; {
			err := c.NetworkRemove(ctx, n.ID)
			if err == nil || errdefs.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				if strings.Contains(err.Error(), "active endpoints") {
					p.t.Logf("the Docker Engine kept a stale endpoint on network %s of project %s (moby/moby#43286); "+
						"the empty network stays until dockerd restarts: %v", n.Name, p.name, err)
				} else {
					p.t.Errorf("removing project %s: network %s: %v", p.name, n.Name, err)
				}
				break
			}
			time.Sleep(time.Second) // the engine gives no event to wait on for this
		}
	}
	vols, err := c.VolumeList(ctx, volume.ListOptions{Filters: mine})
	if err != nil {
		p.t.Errorf("removing project %s: listing its volumes: %v", p.name, err)
		return
	}
	for _, v := range vols.Volumes {
		if err := c.VolumeRemove(ctx, v.Name, true); err != nil && !errdefs.IsNotFound(err) {
			p.t.Errorf("removing project %s: volume %s: %v", p.name, v.Name, err)
		}
	}
}

// testDocker is the tests' own client of the Docker Engine, as dlb makes
// one (the API version negotiated).
var testDocker = sync.OnceValues(func() (*client.Client, error) { return discovery.NewClient("") })

// compose runs a Compose command on the project and returns its output.
func (p *project) compose(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// run runs a Compose command on the project; the error names the command.
func (p *project) run(args ...string) (string, error) {
	cc := composeCommand()
	full := append(cc[1:], "-p", p.name, "-f", p.file)
	for _, f := range p.more {
		full = append(full, "-f", f)
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cc[0], full...)
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", cc[0], strings.Join(full, " "), err)
	}
	return string(out), err
}

// scale sets the number of replicas of service, leaving the project's other
// services alone, and returns once Compose has.
func (p *project) scale(service string, n int) {
	p.t.Helper()
	p.compose("up", "-d", "--no-build", "--scale", fmt.Sprintf("%s=%d", service, n), service)
}

// network is the full name Compose gives the project's network short.
func (p *project) network(short string) string { return p.name + "_" + short }

// dlbProc is a dlb process started by a test.
type dlbProc struct {
	t         testing.TB
	cmd       *exec.Cmd
	proxyURL  string
	adminURL  string
	mu        sync.Mutex
	log       bytes.Buffer
	exited    chan struct{}
	exitErr   error
	proxyAddr string
	adminAddr string
	stdout    nettest.Buffer // the access log, with --access-log
}

// startDLB runs dlb on loopback ports of its choosing with the given extra
// flags, and waits until its /healthz says it is in sync with Docker.
func startDLB(t testing.TB, args ...string) *dlbProc {
	t.Helper()
	d := launchDLB(t, args...)
	waitFor(t, 15*time.Second, "dlb's /healthz to say it is in sync", func() (bool, string) {
		code, body := get(d.adminURL + "/healthz")
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})
	return d
}

// launchDLB is startDLB without the wait for Docker: it returns once dlb
// listens.
func launchDLB(t testing.TB, args ...string) *dlbProc {
	t.Helper()
	all := append([]string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"}, args...)
	d := &dlbProc{t: t, cmd: exec.Command(dlbBinary(), all...), exited: make(chan struct{})}
	d.cmd.Stdout = &d.stdout
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		started := false // its addresses are read once, from the start line
		for sc.Scan() {
			line := sc.Bytes()
			d.mu.Lock()
			d.log.Write(line)
			d.log.WriteByte('\n')
			d.mu.Unlock()
			if started || !bytes.Contains(line, []byte(`"dlb starting"`)) {
				continue
			}
			var m map[string]any
			if json.Unmarshal(line, &m) == nil && m["message"] == "dlb starting" {
				started = true
				addrs <- [2]string{fmt.Sprint(m["listen"]), fmt.Sprint(m["admin"])}
			}
		}
	}()
	go func() { d.exitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("dlb's log:\n%s", d.logs())
		}
	})
	select {
	case a := <-addrs:
		d.proxyAddr, d.adminAddr = a[0], a[1]
	case <-d.exited:
		t.Fatalf("dlb exited at start: %v\n%s", d.exitErr, d.logs())
	case <-time.After(10 * time.Second):
		t.Fatalf("dlb did not start within 10s:\n%s", d.logs())
	}
	d.proxyURL, d.adminURL = "http://"+d.proxyAddr, "http://"+d.adminAddr
	return d
}

// stop sends SIGTERM and waits for dlb to exit.
func (d *dlbProc) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

func (d *dlbProc) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// pools returns /api/pools.
func (d *dlbProc) pools() []poolView {
	d.t.Helper()
	var ps []poolView
	code, body := get(d.adminURL + "/api/pools")
	if code != 200 || json.Unmarshal([]byte(body), &ps) != nil {
		d.t.Fatalf("GET /api/pools: %d %s", code, body)
	}
	return ps
}

type poolView struct {
	Name, Host, Path, Policy string
	Replicas                 []struct {
		ID, Name, Address, State string
		InFlight                 int64 `json:"in_flight"`
		Requests, Failures       int64
		Limit                    int64
	}
}

// ready counts the ready replicas of a pool in /api/pools.
func (d *dlbProc) ready(pool string) int {
	n := 0
	for _, p := range d.pools() {
		if p.Name == pool {
			for _, r := range p.Replicas {
				if r.State == "ready" {
					n++
				}
			}
		}
	}
	return n
}

// waitEmpty waits up to timeout until a pool in /api/pools has no replica
// at all, as once dlb has seen the last one go.
func (d *dlbProc) waitEmpty(t testing.TB, timeout time.Duration, pool, what string) {
	t.Helper()
	waitFor(t, timeout, what, func() (bool, string) {
		for _, pv := range d.pools() {
			if pv.Name == pool && len(pv.Replicas) > 0 {
				return false, fmt.Sprintf("%d replicas", len(pv.Replicas))
			}
		}
		return true, ""
	})
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// get returns the status and body of a GET, or 0 and the error.
func get(url string) (int, string) {
	return getHost(url, "")
}

func getHost(url, host string) (int, string) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if host != "" {
		req.Host = host
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds or the timeout passes; what says what
// is awaited, and cond's string what it saw last.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	last := ""
	for {
		ok, seen := cond()
		if ok {
			return time.Since(start)
		}
		last = seen
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last saw: %s", timeout, what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spread sends n sequential GETs and counts the answers by replica.
func spread(t testing.TB, url string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		code, body := get(url)
		if code != 200 {
			t.Fatalf("request %d of %d: got %d %q, want 200", i+1, n, code, body)
		}
		got[strings.TrimSpace(body)]++
	}
	return got
}

// answeredBy sends tries GETs to url and returns how many distinct replicas
// answered, or -1 and what went wrong when a request failed.
func answeredBy(url string, tries int) (int, string) {
	seen := map[string]bool{}
	for i := 0; i < tries; i++ {
		code, body := get(url)
		if code != 200 {
			return -1, fmt.Sprintf("got %d %q", code, body)
		}
		seen[strings.TrimSpace(body)] = true
	}
	return len(seen), fmt.Sprintf("%d replicas answered", len(seen))
}

// answeredByN is a waitFor condition: exactly n replicas answer url.
func answeredByN(url string, n int) func() (bool, string) {
	return func() (bool, string) {
		got, seen := answeredBy(url, 2*n+5)
		return got == n, seen
	}
}

// logHas reports whether dlb logged a line containing every one of parts.
func (d *dlbProc) logHas(parts ...string) bool {
	for _, line := range strings.Split(d.logs(), "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// TestNotSyncedYet: dlb starts while the engine cannot be reached. Until
// its first list, a request gets 503 with Retry-After saying dlb is not in
// sync yet (its service may well exist), not 404; after it, 404 for a host
// no service claims.
func TestNotSyncedYet(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	sp := newSocketProxy(t)
	sp.setCut(true)
	d := launchDLB(t, "--docker-host", sp.addr(), "--project", fmt.Sprintf("dlbt%dnone", os.Getpid()))
	req, _ := http.NewRequest("GET", d.proxyURL+"/", nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "not synced with Docker") {
		t.Errorf("GET / before dlb reached Docker: got %d %q (Retry-After %q); want 503 with Retry-After, saying it is not synced",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	sp.setCut(false)
	waitFor(t, 15*time.Second, "dlb to sync once Docker is reachable", func() (bool, string) {
		code, body := get(d.adminURL + "/healthz")
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})
	if code, body := get(d.proxyURL + "/"); code != http.StatusNotFound {
		t.Errorf("GET / once synced, with no service: got %d %q, want 404", code, body)
	}
}
