package h2

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/nettest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// testServer serves h2 with prior knowledge on a loopback listener.
type testServer struct {
	*Server
	addr    string
	serving sync.WaitGroup // ServeConn calls in progress
}

func startServer(t *testing.T, h http.Handler, configure ...func(*Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: &Server{Handler: h}, addr: ln.Addr().String()}
	for _, f := range configure {
		f(ts.Server)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ts.serving.Go(func() { ts.ServeConn(context.WithValue(context.Background(), connValue{}, c.RemoteAddr().String()), c) })
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ts.Close()
		done := make(chan struct{})
		go func() { ts.serving.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("ServeConn did not return within 10s of the connections' close: a handler or the reader is stuck")
		}
	})
	return ts
}

// connValue is a value of the context startServer serves each connection
// with: the client's address.
type connValue struct{}

// client is Go's HTTP/2 client with prior knowledge.
func client() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Protocols: p}}
}

func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", "X-Sum")
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), r.Body)
	if err != nil {
		return
	}
	w.Header().Set("X-Sum", fmt.Sprintf("%x %d", h.Sum(nil), n))
}

func TestRequestsAndResponses(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			echo(w, r)
		case "/info":
			fmt.Fprintf(w, "%s %s %s %s %q", r.Proto, r.Method, r.Host, r.URL.RequestURI(), r.Header.Get("Cookie"))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	c := client()
	base := "http://" + ts.addr

	t.Run("echo bodies in parallel", func(t *testing.T) {
		// Larger than every window: flow control must work both ways.
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				body := make([]byte, 3<<20+i)
				rand.Read(body)
				resp, err := c.Post(base+"/echo", "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := fmt.Sprintf("%x %d", sha256.Sum256(body), len(body))
				if err != nil || !bytes.Equal(got, body) || resp.Trailer.Get("X-Sum") != want {
					t.Errorf("echo of %d bytes: got %d bytes (err %v), trailer %q; want them back and trailer %q",
						len(body), len(got), err, resp.Trailer.Get("X-Sum"), want)
				}
			})
		}
		wg.Wait()
	})
	t.Run("request fields", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/info?a=b", nil)
		req.Header.Add("Cookie", "a=1")
		req.AddCookie(&http.Cookie{Name: "b", Value: "2"})
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf("HTTP/2.0 GET %s /info?a=b \"a=1; b=2\"", ts.addr)
		if string(got) != want || resp.ContentLength != int64(len(want)) || resp.Header.Get("Date") == "" {
			t.Errorf("got %q (Content-Length %d, Date %q), want %q with its length and a Date", got, resp.ContentLength, resp.Header.Get("Date"), want)
		}
	})
	t.Run("HEAD and 204", func(t *testing.T) {
		resp, err := c.Head(base + "/info")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("HEAD: got %d, want 200", resp.StatusCode)
		}
		resp, err = c.Get(base + "/empty")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Errorf("got %d, want 204", resp.StatusCode)
		}
	})
}

// rawConn is a hand-driven client connection, for what Go's client will
// not send.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	fr *http2.Framer
	hb bytes.Buffer
	he *hpack.Encoder
}

func dialRaw(t *testing.T, addr string, settings ...http2.Setting) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &rawConn{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.he = hpack.NewEncoder(&rc.hb)
	io.WriteString(nc, http2.ClientPreface)
	rc.fr.WriteSettings(settings...)
	return rc
}

func (rc *rawConn) headers(id uint32, end bool, fields ...string) {
	rc.hb.Reset()
	pseudo := map[string]string{":method": "GET", ":scheme": "http", ":authority": "x", ":path": "/"}
	for i := 0; i < len(fields); i += 2 {
		if _, ok := pseudo[fields[i]]; ok {
			pseudo[fields[i]] = fields[i+1]
		}
	}
	for _, k := range []string{":method", ":scheme", ":authority", ":path"} {
		rc.he.WriteField(hpack.HeaderField{Name: k, Value: pseudo[k]})
	}
	for i := 0; i < len(fields); i += 2 {
		if !strings.HasPrefix(fields[i], ":") {
			rc.he.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
	}
	rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hb.Bytes(), EndStream: end, EndHeaders: true})
}

// until reads frames until match says true, and fails the test if the
// connection ends first.
func (rc *rawConn) until(what string, match func(http2.Frame) bool) http2.Frame {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// goAway waits for the server's GOAWAY and checks its code, then that the
// connection is closed.
func (rc *rawConn) goAway(code http2.ErrCode) {
	rc.t.Helper()
	f := rc.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if f.ErrCode != code {
		rc.t.Errorf("got GOAWAY %v, want %v", f.ErrCode, code)
	}
	rc.closed()
}

// closed reads until the server closes the connection.
func (rc *rawConn) closed() {
	rc.t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, rc.nc); err != nil && !strings.Contains(err.Error(), "reset") {
		rc.t.Errorf("want the server to close the connection, got %v", err)
	}
}

func isRST(id uint32, code http2.ErrCode) func(http2.Frame) bool {
	return func(f http2.Frame) bool {
		r, ok := f.(*http2.RSTStreamFrame)
		return ok && r.StreamID == id && r.ErrCode == code
	}
}

func TestHostileClients(t *testing.T) {
	var running, maxRunning atomic.Int32
	release := make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
		}
		switch r.URL.Path {
		case "/read":
			io.Copy(io.Discard, r.Body)
		case "/block":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/big":
			http.NewResponseController(w).SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
			buf := make([]byte, 64<<10)
			for {
				if _, err := w.Write(buf); err != nil {
					w.Header().Set("X-Err", err.Error())
					return
				}
			}
		}
	}), func(s *Server) { s.MaxConcurrentStreams, s.WriteTimeout = 10, 2*time.Second })
	defer close(release)

	t.Run("invalid frame: DATA on stream 0", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		rc.fr.AllowIllegalWrites = true
		rc.fr.WriteData(0, true, []byte("x"))
		rc.goAway(http2.ErrCodeProtocol)
	})
	t.Run("a frame larger than SETTINGS_MAX_FRAME_SIZE", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		rc.headers(1, false)
		rc.fr.WriteData(1, true, make([]byte, 20000))
		rc.goAway(http2.ErrCodeFrameSize)
	})
	t.Run("CONTINUATION flood", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		rc.hb.Reset()
		rc.he.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
		rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.hb.Bytes()})
		// Valid HPACK (literal fields without indexing), 16,000 bytes a
		// frame, past the header list limit after a few frames.
		junk := bytes.Repeat([]byte{0, 3, 'a', 'b', 'c', 3, 'x', 'y', 'z'}, 2000)[:16000]
		go func() {
			for i := 0; i < 10000; i++ {
				if rc.fr.WriteContinuation(1, false, junk) != nil {
					return
				}
			}
		}()
		rc.goAway(http2.ErrCodeProtocol)
	})
	t.Run("PING flood from a client that does not read", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		var batch bytes.Buffer
		bf := http2.NewFramer(&batch, nil)
		for range 1000 {
			bf.WritePing(false, [8]byte{1})
		}
		// The server stops reading once its writes stall, and drops the
		// connection at its write timeout (2s here).
		rc.nc.SetDeadline(time.Now().Add(20 * time.Second))
		var err error
		for err == nil {
			_, err = rc.nc.Write(batch.Bytes())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the server still held the connection after 20s of a client reading none of its answers")
		}
	})
	t.Run("rapid reset", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		go func() {
			for id := uint32(1); id < 20000; id += 2 {
				rc.headers(id, true, ":path", "/block")
				if rc.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
					return
				}
			}
		}()
		rc.goAway(http2.ErrCodeEnhanceYourCalm)
		if m := maxRunning.Load(); m > 10 {
			t.Errorf("%d handlers ran at once, want at most MAX_CONCURRENT_STREAMS (10)", m)
		}
	})
	t.Run("streams beyond MAX_CONCURRENT_STREAMS are refused", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		for id := uint32(1); id <= 21; id += 2 {
			rc.headers(id, true, ":path", "/block")
		}
		rc.until("RST_STREAM REFUSED_STREAM for the 11th stream", isRST(21, http2.ErrCodeRefusedStream))
	})
	t.Run("a zero window stalls a writer until its write deadline", func(t *testing.T) {
		rc := dialRaw(t, ts.addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		rc.headers(1, true, ":path", "/big")
		rc.until("RST_STREAM CANCEL once the write deadline passed", isRST(1, http2.ErrCodeCancel))
	})
	t.Run("data past the declared length", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		rc.headers(1, false, "content-length", "2", ":method", "POST", ":path", "/read")
		rc.fr.WriteData(1, true, []byte("abc"))
		rc.until("RST_STREAM PROTOCOL_ERROR", isRST(1, http2.ErrCodeProtocol))
	})
	t.Run("connection-specific header", func(t *testing.T) {
		rc := dialRaw(t, ts.addr)
		rc.headers(1, true, "connection", "close")
		rc.until("RST_STREAM PROTOCOL_ERROR", isRST(1, http2.ErrCodeProtocol))
	})
	// A :path that is no request-target (RFC 9110 section 7.1: no spaces
	// or controls): a proxy would write it into an HTTP/1.1 request line,
	// where "/? HTTP/1.0" ends the target early.
	for _, path := range []string{"/? HTTP/1.0", "/a b", "/?a\tb", "/\x7f"} {
		t.Run(fmt.Sprintf(":path %q", path), func(t *testing.T) {
			rc := dialRaw(t, ts.addr)
			rc.headers(1, true, ":path", path)
			rc.until("RST_STREAM PROTOCOL_ERROR", isRST(1, http2.ErrCodeProtocol))
		})
	}
	nettest.WaitFor(t, "the handlers of the closed connections to return", func() bool { return running.Load() == 0 })
}

func TestDrainAnswersStreamsInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	}))
	rc := dialRaw(t, ts.addr)
	rc.headers(1, true)
	<-started
	ts.Drain()
	g := rc.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 1 {
		t.Errorf("got GOAWAY %v last stream %d, want NO_ERROR and 1", g.ErrCode, g.LastStreamID)
	}
	close(release)
	d := rc.until("the response's DATA", func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
	if string(d.Data()) != "done" || !d.StreamEnded() {
		t.Errorf("got DATA %q (end %v), want \"done\" ending the stream", d.Data(), d.StreamEnded())
	}
	rc.closed()
	nettest.WaitFor(t, "the drained connection to be gone", func() bool { return ts.Conns() == 0 })
}

func TestIdleConnectionIsClosed(t *testing.T) {
	ts := startServer(t, http.NotFoundHandler(), func(s *Server) { s.IdleTimeout = 200 * time.Millisecond })
	rc := dialRaw(t, ts.addr)
	rc.headers(1, true)
	start := time.Now()
	rc.goAway(http2.ErrCodeNo)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v, want about the idle timeout (200ms)", d)
	}
}

// TestHeaderBlocks: what readHeaderBlock refuses in a request's field
// block, stream by stream on one connection (a refused field leaves the
// connection usable), and a header list past MaxHeaderBytes answered 431;
// the next request on the connection is served.
func TestHeaderBlocks(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-A"))
	}), func(s *Server) { s.MaxHeaderBytes = 4096 })
	rc := dialRaw(t, ts.addr)
	raw := func(id uint32, fields ...string) {
		rc.hb.Reset()
		for i := 0; i < len(fields); i += 2 {
			rc.he.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hb.Bytes(), EndStream: true, EndHeaders: true})
	}
	base := []string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"}
	for i, tc := range []struct {
		name   string
		fields []string
	}{
		{"an upper-case name", append(base[:8:8], "X-A", "1")},
		{"a pseudo-header after a regular field", append([]string{":method", "GET", ":scheme", "http", "x-a", "1"}, ":path", "/")},
		{"a repeated pseudo-header", append(base[:8:8], ":path", "/b")},
		{"an unknown pseudo-header", append(base[:8:8], ":x", "1")},
		{"a response's pseudo-header", append(base[:8:8], ":status", "200")},
		{"a name that is no token", append(base[:8:8], "x a", "1")},
	} {
		id := uint32(2*i + 1)
		raw(id, tc.fields...)
		rc.until(tc.name+": RST_STREAM PROTOCOL_ERROR", isRST(id, http2.ErrCodeProtocol))
	}
	status := func(id uint32) string {
		f := rc.until("HEADERS", func(f http2.Frame) bool {
			h, ok := f.(*http2.MetaHeadersFrame)
			return ok && h.StreamID == id
		})
		return f.(*http2.MetaHeadersFrame).PseudoValue("status")
	}
	big := base[:8:8]
	for i := range 5 {
		big = append(big, fmt.Sprintf("x-%d", i), strings.Repeat("a", 1000))
	}
	raw(101, big...)
	if s := status(101); s != "431" {
		t.Errorf("a header list of 5 KB past a 4 KB limit: got %s, want 431", s)
	}
	raw(103, append(base[:8:8], "x-a", "fine")...)
	if s := status(103); s != "200" {
		t.Errorf("the next request: got %s, want 200", s)
	}
}

// TestWorkersAreReusedAndLeave: streams answered one after another reuse
// their workers; once the server is closed, its idle workers exit, and a
// busy one once it is done.
func TestWorkersAreReusedAndLeave(t *testing.T) {
	started, release := make(chan struct{}, 2), make(chan struct{}, 2)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}))
	workers := func() int {
		buf := make([]byte, 1<<20)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "h2.(*Server).worker(")
	}
	// The workers are counted over the process: those of the servers
	// earlier tests closed leave first.
	nettest.WaitFor(t, "the workers of earlier tests to exit", func() bool { return workers() == 0 })
	before := workers()
	c := client()
	get := func(path string) error {
		res, err := c.Get("http://" + ts.addr + path)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		return res.Body.Close()
	}
	for i := range 20 {
		if err := get("/"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// One, or two when a request came before its predecessor's worker was
	// back waiting (it answers before it gets there).
	if n := workers() - before; n < 1 || n > 2 {
		t.Errorf("20 requests in turn left %d workers, want 1 or 2, reused", n)
	}
	// Two streams at once: two workers; one is done (idle), one busy
	// when the server closes.
	held := make(chan error, 2)
	for range 2 {
		go func() { held <- get("/hold") }()
	}
	<-started
	<-started
	release <- struct{}{}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	ts.Close()
	release <- struct{}{}
	nettest.WaitFor(t, "the workers to exit after Close", func() bool { return workers() == before })
}

// TestEachStreamStartsWithAnEmptyHeader: the header maps of answered
// streams serve the next ones, emptied: nothing a handler set reaches
// another stream's response.
func TestEachStreamStartsWithAnEmptyHeader(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(w.Header()); n != 0 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "the header came with %d fields: %v", n, w.Header())
			return
		}
		w.Header().Set("X-Path", r.URL.Path)
		w.Header()["X-Only-"+r.URL.Path[1:]] = []string{"1"}
	}))
	c := client()
	for i := range 50 {
		path := fmt.Sprintf("/%d", i)
		res, err := c.Get("http://" + ts.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
		}
		if got := res.Header.Get("X-Path"); got != path {
			t.Errorf("request %d: X-Path %q, want %q", i, got, path)
		}
		for k := range res.Header {
			if strings.HasPrefix(k, "X-Only-") && k != "X-Only-"+path[1:] {
				t.Errorf("request %d got %s, another stream's field", i, k)
			}
		}
	}
}

// TestRequestContext: a request's context has its connection's values; it
// is done, and the contexts derived from it with it, when the client resets
// the stream (context.Cause says so), and when the handler returns. The
// contexts derived from it are registered with it, not watched by a
// goroutine each; a stopped AfterFunc does not run.
func TestRequestContext(t *testing.T) {
	type seen struct {
		value     any
		errBefore error
		errAfter  error
		cause     error
		watchers  int
	}
	started, results := make(chan struct{}, 1), make(chan seen, 1)
	kept := make(chan context.Context, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/keep" {
			kept <- ctx
			return
		}
		s := seen{value: ctx.Value(connValue{}), errBefore: ctx.Err()}
		before := runtime.NumGoroutine()
		var children []context.Context
		for range 50 {
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			children = append(children, child)
		}
		ran, wrong := make(chan struct{}), make(chan struct{})
		context.AfterFunc(ctx, func() { close(ran) })
		if stop := context.AfterFunc(ctx, func() { close(wrong) }); !stop() {
			t.Error("stop of an AfterFunc that had not run: false")
		}
		s.watchers = runtime.NumGoroutine() - before
		started <- struct{}{}
		deadline := time.After(10 * time.Second)
	children:
		for _, child := range children {
			select {
			case <-child.Done():
			case <-deadline:
				t.Error("a context derived from the request's not done 10s after the client's reset")
				break children
			}
		}
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Error("AfterFunc's function not run 10s after the client's reset")
		}
		// Started with the one above, had it not been stopped.
		select {
		case <-wrong:
			t.Error("a stopped AfterFunc ran")
		case <-time.After(100 * time.Millisecond):
		}
		s.errAfter, s.cause = ctx.Err(), context.Cause(ctx)
		results <- s
	}))
	rc := dialRaw(t, ts.addr)
	rc.headers(1, true)
	<-started
	rc.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	var s seen
	select {
	case s = <-results:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler still runs 30s after the client's reset")
	}
	if want := rc.nc.LocalAddr().String(); s.value != want {
		t.Errorf("the connection's value: %v, want %q", s.value, want)
	}
	if s.errBefore != nil || s.errAfter != context.Canceled {
		t.Errorf("Err before the reset %v, after %v; want nil, then context.Canceled", s.errBefore, s.errAfter)
	}
	if !errors.Is(s.cause, errStreamReset) {
		t.Errorf("context.Cause after the client's reset: %v, want %v", s.cause, errStreamReset)
	}
	// Other tests' goroutines come and go meanwhile; one each for the 50
	// derived contexts would be 50 more.
	if s.watchers >= 25 {
		t.Errorf("deriving 50 contexts from the request's started %d goroutines", s.watchers)
	}

	res, err := client().Get("http://" + ts.addr + "/keep")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	ctx := <-kept
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context of a request answered is not done 10s later")
	}
	if ctx.Err() != context.Canceled {
		t.Errorf("Err of a request answered: %v", ctx.Err())
	}
	stopped := make(chan struct{})
	if context.AfterFunc(ctx, func() { close(stopped) })() {
		t.Error("stop of an AfterFunc registered after the end: true")
	}
	<-stopped
}

// TestRequestContextIgnoresTheConnectionsCancel: ServeConn's ctx gives the
// streams' contexts its values only; cancelling it makes neither Done nor
// Err say a stream is done, so the two agree, before and after the first
// Done, until the stream ends.
func TestRequestContextIgnoresTheConnectionsCancel(t *testing.T) {
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), connValue{}, "v"))
	c := newConn(&Server{}, parent, sc)
	before, after := &stream{c: c}, &stream{c: c}
	before.Done()
	cancel()
	for i, st := range []*stream{before, after} {
		select {
		case <-st.Done():
			t.Errorf("stream %d: Done closed by the connection context's cancel", i)
		default:
		}
		if err := st.Err(); err != nil {
			t.Errorf("stream %d: Err %v after the connection context's cancel", i, err)
		}
		if v := st.Value(connValue{}); v != "v" {
			t.Errorf("stream %d: value %v, want the connection's", i, v)
		}
		st.cancel(nil)
		select {
		case <-st.Done():
		default:
			t.Errorf("stream %d: Done open after the stream ended", i)
		}
		if err := st.Err(); err != context.Canceled {
			t.Errorf("stream %d: Err %v after the stream ended, want context.Canceled", i, err)
		}
	}
}
