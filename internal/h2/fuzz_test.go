package h2

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzServeConn feeds arbitrary bytes after the client preface to a
// connection whose handler echoes bodies with a trailer: whatever comes,
// the server neither panics nor hangs, and ServeConn returns (every
// handler with it) once the client is gone.
func FuzzServeConn(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	s := &Server{Handler: http.HandlerFunc(echo), MaxConcurrentStreams: 8, WriteTimeout: time.Second}
	f.Fuzz(func(t *testing.T, in []byte) {
		cc, sc := net.Pipe()
		done := make(chan struct{})
		go func() {
			s.ServeConn(context.Background(), sc)
			close(done)
		}()
		go io.Copy(io.Discard, cc)
		cc.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(cc, http2.ClientPreface)
		cc.Write(in)
		cc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("ServeConn still running 10s after the client left; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
	})
}

// fuzzSeeds are frame sequences a client sends: a GET, a POST with a body
// and trailers, settings, pings, window updates, a reset, priority.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	build := func(write func(fr *http2.Framer, block func(fields ...string) []byte)) {
		var buf, hb bytes.Buffer
		fr := http2.NewFramer(&buf, nil)
		he := hpack.NewEncoder(&hb)
		block := func(fields ...string) []byte {
			hb.Reset()
			for i := 0; i < len(fields); i += 2 {
				he.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
			}
			return bytes.Clone(hb.Bytes())
		}
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})
		write(fr, block)
		seeds = append(seeds, buf.Bytes())
	}
	req := []string{":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/"}
	build(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(req...), EndStream: true, EndHeaders: true})
	})
	build(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(append(req[2:], ":method", "POST", "content-length", "5", "trailer", "x-t")...), EndHeaders: true})
		fr.WriteData(1, false, []byte("hello"))
		fr.WriteWindowUpdate(1, 100)
		fr.WriteWindowUpdate(0, 100)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("x-t", "v"), EndStream: true, EndHeaders: true})
	})
	build(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WritePing(false, [8]byte{1, 2})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block(req...), EndHeaders: false, Priority: http2.PriorityParam{StreamDep: 1, Weight: 3}})
		fr.WriteContinuation(3, true, block("a", "b"))
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
		fr.WritePriority(5, http2.PriorityParam{StreamDep: 3})
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	return seeds
}
