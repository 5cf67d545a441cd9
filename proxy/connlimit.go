package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// LimitListener accepts at most max connections at once; the ones over the
// limit are accepted and closed at once, and refused is called for each
// (for a metric). Closing them rather than leaving them in the kernel's
// backlog keeps clients from waiting on a connection nobody will serve,
// and keeps dlb's file descriptors for replicas, Docker and the admin port.
// Its connections keep their file descriptor reachable (syscall.Conn), so
// an IdleListener on top can park them; a parked connection still counts.
// max <= 0 returns ln itself.
func LimitListener(ln net.Listener, max int64, refused func()) net.Listener {
	if max <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, max: max, refused: refused}
}

type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused func()
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
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
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// SyscallConn gives an IdleListener the file descriptor to park.
func (c *limitConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}
