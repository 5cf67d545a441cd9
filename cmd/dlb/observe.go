package main

import (
	"encoding/json"
	"net/http"

	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/metrics"
)

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
