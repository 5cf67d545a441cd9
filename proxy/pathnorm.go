package proxy

import "strings"

// normalizePath returns the form of a request's escaped path (as
// url.URL.EscapedPath gives it) that dlb routes on and forwards, so that the
// path a replica serves is the one dlb matched a route's prefix against.
// Replicas (web frameworks, file servers) resolve dot-segments, decode %2e
// and drop ";params" themselves; were dlb to route on the raw path,
// /v2/../admin or /v2/%2e%2e/admin would pass the /v2 route and be served
// as /admin.
//
// It decodes percent-escapes of unreserved characters (RFC 3986 section
// 6.2.2.2: %2e is '.', %7E is '~'), upper-cases the hex of the others,
// and removes "." and ".." segments (RFC 3986 section 5.2.4). It reports
// ok false, for a 400, where no form is safe, because replicas disagree on
// what the path means:
//   - a ".." that would climb above the root;
//   - a "." or ".." hidden by an encoded '/' or '\' (%2F, %5C), a literal
//     '\', or a ";param" (Tomcat reads "..;x" as ".."), as in /v2/..%2fadmin;
//   - a ".." after an empty segment ("//"), which servers that merge
//     slashes resolve one level higher than those that do not;
//   - an escape that is not '%' and two hex digits, or an encoded NUL.
//
// An encoded '/' that hides no dot-segment stays encoded (APIs put names
// with slashes in one segment that way). A path that needs no change is
// returned as it is, without allocating, and so are "" (CONNECT) and the
// "*" of OPTIONS; any other path must start with '/'.
func normalizePath(escaped string) (_ string, ok bool) {
	if escaped == "" || escaped == "*" {
		return escaped, true
	}
	if escaped[0] != '/' {
		return "", false
	}
	if plainPath(escaped) {
		return escaped, true
	}
	var segsBuf [16]string
	segs := segsBuf[:0]
	trailing := false // the path ends in a dot-segment: keep a final '/'
	for rest, more := escaped[1:], true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, "/")
		dec, hidden, good := decodeSegment(seg)
		if !good || hidden {
			return "", false
		}
		if name, _, params := strings.Cut(dec, ";"); params && isDots(name) {
			return "", false
		}
		trailing = false
		switch dec {
		case ".":
			trailing = true
		case "..":
			if len(segs) == 0 || segs[len(segs)-1] == "" {
				return "", false
			}
			segs = segs[:len(segs)-1]
			trailing = true
		default:
			segs = append(segs, dec)
		}
	}
	out := "/" + strings.Join(segs, "/")
	if trailing && len(segs) > 0 {
		out += "/"
	}
	return out, true
}

// plainPath reports whether a path needs no normalising: no escapes, no
// ';' or '\', and no segment made only of dots.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%', ';', '\\':
			return false
		case '.':
			// A segment of dots starts after a '/' and ends at '/' or the end.
			if p[i-1] == '/' {
				j := i
				for j < len(p) && p[j] == '.' {
					j++
				}
				if (j == len(p) || p[j] == '/') && j-i <= 2 {
					return false
				}
			}
		}
	}
	return true
}

func isDots(s string) bool { return s == "." || s == ".." }

// decodeSegment decodes the escapes of unreserved characters in one path
// segment and upper-cases the others. hidden reports a dot-segment that a
// replica would see after decoding an encoded '/' or '\' or splitting on
// a literal '\'. good is false for a malformed escape or an encoded NUL.
func decodeSegment(seg string) (dec string, hidden, good bool) {
	if strings.IndexByte(seg, '%') < 0 && strings.IndexByte(seg, '\\') < 0 {
		return seg, false, true
	}
	var b strings.Builder
	b.Grow(len(seg))
	// split collects the segment as a replica that decodes '/' and '\'
	// and splits on them would see it, to look for dot-segments.
	var split strings.Builder
	splits := false
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c == '\\' {
			splits = true
			b.WriteByte(c)
			split.WriteByte('/')
			continue
		}
		if c != '%' {
			b.WriteByte(c)
			split.WriteByte(c)
			continue
		}
		if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
			return "", false, false
		}
		v := unhex(seg[i+1])<<4 | unhex(seg[i+2])
		i += 2
		switch {
		case v == 0:
			return "", false, false
		case unreserved(v):
			b.WriteByte(v)
			split.WriteByte(v)
		case v == '/' || v == '\\':
			splits = true
			b.WriteByte('%')
			b.WriteByte(upperHex[v>>4])
			b.WriteByte(upperHex[v&15])
			split.WriteByte('/')
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[v>>4])
			b.WriteByte(upperHex[v&15])
			split.WriteByte(v)
		}
	}
	if splits {
		for part := range strings.SplitSeq(split.String(), "/") {
			if j := strings.IndexByte(part, ';'); j >= 0 {
				part = part[:j]
			}
			if isDots(part) {
				return "", true, true
			}
		}
	}
	return b.String(), false, true
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unhex is the value of the hex digit c (isHex).
func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// unreserved reports the characters RFC 3986 section 2.3 says need no escape.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
