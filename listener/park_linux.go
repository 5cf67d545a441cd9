package listener

import (
	"net"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// Parking holds idle connections with no goroutine and no buffer each: one
// epoll instance watches them all, and one goroutine waits on it, handing a
// connection to wake as soon as it has something to read (a request, or
// the client's close), and closing those idle past their deadline.
type Parking struct {
	epfd int
	wake func(net.Conn)

	mu     sync.Mutex
	conns  map[int32]parked // by file descriptor
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
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &Parking{epfd: epfd, wake: wake, conns: map[int32]parked{}}
	go p.run()
	return p, nil
}

// fdOf returns c's file descriptor (its network connection's, for a TLS
// one), which stays valid while c is open.
func fdOf(c net.Conn) (int32, bool) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn() // a TLS connection's socket, which wakes it with its next record
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := int32(-1)
	if raw.Control(func(f uintptr) { fd = int32(f) }) != nil || fd < 0 {
		return 0, false
	}
	return fd, true
}

// Add parks c until it has something to read or its deadline passes. It
// reports false (and does nothing) when c cannot be parked.
func (p *Parking) Add(c net.Conn, deadline time.Time) bool {
	fd, ok := fdOf(c)
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	// Level-triggered and one-shot: bytes that came before the
	// registration wake it at once, and it wakes once.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollOneShot, Fd: fd}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		return false
	}
	p.conns[fd] = parked{c, deadline}
	return true
}

const epollOneShot = 1 << 30 // EPOLLONESHOT, which package syscall lacks

func (p *Parking) run() {
	events := make([]syscall.EpollEvent, 128)
	lastSweep := time.Now()
	release := 0 // sweeps left that return memory
	var lastRelease time.Time
	base := 0 // parked connections at the last release, or fewer since
	for {
		n, err := syscall.EpollWait(p.epfd, events, int(parkSweep/time.Millisecond))
		if err != nil && err != syscall.EINTR {
			n = 0
		}
		var woken []net.Conn
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			syscall.Close(p.epfd)
			return
		}
		for _, ev := range events[:max(n, 0)] {
			if pc, ok := p.conns[ev.Fd]; ok {
				delete(p.conns, ev.Fd)
				syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
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
					syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
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

// Close closes every parked connection; the waiting goroutine ends within
// parkSweep and closes the epoll instance.
func (p *Parking) Close() {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = nil, true
	p.mu.Unlock()
	for _, pc := range conns {
		pc.c.Close()
	}
}
