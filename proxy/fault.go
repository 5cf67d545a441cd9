package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Whose fault a failed round trip is. One place decides it, so that a client
// that cuts its own upload short cannot take a replica out of rotation.
type fault int

const (
	// faultReplica: the replica refused, reset or broke the connection. It
	// may be ejected (eject.go), the failure counts against it, and the
	// request may be retried elsewhere.
	faultReplica fault = iota
	// faultClient: reading the client's request body failed (it reset its
	// connection, sent bad chunk framing, stalled past the body timeout or
	// sent more than dlb.max_body). No ejection, no failure on the replica,
	// no retry; the client gets a 4xx (or nothing, when it is gone).
	faultClient
	// faultSlowReplica: the replica sent no response header within the
	// response header timeout. A failure on the replica (504), but no
	// ejection, since a slow answer is not a broken replica, and no retry,
	// which would multiply the wait.
	faultSlowReplica
)

// classify says whose fault err, the error of a round trip of a, is.
func (a *attempt) classify(err error) fault {
	var ce *clientError
	switch {
	case errors.Is(err, errResponseHeaderTimeout):
		// First: cancelling the round trip may fail the body's read too.
		return faultSlowReplica
	case errors.As(err, &ce), a.bodyError() != nil:
		return faultClient
	}
	return faultReplica
}

// clientError is an error reading the client's request body.
type clientError struct{ err error }

func (e *clientError) Error() string { return "reading the client's request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// clientBody is the client's request body as the proxy reads it. Every read
// error is marked as the client's (failed, and a *clientError), whatever
// the transport that reads it does with it afterwards. With a timeout, a
// body that brings less than bodyProgress bytes in timeout of reading is
// cut off: a client that declares a large body and sends a byte now and
// then would otherwise hold a connection to a replica for ever. Time the
// proxy spends not reading (the replica is slow to take the body) does not
// count.
type clientBody struct {
	mu      sync.Mutex // held by a read, so that finish can wait for one in progress
	over    bool       // finish ran: the handler is done, nothing reads the body any more
	src     io.ReadCloser
	rc      *http.ResponseController // nil: no timeout
	timeout time.Duration
	failed  atomic.Pointer[clientError] // the first read error; read by the handler while a transport goroutine reads the body

	ended atomic.Int64 // when the body ended (unix ns); 0 while it is read

	waited time.Duration // time spent in reads since the last progress
	got    int           // bytes since the last progress
	done   bool          // the body ended; the deadline was cleared
}

// bodyProgress is how many bytes a request body must bring within the body
// timeout to be given another one.
const bodyProgress = 1 << 10

// sentFor returns how much longer than d ago the body ended: 0 when it
// ended d or more ago (or there is none), the time left otherwise, and d
// while it is still being read.
func (b *clientBody) sentFor(d time.Duration) time.Duration {
	if b == nil {
		return 0
	}
	end := b.ended.Load()
	if end == 0 {
		return d
	}
	return max(time.Duration(end+int64(d)-time.Now().UnixNano()), 0)
}

func (b *clientBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over {
		return 0, errRequestOver
	}
	if b.rc == nil || b.done {
		n, err := b.src.Read(p)
		if err != nil {
			b.ended.CompareAndSwap(0, time.Now().UnixNano())
			if err != io.EOF {
				err = b.fail(err)
			}
		}
		return n, err
	}
	start := time.Now()
	b.rc.SetReadDeadline(start.Add(b.timeout - b.waited))
	n, err := b.src.Read(p)
	b.waited += time.Since(start)
	if b.got += n; b.got >= bodyProgress {
		b.got, b.waited = 0, 0
	}
	if err != nil {
		b.done = true
		b.ended.CompareAndSwap(0, time.Now().UnixNano())
		if err == io.EOF {
			// The server reads on from the connection (for the next
			// request, and to notice a client that leaves); no deadline
			// of ours must cut that short. After an error the deadline
			// stays: the server's reading of what is left of a failed
			// body must not wait on a stalled client.
			b.rc.SetReadDeadline(time.Time{})
		} else {
			err = b.fail(err)
		}
	}
	return n, err
}

func (b *clientBody) Close() error { return b.src.Close() }

// errRequestOver is what a transport's goroutine reads from a client's body
// once its request is answered.
var errRequestOver = errors.New("dlb: the request is answered; its body is no longer read")

// The most of a body that finish reads when the replica answered without
// reading all of it, and how long it waits for it (net/http reads as much
// after a handler before it gives up on the connection).
const (
	maxDrain  = 256 << 10
	drainWait = time.Second
)

// finish is called by a full-duplex handler when it is done: net/http's
// server then reads the connection on, so nothing else may read the body.
// It waits for a read in progress on a transport's goroutine and stops the
// next ones. A body the replica did not read to its end is read here, up to
// maxDrain within drainWait: past maxDrain the server closes the connection
// after the response (what http.MaxBytesReader tells it), since reading
// the rest, or letting the server do it after the handler, would break the
// next request (net/http does not expect a full-duplex body to end after
// its handler).
func (b *clientBody) finish(w http.ResponseWriter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.over = true
	if b.ended.Load() != 0 {
		return
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(drainWait))
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, b.src, maxDrain)); err == nil {
		rc.SetReadDeadline(time.Time{})
	}
}

// fail records err as the body's first failure and returns it marked as
// the client's.
func (b *clientBody) fail(err error) error {
	ce := &clientError{err}
	b.failed.CompareAndSwap(nil, ce)
	return ce
}

// bodyError is the first error reading the client's body, or nil.
func (a *attempt) bodyError() error {
	if a.client == nil {
		return nil
	}
	if ce := a.client.failed.Load(); ce != nil {
		return ce
	}
	return nil
}

// clientFailed answers a request whose body failed to arrive: 408 when it
// stalled, 413 past dlb.max_body, else 400 (bad chunk framing, cut short).
// The connection is closed after it, since the rest of the body is lost.
// It is logged at debug level only: it says nothing about dlb or a replica.
func (p *Proxy) clientFailed(w http.ResponseWriter, r *http.Request, service string, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		bodyTooLarge(w, service, tooLarge.Limit)
		return
	}
	p.opts.Log.Debug().Err(err).Str("service", service).Str("method", r.Method).Str("path", r.URL.Path).
		Str("client", r.RemoteAddr).Msg("the client's request body failed; not the replica's fault")
	status, what := http.StatusBadRequest, "was cut short or is malformed"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		status, what = http.StatusRequestTimeout, fmt.Sprintf("stalled (less than %d bytes in %s)", bodyProgress, p.opts.BodyTimeout)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Connection", "close")
	w.WriteHeader(status)
	fmt.Fprintf(w, "dlb: the request body %s\n", what)
}
