package main

// The automatic HTTPS test: Let's Encrypt's own test CA, Pebble, validates
// for real (no PEBBLE_VA_ALWAYS_VALID) against dlb's listeners, its DNS
// answered by Pebble's test DNS server, which sends every name to
// 127.0.0.1. Both are built from testdata/pebble, a module of their own.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/internal/nettest"
)

// pebbleCA is a running Pebble with its test DNS server.
type pebbleCA struct {
	directory string         // ACME directory URL
	caRoot    string         // PEM file of the root of Pebble's own HTTPS (for --acme-ca-root)
	roots     *x509.CertPool // Pebble's issuing root: verifies what it issues
	// httpPort and tlsPort are where Pebble validates HTTP-01 and
	// TLS-ALPN-01 on 127.0.0.1: dlb's --listen and --listen-tls.
	httpPort, tlsPort string
}

// pebbleBins builds pebble and pebble-challtestsrv once, next to dlb's
// test binaries; it returns their directory and the pebble module's (for
// its test certificates).
var pebbleBins = sync.OnceValues(func() ([2]string, error) {
	dir := filepath.Join(buildDir, "pebble")
	for _, cmd := range []string{"pebble", "pebble-challtestsrv"} {
		c := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "github.com/letsencrypt/pebble/v2/cmd/"+cmd)
		c.Dir = "testdata/pebble"
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			return [2]string{}, fmt.Errorf("building %s (in cmd/dlb/testdata/pebble): %v\n%s", cmd, err, out)
		}
	}
	c := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2")
	c.Dir = "testdata/pebble"
	out, err := c.Output()
	if err != nil {
		return [2]string{}, fmt.Errorf("go list pebble's module: %v", err)
	}
	return [2]string{dir, strings.TrimSpace(string(out))}, nil
})

// startPebble runs the test DNS server and Pebble on loopback ports of
// their own, Pebble validating on fresh ports for dlb; shortlived is the
// validity, in seconds, of Pebble's "shortlived" profile (the default
// profile issues for 90 days); Pebble refuses to issue for blocklist.
func startPebble(t *testing.T, shortlived int, blocklist ...string) *pebbleCA {
	t.Helper()
	bins, err := pebbleBins()
	if err != nil {
		t.Fatal(err)
	}
	bin, mod := bins[0], bins[1]
	pb := &pebbleCA{httpPort: freePort(t), tlsPort: freePort(t), caRoot: filepath.Join(mod, "test/certs/pebble.minica.pem")}
	dnsAddr, apiPort, mgmtPort := "127.0.0.1:"+freePort(t), freePort(t), freePort(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           "127.0.0.1:" + apiPort,
		"managementListenAddress": "127.0.0.1:" + mgmtPort,
		"certificate":             filepath.Join(mod, "test/certs/localhost/cert.pem"),
		"privateKey":              filepath.Join(mod, "test/certs/localhost/key.pem"),
		"httpPort":                mustAtoi(t, pb.httpPort),
		"tlsPort":                 mustAtoi(t, pb.tlsPort),
		"ocspResponderURL":        "",
		"domainBlocklist":         blocklist,
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":            "ecdsa",
		"profiles": map[string]any{
			"default":    map[string]any{"description": "90 days", "validityPeriod": 90 * 24 * 3600},
			"shortlived": map[string]any{"description": "for the renewal test", "validityPeriod": shortlived},
		},
	}}
	confFile := filepath.Join(t.TempDir(), "pebble.json")
	b, _ := json.Marshal(conf)
	writeFile(t, confFile, b)

	run := func(name string, env []string, args ...string) *nettest.Buffer {
		var out nettest.Buffer
		c := exec.Command(filepath.Join(bin, name), args...)
		c.Stdout, c.Stderr, c.Env = &out, &out, append(os.Environ(), env...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c.Process.Kill()
			c.Wait()
			if t.Failed() {
				t.Logf("%s's log:\n%s", name, out.String())
			}
		})
		return &out
	}
	// Every name resolves to 127.0.0.1 (no AAAA), where dlb listens.
	run("pebble-challtestsrv", nil, "-dnsserver", dnsAddr, "-management", "127.0.0.1:"+freePort(t),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	run("pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", confFile, "-dnsserver", dnsAddr, "-strict=false")

	caPEM, err := os.ReadFile(pb.caRoot)
	if err != nil {
		t.Fatal(err)
	}
	pebbleTLS := x509.NewCertPool()
	pebbleTLS.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pebbleTLS}}}
	pb.directory = "https://127.0.0.1:" + apiPort + "/dir"
	var root []byte
	waitFor(t, 20*time.Second, "Pebble to answer with its issuing root", func() (bool, string) {
		resp, err := client.Get("https://127.0.0.1:" + mgmtPort + "/roots/0")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		root, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == 200, resp.Status
	})
	pb.roots = x509.NewCertPool()
	if !pb.roots.AppendCertsFromPEM(root) {
		t.Fatalf("Pebble's /roots/0 is not a PEM certificate: %q", root)
	}
	return pb
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// servedCert does a TLS handshake with addr for host, verifying the
// certificate against roots, and returns the certificate dlb served.
func servedCert(addr, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// waitCert waits until dlb at addr serves host a certificate that roots
// verify and that differs from not (when not is set), and returns it.
func waitCert(t *testing.T, timeout time.Duration, addr, host string, roots *x509.CertPool, not *x509.Certificate) *x509.Certificate {
	t.Helper()
	var got *x509.Certificate
	what := "a certificate for " + host + " that Pebble issued"
	if not != nil {
		what = "a new certificate for " + host + " (serial other than " + not.SerialNumber.String() + ")"
	}
	waitFor(t, timeout, what, func() (bool, string) {
		c, err := servedCert(addr, host, roots)
		if err != nil {
			return false, err.Error()
		}
		got = c
		if not != nil && c.SerialNumber.Cmp(not.SerialNumber) == 0 {
			return false, "still serial " + c.SerialNumber.String()
		}
		return true, ""
	})
	return got
}

// dialingTo is an HTTP client whose connections all go to addr, whatever
// the URL's host (as DNS would send them), and which follows no redirect.
func dialingTo(addr string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

// acmeProject has a service for a host Pebble issues for (%[1]s), one for
// a host on Pebble's blocklist (%[2]s), and one opted out (%[3]s).
const acmeProject = `
services:
  app:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.port: "80"
      dlb.host: "%[1]s,*.wild.dlb.test"
      dlb.tls.hsts: "true"
    networks: [appnet]
  blocked:
    image: dlb-demo:dev
    labels: {dlb.enable: "true", dlb.port: "80", dlb.host: "%[2]s"}
    networks: [appnet]
  optout:
    image: dlb-demo:dev
    labels: {dlb.enable: "true", dlb.port: "80", dlb.host: "%[3]s", dlb.tls: "off"}
    networks: [appnet]
networks:
  appnet: {}
`

// TestACMEWithPebble: a new dlb.host gets a certificate from Pebble, which
// validates the challenge on dlb's own listeners; dlb serves it by SNI,
// redirects plain HTTP to it, shows it in dlb status and its metrics; a
// restarted dlb serves the stored certificate without asking again; and a
// short-lived certificate is renewed.
func TestACMEWithPebble(t *testing.T) {
	parallelLong(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	testStart := time.Now()
	host := fmt.Sprintf("shop-%d.dlb.test", os.Getpid())
	blocked, optout := "blocked-"+host, "optout-"+host
	pb := startPebble(t, 20, blocked)
	p := newProject(t, fmt.Sprintf(acmeProject, host, blocked, optout))
	p.compose("up", "-d", "--no-build", "--scale", "app=2")
	defCert, defKey, _ := selfSigned(t)
	certDir := t.TempDir()
	optoutCert, _, _ := selfSignedFor(t, filepath.Join(certDir, "optout.crt"), filepath.Join(certDir, "optout.key"), optout)
	tlsAddr := "127.0.0.1:" + pb.tlsPort
	acme := func(storage string, extra ...string) []string {
		return append([]string{"--acme-email", "ops@dlb.test", "--acme-ca", pb.directory, "--acme-ca-root", pb.caRoot,
			"--acme-storage", storage, "--acme-renew-check", "1s", "--network", "appnet"}, extra...)
	}
	// start runs dlb where Pebble validates, for the test's project.
	start := func(storage string, extra ...string) *dlbProc {
		d := startDLB(t, acme(storage, append([]string{"--listen", "127.0.0.1:" + pb.httpPort, "--listen-tls", tlsAddr, "--project", p.name}, extra...)...)...)
		d.waitReady(t, p.name+"-app", 2, 10*time.Second)
		d.waitReady(t, p.name+"-blocked", 1, 10*time.Second)
		d.waitReady(t, p.name+"-optout", 1, 10*time.Second)
		return d
	}
	// Pebble picks a random profile for orders that name none.
	storage := t.TempDir()
	// Each challenge type alone: HTTP-01 here, TLS-ALPN-01 for the renewal.
	t.Logf("%s: Pebble and the project are up", time.Since(testStart).Round(time.Millisecond))
	d := start(storage, "--acme-profile", "default", "--acme-challenge", "http-01",
		"--tls-cert", defCert, "--tls-key", defKey, "--tls-cert-dir", certDir)

	// Obtained in the background, served by SNI.
	began := time.Now()
	first := waitCert(t, 30*time.Second, tlsAddr, host, pb.roots, nil)
	t.Logf("certificate for %s served %s after dlb was ready: serial %s, issuer %q, valid until %s",
		host, time.Since(began).Round(time.Millisecond), first.SerialNumber, first.Issuer.CommonName, first.NotAfter.Format(time.RFC3339))
	if first.NotAfter.Sub(first.NotBefore) < 24*time.Hour {
		t.Errorf("default-profile certificate valid %s, want Pebble's 90 days", first.NotAfter.Sub(first.NotBefore))
	}

	c := dialingTo(tlsAddr, pb.roots)
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		t.Fatalf("GET https://%s/ through dlb: %v", host, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) == 0 {
		t.Errorf("GET https://%s/: %d %q, want 200 from a replica", host, resp.StatusCode, body)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("GET https://%s/ (dlb.tls.hsts=true): Strict-Transport-Security %q, want max-age=31536000", host, got)
	}

	// Plain HTTP redirects, except the challenge path.
	plain := dialingTo("127.0.0.1:"+pb.httpPort, nil)
	resp, err = plain.Get("http://" + host + "/a/b?c=d")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://" + host + ":" + pb.tlsPort + "/a/b?c=d"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("GET http://%s/a/b?c=d: %d Location %q, want 308 to %s", host, resp.StatusCode, resp.Header.Get("Location"), want)
	}
	resp, err = plain.Get("http://" + host + "/.well-known/acme-challenge/none")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusPermanentRedirect {
		t.Errorf("GET http://%s/.well-known/acme-challenge/none was redirected; the challenge path must stay on plain HTTP", host)
	}

	// A host the CA refuses: logged with the CA's own words, shown by
	// status, and served with the default certificate meanwhile.
	var refused certs.HostStatus
	waitFor(t, 20*time.Second, "dlb to show the CA's refusal of "+blocked, func() (bool, string) {
		for _, h := range d.certificates() {
			if h.Host == blocked {
				refused = h
				return h.State == "failing", fmt.Sprintf("%+v", h)
			}
		}
		return false, "not listed"
	})
	if !strings.Contains(refused.LastError, "forbidden by policy") || !d.logHas(`"ca_says"`, "forbidden by policy", blocked) {
		t.Errorf("refusal of %s: last_error %q, want Pebble's message (forbidden by policy) there and in a log line with ca_says", blocked, refused.LastError)
	}
	if got := rawServed(t, tlsAddr, blocked); !got.Equal(leafOf(t, defCert)) {
		t.Errorf("TLS to %s served %v, want the default certificate (--tls-cert)", blocked, got.DNSNames)
	}
	if got := rawServed(t, tlsAddr, optout); !got.Equal(leafOf(t, optoutCert)) {
		t.Errorf("TLS to %s served %v, want its certificate from --tls-cert-dir", optout, got.DNSNames)
	}
	// Opted out (dlb.tls=off): no certificate asked, plain HTTP served.
	resp, err = plain.Get("http://" + optout + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET http://%s/ (dlb.tls=off): %d, want 200, not a redirect", optout, resp.StatusCode)
	}
	for _, h := range d.certificates() {
		if h.Host == optout {
			t.Errorf("dlb.tls=off host %s is listed for a certificate: %+v", optout, h)
		}
	}

	checkDashboardCerts(t, d.adminURL, map[string]string{host: "valid", blocked: "failing", "*.wild.dlb.test": "skipped"})

	// The wildcard is skipped with a warning, and status says why.
	if !d.logHas(`"level":"warn"`, "*.wild.dlb.test", "wildcard") {
		t.Errorf("no warning that *.wild.dlb.test gets no certificate")
	}
	code, out, errOut := execDLB(t, "status", "--admin-url", d.adminURL)
	t.Logf("dlb status:\n%s", out)
	if code != 0 || !strings.Contains(out, host) || !strings.Contains(out, "valid") || !strings.Contains(out, first.Issuer.CommonName) || !strings.Contains(out, "skipped") {
		t.Errorf("dlb status: exit %d, want 0 and a certificate line for %s (valid, issuer %q) and *.wild.dlb.test skipped:\n%s%s", code, host, first.Issuer.CommonName, out, errOut)
	}
	if got := series(d.scrape(), "dlb_certificates_total", map[string]string{"kind": "obtain"}, "result"); got["success"] != 1 || got["failure"] != 1 {
		t.Errorf("dlb_certificates_total{kind=obtain} = %v, want success 1 (%s), failure 1 (%s)", got, host, blocked)
	}

	t.Logf("%s: first dlb checked", time.Since(testStart).Round(time.Millisecond))
	// A restart serves the stored certificate and asks the CA for nothing.
	d.stop()
	d = start(storage, "--acme-profile", "default", "--http-redirect=false")
	again := waitCert(t, 10*time.Second, tlsAddr, host, pb.roots, nil)
	if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("after a restart dlb serves serial %s, want the stored %s", again.SerialNumber, first.SerialNumber)
	}
	if got := series(d.scrape(), "dlb_certificates_total", map[string]string{"result": "success"}, "kind"); len(got) != 0 {
		t.Errorf("after a restart with the certificate stored, dlb_certificates_total{result=success} = %v, want no certificate from the CA", got)
	}
	if code, _ := getHost("http://127.0.0.1:"+pb.httpPort+"/", host); code != 200 {
		t.Errorf("GET http://%s/ with --http-redirect=false: %d, want 200 (served, not redirected)", host, code)
	}

	t.Logf("%s: restart checked", time.Since(testStart).Round(time.Millisecond))
	// Several dlb may share one --acme-storage, and the CA may reach any of
	// them. Here it reaches only front, which has no host of its own (an
	// empty project) and answers, from the storage, the TLS-ALPN-01
	// challenges of back, a dlb on other ports. back's certificate is
	// short-lived (20s) and renewed before it expires.
	d.stop()
	shared := t.TempDir()
	front := startDLB(t, acme(shared, "--listen", "127.0.0.1:"+pb.httpPort, "--listen-tls", tlsAddr, "--project", "none-"+p.name)...)
	back := startDLB(t, acme(shared, "--listen-tls", "127.0.0.1:0", "--project", p.name,
		"--acme-profile", "shortlived", "--acme-challenge", "tls-alpn-01")...)
	back.waitReady(t, p.name+"-app", 2, 10*time.Second)
	backTLS := back.listenTLS()
	short := waitCert(t, 30*time.Second, backTLS, host, pb.roots, nil)
	if life := short.NotAfter.Sub(short.NotBefore); life > time.Minute {
		t.Fatalf("the shortlived profile's certificate is valid %s, want 20s", life)
	}
	if !front.logHas("served key authentication certificate", host) {
		t.Errorf("front (where Pebble validates) logged no TLS-ALPN-01 answer for %s", host)
	}
	renewed := waitCert(t, 40*time.Second, backTLS, host, pb.roots, short)
	t.Logf("the %s certificate issued at %s was renewed %s later", short.NotAfter.Sub(short.NotBefore),
		short.NotBefore.Format(time.TimeOnly), renewed.NotBefore.Sub(short.NotBefore))
	if !renewed.NotAfter.After(short.NotAfter) {
		t.Errorf("renewed certificate expires %s, not after the old one's %s", renewed.NotAfter, short.NotAfter)
	}
	if got := series(back.scrape(), "dlb_certificates_total", map[string]string{"result": "success"}, "kind"); got["obtain"] != 1 || got["renew"] < 1 {
		t.Errorf("back's dlb_certificates_total{result=success} = %v, want obtain 1, renew at least 1", got)
	}
	if got := front.certificates(); len(got) != 0 {
		t.Errorf("front, with no host, lists certificates: %+v", got)
	}
	t.Logf("back's /api/certificates: %+v", back.certificates())
}

// listenTLS is the address of dlb's --listen-tls, from its start line.
func (d *dlbProc) listenTLS() string {
	d.t.Helper()
	for line := range strings.SplitSeq(d.logs(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "dlb starting" {
			if a, _ := m["listen_tls"].(string); a != "" {
				return a
			}
		}
	}
	d.t.Fatalf("dlb's start line names no listen_tls address:\n%s", d.logs())
	return ""
}

// certificates returns /api/certificates.
func (d *dlbProc) certificates() []certs.HostStatus {
	d.t.Helper()
	var hs []certs.HostStatus
	if code, body := get(d.adminURL + "/api/certificates"); code != 200 || json.Unmarshal([]byte(body), &hs) != nil {
		d.t.Fatalf("GET /api/certificates: %d %q", code, body)
	}
	return hs
}

// leafOf parses the first certificate of a PEM file.
func leafOf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawServed is the certificate dlb at addr serves for host, unverified.
func rawServed(t *testing.T, addr, host string) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to %s for %s: %v", addr, host, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// TestACMEFlagErrors runs dlb with bad automatic HTTPS flags: each exits
// with status 2 before touching Docker, naming the flag and the fix.
func TestACMEFlagErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	writeFile(t, notDir, []byte("x"))
	noPEM := filepath.Join(dir, "root.pem")
	writeFile(t, noPEM, []byte("no PEM here"))
	on := []string{"--listen-tls", "127.0.0.1:0", "--acme-email", "ops@example.com", "--acme-storage", dir}
	runFlagErrors(t, []flagErrorCase{
		{"email without TLS listener", []string{"--acme-email", "ops@example.com"}, "--acme-email needs the HTTPS listener: set --listen-tls"},
		{"CA without email", []string{"--listen-tls", "127.0.0.1:0", "--acme-ca", "https://ca.example/dir"}, "--acme-ca is for automatic HTTPS: set --acme-email too"},
		{"bad email", []string{"--listen-tls", "127.0.0.1:0", "--acme-email", "ops"}, `--acme-email "ops": not an e-mail address`},
		{"plain-HTTP CA", append(on, "--acme-ca", "http://ca.example/dir"), `--acme-ca "http://ca.example/dir": not an ACME directory URL`},
		{"root without PEM", append(on, "--acme-ca-root", noPEM), `--acme-ca-root "` + noPEM + `": holds no PEM CERTIFICATE block`},
		{"storage is a file", append(on[:4:4], "--acme-storage", notDir), `--acme-storage "` + notDir + `": cannot create it`},
		{"renew check too often", append(on, "--acme-renew-check", "10ms"), `--acme-renew-check "10ms": must be at least 1s`},
		{"bad profile", append(on, "--acme-profile", "short lived"), `--acme-profile "short lived": not a profile name`},
		{"bad challenge", append(on, "--acme-challenge", "dns-01"), `--acme-challenge "dns-01": must be http-01, tls-alpn-01 or all`},
		{"TLS without certificate or ACME", []string{"--listen-tls", "127.0.0.1:0"}, "(or --tls-cert-dir, or --acme-email for certificates from an ACME CA)"},
		{"certificate directory without TLS listener", []string{"--tls-cert-dir", dir}, "--tls-cert, --tls-key and --tls-cert-dir are for the HTTPS listener"},
		{"missing certificate directory", []string{"--listen-tls", "127.0.0.1:0", "--tls-cert-dir", filepath.Join(dir, "none")}, `--tls-cert-dir "` + filepath.Join(dir, "none") + `": cannot read it`},
	})
}

// checkDashboardCerts opens the dashboard in headless Chromium, when there
// is one (DLB_SKIP_BROWSER=1 skips it), and waits until its certificates
// table shows each host in the given state.
func checkDashboardCerts(t *testing.T, adminURL string, want map[string]string) {
	t.Helper()
	if os.Getenv("DLB_SKIP_BROWSER") == "1" {
		return
	}
	chromium := ""
	for _, name := range browserNames {
		if path, err := exec.LookPath(name); err == nil {
			chromium = path
			break
		}
	}
	if chromium == "" {
		t.Log("no Chromium: the dashboard's certificates table is not checked (make test-deps installs it)")
		return
	}
	ctx, cancel := context.WithTimeout(newBrowser(t, chromium), time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(adminURL+"/")); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	js := `Object.fromEntries([...document.querySelectorAll("#certs:not([hidden]) #cert-rows tr")].map(
  (tr) => [tr.cells[0].textContent, tr.cells[1].textContent]))`
	waitFor(t, 15*time.Second, "the dashboard to show the certificates", func() (bool, string) {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](js))
		if err != nil {
			return false, err.Error()
		}
		for h, state := range want {
			if got[h] != state {
				return false, fmt.Sprintf("rows %v, want %s %s", got, h, state)
			}
		}
		return true, ""
	})
}
