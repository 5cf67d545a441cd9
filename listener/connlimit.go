package listener

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// ConnLimit bounds the client connections open at once across every
// listener it wraps (the plain and the TLS one share one budget), and the
// share of them one client address may hold. Those over either limit are
// accepted and closed at once, and refused is called for each (for a
// metric). Closing them rather than leaving them in the kernel's backlog
// keeps clients from waiting on a connection nobody will serve, and keeps
// dlb's file descriptors for replicas, Docker and the admin port; the
// share keeps one client that opens connections and sends nothing from
// locking every other client out. A nil *ConnLimit sets no limit.
type ConnLimit struct {
	max     int64
	refused func()
	open    atomic.Int64

	perClient int64 // 0: no share
	mu        sync.Mutex
	clients   map[netip.Addr]int64 // connections open per client address, with a share
}

// DefaultClientShare is the share of the connection limit one client
// address may hold by default, in percent (--max-conns-client-share).
const DefaultClientShare = 50

// NewConnLimit returns a limit of max connections, of which one client
// address may hold perClient (0, or max or more: no share of its own);
// max <= 0 returns nil, no limit.
func NewConnLimit(max, perClient int64, refused func()) *ConnLimit {
	if max <= 0 {
		return nil
	}
	l := &ConnLimit{max: max, refused: refused}
	if perClient > 0 && perClient < max {
		l.perClient, l.clients = perClient, map[netip.Addr]int64{}
	}
	return l
}

// ClientShare is the number of connections a client address may hold
// under a limit of limit connections when it may hold percent of them: at least 1, 0
// (no share) for 100 percent or more, or no limit.
func ClientShare(limit int64, percent int) int64 {
	if limit <= 0 || percent >= 100 {
		return 0
	}
	return max(limit*int64(percent)/100, 1)
}

// Listener wraps ln so that its connections count against l. Its
// connections keep their file descriptor reachable (syscall.Conn), so an
// Idle on top can park them; a parked connection still counts.
// On a nil l it returns ln itself.
func (l *ConnLimit) Listener(ln net.Listener) net.Listener {
	if l == nil {
		return ln
	}
	return &limitListener{Listener: ln, l: l}
}

type limitListener struct {
	net.Listener
	l *ConnLimit
}

func (ll *limitListener) Accept() (net.Conn, error) {
	l := ll.l
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			client, ok := l.admit(c)
			if ok {
				return &limitConn{Conn: c, l: l, client: client}, nil
			}
		}
		l.open.Add(-1)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset: nothing is owed to a refused client
		}
		c.Close()
		if l.refused != nil {
			l.refused()
		}
	}
}

// admit counts c against its client's share and reports whether the
// share has room; client is the address counted (invalid: none).
func (l *ConnLimit) admit(c net.Conn) (client netip.Addr, ok bool) {
	if l.clients == nil {
		return netip.Addr{}, true
	}
	tcp, isTCP := c.RemoteAddr().(*net.TCPAddr)
	if !isTCP {
		return netip.Addr{}, true
	}
	client = tcp.AddrPort().Addr().Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients[client] >= l.perClient {
		return netip.Addr{}, false
	}
	l.clients[client]++
	return client, true
}

// release gives a connection's places back.
func (l *ConnLimit) release(client netip.Addr) {
	l.open.Add(-1)
	if !client.IsValid() {
		return
	}
	l.mu.Lock()
	if l.clients[client]--; l.clients[client] <= 0 {
		delete(l.clients, client)
	}
	l.mu.Unlock()
}

// limitConn gives its places back when closed.
type limitConn struct {
	net.Conn
	l      *ConnLimit
	client netip.Addr // counted against its share; invalid: none
	once   sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.client) })
	return err
}

// SyscallConn gives an Idle the file descriptor to park.
func (c *limitConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}

// Detach gives the connection to a caller that serves its file descriptor
// itself (the fast data path's event loops): it returns the network
// connection inside and a function that gives the place under the limit
// back, to be called once that descriptor is closed. Closing the returned
// connection then does not give the place back.
func (c *limitConn) Detach() (net.Conn, func()) {
	return c.Conn, func() { c.once.Do(func() { c.l.release(c.client) }) }
}
