package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Default timeouts toward slow clients and hung replicas; Options can
// change each, and a route can raise the response header timeout.
const (
	// DefaultBodyTimeout: a request body must bring 1 KiB within this long.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultWriteTimeout: a client must take some of the response within
	// this long.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultResponseHeaderTimeout: a replica must send its response header
	// within this long after the request was sent.
	DefaultResponseHeaderTimeout = 60 * time.Second
)

// errResponseHeaderTimeout fails a round trip whose replica sent no
// response header in time; errorHandler answers 504 (it is a timeout).
var errResponseHeaderTimeout error = headerTimeoutError{}

type headerTimeoutError struct{}

func (headerTimeoutError) Error() string {
	return "the replica sent no response header within the response header timeout (--response-header-timeout, or the dlb.timeout.response_header label)"
}
func (headerTimeoutError) Timeout() bool   { return true }
func (headerTimeoutError) Temporary() bool { return false }

// longLived reports a gRPC call: its streams may idle for as long as the
// application likes (a client stream sending now and then, a watch whose
// server sends its header with its first message), so neither the body
// timeout nor the proxy's response header timeout applies (a route's own
// dlb.timeout.response_header does).
func longLived(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return len(ct) >= 16 && strings.EqualFold(ct[:16], "application/grpc")
}

// responseHeaderTimeout is the route's own, else the proxy's.
func (p *Proxy) responseHeaderTimeout(r *Route) time.Duration {
	if r.ResponseHeaderTimeout > 0 {
		return r.ResponseHeaderTimeout
	}
	return p.opts.ResponseHeaderTimeout
}

// timedRoundTrip is rt.RoundTrip bounded by the route's response header
// timeout: when no header came in time, the request is cancelled and the
// error is errResponseHeaderTimeout. The response body is not bounded (a
// stream may take as long as it takes); its context ends with the request.
func (p *Proxy) timedRoundTrip(rt http.RoundTripper, req *http.Request, a *attempt) (*http.Response, error) {
	d := p.responseHeaderTimeout(a.route)
	if d <= 0 || a.route.ResponseHeaderTimeout <= 0 && longLived(req) {
		return rt.RoundTrip(req)
	}
	if ft, ok := rt.(*h1Transport); ok && ft.handles(req) {
		return ft.roundTrip(req, d) // the connection's read deadline keeps d
	}
	ht := &headerTimer{a: a, d: d}
	ctx, cancel := context.WithCancelCause(req.Context())
	ht.cancel = cancel
	ht.timer = time.AfterFunc(d, ht.fire)
	resp, err := rt.RoundTrip(req.WithContext(ctx))
	if ht.state.CompareAndSwap(0, 1) {
		ht.timer.Stop() // (one re-armed during a slow upload finds state 1 and ends)
		if err != nil {
			cancel(nil)
		} else {
			a.endHeaderTimer = cancel // the body still reads under ctx
		}
		return resp, err
	}
	if resp != nil {
		resp.Body.Close()
	}
	if req.Context().Err() != nil {
		return nil, req.Context().Err()
	}
	return nil, fmt.Errorf("%w (%s)", errResponseHeaderTimeout, d)
}

// headerTimer cancels a round trip whose response header is late. The
// timeout runs from the end of the request's body, as the standard
// transport's does: a slow upload is not a slow replica. state goes from 0
// (waiting) to 1 (answered) or 2 (timed out), once.
type headerTimer struct {
	a      *attempt
	d      time.Duration
	state  atomic.Int32
	timer  *time.Timer // the first; stopped once the header came
	cancel context.CancelCauseFunc
}

func (ht *headerTimer) fire() {
	if left := ht.a.client.sentFor(ht.d); left > 0 {
		if ht.state.Load() == 0 {
			time.AfterFunc(left, ht.fire)
		}
		return
	}
	if ht.state.CompareAndSwap(0, 2) {
		ht.cancel(errResponseHeaderTimeout)
	}
}

// extendWrite gives the client WriteTimeout, from now, to take what is
// written next, and returns that now (zero when rc is nil, without a write
// timeout). dlb sets it before each part of a response, so a client that
// stops reading is cut off within the timeout (and the replica's connection
// with it), however long a stream runs.
func (p *Proxy) extendWrite(rc *http.ResponseController) time.Time {
	if rc == nil {
		return time.Time{}
	}
	now := time.Now()
	rc.SetWriteDeadline(now.Add(p.opts.WriteTimeout))
	return now
}

// renewWrite gives the client WriteTimeout from now to take what is
// written next, when an eighth of it has passed since the deadline last
// moved (a.extended), not on every write: over HTTP/2 each renewal is a
// message to the connection and a wake-up of its waiters, and a stream of
// small messages would pay that for each; a response that comes at once
// keeps the deadline ServeHTTP set. a.rc is nil without a write timeout.
func (p *Proxy) renewWrite(a *attempt) {
	if a.rc == nil {
		return
	}
	if now := time.Now(); now.Sub(a.extended) >= p.opts.WriteTimeout/8 {
		a.extended = now
		a.rc.SetWriteDeadline(now.Add(p.opts.WriteTimeout))
	}
}

// writeTimed is a response body that renews the client's write deadline
// (renewWrite) before each part of it is written to the client. It lives
// in the attempt, so that it costs no allocation of its own.
type writeTimed struct {
	io.ReadCloser
	p *Proxy
	a *attempt
}

func (b *writeTimed) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.p.renewWrite(b.a)
	}
	return n, err
}

// timeWrites makes resp's body renew the write deadline. A protocol switch
// (101) clears it instead: the connection is handed over for as long as
// the two sides talk.
func (p *Proxy) timeWrites(resp *http.Response, a *attempt) {
	if a.rc == nil {
		return
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		a.rc.SetWriteDeadline(time.Time{})
		return
	}
	a.extended = p.extendWrite(a.rc)
	if resp.Body != nil && resp.Body != http.NoBody {
		a.writes = writeTimed{ReadCloser: resp.Body, p: p, a: a}
		resp.Body = &a.writes
	}
}
