package certs

// Unit tests of the pure parts; the ACME flow itself is tested against a
// real CA (Pebble) in cmd/dlb's TestACMEWithPebble.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"shop.example.com": "shop.example.com", "Shop.Example.COM:8443": "shop.example.com",
		"shop.example.com.": "shop.example.com", "[::1]:443": "::1", "[::1]": "::1", "": "",
	} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { hostOnly("shop.example.com:8443") }); n != 0 {
		t.Errorf("hostOnly of a lower-case host:port allocates %v times, want 0", n)
	}
}

func TestIneligible(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string // a part of the reason; "" when a CA may issue
	}{
		{"shop.example.com", ""},
		{"a.b.example.org", ""},
		{"*.example.com", "wildcard"},
		{"localhost", "not a public name"},
		{"app.localhost", "not a public name"},
		{"printer.local", "not a public name"},
		{"db.internal", "not a public name"},
		{"10.1.2.3", "IP address"},
		{"127.0.0.1", "IP address"},
		{"intranet", "no dot"},
	} {
		got := ineligible(tc.host)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("ineligible(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}

// TestSitesWithoutACME: without ACME no host is managed, HSTS still
// applies per host, and the plain handler is left as it is.
func TestSitesWithoutACME(t *testing.T) {
	k := New(Options{Log: zerolog.Nop()})
	k.SetSites([]Site{
		{Hosts: []string{"a.example.com"}, HSTS: "max-age=60"},
		{Hosts: []string{"b.example.com"}, Off: true},
	})
	if st := k.Status(); len(st) != 0 {
		t.Errorf("Status() without ACME = %+v, want nothing", st)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	for _, tc := range []struct{ host, hsts string }{
		{"a.example.com", "max-age=60"},
		{"A.example.com:8443", "max-age=60"},
		{"b.example.com", ""},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "https://"+tc.host+"/", nil)
		k.HTTPSHandler(next).ServeHTTP(rec, req)
		if got := rec.Header().Get("Strict-Transport-Security"); got != tc.hsts || rec.Code != 204 {
			t.Errorf("HTTPS %s: %d, Strict-Transport-Security %q; want 204, %q", tc.host, rec.Code, got, tc.hsts)
		}
		rec = httptest.NewRecorder()
		k.HTTPHandler(next).ServeHTTP(rec, httptest.NewRequest("GET", "http://"+tc.host+"/x", nil))
		if rec.Code != 204 {
			t.Errorf("HTTP %s without ACME: %d, want 204 (no redirect)", tc.host, rec.Code)
		}
	}
}

// TestSitesWithACMEBeforeStart: hosts are sorted into managed and skipped
// (with the reason) even before Start; dlb.tls=off hosts are neither.
func TestSitesWithACMEBeforeStart(t *testing.T) {
	k := New(Options{ACME: ACME{Email: "ops@example.com"}, Log: zerolog.Nop(), Redirect: true})
	k.SetSites([]Site{
		{Hosts: []string{"shop.example.com", "*.shop.example.com"}},
		{Hosts: []string{"internal.example.com"}, Off: true},
		{Hosts: []string{"localhost"}},
	})
	tab := k.hosts.Load()
	if !tab.managed["shop.example.com"] || tab.managed["internal.example.com"] || tab.managed["*.shop.example.com"] || tab.managed["localhost"] {
		t.Errorf("managed hosts = %v, want only shop.example.com", tab.managed)
	}
	if len(k.skipped) != 2 || !strings.Contains(k.skipped["*.shop.example.com"], "wildcard") || !strings.Contains(k.skipped["localhost"], "public") {
		t.Errorf("skipped = %v, want the wildcard and localhost, with reasons", k.skipped)
	}
	// No certificate yet: plain HTTP is served, not redirected.
	rec := httptest.NewRecorder()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	k.HTTPHandler(next).ServeHTTP(rec, httptest.NewRequest("GET", "http://shop.example.com/", nil))
	if rec.Code != 204 {
		t.Errorf("HTTP to a host with no certificate yet: %d, want 204 (served, not redirected)", rec.Code)
	}
}

func TestGetCertificateFallsBackToTheDefault(t *testing.T) {
	k := New(Options{Log: zerolog.Nop()})
	if _, err := k.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.example.com"}); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Errorf("GetCertificate with no certificate at all: error %v, want one naming --tls-cert", err)
	}
	certFile, keyFile := writePair(t, t.TempDir(), "one")
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	k = New(Options{Default: &c, Log: zerolog.Nop()})
	for _, name := range []string{"a.example.com", ""} {
		got, err := k.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil || got != &c {
			t.Errorf("GetCertificate(%q) = %v, %v; want the default certificate", name, got, err)
		}
	}
}

// TestDefaultCertificateReload: a new pair in the files is served; a
// broken one is not, and the last good one stays.
func TestDefaultCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writePair(t, dir, "one")
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	k := New(Options{Default: &c, CertFile: certFile, KeyFile: keyFile, Log: zerolog.Nop()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.watchFiles(ctx, 10*time.Millisecond)
	served := func() string {
		got, err := k.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.example.com"})
		if err != nil {
			return err.Error()
		}
		leaf, _ := x509.ParseCertificate(got.Certificate[0])
		return leaf.Subject.CommonName
	}
	waitServed := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for served() != want {
			if time.Now().After(deadline) {
				t.Fatalf("default certificate is %q, want %q within 5s", served(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(20 * time.Millisecond) // let the watcher take the files' first stamp
	writePair(t, dir, "two")
	waitServed("two")
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // ten checks
	if got := served(); got != "two" {
		t.Errorf("after a broken certificate file, the default is %q, want the last good one (two)", got)
	}
	writePair(t, dir, "three")
	waitServed("three")
}

// writePair writes a self-signed certificate for x.example.com with
// common name cn and its key as cert.pem and key.pem in dir.
func writePair(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	return writeFiles(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), cn, "x.example.com")
}

// writeFiles writes a self-signed certificate with common name cn for
// names, and its key.
func writeFiles(t *testing.T, certFile, keyFile, cn string, names ...string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: names}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	// The key first: the watcher may see the new key beside the old
	// certificate for a moment, which must not replace the good pair.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestCertDir: each pair of the directory is served to its names (a
// wildcard to one label), others get the default; a pair added later is
// picked up, a broken one is left out.
func TestCertDir(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, "shop.crt"), filepath.Join(dir, "shop.key"), "shop", "shop.example.com", "*.shop.example.com")
	if err := os.WriteFile(filepath.Join(dir, "broken.crt"), []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	defCert, defKey := writePair(t, t.TempDir(), "default")
	def, err := tls.LoadX509KeyPair(defCert, defKey)
	if err != nil {
		t.Fatal(err)
	}
	k := New(Options{Default: &def, CertDir: dir, Log: zerolog.Nop()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.watchFiles(ctx, 10*time.Millisecond)
	served := func(name string) string {
		got, err := k.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			return err.Error()
		}
		leaf, _ := x509.ParseCertificate(got.Certificate[0])
		return leaf.Subject.CommonName
	}
	for name, want := range map[string]string{
		"shop.example.com": "shop", "SHOP.example.com.": "shop", "a.shop.example.com": "shop",
		"a.b.shop.example.com": "default", "other.example.com": "default", "": "default",
	} {
		if got := served(name); got != want {
			t.Errorf("certificate for %q: %q, want %q", name, got, want)
		}
	}
	time.Sleep(20 * time.Millisecond) // let the watcher take the directory's first stamp
	writeFiles(t, filepath.Join(dir, "other.crt"), filepath.Join(dir, "other.key"), "other", "other.example.com")
	deadline := time.Now().Add(5 * time.Second)
	for served("other.example.com") != "other" {
		if time.Now().After(deadline) {
			t.Fatalf("a pair added to the directory is not served within 5s: got %q", served("other.example.com"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := served("shop.example.com"); got != "shop" {
		t.Errorf("after the reload, shop.example.com gets %q, want shop", got)
	}
}
