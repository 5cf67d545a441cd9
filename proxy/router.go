package proxy

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/dlb-lb/dlb/balancer"
)

// Route sends the requests for some hosts and a path prefix to a pool.
type Route struct {
	// Service names the route in logs and errors.
	Service string
	// Hosts are lower-case host names without port; empty means any host.
	Hosts []string
	// Path is a path prefix without a trailing slash ("/" matches every path).
	// It matches whole segments: /api matches /api and /api/x, not /apix.
	Path string
	// StripPath removes Path from the request's path before forwarding.
	StripPath bool
	// Sticky pins each client to a replica with a cookie named StickyCookie
	// ("" means a name derived from Service).
	Sticky       bool
	StickyCookie string
	// HashHeader, for the hash policy, names the request header to hash
	// instead of the client address.
	HashHeader string
	// Scheme is how replicas are spoken to: "http" (or "") or "h2c".
	Scheme string
	// MaxBody is the largest request body accepted (413 above); 0: no limit.
	MaxBody int64
	// Pool serves the route's requests.
	Pool *balancer.Pool
}

// Router finds the route of a request by host, then by the longest path
// prefix. Its table is replaced atomically by Set; Lookup takes no lock and
// does not allocate. The zero value routes nothing.
type Router struct {
	table atomic.Pointer[routeTable]
}

type routeTable struct {
	byHost map[string][]*Route // each sorted by path length, longest first
	any    []*Route            // routes for any host, same order
}

// Set replaces the routing table. Two routes that claim the same host and
// path cannot both win: the one whose service name sorts first does, and
// Set returns a message naming both for each such pair.
func (rt *Router) Set(routes []Route) (conflicts []string) {
	t := &routeTable{byHost: map[string][]*Route{}}
	sorted := make([]*Route, len(routes))
	for i := range routes {
		sorted[i] = &routes[i]
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
			if h == "" {
				t.any = append(t.any, r)
			} else {
				t.byHost[h] = append(t.byHost[h], r)
			}
		}
	}
	rt.table.Store(t)
	return conflicts
}

func orAny(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

// Lookup returns the route for a request's Host header and path, or nil.
// Routes for the request's host win over routes for any host.
func (rt *Router) Lookup(host, path string) *Route {
	t := rt.table.Load()
	if t == nil {
		return nil
	}
	if len(t.byHost) > 0 {
		if r := matchPath(t.byHost[normalizeHost(host)], path); r != nil {
			return r
		}
	}
	return matchPath(t.any, path)
}

// matchPath returns the first route whose prefix matches path. Routes that
// claim the same path sit next to each other (see Set); a route whose pool
// is empty gives way to the next one of the same path that has replicas, so
// that a service scaled to 0 does not hide one that took over its route.
func matchPath(routes []*Route, path string) *Route {
	for i, r := range routes {
		if !hasPathPrefix(path, r.Path) {
			continue
		}
		if r.Pool != nil && r.Pool.Len() == 0 {
			for _, alt := range routes[i+1:] {
				if alt.Path != r.Path {
					break
				}
				if alt.Pool != nil && alt.Pool.Len() > 0 {
					return alt
				}
			}
		}
		return r
	}
	return nil
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

// normalizeHost strips the port and a trailing dot and lower-cases the host,
// allocating only when the host has upper-case letters.
func normalizeHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if 'A' <= h[i] && h[i] <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
