package proxy

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// unacknowledgedLimit returns a net.Dialer Control that sets
// TCP_USER_TIMEOUT (tcp(7)) to d on a connection to a replica: when what dlb
// sent stays unacknowledged for d, the kernel fails the connection with
// ETIMEDOUT. A replica whose machine is gone, or whose network is cut,
// answers nothing, not even a reset; without the limit a request on a
// kept-alive connection to it waits for the response header timeout, and
// the kernel retransmits for about 15 minutes. A slow replica is not
// affected: its kernel acknowledges what it receives whether or not the
// program reads it.
func unacknowledgedLimit(d time.Duration) func(network, address string, c syscall.RawConn) error {
	ms := int(d / time.Millisecond)
	return func(network, address string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
		}); cerr != nil {
			return cerr
		}
		return err
	}
}
