package balancer

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultQueueMax is how many requests a service's queue holds when its
// replicas ask for no other bound (dlb.queue.max).
const DefaultQueueMax = 1024

// Ask is what a request asks of Pool.Acquire.
type Ask struct {
	// Key is the request's affinity key, as Pick takes it.
	Key uint64
	// Client is whose request it is (a hash of the client's address, or
	// of dlb.hash.header's value): when the queue is full, the client
	// holding most of it loses a place first.
	Client uint64
	// Avoid, if set, lists the upstreams that must not take the request
	// (those that failed it), as Pick's tried; it is asked again at each
	// chance, since a replica let in again may be tried again.
	Avoid func() []*Upstream
	// Want, if set, is the only upstream the request may go to while it
	// is Ready (a sticky client's); once it is not, any may.
	Want *Upstream
	// Timeout is how long the request may wait when the pool has no
	// timeout of its own (SetQueue); 0 does not wait.
	Timeout time.Duration
}

// ShedError is Acquire's answer to a request it could not give a replica:
// the queue was full (Full), or the request waited its queue timeout, or
// the pool has no replica at all. RetryAfter is when a client may try
// again, estimated from how fast the queue drains.
type ShedError struct {
	Full       bool
	RetryAfter time.Duration
}

func (e *ShedError) Error() string {
	if e.Full {
		return "queue full"
	}
	return "no replica with room in time"
}

// waiter is a request in a pool's queue.
type waiter struct {
	ask        Ask
	prev, next *waiter
	got        chan *Upstream // receives the upstream whose slot it gets, or nil when shed
	queued     bool
}

// queue is a pool's requests waiting for a slot, first in, first out, with
// the number each client holds. Its lock comes after Pool.mu.
type queue struct {
	mu         sync.Mutex
	head, tail *waiter
	n          int
	byClient   map[uint64]int
	waiting    atomic.Int64 // n, read without the lock by End

	max     atomic.Int64 // 0: DefaultQueueMax
	timeout atomic.Int64 // nanoseconds; 0: the request's Ask.Timeout

	// Counters since the pool was made, for metrics and the admin API.
	queued, shed, timedOut atomic.Int64
	waitNanos              atomic.Int64 // total time the served waiters waited
	served                 atomic.Int64 // waiters that got a slot

	shedding atomic.Bool  // shed a request in the last shedQuiet
	lastShed atomic.Int64 // when, in unix nanoseconds by the pool's clock
	onShed   atomic.Pointer[func(shedding bool)]

	rate rateMeter
}

// SetQueue bounds the pool's queue: at most max requests wait (0:
// DefaultQueueMax), each at most timeout (0: as the request asks).
func (p *Pool) SetQueue(max int, timeout time.Duration) {
	p.queue.max.Store(int64(max))
	p.queue.timeout.Store(int64(timeout))
}

// QueueMax is the most requests the pool's queue holds.
func (p *Pool) QueueMax() int {
	if m := p.queue.max.Load(); m > 0 {
		return int(m)
	}
	return DefaultQueueMax
}

// Shedding reports whether the pool has shed a request lately (see
// OnShedding).
func (p *Pool) Shedding() bool { return p.queue.shedding.Load() }

// QueueTimeout is the pool's own queue timeout (0: the proxy's).
func (p *Pool) QueueTimeout() time.Duration { return time.Duration(p.queue.timeout.Load()) }

// OnShedding sets f to be told when the pool starts shedding requests (a
// full queue, or a request that waited its timeout) and when it stops (it
// has shed none for a while): one call each, not one per request.
func (p *Pool) OnShedding(f func(shedding bool)) { p.queue.onShed.Store(&f) }

// Acquire returns an upstream for the request with a slot claimed for it,
// as Pick does; when none has room, the request waits in the pool's queue
// for the first slot it can use, up to its timeout or until ctx ends. It
// fails with a *ShedError when the queue is full (and the request's client
// holds the most of it), when the request is pushed out of the queue by
// another client's, or when the timeout passes; with ctx's error when ctx
// ends first. A pool with no upstream at all (scaled to 0) answers at once.
func (p *Pool) Acquire(ctx context.Context, ask Ask) (*Upstream, error) {
	if u := p.pickFor(&ask); u != nil {
		return u, nil
	}
	timeout := p.QueueTimeout()
	if timeout <= 0 {
		timeout = ask.Timeout
	}
	if p.Len() == 0 {
		return nil, p.shedError(false) // scaled to 0: nothing to wait for, and no overload
	}
	if timeout <= 0 {
		p.shedNow()
		return nil, p.shedError(false)
	}
	w := &waiter{ask: ask, got: make(chan *Upstream, 1)}
	if u, err := p.enqueue(w); u != nil || err != nil {
		return u, err
	}
	start := p.now()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case u := <-w.got:
		if u != nil {
			p.queue.served.Add(1)
			p.queue.waitNanos.Add(int64(p.now().Sub(start)))
			return u, nil
		}
		return nil, p.shedError(true)
	case <-timer.C:
		err = nil
	case <-ctx.Done():
		err = ctx.Err()
	}
	if p.leave(w) {
		if err == nil {
			p.queue.timedOut.Add(1)
			p.shedNow()
			return nil, p.shedError(false)
		}
		return nil, err
	}
	// Handed a slot (or shed) as it gave up: take what it got.
	if u := <-w.got; u != nil {
		p.queue.served.Add(1)
		p.queue.waitNanos.Add(int64(p.now().Sub(start)))
		return u, nil
	}
	return nil, p.shedError(true)
}

// pickFor picks for a request in the queue or about to join it.
func (p *Pool) pickFor(ask *Ask) *Upstream {
	if w := ask.Want; w != nil {
		if w.State() == Ready && !w.Removed() {
			if w.Claim() {
				return w
			}
			return nil
		}
		ask.Want = nil // it left: any replica will do
	}
	var avoid []*Upstream
	if ask.Avoid != nil {
		avoid = ask.Avoid()
	}
	return p.Pick(ask.Key, avoid)
}

// enqueue puts w at the back of the queue, unless a slot is free (then it
// returns its upstream) or the queue is full and w's client, let in, would
// hold as much of it as the client holding the most (then it returns a
// *ShedError). Else a full queue makes room by shedding the newest request
// of the client that holds the most.
func (p *Pool) enqueue(w *waiter) (*Upstream, error) {
	q := &p.queue
	q.mu.Lock()
	// Counted before the last pick, so that an End between the two sees
	// a waiter (End frees, then reads waiting).
	q.waiting.Add(1)
	if u := p.pickFor(&w.ask); u != nil {
		q.waiting.Add(-1)
		q.mu.Unlock()
		return u, nil
	}
	var evicted *waiter
	if q.n >= p.QueueMax() {
		heavy, most := q.heaviest()
		if q.byClient[w.ask.Client]+1 >= most {
			// Letting it in would leave it holding as much as the
			// heaviest: no fairer than refusing it.
			q.waiting.Add(-1)
			q.mu.Unlock()
			p.shedNow()
			return nil, p.shedError(true)
		}
		evicted = q.newest(heavy)
		q.remove(evicted)
	}
	q.push(w)
	q.mu.Unlock()
	q.queued.Add(1)
	if evicted != nil {
		p.shedNow()
		evicted.got <- nil
	}
	return nil, nil
}

// leave takes w out of the queue, reporting false when it had already been
// handed a slot or shed.
func (p *Pool) leave(w *waiter) bool {
	q := &p.queue
	q.mu.Lock()
	in := w.queued
	if in {
		q.remove(w)
	}
	q.mu.Unlock()
	return in
}

// dispatch hands free slots to the waiters that can use them, first come
// first served: the one at the front that can use a slot gets it. It runs
// when a slot frees (End) and when the pool changes.
func (p *Pool) dispatch() {
	q := &p.queue
	q.mu.Lock()
	for w := q.head; w != nil; {
		next := w.next
		u := p.pickFor(&w.ask)
		if u != nil {
			q.remove(w)
			w.got <- u // buffered: never blocks
		} else if w.ask.Want == nil && w.ask.Avoid == nil && !p.NeedsKey() {
			break // no slot for anyone: those behind wait too
		}
		w = next
	}
	q.mu.Unlock()
}

// shedQuiet is how long a pool sheds nothing before OnShedding hears that
// it stopped: a surge sheds in bursts, and one line per burst is noise.
const shedQuiet = 2 * time.Second

// shedNow counts a shed request and tells OnShedding's function when it
// is the first since the pool last stopped shedding.
func (p *Pool) shedNow() {
	q := &p.queue
	q.shed.Add(1)
	q.lastShed.Store(p.now().UnixNano())
	if q.shedding.CompareAndSwap(false, true) {
		if f := q.onShed.Load(); f != nil {
			(*f)(true)
		}
		time.AfterFunc(shedQuiet, p.checkQuiet)
	}
}

// checkQuiet tells OnShedding's function that the pool stopped shedding
// once it has shed nothing for shedQuiet, else looks again later.
func (p *Pool) checkQuiet() {
	q := &p.queue
	if since := p.now().Sub(time.Unix(0, q.lastShed.Load())); since < shedQuiet {
		time.AfterFunc(shedQuiet-since, p.checkQuiet)
		return
	}
	if q.shedding.CompareAndSwap(true, false) {
		if f := q.onShed.Load(); f != nil {
			(*f)(false)
		}
	}
}

func (p *Pool) shedError(full bool) *ShedError {
	return &ShedError{Full: full, RetryAfter: p.retryAfter()}
}

// retryAfter estimates when a request shed now would find room: the time
// the queue takes to drain at the rate requests have been leaving it,
// between 1 s and a minute.
func (p *Pool) retryAfter() time.Duration {
	st := p.QueueStats()
	if st.Drain <= 0 {
		return time.Second
	}
	secs := math.Ceil(float64(st.Queued+1) / st.Drain)
	return time.Duration(min(60, max(1, secs))) * time.Second
}

func (q *queue) push(w *waiter) {
	w.prev, w.next, w.queued = q.tail, nil, true
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
	if q.byClient == nil {
		q.byClient = map[uint64]int{}
	}
	q.byClient[w.ask.Client]++
}

func (q *queue) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	q.n--
	q.waiting.Add(-1)
	if c := q.byClient[w.ask.Client]; c <= 1 {
		delete(q.byClient, w.ask.Client)
	} else {
		q.byClient[w.ask.Client] = c - 1
	}
}

// heaviest is the client holding the most of the queue, and how much.
func (q *queue) heaviest() (client uint64, most int) {
	for c, n := range q.byClient {
		if n > most || n == most && c < client {
			client, most = c, n
		}
	}
	return client, most
}

// newest is client's request that joined the queue last.
func (q *queue) newest(client uint64) *waiter {
	for w := q.tail; w != nil; w = w.prev {
		if w.ask.Client == client {
			return w
		}
	}
	return nil
}

// QueueStats is what a pool's queue holds and has done.
type QueueStats struct {
	// Queued is how many requests wait now; Max how many may.
	Queued, Max int
	// Shed counts requests answered 503 by the queue (full, pushed out,
	// or waited their timeout); TimedOut those of them that waited their
	// timeout; Served those that waited and got a replica; Waited their
	// total wait.
	Shed, TimedOut, Served int64
	Waited                 time.Duration
	// Arrival and Drain are requests per second over the last few
	// seconds: arriving at the pool (served and shed), and leaving its
	// replicas (served). PerReplica is Drain per Ready replica; Needed is
	// how many replicas the arrival rate needs at that throughput each
	// (0 when there is nothing to go by).
	Arrival, Drain, PerReplica float64
	Needed                     int
}

// QueueStats returns the pool's queue figures now.
func (p *Pool) QueueStats() QueueStats {
	q := &p.queue
	q.mu.Lock()
	queued := q.n // not waiting, which counts one about to join, too
	q.mu.Unlock()
	st := QueueStats{Queued: queued, Max: p.QueueMax(), Shed: q.shed.Load(), TimedOut: q.timedOut.Load(),
		Served: q.served.Load(), Waited: time.Duration(q.waitNanos.Load())}
	var done int64
	for _, u := range p.Upstreams() {
		done += u.Requests()
	}
	st.Arrival, st.Drain = q.rate.rates(p.now(), done, st.Shed)
	if n := p.ReadyCount(); n > 0 && st.Drain > 0 {
		st.PerReplica = st.Drain / float64(n)
		if st.Queued > 0 || st.Shed > 0 && st.Arrival > st.Drain*1.05 {
			st.Needed = int(math.Ceil(st.Arrival / st.PerReplica))
		}
	}
	return st
}

// rateMeter turns counters into rates over a window of at least
// rateWindow, from samples taken when asked (no clock on the request path).
type rateMeter struct {
	mu             sync.Mutex
	at             time.Time
	done, shed     int64
	arrival, drain float64
}

const rateWindow = time.Second

func (r *rateMeter) rates(now time.Time, done, shed int64) (arrival, drain float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at.IsZero() {
		r.at, r.done, r.shed = now, done, shed
		return 0, 0
	}
	if dt := now.Sub(r.at); dt >= rateWindow {
		secs := dt.Seconds()
		r.drain = float64(done-r.done) / secs
		r.arrival = float64(done-r.done+shed-r.shed) / secs
		r.at, r.done, r.shed = now, done, shed
		if dt > 10*rateWindow {
			// An old sample says little of now: start afresh.
			r.arrival, r.drain = 0, 0
		}
	}
	return r.arrival, r.drain
}
