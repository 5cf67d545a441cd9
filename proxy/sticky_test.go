package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// stickyFront serves a sticky route over a pool of the named backends.
func stickyFront(t *testing.T, route Route, names ...string) (*front, *balancer.Pool, map[string]*balancer.Upstream) {
	t.Helper()
	p := balancer.NewPool(route.Service)
	route.Pool, route.Sticky = p, true
	ups := map[string]*balancer.Upstream{}
	for _, n := range names {
		ups[n] = ready(t, p, n, newBackend(t, n, nil).addr())
	}
	return newFront(t, Options{Retries: 2}, []Route{route}, nil), p, ups
}

// getWithCookie sends GET path with the cookie name=value (none if value
// is ""), and returns the answer and the cookie it sets, if any.
func (f *front) getWithCookie(t *testing.T, path, name, value string) (response, *http.Cookie) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if value != "" {
		req.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var set *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == name {
			if set != nil {
				t.Errorf("GET %s: cookie %s set twice", path, name)
			}
			set = c
		}
	}
	return response{resp.StatusCode, resp.Header, string(body)}, set
}

func TestStickyCookie(t *testing.T) {
	f, _, ups := stickyFront(t, Route{Service: "shop-web", Path: "/"}, "web-1", "web-2", "web-3")
	resp, c := f.getWithCookie(t, "/", "dlb_shop_web", "")
	if resp.status != http.StatusOK || c == nil {
		t.Fatalf("first GET: status %d, cookie %v; want 200 and a dlb_shop_web cookie (Set-Cookie: %q)", resp.status, c, resp.header.Values("Set-Cookie"))
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.MaxAge != 0 {
		t.Errorf("cookie %q: want HttpOnly, SameSite=Lax, Path=/, not Secure (plain HTTP), a session cookie", c.String())
	}
	if len(c.Value) != 16 {
		t.Errorf("cookie value %q: %d characters, want 16", c.Value, len(c.Value))
	}
	for _, u := range ups {
		if strings.Contains(c.Value, u.ID()) || strings.Contains(c.Value, u.Address()) || strings.Contains(c.Value, u.Name()) {
			t.Errorf("cookie value %q reveals replica %s (%s, %s)", c.Value, u.Name(), u.ID(), u.Address())
		}
	}
	// 50 requests with the cookie: all to the same replica, no new cookie.
	for i := range 50 {
		r, again := f.getWithCookie(t, "/", c.Name, c.Value)
		if r.body != resp.body {
			t.Fatalf("request %d with the cookie: answered by %s, want %s (the pinned replica)", i+1, r.body, resp.body)
		}
		if again != nil {
			t.Fatalf("request %d with a valid cookie set it again: %q", i+1, again.String())
		}
	}
}

// TestStickyRepins: when the pinned replica drains, stops, is removed, or
// the cookie names nothing known, the request is balanced as any other and
// gets a new cookie, without an error.
func TestStickyRepins(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p *balancer.Pool, u *balancer.Upstream) // to the pinned replica
	}{
		{"draining", func(p *balancer.Pool, u *balancer.Upstream) { p.Drain(u.ID()) }},
		{"stopped", func(p *balancer.Pool, u *balancer.Upstream) { p.Stop(u.ID()) }},
		{"removed", func(p *balancer.Pool, u *balancer.Upstream) { p.Remove(u.ID()) }},
		{"unhealthy", func(p *balancer.Pool, u *balancer.Upstream) { p.SetHealth(u.ID(), balancer.CheckActive, false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, p, ups := stickyFront(t, Route{Service: "web", Path: "/"}, "web-1", "web-2", "web-3")
			first, c := f.getWithCookie(t, "/", "dlb_web", "")
			tc.change(p, ups[first.body])
			resp, c2 := f.getWithCookie(t, "/", "dlb_web", c.Value)
			if resp.status != http.StatusOK || resp.body == first.body {
				t.Fatalf("after %s was %s: status %d from %q, want 200 from another replica", first.body, tc.name, resp.status, resp.body)
			}
			if c2 == nil || c2.Value == c.Value {
				t.Fatalf("after %s was %s: cookie %v, want a new one", first.body, tc.name, c2)
			}
			for i := range 20 {
				if r, _ := f.getWithCookie(t, "/", "dlb_web", c2.Value); r.body != resp.body {
					t.Fatalf("request %d with the new cookie: answered by %s, want %s", i+1, r.body, resp.body)
				}
			}
		})
	}
	t.Run("unknown token", func(t *testing.T) {
		f, _, _ := stickyFront(t, Route{Service: "web", Path: "/"}, "web-1", "web-2")
		for _, v := range []string{"AAAAAAAAAAAAAAAA", "not base64 at all!", strings.Repeat("x", 4000)} {
			resp, c := f.getWithCookie(t, "/", "dlb_web", v)
			if resp.status != http.StatusOK || c == nil || c.Value == v {
				t.Errorf("cookie value %.20q: status %d, new cookie %v; want 200 and a new cookie", v, resp.status, c)
			}
		}
	})
}

// TestStickySpreadsNewClients: clients without a cookie are balanced by the
// pool's policy (round robin here), each pinned where it landed.
func TestStickySpreadsNewClients(t *testing.T) {
	f, _, _ := stickyFront(t, Route{Service: "web", Path: "/"}, "web-1", "web-2", "web-3")
	got := map[string]int{}
	tokens := map[string]string{}
	for range 30 {
		resp, c := f.getWithCookie(t, "/", "dlb_web", "")
		got[resp.body]++
		if prev, ok := tokens[resp.body]; ok && prev != c.Value {
			t.Errorf("replica %s got two tokens: %q and %q", resp.body, prev, c.Value)
		}
		tokens[resp.body] = c.Value
	}
	if got["web-1"] != 10 || got["web-2"] != 10 || got["web-3"] != 10 {
		t.Errorf("30 new clients: %v, want 10 each", got)
	}
}

// TestStickyRetryGoesElsewhere: when the pinned replica fails, the retry
// never goes back to it, and the cookie is moved to the replica that
// answered.
func TestStickyRetryGoesElsewhere(t *testing.T) {
	p := balancer.NewPool("web")
	resetting, accepted := resetAddr(t)
	bad := ready(t, p, "web-bad", resetting)
	ready(t, p, "web-1", newBackend(t, "web-1", nil).addr())
	ready(t, p, "web-2", newBackend(t, "web-2", nil).addr())
	f := newFront(t, Options{Retries: 2}, []Route{{Service: "web", Path: "/", RouteOptions: RouteOptions{Sticky: true}, Pool: p}}, nil)
	token := f.px.sticky.index(p).tokenOf[bad]
	resp, c := f.getWithCookie(t, "/", "dlb_web", token)
	if resp.status != http.StatusOK || resp.body == "web-bad" {
		t.Fatalf("GET pinned to a replica that resets: status %d %q, want 200 from another", resp.status, resp.body)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the failing replica took %d connections, want 1 (no retry on it)", n)
	}
	if c == nil || c.Value == token || c.Value != f.px.sticky.index(p).tokenOf[p.Get("id-"+resp.body)] {
		t.Errorf("cookie after the retry: %v, want the token of %s", c, resp.body)
	}
}

func TestStickyCookieOptions(t *testing.T) {
	f, _, _ := stickyFront(t, Route{Service: "web", Path: "/app", RouteOptions: RouteOptions{StickyCookie: "session_pin"}}, "web-1")
	_, c := f.getWithCookie(t, "/app/x", "session_pin", "")
	if c == nil || c.Path != "/app" {
		t.Fatalf("dlb.sticky.cookie=session_pin on /app: cookie %v, want session_pin with Path=/app", c)
	}

	// Over TLS the cookie is Secure.
	p := balancer.NewPool("web")
	ready(t, p, "web-1", newBackend(t, "web-1", nil).addr())
	rt := &Router{}
	rt.Set([]Route{{Service: "web", Path: "/", RouteOptions: RouteOptions{Sticky: true}, Pool: p}})
	srv := httptest.NewTLSServer(New(rt, Options{}))
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.Timeout = 10 * time.Second
	client.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	resp, err := client.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if len(cs) != 1 || !cs[0].Secure || cs[0].Name != "dlb_web" {
		t.Errorf("over TLS: cookies %v, want one Secure dlb_web", cs)
	}
}

// TestNotStickyNoCookie: a route without dlb.sticky neither sets nor reads
// the cookie.
func TestNotStickyNoCookie(t *testing.T) {
	r, p := poolRoute("web")
	ready(t, p, "web-1", newBackend(t, "web-1", nil).addr())
	ready(t, p, "web-2", newBackend(t, "web-2", nil).addr())
	f := newFront(t, Options{}, []Route{r}, nil)
	got := map[string]int{}
	for range 10 {
		resp, c := f.getWithCookie(t, "/", "dlb_web", "whatever")
		if c != nil || len(resp.header.Values("Set-Cookie")) > 0 {
			t.Fatalf("a route without sticky set a cookie: %q", resp.header.Values("Set-Cookie"))
		}
		got[resp.body]++
	}
	if got["web-1"] != 5 || got["web-2"] != 5 {
		t.Errorf("10 requests with a cookie to a route without sticky: %v, want 5 each", got)
	}
}
