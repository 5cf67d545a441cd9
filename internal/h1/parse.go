package h1

import "bytes"

// Request is a parsed request head. Its slices point into the buffer it was
// parsed from; reuse it for the next request (it is large: MaxFields
// fields).
type Request struct {
	Head
	Method []byte
	// Target is the request target as sent: an absolute path and query
	// (origin-form, RFC 9112 section 3.2.1) whenever ParseRequest says OK.
	Target []byte
	// Host is the Host field's value.
	Host []byte
}

// Response is a parsed response head; like Request, it points into the
// buffer it was parsed from.
type Response struct {
	Head
	Status int
	// HTTP10 is set for an HTTP/1.0 response (no keep-alive by default).
	HTTP10 bool
	// Reason is the status line's reason phrase, possibly empty.
	Reason []byte
}

// Bodyless reports whether the response, to a HEAD request when head is
// set, has no body whatever its fields say (RFC 9112 section 6.3).
func (r *Response) Bodyless(head bool) bool {
	return head || r.Status < 200 || r.Status == 204 || r.Status == 304
}

// ParseRequest parses the request head at the start of b into r.
//
// OK is a head the fast path can forward as it is: HTTP/1.1, a plain
// origin-form target (PlainTarget) and Host (PlainHost), a body framed by
// Content-Length or none. Handoff is a legal head with anything else, and
// Reject one that breaks RFC 9112 or could be read two ways (request
// smuggling: Content-Length with Transfer-Encoding, two lengths, a coding
// other than chunked, obs-fold, bare CR or LF, two Hosts...).
func ParseRequest(b []byte, r *Request) Verdict {
	r.reset()
	r.Method, r.Target, r.Host = nil, nil, nil
	if len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		return Handoff // empty lines before the request line (RFC 9112 section 2.2)
	}
	line, i, v := nextLine(b, 0)
	if v != OK {
		return v
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || !IsToken(line[:sp]) {
		return Reject
	}
	r.Method, line = line[:sp], line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return Reject
	}
	r.Target, line = line[:sp], line[sp+1:]
	for _, c := range r.Target {
		if c <= ' ' || c == 0x7f {
			return Reject
		}
		if c >= 0x80 {
			return Handoff
		}
	}
	switch {
	case string(line) == "HTTP/1.1":
	case isVersion(line):
		return Handoff // HTTP/1.0 (other keep-alive rules), HTTP/2's preface (h2c)
	default:
		return Reject
	}
	v = r.parseFields(b, i, r)
	switch {
	case v != OK:
		return v
	case r.Connection != nil, r.Chunked, r.Host == nil, !PlainTarget(r.Target):
		return Handoff
	}
	return OK
}

// ParseResponse parses the response head at the start of b into r. It
// never says Handoff: a replica's response is either forwarded or refused.
// A response with more than MaxFields fields is refused, and so is 101
// Switching Protocols, which a request the fast path forwards never asks
// for.
func ParseResponse(b []byte, r *Response) Verdict {
	r.reset()
	r.Status, r.HTTP10, r.Reason = 0, false, nil
	line, i, v := nextLine(b, 0)
	if v != OK {
		return v
	}
	if len(line) < 12 || (string(line[:9]) != "HTTP/1.1 " && string(line[:9]) != "HTTP/1.0 ") ||
		len(line) > 12 && line[12] != ' ' {
		return Reject
	}
	r.HTTP10 = line[7] == '0'
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return Reject
		}
		r.Status = r.Status*10 + int(c-'0')
	}
	if r.Status < 100 {
		return Reject
	}
	if len(line) > 12 {
		r.Reason = line[13:]
	}
	for _, c := range r.Reason {
		if c < ' ' && c != '\t' || c == 0x7f {
			return Reject
		}
	}
	switch r.parseFields(b, i, nil) {
	case OK:
	case Incomplete:
		return Incomplete
	default:
		return Reject
	}
	if r.Chunked && r.HTTP10 {
		return Reject // RFC 9112 section 6.1: faulty framing
	}
	if r.Status == 101 {
		return Reject
	}
	return OK
}

// parseFields reads the fields from b[i:] through the empty line that ends
// the head, and checks the framing they make. req is the request whose head
// it is, nil for a response. Handoff means the head is sound but has fields
// a general server should handle.
func (h *Head) parseFields(b []byte, i int, req *Request) Verdict {
	verdict := OK
	for {
		line, next, v := nextLine(b, i)
		if v != OK {
			return v
		}
		i = next
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return Reject // obs-fold (RFC 9112 section 5.2)
		}
		name, value, ok := splitField(line)
		if !ok {
			return Reject
		}
		keep := true
		v = h.framing(name, value)
		if v == OK && req != nil {
			v, keep = req.field(name, value)
		}
		switch v {
		case Reject:
			return Reject
		case Handoff:
			verdict = Handoff
		}
		switch {
		case !keep: // Host, held apart
		case h.n == MaxFields:
			verdict = Handoff
		default:
			h.fields[h.n] = Field{name, value}
			h.n++
		}
	}
	h.HeadLen = i
	if h.Chunked && h.ContentLength >= 0 {
		return Reject // RFC 9112 section 6.1: a request smuggling vector
	}
	return verdict
}

// framing applies the rules of the fields that frame the message and say
// what becomes of the connection, the same for requests and responses.
func (h *Head) framing(name, value []byte) Verdict {
	switch len(name) {
	case 10:
		if !bytes.EqualFold(name, []byte("Connection")) {
			return OK
		}
		close, plain, ok := connectionOptions(value)
		switch {
		case !ok:
			return Reject
		case plain:
		case h.Connection != nil:
			return Handoff // two lists of options: left to a general server
		default:
			h.Connection = value
		}
		h.Close = h.Close || close
	case 14:
		if !bytes.EqualFold(name, []byte("Content-Length")) {
			return OK
		}
		n, ok := ParseLength(value)
		if !ok || h.ContentLength >= 0 {
			return Reject // RFC 9112 section 6.3 (5): one length, digits only
		}
		h.ContentLength = n
	case 17:
		if !bytes.EqualFold(name, []byte("Transfer-Encoding")) {
			return OK
		}
		if h.Chunked || !bytes.EqualFold(value, []byte("chunked")) {
			return Reject // only chunked, once (RFC 9112 section 6.1)
		}
		h.Chunked = true
	}
	return OK
}

// field applies a request's own field rules. It reports false for Host,
// which is held in r.Host rather than among the fields.
func (r *Request) field(name, value []byte) (Verdict, bool) {
	switch {
	case bytes.EqualFold(name, []byte("Host")):
		if r.Host != nil {
			return Reject, false // RFC 9112 section 3.2
		}
		r.Host = value
		if !PlainHost(value) {
			return Handoff, false
		}
		return OK, false
	case bytes.EqualFold(name, []byte("Upgrade")), bytes.EqualFold(name, []byte("Expect")),
		bytes.EqualFold(name, []byte("TE")), bytes.EqualFold(name, []byte("Trailer")),
		bytes.EqualFold(name, []byte("HTTP2-Settings")):
		return Handoff, true
	}
	return OK, true
}

// nextLine returns the line of b that starts at i, without its CRLF, and
// where the next one starts. The verdict is Incomplete when b holds no LF
// from i on, and Reject for a bare LF or a CR anywhere else than before the
// LF (RFC 9112 section 2.2 refuses a bare CR; a bare LF is refused as well
// rather than guessed at).
func nextLine(b []byte, i int) (line []byte, next int, v Verdict) {
	nl := bytes.IndexByte(b[i:], '\n')
	if nl < 0 {
		if bytes.IndexByte(b[i:], '\r') >= 0 && b[len(b)-1] != '\r' {
			return nil, 0, Reject
		}
		return nil, 0, Incomplete
	}
	line = b[i : i+nl]
	if nl == 0 || line[nl-1] != '\r' {
		return nil, 0, Reject
	}
	line = line[:nl-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, 0, Reject
	}
	return line, i + nl + 1, OK
}

// splitField splits a field line into its name and value, the value
// without the whitespace around it. It refuses whitespace before the colon
// (RFC 9112 section 5.1), a name that is not a token, and control
// characters in the value.
func splitField(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name = line[:colon]
	if !IsToken(name) {
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

// ParseLength reads a Content-Length value: 1 to 18 digits, nothing else
// (no sign, no list, no whitespace).
func ParseLength(b []byte) (int64, bool) {
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

// connectionOptions walks a Connection value's options. It reports close,
// whether every option is close or keep-alive, and false ok for one that is
// not a token.
func connectionOptions(v []byte) (close, plain, ok bool) {
	plain = true
	for len(v) > 0 {
		var opt []byte
		opt, v = nextItem(v)
		switch {
		case len(opt) == 0:
		case bytes.EqualFold(opt, []byte("close")):
			close = true
		case bytes.EqualFold(opt, []byte("keep-alive")):
		case IsToken(opt):
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

// PlainHost reports whether a Host value is a plain host[:port]: letters,
// digits, '-', '.', ':', '[', ']' and '_' only.
func PlainHost(h []byte) bool {
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

// PlainTarget reports whether a request target is an absolute path (and
// query) that needs no normalisation: no '%', ';', '\\' or '#' anywhere, no
// empty, "." or ".." segment in the path. Anything else is for a server
// whose path checks a fast path must not get around.
func PlainTarget(t []byte) bool {
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
