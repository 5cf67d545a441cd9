package proxy

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// hosts is route with comma-separated hosts ("" for any host).
func hosts(service, list, path string) Route {
	if list == "" {
		return route(service, path)
	}
	return route(service, path, strings.Split(list, ",")...)
}

func TestRouterPrecedence(t *testing.T) {
	routes := []Route{
		hosts("web", "example.com", "/"),
		hosts("api", "example.com", "/api"),
		hosts("api-v2", "example.com", "/api/v2"),
		hosts("tenants", "*.example.com", "/"),
		hosts("tenant-admin", "*.example.com", "/admin"),
		hosts("eu", "*.eu.example.com", "/"),
		hosts("shop", "shop.example.com,store.example.com", "/"),
		hosts("catchall", "", "/"),
		hosts("files", "", "/files"),
		hosts("onlypath", "static.example.org", "/assets"),
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

func TestRouterDeepPaths(t *testing.T) {
	var rt Router
	rt.Set([]Route{route("a", "/a"), route("abc", "/a/b/c"), route("x", "/x/y"), route("root", "/", "h.example")})
	for _, tc := range []struct{ host, path, want string }{
		{"", "/a/b/c/d/e", "abc"},
		{"", "/a/b/c", "abc"},
		{"", "/a/b/c/", "abc"},
		{"", "/a/b/cd", "a"},
		{"", "/a/b", "a"},
		{"", "/a//b/c", "a"},
		{"", "/ab", ""},
		{"", "/x", ""},
		{"", "/x/y/z", "x"},
		{"", "", ""},
		{"", "*", ""},
		{"h.example", "/a/b/c", "root"}, // the host's own routes first
	} {
		if got := lookup(&rt, tc.host, tc.path); got != tc.want {
			t.Errorf("Lookup(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestRouterNoCatchAll(t *testing.T) {
	var rt Router
	if got := rt.Lookup("example.com", "/"); got != nil {
		t.Errorf("zero Router: Lookup = %s, want nil", got.Service)
	}
	rt.Set([]Route{hosts("web", "example.com", "/"), hosts("wild", "*.example.org", "/"), hosts("api", "", "/api")})
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

func TestRouterWildcardConflicts(t *testing.T) {
	var rt Router
	conflicts := rt.Set([]Route{
		hosts("b-app", "example.com", "/api"),
		hosts("a-app", "example.com,other.com", "/api"),
		hosts("c-app", "*.example.com", "/"),
		hosts("d-app", "*.example.com", "/"),
		hosts("e-app", "", "/"),
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
func TestRouterSetCopies(t *testing.T) {
	routes := []Route{hosts("web", "example.com", "/")}
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

// BenchmarkLookupScale shows that a lookup costs the same in a table of 10
// services as in one of 10,000: a third on exact hosts, a third on
// wildcards, a third on paths of any host.
func BenchmarkLookupScale(b *testing.B) {
	for _, n := range []int{10, 10000} {
		routes := make([]Route, 0, n+1)
		for i := range n {
			switch i % 3 {
			case 0:
				routes = append(routes, route(fmt.Sprint("exact", i), "/", fmt.Sprintf("svc%d.example.com", i)))
			case 1:
				routes = append(routes, route(fmt.Sprint("wild", i), "/", fmt.Sprintf("*.t%d.example.com", i)))
			default:
				routes = append(routes, route(fmt.Sprint("path", i), fmt.Sprintf("/p%d", i)))
			}
		}
		var rt Router
		rt.Set(routes)
		for _, c := range []struct{ name, host, path, want string }{
			{"exact", "svc3.example.com:8080", "/x/y", "exact3"},
			{"wildcard", "a.b.t4.example.com", "/x", "wild4"},
			{"path", "unknown.example.net", "/p5/x/y", "path5"},
		} {
			b.Run(fmt.Sprintf("%d/%s", n, c.name), func(b *testing.B) {
				if got := lookup(&rt, c.host, c.path); got != c.want {
					b.Fatalf("Lookup(%q, %q) = %q, want %q", c.host, c.path, got, c.want)
				}
				b.ReportAllocs()
				for b.Loop() {
					rt.Lookup(c.host, c.path)
				}
			})
		}
	}
}
