package balancer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// limited returns a pool "web" of the named replicas, all ready, each
// limited to limit requests in flight.
func limited(t testing.TB, limit int, names ...string) *balancer.Pool {
	t.Helper()
	p := balancer.NewPool("web")
	for _, n := range names {
		m := member(n)
		m.Limit = balancer.Limit{Max: limit}
		p.Put(m)
		p.MarkReady(m.ID)
	}
	return p
}

// fill picks n times and fails unless every pick gets an upstream.
func fill(t *testing.T, p *balancer.Pool, n int) []*balancer.Upstream {
	t.Helper()
	var got []*balancer.Upstream
	for i := range n {
		u := p.Pick(0, nil)
		if u == nil {
			t.Fatalf("pick %d of %d: got nil, want an upstream with room", i+1, n)
		}
		got = append(got, u)
	}
	return got
}

func TestPickRespectsTheLimit(t *testing.T) {
	for _, policy := range balancer.PolicyNames {
		t.Run(policy, func(t *testing.T) {
			p := limited(t, 2, "a", "b")
			p.SetPolicy(policy)
			// A keyed policy waits for its own replica: give each pick
			// the key of a replica with room.
			perName := map[string]int{}
			for range 4 {
				var u *balancer.Upstream
				for key := uint64(0); u == nil && key < 64; key++ {
					u = p.Pick(key, nil)
				}
				if u == nil {
					t.Fatalf("%v picks in: got nil, want an upstream with room", perName)
				}
				perName[u.Name()]++
			}
			for key := range uint64(64) {
				if u := p.Pick(key, nil); u != nil {
					t.Fatalf("Pick with every replica at its limit: got %s (%d in flight, limit %d), want nil", u.Name(), u.InFlight(), u.Limit())
				}
			}
			if perName["a"] != 2 || perName["b"] != 2 {
				t.Errorf("picks: got %v, want 2 each", perName)
			}
			a := p.Get("id-a")
			a.End(false)
			var u *balancer.Upstream
			for key := uint64(0); u == nil && key < 64; key++ {
				u = p.Pick(key, nil)
			}
			if u != a {
				t.Errorf("Pick after a's End: got %v, want a (the only one with room)", u)
			}
		})
	}
}

// Two engines racing for the last slot: never more than the limit in
// flight at once.
func TestPickNeverExceedsTheLimitUnderRaces(t *testing.T) {
	p := limited(t, 3, "a", "b")
	var peak atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				u := p.Pick(0, nil)
				if u == nil {
					continue
				}
				if n := u.InFlight(); n > peak.Load() {
					peak.Store(n)
				}
				u.End(false)
			}
		}()
	}
	wg.Wait()
	if got := peak.Load(); got > 3 {
		t.Errorf("peak in flight on one replica: got %d, want at most its limit 3", got)
	}
}

// waitQueued waits until p's queue holds n requests.
func waitQueued(t *testing.T, p *balancer.Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.QueueStats().Queued != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue: got %d waiting, want %d", p.QueueStats().Queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type acquired struct {
	i   int
	u   *balancer.Upstream
	err error
}

// acquireInOrder starts Acquire for each client in turn, each once the
// previous one waits, and returns where their results arrive.
func acquireInOrder(t *testing.T, ctx context.Context, p *balancer.Pool, clients ...uint64) <-chan acquired {
	t.Helper()
	out := make(chan acquired, len(clients))
	base := p.QueueStats().Queued
	for i, c := range clients {
		go func() {
			u, err := p.Acquire(ctx, balancer.Ask{Client: c, Timeout: time.Minute})
			out <- acquired{i, u, err}
		}()
		waitQueued(t, p, base+i+1)
	}
	return out
}

func TestAcquireServesTheQueueInOrder(t *testing.T) {
	p := limited(t, 1, "a")
	busy := fill(t, p, 1)[0]
	got := acquireInOrder(t, t.Context(), p, 1, 2, 3)
	for want := range 3 {
		busy.End(false)
		r := <-got
		if r.err != nil || r.i != want || r.u != busy {
			t.Fatalf("after End %d: got waiter %d (%v, %v), want waiter %d with a", want+1, r.i, r.u, r.err, want)
		}
		if n := busy.InFlight(); n != 1 {
			t.Errorf("in flight after a freed slot went to a waiter: got %d, want 1", n)
		}
	}
}

func TestAcquireGetsAReplicaThatTurnsReady(t *testing.T) {
	p := limited(t, 1, "a")
	fill(t, p, 1)
	got := acquireInOrder(t, t.Context(), p, 1)
	m := member("b")
	m.Limit = balancer.Limit{Max: 1}
	p.Put(m)
	p.MarkReady(m.ID)
	if r := <-got; r.err != nil || r.u == nil || r.u.Name() != "b" {
		t.Errorf("Acquire while b turned ready: got %v, %v; want b", r.u, r.err)
	}
}

// The queue's bound, and who loses a place when it is full: the client
// holding the most of it.
func TestQueueIsFairUnderAFlood(t *testing.T) {
	tests := []struct {
		name    string
		queued  []uint64 // clients already waiting, in order
		arrives uint64
		// want: the arrival is refused (-1), or which waiter is pushed out
		// (its index in queued).
		want int
	}{
		{"the flooder's newest leaves for another client", []uint64{7, 7, 7, 7}, 1, 3},
		{"the flooder itself is refused", []uint64{7, 7, 7, 7}, 7, -1},
		{"the heaviest loses, not the oldest", []uint64{1, 7, 7, 2}, 3, 2},
		{"a client as heavy as the heaviest is refused", []uint64{1, 1, 7, 7}, 7, -1},
		{"one each: the arrival is refused", []uint64{1, 2, 3, 4}, 5, -1},
		{"a client with one place may take a second from a heavier one", []uint64{7, 7, 7, 1}, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := limited(t, 1, "a")
			p.SetQueue(len(tt.queued), 0)
			fill(t, p, 1)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			results := acquireInOrder(t, ctx, p, tt.queued...)
			_, err := p.Acquire(ctx, balancer.Ask{Client: tt.arrives, Timeout: 50 * time.Millisecond})
			var se *balancer.ShedError
			if tt.want < 0 {
				if !errors.As(err, &se) || !se.Full {
					t.Fatalf("arrival of client %d: got %v, want a full queue's ShedError", tt.arrives, err)
				}
				return
			}
			// The arrival took a place: it waits (and times out, nobody
			// frees a slot); the one pushed out is answered at once.
			r := <-results
			if r.i != tt.want || !errors.As(r.err, &se) || !se.Full {
				t.Errorf("pushed out: got waiter %d (%v), want waiter %d (client %d) with a full queue's ShedError", r.i, r.err, tt.want, tt.queued[tt.want])
			}
			if se != nil && se.RetryAfter < time.Second {
				t.Errorf("Retry-After of a shed request: got %v, want at least 1s", se.RetryAfter)
			}
		})
	}
}

// A replica recreated with a gap (Compose v2 removes the old container
// before it starts the new one, as a script's docker rm and docker run do):
// the requests waiting when the pool's last upstream goes keep waiting, and
// the new one serves them.
func TestQueueWaitsThroughARecreate(t *testing.T) {
	p := limited(t, 1, "a")
	p.Stop("id-a")
	got := acquireInOrder(t, t.Context(), p, 1, 2)
	p.Remove("id-a")
	b := member("b")
	b.Limit = balancer.Limit{Max: 2}
	p.Put(b)
	select {
	case r := <-got:
		t.Fatalf("waiter %d was answered before the new replica was ready: %v, %v", r.i, r.u, r.err)
	default:
	}
	p.MarkReady(b.ID)
	for range 2 {
		if r := <-got; r.err != nil || r.u == nil || r.u.Name() != "b" {
			t.Errorf("waiter %d once b turned ready: got %v, %v; want b", r.i, r.u, r.err)
		}
	}
}

func TestAcquireTimesOut(t *testing.T) {
	p := limited(t, 1, "a")
	fill(t, p, 1)
	start := time.Now()
	_, err := p.Acquire(t.Context(), balancer.Ask{Timeout: 30 * time.Millisecond})
	var se *balancer.ShedError
	if !errors.As(err, &se) || se.Full {
		t.Fatalf("Acquire past its timeout: got %v, want a ShedError, not Full", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("Acquire gave up after %v, want after its timeout of 30ms", d)
	}
	// The pool's own timeout wins over the request's.
	p.SetQueue(0, 10*time.Millisecond)
	start = time.Now()
	if _, err := p.Acquire(t.Context(), balancer.Ask{Timeout: time.Hour}); !errors.As(err, &se) {
		t.Fatalf("Acquire with the pool's timeout of 10ms: got %v, want a ShedError", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Acquire with the pool's timeout of 10ms took %v", d)
	}
	st := p.QueueStats()
	if st.Queued != 0 || st.TimedOut != 2 || st.Shed != 2 {
		t.Errorf("stats: got %d queued, %d timed out, %d shed; want 0, 2, 2", st.Queued, st.TimedOut, st.Shed)
	}
}

func TestAcquireEndsWithItsContext(t *testing.T) {
	p := limited(t, 1, "a")
	fill(t, p, 1)
	ctx, cancel := context.WithCancel(t.Context())
	got := acquireInOrder(t, ctx, p, 1)
	cancel()
	if r := <-got; !errors.Is(r.err, context.Canceled) {
		t.Errorf("Acquire after its context ended: got %v, want context.Canceled", r.err)
	}
	if n := p.QueueStats().Queued; n != 0 {
		t.Errorf("queued after the client left: got %d, want 0", n)
	}
}

func TestAcquireAnswersAtOnceWithoutAQueue(t *testing.T) {
	tests := []struct {
		name string
		pool func(t *testing.T) *balancer.Pool
		ask  balancer.Ask
	}{
		{"no timeout", func(t *testing.T) *balancer.Pool { p := limited(t, 1, "a"); fill(t, p, 1); return p }, balancer.Ask{}},
		{"no replica at all", func(t *testing.T) *balancer.Pool { return balancer.NewPool("web") }, balancer.Ask{Timeout: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var se *balancer.ShedError
			if _, err := tt.pool(t).Acquire(t.Context(), tt.ask); !errors.As(err, &se) {
				t.Errorf("got %v, want a ShedError at once", err)
			}
		})
	}
}

// A keyed policy waits for the key's own replica; a sticky request
// (Want) too, until that replica leaves.
func TestAcquireWaitsForItsOwnReplica(t *testing.T) {
	p := limited(t, 1, "a", "b")
	p.SetPolicy("hash")
	a, b := p.Get("id-a"), p.Get("id-b")
	var keyA uint64 // a key the hash maps to a; its pick fills a
	for ; ; keyA++ {
		u := p.Pick(keyA, nil)
		if u == a {
			break
		}
		u.End(false)
	}
	got := make(chan *balancer.Upstream, 1)
	go func() {
		u, _ := p.Acquire(t.Context(), balancer.Ask{Key: keyA, Timeout: time.Minute})
		got <- u
	}()
	waitQueued(t, p, 1)
	if !b.Claim() {
		t.Fatal("b.Claim: got false, want b free")
	}
	b.End(false) // a free slot on b is not for a request keyed to a
	select {
	case u := <-got:
		t.Fatalf("hash request keyed to a got %v when b freed a slot; want it to wait for a", u)
	case <-time.After(20 * time.Millisecond):
	}
	a.End(false)
	if u := <-got; u != a {
		t.Errorf("hash request after a freed: got %v, want a", u)
	}

	// Sticky: wants a, which is full, until a drains.
	p.SetPolicy("round_robin")
	go func() {
		u, _ := p.Acquire(t.Context(), balancer.Ask{Want: a, Timeout: time.Minute})
		got <- u
	}()
	waitQueued(t, p, 1)
	p.Drain("id-a")
	if u := <-got; u != b {
		t.Errorf("sticky request after its replica drained: got %v, want b", u)
	}
}

func TestQueueStatsFromRates(t *testing.T) {
	clock := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	p := balancer.NewPool("web", balancer.WithClock(func() time.Time { return clock }))
	for _, n := range []string{"a", "b"} {
		m := member(n)
		m.Limit = balancer.Limit{Max: 1}
		p.Put(m)
		p.MarkReady(m.ID)
	}
	p.QueueStats() // the first sample
	// 10 s at 20 requests a second on each of 2 replicas.
	for range 200 {
		for _, id := range []string{"id-a", "id-b"} {
			u := p.Get(id)
			u.Claim()
			u.Begin()
			u.End(false)
		}
	}
	clock = clock.Add(10 * time.Second)
	st := p.QueueStats()
	if st.Drain != 40 || st.PerReplica != 20 {
		t.Errorf("rates: got drain %v/s, %v/s per replica; want 40, 20", st.Drain, st.PerReplica)
	}
	if st.Needed != 0 {
		t.Errorf("replicas needed with nothing queued or shed: got %d, want 0", st.Needed)
	}
}

func TestOnSheddingIsToldOncePerEpisode(t *testing.T) {
	p := limited(t, 1, "a")
	p.SetQueue(1, 0)
	var mu sync.Mutex
	var told []bool
	p.OnShedding(func(s bool) { mu.Lock(); told = append(told, s); mu.Unlock() })
	busy := fill(t, p, 1)[0]
	got := acquireInOrder(t, t.Context(), p, 1)
	for range 5 {
		if _, err := p.Acquire(t.Context(), balancer.Ask{Client: 1, Timeout: time.Minute}); err == nil {
			t.Fatal("Acquire with a full queue: got a replica, want a ShedError")
		}
	}
	busy.End(false)
	<-got
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		s := fmt.Sprint(told)
		mu.Unlock()
		if s == "[true false]" {
			return
		}
		if s != "[true]" || time.Now().After(deadline) {
			t.Fatalf("OnShedding: got %v, want [true false] (the second once it shed nothing for a while)", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    balancer.Limit
		wantErr bool
	}{
		{"8", balancer.Limit{Max: 8}, false},
		{" 0 ", balancer.Limit{}, false},
		{"auto", balancer.Limit{Auto: true}, false},
		{"AUTO", balancer.Limit{Auto: true}, false},
		{"-1", balancer.Limit{}, true},
		{"eight", balancer.Limit{}, true},
		{"100001", balancer.Limit{}, true},
	}
	for _, tt := range tests {
		got, err := balancer.ParseLimit(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseLimit(%q): got %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
