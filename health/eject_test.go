package health

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// fakeClock is a manual clock: AfterFunc callbacks run when Advance passes
// their time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) *time.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), f})
	return nil
}

// Advance moves the clock and runs the callbacks that fall due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t.f)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

func readyPool(t *testing.T, ids ...string) (*balancer.Pool, []*balancer.Upstream) {
	t.Helper()
	p := balancer.NewPool("svc")
	var ups []*balancer.Upstream
	for i, id := range ids {
		u := p.Put(balancer.Member{ID: id, Name: id, Address: fmt.Sprintf("10.0.0.%d:80", i+1)})
		p.MarkReady(id)
		ups = append(ups, u)
	}
	return p, ups
}

// TestEjectorWindows walks one upstream through ejections: out for 1s,
// probed back; ejected again at once: out for 2s; a failed probe doubles
// the window; after it stays in for the forgiveness time, back to 1s.
func TestEjectorWindows(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	answers := true
	e := &Ejector{Now: clock.Now, AfterFunc: clock.AfterFunc, Probe: func(string) bool { return answers }}
	pool, ups := readyPool(t, "a", "b")
	a := ups[0]

	steps := []struct {
		name       string
		do         func()
		wantState  balancer.State
		wantWindow time.Duration // of an Eject in this step, if any
	}{
		{"first ejection", nil, balancer.Down, time.Second},
		{"still out just before the window ends", func() { clock.Advance(999 * time.Millisecond) }, balancer.Down, 0},
		{"probed back in when the window ends", func() { clock.Advance(time.Millisecond) }, balancer.Ready, 0},
		{"ejected again soon after: twice as long", nil, balancer.Down, 2 * time.Second},
		{"probe fails: stays out", func() { answers = false; clock.Advance(2 * time.Second) }, balancer.Down, 0},
		{"next probe after a doubled window", func() { answers = true; clock.Advance(4 * time.Second) }, balancer.Ready, 0},
		{"forgiven after 30s in", func() { clock.Advance(30 * time.Second) }, balancer.Ready, 0},
		{"so the next ejection is 1s again", nil, balancer.Down, time.Second},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		if s.wantWindow > 0 {
			v := e.Eject(pool, a, refused)
			if !v.Ejected || v.Window != s.wantWindow {
				t.Fatalf("%s: Eject = %+v; want ejected for %s", s.name, v, s.wantWindow)
			}
		}
		if got := a.State(); got != s.wantState {
			t.Fatalf("%s: state = %s, want %s", s.name, got, s.wantState)
		}
	}
	if got := ups[1].State(); got != balancer.Ready {
		t.Errorf("the other upstream = %s, want ready throughout", got)
	}
}

// TestEjectorTwiceIsOnce: a second failure while out does not extend or
// stack the ejection.
func TestEjectorTwiceIsOnce(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	e := &Ejector{Now: clock.Now, AfterFunc: clock.AfterFunc, Probe: func(string) bool { return true }}
	pool, ups := readyPool(t, "a")
	if v := e.Eject(pool, ups[0], refused); !v.Ejected {
		t.Fatal("first Eject: not ejected, want ejected")
	}
	if v := e.Eject(pool, ups[0], refused); v.Ejected {
		t.Error("second Eject while out = true, want false")
	}
	clock.Advance(time.Second)
	if got := ups[0].State(); got != balancer.Ready {
		t.Errorf("after the window: %s, want ready", got)
	}
}

// TestEjectorRemovedUpstream: an upstream that left its pool is not probed
// back in, and ejecting one not in the pool is refused.
func TestEjectorRemovedUpstream(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	probed := 0
	e := &Ejector{Now: clock.Now, AfterFunc: clock.AfterFunc, Probe: func(string) bool { probed++; return true }}
	pool, ups := readyPool(t, "a")
	e.Eject(pool, ups[0], refused)
	pool.Remove("a")
	clock.Advance(time.Second)
	if probed != 0 {
		t.Errorf("probed a removed upstream %d times, want 0", probed)
	}
	if v := e.Eject(pool, ups[0], refused); v.Ejected {
		t.Error("Eject of a removed upstream: ejected, want not")
	}
}

// refused and reset are a connect refused (the replica serves nobody) and
// a reset of a connection it had accepted (maybe the request's doing).
var (
	refused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset   = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
)

// TestEjectorCap: ejections for resets leave at least half of a pool's
// serving replicas in (a query of death cannot empty it); unreachable
// replicas are ejected whatever the cap; at the cap, a replica that fails
// more takes the place of one that failed less.
func TestEjectorCap(t *testing.T) {
	type eject struct {
		who  int   // index in the pool
		err  error // reset or refused
		want string
	}
	tests := []struct {
		name     string
		replicas int
		pct      int
		steps    []eject
		serving  int // ready at the end
	}{
		{"one replica is never ejected for a reset", 1, 0, []eject{{0, reset, "capped"}, {0, reset, "capped"}}, 1},
		{"one replica that refuses is ejected", 1, 0, []eject{{0, refused, "ejected"}}, 0},
		{"two: one may go for a reset", 2, 0, []eject{{0, reset, "ejected"}, {1, reset, "capped"}}, 1},
		{"three: one may go for a reset", 3, 0, []eject{{0, reset, "ejected"}, {1, reset, "capped"}, {2, reset, "capped"}}, 2},
		{"four: two may go", 4, 0, []eject{{0, reset, "ejected"}, {1, reset, "ejected"}, {2, reset, "capped"}}, 2},
		{"an unreachable one counts against the cap", 3, 0, []eject{{0, refused, "ejected"}, {1, reset, "capped"}}, 2},
		{"unreachable ones go past the cap", 3, 0, []eject{{0, reset, "ejected"}, {1, refused, "ejected"}, {2, refused, "ejected"}}, 0},
		{"the one that fails more takes the place", 3, 0, []eject{{0, reset, "ejected"}, {1, reset, "capped"}, {1, reset, "ejected, 0 back"}}, 2},
		{"a tie keeps the ejected one out", 3, 0, []eject{{0, reset, "ejected"}, {1, reset, "capped"}, {0, reset, "out already"}}, 2},
		{"100% lets all go", 2, 100, []eject{{0, reset, "ejected"}, {1, reset, "ejected"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1000, 0)}
			e := &Ejector{Now: clock.Now, AfterFunc: clock.AfterFunc, Probe: func(string) bool { return true }, MaxEjectedPercent: tt.pct}
			var ids []string
			for i := range tt.replicas {
				ids = append(ids, fmt.Sprintf("r%d", i))
			}
			pool, ups := readyPool(t, ids...)
			for i, s := range tt.steps {
				v := e.Eject(pool, ups[s.who], s.err)
				got := "out already"
				switch {
				case v.Ejected && v.Returned != nil:
					got = fmt.Sprintf("ejected, %s back", strings.TrimPrefix(v.Returned.ID(), "r"))
				case v.Ejected:
					got = "ejected"
				case v.Capped:
					got = "capped"
				}
				if got != s.want {
					t.Fatalf("step %d, r%d fails (%v): %s (%+v), want %s", i+1, s.who, s.err, got, v, s.want)
				}
			}
			if got := pool.ReadyCount(); got != tt.serving {
				t.Errorf("ready at the end: %d, want %d", got, tt.serving)
			}
		})
	}
}

// TestEjectorCapReturnedIsNotProbedTwice: a replica let back in early by
// the cap is not let in again by its window's probe, and ejected again
// later it gets a window of its own.
func TestEjectorCapReturnedIsNotProbedTwice(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	var changes []string
	e := &Ejector{Now: clock.Now, AfterFunc: clock.AfterFunc, Probe: func(string) bool { return true },
		OnChange: func(u *balancer.Upstream, out bool) { changes = append(changes, fmt.Sprintf("%s %v", u.ID(), out)) }}
	pool, ups := readyPool(t, "a", "b", "c")
	e.Eject(pool, ups[0], reset)                       // a out
	e.Eject(pool, ups[1], reset)                       // b capped
	if v := e.Eject(pool, ups[1], reset); !v.Ejected { // b fails more: b out, a back
		t.Fatalf("b's second reset: %+v, want ejected", v)
	}
	clock.Advance(time.Second) // both windows end; a's is stale
	want := []string{"a true", "a false", "b true", "b false"}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("changes: %v, want %v", changes, want)
	}
}

func TestEjectable(t *testing.T) {
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", dialRefused, true},
		{"connection reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{"dial timeout", &net.OpError{Op: "dial", Err: timeoutErr{}}, true},
		{"nothing acknowledged (machine gone)", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}, true},
		{"slow response (deadline)", &net.OpError{Op: "read", Err: timeoutErr{}}, false},
		{"client went away", fmt.Errorf("wrap: %w", errors.Join(errors.New("x"), contextCanceled())), false},
		{"some other error", errors.New("malformed HTTP response"), false},
	}
	for _, tt := range tests {
		if got := Ejectable(tt.err); got != tt.want {
			t.Errorf("%s: Ejectable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
