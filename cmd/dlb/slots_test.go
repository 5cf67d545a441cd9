package main

import (
	"flag"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The real-engine tests that wait on the engine run -parallel at a time
// (make test: 4), as go test would run them, but in an order of their
// own: go test starts paused parallel tests in no set order, and when the
// longest (the Swarm tests, two minutes each) drew the last turns, the
// package ran a minute longer than the work in it. Here the tests marked
// long go first, so that the short ones fill in around them.
//
// TestMain takes -parallel for the slots and lifts go test's own limit,
// which would otherwise hold tests back in its order; every parallel test
// of the package calls parallel or parallelLong instead of t.Parallel.

var slots = func() *slotQueue {
	q := &slotQueue{}
	q.cond.L = &q.mu
	return q
}()

// slotQueue hands out the slots: to the long tests first, then in the
// order the tests asked.
type slotQueue struct {
	mu      sync.Mutex
	cond    sync.Cond
	free    int
	seq     int
	waiting []slotTicket // asked, not yet given one
}

type slotTicket struct {
	long bool
	seq  int
}

// takeParallelFlag sets the slots to -parallel and lifts go test's own
// limit. It runs in TestMain, after the flags are parsed.
func takeParallelFlag() {
	f := flag.Lookup("test.parallel")
	if f == nil {
		slots.free = 1
		return
	}
	n, err := strconv.Atoi(f.Value.String())
	if err != nil || n < 1 {
		n = 1
	}
	slots.free = n
	f.Value.Set("1000")
}

// parallel is t.Parallel, then a slot: the test runs beside the package's
// other parallel tests, -parallel of them at once.
func parallel(t *testing.T) { slots.run(t, false) }

// parallelLong is parallel for a test that takes most of a minute or
// more: it gets a slot before the others.
func parallelLong(t *testing.T) { slots.run(t, true) }

func (q *slotQueue) run(t *testing.T, long bool) {
	t.Helper()
	// Queued before t.Parallel, which holds the test until the package's
	// sequential tests are over: by then every test that will ask is in
	// the queue (but subtests made later), so the first slots go to the
	// long ones, whatever order go test lets them go in.
	q.mu.Lock()
	q.seq++
	ticket := slotTicket{long: long, seq: q.seq}
	q.waiting = append(q.waiting, ticket)
	q.mu.Unlock()
	t.Parallel()
	asked := time.Now()
	q.mu.Lock()
	for q.free == 0 || q.next() != ticket {
		q.cond.Wait()
	}
	q.free--
	for i, w := range q.waiting {
		if w == ticket {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			break
		}
	}
	q.mu.Unlock()
	q.cond.Broadcast() // the next in line may have a slot too
	// go test -json times each line: with these two, a run shows what each
	// test costs in its slot, for the order above and for trimming.
	got := time.Now()
	t.Logf("slot taken after %s in the queue", got.Sub(asked).Round(time.Millisecond))
	t.Cleanup(func() {
		t.Logf("slot held for %s", time.Since(got).Round(time.Millisecond))
		q.mu.Lock()
		q.free++
		q.mu.Unlock()
		q.cond.Broadcast()
	})
}

// next is the ticket the next free slot goes to.
func (q *slotQueue) next() slotTicket {
	best := q.waiting[0]
	for _, w := range q.waiting[1:] {
		if w.long && !best.long || w.long == best.long && w.seq < best.seq {
			best = w
		}
	}
	return best
}
