package main

// Real-engine tests of routing and balancing: several services behind one
// dlb by host, wildcard and path; path stripping; sticky sessions through a
// replica's stop; canary weights across two Compose services; hashing on a
// header.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fetch sends GET url with the Host and the headers given, and returns the
// response (body read and closed) and its body.
func fetch(url, host string, header http.Header) (*http.Response, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	if host != "" {
		req.Host = host
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, strings.TrimSpace(string(b)), err
}

// owners maps the hostnames of the given services' containers (the first
// 12 characters of the container ID, which the demo answers with) to the
// service.
func (p *project) owners(services ...string) map[string]string {
	p.t.Helper()
	m := map[string]string{}
	for _, s := range services {
		for _, id := range p.containers(s) {
			m[id[:12]] = s
		}
	}
	return m
}

const routingProject = `
services:
  web:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.host: web.example.test
    networks: [appnet]
  api:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.host: api.example.test,API2.example.test
    networks: [appnet]
  docs:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.host: web.example.test
      dlb.path: /docs
      dlb.path.strip: "true"
    networks: [appnet]
  tenant:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.host: "*.tenants.example.test"
    networks: [appnet]
networks:
  appnet: {}
`

// TestRoutingByHostAndPath: four services behind one dlb, none a catch-all:
// each host, wildcard and path prefix reaches its service; /docs is
// stripped; an unknown host gets 404 naming it.
func TestRoutingByHostAndPath(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, routingProject)
	p.compose("up", "-d", "--no-build", "--scale", "web=2", "--scale", "api=2")
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	for pool, n := range map[string]int{"web": 2, "api": 2, "docs": 1, "tenant": 1} {
		d.waitReady(t, p.name+"-"+pool, n, 30*time.Second)
	}
	owner := p.owners("web", "api", "docs", "tenant")

	for _, tc := range []struct {
		host, path, want string
	}{
		{"web.example.test", "/", "web"},
		{"web.example.test:8080", "/anything/else", "web"},
		{"WEB.Example.Test", "/", "web"},
		{"api.example.test", "/", "api"},
		{"api2.example.test", "/docs", "api"}, // /docs is web.example.test's only
		{"web.example.test", "/docs", "docs"},
		{"web.example.test", "/docs/guide", "docs"},
		{"web.example.test", "/docsx", "web"}, // whole segments only
		{"acme.tenants.example.test", "/", "tenant"},
		{"eu.acme.tenants.example.test", "/x", "tenant"},
	} {
		seen := map[string]bool{}
		for range 6 {
			code, body := getHost(d.proxyURL+tc.path, tc.host)
			if code != http.StatusOK {
				t.Fatalf("GET %s with Host %s: %d %q, want 200 from %s", tc.path, tc.host, code, body, tc.want)
			}
			replica := strings.TrimSpace(body)
			if got := owner[replica]; got != tc.want {
				t.Errorf("GET %s with Host %s: answered by %s (%s), want service %s", tc.path, tc.host, replica, got, tc.want)
			}
			seen[replica] = true
		}
		if tc.want == "web" || tc.want == "api" {
			if len(seen) != 2 {
				t.Errorf("6 GETs %s with Host %s: answered by %d replicas, want both of %s", tc.path, tc.host, len(seen), tc.want)
			}
		}
	}

	// dlb.path.strip: the docs replica gets /echo-headers for
	// /docs/echo-headers (unstripped, the demo would answer its name), with
	// the Host and query untouched.
	docs := ""
	for replica, svc := range owner {
		if svc == "docs" {
			docs = replica
		}
	}
	for _, path := range []string{"/docs/echo-headers", "/docs/echo-headers?page=2"} {
		code, body := getHost(d.proxyURL+path, "web.example.test")
		if code != 200 || !strings.HasPrefix(body, "Host: web.example.test\n") {
			t.Errorf("GET %s on web.example.test: %d %q, want the demo's /echo-headers (Host: web.example.test ...)", path, code, body)
		}
	}
	if code, body := getHost(d.proxyURL+"/docs/echo-headers/x", "web.example.test"); code != 200 || strings.TrimSpace(body) != docs {
		t.Errorf("GET /docs/echo-headers/x: %d %q, want docs' / (its name, %s)", code, body, docs)
	}
	// web, without strip, gets the whole path.
	if code, body := getHost(d.proxyURL+"/x/echo-headers", "web.example.test"); code != 200 || owner[strings.TrimSpace(body)] != "web" {
		t.Errorf("GET /x/echo-headers on web: %d %q, want a web replica's name (the path untouched)", code, body)
	}

	// No catch-all: an unknown host, or the wildcard's bare domain, is 404
	// with a message naming the host.
	for _, host := range []string{"unknown.example.test", "tenants.example.test", "example.test"} {
		code, body := getHost(d.proxyURL+"/", host)
		if code != http.StatusNotFound || !strings.Contains(body, `"`+host+`"`) {
			t.Errorf("GET / with Host %s: %d %q, want 404 naming the host", host, code, body)
		}
	}
}

// TestStickyThroughDLB: dlb.sticky=true pins a client to a replica over 50
// requests; when that replica is stopped with docker stop, the client's
// requests go on without an error and it is pinned to another replica.
func TestStickyThroughDLB(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, strings.Replace(appProject, `dlb.port: "80"`, `dlb.port: "80"
      dlb.sticky: "true"`, 1))
	p.scale("app", 3)
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	pool := p.name + "-app"
	d.waitReady(t, pool, 3, 30*time.Second)

	resp, first, err := fetch(d.proxyURL+"/", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first GET: %v %v", resp, err)
	}
	cookie := dlbCookie(resp)
	if cookie == nil {
		t.Fatalf("first GET to a sticky service set no dlb_ cookie; Set-Cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" {
		t.Errorf("cookie %q: want HttpOnly, SameSite=Lax, Path=/", cookie.String())
	}
	for _, id := range p.containers("app") {
		if strings.Contains(cookie.Value, id[:12]) {
			t.Errorf("cookie %q reveals container %s", cookie.Value, id[:12])
		}
	}
	withCookie := http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}}
	for i := range 50 {
		resp, body, err := fetch(d.proxyURL+"/", "", withCookie)
		if err != nil || resp.StatusCode != 200 || body != first {
			t.Fatalf("request %d with the cookie: %v %q %v, want 200 from %s", i+1, resp, body, err, first)
		}
	}
	// Without the cookie, clients spread as usual.
	if got := spread(t, d.proxyURL+"/", 30); len(got) != 3 {
		t.Errorf("30 GETs without the cookie reached %d replicas, want 3: %v", len(got), got)
	}

	// Stop the pinned replica while the client keeps sending its cookie.
	var pinned string
	for _, id := range p.containers("app") {
		if id[:12] == first {
			pinned = id
		}
	}
	if pinned == "" {
		t.Fatalf("no container of app has hostname %s", first)
	}
	var wg sync.WaitGroup
	stopped := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(stopped)
		docker(t, "stop", "-t", "5", pinned)
	}()
	var repinned *http.Cookie
	var newReplica string
	deadline := time.Now().Add(60 * time.Second)
	for n := 0; ; n++ {
		resp, body, err := fetch(d.proxyURL+"/", "", withCookie)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d with the cookie while its replica stops: %v %q %v, want 200", n+1, resp, body, err)
		}
		if body != first {
			if repinned = dlbCookie(resp); repinned == nil || repinned.Value == cookie.Value {
				t.Fatalf("request %d went to %s instead of the stopping %s, but got no new cookie (Set-Cookie %q)", n+1, body, first, resp.Header.Values("Set-Cookie"))
			}
			newReplica = body
			break
		}
		if time.Now().After(deadline) || n > 20000 {
			t.Fatalf("after %d requests in %s the cookie still pins to the stopped replica %s", n+1, 60*time.Second, first)
		}
	}
	wg.Wait()
	<-stopped
	// The new cookie holds.
	withNew := http.Header{"Cookie": {repinned.Name + "=" + repinned.Value}}
	for i := range 50 {
		resp, body, err := fetch(d.proxyURL+"/", "", withNew)
		if err != nil || resp.StatusCode != 200 || body != newReplica {
			t.Fatalf("request %d with the new cookie: %v %q %v, want 200 from %s", i+1, resp, body, err, newReplica)
		}
		if c := dlbCookie(resp); c != nil {
			t.Fatalf("request %d with a valid cookie set it again: %q", i+1, c.String())
		}
	}
	// And the old one, now stale, is re-pinned at once without an error.
	resp, body, err := fetch(d.proxyURL+"/", "", withCookie)
	if err != nil || resp.StatusCode != 200 || body == first || dlbCookie(resp) == nil {
		t.Errorf("GET with the stale cookie after the stop: %v %q %v, want 200 from another replica and a new cookie", resp, body, err)
	}
}

// dlbCookie returns the response's cookie whose name starts with dlb_.
func dlbCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "dlb_") {
			return c
		}
	}
	return nil
}

// TestCanaryWeights: two Compose services that set the same dlb.service
// share one pool; app-v2 with dlb.weight 1 beside app-v1 with 9 gets a
// tenth of the requests.
func TestCanaryWeights(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, `
services:
  app-v1:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.service: shop
      dlb.weight: "9"
    networks: [appnet]
  app-v2:
    image: dlb-demo:dev
    labels:
      dlb.enable: "true"
      dlb.service: shop
      dlb.weight: "1"
    networks: [appnet]
networks:
  appnet: {}
`)
	p.compose("up", "-d", "--no-build")
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	d.waitReady(t, "shop", 2, 30*time.Second)
	for _, pv := range d.pools() {
		if pv.Name != "shop" && strings.HasPrefix(pv.Name, p.name) {
			t.Errorf("pool %s: the two services should share pool shop", pv.Name)
		}
	}
	owner := p.owners("app-v1", "app-v2")
	const n = 2000
	got := map[string]int{}
	start := time.Now()
	for i := range n {
		code, body := get(d.proxyURL + "/")
		if code != 200 {
			t.Fatalf("request %d: %d %q", i+1, code, body)
		}
		got[owner[strings.TrimSpace(body)]]++
		if time.Since(start) > 90*time.Second {
			t.Fatalf("%d requests took over 90s", i+1)
		}
	}
	share := float64(got["app-v2"]) / n
	t.Logf("%d requests: %v (app-v2 %.1f%%)", n, got, 100*share)
	if share < 0.07 || share > 0.13 || got["app-v1"]+got["app-v2"] != n {
		t.Errorf("%d requests: %v; want app-v2 to get 10%% ±3 points (got %.1f%%)", n, got, 100*share)
	}
}

// TestHashHeaderThroughDLB: dlb.balance=hash with dlb.hash.header=X-User
// keeps each user on one replica, and spreads the users.
func TestHashHeaderThroughDLB(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	requireDocker(t)
	p := newProject(t, strings.Replace(appProject, `dlb.port: "80"`, `dlb.port: "80"
      dlb.balance: hash
      dlb.hash.header: X-User`, 1))
	p.scale("app", 3)
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	pool := p.name + "-app"
	d.waitReady(t, pool, 3, 30*time.Second)
	for _, pv := range d.pools() {
		if pv.Name == pool && pv.Policy != "hash" {
			t.Errorf("pool %s: policy %q, want hash", pool, pv.Policy)
		}
	}
	replicas := map[string]int{}
	for u := range 30 {
		user := http.Header{"X-User": {fmt.Sprintf("user-%d", u)}}
		var first string
		for i := range 10 {
			resp, body, err := fetch(d.proxyURL+"/", "", user)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("user-%d request %d: %v %v", u, i+1, resp, err)
			}
			if i == 0 {
				first = body
				replicas[body]++
			} else if body != first {
				t.Fatalf("user-%d: request 1 went to %s, request %d to %s", u, first, i+1, body)
			}
		}
	}
	if len(replicas) != 3 {
		t.Errorf("30 users landed on %d replicas (%v), want all 3", len(replicas), replicas)
	}
}
