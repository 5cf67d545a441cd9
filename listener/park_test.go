package listener

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/nettest"
)

// parkedServer serves h from an Idle that parks after after, with
// the server's idle timeout idle. served counts the connections the server
// took (a parked connection that comes back counts again).
func parkedServer(t *testing.T, after, idle time.Duration) (addr string, srv *http.Server, served *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	il := NewIdle(ln, after)
	lastIdle, _ = il.(*Idle)
	if lastIdle == nil {
		ln.Close()
		t.Skip("parking idle connections is not supported here")
	}
	served = &atomic.Int32{}
	srv = &http.Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		IdleTimeout: idle,
	}
	srv.ConnState = ConnState(il, func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			served.Add(1)
		}
	})
	go srv.Serve(il)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), srv, served
}

// lastIdle is the listener of the last parkedServer (tests in this
// package run one at a time).
var lastIdle *Idle

// client is one raw keep-alive connection.
type client struct {
	c  net.Conn
	br *bufio.Reader
}

func dialClient(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c, bufio.NewReader(c)}
}

func (cl *client) get(t *testing.T, what string) {
	t.Helper()
	cl.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(cl.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("%s: writing the request: %v", what, err)
	}
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatalf("%s: reading the answer: %v", what, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "ok" || resp.Close {
		t.Fatalf("%s: got %d %q (close %v), want 200 \"ok\" on a kept-alive connection", what, resp.StatusCode, b, resp.Close)
	}
}

func TestIdleListenerParksAndWakes(t *testing.T) {
	addr, _, served := parkedServer(t, 20*time.Millisecond, time.Minute)
	const n = 50
	before := runtime.NumGoroutine()
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dialClient(t, addr)
		clients[i].get(t, fmt.Sprintf("client %d, first GET", i))
	}
	il := lastIdle
	nettest.WaitFor(t, fmt.Sprintf("all %d idle connections to be parked", n), func() bool { return parkedCount(il) == n })
	// Once parked, the server holds no goroutine for them.
	nettest.WaitFor(t, fmt.Sprintf("the server's goroutines for %d idle connections to end (%d now, %d before)", n, runtime.NumGoroutine(), before),
		func() bool { return runtime.NumGoroutine() < before+n/2 })
	for i, cl := range clients {
		cl.get(t, fmt.Sprintf("client %d, GET after it was parked", i))
	}
	if got := served.Load(); got != 2*n {
		t.Errorf("connections the server took: got %d, want %d (each once new, once woken)", got, 2*n)
	}
}

// Connections busy with one request after another are not parked.
func TestIdleListenerKeepsBusyConnections(t *testing.T) {
	addr, _, served := parkedServer(t, time.Second, time.Minute)
	cl := dialClient(t, addr)
	for i := range 100 {
		cl.get(t, fmt.Sprintf("GET #%d", i))
	}
	if got := served.Load(); got != 1 {
		t.Errorf("connections the server took for 100 GETs in a row: got %d, want 1", got)
	}
}

// A parked connection still ends after the server's idle timeout.
func TestIdleListenerHonoursTheIdleTimeout(t *testing.T) {
	addr, _, _ := parkedServer(t, 10*time.Millisecond, 300*time.Millisecond)
	cl := dialClient(t, addr)
	cl.get(t, "first GET")
	cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err := cl.br.ReadByte()
	if err != io.EOF {
		t.Fatalf("reading an idle connection: got %v, want EOF once the server's idle timeout passed", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("idle connection closed after %v, want about 300ms (parking sweeps each second)", took)
	}
}

// Shutdown closes parked connections, as it closes idle ones.
func TestIdleListenerShutdownClosesParkedConnections(t *testing.T) {
	addr, srv, _ := parkedServer(t, 10*time.Millisecond, time.Minute)
	cl := dialClient(t, addr)
	cl.get(t, "first GET")
	time.Sleep(50 * time.Millisecond) // parked by now; nothing to poll for from outside
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := cl.br.ReadByte(); err != io.EOF {
		t.Errorf("reading a parked connection after Shutdown: got %v, want EOF", err)
	}
}

// A request split across the park deadline (its first bytes before, the rest
// after) arrives whole.
func TestIdleListenerSlowRequest(t *testing.T) {
	addr, _, _ := parkedServer(t, 20*time.Millisecond, time.Minute)
	cl := dialClient(t, addr)
	cl.get(t, "first GET")
	time.Sleep(60 * time.Millisecond)
	cl.c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	io.WriteString(cl.c, req[:2])
	time.Sleep(60 * time.Millisecond)
	io.WriteString(cl.c, req[2:])
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatalf("GET sent in two parts: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "ok") {
		t.Errorf("GET sent in two parts: got %d %q, want 200 \"ok\"", resp.StatusCode, b)
	}
}

// An HTTP/2 connection with prior knowledge (h2c) is never parked: the
// HTTP/2 server reports it idle too, but reads it on its own schedule.
func TestIdleListenerLeavesHTTP2Alone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	il := NewIdle(ln, 10*time.Millisecond)
	if _, ok := il.(*Idle); !ok {
		ln.Close()
		t.Skip("parking idle connections is not supported here")
	}
	var conns atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s", r.Proto)
	})}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	srv.ConnState = ConnState(il, func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	})
	go srv.Serve(il)
	t.Cleanup(func() { srv.Close() })

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i := range 3 {
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatalf("h2c GET #%d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "HTTP/2.0" {
			t.Fatalf("h2c GET #%d: got %q, want HTTP/2.0", i, b)
		}
		time.Sleep(50 * time.Millisecond) // idle past the park time
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("h2c connections the server took for 3 GETs: got %d, want 1", got)
	}
}
