package health

import (
	"context"
	"net"
	"time"
)

// Gate holds new replicas back until they accept TCP connections: a started
// process is not yet a listening one. It probes each replica at once, then
// again with a delay that grows by half from MinInterval to MaxInterval, for
// as long as the replica is gated. The zero value waits 1ms, then 1.5ms,
// 2.25ms... up to 1s between probes, with a 500ms connect timeout: a replica
// that starts listening t after its start is let in by about 1.5t, and one
// that never listens costs about 20 refused connects in its first second.
type Gate struct {
	MinInterval, MaxInterval time.Duration
	DialTimeout              time.Duration
	// Dial connects; nil means net.Dialer.DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	probes tasks
}

// Start probes addr until it accepts a connection, then calls ready once.
// A probe already running for id is replaced.
func (g *Gate) Start(id, addr string, ready func()) {
	ctx := g.probes.start(id)
	go func() {
		if g.wait(ctx, addr) && g.probes.finish(id, ctx) {
			ready()
		}
	}()
}

// Stop ends the probe for id, if any; its ready is not called.
func (g *Gate) Stop(id string) { g.probes.stop(id) }

// Probing reports how many replicas are being probed.
func (g *Gate) Probing() int { return g.probes.count() }

func (g *Gate) wait(ctx context.Context, addr string) bool {
	minI, maxI, dt := g.MinInterval, g.MaxInterval, g.DialTimeout
	if minI <= 0 {
		minI = time.Millisecond
	}
	if maxI <= 0 {
		maxI = time.Second
	}
	if dt <= 0 {
		dt = 500 * time.Millisecond
	}
	dial := g.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	interval := minI
	for {
		dctx, cancel := context.WithTimeout(ctx, dt)
		conn, err := dial(dctx, "tcp", addr)
		cancel()
		if err == nil {
			conn.Close()
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
		interval = min(interval+interval/2, maxI)
	}
}
