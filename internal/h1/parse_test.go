package h1

import (
	"strings"
	"testing"
)

// fields builds n header lines "X-N: v".
func fields(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("X-")
		b.WriteByte(byte('A' + i%26))
		b.WriteString(strings.Repeat("a", i/26))
		b.WriteString(": v\r\n")
	}
	return b.String()
}

func TestParseRequest(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: a\r\n"
	tests := []struct {
		name string
		in   string
		want Verdict
	}{
		{"plain GET", get + "\r\n", OK},
		{"query", "GET /a/b?c=d&e HTTP/1.1\r\nHost: a:80\r\nUser-Agent: u\r\n\r\n", OK},
		{"body with a length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", OK},
		{"Connection: close", get + "Connection: close\r\n\r\n", OK},
		{"Connection: keep-alive", get + "Connection: keep-alive\r\n\r\n", OK},
		{"no end yet", get + "X: y\r\n", Incomplete},
		{"no end of line yet", "GET / HT", Incomplete},
		{"CR at the end so far", get + "\r", Incomplete},
		{"64 fields and Host", get + fields(64) + "\r\n", OK},
		// Smuggling shapes (RFC 9112 sections 6.1 and 6.3, and the public
		// research: CL.TE, TE.CL, TE.TE, obfuscated codings).
		{"CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Reject},
		{"TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", Reject},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Reject},
		{"the same length twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Reject},
		{"a list of lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", Reject},
		{"a signed length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", Reject},
		{"a negative length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Reject},
		{"a hex length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", Reject},
		{"an empty length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", Reject},
		{"a 19-digit length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000\r\n\r\n", Reject},
		{"chunked: handed off", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Handoff},
		{"chunked in capitals", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n", Handoff},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", Reject},
		{"a coding before chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Reject},
		{"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Reject},
		{"xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", Reject},
		{"identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", Reject},
		{"a space before the colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", Reject},
		{"a tab before the colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n", Reject},
		{"obs-fold", get + "X: y\r\n z\r\n\r\n", Reject},
		{"obs-fold of TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", Reject},
		{"bare LF ending a field", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", Reject},
		{"bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", Reject},
		{"bare LF ending the head", get + "\n", Reject},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", Reject},
		{"bare CR, no LF yet", "GET / HTTP/1.1\r\nHost: a\rX", Reject},
		{"NUL in a value", get + "X: a\x00b\r\n\r\n", Reject},
		{"DEL in a value", get + "X: a\x7fb\r\n\r\n", Reject},
		{"a name that is no token", get + "X(y): z\r\n\r\n", Reject},
		{"an empty name", get + ": z\r\n\r\n", Reject},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Reject},
		{"two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Reject},
		{"a space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", Reject},
		{"no version", "GET /\r\nHost: a\r\n\r\n", Reject},
		{"a method that is no token", "G\x7fT / HTTP/1.1\r\nHost: a\r\n\r\n", Reject},
		{"a control character in the target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", Reject},
		{"a bad Connection option", get + "Connection: a b\r\n\r\n", Reject},
		{"a length past 64 fields, twice", "POST / HTTP/1.1\r\nHost: a\r\n" + fields(70) + "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", Reject},
		// Legal, but for a general server.
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", Handoff},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Handoff},
		{"empty line first", "\r\n" + get + "\r\n", Handoff},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", Handoff},
		{"a Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", Handoff},
		{"absolute form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", Handoff},
		{"asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Handoff},
		{"dot segments", "GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n", Handoff},
		{"escaped dots", "GET /%2e%2e/ HTTP/1.1\r\nHost: a\r\n\r\n", Handoff},
		{"an empty segment", "GET /a//b HTTP/1.1\r\nHost: a\r\n\r\n", Handoff},
		{"a non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", Handoff},
		{"Upgrade", get + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", Handoff},
		{"Expect", get + "Expect: 100-continue\r\n\r\n", Handoff},
		{"TE", get + "TE: trailers\r\n\r\n", Handoff},
		{"Trailer", get + "Trailer: X\r\n\r\n", Handoff},
		{"HTTP2-Settings", get + "HTTP2-Settings: AAA\r\n\r\n", Handoff},
		{"Connection options", get + "Connection: close, X-Hop\r\nX-Hop: 1\r\n\r\n", Handoff},
		{"65 fields and Host", get + fields(65) + "\r\n", Handoff},
	}
	var r Request
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseRequest([]byte(tt.in), &r); got != tt.want {
				t.Errorf("ParseRequest(%q) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRequestParts(t *testing.T) {
	in := "POST /p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 5\r\nconnection: keep-alive, close\r\nX-A:  spaced \t\r\n\r\nhello"
	var r Request
	if v := ParseRequest([]byte(in), &r); v != OK {
		t.Fatalf("ParseRequest = %v; want OK", v)
	}
	got := []string{string(r.Method), string(r.Target), string(r.Host)}
	if want := []string{"POST", "/p?q=1", "example.com:8080"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("method, target, host = %q; want %q", got, want)
	}
	if r.ContentLength != 5 || r.Chunked || !r.Close || r.Connection != nil {
		t.Errorf("length %d chunked %v close %v connection %q; want 5 false true nil", r.ContentLength, r.Chunked, r.Close, r.Connection)
	}
	if r.HeadLen != len(in)-5 {
		t.Errorf("HeadLen = %d; want %d", r.HeadLen, len(in)-5)
	}
	var fs []string
	for _, f := range r.Fields() {
		fs = append(fs, string(f.Name)+"="+string(f.Value))
	}
	if want := "Content-Length=5|connection=keep-alive, close|X-A=spaced"; strings.Join(fs, "|") != want {
		t.Errorf("fields = %q; want %q (no Host)", strings.Join(fs, "|"), want)
	}
	// Parsing again resets everything.
	if v := ParseRequest([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &r); v != OK || r.ContentLength != -1 || r.Close || len(r.Fields()) != 0 {
		t.Errorf("reused: %v length %d close %v %d fields; want OK -1 false 0", v, r.ContentLength, r.Close, len(r.Fields()))
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Verdict
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", OK},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", OK},
		{"until close", "HTTP/1.0 200 OK\r\n\r\nbody", OK},
		{"no reason", "HTTP/1.1 204 \r\n\r\n", OK},
		{"no reason, no space", "HTTP/1.1 204\r\n\r\n", OK},
		{"1xx", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", OK},
		{"Connection options", "HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n", OK},
		{"64 fields", "HTTP/1.1 200 OK\r\n" + fields(64) + "\r\n", OK},
		{"incomplete", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", Incomplete},
		{"CL and TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", Reject},
		{"TE and CL", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", Reject},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", Reject},
		{"chunked in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Reject},
		{"gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Reject},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", Reject},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", Reject},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", Reject},
		{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", Reject},
		{"status below 100", "HTTP/1.1 099 OK\r\n\r\n", Reject},
		{"no space after the status", "HTTP/1.1 200OK\r\n\r\n", Reject},
		{"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", Reject},
		{"control character in the reason", "HTTP/1.1 200 O\x01K\r\n\r\n", Reject},
		{"65 fields", "HTTP/1.1 200 OK\r\n" + fields(65) + "\r\n", Reject},
		{"two lists of options", "HTTP/1.1 200 OK\r\nConnection: X-A\r\nConnection: X-B\r\n\r\n", Reject},
	}
	var r Response
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseResponse([]byte(tt.in), &r); got != tt.want {
				t.Errorf("ParseResponse(%q) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestResponseBodyless(t *testing.T) {
	tests := []struct {
		status int
		head   bool
		want   bool
	}{
		{200, false, false}, {200, true, true}, {103, false, true}, {204, false, true}, {304, false, true}, {404, false, false},
	}
	for _, tt := range tests {
		r := Response{Status: tt.status}
		if got := r.Bodyless(tt.head); got != tt.want {
			t.Errorf("status %d head %v: Bodyless = %v; want %v", tt.status, tt.head, got, tt.want)
		}
	}
}

func TestHop(t *testing.T) {
	var r Response
	in := "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop , x-other\r\nX-Hop: 1\r\n\r\n"
	if v := ParseResponse([]byte(in), &r); v != OK {
		t.Fatalf("ParseResponse = %v", v)
	}
	tests := []struct {
		name string
		want bool
	}{
		{"Connection", true}, {"keep-alive", true}, {"Proxy-Connection", true}, {"te", true},
		{"Transfer-Encoding", true}, {"Upgrade", true}, {"Proxy-Authenticate", true}, {"Proxy-Authorization", true},
		{"x-hop", true}, {"X-Other", true},
		{"Content-Length", false}, {"Trailer", false}, {"X-Hopper", false}, {"Date", false},
	}
	for _, tt := range tests {
		if got := r.Hop([]byte(tt.name)); got != tt.want {
			t.Errorf("Hop(%q) = %v; want %v", tt.name, got, tt.want)
		}
	}
	if HopByHop([]byte("X-Hop")) {
		t.Errorf("HopByHop(X-Hop) = true; only the message's Connection field makes it one")
	}
}
