package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
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

// NewServer returns a server of the proxy's requests, with dlb's header
// and idle timeouts. Neither reads nor writes have a deadline: bodies and
// streams may take as long as they take.
func NewServer(h http.Handler, o ServerOptions) *http.Server {
	s := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          StdLog(o.Log, "http"),
		TLSConfig:         o.TLS,
	}
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

// ShutdownAll shuts the servers down at once, each waiting for its
// requests in flight until ctx ends; nil servers are skipped.
func ShutdownAll(ctx context.Context, log zerolog.Logger, servers ...*http.Server) {
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
