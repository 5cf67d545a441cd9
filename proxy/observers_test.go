package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dlb-lb/dlb/balancer"
)

// counting is an Observer that counts what it is told.
type counting struct{ requests, ejections int }

func (c *counting) Observe(*http.Request, *Exchange)   { c.requests++ }
func (c *counting) Ejected(*Route, *balancer.Upstream) { c.ejections++ }

type requestsOnly struct{ requests int }

func (c *requestsOnly) Observe(*http.Request, *Exchange) { c.requests++ }

func TestObservers(t *testing.T) {
	if o := Observers(); o != nil {
		t.Errorf("Observers() = %v, want nil so that the proxy does no work", o)
	}
	one := &counting{}
	if o := Observers(one); o != Observer(one) {
		t.Errorf("Observers(one) = %v, want it unwrapped", o)
	}
	a, b := &counting{}, &requestsOnly{}
	o := Observers(a, b)
	r, e := httptest.NewRequest("GET", "http://shop.example/", nil), &Exchange{}
	o.Observe(r, e)
	o.(EjectionObserver).Ejected(e.Route, e.Upstream)
	if a.requests != 1 || b.requests != 1 || a.ejections != 1 {
		t.Errorf("requests seen %d and %d, ejections %d; want 1, 1, 1", a.requests, b.requests, a.ejections)
	}
}
