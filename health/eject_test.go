package health

import (
	"errors"
	"fmt"
	"net"
	"os"
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
			ok, w := e.Eject(pool, a)
			if !ok || w != s.wantWindow {
				t.Fatalf("%s: Eject = %v, %s; want true, %s", s.name, ok, w, s.wantWindow)
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
	if ok, _ := e.Eject(pool, ups[0]); !ok {
		t.Fatal("first Eject = false, want true")
	}
	if ok, _ := e.Eject(pool, ups[0]); ok {
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
	e.Eject(pool, ups[0])
	pool.Remove("a")
	clock.Advance(time.Second)
	if probed != 0 {
		t.Errorf("probed a removed upstream %d times, want 0", probed)
	}
	if ok, _ := e.Eject(pool, ups[0]); ok {
		t.Error("Eject of a removed upstream = true, want false")
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
