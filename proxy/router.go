package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// Route sends the requests for some hosts and a path prefix to a pool.
type Route struct {
	// Service names the route in logs and errors.
	Service string
	// Hosts are lower-case host names without port; empty means any host.
	// "*.example.com" is a wildcard: it matches one or more labels in front
	// of example.com (a.example.com, a.b.example.com), not example.com.
	Hosts []string
	// Path is a path prefix without a trailing slash ("/" matches every path).
	// It matches whole segments: /api matches /api and /api/x, not /apix.
	Path string
	// RouteOptions say how the route's requests are forwarded. The dlb.*
	// labels are parsed into them (discovery.LabelConfig holds the same
	// struct), so that a new option is one field, here.
	RouteOptions
	// Pool serves the route's requests.
	Pool *balancer.Pool

	// Derived by Router.Set, so that requests need not derive them.
	hashHeader string // HashHeader in canonical form ("X-User")
	cookieName string // StickyCookie, or the default one
}

// RouteOptions are how a route's requests are forwarded: everything a
// service's labels ask of its route besides which requests it takes (Hosts,
// Path). The zero value forwards as is, over HTTP/1.1, with the proxy's
// timeouts. It is comparable with ==: keep every field comparable.
type RouteOptions struct {
	// StripPath removes Path from the request's path before forwarding:
	// /api/users goes out as /users, /api as /.
	StripPath bool
	// Sticky pins each client to a replica with a cookie named StickyCookie
	// ("" means a name derived from Service: dlb_ and the service's name).
	Sticky       bool
	StickyCookie string
	// HashHeader, for the hash policy, names the request header to hash
	// instead of the client address.
	HashHeader string
	// Scheme is how replicas are spoken to: "http" (or "") or "h2c".
	Scheme string
	// MaxBody is the largest request body accepted (413 above); 0: no limit.
	MaxBody int64
	// ResponseHeaderTimeout, when positive, replaces the proxy's for this
	// route (dlb.timeout.response_header, for slow APIs).
	ResponseHeaderTimeout time.Duration
}

// Same reports whether r and o ask for the same routing: every field
// equal (Hosts in the same order, none equal to empty), the fields Router.Set
// derives aside. RouteOptions compare with ==, so an option added to them
// is compared without anyone listing it here; TestRouteSameSeesEveryField
// fails when a field of Route itself is left out.
func (r Route) Same(o Route) bool {
	return r.Service == o.Service && r.Path == o.Path && r.Pool == o.Pool &&
		slices.Equal(r.Hosts, o.Hosts) && r.RouteOptions == o.RouteOptions
}

// Router finds the route of a request by host, then by the longest path
// prefix. A route for the exact host wins over one for a wildcard host
// (the most specific wildcard first), which wins over one for any host;
// when no route of a host matches the path, the next kind is tried. Its
// table is replaced atomically by Set; Lookup takes no lock and does not
// allocate. It looks hosts and path prefixes up in maps: its cost grows
// with the number of labels of the host and of segments of the routes'
// paths, not with the number of routes or replicas. The zero value routes
// nothing.
type Router struct {
	table atomic.Pointer[routeTable]
}

type routeTable struct {
	exact map[string]*pathTable // by host
	wild  map[string]*pathTable // by the suffix of "*.suffix"
	any   *pathTable            // routes for any host; nil if none
}

// pathTable holds the routes of one host (or wildcard, or of any host).
type pathTable struct {
	// byPath holds the routes by path prefix; routes that claim the same
	// path are in the order they win (see matchPath).
	byPath map[string][]*Route
	// depth is the most segments of any of its paths ("/" has 0, "/api"
	// 1, "/api/v1" 2): a request's path is cut to that many to start with.
	depth int
}

func (pt *pathTable) add(r *Route) {
	pt.byPath[r.Path] = append(pt.byPath[r.Path], r)
	if r.Path != "/" {
		pt.depth = max(pt.depth, strings.Count(r.Path, "/"))
	}
}

// Set replaces the routing table with a copy of routes. Two routes that
// claim the same host (or wildcard) and path cannot both win: the one whose
// service name sorts first does while its pool has replicas (the other
// serves while it has none), and Set returns a message naming both for each
// such pair.
func (rt *Router) Set(routes []Route) (conflicts []string) {
	own := slices.Clone(routes)
	t := &routeTable{exact: map[string]*pathTable{}, wild: map[string]*pathTable{}}
	table := func(m map[string]*pathTable, key string) *pathTable {
		pt := m[key]
		if pt == nil {
			pt = &pathTable{byPath: map[string][]*Route{}}
			m[key] = pt
		}
		return pt
	}
	sorted := make([]*Route, len(own))
	for i := range own {
		own[i].prepare()
		sorted[i] = &own[i]
	}
	slices.SortStableFunc(sorted, func(a, b *Route) int {
		if d := len(b.Path) - len(a.Path); d != 0 {
			return d
		}
		return strings.Compare(a.Service, b.Service)
	})
	type claim struct{ host, path string }
	owner := map[claim]string{}
	for _, r := range sorted {
		hosts := r.Hosts
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		for _, h := range hosts {
			c := claim{h, r.Path}
			if first, taken := owner[c]; taken {
				conflicts = append(conflicts, fmt.Sprintf("services %q and %q both claim host %q path %q; %q wins while it has replicas (it sorts first); give one of them another dlb.host or dlb.path",
					first, r.Service, orAny(h), r.Path, first))
				// Kept after the winner: it serves while the winner's pool is empty.
			} else {
				owner[c] = r.Service
			}
			switch {
			case h == "":
				if t.any == nil {
					t.any = &pathTable{byPath: map[string][]*Route{}}
				}
				t.any.add(r)
			case strings.HasPrefix(h, "*."):
				table(t.wild, h[2:]).add(r)
			default:
				table(t.exact, h).add(r)
			}
		}
	}
	rt.table.Store(t)
	return conflicts
}

// prepare derives what requests would otherwise compute each time.
func (r *Route) prepare() {
	if r.Path == "" {
		r.Path = "/"
	}
	r.hashHeader = http.CanonicalHeaderKey(r.HashHeader)
	r.cookieName = r.StickyCookie
	if r.cookieName == "" {
		r.cookieName = defaultCookieName(r.Service)
	}
}

func orAny(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

// maxHost is the longest host name (RFC 1035 section 2.3.4) Lookup matches
// against host routes; a longer Host header can only match a route for any
// host.
const maxHost = 253

// Lookup returns the route for a request's Host header and path, or nil.
func (rt *Router) Lookup(host, path string) *Route {
	t := rt.table.Load()
	if t == nil {
		return nil
	}
	if len(t.exact) > 0 || len(t.wild) > 0 {
		// The host, lower-cased, without port and trailing dot, in a buffer
		// on the stack: map lookups with string(b) do not allocate.
		var buf [maxHost]byte
		if b, ok := normalizeHost(host, buf[:0]); ok {
			if r := t.exact[string(b)].match(path); r != nil {
				return r
			}
			if len(t.wild) > 0 {
				// a.b.example.com: try *.b.example.com, then *.example.com, then *.com.
				for i := 0; i < len(b); i++ {
					if b[i] == '.' {
						if r := t.wild[string(b[i+1:])].match(path); r != nil {
							return r
						}
					}
				}
			}
		}
	}
	return t.any.match(path)
}

// match returns the route of the longest prefix of path, on segment
// boundaries, that has one; nil when none has (or pt is nil). It tries the
// path cut to the table's depth, then one segment less each time, then "/".
func (pt *pathTable) match(path string) *Route {
	if pt == nil {
		return nil
	}
	// Cut after depth segments: at the slash that would start one more.
	cut, slashes := len(path), 0
	for i := 0; i < len(path); i++ {
		if path[i] == '/' {
			if slashes == pt.depth {
				cut = i
				break
			}
			slashes++
		}
	}
	for p := path[:cut]; len(p) > 1; {
		if rs := pt.byPath[p]; rs != nil {
			return matchPath(rs)
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return matchPath(pt.byPath["/"])
}

// matchPath returns the route that wins among routes that claim the same
// path, in the order Set sorted them: the first, unless its pool is empty
// and a later one's is not, so that a service scaled to 0 does not hide one
// that took over its route.
func matchPath(routes []*Route) *Route {
	if len(routes) == 0 {
		return nil
	}
	if r := routes[0]; r.Pool != nil && r.Pool.Len() == 0 {
		for _, alt := range routes[1:] {
			if alt.Pool != nil && alt.Pool.Len() > 0 {
				return alt
			}
		}
	}
	return routes[0]
}

// hasPathPrefix reports whether prefix matches path on segment boundaries.
func hasPathPrefix(path, prefix string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// normalizeHost appends to b the host of a Host header lower-cased, without
// port and trailing dot. ok is false when the host is empty or longer than
// maxHost, so cannot be a route's.
func normalizeHost(h string, b []byte) (_ []byte, ok bool) {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > maxHost {
		return b, false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b, true
}

// stripPrefix removes the route's path prefix from an outgoing request's
// URL: /api/users becomes /users and /api becomes /. The prefix matched
// u.Path (decoded); u.RawPath, when set (the path has escapes that its
// decoded form cannot show, like %2F), loses the same segments.
func stripPrefix(u *url.URL, prefix string) {
	if prefix == "/" || !hasPathPrefix(u.Path, prefix) {
		return
	}
	u.Path = u.Path[len(prefix):]
	if u.Path == "" {
		u.Path = "/"
	}
	if u.RawPath == "" {
		return
	}
	// The raw path's first segments decode to the prefix; find where they
	// end. The prefix has no '%' (dlb.path forbids it), so a raw path that
	// starts with it literally is the common case.
	raw := u.RawPath
	if hasPathPrefix(raw, prefix) {
		raw = raw[len(prefix):]
	} else {
		raw = ""
		for i := 1; i <= len(u.RawPath); i++ {
			if i == len(u.RawPath) || u.RawPath[i] == '/' {
				if dec, err := url.PathUnescape(u.RawPath[:i]); err == nil && dec == prefix {
					raw = u.RawPath[i:]
					break
				}
			}
		}
	}
	if raw == "" {
		raw = "/"
	}
	// Keep RawPath only while it still encodes Path (else net/url ignores
	// it and escapes Path itself, which is right too).
	if dec, err := url.PathUnescape(raw); err == nil && dec == u.Path {
		u.RawPath = raw
	} else {
		u.RawPath = ""
	}
}
