package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/dlb-lb/dlb/internal/h2"
	"github.com/dlb-lb/dlb/internal/poll"
)

// NewFastTLSServer returns a FastServer of HTTPS connections: each one's
// handshake is crypto/tls's, with std.TLSConfig (its certificates, its
// ALPN protocols, ACME's TLS-ALPN-01 challenges), on a goroutine of its
// own within the header timeout; a connection that speaks HTTP/1.1 (ALPN
// http/1.1, or none) then goes to an event loop, which serves it as a
// plain one, its *tls.Conn reading and writing the loop's raw socket
// (poll.NewTLSSock), and one that chose h2 is served on that goroutine by
// dlb's HTTP/2 server (internal/h2) with std's handler and limits. Serve
// std on Handoffs with Serve, not ServeTLS: the connections it gets are
// TLS already. Requests it forwards carry X-Forwarded-Proto: https, and
// its responses the Strict-Transport-Security value sts (if not nil)
// gives for their Host, as the keeper's HTTPS handler adds to std's.
func NewFastTLSServer(p *Proxy, std *http.Server, parkAfter time.Duration, sts func(host string) string) *FastServer {
	fs := NewFastServer(p, std, parkAfter, nil)
	fs.tls, fs.scheme, fs.sts = std.TLSConfig, "https", sts
	if fs.tls == nil {
		fs.tls = &tls.Config{}
	}
	fs.h2 = &h2.Server{Handler: std.Handler, MaxHeaderBytes: std.MaxHeaderBytes, IdleTimeout: fs.idleTimeout,
		PrefaceTimeout: fs.readHeaderTimeout, WriteTimeout: fs.writeTimeout, ErrorLog: std.ErrorLog}
	return fs
}

// serveH2 serves an HTTP/2 connection until it ends. Its requests' contexts
// carry what net/http's server puts there.
func (fs *FastServer) serveH2(c net.Conn) {
	ctx := context.WithValue(context.Background(), http.ServerContextKey, fs.std)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	fs.h2.ServeConn(ctx, c)
}

// secure returns c's socket, and where serving it starts: on a TLS server,
// a new connection is wrapped for its handshake (a goroutine's); a parked
// one woken is a *tls.Conn already.
func (fs *FastServer) secure(c net.Conn) (*poll.Sock, resumeKind) {
	if _, ok := c.(*tls.Conn); fs.tls == nil || ok {
		return poll.NewSock(c), resumeRead
	}
	return poll.NewTLSSock(c, fs.tls), resumeHandshake
}

// handshake runs the TLS handshake within the header timeout. ok is false
// when the connection is not for the fast path: after says whether it is
// closed (a failed handshake, an ACME TLS-ALPN-01 challenge, which ends
// with the handshake) or served over HTTP/2 (ALPN h2).
func (fc *fastConn) handshake() (after afterLoop, ok bool) {
	tc := fc.sock.Conn().(*tls.Conn)
	tc.SetDeadline(time.Now().Add(fc.fs.readHeaderTimeout))
	if err := tc.Handshake(); err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			// As net/http's server answers plain HTTP sent to HTTPS.
			re.Conn.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"))
		}
		if l := fc.fs.std.ErrorLog; l != nil {
			l.Printf("http: TLS handshake error from %s: %v", fc.remote, err)
		}
		return afterClose, false
	}
	// The deadlines fc remembers (none yet) are the connection's again.
	tc.SetDeadline(time.Time{})
	switch tc.ConnectionState().NegotiatedProtocol {
	case "h2":
		return afterH2, false
	case "acme-tls/1":
		return afterClose, false // the challenge was answered in the handshake (RFC 8737 section 3)
	}
	return 0, true
}

// looksLikeHTTP reports whether a TLS record header is the start of a
// plain HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// sts is the Strict-Transport-Security value for the request's Host ("":
// none).
func (fc *fastConn) sts() string {
	if fc.fs.sts == nil {
		return ""
	}
	return fc.fs.sts(str(fc.req.Host))
}

// withPending returns c with pending read from it first, for net/http. A
// TLS connection keeps its state: net/http's server sets Request.TLS only
// for a *tls.Conn, so the one serving hand-offs takes it from the
// ConnectionState method (see listener.NewServer).
func withPending(c net.Conn, pending []byte) net.Conn {
	tc, ok := c.(*tls.Conn)
	if ok && len(pending) == 0 {
		return c // net/http's HTTP/2 server takes only a *tls.Conn
	}
	pc := &prefixConn{Conn: c, pending: pending}
	if ok {
		return &tlsPrefixConn{prefixConn: pc, tc: tc}
	}
	return pc
}

// tlsPrefixConn is a TLS connection whose first reads return bytes already
// read from it.
type tlsPrefixConn struct {
	*prefixConn
	tc *tls.Conn
}

// ConnectionState is the TLS connection's.
func (c *tlsPrefixConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }
