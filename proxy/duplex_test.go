package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/internal/nettest"
)

// echoWhileReading is a replica that answers before it has read the whole
// request body: it sends its head, then copies the body back as it reads it
// (a streaming or echo handler, as traefik/whoami's echo).
func echoWhileReading(w http.ResponseWriter, r *http.Request) {
	http.NewResponseController(w).EnableFullDuplex()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	io.Copy(w, r.Body)
}

// An upload to a replica that answers while it still reads the body arrives
// whole, and its echo comes back whole: dlb carries the two directions at
// once (full duplex), as the replica and the client expect. net/http's
// server would otherwise read and discard up to 256 KiB of the body when the
// response starts, and cut the rest.
func TestUploadToReplicaThatAnswersWhileReading(t *testing.T) {
	route, pool := poolRoute("echo")
	ready(t, pool, "echo-1", newBackend(t, "echo-1", echoWhileReading).addr())
	f := newFront(t, Options{}, []Route{route}, nil)
	// 50 MB each way under the race detector on a busy machine can take
	// longer than the front's usual 10 s: what counts is that every byte
	// arrives.
	f.client.Timeout = 2 * time.Minute
	checkEchoes(t, f.client, f.srv.URL+"/echo", 100<<10, 5<<20, 50<<20)
}

// checkEchoes POSTs a body of each size to url, a replica that echoes while
// it reads, and checks that the echo comes back whole and the same.
func checkEchoes(t *testing.T, c *http.Client, url string, sizes ...int64) {
	t.Helper()
	for _, n := range sizes {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, url, &nettest.Pattern{N: n})
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = n
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("POST of %d bytes: %v", n, err)
			}
			defer resp.Body.Close()
			got, same, err := nettest.CheckPattern(resp.Body, n)
			if err != nil || !same {
				t.Fatalf("POST of %d bytes: the echo came back with %d bytes (%v), the same bytes: %v; want all %d, the same", n, got, err, same, n)
			}
		})
	}
}

// A replica that answers a large upload without reading it all leaves the
// client's keep-alive connection usable: its next request is answered.
// net/http's server breaks a connection whose full-duplex body ends after
// the handler; dlb reads what is left (or closes after the answer when too
// much is left), so no request is lost.
func TestEarlyAnswerKeepsTheConnection(t *testing.T) {
	route, pool := poolRoute("early")
	ready(t, pool, "early-1", newBackend(t, "early-1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early")
	}).addr())
	f := newFront(t, Options{}, []Route{route}, nil)
	for _, size := range []int{100 << 10, 200 << 10, 2 << 20} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			go func() {
				fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
				c.Write(bytes.Repeat([]byte("x"), size))
			}()
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("POST of %d bytes: %v", size, err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "early" {
				t.Fatalf("POST of %d bytes: got %d %q, want 200 %q", size, resp.StatusCode, b, "early")
			}
			if resp.Close {
				return // too much left to read: the connection ends after the answer, as it says
			}
			fmt.Fprintf(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("GET after a POST of %d bytes answered early, on the same connection (which did not say close): %v", size, err)
			}
			b, _ = io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "early" {
				t.Fatalf("GET after a POST of %d bytes answered early: got %d %q, want 200", size, resp.StatusCode, b)
			}
		})
	}
}
