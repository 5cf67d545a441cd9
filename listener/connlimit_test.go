package listener

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestConnLimitSharedAcrossListeners: the plain and the TLS listener share
// one --max-conns budget, so neither can take more file descriptors than
// the limit leaves, and a place freed on one is taken on the other.
func TestConnLimitSharedAcrossListeners(t *testing.T) {
	var refused atomic.Int64
	limit := NewConnLimit(2, 0, func() { refused.Add(1) })
	var lns [2]net.Listener
	accepted := make(chan net.Conn, 8)
	for i := range lns {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = limit.Listener(raw)
		defer lns[i].Close()
		go func(ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}(lns[i])
	}
	dial := func(i int) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", lns[i].Addr().String())
		if err != nil {
			t.Fatalf("dial listener %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	take := func(what string) net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not accepted within 5s", what)
			return nil
		}
	}
	dial(0)
	first := take("first connection, on listener 0")
	dial(1)
	take("second connection, on listener 1")

	// The third, over the shared limit of 2, is reset at once: the reset
	// may reach the client while it still connects.
	if over, err := net.Dial("tcp", lns[1].Addr().String()); err == nil {
		defer over.Close()
		over.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := over.Read(make([]byte, 1)); err == nil {
			t.Fatalf("third connection (limit 2 over both listeners): read %d bytes, want it closed", n)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("third connection: %v, want it accepted and closed (or reset)", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for refused.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := refused.Load(); got != 1 {
		t.Errorf("refused = %d after one connection over the limit, want 1", got)
	}
	select {
	case c := <-accepted:
		t.Fatalf("a connection over the limit was handed to the server: %v", c.RemoteAddr())
	default:
	}

	first.Close() // a place on listener 0 frees one for listener 1
	dial(1)
	take("a connection once a place was freed on the other listener")
	if got := refused.Load(); got != 1 {
		t.Errorf("refused = %d, want still 1", got)
	}
}

// TestConnLimitNil: no limit wraps nothing.
func TestConnLimitNil(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := NewConnLimit(0, 0, nil).Listener(ln); got != ln {
		t.Errorf("NewConnLimit(0, 0).Listener(ln) = %T, want ln itself", got)
	}
}

// TestConnLimitClientShare: one client address holds its share of the
// limit and no more; another address still gets in; a place a client
// gives back is its own again (through Close, and through Detach's
// release).
func TestConnLimitClientShare(t *testing.T) {
	var refused atomic.Int64
	limit := NewConnLimit(10, 3, func() { refused.Add(1) })
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limit.Listener(raw)
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	// dial connects from the loopback address from (Linux answers all of
	// 127.0.0.0/8) and reports whether the server took the connection.
	dial := func(from string) (net.Conn, bool) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			return nil, false
		}
		t.Cleanup(func() { c.Close() })
		select {
		case s := <-accepted:
			t.Cleanup(func() { s.Close() })
			return s, true
		case <-time.After(time.Second):
			return nil, false
		}
	}
	var held []net.Conn
	for i := range 3 {
		s, ok := dial("127.0.0.2")
		if !ok {
			t.Fatalf("connection %d from 127.0.0.2 (share 3): refused", i+1)
		}
		held = append(held, s)
	}
	if _, ok := dial("127.0.0.2"); ok {
		t.Fatal("a 4th connection from 127.0.0.2 (share 3 of 10): taken, want it refused")
	}
	for i := range 3 {
		if _, ok := dial("127.0.0.1"); !ok {
			t.Fatalf("connection %d from 127.0.0.1 while 127.0.0.2 holds its share: refused", i+1)
		}
	}
	if got := refused.Load(); got != 1 {
		t.Errorf("refused = %d, want 1", got)
	}
	held[0].Close()
	if _, ok := dial("127.0.0.2"); !ok {
		t.Fatal("127.0.0.2 after closing one of its 3: refused, want its place back")
	}
	_, release := held[1].(interface{ Detach() (net.Conn, func()) }).Detach()
	release()
	if _, ok := dial("127.0.0.2"); !ok {
		t.Fatal("127.0.0.2 after releasing a detached connection: refused, want its place back")
	}
	if _, ok := dial("127.0.0.2"); ok {
		t.Fatal("127.0.0.2 over its share again: taken, want it refused")
	}
}

func TestClientShare(t *testing.T) {
	tests := []struct {
		limit   int64
		percent int
		want    int64
	}{
		{1000, 50, 500},
		{1000, 100, 0},
		{3, 10, 1},
		{0, 50, 0},
	}
	for _, tt := range tests {
		if got := ClientShare(tt.limit, tt.percent); got != tt.want {
			t.Errorf("ClientShare(%d, %d) = %d, want %d", tt.limit, tt.percent, got, tt.want)
		}
	}
}
