package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// blackholeAddr returns a 127.0.0.1 address where a connection attempt
// hangs: a listener with a backlog of 0 that never accepts, its queue filled.
// Linux drops the SYNs of a listener whose accept queue is full, so the
// dialer waits until its timeout, as it would for a container that is gone.
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 4 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return addr // the queue is full: the next attempt hangs too
		}
		if err != nil {
			t.Fatalf("filling the accept queue of %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skipf("could not make %s drop connection attempts", addr)
	return ""
}

// A replica removed while a request is still connecting to it: Release
// cancels the dial, and the request fails over at once instead of waiting
// for the dial timeout.
func TestProxyReleaseCancelsADial(t *testing.T) {
	r, p := poolRoute("web")
	gone := ready(t, p, "a-gone", blackholeAddr(t)) // picked first: names sort
	live := newBackend(t, "b-live", nil)
	ready(t, p, "b-live", live.addr())
	const dialTimeout = 10 * time.Second
	f := newFront(t, Options{Retries: 1, DialTimeout: dialTimeout}, []Route{r}, nil)

	type result struct {
		resp response
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		resp, err := f.try(http.MethodGet, "", "/", nil)
		done <- result{resp, err, time.Since(start)}
	}()
	waitFor(t, "the proxy to connect to a-gone", func() bool {
		_, ok := f.px.transports.Load(gone)
		return ok && gone.InFlight() == 1
	})
	p.Remove(gone.ID())
	f.px.Release(gone, true)

	got := <-done
	if got.err != nil || got.resp.status != http.StatusOK || got.resp.body != "b-live" {
		t.Fatalf("GET / while a-gone was removed: got %d %q, %v; want 200 \"b-live\"", got.resp.status, got.resp.body, got.err)
	}
	if got.took > dialTimeout/2 {
		t.Errorf("GET / while a-gone was removed: answered after %v, want well before the %v dial timeout", got.took, dialTimeout)
	}
	if _, ok := f.px.transports.Load(gone); ok {
		t.Errorf("after Release(a-gone, true): got its transport still kept, want it dropped")
	}
	waitIdle(t, gone)
}
