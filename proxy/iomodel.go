//go:build dlbiomodel

package proxy

import "github.com/dlb-lb/dlb/internal/h1"

// The fast path's per-request work, exported only under the dlbiomodel build
// tag for the I/O-model prototypes in bench/iomodel, which measure an epoll
// loop, nbio and gnet against the goroutine-per-connection loop with the same
// parser, router and header rewriting. dlb's binary never has it.

// ProtoVerdict is the parser's verdict: ProtoOK, ProtoIncomplete, ProtoReject
// or ProtoHandoff.
type ProtoVerdict = h1.Verdict

// The parser's verdicts.
const (
	ProtoOK         = h1.OK
	ProtoIncomplete = h1.Incomplete
	ProtoReject     = h1.Reject
	ProtoHandoff    = h1.Handoff
)

// ProtoExchange holds one request's parsed heads; reuse it.
type ProtoExchange struct {
	req  h1.Request
	resp h1.Response
}

// ParseRequest parses the request head at the start of b.
func (x *ProtoExchange) ParseRequest(b []byte) ProtoVerdict { return h1.ParseRequest(b, &x.req) }

// Host and Path are the parsed request's, for Router.Lookup (valid while b is).
func (x *ProtoExchange) Host() string { return str(x.req.Host) }

// Path is the target without its query.
func (x *ProtoExchange) Path() string {
	p := x.req.Target
	for i, c := range p {
		if c == '?' {
			return str(p[:i])
		}
	}
	return str(p)
}

// RequestLen is the head's length plus the body's (the bytes the request
// takes in the buffer); Close whether it asked to close.
func (x *ProtoExchange) RequestLen() int { return x.req.HeadLen + int(max(x.req.ContentLength, 0)) }

// Close reports Connection: close on the request.
func (x *ProtoExchange) Close() bool { return x.req.Close }

// AppendRequest appends the request as the fast path sends it to a replica
// (send's rewriting: hop-by-hop fields out, X-Forwarded-* in), body included.
func (x *ProtoExchange) AppendRequest(dst, b []byte, peer string) []byte {
	r := &x.req
	dst = h1.AppendRequestHead(dst, r, nil, forwardingField, func(dst []byte) []byte {
		return appendForwarded(dst, peer, r.Host, "http")
	})
	if r.ContentLength > 0 {
		dst = append(dst, b[r.HeadLen:r.HeadLen+int(r.ContentLength)]...)
	}
	return dst
}

// ParseResponse parses a replica's response head at the start of b. The
// prototypes handle final responses with a Content-Length only (the demo's).
func (x *ProtoExchange) ParseResponse(b []byte) ProtoVerdict { return h1.ParseResponse(b, &x.resp) }

// ResponseLen is the response's head plus body length, -1 when its body is
// not framed by Content-Length.
func (x *ProtoExchange) ResponseLen() int {
	if x.resp.Chunked || x.resp.ContentLength < 0 || x.resp.Status < 200 {
		return -1
	}
	return x.resp.HeadLen + int(x.resp.ContentLength)
}

// AppendResponseHead appends the response head as writeHead writes it to the
// client (hop-by-hop fields out, Date when missing), keep-alive.
func (x *ProtoExchange) AppendResponseHead(dst, b []byte) []byte {
	return h1.AppendResponseHead(dst, &x.resp, true, httpDate)
}

// ResponseHeadLen is the parsed response head's length.
func (x *ProtoExchange) ResponseHeadLen() int { return x.resp.HeadLen }
