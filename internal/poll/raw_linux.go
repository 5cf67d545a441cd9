package poll

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A loop's reads, writes and peeks are raw system calls: on non-blocking
// sockets they never wait, so Go's scheduler need not hear of them. Through
// syscall.Syscall each would also wake Go's monitor thread whenever all Ps
// had been idle (entersyscall does), which with event loops, whose Ps idle
// between events, was about half of dlb's context switches (measured with
// the threads' voluntary_ctxt_switches).

// Read reads a non-blocking socket: ErrWouldBlock when it is empty,
// (0, io.EOF) when the peer closed it.
func Read(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == 0 && n == 0:
			return 0, io.EOF
		case e == 0:
			return int(n), nil
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			return 0, ErrWouldBlock
		}
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", e)}
	}
}

// Write writes p to a non-blocking socket; ErrWouldBlock with the bytes
// written when it took only part.
func Write(fd int, p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done))
		switch {
		case e == 0:
			done += int(n)
			continue
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			return done, ErrWouldBlock
		}
		return done, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", e)}
	}
	return done, nil
}

// Peek looks at a socket's next byte without taking it or waiting: open
// when there is nothing to read (the peer neither closed it nor sent
// anything), data when bytes wait.
func Peek(fd int) (open, data bool) {
	var b [1]byte
	return peekFD(uintptr(fd), &b)
}

func peekFD(fd uintptr, buf *[1]byte) (open, data bool) {
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return errno == unix.EAGAIN, errno == 0 && n > 0
}

// Close closes a descriptor.
func Close(fd int) error { return unix.Close(fd) }

// FD returns c's file descriptor (its network connection's, for a TLS
// one, which a record arriving makes readable), which stays valid while c
// is open; c stays in Go's poller.
func FD(c net.Conn) (int, bool) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd := -1
	if raw.Control(func(f uintptr) { fd = int(f) }) != nil || fd < 0 {
		return -1, false
	}
	return fd, true
}

// Detach takes c out of Go's poller: it returns a duplicate of its file
// descriptor (non-blocking, as c's) and closes c. release (nil when c is
// not under a limit, see Detacher) gives c's place under its connection
// limit back, once the descriptor is closed. On an error c is left as it
// was, open and still counted.
func Detach(c net.Conn) (fd int, release func(), err error) {
	nc := c
	if d, ok := c.(Detacher); ok {
		nc, release = d.Detach()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, nil, errors.New("poll: not a network connection with a file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, nil, err
	}
	fd = -1
	cerr := raw.Control(func(f uintptr) {
		fd, err = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, nil, err
	}
	nc.Close() // not c: its place under the limit goes with the duplicate
	return fd, release, nil
}

// Attach makes a net.Conn of a descriptor Detach returned, in Go's poller
// again, and closes the descriptor. Closing the connection calls release
// (when not nil); so does a failure.
func Attach(fd int, release func()) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		if release != nil {
			release()
		}
		return nil, err
	}
	if release == nil {
		return nc, nil
	}
	return &attachedConn{Conn: nc, release: release}, nil
}

// peeker looks at a goroutine's connection without reading it, through
// its RawConn (which keeps the descriptor open meanwhile).
type peeker struct {
	ready bool
	raw   syscall.RawConn // nil when the connection has no descriptor
	fn    func(fd uintptr)
	buf   [1]byte
	open  bool
	data  bool
}

func (p *peeker) init(nc net.Conn) {
	p.ready = true
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.raw = raw
	p.fn = p.peekFD // bound once: RawConn.Control would otherwise allocate a closure per call
}

func (p *peeker) peekFD(fd uintptr) { p.open, p.data = peekFD(fd, &p.buf) }

func (p *peeker) look() (open, data bool) {
	if p.raw == nil {
		return true, false
	}
	p.open, p.data = false, false
	// Control, not Read: the peek never blocks, so it needs neither the
	// read lock nor the poller, only the descriptor kept open meanwhile.
	if err := p.raw.Control(p.fn); err != nil {
		return false, false
	}
	return p.open, p.data
}

// hungUp reports whether the peer shut its writing side (POLLRDHUP), even
// with bytes still waiting to be read.
func (p *peeker) hungUp() bool {
	if p.raw == nil {
		return false
	}
	closed := false
	p.raw.Control(func(fd uintptr) { closed = hungUp(int(fd)) })
	return closed
}

// hungUp reports whether the peer shut a descriptor's writing side.
func hungUp(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}
