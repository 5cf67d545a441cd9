package proxy

import (
	"net"
	"syscall"
	"unsafe"
)

// peeker tells whether an idle connection is still open, by peeking at its
// socket without blocking: nothing to read (EAGAIN) means open; end of file,
// an error, or bytes nobody asked for mean the upstream is done with it.
type peeker struct {
	raw  syscall.RawConn // nil when the connection has no file descriptor
	fn   func(fd uintptr)
	buf  [1]byte
	open bool
	data bool // bytes wait to be read
}

func (p *peeker) init(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.raw = raw
	p.fn = p.peek // bound once: RawConn.Control would otherwise allocate a closure per call
}

func (p *peeker) alive() bool {
	if p.raw == nil {
		return true
	}
	p.open = false
	// Control, not Read: the peek never blocks, so it needs neither the
	// read lock nor the poller, only the descriptor kept open meanwhile.
	if err := p.raw.Control(p.fn); err != nil {
		return false
	}
	return p.open
}

func (p *peeker) peek(fd uintptr) { p.open, p.data = peekFD(fd, &p.buf) }

// peekFD looks at a socket's next byte without taking it or waiting: open
// when there is nothing to read (EAGAIN), data when bytes wait.
func peekFD(fd uintptr, buf *[1]byte) (open, data bool) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN, errno == 0 && n > 0
}

// gone reports whether the peer closed or reset the connection; bytes
// waiting to be read do not count.
func (p *peeker) gone() bool { return !p.alive() && !p.data }
