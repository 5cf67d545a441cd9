//go:build dlbiomodel

package proxy

// The fast path's per-request work, exported only under the dlbiomodel build
// tag for the I/O-model prototypes in bench/iomodel, which measure an epoll
// loop, nbio and gnet against the goroutine-per-connection loop with the same
// parser, router and header rewriting. dlb's binary never has it.

// ProtoVerdict is the parser's verdict: ProtoOK, ProtoIncomplete, ProtoReject
// or ProtoHandoff.
type ProtoVerdict = h1Verdict

// The parser's verdicts.
const (
	ProtoOK         = h1OK
	ProtoIncomplete = h1Incomplete
	ProtoReject     = h1Reject
	ProtoHandoff    = h1Handoff
)

// ProtoExchange holds one request's parsed heads; reuse it.
type ProtoExchange struct {
	req  h1Request
	resp h1Response
}

// ParseRequest parses the request head at the start of b.
func (x *ProtoExchange) ParseRequest(b []byte) ProtoVerdict { return parseRequest(b, &x.req) }

// Host and Path are the parsed request's, for Router.Lookup (valid while b is).
func (x *ProtoExchange) Host() string { return str(x.req.host) }

// Path is the target without its query.
func (x *ProtoExchange) Path() string {
	p := x.req.target
	for i, c := range p {
		if c == '?' {
			return str(p[:i])
		}
	}
	return str(p)
}

// RequestLen is the head's length plus the body's (the bytes the request
// takes in the buffer); Close whether it asked to close.
func (x *ProtoExchange) RequestLen() int { return x.req.headLen + int(max(x.req.contentLength, 0)) }

// Close reports Connection: close on the request.
func (x *ProtoExchange) Close() bool { return x.req.close }

// AppendRequest appends the request as the fast path sends it to a replica
// (send's rewriting: hop-by-hop fields out, X-Forwarded-* in), body included.
func (x *ProtoExchange) AppendRequest(dst, b []byte, peer string) []byte {
	r := &x.req
	dst = append(dst, r.method...)
	dst = append(dst, ' ')
	dst = append(dst, r.target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, r.host...)
	dst = append(dst, "\r\n"...)
	for _, f := range r.fields[:r.nfields] {
		if hopByHop(f.name) {
			continue
		}
		dst = append(dst, f.name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.value...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "X-Forwarded-For: "...)
	dst = append(dst, peer...)
	dst = append(dst, "\r\nX-Forwarded-Host: "...)
	dst = append(dst, r.host...)
	dst = append(dst, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
	if r.contentLength > 0 {
		dst = append(dst, b[r.headLen:r.headLen+int(r.contentLength)]...)
	}
	return dst
}

// ParseResponse parses a replica's response head at the start of b. The
// prototypes handle final responses with a Content-Length only (the demo's).
func (x *ProtoExchange) ParseResponse(b []byte) ProtoVerdict { return parseResponse(b, &x.resp) }

// ResponseLen is the response's head plus body length, -1 when its body is
// not framed by Content-Length.
func (x *ProtoExchange) ResponseLen() int {
	if x.resp.chunked || x.resp.contentLength < 0 || x.resp.status < 200 {
		return -1
	}
	return x.resp.headLen + int(x.resp.contentLength)
}

// AppendResponseHead appends the response head as writeHead writes it to the
// client (hop-by-hop fields out, Date when missing), keep-alive.
func (x *ProtoExchange) AppendResponseHead(dst, b []byte) []byte {
	rs := &x.resp
	line := b[:indexCR(b)]
	dst = append(dst, "HTTP/1.1"...)
	dst = append(dst, line[8:]...)
	dst = append(dst, "\r\n"...)
	date := false
	for _, f := range rs.fields[:rs.nfields] {
		if responseHop(f.name) || rs.connection != nil && connectionNames(rs.connection, f.name) {
			continue
		}
		if len(f.name) == 4 && (f.name[0]|0x20) == 'd' && (f.name[1]|0x20) == 'a' && (f.name[2]|0x20) == 't' && (f.name[3]|0x20) == 'e' {
			date = true
		}
		dst = append(dst, f.name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.value...)
		dst = append(dst, "\r\n"...)
	}
	if !date {
		dst = append(dst, "Date: "...)
		dst = append(dst, httpDate()...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// ResponseHeadLen is the parsed response head's length.
func (x *ProtoExchange) ResponseHeadLen() int { return x.resp.headLen }

func indexCR(b []byte) int {
	for i, c := range b {
		if c == '\r' {
			return i
		}
	}
	return len(b)
}
