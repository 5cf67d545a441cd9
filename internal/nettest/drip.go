package nettest

import (
	"io"
	"net"
	"time"
)

// Drip writes one byte of request body to c every interval, as a slow
// client does, until the other end answers and closes; it returns what c
// read (within 10s at most).
func Drip(c net.Conn, every time.Duration) string {
	answer := make(chan string, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		answer <- string(b)
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case out := <-answer:
			return out
		case <-tick.C:
			c.Write([]byte("x"))
		}
	}
}
