package h1

import "bytes"

// HopByHop reports whether a field belongs to the connection it came on
// and is never passed on by a proxy: Connection and the fields RFC 9110
// section 7.6.1 names (Proxy-Connection, Keep-Alive, TE, Transfer-Encoding,
// Upgrade), and the proxy authentication fields, Proxy-Authenticate and
// Proxy-Authorization (RFC 9110 sections 11.7.1 and 11.7.2), which are for
// the next hop only. The fields a message's Connection field names are its
// own as well: see Head.Hop.
//
// A proxy that forwards a message writes its framing afresh
// (AppendRequestHead, AppendResponseHead): Transfer-Encoding is dropped
// here and written again for a chunked body; Content-Length passes.
func HopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return bytes.EqualFold(name, []byte("TE"))
	case 7:
		return bytes.EqualFold(name, []byte("Upgrade"))
	case 10:
		return bytes.EqualFold(name, []byte("Connection")) || bytes.EqualFold(name, []byte("Keep-Alive"))
	case 16:
		return bytes.EqualFold(name, []byte("Proxy-Connection"))
	case 17:
		return bytes.EqualFold(name, []byte("Transfer-Encoding"))
	case 18:
		return bytes.EqualFold(name, []byte("Proxy-Authenticate"))
	case 19:
		return bytes.EqualFold(name, []byte("Proxy-Authorization"))
	}
	return false
}
