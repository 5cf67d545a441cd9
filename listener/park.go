package listener

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Idle is a net.Listener for an http.Server that parks the client
// connections that stay idle between requests: the server lets go of them
// (its goroutine ends, its 8 KiB of buffers go back to its pools), and the
// listener hands them out again, as if newly accepted, when the next request
// arrives. A keep-alive connection that waits costs the server about 20 KiB
// (goroutine stack and buffers); a parked one costs a few hundred bytes, so
// 10,000 idle clients fit in a few megabytes. Connections busy with one
// request after another are never parked.
//
// Parking needs the operating system's help (epoll on Linux); elsewhere
// NewIdle returns the listener as it is, and ConnState passes
// through. Create it with NewIdle and set the server's ConnState to
// its ConnState.
type Idle struct {
	net.Listener
	after time.Duration
	park  *Parking

	accepted  chan acceptResult // from the accept loop
	woken     chan net.Conn     // parked connections with a request waiting
	done      chan struct{}     // closed by Close
	closeOnce sync.Once
	startOnce sync.Once
}

type acceptResult struct {
	c   net.Conn
	err error
}

// errParked ends the server's wait for a next request on a connection the
// listener takes over.
var errParked = errors.New("idle connection parked")

// NewIdle returns ln, wrapped so that the connections an http.Server
// serves from it are parked once idle for after. It returns ln as it is when
// after is not positive or parking is not supported here.
func NewIdle(ln net.Listener, after time.Duration) net.Listener {
	if after <= 0 {
		return ln
	}
	l := &Idle{Listener: ln, after: after,
		accepted: make(chan acceptResult), woken: make(chan net.Conn, 64), done: make(chan struct{})}
	p, err := NewParking(l.wake)
	if err != nil {
		return ln
	}
	l.park = p
	return l
}

// ConnState returns the server's ConnState hook: it tells the listener when
// a connection turns idle, then calls next (when not nil).
func ConnState(ln net.Listener, next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	if _, ok := ln.(*Idle); !ok {
		return next
	}
	return func(c net.Conn, s http.ConnState) {
		if ic, ok := c.(*idleConn); ok && s == http.StateIdle {
			ic.idle.Store(true)
		}
		if next != nil {
			next(c, s)
		}
	}
}

// Accept returns the next new connection, or a parked one with a request.
func (l *Idle) Accept() (net.Conn, error) {
	l.startOnce.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.woken:
		return &idleConn{Conn: c, l: l}, nil
	case r := <-l.accepted:
		if r.err != nil {
			return nil, r.err
		}
		return &idleConn{Conn: r.c, l: l}, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *Idle) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) && !isTemporary(err) {
			return
		}
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// Close stops accepting and closes the parked connections.
func (l *Idle) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() {
		close(l.done)
		l.park.Close()
	})
	return err
}

// wake hands a parked connection with a request waiting back to the server.
func (l *Idle) wake(c net.Conn) {
	select {
	case l.woken <- c:
	case <-l.done:
		c.Close()
	}
}

// idleConn is a connection as the server sees it. While the server waits
// for the next request, the wait is cut to the listener's after; when
// nothing came by then, the read fails with errParked, the server closes
// the connection and Close parks it instead.
//
// The server reads and sets deadlines on its own goroutine, except that it
// may set a read deadline while a background read runs (to abort it): the
// flags shared with that are atomic.
type idleConn struct {
	net.Conn
	l         *Idle
	idle      atomic.Bool // waiting for the next request (set by ConnState)
	shortened atomic.Bool // the read deadline was cut to after
	deadline  time.Time   // the server's own read deadline while idle
	fullRead  int         // the size of the server's reads into an empty buffer
	parkIt    atomic.Bool // Close parks rather than closes
	http2     bool        // the client speaks HTTP/2 (h2c): never parked
}

// h2Preface starts every HTTP/2 connection with prior knowledge (RFC 9113
// section 3.4). The HTTP/2 server reports idle connections too, but it
// reads frames on its own schedule, so such connections are never parked.
const h2Preface = "PRI * HTTP/2.0"

func (c *idleConn) Read(p []byte) (int, error) {
	if c.fullRead == 0 {
		c.fullRead = len(p)
		n, err := c.Conn.Read(p)
		k := min(n, len(h2Preface))
		c.http2 = n > 0 && string(p[:k]) == h2Preface[:k]
		return n, err
	}
	if !c.idle.Load() || c.http2 {
		if c.shortened.Load() { // a partial first read while idle: restore the server's deadline
			c.shortened.Store(false)
			c.Conn.SetReadDeadline(c.deadline)
		}
		return c.Conn.Read(p)
	}
	n, err := c.Conn.Read(p)
	if n > 0 || err == nil {
		c.idle.Store(false)
		return n, err
	}
	// Park only when the server's buffer is empty (it reads into all of
	// it), so that no byte it holds of a pipelined request is lost.
	var ne net.Error
	if c.shortened.Load() && errors.As(err, &ne) && ne.Timeout() && len(p) == c.fullRead &&
		(c.deadline.IsZero() || time.Now().Before(c.deadline)) {
		c.parkIt.Store(true)
		return 0, errParked
	}
	return n, err
}

// SetReadDeadline cuts the server's wait for the next request to the
// listener's after.
func (c *idleConn) SetReadDeadline(t time.Time) error {
	if c.idle.Load() && !c.http2 {
		c.deadline = t
		if cut := time.Now().Add(c.l.after); t.IsZero() || cut.Before(t) {
			c.shortened.Store(true)
			return c.Conn.SetReadDeadline(cut)
		}
	}
	if c.shortened.Load() {
		c.shortened.Store(false)
	}
	return c.Conn.SetReadDeadline(t)
}

// Close parks the connection if the server let go of it for being idle,
// else closes it.
func (c *idleConn) Close() error {
	if c.parkIt.CompareAndSwap(true, false) {
		c.Conn.SetReadDeadline(time.Time{})
		if c.l.park.Add(c.Conn, c.deadline) {
			return nil
		}
	}
	return c.Conn.Close()
}

// Unwrap returns the network connection.
func (c *idleConn) Unwrap() net.Conn { return c.Conn }
