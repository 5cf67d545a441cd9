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

// What net/http's reverse proxy logs (a response body cut short by the
// replica) reaches dlb's log as one of its own lines, so --log-format json
// stays JSON.
func TestReverseProxyErrorsAreLoggedAsJSON(t *testing.T) {
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
	if resp, err := f.try("GET", "", "/", nil); err == nil {
		t.Fatalf("GET of a body cut short: got %d %q, want an error", resp.status, resp.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "body copy") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	if !strings.Contains(out, "body copy") {
		t.Fatalf("log: got %q, want the reverse proxy's body copy error", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("log line %q is not JSON: %v", line, err)
		}
	}
}
