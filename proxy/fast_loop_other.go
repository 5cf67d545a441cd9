//go:build !linux

package proxy

import (
	"sync/atomic"
	"time"

	"github.com/dlb-lb/dlb/internal/poll"
)

// Off Linux there is no event loop: a goroutine serves each connection.

type eventLoop struct{ live atomic.Int64 }

type loopConn struct {
	sock         *poll.Sock
	remote, peer string
	fresh        bool
}

func startLoops(*FastServer) []*eventLoop                { return nil }
func (l *eventLoop) adopt(lc *loopConn)                  { lc.sock.Close() }
func (l *eventLoop) signal()                             {}
func (l *eventLoop) stop()                               {}
func (l *eventLoop) putUpstream(hc *h1Conn, _ time.Time) { hc.t.putIdle(hc, time.Now()) }
func (l *eventLoop) closeUpstream(hc *h1Conn)            { hc.sock.Close() }
