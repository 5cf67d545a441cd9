// Command idleconns opens N keep-alive connections to addr, sends one GET on each,
// reads the answer, then holds them idle for hold, printing the VmRSS of the
// process pid (Linux) every 2 s. It is how docs/performance.md measured dlb
// with 10,000 idle clients. Only point it at 127.0.0.1.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

func rss(pid string) string {
	b, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func main() {
	addr := flag.String("addr", "127.0.0.1:27180", "")
	n := flag.Int("n", 10000, "")
	pid := flag.String("pid", "", "")
	hold := flag.Duration("hold", 10*time.Second, "")
	flag.Parse()
	fmt.Println("before:", rss(*pid))
	conns := make([]net.Conn, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var mu sync.Mutex
	fails := 0
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
			if err != nil {
				mu.Lock()
				fails++
				mu.Unlock()
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				_, err = fmt.Fscan(resp.Body, new(string))
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != 200 {
				mu.Lock()
				fails++
				mu.Unlock()
				c.Close()
				return
			}
			c.SetDeadline(time.Time{})
			conns[i] = c
		}()
	}
	wg.Wait()
	fmt.Println("opened", *n-fails, "failed", fails)
	deadline := time.Now().Add(*hold)
	for time.Now().Before(deadline) {
		fmt.Println("held:", rss(*pid))
		time.Sleep(2 * time.Second)
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	time.Sleep(2 * time.Second)
	fmt.Println("after close:", rss(*pid))
}
