package h1

import (
	"bytes"
	"testing"
)

func TestAppendRequestHead(t *testing.T) {
	const in = "POST /api/x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nKeep-Alive: 5\r\nProxy-Authorization: x\r\n" +
		"X-Real-Ip: 1.2.3.4\r\nAccept: */*\r\n\r\nhi"
	forwarding := func(name []byte) bool { return bytes.EqualFold(name, []byte("X-Real-Ip")) }
	addFor := func(dst []byte) []byte { return AppendField(dst, "X-Forwarded-For", "10.0.0.1") }
	tests := []struct {
		name   string
		target string
		skip   func([]byte) bool
		add    func([]byte) []byte
		want   string
	}{
		{"as parsed", "", nil, nil,
			"POST /api/x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Real-Ip: 1.2.3.4\r\nAccept: */*\r\n\r\n"},
		{"filtered, with a field added", "", forwarding, addFor,
			"POST /api/x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"},
		{"a prefix stripped", "/x?y=1", nil, nil,
			"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Real-Ip: 1.2.3.4\r\nAccept: */*\r\n\r\n"},
		{"stripped to the query", "?y=1", nil, nil,
			"POST /?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Real-Ip: 1.2.3.4\r\nAccept: */*\r\n\r\n"},
		{"stripped to nothing", "-", nil, nil,
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Real-Ip: 1.2.3.4\r\nAccept: */*\r\n\r\n"},
	}
	var r Request
	if v := ParseRequest([]byte(in), &r); v != OK {
		t.Fatalf("ParseRequest = %v", v)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var target []byte
			switch tt.target {
			case "":
			case "-":
				target = []byte{}
			default:
				target = []byte(tt.target)
			}
			if got := string(AppendRequestHead(nil, &r, target, tt.skip, tt.add)); got != tt.want {
				t.Errorf("AppendRequestHead:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestAppendRequestHeadChunked(t *testing.T) {
	// Handed off by the parser, but written right: the coding is the hop's,
	// and is written again.
	var r Request
	ParseRequest([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n"), &r)
	want := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	if got := string(AppendRequestHead(nil, &r, nil, nil, nil)); got != want {
		t.Errorf("AppendRequestHead:\n got %q\nwant %q", got, want)
	}
}

func TestAppendResponseHead(t *testing.T) {
	date := func() []byte { return []byte("Sat, 05 Dec 2026 10:00:00 GMT") }
	tests := []struct {
		name string
		in   string
		keep bool
		date func() []byte
		want string
	}{
		{"a length, kept", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: d\r\n\r\n", true, date,
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: d\r\n\r\n"},
		{"a length, closed", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: d\r\n\r\n", false, date,
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: d\r\nConnection: close\r\n\r\n"},
		{"no Date", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", true, date,
			"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nDate: Sat, 05 Dec 2026 10:00:00 GMT\r\n\r\n"},
		{"no Date, no clock", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", true, nil,
			"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: d\r\nKeep-Alive: timeout=5\r\n\r\n", true, date,
			"HTTP/1.1 200 OK\r\nDate: d\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"204 chunked", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nDate: d\r\n\r\n", true, date,
			"HTTP/1.1 204 No Content\r\nDate: d\r\n\r\n"},
		{"HTTP/1.0, no reason", "HTTP/1.0 200\r\nDate: d\r\n\r\n", false, date,
			"HTTP/1.1 200 \r\nDate: d\r\nConnection: close\r\n\r\n"},
		{"Connection-named fields", "HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\nDate: d\r\n\r\n", false, date,
			"HTTP/1.1 200 OK\r\nX-Keep: 2\r\nDate: d\r\nConnection: close\r\n\r\n"},
		{"1xx: fields only", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, date,
			"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"},
	}
	var r Response
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v := ParseResponse([]byte(tt.in), &r); v != OK {
				t.Fatalf("ParseResponse(%q) = %v", tt.in, v)
			}
			if got := string(AppendResponseHead(nil, &r, tt.keep, tt.date)); got != tt.want {
				t.Errorf("AppendResponseHead:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestNoAllocations: parsing and writing a head with room in the buffer
// allocate nothing, the fast path's premise.
func TestNoAllocations(t *testing.T) {
	req := []byte("GET /a?b HTTP/1.1\r\nHost: a\r\nUser-Agent: u\r\nAccept: */*\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	var (
		r   Request
		rs  Response
		s   ChunkScanner
		buf = make([]byte, 0, 4096)
	)
	peer, now := "10.0.0.1", []byte("Sat, 05 Dec 2026 10:00:00 GMT")
	date := func() []byte { return now }
	skip := func(name []byte) bool { return len(name) == 9 }
	allocs := testing.AllocsPerRun(100, func() {
		ParseRequest(req, &r)
		AppendRequestHead(buf, &r, r.Target[1:], skip, func(dst []byte) []byte {
			return AppendField(dst, "X-Forwarded-For", peer)
		})
		ParseResponse(resp, &rs)
		AppendResponseHead(buf, &rs, true, date)
		s = ChunkScanner{}
		s.Scan(resp[rs.HeadLen:])
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request; want 0", allocs)
	}
}
