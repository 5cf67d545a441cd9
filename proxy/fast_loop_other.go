//go:build !linux

package proxy

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// Off Linux there is no event loop: a goroutine serves each connection.

type eventLoop struct{ live atomic.Int64 }

type loopConn struct {
	fd           int
	remote, peer string
	release      func()
}

func startLoops(*FastServer) []*eventLoop                { return nil }
func (l *eventLoop) adopt(*loopConn)                     {}
func (l *eventLoop) signal()                             {}
func (l *eventLoop) stop()                               {}
func (l *eventLoop) putUpstream(hc *h1Conn, _ time.Time) { hc.t.putIdle(hc, time.Now()) }
func (l *eventLoop) closeUpstream(*h1Conn)               {}

var errWouldBlock = errors.New("would block")

func rawRead(int, []byte) (int, error)  { return 0, errWouldBlock }
func rawWrite(int, []byte) (int, error) { return 0, errWouldBlock }

func detachConn(net.Conn) (int, func(), error) { return -1, nil, errors.New("no event loop here") }
