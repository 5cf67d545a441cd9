package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dlb-lb/dlb/listener"
	"github.com/urfave/cli/v2"
)

// defaultMaxHeaderBytes is --max-header-bytes' default: 32 KiB, as nginx
// (4 buffers of 8k) and HAProxy (a 16k buffer) allow about as much.
const defaultMaxHeaderBytes = 32 << 10

// checkLimits checks the timeouts, --max-conns and the admin API's guard;
// each error names the flag and what it takes.
func (cfg *config) checkLimits() error {
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"body-timeout", &cfg.proxy.BodyTimeout}, {"write-timeout", &cfg.proxy.WriteTimeout}, {"response-header-timeout", &cfg.proxy.ResponseHeaderTimeout}} {
		switch {
		case *f.d < 0:
			return badFlag(f.name, f.d.String(), "must not be negative (0 turns the timeout off)")
		case *f.d == 0:
			*f.d = -1 // proxy.Options: negative is off, zero the default
		}
	}
	switch {
	case cfg.maxConns == -1:
		cfg.maxConns = listener.DefaultMaxConns()
	case cfg.maxConns < 0:
		return badFlag("max-conns", fmt.Sprint(cfg.maxConns), "must be a number of connections (0: no limit)")
	}
	for h := range strings.SplitSeq(cfg.adminHosts, ",") {
		h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, ":/ []") {
			return badFlag("admin-hosts", cfg.adminHosts, fmt.Sprintf("%q is not a host name (give names without port or scheme, e.g. dlb,dlb.internal)", h))
		}
		cfg.guard.Hosts = append(cfg.guard.Hosts, h)
	}
	tok, err := adminToken(cfg.adminToken, cfg.adminTokenFile)
	cfg.guard.Token = tok
	return err
}

// adminToken reads --admin-token or --admin-token-file (not both).
func adminToken(tok, file string) (string, error) {
	if file == "" {
		if tok != "" && strings.TrimSpace(tok) == "" {
			return "", badFlag("admin-token", "(blank)", "is blank: give a token, or leave it unset")
		}
		return strings.TrimSpace(tok), nil
	}
	if tok != "" {
		return "", cli.Exit("--admin-token and --admin-token-file both set: give one of them", 2)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", badFlag("admin-token-file", file, "cannot read it; give a readable file (mount the secret into dlb's container)")
	}
	tok = strings.TrimSpace(string(b))
	if tok == "" {
		return "", badFlag("admin-token-file", file, "is empty: put the token in it")
	}
	return tok, nil
}
