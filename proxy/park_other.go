//go:build !linux

package proxy

import (
	"errors"
	"net"
	"time"
)

// parking is not supported off Linux: NewIdleListener leaves the listener
// as it is.
type parking struct{}

func newParking(func(net.Conn)) (*parking, error) {
	return nil, errors.New("parking idle connections needs Linux")
}

func (*parking) add(net.Conn, time.Time) bool { return false }
func (*parking) close()                       {}
