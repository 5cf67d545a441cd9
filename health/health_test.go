package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

func contextCanceled() error { return context.Canceled }

// waitState polls until u is in state want, or fails after a deadline.
func waitState(t *testing.T, u *balancer.Upstream, want balancer.State, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for u.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: state = %s after 5s, want %s", what, u.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCheckerLifecycle: the first passing check admits the upstream; two
// failures in a row take it down, two passes bring it back.
func TestCheckerLifecycle(t *testing.T) {
	var healthy atomic.Bool
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/healthz" {
			t.Errorf("check went to %s, want /healthz", r.URL.Path)
		}
		if !healthy.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	pool := balancer.NewPool("svc")
	u := pool.Put(balancer.Member{ID: "a", Name: "a", Address: strings.TrimPrefix(srv.URL, "http://")})
	c := &Checker{}
	defer c.Unwatch("a")
	c.Watch(pool, u, Check{Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: time.Second, Admit: true})

	time.Sleep(60 * time.Millisecond) // several checks fail while starting
	if got := u.State(); got != balancer.Starting {
		t.Fatalf("while its checks fail a new upstream is %s, want starting", got)
	}
	healthy.Store(true)
	waitState(t, u, balancer.Ready, "after the first passing check")
	healthy.Store(false)
	waitState(t, u, balancer.Down, "after failing checks")
	healthy.Store(true)
	waitState(t, u, balancer.Ready, "after passing checks again")

	c.Unwatch("a")
	n := hits.Load()
	time.Sleep(100 * time.Millisecond)
	if got := hits.Load(); got > n+1 {
		t.Errorf("checks went on after Unwatch: %d more", got-n)
	}
}

// TestCheckerFirstCheckAtOnce: the first check does not wait an interval.
func TestCheckerFirstCheckAtOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	pool := balancer.NewPool("svc")
	u := pool.Put(balancer.Member{ID: "a", Name: "a", Address: strings.TrimPrefix(srv.URL, "http://")})
	c := &Checker{}
	defer c.Unwatch("a")
	start := time.Now()
	c.Watch(pool, u, Check{Path: "/", Interval: time.Hour, Timeout: time.Second, Admit: true})
	waitState(t, u, balancer.Ready, "after the first check")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("first check admitted the upstream after %s; it should run at once", took)
	}
}
