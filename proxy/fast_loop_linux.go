package proxy

import (
	"bufio"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dlb-lb/dlb/internal/h1"
	"github.com/dlb-lb/dlb/internal/poll"
)

// The fast data path's event loops. Go's poller serves a
// goroutine per connection: each read that finds nothing parks the
// goroutine, and the poller wakes it when bytes come; measured, that was an
// empty read and more context switches per request than nginx. An event
// loop instead waits for all of its connections at once and, when a socket
// has bytes, reads them once and does what they call for right there:
// parse, route, pick, put the request in a kept-alive replica connection's
// buffer, written with the others of the same wake-up at its end
// (flushStaged); then, when the replica's answer comes, relay it to the
// client in one write. One read and one write per direction per request,
// as nginx.
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
// An HTTPS connection joins its loop after its handshake (a goroutine's):
// its poll.Sock reads and decrypts records, and writes the records of a
// response with one system call, as a plain socket reads and writes bytes.
//
// The connections a loop serves are out of Go's poller (a socket in both
// would wake a thread of Go's poller for its events too): each socket is a
// poll.Sock, detached to the loop, attached again when a goroutine takes
// it over. The loop waits on a poll.Poller, whose comments say why it
// waits, reads and writes the way it does.

// loopPatience is how long a loop waits for a replica's response head
// before a goroutine takes the exchange over (with the timeouts and the
// client watch it has). A response whose head came without all of its
// body goes to a goroutine at once: the body may be a stream.
const loopPatience = time.Second

// Kinds of socket, the tags of their poll events.
const (
	kindClient int32 = iota
	kindUpstream
)

// eventLoop is one event loop; there is one per P (GOMAXPROCS).
type eventLoop struct {
	fs     *FastServer
	poller *poll.Poller // adopt, signal and stop wake it

	mu       sync.Mutex
	inbox    []*loopConn // connections to adopt
	quitting bool        // stop was called

	live atomic.Int64 // client connections it holds (its inbox too), for Shutdown

	// Only the loop's goroutine uses what follows.
	clients map[int]*loopConn // by file descriptor
	ups     map[int]*h1Conn
	idle    loopList    // idle clients, the least recently active first
	fresh   loopList    // new clients that have sent nothing yet, the oldest first
	flight  []*loopConn // clients waiting for a replica's response
	staged  []*loopConn // of flight, those whose request is not written yet (flushStaged)
	pool    map[*h1Transport][]*h1Conn
	pooled  int
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
	sock     *poll.Sock // nil once closed or handed to a goroutine
	fd       int        // sock's descriptor, its key in clients
	remote   string     // ip:port
	peer     string     // ip
	fc       *fastConn
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
	pl, err := poll.New(256)
	if err != nil {
		return nil, err
	}
	return &eventLoop{fs: fs, poller: pl, clients: map[int]*loopConn{}, ups: map[int]*h1Conn{},
		pool: map[*h1Transport][]*h1Conn{}}, nil
}

// adopt gives the loop a client connection, new or back from a goroutine.
func (l *eventLoop) adopt(lc *loopConn) {
	lc.fd = lc.sock.FD()
	l.live.Add(1)
	l.mu.Lock()
	if l.quitting {
		l.mu.Unlock()
		lc.sock.Close()
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
func (l *eventLoop) signal() { l.poller.Wake() }

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
		l.clients[lc.fd] = lc
	}
	for _, lc := range l.clients {
		l.closeClient(lc)
	}
	for _, hc := range l.ups {
		hc.sock.Close()
		hc.loop, hc.client, hc.pooled = nil, nil, false
	}
	clear(l.ups)
	clear(l.pool)
	l.poller.Close()
}

// turn waits once and serves what came; it reports whether the loop is
// to end. A panic costs the connection being served, not the process, as
// net/http's server does.
func (l *eventLoop) turn() (quit bool) {
	var cur *loopConn
	defer func() {
		if v := recover(); v != nil {
			l.fs.p.opts.Log.Error().Interface("panic", v).Msg("fast data path: connection dropped after a panic in an event loop (a bug: please report it)")
			if cur != nil && l.clients[cur.fd] == cur {
				l.closeClient(cur)
			}
			l.flushStaged()
		}
	}()
	events, woken, err := l.poller.Wait(l.now, l.nextSweep)
	if err != nil {
		l.fs.p.opts.Log.Error().Err(err).Msg("fast data path: waiting for events failed")
		time.Sleep(10 * time.Millisecond)
	}
	l.now = time.Now()
	if woken && l.wakeUp() {
		return true
	}
	for i := range events {
		ev := &events[i]
		switch ev.Tag() {
		case kindClient:
			if lc := l.clients[ev.FD()]; lc != nil {
				cur = lc
				l.onClient(lc, ev.Hangup())
			}
		case kindUpstream:
			if hc := l.ups[ev.FD()]; hc != nil {
				cur = hc.client
				l.onUpstream(hc)
			}
		}
		cur = nil
	}
	l.flushStaged()
	if !l.nextSweep.IsZero() && !l.now.Before(l.nextSweep) {
		l.sweep()
	}
	return false
}

// wakeUp adopts the inbox and sees to a shutdown; it reports whether the
// loop is to end.
func (l *eventLoop) wakeUp() bool {
	l.mu.Lock()
	inbox, quit := l.inbox, l.quitting
	l.inbox = nil
	l.mu.Unlock()
	if l.fs.closing.Load() && !l.closing {
		// Idle connections are closed. New ones keep the header timeout
		// for their first request, as net/http's server keeps them: a
		// client sends it right after connecting (or its TLS handshake),
		// and closing the connection then would lose it.
		l.closing = true
		for lc := l.idle.first; lc != nil; {
			next := lc.next
			l.closeClient(lc)
			lc = next
		}
	}
	for _, lc := range inbox {
		l.clients[lc.fd] = lc
		if l.closing && !lc.fresh || l.poller.Add(lc.fd, kindClient, poll.Edge) != nil {
			l.closeClient(lc)
			continue
		}
		// Edge-triggered: bytes already there are reported by the
		// registration itself; those the socket took already (TLS
		// records) are read now.
		if lc.sock.Buffers() {
			l.advance(lc)
		} else {
			l.toIdle(lc)
		}
	}
	return quit
}

// onClient serves an event on a client connection.
func (l *eventLoop) onClient(lc *loopConn, hangup bool) {
	lc.sock.Ready()
	if lc.inFlight > 0 {
		// Busy with a replica: bytes wait (a pipelined request), but a
		// client that went away ends the exchange, as the goroutine's
		// watch does.
		if hangup && lc.sock.Gone() {
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
			case v != h1.Incomplete && v != h1.OK, fc.n == len(fc.buf), lc.sock.Drained():
				// Refused, for net/http, too large, or waiting for
				// more: a goroutine's.
				l.toGoroutine(lc, resumeRead)
				return
			}
		} else if lc.sock.Drained() {
			l.toIdle(lc)
			return
		}
		if fc == nil {
			fc = l.activate(lc)
		}
		m, err := lc.sock.Read(fc.buf[fc.n:])
		switch {
		case err == poll.ErrWouldBlock:
		case m == 0:
			l.closeClient(lc) // closed, or reset
			return
		default:
			fc.n += m
		}
	}
}

// begin starts forwarding the request in lc's buffer.
func (l *eventLoop) begin(lc *loopConn) {
	fc := lc.fc
	l.unlist(lc)
	if !fc.pick(false) {
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
	if err := fc.stage(hc, fc.route, l.now); err != nil {
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
	l.staged = append(l.staged, lc)
	l.sweepBy(lc.deadline)
}

// flushStaged writes the requests begun in this turn to their replicas,
// back to back at the end of the turn rather than each as it was parsed:
// a replica's server, woken by the first, finds the next ones already
// there instead of going back to sleep between them. Against writing
// each at once, the replicas and dlb spent less CPU per request and dlb
// served more requests a second in every round (docs/performance.md).
func (l *eventLoop) flushStaged() {
	for i, lc := range l.staged {
		l.staged[i] = nil
		if lc == nil || lc.inFlight == 0 || lc.fc == nil || lc.fc.try.hc == nil {
			continue // ended in this turn (the client went away)
		}
		if err := lc.fc.try.hc.bw.Flush(); err != nil {
			l.tryFailed(lc, err)
		}
	}
	l.staged = l.staged[:0]
}

// onUpstream serves an event on a replica connection.
func (l *eventLoop) onUpstream(hc *h1Conn) {
	hc.sock.Ready()
	lc := hc.client
	if lc == nil {
		// Idle in the pool: the replica closed it, or sent what nobody
		// asked for (or the event was for the descriptor's last user).
		if !hc.sock.Alive() {
			hc.close()
		}
		return
	}
	fc := lc.fc
	// One read: Peek asks for a byte more than is buffered (the reader
	// knows when the socket is empty and does not read it again).
	_, rerr := hc.br.Peek(hc.br.Buffered() + 1)
	if rerr == poll.ErrWouldBlock || rerr == bufio.ErrBufferFull {
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
		if fc.owes() && !fc.gone.Load() {
			l.toGoroutine(lc, resumeClose) // the end of the response first
			return
		}
		l.closeClient(lc)
		return
	}
	used := fc.req.HeadLen + int(max(fc.req.ContentLength, 0))
	fc.n = copy(fc.buf[:], fc.buf[used:fc.n])
	if fc.owes() {
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
	delete(l.clients, lc.fd)
	// Out of the poller first: a registration lasts as long as the
	// socket, and the goroutine's descriptor is another.
	l.poller.Del(lc.fd)
	err := lc.sock.Attach()
	lc.sock = nil
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
		fc.sock.Close()
		l.live.Add(-1)
		return
	}
	lc.fc = nil
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
	fc.sock, fc.remote, fc.peer = lc.sock, lc.remote, lc.peer
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
	fc.n, fc.sock, fc.end = 0, nil, time.Time{}
	fc.gone.Store(false)
	fc.try = loopTry{}
	l.free = append(l.free, fc)
}

// closeClient closes a client connection the loop holds.
func (l *eventLoop) closeClient(lc *loopConn) {
	if lc.sock == nil {
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
	delete(l.clients, lc.fd)
	lc.sock.Close()
	lc.sock = nil
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
		if hc.idleGen == gen && hc.fresh(l.now) && (!check || hc.sock.Alive()) {
			return hc
		}
		hc.close()
	}
	for {
		hc := t.popIdle(addr, l.now)
		if hc == nil {
			return nil
		}
		if !l.take(hc) || check && !hc.sock.Alive() {
			hc.close()
			continue
		}
		return hc
	}
}

// take moves a replica connection from Go's poller into the loop.
func (l *eventLoop) take(hc *h1Conn) bool {
	if hc.sock.Detach() != nil {
		return false
	}
	fd := hc.sock.FD()
	if l.poller.Add(fd, kindUpstream, poll.Edge) != nil {
		hc.sock.Close()
		return false
	}
	hc.loop = l
	l.ups[fd] = hc
	return true
}

// giveBack gives a replica connection of the loop back to Go's poller, for
// a goroutine.
func (l *eventLoop) giveBack(hc *h1Conn) error {
	fd := hc.sock.FD()
	delete(l.ups, fd)
	l.poller.Del(fd)
	hc.loop, hc.client = nil, nil
	return hc.sock.Attach()
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
	delete(l.ups, hc.sock.FD())
	hc.sock.Close()
	hc.loop, hc.client = nil, nil
}
