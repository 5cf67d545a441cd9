package h2

import (
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// fieldEncoder writes the header blocks a connection sends (HPACK, RFC
// 7541). It keeps a dynamic table as the client's decoder does (section
// 2.3), so a field that repeats on a connection (a replica's content type,
// its custom fields, the date within a second) costs one or two bytes, but
// it looks for a field among the 16 entries added last only, by comparing
// strings: x/net's Encoder hashes every name and every name-value pair into
// maps to search all of it, for every field of every response (2.8% of
// dlb's CPU under h2load). A name is found in a fixed map: the static table
// and other common names, pre-encoded.
//
// Content-Length and Set-Cookie are not added to the table (representation).
type fieldEncoder struct {
	b       []byte
	scratch []byte // a new name, encoded

	// The dynamic table, oldest first: what the client's decoder holds,
	// as this encoder filled it and as the client's decoder evicts from it
	// (section 4.4).
	table []tableEntry
	size  uint32 // of the table's entries (section 4.1)
	max   uint32 // the table's maximum size, as last signalled
	// update: a dynamic table size update to max starts the next block
	// (the client lowered SETTINGS_HEADER_TABLE_SIZE).
	update bool
}

type tableEntry struct {
	key, value string // key as an http.Header has it
}

const (
	searchDepth  = 16   // entries looked at for a field, newest first
	defaultTable = 4096 // SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 section 6.5.2)
)

func newFieldEncoder() fieldEncoder { return fieldEncoder{max: defaultTable} }

// setLimit takes the client's SETTINGS_HEADER_TABLE_SIZE: the table's
// size may not pass it. dlb never grows the table past the default.
func (e *fieldEncoder) setLimit(v uint32) {
	if v < e.max {
		e.max, e.update = v, true
		e.evict()
	}
}

func (e *fieldEncoder) evict() {
	for e.size > e.max {
		e.size -= entrySize(e.table[0].key, e.table[0].value)
		e.table = e.table[1:]
	}
}

// entrySize is an entry's size (section 4.1); a name is as long lower-cased.
func entrySize(k, v string) uint32 { return uint32(len(k) + len(v) + 32) }

// reset starts a new block.
func (e *fieldEncoder) reset() {
	e.b = e.b[:0]
	if e.update {
		e.update = false
		e.b = appendInt(e.b, 0x20, 5, uint64(e.max)) // dynamic table size update (section 6.3)
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
		e.b = appendString(append(e.b, 0x08), strconv.Itoa(code)) // without indexing, :status's name (8)
		return
	}
	e.b = append(e.b, 0x80|i) // indexed field (section 6.1)
}

// fieldName is a name as a field's representation refers to it: its index
// in the static table, or else its literal (a string literal, section
// 5.2, lower-cased), and how its fields are represented when the table does
// not hold them.
type fieldName struct {
	key     string
	static  byte
	literal []byte
	first   byte // the representation's pattern (section 6.2): literalIndexed, literalPlain or literalNever
}

// The literal representations (RFC 7541 section 6.2).
const (
	literalIndexed = 0x40 // with incremental indexing: the table takes the field
	literalPlain   = 0x00 // without indexing
	literalNever   = 0x10 // never indexed
)

// representation is how the fields of name k (any case) go out when the
// table does not hold them: Set-Cookie never indexed (section 7.1.3: a
// secret is not to be compressed with what an attacker may inject), and
// Content-Length (rarely the same twice) not indexed.
func representation(k string) byte {
	switch {
	case strings.EqualFold(k, "Set-Cookie"):
		return literalNever
	case strings.EqualFold(k, "Content-Length"):
		return literalPlain
	}
	return literalIndexed
}

// name looks up an http.Header key, in any case; false when it is no token
// (RFC 9110 section 5.6.2). A new name's literal is good until the next
// call.
func (e *fieldEncoder) name(k string) (fieldName, bool) {
	if n, ok := knownNames[k]; ok {
		return n, true
	}
	if !httpguts.ValidHeaderFieldName(k) {
		return fieldName{}, false
	}
	// Lower-cased as HTTP/2 requires (RFC 9113 section 8.2.1) and not
	// Huffman-coded: a name is short.
	e.scratch = appendInt(e.scratch[:0], 0x00, 7, uint64(len(k)))
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		e.scratch = append(e.scratch, c)
	}
	return fieldName{key: k, literal: e.scratch, first: representation(k)}, true
}

// field appends a field: indexed if one of the table's last entries is the
// same, else a literal that (size permitting) the table takes.
func (e *fieldEncoder) field(n fieldName, value string) {
	for i, j := len(e.table)-1, 0; i >= 0 && j < searchDepth; i, j = i-1, j+1 {
		if en := &e.table[i]; en.key == n.key && en.value == value { // keys of known names share their pointers
			e.b = appendInt(e.b, 0x80, 7, uint64(62+len(e.table)-1-i)) // dynamic entries follow the 61 static ones
			return
		}
	}
	size := entrySize(n.key, value)
	switch {
	case n.first != literalIndexed:
		e.literal(n.first, 4, n, value)
	case size > e.max/4:
		e.literal(literalPlain, 4, n, value) // a large one would evict the rest
	default:
		e.literal(literalIndexed, 6, n, value) // section 6.2.1
		e.table = append(e.table, tableEntry{n.key, value})
		e.size += size
		e.evict()
	}
}

func (e *fieldEncoder) literal(first byte, prefix uint, n fieldName, value string) {
	if n.static != 0 {
		e.b = appendInt(e.b, first, prefix, uint64(n.static))
	} else {
		e.b = append(append(e.b, first), n.literal...)
	}
	e.b = appendString(e.b, value)
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

// knownNames holds, by http.Header key (canonical and lower-case), each
// name of the static table (RFC 7541 appendix A) with its index, and other
// common names with their Huffman-coded literals.
var knownNames = func() map[string]fieldName {
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
	m := map[string]fieldName{}
	for i, n := range static {
		k := textproto.CanonicalMIMEHeaderKey(n)
		m[k] = fieldName{key: k, static: byte(15 + i), first: representation(k)}
	}
	for _, k := range commonFields {
		if _, ok := m[k]; !ok {
			m[k] = fieldName{key: k, literal: appendString(nil, strings.ToLower(k)), first: representation(k)}
		}
	}
	for k, n := range m {
		m[strings.ToLower(k)] = n // the same entry: a field's key decides what the table holds
	}
	return m
}()
