package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dlb-lb/dlb/internal/poll"
)

// h1Transport is an http.RoundTripper for one plain-HTTP/1.1 upstream. It
// writes the request and reads the response on the caller's goroutine, over
// a pool of idle keep-alive connections, each with its own buffers. The
// standard Transport runs two goroutines per connection (readLoop and
// writeLoop) and hands every request and response between them and the
// caller over channels; for a proxy, whose caller is already a goroutine
// per request, that costs more than it gives (see docs/performance.md).
//
// What it does not handle goes to std, unchanged: protocol upgrades
// (WebSocket, h2c), Expect: 100-continue, request trailers, CONNECT, and
// request bodies of unknown length or larger than maxBody (those are
// streamed by std while it reads the response, which an early answer from
// the upstream needs).
type h1Transport struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	std         http.RoundTripper
	maxIdle     int           // idle connections kept
	idleTimeout time.Duration // an idle connection is closed after this long
	maxBody     int64         // largest request body sent by this transport

	mu    sync.Mutex
	idle  []*h1Conn   // the most recently used last
	sweep *time.Timer // set while idle holds connections
	// gen counts closeIdle's calls: the event loops' own idle connections
	// (fast_loop_linux.go) kept under an older one are closed too.
	gen atomic.Uint64
}

// maxResponseHeader bounds the header of an upstream's response: a larger
// one fails the request instead of filling memory.
const maxResponseHeader = 1 << 20

// h1BufferSize is the size of each connection's read and write buffers.
// Bodies bypass the read buffer (ReverseProxy reads them 32 KiB at a time,
// and bufio hands such reads straight to the socket), so 4 KiB is plenty
// for headers and keeps idle connections cheap.
const h1BufferSize = 4 << 10

// h1Conn is one connection to the upstream. Its sock is owned by the
// goroutine of the request it carries, or by an event loop of the fast data
// path (loop is set then; see fast_loop_linux.go). The deadlines the fast
// path sets stay on the sock; roundTrip clears them, since this transport
// sets none. The fast path leaves its response-head deadline on a
// connection that goes back to the pool (it costs a timer reset per
// request otherwise) and refreshes it before the next head.
type h1Conn struct {
	t         *h1Transport
	sock      *poll.Sock
	addr      string
	r         limitedReader
	br        *bufio.Reader
	bw        *bufio.Writer
	abort     func() // closes sock; bound once so that AfterFunc does not allocate it
	idleSince time.Time

	loop    *eventLoop
	client  *loopConn // the client whose request it carries, in its loop
	idleGen uint64    // t.gen when it went idle in its loop
	pooled  bool      // idle in its loop's pool
}

// limitedReader reads from the connection, counting the bytes of the current
// response and failing once a response header grows past limit.
type limitedReader struct {
	sock *poll.Sock

	limit int64 // bytes left before the header is too large
	got   int64 // bytes read since the request was sent
}

var errHeaderTooLarge = fmt.Errorf("upstream response header larger than %d bytes", maxResponseHeader)

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.limit <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	n, err := r.sock.Read(p)
	r.limit -= int64(n)
	r.got += int64(n)
	return n, err
}

var _ http.RoundTripper = (*h1Transport)(nil)

// handles reports whether RoundTrip sends req itself rather than through std.
func (t *h1Transport) handles(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.Method == http.MethodConnect || req.Trailer != nil {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody {
		return req.ContentLength > 0 && req.ContentLength <= t.maxBody
	}
	return true
}

// RoundTrip sends req and returns the response, whose body gives the
// connection back to the pool once read to its end.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.handles(req) {
		return t.std.RoundTrip(req)
	}
	return t.roundTrip(req, 0)
}

// roundTrip is RoundTrip for a request it handles, with a response header
// timeout of d (0: none) kept by the connection's read deadline, which
// costs no context and timer of its own per request. The timeout runs from
// the end of the request's body, which is in memory and written before the
// head is read.
func (t *h1Transport) roundTrip(req *http.Request, d time.Duration) (*http.Response, error) {
	ctx := req.Context()
	fresh, peek := false, true
	if a, ok := ctx.Value(stateKey{}).(*attempt); ok {
		fresh = a.fresh
		// An idle connection is looked at first (a syscall) only for a
		// request that could not go again on a new connection should the
		// replica have closed it while it sat idle; any other is resent
		// then (stale, retry).
		peek = !a.mayResend(req, true)
	}
	hc, reused, err := t.getConn(ctx, req.URL.Host, fresh, peek, time.Now())
	if err != nil {
		return nil, err
	}
	resp, err := hc.roundTrip(ctx, req, d)
	if err != nil && ctx.Err() == nil {
		// The driver (tries.go) sends the request again on a new
		// connection when it may.
		err = stale(err, reused, hc.r.got)
	}
	return resp, err
}

// getConn returns an idle connection to addr that still looks alive, or a
// new one (always a new one when fresh is set). Dial errors are returned as
// the dialer made them (a *net.OpError with Op "dial"), so that the proxy
// knows the upstream never saw the request. Without peek, an idle
// connection is not looked at first (a syscall): for requests that can be
// sent again on a new connection should the upstream have closed it.
// With peek, the look (one non-blocking peek at the socket) checks that the
// upstream has neither closed it nor sent anything unasked. now is the time
// of the request: an idle connection older than the idle timeout is closed.
func (t *h1Transport) getConn(ctx context.Context, addr string, fresh, peek bool, now time.Time) (*h1Conn, bool, error) {
	for !fresh {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		hc := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if hc.addr == addr && hc.fresh(now) && (!peek || hc.sock.Alive()) {
			return hc, true, nil
		}
		hc.close()
	}
	nc, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	hc := &h1Conn{t: t, sock: poll.NewSock(nc), addr: addr}
	hc.r.sock = hc.sock
	hc.br = bufio.NewReaderSize(&hc.r, h1BufferSize)
	hc.bw = bufio.NewWriterSize(hc.sock, h1BufferSize)
	hc.abort = hc.close
	return hc, false, nil
}

// roundTrip sends req on the connection and reads the response header,
// within d (0: no limit) of the request's end; a replica that sends none in
// time fails it with errResponseHeaderTimeout. The connection is closed if
// the request's context ends before the response's body has been read.
func (hc *h1Conn) roundTrip(ctx context.Context, req *http.Request, d time.Duration) (*http.Response, error) {
	stop := context.AfterFunc(ctx, hc.abort)
	fail := func(err error) (*http.Response, error) {
		stop()
		hc.close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	hc.r.got, hc.r.limit = 0, maxResponseHeader
	hc.sock.ClearWriteDeadline()
	if err := req.Write(hc.bw); err != nil {
		return fail(err)
	}
	if err := hc.bw.Flush(); err != nil {
		return fail(err)
	}
	if d > 0 {
		// Moved lazily (headWithin); it stays on the connection while
		// the body is read from what is buffered, and goes before a read
		// that may wait (h1Body.Read).
		hc.headWithin(time.Now(), d)
	} else {
		hc.noReadDeadline()
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(hc.br, req)
		if err != nil {
			if d > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("%w (%s)", errResponseHeaderTimeout, d)
			}
			return fail(err)
		}
		// 1xx answers (103 Early Hints) come before the final one; 101 is
		// final, but never comes since upgrades go to std.
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
		}
	}
	hc.r.limit = math.MaxInt64
	keep := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody {
		hc.done(stop, keep)
		return resp, nil
	}
	if resp.ContentLength < 0 {
		// A chunked or close-delimited body may wait for the socket while
		// bytes are still buffered (a chunk's size line cut in two).
		hc.noReadDeadline()
	}
	resp.Body = &h1Body{hc: hc, ctx: ctx, body: resp.Body, stop: stop, keep: keep}
	return resp, nil
}

// done ends the connection's part in a request: back to the idle pool when
// keep holds and the request's context did not close it, else closed.
func (hc *h1Conn) done(stop func() bool, keep bool) {
	if stop() && keep && hc.br.Buffered() == 0 {
		hc.t.putIdle(hc, time.Now())
		return
	}
	hc.close()
}

// close closes the connection, out of its event loop's books too.
func (hc *h1Conn) close() {
	if hc.loop != nil {
		hc.loop.closeUpstream(hc)
		return
	}
	hc.sock.Close()
}

// idle keeps the connection, idle since now, for the next request: in its
// event loop's pool, or the transport's.
func (hc *h1Conn) idle(now time.Time) {
	if hc.loop != nil {
		hc.loop.putUpstream(hc, now)
		return
	}
	hc.t.putIdle(hc, now)
}

// fresh reports whether an idle connection is within the idle timeout at
// now.
func (hc *h1Conn) fresh(now time.Time) bool {
	return hc.t.idleTimeout <= 0 || now.Sub(hc.idleSince) <= hc.t.idleTimeout
}

// h1Body is a response body that gives its connection back when read to
// the end, and closes it when closed early.
type h1Body struct {
	hc   *h1Conn // nil once the connection has been given back or closed
	ctx  context.Context
	body io.ReadCloser
	stop func() bool
	keep bool
	err  error // returned once hc is nil
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.hc == nil {
		return 0, b.err
	}
	if b.hc.br.Buffered() == 0 {
		// The body takes as long as it takes: no response head deadline.
		b.hc.noReadDeadline()
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.finish(b.keep, io.EOF)
	case err != nil:
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
		b.finish(false, err)
	}
	return n, err
}

// Close closes the connection unless the body was read to its end.
func (b *h1Body) Close() error {
	if b.hc != nil {
		b.finish(false, errBodyClosed)
	}
	return nil
}

var errBodyClosed = errors.New("read on a closed response body")

func (b *h1Body) finish(keep bool, err error) {
	hc := b.hc
	b.hc, b.err = nil, err
	hc.done(b.stop, keep)
}

// putIdle keeps a connection for the next request, unless enough are kept;
// now is when it became idle.
func (t *h1Transport) putIdle(hc *h1Conn, now time.Time) {
	hc.idleSince = now
	t.mu.Lock()
	if len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		hc.close()
		return
	}
	t.idle = append(t.idle, hc)
	if t.sweep == nil && t.idleTimeout > 0 {
		t.sweep = time.AfterFunc(t.idleTimeout, t.closeExpired)
	}
	t.mu.Unlock()
}

// closeExpired closes the connections idle for longer than the idle
// timeout, and comes back when the next one will be.
func (t *h1Transport) closeExpired() {
	cutoff := time.Now().Add(-t.idleTimeout)
	t.mu.Lock()
	i := 0
	for i < len(t.idle) && !t.idle[i].idleSince.After(cutoff) {
		i++
	}
	expired := make([]*h1Conn, i)
	copy(expired, t.idle[:i])
	t.idle = append(t.idle[:0], t.idle[i:]...)
	clear(t.idle[len(t.idle):cap(t.idle)])
	if len(t.idle) > 0 {
		t.sweep.Reset(time.Until(t.idle[0].idleSince.Add(t.idleTimeout)) + time.Millisecond)
	} else {
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, hc := range expired {
		hc.close()
	}
}

// popIdle returns the most recently idle connection if it is to addr and
// within the idle timeout at now, else nil; it never dials.
func (t *h1Transport) popIdle(addr string, now time.Time) *h1Conn {
	t.mu.Lock()
	n := len(t.idle)
	if n == 0 || t.idle[n-1].addr != addr || !t.idle[n-1].fresh(now) {
		t.mu.Unlock()
		return nil
	}
	hc := t.idle[n-1]
	t.idle[n-1] = nil
	t.idle = t.idle[:n-1]
	t.mu.Unlock()
	return hc
}

// closeIdle closes every idle connection, the event loops' own ones too.
func (t *h1Transport) closeIdle() {
	t.gen.Add(1)
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, hc := range idle {
		hc.close()
	}
}

// newFastTransport returns an h1Transport that dials with std's dialer and
// hands std what it does not handle.
func newFastTransport(std *http.Transport, maxBody int64) *h1Transport {
	return &h1Transport{
		dial:        std.DialContext,
		std:         stdTransport{std},
		maxIdle:     std.MaxIdleConnsPerHost,
		idleTimeout: std.IdleConnTimeout,
		maxBody:     maxBody,
	}
}
