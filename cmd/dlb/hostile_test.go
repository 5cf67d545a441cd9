package main

// Real-engine tests of dlb under hostile clients: each sends the
// hostile input over a real socket to a real dlb in front of real demo
// containers, and checks what a user would: replicas stay in rotation,
// slow connections are closed within their timeout, paths cannot leave a
// route's prefix, memory stays bounded, the admin port stays closed.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/nettest"
)

const hostileProject = `
services:
  web:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
    networks: [appnet]
  api:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.path: /v2
      dlb.path.strip: "true"
      dlb.timeout.response_header: 10s
    networks: [appnet]
  badlabel:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.path: /bad
      dlb.health.path: "/healthz\nX-Injected: 1"
    networks: [appnet]
networks:
  appnet: {}
`

// rawExchange sends raw bytes to addr and returns all that comes back until
// the server closes the connection or wait passes.
func rawExchange(t *testing.T, addr, req string, wait time.Duration) string {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	b, _ := io.ReadAll(c)
	return string(b)
}

// dial connects to addr; the connection is closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawGet sends one request with "Connection: close" and returns the status
// and body.
func rawGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	out := rawExchange(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10*time.Second)
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("GET %s: no HTTP response (%v): %q", path, err, out)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestHostileClients(t *testing.T) {
	requireDocker(t)
	p := newProject(t, hostileProject)
	p.compose("up", "-d", "--no-build")
	d := startDLB(t, "--network", "appnet", "--project", p.name,
		"--body-timeout", "1s", "--write-timeout", "1s", "--response-header-timeout", "1s")
	d.waitReady(t, p.name+"-web", 1, 30*time.Second)
	d.waitReady(t, p.name+"-api", 1, 30*time.Second)
	owner := p.owners("web", "api")

	t.Run("client resets and bad chunks do not eject the replica", func(t *testing.T) {
		for i := range 10 {
			c, err := net.Dial("tcp", d.proxyAddr)
			if err != nil {
				t.Fatal(err)
			}
			// A large upload, cut with a reset half way.
			fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
			c.Write(make([]byte, 256<<10))
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			// Bad chunk framing: the client's fault, answered 400.
			out := rawExchange(t, d.proxyAddr, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"10000\r\n"+strings.Repeat("a", 70000)+"\r\n0x5\r\nhello\r\n0\r\n\r\n", 5*time.Second)
			if i == 0 && !strings.HasPrefix(out, "HTTP/1.1 400") {
				t.Errorf("a chunked upload with a bad chunk size: got %.60q, want 400", out)
			}
		}
		for i := range 20 {
			start := time.Now()
			code, body := get(d.proxyURL + "/")
			if body = strings.TrimSpace(body); code != 200 || owner[body] != "web" {
				t.Fatalf("GET / %d after the resets: %d %q, want 200 from web", i, code, body)
			}
			if el := time.Since(start); el > time.Second {
				t.Fatalf("GET / %d after the resets took %s, want well under 1s", i, el)
			}
		}
		for _, pool := range d.pools() {
			for _, r := range pool.Replicas {
				if r.State != "ready" || r.Failures != 0 {
					t.Errorf("replica %s of %s after client resets: state %s, %d failures; want ready, 0", r.Name, pool.Name, r.State, r.Failures)
				}
			}
		}
		if d.logHas("replica ejected") {
			t.Errorf("dlb ejected a replica for a client's reset")
		}
	})

	t.Run("a slow request body is cut off within the body timeout", func(t *testing.T) {
		c := dial(t, d.proxyAddr)
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nx")
		start := time.Now()
		out := nettest.Drip(c, 300*time.Millisecond)
		if el := time.Since(start); el > 3*time.Second || !strings.HasPrefix(out, "HTTP/1.1 408") {
			t.Fatalf("a body sending a byte every 300ms with --body-timeout 1s: closed after %s with %.40q; want 408 within about 1s", el, out)
		}
	})

	t.Run("a client that does not read is cut off within the write timeout", func(t *testing.T) {
		c := dial(t, d.proxyAddr)
		fmt.Fprintf(c, "GET /download?bytes=200000000 HTTP/1.1\r\nHost: x\r\n\r\n")
		// Not reading for 3 write timeouts; then whatever was sent before
		// dlb gave up drains, and the connection ends long before 200 MB.
		time.Sleep(3 * time.Second) // the client under test does nothing: there is no event to wait for
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if n > 50<<20 {
			t.Fatalf("a client that stopped reading for 3s (--write-timeout 1s) still got %d bytes (%v); want the connection cut", n, err)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("a client that stopped reading: the connection was still open after draining %d bytes", n)
		}
	})

	t.Run("a hung replica gets 504 within the response header timeout, and the label raises it", func(t *testing.T) {
		start := time.Now()
		code, _ := get(d.proxyURL + "/slow?ms=5000")
		if el := time.Since(start); code != http.StatusGatewayTimeout || el > 3*time.Second {
			t.Fatalf("GET /slow?ms=5000 with --response-header-timeout 1s: %d after %s, want 504 within about 1s", code, el)
		}
		code, body := get(d.proxyURL + "/v2/slow?ms=1500")
		if code != 200 {
			t.Fatalf("GET /v2/slow?ms=1500 with dlb.timeout.response_header=10s: %d %q, want 200", code, body)
		}
	})

	t.Run("paths are normalised before routing", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{"/v2/x", "api"},
			{"/v2/../x", "web"},
			{"/v2/%2e%2e/x", "web"},
			{"/v2/%2E%2E/x", "web"},
			{"/v2;/../x", "web"},
			{"/x/../v2/y", "api"},
			{"/v2/..%2fadmin", "400"},
			{"/v2/..%5cadmin", "400"},
			{"/v2/..;/admin", "400"},
			{"/../etc/passwd", "400"},
		} {
			code, body := rawGet(t, d.proxyAddr, tc.path)
			got := owner[body]
			if code == 400 {
				got = "400"
			}
			if got != tc.want {
				t.Errorf("GET %s: %d %q (%s), want %s", tc.path, code, body, got, tc.want)
			}
		}
	})

	t.Run("one 100 Continue", func(t *testing.T) {
		c := dial(t, d.proxyAddr)
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
		br := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("after Expect: 100-continue: %q %v, want 100 Continue", line, err)
		}
		c.Write([]byte("hello"))
		rest, _ := io.ReadAll(br)
		if n := strings.Count(string(rest), "100 Continue"); n != 0 || !strings.Contains(string(rest), "HTTP/1.1 200") {
			t.Fatalf("after the first 100 Continue the client got %d more and %q; want none, then 200", n, rest)
		}
	})

	t.Run("HTTP/1.0 without Host does not reach the replica with its own address", func(t *testing.T) {
		out := rawExchange(t, d.proxyAddr, "GET /echo-headers HTTP/1.0\r\n\r\n", 5*time.Second)
		if !strings.Contains(out, "\r\n\r\nHost: "+d.proxyAddr+"\n") {
			t.Fatalf("HTTP/1.0 GET without Host: the replica saw %q; want Host %s (the address the client connected to)", out, d.proxyAddr)
		}
	})

	t.Run("untrusted X-Real-IP, X-Forwarded-Port and -Prefix are dropped", func(t *testing.T) {
		out := rawExchange(t, d.proxyAddr, "GET /echo-headers HTTP/1.1\r\nHost: x\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Port: 1\r\n"+
			"X-Forwarded-Prefix: /evil\r\nConnection: close\r\n\r\n", 5*time.Second)
		if !strings.Contains(out, "200 OK") {
			t.Fatalf("GET /echo-headers: %q", out)
		}
		for _, h := range []string{"6.6.6.6", "X-Forwarded-Port", "/evil"} {
			if strings.Contains(out, h) {
				t.Errorf("the replica saw the client's %s: %q", h, out)
			}
		}
	})

	t.Run("Content-Length with Transfer-Encoding closes the connection", func(t *testing.T) {
		out := rawExchange(t, d.proxyAddr, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
		// (One status line: the fast data path refuses CL+TE with a 400
		// whose text names HTTP/1.1 too.)
		if !strings.Contains(out, "Connection: close") || len(statusLine.FindAllString(out, -1)) != 1 {
			t.Fatalf("CL+TE request and a second one: got %q; want one answer with Connection: close, then the connection closed", out)
		}
	})

	t.Run("a label with a control character is refused with a warning", func(t *testing.T) {
		waitFor(t, 10*time.Second, "a warning about dlb.health.path", func() (bool, string) {
			return d.logHas("dlb.health.path", "control character", "badlabel"), ""
		})
		for _, pool := range d.pools() {
			if strings.Contains(pool.Name, "badlabel") {
				t.Errorf("the container with a newline in dlb.health.path has pool %s; want it skipped", pool.Name)
			}
		}
	})
}

// statusLine matches the status line of an HTTP/1.1 response.
var statusLine = regexp.MustCompile(`(?m)^HTTP/1\.1 [0-9]{3} `)

// rss is a process's resident set size in bytes, from /proc.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// settledRSS polls a process's RSS until it stops growing (two samples 200ms
// apart within 1%), for up to 15s, and returns the largest seen.
func settledRSS(t *testing.T, pid int) int64 {
	t.Helper()
	last, peak := rss(t, pid), int64(0)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond) // sampling: there is no event for "done growing"
		now := rss(t, pid)
		peak = max(peak, now)
		if d := now - last; d < last/100 && d > -last/100 {
			return peak
		}
		last = now
	}
	return peak
}

// heapInUse is go_memstats_heap_inuse_bytes from dlb's /metrics.
func heapInUse(t *testing.T, d *dlbProc) int64 {
	t.Helper()
	_, body := get(d.adminURL + "/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	t.Fatalf("no go_memstats_heap_inuse_bytes in /metrics")
	return 0
}

// TestMemoryUnderHostileClients: connections that declare a 64 KiB body and
// send none, and connections that send huge headers, cost dlb little.
func TestMemoryUnderHostileClients(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, hostileProject)
	p.compose("up", "-d", "--no-build", "web")
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--park-idle-after", "0")
	d.waitReady(t, p.name+"-web", 1, 30*time.Second)
	pid := d.cmd.Process.Pid
	base, baseHeap := settledRSS(t, pid), heapInUse(t, d)

	const n = 2000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", d.proxyAddr)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n")
	}
	withBodies := settledRSS(t, pid)
	heap := heapInUse(t, d)
	per := (heap - baseHeap) / n
	t.Logf("RSS: %d MB at rest, %d MB with %d connections that declare a 64 KiB body and send none; Go heap in use %d MB, then %d MB: %d KiB each",
		base>>20, withBodies>>20, n, baseHeap>>20, heap>>20, per>>10)
	// The heap, not RSS: a fresh 64 KiB buffer is zero pages the kernel
	// has not backed yet, but a heap that has served traffic reuses
	// dirty memory, and then every byte of it counts.
	if per > 40<<10 {
		t.Errorf("each connection declaring a 64 KiB body holds %d KiB of heap; want under 40 KiB (the buffer grows as bytes arrive)", per>>10)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = conns[:0]

	// Huge headers: each gets 431 once past --max-header-bytes (32 KiB).
	const h = 300
	before := settledRSS(t, pid)
	line := "X-Big: " + strings.Repeat("a", 8<<10) + "\r\n"
	done := make(chan int64, h)
	for range h {
		go func() {
			c, err := net.Dial("tcp", d.proxyAddr)
			if err != nil {
				done <- -1
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			go func() {
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
				for range 128 { // 1 MB of header
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
			b, _ := io.ReadAll(c)
			if strings.HasPrefix(string(b), "HTTP/1.1 431") {
				done <- 431
			} else {
				done <- 0
			}
		}()
	}
	peak := before
	got431 := 0
	for range h {
		if <-done == 431 {
			got431++
		}
		peak = max(peak, rss(t, pid))
	}
	t.Logf("RSS: %d MB before, at most %d MB while %d clients sent 1 MB headers (%d got 431)", before>>20, peak>>20, h, got431)
	if got431 < h*9/10 {
		t.Errorf("of %d clients sending 1 MB headers, %d got 431; want all but a few", h, got431)
	}
	if grow := peak - before; grow > 100<<20 {
		t.Errorf("%d clients sending 1 MB headers grew dlb's RSS by %d MB; want under 100 MB", h, grow>>20)
	}
}

// TestConnectionLimitAndClosedAdmin: --max-conns refuses what is over it
// (counted) and the admin port still answers; the admin API refuses a
// foreign Host and asks for --admin-token.
func TestConnectionLimitAndClosedAdmin(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, hostileProject)
	p.compose("up", "-d", "--no-build", "web")
	token := "s3cret-token"
	// Every connection comes from 127.0.0.1: no share of the limit per
	// client here (TestSilentFlood tests it).
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--max-conns", "20", "--max-conns-client-share", "100",
		"--admin-token", token, "--admin-hosts", "dlb.test")
	auth := http.Header{"Authorization": {"Bearer " + token}}

	t.Run("admin refuses a foreign Host and asks for the token", func(t *testing.T) {
		for _, tc := range []struct {
			host   string
			header http.Header
			want   int
		}{
			{"evil.example", auth, http.StatusMisdirectedRequest},
			{"dlb.test:8080", nil, http.StatusUnauthorized},
			{"dlb.test:8080", http.Header{"Authorization": {"Bearer wrong"}}, http.StatusUnauthorized},
			{"dlb.test:8080", auth, http.StatusOK},
			{"", auth, http.StatusOK}, // the IP literal of adminURL
			{"localhost", auth, http.StatusOK},
		} {
			resp, body, err := fetch(d.adminURL+"/api/pools", tc.host, tc.header)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want {
				t.Errorf("GET /api/pools, Host %q, Authorization %q: %d %.80q, want %d", tc.host, tc.header.Get("Authorization"), resp.StatusCode, body, tc.want)
			}
		}
		if code, _ := get(d.adminURL + "/healthz"); code != 200 {
			t.Errorf("GET /healthz without the token: %d, want 200", code)
		}
		out, err := exec.Command(dlbBinary(), "status", "--admin-url", d.adminURL).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--admin-token") {
			t.Errorf("dlb status without the token: %v %q; want it to fail naming --admin-token", err, out)
		}
		cmd := exec.Command(dlbBinary(), "status", "--admin-url", d.adminURL)
		cmd.Env = append(os.Environ(), "DLB_ADMIN_TOKEN="+token)
		if out, err := cmd.CombinedOutput(); err != nil && cmd.ProcessState.ExitCode() == statusNoAnswer {
			t.Errorf("dlb status with DLB_ADMIN_TOKEN: %v %q", err, out)
		}
	})

	t.Run("--max-conns refuses and counts the connections over it", func(t *testing.T) {
		waitFor(t, 30*time.Second, "web to answer", func() (bool, string) {
			code, body := get(d.proxyURL + "/")
			return code == 200, fmt.Sprintf("%d %s", code, body)
		})
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range 40 {
			c, err := net.Dial("tcp", d.proxyAddr)
			if err != nil {
				// A refused connection is reset at once, which can reach
				// the client while it connects.
				// (The test's own kept-alive connection may hold a place.)
				if i < 15 || !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("connection %d of 40 (--max-conns 20): %v", i+1, err)
				}
				continue
			}
			conns = append(conns, c)
		}
		var refused float64
		waitFor(t, 10*time.Second, "dlb_refused_connections_total to reach 20", func() (bool, string) {
			req, _ := http.NewRequest("GET", d.adminURL+"/metrics", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := httpClient.Do(req)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "dlb_refused_connections_total "); ok {
					refused, _ = strconv.ParseFloat(v, 64)
				}
			}
			return refused >= 20, fmt.Sprintf("%v refused", refused)
		})
		if code, _ := get(d.adminURL + "/healthz"); code != 200 {
			t.Errorf("admin /healthz with the proxy full: %d, want 200", code)
		}
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		waitFor(t, 10*time.Second, "a new client to be served once the others left", func() (bool, string) {
			code, body := get(d.proxyURL + "/")
			return code == 200, fmt.Sprintf("%d %s", code, body)
		})
	})
}
