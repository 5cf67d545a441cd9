// Command upgradeload sends GETs to url from keep-alive clients (Go's HTTP
// client; -fresh: a connection per request) until it gets SIGTERM or
// SIGINT, or for at most -max, and prints one line: requests, failed, how
// long requests kept failing (from the first failure to the last), and the
// slowest request. A client waits 10 ms after a failure, so the count
// follows the outage, not how fast a refused connection comes back.
// bench/handover.sh runs it while dlb is restarted, recreated or handed
// over. Only point it at 127.0.0.1.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// failPause is how long a client waits after a failed request before its
// next one.
const failPause = 10 * time.Millisecond

func main() {
	url := flag.String("url", "http://127.0.0.1:8000/", "where to send GETs")
	workers := flag.Int("c", 8, "clients, each with its keep-alive connection")
	maxDur := flag.Duration("max", 2*time.Minute, "stop after this long at most")
	maxReq := flag.Int64("n", 2_000_000, "stop after this many requests at most")
	fresh := flag.Bool("fresh", false, "a new connection (and TLS handshake) for every request")
	insecure := flag.Bool("insecure", false, "with https: trust any certificate (a test's self-signed one)")
	flag.Parse()

	tr := &http.Transport{MaxIdleConnsPerHost: *workers, MaxConnsPerHost: *workers, DisableKeepAlives: *fresh,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: *insecure}}
	client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	var requests, failed, slowest atomic.Int64
	var first atomic.Value           // the first failure, for the line
	var firstAt, lastAt atomic.Int64 // when the first and the last failure came (unix ns)
	stop := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-sig:
		case <-time.After(*maxDur):
		}
		close(stop)
	}()
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for requests.Load() < *maxReq {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				resp, err := client.Get(*url)
				requests.Add(1)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode/100 != 2 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				for took, was := int64(time.Since(start)), slowest.Load(); took > was && !slowest.CompareAndSwap(was, took); was = slowest.Load() {
				}
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
					now := time.Now().UnixNano()
					firstAt.CompareAndSwap(0, now)
					lastAt.Store(now)
					// A client that fails tries again a moment later,
					// rather than spinning on a refused port.
					time.Sleep(failPause)
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("requests=%d failed=%d failing_ms=%d slowest_ms=%d first_failure=%q\n", requests.Load(), failed.Load(),
		time.Duration(lastAt.Load()-firstAt.Load()).Milliseconds(), time.Duration(slowest.Load()).Milliseconds(), fmt.Sprint(first.Load()))
}
