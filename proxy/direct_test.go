package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// directReplica answers each request by its path (answers; 200 "ok" when
// none matches) and keeps the requests it read. In an answer, <hold> waits
// for hold to close before the rest, and a final <close> closes the
// connection.
type directReplica struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func newDirectReplica(t *testing.T, answers map[string]string, hold chan struct{}) (string, *directReplica) {
	t.Helper()
	dr := &directReplica{}
	addr, _ := rawServer(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			dr.mu.Lock()
			dr.reqs = append(dr.reqs, req)
			dr.mu.Unlock()
			answer, ok := answers[req.URL.Path]
			if !ok {
				answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
			}
			if a, ok := strings.CutSuffix(answer, "<close>"); ok {
				io.WriteString(c, a)
				return
			}
			first, rest, held := strings.Cut(answer, "<hold>")
			io.WriteString(c, first)
			if held {
				<-hold
				io.WriteString(c, rest)
			}
		}
	})
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
