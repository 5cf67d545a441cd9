package h2

import (
	"errors"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock is the field section of one HEADERS frame and the
// CONTINUATION frames after it, decoded. The connection keeps one and
// reuses it, and its field list, for every block: x/net's Framer would
// allocate a MetaHeadersFrame, its emit function and a growing field list
// for each. What the fields say is copied out (newRequest, onTrailers)
// before the next block is read.
type headerBlock struct {
	http2.MetaHeadersFrame
	remain     uint32 // bytes of the header list left before it is too large
	sawRegular bool
	invalid    error // the first field that is not allowed; the rest are not kept
}

var (
	errPseudoAfterRegular = errors.New("pseudo-header field after a regular one")
	errInvalidField       = errors.New("invalid header field name or value")
	errPseudoFields       = errors.New("unknown or repeated pseudo-header field")
)

// emit takes one decoded field: it is checked as RFC 9113 section 8.2
// asks, and kept while the header list stays within its limit (beyond
// it, the block is Truncated and answered 431).
func (c *conn) emit(f hpack.HeaderField) {
	b := &c.block
	switch {
	case !httpguts.ValidHeaderFieldValue(f.Value):
		b.invalid = errInvalidField
	case strings.HasPrefix(f.Name, ":"):
		if b.sawRegular {
			b.invalid = errPseudoAfterRegular
		}
	default:
		b.sawRegular = true
		if !wireFieldName(f.Name) {
			b.invalid = errInvalidField
		}
	}
	if b.invalid != nil {
		c.hdec.SetEmitEnabled(false)
		return
	}
	size := f.Size()
	if size > b.remain {
		c.hdec.SetEmitEnabled(false)
		b.Truncated, b.remain = true, 0
		return
	}
	b.remain -= size
	b.Fields = append(b.Fields, f)
}

// wireFieldName reports whether name is a token in lower case, as HTTP/2
// sends field names.
func wireFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' || !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// readHeaderBlock decodes hf's field block, reading the CONTINUATION
// frames that carry the rest of it. The block is c.block, valid until the
// next call. A field that is not allowed is a stream error; a block that
// HPACK cannot decode, or that goes on far past the header list limit, a
// connection error.
func (c *conn) readHeaderBlock(hf *http2.HeadersFrame) (*http2.MetaHeadersFrame, error) {
	b := &c.block
	b.MetaHeadersFrame = http2.MetaHeadersFrame{HeadersFrame: hf, Fields: b.Fields[:0]}
	b.remain, b.sawRegular, b.invalid = c.s.maxHeaderBytes(), false, nil
	c.hdec.SetEmitEnabled(true)
	c.hdec.SetMaxStringLength(int(b.remain))
	frag, ended := hf.HeaderBlockFragment(), hf.HeadersEnded()
	for {
		// Past the limit (remain is 0 then), or an invalid field (the rest
		// is not looked at, so not counted), a CONTINUATION ends the
		// connection: it could go on for ever.
		if int64(len(frag)) > 2*int64(b.remain) || b.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := c.hdec.Write(frag); err != nil {
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		cf := f.(*http2.ContinuationFrame) // the Framer checks the order of frames
		frag, ended = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := c.hdec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if b.invalid != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: b.invalid}
	}
	if !pseudoFieldsOK(b.PseudoFields()) {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: errPseudoFields}
	}
	return &b.MetaHeadersFrame, nil
}

// pseudoFieldsOK reports whether a block's pseudo-header fields are known
// ones, none twice, and not a request's and a response's mixed.
func pseudoFieldsOK(pf []hpack.HeaderField) bool {
	request, response := false, false
	for i, f := range pf {
		switch f.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return false
		}
		for _, g := range pf[:i] {
			if g.Name == f.Name {
				return false
			}
		}
	}
	return !(request && response)
}
