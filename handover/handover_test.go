package handover

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd here")
	}
	return len(ents)
}

// checkNoLeak fails the test when, by the end, this process holds more
// descriptors than at its start (the runtime's settle within a moment).
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for n := openFDs(t); n > before; n = openFDs(t) {
			if time.Now().After(deadline) {
				t.Errorf("open descriptors: %d at the start, %d at the end: the hand-over leaks", before, n)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// old is a running dlb's side in a test: TCP listeners that answer each
// connection with their name, and a Server offering them.
type old struct {
	srv      *Server
	path     string
	released atomic.Bool
	served   chan struct{} // closed when Serve has returned, with err
	err      error
	lns      []*net.TCPListener
}

// startOld listens on a loopback port per flag and serves the hand-over
// socket in a fresh directory.
func startOld(t *testing.T, timeout time.Duration, flags ...string) *old {
	t.Helper()
	o := &old{path: filepath.Join(t.TempDir(), "handover.sock"), served: make(chan struct{})}
	o.srv = &Server{Version: "old", Timeout: timeout, Log: zerolog.Nop()}
	for _, f := range flags {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		o.lns = append(o.lns, ln)
		o.srv.Sockets = append(o.srv.Sockets, Socket{Flag: f, Addr: ln.Addr().String(), Listener: ln})
	}
	o.srv.Release = func() {
		o.released.Store(true)
		for _, ln := range o.lns {
			ln.Close()
		}
	}
	ul, err := Listen(o.path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { o.err = o.srv.Serve(ctx, ul); close(o.served) }()
	t.Cleanup(func() {
		cancel()
		<-o.served
		for _, ln := range o.lns {
			ln.Close()
		}
	})
	return o
}

func (o *old) addr(i int) string { return o.lns[i].Addr().String() }

// stillServing fails the test when the old side has released its sockets
// or stopped serving the hand-over socket.
func (o *old) stillServing(t *testing.T) {
	t.Helper()
	if o.released.Load() {
		t.Fatal("the old dlb released its sockets, want it still serving")
	}
	select {
	case <-o.served:
		t.Fatalf("the old dlb stopped serving the hand-over socket (%v), want it still serving", o.err)
	default:
	}
}

// TestHandOverKeepsQueuedConnections: a connection waiting in the backlog
// of the old dlb's socket, never accepted by it, is accepted by the new one
// after the hand-over: the same socket, not a new one.
func TestHandOverKeepsQueuedConnections(t *testing.T) {
	checkNoLeak(t)
	o := startOld(t, time.Second, "listen", "admin")
	queued, err := net.Dial("tcp", o.addr(0)) // in the backlog: the old side never accepts
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()

	p, err := Dial(o.path, "new", time.Second)
	if err != nil || p == nil {
		t.Fatalf("Dial: %v, %v; want the old dlb's offer", p, err)
	}
	if p.Version != "old" || p.PID != os.Getpid() {
		t.Errorf("predecessor: version %q pid %d, want %q %d", p.Version, p.PID, "old", os.Getpid())
	}
	ln, err := p.Take("listen", o.addr(0))
	if err != nil || ln == nil {
		t.Fatalf("Take(listen): %v, %v; want the socket", ln, err)
	}
	defer ln.Close()
	if ln.Addr().String() != o.addr(0) {
		t.Errorf("taken socket on %s, want %s", ln.Addr(), o.addr(0))
	}
	if got := p.Untaken(); len(got) != 1 || got[0] != "--admin "+o.addr(1) {
		t.Errorf("Untaken() = %q, want [--admin %s]", got, o.addr(1))
	}
	o.stillServing(t) // nothing changes before Serving
	if err := p.Serving(); err != nil {
		t.Fatalf("Serving: %v", err)
	}
	if !o.released.Load() {
		t.Fatal("Serving returned before the old dlb released its sockets")
	}
	if <-o.served; o.err != nil {
		t.Errorf("the old Server's Serve: %v, want nil after the hand-over", o.err)
	}
	// The old copies are closed: the connection still waits, in the new
	// process's socket.
	ln.SetDeadline(time.Now().Add(2 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("the connection queued before the hand-over: %v, want it accepted by the new dlb", err)
	}
	c.Write([]byte("new"))
	c.Close()
	queued.SetReadDeadline(time.Now().Add(2 * time.Second))
	if b, err := io.ReadAll(queued); string(b) != "new" || err != nil {
		t.Errorf("client read %q, %v; want %q from the new dlb", b, err, "new")
	}
}

// TestNoPredecessor: no socket file, or one a dead dlb left behind, is no
// predecessor; Listen replaces the stale file.
func TestNoPredecessor(t *testing.T) {
	checkNoLeak(t)
	path := filepath.Join(t.TempDir(), "handover.sock")
	if p, err := Dial(path, "new", time.Second); p != nil || err != nil {
		t.Errorf("Dial with no socket file: %v, %v; want nil, nil", p, err)
	}
	stale, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if p, err := Dial(path, "new", time.Second); p != nil || err != nil {
		t.Errorf("Dial with a stale socket file: %v, %v; want nil, nil", p, err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket file: %v", err)
	}
	defer ln.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("the socket file after Listen: %v, %v; want a socket, mode 0600", fi.Mode(), err)
	}
	if _, err := Listen(filepath.Join(path+".d", "x.sock")); err == nil || !strings.Contains(err.Error(), "mount a volume") {
		t.Errorf("Listen in a missing directory: %v, want an error saying to mount a volume", err)
	}
}

// TestClosedWhileQueued: a running dlb that closes its hand-over socket
// (it has just handed over, or is stopping) while a new dlb's connection
// waits in its queue is no predecessor, as a refused connection is, not
// an error: the kernel resets the queued connection under the hello or
// the wait for an offer.
func TestClosedWhileQueued(t *testing.T) {
	checkNoLeak(t)
	path := filepath.Join(t.TempDir(), "handover.sock")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	// Queued, never accepted; then the listener goes.
	c, err := net.Dial("unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ln.Close()
	_, err = c.Write([]byte(`{"type":"hello"}`))
	if err == nil {
		_, err = c.Read(make([]byte, 64))
	}
	if !noPredecessor(err) {
		t.Fatalf("the hello of a connection whose listener closed while it was queued: %v; want a reset, which Dial takes for no predecessor", err)
	}
}

// TestMismatchLeavesOldServing: a new dlb whose flag gives another address
// is told which, and the old one keeps its sockets; a later successor with
// the right address takes them.
func TestMismatchLeavesOldServing(t *testing.T) {
	checkNoLeak(t)
	o := startOld(t, time.Second, "listen")
	p, err := Dial(o.path, "new", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Take("listen", "127.0.0.1:1")
	var me *MismatchError
	if !errors.As(err, &me) || me.Has != o.addr(0) || !strings.Contains(err.Error(), "--listen "+o.addr(0)) {
		t.Fatalf("Take at another address: %v, want a *MismatchError naming --listen %s", err, o.addr(0))
	}
	if ln, err := p.Take("listen-tls", ":443"); ln != nil || err != nil {
		t.Errorf("Take of a flag not offered: %v, %v; want nil, nil (bind it)", ln, err)
	}
	p.Close()
	time.Sleep(50 * time.Millisecond) // the old side sees the close
	o.stillServing(t)

	p, err = Dial(o.path, "new", time.Second)
	if err != nil || p == nil {
		t.Fatalf("a second successor after the first went away: %v, %v", p, err)
	}
	ln, err := p.Take("listen", o.addr(0))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := p.Serving(); err != nil || !o.released.Load() {
		t.Errorf("Serving: %v, released %v; want the hand-over done", err, o.released.Load())
	}
}

// TestSameAddr: which new flag values are the old socket's.
func TestSameAddr(t *testing.T) {
	for _, c := range []struct {
		want, has, bound string
		same             bool
	}{
		{":80", ":80", "[::]:80", true},
		{"0.0.0.0:80", ":80", "[::]:80", true},
		{":8080", ":80", "[::]:80", false},
		{"127.0.0.1:8000", "127.0.0.1:8000", "127.0.0.1:8000", true},
		{"localhost:8000", "127.0.0.1:8000", "127.0.0.1:8000", true},
		{"127.0.0.2:8000", "127.0.0.1:8000", "127.0.0.1:8000", false},
		{":0", "127.0.0.1:0", "127.0.0.1:40000", false},
	} {
		if got := sameAddr(c.want, c.has, c.bound); got != c.same {
			t.Errorf("sameAddr(%q, %q, %q) = %v, want %v", c.want, c.has, c.bound, got, c.same)
		}
	}
}

// TestBadPeers: peers that say nothing, send garbage, attach descriptors
// where none belong, take the offer and vanish, or come second, all leave
// the old dlb serving, with no descriptor leaked on either side.
func TestBadPeers(t *testing.T) {
	checkNoLeak(t)
	o := startOld(t, 200*time.Millisecond, "listen")
	dial := func() *net.UnixConn {
		c, err := net.Dial("unixpacket", o.path)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	expectClosed := func(name string, c *net.UnixConn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		var m message
		if err == nil && n > 0 && json.Unmarshal(buf[:n], &m) == nil && m.Type == typeRefuse {
			return
		}
		if err == nil && n != 0 {
			t.Errorf("%s: the old dlb sent %q, want it to close the connection or refuse", name, buf[:n])
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: the old dlb kept the connection past its timeout", name)
		}
	}

	silent := dial()
	expectClosed("a silent peer", silent)
	silent.Close()

	garbage := dial()
	garbage.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	expectClosed("a peer sending garbage", garbage)
	garbage.Close()

	// A hello that carries a descriptor: it is closed, not kept.
	sneaky := dial()
	f, _ := os.Open(os.DevNull)
	b, _ := json.Marshal(message{Type: typeHello, Protocol: Protocol, PID: 1})
	sneaky.WriteMsgUnix(b, syscall.UnixRights(int(f.Fd())), nil)
	f.Close()
	expectClosed("a hello with a descriptor", sneaky)
	sneaky.Close()

	wrongProtocol := dial()
	b, _ = json.Marshal(message{Type: typeHello, Protocol: Protocol + 1, PID: 1})
	wrongProtocol.Write(b)
	expectClosed("another protocol", wrongProtocol)
	wrongProtocol.Close()

	// One takes the offer; a second is refused meanwhile; the first never
	// says it serves.
	first, err := Dial(o.path, "new", time.Second)
	if err != nil || first == nil {
		t.Fatalf("Dial: %v, %v", first, err)
	}
	if second, err := Dial(o.path, "new", time.Second); err == nil || !strings.Contains(err.Error(), "another new dlb") {
		if second != nil {
			second.Close()
		}
		t.Errorf("a second successor during the first's offer: %v, want refused naming the other", err)
	}
	time.Sleep(400 * time.Millisecond) // past the old side's 200 ms timeout
	if err := first.Serving(); err == nil {
		t.Error("Serving after the old dlb's timeout: nil error, want the old dlb gone from the exchange")
	}
	o.stillServing(t)

	// The old dlb still answers a proper successor.
	p, err := Dial(o.path, "new", time.Second)
	if err != nil || p == nil {
		t.Fatalf("Dial after the bad peers: %v, %v", p, err)
	}
	ln, err := p.Take("listen", o.addr(0))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := p.Serving(); err != nil {
		t.Fatalf("Serving: %v", err)
	}
	// And refuses anyone after it released (or has stopped listening).
	if p, err := Dial(o.path, "new", time.Second); p != nil || err != nil && !strings.Contains(err.Error(), "already handed") {
		t.Errorf("Dial after the hand-over: %v, %v; want no predecessor, or refused as handed over", p, err)
	}
}

// TestSuccessorTimesOut: an old side that never answers is an error for
// the new dlb, not a hang.
func TestSuccessorTimesOut(t *testing.T) {
	checkNoLeak(t)
	path := filepath.Join(t.TempDir(), "handover.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			time.Sleep(time.Second)
			c.Close()
		}
	}()
	start := time.Now()
	p, err := Dial(path, "new", 200*time.Millisecond)
	if p != nil || err == nil {
		t.Fatalf("Dial to a mute dlb: %v, %v; want an error", p, err)
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("Dial took %s, want about its 200 ms timeout", took)
	}
}
