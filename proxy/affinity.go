package proxy

import (
	"net/http"
	"strings"

	"github.com/dlb-lb/dlb/balancer"
)

// requestKey is the affinity key of a request for the hash policy: the hash
// of the header named by dlb.hash.header when the request has it, else of
// the client's IP address (the connection's peer, without port). It does
// not allocate.
func requestKey(r *http.Request, route *Route) uint64 {
	if route.hashHeader != "" {
		if v := r.Header[route.hashHeader]; len(v) > 0 && v[0] != "" {
			return balancer.KeyOf(v[0])
		}
	}
	return balancer.KeyOf(clientIP(r.RemoteAddr))
}

// clientIP returns the IP address of a RemoteAddr ("192.0.2.1:5000",
// "[2001:db8::1]:5000"), or addr itself when it has no port.
func clientIP(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || strings.IndexByte(addr[i:], ']') >= 0 {
		return addr
	}
	host := addr[:i]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	if strings.IndexByte(host, ':') >= 0 { // an IPv6 address without port
		return addr
	}
	return host
}
