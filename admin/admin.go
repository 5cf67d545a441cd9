// Package admin serves dlb's admin HTTP API, apart from the proxy: health,
// the pools as JSON, and a live stream of them.
package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dlb-lb/dlb/fleet"
)

// Source is what the admin server reports on: the fleet.
type Source interface {
	// Pools returns every pool, sorted by name, with replicas sorted by name.
	Pools() []fleet.PoolStatus
	// Healthy reports whether dlb is in sync with Docker; Reason says why not.
	Healthy() (ok bool, reason string)
	// Changed returns a channel closed at the next change to the pools.
	Changed() <-chan struct{}
}

var _ Source = (*fleet.Fleet)(nil)

// Handler returns the admin API:
//
//	GET /healthz      200 "ok" once in sync with Docker, else 503 and why
//	GET /api/pools    the pools as JSON
//	GET /api/pools/{name}  one pool as JSON, 404 if unknown
//	GET /api/events   Server-Sent Events: "pools" with {"time", "pools"}
//	                  on connect, at every change, and every second
//	GET /             the live dashboard
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /", UI())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if ok, reason := src.Healthy(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(reason + "\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /api/pools", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, src.Pools())
	})
	mux.HandleFunc("GET /api/pools/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		for _, p := range src.Pools() {
			if p.Name == name {
				writeJSON(w, http.StatusOK, p)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no pool named " + name})
	})
	streams := make(chan struct{}, MaxEventStreams)
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		select {
		case streams <- struct{}{}:
			defer func() { <-streams }()
		default:
			w.Header().Set("Retry-After", "5")
			http.Error(w, fmt.Sprintf("dlb admin: already %d event streams open; close a dashboard", MaxEventStreams), http.StatusServiceUnavailable)
			return
		}
		serveEvents(w, r, src)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// MaxEventStreams is how many /api/events streams may be open at once; more
// get 503. EventWriteTimeout is how long a stream's client may take to read
// a message before it is dropped: a client that stops reading holds no
// memory or goroutine of dlb for longer.
const (
	MaxEventStreams   = 64
	EventWriteTimeout = 10 * time.Second
)

// serveEvents streams the pools: at once, on every change (at most every
// 50 ms, so a burst of changes is one message), and every second.
func serveEvents(w http.ResponseWriter, r *http.Request, src Source) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var sb strings.Builder
	for {
		changed := src.Changed()
		msg := struct {
			Time  int64              `json:"time"`
			Pools []fleet.PoolStatus `json:"pools"`
		}{time.Now().UnixMilli(), src.Pools()}
		data, _ := json.Marshal(msg)
		sb.Reset()
		sb.WriteString("event: pools\ndata: ")
		sb.Write(data)
		sb.WriteString("\n\n")
		rc.SetWriteDeadline(time.Now().Add(EventWriteTimeout))
		if _, err := w.Write([]byte(sb.String())); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		case <-changed:
			select { // let a burst of changes settle into one message
			case <-time.After(50 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}
}
