package proxy

import (
	"bytes"
	"fmt"
	"net/http/httputil"
	"net/netip"
	"strings"

	"github.com/dlb-lb/dlb/internal/h1"
)

// TrustedProxies are the addresses of the proxies in front of dlb whose
// X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host headers dlb keeps.
// Any other client's are replaced, since a client can write anything there.
// The zero value trusts nobody.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies reads a comma-separated list of CIDRs (10.0.0.0/8,
// fd00::/8) and single addresses (192.168.1.10), as --trusted-proxies takes
// it. Blanks around entries are ignored; an empty list trusts nobody.
func ParseTrustedProxies(s string) (TrustedProxies, error) {
	var t TrustedProxies
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if strings.Contains(entry, "/") {
			p, err := netip.ParsePrefix(entry)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR (use an address and a prefix length, e.g. 10.0.0.0/8 or fd00::/8)", entry)
			}
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
			}
			t = append(t, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(entry)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or a CIDR (e.g. 192.168.1.10 or 10.0.0.0/8)", entry)
		}
		a = a.Unmap().WithZone("")
		t = append(t, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, nil
}

// Trusts reports whether remoteAddr (an http.Request's RemoteAddr, ip:port)
// is the address of a trusted proxy.
func (t TrustedProxies) Trusts(remoteAddr string) bool {
	if len(t) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// String lists the entries as ParseTrustedProxies reads them.
func (t TrustedProxies) String() string {
	s := make([]string, len(t))
	for i, p := range t {
		if p.IsSingleIP() {
			s[i] = p.Addr().String()
		} else {
			s[i] = p.String()
		}
	}
	return strings.Join(s, ",")
}

// untrustedHeaders are dropped from the requests of clients that are not
// trusted proxies, besides X-Forwarded-For, -Host and -Proto.
var untrustedHeaders = [...]string{"X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Original-Url", "X-Rewrite-Url"}

// setForwarded sets X-Forwarded-For, -Proto and -Host on the outbound
// request. ReverseProxy has removed the client's before Rewrite runs; for a
// trusted proxy, dlb appends the proxy's address to the X-Forwarded-For it
// sent and keeps its -Proto and -Host, which describe the original client's
// request rather than the hop to dlb. The Forwarded header (RFC 7239) is not
// passed on; nor are X-Real-IP, X-Forwarded-Port and X-Forwarded-Prefix
// (and the like) of clients that are not trusted proxies.
func setForwarded(pr *httputil.ProxyRequest, trusted TrustedProxies) {
	if !trusted.Trusts(pr.In.RemoteAddr) {
		// Headers that proxies set and replicas believe, which
		// ReverseProxy leaves alone: a client could claim any address,
		// port or mount point with them.
		h := pr.Out.Header
		for _, name := range untrustedHeaders {
			if _, ok := h[name]; ok {
				delete(h, name)
			}
		}
		pr.SetXForwarded()
		return
	}
	in := pr.In.Header
	if xff := in.Values("X-Forwarded-For"); len(xff) > 0 {
		pr.Out.Header["X-Forwarded-For"] = xff
	}
	pr.SetXForwarded()
	for _, h := range [...]string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
		if v := in.Get(h); v != "" {
			pr.Out.Header.Set(h, v)
		}
	}
}

// forwardingField reports whether the fast path drops a request field, to
// write its own (appendForwarded) or none: the forwarding fields of a
// client that is not a trusted proxy, as setForwarded treats them. The fast
// path serves no trusted proxy (their requests go to net/http). It is the
// filter h1.AppendRequestHead applies besides the hop-by-hop fields.
func forwardingField(name []byte) bool {
	if len(name) < 9 || (name[0]|0x20) != 'x' && (name[0]|0x20) != 'f' {
		return false // all are Forwarded or X-...: most fields are told apart here
	}
	switch {
	case bytes.EqualFold(name, []byte("Forwarded")), bytes.EqualFold(name, []byte("X-Forwarded-For")),
		bytes.EqualFold(name, []byte("X-Forwarded-Host")), bytes.EqualFold(name, []byte("X-Forwarded-Proto")):
		return true
	}
	for _, u := range untrustedHeaders {
		if strings.EqualFold(str(name), u) {
			return true
		}
	}
	return false
}

// appendForwarded appends X-Forwarded-For, -Host and -Proto as
// setForwarded sets them for a client that is not a trusted proxy.
func appendForwarded(dst []byte, peer string, host []byte, proto string) []byte {
	dst = h1.AppendField(dst, "X-Forwarded-For", peer)
	dst = h1.AppendField(dst, "X-Forwarded-Host", host)
	return h1.AppendField(dst, "X-Forwarded-Proto", proto)
}
