package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// newTestFront starts a replica serving h over HTTP/1.1 and unencrypted
// HTTP/2, and a proxy in front of it (see newTestFrontTo).
func newTestFront(t *testing.T, h http.Handler, route Route, opts Options, useTLS bool) *httptest.Server {
	t.Helper()
	back := httptest.NewUnstartedServer(h)
	back.Config.Protocols = new(http.Protocols)
	back.Config.Protocols.SetHTTP1(true)
	back.Config.Protocols.SetUnencryptedHTTP2(true)
	back.Start()
	t.Cleanup(back.Close)
	return newTestFrontTo(t, back.Listener.Addr().String(), route, opts, useTLS)
}

// newTestFrontTo starts a proxy that sends every request to the one ready
// replica at addr, with route's options; useTLS serves HTTPS with HTTP/2.
// Its Client times out after 10s.
func newTestFrontTo(t *testing.T, addr string, route Route, opts Options, useTLS bool) *httptest.Server {
	t.Helper()
	pool := balancer.NewPool("app")
	pool.Put(balancer.Member{ID: "r1", Name: "app-1", Address: addr})
	pool.MarkReady("r1")
	route.Service, route.Path, route.Pool = "app", "/", pool
	rt := &Router{}
	rt.Set([]Route{route})
	front := httptest.NewUnstartedServer(New(rt, opts))
	if useTLS {
		front.EnableHTTP2 = true
		front.StartTLS()
	} else {
		front.Start()
	}
	t.Cleanup(front.Close)
	front.Client().Timeout = 10 * time.Second
	return front
}

func doTest(t *testing.T, c *http.Client, req *http.Request) *http.Response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

func frontName(useTLS bool) string {
	if useTLS {
		return "client over TLS (HTTP/2)"
	}
	return "client over HTTP/1.1"
}

// TestH2CReplicaTrailers checks dlb.scheme=h2c: the replica is spoken to in
// HTTP/2 without TLS, and its trailers (where gRPC puts its status) reach
// the client, whether the client speaks HTTP/1.1 or HTTP/2.
func TestH2CReplicaTrailers(t *testing.T) {
	h2cOnly := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Replica-Proto", r.Proto)
		w.Header().Set("X-Replica-TE", r.Header.Get("Te"))
		w.Header().Set("Trailer", "Grpc-Status")
		body, _ := io.ReadAll(r.Body)
		// A gRPC server sends its headers before it knows the body's
		// length. (Were the whole body known, the HTTP/2 replica would
		// send a Content-Length, and an HTTP/1.1 client's response could
		// not carry trailers: ReverseProxy keeps that header.)
		http.NewResponseController(w).Flush()
		w.Write(body)
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "undeclared trailer")
	})
	back := httptest.NewUnstartedServer(h2cOnly)
	back.Config.Protocols = new(http.Protocols)
	back.Config.Protocols.SetUnencryptedHTTP2(true) // no HTTP/1.1: h2c or nothing
	back.Start()
	defer back.Close()
	for _, useTLS := range []bool{false, true} {
		t.Run(frontName(useTLS), func(t *testing.T) {
			front := newTestFrontTo(t, back.Listener.Addr().String(), Route{RouteOptions: RouteOptions{Scheme: SchemeH2C}}, Options{}, useTLS)
			req, _ := http.NewRequest("POST", front.URL+"/grpc.health.v1.Health/Check", strings.NewReader("hello"))
			req.Header.Set("Te", "trailers")
			resp := doTest(t, front.Client(), req)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != "hello" {
				t.Fatalf("body = %q, %v; want the echo %q", body, err, "hello")
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			for _, c := range []struct{ what, got, want string }{
				{"the replica's protocol", resp.Header.Get("X-Replica-Proto"), "HTTP/2.0"},
				{"the TE header the replica saw", resp.Header.Get("X-Replica-TE"), "trailers"},
				{"trailer Grpc-Status", resp.Trailer.Get("Grpc-Status"), "0"},
				{"trailer Grpc-Message", resp.Trailer.Get("Grpc-Message"), "undeclared trailer"},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q (response headers %v, trailers %v)", c.what, c.got, c.want, resp.Header, resp.Trailer)
				}
			}
		})
	}
}

// TestUpgradePassesThrough checks that a protocol upgrade (as WebSocket
// does) gets through the retrying transport: the 101 response keeps a
// writable body and the bytes flow both ways afterwards.
func TestUpgradePassesThrough(t *testing.T) {
	front := newTestFront(t, echoUpgrade("echo "), Route{}, Options{Retries: 2}, false)
	conn, br := dialUpgrade(t, front.Listener.Addr().String(), "app.test", "/chat")
	for _, msg := range []string{"ping\n", "pong\n"} {
		io.WriteString(conn, msg)
		got, err := br.ReadString('\n')
		if want := "echo " + msg; got != want || err != nil {
			t.Fatalf("after the upgrade, sent %q, got %q (%v), want %q", msg, got, err, want)
		}
	}
}

// TestStreamsAreFlushed checks that the first part of a streamed response
// (server-sent events, or any response of unknown length) reaches the
// client while the replica still holds the rest back.
func TestStreamsAreFlushed(t *testing.T) {
	for _, contentType := range []string{"text/event-stream", "text/plain"} {
		for _, useTLS := range []bool{false, true} {
			t.Run(contentType+" to "+frontName(useTLS), func(t *testing.T) {
				release := make(chan struct{})
				defer close(release) // before the servers close: they wait for the handler
				stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", contentType)
					io.WriteString(w, "data: first\n\n")
					http.NewResponseController(w).Flush()
					select {
					case <-release:
					case <-r.Context().Done():
						return
					}
					io.WriteString(w, "data: last\n\n")
				})
				front := newTestFront(t, stream, Route{}, Options{}, useTLS)
				c := front.Client()
				c.Timeout = 5 * time.Second // bounds the wait for the first event
				resp := doTest(t, c, mustRequest(t, "GET", front.URL+"/events", nil))
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				first, err := br.ReadString('\n')
				if err != nil || first != "data: first\n" {
					t.Fatalf("first line = %q, %v; want %q while the replica holds the rest back (is dlb buffering the stream?)", first, err, "data: first\n")
				}
				release <- struct{}{}
				rest, err := io.ReadAll(br)
				if err != nil || string(rest) != "\ndata: last\n\n" {
					t.Fatalf("rest = %q, %v; want the last event", rest, err)
				}
			})
		}
	}
}

func mustRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
