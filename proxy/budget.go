package proxy

import (
	"math"
	"sync"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// The retry budget of a service: retries on another replica after a
// replica saw the request and failed it may add at most RetryBudgetPercent
// of the service's recent requests (over about RetryBudgetWindow), plus
// RetryBudgetMinPerSecond so that a quiet service can still retry. Under an
// overload where every replica fails, retries would otherwise multiply the
// load by 1+--retries; with the budget they add a fifth at most. Finagle's
// RetryBudget and Envoy's retry budget work the same way. A try that never
// reached a replica (its connection was refused or timed out) is retried
// outside the budget: the replica did no work for it.
const (
	RetryBudgetPercent      = 20
	RetryBudgetWindow       = 10 * time.Second
	RetryBudgetMinPerSecond = 10
)

// retryBudget is one service's retry budget. Its requests and retries are
// counts that decay over RetryBudgetWindow (an exponential sliding window).
// It reads the requests from the replicas' own counters when a retry is
// asked for, so the requests themselves cost nothing.
type retryBudget struct {
	mu       sync.Mutex
	last     time.Time // the last withdraw; zero before the first
	total    int64     // the service's requests at the last withdraw
	granted  int64     // retries granted since then (they are in the next total too)
	requests float64   // decayed requests
	retries  float64   // decayed retries
	refused  int       // retries refused since the last report
	reported time.Time // when exhaustion was last reported
}

// withdraw reports whether a retry may go at now, the service having had
// total requests so far (every try counts, retries too). When it refuses,
// report is the number of retries refused since the budget last said so,
// at most once per RetryBudgetWindow, and 0 in between: the caller logs it.
func (b *retryBudget) withdraw(now time.Time, total int64) (ok bool, report int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		dt := max(now.Sub(b.last), 0)
		decay := math.Exp(-float64(dt) / float64(RetryBudgetWindow))
		// The requests since the last look arrived at some time in dt:
		// taken as spread evenly, they weigh what they would have
		// decayed to by now.
		weight := 1.0
		if dt > 0 {
			weight = float64(RetryBudgetWindow) / float64(dt) * (1 - decay)
		}
		fresh := max(total-b.total-b.granted, 0) // a replica that left takes its count away
		b.requests = b.requests*decay + float64(fresh)*weight
		b.retries *= decay
	}
	b.last, b.total, b.granted = now, total, 0
	reserve := float64(RetryBudgetMinPerSecond) * RetryBudgetWindow.Seconds()
	if b.retries+1 <= b.requests*RetryBudgetPercent/100+reserve {
		b.retries++
		b.granted++
		return true, 0
	}
	b.refused++
	if now.Sub(b.reported) < RetryBudgetWindow && !b.reported.IsZero() {
		return false, 0
	}
	report, b.refused, b.reported = b.refused, 0, now
	return false, report
}

// budgetFor returns the retry budget of pool's service.
func (p *Proxy) budgetFor(pool *balancer.Pool) *retryBudget {
	if b, ok := p.budgets.Load(pool); ok {
		return b.(*retryBudget)
	}
	b, _ := p.budgets.LoadOrStore(pool, &retryBudget{})
	return b.(*retryBudget)
}

// requestsOf is the number of requests sent to pool's replicas while they
// were in it.
func requestsOf(pool *balancer.Pool) int64 {
	var n int64
	for _, u := range pool.Upstreams() {
		n += u.Requests()
	}
	return n
}
