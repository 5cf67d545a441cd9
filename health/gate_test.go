package health

import (
	"context"
	"errors"
	"github.com/dlb-lb/dlb/internal/nettest"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingDial dials for real and counts the attempts.
func countingDial(n *atomic.Int32) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
}

func TestGateReadyOnceAListenerAppears(t *testing.T) {
	addr, release := nettest.ReservePort(t)
	var dials atomic.Int32
	g := &Gate{MinInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond, Dial: countingDial(&dials)}
	var calls atomic.Int32
	readyCh := make(chan struct{}, 2)
	g.Start("web-1", addr, func() { calls.Add(1); readyCh <- struct{}{} })
	defer g.Stop("web-1")

	// The process has started but does not listen yet: probes fail.
	nettest.WaitFor(t, "two refused probes", func() bool { return dials.Load() >= 2 })
	select {
	case <-readyCh:
		t.Fatal("ready: called while nothing listened")
	default:
	}
	if got := g.Probing(); got != 1 {
		t.Errorf("Probing while the replica does not listen: got %d, want 1", got)
	}

	release()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("listening on %s again: %v", addr, err)
	}
	defer ln.Close()
	select {
	case <-readyCh:
	case <-time.After(5 * time.Second):
		t.Fatalf("ready: not called 5s after %s started listening (%d probes)", addr, dials.Load())
	}
	nettest.WaitFor(t, "the probe to end", func() bool { return g.Probing() == 0 })
	if got := calls.Load(); got != 1 {
		t.Errorf("ready: called %d times, want once", got)
	}
}

func TestGateReadyAtOnceWhenListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var g Gate // the zero value works
	readyCh := make(chan struct{})
	g.Start("web-1", ln.Addr().String(), func() { close(readyCh) })
	select {
	case <-readyCh:
	case <-time.After(5 * time.Second):
		t.Fatal("ready: not called within 5s for a listening address")
	}
}

// blockingDial is a Gate.Dial whose attempts to addresses in hold wait
// until release is closed, then succeed; others succeed at once. entered
// receives the address of each attempt.
type blockingDial struct {
	hold    map[string]bool
	release chan struct{}
	entered chan string
	closed  chan string // receives the address of each connection closed
}

func newBlockingDial(hold ...string) *blockingDial {
	d := &blockingDial{hold: map[string]bool{}, release: make(chan struct{}), entered: make(chan string, 16), closed: make(chan string, 16)}
	for _, a := range hold {
		d.hold[a] = true
	}
	return d
}

func (d *blockingDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.entered <- addr
	if d.hold[addr] {
		<-d.release // even if ctx ends: the connection was made just then
	}
	a, b := net.Pipe()
	b.Close()
	return closeNotifier{a, addr, d.closed}, nil
}

type closeNotifier struct {
	net.Conn
	addr   string
	closed chan string
}

func (c closeNotifier) Close() error {
	c.closed <- c.addr
	return c.Conn.Close()
}

// Stop wins even against a probe that connects just as it is stopped.
func TestGateStopPreventsTheCallback(t *testing.T) {
	d := newBlockingDial("web-1:80")
	g := &Gate{Dial: d.dial}
	called := make(chan struct{}, 1)
	g.Start("web-1", "web-1:80", func() { called <- struct{}{} })
	<-d.entered

	g.Stop("web-1")
	if got := g.Probing(); got != 0 {
		t.Errorf("Probing after Stop: got %d, want 0", got)
	}
	close(d.release) // the probe's connection succeeds after Stop
	<-d.closed
	// A callback would follow the close at once; give it ample time.
	select {
	case <-called:
		t.Error("ready: called after Stop, want never")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestGateStopUnknownIsHarmless(t *testing.T) {
	var g Gate
	g.Stop("nothing")
	if got := g.Probing(); got != 0 {
		t.Errorf("Probing: got %d, want 0", got)
	}
}

// Starting a probe for an ID that has one replaces it: only the new probe's
// callback runs (the replica's address changed while it started).
func TestGateStartReplacesAProbe(t *testing.T) {
	d := newBlockingDial("old:80", "new:80")
	g := &Gate{Dial: d.dial}
	var mu sync.Mutex
	var got []string
	readyCh := make(chan struct{}, 2)
	record := func(which string) func() {
		return func() {
			mu.Lock()
			got = append(got, which)
			mu.Unlock()
			readyCh <- struct{}{}
		}
	}
	g.Start("web-1", "old:80", record("old"))
	if a := <-d.entered; a != "old:80" {
		t.Fatalf("first probe: got a dial to %s, want old:80", a)
	}
	g.Start("web-1", "new:80", record("new"))
	if a := <-d.entered; a != "new:80" {
		t.Fatalf("second probe: got a dial to %s, want new:80", a)
	}
	if n := g.Probing(); n != 1 {
		t.Errorf("Probing with a replaced probe: got %d, want 1", n)
	}
	close(d.release) // both connect

	select {
	case <-readyCh:
	case <-time.After(5 * time.Second):
		t.Fatal("ready: not called within 5s")
	}
	for range 2 {
		<-d.closed
	}
	select {
	case <-readyCh:
	case <-time.After(100 * time.Millisecond):
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "new" {
		t.Errorf("ready callbacks: got %q, want only [new]", got)
	}
	if n := g.Probing(); n != 0 {
		t.Errorf("Probing after ready: got %d, want 0", n)
	}
}

// A probe keeps trying after failures, backing off: with a dial that fails
// three times, ready comes on the fourth attempt.
func TestGateRetriesFailedProbes(t *testing.T) {
	var attempts atomic.Int32
	g := &Gate{MinInterval: time.Millisecond, MaxInterval: 4 * time.Millisecond,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if attempts.Add(1) <= 3 {
				return nil, errors.New("connection refused")
			}
			a, b := net.Pipe()
			b.Close()
			return a, nil
		}}
	readyCh := make(chan struct{})
	g.Start("web-1", "web-1:80", func() { close(readyCh) })
	select {
	case <-readyCh:
	case <-time.After(5 * time.Second):
		t.Fatalf("ready: not called within 5s (%d attempts)", attempts.Load())
	}
	if got := attempts.Load(); got != 4 {
		t.Errorf("attempts: got %d, want 4", got)
	}
}
