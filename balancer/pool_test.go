package balancer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// member is the Member for the replica named name: ID "id-<name>" and
// address "<name>:80".
func member(name string) balancer.Member {
	return balancer.Member{ID: "id-" + name, Name: name, Address: name + ":80"}
}

// pool returns a pool named "web" holding the named replicas, all ready.
func pool(t testing.TB, names ...string) *balancer.Pool {
	t.Helper()
	p := balancer.NewPool("web")
	for _, n := range names {
		p.Put(member(n))
		if !p.MarkReady("id-" + n) {
			t.Fatalf("MarkReady(id-%s): got false, want true", n)
		}
	}
	return p
}

// names returns the names of ups, for messages and comparisons.
func names(ups []*balancer.Upstream) []string {
	out := []string{}
	for _, u := range ups {
		out = append(out, u.Name())
	}
	return out
}

func TestPoolStates(t *testing.T) {
	const id = "id-a"
	type step func(p *balancer.Pool) bool
	var (
		ready   step = func(p *balancer.Pool) bool { return p.MarkReady(id) }
		drain   step = func(p *balancer.Pool) bool { return p.Drain(id) }
		stop    step = func(p *balancer.Pool) bool { return p.Stop(id) }
		restart step = func(p *balancer.Pool) bool { return p.Restart(id) }
		remove  step = func(p *balancer.Pool) bool { return p.Remove(id) }
		moved   step = func(p *balancer.Pool) bool { p.Put(balancer.Member{ID: id, Name: "a", Address: "a:8080"}); return true }
		health       = func(c balancer.Check, ok bool) step {
			return func(p *balancer.Pool) bool { return p.SetHealth(id, c, ok) }
		}
		dockerSick  = health(balancer.CheckDocker, false)
		dockerWell  = health(balancer.CheckDocker, true)
		activeSick  = health(balancer.CheckActive, false)
		activeWell  = health(balancer.CheckActive, true)
		passiveSick = health(balancer.CheckPassive, false)
		passiveWell = health(balancer.CheckPassive, true)
	)
	tests := []struct {
		name  string
		steps []step
		want  balancer.State
	}{
		{"put", nil, balancer.Starting},
		{"put, ready", []step{ready}, balancer.Ready},
		{"ready twice", []step{ready, ready}, balancer.Ready},
		{"docker unhealthy", []step{ready, dockerSick}, balancer.Down},
		{"docker unhealthy, then healthy", []step{ready, dockerSick, dockerWell}, balancer.Ready},
		{"docker unhealthy, active healthy", []step{ready, dockerSick, activeWell}, balancer.Down},
		{"active unhealthy, docker healthy", []step{ready, activeSick, dockerWell}, balancer.Down},
		{"two sources unhealthy, one recovers", []step{ready, dockerSick, passiveSick, dockerWell}, balancer.Down},
		{"two sources unhealthy, both recover", []step{ready, dockerSick, passiveSick, dockerWell, passiveWell}, balancer.Ready},
		{"unhealthy while starting stays starting", []step{activeSick}, balancer.Starting},
		{"unhealthy while starting, then ready, is down", []step{activeSick, ready}, balancer.Down},
		{"drain", []step{ready, drain}, balancer.Draining},
		{"drain while starting", []step{drain}, balancer.Draining},
		{"draining stays draining when marked ready", []step{ready, drain, ready}, balancer.Draining},
		{"draining stays draining when unhealthy", []step{ready, drain, dockerSick}, balancer.Draining},
		{"stop", []step{ready, stop}, balancer.Down},
		{"stopped is not made ready", []step{ready, stop, ready}, balancer.Down},
		{"stop, restart", []step{ready, stop, restart}, balancer.Starting},
		{"stop, restart, ready", []step{ready, stop, restart, ready}, balancer.Ready},
		{"drain, restart, ready", []step{ready, drain, restart, ready}, balancer.Ready},
		{"new address keeps the state", []step{ready, moved}, balancer.Ready},
		{"remove", []step{ready, remove}, balancer.Down},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := balancer.NewPool("web")
			u := p.Put(balancer.Member{ID: id, Name: "a", Address: "a:80"})
			for i, s := range tt.steps {
				if !s(p) {
					t.Fatalf("step %d: got false, want true (the upstream exists)", i)
				}
			}
			if got := u.State(); got != tt.want {
				t.Errorf("State: got %v, want %v", got, tt.want)
			}
			wantReady := 0
			if tt.want == balancer.Ready {
				wantReady = 1
			}
			if got := p.ReadyCount(); got != wantReady {
				t.Errorf("ReadyCount: got %d, want %d (state %v)", got, wantReady, tt.want)
			}
			if got := p.Pick(0, nil); (got != nil) != (wantReady == 1) {
				t.Errorf("Pick: got %v, want an upstream only when it is ready (state %v)", got, tt.want)
			}
		})
	}
}

func TestPoolHealthIsKeptPerCheck(t *testing.T) {
	p := pool(t, "a")
	p.SetHealth("id-a", balancer.CheckDocker, false)
	p.SetHealth("id-a", balancer.CheckActive, true)
	tests := []struct {
		name  string
		check balancer.Check
		want  bool
	}{
		{"docker", balancer.CheckDocker, false},
		{"active", balancer.CheckActive, true},
		{"passive, never set", balancer.CheckPassive, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Healthy("id-a", tt.check); got != tt.want {
				t.Errorf("Healthy(id-a, %v): got %v, want %v", tt.check, got, tt.want)
			}
		})
	}
	if p.Healthy("id-unknown", balancer.CheckDocker) {
		t.Errorf("Healthy(id-unknown): got true, want false")
	}
}

func TestPoolChangesToAnUnknownID(t *testing.T) {
	p := pool(t, "a")
	tests := []struct {
		name string
		call func() bool
	}{
		{"MarkReady", func() bool { return p.MarkReady("nope") }},
		{"Drain", func() bool { return p.Drain("nope") }},
		{"Stop", func() bool { return p.Stop("nope") }},
		{"Restart", func() bool { return p.Restart("nope") }},
		{"SetHealth", func() bool { return p.SetHealth("nope", balancer.CheckDocker, false) }},
		{"Remove", func() bool { return p.Remove("nope") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.call() {
				t.Errorf("%s(nope): got true, want false", tt.name)
			}
		})
	}
	if got := names(p.Upstreams()); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Upstreams: got %q, want [a] untouched", got)
	}
}

func TestPoolPutKeepsCountersOfAMovedReplica(t *testing.T) {
	p := pool(t, "a")
	u := p.Get("id-a")
	u.Claim()
	u.Begin()
	u.End(true)
	u.Claim()
	u.Begin() // still in flight

	got := p.Put(balancer.Member{ID: "id-a", Name: "renamed", Address: "10.0.0.9:8080", Weight: 3})
	if got != u {
		t.Fatalf("Put with a new address: got a new upstream, want the same one")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Address", u.Address(), "10.0.0.9:8080"},
		{"Weight", u.Weight(), 3},
		{"Name", u.Name(), "a"},
		{"State", u.State(), balancer.Ready},
		{"Requests", u.Requests(), int64(2)},
		{"Failures", u.Failures(), int64(1)},
		{"InFlight", u.InFlight(), int64(1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("after Put with a new address, %s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestPoolRemoveThenPutStartsAfresh(t *testing.T) {
	p := pool(t, "a")
	old := p.Get("id-a")
	old.Claim()
	old.Begin()
	old.End(true)
	p.Remove("id-a")
	if got := p.Get("id-a"); got != nil {
		t.Fatalf("Get after Remove: got %v, want nil", got.Name())
	}
	if got := old.State(); got != balancer.Down {
		t.Errorf("State of a removed upstream: got %v, want down", got)
	}
	u := p.Put(member("a"))
	if u == old || u.Requests() != 0 || u.Failures() != 0 || u.State() != balancer.Starting {
		t.Errorf("Put after Remove: got the old upstream or its counters (requests %d, failures %d, state %v), want a new starting one",
			u.Requests(), u.Failures(), u.State())
	}
}

func TestPoolWeight(t *testing.T) {
	tests := []struct {
		name  string
		input int
		want  int
	}{
		{"unset", 0, 1},
		{"negative", -5, 1},
		{"one", 1, 1},
		{"ten", 10, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := balancer.NewPool("web")
			u := p.Put(balancer.Member{ID: "id-a", Name: "a", Address: "a:80", Weight: tt.input})
			if got := u.Weight(); got != tt.want {
				t.Errorf("Weight after Put with weight %d: got %d, want %d", tt.input, got, tt.want)
			}
		})
	}
}

func TestPoolUpstreamsAreSorted(t *testing.T) {
	p := balancer.NewPool("web")
	for _, m := range []balancer.Member{
		{ID: "3", Name: "web-2", Address: "c:80"},
		{ID: "2", Name: "web-1", Address: "b:80"},
		{ID: "1", Name: "web-2", Address: "a:80"},
	} {
		p.Put(m)
	}
	var got []string
	for _, u := range p.Upstreams() {
		got = append(got, u.Name()+"/"+u.ID())
	}
	want := []string{"web-1/2", "web-2/1", "web-2/3"}
	if !slices.Equal(got, want) {
		t.Errorf("Upstreams: got %q, want %q (by name, then ID)", got, want)
	}
	if got := p.Len(); got != 3 {
		t.Errorf("Len: got %d, want 3", got)
	}
	if got := p.ReadyCount(); got != 0 {
		t.Errorf("ReadyCount: got %d, want 0 (all starting)", got)
	}
}

func TestPoolPick(t *testing.T) {
	p := pool(t, "a", "b", "c")
	a, b, c := p.Get("id-a"), p.Get("id-b"), p.Get("id-c")
	tests := []struct {
		name  string
		tried []*balancer.Upstream
		want  []string // the names Pick may return; empty: nil
	}{
		{"nothing tried", nil, []string{"a", "b", "c"}},
		{"a tried", []*balancer.Upstream{a}, []string{"b", "c"}},
		{"a and c tried", []*balancer.Upstream{a, c}, []string{"b"}},
		{"all tried", []*balancer.Upstream{c, b, a}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]bool{}
			for range 12 {
				u := p.Pick(0, tt.tried)
				if u == nil {
					seen["<nil>"] = true
					continue
				}
				seen[u.Name()] = true
			}
			want := map[string]bool{}
			for _, n := range tt.want {
				want[n] = true
			}
			if len(tt.want) == 0 {
				want["<nil>"] = true
			}
			if fmt.Sprint(seen) != fmt.Sprint(want) {
				t.Errorf("Pick(tried %q) 12 times: got %v, want exactly %v", names(tt.tried), seen, want)
			}
		})
	}
}

// A replica that turns ready gets the next pick, once, wherever the round
// robin stands; then the policy's turns go on. Each time it turns ready
// anew, again. A policy that picks by key is left alone.
func TestPoolPickGivesANewReplicaTheNextRequest(t *testing.T) {
	p := pool(t, "a", "b", "c", "d", "e")
	for range 7 { // the new replicas' first picks, then a cycle and some
		p.Pick(0, nil)
	}
	p.Put(member("f"))
	p.MarkReady("id-f")
	if got := p.Pick(0, nil); got == nil || got.Name() != "f" {
		t.Fatalf("first pick after f turned ready: got %v, want f", got)
	}
	count := map[string]int{}
	for range 60 {
		count[p.Pick(0, nil).Name()]++
	}
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		if count[n] != 10 {
			t.Errorf("60 picks after f's first: %v, want 10 each", count)
			break
		}
	}

	// f tried already (a retry): the next replica to claim waits for a
	// pick that may take it.
	p.SetHealth("id-f", balancer.CheckActive, false)
	p.SetHealth("id-f", balancer.CheckActive, true)
	f := p.Get("id-f")
	if got := p.Pick(0, []*balancer.Upstream{f}); got == nil || got == f {
		t.Fatalf("pick with f tried: got %v, want another replica", got)
	}
	if got := p.Pick(0, nil); got != f {
		t.Fatalf("pick after f turned ready again: got %v, want f", got)
	}

	// With hash, the first pick after z turned ready is the key's own.
	moved := 0
	for key := range uint64(20) {
		h := pool(t, "a", "b", "c")
		h.SetPolicy("hash")
		h.Put(member("z"))
		h.MarkReady("id-z")
		first, again := h.Pick(key, nil), h.Pick(key, nil)
		if first != again {
			t.Fatalf("hash policy, key %d: the first pick after z turned ready went to %s, the next to %s: want the key's own replica both times", key, first.Name(), again.Name())
		}
		if first.Name() != "z" {
			moved++
		}
	}
	if moved == 0 {
		t.Fatalf("hash policy: all 20 keys belong to z; the check above proved nothing")
	}
}

func TestPoolPickWithNothingReady(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *balancer.Pool)
	}{
		{"empty", func(p *balancer.Pool) {}},
		{"starting", func(p *balancer.Pool) { p.Put(member("a")) }},
		{"draining", func(p *balancer.Pool) { p.Put(member("a")); p.MarkReady("id-a"); p.Drain("id-a") }},
		{"removed", func(p *balancer.Pool) { p.Put(member("a")); p.MarkReady("id-a"); p.Remove("id-a") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := balancer.NewPool("web")
			tt.setup(p)
			if got := p.Pick(0, nil); got != nil {
				t.Errorf("Pick: got %s, want nil", got.Name())
			}
		})
	}
}

func TestPoolWaitReady(t *testing.T) {
	t.Run("already ready", func(t *testing.T) {
		p := pool(t, "a")
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if !p.WaitReady(ctx) {
			t.Errorf("WaitReady: got false, want true at once")
		}
	})

	t.Run("becomes ready", func(t *testing.T) {
		p := balancer.NewPool("web")
		p.Put(member("a"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan bool)
		go func() { done <- p.WaitReady(ctx) }()
		// Changes that leave nothing ready must not end the wait.
		p.Put(member("b"))
		p.SetHealth("id-b", balancer.CheckDocker, false)
		select {
		case got := <-done:
			t.Fatalf("WaitReady: got %v while nothing was ready, want it to wait", got)
		default:
		}
		p.MarkReady("id-a")
		if got := <-done; !got {
			t.Errorf("WaitReady: got false, want true once a is ready")
		}
	})

	t.Run("deadline", func(t *testing.T) {
		p := balancer.NewPool("web")
		p.Put(member("a"))
		const wait = 50 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		start := time.Now()
		got := p.WaitReady(ctx)
		if took := time.Since(start); got || took < wait {
			t.Errorf("WaitReady with a %v deadline and nothing ready: got %v after %v, want false after the deadline", wait, got, took)
		}
	})
}

func TestPoolChanged(t *testing.T) {
	p := balancer.NewPool("web")
	ch := p.Changed()
	select {
	case <-ch:
		t.Fatal("Changed: closed before any change")
	default:
	}
	p.Put(member("a"))
	select {
	case <-ch:
	default:
		t.Fatal("Changed: still open after Put")
	}
	ch = p.Changed()
	p.MarkReady("id-a")
	select {
	case <-ch:
	default:
		t.Fatal("Changed: still open after MarkReady")
	}
}

func TestPoolPolicy(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		wantOK bool
		want   string
	}{
		{"empty is round robin", "", true, "round_robin"},
		{"round robin", "round_robin", true, "round_robin"},
		{"least_conn", "least_conn", true, "least_conn"},
		{"random", "random", true, "random"},
		{"hash", "hash", true, "hash"},
		{"unknown keeps the old one", "fastest", false, "round_robin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := balancer.NewPool("web")
			if got := p.SetPolicy(tt.input); got != tt.wantOK {
				t.Errorf("SetPolicy(%q): got %v, want %v", tt.input, got, tt.wantOK)
			}
			if got := p.Policy(); got != tt.want {
				t.Errorf("Policy after SetPolicy(%q): got %q, want %q", tt.input, got, tt.want)
			}
		})
	}
}

func TestPools(t *testing.T) {
	var ps balancer.Pools // the zero value is ready to use
	if got := ps.Get("web"); got != nil {
		t.Errorf("Get(web) on an empty set: got %v, want nil", got.Name())
	}
	web := ps.GetOrCreate("web")
	if got := ps.GetOrCreate("web"); got != web {
		t.Errorf("GetOrCreate(web) twice: got two pools, want one")
	}
	ps.GetOrCreate("api")
	ps.GetOrCreate("zeta")
	var got []string
	for _, p := range ps.All() {
		got = append(got, p.Name())
	}
	if want := []string{"api", "web", "zeta"}; !slices.Equal(got, want) {
		t.Errorf("All: got %q, want %q", got, want)
	}
	if ps.Get("web") != web {
		t.Errorf("Get(web): got another pool than GetOrCreate made")
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		input balancer.State
		want  string
	}{
		{balancer.Starting, "starting"},
		{balancer.Ready, "ready"},
		{balancer.Draining, "draining"},
		{balancer.Down, "down"},
		{balancer.State(-1), "unknown"},
		{balancer.State(99), "unknown"},
	}
	for _, tt := range tests {
		if got := tt.input.String(); got != tt.want {
			t.Errorf("State(%d).String(): got %q, want %q", int(tt.input), got, tt.want)
		}
	}
}

func TestUpstreamCounters(t *testing.T) {
	u := pool(t, "a").Get("id-a")
	for range 3 {
		u.Claim()
		u.Begin()
	}
	u.End(false)
	u.End(true)
	if u.InFlight() != 1 || u.Requests() != 3 || u.Failures() != 1 {
		t.Errorf("after 3 Claim and Begin, 2 End (1 failed): got in flight %d, requests %d, failures %d; want 1, 3, 1",
			u.InFlight(), u.Requests(), u.Failures())
	}
}

// TestPoolConcurrentPickAndChange is for -race: requests pick while the
// watcher adds, readies and removes replicas. Every pick is nil or an
// upstream that was put in the pool.
func TestPoolConcurrentPickAndChange(t *testing.T) {
	p := pool(t, "stable")
	const pickers, writers, picks, changes = 4, 2, 2000, 200
	known := map[*balancer.Upstream]bool{p.Get("id-stable"): true}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range changes {
				id := fmt.Sprintf("w%d-%d", w, i%5)
				u := p.Put(balancer.Member{ID: id, Name: id, Address: fmt.Sprintf("10.0.%d.%d:80", w, i)})
				mu.Lock()
				known[u] = true
				mu.Unlock()
				p.MarkReady(id)
				if i%3 == 0 {
					p.Remove(id)
				}
			}
		})
	}
	bad := make(chan string, pickers)
	for range pickers {
		wg.Go(func() {
			var tried []*balancer.Upstream
			for i := range picks {
				u := p.Pick(uint64(i), tried)
				if u == nil {
					continue
				}
				_ = u.Address()
				mu.Lock()
				ok := known[u]
				mu.Unlock()
				if !ok {
					bad <- u.ID()
					return
				}
				if i%50 == 0 {
					tried = append(tried[:0], u)
				}
			}
		})
	}
	wg.Wait()
	close(bad)
	for id := range bad {
		t.Errorf("Pick: got upstream %q that was never put in the pool", id)
	}
	if u := p.Pick(0, nil); u == nil {
		t.Errorf("Pick after the changes: got nil, want at least the stable replica")
	}
}

// BenchmarkPick is the cost of picking for a request, with each policy,
// from pools of 3, 100 and 10,000 upstreams of equal weights and of mixed
// ones (every third of weight 3); it must not allocate. The key changes
// every pick, as client addresses do.
func BenchmarkPick(b *testing.B) {
	for _, policy := range balancer.PolicyNames {
		for _, n := range []int{3, 100, 10000} {
			for _, weighted := range []bool{false, true} {
				name := fmt.Sprintf("%s/%d", policy, n)
				if weighted {
					name += "/weighted"
				}
				b.Run(name, func(b *testing.B) {
					p := readyPool(b, n, weighted)
					if !p.SetPolicy(policy) {
						b.Fatalf("SetPolicy(%q): got false", policy)
					}
					b.ReportAllocs()
					for i := uint64(0); b.Loop(); i++ {
						if p.Pick(i*0x9e3779b97f4a7c15, nil) == nil {
							b.Fatal("Pick: got nil, want an upstream")
						}
					}
				})
			}
		}
	}
}

// readyPool returns a pool of n ready upstreams, built in one change; when
// weighted, every third has weight 3.
func readyPool(b *testing.B, n int, weighted bool) *balancer.Pool {
	b.Helper()
	ms := make([]balancer.Member, n)
	for i := range ms {
		id := fmt.Sprintf("web-%05d", i)
		ms[i] = balancer.Member{ID: id, Name: id, Address: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250), Weight: 1}
		if weighted && i%3 == 0 {
			ms[i].Weight = 3
		}
	}
	p := balancer.NewReadyPool("web", ms)
	if got := p.ReadyCount(); got != n {
		b.Fatalf("ReadyCount: got %d, want %d", got, n)
	}
	return p
}

func TestPoolPickDoesNotAllocate(t *testing.T) {
	p := pool(t, "a", "b", "c")
	if got := testing.AllocsPerRun(100, func() { p.Pick(0, nil) }); got != 0 {
		t.Errorf("Pick: got %v allocations per call, want 0", got)
	}
}

// BenchmarkRequestSlot is a request's whole cost in the balancer: Pick (which
// claims a slot), Begin and End, on 3 replicas, without a limit and with
// one that is never reached (the claim's compare-and-swap).
func BenchmarkRequestSlot(b *testing.B) {
	for _, limit := range []int{0, 1 << 20} {
		for _, policy := range []string{"round_robin", "least_conn"} {
			b.Run(fmt.Sprintf("%s/limit=%d", policy, limit), func(b *testing.B) {
				p := balancer.NewPool("web")
				for _, n := range []string{"a", "b", "c"} {
					m := member(n)
					m.Limit = balancer.Limit{Max: limit}
					p.Put(m)
					p.MarkReady(m.ID)
				}
				p.SetPolicy(policy)
				b.ReportAllocs()
				for b.Loop() {
					u := p.Pick(0, nil)
					u.Begin()
					u.End(false)
				}
			})
		}
	}
}
