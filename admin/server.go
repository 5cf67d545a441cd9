package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
)

// Options are what the admin port serves besides Handler's API, and who
// may ask. The zero value serves the API alone, to anyone on an IP address
// or localhost.
type Options struct {
	// Metrics, if set, is served at GET /metrics (Prometheus).
	Metrics http.Handler
	// Certificates, if set, gives what GET /api/certificates sends as JSON
	// (the certificate keeper's Status).
	Certificates func() any
	// Self, if set, gives what GET /api/self answers: which dlb this is.
	Self func() Self
	// Pprof serves Go's profiler under /debug/pprof/.
	Pprof bool
	// Guard decides who may ask.
	Guard Guard
}

// Self is which dlb answers the admin API, for dlb rollout: during a
// hand-over two dlb share the admin socket, and the one that answers says
// who it is.
type Self struct {
	// ID is the full ID of dlb's container; empty outside a container.
	ID string `json:"id"`
	// Version is dlb's version.
	Version string `json:"version"`
	// Serving is true while this dlb accepts on its listening sockets
	// (a new dlb: once the old one has let go of them), false once it has
	// handed them over to a new dlb.
	Serving bool `json:"serving"`
}

// NewHandler is the admin port's handler: Handler(src) with what o adds,
// behind o.Guard.
func NewHandler(src Source, o Options) http.Handler {
	api := Handler(src)
	mux := http.NewServeMux()
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	if o.Certificates != nil {
		mux.HandleFunc("GET /api/certificates", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			json.NewEncoder(w).Encode(o.Certificates())
		})
	}
	if o.Self != nil {
		mux.HandleFunc("GET /api/self", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, o.Self())
		})
	}
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", api)
	return o.Guard.Wrap(mux)
}

// ParseHosts reads a comma-separated list of host names for Guard.Hosts:
// lower-cased, without a trailing dot, blanks dropped. The error says
// which is not a host name.
func ParseHosts(list string) ([]string, error) {
	var hosts []string
	for h := range strings.SplitSeq(list, ",") {
		h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, ":/ []") {
			return nil, fmt.Errorf("%q is not a host name (give names without port or scheme, e.g. dlb,dlb.internal)", h)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}
