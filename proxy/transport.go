package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"syscall"
	"time"

	"github.com/dlb-lb/dlb/internal/poll"
)

// SchemeH2C is the Route.Scheme (label dlb.scheme=h2c) of replicas that
// speak HTTP/2 without TLS, with prior knowledge (RFC 9113 section 3.3), as
// gRPC servers do.
const SchemeH2C = "h2c"

// newH2CTransport returns a transport like t (same dialer, same limits) that
// speaks HTTP/2 in clear text to every replica instead of HTTP/1.1. One
// connection carries many requests at once; pings find a dead one.
func newH2CTransport(t *http.Transport) *http.Transport {
	h := t.Clone()
	h.TLSNextProto = nil // t's empty map turns HTTP/2 off; Protocols decides here
	h.Protocols = new(http.Protocols)
	h.Protocols.SetUnencryptedHTTP2(true)
	h.HTTP2 = &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
	return h
}

// forScheme returns the replica's transport for a route's scheme.
func (ut *upstreamTransport) forScheme(scheme string) http.RoundTripper {
	if scheme == SchemeH2C {
		return ut.h2c
	}
	return ut.fast // h1transport.go
}

// CloseIdleConnections closes the replica's idle connections of either
// protocol.
func (ut *upstreamTransport) CloseIdleConnections() {
	ut.fast.closeIdle()
	ut.Transport.CloseIdleConnections()
	ut.h2c.CloseIdleConnections()
}

// stdTransport is net/http's Transport with two guards for a kept-alive
// connection the upstream closed while it sat idle (an idle timeout shorter
// than dlb's, as Node.js's 5 s). The Transport learns of such a close only
// when its reader goroutine runs, and by itself resends only GETs and the
// like:
//   - before a request is written on a connection that sat idle, one
//     non-blocking peek tells whether the upstream closed it; if so it is
//     closed here, nothing is written, and the Transport takes another
//     connection (rewinding a body with GetBody, which the proxy sets for
//     the small bodies it keeps);
//   - when the Transport's reader saw the close first, it fails the request
//     with its "server closed idle connection" error, which it gives only
//     when the close came before the request was written: that is a
//     staleConnError the upstream never saw, which the driver (tries.go)
//     sends again whatever its method; a reused connection that ended
//     (EOF, reset) with no answer after the request went out is one the
//     upstream may have seen, sent again under the same rule as the fast
//     transport's.
type stdTransport struct{ *http.Transport }

// errServerClosedIdle is the text of net/http's unexported error for a
// connection closed by the server before the request was written on it.
const errServerClosedIdle = "http: server closed idle connection"

func (t stdTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A new trace each time: WithClientTrace merges into it the one
	// ReverseProxy already set for 1xx responses.
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		reused = info.Reused
		dropIfClosed(info)
	}}
	resp, err := t.Transport.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	switch {
	case err == nil || req.Context().Err() != nil:
	case err.Error() == errServerClosedIdle:
		err = &staleConnError{err: err, unsent: true}
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		// The connection ended before any answer (the Transport's
		// error for an answer cut short is another).
		err = stale(err, reused, 0)
	}
	return resp, err
}

// dropIfClosed closes a connection taken from the idle pool that the
// upstream closed meanwhile, before the Transport writes on it.
func dropIfClosed(info httptrace.GotConnInfo) {
	if !info.WasIdle {
		return
	}
	if !poll.Alive(info.Conn) {
		info.Conn.Close()
	}
}
