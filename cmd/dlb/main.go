// Command dlb is a Docker-native load balancer: it follows the Docker Engine,
// and spreads HTTP traffic across every ready replica of labelled services.
package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dlb-lb/dlb/accesslog"
	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/internal/gc"
	"github.com/dlb-lb/dlb/listener"
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

// tuningCategory is the help section of the flags for performance work:
// their defaults suit almost everyone.
const tuningCategory = "TUNING (for performance work; the defaults suit most setups):"

// config is what the serve command's flags say. Each flag is bound to one
// field (Destination), in the Options of the package that uses it where
// there is one; check checks them all and derives the rest.
type config struct {
	listen, listenTLS, admin string
	h2c                      bool
	trustedProxies           string
	dockerHost               string
	discovery                discovery.Options // --network, --exposed-by-default, --project
	provider                 string            // --provider, as given; check splits it into providers
	// proxy holds --retries, --queue-timeout and the timeouts (as flags: 0 is off; check turns that into proxy's negative).
	proxy           proxy.Options
	shutdownTimeout time.Duration
	handoverSocket  string
	maxInflight     string         // --max-inflight, as given; check parses it into limit
	limit           balancer.Limit // derived by check
	maxHeaderBytes  int
	retired         map[string]*string // the retired flags' values, by name
	parkIdleAfter   time.Duration
	maxConns        int64
	clientShare     int // --max-conns-client-share, percent of maxConns
	adminHosts      string
	adminToken      string
	adminTokenFile  string
	gc              gc.Settings // --gc-percent; check adds --memory-limit
	memoryLimit     string
	pprof           bool
	logLevel        string
	logFormat       string
	accessLog       bool

	tlsCert, tlsKey, tlsCertDir string
	acmeCARoot, acmeChallenge   string
	// certs holds --acme-email, --acme-ca, --acme-profile, --acme-storage,
	// --acme-renew-check and --http-redirect; check adds the certificates.
	certs certs.Options

	// Derived by check.
	providers []string // --provider: docker, swarm
	log       zerolog.Logger
	guard     admin.Guard
	tls       *tls.Config // nil without --listen-tls; set by build from the keeper
}

// flags are the serve command's flags, bound to cfg.
func (cfg *config) flags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: ":80", Destination: &cfg.listen, EnvVars: envs("LISTEN"), Usage: "address the proxy listens on"},
		&cli.StringFlag{Name: "listen-tls", Destination: &cfg.listenTLS, EnvVars: envs("LISTEN_TLS"), Usage: "address of the HTTPS listener (HTTP/2 and HTTP/1.1, TLS 1.2+), e.g. :443; needs --tls-cert and --tls-key; empty: no HTTPS"},
		&cli.StringFlag{Name: "tls-cert", Destination: &cfg.tlsCert, EnvVars: envs("TLS_CERT"), Usage: "PEM file with the certificate (chain) that --listen-tls serves"},
		&cli.StringFlag{Name: "tls-key", Destination: &cfg.tlsKey, EnvVars: envs("TLS_KEY"), Usage: "PEM file with the private key of --tls-cert"},
		&cli.BoolFlag{Name: "h2c", Destination: &cfg.h2c, EnvVars: envs("H2C"), Usage: "also speak HTTP/2 without TLS (prior knowledge, as gRPC clients do) on --listen"},
		&cli.StringFlag{Name: "trusted-proxies", Destination: &cfg.trustedProxies, EnvVars: envs("TRUSTED_PROXIES"), Usage: "comma-separated CIDRs or IPs of proxies in front of dlb whose X-Forwarded-For, -Proto and -Host are kept; anyone else's are replaced"},
		&cli.StringFlag{Name: "admin", Value: ":8080", Destination: &cfg.admin, EnvVars: envs("ADMIN"), Usage: "address of the admin API (health, pools, dashboard); empty disables it"},
		&cli.StringFlag{Name: "network", Destination: &cfg.discovery.Network, EnvVars: envs("NETWORK"), Usage: "Docker network whose container addresses dlb uses (exact name, or the Compose short name: appnet finds <project>_appnet)"},
		&cli.BoolFlag{Name: "exposed-by-default", Destination: &cfg.discovery.ExposedByDefault, EnvVars: envs("EXPOSED_BY_DEFAULT"), Usage: "balance every container, not only those labelled dlb.enable=true"},
		&cli.StringFlag{Name: "project", Destination: &cfg.discovery.Project, EnvVars: envs("PROJECT"), Usage: "only containers of this Compose project"},
		&cli.StringFlag{Name: "provider", Value: discovery.ProviderDocker, Destination: &cfg.provider, EnvVars: envs("PROVIDER"), Usage: "where replicas come from, comma-separated: docker (containers of this engine), swarm (tasks of Docker Swarm services, from a manager), or docker,swarm"},
		&cli.StringFlag{Name: "docker-host", Destination: &cfg.dockerHost, EnvVars: envs("DOCKER_HOST"), Usage: "Docker Engine address (default: $DOCKER_HOST, else the local socket); tcp:// to a read-only socket proxy works"},
		&cli.IntFlag{Name: "retries", Value: 2, Destination: &cfg.proxy.Retries, EnvVars: envs("RETRIES"), Usage: "how many other replicas a failed request may be retried on, when safe"},
		&cli.DurationFlag{Name: "queue-timeout", Value: 30 * time.Second, Destination: &cfg.proxy.QueueTimeout, EnvVars: envs("QUEUE_TIMEOUT"), Usage: "how long a request waits in its service's queue for a replica with room (none ready, or all at their dlb.max_inflight), before 503; the dlb.queue.timeout label sets it per service"},
		&cli.StringFlag{Name: "max-inflight", Value: "0", Destination: &cfg.maxInflight, EnvVars: envs("MAX_INFLIGHT"), Usage: "most requests a replica has in flight through dlb, for replicas without the dlb.max_inflight label: a number (0: no limit) or auto (learned from its latency); more wait in the service's queue"},
		&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second, Destination: &cfg.shutdownTimeout, EnvVars: envs("SHUTDOWN_TIMEOUT"), Usage: "on SIGTERM, how long requests in flight may take to finish"},
		&cli.StringFlag{Name: "handover-socket", Destination: &cfg.handoverSocket, EnvVars: envs("HANDOVER_SOCKET"), Usage: "Unix socket path (in a volume the old and the new dlb share) over which a new dlb takes the listening sockets from the running one: an upgrade refuses and resets no connection; empty: off"},
		&cli.IntFlag{Name: "max-header-bytes", Value: listener.DefaultMaxHeaderBytes, Destination: &cfg.maxHeaderBytes, EnvVars: envs("MAX_HEADER_BYTES"), Usage: "largest request header accepted"},
		&cli.StringFlag{Name: "log-level", Value: "info", Destination: &cfg.logLevel, EnvVars: envs("LOG_LEVEL"), Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: "console", Destination: &cfg.logFormat, EnvVars: envs("LOG_FORMAT"), Usage: "console or json"},
		&cli.BoolFlag{Name: "access-log", Destination: &cfg.accessLog, EnvVars: envs("ACCESS_LOG"), Usage: "write one line per request to stdout (time, client, method, host, path, status, bytes, duration in ms, service, replica), in the --log-format"},

		// Timeouts and limits that keep slow or hostile clients from starving dlb, and closing the admin port.
		&cli.DurationFlag{Name: "body-timeout", Value: proxy.DefaultBodyTimeout, Destination: &cfg.proxy.BodyTimeout, EnvVars: envs("BODY_TIMEOUT"), Usage: "a request body that brings less than 1 KiB in this long is cut off with 408 (0: never)"},
		&cli.DurationFlag{Name: "write-timeout", Value: proxy.DefaultWriteTimeout, Destination: &cfg.proxy.WriteTimeout, EnvVars: envs("WRITE_TIMEOUT"), Usage: "a client that takes none of a response for this long is disconnected (0: never)"},
		&cli.DurationFlag{Name: "response-header-timeout", Value: proxy.DefaultResponseHeaderTimeout, Destination: &cfg.proxy.ResponseHeaderTimeout, EnvVars: envs("RESPONSE_HEADER_TIMEOUT"), Usage: "a replica that sends no response header this long after the request gets the request failed with 504 (0: never); the dlb.timeout.response_header label sets it per service"},
		&cli.Int64Flag{Name: "max-conns", Value: -1, Destination: &cfg.maxConns, DefaultText: "half the open-file limit less 256", EnvVars: envs("MAX_CONNS"), Usage: "most client connections open at once; more are closed at once and counted in dlb_refused_connections_total (0: no limit)"},
		&cli.IntFlag{Name: "max-conns-client-share", Value: listener.DefaultClientShare, Destination: &cfg.clientShare, EnvVars: envs("MAX_CONNS_CLIENT_SHARE"), Usage: "percent of --max-conns one client address may hold; its connections past that are closed at once and counted in dlb_refused_connections_total (100: no share)"},
		&cli.StringFlag{Name: "admin-hosts", Destination: &cfg.adminHosts, EnvVars: envs("ADMIN_HOSTS"), Usage: "comma-separated host names the admin API answers besides IP addresses and localhost, e.g. dlb for Prometheus inside Compose"},
		&cli.StringFlag{Name: "admin-token", Destination: &cfg.adminToken, EnvVars: envs("ADMIN_TOKEN"), Usage: "a token the admin API asks for (Authorization: Bearer), except on /healthz; dlb status takes it too"},
		&cli.StringFlag{Name: "admin-token-file", Destination: &cfg.adminTokenFile, EnvVars: envs("ADMIN_TOKEN_FILE"), Usage: "file holding --admin-token (a Docker secret, e.g. /run/secrets/dlb_admin_token)"},

		// The data path's and the runtime's knobs, in their own section of dlb --help.
		&cli.DurationFlag{Name: "park-idle-after", Category: tuningCategory, Value: listener.DefaultParkAfter, Destination: &cfg.parkIdleAfter, EnvVars: envs("PARK_IDLE_AFTER"), Usage: "a client connection idle this long between requests is parked: it keeps no goroutine nor buffer until its next request (Linux; 0 disables)"},
		&cli.IntFlag{Name: "gc-percent", Category: tuningCategory, Value: gc.DefaultPercent, Destination: &cfg.gc.Percent, EnvVars: envs("GC_PERCENT"), Usage: "garbage collector target, as GOGC: the heap may grow this many percent over the live data before a collection (-1 turns it off)"},
		&cli.StringFlag{Name: "memory-limit", Category: tuningCategory, Value: "0", Destination: &cfg.memoryLimit, EnvVars: envs("MEMORY_LIMIT"), Usage: "soft memory limit, as GOMEMLIMIT, e.g. 256MiB: the collector works harder near it (0: none)"},
		&cli.BoolFlag{Name: "pprof", Category: tuningCategory, Destination: &cfg.pprof, EnvVars: envs("PPROF"), Usage: "serve Go's profiler at /debug/pprof/ on the admin address (for performance work)"},

		// Automatic HTTPS and the certificate directory.
		&cli.StringFlag{Name: "tls-cert-dir", Destination: &cfg.tlsCertDir, EnvVars: envs("TLS_CERT_DIR"), Usage: "directory of NAME.crt and NAME.key pairs that --listen-tls serves to the names each certificate is for (re-read when its files change)"},
		&cli.StringFlag{Name: "acme-email", Destination: &cfg.certs.ACME.Email, EnvVars: envs("ACME_EMAIL"), Usage: "turns on automatic HTTPS (with --listen-tls): every exact dlb.host gets a certificate from the ACME CA, for this contact address"},
		&cli.StringFlag{Name: "acme-ca", Value: certs.LetsEncrypt, Destination: &cfg.certs.ACME.CA, EnvVars: envs("ACME_CA"), Usage: "the ACME CA's directory URL"},
		&cli.StringFlag{Name: "acme-ca-root", Destination: &cfg.acmeCARoot, EnvVars: envs("ACME_CA_ROOT"), Usage: "PEM file of a root to trust for the ACME CA's own HTTPS (a private or test CA, e.g. Pebble's); default: the system's roots"},
		&cli.StringFlag{Name: "acme-profile", Destination: &cfg.certs.ACME.Profile, EnvVars: envs("ACME_PROFILE"), Usage: "certificate profile to ask the CA for (e.g. Let's Encrypt's shortlived); default: the CA's default"},
		&cli.StringFlag{Name: "acme-challenge", Value: "all", Destination: &cfg.acmeChallenge, EnvVars: envs("ACME_CHALLENGE"), Usage: "how the CA checks that dlb serves a host: http-01 (on --listen, port 80), tls-alpn-01 (on --listen-tls, port 443), or all"},
		&cli.StringFlag{Name: "acme-storage", Value: certs.DefaultStorage, Destination: &cfg.certs.ACME.Storage, EnvVars: envs("ACME_STORAGE"), Usage: "directory the ACME account, keys and certificates are kept in (several dlb may share it: it is locked)"},
		&cli.DurationFlag{Name: "acme-renew-check", Value: certs.DefaultRenewCheck, Destination: &cfg.certs.ACME.RenewCheck, EnvVars: envs("ACME_RENEW_CHECK"), Usage: "how often certificates are checked for renewal (each is renewed in its last third, or when the CA suggests)"},
		&cli.BoolFlag{Name: "http-redirect", Value: true, Destination: &cfg.certs.Redirect, EnvVars: envs("HTTP_REDIRECT"), Usage: "redirect plain HTTP to HTTPS (308) for hosts that have a certificate from the ACME CA"},
	}
	cfg.retired = map[string]*string{}
	for _, r := range retiredFlags {
		v := new(string)
		cfg.retired[r.name] = v
		// No EnvVars: check reads the variable itself, to name it.
		flags = append(flags, &cli.StringFlag{Name: r.name, Hidden: true, Destination: v})
	}
	return flags
}

// retiredFlags are flags whose choice dlb no longer offers. Their one value
// that still describes dlb is accepted, with a warning; any other is
// refused, saying why.
var retiredFlags = []struct{ name, kept, why string }{
	{"data-path", "fast", "removed: dlb's own HTTP/1.1 engine serves every plain request (at about half the CPU per request of net/http's server) and hands HTTP/2, upgrades and anything unusual to net/http; drop the flag"},
	{"upstream-transport", "fast", "removed: dlb's own HTTP/1.1 transport reaches every replica (the engine writes to its connections) and hands upgrades, h2c replicas and large uploads to Go's http.Transport; drop the flag"},
}

// checkRetired refuses a retired flag's other values and returns a warning
// for each retired flag given its kept value, from the command line or its
// DLB_* variable.
func (cfg *config) checkRetired(c *cli.Context) (warnings []string, err error) {
	for _, r := range retiredFlags {
		name, value := "--"+r.name, *cfg.retired[r.name]
		if !c.IsSet(r.name) {
			env := envs(strings.ToUpper(strings.ReplaceAll(r.name, "-", "_")))[0]
			v, ok := os.LookupEnv(env)
			if !ok {
				continue
			}
			name, value = fmt.Sprintf("%s=%q (--%s)", env, v, r.name), v
		} else {
			name += fmt.Sprintf(" %q", value)
		}
		if value != r.kept {
			return nil, cli.Exit(name+": "+r.why, 2)
		}
		warnings = append(warnings, name+": retired and ignored, "+r.kept+" is all dlb does; drop it")
	}
	return warnings, nil
}

func newApp(stdout, stderr io.Writer) *cli.App {
	cfg := &config{}
	return &cli.App{
		Name:      "dlb",
		Usage:     "a Docker-native load balancer: follows containers, spreads HTTP across ready replicas",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		// Exit codes are run's business, not the library's.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags:          cfg.flags(),
		Action:         func(c *cli.Context) error { return serve(c, cfg) },
		Commands: []*cli.Command{
			lintCommand(),
			statusCommand(),
			rolloutCommand(),
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
}

func badFlag(name, value, want string) error {
	return cli.Exit(fmt.Sprintf("--%s %q: %s", name, value, want), 2)
}

// check checks every flag, says which one is wrong and what it takes, and
// derives what the flags' values stand for.
func (cfg *config) check(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("unexpected argument %q: dlb takes flags only (see dlb --help)", c.Args().First()), 2)
	}
	o := &cfg.discovery
	o.Network, o.Project = strings.TrimSpace(o.Network), strings.TrimSpace(o.Project)
	if err := listener.CheckAddr(cfg.listen); err != nil {
		return badFlag("listen", cfg.listen, err.Error())
	}
	if cfg.admin != "" {
		if err := listener.CheckAddr(cfg.admin); err != nil {
			return badFlag("admin", cfg.admin, err.Error())
		}
	}
	if err := cfg.checkProtocols(c); err != nil {
		return err
	}
	if r := cfg.proxy.Retries; r < 0 || r > 10 {
		return badFlag("retries", fmt.Sprint(r), "must be 0 to 10")
	}
	if d := cfg.proxy.QueueTimeout; d < 0 {
		return badFlag("queue-timeout", d.String(), "must not be negative (0 answers 503 at once)")
	}
	var err error
	if cfg.limit, err = balancer.ParseLimit(cfg.maxInflight); err != nil {
		return badFlag("max-inflight", cfg.maxInflight, strings.TrimPrefix(err.Error(), "not a limit: "))
	}
	if cfg.shutdownTimeout < 0 {
		return badFlag("shutdown-timeout", cfg.shutdownTimeout.String(), "must not be negative")
	}
	if err := checkHandoverSocket(cfg.handoverSocket); err != nil {
		return badFlag("handover-socket", cfg.handoverSocket, err.Error())
	}
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
	if s := cfg.clientShare; s < 1 || s > 100 {
		return badFlag("max-conns-client-share", fmt.Sprint(s), "must be a percent of --max-conns, 1 to 100 (100: no share)")
	}
	if cfg.guard.Hosts, err = admin.ParseHosts(cfg.adminHosts); err != nil {
		return badFlag("admin-hosts", cfg.adminHosts, err.Error())
	}
	if cfg.guard.Token, err = adminToken(cfg.adminToken, cfg.adminTokenFile); err != nil {
		return err
	}
	if cfg.maxHeaderBytes < 1024 {
		return badFlag("max-header-bytes", fmt.Sprint(cfg.maxHeaderBytes), "must be at least 1024")
	}
	cfg.gc.SetPercent, cfg.gc.SetLimit = c.IsSet("gc-percent"), c.IsSet("memory-limit")
	if err := cfg.gc.Check(); err != nil {
		return badFlag("gc-percent", fmt.Sprint(cfg.gc.Percent), err.Error())
	}
	if cfg.gc.Limit, err = gc.ParseLimit(cfg.memoryLimit); err != nil {
		return badFlag("memory-limit", cfg.memoryLimit, err.Error())
	}
	if cfg.parkIdleAfter < 0 {
		return badFlag("park-idle-after", cfg.parkIdleAfter.String(), "must not be negative (0 never parks)")
	}
	warnings, err := cfg.checkRetired(c)
	if err != nil {
		return err
	}
	if cfg.providers, err = discovery.ParseProviders(cfg.provider); err != nil {
		return badFlag("provider", cfg.provider, err.Error())
	}
	if h := cfg.dockerHost; h != "" && !strings.Contains(h, "://") {
		return badFlag("docker-host", h, "not a Docker address: use unix:///var/run/docker.sock or tcp://host:2375")
	}
	level, lerr := zerolog.ParseLevel(cfg.logLevel)
	if lerr != nil || level < zerolog.DebugLevel || level > zerolog.ErrorLevel {
		return badFlag("log-level", cfg.logLevel, "must be debug, info, warn or error")
	}
	var out io.Writer = c.App.ErrWriter
	switch cfg.logFormat {
	case "json":
	case "console":
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339, NoColor: !accesslog.IsTerminal(out)}
	default:
		return badFlag("log-format", cfg.logFormat, "must be console or json")
	}
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" // milliseconds: dlb follows events in ms
	cfg.log = zerolog.New(out).Level(level).With().Timestamp().Logger()
	for _, w := range warnings {
		cfg.log.Warn().Msg(w)
	}
	return nil
}
