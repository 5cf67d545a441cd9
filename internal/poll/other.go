//go:build !linux

package poll

import (
	"net"
	"time"
)

// Off Linux there is no epoll: nothing leaves Go's poller.

// Poller is not to be had off Linux: New fails.
type Poller struct{}

// Event is a socket's readiness as Wait reports it.
type Event struct{}

func (*Event) FD() int      { return -1 }
func (*Event) Tag() int32   { return 0 }
func (*Event) Hangup() bool { return false }

// Mode is how a socket added to a Poller reports that it can be read.
type Mode uint32

const (
	Level Mode = iota
	Edge
	OneShot
)

func New(int) (*Poller, error)                             { return nil, ErrUnsupported }
func (*Poller) Add(int, int32, Mode) error                 { return ErrUnsupported }
func (*Poller) Rearm(int, int32, Mode) error               { return ErrUnsupported }
func (*Poller) Del(int) error                              { return ErrUnsupported }
func (*Poller) Wake()                                      {}
func (*Poller) Close() error                               { return nil }
func (*Poller) Wait(_, _ time.Time) ([]Event, bool, error) { return nil, false, ErrUnsupported }

func Read(int, []byte) (int, error)  { return 0, ErrUnsupported }
func Write(int, []byte) (int, error) { return 0, ErrUnsupported }
func Peek(int) (open, data bool)     { return true, false }
func Close(int) error                { return ErrUnsupported }
func FD(net.Conn) (int, bool)        { return -1, false }

func Detach(net.Conn) (int, func(), error) { return -1, nil, ErrUnsupported }

func Attach(_ int, release func()) (net.Conn, error) {
	if release != nil {
		release()
	}
	return nil, ErrUnsupported
}

// peeker does not look off Linux: a connection counts as open.
type peeker struct{ ready bool }

func (p *peeker) init(net.Conn)         { p.ready = true }
func (*peeker) look() (open, data bool) { return true, false }

func (*peeker) hungUp() bool { return false }

func hungUp(int) bool { return false }
