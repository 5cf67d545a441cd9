package admin

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type staticSource struct{ changed chan struct{} }

func (s staticSource) Pools() []Pool {
	return []Pool{{Name: "shop", Path: "/", Policy: "round_robin", Replicas: []Replica{{Name: "shop_1", Address: "10.0.0.2:80", State: "ready"}}}}
}
func (staticSource) Healthy() (bool, string)    { return true, "" }
func (s staticSource) Changed() <-chan struct{} { return s.changed }

func TestGuard(t *testing.T) {
	g := Guard{Hosts: []string{"dlb.internal"}, Token: "tok"}
	srv := httptest.NewServer(g.Wrap(Handler(staticSource{make(chan struct{})})))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name, host, path, auth, cookie string
		want                           int
	}{
		{"foreign host, even with the token", "evil.example", "/api/pools", "Bearer tok", "", http.StatusMisdirectedRequest},
		{"rebinding name with a port", "attacker.test:8080", "/healthz", "", "", http.StatusMisdirectedRequest},
		{"IP literal without token", "127.0.0.1:8080", "/api/pools", "", "", http.StatusUnauthorized},
		{"IPv6 literal with token", "[::1]:8080", "/api/pools", "Bearer tok", "", http.StatusOK},
		{"localhost with token", "LOCALHOST:8080", "/api/pools", "bearer tok", "", http.StatusOK},
		{"listed name with token", "dlb.internal", "/api/pools", "Bearer tok", "", http.StatusOK},
		{"wrong token", "127.0.0.1", "/api/pools", "Bearer tok2", "", http.StatusUnauthorized},
		{"cookie", "127.0.0.1", "/api/events", "", "tok", http.StatusOK},
		{"healthz needs no token", "127.0.0.1", "/healthz", "", "", http.StatusOK},
		{"token in the URL sets the cookie", "127.0.0.1", "/?token=tok", "", "", http.StatusSeeOther},
		{"wrong token in the URL", "127.0.0.1", "/?token=nope", "", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			req.Host = tc.host
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: TokenCookie, Value: tc.cookie})
			}
			if strings.HasSuffix(tc.path, "events") {
				ctx, cancel := contextWithTimeout(200 * time.Millisecond)
				defer cancel()
				req = req.WithContext(ctx)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("GET %s, Host %q: %d, want %d", tc.path, tc.host, resp.StatusCode, tc.want)
			}
		})
	}
}

// TestEventsCapped: streams over MaxEventStreams get 503.
func TestEventsCapped(t *testing.T) {
	srv := httptest.NewServer(Handler(staticSource{make(chan struct{})}))
	defer srv.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range MaxEventStreams {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write([]byte("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
			t.Fatalf("event stream %d: %q %v, want 200", len(conns), line, err)
		}
	}
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("event stream %d: %d, want 503", MaxEventStreams+1, resp.StatusCode)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// TestSelf: /api/self answers behind the guard's token, and FetchSelf reads
// what it says.
func TestSelf(t *testing.T) {
	want := Self{ID: strings.Repeat("ab", 32), Version: "v9", Serving: true}
	h := NewHandler(staticSource{make(chan struct{})}, Options{Guard: Guard{Token: "tok"}, Self: func() Self { return want }})
	srv := httptest.NewServer(h)
	defer srv.Close()
	if _, err := FetchSelf(context.Background(), srv.URL, "", time.Second); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Errorf("FetchSelf without the token: %v, want an error asking for it", err)
	}
	got, err := FetchSelf(context.Background(), srv.URL, "tok", time.Second)
	if err != nil || got != want {
		t.Errorf("FetchSelf: %+v, %v; want %+v", got, err, want)
	}
	old := httptest.NewServer(NewHandler(staticSource{make(chan struct{})}, Options{}))
	defer old.Close()
	if _, err := FetchSelf(context.Background(), old.URL, "", time.Second); err == nil || !strings.Contains(err.Error(), "no /api/self") {
		t.Errorf("FetchSelf from a dlb without /api/self: %v, want an error saying so", err)
	}
}
