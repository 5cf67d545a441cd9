package poll

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// A TLS Sock keeps one *tls.Conn for the connection's life, whichever
// owner it has: under it is a tlsFeed, which reads and writes the
// goroutine's net.Conn while a goroutine owns the socket, and the loop's
// raw descriptor while a loop does. The handshake runs on a goroutine;
// the records of the requests that follow are read, decrypted and
// answered in the loop, as a plain socket's bytes are.
//
// crypto/tls keeps a read error for good unless it is a net.Error whose
// Temporary is true: the feed's "nothing to read now" is one, so a partial
// record waits in the *tls.Conn for the next readable event. Write errors
// are kept for good whatever they are, so in a loop the feed's Write never
// fails: it appends the records to out, which the Sock writes with one
// system call once the *tls.Conn has written them all, keeping what the
// socket does not take for whoever writes next.

// errDry is the feed's read of an empty socket in a loop.
var errDry net.Error = dryError{}

type dryError struct{}

func (dryError) Error() string   { return "poll: nothing to read yet" }
func (dryError) Timeout() bool   { return false }
func (dryError) Temporary() bool { return true }

// outKeep is the largest out buffer a feed keeps once written.
const outKeep = 16 << 10

// tlsFeed is the network connection under a TLS Sock's *tls.Conn.
type tlsFeed struct {
	nc  net.Conn // the goroutine's (nil while a loop owns the socket)
	fd  int      // the loop's (-1 while a goroutine owns it)
	dry bool     // a loop's read found the socket empty since the last Ready
	out []byte   // records not yet written, written first
	// timedOut is a goroutine's write that timed out: every write after
	// it fails at once (close_notify too, which would otherwise wait 5 s
	// more for a client that reads nothing).
	timedOut      error
	local, remote net.Addr
}

// NewTLSSock returns c as a goroutine-owned Sock serving TLS with config:
// Conn returns its *tls.Conn, whose handshake is the caller's to run.
func NewTLSSock(c net.Conn, config *tls.Config) *Sock {
	f := &tlsFeed{nc: c, fd: -1, local: c.LocalAddr(), remote: c.RemoteAddr()}
	return &Sock{nc: tls.Server(f, config), tls: f, fd: -1}
}

// tlsFeedOf returns the feed under c, a *tls.Conn of a TLS Sock (nil when
// c is something else).
func tlsFeedOf(c net.Conn) *tlsFeed {
	if tc, ok := c.(*tls.Conn); ok {
		f, _ := tc.NetConn().(*tlsFeed)
		return f
	}
	return nil
}

func (f *tlsFeed) Read(p []byte) (int, error) {
	if f.nc != nil {
		return f.nc.Read(p)
	}
	if f.dry {
		return 0, errDry
	}
	n, err := Read(f.fd, p)
	if err == ErrWouldBlock {
		f.dry = true
		return 0, errDry
	}
	f.dry = n < len(p)
	return n, err
}

func (f *tlsFeed) Write(p []byte) (int, error) {
	if f.nc == nil {
		f.out = append(f.out, p...)
		return len(p), nil
	}
	if f.timedOut != nil {
		return 0, f.timedOut
	}
	if err := f.flush(); err != nil {
		return 0, err
	}
	n, err := f.nc.Write(p)
	f.timeout(err)
	return n, err
}

// timeout keeps a write's timeout for the writes after it, and makes the
// socket's close a reset (ResetOnTimeout).
func (f *tlsFeed) timeout(err error) {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		f.timedOut = err
		ResetOnTimeout(f.nc, err)
	}
}

// flush writes out: all of it through a goroutine's connection (within
// its write deadline), what the socket takes in a loop (ErrWouldBlock when
// not all).
func (f *tlsFeed) flush() error {
	if len(f.out) == 0 {
		return nil
	}
	var n int
	var err error
	if f.nc != nil {
		if f.timedOut != nil {
			return f.timedOut
		}
		n, err = f.nc.Write(f.out)
		f.timeout(err)
	} else {
		n, err = Write(f.fd, f.out)
	}
	f.out = f.out[:copy(f.out, f.out[n:])]
	if len(f.out) == 0 && cap(f.out) > outKeep {
		f.out = nil
	}
	return err
}

// Close closes the connection; in a loop, what the socket takes of out
// (the close_notify alert) is written first.
func (f *tlsFeed) Close() error {
	if f.nc != nil {
		return f.nc.Close()
	}
	if f.fd < 0 {
		return net.ErrClosed
	}
	f.flush()
	err := Close(f.fd)
	f.fd, f.out = -1, nil
	return err
}

func (f *tlsFeed) LocalAddr() net.Addr  { return f.local }
func (f *tlsFeed) RemoteAddr() net.Addr { return f.remote }

// The deadlines are the goroutine's connection's; a loop's socket has
// none.
func (f *tlsFeed) SetDeadline(t time.Time) error {
	if f.nc == nil {
		return nil
	}
	return f.nc.SetDeadline(t)
}

func (f *tlsFeed) SetReadDeadline(t time.Time) error {
	if f.nc == nil {
		return nil
	}
	return f.nc.SetReadDeadline(t)
}

func (f *tlsFeed) SetWriteDeadline(t time.Time) error {
	if f.nc == nil {
		return nil
	}
	return f.nc.SetWriteDeadline(t)
}

// CloseWrite shuts the goroutine's connection's writing side.
func (f *tlsFeed) CloseWrite() error {
	if cw, ok := f.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// SyscallConn gives the goroutine's connection's descriptor (peeks,
// parking).
func (f *tlsFeed) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := f.nc.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("poll: no network connection (an event loop owns the socket)")
}

// Unwrap returns the goroutine's connection (nil while a loop owns the
// socket).
func (f *tlsFeed) Unwrap() net.Conn { return f.nc }
