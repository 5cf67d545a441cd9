package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// The timeouts of every server dlb runs (the proxy's, over TLS or not, and
// the admin API's): how long a client may take to send a request's header,
// and how long a kept-alive connection may idle between requests.
const (
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 120 * time.Second
)

// DefaultMaxHeaderBytes is the largest request header a proxy server
// accepts by default: 32 KiB, as nginx (4 buffers of 8k) and HAProxy (a
// 16k buffer) allow about as much.
const DefaultMaxHeaderBytes = 32 << 10

// ServerOptions are a proxy server's: the zero value serves HTTP/1.1 with
// net/http's header limit.
type ServerOptions struct {
	// MaxHeaderBytes is the largest request header accepted.
	MaxHeaderBytes int
	// TLS, when set, serves HTTPS (HTTP/2 and HTTP/1.1).
	TLS *tls.Config
	// H2C, without TLS, also speaks HTTP/2 with prior knowledge.
	H2C bool
	// Log gets the server's errors (TLS handshakes, bad requests, panics
	// in handlers) at warn level.
	Log zerolog.Logger
}

// Server is a proxy server: net/http's, and the count of its connections
// that ShutdownAll waits for.
type Server struct {
	*http.Server
	busy busyConns
}

// NewServer returns a server of the proxy's requests, with dlb's header
// and idle timeouts. Neither reads nor writes have a deadline: bodies and
// streams may take as long as they take. A ConnState set later must call
// the one it replaces (ShutdownAll counts connections with it).
func NewServer(h http.Handler, o ServerOptions) *Server {
	s := &Server{Server: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          StdLog(o.Log, "http"),
		TLSConfig:         o.TLS,
	}}
	if o.TLS != nil {
		s.TLSConfig = withHTTPProtocols(o.TLS)
		s.ConnContext = tlsStateContext
		s.Handler = tlsStateHandler{h}
	}
	s.busy.conns = map[net.Conn]connSince{}
	s.ConnState = s.busy.track
	if o.TLS == nil && o.H2C {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetHTTP1(true)
		s.Protocols.SetUnencryptedHTTP2(true)
	}
	return s
}

// StdLog returns a standard library logger (for net/http's servers and
// httputil.ReverseProxy, which log through one) that writes each line to l
// at warn level with the component, so --log-format json stays JSON.
func StdLog(l zerolog.Logger, component string) *log.Logger {
	return log.New(stdWriter{l, component}, "", 0)
}

type stdWriter struct {
	l         zerolog.Logger
	component string
}

func (w stdWriter) Write(p []byte) (int, error) {
	w.l.Warn().Str("component", w.component).Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// busyConns are a server's HTTP/1 connections that are new (accepted, no
// request yet: a TLS handshake, or a request on its way) or active (a
// request being read or answered).
type busyConns struct {
	mu    sync.Mutex
	conns map[net.Conn]connSince
}

type connSince struct {
	state http.ConnState
	since time.Time
}

func (b *busyConns) track(c net.Conn, s http.ConnState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s == http.StateNew || s == http.StateActive {
		b.conns[c] = connSince{s, time.Now()}
		return
	}
	delete(b.conns, c)
}

// staleNew is how long a new connection may go without a request before
// ShutdownAll stops waiting for it. (HTTP/2 connections never report
// active to ConnState, and http.Server.Shutdown sees to them itself.)
const staleNew = 2 * time.Second

// count returns how many connections ShutdownAll waits for.
func (b *busyConns) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, cs := range b.conns {
		if cs.state == http.StateActive || time.Since(cs.since) < staleNew {
			n++
		}
	}
	return n
}

// StopKeepAlives makes the servers close their idle connections, and each
// busy one after its response (with Connection: close), while they still
// serve: the first step of ShutdownAll, to take early when something else
// shuts down first. Nil servers are skipped.
func StopKeepAlives(servers ...*Server) {
	for _, s := range servers {
		if s != nil {
			s.SetKeepAlivesEnabled(false)
		}
	}
}

// ShutdownAll shuts the servers down at once, each answering the requests
// of its connections in flight until ctx ends; nil servers are skipped.
// It stops their keep-alives, waits until the connections that are new
// (a TLS handshake, a request on its way) or busy have been answered, and
// only then calls http.Server.Shutdown, which closes the rest: a request a
// server reads once Shutdown has begun is dropped unanswered (net/http
// closes the connection), so none may be left on its way then.
func ShutdownAll(ctx context.Context, log zerolog.Logger, servers ...*Server) {
	StopKeepAlives(servers...)
	var wg sync.WaitGroup
	for _, s := range servers {
		if s == nil {
			continue
		}
		wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for s.busy.count() > 0 && ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
			if err := s.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Warn().Err(err).Msg("requests still in flight at the shutdown timeout were cut")
			}
		})
	}
	wg.Wait()
}

// CheckAddr checks a host:port listen address; the error says what to give.
func CheckAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return errors.New("not a listen address: use host:port or :port, e.g. :80 or 127.0.0.1:8000")
	}
	if p, err := strconv.Atoi(strings.TrimSpace(port)); port != "0" && (err != nil || p < 1 || p > 65535) {
		return fmt.Errorf("port %q is not a port number (0-65535)", port)
	}
	return nil
}

// DefaultParkAfter is how long a client connection idles between requests
// before it is parked, by default (--park-idle-after).
const DefaultParkAfter = time.Second

// withHTTPProtocols returns c with h2 and http/1.1 among its ALPN
// protocols (as http.Server.ServeTLS adds them), for a server that gets
// connections handshaken by another: serving them with Serve, it sets up
// HTTP/2 only when the config names h2.
func withHTTPProtocols(c *tls.Config) *tls.Config {
	c = c.Clone()
	var protos []string
	for _, p := range []string{"h2", "http/1.1"} {
		if !slices.Contains(c.NextProtos, p) {
			protos = append(protos, p)
		}
	}
	c.NextProtos = append(protos, c.NextProtos...)
	return c
}

// tlsStateKey is the context key of a handed-over TLS connection's state.
type tlsStateKey struct{}

// tlsStateContext keeps the state of a TLS connection that reaches the
// server wrapped (handed over after its handshake, with bytes already read
// from it): net/http sets Request.TLS only for a *tls.Conn.
func tlsStateContext(ctx context.Context, c net.Conn) context.Context {
	if _, ok := c.(*tls.Conn); ok {
		return ctx
	}
	if sc, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := sc.ConnectionState()
		return context.WithValue(ctx, tlsStateKey{}, &st)
	}
	return ctx
}

// tlsStateHandler sets Request.TLS from tlsStateContext's state, so that
// what looks at it (X-Forwarded-Proto, Secure cookies, sticky routes) sees
// the request came over TLS.
type tlsStateHandler struct{ next http.Handler }

func (h tlsStateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r = r.WithContext(r.Context()) // a copy: a handler leaves the server's request as it is
			r.TLS = st
		}
	}
	h.next.ServeHTTP(w, r)
}
