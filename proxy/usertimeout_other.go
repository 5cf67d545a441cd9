//go:build !linux

package proxy

import (
	"syscall"
	"time"
)

// unacknowledgedLimit is nil off Linux: connections to a replica that
// vanished fail by the response header timeout only.
func unacknowledgedLimit(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
