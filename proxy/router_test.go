package proxy

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/dlb-lb/dlb/balancer"
)

func route(service, hosts, path string) Route {
	r := Route{Service: service, Path: path}
	if hosts != "" {
		r.Hosts = strings.Split(hosts, ",")
	}
	return r
}

func TestLookup(t *testing.T) {
	routes := []Route{
		route("web", "example.com", "/"),
		route("api", "example.com", "/api"),
		route("api-v2", "example.com", "/api/v2"),
		route("tenants", "*.example.com", "/"),
		route("tenant-admin", "*.example.com", "/admin"),
		route("eu", "*.eu.example.com", "/"),
		route("shop", "shop.example.com,store.example.com", "/"),
		route("catchall", "", "/"),
		route("files", "", "/files"),
		route("onlypath", "static.example.org", "/assets"),
	}
	var rt Router
	if c := rt.Set(routes); len(c) != 0 {
		t.Fatalf("Set: conflicts %q, want none", c)
	}
	for _, tc := range []struct{ host, path, want string }{
		{"example.com", "/", "web"},
		{"example.com", "/index.html", "web"},
		{"example.com", "/api", "api"},
		{"example.com", "/api/users", "api"},
		{"example.com", "/apix", "web"}, // whole segments only
		{"example.com", "/api/v2/x", "api-v2"},
		{"example.com", "/api/v22", "api"},
		{"EXAMPLE.com:8080", "/api", "api"},  // case and port do not matter
		{"example.com.", "/api", "api"},      // nor a trailing dot
		{"a.example.com", "/", "tenants"},    // wildcard
		{"a.b.example.com", "/x", "tenants"}, // one or more labels
		{"A.Example.COM", "/admin/x", "tenant-admin"},
		{"x.eu.example.com", "/", "eu"},    // the most specific wildcard wins
		{"eu.example.com", "/", "tenants"}, // *.eu.example.com does not match eu.example.com
		{"shop.example.com", "/", "shop"},  // exact beats wildcard
		{"store.example.com", "/cart", "shop"},
		{"shop.example.com", "/admin", "shop"}, // the exact host's "/" beats the wildcard's "/admin"
		{"example.org", "/", "catchall"},       // unknown host: catch-all
		{"example.org", "/files/a", "files"},
		{"example.com", "/files/a", "web"}, // the host's own routes first
		{"static.example.org", "/assets/a.css", "onlypath"},
		{"static.example.org", "/other", "catchall"}, // falls through to the catch-all
		{"", "/", "catchall"},
		{"[::1]:80", "/", "catchall"},
		{strings.Repeat("a", 300) + ".example.com", "/", "catchall"}, // too long to be a name
		{"com", "/", "catchall"},
		{".example.com", "/", "tenants"},
	} {
		got := rt.Lookup(tc.host, tc.path)
		name := "<nil>"
		if got != nil {
			name = got.Service
		}
		if name != tc.want {
			t.Errorf("Lookup(%q, %q) = %s, want %s", tc.host, tc.path, name, tc.want)
		}
	}
}

func TestLookupNoCatchAll(t *testing.T) {
	var rt Router
	if got := rt.Lookup("example.com", "/"); got != nil {
		t.Errorf("zero Router: Lookup = %s, want nil", got.Service)
	}
	rt.Set([]Route{route("web", "example.com", "/"), route("wild", "*.example.org", "/"), route("api", "", "/api")})
	for _, tc := range []struct{ host, path string }{
		{"other.com", "/"},
		{"example.org", "/"}, // the wildcard does not match the bare name
		{"example.com.evil.com", "/"},
		{"evilexample.com", "/"},
	} {
		if got := rt.Lookup(tc.host, tc.path); got != nil {
			t.Errorf("Lookup(%q, %q) = %s, want nil (no route for that host)", tc.host, tc.path, got.Service)
		}
	}
}

func TestSetConflicts(t *testing.T) {
	var rt Router
	conflicts := rt.Set([]Route{
		route("b-app", "example.com", "/api"),
		route("a-app", "example.com,other.com", "/api"),
		route("c-app", "*.example.com", "/"),
		route("d-app", "*.example.com", "/"),
		route("e-app", "", "/"),
	})
	want := []string{
		`services "a-app" and "b-app" both claim host "example.com" path "/api"; "a-app" wins`,
		`services "c-app" and "d-app" both claim host "*.example.com" path "/"; "c-app" wins`,
	}
	if len(conflicts) != len(want) {
		t.Fatalf("conflicts = %q, want %d", conflicts, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(conflicts[i], want[i]) {
			t.Errorf("conflict %d = %q, want it to start with %q", i, conflicts[i], want[i])
		}
	}
	for _, tc := range []struct{ host, path, want string }{
		{"example.com", "/api", "a-app"},
		{"x.example.com", "/", "c-app"},
	} {
		if got := rt.Lookup(tc.host, tc.path); got == nil || got.Service != tc.want {
			t.Errorf("Lookup(%q, %q) = %v, want %s (the winner, every time)", tc.host, tc.path, got, tc.want)
		}
	}
}

// TestSetCopies: Set keeps its own copy; changing the caller's slice later
// changes nothing.
func TestSetCopies(t *testing.T) {
	routes := []Route{route("web", "example.com", "/")}
	var rt Router
	rt.Set(routes)
	routes[0].Service = "changed"
	if got := rt.Lookup("example.com", "/"); got == nil || got.Service != "web" {
		t.Errorf("after the caller changed its slice, Lookup = %v, want web", got)
	}
}

func TestStripPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix, in        string // in: the request's escaped path (and query)
		wantPath, wantRaw string // wantRaw: the outgoing path as escaped
	}{
		{"/api", "/api/users", "/users", "/users"},
		{"/api", "/api", "/", "/"},
		{"/api", "/api/", "/", "/"},
		{"/api", "/api/users?x=1", "/users", "/users"},
		{"/api/v1", "/api/v1/a/b", "/a/b", "/a/b"},
		{"/", "/api/users", "/api/users", "/api/users"},
		{"/api", "/api/a%2Fb", "/a/b", "/a%2Fb"},          // an escaped slash stays escaped
		{"/api", "/api/caf%C3%A9", "/café", "/caf%C3%A9"}, // plain escapes
		{"/api", "/%61pi/a%2Fb", "/a/b", "/a%2Fb"},        // the prefix escaped in the request
		{"/api", "/api%2Fx", "/x", "/x"},                  // routed as /api/x (decoded), so forwarded as /x
		{"/api", "/apix/y", "/apix/y", "/apix/y"},         // not the prefix: untouched
	} {
		u, err := url.Parse("http://h" + tc.in)
		if err != nil {
			t.Fatal(err)
		}
		stripPrefix(u, tc.prefix)
		if u.Path != tc.wantPath || u.EscapedPath() != tc.wantRaw {
			t.Errorf("strip %q from %q: Path %q, escaped %q; want %q, %q", tc.prefix, tc.in, u.Path, u.EscapedPath(), tc.wantPath, tc.wantRaw)
		}
		if q := strings.SplitN(tc.in, "?", 2); len(q) == 2 && u.RawQuery != q[1] {
			t.Errorf("strip %q from %q: query %q, want %q", tc.prefix, tc.in, u.RawQuery, q[1])
		}
	}
}

func TestDefaultCookieName(t *testing.T) {
	long := strings.Repeat("service", 8)
	for _, tc := range []struct{ service, want string }{
		{"app", "dlb_app"},
		{"myproj-web", "dlb_myproj_web"},
		{"My.Service", "dlb_my_service"},
		{long, "dlb_" + long[:23] + "_"},
	} {
		got := defaultCookieName(tc.service)
		if !strings.HasPrefix(got, tc.want) || tc.service != long && got != tc.want {
			t.Errorf("defaultCookieName(%q) = %q, want %q", tc.service, got, tc.want)
		}
		if len(got) > 4+32 {
			t.Errorf("defaultCookieName(%q) = %q: %d characters, want at most 36", tc.service, got, len(got))
		}
	}
	if a, b := defaultCookieName(long+"-a"), defaultCookieName(long+"-b"); a == b {
		t.Errorf("two long names share the cookie name %q", a)
	}
}

// manyRoutes is a table of n services, a third on exact hosts, a third on
// wildcards, a third on paths of the catch-all.
func manyRoutes(n int) []Route {
	rs := make([]Route, 0, n)
	for i := range n {
		switch i % 3 {
		case 0:
			rs = append(rs, route(fmt.Sprint("exact", i), fmt.Sprintf("svc%d.example.com", i), "/"))
		case 1:
			rs = append(rs, route(fmt.Sprint("wild", i), fmt.Sprintf("*.t%d.example.com", i), "/"))
		default:
			rs = append(rs, route(fmt.Sprint("path", i), "", fmt.Sprintf("/p%d", i)))
		}
	}
	rs = append(rs, Route{Service: "catchall", Path: "/", Pool: balancer.NewPool("catchall")})
	return rs
}

var lookupCases = []struct{ name, host, path string }{
	{"exact", "svc300.example.com:8080", "/x/y"},
	{"wildcard", "a.b.t301.example.com", "/x"},
	{"upper-case", "SVC300.Example.com", "/"},
	{"catch-all", "unknown.example.net", "/p302/x"},
}

func TestLookupAllocatesNothing(t *testing.T) {
	var rt Router
	rt.Set(manyRoutes(1000))
	for _, tc := range lookupCases {
		if rt.Lookup(tc.host, tc.path) == nil {
			t.Fatalf("%s: no route", tc.name)
		}
		if n := testing.AllocsPerRun(1000, func() { rt.Lookup(tc.host, tc.path) }); n != 0 {
			t.Errorf("%s: Lookup(%q, %q) allocates %.1f times, want 0", tc.name, tc.host, tc.path, n)
		}
	}
}

// BenchmarkLookup looks up routes in tables of 10 and 1,000 services.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 1000} {
		var rt Router
		rt.Set(manyRoutes(n))
		for _, tc := range lookupCases {
			host := strings.Replace(strings.Replace(tc.host, "300", fmt.Sprint(n/10*3), 1), "301", fmt.Sprint(n/10*3+1), 1)
			path := strings.Replace(tc.path, "302", fmt.Sprint(n/10*3+2), 1)
			b.Run(fmt.Sprintf("%d/%s", n, tc.name), func(b *testing.B) {
				if rt.Lookup(host, path) == nil {
					b.Fatalf("no route for %s%s", host, path)
				}
				b.ReportAllocs()
				for b.Loop() {
					rt.Lookup(host, path)
				}
			})
		}
	}
}
