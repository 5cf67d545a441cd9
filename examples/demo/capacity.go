package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// A replica with a capacity, for trying dlb under a surge.
//
// CAPACITY=N makes the replica serve at most N requests at once: the N+1-th
// concurrent one gets 500 at once, as an app out of CPU or memory fails.
// /healthz and /capacity do not count.
//
// CORES=N (default 2) is how many requests /work runs at once; the others
// wait their turn, so its latency grows with concurrency past N, as a
// CPU-bound app's does (without burning the host's CPU).
//
//	GET /work?ms=N   N ms of "CPU" work on one of CORES cores, then answers like /
//	GET /capacity    "peak P over O": the most requests served at once, and how
//	                 many got 500 for being over CAPACITY (since the start)

// capacity is the replica's concurrency bookkeeping.
type capacity struct {
	max        int64 // CAPACITY; 0: none
	inFlight   atomic.Int64
	peak, over atomic.Int64
	cores      chan struct{}
}

func newCapacity() *capacity {
	c := &capacity{}
	if v := os.Getenv("CAPACITY"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			log.Fatalf("CAPACITY=%q: not a number of requests (a whole number from 1)", v)
		}
		c.max = n
	}
	cores := 2
	if v := os.Getenv("CORES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			log.Fatalf("CORES=%q: not a number of cores (a whole number from 1)", v)
		}
		cores = n
	}
	c.cores = make(chan struct{}, cores)
	return c
}

// handler serves next within the capacity.
func (c *capacity) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/capacity" {
			next.ServeHTTP(w, r)
			return
		}
		n := c.inFlight.Add(1)
		defer c.inFlight.Add(-1)
		for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
		}
		if c.max > 0 && n > c.max {
			c.over.Add(1)
			http.Error(w, fmt.Sprintf("over capacity: %d requests at once, capacity %d", n, c.max), http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// routes adds /work and /capacity to mux.
func (c *capacity) routes(mux *http.ServeMux, host string) {
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case c.cores <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		<-c.cores
		answer(w, host)
	})
	mux.HandleFunc("/capacity", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "peak %d over %d\n", c.peak.Load(), c.over.Load())
	})
}
