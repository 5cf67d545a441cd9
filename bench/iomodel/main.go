//go:build dlbiomodel

// Command iomodel is issue #13's I/O-model prototype: plain keep-alive GET
// requests forwarded through dlb's own parser, router, pool and header
// rewriting (proxy's dlbiomodel exports) to the replicas, under one of four
// I/O models, so that bench/iomodel.sh can compare them with dlb's fast path
// and nginx in alternating rounds:
//
//	goroutine  one goroutine per client connection, blocking net.Conn calls
//	           (the fast path's model; Go's netpoller parks on EAGAIN)
//	epoll      one epoll loop per P of our own (x/sys/unix), level-triggered,
//	           nonblocking fds, a loop-local pool of replica connections
//	nbio       lesismal/nbio's engine (v1.6.8)
//	gnet       panjf2000/gnet/v2 (v2.9.7), replica connections registered on
//	           the client's own event loop
//
// Not a product: no timeouts, no retries, no chunked or close-delimited
// bodies, a 400/502 and close on anything unusual. Build with
// `go build -tags dlbiomodel` (bench/iomodel.sh does).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/lesismal/nbio"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

const bufSize = 8192

var (
	router  proxy.Router
	resp400 = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	resp502 = []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

func main() {
	model := flag.String("model", "goroutine", "goroutine, epoll, nbio or gnet")
	listen := flag.String("listen", "127.0.0.1:27300", "address to serve")
	replicas := flag.String("replicas", "", "comma-separated host:port of the replicas")
	pprof := flag.String("pprof", "", "address for net/http/pprof (empty: none)")
	flag.Parse()
	pool := balancer.NewPool("ab")
	for i, a := range strings.Split(*replicas, ",") {
		id := strconv.Itoa(i)
		pool.Put(balancer.Member{ID: id, Name: "r" + id, Address: a})
		pool.MarkReady(id)
	}
	if pool.ReadyCount() == 0 {
		log.Fatal("iomodel: --replicas: no ready replica")
	}
	router.Set([]proxy.Route{{Service: "ab", Path: "/", Pool: pool}})
	if *pprof != "" {
		go http.ListenAndServe(*pprof, nil)
	}
	var err error
	switch *model {
	case "goroutine":
		err = serveGoroutines(*listen)
	case "epoll":
		err = serveEpoll(*listen, runtime.GOMAXPROCS(0))
	case "nbio":
		err = serveNbio(*listen, runtime.GOMAXPROCS(0))
	case "gnet":
		err = serveGnet(*listen, runtime.GOMAXPROCS(0))
	default:
		err = fmt.Errorf("--model %q: must be goroutine, epoll, nbio or gnet", *model)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "iomodel:", err)
		os.Exit(1)
	}
}

// pick routes the parsed request and picks a replica (nil: none).
func pick(x *proxy.ProtoExchange) *balancer.Upstream {
	route := router.Lookup(x.Host(), x.Path())
	if route == nil {
		return nil
	}
	up := route.Pool.Pick(0, nil)
	if up != nil {
		up.Begin()
	}
	return up
}

// respond appends the client's response (rewritten head, body) for the
// response in b, which must be complete (x.ResponseLen() bytes).
func respond(dst []byte, x *proxy.ProtoExchange, b []byte) []byte {
	dst = x.AppendResponseHead(dst, b)
	return append(dst, b[x.ResponseHeadLen():x.ResponseLen()]...)
}

func peerOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	h, _, _ := net.SplitHostPort(a.String())
	return h
}

// ---- goroutine per connection ----

type gUp struct {
	nc  net.Conn
	buf []byte
}

var gIdle = struct {
	sync.Mutex
	m map[string][]*gUp
}{m: map[string][]*gUp{}}

func gGet(addr string) (*gUp, error) {
	gIdle.Lock()
	if l := gIdle.m[addr]; len(l) > 0 {
		u := l[len(l)-1]
		gIdle.m[addr] = l[:len(l)-1]
		gIdle.Unlock()
		return u, nil
	}
	gIdle.Unlock()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &gUp{nc: nc, buf: make([]byte, bufSize)}, nil
}

func gPut(addr string, u *gUp) {
	gIdle.Lock()
	gIdle.m[addr] = append(gIdle.m[addr], u)
	gIdle.Unlock()
}

func serveGoroutines(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go gServe(c)
	}
}

func gServe(c net.Conn) {
	defer c.Close()
	buf := make([]byte, bufSize)
	out := make([]byte, 0, bufSize)
	peer := peerOf(c.RemoteAddr())
	var x proxy.ProtoExchange
	n := 0
	for {
		v := proxy.ProtoIncomplete
		if n > 0 {
			v = x.ParseRequest(buf[:n])
		}
		for v == proxy.ProtoIncomplete || v == proxy.ProtoOK && x.RequestLen() > n {
			if n == len(buf) {
				c.Write(resp400)
				return
			}
			m, err := c.Read(buf[n:])
			if m <= 0 {
				_ = err
				return
			}
			n += m
			v = x.ParseRequest(buf[:n])
		}
		if v != proxy.ProtoOK {
			c.Write(resp400)
			return
		}
		up := pick(&x)
		if up == nil {
			c.Write(resp502)
			return
		}
		ua := up.Address()
		u, err := gGet(ua)
		if err != nil {
			up.End(true)
			c.Write(resp502)
			return
		}
		out = x.AppendRequest(out[:0], buf, peer)
		if _, err := u.nc.Write(out); err != nil {
			u.nc.Close()
			up.End(true)
			c.Write(resp502)
			return
		}
		un := 0
		for {
			m, err := u.nc.Read(u.buf[un:])
			if m <= 0 {
				_ = err
				u.nc.Close()
				up.End(true)
				c.Write(resp502)
				return
			}
			un += m
			rv := x.ParseResponse(u.buf[:un])
			if rv == proxy.ProtoIncomplete {
				continue
			}
			if rv != proxy.ProtoOK || x.ResponseLen() < 0 || x.ResponseLen() > len(u.buf) {
				u.nc.Close()
				up.End(true)
				c.Write(resp502)
				return
			}
			if un >= x.ResponseLen() {
				break
			}
		}
		out = respond(out[:0], &x, u.buf[:un])
		up.End(false)
		gPut(ua, u)
		if _, err := c.Write(out); err != nil {
			return
		}
		if x.Close() {
			return
		}
		used := x.RequestLen()
		n = copy(buf, buf[used:n])
	}
}

// ---- an epoll loop per P, of our own ----

type eConn struct {
	fd     int
	client bool
	buf    []byte
	n      int
	peer   string
	x      proxy.ProtoExchange
	peerOf *eConn             // client: its replica connection during an exchange; replica: its client
	up     *balancer.Upstream // client: the replica picked
	addr   string             // replica connection: its address
	out    []byte             // client: bytes its socket did not take yet
}

type eLoop struct {
	ep, lfd int
	conns   map[int]*eConn
	idle    map[string][]*eConn
	addrs   map[string]*unix.SockaddrInet4
	out     []byte
}

func serveEpoll(addr string, loops int) error {
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return err
	}
	errc := make(chan error, loops)
	for i := 0; i < loops; i++ {
		lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		sa := &unix.SockaddrInet4{Port: ap.Port}
		copy(sa.Addr[:], ap.IP.To4())
		if err := unix.Bind(lfd, sa); err != nil {
			return err
		}
		if err := unix.Listen(lfd, 4096); err != nil {
			return err
		}
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		l := &eLoop{ep: ep, lfd: lfd, conns: map[int]*eConn{}, idle: map[string][]*eConn{}, addrs: map[string]*unix.SockaddrInet4{}}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
			return err
		}
		go func() { errc <- l.run() }()
	}
	return <-errc
}

func (l *eLoop) run() error {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(l.ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == l.lfd {
				l.accept()
				continue
			}
			c := l.conns[fd]
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 && c.client {
				l.flush(c)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
				if c.client {
					l.onClient(c)
				} else {
					l.onReplica(c)
				}
			}
		}
	}
}

func (l *eLoop) accept() {
	for {
		fd, sa, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or another loop took it
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		peer := ""
		if s4, ok := sa.(*unix.SockaddrInet4); ok {
			peer = net.IP(s4.Addr[:]).String()
		}
		c := &eConn{fd: fd, client: true, buf: make([]byte, bufSize), peer: peer}
		l.conns[fd] = c
		unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)})
	}
}

func (l *eLoop) closeConn(c *eConn) {
	if c.fd < 0 {
		return
	}
	delete(l.conns, c.fd)
	unix.Close(c.fd) // leaves the epoll set with its last descriptor
	c.fd = -1
}

func (l *eLoop) closeClient(c *eConn, answer []byte) {
	if answer != nil {
		unix.Write(c.fd, answer)
	}
	if u := c.peerOf; u != nil {
		l.closeConn(u) // mid-exchange: the replica connection cannot be reused
		c.peerOf = nil
	}
	if c.up != nil {
		c.up.End(answer != nil)
		c.up = nil
	}
	l.closeConn(c)
}

func (l *eLoop) onClient(c *eConn) {
	if c.n == len(c.buf) {
		l.closeClient(c, resp400)
		return
	}
	m, err := unix.Read(c.fd, c.buf[c.n:])
	if m <= 0 {
		if err == unix.EAGAIN {
			return
		}
		l.closeClient(c, nil)
		return
	}
	c.n += m
	if c.peerOf == nil {
		l.process(c)
	}
}

// process starts the exchange of the request at the start of c.buf, if it
// is complete.
func (l *eLoop) process(c *eConn) {
	v := c.x.ParseRequest(c.buf[:c.n])
	if v == proxy.ProtoIncomplete || v == proxy.ProtoOK && c.x.RequestLen() > c.n {
		return
	}
	if v != proxy.ProtoOK {
		l.closeClient(c, resp400)
		return
	}
	up := pick(&c.x)
	if up == nil {
		l.closeClient(c, resp502)
		return
	}
	c.up = up
	u, err := l.replica(up.Address())
	if err != nil {
		l.closeClient(c, resp502)
		return
	}
	l.out = c.x.AppendRequest(l.out[:0], c.buf, c.peer)
	if m, err := unix.Write(u.fd, l.out); err != nil || m < len(l.out) {
		l.closeConn(u)
		l.closeClient(c, resp502)
		return
	}
	c.peerOf, u.peerOf = u, c
}

// replica returns an idle connection to addr of this loop, or a new one.
func (l *eLoop) replica(addr string) (*eConn, error) {
	if idle := l.idle[addr]; len(idle) > 0 {
		u := idle[len(idle)-1]
		l.idle[addr] = idle[:len(idle)-1]
		return u, nil
	}
	sa := l.addrs[addr]
	if sa == nil {
		ta, err := net.ResolveTCPAddr("tcp4", addr)
		if err != nil {
			return nil, err
		}
		sa = &unix.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ta.IP.To4())
		l.addrs[addr] = sa
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, sa); err != nil { // blocking: once per replica connection
		unix.Close(fd)
		return nil, err
	}
	unix.SetNonblock(fd, true)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	u := &eConn{fd: fd, buf: make([]byte, bufSize), addr: addr}
	l.conns[fd] = u
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)})
	return u, nil
}

func (l *eLoop) onReplica(u *eConn) {
	c := u.peerOf
	m, err := unix.Read(u.fd, u.buf[u.n:])
	if m <= 0 {
		if err == unix.EAGAIN {
			return
		}
		l.dropIdle(u)
		l.closeConn(u)
		if c != nil {
			c.peerOf = nil
			l.closeClient(c, resp502)
		}
		return
	}
	u.n += m
	if c == nil { // unsolicited bytes on an idle connection
		l.dropIdle(u)
		l.closeConn(u)
		return
	}
	v := c.x.ParseResponse(u.buf[:u.n])
	if v == proxy.ProtoIncomplete {
		return
	}
	rl := c.x.ResponseLen()
	if v != proxy.ProtoOK || rl < 0 || rl > len(u.buf) || u.n > rl {
		l.closeConn(u)
		c.peerOf = nil
		l.closeClient(c, resp502)
		return
	}
	if u.n < rl {
		return
	}
	l.out = respond(l.out[:0], &c.x, u.buf[:u.n])
	u.n, u.peerOf, c.peerOf = 0, nil, nil
	l.idle[u.addr] = append(l.idle[u.addr], u)
	c.up.End(false)
	c.up = nil
	w, err := unix.Write(c.fd, l.out)
	if err != nil && err != unix.EAGAIN {
		l.closeClient(c, nil)
		return
	}
	if w < len(l.out) {
		c.out = append(c.out[:0], l.out[max(w, 0):]...)
		unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP, Fd: int32(c.fd)})
		return
	}
	l.next(c)
}

// next drops the request served from c.buf and starts a pipelined one.
func (l *eLoop) next(c *eConn) {
	if c.x.Close() {
		l.closeClient(c, nil)
		return
	}
	c.n = copy(c.buf, c.buf[c.x.RequestLen():c.n])
	if c.n > 0 {
		l.process(c)
	}
}

func (l *eLoop) flush(c *eConn) {
	w, err := unix.Write(c.fd, c.out)
	if err != nil && err != unix.EAGAIN {
		l.closeClient(c, nil)
		return
	}
	c.out = c.out[max(w, 0):]
	if len(c.out) == 0 {
		unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)})
		l.next(c)
	}
}

func (l *eLoop) dropIdle(u *eConn) {
	idle := l.idle[u.addr]
	for i, v := range idle {
		if v == u {
			l.idle[u.addr] = append(idle[:i], idle[i+1:]...)
			return
		}
	}
}

// ---- nbio ----

type nConn struct {
	mu     sync.Mutex
	client bool
	nc     *nbio.Conn
	buf    []byte
	n      int
	peer   string
	x      proxy.ProtoExchange
	other  *nConn
	up     *balancer.Upstream
	addr   string
	out    []byte
}

var nIdle = struct {
	sync.Mutex
	m map[string][]*nConn
}{m: map[string][]*nConn{}}

func serveNbio(addr string, pollers int) error {
	eng := nbio.NewEngine(nbio.Config{Network: "tcp", Addrs: []string{addr}, NPoller: pollers, ReadBufferSize: bufSize})
	eng.OnData(func(c *nbio.Conn, data []byte) {
		s, _ := c.Session().(*nConn)
		if s == nil {
			s = &nConn{client: true, nc: c, buf: make([]byte, bufSize), peer: peerOf(c.RemoteAddr())}
			c.SetSession(s)
		}
		if s.client {
			nOnClient(eng, s, data)
		} else {
			nOnReplica(s, data)
		}
	})
	eng.OnClose(func(c *nbio.Conn, err error) {
		s, _ := c.Session().(*nConn)
		if s == nil {
			return
		}
		s.mu.Lock()
		o := s.other
		s.mu.Unlock()
		if !s.client {
			nIdle.Lock()
			idle := nIdle.m[s.addr]
			for i, v := range idle {
				if v == s {
					nIdle.m[s.addr] = append(idle[:i], idle[i+1:]...)
					break
				}
			}
			nIdle.Unlock()
			if o != nil {
				o.nc.Write(resp502)
				o.nc.Close()
			}
		} else if o != nil {
			o.nc.Close()
		}
	})
	if err := eng.Start(); err != nil {
		return err
	}
	select {}
}

func nOnClient(eng *nbio.Engine, s *nConn, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n+len(data) > len(s.buf) {
		s.nc.Write(resp400)
		s.nc.Close()
		return
	}
	s.n += copy(s.buf[s.n:], data)
	if s.other == nil {
		nProcess(eng, s)
	}
}

// nProcess starts the exchange of s's buffered request (s.mu held).
func nProcess(eng *nbio.Engine, s *nConn) {
	v := s.x.ParseRequest(s.buf[:s.n])
	if v == proxy.ProtoIncomplete || v == proxy.ProtoOK && s.x.RequestLen() > s.n {
		return
	}
	if v != proxy.ProtoOK {
		s.nc.Write(resp400)
		s.nc.Close()
		return
	}
	up := pick(&s.x)
	if up == nil {
		s.nc.Write(resp502)
		s.nc.Close()
		return
	}
	s.up = up
	addr := up.Address()
	var u *nConn
	nIdle.Lock()
	if idle := nIdle.m[addr]; len(idle) > 0 {
		u = idle[len(idle)-1]
		nIdle.m[addr] = idle[:len(idle)-1]
	}
	nIdle.Unlock()
	if u == nil {
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			var c *nbio.Conn
			if c, err = eng.AddConn(nc); err == nil {
				u = &nConn{nc: c, buf: make([]byte, bufSize), addr: addr}
				c.SetSession(u)
			}
		}
		if err != nil {
			up.End(true)
			s.nc.Write(resp502)
			s.nc.Close()
			return
		}
	}
	u.mu.Lock()
	u.other, u.n = s, 0
	u.mu.Unlock()
	s.other = u
	s.out = s.x.AppendRequest(s.out[:0], s.buf, s.peer)
	u.nc.Write(s.out)
}

func nOnReplica(u *nConn, data []byte) {
	u.mu.Lock()
	s := u.other
	if s == nil || u.n+len(data) > len(u.buf) {
		u.mu.Unlock()
		u.nc.Close()
		return
	}
	u.n += copy(u.buf[u.n:], data)
	u.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.x.ParseResponse(u.buf[:u.n])
	if v == proxy.ProtoIncomplete {
		return
	}
	rl := s.x.ResponseLen()
	if v != proxy.ProtoOK || rl < 0 || u.n > rl {
		u.nc.Close()
		return
	}
	if u.n < rl {
		return
	}
	s.out = respond(s.out[:0], &s.x, u.buf[:u.n])
	u.mu.Lock()
	u.other, u.n = nil, 0
	u.mu.Unlock()
	s.other = nil
	nIdle.Lock()
	nIdle.m[u.addr] = append(nIdle.m[u.addr], u)
	nIdle.Unlock()
	s.up.End(false)
	s.up = nil
	s.nc.Write(s.out)
	if s.x.Close() {
		s.nc.Close()
		return
	}
	s.n = copy(s.buf, s.buf[s.x.RequestLen():s.n])
	if s.n > 0 {
		// A pipelined request: it needs the engine only for a new replica
		// connection, which the idle list almost always spares.
		nProcess(nil, s)
	}
}

// ---- gnet ----

type gnConn struct {
	client bool
	gc     gnet.Conn
	buf    []byte
	n      int
	peer   string
	x      proxy.ProtoExchange
	other  *gnConn
	up     *balancer.Upstream
	addr   string
	loop   *gnLoop
	out    []byte
}

// gnLoop is one gnet event loop's pool of replica connections (only its
// own goroutine touches it).
type gnLoop struct {
	idle map[string][]*gnConn
}

type gnHandler struct {
	gnet.BuiltinEventEngine
	mu    sync.Mutex
	loops map[gnet.EventLoop]*gnLoop
}

func (h *gnHandler) loopOf(c gnet.Conn) *gnLoop {
	el := c.EventLoop()
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.loops[el]
	if l == nil {
		l = &gnLoop{idle: map[string][]*gnConn{}}
		h.loops[el] = l
	}
	return l
}

func serveGnet(addr string, loops int) error {
	h := &gnHandler{loops: map[gnet.EventLoop]*gnLoop{}}
	return gnet.Run(h, "tcp://"+addr, gnet.WithMulticore(true), gnet.WithNumEventLoop(loops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithReadBufferCap(bufSize), gnet.WithLoadBalancing(gnet.LeastConnections))
}

func (h *gnHandler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if u, ok := c.Context().(*gnConn); ok && !u.client {
		// A replica connection registered for a waiting client: send its
		// request now.
		u.gc = c
		s := u.other
		c.Write(s.out)
		return nil, gnet.None
	}
	c.SetContext(&gnConn{client: true, gc: c, buf: make([]byte, bufSize), peer: peerOf(c.RemoteAddr()), loop: h.loopOf(c)})
	return nil, gnet.None
}

func (h *gnHandler) OnClose(c gnet.Conn, err error) gnet.Action {
	s, _ := c.Context().(*gnConn)
	if s == nil {
		return gnet.None
	}
	if s.client {
		if s.other != nil {
			s.other.gc.Close()
		}
		return gnet.None
	}
	if s.loop != nil {
		idle := s.loop.idle[s.addr]
		for i, v := range idle {
			if v == s {
				s.loop.idle[s.addr] = append(idle[:i], idle[i+1:]...)
				break
			}
		}
	}
	if o := s.other; o != nil {
		o.other = nil
		o.gc.Write(resp502)
		o.gc.Close()
	}
	return gnet.None
}

func (h *gnHandler) OnTraffic(c gnet.Conn) gnet.Action {
	s := c.Context().(*gnConn)
	data, _ := c.Next(-1)
	if s.client {
		if s.n+len(data) > len(s.buf) {
			c.Write(resp400)
			return gnet.Close
		}
		s.n += copy(s.buf[s.n:], data)
		if s.other == nil {
			return gnProcess(s)
		}
		return gnet.None
	}
	cl := s.other
	if cl == nil || s.n+len(data) > len(s.buf) {
		return gnet.Close
	}
	s.n += copy(s.buf[s.n:], data)
	v := cl.x.ParseResponse(s.buf[:s.n])
	if v == proxy.ProtoIncomplete {
		return gnet.None
	}
	rl := cl.x.ResponseLen()
	if v != proxy.ProtoOK || rl < 0 || s.n > rl {
		return gnet.Close
	}
	if s.n < rl {
		return gnet.None
	}
	cl.out = respond(cl.out[:0], &cl.x, s.buf[:s.n])
	s.n, s.other, cl.other = 0, nil, nil
	s.loop.idle[s.addr] = append(s.loop.idle[s.addr], s)
	cl.up.End(false)
	cl.up = nil
	cl.gc.Write(cl.out) // same event loop: a direct write
	if cl.x.Close() {
		cl.gc.Close()
		return gnet.None
	}
	cl.n = copy(cl.buf, cl.buf[cl.x.RequestLen():cl.n])
	if cl.n > 0 {
		if gnProcess(cl) == gnet.Close {
			cl.gc.Close()
		}
	}
	return gnet.None
}

// gnProcess starts the exchange of s's buffered request, on s's event loop.
func gnProcess(s *gnConn) gnet.Action {
	v := s.x.ParseRequest(s.buf[:s.n])
	if v == proxy.ProtoIncomplete || v == proxy.ProtoOK && s.x.RequestLen() > s.n {
		return gnet.None
	}
	if v != proxy.ProtoOK {
		s.gc.Write(resp400)
		return gnet.Close
	}
	up := pick(&s.x)
	if up == nil {
		s.gc.Write(resp502)
		return gnet.Close
	}
	s.up = up
	addr := up.Address()
	s.out = s.x.AppendRequest(s.out[:0], s.buf, s.peer)
	if idle := s.loop.idle[addr]; len(idle) > 0 {
		u := idle[len(idle)-1]
		s.loop.idle[addr] = idle[:len(idle)-1]
		u.other, s.other = s, u
		u.gc.Write(s.out)
		return gnet.None
	}
	// A new replica connection on this event loop; OnOpen sends the request.
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		s.gc.Write(resp502)
		return gnet.Close
	}
	u := &gnConn{buf: make([]byte, bufSize), addr: addr, loop: s.loop, other: s}
	s.other = u
	if _, err := s.gc.EventLoop().Register(gnet.NewContext(context.Background(), u), ta); err != nil {
		s.other = nil
		s.gc.Write(resp502)
		return gnet.Close
	}
	return gnet.None
}
