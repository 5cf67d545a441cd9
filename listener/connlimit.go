package listener

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// ConnLimit bounds the client connections open at once across every
// listener it wraps (the plain and the TLS one share one budget). Those over
// the limit are accepted and closed at once, and refused is called for each
// (for a metric). Closing them rather than leaving them in the kernel's
// backlog keeps clients from waiting on a connection nobody will serve,
// and keeps dlb's file descriptors for replicas, Docker and the admin port.
// A nil *ConnLimit sets no limit.
type ConnLimit struct {
	max     int64
	open    atomic.Int64
	refused func()
}

// NewConnLimit returns a limit of max connections; max <= 0 returns nil,
// no limit.
func NewConnLimit(max int64, refused func()) *ConnLimit {
	if max <= 0 {
		return nil
	}
	return &ConnLimit{max: max, refused: refused}
}

// Listener wraps ln so that its connections count against l. Its
// connections keep their file descriptor reachable (syscall.Conn), so an
// Idle on top can park them; a parked connection still counts.
// On a nil l it returns ln itself.
func (l *ConnLimit) Listener(ln net.Listener) net.Listener {
	if l == nil {
		return ln
	}
	return &limitListener{Listener: ln, l: l}
}

type limitListener struct {
	net.Listener
	l *ConnLimit
}

func (ll *limitListener) Accept() (net.Conn, error) {
	l := ll.l
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset: nothing is owed to a refused client
		}
		c.Close()
		if l.refused != nil {
			l.refused()
		}
	}
}

// limitConn gives its place back when closed.
type limitConn struct {
	net.Conn
	l    *ConnLimit
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// SyscallConn gives an Idle the file descriptor to park.
func (c *limitConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}

// Detach gives the connection to a caller that serves its file descriptor
// itself (the fast data path's event loops): it returns the network
// connection inside and a function that gives the place under the limit
// back, to be called once that descriptor is closed. Closing the returned
// connection then does not give the place back.
func (c *limitConn) Detach() (net.Conn, func()) {
	return c.Conn, func() { c.once.Do(func() { c.l.open.Add(-1) }) }
}
