package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/dlb-lb/dlb/internal/h1"
	"golang.org/x/sys/unix"
)

// The fast data path's event loops. Go's poller serves a
// goroutine per connection: each read that finds nothing parks the
// goroutine, and the poller wakes it when bytes come; measured, that was an
// empty read and more context switches per request than nginx. An event
// loop instead waits for all of its connections at once and, when a socket
// has bytes, reads them once and does what they call for right there:
// parse, route, pick, write the request to a kept-alive replica connection;
// then, when the replica's answer comes, relay it to the client in one
// write. One read and one write per direction per request, as nginx.
//
// The loop serves what needs no waiting other than for the next request
// and for the replica's response head: a request whose head and body are in
// its buffer, with a route, a ready replica and a kept-alive connection to
// it (the loop's own, or one taken from the replica's transport), whose
// response comes whole with its head into the connection's 4 KiB buffer. It
// hands the connection to a goroutine (fastConn.serve, the path that serves
// everything) whenever something else has to wait: a head or body that
// comes in pieces, a request for net/http, a queue for a replica, a
// replica connection to dial, a body that does not come with its head (a
// large or streamed response), a head slower than loopPatience, a client
// that does not take the whole response at once, a failed try (the
// goroutine retries it as the Proxy would). The goroutine gives the
// connection back to the loop when it is idle again. The goroutine keeps
// its timeouts itself; the loop keeps only the idle timeout and
// loopPatience.
//
// The connections a loop serves are out of Go's poller (a socket in both
// would wake a thread of Go's poller for its events too): the loop holds a
// duplicate of each file descriptor and the net.Conn is closed; a
// goroutine taking one over makes a net.Conn of it again. The loop itself
// waits in Go's poller, on its epoll instance's descriptor, and reads,
// writes and looks with raw system calls (see wait and rawRead): with
// epoll_wait blocking a thread, or reads and writes through
// syscall.Syscall, Go's scheduler and its monitor thread added more context
// switches than the loop saved (docs/performance.md).

// loopPatience is how long a loop waits for a replica's response head
// before a goroutine takes the exchange over (with the timeouts and the
// client watch it has). A response whose head came without all of its
// body goes to a goroutine at once: the body may be a stream.
const loopPatience = time.Second

// loopSlice is how long a loop that never runs out of events runs before
// it lets the other goroutines of its P run.
const loopSlice = time.Millisecond

// Kinds of file descriptor, in the epoll event's data.
const (
	kindWake int32 = iota
	kindClient
	kindUpstream
)

// eventLoop is one event loop; there is one per P (GOMAXPROCS).
type eventLoop struct {
	fs   *FastServer
	ep   int // epoll
	wake int // eventfd: adopt, signal and stop write to it
	// The epoll instance as Go's poller knows it: the loop waits on it
	// as a goroutine waits on a socket (see wait).
	epf      *os.File
	epr      syscall.RawConn
	waitFn   func(uintptr) bool // bound once: RawConn.Read would allocate a closure per call
	got      int                // waitFn's result
	gotErr   error
	looks    int       // waitFn's calls in this wait: more than one, it parked
	ran      time.Time // when the loop last parked or yielded
	deadline time.Time // epf's read deadline as last set

	mu       sync.Mutex
	inbox    []*loopConn // connections to adopt
	quitting bool        // stop was called

	live atomic.Int64 // client connections it holds (its inbox too), for Shutdown

	// Only the loop's goroutine uses what follows.
	clients map[int32]*loopConn
	ups     map[int32]*h1Conn
	idle    loopList    // idle clients, the least recently active first
	fresh   loopList    // new clients that have sent nothing yet, the oldest first
	flight  []*loopConn // clients waiting for a replica's response
	pool    map[*h1Transport][]*h1Conn
	pooled  int
	events  []unix.EpollEvent
	free    []*fastConn // with their buffers, for the next request
	now     time.Time   // read once per wake-up
	// next is when the loop next has something to check (zero: nothing):
	// the first idle client's idle timeout, an exchange's patience, the
	// idle replica connections' sweep.
	nextSweep time.Time
	closing   bool // the server is shutting down: idle clients closed
}

// loopConn is a client connection a loop holds.
type loopConn struct {
	fd       int
	remote   string // ip:port
	peer     string // ip
	release  func() // gives its place under the connection limit back (nil: none)
	fc       *fastConn
	readable bool // the socket may hold bytes: an event came, and no read found it empty since
	fresh    bool // accepted and silent so far: in the fresh list, closed at the header timeout
	inFlight int  // its index in flight plus one; 0: not in flight
	deadline time.Time
	// In the idle list.
	prev, next *loopConn
	idleSince  time.Time
}

// loopList is a doubly linked list of idle clients.
type loopList struct{ first, last *loopConn }

func (ll *loopList) push(lc *loopConn) {
	lc.prev, lc.next = ll.last, nil
	if ll.last != nil {
		ll.last.next = lc
	} else {
		ll.first = lc
	}
	ll.last = lc
}

func (ll *loopList) remove(lc *loopConn) {
	if lc.prev != nil {
		lc.prev.next = lc.next
	} else if ll.first == lc {
		ll.first = lc.next
	} else {
		return // not in the list
	}
	if lc.next != nil {
		lc.next.prev = lc.prev
	} else {
		ll.last = lc.prev
	}
	lc.prev, lc.next = nil, nil
}

// startLoops starts one event loop per P; nil if epoll is not to be had.
func startLoops(fs *FastServer) []*eventLoop {
	n := runtime.GOMAXPROCS(0)
	loops := make([]*eventLoop, 0, n)
	for range n {
		l, err := newEventLoop(fs)
		if err != nil {
			fs.p.opts.Log.Warn().Err(err).Msg("fast data path: no event loop, a goroutine serves each connection")
			for _, l := range loops {
				go l.run()
				l.stop()
			}
			return nil
		}
		loops = append(loops, l)
	}
	for _, l := range loops {
		go l.run()
	}
	return loops
}

func newEventLoop(fs *FastServer) (*eventLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake), Pad: kindWake}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	// Non-blocking, so that os.NewFile puts it in Go's poller.
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, os.NewSyscallError("fcntl", err)
	}
	l := &eventLoop{fs: fs, ep: ep, wake: wake, clients: map[int32]*loopConn{}, ups: map[int32]*h1Conn{},
		pool: map[*h1Transport][]*h1Conn{}, events: make([]unix.EpollEvent, 256)}
	l.epf = os.NewFile(uintptr(ep), "dlb-event-loop")
	raw, err := l.epf.SyscallConn()
	if err != nil {
		l.epf.Close()
		unix.Close(wake)
		return nil, err
	}
	l.epr = raw
	l.waitFn = func(uintptr) bool {
		l.looks++
		l.got, l.gotErr = l.peek()
		return l.got > 0 || l.gotErr != nil
	}
	return l, nil
}

// wait returns the events ready, waiting for them until the next sweep.
// It does not wait in epoll_wait: a thread blocked in a system call keeps
// its P until Go's monitor takes it away (and the monitor, seeing that
// happen again and again, wakes every 20 µs to look: measured, most of a
// context switch per request). The loop parks on the epoll instance's
// descriptor in Go's poller instead, as a goroutine on a socket does, and
// looks with a wait of zero.
func (l *eventLoop) wait() (int, error) {
	// A loop with events waiting at every look never parks: it lets the
	// other goroutines of its P (hand-offs, timers) run every loopSlice,
	// rather than every 10 ms when the runtime would preempt it.
	if l.now.Sub(l.ran) >= loopSlice {
		runtime.Gosched()
		l.ran = time.Now()
	}
	if !l.deadline.Equal(l.nextSweep) {
		l.deadline = l.nextSweep
		l.epf.SetReadDeadline(l.deadline)
	}
	l.got, l.gotErr, l.looks = 0, nil, 0
	err := l.epr.Read(l.waitFn)
	if l.looks > 1 {
		l.ran = time.Now() // it parked
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil
		}
		return 0, err
	}
	return l.got, l.gotErr
}

// adopt gives the loop a client connection, new or back from a goroutine.
func (l *eventLoop) adopt(lc *loopConn) {
	l.live.Add(1)
	l.mu.Lock()
	if l.quitting {
		l.mu.Unlock()
		unix.Close(lc.fd)
		if lc.release != nil {
			lc.release()
		}
		l.live.Add(-1)
		return
	}
	l.inbox = append(l.inbox, lc)
	first := len(l.inbox) == 1
	l.mu.Unlock()
	if first {
		l.signal()
	}
}

// signal wakes the loop.
func (l *eventLoop) signal() {
	var one = [8]byte{1}
	unix.Write(l.wake, one[:])
}

// stop ends the loop: it closes whatever it still holds.
func (l *eventLoop) stop() {
	l.mu.Lock()
	l.quitting = true
	l.mu.Unlock()
	l.signal()
}

// run waits for events and serves them until stop.
func (l *eventLoop) run() {
	for !l.turn() {
	}
	l.mu.Lock()
	inbox := l.inbox
	l.inbox = nil
	l.mu.Unlock()
	for _, lc := range inbox {
		l.clients[int32(lc.fd)] = lc
	}
	for _, lc := range l.clients {
		l.closeClient(lc)
	}
	for fd, hc := range l.ups {
		unix.Close(int(fd))
		hc.fd, hc.r.fd, hc.client, hc.pooled = -1, -1, nil, false
	}
	clear(l.ups)
	clear(l.pool)
	l.epf.Close()
	unix.Close(l.wake)
}

// turn waits once and serves what came; it reports whether the loop is
// to end. A panic costs the connection being served, not the process, as
// net/http's server does.
func (l *eventLoop) turn() (quit bool) {
	var cur *loopConn
	defer func() {
		if v := recover(); v != nil {
			l.fs.p.opts.Log.Error().Interface("panic", v).Msg("fast data path: connection dropped after a panic in an event loop (a bug: please report it)")
			if cur != nil && l.clients[int32(cur.fd)] == cur {
				l.closeClient(cur)
			}
		}
	}()
	n, err := l.wait()
	if err != nil && err != unix.EINTR {
		l.fs.p.opts.Log.Error().Err(err).Msg("fast data path: epoll_wait failed")
		time.Sleep(10 * time.Millisecond)
	}
	l.now = time.Now()
	for _, ev := range l.events[:max(n, 0)] {
		switch ev.Pad {
		case kindWake:
			if l.wakeUp() {
				return true
			}
		case kindClient:
			if lc := l.clients[ev.Fd]; lc != nil {
				cur = lc
				l.onClient(lc, ev.Events)
			}
		case kindUpstream:
			if hc := l.ups[ev.Fd]; hc != nil {
				cur = hc.client
				l.onUpstream(hc)
			}
		}
		cur = nil
	}
	if !l.nextSweep.IsZero() && !l.now.Before(l.nextSweep) {
		l.sweep()
	}
	return false
}

// peek returns the events ready now, without waiting (a raw system call:
// it returns at once, so the scheduler need not know of it).
func (l *eventLoop) peek() (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// wakeUp adopts the inbox and sees to a shutdown; it reports whether the
// loop is to end.
func (l *eventLoop) wakeUp() bool {
	var buf [8]byte
	unix.Read(l.wake, buf[:])
	l.mu.Lock()
	inbox, quit := l.inbox, l.quitting
	l.inbox = nil
	l.mu.Unlock()
	if l.fs.closing.Load() && !l.closing {
		l.closing = true
		for _, ll := range []*loopList{&l.idle, &l.fresh} {
			for lc := ll.first; lc != nil; {
				next := lc.next
				l.closeClient(lc)
				lc = next
			}
		}
	}
	for _, lc := range inbox {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(lc.fd), Pad: kindClient}
		if l.closing || unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, lc.fd, &ev) != nil {
			l.clients[int32(lc.fd)] = lc
			l.closeClient(lc)
			continue
		}
		l.clients[int32(lc.fd)] = lc
		// Edge-triggered: bytes already there are reported by the
		// registration itself.
		l.toIdle(lc)
	}
	return quit
}

// onClient serves an event on a client connection.
func (l *eventLoop) onClient(lc *loopConn, events uint32) {
	lc.readable = true
	if lc.inFlight > 0 {
		// Busy with a replica: bytes wait (a pipelined request), but a
		// client that went away ends the exchange, as the goroutine's
		// watch does.
		if events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && rawGone(lc.fd) {
			l.clientGone(lc)
		}
		return
	}
	l.advance(lc)
}

// advance serves lc's requests as far as it can without waiting.
func (l *eventLoop) advance(lc *loopConn) {
	for {
		fc := lc.fc
		if fc != nil && fc.n > 0 {
			v := h1.ParseRequest(fc.buf[:fc.n], &fc.req)
			switch {
			case v == h1.OK && fc.req.HeadLen+int(max(fc.req.ContentLength, 0)) <= fc.n:
				l.begin(lc)
				return
			case v != h1.Incomplete && v != h1.OK, fc.n == len(fc.buf), !lc.readable:
				// Refused, for net/http, too large, or waiting for
				// more: a goroutine's.
				l.toGoroutine(lc, resumeRead)
				return
			}
		} else if !lc.readable {
			l.toIdle(lc)
			return
		}
		if fc == nil {
			fc = l.activate(lc)
		}
		m, err := rawRead(lc.fd, fc.buf[fc.n:])
		switch {
		case err == errWouldBlock:
			lc.readable = false
		case m == 0:
			l.closeClient(lc) // closed, or reset
			return
		default:
			fc.n += m
			lc.readable = fc.n == len(fc.buf) // a short read emptied the socket
		}
	}
}

// begin starts forwarding the request in lc's buffer.
func (l *eventLoop) begin(lc *loopConn) {
	fc := lc.fc
	l.unlist(lc)
	if !fc.pick() {
		l.toGoroutine(lc, resumeRead)
		return
	}
	hc := l.upstream(fc.ft, fc.picked.Address(), !fc.replayable())
	if hc == nil {
		l.toGoroutine(lc, resumePicked) // it dials
		return
	}
	fc.begin(l.now)
	fc.try = loopTry{run: fc.a.up.Admissions()}
	if err := fc.send(hc, fc.route, l.now); err != nil {
		fc.try.err, fc.try.got = err, hc.r.got
		hc.close()
		l.toGoroutine(lc, resumeTry)
		return
	}
	fc.try.hc, hc.client = hc, lc
	lc.deadline = l.now.Add(loopPatience)
	if d := l.fs.p.responseHeaderTimeout(fc.route); d > 0 && d < loopPatience {
		lc.deadline = l.now.Add(d)
	}
	l.flight = append(l.flight, lc)
	lc.inFlight = len(l.flight)
	l.sweepBy(lc.deadline)
}

// onUpstream serves an event on a replica connection.
func (l *eventLoop) onUpstream(hc *h1Conn) {
	hc.r.dry = false
	lc := hc.client
	if lc == nil {
		// Idle in the pool: the replica closed it, or sent what nobody
		// asked for (or the event was for the descriptor's last user).
		if !rawAlive(hc.fd) {
			hc.close()
		}
		return
	}
	fc := lc.fc
	// One read: Peek asks for a byte more than is buffered (the reader
	// knows when the socket is empty and does not read it again).
	_, rerr := hc.br.Peek(hc.br.Buffered() + 1)
	if rerr == errWouldBlock || rerr == bufio.ErrBufferFull {
		rerr = nil
	}
	if hc.br.Buffered() == 0 && rerr == nil {
		return
	}
	b, _ := hc.br.Peek(hc.br.Buffered())
	rs := &fc.resp
	switch h1.ParseResponse(b, rs) {
	case h1.Incomplete:
		switch {
		case rerr != nil:
			l.tryFailed(lc, rerr)
		case hc.br.Buffered() == hc.br.Size():
			l.toGoroutine(lc, resumeTry) // a large head: the goroutine's reader grows
		}
		return
	case h1.Reject, h1.Handoff:
		l.tryFailed(lc, errBadResponse)
		return
	}
	// The head is in: is the whole response?
	rest := int64(len(b) - rs.HeadLen)
	head := fc.req.Method[0] == 'H' && string(fc.req.Method) == "HEAD"
	complete := false
	switch {
	case rs.Status < 200:
	case rs.Bodyless(head):
		complete = true
	case rs.Chunked:
		var cs h1.ChunkScanner
		n, ok := cs.Scan(b[rs.HeadLen:])
		complete = ok && cs.Done() && int64(n) == rest
	case rs.ContentLength >= 0:
		complete = rest >= rs.ContentLength
	}
	if !complete {
		// The rest comes later, maybe much later (a stream): the
		// goroutine relays the head now and the body as it comes.
		fc.try.head = true
		l.toGoroutine(lc, resumeTry)
		return
	}
	l.land(lc)
	keep := fc.finish(fc.relay(hc, b))
	if !keep || l.closing || fc.gone.Load() {
		if len(fc.out) > 0 && !fc.gone.Load() {
			l.toGoroutine(lc, resumeClose) // the end of the response first
			return
		}
		l.closeClient(lc)
		return
	}
	used := fc.req.HeadLen + int(max(fc.req.ContentLength, 0))
	fc.n = copy(fc.buf[:], fc.buf[used:fc.n])
	if len(fc.out) > 0 {
		l.toGoroutine(lc, resumeRead) // it writes what the client did not take
		return
	}
	l.advance(lc)
}

// land takes lc out of flight.
func (l *eventLoop) land(lc *loopConn) {
	if lc.inFlight == 0 {
		return
	}
	i := lc.inFlight - 1
	last := len(l.flight) - 1
	l.flight[i] = l.flight[last]
	l.flight[i].inFlight = i + 1
	l.flight[last] = nil
	l.flight = l.flight[:last]
	lc.inFlight = 0
	if hc := lc.fc.try.hc; hc != nil {
		hc.client = nil
	}
}

// tryFailed hands a failed try to a goroutine, which retries it or
// answers as the Proxy does.
func (l *eventLoop) tryFailed(lc *loopConn, err error) {
	fc := lc.fc
	l.land(lc)
	hc := fc.try.hc
	fc.try.hc, fc.try.err, fc.try.got = nil, err, hc.r.got
	hc.close()
	l.toGoroutine(lc, resumeTry)
}

// clientGone ends an exchange whose client went away, as exchange does.
func (l *eventLoop) clientGone(lc *loopConn) {
	fc := lc.fc
	l.land(lc)
	fc.gone.Store(true)
	fc.try.hc.close()
	fc.try.hc = nil
	fc.status = StatusClientClosed
	fc.finish(false)
	l.closeClient(lc)
}

// toGoroutine hands lc to a goroutine, which serves it from where from
// says and gives it back when idle.
func (l *eventLoop) toGoroutine(lc *loopConn, from resumeKind) {
	fc := lc.fc
	l.land(lc)
	l.unlist(lc)
	delete(l.clients, int32(lc.fd))
	// Out of the epoll set first: a registration lasts as long as the
	// socket, whichever descriptor refers to it, and the goroutine's is
	// another.
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, lc.fd, nil)
	c, err := attachConn(lc.fd, lc.release)
	lc.fd = -1
	if err == nil && from == resumeTry && fc.try.hc != nil {
		err = l.giveBack(fc.try.hc)
	}
	if err != nil {
		l.fs.p.opts.Log.Error().Err(err).Str("client", lc.remote).Msg("fast data path: could not hand a connection to a goroutine; closed")
		if fc.try.hc != nil {
			fc.try.hc.close()
		}
		switch from {
		case resumeTry:
			fc.a.up.End(true)
		case resumePicked:
			fc.picked.End(false) // the slot pick claimed
		}
		if c != nil {
			c.Close()
		}
		l.live.Add(-1)
		return
	}
	lc.fc = nil
	fc.c, fc.fd = c, -1
	fc.state.Store(connActive)
	l.fs.goServe(fc, from)
	l.live.Add(-1)
}

// activate gives lc a fastConn and buffers for a request.
func (l *eventLoop) activate(lc *loopConn) *fastConn {
	var fc *fastConn
	if n := len(l.free); n > 0 {
		fc = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		fc = newFastConn(l.fs, nil, "")
		fc.buf = fastBuffers.Get().(*[fastBufferSize]byte)
		fc.bw = fastWriters.Get().(*bufio.Writer)
		fc.bw.Reset(&fc.wr)
		fc.home = l
	}
	fc.fd, fc.remote, fc.peer = lc.fd, lc.remote, lc.peer
	lc.fc = fc
	return fc
}

// loopFree is how many fastConns (with their buffers) a loop keeps for the
// next requests.
const loopFree = 64

// toIdle puts lc in the idle list, its fastConn back to the free ones.
func (l *eventLoop) toIdle(lc *loopConn) {
	if fc := lc.fc; fc != nil {
		lc.fc = nil
		l.recycle(fc)
	}
	if lc.fresh {
		// A new connection has the header timeout to send its first
		// request, from when it came (an event with no bytes does not
		// give it more), as net/http's server gives it: one that sends
		// nothing must not hold a place under --max-conns for the idle
		// timeout.
		if lc.idleSince.IsZero() {
			lc.idleSince = l.now
			l.fresh.push(lc)
			l.sweepBy(lc.idleSince.Add(l.fs.readHeaderTimeout))
		}
		return
	}
	l.idle.remove(lc)
	lc.idleSince = l.now
	l.idle.push(lc)
	l.sweepBy(lc.idleSince.Add(l.fs.idleTimeout))
}

// unlist takes lc out of the idle or the fresh list; it is fresh no more.
func (l *eventLoop) unlist(lc *loopConn) {
	if lc.fresh {
		l.fresh.remove(lc)
		lc.fresh = false
		return
	}
	l.idle.remove(lc)
}

func (l *eventLoop) recycle(fc *fastConn) {
	if len(l.free) >= loopFree || len(fc.out) > 0 {
		fastBuffers.Put(fc.buf)
		fc.bw.Reset(nil)
		fastWriters.Put(fc.bw)
		return
	}
	fc.n, fc.fd, fc.end = 0, -1, time.Time{}
	fc.gone.Store(false)
	fc.try = loopTry{}
	l.free = append(l.free, fc)
}

// closeClient closes a client connection the loop holds.
func (l *eventLoop) closeClient(lc *loopConn) {
	if lc.fd < 0 {
		return
	}
	if lc.inFlight > 0 {
		fc := lc.fc
		l.land(lc)
		fc.try.hc.close()
		fc.try.hc = nil
		fc.a.up.End(false)
	}
	l.unlist(lc)
	delete(l.clients, int32(lc.fd))
	unix.Close(lc.fd)
	lc.fd = -1
	if lc.release != nil {
		lc.release()
	}
	if fc := lc.fc; fc != nil {
		lc.fc = nil
		fc.bw.Reset(&fc.wr) // what it held is for nobody now
		fc.out = fc.out[:0]
		l.recycle(fc)
	}
	l.live.Add(-1)
}

// sweepBy makes the loop look at its deadlines by t.
func (l *eventLoop) sweepBy(t time.Time) {
	if l.nextSweep.IsZero() || t.Before(l.nextSweep) {
		l.nextSweep = t
	}
}

// sweep closes idle clients past the idle timeout, new ones that sent
// nothing past the header timeout, hands exchanges past
// their patience to goroutines, closes replica connections idle too long
// or of a replica let go, and sets the next sweep.
func (l *eventLoop) sweep() {
	now := l.now
	l.nextSweep = time.Time{}
	for lc := l.idle.first; lc != nil; lc = l.idle.first {
		if end := lc.idleSince.Add(l.fs.idleTimeout); end.After(now) {
			l.sweepBy(end)
			break
		}
		l.closeClient(lc)
	}
	for lc := l.fresh.first; lc != nil; lc = l.fresh.first {
		if end := lc.idleSince.Add(l.fs.readHeaderTimeout); end.After(now) {
			l.sweepBy(end)
			break
		}
		l.closeClient(lc)
	}
	for i := 0; i < len(l.flight); {
		lc := l.flight[i]
		if lc.deadline.After(now) {
			l.sweepBy(lc.deadline)
			i++
			continue
		}
		fc := lc.fc
		hc := fc.try.hc
		b, _ := hc.br.Peek(hc.br.Buffered())
		fc.try.head = len(b) > 0 && h1.ParseResponse(b, &fc.resp) == h1.OK
		l.toGoroutine(lc, resumeTry) // flight[i] is another one now
	}
	if l.pooled > 0 {
		for t, hcs := range l.pool {
			gen := t.gen.Load()
			kept := hcs[:0]
			for _, hc := range hcs {
				if hc.idleGen == gen && hc.fresh(now) {
					kept = append(kept, hc)
					continue
				}
				l.pooled--
				hc.pooled = false
				hc.close()
			}
			clear(hcs[len(kept):])
			if len(kept) == 0 {
				delete(l.pool, t)
			} else {
				l.pool[t] = kept
			}
		}
		if l.pooled > 0 {
			l.sweepBy(now.Add(time.Second))
		}
	}
}

// upstream returns a kept-alive connection to addr for a request: the
// loop's own, else one from the transport's pool; nil if none (a
// goroutine dials). check looks at it first (one peek), for a request that
// cannot be sent again should the replica have closed it.
func (l *eventLoop) upstream(t *h1Transport, addr string, check bool) *h1Conn {
	gen := t.gen.Load()
	for hcs := l.pool[t]; len(hcs) > 0; hcs = l.pool[t] {
		hc := hcs[len(hcs)-1]
		hcs[len(hcs)-1] = nil
		l.pool[t] = hcs[:len(hcs)-1]
		l.pooled--
		hc.pooled = false
		if hc.idleGen == gen && hc.fresh(l.now) && (!check || rawAlive(hc.fd)) {
			return hc
		}
		hc.close()
	}
	for {
		hc := t.popIdle(addr, l.now)
		if hc == nil {
			return nil
		}
		if !l.take(hc) || check && !rawAlive(hc.fd) {
			hc.close()
			continue
		}
		return hc
	}
}

// take moves a replica connection from Go's poller into the loop.
func (l *eventLoop) take(hc *h1Conn) bool {
	fd, _, err := detachConn(hc.nc)
	if err != nil {
		return false
	}
	hc.nc, hc.r.nc = nil, nil
	hc.fd, hc.r.fd, hc.r.dry, hc.loop = fd, fd, false, l
	hc.peek = peeker{}
	hc.readDeadline, hc.writeDeadline = time.Time{}, time.Time{}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: kindUpstream}
	if unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev) != nil {
		unix.Close(fd)
		hc.fd, hc.r.fd, hc.loop = -1, -1, nil
		return false
	}
	l.ups[int32(fd)] = hc
	return true
}

// giveBack gives a replica connection of the loop back to Go's poller, for
// a goroutine.
func (l *eventLoop) giveBack(hc *h1Conn) error {
	delete(l.ups, int32(hc.fd))
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, hc.fd, nil)
	nc, err := attachConn(hc.fd, nil)
	hc.fd, hc.r.fd, hc.loop, hc.client = -1, -1, nil, nil
	if err != nil {
		return err
	}
	hc.nc, hc.r.nc = nc, nc
	hc.peek.init(nc)
	return nil
}

// putUpstream keeps a replica connection of the loop for the next request.
func (l *eventLoop) putUpstream(hc *h1Conn, now time.Time) {
	t := hc.t
	hcs := l.pool[t]
	if len(hcs) >= max(t.maxIdle, 1) || l.closing {
		hc.close()
		return
	}
	hc.idleSince, hc.idleGen, hc.pooled = now, t.gen.Load(), true
	l.pool[t] = append(hcs, hc)
	l.pooled++
	l.sweepBy(now.Add(time.Second))
}

// closeUpstream closes a replica connection of the loop.
func (l *eventLoop) closeUpstream(hc *h1Conn) {
	if hc.pooled {
		hcs := l.pool[hc.t]
		for i, v := range hcs {
			if v == hc {
				l.pool[hc.t] = append(hcs[:i], hcs[i+1:]...)
				hcs[len(hcs)-1] = nil
				break
			}
		}
		l.pooled--
		hc.pooled = false
	}
	delete(l.ups, int32(hc.fd))
	unix.Close(hc.fd)
	hc.fd, hc.r.fd, hc.client = -1, -1, nil
}

// errWouldBlock is a read or write on a loop's socket that would wait.
var errWouldBlock = errors.New("would block")

// The loop's reads, writes and peeks are raw system calls: on non-blocking
// sockets they never wait, so Go's scheduler need not hear of them. Through
// syscall.Syscall each would also wake Go's monitor thread whenever all Ps
// had been idle (entersyscall does), which with event loops, whose Ps idle
// between events, was about half of dlb's context switches (measured with
// the threads' voluntary_ctxt_switches).

// rawRead reads a socket without blocking: errWouldBlock when it is empty,
// (0, io.EOF) when the peer closed it.
func rawRead(fd int, p []byte) (int, error) {
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
			return 0, errWouldBlock
		}
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", e)}
	}
}

// rawWrite writes p to a socket without blocking; errWouldBlock with the
// bytes written when it took only part.
func rawWrite(fd int, p []byte) (int, error) {
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
			return done, errWouldBlock
		}
		return done, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", e)}
	}
	return done, nil
}

// rawAlive reports whether the peer has neither closed the socket nor sent
// anything (a kept-alive replica connection's look before reuse), as
// peeker.alive does for a net.Conn.
func rawAlive(fd int) bool {
	var b [1]byte
	open, _ := peekFD(uintptr(fd), &b)
	return open
}

// rawGone reports whether the peer closed or reset the socket; bytes
// waiting to be read do not count (peeker.gone's rule).
func rawGone(fd int) bool {
	var b [1]byte
	open, data := peekFD(uintptr(fd), &b)
	return !open && !data
}

// detacher is a connection that counts against a limit (listener.ConnLimit)
// and can leave it to the caller to give the place back.
type detacher interface {
	Detach() (net.Conn, func())
}

// detachConn takes c out of Go's poller: it returns a duplicate of its
// file descriptor (non-blocking, as c's) and closes c. release gives c's
// place under the connection limit back, once the descriptor is closed.
// On an error c is left as it was, open and still counted.
func detachConn(c net.Conn) (fd int, release func(), err error) {
	nc := c
	if d, ok := c.(detacher); ok {
		nc, release = d.Detach()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, nil, errors.New("not a network connection")
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

// attachConn makes a net.Conn of a file descriptor a loop held (and closes
// that descriptor): closing the connection calls release.
func attachConn(fd int, release func()) (net.Conn, error) {
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

// attachedConn is a client connection back from a loop, still under the
// connection limit.
type attachedConn struct {
	net.Conn
	release func()
	once    sync.Once
}

// Unwrap returns the network connection.
func (c *attachedConn) Unwrap() net.Conn { return c.Conn }

func (c *attachedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Detach lets a loop take it again, with its place under the limit.
func (c *attachedConn) Detach() (net.Conn, func()) {
	return c.Conn, func() { c.once.Do(c.release) }
}

// CloseWrite shuts the writing side (lingerClose).
func (c *attachedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// SyscallConn gives the file descriptor (the client watch, parking).
func (c *attachedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}
