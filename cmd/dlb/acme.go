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

// httpsFlags are the flags of automatic HTTPS and the certificate
// directory.
func httpsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "tls-cert-dir", EnvVars: envs("TLS_CERT_DIR"), Usage: "directory of NAME.crt and NAME.key pairs that --listen-tls serves to the names each certificate is for (re-read when its files change)"},
		&cli.StringFlag{Name: "acme-email", EnvVars: envs("ACME_EMAIL"), Usage: "turns on automatic HTTPS (with --listen-tls): every exact dlb.host gets a certificate from the ACME CA, for this contact address"},
		&cli.StringFlag{Name: "acme-ca", Value: certs.LetsEncrypt, EnvVars: envs("ACME_CA"), Usage: "the ACME CA's directory URL"},
		&cli.StringFlag{Name: "acme-ca-root", EnvVars: envs("ACME_CA_ROOT"), Usage: "PEM file of a root to trust for the ACME CA's own HTTPS (a private or test CA, e.g. Pebble's); default: the system's roots"},
		&cli.StringFlag{Name: "acme-profile", EnvVars: envs("ACME_PROFILE"), Usage: "certificate profile to ask the CA for (e.g. Let's Encrypt's shortlived); default: the CA's default"},
		&cli.StringFlag{Name: "acme-challenge", Value: "all", EnvVars: envs("ACME_CHALLENGE"), Usage: "how the CA checks that dlb serves a host: http-01 (on --listen, port 80), tls-alpn-01 (on --listen-tls, port 443), or all"},
		&cli.StringFlag{Name: "acme-storage", Value: defaultACMEStorage, EnvVars: envs("ACME_STORAGE"), Usage: "directory the ACME account, keys and certificates are kept in (several dlb may share it: it is locked)"},
		&cli.DurationFlag{Name: "acme-renew-check", Value: 10 * time.Minute, EnvVars: envs("ACME_RENEW_CHECK"), Usage: "how often certificates are checked for renewal (each is renewed in its last third, or when the CA suggests)"},
		&cli.BoolFlag{Name: "http-redirect", Value: true, EnvVars: envs("HTTP_REDIRECT"), Usage: "redirect plain HTTP to HTTPS (308) for hosts that have a certificate from the ACME CA"},
	}
}

// parseACMEFlags checks the automatic HTTPS flags into o; each error names
// the flag to fix.
func parseACMEFlags(c *cli.Context, listenTLS string, o *certs.Options) error {
	email := strings.TrimSpace(c.String("acme-email"))
	o.Redirect = c.Bool("http-redirect")
	if email == "" {
		for _, f := range []string{"acme-ca", "acme-ca-root", "acme-profile", "acme-challenge", "acme-storage", "acme-renew-check"} {
			if c.IsSet(f) {
				return cli.Exit(fmt.Sprintf("--%s is for automatic HTTPS: set --acme-email too", f), 2)
			}
		}
		return nil
	}
	if listenTLS == "" {
		return cli.Exit("--acme-email needs the HTTPS listener: set --listen-tls too (e.g. --listen-tls :443)", 2)
	}
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return badFlag("acme-email", email, "not an e-mail address (e.g. admin@example.com); the CA writes to it about expiring certificates")
	}
	ca := strings.TrimSpace(c.String("acme-ca"))
	if u, err := url.Parse(ca); err != nil || u.Scheme != "https" || u.Host == "" {
		return badFlag("acme-ca", ca, "not an ACME directory URL: use https://…/directory, e.g. "+certs.LetsEncrypt)
	}
	every := c.Duration("acme-renew-check")
	if every < time.Second {
		return badFlag("acme-renew-check", every.String(), "must be at least 1s")
	}
	profile := strings.TrimSpace(c.String("acme-profile"))
	if profile != "" && !validProfile(profile) {
		return badFlag("acme-profile", profile, "not a profile name (letters, digits, '.', '_' and '-'), e.g. shortlived")
	}
	o.ACME = certs.ACME{Email: email, CA: ca, Profile: profile, Storage: c.String("acme-storage"), RenewCheck: every}
	switch ch := strings.ToLower(strings.TrimSpace(c.String("acme-challenge"))); ch {
	case "all":
	case "http-01":
		o.ACME.NoTLSALPN01 = true
	case "tls-alpn-01":
		o.ACME.NoHTTP01 = true
	default:
		return badFlag("acme-challenge", ch, "must be http-01, tls-alpn-01 or all")
	}
	if f := c.String("acme-ca-root"); f != "" {
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
	o := *cfg.certs
	o.Log = log.With().Str("component", "certs").Logger()
	if met != nil {
		o.OnResult = met.Certificate
	}
	k := certs.New(o)
	cfg.tls = k.TLSConfig()
	return k
}
