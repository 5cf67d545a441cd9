// Package handover passes dlb's listening sockets from a running dlb to the
// dlb that replaces it, over a Unix socket (SCM_RIGHTS), as HAProxy's
// `expose-fd listeners` and Envoy's hot restart do. The new dlb gets
// descriptors of the same sockets, not sockets of its own: a connection
// queued in a listen backlog is accepted by whichever process accepts next,
// and no moment passes without a listening socket.
//
// The running dlb serves a Server on its hand-over socket. A new dlb Dials
// it and gets the offer of its listening sockets, Takes those whose
// addresses match its own flags (binding itself any the old one lacks),
// starts serving on them and says so (Serving). Only then does the old dlb
// Release: it closes its copies (the sockets live on in the new process)
// and finishes what it has in flight. A successor that goes away, or says
// nothing in time, before Serving leaves the old dlb serving as before.
//
// The protocol is JSON, one message per packet of a SOCK_SEQPACKET socket:
//
//	new → old  hello    {protocol, pid, version}
//	old → new  offer    {protocol, pid, version, sockets: [{flag, addr, bound}]}, a descriptor per socket
//	           or refuse {error}
//	new → old  serving  (or nothing: the connection closes)
//	old → new  released (the old dlb no longer accepts)
package handover

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Protocol is the version of the messages; a peer speaking another is
// refused.
const Protocol = 1

// DefaultTimeout is how long either side waits for the other's next
// message, by default.
const DefaultTimeout = 10 * time.Second

// Socket is one of dlb's listening sockets: the flag it serves, the
// address that flag gives, and the listener.
type Socket struct {
	Flag     string // the flag's name: listen, listen-tls or admin
	Addr     string // the flag's value, e.g. ":80"
	Listener *net.TCPListener
}

// Message types.
const (
	typeHello    = "hello"
	typeOffer    = "offer"
	typeRefuse   = "refuse"
	typeServing  = "serving"
	typeReleased = "released"
)

// message is one packet of the protocol.
type message struct {
	Type     string    `json:"type"`
	Protocol int       `json:"protocol,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Version  string    `json:"version,omitempty"`
	Sockets  []offered `json:"sockets,omitempty"` // offer: one per descriptor, in order
	Error    string    `json:"error,omitempty"`   // refuse
}

// offered describes one descriptor of an offer.
type offered struct {
	Flag  string `json:"flag"`
	Addr  string `json:"addr"`  // the old dlb's flag value
	Bound string `json:"bound"` // the socket's address
}

// maxMessage bounds a packet; an offer of three sockets takes a few
// hundred bytes.
const maxMessage = 16 << 10

// maxFiles bounds the descriptors one packet may carry.
const maxFiles = 16

// send writes m, with files' descriptors attached.
func send(c *net.UnixConn, m message, files []*os.File, timeout time.Duration) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = syscall.UnixRights(fds...)
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

// receive reads one message and the descriptors it carries, as files. A
// message with descriptors it does not expect has them closed, so that a
// bad peer leaks none into this process.
func receive(c *net.UnixConn, timeout time.Duration, want ...string) (message, []*os.File, error) {
	buf, oob := make([]byte, maxMessage), make([]byte, syscall.CmsgSpace(maxFiles*4))
	c.SetReadDeadline(time.Now().Add(timeout))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return message{}, nil, err
	}
	files, ferr := parseRights(oob[:oobn])
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	if ferr != nil {
		closeAll()
		return message{}, nil, ferr
	}
	if flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 {
		closeAll()
		return message{}, nil, errors.New("message too long")
	}
	if n == 0 {
		closeAll()
		return message{}, nil, errClosed
	}
	var m message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeAll()
		return message{}, nil, fmt.Errorf("not a hand-over message: %v", err)
	}
	if m.Type == typeRefuse {
		closeAll()
		return m, nil, nil
	}
	if !slices.Contains(want, m.Type) {
		closeAll()
		return message{}, nil, fmt.Errorf("got a %q message, want %s", m.Type, strings.Join(want, " or "))
	}
	if n := len(files); m.Type == typeOffer && n != len(m.Sockets) || m.Type != typeOffer && n != 0 {
		closeAll()
		return message{}, nil, fmt.Errorf("%s message with %d sockets came with %d descriptors", m.Type, len(m.Sockets), len(files))
	}
	return m, files, nil
}

// errClosed is a peer that closed the connection.
var errClosed = errors.New("the other dlb closed the connection")

// parseRights turns the SCM_RIGHTS of oob into files.
func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			syscall.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "handed-over socket"))
		}
	}
	return files, nil
}
