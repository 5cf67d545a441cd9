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

func TestObservers(t *testing.T) {
	if o := Observers(); o != nil {
		t.Errorf("Observers() = %v, want nil so that the proxy does no work", o)
	}
	one := &counting{}
	if o := Observers(one); o != Observer(one) {
		t.Errorf("Observers(one) = %v, want it unwrapped", o)
	}
	if o := Observers(nil, one, nil); o != Observer(one) {
		t.Errorf("Observers(nil, one, nil) = %v, want one unwrapped", o)
	}
	a, b := &counting{}, &counting{}
	o := Observers(a, b)
	r, e := httptest.NewRequest("GET", "http://shop.example/", nil), &Exchange{}
	o.Observe(r, e)
	o.Ejected(e.Route, e.Upstream)
	if a.requests != 1 || b.requests != 1 || a.ejections != 1 || b.ejections != 1 {
		t.Errorf("requests seen %d and %d, ejections %d and %d; want 1 each", a.requests, b.requests, a.ejections, b.ejections)
	}
}
