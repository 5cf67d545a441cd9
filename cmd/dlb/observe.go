package main

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/fleet"
	"github.com/dlb-lb/dlb/metrics"
)

// fleetObserver tells metrics and the certificate keeper (either may be
// nil) of the fleet's changes.
type fleetObserver struct {
	met    *metrics.Metrics
	keeper *certs.Keeper
}

var _ fleet.Observer = fleetObserver{}

// fleetObserverOf is nil when there is neither metrics nor keeper.
func fleetObserverOf(met *metrics.Metrics, keeper *certs.Keeper) fleet.Observer {
	if met == nil && keeper == nil {
		return nil
	}
	return fleetObserver{met: met, keeper: keeper}
}

// ReplicaReady counts how long the replica took to turn ready.
func (o fleetObserver) ReplicaReady(service string, sinceEvent time.Duration) {
	if o.met != nil {
		o.met.ReplicaReady(service, sinceEvent)
	}
}

// ReplicaLeft drops the replica's series.
func (o fleetObserver) ReplicaLeft(u *balancer.Upstream) {
	if o.met != nil {
		o.met.Forget(u)
	}
}

// SourceEvent counts the engine's event.
func (o fleetObserver) SourceEvent(_, action string) {
	if o.met != nil {
		o.met.DockerEvent(action)
	}
}

// SitesChanged tells the keeper which hosts to hold certificates for.
func (o fleetObserver) SitesChanged(sites []certs.Site) {
	if o.keeper != nil {
		o.keeper.SetSites(sites)
	}
}

// adminHandler is the admin API with /metrics beside it (m may be nil),
// and the hosts' certificates at /api/certificates (k may be nil).
func adminHandler(src admin.Source, m *metrics.Metrics, k *certs.Keeper) http.Handler {
	api := admin.Handler(src)
	if m == nil && k == nil {
		return api
	}
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", m)
	}
	if k != nil {
		mux.HandleFunc("GET /api/certificates", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			json.NewEncoder(w).Encode(k.Status())
		})
	}
	mux.Handle("/", api)
	return mux
}
