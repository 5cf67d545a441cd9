package h2

import (
	"errors"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// responseWriter is a stream's http.ResponseWriter. The handler's
// goroutine alone uses it; the body is kept until bodyBufferSize gathers,
// a Flush, or the handler's return, so that a small response leaves as
// HEADERS and DATA together.
type responseWriter struct {
	st     *stream
	header http.Header
	head   bool // a HEAD request: no body

	status      int
	wroteHeader bool
	snap        []field  // the header as it was at WriteHeader
	snapBuf     [8]field // snap's room for a header of 8 fields or fewer
	trailers    []string // the trailer names the header declared
	buf         *[]byte
	written     int64
	declared    int64 // the Content-Length the handler set, -1 if none
	flushed     bool
}

type field struct {
	k  string
	vv []string
}

const bodyBufferSize = 8 << 10

var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, bodyBufferSize); return &b }}

// Header is the response's header; after WriteHeader, what changes in it
// is only looked at for trailers.
func (rw *responseWriter) Header() http.Header { return rw.header }

// WriteHeader sends an informational response at once, and sets the final
// status and header.
func (rw *responseWriter) WriteHeader(code int) {
	if rw.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		st := rw.st
		c := st.c
		c.mu.Lock()
		if !st.reset {
			c.writeHeaders(st, code, rw.header, nil, -1, false)
			c.kick()
		}
		c.mu.Unlock()
		return
	}
	rw.status, rw.wroteHeader = code, true
	rw.declared = -1
	rw.snap = rw.snapBuf[:0]
	for k, vv := range rw.header {
		rw.snap = append(rw.snap, field{k, vv})
		switch k {
		case "Trailer":
			for _, v := range vv {
				for t := range strings.SplitSeq(v, ",") {
					if t = http.CanonicalHeaderKey(strings.TrimSpace(t)); t != "" {
						rw.trailers = append(rw.trailers, t)
					}
				}
			}
		case "Content-Length":
			if n, err := strconv.ParseInt(vv[0], 10, 64); err == nil && len(vv) == 1 {
				rw.declared = n
			}
		}
	}
}

// AfterAbort makes f run when the stream ends before its handler is done
// with it: the client reset it, or the connection ended; at once if that
// happened already. It is what context.AfterFunc on the request's context
// does, without the context's children map, goroutine and allocations: a
// proxy arms it around each exchange with a replica. f runs once, with the
// connection's lock held: it must not use the ResponseWriter. Only one f is
// armed at a time; ClearAbort disarms it.
func (rw *responseWriter) AfterAbort(f func()) {
	c := rw.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if rw.st.aborted {
		f()
		return
	}
	rw.st.onAbort = f
}

// ClearAbort disarms AfterAbort's f and reports whether it did so before f
// ran (false: f has run), as the stop function of context.AfterFunc does.
func (rw *responseWriter) ClearAbort() bool {
	c := rw.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	armed := rw.st.onAbort != nil
	rw.st.onAbort = nil
	return armed
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

// Write adds to the response body.
func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(rw.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if rw.head {
		return len(p), nil
	}
	if rw.declared >= 0 && rw.written+int64(len(p)) > rw.declared {
		return 0, http.ErrContentLength
	}
	rw.written += int64(len(p))
	if rw.buf == nil {
		rw.buf = bodyBuffers.Get().(*[]byte)
	}
	if len(*rw.buf)+len(p) <= cap(*rw.buf) {
		*rw.buf = append(*rw.buf, p...)
		return len(p), nil
	}
	if err := rw.send(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteString adds to the response body.
func (rw *responseWriter) WriteString(s string) (int, error) {
	if rw.buf != nil && len(*rw.buf)+len(s) <= cap(*rw.buf) && rw.wroteHeader && bodyAllowed(rw.status) && !rw.head &&
		(rw.declared < 0 || rw.written+int64(len(s)) <= rw.declared) {
		*rw.buf = append(*rw.buf, s...)
		rw.written += int64(len(s))
		return len(s), nil
	}
	return rw.Write([]byte(s))
}

// Flush sends what the handler wrote so far.
func (rw *responseWriter) Flush() { rw.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (rw *responseWriter) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	rw.flushed = true
	return rw.send(nil, false)
}

// SetReadDeadline bounds the handler's reads of the request body.
func (rw *responseWriter) SetReadDeadline(t time.Time) error {
	rw.setDeadline(&rw.st.rdeadline, t)
	return nil
}

// SetWriteDeadline bounds the handler's waits for the client to take the
// response (flow control, a full output buffer); past it the stream is
// reset.
func (rw *responseWriter) SetWriteDeadline(t time.Time) error {
	rw.setDeadline(&rw.st.wdeadline, t)
	return nil
}

// setDeadline sets one of the stream's deadlines under the connection's
// lock and wakes its waiters, which look at the new deadline.
func (rw *responseWriter) setDeadline(d *time.Time, t time.Time) {
	c := rw.st.c
	c.mu.Lock()
	*d = t
	c.cond.Broadcast()
	c.mu.Unlock()
}

// finish ends the response when the handler returns: what is buffered,
// then END_STREAM, with the trailers if any.
func (rw *responseWriter) finish() {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	rw.send(nil, true)
	if rw.buf != nil {
		*rw.buf = (*rw.buf)[:0]
		bodyBuffers.Put(rw.buf)
		rw.buf = nil
	}
}

// trailerFields returns the trailers to send: the declared names' values,
// and the fields named with http.TrailerPrefix.
func (rw *responseWriter) trailerFields() http.Header {
	var t http.Header
	for _, k := range rw.trailers {
		if vv := rw.header[k]; len(vv) > 0 {
			if t == nil {
				t = http.Header{}
			}
			t[k] = vv
		}
	}
	for k, vv := range rw.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && len(vv) > 0 {
			if t == nil {
				t = http.Header{}
			}
			t[http.CanonicalHeaderKey(name)] = vv
		}
	}
	return t
}

var errWriteTimeout = errors.New("http2: write timeout")

// send writes the response's HEADERS (the first time), the buffered body
// and then p as DATA frames as flow control allows, and with end the
// stream's end (trailers, or END_STREAM on the last frame).
func (rw *responseWriter) send(p []byte, end bool) error {
	st := rw.st
	c := st.c
	var trailers http.Header
	if end {
		trailers = rw.trailerFields()
	}
	var buffered []byte
	if rw.buf != nil {
		buffered = *rw.buf
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.reset || st.err != nil {
		return st.errLocked()
	}
	if !st.sentHeaders {
		st.sentHeaders = true
		cl := int64(-1)
		if end && !rw.flushed && rw.declared < 0 && bodyAllowed(rw.status) && !rw.head {
			cl = rw.written // the whole body is known: its length goes with it
		}
		onlyHeaders := end && len(buffered) == 0 && len(p) == 0 && trailers == nil
		c.writeHeaders(st, rw.status, nil, rw.snap, cl, onlyHeaders)
		if onlyHeaders {
			st.sentEnd = true
			c.flushSoon()
			return nil
		}
	}
	last := end && trailers == nil
	lastChunk := 1
	if len(p) == 0 {
		lastChunk = 0
	}
	for i, d := range [2][]byte{buffered, p} {
		for len(d) > 0 {
			if err := c.waitSend(st, true); err != nil {
				return err
			}
			n := int(min(int64(len(d)), st.sendWindow, c.sendWindow, int64(c.peerFrame)))
			chunk := d[:n]
			d = d[n:]
			c.out = appendData(c.out, st.id, chunk, last && i == lastChunk && len(d) == 0)
			st.sendWindow -= int64(n)
			c.sendWindow -= int64(n)
		}
	}
	if last && len(buffered) == 0 && len(p) == 0 {
		if err := c.waitSend(st, false); err != nil {
			return err
		}
		c.out = appendData(c.out, st.id, nil, true)
	}
	if rw.buf != nil {
		*rw.buf = (*rw.buf)[:0]
	}
	if trailers != nil {
		c.writeHeaders(st, 0, trailers, nil, -1, true)
	}
	st.sentEnd = end
	c.flushSoon()
	return nil
}

// flushSoon writes the queued output, but first lets the other streams'
// handlers that are ready to run append theirs, so that one write carries
// them all: a goroutine that finds a flush under way or scheduled leaves
// its frames to it. Called with c.mu held.
func (c *conn) flushSoon() {
	if c.flushing || c.flushScheduled || len(c.out) == 0 && !c.closing {
		return // (nothing to write: a handler done after its response went out yields for nothing)
	}
	if len(c.streams) > 1 {
		c.flushScheduled = true
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
		c.flushScheduled = false
	}
	c.kick()
}

func (st *stream) errLocked() error {
	if st.err != nil {
		return st.err
	}
	return errStreamClosed
}

// waitSend waits until st may send data (data: a window is open on the
// stream and the connection) and the output buffer has room. Called with
// c.mu held.
func (c *conn) waitSend(st *stream, data bool) error {
	for {
		if st.reset || st.err != nil {
			return st.errLocked()
		}
		if (!data || st.sendWindow > 0 && c.sendWindow > 0) && len(c.out) < maxWriteBuffer {
			return nil
		}
		if len(c.out) > 0 && !c.flushing && c.werr == nil {
			// What is queued goes out before the wait (the client may
			// be waiting for it to open a window); kick let go of mu,
			// so everything is looked at again.
			c.kick()
			continue
		}
		if !c.wait(st.wdeadline) {
			c.resetLocked(st, http2.ErrCodeCancel)
			st.err = os.ErrDeadlineExceeded
			return errWriteTimeout
		}
	}
}

// writeHeaders queues a HEADERS block: the status (0: trailers, none) and
// either h or the snapshot fields, with a Content-Length of cl (-1: none
// added) and a Date when they have none. Called with c.mu held.
func (c *conn) writeHeaders(st *stream, status int, h http.Header, fields []field, cl int64, end bool) {
	c.henc.reset()
	hasDate := false
	if status != 0 {
		c.henc.status(status)
	}
	put := func(k string, vv []string) {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return
		}
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te":
			return // RFC 9113 section 8.2.2
		case "Date":
			hasDate = true
		}
		name, ok := c.henc.name(k)
		if !ok {
			return
		}
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				c.henc.field(name, v)
			}
		}
	}
	for _, f := range fields {
		put(f.k, f.vv)
	}
	for k, vv := range h {
		put(k, vv)
	}
	if status >= 200 {
		if cl >= 0 {
			c.henc.fieldOf("Content-Length", strconv.FormatInt(cl, 10))
		}
		if !hasDate {
			c.henc.fieldOf("Date", httpDate())
		}
	}
	c.out = appendHeaderBlock(c.out, st.id, c.henc.b, end, int(c.peerFrame))
}

// httpDate is the Date header's value now, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.sec == now {
		return d.s
	}
	d := &cachedDate{now, time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}

type cachedDate struct {
	sec int64
	s   string
}

var dateCache atomic.Pointer[cachedDate]
