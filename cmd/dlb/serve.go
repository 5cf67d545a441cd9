package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dlb-lb/dlb/accesslog"
	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/fleet"
	"github.com/dlb-lb/dlb/handover"
	"github.com/dlb-lb/dlb/listener"
	"github.com/dlb-lb/dlb/metrics"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/docker/docker/client"
	"github.com/urfave/cli/v2"
)

// serve is dlb's main command: it checks the flags, builds dlb's parts,
// follows Docker, opens its listeners (or takes them over from the dlb on
// --handover-socket), and runs until SIGTERM or SIGINT, or until it hands
// its listeners over to a new dlb.
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
	// The sources follow Docker until the servers have finished: after
	// a hand-over, the requests in flight still see replicas go.
	watchCtx, unwatch := context.WithCancel(ctx)
	watchDone := p.sources.run(watchCtx)
	defer func() { unwatch(); <-watchDone }()
	pred, err := findPredecessor(ctx, cfg, p.fleet)
	if err != nil {
		return err
	}
	s, err := listen(ctx, cfg, p, pred)
	if pred != nil && err != nil {
		pred.Close()
	}
	if err != nil {
		return err
	}
	return s.run(ctx, stop, cfg, p, pred)
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
	proxy     *listener.Server
	ln        net.Listener
	fast      *proxy.FastServer
	fastLn    net.Listener
	tls       *listener.Server // nil without --listen-tls
	tlsLn     net.Listener
	fastTLS   *proxy.FastServer // nil without --listen-tls
	fastTLSLn net.Listener
	admin     *http.Server // nil with an empty --admin
	adminLn   net.Listener
	// sockets are the listening sockets under the listeners above, which
	// a new dlb may take over.
	sockets []handover.Socket
	// serving is true while dlb accepts on the sockets; released once it
	// has handed them over.
	serving, released atomic.Bool
}

// listen opens --listen, --listen-tls and --admin (taking pred's sockets,
// when pred is not nil), and starts the certificate keeper on them. An
// address in use is an error naming its flag.
func listen(ctx context.Context, cfg *config, p *parts, pred *handover.Predecessor) (s *servers, err error) {
	so := listener.ServerOptions{MaxHeaderBytes: cfg.maxHeaderBytes, H2C: cfg.h2c, Log: cfg.log}
	s = &servers{proxy: listener.NewServer(p.plain, so)}
	var refused func()
	if p.metrics != nil {
		refused = p.metrics.RefusedConnection
	}
	// The limit counts every client connection: plain and TLS, those the
	// fast data path serves and those it hands to net/http.
	limit := listener.NewConnLimit(cfg.maxConns, listener.ClientShare(cfg.maxConns, cfg.clientShare), refused)
	o := &opener{pred: pred, log: cfg.log.With().Str("component", "handover").Logger()}
	defer func() {
		if err != nil {
			o.close()
		}
	}()
	ln, err := o.open("listen", cfg.listen, "is another process using the port?")
	if err != nil {
		return nil, err
	}
	ln = limit.Listener(ln)
	// The requests the keeper answers itself on plain HTTP (ACME
	// challenges, redirects) go to the std server, whose handler the
	// keeper wraps; so does anything unusual (the fast server's
	// hand-offs).
	var intercept func(host, path string) bool
	if p.keeper != nil && p.keeper.ACMEOn() {
		intercept = p.keeper.Intercepts
	}
	s.fast, s.fastLn = proxy.NewFastServer(p.proxy, s.proxy.Server, cfg.parkIdleAfter, intercept), ln
	ln = s.fast.Handoffs(ln.Addr())
	s.ln = listener.NewIdle(ln, cfg.parkIdleAfter)
	s.proxy.ConnState = listener.ConnState(s.ln, s.proxy.ConnState)
	if cfg.tls != nil {
		if s.tlsLn, err = o.open("listen-tls", cfg.listenTLS, "is another process using the port?"); err != nil {
			return nil, err
		}
		so.TLS = cfg.tls
		s.tls, s.tlsLn = listener.NewServer(p.secure, so), limit.Listener(s.tlsLn)
		// HTTP/1.1 over TLS on the fast engine; HTTP/2 and anything
		// unusual go to the TLS server, handshaken.
		var sts func(host string) string
		if p.keeper != nil {
			sts = p.keeper.HSTS
		}
		s.fastTLS, s.fastTLSLn = proxy.NewFastTLSServer(p.proxy, s.tls.Server, cfg.parkIdleAfter, sts), s.tlsLn
		s.tlsLn = s.fastTLS.Handoffs(s.tlsLn.Addr())
	}
	if p.keeper != nil {
		p.keeper.Start(ctx, s.ln.Addr().String(), s.tlsLn.Addr().String())
	}
	if cfg.admin == "" {
		s.sockets = o.sockets
		return s, nil
	}
	if s.adminLn, err = o.open("admin", cfg.admin, "is another process using the port? an empty --admin disables it"); err != nil {
		return nil, err
	}
	s.sockets = o.sockets
	ao := admin.Options{Pprof: cfg.pprof, Guard: cfg.guard, Self: s.self(selfID(cfg.discovery))}
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

// run serves until ctx ends (then it shuts down gracefully, within
// --shutdown-timeout), a new dlb takes its sockets over (then it finishes
// the requests in flight the same way), or a server fails (then it calls
// stop and returns the error). With pred, it tells pred once it serves.
func (s *servers) run(ctx context.Context, stop context.CancelFunc, cfg *config, p *parts, pred *handover.Predecessor) error {
	log := cfg.log
	gcInfo := cfg.gc.Apply()
	log.Info().Str("version", version).Str("listen", s.ln.Addr().String()).Str("listen_tls", addrOf(s.tlsLn)).
		Bool("h2c", cfg.h2c).Str("admin", addrOf(s.adminLn)).Int64("max_conns", cfg.maxConns).
		Strs("providers", cfg.providers).Str("network", cfg.discovery.Network).Bool("exposed_by_default", cfg.discovery.ExposedByDefault).Str("gc", gcInfo).Msg("dlb starting")

	go discovery.WatchNetwork(ctx, p.docker, cfg.discovery.Network, 2*time.Second, log.With().Str("component", "discovery").Logger())
	errc := make(chan error, 5) // one per server goroutine
	go func() { errc <- s.proxy.Serve(s.ln) }()
	go func() {
		if err := s.fast.Serve(s.fastLn); err != http.ErrServerClosed {
			errc <- err
		}
	}()
	if s.tls != nil {
		// The TLS server serves what the fast one hands it, handshaken.
		go func() { errc <- s.tls.Serve(s.tlsLn) }()
		go func() {
			if err := s.fastTLS.Serve(s.fastTLSLn); err != http.ErrServerClosed {
				errc <- err
			}
		}()
	}
	if s.admin != nil {
		go func() { errc <- s.admin.Serve(s.adminLn) }()
	}
	if pred != nil {
		hl := log.With().Str("component", "handover").Int("old_pid", pred.PID).Logger()
		if left := pred.Untaken(); len(left) > 0 {
			hl.Warn().Strs("sockets", left).Msg("hand-over: the old dlb listens where this one does not; those sockets close when it leaves")
		}
		if err := pred.Serving(); err != nil {
			hl.Warn().Err(err).Msg("hand-over: serving, but the old dlb did not say it stopped accepting; it stops when it is stopped")
		} else {
			hl.Info().Msg("hand-over: serving on the old dlb's sockets; it finishes its requests in flight and stops")
		}
	}
	// /api/self says serving once the old dlb, if any, has let go: the
	// rollout stops it then, not while it still hands over.
	s.serving.Store(true)
	handedOver := s.handOver(ctx, cfg)

	select {
	case <-ctx.Done():
		log.Info().Dur("timeout_ms", cfg.shutdownTimeout).Msg("shutting down: no new connections, finishing requests in flight")
	case <-handedOver:
		log.Info().Dur("timeout_ms", cfg.shutdownTimeout).Msg("handed over to a new dlb: no new connections, finishing requests in flight")
	case err := <-errc:
		if !s.released.Load() { // released: the new dlb has the sockets
			stop()
			return cli.Exit(fmt.Sprintf("server failed: %v", err), 1)
		}
		<-handedOver
		log.Info().Dur("timeout_ms", cfg.shutdownTimeout).Msg("handed over to a new dlb: no new connections, finishing requests in flight")
	}
	s.shutdown(cfg)
	if !s.released.Load() {
		log.Info().Msg("stopped")
		return nil
	}
	if ctx.Err() == nil && restartsOnExit(cfg.discovery.SelfRestart) {
		log.Info().Str("restart", cfg.discovery.SelfRestart).Msg("handed over and finished: waiting to be stopped (exiting would have Docker start this container again)")
		<-ctx.Done()
	}
	log.Info().Msg("stopped after the hand-over")
	return nil
}

// shutdown stops accepting and finishes the requests in flight, within
// --shutdown-timeout; idle connections are closed, and the last response
// on each busy one says Connection: close.
func (s *servers) shutdown(cfg *config) {
	log := cfg.log
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if s.admin != nil {
		s.admin.Close()
	}
	listener.StopKeepAlives(s.proxy, s.tls)
	// As http.Server.Shutdown does; the std servers, shut down after
	// them, still take their hand-offs meanwhile.
	var wg sync.WaitGroup
	for _, fs := range []*proxy.FastServer{s.fast, s.fastTLS} {
		if fs != nil {
			wg.Go(func() {
				if err := fs.Shutdown(sctx); err != nil {
					log.Warn().Err(err).Msg("requests still in flight on the fast data path at the shutdown timeout were cut")
				}
			})
		}
	}
	wg.Wait()
	listener.ShutdownAll(sctx, log, s.proxy, s.tls)
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
