package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dlb-lb/dlb/balancer"
)

// BenchmarkProxy measures the proxy's hot path end to end: a real client
// sends GET / over keep-alive to a real dlb proxy in front of three real
// backends, all on loopback. allocs/op is per proxied request, client and
// backend included (the baseline below tells them apart).
func BenchmarkProxy(b *testing.B) {
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "replica\n")
	})
	pool := balancer.NewPool("bench")
	for _, id := range []string{"a", "b", "c"} {
		srv := httptest.NewServer(backend)
		b.Cleanup(srv.Close)
		pool.Put(balancer.Member{ID: id, Name: id, Address: strings.TrimPrefix(srv.URL, "http://")})
		pool.MarkReady(id)
	}
	router := &Router{}
	router.Set([]Route{{Service: "bench", Path: "/", Pool: pool}})
	px := New(router, Options{Retries: 2})
	front := serveFront(b, px, px, true)
	b.Cleanup(front.Close)

	b.Run("through-dlb", func(b *testing.B) { benchGet(b, front.URL+"/") })
	// Proxy.ServeHTTP behind net/http's server: the path of HTTP/2 streams.
	std := serveFront(b, px, px, false)
	b.Cleanup(std.Close)
	b.Run("through-ServeHTTP", func(b *testing.B) { benchGet(b, std.URL+"/") })
	direct := httptest.NewServer(backend)
	b.Cleanup(direct.Close)
	b.Run("direct-baseline", func(b *testing.B) { benchGet(b, direct.URL+"/") })
}

func benchGet(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
