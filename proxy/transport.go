package proxy

import (
	"net/http"
	"net/http/httptrace"
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
	if ut.fast != nil { // h1transport.go
		return ut.fast
	}
	return stdTransport{ut.Transport}
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

// stdTransport is net/http's Transport with what the fast transport does
// for a kept-alive connection the upstream closed while it sat idle (an idle
// timeout shorter than dlb's, as Node.js's 5 s): the request goes out again
// on a new connection, whatever its method, since the upstream never saw it.
// The Transport learns of such a close only when its reader goroutine runs,
// and by itself resends only GETs and the like. Two guards:
//   - before a request is written on a connection that sat idle, one
//     non-blocking peek tells whether the upstream closed it; if so it is
//     closed here, nothing is written, and the Transport resends the
//     request itself (a body is rewound with GetBody, which the proxy sets
//     for the small bodies it keeps);
//   - when the Transport's reader saw the close first, it fails the request
//     with its "server closed idle connection" error, which it gives only
//     when the close came before the request was written: it is sent again
//     here.
type stdTransport struct{ *http.Transport }

// errServerClosedIdle is the text of net/http's unexported error for a
// connection closed by the server before the request was written on it.
const errServerClosedIdle = "http: server closed idle connection"

func (t stdTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for tries := 0; ; tries++ {
		// A new trace each time: WithClientTrace merges into it the one
		// ReverseProxy already set for 1xx responses.
		trace := &httptrace.ClientTrace{GotConn: dropIfClosed}
		resp, err := t.Transport.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		if err == nil || err.Error() != errServerClosedIdle || tries > t.MaxIdleConnsPerHost || req.Context().Err() != nil {
			return resp, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			req = req.WithContext(req.Context())
			req.Body = body
		}
	}
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

// CheckDataPath says what is wrong with a choice of data path (DataPathFast
// or DataPathStd) and upstream transport (TransportFast or TransportStd),
// if anything: the fast data path writes to the fast transport's
// connections.
func CheckDataPath(dataPath, transport string) error {
	if transport != TransportFast && transport != TransportStd {
		return &ChoiceError{"transport", transport, "must be fast or std"}
	}
	switch dataPath {
	case DataPathStd:
	case DataPathFast:
		if transport == TransportStd {
			return &ChoiceError{"data path", dataPath, "needs --upstream-transport fast (the fast path writes to the fast transport's connections); use --data-path std with --upstream-transport std"}
		}
	default:
		return &ChoiceError{"data path", dataPath, "must be fast or std"}
	}
	return nil
}

// ChoiceError says which choice (the "transport" or the "data path") is
// wrong, its value, and what would be accepted.
type ChoiceError struct {
	Choice, Value, Want string
}

func (e *ChoiceError) Error() string { return e.Choice + " " + e.Value + ": " + e.Want }
