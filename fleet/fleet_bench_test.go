package fleet

import (
	"fmt"
	"testing"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/rs/zerolog"
)

// BenchmarkApplyEvent measures what one Docker event costs once the watcher
// has inspected the container: the change to a pool of 1,000 replicas and
// the new snapshot that requests then see.
func BenchmarkApplyEvent(b *testing.B) {
	for _, n := range []int{1, 200, 1000} {
		b.Run(fmt.Sprintf("pool=%d", n), func(b *testing.B) {
			router := &proxy.Router{}
			g := New(Options{Router: router, Proxy: proxy.New(router, proxy.Options{}), Log: zerolog.Nop()})
			rs := make([]discovery.Replica, n)
			for i := range rs {
				rs[i] = discovery.Replica{
					ID: fmt.Sprintf("%064d", i), Name: fmt.Sprintf("app_%d", i), Service: "app",
					Path: "/", IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), Port: 80,
					Running: true, Health: "healthy",
					Labels: discovery.LabelConfig{Path: "/", Weight: 1, RouteOptions: proxy.RouteOptions{Scheme: "http"}},
				}
			}
			g.Sync("docker", rs)
			pool := g.pools.Get("app")
			if pool.ReadyCount() != n {
				b.Fatalf("%d ready after Sync, want %d", pool.ReadyCount(), n)
			}
			r := rs[n/2]
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// kill: drain; then the container is started again.
				g.Drain(r.ID)
				g.Stop(r.ID)
				r.Running = true
				g.Update("docker", r)
			}
			b.StopTimer()
			if got := pool.Get(r.ID).State(); got != balancer.Ready {
				b.Fatalf("after the cycle the replica is %s, want ready", got)
			}
		})
	}
}
