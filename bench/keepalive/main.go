// Command keepalive is a bounded keep-alive HTTP load for the rollout
// measurement (bench/rollout.sh): -c clients send GETs back to back to one
// loopback URL, each on its own kept-alive connection, until SIGINT or
// SIGTERM, -max-time or -max-requests; then it prints one line: requests,
// failed (transport errors and non-2xx), slowest, p99.9 and p50.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	target := flag.String("url", "", "URL to GET (loopback only)")
	clients := flag.Int("c", 8, "concurrent keep-alive clients")
	maxTime := flag.Duration("max-time", 3*time.Minute, "stop after this long")
	maxRequests := flag.Int64("max-requests", 2_000_000, "stop after this many requests")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" {
		fmt.Fprintln(os.Stderr, "keepalive: -url must be http://127.0.0.1:PORT/...")
		os.Exit(2)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		fmt.Fprintln(os.Stderr, "keepalive: -url must be on loopback (127.0.0.1)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()

	tr := &http.Transport{MaxIdleConnsPerHost: *clients, MaxConnsPerHost: *clients}
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var requests, failed atomic.Int64
	var mu sync.Mutex
	var took []time.Duration
	var wg sync.WaitGroup
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil && requests.Add(1) <= *maxRequests {
				start := time.Now()
				resp, err := client.Get(*target)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				mine = append(mine, time.Since(start))
				if err != nil {
					failed.Add(1)
				}
			}
			mu.Lock()
			took = append(took, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(took)
	q := func(f float64) time.Duration {
		if len(took) == 0 {
			return 0
		}
		return took[min(len(took)-1, int(f*float64(len(took))))]
	}
	fmt.Printf("requests=%d failed=%d slowest_ms=%.1f p999_ms=%.1f p50_ms=%.2f\n", len(took), failed.Load(),
		ms(q(1)), ms(q(0.999)), ms(q(0.5)))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
