package fleet

import (
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
)

// tally is an Observer that counts what it is told.
type tally struct{ ready, left, sites, events int }

func (t *tally) ReplicaReady(string, time.Duration) { t.ready++ }
func (t *tally) ReplicaLeft(*balancer.Upstream)     { t.left++ }
func (t *tally) SitesChanged([]certs.Site)          { t.sites++ }
func (t *tally) SourceEvent(string, string)         { t.events++ }

func TestObservers(t *testing.T) {
	if o := Observers(nil, nil); o != nil {
		t.Errorf("Observers(nil, nil) = %v, want nil", o)
	}
	one := &tally{}
	if o := Observers(nil, one); o != Observer(one) {
		t.Errorf("Observers(nil, one) = %v, want one unwrapped", o)
	}
	var got [][]certs.Site
	a := &tally{}
	o := Observers(a, SitesTo(func(s []certs.Site) { got = append(got, s) }), SitesTo(nil))
	o.ReplicaReady("web", time.Second)
	o.ReplicaLeft(nil)
	o.SourceEvent("docker", "start")
	o.SitesChanged([]certs.Site{{Hosts: []string{"shop.example"}}})
	if *a != (tally{1, 1, 1, 1}) {
		t.Errorf("the first observer heard %+v, want each call once", *a)
	}
	if len(got) != 1 || len(got[0]) != 1 || got[0][0].Hosts[0] != "shop.example" {
		t.Errorf("SitesTo got %v, want the one site", got)
	}
}
