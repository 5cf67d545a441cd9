package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/internal/h1"
	"github.com/dlb-lb/dlb/internal/h2"
	"github.com/dlb-lb/dlb/internal/poll"
	"github.com/dlb-lb/dlb/listener"
)

// FastServer serves plain HTTP/1.1 on a listener with dlb's own loop: a
// client connection's request head is read into its buffer, parsed in
// place (internal/h1), routed and picked as the Proxy does, written to a
// kept-alive replica connection, and the response relayed, its framing
// checked as it passes. Nothing is allocated per request. On Linux event
// loops (one per P) hold the connections and serve the plain requests
// themselves, handing a connection to a goroutine of its own for anything
// that has to wait (fast_loop_linux.go); elsewhere every connection has a
// goroutine.
//
// A request the fast path does not handle itself goes to net/http with the
// bytes already read: the connection is handed to the http.Server serving
// Handoffs, for good. That covers HTTP/1.0 and HTTP/2 (h2c), upgrades,
// Expect, trailers, chunked or large request bodies, targets that are not
// plain absolute paths (anything with '%', ';', '\\', "//", "." or ".."
// segments: net/http's path checks apply to them), sticky routes, h2c
// replicas, trusted proxies' requests, routes without a ready replica (the
// queue), and no route at all. A malformed or ambiguous head (RFC 9112) is
// answered 400 and the connection closed.
//
// Create it with NewFastServer; it uses the std server's timeouts.
type FastServer struct {
	p        *Proxy
	std      *http.Server
	handoffs *handoffListener
	park     *listener.Parking // nil: idle connections are not parked

	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	writeTimeout      time.Duration
	parkAfter         time.Duration
	intercept         func(host, path string) bool

	// tls, when set, makes the server's connections TLS: each is
	// handshaken on its own goroutine (fast_tls.go); scheme is the
	// X-Forwarded-Proto it sends, sts the Strict-Transport-Security value
	// (if any) of a request's Host.
	tls    *tls.Config
	scheme string
	sts    func(host string) string
	h2     *h2.Server // serves the TLS connections that chose h2; nil on a plain server

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*fastConn]struct{} // those a goroutine serves
	closing  atomic.Bool
	shutdown chan struct{}

	// loops are the event loops that hold the client connections between
	// requests and serve the plain ones (fast_loop_linux.go); none off
	// Linux, where every connection has a goroutine.
	loops []*eventLoop
	next  atomic.Uint32 // the loop the next connection goes to
}

// fastBufferSize is the size of a client connection's read buffer and of
// its write buffer. A request whose head and body do not fit in it goes to
// net/http (which applies --max-header-bytes).
const fastBufferSize = 8 << 10

// NewFastServer returns a FastServer forwarding with p. It reads its
// timeouts from std (ReadHeaderTimeout, IdleTimeout, WriteTimeout; a
// client connection's writes get the Proxy's WriteTimeout when std has none, else IdleTimeout),
// and hands std what it does not serve: serve std on Handoffs. Without
// event loops (off Linux), idle client connections are parked after
// parkAfter (0: never), as NewIdleListener does for std's; event loops
// hold idle connections with no goroutine anyway. A request for which intercept (if not nil) says true
// goes to std too: std's handler answers it before the Proxy does (as
// ACME's challenges and HTTPS redirects are).
func NewFastServer(p *Proxy, std *http.Server, parkAfter time.Duration, intercept func(host, path string) bool) *FastServer {
	fs := &FastServer{p: p, std: std, conns: map[*fastConn]struct{}{}, shutdown: make(chan struct{}),
		readHeaderTimeout: std.ReadHeaderTimeout, idleTimeout: std.IdleTimeout,
		writeTimeout: std.WriteTimeout, parkAfter: parkAfter, intercept: intercept, scheme: "http"}
	if fs.readHeaderTimeout <= 0 {
		fs.readHeaderTimeout = std.ReadTimeout
	}
	if fs.readHeaderTimeout <= 0 {
		fs.readHeaderTimeout = 10 * time.Second
	}
	if fs.idleTimeout <= 0 {
		fs.idleTimeout = 120 * time.Second
	}
	if fs.writeTimeout <= 0 {
		// The Proxy's --write-timeout: a client that takes none of
		// the response for this long is let go, as on the std path.
		fs.writeTimeout = p.opts.WriteTimeout
	}
	if fs.writeTimeout <= 0 {
		fs.writeTimeout = fs.idleTimeout
	}
	if parkAfter > 0 && parkAfter < fs.idleTimeout {
		if pk, err := listener.NewParking(fs.woken); err == nil {
			fs.park = pk
		}
	}
	fs.handoffs = &handoffListener{conns: make(chan net.Conn), done: make(chan struct{})}
	return fs
}

// Handoffs returns the listener of the connections handed to net/http,
// whose Addr is addr's.
func (fs *FastServer) Handoffs(addr net.Addr) net.Listener {
	fs.handoffs.addr = addr
	return fs.handoffs
}

// Serve accepts connections on ln until it is closed; it returns
// http.ErrServerClosed after Shutdown.
func (fs *FastServer) Serve(ln net.Listener) error {
	fs.mu.Lock()
	fs.ln = ln
	if !fs.closing.Load() && fs.loops == nil {
		fs.loops = startLoops(fs)
	}
	fs.mu.Unlock()
	if fs.closing.Load() {
		ln.Close()
		return http.ErrServerClosed
	}
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if fs.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		fs.start(c)
	}
}

// start serves c: in an event loop, or (a trusted proxy's, or with no
// loop) on a goroutine of its own. A new TLS connection's handshake is a
// goroutine's, which then gives it to its loop.
func (fs *FastServer) start(c net.Conn) {
	remote := c.RemoteAddr().String()
	trusted := fs.p.opts.TrustedProxies.Trusts(remote)
	sock, from := fs.secure(c)
	var home *eventLoop
	if len(fs.loops) > 0 && !trusted {
		home = fs.loops[int(fs.next.Add(1))%len(fs.loops)]
		if from == resumeRead {
			if sock.Detach() == nil {
				home.adopt(&loopConn{sock: sock, remote: remote, peer: hostOfAddr(remote), fresh: true})
				return
			}
			// The connection could not leave Go's poller: a goroutine
			// serves it.
			home = nil
		}
	}
	if fs.closing.Load() {
		sock.Close()
		return
	}
	fc := newFastConn(fs, sock, remote)
	fc.trusted, fc.home = trusted, home
	if from == resumeHandshake {
		// Busy until its first request is read (within the header
		// timeout): Shutdown lets a handshake under way finish and its
		// request be answered, as net/http's server does, rather than
		// cut it.
		fc.state.Store(connActive)
	}
	fs.goServe(fc, from)
}

// newFastConn returns the fastConn of a client connection.
func newFastConn(fs *FastServer, sock *poll.Sock, remote string) *fastConn {
	fc := &fastConn{fs: fs, sock: sock, remote: remote, peer: hostOfAddr(remote)}
	fc.wr.fc = fc
	fc.keyedFn = fc.keyed
	return fc
}

// goServe serves fc on a goroutine of its own, from where from says.
func (fs *FastServer) goServe(fc *fastConn, from resumeKind) {
	fs.mu.Lock()
	fs.conns[fc] = struct{}{}
	fs.mu.Unlock()
	go fc.serve(from)
}

// woken serves a parked connection that has a request waiting.
func (fs *FastServer) woken(c net.Conn) { fs.start(c) }

// goHome gives an idle connection back to its event loop. It is adopted
// before it is forgotten (Shutdown counts it all along), and detached under
// the lock Shutdown closes the goroutines' connections under (which never
// closes it once its loop owns it).
func (fs *FastServer) goHome(fc *fastConn) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fc.sock.Detach() == nil {
		// One that has carried no request yet (a TLS connection after
		// its handshake) keeps the header timeout.
		fc.home.adopt(&loopConn{sock: fc.sock, remote: fc.remote, peer: fc.peer, fresh: fc.end.IsZero()})
	} else {
		fc.sock.Close()
	}
	delete(fs.conns, fc)
}

func (fs *FastServer) forget(fc *fastConn) {
	fs.mu.Lock()
	delete(fs.conns, fc)
	fs.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections (parked ones too) and
// waits until the busy ones have finished their request, or ctx ends, when
// it closes them.
func (fs *FastServer) Shutdown(ctx context.Context) error {
	if !fs.closing.CompareAndSwap(false, true) {
		return nil
	}
	close(fs.shutdown)
	fs.mu.Lock()
	if fs.ln != nil {
		fs.ln.Close()
	}
	fs.mu.Unlock()
	if fs.park != nil {
		fs.park.Close()
	}
	if fs.h2 != nil {
		fs.h2.Drain() // GOAWAY: each closes once its streams are answered
	}
	fs.mu.Lock()
	loops := fs.loops
	fs.mu.Unlock()
	for _, l := range loops {
		l.signal() // it closes its idle connections, the others after their request
	}
	defer func() {
		for _, l := range loops {
			l.stop()
		}
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		fs.mu.Lock()
		n := 0
		for _, l := range loops {
			n += int(l.live.Load())
		}
		for fc := range fs.conns {
			if fc.state.CompareAndSwap(connIdle, connClosed) {
				fc.sock.Close()
				continue
			}
			n++
		}
		fs.mu.Unlock()
		if fs.h2 != nil {
			n += fs.h2.Conns()
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			fs.mu.Lock()
			for fc := range fs.conns {
				fc.sock.Close()
			}
			fs.mu.Unlock()
			if fs.h2 != nil {
				fs.h2.Close()
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Connection states, for Shutdown.
const (
	connIdle int32 = iota
	connActive
	connClosed
)

// fastConn is one client connection, served by a goroutine or by an event
// loop, whichever owns its sock: see fast_loop_linux.go.
type fastConn struct {
	fs      *FastServer
	sock    *poll.Sock
	home    *eventLoop // the loop it goes back to when idle (nil: it stays with its goroutine)
	wr      fastWriter // what bw writes to
	out     []byte     // bytes of a response the client's socket did not take in the loop; sent first
	remote  string     // ip:port
	peer    string     // ip
	trusted bool       // the peer is a trusted proxy
	state   atomic.Int32

	buf  *[fastBufferSize]byte
	n    int // bytes of buf filled
	bw   *bufio.Writer
	req  h1.Request
	resp h1.Response

	// end is when the last request's response was written (zero: not yet
	// in this request): its duration, the replica connection's idle time
	// and the next idle wait all start from it, one clock read for three.
	end time.Time

	// Watching the client while a replica answers (watchClient).
	watch    *time.Timer
	watchMu  sync.Mutex
	watching *h1Conn // the replica connection to close if the client goes
	gone     atomic.Bool

	// The request's route and replica, as pick chose them, and when it
	// began; try is the event loop's try when a goroutine takes it over.
	route  *Route
	picked *balancer.Upstream
	ft     *h1Transport
	affKey uint64
	path   []byte
	start  time.Time
	try    loopTry
	// shedErr is why the pool's queue gave the request no replica.
	shedErr error

	// Reused per request: the attempt (for the Proxy's retry logic), and
	// the request as Observers and the error handler see it; keyedFn is
	// keyed, bound once.
	a       attempt
	keyedFn func() bool
	hreq    http.Request
	hurl    url.URL
	ex      Exchange
	status  int
	bytes   int64
}

var (
	fastBuffers = sync.Pool{New: func() any { return new([fastBufferSize]byte) }}
	fastWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, fastBufferSize) }}
)

// Where a goroutine starts serving a connection.
type resumeKind int

const (
	resumeRead      resumeKind = iota // read (or parse what is buffered) and forward
	resumePicked                      // forward the request pick chose a replica for
	resumeTry                         // go on with the event loop's try (fc.try)
	resumeClose                       // write what the client's socket did not take (fc.out), then close
	resumeHandshake                   // the TLS handshake first (fast_tls.go), then read
)

// loopTry is an exchange's try a loop began: the request went out on hc
// (and hc holds the response head when head is set), or it failed with err
// after got bytes of an answer, hc closed.
type loopTry struct {
	hc   *h1Conn
	run  uint64
	err  error
	got  int64
	head bool
}

// fastWriter is what a client connection's bufio.Writer writes to: the
// socket, out first. What an event loop's socket does not take without
// waiting is kept in out (a TLS socket keeps its records itself: Unsent),
// for the goroutine that takes the connection over.
type fastWriter struct{ fc *fastConn }

func (w *fastWriter) Write(p []byte) (int, error) {
	fc := w.fc
	if err := fc.flushOut(); err != nil {
		if err != poll.ErrWouldBlock {
			return 0, err
		}
		fc.out = append(fc.out, p...)
		return len(p), nil
	}
	n, err := fc.sock.Write(p)
	if err == poll.ErrWouldBlock {
		fc.out = append(fc.out, p[n:]...)
		return len(p), nil
	}
	return n, err
}

// flushOut writes what the client's socket did not take (fc.out, and a TLS
// socket's records): all of it on a goroutine, what the socket takes in an
// event loop (poll.ErrWouldBlock when not all).
func (fc *fastConn) flushOut() error {
	if !fc.owes() {
		return nil
	}
	fc.extendWriteDeadline()
	if err := fc.sock.Flush(); err != nil || len(fc.out) == 0 {
		return err
	}
	n, err := fc.sock.Write(fc.out)
	if err == poll.ErrWouldBlock {
		fc.out = fc.out[:copy(fc.out, fc.out[n:])]
		return err
	}
	fc.out = fc.out[:0]
	return err
}

// owes reports whether the client is owed bytes its socket did not take.
func (fc *fastConn) owes() bool { return len(fc.out) > 0 || fc.sock.Unsent() }

// serve reads and forwards requests until the client is done, a request
// goes to net/http, or the connection idles: then it goes back to its
// event loop, or is parked after a while when it has none.
func (fc *fastConn) serve(from resumeKind) {
	defer func() {
		// As net/http's server does: a bug costs one connection, not the
		// process.
		if v := recover(); v != nil {
			fc.fs.p.opts.Log.Error().Str("client", fc.remote).Interface("panic", v).Msg("fast data path: connection dropped after a panic (a bug: please report it)")
			fc.sock.Close()
			fc.fs.forget(fc)
		}
	}()
	if fc.buf == nil {
		fc.buf = fastBuffers.Get().(*[fastBufferSize]byte)
	}
	if fc.bw == nil {
		fc.bw = fastWriters.Get().(*bufio.Writer)
		fc.bw.Reset(&fc.wr)
	}
	next := afterClose
	if fc.flushOut() == nil {
		next = fc.loop(from)
	}
	fc.bw.Reset(nil)
	fastWriters.Put(fc.bw)
	fc.bw = nil
	pending := fc.buf[:fc.n]
	if next == afterHome {
		fc.fs.goHome(fc)
	} else {
		fc.fs.forget(fc)
	}
	switch next {
	case afterHandoff:
		fc.fs.handoff(fc.sock.Conn(), pending)
	case afterH2:
		fc.fs.serveH2(fc.sock.Conn())
	case afterPark:
		if !fc.fs.park.Add(fc.sock.Conn(), time.Now().Add(fc.fs.idleTimeout-fc.fs.parkAfter)) {
			fc.sock.Close()
		}
	case afterHome:
	default:
		fc.sock.Close()
	}
	fastBuffers.Put(fc.buf)
	fc.buf = nil
}

// What becomes of a connection when loop returns.
type afterLoop int

const (
	afterClose afterLoop = iota
	afterHandoff
	afterPark
	afterHome // back to its event loop
	afterH2   // served over HTTP/2 (fast_tls.go)
)

// loop serves requests from the connection, the first from where from
// says.
func (fc *fastConn) loop(from resumeKind) afterLoop {
	fs := fc.fs
	for {
		// A connection that has carried no request yet (a TLS one after
		// its handshake) is not idle during Shutdown: its first request
		// is read and answered here.
		if fc.n == 0 && fc.home != nil && from == resumeRead && !(fc.end.IsZero() && fs.closing.Load()) {
			// Idle: its event loop waits for the next request. Closed
			// here, Shutdown no longer closes it meanwhile.
			if fs.closing.Load() || !fc.state.CompareAndSwap(connIdle, connClosed) && !fc.state.CompareAndSwap(connActive, connClosed) {
				return afterClose
			}
			return afterHome
		}
		var keep, handled bool
		switch from {
		case resumeClose:
			return afterClose // serve wrote fc.out first
		case resumePicked:
			keep, handled = fc.forwardPicked(false), true
		case resumeTry:
			keep, handled = fc.forwardPicked(true), true
		case resumeHandshake:
			if after, ok := fc.handshake(); !ok {
				return after
			}
			from = resumeRead
			continue
		default:
			v, ok, after := fc.readHead()
			if !ok {
				return after
			}
			switch v {
			case h1.Reject:
				fc.badRequest()
				fc.lingerClose()
				return afterClose
			case h1.Handoff:
				return afterHandoff
			}
			keep, handled = fc.forward()
		}
		from = resumeRead
		if !handled {
			return afterHandoff
		}
		if !keep || fs.closing.Load() || fc.gone.Load() {
			return afterClose
		}
		// Keep what follows the request (a pipelined next one).
		used := fc.req.HeadLen + int(max(fc.req.ContentLength, 0))
		fc.n = copy(fc.buf[:], fc.buf[used:fc.n])
		if !fc.state.CompareAndSwap(connActive, connIdle) {
			return afterClose
		}
	}
}

// readHead reads until the buffer holds a request head (and its body, when
// it has one of a known length) or the parser refuses it. ok is false
// when the connection ends: closed, timed out, parked or handed off.
func (fc *fastConn) readHead() (v h1.Verdict, ok bool, after afterLoop) {
	fs := fc.fs
	var deadline time.Time
	inBody, progress := false, 0 // reading the body, and its bytes since the deadline was set
	if fc.n == 0 {
		// Idle: wait for the next request up to the idle timeout, or to
		// parking time. A new connection (no request served yet: end
		// is zero) gets the header timeout, and is closed, not parked,
		// when it sends nothing in it.
		wait, park := fs.idleTimeout, fs.park != nil
		if park {
			wait = fs.parkAfter
		}
		now := fc.end
		if now.IsZero() {
			now = time.Now()
			wait, park = fs.readHeaderTimeout, false
		}
		fc.readWithin(now, wait)
		n, err := fc.sock.Read(fc.buf[:])
		if n == 0 {
			var ne net.Error
			if err != nil && park && errors.As(err, &ne) && ne.Timeout() && !fs.closing.Load() {
				if fc.state.CompareAndSwap(connIdle, connClosed) {
					return 0, false, afterPark
				}
			}
			return 0, false, afterClose
		}
		fc.n = n
	}
	if !fc.state.CompareAndSwap(connIdle, connActive) && fc.state.Load() != connActive {
		return 0, false, afterClose
	}
	for {
		v = h1.ParseRequest(fc.buf[:fc.n], &fc.req)
		if v == h1.OK && fc.req.HeadLen+int(fc.req.ContentLength) > len(fc.buf) {
			return h1.Handoff, true, 0 // a body larger than the buffer: net/http streams it
		}
		if v == h1.OK && fc.req.HeadLen+int(max(fc.req.ContentLength, 0)) <= fc.n || v == h1.Reject || v == h1.Handoff {
			if !deadline.IsZero() {
				fc.setReadDeadline(time.Time{})
			}
			return v, true, 0
		}
		if fc.n == len(fc.buf) {
			return h1.Handoff, true, 0 // a head larger than the buffer: net/http applies its limit
		}
		switch {
		case v == h1.OK && !inBody && fs.p.opts.BodyTimeout > 0:
			// The head is in, the body is not: from here the body
			// timeout applies, as clientBody applies it on net/http's
			// path (bodyProgress bytes in each BodyTimeout).
			inBody, progress = true, 0
			deadline = time.Now().Add(fs.p.opts.BodyTimeout)
			fc.setReadDeadline(deadline)
		case deadline.IsZero():
			deadline = time.Now().Add(fs.readHeaderTimeout)
			fc.setReadDeadline(deadline)
		}
		n, err := fc.sock.Read(fc.buf[fc.n:])
		fc.n += n
		if progress += n; inBody && progress >= bodyProgress {
			progress = 0
			deadline = time.Now().Add(fs.p.opts.BodyTimeout)
			fc.setReadDeadline(deadline)
		}
		if n == 0 && err != nil {
			if inBody && errors.Is(err, os.ErrDeadlineExceeded) {
				fc.bodyStalled()
			}
			return 0, false, afterClose
		}
	}
}

// bodyStalled answers a request whose body brought less than bodyProgress
// bytes in the body timeout (408, as clientFailed does on net/http's
// path); the connection closes.
func (fc *fastConn) bodyStalled() {
	msg := fmt.Sprintf("dlb: the request body stalled (less than %d bytes in %s)\r\n", bodyProgress, fc.fs.p.opts.BodyTimeout)
	fc.extendWriteDeadline()
	fmt.Fprintf(fc.bw, "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
	fc.bw.Flush()
}

// badRequest answers a malformed request (RFC 9112) and the connection
// closes.
func (fc *fastConn) badRequest() {
	fc.extendWriteDeadline()
	fc.bw.WriteString("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 49\r\n\r\ndlb: malformed HTTP/1.1 request (see RFC 9112)\r\n")
	fc.bw.Flush()
}

// lingerClose shuts the writing side and reads what the client still
// sends for a while, so that closing with unread bytes does not reset the
// connection before the client has read the answer (as net/http does).
func (fc *fastConn) lingerClose() {
	if fc.sock.CloseWrite() {
		fc.setReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			if _, err := fc.sock.Read(fc.buf[:]); err != nil {
				break
			}
		}
	}
	fc.n = 0
}

// extendWriteDeadline gives the client's connection the write timeout
// from now, resetting the timer only when more than half of it has passed
// (an event loop's socket has none: what it does not take goes to a
// goroutine).
func (fc *fastConn) extendWriteDeadline() {
	fc.sock.ExtendWriteDeadline(time.Time{}, fc.fs.writeTimeout)
}

// str is b as a string without a copy, for lookups that do not keep it.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// forward serves the parsed request. handled is false when it is for
// net/http, before anything was sent; keep whether the connection can
// carry the next request.
func (fc *fastConn) forward() (keep, handled bool) {
	if !fc.pick(true) {
		if errors.Is(fc.shedErr, context.Canceled) {
			fc.gone.Store(true) // it left while its request waited: nobody to answer
			return false, true
		}
		if fc.shedErr != nil {
			return fc.shed(), true
		}
		return false, false
	}
	return fc.forwardPicked(false), true
}

// pick routes the parsed request and picks its replica (fc.route,
// fc.picked, fc.ft, fc.key, fc.path), with a slot claimed on it. It
// reports false when the request is for net/http: a trusted proxy's, one
// the intercept takes, no route, a sticky or h2c route, a body over the
// route's limit, or a replica without the fast transport; when no replica
// has room and queue is false (an event loop, which never waits: a
// goroutine's pick queues); and when the pool's queue shed it (fc.shedErr,
// to answer 503).
func (fc *fastConn) pick(queue bool) bool {
	fc.shedErr = nil
	p, r := fc.fs.p, &fc.req
	if fc.trusted {
		return false
	}
	path := r.Target
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	if fc.fs.intercept != nil && fc.fs.intercept(str(r.Host), str(path)) {
		return false
	}
	route := p.router.Lookup(str(r.Host), str(path))
	if route == nil || route.Sticky || route.Scheme == SchemeH2C || route.MaxBody > 0 && r.ContentLength > route.MaxBody {
		return false
	}
	var key uint64
	if route.Pool.NeedsKey() {
		key = fc.key(route)
	}
	up := route.Pool.Pick(key, nil)
	if up == nil {
		if !queue {
			return false // an event loop's: it hands the connection to a goroutine
		}
		ctx, stop := fc.clientContext()
		var err error
		up, err = p.acquire(ctx, route, key, nil, func() uint64 { return fc.key(route) })
		stop()
		if err != nil {
			fc.route, fc.path, fc.shedErr = route, path, err
			return false
		}
	}
	fc.route, fc.picked, fc.ft, fc.affKey, fc.path = route, up, p.transportFor(up).fast, key, path
	return true
}

// clientContext is a context that ends when the client goes away, for a
// request waiting in its pool's queue: the socket is looked at (not read)
// every watchEvery. stop ends the watch.
func (fc *fastConn) clientContext() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	t = time.AfterFunc(watchEvery, func() {
		// Under mu: once stop returns, the socket is not looked at (its
		// goroutine may hand it to its event loop).
		mu.Lock()
		defer mu.Unlock()
		switch {
		case stopped:
		case fc.sock.Gone():
			cancel()
		default:
			t.Reset(watchEvery)
		}
	})
	mu.Unlock()
	return ctx, func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
		cancel()
	}
}

// begin starts the picked request's attempt at now.
func (fc *fastConn) begin(now time.Time) {
	up := fc.picked
	a := &fc.a
	*a = attempt{Context: context.Background(), route: fc.route, up: up, key: fc.affKey, keyed: fc.keyedFn}
	a.tried = a.triedBuf[:0]
	if up.Begin() {
		a.first = up
	}
	fc.request(now)
}

// request sets what Observers see of the parsed request, begun at now.
func (fc *fastConn) request(now time.Time) {
	r := &fc.req
	fc.start, fc.end = now, time.Time{}
	fc.status, fc.bytes = 0, 0
	fc.hurl = url.URL{Path: str(fc.path), RawQuery: ""}
	fc.hreq = http.Request{Method: str(r.Method), URL: &fc.hurl, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Host: str(r.Host), RemoteAddr: fc.remote, RequestURI: str(r.Target), ContentLength: max(r.ContentLength, 0)}
}

// forwardPicked sends the picked request (begun, with the event loop's
// try in fc.try, when begun is set) and relays the response. It reports
// whether the connection can carry the next request.
func (fc *fastConn) forwardPicked(begun bool) bool {
	var try *loopTry
	if begun {
		try = &fc.try
	} else {
		fc.begin(time.Now())
	}
	return fc.finish(fc.exchange(fc.route, fc.start, fc.ft, try))
}

// finish ends the request's attempt and tells the Observer; keep is
// whether the exchange left the connection usable.
func (fc *fastConn) finish(keep bool) bool {
	a := &fc.a
	if a.up.Adaptive() {
		fc.end = time.Now()
		a.up.EndAfter(a.failed, fc.status >= 500, fc.end.Sub(fc.start))
	} else {
		a.up.End(a.failed)
	}
	if fc.end.IsZero() {
		fc.end = time.Now()
	}
	if ob := fc.fs.p.opts.Observer; ob != nil {
		fc.ex = Exchange{Route: fc.route, Upstream: a.up, FirstFor: a.first, Status: fc.status, Bytes: fc.bytes,
			Start: fc.start, Duration: fc.end.Sub(fc.start), Retries: len(a.tried),
			RetryRefused: a.budgetRefused, EjectionCapped: a.ejectCapped}
		if fc.ex.Status == 0 {
			fc.ex.Status = StatusClientClosed
		}
		ob.Observe(&fc.hreq, &fc.ex)
	}
	return keep && !fc.req.Close
}

// key is the request's affinity key, as requestKey makes it.
func (fc *fastConn) key(route *Route) uint64 {
	if route.hashHeader != "" {
		r := &fc.req
		for _, f := range r.Fields() {
			if bytes.EqualFold(f.Name, []byte(route.hashHeader)) {
				if len(f.Value) > 0 {
					return balancer.KeyOf(str(f.Value))
				}
				break
			}
		}
	}
	return balancer.KeyOf(fc.peer)
}

// exchange sends the request to the attempt's replica, retrying as the
// Proxy does, and relays the response. It reports whether the client
// connection can be kept. now is the time the request began (its first
// try's deadlines count from it; a retry reads the clock again), ft the
// first try's transport. lt, when not nil, is the first try, begun by the
// event loop on a kept-alive connection: sent (lt.hc, and lt.head when
// the response head is in), or failed (lt.err).
func (fc *fastConn) exchange(route *Route, now time.Time, ft *h1Transport, lt *loopTry) bool {
	p, a := fc.fs.p, &fc.a
	defer fc.watchFor(nil)
	fresh := false
	for try := 0; ; try++ {
		if try > 0 {
			now = time.Now()
			ft = p.transportFor(a.up).fast
		}
		var (
			run    uint64
			hc     *h1Conn
			reused bool
			err    error
			got    int64 // bytes of an answer read on hc
		)
		if lt != nil {
			run, hc, reused, err, got = lt.run, lt.hc, true, lt.err, lt.got
		} else {
			run = a.up.Admissions() // which of its runs as Ready this try meets
			// A request that can be resent skips the look at an idle
			// connection: if the replica closed it, the request goes again on
			// a new one (fresh below), as net/http's Transport does.
			hc, reused, err = ft.getConn(context.Background(), a.up.Address(), fresh, !fc.replayable(), now)
		}
		if connected := lt != nil || err == nil; connected {
			if err == nil {
				fc.watchFor(hc)
				var b []byte
				switch {
				case lt != nil && lt.head:
					b, _ = hc.br.Peek(hc.br.Buffered())
				case lt != nil:
					b, err = fc.readResponseHead(hc, route, now)
				default:
					if err = fc.send(hc, route, now); err == nil {
						b, err = fc.readResponseHead(hc, route, now)
					}
				}
				if err == nil {
					return fc.relay(hc, b)
				}
				hc.close()
				got = hc.r.got
			}
			lt = nil
			err = stale(err, reused, got)
		}
		if fc.gone.Load() {
			fc.status = StatusClientClosed
			return false
		}
		if fresh, err = p.retry(&fc.hreq, a, err, run); err != nil {
			fc.fail(err)
			return false
		}
	}
}

// readResponseHead reads the replica's response head within the route's
// response header timeout (as timedRoundTrip bounds the std path's): a
// replica that sends none in time fails with errResponseHeaderTimeout.
func (fc *fastConn) readResponseHead(hc *h1Conn, route *Route, now time.Time) ([]byte, error) {
	return readHeadWithin(hc, &fc.resp, fc.fs.p.responseHeaderTimeout(route), now)
}

// readHeadWithin is readResponseHead within d of now (no limit when d is
// not positive): a replica that sends no head in time fails with
// errResponseHeaderTimeout. The deadline stays when the head is in: the
// relay clears it before a read of the body (which takes as long as it
// takes).
func readHeadWithin(hc *h1Conn, rs *h1.Response, d time.Duration, now time.Time) ([]byte, error) {
	if d <= 0 {
		hc.noReadDeadline()
		return readResponseHead(hc, rs)
	}
	hc.headWithin(now, d)
	b, err := readResponseHead(hc, rs)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w (%s)", errResponseHeaderTimeout, d)
	}
	return b, err
}

// watchEvery is how often a client is checked for having gone while a
// replica answers it.
const watchEvery = 100 * time.Millisecond

// watchFor starts watching the client for as long as hc answers it (nil:
// stops): when the client closes its connection, hc is closed, which ends
// the exchange and tells the replica (as net/http's server cancels the
// request's context). A request answered within watchEvery costs a timer
// reset and stop, no syscall. (Leaving the timer armed across requests
// instead saves those two, but at -c256, where every connection always has
// a request in flight, it peeks at 10 Hz per connection: 0.35 recvfrom and
// more context switches per request, measured in bench/ab.sh.)
func (fc *fastConn) watchFor(hc *h1Conn) {
	if hc == nil && fc.watching == nil {
		// Not watching (relay stopped it, exchange's defer comes after):
		// no lock, no Stop. Only this goroutine writes fc.watching.
		return
	}
	// The timer's callback reads fc.watch under watchMu too: it may run
	// before AfterFunc's result is stored when this goroutine is slow.
	fc.watchMu.Lock()
	defer fc.watchMu.Unlock()
	fc.watching = hc
	switch {
	case hc == nil:
		if fc.watch != nil {
			fc.watch.Stop()
		}
	case fc.watch == nil:
		fc.watch = time.AfterFunc(watchEvery, fc.watchClient)
	default:
		fc.watch.Reset(watchEvery)
	}
}

// watchClient runs on the timer: it looks at the client's socket without
// reading it.
func (fc *fastConn) watchClient() {
	fc.watchMu.Lock()
	defer fc.watchMu.Unlock()
	if fc.watching == nil {
		return
	}
	if fc.sock.Gone() {
		fc.gone.Store(true)
		fc.watching.close()
		return
	}
	fc.watch.Reset(watchEvery)
}

// replayable is mayResend for the fast path's request once it may have
// reached a replica (its body is in memory, so only the method and an
// idempotency key count).
func (fc *fastConn) replayable() bool { return mayResend(str(fc.req.Method), fc.keyedFn, nil, true) }

// keyed reports whether the request carries an idempotency key.
func (fc *fastConn) keyed() bool {
	for _, f := range fc.req.Fields() {
		if bytes.EqualFold(f.Name, []byte("Idempotency-Key")) || bytes.EqualFold(f.Name, []byte("X-Idempotency-Key")) {
			return true
		}
	}
	return false
}

// send writes the request to the replica: its head as h1 forwards it,
// without the forwarding fields of a client that is not a trusted proxy
// and with X-Forwarded-For, -Host and -Proto set as setForwarded does, and
// the body.
func (fc *fastConn) send(hc *h1Conn, route *Route, now time.Time) error {
	if err := fc.stage(hc, route, now); err != nil {
		return err
	}
	return hc.bw.Flush()
}

// stage is send without the final flush: the request is in hc's write
// buffer (or partly written, if larger).
func (fc *fastConn) stage(hc *h1Conn, route *Route, now time.Time) error {
	r := &fc.req
	hc.r.got, hc.r.limit = 0, maxResponseHeader
	// The timer is reset only when half of the timeout has passed; the
	// other path using the connection clears it (h1Conn.roundTrip). An
	// event loop's connection has none: what it does not take fails.
	hc.sock.ExtendWriteDeadline(now, fc.fs.writeTimeout)
	w := hc.bw
	target := r.Target
	if route.StripPath && route.Path != "/" && hasPathPrefix(fc.hurl.Path, route.Path) {
		target = target[len(route.Path):] // stripPrefix's rule on a plain target
	}
	w.Write(h1.AppendRequestHead(w.AvailableBuffer(), r, target, forwardingField, func(dst []byte) []byte {
		return appendForwarded(dst, fc.peer, r.Host, fc.fs.scheme)
	}))
	if r.ContentLength > 0 {
		w.Write(fc.buf[r.HeadLen : r.HeadLen+int(r.ContentLength)])
	}
	_, err := w.Write(nil) // a flush of a full buffer may have failed
	return err
}

// relay writes the replica's response, whose first head (b, parsed in
// fc.resp) has been read, to the client. It reports whether the client
// connection can be kept.
func (fc *fastConn) relay(hc *h1Conn, b []byte) bool {
	head := fc.req.Method[0] == 'H' && string(fc.req.Method) == http.MethodHead
	rs := &fc.resp
	for {
		if b == nil {
			var err error
			hc.noReadDeadline() // a final response after a 1xx one waits as long as it takes
			if b, err = readResponseHead(hc, rs); err != nil {
				hc.close()
				fc.fail(err) // after 1xx responses only: nothing final was sent
				return false
			}
		}
		hc.r.limit = math.MaxInt64
		final := rs.Status >= 200
		bodyless := rs.Bodyless(head)
		untilClose := final && !bodyless && !rs.Chunked && rs.ContentLength < 0
		keepClient := !untilClose && !fc.req.Close && !fc.fs.closing.Load()
		fc.extendWriteDeadline()
		fc.writeHead(rs, keepClient)
		hc.br.Discard(rs.HeadLen)
		b = nil
		if !final {
			continue
		}
		fc.status = rs.Status
		keepUp := !rs.Close && !rs.HTTP10 && !untilClose
		if !bodyless && (rs.Chunked || rs.ContentLength < 0 || int64(hc.br.Buffered()) < rs.ContentLength) {
			hc.noReadDeadline() // the body takes as long as it takes
		}
		var ok bool
		switch {
		case bodyless:
			ok = true
		case rs.Chunked:
			ok = fc.copyChunked(hc)
		case rs.ContentLength >= 0:
			ok = fc.copyN(hc, rs.ContentLength)
		default:
			fc.copyUntilClose(hc)
			ok, keepUp = true, false
		}
		if err := fc.bw.Flush(); err != nil {
			ok = false
		}
		fc.watchFor(nil) // before hc goes back to the pool, where the watch must not close it
		fc.end = time.Now()
		if ok && keepUp && hc.br.Buffered() == 0 && !fc.gone.Load() {
			hc.idle(fc.end)
		} else {
			hc.close()
		}
		return ok && keepClient
	}
}

// readResponseHead returns the bytes of the next response head on hc
// (valid until hc.br is read again), parsed into rs. A head larger than
// hc.br's buffer gets a larger buffer, up to maxResponseHeader.
func readResponseHead(hc *h1Conn, rs *h1.Response) ([]byte, error) {
	if _, err := hc.br.Peek(1); err != nil {
		return nil, err
	}
	for {
		br := hc.br
		b, _ := br.Peek(br.Buffered())
		switch h1.ParseResponse(b, rs) {
		case h1.OK:
			return b, nil
		case h1.Reject, h1.Handoff:
			return nil, errBadResponse
		}
		if br.Buffered() == br.Size() {
			if br.Size() >= maxResponseHeader {
				return nil, errHeaderTooLarge
			}
			// The bytes read go first, then the connection's.
			hc.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), &hc.r), min(4*br.Size(), maxResponseHeader))
			continue
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil, err
		}
	}
}

// errBadResponse is a replica's response the parser refused.
var errBadResponse = errors.New("malformed HTTP/1.1 response from the replica (RFC 9112)")

// writeHead writes a response head to the client as h1 forwards it
// (hop-by-hop fields out, Date when the replica sent none, the framing).
func (fc *fastConn) writeHead(rs *h1.Response, keep bool) {
	w := fc.bw
	head := h1.AppendResponseHead(w.AvailableBuffer(), rs, keep, httpDate)
	if v := fc.sts(); v != "" && rs.Status >= 200 {
		head = append(h1.AppendField(head[:len(head)-2], "Strict-Transport-Security", v), "\r\n"...)
	}
	w.Write(head)
}

// fill makes br hold at least one byte, flushing what the client is owed
// before waiting for the replica.
func (fc *fastConn) fill(br *bufio.Reader) error {
	if br.Buffered() > 0 {
		return nil
	}
	if err := fc.bw.Flush(); err != nil {
		return err
	}
	_, err := br.Peek(1)
	return err
}

// copyN relays n body bytes.
func (fc *fastConn) copyN(hc *h1Conn, n int64) bool {
	for n > 0 {
		if hc.br.Buffered() == 0 && n >= fastBufferSize {
			m, ok := fc.copyDirect(hc, n)
			if !ok {
				return false
			}
			n -= m
			continue
		}
		if err := fc.fill(hc.br); err != nil {
			return false
		}
		b, _ := hc.br.Peek(int(min(int64(hc.br.Buffered()), n)))
		if _, err := fc.bw.Write(b); err != nil {
			return false
		}
		fc.bytes += int64(len(b))
		hc.br.Discard(len(b))
		n -= int64(len(b))
	}
	return true
}

// copyDirect relays up to n bytes of a large body with one read from the
// replica into a copy buffer and one write to the client, past both
// buffers.
func (fc *fastConn) copyDirect(hc *h1Conn, n int64) (int64, bool) {
	if fc.bw.Flush() != nil {
		return 0, false
	}
	buf := bufferPool{}.Get()
	defer bufferPool{}.Put(buf)
	m, err := hc.r.Read(buf[:min(n, int64(len(buf)))])
	if m > 0 {
		if _, werr := fc.sock.Write(buf[:m]); werr != nil {
			return 0, false
		}
		fc.bytes += int64(m)
	}
	return int64(m), err == nil || m > 0 && err == io.EOF && int64(m) == n
}

// copyChunked relays a chunked body, checked by an h1.ChunkScanner, to its
// end.
func (fc *fastConn) copyChunked(hc *h1Conn) bool {
	var s h1.ChunkScanner
	for !s.Done() {
		if err := fc.fill(hc.br); err != nil {
			return false
		}
		b, _ := hc.br.Peek(hc.br.Buffered())
		n, ok := s.Scan(b)
		if _, err := fc.bw.Write(b[:n]); err != nil || !ok {
			return false
		}
		fc.bytes += int64(n)
		hc.br.Discard(n)
	}
	return true
}

// copyUntilClose relays a body that ends when the replica closes.
func (fc *fastConn) copyUntilClose(hc *h1Conn) {
	for fc.fill(hc.br) == nil {
		b, _ := hc.br.Peek(hc.br.Buffered())
		if _, err := fc.bw.Write(b); err != nil {
			return
		}
		fc.bytes += int64(len(b))
		hc.br.Discard(len(b))
	}
}

// fail answers a request that got no response, as the Proxy's error
// handler does (502, 503 or 504, and the same log line).
func (fc *fastConn) fail(err error) {
	if fc.gone.Load() {
		fc.status = StatusClientClosed
		return
	}
	w := &bufferedResponse{header: http.Header{}}
	fc.fs.p.errorHandler(w, fc.hreq.WithContext(&fc.a), err)
	if w.status == 0 {
		return
	}
	fc.answer(w, false)
}

// shed answers a request the pool's queue shed (fc.shedErr): 503 with
// Retry-After, as net/http's path does; the connection stays open. It
// tells the Observer.
func (fc *fastConn) shed() bool {
	fc.request(time.Now())
	w := &bufferedResponse{header: http.Header{}}
	shed(w, fc.route, fc.shedErr)
	fc.answer(w, true)
	fc.end = time.Now()
	if ob := fc.fs.p.opts.Observer; ob != nil {
		fc.ex = Exchange{Route: fc.route, Status: fc.status, Bytes: fc.bytes, Start: fc.start, Duration: fc.end.Sub(fc.start)}
		ob.Observe(&fc.hreq, &fc.ex)
	}
	return !fc.req.Close
}

// answer writes dlb's own answer w to the client; keep says whether the
// connection stays open after it.
func (fc *fastConn) answer(w *bufferedResponse, keep bool) {
	fc.status = w.status
	fc.bytes = int64(w.body.Len())
	fc.extendWriteDeadline()
	bw := fc.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(w.status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(w.status))
	bw.WriteString("\r\n")
	w.header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	if !keep {
		w.header.Set("Connection", "close")
	}
	w.header.Set("Date", string(httpDate()))
	if v := fc.sts(); v != "" {
		w.header.Set("Strict-Transport-Security", v)
	}
	w.header.Write(bw)
	bw.WriteString("\r\n")
	bw.Write(w.body.Bytes())
	bw.Flush()
}

// bufferedResponse is an http.ResponseWriter that keeps what is written,
// for fail.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedResponse) Header() http.Header { return w.header }
func (w *bufferedResponse) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *bufferedResponse) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// httpDate is the Date field's value for now, made once a second.
func httpDate() []byte {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &cachedDate{unix: now, text: []byte(time.Unix(now, 0).UTC().Format(http.TimeFormat))}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	unix int64
	text []byte
}

var dateCache atomic.Pointer[cachedDate]

// handoff gives a connection to the http.Server serving Handoffs, with
// the bytes already read from it.
func (fs *FastServer) handoff(c net.Conn, pending []byte) {
	c.SetDeadline(time.Time{})
	c = withPending(c, bytes.Clone(pending))
	select {
	case fs.handoffs.conns <- c:
	case <-fs.handoffs.done:
		c.Close()
	}
}

// handoffListener is the listener net/http serves hand-offs from.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// prefixConn is a connection handed to net/http: its first reads return
// bytes already read from it, and a write that times out resets it.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Write resets the connection when it times out (see poll.ResetOnTimeout):
// net/http closes it at once, before the handler learns why.
func (c *prefixConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	poll.ResetOnTimeout(c.Conn, err)
	return n, err
}

// SyscallConn gives the network connection's, so that it can be parked
// once its bytes have been read.
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a network connection")
}

// Unwrap returns the network connection.
func (c *prefixConn) Unwrap() net.Conn { return c.Conn }
