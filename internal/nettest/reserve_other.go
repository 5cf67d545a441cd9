//go:build !unix

package nettest

import (
	"net"
	"testing"
)

// ReservePort returns a loopback address where nothing listens (as the
// proxy tests' deadAddr does), with a release, a no-op here, for a test that
// then listens on the port.
func ReservePort(t testing.TB) (addr string, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	return addr, func() {}
}
