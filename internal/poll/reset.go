package poll

import (
	"errors"
	"net"
	"os"
)

// ResetOnTimeout makes closing c send a reset (SO_LINGER 0) instead of a
// FIN when err says a write to it timed out: the client took nothing for
// the write timeout, and a FIN would wait behind what its socket still
// holds (up to the send buffer, megabytes) in FIN-WAIT-1 until the kernel
// gives up. It looks through wrappers that Unwrap to their connection.
func ResetOnTimeout(c net.Conn, err error) {
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			x.SetLinger(0)
			return
		case interface{ Unwrap() net.Conn }:
			c = x.Unwrap()
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = x.NetConn()
		default:
			return
		}
	}
}
