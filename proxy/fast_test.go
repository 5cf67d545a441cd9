package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// serveFront serves h on loopback: with the fast engine in front of px
// when fast is set (h is px), else with net/http alone (h wraps px).
// configure, when set, changes the http.Server before it starts.
func serveFront(t testing.TB, px *Proxy, h http.Handler, fast bool, configure ...func(*http.Server)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	for _, c := range configure {
		c(srv.Config)
	}
	if !fast {
		srv.Start()
		return srv
	}
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Config.IdleTimeout = 120 * time.Second
	fs := NewFastServer(px, srv.Config, 0, nil)
	ln := srv.Listener
	srv.Listener = fs.Handoffs(ln.Addr())
	go fs.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		fs.Shutdown(ctx)
	})
	srv.Start()
	return srv
}

var _ net.Listener = (*handoffListener)(nil)
