// Package h2 is an HTTP/2 server (RFC 9113) for connections whose protocol
// is already settled (ALPN h2 after a TLS handshake). One goroutine reads a
// connection's frames; each stream's handler runs on a goroutine of its own
// and writes its frames straight into the connection's one output buffer,
// which the first writer to find it unflushed writes to the socket while the
// others keep appending: the frames of many streams leave in one write (one
// TLS record), and no goroutine hands frames to another.
//
// It imports nothing of dlb: it serves any http.Handler. Frames are read
// with golang.org/x/net/http2's Framer (which checks their layout and
// order) and header blocks decoded with its HPACK decoder into a field list
// the connection reuses (headers.go); the blocks it sends are encoded by
// its own encoder (hpack.go); everything else (stream states, flow
// control both ways, limits, GOAWAY) is here.
package h2

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Server serves HTTP/2 connections with Handler. The zero value of each
// other field picks the default its comment gives.
type Server struct {
	// Handler answers every request.
	Handler http.Handler
	// MaxConcurrentStreams is how many streams a client may have open at
	// once (default 250); a stream counts until its handler returns.
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a request's header list, as HPACK decodes it
	// (default http.DefaultMaxHeaderBytes); a larger one gets 431.
	MaxHeaderBytes int
	// IdleTimeout closes a connection (with GOAWAY) that has had no open
	// stream for this long (default 120s).
	IdleTimeout time.Duration
	// PrefaceTimeout bounds the client's connection preface and first
	// SETTINGS frame (default 10s).
	PrefaceTimeout time.Duration
	// WriteTimeout bounds one write to the socket: a client that takes
	// nothing for this long loses the connection (default 120s).
	WriteTimeout time.Duration
	// ErrorLog gets handler panics; nil: the log package's logger.
	ErrorLog *log.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	draining bool

	// Handlers run on workers that take the next stream when done: a new
	// goroutine per stream would grow its stack anew every time (the
	// proxy's call chain is deep). work hands a stream to an idle worker;
	// quit (closed by Drain) sends the idle ones away.
	workersOnce sync.Once
	work        chan handlerJob
	quit        chan struct{}
	idleWorkers atomic.Int32
	stopped     bool // quit is closed (under mu)
}

// handlerJob is a stream for a worker to answer.
type handlerJob struct {
	c        *conn
	st       *stream
	req      *http.Request
	tooLarge bool
}

// maxIdleWorkers bounds the workers that wait for a stream. Past it a
// worker exits, and a later stream starts a goroutine whose stack grows
// again by copying (with 256, under h2load -c64 -m10, stack growth took
// 2% of dlb's CPU; with 1024, 0.8%, what the collector's shrinking of idle
// stacks costs). An idle worker holds a few KiB.
const maxIdleWorkers = 1024

func (s *Server) initWorkers() {
	s.workersOnce.Do(func() { s.work, s.quit = make(chan handlerJob), make(chan struct{}) })
}

// stopWorkers sends the idle workers away, and those busy once they are
// done. Called with s.mu held.
func (s *Server) stopWorkers() {
	s.initWorkers()
	if !s.stopped {
		s.stopped = true
		close(s.quit)
	}
}

// startHandler gives j to an idle worker, or to a new one.
func (s *Server) startHandler(j handlerJob) {
	select {
	case s.work <- j:
	default:
		go s.worker(j)
	}
}

func (s *Server) worker(j handlerJob) {
	for {
		j.c.runHandler(j.st, j.req, j.tooLarge)
		if s.idleWorkers.Add(1) > maxIdleWorkers {
			s.idleWorkers.Add(-1)
			return
		}
		select {
		case j = <-s.work:
			s.idleWorkers.Add(-1)
		case <-s.quit:
			s.idleWorkers.Add(-1)
			return
		}
	}
}

// Flow-control windows dlb grants, and what it assumes of a peer.
const (
	streamWindow   = 256 << 10 // what a client may send on one stream before the handler reads
	connWindow     = 1 << 20   // and on all of them
	defaultWindow  = 65535     // RFC 9113 section 6.9.2
	maxWindow      = 1<<31 - 1
	readFrameSize  = 16 << 10 // SETTINGS_MAX_FRAME_SIZE dlb keeps (the default)
	maxWriteBuffer = 64 << 10 // handlers wait while more than this is queued
	// maxBacklog is how much unflushed output a connection may queue before
	// it is dropped: the answers to a flood of PINGs or SETTINGS a client
	// does not read.
	maxBacklog = 1 << 20
	// Client resets of streams still being answered (CVE-2023-44487, rapid
	// reset): a token bucket of resetBurst, refilled at resetRate a second.
	resetBurst = 400
	resetRate  = 200
)

var clientPreface = []byte(http2.ClientPreface)

func (s *Server) maxStreams() int {
	if s.MaxConcurrentStreams == 0 {
		return 250
	}
	return int(s.MaxConcurrentStreams)
}

func (s *Server) maxHeaderBytes() uint32 {
	n := s.MaxHeaderBytes
	if n <= 0 {
		n = http.DefaultMaxHeaderBytes
	}
	// HPACK counts 32 bytes more a field than HTTP/1.1's header takes
	// (RFC 7541 section 4.1): room for that on a typical request's fields.
	return uint32(n + 10*32)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// ServeConn serves nc until the client or the server ends the connection,
// and closes it; it returns once every handler of the connection has. ctx
// gives every request's context its values (not its cancellation or
// deadline: Close and Drain end the streams). A *tls.Conn (or a connection
// with a ConnectionState method) gives its state to the requests' TLS.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	s.initWorkers()
	c := newConn(s, ctx, nc)
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	draining := s.draining
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.serve(draining)
}

// Drain sends every connection GOAWAY: they take no new stream, and each
// closes once its streams are answered. Connections served after Drain
// get GOAWAY at once.
func (s *Server) Drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopWorkers()
	s.draining = true
	for c := range s.conns {
		c.drain()
	}
}

// Conns returns how many connections are being served.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close closes every connection at once; their handlers see their
// requests' contexts cancelled.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopWorkers()
	for c := range s.conns {
		c.nc.Close()
	}
}

// conn is one client connection. The reader goroutine owns the Framer; all
// else shared is under mu.
type conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	fr     *http2.Framer
	ctx    context.Context
	remote string
	tls    *tls.ConnectionState
	wg     sync.WaitGroup // the handlers

	mu      sync.Mutex
	cond    sync.Cond // on mu: windows opened, output flushed, data arrived, a stream ended
	streams map[uint32]*stream
	lastID  uint32 // the highest stream a client opened
	// goneAway: GOAWAY was sent, no new stream is taken; closing: the
	// connection closes once its output is flushed; closed: it is over.
	goneAway, closing, closed bool
	idleSince                 time.Time
	idle                      *time.Timer

	// Output.
	out, spare     []byte
	flushing       bool
	flushScheduled bool // a writer yields before it flushes (flushSoon)
	werr           error
	wdeadline      time.Time
	henc           fieldEncoder
	sendWindow     int64  // the connection's, as the client grants it
	peerWindow     int64  // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame      uint32 // the client's SETTINGS_MAX_FRAME_SIZE

	// Input flow control: what the client may still send on the
	// connection, and what handlers read that is not yet given back.
	recvWindow int64
	unacked    int64

	// Input: HPACK's decoder and the field block it fills (reader
	// goroutine only).
	hdec  *hpack.Decoder
	block headerBlock

	// Abuse accounting (reader goroutine only).
	resetTokens float64
	resetAt     time.Time
	refused     int
	opened      int
}

func newConn(s *Server, ctx context.Context, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), streams: map[uint32]*stream{},
		sendWindow: defaultWindow, peerWindow: defaultWindow, peerFrame: 16 << 10,
		recvWindow: connWindow, resetTokens: resetBurst, resetAt: time.Now(), idleSince: time.Now(),
		henc: newFieldEncoder()}
	c.cond.L = &c.mu
	// The streams' contexts take its values; they are done when their
	// streams are (context.go), not when it is: without its cancellation
	// (and deadline), a stream's Done and Err agree whatever ctx is.
	c.ctx = context.WithoutCancel(ctx)
	if cs, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := cs.ConnectionState()
		c.tls = &st
	}
	c.br = bufio.NewReaderSize(nc, 16<<10)
	c.fr = http2.NewFramer(nil, c.br)
	c.fr.SetMaxReadFrameSize(readFrameSize)
	c.hdec = hpack.NewDecoder(4096, c.emit) // HEADERS are decoded by readHeaderBlock
	c.fr.SetReuseFrames()
	return c
}

// serve reads the connection's frames until it ends, then waits for its
// handlers.
func (c *conn) serve(draining bool) {
	defer c.finish()
	pt := orDefault(c.s.PrefaceTimeout, 10*time.Second)
	c.nc.SetReadDeadline(time.Now().Add(pt))
	var pre [24]byte
	if _, err := io.ReadFull(c.br, pre[:]); err != nil || string(pre[:]) != string(clientPreface) {
		return
	}
	c.mu.Lock()
	c.out = appendSettings(c.out, uint32(c.s.maxStreams()), streamWindow, c.s.maxHeaderBytes())
	c.out = appendWindowUpdate(c.out, 0, connWindow-defaultWindow)
	c.idle = time.AfterFunc(orDefault(c.s.IdleTimeout, 120*time.Second), c.onIdle)
	if draining {
		c.drainLocked()
	}
	c.kick()
	c.mu.Unlock()

	sawSettings := false
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if !c.readError(err) {
				return
			}
			c.flushIfIdle()
			continue
		}
		if !sawSettings {
			sf, ok := f.(*http2.SettingsFrame)
			if !ok || sf.IsAck() {
				c.fail(http2.ErrCodeProtocol)
				return
			}
			sawSettings = true
			c.nc.SetReadDeadline(time.Time{})
		}
		if hf, ok := f.(*http2.HeadersFrame); ok {
			if f, err = c.readHeaderBlock(hf); err != nil {
				if !c.readError(err) {
					return
				}
				c.flushIfIdle()
				continue
			}
		}
		if code, ok := c.process(f); !ok {
			c.fail(code)
			return
		}
		c.flushIfIdle()
	}
}

// flushIfIdle writes what the frames read so far call for
// (acknowledgements, window updates, resets) when the reader is about to
// wait for the client.
func (c *conn) flushIfIdle() {
	if c.br.Buffered() == 0 {
		c.mu.Lock()
		c.kick()
		c.mu.Unlock()
	}
}

// readError deals with a failed ReadFrame: a stream error resets that
// stream and reading goes on (true); anything else ends the connection,
// with GOAWAY when it is the client's protocol error.
func (c *conn) readError(err error) bool {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		c.mu.Lock()
		if se.StreamID > c.lastID && se.StreamID%2 == 1 {
			// A new stream whose header block was refused: its
			// number is used up all the same.
			c.lastID = se.StreamID
		}
		if st := c.streams[se.StreamID]; st != nil {
			c.resetLocked(st, se.Code)
		} else {
			c.out = appendRST(c.out, se.StreamID, se.Code)
		}
		c.mu.Unlock()
		return true
	case errors.As(err, &ce):
		c.fail(http2.ErrCode(ce))
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.fail(http2.ErrCodeFrameSize)
	}
	return false
}

// fail ends the connection for a protocol error of the client's: GOAWAY
// with code, then close once it is written.
func (c *conn) fail(code http2.ErrCode) {
	c.mu.Lock()
	c.goAwayLocked(code)
	c.closing = true
	c.kick()
	c.mu.Unlock()
}

// finish ends the connection once the reader is done: every stream is
// cancelled, queued output (a GOAWAY) flushed, the handlers waited for.
func (c *conn) finish() {
	c.mu.Lock()
	c.closing = true
	c.closeLocked()
	c.mu.Unlock()
	// A client that is still sending gets its bytes read (for a second
	// at most) rather than reset, which could discard the GOAWAY.
	c.nc.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(c.br, 1<<20))
	c.nc.Close()
	c.wg.Wait()
	c.mu.Lock()
	if c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Unlock()
}

// closeLocked marks the connection over: streams are reset (their
// handlers' reads and writes fail), and the socket is closed (half
// closed, then fully within a second) once what is queued is flushed.
func (c *conn) closeLocked() {
	c.abortAll()
	c.kick()
}

// abortAll marks the connection over and fails every stream's reads and
// writes. Called with mu held.
func (c *conn) abortAll() {
	c.closed = true
	for _, st := range c.streams {
		st.abort(errConnClosed)
	}
	c.cond.Broadcast()
}

// shutWrite ends a connection whose output is flushed: TLS close_notify
// (or TCP FIN), so that the client closes its side; the socket is closed
// within a second whatever it does.
func (c *conn) shutWrite() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		cw.CloseWrite()
	}
	time.AfterFunc(time.Second, func() { c.nc.Close() })
}

// drain sends GOAWAY; the connection closes once its streams are done.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drainLocked()
	c.kick()
}

func (c *conn) drainLocked() {
	c.goAwayLocked(http2.ErrCodeNo)
	if len(c.streams) == 0 {
		c.closing = true
	}
}

func (c *conn) goAwayLocked(code http2.ErrCode) {
	if !c.goneAway {
		c.goneAway = true
		c.out = appendGoAway(c.out, c.lastID, code)
	}
}

// onIdle closes a connection that has had no stream for the idle timeout.
func (c *conn) onIdle() {
	d := orDefault(c.s.IdleTimeout, 120*time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.streams) > 0 {
		c.idle.Reset(d)
		return
	}
	if left := d - time.Since(c.idleSince); left > 0 {
		c.idle.Reset(left)
		return
	}
	c.goAwayLocked(http2.ErrCodeNo)
	c.closing = true
	c.kick()
}

// kick writes the queued output unless another goroutine is writing it
// already (which then writes this too). Called with mu held; it is
// released while the socket is written.
func (c *conn) kick() {
	if c.flushing {
		return
	}
	c.flushing = true
	for len(c.out) > 0 && c.werr == nil {
		b := c.out
		c.out = c.spare[:0]
		now := time.Now()
		wt := orDefault(c.s.WriteTimeout, 120*time.Second)
		if c.wdeadline.Sub(now) < wt/2 {
			// Moved only now and then: each move resets a runtime timer.
			c.wdeadline = now.Add(wt)
			c.nc.SetWriteDeadline(c.wdeadline)
		}
		c.mu.Unlock()
		_, err := c.nc.Write(b)
		c.mu.Lock()
		c.spare = b[:0]
		if err != nil {
			c.werr = err
			c.nc.Close()
			c.abortAll()
		}
		c.cond.Broadcast()
	}
	c.flushing = false
	if c.closing && c.werr == nil {
		c.werr = errConnClosed
		c.shutWrite()
	}
}

var (
	errConnClosed   = errors.New("http2: connection closed")
	errStreamReset  = errors.New("http2: stream reset by the client")
	errStreamClosed = errors.New("http2: stream closed")
)

// process handles one frame; false (with the code for GOAWAY) ends the
// connection.
func (c *conn) process(f http2.Frame) (http2.ErrCode, bool) {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return 0, true
		}
		c.mu.Lock()
		c.out = appendPing(c.out, f.Data)
		over := len(c.out) > maxBacklog
		c.mu.Unlock()
		return http2.ErrCodeEnhanceYourCalm, !over
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			c.mu.Lock()
			c.resetID(f.StreamID, http2.ErrCodeProtocol)
			c.mu.Unlock()
		}
		return 0, true
	case *http2.GoAwayFrame:
		// The client opens no more streams; those open are answered.
		c.mu.Lock()
		c.goAwayLocked(http2.ErrCodeNo)
		if len(c.streams) == 0 {
			c.closing = true
			c.kick()
		}
		c.mu.Unlock()
		return 0, true
	case *http2.PushPromiseFrame:
		return http2.ErrCodeProtocol, false // RFC 9113 section 8.4: clients never push
	}
	return 0, true // unknown frame types are ignored (RFC 9113 section 5.5)
}

// resetID resets a stream by number, open or not.
func (c *conn) resetID(id uint32, code http2.ErrCode) {
	if st := c.streams[id]; st != nil {
		c.resetLocked(st, code)
		return
	}
	c.out = appendRST(c.out, id, code)
}

// resetLocked sends RST_STREAM for an open stream and makes its handler's
// reads and writes fail.
func (c *conn) resetLocked(st *stream, code http2.ErrCode) {
	if !st.reset {
		c.out = appendRST(c.out, st.id, code)
	}
	st.abort(errStreamClosed)
}

func (c *conn) onSettings(f *http2.SettingsFrame) (http2.ErrCode, bool) {
	if f.IsAck() {
		return 0, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			// RFC 9113 section 6.9.2: the change applies to every open
			// stream's window.
			delta := int64(s.Val) - c.peerWindow
			c.peerWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.cond.Broadcast()
		case http2.SettingMaxFrameSize:
			c.peerFrame = s.Val
		case http2.SettingHeaderTableSize:
			c.henc.setLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return http2.ErrCode(ce), false
		}
		return http2.ErrCodeProtocol, false
	}
	c.out = appendSettingsAck(c.out)
	return http2.ErrCodeEnhanceYourCalm, len(c.out) <= maxBacklog
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) (http2.ErrCode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			return http2.ErrCodeFlowControl, false
		}
		c.cond.Broadcast()
		return 0, true
	}
	if f.StreamID > c.lastID {
		return http2.ErrCodeProtocol, false // an idle stream (RFC 9113 section 5.1)
	}
	if st := c.streams[f.StreamID]; st != nil && !st.reset {
		st.sendWindow += int64(f.Increment)
		if st.sendWindow > maxWindow {
			c.resetLocked(st, http2.ErrCodeFlowControl)
		}
		c.cond.Broadcast()
	}
	return 0, true
}

func (c *conn) onReset(f *http2.RSTStreamFrame) (http2.ErrCode, bool) {
	if f.StreamID > c.lastID {
		return http2.ErrCodeProtocol, false
	}
	c.mu.Lock()
	st := c.streams[f.StreamID]
	if st != nil && !st.reset {
		st.reset = true // no RST_STREAM back
		st.abort(errStreamReset)
	}
	if st != nil {
		st.clientReset = true
	}
	c.mu.Unlock()
	if st == nil {
		return 0, true
	}
	now := time.Now()
	c.resetTokens = min(resetBurst, c.resetTokens+now.Sub(c.resetAt).Seconds()*resetRate)
	c.resetAt = now
	if c.resetTokens--; c.resetTokens < 0 {
		return http2.ErrCodeEnhanceYourCalm, false
	}
	return 0, true
}

func (c *conn) onData(f *http2.DataFrame) (http2.ErrCode, bool) {
	id, n := f.StreamID, int64(f.Length)
	c.mu.Lock()
	defer c.mu.Unlock()
	if id > c.lastID {
		return http2.ErrCodeProtocol, false
	}
	if n > c.recvWindow {
		return http2.ErrCodeFlowControl, false
	}
	c.recvWindow -= n
	st := c.streams[id]
	if st == nil || st.remoteDone || st.reset {
		// A closed stream's data is still counted against the
		// connection's window: it is given back at once. Data the
		// client sent after its own RST_STREAM or END_STREAM is an
		// error; data in flight when dlb reset the stream is not.
		c.giveBack(nil, n)
		if st == nil || st.remoteDone || st.clientReset {
			c.out = appendRST(c.out, id, http2.ErrCodeStreamClosed)
			if st != nil {
				st.abort(errStreamClosed)
			}
		}
		return 0, true
	}
	if n > st.recvWindow {
		c.giveBack(nil, n)
		c.resetLocked(st, http2.ErrCodeFlowControl)
		return 0, true
	}
	st.recvWindow -= n
	data := f.Data()
	if pad := n - int64(len(data)); pad > 0 {
		c.giveBack(st, pad)
	}
	st.received += int64(len(data))
	if st.declared >= 0 && (st.received > st.declared || f.StreamEnded() && st.received != st.declared) {
		// RFC 9113 section 8.1.1: the body does not match its
		// Content-Length.
		c.giveBack(nil, int64(len(data)))
		c.resetLocked(st, http2.ErrCodeProtocol)
		return 0, true
	}
	if st.bodyClosed {
		c.giveBack(nil, int64(len(data)))
	} else {
		st.body = append(st.body, data...)
	}
	if f.StreamEnded() {
		st.remoteDone = true
	}
	c.cond.Broadcast()
	return 0, true
}

// giveBack returns n bytes of window the client used: to the connection,
// and to st unless it is nil. Updates go out in batches of a quarter of
// the window.
func (c *conn) giveBack(st *stream, n int64) {
	c.unacked += n
	if c.unacked >= connWindow/4 {
		c.out = appendWindowUpdate(c.out, 0, uint32(c.unacked))
		c.recvWindow += c.unacked
		c.unacked = 0
	}
	if st == nil || st.remoteDone || st.reset {
		return
	}
	st.unacked += n
	if st.unacked >= streamWindow/4 {
		c.out = appendWindowUpdate(c.out, st.id, uint32(st.unacked))
		st.recvWindow += st.unacked
		st.unacked = 0
	}
}

func (c *conn) onHeaders(f *http2.MetaHeadersFrame) (http2.ErrCode, bool) {
	id := f.StreamID
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		defer c.mu.Unlock()
		if st.remoteDone && st.sentEnd {
			// Closed both ways; only its handler has yet to return.
			return http2.ErrCodeStreamClosed, false
		}
		return c.onTrailers(st, f)
	}
	if id%2 == 0 {
		c.mu.Unlock()
		return http2.ErrCodeProtocol, false // a stream a client may not open
	}
	if id <= c.lastID {
		c.mu.Unlock()
		return http2.ErrCodeStreamClosed, false // RFC 9113 section 5.1, closed
	}
	c.lastID = id
	if f.HasPriority() && f.Priority.StreamDep == id {
		c.out = appendRST(c.out, id, http2.ErrCodeProtocol)
		c.mu.Unlock()
		return 0, true
	}
	if c.goneAway || c.closed {
		c.mu.Unlock()
		return 0, true // opened after GOAWAY: ignored (RFC 9113 section 6.8)
	}
	if len(c.streams) >= c.s.maxStreams() {
		c.out = appendRST(c.out, id, http2.ErrCodeRefusedStream)
		c.refused++
		c.mu.Unlock()
		// A client that keeps opening streams beyond the limit (or
		// resets them to open more) is cut off.
		if c.refused > 2*c.s.maxStreams() && c.refused > c.opened/2 {
			return http2.ErrCodeEnhanceYourCalm, false
		}
		return 0, true
	}
	st := &stream{c: c, id: id, sendWindow: c.peerWindow, recvWindow: streamWindow, declared: -1}
	req, code := c.newRequest(st, f)
	if req == nil {
		c.out = appendRST(c.out, id, code)
		c.mu.Unlock()
		return 0, true
	}
	c.streams[id] = st
	c.opened++
	c.wg.Add(1)
	c.mu.Unlock()
	c.s.startHandler(handlerJob{c, st, req, f.Truncated})
	return 0, true
}

// onTrailers takes the trailer fields of an open stream.
func (c *conn) onTrailers(st *stream, f *http2.MetaHeadersFrame) (http2.ErrCode, bool) {
	if st.remoteDone || st.clientReset {
		c.out = appendRST(c.out, st.id, http2.ErrCodeStreamClosed)
		st.abort(errStreamClosed)
		return 0, true
	}
	if st.reset {
		return 0, true
	}
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		c.resetLocked(st, http2.ErrCodeProtocol)
		return 0, true
	}
	if st.declared >= 0 && st.received != st.declared {
		c.resetLocked(st, http2.ErrCodeProtocol)
		return 0, true
	}
	for _, hf := range f.RegularFields() {
		k := canonical(hf.Name)
		if st.trailer == nil {
			st.trailer = http.Header{}
		}
		st.trailer[k] = append(st.trailer[k], hf.Value)
	}
	st.remoteDone = true
	c.cond.Broadcast()
	return 0, true
}

// headerMaps keeps the response headers' maps of streams answered, emptied:
// a new map per stream, grown as the handler sets fields, was 1-2% of dlb's
// CPU under h2load.
var headerMaps = sync.Pool{New: func() any { return http.Header{} }}

// runHandler answers one stream.
func (c *conn) runHandler(st *stream, req *http.Request, tooLarge bool) {
	rw := &st.rw // in the stream's allocation
	*rw = responseWriter{st: st, header: headerMaps.Get().(http.Header), head: req.Method == "HEAD"}
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.logf("http2: panic serving %v: %v\n%s", c.remote, v, buf)
			}
			c.mu.Lock()
			c.resetLocked(st, http2.ErrCodeInternal)
			c.mu.Unlock()
		} else {
			rw.finish()
		}
		c.handlerDone(st)
		// A handler may not use its ResponseWriter once it returned: the
		// header's map serves the next stream.
		clear(rw.header)
		headerMaps.Put(rw.header)
		rw.header = nil
		c.wg.Done()
	}()
	if tooLarge {
		rw.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
		io.WriteString(rw, "request header too large\n")
		return
	}
	c.s.Handler.ServeHTTP(rw, req)
}

// handlerDone forgets a stream whose handler returned; a client still
// sending its body is told to stop (RFC 9113 section 8.1).
func (c *conn) handlerDone(st *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !st.remoteDone && !st.reset {
		c.out = appendRST(c.out, st.id, http2.ErrCodeNo)
		st.reset = true
	}
	if len(st.body) > 0 {
		c.giveBack(nil, int64(len(st.body)))
		st.body = nil
	}
	delete(c.streams, st.id)
	st.cancel(nil)
	if len(c.streams) == 0 {
		c.idleSince = time.Now()
		if c.goneAway {
			c.closing = true
		}
	}
	c.cond.Broadcast()
	c.flushSoon()
}
