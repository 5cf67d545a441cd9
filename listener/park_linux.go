package listener

import (
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/dlb-lb/dlb/internal/poll"
)

// Parking holds idle connections with no goroutine and no buffer each: one
// epoll instance watches them all, and one goroutine waits on it, handing a
// connection to wake as soon as it has something to read (a request, or
// the client's close), and closing those idle past their deadline.
type Parking struct {
	poller *poll.Poller
	wake   func(net.Conn)

	mu     sync.Mutex
	conns  map[int]parked // by file descriptor
	closed bool
}

type parked struct {
	c        net.Conn
	deadline time.Time // zero: none
}

// parkSweep is how often parked connections are checked for their deadline.
const parkSweep = time.Second

// releaseAfter is by how many the parked connections must have grown since
// the last release of memory to the system for another: the buffers their
// server goroutines let go of sit in the server's pools, which two
// collections empty; with no allocation going on, Go runs those only two
// minutes apart, holding some 8 KiB per parked connection meanwhile.
// Clients that come and go as often as they park do not grow the count,
// and there is at most one release per releaseEvery.
const (
	releaseAfter = 1024
	releaseEvery = 10 * time.Second
)

// NewParking starts a Parking that hands each parked connection with
// something to read to wake. Off Linux it returns an error: nothing parks.
func NewParking(wake func(net.Conn)) (*Parking, error) {
	pl, err := poll.New(128)
	if err != nil {
		return nil, err
	}
	p := &Parking{poller: pl, wake: wake, conns: map[int]parked{}}
	go p.run()
	return p, nil
}

// Add parks c until it has something to read or its deadline passes. It
// reports false (and does nothing) when c cannot be parked.
func (p *Parking) Add(c net.Conn, deadline time.Time) bool {
	fd, ok := poll.FD(c)
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	// Level-triggered and one-shot: bytes that came before the
	// registration wake it at once, and it wakes once. The connection
	// stays in Go's poller too, for the server it goes back to.
	if p.poller.Add(fd, 0, poll.OneShot) != nil {
		return false
	}
	p.conns[fd] = parked{c, deadline}
	return true
}

func (p *Parking) run() {
	lastSweep := time.Now()
	release := 0 // sweeps left that return memory
	var lastRelease time.Time
	base := 0 // parked connections at the last release, or fewer since
	for {
		now := time.Now()
		events, _, err := p.poller.Wait(now, lastSweep.Add(parkSweep))
		if err != nil {
			events = nil
		}
		var woken []net.Conn
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			p.poller.Close()
			return
		}
		for i := range events {
			fd := events[i].FD()
			if pc, ok := p.conns[fd]; ok {
				delete(p.conns, fd)
				p.poller.Del(fd)
				woken = append(woken, pc.c)
			}
		}
		var expired []net.Conn
		sweep := false
		if now := time.Now(); now.Sub(lastSweep) >= parkSweep {
			lastSweep, sweep = now, true
			base = min(base, len(p.conns))
			if len(p.conns)-base >= releaseAfter && now.Sub(lastRelease) >= releaseEvery {
				// A collection to move the pools aside, one to free them.
				release, lastRelease, base = 2, now, len(p.conns)
			}
			for fd, pc := range p.conns {
				if !pc.deadline.IsZero() && now.After(pc.deadline) {
					delete(p.conns, fd)
					p.poller.Del(fd)
					expired = append(expired, pc.c)
				}
			}
		}
		p.mu.Unlock()
		for _, c := range expired {
			c.Close()
		}
		for _, c := range woken {
			p.wake(c)
		}
		if sweep && release > 0 {
			release--
			debug.FreeOSMemory()
		}
	}
}

// Close closes every parked connection; the waiting goroutine wakes up,
// closes the poller and ends.
func (p *Parking) Close() {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = nil, true
	p.poller.Wake() // under mu: run closes the poller after it sees closed
	p.mu.Unlock()
	for _, pc := range conns {
		pc.c.Close()
	}
}
