package proxy

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/nettest"
	"github.com/rs/zerolog"
)

// A response body cut short by the replica is logged, as one of dlb's own
// lines, so --log-format json stays JSON: by the direct path (a GET) and by
// net/http's reverse proxy (a POST with a body).
func TestCutBodiesAreLoggedAsJSON(t *testing.T) {
	for _, tc := range []struct{ method, body string }{{"GET", ""}, {"POST", "a body"}} {
		t.Run(tc.method, func(t *testing.T) {
			addr, _ := rawServer(t, func(c net.Conn) {
				defer c.Close()
				c.Read(make([]byte, 4<<10))
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b")
			})
			route, pool := poolRoute("cut")
			ready(t, pool, "cut-1", addr)
			var logs nettest.Buffer
			std := func(h http.Handler) http.Handler { return h } // the net/http path
			f := newFront(t, Options{Log: zerolog.New(&logs)}, []Route{route}, std)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			if resp, err := f.try(tc.method, "", "/", body); err == nil {
				t.Fatalf("%s of a body cut short: got %d %q, want an error", tc.method, resp.status, resp.body)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(logs.String(), "body copy") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			out := logs.String()
			if !strings.Contains(out, "body copy") {
				t.Fatalf("log: got %q, want the body copy error", out)
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var v map[string]any
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Errorf("log line %q is not JSON: %v", line, err)
				}
			}
		})
	}
}
