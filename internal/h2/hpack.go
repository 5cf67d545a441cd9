package h2

import (
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// fieldEncoder writes the header blocks dlb sends (HPACK, RFC 7541) with
// no dynamic table: like nginx's HTTP/2 module, it never refers to an
// entry a block added. A status the static table holds is one byte, any
// other field a literal without indexing (section 6.2.2), its name indexed
// when the static table has it. So a
// field costs one lookup in a fixed map and a copy, where x/net's Encoder
// hashes each name and each name-value pair to search a per-connection
// table, for every field of every response (2.8% of dlb's CPU under
// h2load). What a response loses is the dynamic table's compression of
// fields that repeat: tens of bytes a response.
//
// The first block of a connection starts with a dynamic table size update
// to 0 (section 6.3), so the client's decoder expects no entry from dlb
// and no later update, whatever SETTINGS_HEADER_TABLE_SIZE it sends.
type fieldEncoder struct {
	b       []byte
	scratch []byte // a name being encoded
	started bool   // the size update went out
}

// reset starts a new block.
func (e *fieldEncoder) reset() {
	e.b = e.b[:0]
	if !e.started {
		e.started = true
		e.b = append(e.b, 0x20) // 001 00000: dynamic table size update, 0
	}
}

// status appends :status.
func (e *fieldEncoder) status(code int) {
	var i byte // the static table's index of the field (RFC 7541 appendix A)
	switch code {
	case 200:
		i = 8
	case 204:
		i = 9
	case 206:
		i = 10
	case 304:
		i = 11
	case 400:
		i = 12
	case 404:
		i = 13
	case 500:
		i = 14
	default:
		e.b = appendString(append(e.b, 0x08), strconv.Itoa(code)) // :status's name is index 8
		return
	}
	e.b = append(e.b, 0x80|i) // indexed field (section 6.1)
}

// name encodes an http.Header key, in any case, as the name part of a
// literal without indexing; false when it is no token (RFC 9110 section
// 5.6.2). The result is good until the next call.
func (e *fieldEncoder) name(k string) ([]byte, bool) {
	if enc, ok := knownNames[k]; ok {
		return enc, true
	}
	if !httpguts.ValidHeaderFieldName(k) {
		return nil, false
	}
	// A new name, lower-cased as HTTP/2 requires (RFC 9113 section 8.2.1)
	// and not Huffman-coded: it is short.
	e.scratch = appendInt(append(e.scratch[:0], 0x00), 0x00, 7, uint64(len(k)))
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		e.scratch = append(e.scratch, c)
	}
	return e.scratch, true
}

// field appends a field, its name encoded by name.
func (e *fieldEncoder) field(name []byte, value string) {
	e.b = appendString(append(e.b, name...), value)
}

// fieldOf appends a field of a name known to be valid.
func (e *fieldEncoder) fieldOf(k, value string) {
	n, _ := e.name(k)
	e.field(n, value)
}

// appendString appends s as an HPACK string literal (section 5.2),
// Huffman-coded when that is shorter.
func appendString(b []byte, s string) []byte {
	if n := hpack.HuffmanEncodeLength(s); n < uint64(len(s)) {
		b = appendInt(b, 0x80, 7, n)
		return hpack.AppendHuffmanString(b, s)
	}
	b = appendInt(b, 0x00, 7, uint64(len(s)))
	return append(b, s...)
}

// appendInt appends v with an n-bit prefix (section 5.1), the first
// byte's other bits being first.
func appendInt(b []byte, first byte, n uint, v uint64) []byte {
	max := uint64(1)<<n - 1
	if v < max {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(max))
	for v -= max; v >= 128; v >>= 7 {
		b = append(b, byte(v&0x7f)|0x80)
	}
	return append(b, byte(v))
}

// knownNames holds the encoded name part of each name of the static table
// (RFC 7541 appendix A; indexed) and of other common response fields
// (Huffman-coded literals), by its http.Header key.
var knownNames = func() map[string][]byte {
	static := []string{ // index 15 on; the pseudo-header fields before them are no response's but :status
		"accept-charset", "accept-encoding", "accept-language", "accept-ranges", "accept",
		"access-control-allow-origin", "age", "allow", "authorization", "cache-control",
		"content-disposition", "content-encoding", "content-language", "content-length",
		"content-location", "content-range", "content-type", "cookie", "date", "etag", "expect",
		"expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range",
		"if-unmodified-since", "last-modified", "link", "location", "max-forwards",
		"proxy-authenticate", "proxy-authorization", "range", "referer", "refresh", "retry-after",
		"server", "set-cookie", "strict-transport-security", "transfer-encoding", "user-agent",
		"vary", "via", "www-authenticate",
	}
	m := map[string][]byte{}
	for i, n := range static {
		m[textproto.CanonicalMIMEHeaderKey(n)] = appendInt(nil, 0x00, 4, uint64(15+i))
	}
	for _, k := range commonFields {
		if _, ok := m[k]; !ok {
			m[k] = appendString([]byte{0x00}, strings.ToLower(k))
		}
	}
	return m
}()
