package proxy

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUnacknowledgedLimit checks that a connection to a replica carries the
// limit on unacknowledged data; what the kernel does with it (a lost node
// fails over) is TestSwarmTwoNodes's, in cmd/dlb.
func TestUnacknowledgedLimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := &net.Dialer{Control: unacknowledgedLimit(2 * time.Second)}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	raw.Control(func(fd uintptr) { got, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) })
	if err != nil || got != 2000 {
		t.Errorf("TCP_USER_TIMEOUT of a connection to a replica: %d ms (%v), want 2000", got, err)
	}
}
