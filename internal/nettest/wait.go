package nettest

import (
	"testing"
	"time"
)

// WaitFor polls cond every millisecond until it holds, failing t after 5s
// with what it waited for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, 5*time.Second, what, cond)
}

// WaitWithin is WaitFor with a deadline of d.
func WaitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}
