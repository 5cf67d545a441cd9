package h1

// AppendRequestHead appends the head of r as a proxy forwards it to the
// next hop (RFC 9110 section 7.6), and returns the extended buffer:
//   - the request line, with target in place of r.Target when it is not
//     nil (a target rewritten by the proxy; one that does not start with
//     '/', such as a query left alone by stripping a path prefix, gets one:
//     an origin-form target is an absolute path, RFC 9112 section 3.2.1),
//     as HTTP/1.1;
//   - Host;
//   - r's fields but the hop-by-hop ones (Head.Hop) and those skip reports
//     (nil: none), in their order;
//   - the framing: Content-Length passes among the fields, and a chunked
//     body gets Transfer-Encoding: chunked;
//   - what add appends (nil: nothing), whole field lines each ending in
//     CRLF (AppendField);
//   - the empty line.
//
// It writes what the parser read, so it does not allocate when dst has
// room for the head.
func AppendRequestHead(dst []byte, r *Request, target []byte, skip func(name []byte) bool, add func(dst []byte) []byte) []byte {
	if target == nil {
		target = r.Target
	}
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	if len(target) == 0 || target[0] != '/' {
		dst = append(dst, '/')
	}
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, r.Host...)
	dst = append(dst, "\r\n"...)
	for _, f := range r.Fields() {
		if r.Hop(f.Name) || skip != nil && skip(f.Name) {
			continue
		}
		dst = appendField(dst, f.Name, f.Value)
	}
	if r.Chunked {
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	if add != nil {
		dst = add(dst)
	}
	return append(dst, "\r\n"...)
}

// AppendResponseHead appends the head of r as a proxy forwards it to the
// client, and returns the extended buffer:
//   - the status line, as HTTP/1.1, with r's status and reason;
//   - r's fields but the hop-by-hop ones (Head.Hop), in their order;
//   - for a final response (not 1xx): Date, when r has none and date is
//     not nil (RFC 9110 section 6.6.1: an origin server without a clock
//     sends none, and the proxy adds one); the framing: Content-Length
//     passes among the fields, and a chunked body gets
//     Transfer-Encoding: chunked (not on 204, nor on 304, RFC 9112
//     section 6.1); Connection: close unless keep, which a response
//     whose body runs until the connection closes never is;
//   - the empty line.
//
// Like AppendRequestHead, it does not allocate when dst has room.
func AppendResponseHead(dst []byte, r *Response, keep bool, date func() []byte) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = append(dst, byte('0'+r.Status/100), byte('0'+r.Status/10%10), byte('0'+r.Status%10), ' ')
	dst = append(dst, r.Reason...)
	dst = append(dst, "\r\n"...)
	hasDate := false
	for _, f := range r.Fields() {
		if r.Hop(f.Name) {
			continue
		}
		if len(f.Name) == 4 && (f.Name[0]|0x20) == 'd' && (f.Name[1]|0x20) == 'a' && (f.Name[2]|0x20) == 't' && (f.Name[3]|0x20) == 'e' {
			hasDate = true
		}
		dst = appendField(dst, f.Name, f.Value)
	}
	if r.Status >= 200 {
		if !hasDate && date != nil {
			dst = append(dst, "Date: "...)
			dst = append(dst, date()...)
			dst = append(dst, "\r\n"...)
		}
		if r.Chunked && r.Status != 204 && r.Status != 304 {
			dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
		}
		if !keep {
			dst = append(dst, "Connection: close\r\n"...)
		}
	}
	return append(dst, "\r\n"...)
}

// AppendField appends a field line, "name: value" and CRLF. The caller
// vouches for the name being a token and the value free of CR, LF and NUL.
func AppendField[V []byte | string](dst []byte, name string, value V) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

func appendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}
