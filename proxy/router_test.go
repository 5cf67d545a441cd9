package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dlb-lb/dlb/balancer"
)

// route is the route of service for path and hosts (none: any host), with
// an empty pool of the same name.
func route(service, path string, hosts ...string) Route {
	return Route{Service: service, Hosts: hosts, Path: path, Pool: balancer.NewPool(service)}
}

// lookup is the service Lookup finds, or "" for none.
func lookup(rt *Router, host, path string) string {
	if r := rt.Lookup(host, path); r != nil {
		return r.Service
	}
	return ""
}

func TestRouterLookup(t *testing.T) {
	hostAndCatchAll := []Route{route("web", "/"), route("api", "/", "api.example.com")}
	prefixes := []Route{route("root", "/"), route("api", "/api"), route("v1", "/api/v1")}
	tests := []struct {
		name   string
		routes []Route
		host   string
		path   string
		want   string // service; "": no route
	}{
		{"empty table", []Route{}, "example.com", "/", ""},
		{"catch-all", []Route{route("web", "/")}, "anything.example", "/x/y", "web"},
		{"catch-all, no host header", []Route{route("web", "/")}, "", "/", "web"},
		{"host beats catch-all", hostAndCatchAll, "api.example.com", "/x", "api"},
		{"other host gets the catch-all", hostAndCatchAll, "www.example.com", "/x", "web"},
		{"host beats a longer catch-all path", []Route{route("web", "/api"), route("api", "/", "api.example.com")}, "api.example.com", "/api/x", "api"},
		{"host route's path misses: catch-all", []Route{route("web", "/"), route("api", "/api", "api.example.com")}, "api.example.com", "/other", "web"},
		{"host route only: other host", []Route{route("api", "/", "api.example.com")}, "www.example.com", "/", ""},
		{"longest prefix", prefixes, "x", "/api/v1/users", "v1"},
		{"longest prefix, exact", prefixes, "x", "/api/v1", "v1"},
		{"shorter prefix", prefixes, "x", "/api/v2", "api"},
		{"root", prefixes, "x", "/", "root"},
		{"segment boundary: /apix is not /api", prefixes, "x", "/apix", "root"},
		{"segment boundary: /api/v10 is not /api/v1", prefixes, "x", "/api/v10", "api"},
		{"prefix with a trailing slash", []Route{route("api", "/api")}, "x", "/api/", "api"},
		{"no prefix matches", []Route{route("api", "/api")}, "x", "/apix", ""},
		{"shorter path than the prefix", []Route{route("api", "/api")}, "x", "/ap", ""},
		{"path is case-sensitive", []Route{route("api", "/api")}, "x", "/API", ""},
		{"host with port", hostAndCatchAll, "api.example.com:8080", "/", "api"},
		{"host upper case", hostAndCatchAll, "API.Example.COM", "/", "api"},
		{"host upper case with port", hostAndCatchAll, "API.EXAMPLE.COM:443", "/", "api"},
		{"host trailing dot", hostAndCatchAll, "api.example.com.", "/", "api"},
		{"host trailing dot and port", hostAndCatchAll, "api.example.com.:8080", "/", "api"},
		{"IPv6 literal with port", hostAndCatchAll, "[::1]:8080", "/", "web"},
		{"host that only starts the same", hostAndCatchAll, "api.example.com.evil", "/", "web"},
		{"several hosts", []Route{route("api", "/", "a.example.com", "b.example.com")}, "b.example.com", "/", "api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rt Router
			if conflicts := rt.Set(tt.routes); len(conflicts) > 0 {
				t.Fatalf("Set: got conflicts %q, want none", conflicts)
			}
			if got := lookup(&rt, tt.host, tt.path); got != tt.want {
				t.Errorf("Lookup(%q, %q): got %q, want %q", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

func TestRouterZeroValue(t *testing.T) {
	var rt Router
	if got := rt.Lookup("example.com", "/"); got != nil {
		t.Errorf("Lookup on the zero Router: got %q, want nil", got.Service)
	}
	rt.Set(nil)
	if got := rt.Lookup("example.com", "/"); got != nil {
		t.Errorf("Lookup after Set(nil): got %q, want nil", got.Service)
	}
}

func TestRouterSetReplacesTheTable(t *testing.T) {
	var rt Router
	rt.Set([]Route{route("old", "/"), route("api", "/", "api.example.com")})
	rt.Set([]Route{route("new", "/new")})
	tests := []struct {
		host, path, want string
	}{
		{"api.example.com", "/", ""},
		{"x", "/", ""},
		{"x", "/new/x", "new"},
	}
	for _, tt := range tests {
		if got := lookup(&rt, tt.host, tt.path); got != tt.want {
			t.Errorf("Lookup(%q, %q) after a second Set: got %q, want %q", tt.host, tt.path, got, tt.want)
		}
	}
}

func TestRouterConflicts(t *testing.T) {
	tests := []struct {
		name      string
		routes    []Route
		host      string // where to look the winner up
		path      string
		want      string   // the winner
		conflicts []string // substrings, one conflict each
	}{
		{
			name:      "two catch-alls",
			routes:    []Route{route("beta", "/"), route("alpha", "/")},
			host:      "x",
			path:      "/",
			want:      "alpha",
			conflicts: []string{`services "alpha" and "beta" both claim host "*" path "/"; "alpha" wins`},
		},
		{
			name:      "two catch-alls, other order",
			routes:    []Route{route("alpha", "/"), route("beta", "/")},
			host:      "x",
			path:      "/",
			want:      "alpha",
			conflicts: []string{`services "alpha" and "beta" both claim host "*" path "/"; "alpha" wins`},
		},
		{
			name:      "same host and path",
			routes:    []Route{route("web2", "/api", "example.com"), route("web1", "/api", "example.com")},
			host:      "example.com",
			path:      "/api/x",
			want:      "web1",
			conflicts: []string{`services "web1" and "web2" both claim host "example.com" path "/api"; "web1" wins`},
		},
		{
			name:      "overlap on one host of several",
			routes:    []Route{route("b", "/", "y.example.com"), route("a", "/", "x.example.com", "y.example.com")},
			host:      "y.example.com",
			path:      "/",
			want:      "a",
			conflicts: []string{`"a" and "b" both claim host "y.example.com"`},
		},
		{
			name:   "three claimants",
			routes: []Route{route("c", "/"), route("a", "/"), route("b", "/")},
			host:   "x",
			path:   "/",
			want:   "a",
			conflicts: []string{
				`services "a" and "b" both claim host "*" path "/"`,
				`services "a" and "c" both claim host "*" path "/"`,
			},
		},
		{
			name:   "different paths do not conflict",
			routes: []Route{route("a", "/a"), route("b", "/b")},
			host:   "x",
			path:   "/b",
			want:   "b",
		},
		{
			name:   "a host route and a catch-all do not conflict",
			routes: []Route{route("a", "/"), route("b", "/", "b.example.com")},
			host:   "b.example.com",
			path:   "/",
			want:   "b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rt Router
			got := rt.Set(tt.routes)
			if len(got) != len(tt.conflicts) {
				t.Fatalf("Set: got conflicts %q, want %d containing %q", got, len(tt.conflicts), tt.conflicts)
			}
			for i, want := range tt.conflicts {
				if !strings.Contains(got[i], want) {
					t.Errorf("Set: got conflict %q, want it to contain %q", got[i], want)
				}
				if !strings.Contains(got[i], "dlb.host or dlb.path") {
					t.Errorf("Set: got conflict %q, want it to name the labels that fix it", got[i])
				}
			}
			if w := lookup(&rt, tt.host, tt.path); w != tt.want {
				t.Errorf("Lookup(%q, %q): got %q, want the winner %q", tt.host, tt.path, w, tt.want)
			}
		})
	}
}

// Set keeps the caller's slice as it was: the registry builds it from a map
// and may reuse it.
func TestRouterSetDoesNotReorderItsInput(t *testing.T) {
	routes := []Route{route("z", "/"), route("a", "/api"), route("m", "/a/b/c")}
	var before []string
	for _, r := range routes {
		before = append(before, r.Service)
	}
	var rt Router
	rt.Set(routes)
	var after []string
	for _, r := range routes {
		after = append(after, r.Service)
	}
	if !slices.Equal(before, after) {
		t.Errorf("Set: got input reordered to %q, want %q", after, before)
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		input, want string
	}{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"example.com:8080", "example.com"},
		{"example.com.", "example.com"},
		{"EXAMPLE.com.:80", "example.com"},
		{"[::1]:8080", "[::1]"},
		{"[::1]", "[::1]"},
		{"", ""},
	}
	for _, tt := range tests {
		if got, _ := normalizeHost(tt.input, nil); string(got) != tt.want {
			t.Errorf("normalizeHost(%q): got %q, want %q", tt.input, got, tt.want)
		}
	}
}

func TestRouterLookupDoesNotAllocate(t *testing.T) {
	rt := benchRouter()
	tests := []struct{ name, host, path string }{
		{"host", "svc42.example.com", "/index.html"},
		{"host with port", "svc43.example.com:8080", "/api/v43/users"},
		{"catch-all", "unknown.example.com", "/p17/x"},
		{"miss", "unknown.example.com", "/nothing"},
		{"wildcard", "a.b.t07.example.com", "/x"},
		{"upper case", "SVC42.Example.com", "/"},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, func() { rt.Lookup(tt.host, tt.path) }); got != 0 {
			t.Errorf("Lookup(%q, %q): got %v allocations per call, want 0", tt.host, tt.path, got)
		}
	}
}

// benchRouter is a table of 120 routes: 80 for hosts svc00..svc79 (half of
// them with a path), 20 for wildcards *.t00.example.com..*.t19.example.com,
// 20 for any host with paths /p00../p19.
func benchRouter() *Router {
	var routes []Route
	for i := range 80 {
		path := "/"
		if i%2 == 1 {
			path = fmt.Sprintf("/api/v%d", i)
		}
		routes = append(routes, route(fmt.Sprintf("svc%02d", i), path, fmt.Sprintf("svc%02d.example.com", i)))
	}
	for i := range 20 {
		routes = append(routes, route(fmt.Sprintf("any%02d", i), fmt.Sprintf("/p%02d", i)))
		routes = append(routes, route(fmt.Sprintf("wild%02d", i), "/", fmt.Sprintf("*.t%02d.example.com", i)))
	}
	rt := &Router{}
	rt.Set(routes)
	return rt
}

func BenchmarkLookup(b *testing.B) {
	rt := benchRouter()
	cases := []struct {
		name, host, path, want string
	}{
		{"host", "svc42.example.com", "/index.html", "svc42"},
		{"host with port and path", "svc43.example.com:8080", "/api/v43/users/1", "svc43"},
		{"catch-all", "unknown.example.com", "/p17/x", "any17"},
		{"miss", "unknown.example.com", "/nothing", ""},
		{"wildcard", "a.b.t07.example.com", "/x", "wild07"},
		{"upper case", "SVC42.Example.com", "/", "svc42"},
	}
	for _, c := range cases {
		if got := lookup(rt, c.host, c.path); got != c.want {
			b.Fatalf("Lookup(%q, %q): got %q, want %q", c.host, c.path, got, c.want)
		}
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rt.Lookup(c.host, c.path)
			}
		})
	}
}

// dlb.host accepts "*.example.com", documented in discovery (parseHosts) as
// "a wildcard for one or more labels in front of example.com", and the
// registry passes it to the router as it is. The router must then match it.
func TestRouterWildcardHost(t *testing.T) {
	var rt Router
	rt.Set([]Route{route("wild", "/", "*.example.com"), route("exact", "/", "www.example.com")})
	tests := []struct {
		name, host, want string
	}{
		{"one label in front", "api.example.com", "wild"},
		{"several labels in front", "a.b.example.com", "wild"},
		{"upper case with port", "API.Example.com:8080", "wild"},
		{"an exact host beats the wildcard", "www.example.com", "exact"},
		{"the bare domain is not matched", "example.com", ""},
		{"another domain", "api.example.org", ""},
		{"a domain that only ends the same", "api.notexample.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lookup(&rt, tt.host, "/"); got != tt.want {
				t.Errorf("Lookup(%q, /) with a route for *.example.com: got %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}
