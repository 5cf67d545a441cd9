package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// requestSeeds are request heads the fuzzers start from: plain ones and the
// smuggling shapes of RFC 9112 and the public research (CL.TE, TE.CL, TE
// obfuscation, duplicate lengths, bare CR/LF, obs-fold, space before colon).
var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /x?y=1 HTTP/1.1\r\nHost: a:80\r\nConnection: close\r\nUser-Agent: u\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /%2e%2e/ HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nKeep-Alive: 5\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
	"G\x7fT / HTTP/1.1\r\nHost: a\r\n\r\n",
}

// FuzzParseRequest checks the fast parser against http.ReadRequest: every
// head it accepts (h1OK) net/http accepts too, with the same method,
// target, host, framing, Connection: close and fields.
func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	var r h1Request
	f.Fuzz(func(t *testing.T, b []byte) {
		v := parseRequest(b, &r)
		if v == h1Incomplete {
			// More bytes may complete it; nothing to compare yet. The
			// parser must not have seen the end of a head.
			if bytes.Contains(b, []byte("\r\n\r\n")) && !bytes.HasPrefix(b, []byte("\r\n")) {
				t.Fatalf("incomplete, but the head %q has its end", b)
			}
			return
		}
		if v != h1OK {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("fast parser accepted %q; net/http refused it: %v", b, err)
		}
		if req.Method != string(r.method) || req.RequestURI != string(r.target) || req.Host != string(r.host) {
			t.Fatalf("%q: fast %q %q host %q; net/http %q %q host %q", b, r.method, r.target, r.host, req.Method, req.RequestURI, req.Host)
		}
		wantLen := r.contentLength
		if wantLen < 0 {
			wantLen = 0
		}
		if req.ContentLength != wantLen || len(req.TransferEncoding) != 0 {
			t.Fatalf("%q: fast length %d; net/http %d %v", b, r.contentLength, req.ContentLength, req.TransferEncoding)
		}
		if req.Close != r.close {
			t.Fatalf("%q: fast close %v; net/http %v", b, r.close, req.Close)
		}
		compareFields(t, b, r.fields[:r.nfields], req.Header, "Host")
		if r.headLen > len(b) || !bytes.HasSuffix(b[:r.headLen], []byte("\r\n\r\n")) {
			t.Fatalf("%q: head length %d", b, r.headLen)
		}
	})
}

// compareFields checks that the fast parser's fields are net/http's, apart
// from those net/http moves out of its Header map.
func compareFields(t *testing.T, b []byte, fields []h1Field, h http.Header, skip ...string) {
	t.Helper()
	got := http.Header{}
	for _, fl := range fields {
		got.Add(string(fl.name), string(fl.value))
	}
	for _, k := range skip {
		delete(got, k)
		delete(h, k)
	}
	for k, v := range h {
		if strings.Join(got[k], "\x00") != strings.Join(v, "\x00") {
			t.Fatalf("%q: field %s: fast %q; net/http %q", b, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := h[k]; !ok {
			t.Fatalf("%q: field %s: fast %q; net/http has none", b, k, got[k])
		}
	}
}

// responseSeeds are responses (head and body) the response fuzzer starts
// from.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
	"HTTP/1.0 200 OK\r\n\r\nuntil close",
	"HTTP/1.1 200\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\r\nbody",
	"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n",
}

// FuzzParseResponse checks the fast parser and chunk scanner against
// http.ReadResponse: a head it accepts, net/http accepts with the same
// status and framing; a body it reads to its end, net/http reads to the
// same bytes. The first byte picks the request method (odd: HEAD).
func FuzzParseResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add(byte(0), []byte(s))
		f.Add(byte(1), []byte(s))
	}
	var r h1Response
	f.Fuzz(func(t *testing.T, m byte, b []byte) {
		head := m&1 == 1
		if parseResponse(b, &r) != h1OK {
			return
		}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("fast parser accepted %q; net/http refused it: %v", b, err)
		}
		if resp.StatusCode != r.status {
			t.Fatalf("%q: fast status %d; net/http %d", b, r.status, resp.StatusCode)
		}
		compareFields(t, b, r.fields[:r.nfields], resp.Header, "Transfer-Encoding", "Content-Length", "Connection")
		rest := b[r.headLen:]
		body, rerr := io.ReadAll(resp.Body)
		switch {
		case r.bodyless(head):
			if len(body) != 0 {
				t.Fatalf("%q: fast: no body; net/http read %q", b, body)
			}
		case r.chunked:
			if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Fatalf("%q: fast: chunked; net/http %v", b, resp.TransferEncoding)
			}
			var s chunkScanner
			n, ok := s.scan(rest)
			if ok && s.done() {
				if rerr != nil {
					t.Fatalf("%q: fast read the chunked body to its end (%d bytes); net/http: %v", b, n, rerr)
				}
				if got := dechunk(rest[:n]); !bytes.Equal(got, body) {
					t.Fatalf("%q: body: fast %q; net/http %q", b, got, body)
				}
			}
		case r.contentLength >= 0:
			if resp.ContentLength != r.contentLength {
				t.Fatalf("%q: fast length %d; net/http %d", b, r.contentLength, resp.ContentLength)
			}
		default:
			if resp.ContentLength != -1 || len(resp.TransferEncoding) != 0 || rerr != nil || !bytes.Equal(body, rest) {
				t.Fatalf("%q: fast: body until close; net/http length %d %v %v", b, resp.ContentLength, resp.TransferEncoding, rerr)
			}
		}
		if r.close && !resp.Close {
			t.Fatalf("%q: fast close; net/http not", b)
		}
	})
}

// dechunk returns the data of a chunked body the scanner accepted.
func dechunk(b []byte) []byte {
	var out []byte
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		line, _ := tp.ReadLine()
		if i := strings.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		var n int64
		for _, c := range []byte(line) {
			n = n<<4 | int64(unhex(c))
		}
		if n == 0 {
			return out
		}
		data := make([]byte, n+2)
		io.ReadFull(tp.R, data)
		out = append(out, data[:n]...)
	}
}
