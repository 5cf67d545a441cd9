package h1

// ChunkScanner checks a chunked body (RFC 9112 section 7.1) as it passes,
// byte by byte through its framing and by the chunk through its data, so a
// proxy can relay the body as it comes and know where it ends. It refuses
// chunk sizes of more than 15 hex digits, extensions longer than
// MaxChunkExt, whitespace around the size, bare CR or LF, and malformed
// trailer fields. Its zero value is at the start of a body.
type ChunkScanner struct {
	state  uint8
	size   int64 // the chunk's size (stSize); data bytes left in it (stData)
	digits int
	ext    int
}

// MaxChunkExt is the length of chunk extensions the scanner accepts on one
// chunk.
const MaxChunkExt = 256

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

// Scan checks p, the next bytes of the body, and returns how many of them
// belong to it (fewer than len(p) once the body ends), or false when the
// framing is wrong (the count is then where it went wrong).
func (s *ChunkScanner) Scan(p []byte) (int, bool) {
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
			case c < ' ' && c != '\t' || c == 0x7f || s.ext == MaxChunkExt:
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
func (s *ChunkScanner) expect(c, want byte, next uint8) bool {
	if c != want {
		return false
	}
	s.state = next
	return true
}

// Done reports whether the body's end has been seen.
func (s *ChunkScanner) Done() bool { return s.state == stDone }

// unhex is the value of the hex digit c.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
