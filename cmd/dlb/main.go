// Command dlb is a Docker-native load balancer: it follows the Docker Engine,
// and spreads HTTP traffic across every ready replica of labelled services.
package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/dlb-lb/dlb/accesslog"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run is main without the exit, for tests: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	// A flag that does not parse gets one line, not a page of help.
	app.OnUsageError = usageError
	for _, cmd := range app.Commands {
		cmd.OnUsageError = usageError
	}
	if err := app.Run(args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(stderr, "dlb:", msg)
			}
			return ec.ExitCode()
		}
		// Flag parse errors come as ExitCoders (usageError); anything else too
		// is one line, exit 2.
		fmt.Fprintln(stderr, "dlb:", err)
		return 2
	}
	return 0
}

func envs(name string) []string { return []string{"DLB_" + name} }

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "dlb",
		Usage:     "a Docker-native load balancer: follows containers, spreads HTTP across ready replicas",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		// Exit codes are run's business, not the library's.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: ":80", EnvVars: envs("LISTEN"), Usage: "address the proxy listens on"},
			&cli.StringFlag{Name: "listen-tls", EnvVars: envs("LISTEN_TLS"), Usage: "address of the HTTPS listener (HTTP/2 and HTTP/1.1, TLS 1.2+), e.g. :443; needs --tls-cert and --tls-key; empty: no HTTPS"},
			&cli.StringFlag{Name: "tls-cert", EnvVars: envs("TLS_CERT"), Usage: "PEM file with the certificate (chain) that --listen-tls serves"},
			&cli.StringFlag{Name: "tls-key", EnvVars: envs("TLS_KEY"), Usage: "PEM file with the private key of --tls-cert"},
			&cli.BoolFlag{Name: "h2c", EnvVars: envs("H2C"), Usage: "also speak HTTP/2 without TLS (prior knowledge, as gRPC clients do) on --listen"},
			&cli.StringFlag{Name: "trusted-proxies", EnvVars: envs("TRUSTED_PROXIES"), Usage: "comma-separated CIDRs or IPs of proxies in front of dlb whose X-Forwarded-For, -Proto and -Host are kept; anyone else's are replaced"},
			&cli.StringFlag{Name: "admin", Value: ":8080", EnvVars: envs("ADMIN"), Usage: "address of the admin API (health, pools, dashboard); empty disables it"},
			&cli.StringFlag{Name: "network", EnvVars: envs("NETWORK"), Usage: "Docker network whose container addresses dlb uses (exact name, or the Compose short name: appnet finds <project>_appnet)"},
			&cli.BoolFlag{Name: "exposed-by-default", EnvVars: envs("EXPOSED_BY_DEFAULT"), Usage: "balance every container, not only those labelled dlb.enable=true"},
			&cli.StringFlag{Name: "project", EnvVars: envs("PROJECT"), Usage: "only containers of this Compose project"},
			&cli.StringFlag{Name: "docker-host", EnvVars: envs("DOCKER_HOST"), Usage: "Docker Engine address (default: $DOCKER_HOST, else the local socket); tcp:// to a read-only socket proxy works"},
			&cli.IntFlag{Name: "retries", Value: 2, EnvVars: envs("RETRIES"), Usage: "how many other replicas a failed request may be retried on, when safe"},
			&cli.DurationFlag{Name: "queue-timeout", Value: 30 * time.Second, EnvVars: envs("QUEUE_TIMEOUT"), Usage: "how long a request waits for a replica of a service that has none ready, before 503"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second, EnvVars: envs("SHUTDOWN_TIMEOUT"), Usage: "on SIGTERM, how long requests in flight may take to finish"},
			&cli.IntFlag{Name: "max-header-bytes", Value: defaultMaxHeaderBytes, EnvVars: envs("MAX_HEADER_BYTES"), Usage: "largest request header accepted"},
			&cli.StringFlag{Name: "data-path", Value: proxy.DataPathFast, EnvVars: envs("DATA_PATH"), Usage: "how --listen serves plain HTTP/1.1: fast (dlb's own parser and forwarding loop, net/http for anything unusual) or std (net/http's server for every request; the default with --upstream-transport std)"},
			&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: envs("LOG_LEVEL"), Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "console", EnvVars: envs("LOG_FORMAT"), Usage: "console or json"},
			&cli.BoolFlag{Name: "access-log", EnvVars: envs("ACCESS_LOG"), Usage: "write one line per request to stdout (time, client, method, host, path, status, bytes, duration in ms, service, replica), in the --log-format"},
		}, append(limitFlags(), tuningFlags()...)...),
		Action: serve,
		Commands: []*cli.Command{
			lintCommand(),
			statusCommand(),
			{
				Name:  "version",
				Usage: "print dlb's version",
				Action: func(c *cli.Context) error {
					fmt.Fprintf(c.App.Writer, "dlb %s\n", version)
					return nil
				},
			},
		},
	}
	app.Flags = append(app.Flags, httpsFlags()...)
	return app
}

// config is the serve command's checked flags.
type config struct {
	listen, admin   string
	opts            discovery.Options
	dockerHost      string
	retries         int
	queueTimeout    time.Duration
	shutdownTimeout time.Duration
	maxHeaderBytes  int
	transport       string
	dataPath        string
	parkIdleAfter   time.Duration
	gc              gcSettings
	log             zerolog.Logger
	logFormat       string
	accessLog       bool
	pprof           bool
	limits          limits

	listenTLS      string
	certs          *certs.Options // the HTTPS listener's certificates
	tls            *tls.Config    // nil without --listen-tls; set by serve from certs
	h2c            bool
	trustedProxies proxy.TrustedProxies
}

func badFlag(name, value, want string) error {
	return cli.Exit(fmt.Sprintf("--%s %q: %s", name, value, want), 2)
}

// parseConfig checks every flag and says which one is wrong and what it takes.
func parseConfig(c *cli.Context) (*config, error) {
	if c.NArg() > 0 {
		return nil, cli.Exit(fmt.Sprintf("unexpected argument %q: dlb takes flags only (see dlb --help)", c.Args().First()), 2)
	}
	cfg := &config{
		listen: c.String("listen"), admin: c.String("admin"),
		opts: discovery.Options{
			Network: strings.TrimSpace(c.String("network")), ExposedByDefault: c.Bool("exposed-by-default"),
			Project: strings.TrimSpace(c.String("project")),
		},
		dockerHost: c.String("docker-host"), retries: c.Int("retries"),
		queueTimeout: c.Duration("queue-timeout"), shutdownTimeout: c.Duration("shutdown-timeout"),
		maxHeaderBytes: c.Int("max-header-bytes"),
		logFormat:      c.String("log-format"), accessLog: c.Bool("access-log"),
		listenTLS: c.String("listen-tls"), h2c: c.Bool("h2c"),
		transport: c.String("upstream-transport"), parkIdleAfter: c.Duration("park-idle-after"),
		dataPath: c.String("data-path"), pprof: c.Bool("pprof"),
	}
	if err := checkAddr(cfg.listen); err != nil {
		return nil, badFlag("listen", cfg.listen, err.Error())
	}
	if cfg.admin != "" {
		if err := checkAddr(cfg.admin); err != nil {
			return nil, badFlag("admin", cfg.admin, err.Error())
		}
	}
	if err := parseProtocolFlags(c, cfg); err != nil {
		return nil, err
	}
	if cfg.retries < 0 || cfg.retries > 10 {
		return nil, badFlag("retries", fmt.Sprint(cfg.retries), "must be 0 to 10")
	}
	if cfg.queueTimeout < 0 {
		return nil, badFlag("queue-timeout", cfg.queueTimeout.String(), "must not be negative (0 answers 503 at once)")
	}
	if cfg.shutdownTimeout < 0 {
		return nil, badFlag("shutdown-timeout", cfg.shutdownTimeout.String(), "must not be negative")
	}
	limits, err := parseLimits(c)
	if err != nil {
		return nil, err
	}
	cfg.limits = limits
	if cfg.maxHeaderBytes < 1024 {
		return nil, badFlag("max-header-bytes", fmt.Sprint(cfg.maxHeaderBytes), "must be at least 1024")
	}
	cfg.gc = gcSettings{percent: c.Int("gc-percent"), setPct: c.IsSet("gc-percent"), setLimit: c.IsSet("memory-limit")}
	if cfg.gc.percent < -1 {
		return nil, badFlag("gc-percent", fmt.Sprint(cfg.gc.percent), "must be -1 (off) or more")
	}
	limit, err := parseSize(c.String("memory-limit"))
	if err != nil {
		return nil, badFlag("memory-limit", c.String("memory-limit"), err.Error())
	}
	cfg.gc.limit = limit
	if cfg.parkIdleAfter < 0 {
		return nil, badFlag("park-idle-after", cfg.parkIdleAfter.String(), "must not be negative (0 never parks)")
	}
	if cfg.transport != proxy.TransportFast && cfg.transport != proxy.TransportStd {
		return nil, badFlag("upstream-transport", cfg.transport, "must be fast or std")
	}
	if cfg.transport == proxy.TransportStd && !c.IsSet("data-path") {
		cfg.dataPath = proxy.DataPathStd // the fast path needs the fast transport
	}
	if err := checkDataPath(cfg); err != nil {
		return nil, err
	}
	if h := cfg.dockerHost; h != "" && !strings.Contains(h, "://") {
		return nil, badFlag("docker-host", h, "not a Docker address: use unix:///var/run/docker.sock or tcp://host:2375")
	}
	level, lerr := zerolog.ParseLevel(c.String("log-level"))
	if lerr != nil || level < zerolog.DebugLevel || level > zerolog.ErrorLevel {
		return nil, badFlag("log-level", c.String("log-level"), "must be debug, info, warn or error")
	}
	var out io.Writer = c.App.ErrWriter
	switch c.String("log-format") {
	case "json":
	case "console":
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339, NoColor: !accesslog.IsTerminal(out)}
	default:
		return nil, badFlag("log-format", c.String("log-format"), "must be console or json")
	}
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" // milliseconds: dlb follows events in ms
	cfg.log = zerolog.New(out).Level(level).With().Timestamp().Logger()
	return cfg, nil
}

// checkAddr checks a host:port listen address.
func checkAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return errors.New("not a listen address: use host:port or :port, e.g. :80 or 127.0.0.1:8000")
	}
	if _, err := discovery.ParsePort(port); err != nil && port != "0" {
		return fmt.Errorf("port %q is not a port number (0-65535)", port)
	}
	return nil
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
