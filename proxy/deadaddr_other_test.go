//go:build !unix

package proxy

import (
	"net"
	"testing"
)

// reservePort is deadAddr with a release, a no-op here, for a test that
// then listens on the port.
func reservePort(t *testing.T) (addr string, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	return addr, func() {}
}
