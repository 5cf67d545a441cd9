package main

// Real-engine tests of the protocols a web app speaks through dlb:
// WebSocket, server-sent events and other streams, large bodies, HTTPS with
// HTTP/2, gRPC to h2c replicas, forwarded headers and request limits.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/dlb-lb/dlb/internal/nettest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// startTLSDLB starts dlb with an HTTPS listener on a fresh self-signed
// certificate, and returns it with the listener's address and a pool that
// trusts the certificate.
func startTLSDLB(t *testing.T, args ...string) (d *dlbProc, tlsAddr string, roots *x509.CertPool) {
	t.Helper()
	cert, key, roots := selfSigned(t)
	d = startDLB(t, append([]string{"--listen-tls", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key}, args...)...)
	return d, d.listenTLS(), roots
}

// h2Client speaks HTTP/2 over TLS, trusting roots.
func h2Client(roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true,
	}}
}

// TestWebSocketThroughDLB opens WebSockets to the demo's echo through dlb,
// over plain HTTP and over TLS, and sends text and binary messages both ways.
func TestWebSocketThroughDLB(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, appProject)
	p.scale("app", 2)
	d, tlsAddr, roots := startTLSDLB(t, "--network", "appnet", "--project", p.name)
	d.waitReady(t, p.name+"-app", 2, 10*time.Second)

	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	for _, tc := range []struct {
		name, url string
		client    *http.Client
	}{
		{"ws", "ws://" + d.proxyAddr + "/ws", nil},
		{"wss", "wss://" + tlsAddr + "/ws", tlsClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, tc.url, &websocket.DialOptions{HTTPClient: tc.client})
			if err != nil {
				t.Fatalf("WebSocket to %s through dlb: %v", tc.url, err)
			}
			defer c.CloseNow()
			if resp.Header.Get("X-Replica") == "" {
				t.Errorf("the 101 response has no X-Replica header: %v", resp.Header)
			}
			c.SetReadLimit(1 << 20)
			big := make([]byte, 200<<10)
			for i := range big {
				big[i] = byte(i)
			}
			for i, msg := range []struct {
				typ  websocket.MessageType
				data []byte
			}{
				{websocket.MessageText, []byte("hello through dlb")},
				{websocket.MessageBinary, big},
				{websocket.MessageText, []byte("bye")},
			} {
				if err := c.Write(ctx, msg.typ, msg.data); err != nil {
					t.Fatalf("message %d: write: %v", i, err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil || typ != msg.typ || string(got) != string(msg.data) {
					t.Fatalf("message %d (%d bytes): read back type %v, %d bytes, %v; want the same message", i, len(msg.data), typ, len(got), err)
				}
			}
			if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
				t.Errorf("closing: %v", err)
			}
		})
	}
}

// TestStreamsThroughDLB reads server-sent events and a chunked text stream
// through dlb, over HTTP/1.1 and HTTP/2: each part arrives when the replica
// sends it (100 ms apart), not all together at the end.
func TestStreamsThroughDLB(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, appProject)
	p.scale("app", 1)
	d, tlsAddr, roots := startTLSDLB(t, "--network", "appnet", "--project", p.name)
	d.waitReady(t, p.name+"-app", 1, 10*time.Second)

	for _, tc := range []struct {
		name, url, prefix string
		client            *http.Client
		proto             string
	}{
		{"SSE over HTTP/1.1", d.proxyURL + "/sse?n=5", "data: ", httpClient, "HTTP/1.1"},
		{"SSE over HTTP/2", "https://" + tlsAddr + "/sse?n=5", "data: ", h2Client(roots), "HTTP/2.0"},
		{"chunked over HTTP/1.1", d.proxyURL + "/stream?n=5&ms=100", "line ", httpClient, "HTTP/1.1"},
		{"chunked over HTTP/2", "https://" + tlsAddr + "/stream?n=5&ms=100", "line ", h2Client(roots), "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp, err := tc.client.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Proto != tc.proto {
				t.Fatalf("got %s %s, want %s 200", resp.Proto, resp.Status, tc.proto)
			}
			var at []time.Duration
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), tc.prefix) {
					at = append(at, time.Since(start))
				}
			}
			if err := sc.Err(); err != nil || len(at) != 5 {
				t.Fatalf("read %d parts (%v), want 5", len(at), err)
			}
			// The replica sends a part every 100 ms: 400 ms from first to
			// last. Buffered, they would all arrive at once.
			if spread := at[4] - at[0]; spread < 300*time.Millisecond {
				t.Errorf("parts arrived at %v: the first only %s before the last, want at least 300ms (is dlb buffering?)", at, spread)
			}
			t.Logf("parts arrived at %v after the request", at)
		})
	}
}

// zeros is an endless source of zero bytes: a 1 GiB body is generated as
// it is sent, never held in memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// vmHWM is the peak resident memory of a process, from /proc/PID/status.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading dlb's memory use: %v", err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// TestLargeBodiesThroughDLB uploads and downloads 1 GiB through dlb; dlb
// streams both, so its peak memory stays under 100 MB.
func TestLargeBodiesThroughDLB(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	const size = 1 << 30
	const maxRSS = 100 << 20
	p := newProject(t, appProject)
	p.scale("app", 1)
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	d.waitReady(t, p.name+"-app", 1, 10*time.Second)
	pid := d.cmd.Process.Pid
	t.Logf("dlb's peak memory before: %.1f MB", float64(vmHWM(t, pid))/1e6)
	client := &http.Client{Timeout: 3 * time.Minute}

	start := time.Now()
	req, _ := http.NewRequest("POST", d.proxyURL+"/upload", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("uploading 1 GiB: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != fmt.Sprint(size) {
		t.Fatalf("uploading 1 GiB: got %d %q, want 200 and the replica counting %d bytes", resp.StatusCode, body, size)
	}
	took := time.Since(start)
	hwm := vmHWM(t, pid)
	t.Logf("upload: 1 GiB in %s (%.0f MB/s); dlb's peak memory %.1f MB", took.Round(time.Millisecond), size/took.Seconds()/1e6, float64(hwm)/1e6)
	if hwm > maxRSS {
		t.Errorf("dlb's peak memory after a 1 GiB upload is %.1f MB, want under %d MB (is it buffering the body?)", float64(hwm)/1e6, maxRSS>>20)
	}

	start = time.Now()
	resp, err = client.Get(fmt.Sprintf("%s/download?bytes=%d", d.proxyURL, size))
	if err != nil {
		t.Fatalf("downloading 1 GiB: %v", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n != size || err != nil {
		t.Fatalf("downloading 1 GiB: got %d with %d bytes (%v), want 200 with %d", resp.StatusCode, n, err, size)
	}
	took = time.Since(start)
	hwm = vmHWM(t, pid)
	t.Logf("download: 1 GiB in %s (%.0f MB/s); dlb's peak memory %.1f MB", took.Round(time.Millisecond), size/took.Seconds()/1e6, float64(hwm)/1e6)
	if hwm > maxRSS {
		t.Errorf("dlb's peak memory after a 1 GiB download is %.1f MB, want under %d MB (is it buffering the body?)", float64(hwm)/1e6, maxRSS>>20)
	}
}

// TestEchoUploadThroughDLB uploads 50 MB to a replica that sends the body
// back while it reads it, over plain HTTP/1.1 and HTTP/1.1 over TLS: every
// byte reaches the replica and comes back, in order.
func TestEchoUploadThroughDLB(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	const size = 50 << 20
	p := newProject(t, appProject)
	p.scale("app", 1)
	d, tlsAddr, roots := startTLSDLB(t, "--network", "appnet", "--project", p.name)
	d.waitReady(t, p.name+"-app", 1, 10*time.Second)
	h1TLS := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	for _, tc := range []struct {
		name, url string
		client    *http.Client
	}{
		{"plain", d.proxyURL + "/echo", &http.Client{Timeout: time.Minute}},
		{"TLS", "https://" + tlsAddr + "/echo", h1TLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", tc.url, &nettest.Pattern{N: size})
			req.ContentLength = size
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatalf("POST of 50 MB to /echo: %v", err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 1 || resp.StatusCode != 200 {
				t.Fatalf("POST of 50 MB to /echo: got %s %d, want HTTP/1.1 200", resp.Proto, resp.StatusCode)
			}
			got, same, err := nettest.CheckPattern(resp.Body, size)
			if err != nil || !same {
				t.Fatalf("POST of 50 MB to /echo: %d bytes came back (%v), the same bytes: %v; want all %d, the same", got, err, same, size)
			}
		})
	}
}

// TestHTTPSWithHTTP2 serves HTTPS from --listen-tls: HTTP/2 to clients that
// offer it (Go, curl), HTTP/1.1 to those that do not, never TLS below 1.2;
// replicas learn that the client came over https. h2load measures it.
func TestHTTPSWithHTTP2(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, appProject)
	p.scale("app", 2)
	d, tlsAddr, roots := startTLSDLB(t, "--network", "appnet", "--project", p.name, "--h2c")
	d.waitReady(t, p.name+"-app", 2, 10*time.Second)
	base := "https://" + tlsAddr

	t.Run("Go client", func(t *testing.T) {
		resp, err := h2Client(roots).Get(base + "/echo-headers")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
			t.Fatalf("got %s %s, want HTTP/2.0 200", resp.Proto, resp.Status)
		}
		if !strings.Contains(string(body), "X-Forwarded-Proto: https\n") {
			t.Errorf("the replica saw these headers, want X-Forwarded-Proto: https among them:\n%s", body)
		}
		old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}}}
		if resp, err := old.Get(base + "/"); err == nil {
			resp.Body.Close()
			t.Errorf("a TLS 1.1 client got %s, want the handshake refused", resp.Status)
		}
	})

	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl is not installed (apt-get install curl)")
		}
		for _, tc := range []struct{ flag, want string }{{"--http2", "2 200"}, {"--http1.1", "1.1 200"}} {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			out, err := exec.CommandContext(ctx, "curl", "-sS", "-k", tc.flag, "--max-time", "10", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", base+"/").CombinedOutput()
			cancel()
			if err != nil || string(out) != tc.want {
				t.Errorf("curl %s: %q (%v), want %q", tc.flag, out, err, tc.want)
			}
		}
	})

	t.Run("h2load", func(t *testing.T) {
		if _, err := exec.LookPath("h2load"); err != nil {
			t.Skip("h2load is not installed (apt-get install nghttp2-client)")
		}
		re := regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
		for _, tc := range []struct{ name, url, proto string }{
			{"HTTP/2 over TLS", base + "/", "h2"},
			{"h2c (--h2c)", d.proxyURL + "/", "h2c"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			out, err := exec.CommandContext(ctx, "h2load", "-n", "5000", "-c", "8", "-m", "10", "-t", "1", tc.url).CombinedOutput()
			cancel()
			m := re.FindStringSubmatch(string(out))
			if err != nil || m == nil || m[1] != "5000" || m[2] != "5000" {
				t.Errorf("h2load %s: want 5000 of 5000 requests to succeed; got %v:\n%s", tc.name, err, out)
				continue
			}
			if !strings.Contains(string(out), "Application protocol: "+tc.proto+"\n") {
				t.Errorf("h2load %s did not speak %s:\n%s", tc.name, tc.proto, out)
			}
			t.Logf("h2load -n 5000 -c 8 -m 10 %s (%s):\n%s", tc.url, tc.name, out)
		}
	})

	// Last, as it stops dlb: SIGTERM lets an HTTP/2 request in flight finish.
	t.Run("graceful shutdown", func(t *testing.T) {
		done := make(chan string, 1)
		go func() {
			resp, err := h2Client(roots).Get(base + "/slow?ms=1500")
			if err != nil {
				done <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- fmt.Sprintf("%s %d %s", resp.Proto, resp.StatusCode, bytes.TrimSpace(body))
		}()
		waitFor(t, 5*time.Second, "the slow request to reach a replica", func() (bool, string) {
			var n int64
			for _, pv := range d.pools() {
				for _, r := range pv.Replicas {
					n += r.InFlight
				}
			}
			return n == 1, fmt.Sprintf("%d in flight", n)
		})
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case got := <-done:
			if !strings.HasPrefix(got, "HTTP/2.0 200 ") {
				t.Errorf("the request in flight at SIGTERM got %q, want HTTP/2.0 200 and a replica's name", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the request in flight at SIGTERM did not finish within 10s")
		}
		select {
		case <-d.exited:
			if d.exitErr != nil {
				t.Errorf("dlb exited with %v after SIGTERM, want 0", d.exitErr)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("dlb did not exit within 10s of SIGTERM")
		}
	})
}

// grpcProject is a Compose project with two replicas of the gRPC example,
// which speaks HTTP/2 in clear text.
const grpcProject = `
services:
  grpc:
    image: dlb-grpc:dev
    labels:
      dlb.enable: "true"
      dlb.port: "50051"
      dlb.scheme: h2c
    networks: [appnet]
networks:
  appnet: {}
`

// TestGRPCThroughDLB calls grpc.health.v1.Health through dlb, which speaks
// h2c to replicas labelled dlb.scheme=h2c: from a client speaking h2c to the
// plain listener (--h2c) and from one speaking TLS to --listen-tls. The
// status and the replica's trailer (HTTP/2 trailers) reach the client, and
// calls on one client connection spread over both replicas.
func TestGRPCThroughDLB(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, grpcProject)
	p.scale("grpc", 2)
	d, tlsAddr, roots := startTLSDLB(t, "--network", "appnet", "--project", p.name, "--h2c")
	d.waitReady(t, p.name+"-grpc", 2, 10*time.Second)

	for _, tc := range []struct {
		name, target string
		creds        credentials.TransportCredentials
	}{
		{"h2c to --listen --h2c", d.proxyAddr, insecure.NewCredentials()},
		{"TLS to --listen-tls", tlsAddr, credentials.NewTLS(&tls.Config{RootCAs: roots})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := grpc.NewClient(tc.target, grpc.WithTransportCredentials(tc.creds))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			hc := healthpb.NewHealthClient(conn)
			seen := map[string]int{}
			for i := 0; i < 20; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var header, trailer metadata.MD
				resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header), grpc.Trailer(&trailer))
				cancel()
				if err != nil {
					t.Fatalf("call %d: Health/Check through dlb: %v", i, err)
				}
				if resp.Status != healthpb.HealthCheckResponse_SERVING {
					t.Fatalf("call %d: status %v, want SERVING", i, resp.Status)
				}
				h, tr := header.Get("x-replica"), trailer.Get("x-replica-trailer")
				if len(h) != 1 || len(tr) != 1 || h[0] != tr[0] {
					t.Fatalf("call %d: header x-replica %v, trailer x-replica-trailer %v; want the same replica in both", i, h, tr)
				}
				seen[h[0]]++
			}
			if len(seen) != 2 {
				t.Errorf("20 calls on one connection were answered by %v, want both replicas", seen)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no-such-service"})
			if status.Code(err) != codes.NotFound {
				t.Errorf("Check of an unknown service: %v, want code NotFound", err)
			}
			// A server stream: Watch sends the current status at once.
			w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "demo"})
			if err != nil {
				t.Fatal(err)
			}
			if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("Watch: first message %v, %v; want SERVING", m, err)
			}
		})
	}
}

// TestForwardedHeadersThroughDLB checks what the replica learns of the
// client: the Host as sent, and X-Forwarded-* that dlb sets, keeping a
// client's own only when it is a trusted proxy.
func TestForwardedHeadersThroughDLB(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, appProject)
	p.scale("app", 1)
	pool := p.name + "-app"
	spoof := map[string]string{
		"X-Forwarded-For":   "203.0.113.9",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "shop.example",
	}
	for _, tc := range []struct {
		name    string
		trusted string
		want    []string
	}{
		{"untrusted client", "10.0.0.0/8", []string{"Host: app.test", "X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "X-Forwarded-Host: app.test"}},
		{"trusted proxy", "127.0.0.1", []string{"Host: app.test", "X-Forwarded-For: 203.0.113.9, 127.0.0.1", "X-Forwarded-Proto: https", "X-Forwarded-Host: shop.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDLB(t, "--network", "appnet", "--project", p.name, "--trusted-proxies", tc.trusted)
			d.waitReady(t, pool, 1, 10*time.Second)
			req, _ := http.NewRequest("GET", d.proxyURL+"/echo-headers", nil)
			req.Host = "app.test"
			for k, v := range spoof {
				req.Header.Set(k, v)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lines := strings.Split(string(body), "\n")
			for _, want := range tc.want {
				found := false
				for _, l := range lines {
					found = found || l == want
				}
				if !found {
					t.Errorf("with --trusted-proxies %s the replica saw no %q; it saw:\n%s", tc.trusted, want, body)
				}
			}
		})
	}
}

// limitsProject has a service without a body limit and one with dlb.max_body.
const limitsProject = `
services:
  app:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.port: "80"
    networks: [appnet]
  capped:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.port: "80"
      dlb.host: capped.test
      dlb.max_body: 64k
    networks: [appnet]
networks:
  appnet: {}
`

// TestLimitsThroughDLB checks --max-header-bytes (431) and dlb.max_body
// (413, before the replica is contacted when the length is declared).
func TestLimitsThroughDLB(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, limitsProject)
	p.compose("up", "-d", "--no-build")
	d := startDLB(t, "--network", "appnet", "--project", p.name, "--max-header-bytes", "4096")
	d.waitReady(t, p.name+"-app", 1, 10*time.Second)
	d.waitReady(t, p.name+"-capped", 1, 10*time.Second)

	t.Run("header bytes", func(t *testing.T) {
		for _, tc := range []struct {
			size, want int
		}{{2 << 10, 200}, {16 << 10, 431}} {
			req, _ := http.NewRequest("GET", d.proxyURL+"/", nil)
			req.Header.Set("X-Big", strings.Repeat("x", tc.size))
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatalf("a %d-byte header: %v", tc.size, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("a %d-byte header with --max-header-bytes 4096: got %d, want %d", tc.size, resp.StatusCode, tc.want)
			}
		}
	})

	t.Run("max body", func(t *testing.T) {
		requests := func() int64 {
			for _, pv := range d.pools() {
				if pv.Name == p.name+"-capped" && len(pv.Replicas) == 1 {
					return pv.Replicas[0].Requests
				}
			}
			t.Fatalf("no pool %s-capped with one replica in /api/pools", p.name)
			return 0
		}
		for _, tc := range []struct {
			name        string
			size        int64
			chunked     bool
			want        int
			wantReplica bool
		}{
			{"declared, at the limit", 64 << 10, false, 200, true},
			{"declared, over the limit", 64<<10 + 1, false, 413, false},
			{"declared, 100 MiB", 100 << 20, false, 413, false},
			{"chunked, within the limit", 1000, true, 200, true},
			{"chunked, 10 MiB", 10 << 20, true, 413, true},
		} {
			before := requests()
			var body io.Reader = io.LimitReader(zeros{}, tc.size)
			req, _ := http.NewRequest("POST", d.proxyURL+"/upload", body)
			req.Host = "capped.test"
			req.ContentLength = tc.size
			if tc.chunked {
				req.ContentLength = -1
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s: got %d %q, want %d", tc.name, resp.StatusCode, got, tc.want)
				continue
			}
			if tc.want == 413 && !strings.Contains(string(got), "accepts at most 65536 bytes (dlb.max_body)") {
				t.Errorf("%s: 413 says %q, want it to name the limit and the label", tc.name, got)
			}
			if reached := requests() > before; reached != tc.wantReplica {
				t.Errorf("%s: the replica was reached: %v, want %v", tc.name, reached, tc.wantReplica)
			}
		}
		// The service without dlb.max_body takes what the capped one refuses.
		req, _ := http.NewRequest("POST", d.proxyURL+"/upload", io.LimitReader(zeros{}, 10<<20))
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(got)) != fmt.Sprint(10<<20) {
			t.Errorf("10 MiB to the service without a limit: got %d %q, want 200 %d", resp.StatusCode, got, 10<<20)
		}
	})
}
