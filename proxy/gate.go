package proxy

import (
	"context"
	"net"
	"sync"
	"time"
)

// Gate holds new replicas back until they accept TCP connections: a started
// process is not yet a listening one. It probes each replica at once, then
// again with a delay that grows from MinInterval to MaxInterval, for as long
// as the replica is gated. The zero value probes every 25ms at first, backing
// off to 1s, with a 500ms connect timeout.
type Gate struct {
	MinInterval, MaxInterval time.Duration
	DialTimeout              time.Duration
	// Dial connects; nil means net.Dialer.DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex
	probes map[string]context.CancelFunc
}

// Start probes addr until it accepts a connection, then calls ready once.
// A probe already running for id is replaced.
func (g *Gate) Start(id, addr string, ready func()) {
	ctx, cancel := context.WithCancel(context.Background())
	g.mu.Lock()
	if g.probes == nil {
		g.probes = map[string]context.CancelFunc{}
	}
	if stop, ok := g.probes[id]; ok {
		stop()
	}
	g.probes[id] = cancel
	g.mu.Unlock()
	go func() {
		if g.wait(ctx, addr) {
			g.mu.Lock()
			// Only the probe still registered may report: a replaced or
			// stopped one has had its context cancelled under this lock.
			ok := ctx.Err() == nil
			if ok {
				delete(g.probes, id)
			}
			g.mu.Unlock()
			cancel()
			if ok {
				ready()
			}
		}
	}()
}

// Stop ends the probe for id, if any; its ready is not called.
func (g *Gate) Stop(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if stop, ok := g.probes[id]; ok {
		stop()
		delete(g.probes, id)
	}
}

// Probing reports how many replicas are being probed.
func (g *Gate) Probing() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.probes)
}

func (g *Gate) wait(ctx context.Context, addr string) bool {
	minI, maxI, dt := g.MinInterval, g.MaxInterval, g.DialTimeout
	if minI <= 0 {
		minI = 25 * time.Millisecond
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
		interval = min(interval*2, maxI)
	}
}
