package certs

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rs/zerolog"
)

// dirCerts are the certificates of a directory (Options.CertDir), by the
// lower-cased names they are for: exact names and wildcards ("*.x.com").
type dirCerts map[string]*tls.Certificate

// loadDir reads every NAME.crt of dir with its NAME.key. A pair that
// cannot be used is logged, naming its files, and left out.
func loadDir(dir string, log zerolog.Logger) dirCerts {
	out := dirCerts{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Warn().Err(err).Str("dir", dir).Msg("cannot read the certificate directory (--tls-cert-dir); keeping its previous certificates")
		return nil
	}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".crt")
		if !ok || e.IsDir() {
			continue
		}
		certFile, keyFile := filepath.Join(dir, e.Name()), filepath.Join(dir, base+".key")
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err == nil {
			c.Leaf, err = x509.ParseCertificate(c.Certificate[0])
		}
		if err != nil {
			log.Warn().Err(err).Str("cert", certFile).Str("key", keyFile).Msg("certificate pair in --tls-cert-dir left out (give NAME.crt and its NAME.key)")
			continue
		}
		for _, n := range c.Leaf.DNSNames {
			out[strings.ToLower(n)] = &c
		}
	}
	return out
}

// forHost is the certificate for host: its exact name, else a wildcard
// of its first label.
func (d dirCerts) forHost(host string) *tls.Certificate {
	if c := d[host]; c != nil {
		return c
	}
	if _, rest, ok := strings.Cut(host, "."); ok {
		return d["*."+rest]
	}
	return nil
}

// dirStamp sums up the .crt and .key files of dir: names, sizes and times.
func dirStamp(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	var b strings.Builder
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".crt") || strings.HasSuffix(n, ".key") {
			b.WriteString(n)
			b.WriteString(stamp(filepath.Join(dir, n)))
		}
	}
	return b.String()
}

// names lists the names d has certificates for, sorted.
func (d dirCerts) names() []string {
	out := make([]string, 0, len(d))
	for n := range d {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
