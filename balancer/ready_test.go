package balancer

import (
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func begins(u *Upstream, n int) (firsts int) {
	for range n {
		if u.Begin() {
			firsts++
		}
		u.End(false)
	}
	return firsts
}

// ReadySince is stamped by the pool's clock when an upstream turns Ready, is
// zero while it is not, and Begin reports the first request of each Ready
// spell, once.
func TestReadySinceAndFirstRequest(t *testing.T) {
	clock := newFakeClock()
	p := NewPool("web", WithClock(clock.now))
	u := p.Put(Member{ID: "a", Name: "web-1", Address: "10.0.0.1:80"})

	if got := u.ReadySince(); !got.IsZero() {
		t.Errorf("starting upstream: ReadySince = %v, want the zero time", got)
	}
	if got := begins(u, 1); got != 0 {
		t.Errorf("starting upstream: %d first requests, want 0", got)
	}

	clock.advance(time.Second)
	readyAt := clock.t
	p.MarkReady("a")
	clock.advance(time.Second)
	if got := u.ReadySince(); !got.Equal(readyAt) {
		t.Errorf("after MarkReady: ReadySince = %v, want %v", got, readyAt)
	}
	if got := begins(u, 5); got != 1 {
		t.Errorf("5 requests after turning ready: %d reported first, want 1", got)
	}

	// An update that changes nothing keeps the stamp and the first request.
	p.Put(Member{ID: "a", Name: "web-1", Address: "10.0.0.1:80"})
	if got := u.ReadySince(); !got.Equal(readyAt) {
		t.Errorf("after a no-op Put: ReadySince = %v, want %v", got, readyAt)
	}

	p.SetHealth("a", CheckActive, false)
	if got := u.ReadySince(); !got.IsZero() {
		t.Errorf("down: ReadySince = %v, want the zero time", got)
	}
	clock.advance(time.Minute)
	backAt := clock.t
	p.SetHealth("a", CheckActive, true)
	if got := u.ReadySince(); !got.Equal(backAt) {
		t.Errorf("ready again: ReadySince = %v, want %v", got, backAt)
	}
	if got := begins(u, 3); got != 1 {
		t.Errorf("3 requests after turning ready again: %d reported first, want 1", got)
	}

	if u.Removed() {
		t.Errorf("Removed() = true before Remove")
	}
	p.Remove("a")
	if !u.Removed() {
		t.Errorf("Removed() = false after Remove")
	}
	if got := u.ReadySince(); !got.IsZero() {
		t.Errorf("removed: ReadySince = %v, want the zero time", got)
	}
	if again := p.Put(Member{ID: "a", Name: "web-1", Address: "10.0.0.1:80"}); again == u || again.Removed() {
		t.Errorf("put back after Remove: got the old upstream or a removed one")
	}
}

// Concurrent requests on a fresh upstream: exactly one is its first.
func TestFirstRequestOnceUnderConcurrency(t *testing.T) {
	p := NewPool("web")
	u := p.Put(Member{ID: "a", Name: "web-1", Address: "10.0.0.1:80"})
	p.MarkReady("a")
	const workers, each = 8, 200
	firsts := make(chan int, workers)
	for range workers {
		go func() { firsts <- begins(u, each) }()
	}
	total := 0
	for range workers {
		total += <-firsts
	}
	if total != 1 {
		t.Errorf("%d concurrent requests: %d reported first, want 1", workers*each, total)
	}
	if got := u.Requests(); got != workers*each {
		t.Errorf("Requests() = %d, want %d", got, workers*each)
	}
}
