package proxy

import (
	"net/http"
	"time"
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
	if ut.fast != nil { // h1transport.go
		return ut.fast
	}
	return ut.Transport
}

// CloseIdleConnections closes the replica's idle connections of either
// protocol.
func (ut *upstreamTransport) CloseIdleConnections() {
	if ut.fast != nil {
		ut.fast.closeIdle()
	}
	ut.Transport.CloseIdleConnections()
	ut.h2c.CloseIdleConnections()
}
