// Command demo is a tiny HTTP backend for trying dlb: every answer names the
// replica (its hostname) that served it, so the spread of traffic is visible.
//
// Endpoints:
//
//	GET  /             the hostname, one line (also in the X-Replica header)
//	GET  /healthz      200 "ok"
//	GET  /slow?ms=N    waits N milliseconds, then answers like /
//	GET  /sse?n=N      N server-sent events, one every 100 ms
//	GET  /stream?n=N&ms=M  N text lines, one every M ms (default 5, 100), chunked
//	GET  /ws           a WebSocket echo (RFC 6455); the 101 names the replica
//	POST /upload       reads the whole body and answers with its byte count
//	POST /echo         sends the body back as it reads it (answers before the
//	                   upload ends, as a streaming handler does)
//	GET  /download?bytes=N  N bytes of zeros, streamed
//	GET  /echo-headers the request's headers, one per line
//	GET  /fault/...    a reset, or a malformed answer (faults.go)
//	GET  /work?ms=N    N ms of work on one of CORES "cores" (capacity.go)
//	GET  /capacity     the most requests served at once, and how many got 500 over CAPACITY
//
// Environment:
//
//	PORT          port to listen on (default 80)
//	LISTEN_DELAY  wait this long before listening, e.g. "2s" (to test readiness gates)
//	GRACE         on SIGTERM, finish requests in flight for up to this long (default 5s)
//	CAPACITY      serve at most this many requests at once; more get 500 (capacity.go)
//	CORES         how many /work requests run at once (default 2; capacity.go)
//
// With -check URL it is its own HEALTHCHECK (the image has no shell or curl):
// it GETs URL and exits 0 on a 2xx answer, 1 otherwise.
//
//	HEALTHCHECK CMD ["/demo", "-check", "http://127.0.0.1/healthz"]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-check" {
		os.Exit(check(os.Args[2]))
	}
	port := envOr("PORT", "80")
	delay := envDuration("LISTEN_DELAY", 0)
	grace := envDuration("GRACE", 5*time.Second)
	host, _ := os.Hostname()

	mux := http.NewServeMux()
	capa := newCapacity() // CAPACITY and CORES: capacity.go
	capa.routes(mux, host)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		answer(w, host)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		answer(w, host)
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n <= 0 {
			n = 5
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Replica", host)
		flusher, _ := w.(http.Flusher)
		for i := 0; i < n; i++ {
			if i > 0 {
				select {
				case <-time.After(100 * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "data: %d %s\n\n", i, host)
			if flusher != nil {
				flusher.Flush()
			}
		}
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n <= 0 {
			n = 5
		}
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			ms = 100
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Replica", host)
		rc := http.NewResponseController(w)
		for i := 0; i < n; i++ {
			if i > 0 {
				select {
				case <-time.After(time.Duration(ms) * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "line %d %s\n", i, host)
			rc.Flush()
		}
	})
	mux.HandleFunc("/ws", websocketEcho(host))
	handleFaults(mux)
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Replica", host)
		fmt.Fprintf(w, "%d\n", n)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Replica", host)
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("X-Replica", host)
		buf := make([]byte, 32<<10)
		for n > 0 {
			chunk := int64(len(buf))
			if n < chunk {
				chunk = n
			}
			if _, err := w.Write(buf[:chunk]); err != nil {
				return
			}
			n -= chunk
		}
	})
	mux.HandleFunc("/echo-headers", func(w http.ResponseWriter, r *http.Request) {
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.Header().Set("X-Replica", host)
		fmt.Fprintf(w, "Host: %s\n", r.Host)
		for _, k := range keys {
			for _, v := range r.Header[k] {
				fmt.Fprintf(w, "%s: %s\n", k, v)
			}
		}
	})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if delay > 0 {
		log.Printf("waiting %s before listening", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
	}
	srv := &http.Server{Addr: ":" + port, Handler: capa.handler(mux), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("%s listening on :%s", host, port)
	select {
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	log.Printf("shutting down, finishing requests for up to %s", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Print(err)
	}
}

// check is the HEALTHCHECK mode: 0 when url answers 2xx within 2s.
func check(url string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}

func answer(w http.ResponseWriter, host string) {
	w.Header().Set("X-Replica", host)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, host+"\n")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		log.Fatalf("%s=%q: not a duration (try 2s or 500ms)", name, v)
	}
	return d
}
