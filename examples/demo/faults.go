package main

import (
	"io"
	"net"
	"net/http"
)

// Faults that a load balancer must not turn into an outage, for tests and
// demos: a request that breaks the replica serving it ("query of death"),
// and answers no HTTP/1.1 client may accept (RFC 9112).
//
//	GET /fault/reset    resets the connection without an answer
//	GET /fault/status   answers a malformed status line
//	GET /fault/cl-te    answers with both Content-Length and Transfer-Encoding
func handleFaults(mux *http.ServeMux) {
	mux.HandleFunc("/fault/reset", func(w http.ResponseWriter, r *http.Request) {
		c := hijack(w)
		if c == nil {
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // the close sends a reset
		}
		c.Close()
	})
	raw := map[string]string{
		"/fault/status": "HTTP/1.1 2x0 OK\r\nContent-Length: 3\r\n\r\nbad",
		"/fault/cl-te":  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbad\r\n0\r\n\r\n",
	}
	for path, answer := range raw {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			c := hijack(w)
			if c == nil {
				return
			}
			io.WriteString(c, answer)
			c.Close()
		})
	}
}

// hijack takes the client's connection over; nil (and a 500 sent) when the
// server cannot hand it over (HTTP/2).
func hijack(w http.ResponseWriter) net.Conn {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "this fault needs an HTTP/1.1 connection", http.StatusInternalServerError)
		return nil
	}
	return c
}
