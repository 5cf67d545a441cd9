package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/metrics"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// defaultACMEStorage is where certificates are kept unless --acme-storage
// says otherwise: a volume in the compose example.
const defaultACMEStorage = "/var/lib/dlb/acme"

// checkACME checks the automatic HTTPS flags into cfg.certs; each error
// names the flag to fix.
func (cfg *config) checkACME(c *cli.Context) error {
	o := &cfg.certs
	email := strings.TrimSpace(o.ACME.Email)
	if email == "" {
		o.ACME = certs.ACME{}
		for _, f := range []string{"acme-ca", "acme-ca-root", "acme-profile", "acme-challenge", "acme-storage", "acme-renew-check"} {
			if c.IsSet(f) {
				return cli.Exit(fmt.Sprintf("--%s is for automatic HTTPS: set --acme-email too", f), 2)
			}
		}
		return nil
	}
	if cfg.listenTLS == "" {
		return cli.Exit("--acme-email needs the HTTPS listener: set --listen-tls too (e.g. --listen-tls :443)", 2)
	}
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return badFlag("acme-email", email, "not an e-mail address (e.g. admin@example.com); the CA writes to it about expiring certificates")
	}
	ca := strings.TrimSpace(o.ACME.CA)
	if u, err := url.Parse(ca); err != nil || u.Scheme != "https" || u.Host == "" {
		return badFlag("acme-ca", ca, "not an ACME directory URL: use https://…/directory, e.g. "+certs.LetsEncrypt)
	}
	every := o.ACME.RenewCheck
	if every < time.Second {
		return badFlag("acme-renew-check", every.String(), "must be at least 1s")
	}
	profile := strings.TrimSpace(o.ACME.Profile)
	if profile != "" && !validProfile(profile) {
		return badFlag("acme-profile", profile, "not a profile name (letters, digits, '.', '_' and '-'), e.g. shortlived")
	}
	o.ACME = certs.ACME{Email: email, CA: ca, Profile: profile, Storage: o.ACME.Storage, RenewCheck: every}
	switch ch := strings.ToLower(strings.TrimSpace(cfg.acmeChallenge)); ch {
	case "all":
	case "http-01":
		o.ACME.NoTLSALPN01 = true
	case "tls-alpn-01":
		o.ACME.NoHTTP01 = true
	default:
		return badFlag("acme-challenge", ch, "must be http-01, tls-alpn-01 or all")
	}
	if f := cfg.acmeCARoot; f != "" {
		pool, err := readRoots(f)
		if err != nil {
			return err
		}
		o.ACME.Roots = pool
	}
	return checkStorage(o.ACME.Storage)
}

// validProfile reports whether p looks like an ACME profile name.
func validProfile(p string) bool {
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return len(p) <= 64
}

// readRoots reads --acme-ca-root into a pool of roots.
func readRoots(file string) (*x509.CertPool, error) {
	b, err := readPEM("acme-ca-root", file, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, badFlag("acme-ca-root", file, fmt.Sprintf("not a valid certificate: %v", err))
		}
		pool.AddCert(cert)
	}
	return pool, nil
}

// checkStorage makes sure --acme-storage is a directory dlb can write.
func checkStorage(dir string) error {
	if dir == "" {
		return badFlag("acme-storage", dir, "give a directory (a volume, so certificates survive restarts)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return badFlag("acme-storage", dir, fmt.Sprintf("cannot create it (%v); give a writable directory (mount a volume there)", err))
	}
	f, err := os.CreateTemp(dir, ".dlb-write-check-*")
	if err != nil {
		return badFlag("acme-storage", dir, fmt.Sprintf("cannot write in it (%v); give a writable directory (mount a volume there)", err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// newKeeper makes the HTTPS listener's certificates and sets cfg.tls from
// them; nil without --listen-tls. It counts the CA's answers in met (if
// not nil).
func newKeeper(cfg *config, met *metrics.Metrics, log zerolog.Logger) *certs.Keeper {
	if cfg.listenTLS == "" {
		return nil
	}
	o := cfg.certs
	o.Log = log.With().Str("component", "certs").Logger()
	if met != nil {
		o.OnResult = met.Certificate
	}
	k := certs.New(o)
	cfg.tls = k.TLSConfig()
	return k
}
