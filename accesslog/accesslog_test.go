package accesslog

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/proxy"
)

func accessLogExchange() (*http.Request, *proxy.Exchange) {
	pool := balancer.NewPool("shop-web")
	u := pool.Put(balancer.Member{ID: "c1", Name: "shop-web-2", Address: "172.18.0.4:80"})
	r := httptest.NewRequest("POST", "http://shop.example/cart/add?item=7", nil)
	r.RemoteAddr = "192.0.2.10:53211"
	return r, &proxy.Exchange{
		Route: &proxy.Route{Service: "shop-web", Pool: pool}, Upstream: u,
		Status: 201, Bytes: 42, Start: time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC), Duration: 12345 * time.Microsecond,
	}
}

func TestAccessLogJSON(t *testing.T) {
	var buf bytes.Buffer
	r, e := accessLogExchange()
	New(&buf, "json").Observe(r, e)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("access log line %q: not JSON: %v", buf.String(), err)
	}
	want := map[string]any{
		"time": "2026-03-04T05:06:07.891Z", "client": "192.0.2.10", "method": "POST", "host": "shop.example",
		"path": "/cart/add", "status": 201.0, "bytes": 42.0, "duration_ms": 12.345, "service": "shop-web", "replica": "shop-web-2",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %s = %#v, want %#v (line %s)", k, got[k], v, buf.String())
		}
	}
	if len(got) != len(want) {
		t.Errorf("line has %d fields, want %d: %s", len(got), len(want), buf.String())
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("want exactly one line, got %q", buf.String())
	}
}

func TestAccessLogConsole(t *testing.T) {
	var buf bytes.Buffer
	r, e := accessLogExchange()
	e.Route, e.Upstream, e.Status = nil, nil, 404
	New(&buf, "console").Observe(r, e)
	line := buf.String()
	for _, part := range []string{"2026-03-04T05:06:07.891Z", "client=192.0.2.10", "method=POST", "host=shop.example",
		"path=/cart/add", "status=404", "bytes=42", "duration_ms=12.345", "service=", "replica="} {
		if !strings.Contains(line, part) {
			t.Errorf("console line %q lacks %q", line, part)
		}
	}
	if strings.Index(line, "client=") > strings.Index(line, "replica=") {
		t.Errorf("console line %q: want the fields in order client ... replica", line)
	}
}
