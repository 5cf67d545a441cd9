package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// acquire gives a request a replica with room in route's pool: at once
// when one has room, else after a wait in the pool's queue (see
// balancer.Pool.Acquire), which every data path shares. want, if set, is
// a sticky client's replica; client is the request's fairness key (its
// client's address or dlb.hash.header's value), asked for only when the
// request has to queue.
func (p *Proxy) acquire(ctx context.Context, route *Route, key uint64, want *balancer.Upstream, client func() uint64) (*balancer.Upstream, error) {
	if want == nil {
		if u := route.Pool.Pick(key, nil); u != nil {
			return u, nil
		}
	} else if want.Claim() {
		return want, nil
	}
	ask := balancer.Ask{Key: key, Want: want, Timeout: p.opts.QueueTimeout}
	if route.Pool.Len() > 0 {
		ask.Client = client()
	}
	return route.Pool.Acquire(ctx, ask)
}

// retryAsk is what a retry of a asks of its pool's queue: any replica but
// those that failed the request in their current run as Ready.
func (p *Proxy) retryAsk(a *attempt, failedRun uint64) balancer.Ask {
	cur := a.up
	return balancer.Ask{Key: a.key, Timeout: p.opts.QueueTimeout,
		Avoid: func() []*balancer.Upstream { return a.avoid(cur, failedRun) }}
}

// shed answers a request that got no replica: 503 with Retry-After, as
// the pool's queue estimates it, naming why.
func shed(w http.ResponseWriter, route *Route, err error) {
	retry := "1"
	var se *balancer.ShedError
	if errors.As(err, &se) {
		retry = strconv.Itoa(int(max(1, se.RetryAfter.Seconds())))
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Retry-After", retry)
	w.WriteHeader(http.StatusServiceUnavailable)
	switch {
	case route.Pool.ReadyCount() == 0:
		fmt.Fprintf(w, "dlb: service %q has no ready replica\n", route.Service)
	case se != nil && se.Full:
		fmt.Fprintf(w, "dlb: service %q is at capacity and its queue is full; retry after %s s\n", route.Service, retry)
	default:
		fmt.Fprintf(w, "dlb: service %q is at capacity: no replica had room in time; retry after %s s\n", route.Service, retry)
	}
}

// end frees the attempt's slot on its replica; began, when set, is when
// the request began, for a replica whose limit learns from latency.
func (a *attempt) end(began time.Time) {
	if began.IsZero() {
		a.up.End(a.failed)
		return
	}
	a.up.EndAfter(a.failed, a.status >= 500, time.Since(began))
}
