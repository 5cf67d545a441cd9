package handover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Server is the running dlb's side: it offers its sockets to the dlb that
// replaces it and releases them once that one serves. Fill in its fields,
// then Serve.
type Server struct {
	// Sockets are what it offers.
	Sockets []Socket
	// Version is this dlb's, for the successor's log.
	Version string
	// Release is called once a successor serves on the sockets: it stops
	// this dlb accepting on them (closes its copies), and returns when it
	// has.
	Release func()
	// Timeout is how long a successor may take for each message (0:
	// DefaultTimeout).
	Timeout time.Duration
	// Log gets what happens, at info level, and the refusals at warn.
	Log zerolog.Logger

	mu       sync.Mutex
	busy     int  // the PID of the successor being offered the sockets; 0: none
	released bool // Release was called
}

// Listen makes the hand-over socket at path: it binds a new one beside it
// and renames it over path, so that a successor never finds a path with no
// socket, and a socket file left by a dlb that died is replaced. The
// directory must exist (a volume both dlb containers mount).
func Listen(path string) (*net.UnixListener, error) {
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("directory %s does not exist: mount a volume there that the old and the new dlb share", filepath.Dir(path))
	}
	tmp := fmt.Sprintf("%s.%d.new", path, os.Getpid())
	os.Remove(tmp)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: tmp, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	// The path is the next dlb's once it takes over: closing this
	// listener must not unlink it.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	return ln, nil
}

// Serve answers successors on ln until one of them serves (it returns nil,
// after Release) or ctx ends (it returns ctx's error). It closes ln.
// Successors are answered one at a time; the others are refused.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	defer ln.Close()
	done := make(chan struct{})
	var once sync.Once
	finish := func() { once.Do(func() { close(done); ln.Close() }) }
	go func() {
		select {
		case <-ctx.Done():
			finish()
		case <-done:
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			select {
			case <-done:
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			finish()
			return err
		}
		wg.Go(func() {
			if s.answer(c) {
				finish()
			}
		})
	}
}

// answer runs the protocol with one successor and closes c; it reports
// whether the successor serves and the sockets are released.
func (s *Server) answer(c *net.UnixConn) bool {
	defer c.Close()
	timeout := orDefault(s.Timeout, DefaultTimeout)
	hello, _, err := receive(c, timeout, typeHello)
	if err != nil {
		s.Log.Warn().Err(err).Msg("hand-over: a successor did not say hello; ignored")
		return false
	}
	log := s.Log.With().Int("successor_pid", hello.PID).Str("successor_version", hello.Version).Logger()
	if why := s.claim(hello); why != "" {
		log.Warn().Msg("hand-over refused: " + why)
		send(c, message{Type: typeRefuse, Error: why}, nil, timeout)
		return false
	}
	released := false
	defer func() {
		if !released {
			s.mu.Lock()
			s.busy = 0
			s.mu.Unlock()
		}
	}()
	offer := message{Type: typeOffer, Protocol: Protocol, PID: os.Getpid(), Version: s.Version}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, sk := range s.Sockets {
		f, err := sk.Listener.File() // a descriptor of the same socket
		if err != nil {
			log.Warn().Err(err).Str("flag", sk.Flag).Msg("hand-over: cannot pass a socket; still serving")
			send(c, message{Type: typeRefuse, Error: fmt.Sprintf("the running dlb cannot pass its --%s socket: %v", sk.Flag, err)}, nil, timeout)
			return false
		}
		files = append(files, f)
		offer.Sockets = append(offer.Sockets, offered{Flag: sk.Flag, Addr: sk.Addr, Bound: sk.Listener.Addr().String()})
	}
	if err := send(c, offer, files, timeout); err != nil {
		log.Warn().Err(err).Msg("hand-over: cannot send the sockets; still serving")
		return false
	}
	log.Info().Int("sockets", len(files)).Msg("hand-over: sockets offered to a new dlb; serving until it says it serves")
	if _, _, err := receive(c, timeout, typeServing); err != nil {
		log.Warn().Err(err).Msg("hand-over: the new dlb did not start serving; still serving, nothing changed")
		return false
	}
	s.Release()
	s.mu.Lock()
	s.released, released = true, true
	s.mu.Unlock()
	send(c, message{Type: typeReleased}, nil, timeout)
	log.Info().Msg("hand-over: the new dlb serves; this one stopped accepting")
	return true
}

// claim reserves the sockets for the successor that said hello; it returns
// why not when they are not to be had.
func (s *Server) claim(hello message) string {
	if hello.Protocol != Protocol {
		return fmt.Sprintf("hand-over protocol %d, the running dlb speaks %d: upgrade through a dlb version between the two, or restart dlb", hello.Protocol, Protocol)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.released:
		return "the running dlb has already handed its sockets over"
	case s.busy != 0:
		return fmt.Sprintf("another new dlb (pid %d) is taking the sockets over", s.busy)
	}
	s.busy = max(hello.PID, 1)
	return ""
}

// orDefault is d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
