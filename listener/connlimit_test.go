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
	limit := NewConnLimit(2, func() { refused.Add(1) })
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
	if got := NewConnLimit(0, nil).Listener(ln); got != ln {
		t.Errorf("NewConnLimit(0).Listener(ln) = %T, want ln itself", got)
	}
}
