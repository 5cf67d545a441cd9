package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dlb-lb/dlb/balancer"
)

func TestHostOfAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1:5000", "192.0.2.1"},
		{"[2001:db8::1]:5000", "2001:db8::1"},
		{"192.0.2.1", "192.0.2.1"},
		{"2001:db8::1", "2001:db8::1"},
		{"", ""},
		{"@", "@"},
	} {
		if got := hostOfAddr(tc.in); got != tc.want {
			t.Errorf("hostOfAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClientIP(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct client", "192.0.2.1:5000", nil, "192.0.2.1"},
		{"direct client's X-Forwarded-For is ignored", "192.0.2.1:5000", []string{"198.51.100.9"}, "192.0.2.1"},
		{"behind a trusted proxy", "10.0.0.5:5000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"the rightmost untrusted entry", "10.0.0.5:5000", []string{"203.0.113.66, 198.51.100.9, 10.1.1.1"}, "198.51.100.9"},
		{"several header lines", "10.0.0.5:5000", []string{"203.0.113.66", "198.51.100.9 , 10.1.1.1"}, "198.51.100.9"},
		{"only trusted entries: the peer", "10.0.0.5:5000", []string{"10.2.2.2"}, "10.0.0.5"},
		{"trusted proxy, no header", "10.0.0.5:5000", nil, "10.0.0.5"},
		{"garbage is an address like any", "10.0.0.5:5000", []string{"unknown"}, "unknown"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		r.Header["X-Forwarded-For"] = tc.xff
		if got := clientIP(r, trusted); got != tc.want {
			t.Errorf("%s: clientIP = %q, want %q", tc.name, got, tc.want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.5:5000"
	r.Header["X-Forwarded-For"] = []string{"203.0.113.66, 198.51.100.9, 10.1.1.1"}
	if n := testing.AllocsPerRun(100, func() { clientIP(r, trusted) }); n != 0 {
		t.Errorf("clientIP behind a trusted proxy allocates %.1f times, want 0", n)
	}
}

func TestOverTLS(t *testing.T) {
	trusted, _ := ParseTrustedProxies("10.0.0.0/8")
	for _, tc := range []struct {
		name, remote, proto string
		want                bool
	}{
		{"plain HTTP", "192.0.2.1:5000", "", false},
		{"a client's X-Forwarded-Proto is ignored", "192.0.2.1:5000", "https", false},
		{"a trusted proxy's https", "10.0.0.5:5000", "https", true},
		{"a trusted proxy's http", "10.0.0.5:5000", "http", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if tc.proto != "" {
			r.Header.Set("X-Forwarded-Proto", tc.proto)
		}
		if got := overTLS(r, trusted); got != tc.want {
			t.Errorf("%s: overTLS = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRequestKey(t *testing.T) {
	route := Route{RouteOptions: RouteOptions{HashHeader: "x-user"}}
	route.prepare()
	req := func(addr, user string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = addr
		if user != "" {
			r.Header.Set("X-User", user)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		r    *http.Request
		want uint64
	}{
		{"the header", req("192.0.2.1:1", "alice"), balancer.KeyOf("alice")},
		{"the header, whatever the address", req("192.0.2.2:9", "alice"), balancer.KeyOf("alice")},
		{"no header: the client IP", req("192.0.2.1:1", ""), balancer.KeyOf("192.0.2.1")},
		{"no header: the port does not matter", req("192.0.2.1:2", ""), balancer.KeyOf("192.0.2.1")},
	} {
		if got := requestKey(tc.r, &route, nil); got != tc.want {
			t.Errorf("%s: requestKey = %#x, want %#x", tc.name, got, tc.want)
		}
	}
	r := req("192.0.2.1:1", "alice")
	if n := testing.AllocsPerRun(100, func() { requestKey(r, &route, nil) }); n != 0 {
		t.Errorf("requestKey allocates %.1f times, want 0", n)
	}
}

// TestProxyHashHeader: with dlb.balance=hash and dlb.hash.header, each user
// stays on one replica, and users spread over the replicas.
func TestProxyHashHeader(t *testing.T) {
	p := balancer.NewPool("web")
	p.SetPolicy("hash")
	for i := 1; i <= 4; i++ {
		name := fmt.Sprint("web-", i)
		ready(t, p, name, newBackend(t, name, nil).addr())
	}
	f := newFront(t, Options{}, []Route{{Service: "web", Path: "/", RouteOptions: RouteOptions{HashHeader: "x-user"}, Pool: p}}, nil)
	do := func(user string) string {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/", nil)
		if user != "" {
			req.Header.Set("X-User", user)
		}
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b [16]byte
		n, _ := resp.Body.Read(b[:])
		return string(b[:n])
	}
	replicas := map[string]bool{}
	for u := range 40 {
		user := fmt.Sprint("user-", u)
		first := do(user)
		replicas[first] = true
		for range 5 {
			if got := do(user); got != first {
				t.Fatalf("%s went to %s, then %s", user, first, got)
			}
		}
	}
	if len(replicas) < 3 {
		t.Errorf("40 users landed on %d of 4 replicas, want them spread", len(replicas))
	}
	// Without the header, the client address: all of this test's requests
	// come from 127.0.0.1.
	first := do("")
	for range 10 {
		if got := do(""); got != first {
			t.Fatalf("without X-User from one address: %s, then %s", first, got)
		}
	}
}

func TestProxyStripPath(t *testing.T) {
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.RequestURI) })
	web := newBackend(t, "web", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.RequestURI) })
	apiPool, webPool := balancer.NewPool("api"), balancer.NewPool("web")
	ready(t, apiPool, "api-1", api.addr())
	ready(t, webPool, "web-1", web.addr())
	f := newFront(t, Options{}, []Route{
		{Service: "api", Path: "/api", RouteOptions: RouteOptions{StripPath: true}, Pool: apiPool},
		{Service: "web", Path: "/", Pool: webPool},
	}, nil)
	for _, tc := range []struct{ path, want string }{
		{"/api/users", "/users"},
		{"/api/users?page=2", "/users?page=2"},
		{"/api", "/"},
		{"/api/", "/"},
		{"/api/a%2Fb", "/a%2Fb"},
		{"/apix", "/apix"},           // not the prefix: the web route, untouched
		{"/web/api/x", "/web/api/x"}, // no strip on the web route
	} {
		if resp := f.do(t, http.MethodGet, "", tc.path, nil); resp.body != tc.want {
			t.Errorf("GET %s: the replica saw %q, want %q", tc.path, resp.body, tc.want)
		}
	}
}
