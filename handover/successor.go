package handover

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"syscall"
	"time"
)

// Predecessor is the running dlb, seen by the new one: the sockets it
// offers until they are taken or the Predecessor is closed.
type Predecessor struct {
	PID     int    // its process ID (in its own PID namespace)
	Version string // its dlb version

	conn    *net.UnixConn
	timeout time.Duration
	offers  map[string]*offer // by flag
}

// offer is one socket offered, and its descriptor until taken.
type offer struct {
	offered
	file *os.File // nil once taken
}

// Dial asks the dlb serving the hand-over socket at path for its sockets,
// saying this dlb's version. It returns nil and no error when no dlb
// serves there (noPredecessor).
// timeout bounds each message (0: DefaultTimeout).
func Dial(path, version string, timeout time.Duration) (*Predecessor, error) {
	timeout = orDefault(timeout, DefaultTimeout)
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("unixpacket", path)
	if noPredecessor(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach the running dlb at %s: %v", path, err)
	}
	uc := c.(*net.UnixConn)
	hello := message{Type: typeHello, Protocol: Protocol, PID: os.Getpid(), Version: version}
	if err := send(uc, hello, nil, timeout); err != nil {
		uc.Close()
		if noPredecessor(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("the running dlb at %s: %v", path, err)
	}
	m, files, err := receive(uc, timeout, typeOffer)
	if err == nil && m.Type == typeRefuse {
		err = errors.New(m.Error)
	}
	if err != nil {
		uc.Close()
		if noPredecessor(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("the running dlb at %s gives no sockets: %v", path, err)
	}
	p := &Predecessor{PID: m.PID, Version: m.Version, conn: uc, timeout: timeout, offers: map[string]*offer{}}
	for i, o := range m.Sockets {
		if old := p.offers[o.Flag]; old != nil {
			old.file.Close() // a flag offered twice: the last counts
		}
		p.offers[o.Flag] = &offer{offered: o, file: files[i]}
	}
	return p, nil
}

// noPredecessor reports whether err, of connecting to the hand-over socket
// or of the first exchange over it, means that no dlb serves there: no
// socket file, a file that a dlb which died left behind (refused), or a
// dlb that closed its socket while this connection waited to be accepted
// (it had just handed over, or is stopping: the kernel resets the
// connections left in the socket's queue).
func noPredecessor(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// MismatchError is a socket the old dlb has for a flag, at another address
// than the new dlb's flag gives.
type MismatchError struct {
	Flag string // the flag's name
	Want string // the new dlb's value
	Has  string // the old dlb's value
	PID  int    // the old dlb's
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("--%s %s: the running dlb (pid %d) listens on %s; a hand-over keeps the addresses: give the new dlb --%s %s, or stop the old dlb before starting one on another address",
		e.Flag, e.Want, e.PID, e.Has, e.Flag, e.Has)
}

// Take returns the predecessor's socket for flag, as a listener of this
// process. It returns nil and no error when the predecessor has none for
// flag (then bind it), and a *MismatchError when it has one at another
// address than addr.
func (p *Predecessor) Take(flag, addr string) (*net.TCPListener, error) {
	o := p.offers[flag]
	if o == nil || o.file == nil {
		return nil, nil
	}
	if !sameAddr(addr, o.Addr, o.Bound) {
		return nil, &MismatchError{Flag: flag, Want: addr, Has: o.Addr, PID: p.PID}
	}
	ln, err := net.FileListener(o.file) // its own descriptor of the socket
	o.file.Close()
	o.file = nil
	if err != nil {
		return nil, fmt.Errorf("--%s %s: the socket the running dlb passed: %v", flag, addr, err)
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("--%s %s: the running dlb passed a socket that is not a TCP listener", flag, addr)
	}
	return tl, nil
}

// Untaken are the flags (and the old dlb's addresses) of the sockets
// offered and not taken: they close when the old dlb leaves.
func (p *Predecessor) Untaken() []string {
	var out []string
	for flag, o := range p.offers {
		if o.file != nil {
			out = append(out, "--"+flag+" "+o.Addr)
		}
	}
	sort.Strings(out)
	return out
}

// Serving tells the predecessor that this dlb serves on the sockets it
// took, and returns once the predecessor has stopped accepting on them (or
// with an error, when it does not say so in time: then both accept for a
// while, which loses nothing). It closes the Predecessor.
func (p *Predecessor) Serving() error {
	defer p.Close()
	if err := send(p.conn, message{Type: typeServing}, nil, p.timeout); err != nil {
		return err
	}
	_, _, err := receive(p.conn, p.timeout, typeReleased)
	return err
}

// Close closes the sockets not taken and the connection; before Serving,
// the predecessor keeps serving as it did.
func (p *Predecessor) Close() {
	for _, o := range p.offers {
		if o.file != nil {
			o.file.Close()
			o.file = nil
		}
	}
	p.conn.Close()
}

// sameAddr reports whether the listen address want is the old dlb's: the
// same flag value, or one that resolves to the socket's bound address (an
// unspecified host matches any unspecified host).
func sameAddr(want, has, bound string) bool {
	if want == has {
		return true
	}
	w, err1 := net.ResolveTCPAddr("tcp", want)
	b, err2 := net.ResolveTCPAddr("tcp", bound)
	if err1 != nil || err2 != nil || w.Port == 0 || w.Port != b.Port {
		return false
	}
	unspecified := func(ip net.IP) bool { return ip == nil || ip.IsUnspecified() }
	return unspecified(w.IP) && unspecified(b.IP) || w.IP.Equal(b.IP)
}
