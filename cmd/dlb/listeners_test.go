package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a fresh self-signed certificate for 127.0.0.1 and
// localhost, and its key, as PEM files; roots trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	return selfSignedFor(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), "localhost")
}

// selfSignedFor writes a fresh self-signed certificate for 127.0.0.1 and
// the names, and its key, as PEM files; roots trusts the certificate.
func selfSignedFor(t *testing.T, certFile, keyFile string, names ...string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "dlb test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestProtocolFlagErrors runs dlb with bad TLS and proxy flags: each exits
// with status 2 before touching Docker, naming the flag and the fix.
func TestProtocolFlagErrors(t *testing.T) {
	cert, key, _ := selfSigned(t)
	_, otherKey, _ := selfSigned(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	writeFile(t, empty, nil)
	missing := filepath.Join(dir, "missing.pem")
	tlsOn := []string{"--listen-tls", "127.0.0.1:0"}
	runFlagErrors(t, []flagErrorCase{
		{"no cert", append(tlsOn, "--tls-key", key), "--listen-tls needs --tls-cert"},
		{"no key", append(tlsOn, "--tls-cert", cert), "--listen-tls needs --tls-key"},
		{"missing cert", append(tlsOn, "--tls-cert", missing, "--tls-key", key), `--tls-cert "` + missing + `": cannot read it (no such file or directory)`},
		{"missing key", append(tlsOn, "--tls-cert", cert, "--tls-key", missing), `--tls-key "` + missing + `": cannot read it`},
		{"empty cert", append(tlsOn, "--tls-cert", empty, "--tls-key", key), `--tls-cert "` + empty + `": holds no PEM CERTIFICATE block`},
		{"key given as cert", append(tlsOn, "--tls-cert", key, "--tls-key", key), `--tls-cert "` + key + `": holds no PEM CERTIFICATE block`},
		{"cert given as key", append(tlsOn, "--tls-cert", cert, "--tls-key", cert), `--tls-key "` + cert + `": holds no PEM PRIVATE KEY block`},
		{"key of another cert", append(tlsOn, "--tls-cert", cert, "--tls-key", otherKey), `--tls-key "` + otherKey + `": is not the private key of --tls-cert`},
		{"cert without listener", []string{"--tls-cert", cert, "--tls-key", key}, "set --listen-tls too"},
		{"bad TLS address", []string{"--listen-tls", "443", "--tls-cert", cert, "--tls-key", key}, `--listen-tls "443": not a listen address`},
		{"bad trusted proxy", []string{"--trusted-proxies", "10.0.0.0/8,10.0.0.0/33"}, `--trusted-proxies "10.0.0.0/8,10.0.0.0/33": "10.0.0.0/33" is not a CIDR`},
		{"trusted proxy by name", []string{"--trusted-proxies", "proxy"}, `"proxy" is not an IP address or a CIDR`},
		{"tiny header limit", []string{"--max-header-bytes", "100"}, `--max-header-bytes "100": must be at least 1024`},
		{"negative body timeout", []string{"--body-timeout", "-1s"}, `--body-timeout "-1s": must not be negative`},
		{"negative connection limit", []string{"--max-conns", "-5"}, `--max-conns "-5": must be a number of connections`},
		{"client share of 0", []string{"--max-conns-client-share", "0"}, `--max-conns-client-share "0": must be a percent of --max-conns, 1 to 100`},
		{"client share over 100", []string{"--max-conns-client-share", "150"}, `--max-conns-client-share "150": must be a percent of --max-conns, 1 to 100`},
		{"admin host with a port", []string{"--admin-hosts", "dlb:8080"}, `"dlb:8080" is not a host name`},
		{"missing admin token file", []string{"--admin-token-file", missing}, `--admin-token-file "` + missing + `": cannot read it`},
		{"empty admin token file", []string{"--admin-token-file", empty}, `--admin-token-file "` + empty + `": is empty`},
		{"both admin tokens", []string{"--admin-token", "x", "--admin-token-file", cert}, "give one of them"},
	})
}

// flagErrorCase is a dlb command line that must exit 2 with want in the
// message.
type flagErrorCase struct {
	name string
	args []string
	want string
}

// runFlagErrors runs dlb (in this process) with each case's flags.
func runFlagErrors(t *testing.T, cases []flagErrorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"dlb", "--listen", "127.0.0.1:0", "--admin", ""}, tc.args...)
			code := run(args, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("dlb %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.want)
			}
		})
	}
}
