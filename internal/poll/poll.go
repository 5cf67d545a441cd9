// Package poll owns the sockets that leave Go's runtime poller: an epoll
// instance that event loops wait on (Poller), raw non-blocking reads,
// writes and peeks, and a socket's hand-off between an event loop and a
// goroutine (Sock). It knows file descriptors and time, nothing of HTTP.
//
// Off Linux nothing polls: New returns an error, a Sock stays with its
// goroutine (Detach fails), and peeks report a socket open.
package poll

import (
	"errors"
	"net"
)

// ErrWouldBlock is a read or write on a loop-owned socket that would wait.
var ErrWouldBlock = errors.New("would block")

// ErrUnsupported is the error of New and Detach where there is no epoll.
var ErrUnsupported = errors.New("poll: event loops need Linux (epoll)")

// Detacher is a connection that counts against a limit (such as
// listener.ConnLimit's) and can leave it to the caller to give its place
// back: Detach returns the network connection and the function that gives
// the place back.
type Detacher interface {
	Detach() (net.Conn, func())
}
