package fleet

import (
	"slices"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
)

// Observers is one Observer that tells all of os, in turn: nil with none,
// the Observer itself with one. Nil Observers in os are left out. With
// proxy.Observers it is the one way to wire what watches dlb: metrics are
// both kinds of Observer, the certificate keeper is told of sites through
// SitesTo.
func Observers(os ...Observer) Observer {
	os = slices.DeleteFunc(slices.Clone(os), func(o Observer) bool { return o == nil })
	switch len(os) {
	case 0:
		return nil
	case 1:
		return os[0]
	}
	return observers(os)
}

type observers []Observer

func (os observers) ReplicaReady(service string, sinceEvent time.Duration) {
	for _, o := range os {
		o.ReplicaReady(service, sinceEvent)
	}
}

func (os observers) ReplicaLeft(u *balancer.Upstream) {
	for _, o := range os {
		o.ReplicaLeft(u)
	}
}

func (os observers) SitesChanged(sites []certs.Site) {
	for _, o := range os {
		o.SitesChanged(sites)
	}
}

func (os observers) SourceEvent(source, action string) {
	for _, o := range os {
		o.SourceEvent(source, action)
	}
}

// SitesTo is an Observer that hears only SitesChanged, and passes the sites
// to set (certs.Keeper.SetSites); nil when set is nil.
func SitesTo(set func([]certs.Site)) Observer {
	if set == nil {
		return nil
	}
	return sitesTo(set)
}

type sitesTo func([]certs.Site)

func (sitesTo) ReplicaReady(string, time.Duration) {}
func (sitesTo) ReplicaLeft(*balancer.Upstream)     {}
func (s sitesTo) SitesChanged(sites []certs.Site)  { s(sites) }
func (sitesTo) SourceEvent(string, string)         {}
