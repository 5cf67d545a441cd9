package proxy

import (
	"bufio"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// Observer is told about every request the proxy handles and every replica
// it ejects, for metrics and access logs. Set it in Options.Observer
// (several: Observers); nil costs nothing. It is the one way to watch the
// proxy.
type Observer interface {
	// Observe is called once per request, on the request's goroutine, once
	// the response is complete or the client has gone: for forwarded
	// requests and for those dlb answered itself (404 no route, 503 no
	// replica, 413 body too large). r is the client's request; neither r
	// nor e may be kept after Observe returns.
	Observe(r *http.Request, e *Exchange)
	// Ejected is called once per passive ejection (the proxy took a
	// replica out of its pool after it refused or reset a connection), on
	// the goroutine of the request that saw the failure.
	Ejected(route *Route, u *balancer.Upstream)
}

// observers tells every one of its Observers about each request.
type observers []Observer

var _ Observer = observers(nil)

// Observe passes the request on to each Observer in turn.
func (os observers) Observe(r *http.Request, e *Exchange) {
	for _, o := range os {
		o.Observe(r, e)
	}
}

// Ejected passes the ejection on to each Observer in turn.
func (os observers) Ejected(route *Route, u *balancer.Upstream) {
	for _, o := range os {
		o.Ejected(route, u)
	}
}

// Observers is one Observer that tells all of os: nil with none (so that
// the proxy does no work for them), the Observer itself with one. Nil
// Observers in os are left out.
func Observers(os ...Observer) Observer {
	os = slices.DeleteFunc(slices.Clone(os), func(o Observer) bool { return o == nil })
	switch len(os) {
	case 0:
		return nil
	case 1:
		return os[0]
	}
	return observers(os)
}

// StatusClientClosed is the Status of an Exchange whose client went away
// before dlb sent a response (nginx's 499; never sent on the wire).
const StatusClientClosed = 499

// Exchange is what an Observer learns of one request.
type Exchange struct {
	// Route is the route the request took; nil when none matched (404).
	Route *Route
	// Upstream is the replica tried last; nil when none was (no route, no
	// ready replica, or the request was refused before forwarding).
	Upstream *balancer.Upstream
	// FirstFor is the replica for which this request was the first one it
	// was sent since it turned Ready (see Upstream.Begin), or nil. The time
	// from FirstFor.ReadySince() to Start is how long a new replica waited
	// for traffic.
	FirstFor *balancer.Upstream
	// Status is the status sent to the client: 101 for a protocol switch
	// (WebSocket), StatusClientClosed when the client left before any.
	Status int
	// Bytes is the number of response body bytes written to the client
	// (not counting what flows after a protocol switch).
	Bytes int64
	// Start is when dlb began handling the request; Duration how long it
	// took, up to the end of the response.
	Start    time.Time
	Duration time.Duration
	// Retries is how many other replicas the request was retried on.
	Retries int
	// RetryRefused is set when the service's retry budget refused the
	// request a retry it was otherwise due (see RetryBudgetPercent).
	RetryRefused bool
	// EjectionCapped is set when a replica that reset the request's
	// connection stayed in its pool: the Ejector's cap kept it in.
	EjectionCapped bool
}

// observed wraps the client's ResponseWriter to learn the status and size
// of the response, for one request that has an Observer.
type observed struct {
	http.ResponseWriter
	obs      Observer
	req      *http.Request
	ex       Exchange
	a        *attempt
	hijacked bool
}

var (
	_ http.ResponseWriter = (*observed)(nil)
	_ http.Flusher        = (*observed)(nil)
	_ http.Hijacker       = (*observed)(nil)
)

// observe starts observing a request; it returns nil when there is no
// Observer. Every method of a nil *observed does nothing.
func (p *Proxy) observe(w http.ResponseWriter, r *http.Request) *observed {
	if p.opts.Observer == nil {
		return nil
	}
	return &observed{ResponseWriter: w, obs: p.opts.Observer, req: r, ex: Exchange{Start: time.Now()}}
}

func (o *observed) setRoute(route *Route) {
	if o != nil {
		o.ex.Route = route
	}
}

func (o *observed) setAttempt(a *attempt) {
	if o != nil {
		o.a = a
	}
}

// done reports the request to the Observer.
func (o *observed) done() {
	if o == nil {
		return
	}
	o.ex.Duration = time.Since(o.ex.Start)
	if a := o.a; a != nil {
		o.ex.Upstream, o.ex.FirstFor, o.ex.Retries = a.up, a.first, len(a.tried)
		o.ex.RetryRefused, o.ex.EjectionCapped = a.budgetRefused, a.ejectCapped
	}
	switch {
	case o.ex.Status != 0:
	case o.hijacked:
		o.ex.Status = http.StatusSwitchingProtocols
	case o.req.Context().Err() != nil:
		o.ex.Status = StatusClientClosed
	default: // nothing written: net/http sends 200 with no body
		o.ex.Status = http.StatusOK
	}
	o.obs.Observe(o.req, &o.ex)
}

// WriteHeader records the final status; 1xx responses (103 Early Hints)
// come before it.
func (o *observed) WriteHeader(code int) {
	if o.ex.Status == 0 && code >= 200 {
		o.ex.Status = code
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *observed) Write(b []byte) (int, error) {
	if o.ex.Status == 0 {
		o.ex.Status = http.StatusOK
	}
	n, err := o.ResponseWriter.Write(b)
	o.ex.Bytes += int64(n)
	return n, err
}

// Flush sends what is buffered (ReverseProxy flushes server-sent events at
// once); it is FlushError without the error, for http.Flusher users.
func (o *observed) Flush() { o.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (o *observed) FlushError() error {
	if o.ex.Status == 0 {
		o.ex.Status = http.StatusOK
	}
	return http.NewResponseController(o.ResponseWriter).Flush()
}

// Hijack hands the connection over for a protocol switch (ReverseProxy
// does this for WebSocket upgrades, then writes the 101 itself).
func (o *observed) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(o.ResponseWriter).Hijack()
	if err == nil {
		o.hijacked = true
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the client's ResponseWriter, for
// deadlines and full duplex.
func (o *observed) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// ejected tells the Observer, if any, of an ejection.
func (p *Proxy) ejected(route *Route, u *balancer.Upstream) {
	if p.opts.Observer != nil {
		p.opts.Observer.Ejected(route, u)
	}
}

// observing returns w as an *observed, or nil when the request has no
// Observer.
func observing(w http.ResponseWriter) *observed {
	o, _ := w.(*observed)
	return o
}

// unobserved returns the client's own ResponseWriter under an *observed:
// http.MaxBytesReader needs it to close the connection after a body that
// was too large.
func unobserved(w http.ResponseWriter) http.ResponseWriter {
	if o, ok := w.(*observed); ok {
		return o.ResponseWriter
	}
	return w
}
