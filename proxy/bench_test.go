package proxy

import (
	"crypto/tls"
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
	// HTTP/2 over TLS, streams served by internal/h2 and forwarded by the
	// direct path: h2load's -m10 in miniature (10 streams in flight on
	// each of GOMAXPROCS connections, RunParallel's goroutines).
	h2 := newTLSFront(b, px, 0)
	b.Run("through-h2", func(b *testing.B) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h2.roots}, ForceAttemptHTTP2: true}
		b.Cleanup(tr.CloseIdleConnections)
		b.SetParallelism(10)
		benchClient(b, &http.Client{Transport: tr}, "https://"+h2.addr+"/", "HTTP/2.0")
	})
	direct := httptest.NewServer(backend)
	b.Cleanup(direct.Close)
	b.Run("direct-baseline", func(b *testing.B) { benchGet(b, direct.URL+"/") })
}

func benchGet(b *testing.B, url string) {
	benchClient(b, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, url, "HTTP/1.1")
}

// benchClient sends GETs of url with client from parallel goroutines; each
// response must be 200 over proto.
func benchClient(b *testing.B, client *http.Client, url, proto string) {
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
			if resp.StatusCode != 200 || resp.Proto != proto {
				b.Errorf("got %s %d, want %s 200", resp.Proto, resp.StatusCode, proto)
				return
			}
		}
	})
}
