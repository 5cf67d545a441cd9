package h1

import (
	"strings"
	"testing"
)

func TestChunkScanner(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantN    int
		wantOK   bool
		wantDone bool
	}{
		{"last chunk only", "0\r\n\r\n", 5, true, true},
		{"one chunk", "5\r\nhello\r\n0\r\n\r\n", 15, true, true},
		{"bytes past the end", "5\r\nhello\r\n0\r\n\r\nGET /", 15, true, true},
		{"extensions", "5;a=b;c\r\nhello\r\n0;x\r\n\r\n", 23, true, true},
		{"trailers", "5\r\nhello\r\n0\r\nX-T: 1\r\nY:2\r\n\r\n", 28, true, true},
		{"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", 20, true, true},
		{"15 hex digits", "00000000000000a\r\n", 17, true, false},
		{"cut in the data", "5\r\nhel", 6, true, false},
		{"cut before the last LF", "0\r\n\r", 4, true, false},
		{"16 hex digits", "0000000000000000a\r\n", 15, false, false},
		{"bare LF after the size", "5\nhello\r\n0\r\n\r\n", 1, false, false},
		{"bare LF after the data", "5\r\nhello\n0\r\n\r\n", 8, false, false},
		{"data longer than its size", "5\r\nhelloX\r\n0\r\n\r\n", 8, false, false},
		{"space after the size", "5 \r\nhello\r\n0\r\n\r\n", 1, false, false},
		{"space before the size", " 5\r\nhello\r\n0\r\n\r\n", 0, false, false},
		{"a sign", "+5\r\nhello\r\n0\r\n\r\n", 0, false, false},
		{"0x", "0x5\r\nhello\r\n0\r\n\r\n", 1, false, false},
		{"no size", "\r\nhello\r\n", 0, false, false},
		{"a control character in an extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", 3, false, false},
		{"a long extension", "5;" + strings.Repeat("a", MaxChunkExt+1) + "\r\n", 2 + MaxChunkExt, false, false},
		{"a trailer without a colon", "0\r\nX-T 1\r\n\r\n", 6, false, false},
		{"a trailer folded", "0\r\nX: 1\r\n 2\r\n\r\n", 9, false, false},
		{"a bare LF ending the body", "0\r\n\n", 3, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s ChunkScanner
			n, ok := s.Scan([]byte(tt.in))
			if n != tt.wantN || ok != tt.wantOK || s.Done() != tt.wantDone {
				t.Errorf("Scan(%q) = %d, %v, done %v; want %d, %v, done %v", tt.in, n, ok, s.Done(), tt.wantN, tt.wantOK, tt.wantDone)
			}
			// Byte by byte, it says the same.
			var b ChunkScanner
			total, bok := 0, true
			for i := 0; i < len(tt.in) && bok && !b.Done(); i++ {
				var m int
				m, bok = b.Scan([]byte(tt.in[i : i+1]))
				total += m
			}
			if bok != tt.wantOK || b.Done() != tt.wantDone || bok && total != tt.wantN {
				t.Errorf("Scan(%q) byte by byte: %d, %v, done %v; want %d, %v, done %v", tt.in, total, bok, b.Done(), tt.wantN, tt.wantOK, tt.wantDone)
			}
		})
	}
}
