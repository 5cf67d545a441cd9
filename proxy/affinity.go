package proxy

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/dlb-lb/dlb/balancer"
)

// requestKey is the affinity key of a request for the hash policy: the hash
// of the header named by dlb.hash.header when the request has it, else of
// the client's IP address (see clientIP). It does not allocate.
func requestKey(r *http.Request, route *Route, trusted TrustedProxies) uint64 {
	if route.hashHeader != "" {
		if v := r.Header[route.hashHeader]; len(v) > 0 && v[0] != "" {
			return balancer.KeyOf(v[0])
		}
	}
	return balancer.KeyOf(clientIP(r, trusted))
}

// clientIP is the address of the client: the connection's peer, without
// port; or, when the peer is a trusted proxy (--trusted-proxies), the
// rightmost address of X-Forwarded-For that is not a trusted proxy's
// (the leftmost ones are whatever the client wrote). It does not allocate.
func clientIP(r *http.Request, trusted TrustedProxies) string {
	peer := hostOfAddr(r.RemoteAddr)
	if !trusted.Trusts(r.RemoteAddr) {
		return peer
	}
	xff := r.Header["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			entry := list
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				entry, list = list[j+1:], list[:j]
			} else {
				list = ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a, err := netip.ParseAddr(entry)
			if err != nil || !trustsAddr(trusted, a) {
				return entry
			}
		}
	}
	return peer
}

func trustsAddr(t TrustedProxies, a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// hostOfAddr returns the IP address of a RemoteAddr ("192.0.2.1:5000",
// "[2001:db8::1]:5000"), or addr itself when it has no port.
func hostOfAddr(addr string) string {
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

// overTLS reports whether the client spoke TLS: to dlb, or to the trusted
// proxy in front of it (X-Forwarded-Proto: https).
func overTLS(r *http.Request, trusted TrustedProxies) bool {
	if r.TLS != nil {
		return true
	}
	if v := r.Header["X-Forwarded-Proto"]; len(v) > 0 && trusted.Trusts(r.RemoteAddr) {
		return strings.EqualFold(strings.TrimSpace(v[0]), "https")
	}
	return false
}
