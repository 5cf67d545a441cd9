package main

import (
	"context"
	"net"
	"net/http"

	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/rs/zerolog"
)

// checkDataPath checks --data-path.
func checkDataPath(cfg *config) error {
	switch cfg.dataPath {
	case proxy.DataPathStd:
	case proxy.DataPathFast:
		if cfg.proxy.UpstreamTransport == proxy.TransportStd {
			return badFlag("data-path", cfg.dataPath, "needs --upstream-transport fast (the fast path writes to the fast transport's connections); use --data-path std with --upstream-transport std")
		}
	default:
		return badFlag("data-path", cfg.dataPath, "must be fast or std")
	}
	return nil
}

// fastListener is --listen served by the fast data path: it accepts the
// connections and hands the rest to the std server.
type fastListener struct {
	srv *proxy.FastServer
	ln  net.Listener
}

// fastPath sets the fast data path up on ln when --data-path is fast, and
// returns it with the listener the std server serves instead of ln (its
// hand-offs); otherwise it returns nil and ln. The requests the keeper
// answers itself on plain HTTP (ACME challenges, redirects) go to the std
// server, whose handler the keeper wraps.
func fastPath(px *proxy.Proxy, std *http.Server, ln net.Listener, cfg *config, keeper *certs.Keeper) (*fastListener, net.Listener) {
	if cfg.dataPath != proxy.DataPathFast {
		return nil, ln
	}
	var intercept func(host, path string) bool
	if keeper != nil && keeper.ACMEOn() {
		intercept = keeper.Intercepts
	}
	fs := proxy.NewFastServer(px, std, cfg.parkIdleAfter, intercept)
	return &fastListener{srv: fs, ln: ln}, fs.Handoffs(ln.Addr())
}

// serve runs the fast server, sending its end to errc (nothing when f is
// nil or after a shutdown).
func (f *fastListener) serve(errc chan<- error) {
	if f == nil {
		return
	}
	go func() {
		if err := f.srv.Serve(f.ln); err != http.ErrServerClosed {
			errc <- err
		}
	}()
}

// shutdown stops the fast server as http.Server.Shutdown does; the std
// server, shut down after it, still takes its hand-offs meanwhile.
func (f *fastListener) shutdown(ctx context.Context, log zerolog.Logger) {
	if f == nil {
		return
	}
	if err := f.srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("requests still in flight on the fast data path at the shutdown timeout were cut")
	}
}
