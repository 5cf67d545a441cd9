package poll

import (
	"net"
	"sync"
	"time"
)

// Sock is a socket with one owner at a time: an event loop, which holds
// its descriptor out of Go's poller and reads and writes it raw, never
// waiting (ErrWouldBlock instead), or a goroutine, which uses it as a
// net.Conn (any: a *tls.Conn too) through Go's poller, with deadlines.
// Detach hands it to a loop and Attach back to a goroutine; Read, Write,
// Close, the deadlines and the peeks do what the owner of the moment
// needs, so that no caller asks which it is.
//
// A TLS socket (NewTLSSock) keeps its *tls.Conn with either owner: a
// loop's reads and writes go through it to the raw descriptor (tls.go).
//
// Create it with NewSock or NewTLSSock. Peeks (Alive, Gone) may run on another goroutine
// than the owner's reads and writes, one at a time; nothing else may.
type Sock struct {
	nc   net.Conn // the goroutine's (nil while a loop owns it); a TLS socket's *tls.Conn always
	tls  *tlsFeed // a TLS socket's network connection (nil: plain)
	fd   int      // the loop's descriptor (-1 while a goroutine owns it)
	loop bool     // a loop owns it
	// release gives a loop-owned socket's place under its connection
	// limit back when it is closed (nil: none).
	release func()
	// dry is set while a loop owns it once a read found it empty (or
	// took less than asked for, which empties it): the next read waits
	// for Ready.
	dry bool
	// The goroutine's deadlines as last set (zero: none).
	readDeadline, writeDeadline time.Time

	peekMu sync.Mutex
	peek   peeker // the goroutine's connection's, made at the first peek
}

// NewSock returns c as a goroutine-owned Sock; c may be the *tls.Conn of
// a TLS Sock given up with Conn (a parked connection woken).
func NewSock(c net.Conn) *Sock { return &Sock{nc: c, tls: tlsFeedOf(c), fd: -1} }

// Conn returns the goroutine's connection (nil while a loop owns the
// socket), to give it up to another server or a parking, or to run a TLS
// socket's handshake; once given up, the Sock is not used.
func (s *Sock) Conn() net.Conn {
	if s.loop {
		return nil
	}
	return s.nc
}

// FD returns the loop's descriptor (-1 while a goroutine owns the
// socket), to watch it with a Poller.
func (s *Sock) FD() int { return s.fd }

// Detach hands the socket to an event loop: its connection leaves Go's
// poller (Detach, the function) and its descriptor is the Sock's. On an
// error nothing changed: the goroutine still owns it.
func (s *Sock) Detach() error {
	nc := s.nc
	if s.tls != nil {
		nc = s.tls.nc
	}
	fd, release, err := Detach(nc)
	if err != nil {
		return err
	}
	if s.tls != nil {
		s.tls.nc, s.tls.fd, s.tls.dry = nil, fd, false
	} else {
		s.nc = nil
	}
	s.fd, s.loop, s.release, s.dry = fd, true, release, false
	s.readDeadline, s.writeDeadline = time.Time{}, time.Time{}
	s.peek = peeker{}
	return nil
}

// Attach hands a loop's socket to a goroutine, as a net.Conn in Go's
// poller that keeps its place under the connection limit. On an error the
// socket is closed (and its place given back).
func (s *Sock) Attach() error {
	nc, err := Attach(s.fd, s.release)
	s.fd, s.loop, s.release = -1, false, nil
	switch {
	case s.tls == nil:
		s.nc = nc
	case err != nil:
		s.tls.fd, s.nc = -1, nil // closed
	default:
		s.tls.nc, s.tls.fd = nc, -1
	}
	return err
}

// Read reads into p. A loop's read never waits: ErrWouldBlock when the
// socket is empty, or was found empty since the last Ready; (0, io.EOF)
// when the peer closed it. A loop's read of a TLS socket decrypts records
// until p is full or none is left whole (the rest of one waits for the
// next Ready), so that an empty read means the same as a plain socket's.
func (s *Sock) Read(p []byte) (int, error) {
	if !s.loop {
		return s.nc.Read(p)
	}
	if s.dry {
		return 0, ErrWouldBlock
	}
	if s.tls != nil {
		return s.readTLS(p)
	}
	n, err := Read(s.fd, p)
	s.dry = err == ErrWouldBlock || n < len(p)
	return n, err
}

func (s *Sock) readTLS(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := s.nc.Read(p[n:])
		n += m
		switch {
		case err == nil:
			continue
		case err == errDry:
			s.dry = true
			if n == 0 {
				return 0, ErrWouldBlock
			}
		case n == 0:
			return 0, err
		}
		// What was read first; *tls.Conn keeps any other error for the
		// next read.
		return n, nil
	}
	return n, nil
}

// Ready tells a loop's socket that its Poller reported it: it may hold
// bytes again.
func (s *Sock) Ready() {
	s.dry = false
	if s.tls != nil {
		s.tls.dry = false
	}
}

// Buffers reports whether the socket may hold bytes already taken from
// its descriptor, which no poll event announces: a TLS socket's records
// (read with its handshake, or ahead by a goroutine). A loop that adopts
// it reads it at once.
func (s *Sock) Buffers() bool { return s.tls != nil }

// Drained reports whether a loop's read found the socket empty since the
// last Ready (a goroutine's never is).
func (s *Sock) Drained() bool { return s.dry }

// Write writes p. A loop's write never waits: what the socket does not
// take returns ErrWouldBlock with the bytes written; a TLS socket's takes
// all of p, its records written with one system call, and keeps what the
// socket did not take (Unsent) to write first next time. A goroutine's
// write that times out makes the socket's close a reset (ResetOnTimeout).
func (s *Sock) Write(p []byte) (int, error) {
	if s.loop {
		if s.tls == nil {
			return Write(s.fd, p)
		}
		n, err := s.nc.Write(p)
		if err == nil {
			if err = s.tls.flush(); err == ErrWouldBlock {
				err = nil
			}
		}
		return n, err
	}
	n, err := s.nc.Write(p)
	ResetOnTimeout(s.nc, err)
	return n, err
}

// Unsent reports whether a TLS socket holds records its socket did not
// take in a loop.
func (s *Sock) Unsent() bool { return s.tls != nil && len(s.tls.out) > 0 }

// Flush writes what Unsent reports: all of it on a goroutine (within the
// write deadline), what the socket takes in a loop (ErrWouldBlock when not
// all).
func (s *Sock) Flush() error {
	if s.tls == nil || s.nc == nil {
		return nil
	}
	return s.tls.flush()
}

// Close closes the socket. A goroutine's may be closed from another
// goroutine (to end a wait); a loop's place under the connection limit is
// given back.
func (s *Sock) Close() error {
	if s.loop {
		var err error
		if s.tls != nil {
			err = s.nc.Close() // close_notify, then the descriptor (tlsFeed.Close)
			s.nc = nil
		} else {
			err = Close(s.fd)
		}
		s.fd, s.loop = -1, false
		if s.release != nil {
			s.release()
			s.release = nil
		}
		return err
	}
	if s.nc == nil {
		return nil
	}
	return s.nc.Close()
}

// Closed reports whether a loop closed the socket (it cannot tell for a
// goroutine's, which another goroutine may close).
func (s *Sock) Closed() bool { return !s.loop && s.nc == nil }

// CloseWrite shuts the writing side of a goroutine's connection, when it
// has one; it reports whether it did.
func (s *Sock) CloseWrite() bool {
	if s.loop {
		return false
	}
	cw, ok := s.nc.(interface{ CloseWrite() error })
	if ok {
		cw.CloseWrite()
	}
	return ok
}

// SetReadDeadline sets the goroutine's read deadline (zero: none). A
// loop's socket has none: its reads never wait.
func (s *Sock) SetReadDeadline(t time.Time) {
	if s.loop {
		return
	}
	s.readDeadline = t
	s.nc.SetReadDeadline(t)
}

// ReadDeadline returns the read deadline as last set (zero: none).
func (s *Sock) ReadDeadline() time.Time { return s.readDeadline }

// ExtendWriteDeadline gives the goroutine's writes d from now (zero: read
// the clock here), moving the deadline only when less than half of d is
// left, so that a busy socket resets its timer twice per d rather than at
// every write. A loop's socket has none: its writes never wait.
func (s *Sock) ExtendWriteDeadline(now time.Time, d time.Duration) {
	if s.loop {
		return
	}
	if now.IsZero() {
		now = time.Now()
	}
	if s.writeDeadline.Sub(now) > d/2 {
		return
	}
	s.writeDeadline = now.Add(d)
	s.nc.SetWriteDeadline(s.writeDeadline)
}

// ClearWriteDeadline removes the goroutine's write deadline, if set.
func (s *Sock) ClearWriteDeadline() {
	if !s.writeDeadline.IsZero() {
		s.writeDeadline = time.Time{}
		s.nc.SetWriteDeadline(s.writeDeadline)
	}
}

// Alive reports whether the peer has neither closed the socket nor sent
// anything: a kept-alive connection's look before it carries a request.
// It looks without reading or waiting; a socket it cannot look at (off
// Linux) counts as alive.
func (s *Sock) Alive() bool {
	open, _ := s.look()
	return open
}

// Gone reports whether the peer closed or reset the socket; bytes waiting
// to be read do not count. A socket it cannot look at is not gone. A TLS
// client that leaves sends close_notify before its FIN, so bytes wait on
// its socket: there the FIN itself (POLLRDHUP) tells it from a pipelined
// request.
func (s *Sock) Gone() bool {
	open, data := s.look()
	if !open && !data {
		return true
	}
	if !data {
		return false
	}
	if s.tls == nil {
		if _, ok := s.nc.(interface{ NetConn() net.Conn }); !ok {
			return false
		}
	}
	if s.loop {
		return hungUp(s.fd)
	}
	s.peekMu.Lock()
	defer s.peekMu.Unlock()
	return s.peek.hungUp()
}

// Alive reports whether the peer has neither closed c nor sent anything,
// looking at c's own descriptor: a connection without one (a *tls.Conn)
// counts as alive.
func Alive(c net.Conn) bool {
	var p peeker
	p.init(c)
	open, _ := p.look()
	return open
}

func (s *Sock) look() (open, data bool) {
	if s.loop {
		return Peek(s.fd)
	}
	s.peekMu.Lock()
	defer s.peekMu.Unlock()
	if !s.peek.ready {
		// A TLS connection's bytes are records: its network
		// connection is the one to look at.
		nc := s.nc
		if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
			nc = tc.NetConn()
		}
		s.peek.init(nc)
	}
	return s.peek.look()
}
