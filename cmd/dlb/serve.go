package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/dlb-lb/dlb/accesslog"
	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/fleet"
	"github.com/dlb-lb/dlb/listener"
	"github.com/dlb-lb/dlb/metrics"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/docker/docker/client"
	"github.com/urfave/cli/v2"
)

// serve is dlb's main command: it checks the flags, builds dlb's parts,
// opens its listeners, and runs until SIGTERM or SIGINT.
func serve(c *cli.Context, cfg *config) error {
	if err := cfg.check(c); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p, err := build(ctx, cfg, c.App.Writer)
	if err != nil {
		return err
	}
	defer p.docker.Close()
	s, err := listen(ctx, cfg, p)
	if err != nil {
		return err
	}
	return s.run(ctx, stop, cfg, p)
}

// parts are dlb's components, wired together but not yet listening.
type parts struct {
	docker  *client.Client
	fleet   *fleet.Fleet
	proxy   *proxy.Proxy
	metrics *metrics.Metrics // nil without --admin
	keeper  *certs.Keeper    // nil without --listen-tls
	sources sources          // the watcher and/or the Swarm source, as --provider says
	// plain and secure are the handlers of --listen and --listen-tls: the
	// proxy, wrapped by the keeper when there is one.
	plain, secure http.Handler
}

// build makes dlb's parts from cfg: the Docker client, metrics, the proxy,
// the certificate keeper, the fleet, and the sources that report to it.
// The access log, if on, goes to stdout.
func build(ctx context.Context, cfg *config, stdout io.Writer) (*parts, error) {
	log := cfg.log
	docker, err := discovery.NewClient(cfg.dockerHost)
	if err != nil {
		return nil, cli.Exit(err.Error(), 1)
	}
	p := &parts{docker: docker}
	router, pools := &proxy.Router{}, &balancer.Pools{}
	var obs []proxy.Observer
	if cfg.admin != "" {
		p.metrics = metrics.New(pools)
		obs = append(obs, p.metrics)
	}
	if cfg.accessLog {
		obs = append(obs, accesslog.New(stdout, cfg.logFormat))
	}
	po := cfg.proxy
	po.Observer = proxy.Observers(obs...)
	po.Log = log.With().Str("component", "proxy").Logger()
	po.Routed = func() bool { return p.fleet.Routed() } // p.fleet is set below, before serving
	p.proxy = proxy.New(router, po)
	p.keeper = newKeeper(cfg, p.metrics, log)
	var fobs []fleet.Observer
	if p.metrics != nil {
		fobs = append(fobs, p.metrics)
	}
	if p.keeper != nil {
		fobs = append(fobs, fleet.SitesTo(p.keeper.SetSites))
	}
	p.fleet = fleet.New(fleet.Options{Router: router, Proxy: p.proxy, Pools: pools,
		Observer: fleet.Observers(fobs...), Log: log.With().Str("component", "pools").Logger(), MaxInflight: cfg.limit})
	// In a container, replicas are reached over dlb's own networks; else
	// (or when dlb cannot tell which container it is) as the flags say.
	_ = discovery.FindSelf(ctx, docker, &cfg.discovery, log)
	p.sources = newSources(cfg, docker, p.fleet, log)
	p.plain, p.secure = p.proxy, p.proxy
	if p.keeper != nil {
		p.plain, p.secure = p.keeper.HTTPHandler(p.proxy), p.keeper.HTTPSHandler(p.proxy)
	}
	return p, nil
}

// servers are dlb's servers, each with the listener it serves.
type servers struct {
	proxy   *http.Server
	ln      net.Listener
	fast    *proxy.FastServer // nil with --data-path std
	fastLn  net.Listener
	tls     *http.Server // nil without --listen-tls
	tlsLn   net.Listener
	admin   *http.Server // nil with an empty --admin
	adminLn net.Listener
}

// listen opens --listen, --listen-tls and --admin, and starts the
// certificate keeper on them. An address in use is an error naming its
// flag.
func listen(ctx context.Context, cfg *config, p *parts) (s *servers, err error) {
	so := listener.ServerOptions{MaxHeaderBytes: cfg.maxHeaderBytes, H2C: cfg.h2c, Log: cfg.log}
	s = &servers{proxy: listener.NewServer(p.plain, so)}
	var refused func()
	if p.metrics != nil {
		refused = p.metrics.RefusedConnection
	}
	// The limit counts every client connection: plain and TLS, those the
	// fast data path serves and those it hands to net/http.
	limit := listener.NewConnLimit(cfg.maxConns, refused)
	var open []net.Listener
	defer func() {
		for _, ln := range open {
			if err != nil {
				ln.Close()
			}
		}
	}()
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("--listen %s: %v (is another process using the port?)", cfg.listen, err), 1)
	}
	open = append(open, ln)
	ln = limit.Listener(ln)
	if cfg.dataPath == proxy.DataPathFast {
		// The requests the keeper answers itself on plain HTTP (ACME
		// challenges, redirects) go to the std server, whose handler the
		// keeper wraps; so does anything unusual (the fast server's
		// hand-offs).
		var intercept func(host, path string) bool
		if p.keeper != nil && p.keeper.ACMEOn() {
			intercept = p.keeper.Intercepts
		}
		s.fast, s.fastLn = proxy.NewFastServer(p.proxy, s.proxy, cfg.parkIdleAfter, intercept), ln
		ln = s.fast.Handoffs(ln.Addr())
	}
	s.ln = listener.NewIdle(ln, cfg.parkIdleAfter)
	s.proxy.ConnState = listener.ConnState(s.ln, s.proxy.ConnState)
	if cfg.tls != nil {
		if s.tlsLn, err = net.Listen("tcp", cfg.listenTLS); err != nil {
			return nil, cli.Exit(fmt.Sprintf("--listen-tls %s: %v (is another process using the port?)", cfg.listenTLS, err), 1)
		}
		open = append(open, s.tlsLn)
		so.TLS = cfg.tls
		s.tls, s.tlsLn = listener.NewServer(p.secure, so), limit.Listener(s.tlsLn)
	}
	if p.keeper != nil {
		p.keeper.Start(ctx, s.ln.Addr().String(), s.tlsLn.Addr().String())
	}
	if cfg.admin == "" {
		return s, nil
	}
	if s.adminLn, err = net.Listen("tcp", cfg.admin); err != nil {
		return nil, cli.Exit(fmt.Sprintf("--admin %s: %v (is another process using the port? an empty --admin disables it)", cfg.admin, err), 1)
	}
	ao := admin.Options{Pprof: cfg.pprof, Guard: cfg.guard}
	if p.metrics != nil {
		ao.Metrics = p.metrics
	}
	if p.keeper != nil {
		ao.Certificates = func() any { return p.keeper.Status() }
	}
	h := admin.NewHandler(p.fleet, ao)
	s.admin = &http.Server{Handler: h, ReadHeaderTimeout: listener.ReadHeaderTimeout, IdleTimeout: listener.IdleTimeout, ErrorLog: listener.StdLog(cfg.log, "admin")}
	return s, nil
}

// run follows Docker and serves until ctx ends (then it shuts down
// gracefully, within --shutdown-timeout) or a server fails (then it calls
// stop and returns the error).
func (s *servers) run(ctx context.Context, stop context.CancelFunc, cfg *config, p *parts) error {
	log := cfg.log
	gcInfo := cfg.gc.Apply()
	log.Info().Str("version", version).Str("listen", s.ln.Addr().String()).Str("listen_tls", addrOf(s.tlsLn)).
		Bool("h2c", cfg.h2c).Str("admin", addrOf(s.adminLn)).Int64("max_conns", cfg.maxConns).Str("data_path", cfg.dataPath).
		Strs("providers", cfg.providers).Str("network", cfg.discovery.Network).Bool("exposed_by_default", cfg.discovery.ExposedByDefault).Str("gc", gcInfo).Msg("dlb starting")

	watchDone := p.sources.run(ctx)
	go discovery.WatchNetwork(ctx, p.docker, cfg.discovery.Network, 2*time.Second, log.With().Str("component", "discovery").Logger())
	errc := make(chan error, 4)
	go func() { errc <- s.proxy.Serve(s.ln) }()
	if s.fast != nil {
		go func() {
			if err := s.fast.Serve(s.fastLn); err != http.ErrServerClosed {
				errc <- err
			}
		}()
	}
	if s.tls != nil {
		go func() { errc <- s.tls.ServeTLS(s.tlsLn, "", "") }()
	}
	if s.admin != nil {
		go func() { errc <- s.admin.Serve(s.adminLn) }()
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		stop()
		return cli.Exit(fmt.Sprintf("server failed: %v", err), 1)
	}
	log.Info().Dur("timeout_ms", cfg.shutdownTimeout).Msg("shutting down: no new connections, finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if s.admin != nil {
		s.admin.Close()
	}
	if s.fast != nil {
		// As http.Server.Shutdown does; the std server, shut down after
		// it, still takes its hand-offs meanwhile.
		if err := s.fast.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("requests still in flight on the fast data path at the shutdown timeout were cut")
		}
	}
	listener.ShutdownAll(sctx, log, s.proxy, s.tls)
	<-watchDone
	log.Info().Msg("stopped")
	return nil
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
