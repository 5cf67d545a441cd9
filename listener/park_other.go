//go:build !linux

package listener

import (
	"errors"
	"net"
	"time"
)

// Parking is not supported off Linux: NewIdle leaves the listener
// as it is.
type Parking struct{}

func NewParking(func(net.Conn)) (*Parking, error) {
	return nil, errors.New("parking idle connections needs Linux")
}

func (*Parking) Add(net.Conn, time.Time) bool { return false }
func (*Parking) Close()                       {}
