package proxy

import (
	"fmt"
	"net/http"
)

// limitBody applies a route's dlb.max_body to a request. A request that
// declares a larger Content-Length is answered with 413 at once, before a
// replica is picked, and limitBody reports false. Any other body is read
// through http.MaxBytesReader, so that one of unknown length (chunked, or
// HTTP/2 without content-length) that grows past the limit fails the
// transport with an *http.MaxBytesError, which errorHandler answers with
// 413; the server then closes the client's connection.
func limitBody(w http.ResponseWriter, r *http.Request, route *Route) bool {
	if route.MaxBody <= 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.ContentLength > route.MaxBody {
		if r.ProtoMajor == 1 {
			// Do not read on: the rest of the body may be large. (HTTP/2
			// resets the stream instead; its "Connection: close" would
			// shut the whole connection down.)
			w.Header().Set("Connection", "close")
		}
		bodyTooLarge(w, route.Service, route.MaxBody)
		return false
	}
	r.Body = http.MaxBytesReader(unobserved(w), r.Body, route.MaxBody)
	return true
}

// bodyTooLarge answers 413 Content Too Large (RFC 9110 section 15.5.14),
// naming the limit and the label that sets it.
func bodyTooLarge(w http.ResponseWriter, service string, limit int64) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	fmt.Fprintf(w, "dlb: request body too large: service %q accepts at most %d bytes (dlb.max_body)\n", service, limit)
}
