// Package h1 reads and writes HTTP/1.1 message heads (RFC 9112) for a
// proxy's fast path. It parses a head in place, without allocating: the
// parsed Request or Response holds slices of the buffer it was read from.
// It refuses to guess: what the RFC calls an error is refused (Reject), and
// what is legal but unusual is left to a general server such as net/http
// (Handoff), so the fast path only ever carries plain exchanges. It checks
// chunked bodies as they pass (ChunkScanner), knows which fields belong to
// one hop only (HopByHop, Head.Hop) and writes the heads a proxy forwards
// (AppendRequestHead, AppendResponseHead).
//
// Its parser, chunk scanner and writers are fuzzed against net/http's
// (fuzz_test.go): whatever it accepts, net/http accepts with the same
// framing, and what it writes, net/http reads back as the message it parsed.
//
// It imports only the standard library.
package h1

import "bytes"

// Verdict is what the parser made of a head.
type Verdict uint8

const (
	// OK is a complete head the fast path handles.
	OK Verdict = iota
	// Incomplete is a head without its end yet: read more.
	Incomplete
	// Reject is a malformed or ambiguous head (RFC 9112): a server answers
	// 400 and closes, a proxy answers a replica's with 502.
	Reject
	// Handoff is a legal request head the fast path leaves to a general
	// server: HTTP/1.0, upgrades, Expect, chunked bodies, unusual targets,
	// hosts and Connection options, more than MaxFields fields. A response
	// never gets it.
	Handoff
)

func (v Verdict) String() string {
	switch v {
	case OK:
		return "OK"
	case Incomplete:
		return "Incomplete"
	case Reject:
		return "Reject"
	case Handoff:
		return "Handoff"
	}
	return "Verdict(?)"
}

// MaxFields is the number of header fields a parsed head holds. A request
// with more is handed off; a response with more is refused.
const MaxFields = 64

// Field is one header field: slices of the head it was read from, the
// value without the whitespace around it.
type Field struct{ Name, Value []byte }

// Head is what request and response heads share: their fields and what the
// fields say about the body and the connection. ParseRequest and
// ParseResponse set all of it; the zero value, which no parser leaves, has
// no fields and a Content-Length of 0.
type Head struct {
	// ContentLength is the Content-Length field's value, -1 without one.
	ContentLength int64
	// Chunked is set by Transfer-Encoding: chunked, the only transfer
	// coding accepted.
	Chunked bool
	// Close is set by a Connection field with the close option.
	Close bool
	// Connection is the Connection field's value when it names options
	// other than close and keep-alive: the fields it names are hop-by-hop
	// (RFC 9110 section 7.6.1). Nil otherwise.
	Connection []byte
	// HeadLen is the length of the head, its final empty line included:
	// the body starts there.
	HeadLen int

	n      int
	fields [MaxFields]Field
}

// Fields returns the head's fields in the order they came (a request's
// without Host, which Request.Host holds).
func (h *Head) Fields() []Field { return h.fields[:h.n] }

// Hop reports whether the field name belongs to this hop only and is not
// passed on: one of HopByHop's, or one the Connection field names.
func (h *Head) Hop(name []byte) bool {
	return HopByHop(name) || h.Connection != nil && listed(h.Connection, name)
}

func (h *Head) reset() {
	h.ContentLength, h.Chunked, h.Close, h.Connection, h.HeadLen, h.n = -1, false, false, nil, 0, 0
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

// IsToken reports whether b is a token (RFC 9110 section 5.6.2): a method,
// a field name, a Connection option.
func IsToken(b []byte) bool {
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

// nextItem returns the first item of a comma-separated list and the rest,
// the item without the whitespace around it (RFC 9110 section 5.6.1).
func nextItem(list []byte) (item, rest []byte) {
	if i := bytes.IndexByte(list, ','); i >= 0 {
		item, rest = list[:i], list[i+1:]
	} else {
		item = list
	}
	return bytes.Trim(item, " \t"), rest
}

// listed reports whether the comma-separated list names name, case aside.
func listed(list, name []byte) bool {
	for len(list) > 0 {
		var item []byte
		item, list = nextItem(list)
		if bytes.EqualFold(item, name) {
			return true
		}
	}
	return false
}
