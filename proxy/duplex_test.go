package proxy

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/dlb-lb/dlb/internal/nettest"
)

// echoWhileReading is a replica that answers before it has read the whole
// request body: it sends its head, then copies the body back as it reads it
// (a streaming or echo handler, as traefik/whoami's echo).
func echoWhileReading(w http.ResponseWriter, r *http.Request) {
	http.NewResponseController(w).EnableFullDuplex()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	io.Copy(w, r.Body)
}

// An upload to a replica that answers while it still reads the body arrives
// whole, and its echo comes back whole: dlb carries the two directions at
// once (full duplex), as the replica and the client expect. net/http's
// server would otherwise read and discard up to 256 KiB of the body when the
// response starts, and cut the rest.
func TestUploadToReplicaThatAnswersWhileReading(t *testing.T) {
	route, pool := poolRoute("echo")
	ready(t, pool, "echo-1", newBackend(t, "echo-1", echoWhileReading).addr())
	f := newFront(t, Options{}, []Route{route}, nil)
	for _, n := range []int64{100 << 10, 5 << 20, 50 << 20} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/echo", &nettest.Pattern{N: n})
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = n
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatalf("POST of %d bytes: %v", n, err)
			}
			defer resp.Body.Close()
			got, same, err := nettest.CheckPattern(resp.Body, n)
			if err != nil || !same {
				t.Fatalf("POST of %d bytes: the echo came back with %d bytes (%v), the same bytes: %v; want all %d, the same", n, got, err, same, n)
			}
		})
	}
}
