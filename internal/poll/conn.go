package poll

import (
	"net"
	"sync"
	"syscall"
)

// attachedConn is a connection back from an event loop, still under its
// connection limit: Close gives the place back.
type attachedConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *attachedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Detach lets a loop take it again, with its place under the limit.
func (c *attachedConn) Detach() (net.Conn, func()) {
	return c.Conn, func() { c.once.Do(c.release) }
}

// CloseWrite shuts the writing side.
func (c *attachedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// SyscallConn gives the file descriptor (peeks, parking).
func (c *attachedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}

// Unwrap returns the network connection.
func (c *attachedConn) Unwrap() net.Conn { return c.Conn }
