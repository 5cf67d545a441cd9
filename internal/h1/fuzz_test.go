package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The differential fuzz targets: the codec against net/http's parser and
// chunked reader. Whatever the codec accepts, net/http accepts and reads
// the same way; what it writes, net/http reads back as the message the
// codec parsed. The codec may refuse what net/http accepts (it is stricter
// by design), never the other way round.

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

// FuzzParseRequest checks ParseRequest against http.ReadRequest: every
// head it accepts (OK) net/http accepts too, with the same method, target,
// host, framing, Connection: close and fields.
func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	var r Request
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ParseRequest(b, &r)
		if v == Incomplete {
			// More bytes may complete it; nothing to compare yet. The
			// parser must not have seen the end of a head.
			if bytes.Contains(b, []byte("\r\n\r\n")) && !bytes.HasPrefix(b, []byte("\r\n")) {
				t.Fatalf("incomplete, but the head %q has its end", b)
			}
			return
		}
		if v != OK {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("h1 accepted %q; net/http refused it: %v", b, err)
		}
		if req.Method != string(r.Method) || req.RequestURI != string(r.Target) || req.Host != string(r.Host) {
			t.Fatalf("%q: h1 %q %q host %q; net/http %q %q host %q", b, r.Method, r.Target, r.Host, req.Method, req.RequestURI, req.Host)
		}
		if req.ContentLength != max(r.ContentLength, 0) || len(req.TransferEncoding) != 0 {
			t.Fatalf("%q: h1 length %d; net/http %d %v", b, r.ContentLength, req.ContentLength, req.TransferEncoding)
		}
		if req.Close != r.Close {
			t.Fatalf("%q: h1 close %v; net/http %v", b, r.Close, req.Close)
		}
		compareFields(t, b, r.Fields(), req.Header, "Host")
		if r.HeadLen > len(b) || !bytes.HasSuffix(b[:r.HeadLen], []byte("\r\n\r\n")) {
			t.Fatalf("%q: head length %d", b, r.HeadLen)
		}
	})
}

// compareFields checks that the parser's fields are net/http's, apart
// from those net/http moves out of its Header map.
func compareFields(t *testing.T, b []byte, fields []Field, h http.Header, skip ...string) {
	t.Helper()
	got := http.Header{}
	for _, fl := range fields {
		got.Add(string(fl.Name), string(fl.Value))
	}
	compareHeaders(t, b, got, h, skip...)
}

// compareHeaders checks that got and want hold the same fields, but skip.
func compareHeaders(t *testing.T, b []byte, got, want http.Header, skip ...string) {
	t.Helper()
	got, want = got.Clone(), want.Clone()
	for _, k := range skip {
		delete(got, k)
		delete(want, k)
	}
	for k, v := range want {
		if strings.Join(got[k], "\x00") != strings.Join(v, "\x00") {
			t.Fatalf("%q: field %s: h1 %q; net/http %q", b, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Fatalf("%q: field %s: h1 %q; net/http has none", b, k, got[k])
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

// FuzzParseResponse checks ParseResponse and the chunk scanner against
// http.ReadResponse: a head it accepts, net/http accepts with the same
// status, fields and framing; a body it reads to its end, net/http reads to
// the same bytes. The first argument picks the request method (odd: HEAD).
func FuzzParseResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add(byte(0), []byte(s))
		f.Add(byte(1), []byte(s))
	}
	var r Response
	f.Fuzz(func(t *testing.T, m byte, b []byte) {
		head := m&1 == 1
		if ParseResponse(b, &r) != OK {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), &http.Request{Method: method(head)})
		if err != nil {
			t.Fatalf("h1 accepted %q; net/http refused it: %v", b, err)
		}
		if resp.StatusCode != r.Status {
			t.Fatalf("%q: h1 status %d; net/http %d", b, r.Status, resp.StatusCode)
		}
		compareFields(t, b, r.Fields(), resp.Header, "Transfer-Encoding", "Content-Length", "Connection")
		rest := b[r.HeadLen:]
		body, rerr := io.ReadAll(resp.Body)
		switch {
		case r.Bodyless(head):
			if len(body) != 0 {
				t.Fatalf("%q: h1: no body; net/http read %q", b, body)
			}
		case r.Chunked:
			if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Fatalf("%q: h1: chunked; net/http %v", b, resp.TransferEncoding)
			}
			var s ChunkScanner
			n, ok := s.Scan(rest)
			if ok && s.Done() {
				if rerr != nil {
					t.Fatalf("%q: h1 read the chunked body to its end (%d bytes); net/http: %v", b, n, rerr)
				}
				if got := dechunk(rest[:n]); !bytes.Equal(got, body) {
					t.Fatalf("%q: body: h1 %q; net/http %q", b, got, body)
				}
			}
		case r.ContentLength >= 0:
			if resp.ContentLength != r.ContentLength {
				t.Fatalf("%q: h1 length %d; net/http %d", b, r.ContentLength, resp.ContentLength)
			}
		default:
			if resp.ContentLength != -1 || len(resp.TransferEncoding) != 0 || rerr != nil || !bytes.Equal(body, rest) {
				t.Fatalf("%q: h1: body until close; net/http length %d %v %v", b, resp.ContentLength, resp.TransferEncoding, rerr)
			}
		}
		if r.Close && !resp.Close {
			t.Fatalf("%q: h1 close; net/http not", b)
		}
	})
}

func method(head bool) string {
	if head {
		return http.MethodHead
	}
	return http.MethodGet
}

// chunkedSeeds are chunked bodies the chunk scanner's fuzzer starts from:
// plain ones, extensions, trailers, and the malformed framings of the
// chunked-body smuggling research (bare LF, sizes with whitespace or signs,
// oversized sizes, data longer than its size).
var chunkedSeeds = []string{
	"0\r\n\r\n",
	"5\r\nhello\r\n0\r\n\r\n",
	"5;a=b\r\nhello\r\n3;x\r\nabc\r\n0\r\n\r\nnext",
	"5\r\nhello\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n",
	"5\nhello\n0\n\n",
	"5 \r\nhello\r\n0\r\n\r\n",
	" 5\r\nhello\r\n0\r\n\r\n",
	"+5\r\nhello\r\n0\r\n\r\n",
	"0x5\r\nhello\r\n0\r\n\r\n",
	"5\r\nhelloX\r\n0\r\n\r\n",
	"fffffffffffffff\r\n",
	"1000000000000000\r\n",
	"A\r\n0123456789\r\n0\r\n\r\n",
	"5\r\nhello\r\n0\r\nX-T 1\r\n\r\n",
	"5\r\nhel",
	"0\r\n\r",
}

// FuzzChunkScanner checks the chunk scanner against net/http's chunked
// reading (http.ReadResponse of a chunked response, trailers included):
// a body the scanner reads to its end, net/http reads without error, to the
// same data, and stops at the same byte; a body the scanner wants more of,
// net/http finds cut short. Fed in two pieces, the scanner says what it
// says of the whole. split picks where the body is cut in two.
func FuzzChunkScanner(f *testing.F) {
	for i, s := range chunkedSeeds {
		f.Add(uint16(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, split uint16, b []byte) {
		var s ChunkScanner
		n, ok := s.Scan(b)
		done := s.Done()
		if ok && n != len(b) && !done {
			t.Fatalf("%q: scanned %d of %d bytes, neither done nor refused", b, n, len(b))
		}
		if len(b) > 0 {
			cut := int(split) % (len(b) + 1)
			var s2 ChunkScanner
			n1, ok2 := s2.Scan(b[:cut])
			n2 := 0
			if ok2 && !s2.Done() {
				n2, ok2 = s2.Scan(b[cut:])
			}
			if ok2 != ok || s2.Done() != done || ok && n1+n2 != n {
				t.Fatalf("%q cut at %d: scanned %d+%d ok %v done %v; whole %d ok %v done %v", b, cut, n1, n2, ok2, s2.Done(), n, ok, done)
			}
		}
		if !ok {
			return
		}
		br := bufio.NewReader(io.MultiReader(strings.NewReader("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), bytes.NewReader(b)))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, rerr := io.ReadAll(resp.Body)
		if !done {
			if rerr == nil {
				t.Fatalf("%q: the scanner wants more; net/http read the body to its end: %q", b, body)
			}
			return
		}
		if rerr != nil {
			t.Fatalf("%q: the scanner read %d bytes to the end; net/http: %v", b, n, rerr)
		}
		if got := dechunk(b[:n]); !bytes.Equal(got, body) {
			t.Fatalf("%q: data: scanner %q; net/http %q", b, got, body)
		}
		left, _ := io.ReadAll(br)
		if !bytes.Equal(left, b[n:]) {
			t.Fatalf("%q: the body ends after %d bytes; net/http left %q", b, n, left)
		}
	})
}

// dechunk returns the data of a chunked body the scanner read to its end.
func dechunk(b []byte) []byte {
	var out []byte
	for {
		line := b[:bytes.IndexByte(b, '\r')]
		b = b[len(line)+2:]
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		var n int
		for _, c := range line {
			n = n<<4 | int(unhex(c))
		}
		if n == 0 {
			return out
		}
		out = append(out, b[:n]...)
		b = b[n+2:]
	}
}

// FuzzRoundTrip checks the writers against net/http's parser: a head
// ParseRequest or ParseResponse accepts, written again by
// AppendRequestHead or AppendResponseHead, reads in net/http as the
// original does, but for the hop-by-hop fields, which are gone, and for
// what the writer adds (a rewritten target, fields of the caller's, Date,
// Connection: close). The first argument picks the message and the
// options: bit 0 a response (else a request), bit 1 HEAD or keep-alive,
// bit 2 the caller's filter and added field; the second how many bytes of
// the target are stripped.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(byte(0), byte(0), []byte(s))
		f.Add(byte(4), byte(2), []byte(s))
	}
	for _, s := range responseSeeds {
		f.Add(byte(1), byte(0), []byte(s))
		f.Add(byte(7), byte(0), []byte(s))
	}
	var (
		req  Request
		resp Response
	)
	f.Fuzz(func(t *testing.T, opts, strip byte, b []byte) {
		if opts&1 == 0 {
			roundTripRequest(t, &req, b, opts&2 != 0, opts&4 != 0, int(strip))
		} else {
			roundTripResponse(t, &resp, b, opts&2 != 0, opts&4 != 0)
		}
	})
}

func roundTripRequest(t *testing.T, r *Request, b []byte, _, filter bool, strip int) {
	if ParseRequest(b, r) != OK {
		return
	}
	want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return // FuzzParseRequest's business
	}
	target := r.Target[min(strip, len(r.Target)):]
	wantURI := string(target)
	if !strings.HasPrefix(wantURI, "/") {
		wantURI = "/" + wantURI
	}
	var skip func([]byte) bool
	var add func([]byte) []byte
	if filter {
		skip = func(name []byte) bool { return len(name)%2 == 1 }
		add = func(dst []byte) []byte { return AppendField(dst, "X-Added", "yes") }
	}
	w := AppendRequestHead(nil, r, target, skip, add)
	br := bufio.NewReader(bytes.NewReader(w))
	got, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("%q written as %q: net/http: %v", b, w, err)
	}
	if br.Buffered() != 0 {
		t.Fatalf("%q written as %q: %d bytes past the head", b, w, br.Buffered())
	}
	if got.Method != want.Method || got.RequestURI != wantURI || got.Host != want.Host {
		t.Fatalf("%q written as %q: %s %s host %s; want %s %s host %s", b, w, got.Method, got.RequestURI, got.Host, want.Method, wantURI, want.Host)
	}
	if got.ContentLength != want.ContentLength || len(got.TransferEncoding) != 0 || got.Close {
		t.Fatalf("%q written as %q: length %d %v close %v; want %d", b, w, got.ContentLength, got.TransferEncoding, got.Close, want.ContentLength)
	}
	for k := range want.Header {
		if r.Hop([]byte(k)) || skip != nil && skip([]byte(k)) {
			want.Header.Del(k)
		}
	}
	if filter {
		want.Header.Set("X-Added", "yes")
	}
	compareHeaders(t, b, got.Header, want.Header)
}

func roundTripResponse(t *testing.T, r *Response, b []byte, head, keep bool) {
	if ParseResponse(b, r) != OK {
		return
	}
	want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), &http.Request{Method: method(head)})
	if err != nil {
		return // FuzzParseResponse's business
	}
	const date = "Sat, 05 Dec 2026 10:00:00 GMT"
	if !r.Bodyless(head) && !r.Chunked && r.ContentLength < 0 {
		keep = false // a body until close: the caller's rule
	}
	w := AppendResponseHead(nil, r, keep, func() []byte { return []byte(date) })
	w = append(w, b[r.HeadLen:]...)
	got, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(w)), &http.Request{Method: method(head)})
	if err != nil {
		t.Fatalf("%q written as %q: net/http: %v", b, w, err)
	}
	if got.StatusCode != want.StatusCode || got.Status != want.Status && !(len(r.Reason) == 0 && strings.TrimSpace(got.Status) == strings.TrimSpace(want.Status)) {
		t.Fatalf("%q written as %q: status %q; want %q", b, w, got.Status, want.Status)
	}
	final := r.Status >= 200
	if final {
		if got.Close != !keep {
			t.Fatalf("%q written as %q (keep %v): close %v", b, w, keep, got.Close)
		}
		if r.Status == 204 || r.Status == 304 {
			// No body, whatever the fields say; the writer leaves out the
			// Transfer-Encoding a server must not send (RFC 9112 section
			// 6.1), which net/http reports for the original.
			want.TransferEncoding = nil
		}
		if got.ContentLength != want.ContentLength || strings.Join(got.TransferEncoding, ",") != strings.Join(want.TransferEncoding, ",") {
			t.Fatalf("%q written as %q: length %d %v; want %d %v", b, w, got.ContentLength, got.TransferEncoding, want.ContentLength, want.TransferEncoding)
		}
		gotBody, gerr := io.ReadAll(got.Body)
		wantBody, werr := io.ReadAll(want.Body)
		if (gerr == nil) != (werr == nil) || !bytes.Equal(gotBody, wantBody) {
			t.Fatalf("%q written as %q: body %q (%v); want %q (%v)", b, w, gotBody, gerr, wantBody, werr)
		}
		if len(want.Header["Date"]) == 0 {
			want.Header.Set("Date", date)
		}
	}
	for k := range want.Header {
		if r.Hop([]byte(k)) {
			want.Header.Del(k)
		}
	}
	compareHeaders(t, b, got.Header, want.Header, "Content-Length")
}
