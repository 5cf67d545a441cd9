package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dlb-lb/dlb/proxy"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// checkProtocols checks --listen-tls, --tls-cert, --tls-key, the --acme-*
// flags and --trusted-proxies into cfg.
func (cfg *config) checkProtocols(c *cli.Context) error {
	certFile, keyFile, certDir := cfg.tlsCert, cfg.tlsKey, cfg.tlsCertDir
	if err := cfg.checkACME(c); err != nil {
		return err
	}
	switch {
	case cfg.listenTLS != "":
		if err := checkAddr(cfg.listenTLS); err != nil {
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
		tc, err := loadTLS(certFile, keyFile)
		if err != nil {
			return err
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

// The timeouts of every server dlb runs (the proxy's, over TLS or not, and
// the admin API's): how long a client may take to send a request's header,
// and how long a kept-alive connection may idle between requests.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
)

// newProxyServer returns a server of the proxy's requests: over TLS when
// tc is set (HTTP/2 and HTTP/1.1), else HTTP/1.1, and with h2c unencrypted
// HTTP/2 with prior knowledge as well. Neither reads nor writes have a
// deadline: bodies and streams may take as long as they take.
func newProxyServer(h http.Handler, cfg *config, tc *tls.Config, log zerolog.Logger) *http.Server {
	s := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    cfg.maxHeaderBytes,
		ErrorLog:          newStdLogger(log),
		TLSConfig:         tc,
	}
	if tc == nil && cfg.h2c {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetHTTP1(true)
		s.Protocols.SetUnencryptedHTTP2(true)
	}
	return s
}

// listenTLS opens --listen-tls, when set, and returns its server.
func listenTLS(h http.Handler, cfg *config, log zerolog.Logger) (*http.Server, net.Listener, error) {
	if cfg.tls == nil {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", cfg.listenTLS)
	if err != nil {
		return nil, nil, cli.Exit(fmt.Sprintf("--listen-tls %s: %v (is another process using the port?)", cfg.listenTLS, err), 1)
	}
	return newProxyServer(h, cfg, cfg.tls, log), ln, nil
}

// shutdownAll shuts the servers down at once, each waiting for its
// requests in flight until ctx ends; nil servers are skipped.
func shutdownAll(ctx context.Context, log zerolog.Logger, servers ...*http.Server) {
	var wg sync.WaitGroup
	for _, s := range servers {
		if s == nil {
			continue
		}
		wg.Go(func() {
			if err := s.Shutdown(ctx); err != nil {
				log.Warn().Err(err).Msg("requests still in flight at the shutdown timeout were cut")
			}
		})
	}
	wg.Wait()
}

// loadTLS reads --tls-cert and --tls-key and returns the HTTPS listener's
// configuration: TLS 1.2 or later, HTTP/2 and HTTP/1.1 offered by ALPN (the
// server adds "h2" and "http/1.1" to NextProtos). Each error names the flag
// to fix.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	certPEM, err := readPEM("tls-cert", certFile, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEM("tls-key", keyFile, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.HasPrefix(err.Error(), "x509:") {
			return nil, badFlag("tls-cert", certFile, fmt.Sprintf("not a valid certificate: %v", err))
		}
		if strings.Contains(err.Error(), "does not match") {
			return nil, badFlag("tls-key", keyFile, "is not the private key of --tls-cert "+certFile+" (give the key the certificate was made for)")
		}
		return nil, badFlag("tls-key", keyFile, fmt.Sprintf("unusable with --tls-cert %s: %v", certFile, err))
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// readPEM reads a PEM file given to --flag and checks that it holds a block
// whose type ends with kind ("CERTIFICATE", or "PRIVATE KEY" for PKCS#8,
// RSA and EC keys).
func readPEM(flag, file, kind string) ([]byte, error) {
	if file == "" {
		return nil, cli.Exit(fmt.Sprintf("--listen-tls needs --%s: give the PEM file of the %s (or --tls-cert-dir, or --acme-email for certificates from an ACME CA)", flag, strings.ToLower(kind)), 2)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		why := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			why = pe.Err.Error()
		}
		return nil, badFlag(flag, file, fmt.Sprintf("cannot read it (%s); give a readable PEM file (mount it into dlb's container)", why))
	}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, badFlag(flag, file, fmt.Sprintf("holds no PEM %s block (want -----BEGIN %s-----)", kind, kind))
		}
		if strings.HasSuffix(block.Type, kind) {
			return b, nil
		}
	}
}
