package main

// The hand-over of the listening sockets from a running dlb to the one that
// replaces it (--handover-socket; package handover has the protocol).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/fleet"
	"github.com/dlb-lb/dlb/handover"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// How long a new dlb waits, before it asks for the sockets, for its first
// list of Docker's containers (it gives up: the old dlb keeps serving), and
// then for the replicas it found to pass their first check (it goes on:
// one that never passes must not block the upgrade).
const (
	syncWait   = 30 * time.Second
	settleWait = 5 * time.Second
)

// checkHandoverSocket checks --handover-socket: empty, or a path in a
// directory that exists.
func checkHandoverSocket(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return errors.New("is a directory: give the path of a socket file in it, e.g. /run/dlb/handover.sock")
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("directory %s does not exist: mount there a volume that the old and the new dlb share", filepath.Dir(path))
	}
	return nil
}

// findPredecessor returns the dlb serving --handover-socket, with the
// sockets it offers, or nil when there is none (or no --handover-socket).
// It asks only once this dlb has synced with Docker, so that the new dlb
// serves from its first request with the pools known.
func findPredecessor(ctx context.Context, cfg *config, f *fleet.Fleet) (*handover.Predecessor, error) {
	path := cfg.handoverSocket
	if path == "" {
		return nil, nil
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, nil // no dlb has served there
	}
	log := cfg.log.With().Str("component", "handover").Logger()
	if err := waitFleet(ctx, f, syncWait, f.Routed); err != nil {
		return nil, cli.Exit(fmt.Sprintf("--handover-socket %s is there, but this dlb has not synced with Docker in %s (see the log above): it takes sockets over only once synced; a dlb serving there keeps serving", path, syncWait), 1)
	}
	if waitFleet(ctx, f, settleWait, f.Settled) != nil {
		log.Warn().Dur("waited_ms", settleWait).Msg("some replicas have not passed their first check yet; taking the sockets over anyway")
	}
	pred, err := handover.Dial(path, version, 0)
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("--handover-socket %s: %v", path, err), 1)
	}
	if pred != nil {
		log.Info().Int("old_pid", pred.PID).Str("old_version", pred.Version).Msg("hand-over: a dlb serves here; taking its sockets over")
	}
	return pred, nil
}

// waitFleet waits until ok, or timeout (an error) or ctx ends.
func waitFleet(ctx context.Context, f *fleet.Fleet, timeout time.Duration, ok func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// Changed covers the list and the checks' results; the tick covers a
	// change that came between ok and Changed.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		select {
		case <-f.Changed():
		case <-tick.C:
		case <-deadline.C:
			return errors.New("timed out")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// opener opens the listening socket of a flag: the predecessor's, when
// there is one for that flag at that address, else a new one.
type opener struct {
	pred *handover.Predecessor // nil: bind every socket
	log  zerolog.Logger
	// sockets are those opened, for the next hand-over.
	sockets []handover.Socket
}

// open returns the listener of flag at addr; hint ends the message of an
// address in use.
func (o *opener) open(flag, addr, hint string) (net.Listener, error) {
	var ln *net.TCPListener
	if o.pred != nil {
		var err error
		if ln, err = o.pred.Take(flag, addr); err != nil {
			return nil, cli.Exit(err.Error()+"; the running dlb keeps serving", 2)
		}
		if ln != nil {
			o.log.Info().Str("flag", flag).Str("addr", ln.Addr().String()).Msg("hand-over: took the running dlb's socket")
		}
	}
	if ln == nil {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, cli.Exit(fmt.Sprintf("--%s %s: %v (%s)", flag, addr, err, hint), 1)
		}
		ln = l.(*net.TCPListener)
	}
	o.sockets = append(o.sockets, handover.Socket{Flag: flag, Addr: addr, Listener: ln})
	return &releasable{TCPListener: ln, closed: make(chan struct{})}, nil
}

// releasable is a listening socket as dlb's servers see it. Once the
// socket is released to a new dlb (its descriptor closed under the
// server's Accept), Accept waits for Close rather than failing: the server
// keeps going until its Shutdown (net/http's still takes the parked
// connections that wake with a request), as on SIGTERM.
type releasable struct {
	*net.TCPListener
	closeOnce sync.Once
	closed    chan struct{}
}

func (l *releasable) Accept() (net.Conn, error) {
	c, err := l.TCPListener.Accept()
	if err != nil && errors.Is(err, net.ErrClosed) {
		<-l.closed
	}
	return c, err
}

func (l *releasable) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.TCPListener.Close()
}

// close closes the sockets opened; a predecessor's stay open in it.
func (o *opener) close() {
	for _, s := range o.sockets {
		s.Listener.Close()
	}
}

// release stops this dlb accepting: its copies of the listening sockets
// close, and the sockets live on in the dlb that took them over.
func (s *servers) release() {
	s.serving.Store(false)
	s.released.Store(true)
	for _, sk := range s.sockets {
		sk.Listener.Close()
	}
}

// self is what /api/self answers.
func (s *servers) self(id string) func() admin.Self {
	return func() admin.Self { return admin.Self{ID: id, Version: version, Serving: s.serving.Load()} }
}

// selfID is dlb's container ID, for /api/self: the one Docker confirmed,
// else the one /proc names.
func selfID(o discovery.Options) string {
	if o.SelfID != "" {
		return o.SelfID
	}
	return discovery.ContainerID()
}

// handOver serves --handover-socket for the next dlb: the channel is
// closed once that one serves and this one has released its sockets.
func (s *servers) handOver(ctx context.Context, cfg *config) <-chan struct{} {
	done := make(chan struct{})
	if cfg.handoverSocket == "" {
		return done
	}
	log := cfg.log.With().Str("component", "handover").Logger()
	ln, err := handover.Listen(cfg.handoverSocket)
	if err != nil {
		log.Error().Err(err).Str("path", cfg.handoverSocket).Msg("cannot serve --handover-socket: the next dlb cannot take the sockets over (restarting loses requests in flight)")
		return done
	}
	log.Info().Str("path", cfg.handoverSocket).Msg("hand-over: a new dlb may take the sockets over here")
	srv := &handover.Server{Sockets: s.sockets, Version: version, Release: s.release, Log: log}
	go func() {
		if srv.Serve(ctx, ln) == nil {
			close(done)
		}
	}()
	return done
}

// restartsOnExit reports whether Docker starts dlb's container again when
// dlb exits, even with 0 (restart: always or unless-stopped): then a dlb
// that handed over waits for the stop that removes it, rather than coming
// back to take the sockets back.
func restartsOnExit(policy string) bool {
	return policy == "always" || policy == "unless-stopped"
}
