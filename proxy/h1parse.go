package proxy

import "bytes"

// The fast data path's HTTP/1.1 parser (RFC 9112). It reads a message head
// in place, without allocating, and refuses to guess: what the RFC calls an
// error is refused (400 for a client, 502 for a replica), and what is legal
// but unusual is left to net/http (h1Handoff), which the fast server hands
// the connection to with the bytes already read. It is fuzzed against
// http.ReadRequest and http.ReadResponse (h1parse_fuzz_test.go): whatever it
// accepts, they accept, with the same framing.

// h1Verdict is what the parser made of a head.
type h1Verdict uint8

const (
	// h1OK: a complete head the fast path handles.
	h1OK h1Verdict = iota
	// h1Incomplete: no end of head yet; read more.
	h1Incomplete
	// h1Reject: malformed or ambiguous (RFC 9112): 400 and close.
	h1Reject
	// h1Handoff: legal but not for the fast path (HTTP/1.0, upgrades,
	// Expect, chunked request bodies, unusual targets...): net/http serves it.
	h1Handoff
)

// h1MaxFields is the number of header fields a head may have on the fast
// path; one with more is handed to net/http.
const h1MaxFields = 64

// h1Field is one header field, slices of the head it was read from.
type h1Field struct{ name, value []byte }

// h1Request is a parsed request head. Its slices point into the buffer it
// was parsed from.
type h1Request struct {
	method, target, host []byte
	contentLength        int64 // -1: no Content-Length
	chunked              bool  // Transfer-Encoding: chunked (handed off, but parsed)
	close                bool  // Connection: close
	headLen              int   // bytes of the head, final CRLF included
	nfields              int
	fields               [h1MaxFields]h1Field
}

// h1Response is a parsed response head.
type h1Response struct {
	status        int
	http10        bool
	contentLength int64 // -1: none
	chunked       bool
	close         bool
	connection    []byte // the Connection field's value, when it names other fields
	headLen       int
	nfields       int
	fields        [h1MaxFields]h1Field
}

// bodyless reports whether a response to method with this status has no
// body whatever its fields say (RFC 9112 section 6.3).
func (r *h1Response) bodyless(head bool) bool {
	return head || r.status < 200 || r.status == 204 || r.status == 304
}

// tchar is the set of token characters (RFC 9110 section 5.6.2).
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// nextLine returns the line of b that starts at i, without its CRLF, and
// where the next one starts. ok is false with h1Incomplete when b holds no
// LF from i on, and with h1Reject for a bare LF or a CR anywhere else than
// before the LF (RFC 9112 section 2.2: bare CR is refused; dlb refuses a
// bare LF as well rather than guess).
func nextLine(b []byte, i int) (line []byte, next int, v h1Verdict) {
	nl := bytes.IndexByte(b[i:], '\n')
	if nl < 0 {
		if bytes.IndexByte(b[i:], '\r') >= 0 && b[len(b)-1] != '\r' {
			return nil, 0, h1Reject
		}
		return nil, 0, h1Incomplete
	}
	line = b[i : i+nl]
	if nl == 0 || line[nl-1] != '\r' {
		return nil, 0, h1Reject
	}
	line = line[:nl-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, 0, h1Reject
	}
	return line, i + nl + 1, h1OK
}

// splitField splits a header line into its name and value, the value
// without the whitespace around it. It refuses obs-fold (a line that starts
// with whitespace), whitespace before the colon (RFC 9112 section 5.1), a
// name that is not a token, and control characters in the value.
func splitField(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name = line[:colon]
	if !isToken(name) {
		return nil, nil, false
	}
	value = line[colon+1:]
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	for len(value) > 0 && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
		value = value[:len(value)-1]
	}
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, false
		}
	}
	return name, value, true
}

// parseDecimal reads a Content-Length: 1 to 18 digits, nothing else.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// connectionTokens walks a Connection value's comma-separated tokens. It
// reports close, whether every token is close or keep-alive, and false ok
// for a token that is not one.
func connectionTokens(v []byte) (close, plain, ok bool) {
	plain = true
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = bytes.Trim(tok, " \t")
		switch {
		case len(tok) == 0:
		case bytes.EqualFold(tok, []byte("close")):
			close = true
		case bytes.EqualFold(tok, []byte("keep-alive")):
		case isToken(tok):
			plain = false
		default:
			return false, false, false
		}
	}
	return close, plain, true
}

func isVersion(p []byte) bool {
	return len(p) == 8 && string(p[:5]) == "HTTP/" && p[5] >= '0' && p[5] <= '9' && p[6] == '.' && p[7] >= '0' && p[7] <= '9'
}

// parseRequest parses the request head at the start of b into r.
func parseRequest(b []byte, r *h1Request) h1Verdict {
	*r = h1Request{contentLength: -1, fields: r.fields}
	if len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		return h1Handoff // empty lines before the request line (RFC 9112 section 2.2)
	}
	line, i, v := nextLine(b, 0)
	if v != h1OK {
		return v
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || !isToken(line[:sp]) {
		return h1Reject
	}
	r.method, line = line[:sp], line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return h1Reject
	}
	r.target, line = line[:sp], line[sp+1:]
	for _, c := range r.target {
		if c <= ' ' || c == 0x7f {
			return h1Reject
		}
		if c >= 0x80 {
			return h1Handoff
		}
	}
	switch {
	case string(line) == "HTTP/1.1":
	case isVersion(line):
		return h1Handoff // HTTP/1.0 (other keep-alive rules), HTTP/2's preface (h2c)
	default:
		return h1Reject
	}
	handoff := !plainTarget(r.target)
	for {
		line, i, v = nextLine(b, i)
		if v != h1OK {
			return v
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h1Reject // obs-fold (RFC 9112 section 5.2)
		}
		name, value, ok := splitField(line)
		if !ok {
			return h1Reject
		}
		if r.nfields == h1MaxFields {
			handoff = true
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("Host")):
			if r.host != nil {
				return h1Reject // RFC 9112 section 3.2
			}
			r.host = value
			if !plainHost(value) {
				handoff = true
			}
			continue
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseDecimal(value)
			if !ok || r.contentLength >= 0 {
				return h1Reject // RFC 9112 section 6.3 (5)
			}
			r.contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if r.chunked || !bytes.EqualFold(value, []byte("chunked")) {
				return h1Reject // only chunked, once (RFC 9112 section 6.1)
			}
			r.chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			close, plain, ok := connectionTokens(value)
			if !ok {
				return h1Reject
			}
			r.close = r.close || close
			handoff = handoff || !plain
		case bytes.EqualFold(name, []byte("Upgrade")), bytes.EqualFold(name, []byte("Expect")),
			bytes.EqualFold(name, []byte("TE")), bytes.EqualFold(name, []byte("Trailer")),
			bytes.EqualFold(name, []byte("HTTP2-Settings")):
			handoff = true
		}
		r.fields[r.nfields] = h1Field{name, value}
		r.nfields++
	}
	r.headLen = i
	switch {
	case r.chunked && r.contentLength >= 0:
		return h1Reject // RFC 9112 section 6.1: a request smuggling vector
	case r.chunked, r.host == nil, handoff:
		return h1Handoff
	}
	return h1OK
}

// plainHost reports whether a Host value is a plain host[:port]: letters,
// digits, '-', '.', ':', '[', ']' and '_' only.
func plainHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	for _, c := range h {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// plainTarget reports whether a request target is an absolute path (and
// query) that needs no normalisation: no '%', ';', '\\' or '#' anywhere, no
// empty, "." or ".." segment in the path. Anything else goes to net/http,
// whose path checks the fast path must not get around.
func plainTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	if bytes.IndexAny(t, "%;\\#") >= 0 {
		return false
	}
	path := t
	if q := bytes.IndexByte(t, '?'); q >= 0 {
		path = t[:q]
	}
	for seg := path[1:]; ; {
		s := seg
		j := bytes.IndexByte(seg, '/')
		if j >= 0 {
			s = seg[:j]
		}
		if string(s) == "." || string(s) == ".." || len(s) == 0 && j >= 0 {
			return false
		}
		if j < 0 {
			return true
		}
		seg = seg[j+1:]
	}
}

// parseResponse parses the response head at the start of b into r.
// h1Handoff never comes back: a replica's response is either used or
// refused (h1Reject: dlb answers 502).
func parseResponse(b []byte, r *h1Response) h1Verdict {
	*r = h1Response{contentLength: -1, fields: r.fields}
	line, i, v := nextLine(b, 0)
	if v != h1OK {
		return v
	}
	if len(line) < 12 || (string(line[:9]) != "HTTP/1.1 " && string(line[:9]) != "HTTP/1.0 ") ||
		len(line) > 12 && line[12] != ' ' {
		return h1Reject
	}
	r.http10 = line[7] == '0'
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return h1Reject
		}
		r.status = r.status*10 + int(c-'0')
	}
	if r.status < 100 {
		return h1Reject
	}
	for _, c := range line[12:] {
		if c < ' ' && c != '\t' || c == 0x7f {
			return h1Reject
		}
	}
	for {
		line, i, v = nextLine(b, i)
		if v != h1OK {
			return v
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' || r.nfields == h1MaxFields {
			return h1Reject
		}
		name, value, ok := splitField(line)
		if !ok {
			return h1Reject
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseDecimal(value)
			if !ok || r.contentLength >= 0 {
				return h1Reject
			}
			r.contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if r.chunked || !bytes.EqualFold(value, []byte("chunked")) {
				return h1Reject
			}
			r.chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			close, plain, ok := connectionTokens(value)
			if !ok {
				return h1Reject
			}
			r.close = r.close || close
			if !plain {
				if r.connection != nil {
					return h1Reject
				}
				r.connection = value
			}
		}
		r.fields[r.nfields] = h1Field{name, value}
		r.nfields++
	}
	r.headLen = i
	if r.chunked && (r.contentLength >= 0 || r.http10) {
		return h1Reject // RFC 9112 section 6.1: faulty framing
	}
	if r.status == 101 {
		return h1Reject // never asked for: upgrades go to net/http
	}
	return h1OK
}

// connectionNames reports whether a Connection value lists name, which is
// then a hop-by-hop field not to pass on (RFC 9110 section 7.6.1).
func connectionNames(conn, name []byte) bool {
	for len(conn) > 0 {
		var tok []byte
		if i := bytes.IndexByte(conn, ','); i >= 0 {
			tok, conn = conn[:i], conn[i+1:]
		} else {
			tok, conn = conn, nil
		}
		if bytes.EqualFold(bytes.Trim(tok, " \t"), name) {
			return true
		}
	}
	return false
}

// chunkScanner checks a chunked body (RFC 9112 section 7.1) as it passes,
// byte by byte through its framing and by the chunk through its data. It
// refuses chunk sizes of more than 15 hex digits, extensions longer than
// maxChunkExt, bare CR or LF, and malformed trailer fields.
type chunkScanner struct {
	state  uint8
	size   int64 // the chunk's size (stSize); data bytes left in it (stData)
	digits int
	ext    int
}

const maxChunkExt = 256

const (
	stSize uint8 = iota
	stExt
	stSizeLF
	stData
	stDataCR
	stDataLF
	stTrailerStart
	stTrailerName
	stTrailerValue
	stTrailerLF
	stEndLF
	stDone
)

// scan checks p, the next bytes of the body, and returns how many of them
// belong to it (fewer than len(p) once the body ends), or false when the
// framing is wrong.
func (s *chunkScanner) scan(p []byte) (int, bool) {
	i := 0
	for i < len(p) {
		c := p[i]
		switch s.state {
		case stSize:
			switch {
			case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
				if s.digits == 15 {
					return i, false
				}
				s.digits++
				s.size = s.size<<4 | int64(unhex(c))
			case s.digits > 0 && c == ';':
				s.state = stExt
			case s.digits > 0 && c == '\r':
				s.state = stSizeLF
			default:
				return i, false
			}
		case stExt:
			switch {
			case c == '\r':
				s.state = stSizeLF
			case c < ' ' && c != '\t' || c == 0x7f || s.ext == maxChunkExt:
				return i, false
			default:
				s.ext++
			}
		case stSizeLF:
			if !s.expect(c, '\n', stSizeLF) {
				return i, false
			}
			s.digits, s.ext = 0, 0
			if s.size == 0 {
				s.state = stTrailerStart
			} else {
				s.state = stData
			}
		case stData:
			n := int(min(s.size, int64(len(p)-i)))
			s.size -= int64(n)
			i += n
			if s.size == 0 {
				s.state = stDataCR
			}
			continue
		case stDataCR:
			if !s.expect(c, '\r', stDataLF) {
				return i, false
			}
		case stDataLF:
			if !s.expect(c, '\n', stSize) {
				return i, false
			}
		case stTrailerStart:
			switch {
			case c == '\r':
				s.state = stEndLF
			case tchar[c]:
				s.state = stTrailerName
			default:
				return i, false
			}
		case stTrailerName:
			switch {
			case c == ':':
				s.state = stTrailerValue
			case !tchar[c]:
				return i, false
			}
		case stTrailerValue:
			switch {
			case c == '\r':
				s.state = stTrailerLF
			case c < ' ' && c != '\t' || c == 0x7f:
				return i, false
			}
		case stTrailerLF:
			if !s.expect(c, '\n', stTrailerStart) {
				return i, false
			}
		case stEndLF:
			if !s.expect(c, '\n', stDone) {
				return i, false
			}
			return i + 1, true
		case stDone:
			return i, true
		}
		i++
	}
	return i, true
}

// expect moves to state next if c is want, and reports whether it was.
func (s *chunkScanner) expect(c, want byte, next uint8) bool {
	if c != want {
		return false
	}
	s.state = next
	return true
}

// done reports whether the body's end has been seen.
func (s *chunkScanner) done() bool { return s.state == stDone }

// unhex is the value of the hex digit c (isHex).
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
