// Command reuseport measures what dlb's hand-over of its listening sockets
// chooses between: clients open new connections to 127.0.0.1 back to back
// while the listening socket changes hands -switches times, and the failed
// connections (refused, reset, closed unanswered) are counted.
//
//	-mode passfd     the new owner gets a descriptor of the same socket (what
//	                 SCM_RIGHTS passes), then the old one closes its own
//	-mode reuseport  the new owner binds a socket of its own with SO_REUSEPORT,
//	                 then the old one closes its socket (and whatever waits in
//	                 its queue goes with it, unless net.ipv4.tcp_migrate_req=1
//	                 in this network namespace moves it to the new socket)
//
// Run it in a network namespace of its own to try tcp_migrate_req without
// touching the host's: see bench/handover.sh's notes in docs/architecture.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	mode := flag.String("mode", "passfd", "passfd or reuseport")
	switches := flag.Int("switches", 50, "how many times the socket changes hands")
	every := flag.Duration("every", 100*time.Millisecond, "time between two switches")
	clients := flag.Int("c", 16, "clients opening connections back to back")
	flag.Parse()
	if *mode != "passfd" && *mode != "reuseport" {
		fmt.Fprintln(os.Stderr, "-mode: passfd or reuseport")
		os.Exit(2)
	}
	lc := net.ListenConfig{}
	if *mode == "reuseport" {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1) })
			return serr
		}
	}
	first, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	addr := first.Addr().String()
	cur := serve(first)

	var ok, refused, reset, other atomic.Int64
	var firstOther atomic.Value // the first failure of none of the kinds above
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range *clients {
		wg.Go(func() {
			buf := make([]byte, 4)
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err == nil {
					c.SetDeadline(time.Now().Add(2 * time.Second))
					if _, err = c.Write([]byte("ping")); err == nil {
						_, err = io.ReadFull(c, buf)
					}
					c.Close()
				}
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, syscall.ECONNREFUSED):
					refused.Add(1)
				case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
					reset.Add(1)
				default:
					other.Add(1)
					firstOther.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	for range *switches {
		time.Sleep(*every)
		var next net.Listener
		if *mode == "passfd" {
			f, err := cur.ln.(*net.TCPListener).File()
			if err == nil {
				next, err = net.FileListener(f)
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		} else if next, err = lc.Listen(context.Background(), "tcp", addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		nextSrv := serve(next)
		cur.close() // the old owner stops accepting and closes its socket
		cur = nextSrv
	}
	time.Sleep(*every)
	close(stop)
	wg.Wait()
	cur.close()
	migrate, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	fmt.Printf("mode=%s tcp_migrate_req=%s switches=%d connections=%d failed=%d (refused=%d reset=%d other=%d)",
		*mode, string(migrate[:max(len(migrate)-1, 0)]), *switches, ok.Load()+refused.Load()+reset.Load()+other.Load(),
		refused.Load()+reset.Load()+other.Load(), refused.Load(), reset.Load(), other.Load())
	if e := firstOther.Load(); e != nil {
		fmt.Printf(" first other: %s", e)
	}
	fmt.Println()
}

// server accepts on ln and answers every connection's 4 bytes with 4.
type server struct {
	ln   net.Listener
	done sync.WaitGroup
}

func serve(ln net.Listener) *server {
	s := &server{ln: ln}
	s.done.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4)
				c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := io.ReadFull(c, buf); err == nil {
					c.Write([]byte("pong"))
				}
				c.Close()
			}()
		}
	})
	return s
}

func (s *server) close() {
	s.ln.Close()
	s.done.Wait()
}
