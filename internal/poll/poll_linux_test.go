package poll

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketpair returns two connected, non-blocking stream sockets, closed
// when the test ends (unless the test closed them).
func socketpair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// tcpPair returns a loopback TCP connection, both ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New(16)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// waitFor waits up to 2s for events; it fails the test on an error.
func waitFor(t *testing.T, p *Poller, d time.Duration) ([]Event, bool) {
	t.Helper()
	events, woken, err := p.Wait(time.Now(), time.Now().Add(d))
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return events, woken
}

func write(t *testing.T, fd int, s string) {
	t.Helper()
	if n, err := Write(fd, []byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q): %d, %v", s, n, err)
	}
}

func TestPollerReportsAReadableSocketWithItsTag(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 7, Edge); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if events, woken := waitFor(t, p, 50*time.Millisecond); len(events) != 0 || woken {
		t.Fatalf("nothing sent: %d events, woken %v; want none", len(events), woken)
	}
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Errorf("Wait with nothing to report returned after %s; want at its deadline, 50ms", el)
	}
	write(t, b, "hello")
	events, _ := waitFor(t, p, 2*time.Second)
	if len(events) != 1 || events[0].FD() != a || events[0].Tag() != 7 || events[0].Hangup() {
		t.Fatalf("after a write: %d events %+v; want one for fd %d, tag 7, no hangup", len(events), events, a)
	}
	buf := make([]byte, 16)
	if n, err := Read(a, buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read: %q, %v; want hello", buf[:n], err)
	}
	if _, err := Read(a, buf); err != ErrWouldBlock {
		t.Fatalf("Read of an empty socket: %v; want ErrWouldBlock", err)
	}
	// Edge-triggered: read empty, no event until bytes come again.
	if events, _ := waitFor(t, p, 20*time.Millisecond); len(events) != 0 {
		t.Fatalf("socket read empty: %d events; want none", len(events))
	}
	if err := p.Del(a); err != nil {
		t.Fatal(err)
	}
	write(t, b, "more")
	if events, _ := waitFor(t, p, 20*time.Millisecond); len(events) != 0 {
		t.Fatalf("after Del: %d events; want none", len(events))
	}
}

func TestPollerOneShotReportsOnceUntilRearmed(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	write(t, b, "x") // before the registration: reported at once
	if err := p.Add(a, 1, OneShot); err != nil {
		t.Fatal(err)
	}
	if events, _ := waitFor(t, p, 2*time.Second); len(events) != 1 || events[0].FD() != a {
		t.Fatalf("bytes waiting at Add: %d events; want one for fd %d", len(events), a)
	}
	// Level-triggered bytes still wait, but one-shot: not again.
	if events, _ := waitFor(t, p, 20*time.Millisecond); len(events) != 0 {
		t.Fatalf("one-shot, reported once: %d events; want none", len(events))
	}
	if err := p.Rearm(a, 2, OneShot); err != nil {
		t.Fatal(err)
	}
	if events, _ := waitFor(t, p, 2*time.Second); len(events) != 1 || events[0].Tag() != 2 {
		t.Fatalf("rearmed with bytes waiting: %d events %+v; want one with tag 2", len(events), events)
	}
}

func TestPollerWakeEndsAWait(t *testing.T) {
	p := newPoller(t)
	a, _ := socketpair(t)
	if err := p.Add(a, 0, Edge); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, p.Wake)
	start := time.Now()
	events, woken := waitFor(t, p, 5*time.Second)
	if !woken || len(events) != 0 {
		t.Fatalf("Wake during a Wait: woken %v, %d events; want woken, none", woken, len(events))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Wake ended the Wait after %s; want about 50ms", el)
	}
	// A Wake before the Wait counts too, once.
	p.Wake()
	if _, woken := waitFor(t, p, 2*time.Second); !woken {
		t.Fatal("Wake before Wait: not woken")
	}
	if _, woken := waitFor(t, p, 20*time.Millisecond); woken {
		t.Fatal("second Wait after one Wake: woken again")
	}
}

func TestPollerReportsThePeersClose(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	if err := p.Add(a, 0, Edge); err != nil {
		t.Fatal(err)
	}
	unix.Close(b)
	events, _ := waitFor(t, p, 2*time.Second)
	if len(events) != 1 || !events[0].Hangup() {
		t.Fatalf("peer closed: %d events %+v; want one, a hangup", len(events), events)
	}
	if n, err := Read(a, make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer's close: %d, %v; want 0, EOF", n, err)
	}
}

func TestPeek(t *testing.T) {
	a, b := socketpair(t)
	if open, data := Peek(a); !open || data {
		t.Errorf("quiet socket: open %v, data %v; want open, no data", open, data)
	}
	write(t, b, "x")
	if open, data := Peek(a); open || !data {
		t.Errorf("bytes waiting: open %v, data %v; want not open (not idle), data", open, data)
	}
	// A peek takes nothing.
	buf := make([]byte, 4)
	if n, _ := Read(a, buf); string(buf[:n]) != "x" {
		t.Errorf("Read after Peek: %q; want x", buf[:n])
	}
	unix.Close(b)
	if open, data := Peek(a); open || data {
		t.Errorf("peer closed: open %v, data %v; want neither", open, data)
	}
}

// TestSockDetachAttachRoundTrip: a goroutine's connection goes to a loop
// (raw, non-blocking reads and writes) and back (a net.Conn with
// deadlines), the bytes flowing both ways at every step.
func TestSockDetachAttachRoundTrip(t *testing.T) {
	client, server := tcpPair(t)
	s := NewSock(server)
	buf := make([]byte, 64)
	exchange := func(step string) {
		t.Helper()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(client, "ping "+step); err != nil {
			t.Fatalf("%s: client write: %v", step, err)
		}
		want := "ping " + step
		got := ""
		deadline := time.Now().Add(5 * time.Second)
		for len(got) < len(want) && time.Now().Before(deadline) {
			n, err := s.Read(buf)
			if err == ErrWouldBlock {
				s.Ready() // as a Poller's event would
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("%s: Sock.Read: %v", step, err)
			}
			got += string(buf[:n])
		}
		if got != want {
			t.Fatalf("%s: Sock read %q; want %q", step, got, want)
		}
		if _, err := s.Write([]byte("pong " + step)); err != nil {
			t.Fatalf("%s: Sock.Write: %v", step, err)
		}
		if _, err := io.ReadFull(client, buf[:len("pong "+step)]); err != nil || string(buf[:len("pong "+step)]) != "pong "+step {
			t.Fatalf("%s: client read %q, %v; want %q", step, buf[:len("pong "+step)], err, "pong "+step)
		}
	}

	exchange("goroutine")
	if err := s.Detach(); err != nil {
		t.Fatal(err)
	}
	if s.FD() < 0 || s.Conn() != nil {
		t.Fatalf("detached: fd %d, conn %v; want a descriptor, no conn", s.FD(), s.Conn())
	}
	if _, err := s.Read(buf); err != ErrWouldBlock {
		t.Fatalf("loop's read of an empty socket: %v; want ErrWouldBlock", err)
	}
	if !s.Drained() {
		t.Fatal("after an empty read: not Drained")
	}
	s.SetReadDeadline(time.Now().Add(-time.Second)) // a loop's socket has none
	exchange("loop")
	if !s.Alive() || s.Gone() {
		t.Fatalf("loop's socket, client quiet: Alive %v, Gone %v; want alive", s.Alive(), s.Gone())
	}

	if err := s.Attach(); err != nil {
		t.Fatal(err)
	}
	if s.FD() >= 0 || s.Conn() == nil {
		t.Fatalf("attached: fd %d, conn %v; want a conn", s.FD(), s.Conn())
	}
	exchange("goroutine again")
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Read(buf); !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
		t.Fatalf("goroutine's read past its deadline: %v; want a timeout", err)
	}
	s.SetReadDeadline(time.Time{})

	// Detached again, then closed by the peer: Gone.
	if err := s.Detach(); err != nil {
		t.Fatal(err)
	}
	client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !s.Gone() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !s.Gone() || s.Alive() {
		t.Fatalf("peer closed: Gone %v, Alive %v; want gone", s.Gone(), s.Alive())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !s.Closed() {
		t.Fatal("after a loop's Close: not Closed")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// limited is a connection under a limit, as listener.ConnLimit makes them.
type limited struct {
	net.Conn
	released chan struct{}
}

func (c *limited) Detach() (net.Conn, func()) {
	return c.Conn, func() { close(c.released) }
}

// TestSockKeepsItsPlaceUnderTheLimit: a connection under a limit keeps
// its place while a loop owns it and after, and gives it back once, when
// closed.
func TestSockKeepsItsPlaceUnderTheLimit(t *testing.T) {
	for _, closeAs := range []string{"loop", "goroutine"} {
		t.Run(closeAs, func(t *testing.T) {
			_, server := tcpPair(t)
			lc := &limited{Conn: server, released: make(chan struct{})}
			s := NewSock(lc)
			if err := s.Detach(); err != nil {
				t.Fatal(err)
			}
			if closeAs == "goroutine" {
				if err := s.Attach(); err != nil {
					t.Fatal(err)
				}
				if err := s.Detach(); err != nil { // attached conns detach again, place and all
					t.Fatal(err)
				}
				if err := s.Attach(); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-lc.released:
				t.Fatal("place given back before Close")
			default:
			}
			s.Close()
			select {
			case <-lc.released:
			case <-time.After(5 * time.Second):
				t.Fatal("place not given back after Close")
			}
		})
	}
}

// TestSockPeeksATLSConnsNetworkConnection: a goroutine's socket may be a
// *tls.Conn, which has no descriptor to read raw (Detach refuses it): Gone
// looks at its network connection.
func TestSockPeeksATLSConnsNetworkConnection(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	rawClient, rawServer := tcpPair(t)
	server := tls.Server(rawServer, srv.TLS)
	client := tls.Client(rawClient, &tls.Config{InsecureSkipVerify: true})
	done := make(chan error, 1)
	go func() { done <- client.Handshake() }()
	if err := server.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := NewSock(server)
	if err := s.Detach(); err == nil {
		t.Fatal("Detach of a *tls.Conn succeeded; want an error (its bytes are records)")
	}
	if s.Gone() || !s.Alive() {
		t.Fatalf("client open and quiet: Gone %v, Alive %v; want alive", s.Gone(), s.Alive())
	}
	rawClient.Close() // without close_notify, whose bytes would wait to be read
	deadline := time.Now().Add(5 * time.Second)
	for !s.Gone() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !s.Gone() {
		t.Fatal("client's connection closed: not Gone after 5s")
	}
}

// heldConn holds what a TLS client writes, while hold is set, until
// release sends part of it, so that a record reaches the server in pieces.
type heldConn struct {
	net.Conn
	hold bool
	held []byte
}

func (c *heldConn) Write(p []byte) (int, error) {
	if !c.hold {
		return c.Conn.Write(p)
	}
	c.held = append(c.held, p...)
	return len(p), nil
}

// release sends the first n held bytes (all when n < 0).
func (c *heldConn) release(t *testing.T, n int) {
	t.Helper()
	if n < 0 {
		n = len(c.held)
	}
	if _, err := c.Conn.Write(c.held[:n]); err != nil {
		t.Fatal(err)
	}
	c.held = c.held[n:]
}

// waitReadable waits up to 5s for bytes on the loop's socket.
func waitReadable(t *testing.T, s *Sock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, data := Peek(s.FD()); !data; _, data = Peek(s.FD()) {
		if time.Now().After(deadline) {
			t.Fatal("nothing to read after 5s")
		}
		time.Sleep(time.Millisecond)
	}
	s.Ready()
}

// TestTLSSockAcrossOwners: a TLS socket keeps its records across owners.
// In a loop, a read decrypts every whole record there is and then reports
// the socket empty (a part of a record waits for more); the goroutine that
// takes it over reads the rest of that record; a loop's writes go out,
// and closing in a loop sends close_notify.
func TestTLSSockAcrossOwners(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	rawClient, rawServer := tcpPair(t)
	held := &heldConn{Conn: rawClient}
	s := NewTLSSock(rawServer, srv.TLS)
	client := tls.Client(held, &tls.Config{InsecureSkipVerify: true})
	client.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() { done <- client.Handshake() }()
	if err := s.Conn().(*tls.Conn).Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Detach(); err != nil {
		t.Fatalf("Detach of a TLS socket: %v", err)
	}
	if s.Conn() != nil {
		t.Fatal("Conn of a loop's socket: not nil")
	}
	buf := make([]byte, 64)
	if n, err := s.Read(buf); n != 0 || err != ErrWouldBlock || !s.Drained() {
		t.Fatalf("loop's read of a quiet socket: %d, %v, drained %v; want 0, ErrWouldBlock, drained", n, err, s.Drained())
	}

	// Two records and 3 bytes of a third come at once.
	held.hold = true
	for _, r := range []string{"one ", "two ", "three"} {
		io.WriteString(client, r)
	}
	third := len(held.held) / 3
	held.release(t, 2*third+3)
	waitReadable(t, s)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "one two " || !s.Drained() {
		t.Fatalf("loop's read of 2 records and a part: %q, %v, drained %v; want \"one two \", drained", buf[:n], err, s.Drained())
	}
	if n, err := s.Read(buf); n != 0 || err != ErrWouldBlock {
		t.Fatalf("loop's read again before Ready: %d, %v; want 0, ErrWouldBlock", n, err)
	}
	held.release(t, 5)
	waitReadable(t, s)
	if n, err := s.Read(buf); n != 0 || err != ErrWouldBlock {
		t.Fatalf("loop's read of more of the record, not all: %d, %v; want 0, ErrWouldBlock", n, err)
	}

	// A goroutine takes it over and reads the rest of the record.
	if err := s.Attach(); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	held.release(t, -1)
	held.hold = false
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "three" {
		t.Fatalf("goroutine's read of the rest: %q, %v; want \"three\"", buf[:n], err)
	}

	// Back in a loop: a write goes out whole, and close sends close_notify.
	if err := s.Detach(); err != nil {
		t.Fatalf("Detach again: %v", err)
	}
	if n, err := s.Write([]byte("answer")); n != 6 || err != nil || s.Unsent() {
		t.Fatalf("loop's write: %d, %v, unsent %v; want 6, nil, none", n, err, s.Unsent())
	}
	got := make([]byte, 6)
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "answer" {
		t.Fatalf("client read %q, %v; want \"answer\"", got, err)
	}
	if err := s.Close(); err != nil || !s.Closed() {
		t.Fatalf("Close: %v, closed %v", err, s.Closed())
	}
	if n, err := client.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("client's read after the loop closed: %d, %v; want io.EOF (close_notify)", n, err)
	}
}
