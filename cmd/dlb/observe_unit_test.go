package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/proxy"
)

// counting is an Observer that counts what it is told.
type counting struct{ requests, ejections int }

func (c *counting) Observe(*http.Request, *proxy.Exchange)   { c.requests++ }
func (c *counting) Ejected(*proxy.Route, *balancer.Upstream) { c.ejections++ }

type requestsOnly struct{ requests int }

func (c *requestsOnly) Observe(*http.Request, *proxy.Exchange) { c.requests++ }

func TestObserverOf(t *testing.T) {
	if o := observerOf(); o != nil {
		t.Errorf("observerOf() = %v, want nil so that the proxy does no work", o)
	}
	one := &counting{}
	if o := observerOf(one); o != proxy.Observer(one) {
		t.Errorf("observerOf(one) = %v, want it unwrapped", o)
	}
	a, b := &counting{}, &requestsOnly{}
	o := observerOf(a, b)
	r, e := httptest.NewRequest("GET", "http://shop.example/", nil), &proxy.Exchange{}
	o.Observe(r, e)
	o.(proxy.EjectionObserver).Ejected(e.Route, e.Upstream)
	if a.requests != 1 || b.requests != 1 || a.ejections != 1 {
		t.Errorf("requests seen %d and %d, ejections %d; want 1, 1, 1", a.requests, b.requests, a.ejections)
	}
}
