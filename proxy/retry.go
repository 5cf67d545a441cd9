package proxy

import (
	"net/http"
	"slices"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// The rules of failover (proxy.go) that every engine shares: which
// requests may be sent again, how a failed replica is ejected, the retry
// budget, and when a retry may wait for a replica.

// resendable reports whether a request that a replica may have seen can
// be sent again: its method is idempotent (RFC 9110 section 9.2.2), or the
// client marked it with an idempotency key (Idempotency-Key, or
// X-Idempotency-Key; net/http's Transport resends those too). The key is
// looked for only when the method is not idempotent.
func resendable(method string, keyed func() bool) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return keyed()
}

// eject ejects the attempt's replica, which failed with err, as far as the
// Ejector's cap lets it, and logs what it did.
func (p *Proxy) eject(a *attempt, err error) {
	v := p.opts.Ejector.Eject(a.route.Pool, a.up, err)
	if r := v.Returned; r != nil {
		p.opts.Log.Info().Str("service", a.route.Service).Str("replica", r.Name()).Str("for", a.up.Name()).
			Msg("ejected replica let back in early: another fails more, and the ejection cap keeps the least-failing replicas in")
	}
	switch {
	case v.Ejected:
		p.opts.Log.Warn().Err(err).Str("service", a.route.Service).Str("replica", a.up.Name()).
			Dur("for_ms", v.Window).Msg("replica ejected: it refused or reset a connection; will probe it back")
		p.ejected(a.route, a.up)
	case v.Capped:
		a.ejectCapped = true
		p.opts.Log.Debug().Err(err).Str("service", a.route.Service).Str("replica", a.up.Name()).
			Msg("replica reset a connection but stays in: the ejection cap keeps enough replicas serving")
	}
}

// withdraw asks the retry budget of a's service for a retry; when it
// refuses, a is marked, and the budget's exhaustion is logged once per
// window.
func (p *Proxy) withdraw(a *attempt) bool {
	ok, refused := p.budgetFor(a.route.Pool).withdraw(time.Now(), requestsOf(a.route.Pool))
	if ok {
		return true
	}
	a.budgetRefused = true
	if refused > 0 {
		p.opts.Log.Warn().Str("service", a.route.Service).Int("refused", refused).
			Msgf("retry budget exhausted: failed requests are answered without a retry until retries are under %d%% of the service's requests again (plus %d a second)",
				RetryBudgetPercent, RetryBudgetMinPerSecond)
	}
	return false
}

// mayTake reports whether pool has a replica that a request may yet go to,
// which a request with no replica to go to now may wait for: any that is
// not ready now (starting; draining or down, since Docker may restart it;
// out after a failed check or an ejection), or a ready one not in avoid
// (at its limit, it takes the request once a slot frees). A replica that
// failed the request and stays ready is not let in again: nothing is
// coming.
func mayTake(pool *balancer.Pool, avoid []*balancer.Upstream) bool {
	for _, u := range pool.Upstreams() {
		if u.State() != balancer.Ready || !slices.Contains(avoid, u) {
			return true
		}
	}
	return false
}
