// Package proxy routes each request by host and path to a pool and forwards
// it to a replica picked by the pool: HTTP/1.1, plain or over TLS, on dlb's
// own data path (FastServer, fast.go, fast_tls.go), everything else (HTTP/2,
// served by internal/h2 over TLS and by net/http as h2c; upgrades, trailers,
// the queue) through Proxy, an http.Handler: requests without a body by its
// direct path (direct.go), the others with httputil.ReverseProxy.
// A request that fails before any response byte came back is retried on
// another replica when that is safe. The proxy knows nothing of Docker.
package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/health"
	"github.com/dlb-lb/dlb/listener"
	"github.com/rs/zerolog"
)

// Options tune a Proxy. The zero value of each field picks the default
// given in its comment.
type Options struct {
	// Retries is how many other replicas a failed request may be retried on
	// (0: none).
	Retries int
	// QueueTimeout is how long a request to a pool with no ready replica
	// waits for one before it gets 503 (default 0: answer 503 at once).
	QueueTimeout time.Duration
	// DialTimeout bounds connecting to a replica (default 2s).
	DialTimeout time.Duration
	// MaxIdlePerUpstream is the number of idle keep-alive connections kept
	// per replica (default 1024).
	MaxIdlePerUpstream int
	// MaxReplayBody is the largest request body kept in memory so that the
	// request can be retried (default 64 KiB).
	MaxReplayBody int64
	// TrustedProxies are the clients whose X-Forwarded-* headers are kept
	// (nil: nobody's).
	TrustedProxies TrustedProxies
	// Ejector takes replicas that refuse or reset connections out for a
	// while; nil means a default Ejector.
	Ejector *health.Ejector
	// Observer, if set, is told about every request once it is done (for
	// metrics and access logs); nil costs nothing.
	Observer Observer
	// Log receives errors; the zero value logs nothing.
	Log zerolog.Logger
	// Routed, if set, reports whether the routes are known (dlb has listed
	// the containers once). Until then a request that no route matches
	// gets 503 with Retry-After, not 404: its service may exist. nil means
	// the routes are always known.
	Routed func() bool
	// BodyTimeout cuts off a request body that brings less than 1 KiB in
	// this long (408); WriteTimeout a client that takes none of the
	// response for this long; ResponseHeaderTimeout a replica that sends no
	// response header for this long after the request (504; a route's own
	// wins). Zero picks DefaultBodyTimeout, DefaultWriteTimeout and
	// DefaultResponseHeaderTimeout; negative turns the timeout off.
	BodyTimeout, WriteTimeout, ResponseHeaderTimeout time.Duration
}

// Proxy is an http.Handler that forwards requests to the pools of a Router.
// Create it with New.
type Proxy struct {
	router *Router
	opts   Options
	rp     *httputil.ReverseProxy
	sticky *stickyPins

	transports sync.Map // *balancer.Upstream -> *http.Transport
	budgets    sync.Map // *balancer.Pool -> *retryBudget
}

// New returns a Proxy that routes with router.
func New(router *Router, opts Options) *Proxy {
	opts.Retries = max(opts.Retries, 0)
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.MaxIdlePerUpstream <= 0 {
		opts.MaxIdlePerUpstream = 1024
	}
	if opts.MaxReplayBody <= 0 {
		opts.MaxReplayBody = 64 << 10
	}
	if opts.Ejector == nil {
		opts.Ejector = &health.Ejector{}
	}
	opts.BodyTimeout = orDefault(opts.BodyTimeout, DefaultBodyTimeout)
	opts.WriteTimeout = orDefault(opts.WriteTimeout, DefaultWriteTimeout)
	opts.ResponseHeaderTimeout = orDefault(opts.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	p := &Proxy{router: router, opts: opts, sticky: newStickyPins()}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: p.modifyResponse,
		Transport:      (*retryTransport)(p),
		ErrorHandler:   p.errorHandler,
		BufferPool:     bufferPool{},
		ErrorLog:       listener.StdLog(opts.Log, "proxy"),
	}
	return p
}

type stateKey struct{}

// attempt is the state of one proxied request, shared by the handler, the
// Rewrite hook and the transport (which all run on the request's goroutine).
type attempt struct {
	context.Context // the request's: see attempt.Value

	route    *Route
	up       *balancer.Upstream // the replica being tried now
	tried    []triedReplica     // the replicas that failed this request, in order
	triedBuf [3]triedReplica
	failed   bool
	status   int                // the replica's response status, once it came
	first    *balancer.Upstream // a replica that got its first request since it turned Ready
	body     *replayBody        // nil when the request has no body
	key      uint64             // affinity key, when the pool's policy uses one
	pinned   string             // the sticky cookie's token the request came with
	secure   bool               // the client spoke TLS (looked at for sticky routes only)
	// keyed reports whether the request carries an idempotency key; nil:
	// its http.Request's header says (the fast path's has none).
	keyed func() bool

	// What failover did (retry.go): replicas the request reached and
	// broke (reset, closed, answered garbage; not one that acknowledged
	// nothing), and whether the retry budget refused a retry or the
	// ejection cap kept a replica in.
	broke int
	// resent says the request went again to a.up on a new connection
	// after a stale kept-alive one (tries.go); fresh asks the transport
	// of the next try for a new connection.
	resent, fresh bool
	budgetRefused bool
	ejectCapped   bool

	// Against slow and hostile clients (fault.go, deadlines.go).
	client   *clientBody              // the client's body as read; nil when it has none
	rc       *http.ResponseController // the client's connection, for write deadlines; nil without
	extended time.Time                // when rc's write deadline last moved (renewWrite)
	writes   writeTimed               // the response body, when rc is set
	// endHeaderTimer ends the context of the response header timer of the
	// try that got a response; nil if none.
	endHeaderTimer context.CancelCauseFunc
}

// ServeHTTP routes the request and forwards it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rc *http.ResponseController
	var extended time.Time
	if p.opts.WriteTimeout > 0 {
		rc = http.NewResponseController(w)
		extended = p.extendWrite(rc) // for an answer of dlb's own; renewed when the replica's comes
	}
	if ob := p.observe(w, r); ob != nil {
		defer ob.done()
		w = ob
	}
	if !p.screen(w, r) {
		return
	}
	route := p.router.Lookup(r.Host, r.URL.Path)
	observing(w).setRoute(route)
	if route == nil && p.opts.Routed != nil && !p.opts.Routed() {
		notRouted(w)
		return
	}
	if route == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "dlb: no service for host %q and path %q\n", hostOnly(r.Host), r.URL.Path)
		return
	}
	if !limitBody(w, r, route) {
		return
	}
	var key uint64
	if route.Pool.NeedsKey() {
		key = requestKey(r, route, p.opts.TrustedProxies)
	}
	var want *balancer.Upstream
	var pinned string
	if route.Sticky {
		want, pinned = p.sticky.pinned(r, route)
	}
	up, err := p.acquire(r.Context(), route, key, want, func() uint64 { return requestKey(r, route, p.opts.TrustedProxies) })
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away while it waited
		}
		p.extendWrite(rc)
		shed(w, route, err)
		return
	}
	a := &attempt{Context: r.Context(), route: route, up: up, key: key, pinned: pinned, secure: route.Sticky && overTLS(r, p.opts.TrustedProxies), rc: rc, extended: extended}
	observing(w).setAttempt(a)
	a.tried = a.triedBuf[:0]
	defer a.endTimer()
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		a.client = &clientBody{src: r.Body}
		if p.opts.BodyTimeout > 0 && !longLived(r) {
			a.client.rc, a.client.timeout = http.NewResponseController(unobserved(w)), p.opts.BodyTimeout
		}
		a.body = newReplayBody(a.client, r.ContentLength, p.opts.MaxReplayBody)
		if a.body.srcErr != nil {
			// The client's body failed before any replica was asked.
			up.End(false)
			p.extendWrite(rc)
			p.clientFailed(w, r, route.Service, a.body.srcErr)
			return
		}
		r.Body = a.body
		if a.body.kept {
			// Lets net/http's Transport send the request again by itself when
			// a kept-alive connection turns out closed by the replica before
			// anything was written (it retries only requests it can rewind).
			r.GetBody = a.body.rewind
		}
	}
	if a.client != nil && r.ProtoMajor == 1 {
		// A replica may answer while it still reads the body (an echo, a
		// stream): both directions flow at once. Without this, net/http's
		// HTTP/1 server reads and discards up to 256 KiB of the body when
		// the response starts, and cuts the rest of the upload.
		http.NewResponseController(w).EnableFullDuplex()
		defer a.client.finish(unobserved(w))
	}
	if up.Begin() {
		a.first = up
	}
	var began time.Time // read only for a replica whose limit learns from latency
	if up.Adaptive() {
		began = time.Now()
	}
	defer func() { a.end(began) }()
	if p.direct(r, a) {
		p.forwardDirect(w, r, a) // direct.go
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(a))
}

func serviceUnavailable(w http.ResponseWriter, service string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, "dlb: service %q has no ready replica\n", service)
}

func notRouted(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, "dlb: not synced with Docker yet: the services are not known; try again shortly\n")
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// rewrite points the outbound request at the picked replica. The Host header
// is passed through; X-Forwarded-For, -Host and -Proto are set (forwarded.go).
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	a := pr.In.Context().Value(stateKey{}).(*attempt)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = a.up.Address()
	if a.route.StripPath {
		stripPrefix(pr.Out.URL, a.route.Path)
	}
	pr.Out.Host = pr.In.Host
	if pr.Out.Host == "" {
		// HTTP/1.0 without Host: the address the client connected to, not
		// the replica's own (which the transport would put there).
		pr.Out.Host = localHost(pr.In)
	}
	// dlb's server answers "Expect: 100-continue" itself when the body is
	// first read; the replica's 100 would reach the client as a second one.
	pr.Out.Header.Del("Expect")
	setForwarded(pr, p.opts.TrustedProxies)
}

// errNoReplica is the transport's error when no replica is left to retry on.
var errNoReplica = errors.New("no ready replica left to try")

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	a, _ := r.Context().Value(stateKey{}).(*attempt)
	service := ""
	if a != nil {
		service = a.route.Service
	}
	var tooLarge *http.MaxBytesError
	if a != nil {
		p.extendWrite(a.rc)
	}
	switch {
	case a != nil && a.classify(err) == faultClient:
		// Before the next case: a failed read of the body cancels the
		// request's context too, but a client that stalled is still there.
		a.failed = false
		if be := a.bodyError(); be != nil {
			err = be // what the transport made of it may hide a timeout
		}
		p.clientFailed(w, r, service, err)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody is left to answer.
		return
	case errors.Is(err, errNoReplica):
		serviceUnavailable(w, service)
	case errors.As(err, &tooLarge):
		// A body of unknown length grew past dlb.max_body: the client's
		// fault, not the replica's.
		if a != nil {
			a.failed = false
		}
		bodyTooLarge(w, service, tooLarge.Limit)
	case a != nil && a.body != nil && a.body.srcErr != nil:
		// The client's body broke off or its chunked framing is wrong
		// (RFC 9112 section 7.1): the client's fault, answered 400; the
		// replica saw no complete request.
		a.failed = false
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "dlb: malformed request body: %v\n", a.body.srcErr)
	default:
		ev := p.opts.Log.Warn().Err(err).Str("service", service).Str("method", r.Method).Str("path", r.URL.Path)
		if a != nil {
			ev = ev.Str("replica", a.up.Name()).Str("address", a.up.Address())
		}
		ev.Msg("request failed")
		status := http.StatusBadGateway
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			status = http.StatusGatewayTimeout
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "dlb: service %q: the replica failed to answer\n", service)
	}
}

// Release closes the idle connections to an upstream that is draining or
// gone. Once it is removed, connection attempts to it still under way are
// cancelled too (so that they fail over at once instead of waiting for the
// dial timeout on an address nobody answers), and its transport is dropped.
func (p *Proxy) Release(u *balancer.Upstream, removed bool) {
	v, ok := p.transports.Load(u)
	if !ok {
		return
	}
	ut := v.(*upstreamTransport)
	ut.CloseIdleConnections()
	if removed {
		ut.cancel()
		p.transports.Delete(u)
		p.opts.Ejector.Forget(u)
	}
}

// upstreamTransport is the transport of one replica, with a context that
// ends when the replica is removed.
type upstreamTransport struct {
	*http.Transport
	fast   *h1Transport // plain HTTP/1.1; what it does not handle goes to the embedded Transport
	gone   context.Context
	cancel context.CancelFunc
	h2c    *http.Transport // for dlb.scheme=h2c (transport.go)
}

func (p *Proxy) transportFor(u *balancer.Upstream) *upstreamTransport {
	if t, ok := p.transports.Load(u); ok {
		return t.(*upstreamTransport)
	}
	// Losing a race here costs an unused transport, nothing more.
	t, _ := p.transports.LoadOrStore(u, p.newTransport())
	return t.(*upstreamTransport)
}

// newTransport returns the transport for one replica: keep-alive sized for
// load, no compression (bodies pass through as they are), HTTP/1.1 only.
func (p *Proxy) newTransport() *upstreamTransport {
	ut := &upstreamTransport{}
	ut.gone, ut.cancel = context.WithCancel(context.Background())
	// A replica gets as long to acknowledge what dlb sends as it gets to
	// accept the connection: past that its machine or network is gone, the
	// request fails over and the replica is ejected (health.Ejectable).
	d := &net.Dialer{Timeout: p.opts.DialTimeout, KeepAlive: 30 * time.Second, Control: unacknowledgedLimit(p.opts.DialTimeout)}
	ut.Transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stop := context.AfterFunc(ut.gone, cancel)
			defer stop()
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost:   p.opts.MaxIdlePerUpstream,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
		// A non-nil empty map turns HTTP/2 off: upstreams speak HTTP/1.1.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	ut.h2c = newH2CTransport(ut.Transport)
	ut.fast = newFastTransport(ut.Transport, p.opts.MaxReplayBody)
	return ut
}

// retryTransport sends a request to the attempt's replica and, when that
// fails before any response came back and a retry is safe, to others.
type retryTransport Proxy

func (rt *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := (*Proxy)(rt)
	a := req.Context().Value(stateKey{}).(*attempt)
	for {
		run := a.up.Admissions() // which of its runs as Ready this try meets
		resp, err := p.timedRoundTrip(p.transportFor(a.up).forScheme(a.route.Scheme), req, a)
		if be := a.bodyError(); err == nil && be != nil {
			// The replica answered a body the client broke off: what it
			// says is about a request the client never finished.
			resp.Body.Close()
			resp, err = nil, be
		}
		if err == nil {
			p.timeWrites(resp, a)
			return resp, nil
		}
		if a.fresh, err = p.retry(req, a, err, run); err != nil {
			return nil, err
		}
		retry := req.Clone(req.Context())
		retry.URL.Host = a.up.Address()
		if a.body != nil {
			retry.Body = a.body.replay()
		}
		req = retry
	}
}

// failover deals with a try of a that failed with err before any response:
// it ejects the replica when err says it refused or reset the connection,
// and moves a to another replica when a retry is allowed, or returns the
// error to answer with. run is the replica's Admissions before the try, so
// that a retry may go back to it once it has been let in again.
func (p *Proxy) failover(req *http.Request, a *attempt, err error, run uint64) error {
	switch a.classify(err) {
	case faultClient:
		return err
	case faultSlowReplica:
		a.failed = true
		return err
	}
	reached := reachedReplica(err)
	// A request that already broke a replica once breaks the next one
	// by itself, most likely: that one is not ejected for it. A replica
	// that could not be reached at all (its kernel stopped acknowledging:
	// its machine is gone) was not broken by the request: it is ejected,
	// and the request does not count it, so that a request that met two
	// replicas of a lost node goes on to a third.
	gone := health.Unreachable(err)
	if health.Ejectable(err) && a.up.State() == balancer.Ready && (!reached || a.broke == 0 || gone) {
		p.eject(a, err)
	}
	if reached && !gone {
		a.broke++
	}
	if !p.retryable(req, a, err) {
		a.failed = true
		return err
	}
	if reached && !p.withdraw(a) {
		a.failed = true
		return err
	}
	next := p.next(req.Context(), a, run)
	if next == nil {
		a.failed = true
		if !reached {
			// Nothing reached a replica and none is left: the
			// service has no replica that can take the request.
			return fmt.Errorf("%w (last: %v)", errNoReplica, err)
		}
		return err
	}
	p.opts.Log.Debug().Err(err).Str("service", a.route.Service).Str("from", a.up.Name()).
		Str("to", next.Name()).Msg("retrying on another replica")
	a.tried = append(a.tried, triedReplica{a.up, run})
	a.up.End(true)
	if next.Begin() {
		a.first = next
	}
	a.up = next
	return nil
}

// triedReplica is a replica that failed a request, and which of its runs
// as Ready (Upstream.Admissions) failed it.
type triedReplica struct {
	up  *balancer.Upstream
	run uint64
}

// avoid lists the replicas a retry must not go to: those that failed the
// request and have not been let in again since (a replica restarted, or
// probed back after an ejection, is worth another try), and cur, the one
// that failed last in its run failedRun.
func (a *attempt) avoid(cur *balancer.Upstream, failedRun uint64) []*balancer.Upstream {
	out := make([]*balancer.Upstream, 0, len(a.tried)+1)
	for _, t := range a.tried {
		if t.up.Admissions() == t.run {
			out = append(out, t.up)
		}
	}
	if cur.Admissions() == failedRun {
		out = append(out, cur)
	}
	return out
}

// next picks a replica for a retry, not one that failed the request in its
// current run as Ready. When none has room it waits in the service's queue,
// as a new request would, but only while a replica may yet take the request
// (mayTake): another one at its limit, or one that is not ready now (the
// only replica of a service restarted). A replica that stays ready after
// failing the request (it answered garbage, or the request broke it) is not
// waited for: no restart is coming.
func (p *Proxy) next(ctx context.Context, a *attempt, failedRun uint64) *balancer.Upstream {
	ask := p.retryAsk(a, failedRun)
	if !mayTake(a.route.Pool, ask.Avoid()) {
		return nil
	}
	u, _ := a.route.Pool.Acquire(ctx, ask)
	return u
}

// replayBody is a request body that can be sent again after a failed try:
// small bodies are kept in memory; a large one can be resent only while none
// of it has been read.
type replayBody struct {
	src    io.ReadCloser
	buf    []byte // the whole body, when small enough to keep
	kept   bool
	r      bytes.Reader
	read   bool // a byte of a large body was read
	srcErr error
}

func newReplayBody(src io.ReadCloser, length, maxKeep int64) *replayBody {
	b := &replayBody{src: src}
	if length > 0 && length <= maxKeep {
		b.buf, b.srcErr = readKept(src, length)
		b.kept = true
		b.r.Reset(b.buf)
	}
	return b
}

// readKept reads a body of the given length into memory, as io.ReadFull
// would, but grows its buffer as bytes arrive: a client that declares a
// length and sends nothing costs a small buffer, not the declared length.
func readKept(src io.Reader, length int64) ([]byte, error) {
	buf := make([]byte, 0, min(length, 4<<10))
	for int64(len(buf)) < length {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(int64(cap(buf)), length-int64(len(buf)))))
		}
		n, err := src.Read(buf[len(buf):min(int64(cap(buf)), length)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if int64(len(buf)) == length && err == io.EOF {
				return buf, nil
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

func (b *replayBody) Read(p []byte) (int, error) {
	if b.kept {
		n, err := b.r.Read(p)
		if err == io.EOF && b.srcErr != nil {
			err = b.srcErr
		}
		return n, err
	}
	n, err := b.src.Read(p)
	if n > 0 {
		b.read = true
	}
	if err != nil && err != io.EOF {
		b.srcErr = err
	}
	return n, err
}

// Close does not close a large body: the server does that when the handler
// returns, and a retry may still need it.
func (b *replayBody) Close() error { return nil }

// replayable reports whether the body can be sent again: a kept one always;
// a large one only when the failed try never connected (so the transport
// will not read it any more) and nothing of it was read.
func (b *replayBody) replayable(dialFailed bool) bool { return b.kept || dialFailed && !b.read }

// rewind is replay in the shape of http.Request.GetBody.
func (b *replayBody) rewind() (io.ReadCloser, error) { return b.replay(), nil }

// replay returns the body for another try. A kept body gets a new reader,
// since the failed try's transport may still read the old one.
func (b *replayBody) replay() io.ReadCloser {
	if b.kept {
		return io.NopCloser(bytes.NewReader(b.buf))
	}
	return b
}
