package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// screen checks and normalises a request before it is routed: the path
// becomes the one a replica will serve (pathnorm.go), or the request gets
// 400 when no form of it is safe. It reports false when it answered.
func (p *Proxy) screen(w http.ResponseWriter, r *http.Request) bool {
	escaped := r.URL.EscapedPath()
	norm, ok := normalizePath(escaped)
	if !ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "dlb: path %q cannot be forwarded safely: it climbs above the root, or hides a '.' or '..' segment behind an encoded '/' or '\\\\', a ';' or an empty segment; send it normalised\n", truncate(escaped, 256))
		return false
	}
	if !plainQuery(r.URL.RawQuery) {
		// An HTTP/2 client's :path may carry a space (h2c: net/http lets it
		// through); in the request line to the replica it would end the
		// target early ("/?a HTTP/1.0").
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "dlb: the query %q has a space or a control character: percent-encode it\n", truncate(r.URL.RawQuery, 256))
		return false
	}
	if norm != escaped {
		dec, err := url.PathUnescape(norm)
		if err != nil { // cannot happen: normalizePath checked every escape
			dec = norm
		}
		r.URL.Path, r.URL.RawPath = dec, norm
	}
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// net/http drops a Content-Length sent with Transfer-Encoding before
		// dlb sees the request, so dlb cannot tell whether one came: it
		// closes the connection after every chunked request, as RFC 9112
		// section 6.1 requires after one that had both.
		w.Header().Set("Connection", "close")
	}
	return true
}

// plainQuery reports whether a raw query can go into a request line as it
// is: no space, tab or other control.
func plainQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// truncate cuts s to at most n bytes for a message, saying how long it was.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}

// localHost is the address a request's client connected to, as a Host
// header: for HTTP/1.0 requests that send none.
func localHost(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}

// orDefault is d when v is zero, v when it is positive, and 0 (off) when
// it is negative.
func orDefault(v, d time.Duration) time.Duration {
	switch {
	case v == 0:
		return d
	case v < 0:
		return 0
	}
	return v
}

// endTimer ends the context of a's response header timer once the request
// is done.
func (a *attempt) endTimer() {
	if a.endHeaderTimer != nil {
		a.endHeaderTimer(nil)
	}
}
