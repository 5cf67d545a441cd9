package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/h1"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// directReplica answers each request by its path (answers; 200 "ok" when
// none matches) and keeps the requests it read. In an answer, <hold> waits
// for hold to close before the rest, and a final <close> closes the
// connection.
type directReplica struct {
	mu       sync.Mutex
	reqs     []*http.Request
	accepted *atomic.Int32 // connections
}

func newDirectReplica(t *testing.T, answers map[string]string, hold chan struct{}) (string, *directReplica) {
	t.Helper()
	dr := &directReplica{}
	addr, accepted := rawServer(t, func(c net.Conn) {
		serveRequests(c, func(req *http.Request, _ *bufio.Reader) bool {
			dr.mu.Lock()
			dr.reqs = append(dr.reqs, req)
			dr.mu.Unlock()
			answer, ok := answers[req.URL.Path]
			if !ok {
				answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
			}
			if a, ok := strings.CutSuffix(answer, "<close>"); ok {
				io.WriteString(c, a)
				return false
			}
			first, rest, held := strings.Cut(answer, "<hold>")
			io.WriteString(c, first)
			if held {
				<-hold
				io.WriteString(c, rest)
			}
			return true
		})
	})
	dr.accepted = accepted
	return addr, dr
}

func (dr *directReplica) last(t *testing.T) *http.Request {
	t.Helper()
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if len(dr.reqs) == 0 {
		t.Fatal("the replica got no request")
	}
	return dr.reqs[len(dr.reqs)-1]
}

// TestDirectOverH2: bodyless requests over HTTP/2, which Proxy forwards
// without ReverseProxy (direct.go), reach the replica and come back as
// ReverseProxy made them: the forwarding fields dlb sets and none a client
// forged, Te: trailers kept, a stripped path with its query; 103 Early
// Hints passed on with their fields not in the final response; repeated
// fields; a chunked body's trailers; server-sent events flushed as they
// come; a body cut short seen as an error.
func TestDirectOverH2(t *testing.T) {
	hold := make(chan struct{})
	addr, dr := newDirectReplica(t, map[string]string{
		"/hints":    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
		"/cookies":  "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
		"/trailers": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n",
		"/events":   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 22\r\n\r\ndata: one\n\n<hold>data: two\n\n",
		"/cut":      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this<close>",
	}, hold)
	r, p := poolRoute("web")
	api, _ := poolRoute("web")
	api.Path, api.StripPath, api.Pool = "/api", true, p
	ready(t, p, "web-1", addr)
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r, api}), 0)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}, ForceAttemptHTTP2: true}
	c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	defer tr.CloseIdleConnections()
	get := func(t *testing.T, path string, hdr http.Header, trace *httptrace.ClientTrace) (*http.Response, string, error) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+f.addr+path, nil)
		for k, vv := range hdr {
			req.Header[k] = vv
		}
		if trace != nil {
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.Proto != "HTTP/2.0" {
			t.Fatalf("GET %s: got %s, want HTTP/2.0", path, resp.Proto)
		}
		return resp, string(b), err
	}

	t.Run("request head", func(t *testing.T) {
		resp, body, err := get(t, "/api/x/y?q=1&r=%20", http.Header{"Te": {"trailers"}, "X-Forwarded-For": {"6.6.6.6"},
			"X-Real-Ip": {"6.6.6.6"}, "Forwarded": {"for=6.6.6.6"}, "X-Forwarded-Host": {"evil"}, "X-App": {"a", "b"}}, nil)
		if err != nil || resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("got %v %q (%v), want 200 \"ok\"", resp, body, err)
		}
		got := dr.last(t)
		want := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": f.addr, "X-Forwarded-Proto": "https",
			"Te": "trailers", "X-Real-Ip": "", "Forwarded": ""}
		for k, v := range want {
			if got.Header.Get(k) != v || len(got.Header[k]) > 1 {
				t.Errorf("the replica got %s: %q, want %q", k, got.Header[k], v)
			}
		}
		if got.RequestURI != "/x/y?q=1&r=%20" || got.Host != f.addr || got.Proto != "HTTP/1.1" {
			t.Errorf("the replica got %s %s Host %q, want /x/y?q=1&r=%%20 HTTP/1.1 Host %q", got.RequestURI, got.Proto, got.Host, f.addr)
		}
		if vv := got.Header["X-App"]; len(vv) != 2 || vv[0] != "a" || vv[1] != "b" {
			t.Errorf("the replica got X-App %q, want [a b]", vv)
		}
	})

	t.Run("early hints", func(t *testing.T) {
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, http.StatusText(code)+" "+h.Get("Link"))
			return nil
		}}
		resp, body, err := get(t, "/hints", nil, trace)
		if err != nil || resp.StatusCode != 200 || body != "final" {
			t.Fatalf("got %v %q (%v), want 200 \"final\"", resp, body, err)
		}
		if len(hints) != 1 || hints[0] != "Early Hints </a.css>; rel=preload" {
			t.Errorf("1xx responses: got %q, want [\"Early Hints </a.css>; rel=preload\"]", hints)
		}
		if l := resp.Header.Get("Link"); l != "" {
			t.Errorf("the final response has the hint's Link %q, want none", l)
		}
	})

	t.Run("repeated fields", func(t *testing.T) {
		resp, _, err := get(t, "/cookies", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if vv := resp.Header["Set-Cookie"]; len(vv) != 2 || vv[0] != "a=1" || vv[1] != "b=2" {
			t.Errorf("Set-Cookie: got %q, want [a=1 b=2]", vv)
		}
	})

	t.Run("trailers", func(t *testing.T) {
		resp, body, err := get(t, "/trailers", nil, nil)
		if err != nil || body != "hello" {
			t.Fatalf("got %q (%v), want \"hello\"", body, err)
		}
		if v := resp.Trailer.Get("X-Sum"); v != "42" {
			t.Errorf("trailer X-Sum: got %q (trailers %v), want \"42\"", v, resp.Trailer)
		}
	})

	t.Run("server-sent events", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "https://"+f.addr+"/events", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first := make([]byte, len("data: one\n\n"))
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: one\n\n" {
			t.Fatalf("first event, while the replica holds the second: got %q (%v)", first, err)
		}
		close(hold)
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(rest) != "data: two\n\n" {
			t.Fatalf("second event: got %q (%v)", rest, err)
		}
	})

	t.Run("body cut short", func(t *testing.T) {
		_, body, err := get(t, "/cut", nil, nil)
		if err == nil {
			t.Fatalf("got %q and no error, want the client to see the body cut", body)
		}
	})
}

// TestDirectHandoffDropsConnectionFields: an HTTP/1.1 request that the fast
// engine hands to net/http (a dot segment) goes by the direct path too, and
// the fields its Connection field names stay with dlb.
func TestDirectHandoffDropsConnectionFields(t *testing.T) {
	addr, dr := newDirectReplica(t, nil, nil)
	r, p := poolRoute("app")
	ready(t, p, "app-1", addr)
	rc := serveScheme(t, "http", newTestProxy(t, Options{}, []Route{r}))()
	raw := "GET /a/../b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\n\r\n"
	if status, body, _, err := rc.sendRead(raw, "GET"); err != nil || status != 200 || body != "ok" {
		t.Fatalf("got %d %q (%v), want 200 \"ok\"", status, body, err)
	}
	got := dr.last(t)
	if got.Header.Get("X-Drop") != "" || got.Header.Get("X-Keep") != "2" || got.URL.Path != "/b" {
		t.Errorf("the replica got %s with X-Drop %q, X-Keep %q; want /b, no X-Drop, X-Keep \"2\"", got.URL.Path, got.Header.Get("X-Drop"), got.Header.Get("X-Keep"))
	}
}

// TestDirectClientGoneOverH2: an HTTP/2 client that resets its stream
// while the replica is still working on the request has the replica's
// connection closed (internal/h2's AfterAbort), so that the replica learns
// it too, as net/http's servers cancel a request's context.
func TestDirectClientGoneOverH2(t *testing.T) {
	closed := make(chan struct{})
	addr, _ := rawServer(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			close(closed) // dlb closed the connection: nothing more is coming
		}
	})
	r, p := poolRoute("web")
	ready(t, p, "web-1", addr)
	f := newTLSFront(t, newTestProxy(t, Options{}, []Route{r}), 0)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 300 * time.Millisecond}
	if resp, err := c.Get("https://" + f.addr + "/slow"); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d from a replica that never answers, want the client's timeout", resp.StatusCode)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the client reset its stream: the replica's connection is still open after 5s, want it closed")
	}
}

// TestDirectRelayOverH2: the relay's edge cases over HTTP/2, where the
// direct path turns a replica's HTTP/1.1 response into a stream: HEAD, 204
// and 304 with no body (and the replica's connection reused after them),
// a large body with a length and a chunked one (through flow control), a
// close-delimited body, a request retried on another replica when the
// first refuses the connection, and 504 when the replica sends no header
// within the route's response header timeout.
func TestDirectRelayOverH2(t *testing.T) {
	large := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	var chunked strings.Builder
	for i := 0; i < len(large); i += 100 << 10 {
		part := large[i:min(i+100<<10, len(large))]
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", len(part), part)
	}
	chunked.WriteString("0\r\n\r\n")
	addr, dr := newDirectReplica(t, map[string]string{
		"/head":    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		"/204":     "HTTP/1.1 204 No Content\r\n\r\n",
		"/304":     "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n",
		"/large":   "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(large)) + "\r\n\r\n" + large,
		"/chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String(),
		"/close":   "HTTP/1.1 200 OK\r\n\r\nuntil the end<close>",
		"/silent":  "<hold>",
	}, make(chan struct{}))
	r, p := poolRoute("web")
	r.ResponseHeaderTimeout = 300 * time.Millisecond
	ready(t, p, "a-dead", deadAddr(t)) // picked first: names sort
	ready(t, p, "b-live", addr)
	f := newTLSFront(t, newTestProxy(t, Options{Retries: 1}, []Route{r}), 0)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"HEAD", "/head", 200, ""},
		{"GET", "/204", 204, ""},
		{"GET", "/304", 304, ""},
		{"GET", "/large", 200, large},
		{"GET", "/chunked", 200, large},
		{"GET", "/close", 200, "until the end"},
		{"GET", "/after", 200, "ok"},
		{"GET", "/silent", 504, ""},
	} {
		req, _ := http.NewRequest(tc.method, "https://"+f.addr+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.Proto != "HTTP/2.0" || resp.StatusCode != tc.status || tc.status == 200 && string(b) != tc.body {
			t.Errorf("%s %s: got %s %d, %d bytes (%v); want HTTP/2.0 %d, %d bytes", tc.method, tc.path, resp.Proto, resp.StatusCode, len(b), err, tc.status, len(tc.body))
		}
		if tc.path == "/head" && resp.ContentLength != 5 {
			t.Errorf("HEAD: got Content-Length %d, want the replica's 5", resp.ContentLength)
		}
	}
	// Every request reached the live replica once, after the dead one
	// refused the first, and over few connections: the bodyless answers
	// left theirs reusable.
	dr.mu.Lock()
	n := len(dr.reqs)
	dr.mu.Unlock()
	if n != 8 {
		t.Errorf("the live replica got %d requests, want 8", n)
	}
	// One connection up to /close, which ends it; one after.
	if a := dr.accepted.Load(); a != 2 {
		t.Errorf("the live replica accepted %d connections for 8 requests, want 2", a)
	}
}

// FuzzDirectRequest checks the direct path's request head against
// net/http's parser: for any request a server could hand Proxy (a token
// method, an origin-form target, a valid Host and valid fields), the head
// parses, with the same method, target and Host, every field passed on but
// the hop-by-hop and forwarding ones, and dlb's X-Forwarded-For.
func FuzzDirectRequest(f *testing.F) {
	f.Add("GET", "/a/b?c=d", "example.com:8080", "Accept", "*/*", "X-Custom", "a, b")
	f.Add("POST", "/", "x", "Connection", "X-Drop", "X-Drop", "1")
	f.Add("DELETE", "/%2F?", "[::1]:80", "Te", "trailers, deflate", "User-Agent", "curl")
	f.Add("PUT", "/x;y", "h", "X-Forwarded-For", "1.2.3.4", "Forwarded", "for=x")
	f.Fuzz(func(t *testing.T, method, target, host, k1, v1, k2, v2 string) {
		// What screen and the servers let through: a target with no space
		// or control.
		u, err := url.ParseRequestURI(target)
		if !httpguts.ValidHeaderFieldName(method) || err != nil || !strings.HasPrefix(target, "/") || u.Opaque != "" || !plainQuery(u.RawQuery) ||
			host == "" || !httpguts.ValidHostHeader(host) || strings.ContainsAny(host, " \t") {
			return
		}
		h := http.Header{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if !httpguts.ValidHeaderFieldName(kv[0]) || !httpguts.ValidHeaderFieldValue(kv[1]) {
				return
			}
			k := http.CanonicalHeaderKey(kv[0])
			if k == "Host" {
				return // Request.Host, never a field
			}
			h[k] = append(h[k], strings.TrimSpace(kv[1]))
		}
		r := &http.Request{Method: method, URL: u, Host: host, Header: h, RemoteAddr: "10.0.0.1:5"}
		head := appendDirectRequest(nil, r, &Route{Path: "/"})
		got, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("net/http cannot parse %q: %v", head, err)
		}
		if got.Method != method || got.RequestURI != u.RequestURI() || got.Host != host {
			t.Fatalf("%q: got %s %s Host %q, want %s %s Host %q", head, got.Method, got.RequestURI, got.Host, method, u.RequestURI(), host)
		}
		conn := h["Connection"]
		for k, vv := range h {
			name := []byte(k)
			if h1.HopByHop(name) || forwardingField(name) || k == "Content-Length" || conn != nil && listsToken(conn, k) {
				continue
			}
			if k == "User-Agent" {
				vv = vv[:1]
			}
			if fmt.Sprint(got.Header[k]) != fmt.Sprint(vv) {
				t.Fatalf("%q: field %s: got %q, want %q", head, k, got.Header[k], vv)
			}
		}
		if xff := got.Header["X-Forwarded-For"]; len(xff) != 1 || xff[0] != "10.0.0.1" {
			t.Fatalf("%q: X-Forwarded-For %q, want [10.0.0.1]", head, xff)
		}
		if _, ok := got.Header["Connection"]; ok {
			t.Fatalf("%q: a Connection field went to the replica", head)
		}
	})
}

// TestQueryWithSpaceOverH2C: net/http's h2c server lets a :path with a
// space through; dlb answers 400 instead of writing it into a request line
// to the replica, where "/?a HTTP/1.0" would end the target early.
func TestQueryWithSpaceOverH2C(t *testing.T) {
	addr, dr := newDirectReplica(t, nil, nil)
	r, p := poolRoute("app")
	ready(t, p, "app-1", addr)
	px := newTestProxy(t, Options{}, []Route{r})
	srv := &http.Server{Handler: px, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, http2.ClientPreface)
	fr := http2.NewFramer(nc, nc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	he := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/?a HTTP/1.0"}} {
		he.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no response to the stream: %v", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if status := f.PseudoValue("status"); status != "400" {
				t.Fatalf("GET /?a HTTP/1.0 over h2c: got %s, want 400", status)
			}
			dr.mu.Lock()
			defer dr.mu.Unlock()
			if len(dr.reqs) != 0 {
				t.Fatalf("the replica got %s %s", dr.reqs[0].Method, dr.reqs[0].RequestURI)
			}
			return
		case *http2.RSTStreamFrame:
			return // refused before it reached dlb: as good
		}
	}
}
