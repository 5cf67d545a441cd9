package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordingReplica is a replica that keeps the raw bytes it receives and
// answers each request it can read with 200 and a body naming how many it
// read on the connection; answer, when set, replaces that answer.
type recordingReplica struct {
	addr string
	mu   sync.Mutex
	raw  bytes.Buffer
}

func newRecordingReplica(t *testing.T, answer string) *recordingReplica {
	t.Helper()
	rr := &recordingReplica{}
	rr.addr, _ = rawServer(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(io.TeeReader(c, rr))
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			if answer != "" {
				io.WriteString(c, answer)
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	return rr
}

func (rr *recordingReplica) Write(p []byte) (int, error) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.raw.Write(p)
}

// requests parses what the replica received: the complete requests, with
// their bodies, and whatever bytes follow the last one.
func (rr *recordingReplica) requests(t *testing.T) (reqs []*http.Request, bodies []string, rest string) {
	rr.mu.Lock()
	raw := bytes.Clone(rr.raw.Bytes())
	rr.mu.Unlock()
	br := bufio.NewReader(bytes.NewReader(raw))
	consumed := 0
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			break
		}
		b, err := io.ReadAll(req.Body)
		if err != nil {
			break
		}
		reqs, bodies = append(reqs, req), append(bodies, string(b))
		consumed = len(raw) - br.Buffered()
	}
	return reqs, bodies, string(raw[consumed:])
}

// exchangeRaw writes raw to addr and reads n responses. It returns their
// statuses and bodies, whether the connection was closed after them
// (within a second), and whether the last of them said Connection: close.
func exchangeRaw(t *testing.T, addr, raw string, n int) (statuses []int, bodies []string, closed, saidClose bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return statuses, bodies, true, saidClose
		}
		b, _ := io.ReadAll(resp.Body)
		statuses, bodies, saidClose = append(statuses, resp.StatusCode), append(bodies, string(b)), resp.Close
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = br.ReadByte()
	var ne net.Error
	return statuses, bodies, err != nil && !(errAs(err, &ne) && ne.Timeout()), saidClose
}

func errAs(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}

// TestConformance sends, over real sockets, well-formed requests and the
// malformed and ambiguous ones that request smuggling is made of (RFC 9112
// sections 2.2, 3.2, 5, 6 and 7.1; CL.TE, TE.CL and TE.TE from the public
// research), and checks what the client gets and the raw bytes the
// replica receives. Each case runs twice: on a new connection, which the
// fast engine serves, and after a request the fast engine hands to
// net/http (a dot segment), which then parses the rest of the connection.
// Both must refuse what RFC 9112 calls an error or forward it made
// unambiguous, never pass a second request inside a first. Where they
// differ, std gives net/http's answer.
func TestConformance(t *testing.T) {
	const host = "Host: app\r\n"
	type want struct {
		statuses  []int // the responses the client reads
		forwarded int   // complete requests the replica receives
		closed    bool  // dlb closes the connection after them
		// cut says the replica may get the start of a request whose
		// body breaks off after it (net/http streams a chunked body to
		// a kept-alive replica connection as it comes).
		cut bool
	}
	refused := want{statuses: []int{400}, closed: true}
	cases := []struct {
		name string
		raw  string
		want want
		std  *want // net/http's answer, where it differs from the fast path's
		body string
	}{
		{name: "plain GET", raw: "GET /a?b=c HTTP/1.1\r\n" + host + "\r\n", want: want{statuses: []int{200}, forwarded: 1}},
		{name: "POST with a body", raw: "POST /p HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello", want: want{statuses: []int{200}, forwarded: 1}, body: "hello"},
		{name: "pipelined GETs", raw: "GET /1 HTTP/1.1\r\n" + host + "\r\nGET /2 HTTP/1.1\r\n" + host + "\r\n", want: want{statuses: []int{200, 200}, forwarded: 2}},
		{name: "pipelined, the second for net/http", raw: "GET /1 HTTP/1.1\r\n" + host + "\r\nGET /a/../2 HTTP/1.1\r\n" + host + "\r\nGET /3 HTTP/1.1\r\n" + host + "\r\n",
			want: want{statuses: []int{200, 200, 200}, forwarded: 3}},
		{name: "a request inside a body is body", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 32\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n", want: want{statuses: []int{200}, forwarded: 1}, body: "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "Connection: close", raw: "GET / HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", want: want{statuses: []int{200}, forwarded: 1, closed: true}},
		{name: "forwarding and hop-by-hop fields", raw: "GET / HTTP/1.1\r\n" + host + "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\n" +
			"X-Real-Ip: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\n\r\n", want: want{statuses: []int{200}, forwarded: 1}},
		// net/http's server drops a Content-Length sent beside
		// Transfer-Encoding before dlb sees the request, so dlb closes
		// the connection after every chunked request (RFC 9112 section
		// 6.1 wants it closed after CL+TE; the fast path hands chunked
		// bodies to net/http).
		{name: "chunked body", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: want{statuses: []int{200}, forwarded: 1, closed: true}, body: "hello"},
		{name: "HTTP/1.0", raw: "GET / HTTP/1.0\r\n" + host + "\r\n", want: want{statuses: []int{200}, forwarded: 1, closed: true}},
		{name: "CL.TE", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", want: refused,
			// net/http takes the chunked framing and forwards it alone
			// (RFC 9112 section 6.1 allows that, and wants the connection
			// closed after the response, which dlb does).
			std: &want{statuses: []int{200}, forwarded: 1, closed: true}},
		{name: "TE.CL", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", want: refused,
			// net/http takes the chunked framing and forwards it alone
			// (RFC 9112 section 6.1 allows that, and wants the connection
			// closed after the response, which dlb does).
			std: &want{statuses: []int{200}, forwarded: 1, closed: true}},
		{name: "TE other than chunked", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", want: refused,
			std: &want{statuses: []int{501}, closed: true}},
		{name: "TE chunked twice", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: refused,
			std: &want{statuses: []int{501}, closed: true}},
		{name: "TE list", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", want: refused,
			std: &want{statuses: []int{501}, closed: true}},
		{name: "space before colon", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello", want: refused},
		{name: "two Content-Lengths", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", want: refused},
		{name: "the same Content-Length twice", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", want: refused,
			std: &want{statuses: []int{200}, forwarded: 1}, body: "hello"},
		{name: "Content-Length with a sign", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nhello", want: refused},
		{name: "Content-Length list", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 5\r\n\r\nhello", want: refused},
		{name: "bare LF", raw: "GET / HTTP/1.1\n" + host + "\r\n", want: refused,
			std: &want{statuses: []int{200}, forwarded: 1}},
		{name: "bare CR", raw: "GET / HTTP/1.1\r\n" + "X: a\rb\r\n" + host + "\r\n", want: refused},
		{name: "obs-fold", raw: "GET / HTTP/1.1\r\n" + host + "X: a\r\n b\r\n\r\n", want: refused,
			// RFC 9112 section 5.2 lets a server replace obs-fold by spaces.
			std: &want{statuses: []int{200}, forwarded: 1}},
		{name: "NUL in a value", raw: "GET / HTTP/1.1\r\n" + host + "X: a\x00b\r\n\r\n", want: refused},
		{name: "two Hosts", raw: "GET / HTTP/1.1\r\n" + host + "Host: other\r\n\r\n", want: refused},
		{name: "no Host", raw: "GET / HTTP/1.1\r\n\r\n", want: refused},
		{name: "bad chunk size", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", want: want{statuses: []int{400}, closed: true},
			std: &want{statuses: []int{400}, closed: true, cut: true}},
		{name: "bad chunk terminator", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", want: want{statuses: []int{400}, closed: true},
			std: &want{statuses: []int{400}, closed: true, cut: true}},
		{name: "head too large", raw: "GET / HTTP/1.1\r\n" + host + "X: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", want: want{statuses: []int{431}, closed: true}},
		{name: "dot segments go to net/http", raw: "GET /a/../b HTTP/1.1\r\n" + host + "\r\n", want: want{statuses: []int{200}, forwarded: 1}},
		{name: "absolute form goes to net/http", raw: "GET http://app/x HTTP/1.1\r\n" + host + "\r\n", want: want{statuses: []int{200}, forwarded: 1}},
	}
	// handoff is a request the fast engine hands to net/http with its
	// connection.
	const handoff = "GET /a/../h HTTP/1.1\r\n" + host + "\r\n"
	for _, tc := range cases {
		for _, after := range []string{"", handoff} {
			name, w, raw, body := tc.name, tc.want, after+tc.raw, tc.body
			if after != "" {
				name += " after a hand-off"
				if tc.std != nil {
					w = *tc.std
				}
				w.statuses = append([]int{200}, w.statuses...)
				w.forwarded++
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel() // each waits up to 1s to see whether dlb closes
				rr := newRecordingReplica(t, "")
				r, p := poolRoute("app")
				ready(t, p, "app-1", rr.addr)
				f := newFront(t, Options{MaxReplayBody: 1 << 20}, []Route{r}, nil, func(s *http.Server) { s.MaxHeaderBytes = 16 << 10 })
				statuses, _, closed, saidClose := exchangeRaw(t, f.srv.Listener.Addr().String(), raw, len(w.statuses))
				if !equalInts(statuses, w.statuses) {
					t.Errorf("%q: got statuses %v, want %v", raw, statuses, w.statuses)
				}
				if closed != w.closed {
					t.Errorf("%q: connection closed: got %v, want %v", raw, closed, w.closed)
				}
				if closed && len(statuses) == len(w.statuses) && !saidClose {
					// RFC 9112 section 9.6: the last response says so.
					t.Errorf("%q: dlb closed the connection after its last response, which did not say Connection: close", raw)
				}
				reqs, bodies, rest := rr.requests(t)
				if len(reqs) != w.forwarded {
					t.Errorf("%q: the replica got %d requests, want %d (raw: %q)", raw, len(reqs), w.forwarded, rr.raw.String())
				}
				if w.forwarded > 0 && rest != "" && !(w.cut && strings.HasPrefix(rest, tc.raw[:strings.Index(tc.raw, "\r\n")])) {
					t.Errorf("%q: the replica got bytes past its requests: %q", raw, rest)
				}
				for i, req := range reqs {
					if _, ok := req.Header["Transfer-Encoding"]; ok && req.Header.Get("Content-Length") != "" {
						t.Errorf("%q: request %d reached the replica with both Content-Length and Transfer-Encoding", raw, i)
					}
					for _, name := range []string{"X-Real-Ip", "Forwarded", "Keep-Alive", "Proxy-Authorization"} {
						if v, ok := req.Header[name]; ok {
							t.Errorf("%q: request %d reached the replica with %s: %q", raw, i, name, v)
						}
					}
					if req.Header.Get("X-Forwarded-For") != "127.0.0.1" || req.Header.Get("X-Forwarded-Host") != "app" || req.Header.Get("X-Forwarded-Proto") != "http" {
						t.Errorf("%q: request %d: X-Forwarded-For %q, -Host %q, -Proto %q; want 127.0.0.1, app, http", raw, i,
							req.Header.Get("X-Forwarded-For"), req.Header.Get("X-Forwarded-Host"), req.Header.Get("X-Forwarded-Proto"))
					}
				}
				if n := len(bodies); body != "" && n > 0 && n == w.forwarded && bodies[n-1] != body {
					t.Errorf("%q: the replica got body %q, want %q", raw, bodies[n-1], body)
				}
			})
		}
	}
}

// clientSchemes are the two ways a client reaches dlb's HTTP/1.1 engine: a
// plain connection and a TLS one.
var clientSchemes = []string{"http", "https"}

// serveScheme serves px on loopback as dlb does for scheme: the fast
// server for http (--listen), the fast TLS server for https
// (--listen-tls, whose responses to host x carry
// Strict-Transport-Security), each with net/http behind it for what it
// hands off. It returns a dialer of client connections (ALPN http/1.1
// over TLS).
func serveScheme(t *testing.T, scheme string, px *Proxy) func() *tlsClient {
	t.Helper()
	if scheme == "https" {
		f := newTLSFront(t, px, 0)
		return func() *tlsClient { return f.dial(t, "http/1.1") }
	}
	srv := serveFront(t, px, px, true)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	return func() *tlsClient { return dialPlain(t, addr) }
}

// wantSTS is the Strict-Transport-Security a response to host x carries
// on scheme (serveScheme).
func wantSTS(scheme string) string {
	if scheme == "https" {
		return "max-age=60"
	}
	return ""
}

// TestConformanceResponses checks what dlb makes of a replica's malformed
// or unusual responses, on a plain and a TLS client connection: the
// framing errors of RFC 9112 sections 6 and 7.1 are 502, within a second
// (a response with both Content-Length and Transfer-Encoding must not wait
// for a body); hop-by-hop fields are not passed on; a chunked body's
// trailers, bytes a replica sends past its response and a replica that
// dies mid-body reach the client as the response, nothing more, or cut.
// After a 200 the same client connection serves the next request. Each
// case runs for a request the fast engine relays, and for one it hands to
// net/http (a dot segment), which Proxy forwards by its direct path
// (direct.go): both read the replica's response with internal/h1, so
// their answers are the same.
func TestConformanceResponses(t *testing.T) {
	cases := []struct {
		name     string
		answer   string // to the replica's first request; it closes the connection after it
		status   int
		body     string
		noHeader string
		cut      bool // the replica dies mid-body: the client must see the body cut
	}{
		{name: "Content-Length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
		{name: "chunked", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 200, body: "hello"},
		{name: "chunked with trailers", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", status: 200, body: "hello"},
		{name: "bytes past the response", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra", status: 200, body: "ok"},
		{name: "death mid-body", answer: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", status: 200, cut: true},
		{name: "hop-by-hop fields", answer: "HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", noHeader: "X-Hop"},
		{name: "CL and TE", answer: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 502},
		{name: "two Content-Lengths", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello", status: 502},
		{name: "TE other than chunked", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "bare LF", answer: "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "obs-fold", answer: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "bad status line", answer: "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "switching protocols unasked", answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", status: 502},
	}
	for _, scheme := range clientSchemes {
		for _, tc := range cases {
			for _, path := range []string{"/", "/a/../h"} {
				name, want, wantBody := scheme+" "+tc.name, tc.status, tc.body
				if path != "/" {
					name += " handed off"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					var answered atomic.Bool
					addr, _ := rawServer(t, func(c net.Conn) {
						defer c.Close()
						br := bufio.NewReader(c)
						for {
							if _, err := http.ReadRequest(br); err != nil {
								return
							}
							if answered.CompareAndSwap(false, true) {
								io.WriteString(c, tc.answer)
								return
							}
							io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
						}
					})
					r, p := poolRoute("app")
					ready(t, p, "app-1", addr)
					rc := serveScheme(t, scheme, newTestProxy(t, Options{}, []Route{r}))()
					start := time.Now()
					status, body, _, err := rc.sendRead(request("GET", path, ""), "GET")
					if tc.cut {
						if err == nil && body == "hel" {
							t.Fatalf("a body cut by the replica's death: got %d %q and no error, want the client to see it cut", status, body)
						}
						return
					}
					if err != nil || status != want || want == 200 && body != wantBody {
						t.Fatalf("replica's %q to GET %s: got %d %q (%v), want %d %q", tc.answer, path, status, body, err, want, wantBody)
					}
					if el := time.Since(start); el > time.Second {
						t.Errorf("replica's %q: answered after %s, want within 1s", tc.answer, el)
					}
					if tc.noHeader != "" && rc.last.Header.Get(tc.noHeader) != "" {
						t.Errorf("replica's %q: the client got %s: %q, a hop-by-hop field", tc.answer, tc.noHeader, rc.last.Header.Get(tc.noHeader))
					}
					if status != 200 {
						return // a refused response may close the client's connection
					}
					if status, body, _, err := rc.sendRead(request("GET", "/", ""), "GET"); err != nil || status != 200 || body != "next" {
						t.Errorf("the next request on the connection: got %d %q (%v), want 200 \"next\"", status, body, err)
					}
				})
			}
		}
	}
}

// TestRelayOverPlainAndTLS: what a client's HTTP/1.1 connection carries,
// the same on a plain and a TLS one: keep-alive through a POST, HEAD, 204
// and 304 (no body, the connection reused), a chunked body, requests the
// fast engine hands to net/http (a target with '%', 100-continue);
// pipelined requests; a close-delimited body, relayed with Connection:
// close. Replicas get X-Forwarded-Proto of the client's scheme, and TLS
// clients Strict-Transport-Security.
func TestRelayOverPlainAndTLS(t *testing.T) {
	cases := []struct {
		name, method, raw string
		wantStatus        int
		wantBody          string // a suffix of the body; %s is the scheme
	}{
		{"POST", "POST", request("POST", "/p", "hello"), 200, ":hello"},
		{"HEAD", "HEAD", "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n", 200, ""},
		{"204", "GET", request("GET", "/204", ""), 204, ""},
		{"304", "GET", request("GET", "/304", ""), 304, ""},
		{"chunked", "GET", request("GET", "/chunked", ""), 200, " /chunked %s"},
		{"handed off: a target with %", "GET", request("GET", "/a%20b", ""), 200, " /a%%20b %s"},
		{"handed off: 100-continue", "POST", "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", 200, ":hello"},
		{"after a hand-off", "GET", request("GET", "/after", ""), 200, " /after %s"},
	}
	for _, scheme := range clientSchemes {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			r, p := poolRoute("web")
			for _, name := range []string{"web-1", "web-2", "web-3"} {
				ready(t, p, name, newBackend(t, name, tlsReplica(name)).addr())
			}
			dial := serveScheme(t, scheme, newTestProxy(t, Options{}, []Route{r}))

			t.Run("one connection", func(t *testing.T) {
				rc := dial()
				for _, tc := range cases {
					wantBody := tc.wantBody
					if strings.Contains(wantBody, "%") {
						wantBody = fmt.Sprintf(wantBody, scheme)
					}
					status, body, closing, err := rc.sendRead(tc.raw, tc.method)
					if err != nil || status != tc.wantStatus || !strings.HasSuffix(body, wantBody) || closing {
						t.Fatalf("%s: got %d %q (closing %v, %v), want %d ending in %q, kept open", tc.name, status, body, closing, err, tc.wantStatus, wantBody)
					}
					if got := rc.last.Header.Get("X-Proto"); status < 300 && tc.method != "HEAD" && got != scheme {
						t.Errorf("%s: the replica got X-Forwarded-Proto %q, want %s", tc.name, got, scheme)
					}
					if got := rc.last.Header.Get("Strict-Transport-Security"); got != wantSTS(scheme) {
						t.Errorf("%s: got Strict-Transport-Security %q, want %q", tc.name, got, wantSTS(scheme))
					}
				}
			})

			t.Run("pipelined", func(t *testing.T) {
				rc := dial()
				if err := rc.send(request("GET", "/1", "") + request("POST", "/2", "two") + request("GET", "/3", "")); err != nil {
					t.Fatal(err)
				}
				for i, want := range []string{" /1 " + scheme, ":two", " /3 " + scheme} {
					status, body, _, err := rc.readFor("GET")
					if err != nil || status != 200 || !strings.HasSuffix(body, want) {
						t.Fatalf("pipelined response %d: got %d %q (%v), want 200 ending in %q", i+1, status, body, err, want)
					}
				}
			})

			t.Run("close-delimited", func(t *testing.T) {
				rc := dial()
				status, body, closing, err := rc.sendRead(request("GET", "/close", ""), "GET")
				if err != nil || status != 200 || !strings.HasSuffix(body, " /close "+scheme) {
					t.Fatalf("got %d %q (%v), want 200 ending in \" /close %s\"", status, body, err, scheme)
				}
				if !closing {
					t.Errorf("a close-delimited body relayed as it is: got no Connection: close")
				}
				if err := rc.closedWithin(5 * time.Second); err != nil {
					t.Errorf("after a close-delimited body: %v, want the connection closed", err)
				}
			})
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
