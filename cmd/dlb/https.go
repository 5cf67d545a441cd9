package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/listener"
	"github.com/dlb-lb/dlb/metrics"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// certsFlags are the flags of certs.FieldError's fields.
var certsFlags = map[string]string{"Email": "acme-email", "CA": "acme-ca", "RenewCheck": "acme-renew-check",
	"Profile": "acme-profile", "Storage": "acme-storage", "Cert": "tls-cert", "Key": "tls-key", "Roots": "acme-ca-root"}

// certsError names the flag of a *certs.FieldError.
func certsError(err error) error {
	var fe *certs.FieldError
	if errors.As(err, &fe) {
		return badFlag(certsFlags[fe.Field], fe.Value, fe.Want)
	}
	return err
}

// checkProtocols checks --listen-tls, --tls-cert, --tls-key, the --acme-*
// flags and --trusted-proxies into cfg.
func (cfg *config) checkProtocols(c *cli.Context) error {
	certFile, keyFile, certDir := cfg.tlsCert, cfg.tlsKey, cfg.tlsCertDir
	if err := cfg.checkACME(c); err != nil {
		return err
	}
	switch {
	case cfg.listenTLS != "":
		if err := listener.CheckAddr(cfg.listenTLS); err != nil {
			return badFlag("listen-tls", cfg.listenTLS, err.Error())
		}
		if certDir != "" {
			if _, err := os.ReadDir(certDir); err != nil {
				return badFlag("tls-cert-dir", certDir, fmt.Sprintf("cannot read it (%v); give a directory of NAME.crt and NAME.key pairs", err))
			}
			cfg.certs.CertDir = certDir
		}
		if (cfg.certs.ACME.Email != "" || certDir != "") && certFile == "" && keyFile == "" {
			break // the default certificate is optional with ACME or a directory
		}
		for _, f := range [][3]string{{"tls-cert", certFile, "certificate"}, {"tls-key", keyFile, "private key"}} {
			if f[1] == "" {
				return cli.Exit(fmt.Sprintf("--listen-tls needs --%s: give the PEM file of the %s (or --tls-cert-dir, or --acme-email for certificates from an ACME CA)", f[0], f[2]), 2)
			}
		}
		tc, err := certs.LoadKeyPair(certFile, keyFile)
		if err != nil {
			return certsError(err)
		}
		cfg.certs.Default, cfg.certs.CertFile, cfg.certs.KeyFile = &tc.Certificates[0], certFile, keyFile
	case certFile != "" || keyFile != "" || certDir != "":
		return cli.Exit("--tls-cert, --tls-key and --tls-cert-dir are for the HTTPS listener: set --listen-tls too (e.g. --listen-tls :443)", 2)
	}
	tp, err := proxy.ParseTrustedProxies(cfg.trustedProxies)
	if err != nil {
		return badFlag("trusted-proxies", cfg.trustedProxies, err.Error())
	}
	cfg.proxy.TrustedProxies = tp
	return nil
}

// checkACME checks the automatic HTTPS flags into cfg.certs.ACME.
func (cfg *config) checkACME(c *cli.Context) error {
	a := &cfg.certs.ACME
	a.Email, a.CA, a.Profile = strings.TrimSpace(a.Email), strings.TrimSpace(a.CA), strings.TrimSpace(a.Profile)
	if a.Email == "" {
		*a = certs.ACME{}
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
	if err := a.Check(); err != nil {
		return certsError(err)
	}
	if ch := strings.ToLower(strings.TrimSpace(cfg.acmeChallenge)); !a.SetChallenges(ch) {
		return badFlag("acme-challenge", ch, "must be http-01, tls-alpn-01 or all")
	}
	if f := cfg.acmeCARoot; f != "" {
		pool, err := certs.ReadRoots(f)
		if err != nil {
			return certsError(err)
		}
		a.Roots = pool
	}
	return certsError(certs.CheckStorage(a.Storage))
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
