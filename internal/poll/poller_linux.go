package poll

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Poller is an epoll instance and a wake-up eventfd. One goroutine waits on
// it (Wait); any goroutine may add, re-arm and remove sockets, and wake the
// waiter.
//
// Wait does not block a thread in epoll_wait: a thread blocked in a system
// call keeps its P until Go's monitor takes it away (and the monitor,
// seeing that again and again, wakes every 20 µs to look: measured, most of
// a context switch per request). The epoll descriptor is itself in Go's
// poller instead, and the waiter parks on it as a goroutine on a socket
// does, looking with epoll_pwait and a timeout of zero.
type Poller struct {
	ep   int
	wake int // eventfd
	// The epoll instance as Go's poller knows it.
	epf      *os.File
	epr      syscall.RawConn
	lookFn   func(uintptr) bool // bound once: RawConn.Read would allocate a closure per call
	got      int                // lookFn's result
	gotErr   error
	looks    int       // lookFn's calls in this Wait: more than one, it parked
	ran      time.Time // when the waiter last parked or yielded
	deadline time.Time // epf's read deadline as last set
	events   []Event
}

// Event is a socket's readiness as Wait reports it.
type Event struct{ e unix.EpollEvent }

// FD is the socket's file descriptor.
func (e *Event) FD() int { return int(e.e.Fd) }

// Tag is the tag the socket was added with.
func (e *Event) Tag() int32 { return e.e.Pad }

// Hangup reports whether the event says the peer closed or reset the
// socket, or it has an error (bytes may still wait to be read).
func (e *Event) Hangup() bool { return e.e.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 }

// Mode is how a socket added to a Poller reports that it can be read.
type Mode uint32

const (
	// Level reports the socket at every Wait while it has bytes to read.
	Level Mode = 0
	// Edge reports the socket once each time bytes arrive: the reader
	// reads until the socket is empty (ErrWouldBlock) before the next.
	Edge Mode = unix.EPOLLET
	// OneShot reports the socket once, then not again until Rearm.
	OneShot Mode = unix.EPOLLONESHOT
)

// wakeTag is the tag of the wake-up eventfd, which Wait does not report.
const wakeTag = -1

// yieldEvery is how long a waiter that finds events at every Wait (and so
// never parks) runs before Wait lets the other goroutines of its P run:
// the runtime would preempt it only after 10 ms.
const yieldEvery = time.Millisecond

// New returns a Poller that reports up to batch events per Wait.
func New(batch int) (*Poller, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("eventfd", err)
	}
	p := &Poller{ep: ep, wake: wake, events: make([]Event, max(batch, 1))}
	if err := p.Add(wake, wakeTag, Level); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, err
	}
	// Non-blocking, so that os.NewFile puts it in Go's poller.
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, os.NewSyscallError("fcntl", err)
	}
	p.epf = os.NewFile(uintptr(ep), "dlb-poller")
	raw, err := p.epf.SyscallConn()
	if err != nil {
		p.epf.Close()
		unix.Close(wake)
		return nil, err
	}
	p.epr = raw
	p.lookFn = func(uintptr) bool {
		p.looks++
		p.got, p.gotErr = p.look()
		return p.got > 0 || p.gotErr != nil
	}
	return p, nil
}

// Add watches fd for bytes to read and for the peer's close, reporting its
// events with tag (not negative).
func (p *Poller) Add(fd int, tag int32, mode Mode) error {
	return p.ctl(unix.EPOLL_CTL_ADD, fd, tag, mode)
}

// Rearm changes how fd is watched; it watches a OneShot socket that has
// been reported again.
func (p *Poller) Rearm(fd int, tag int32, mode Mode) error {
	return p.ctl(unix.EPOLL_CTL_MOD, fd, tag, mode)
}

func (p *Poller) ctl(op, fd int, tag int32, mode Mode) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | uint32(mode), Fd: int32(fd), Pad: tag}
	if err := unix.EpollCtl(p.ep, op, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// Del stops watching fd. A registration lasts as long as the socket, not
// the descriptor: a socket that goes on under another descriptor (Sock's
// Attach) must leave the Poller first.
func (p *Poller) Del(fd int) error {
	if err := unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// Wake makes the waiter's Wait return (woken), now or at its next call.
// It must not be called after Close.
func (p *Poller) Wake() {
	one := [8]byte{1}
	unix.Write(p.wake, one[:])
}

// Wait returns the sockets ready, waiting until one is, Wake is called, or
// deadline passes (zero: no deadline). The events are valid until the next
// Wait. now is the caller's clock, read since its last Wait: a caller that
// never parks yields its P once every yieldEvery. Only one goroutine waits.
func (p *Poller) Wait(now, deadline time.Time) (events []Event, woken bool, err error) {
	if now.Sub(p.ran) >= yieldEvery {
		runtime.Gosched()
		p.ran = time.Now()
	}
	if !p.deadline.Equal(deadline) {
		p.deadline = deadline
		p.epf.SetReadDeadline(deadline)
	}
	p.got, p.gotErr, p.looks = 0, nil, 0
	err = p.epr.Read(p.lookFn)
	if p.looks > 1 {
		p.ran = time.Now() // it parked
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, false, nil
		}
		return nil, false, err
	}
	if p.gotErr != nil {
		return nil, false, p.gotErr
	}
	events = p.events[:p.got]
	for i := 0; i < len(events); i++ {
		if events[i].Tag() == wakeTag {
			var buf [8]byte
			unix.Read(p.wake, buf[:])
			woken = true
			last := len(events) - 1
			events[i] = events[last]
			events = events[:last]
			i--
		}
	}
	return events, woken, nil
}

// look returns the number of events ready now, without waiting (a raw
// system call: it returns at once, so the scheduler need not hear of it).
func (p *Poller) look() (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.ep), uintptr(unsafe.Pointer(&p.events[0].e)), uintptr(len(p.events)), 0, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, os.NewSyscallError("epoll_pwait", e)
	}
}

// Close closes the epoll instance and the eventfd; the sockets it watched
// stay open.
func (p *Poller) Close() error {
	err := p.epf.Close()
	unix.Close(p.wake)
	return err
}
