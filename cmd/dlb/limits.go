package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/urfave/cli/v2"
)

// defaultMaxHeaderBytes is --max-header-bytes' default: 32 KiB, as nginx
// (4 buffers of 8k) and HAProxy (a 16k buffer) allow about as much.
const defaultMaxHeaderBytes = 32 << 10

// limitFlags are the flags of the timeouts and limits that keep slow or
// hostile clients from starving dlb, and of closing the admin port.
func limitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "body-timeout", Value: proxy.DefaultBodyTimeout, EnvVars: envs("BODY_TIMEOUT"), Usage: "a request body that brings less than 1 KiB in this long is cut off with 408 (0: never)"},
		&cli.DurationFlag{Name: "write-timeout", Value: proxy.DefaultWriteTimeout, EnvVars: envs("WRITE_TIMEOUT"), Usage: "a client that takes none of a response for this long is disconnected (0: never)"},
		&cli.DurationFlag{Name: "response-header-timeout", Value: proxy.DefaultResponseHeaderTimeout, EnvVars: envs("RESPONSE_HEADER_TIMEOUT"), Usage: "a replica that sends no response header this long after the request gets the request failed with 504 (0: never); the dlb.timeout.response_header label sets it per service"},
		&cli.Int64Flag{Name: "max-conns", Value: -1, DefaultText: "half the open-file limit less 256", EnvVars: envs("MAX_CONNS"), Usage: "most client connections open at once; more are closed at once and counted in dlb_refused_connections_total (0: no limit)"},
		&cli.StringFlag{Name: "admin-hosts", EnvVars: envs("ADMIN_HOSTS"), Usage: "comma-separated host names the admin API answers besides IP addresses and localhost, e.g. dlb for Prometheus inside Compose"},
		&cli.StringFlag{Name: "admin-token", EnvVars: envs("ADMIN_TOKEN"), Usage: "a token the admin API asks for (Authorization: Bearer), except on /healthz; dlb status takes it too"},
		&cli.StringFlag{Name: "admin-token-file", EnvVars: envs("ADMIN_TOKEN_FILE"), Usage: "file holding --admin-token (a Docker secret, e.g. /run/secrets/dlb_admin_token)"},
	}
}

// limits are the checked values of limitFlags.
type limits struct {
	bodyTimeout, writeTimeout, headerTimeout time.Duration
	maxConns                                 int64
	guard                                    admin.Guard
}

// parseLimits checks limitFlags; each error names the flag and what it takes.
func parseLimits(c *cli.Context) (limits, error) {
	l := limits{
		bodyTimeout: c.Duration("body-timeout"), writeTimeout: c.Duration("write-timeout"),
		headerTimeout: c.Duration("response-header-timeout"), maxConns: c.Int64("max-conns"),
	}
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"body-timeout", &l.bodyTimeout}, {"write-timeout", &l.writeTimeout}, {"response-header-timeout", &l.headerTimeout}} {
		switch {
		case *f.d < 0:
			return l, badFlag(f.name, f.d.String(), "must not be negative (0 turns the timeout off)")
		case *f.d == 0:
			*f.d = -1 // proxy.Options: negative is off, zero the default
		}
	}
	switch {
	case l.maxConns == -1:
		l.maxConns = proxy.DefaultMaxConns()
	case l.maxConns < 0:
		return l, badFlag("max-conns", fmt.Sprint(l.maxConns), "must be a number of connections (0: no limit)")
	}
	for h := range strings.SplitSeq(c.String("admin-hosts"), ",") {
		h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, ":/ []") {
			return l, badFlag("admin-hosts", c.String("admin-hosts"), fmt.Sprintf("%q is not a host name (give names without port or scheme, e.g. dlb,dlb.internal)", h))
		}
		l.guard.Hosts = append(l.guard.Hosts, h)
	}
	tok, err := adminToken(c)
	if err != nil {
		return l, err
	}
	l.guard.Token = tok
	return l, nil
}

// adminToken reads --admin-token or --admin-token-file (not both).
func adminToken(c *cli.Context) (string, error) {
	tok, file := c.String("admin-token"), c.String("admin-token-file")
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
