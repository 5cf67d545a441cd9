package h2

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// decodeBlocks decodes blocks in order with one x/net decoder, as a client
// does, allowed a dynamic table of tableSize.
func decodeBlocks(t testing.TB, tableSize uint32, blocks ...[]byte) [][]hpack.HeaderField {
	t.Helper()
	d := hpack.NewDecoder(4096, nil)
	d.SetAllowedMaxDynamicTableSize(tableSize)
	var got [][]hpack.HeaderField
	for i, b := range blocks {
		fields, err := d.DecodeFull(b)
		if err != nil {
			t.Fatalf("block %d (% x): %v", i, b, err)
		}
		got = append(got, fields)
	}
	return got
}

func TestFieldEncoder(t *testing.T) {
	long := strings.Repeat("v", 300) // lengths past a prefix's first byte
	blocks := []struct {
		name   string
		status int
		fields []string
	}{
		{"static status, static names", 200, []string{"Content-Type", "text/plain; charset=utf-8", "Content-Length", "12", "Date", "Sun, 06 Dec 2026 01:02:03 GMT"}},
		{"the same again", 200, []string{"Content-Type", "text/plain; charset=utf-8"}},
		{"status not in the table, a new name", 418, []string{"X-Replica", "app-1"}},
		{"1xx", 100, nil},
		{"a static status, a static name", 304, []string{"Etag", `"abc"`}},
		{"long name and value", 404, []string{"X-" + long, long}},
		{"what Huffman does not shorten", 500, []string{"x-binary", "{}|~^`\\<>"}},
		{"empty value, set-cookie twice, a common name", 204, []string{"Set-Cookie", "a=1", "Set-Cookie", "b=2", "x-empty", "", "X-Forwarded-For", "10.0.0.1"}},
		{"names in any case", 200, []string{"x-lower", "1", "X-MiXeD-case", "2", "content-type", "x/y"}},
		{"trailers: no status", 0, []string{"Grpc-Status", "0", "Www-Authenticate", "Basic"}},
	}
	for _, tableSize := range []uint32{4096, 0} { // 0: a client that set SETTINGS_HEADER_TABLE_SIZE 0
		var e fieldEncoder
		var raw [][]byte
		for _, b := range blocks {
			e.reset()
			if b.status != 0 {
				e.status(b.status)
			}
			for i := 0; i < len(b.fields); i += 2 {
				n, ok := e.name(b.fields[i])
				if !ok {
					t.Fatalf("%s: name(%q) = false, want true", b.name, b.fields[i])
				}
				e.field(n, b.fields[i+1])
			}
			raw = append(raw, append([]byte(nil), e.b...))
		}
		got := decodeBlocks(t, tableSize, raw...)
		for i, b := range blocks {
			var want []hpack.HeaderField
			if b.status != 0 {
				want = append(want, hpack.HeaderField{Name: ":status", Value: strconv.Itoa(b.status)})
			}
			for j := 0; j < len(b.fields); j += 2 {
				want = append(want, hpack.HeaderField{Name: strings.ToLower(b.fields[j]), Value: b.fields[j+1]})
			}
			if !equalFields(got[i], want) {
				t.Errorf("table %d, %s: decoded %v, want %v", tableSize, b.name, got[i], want)
			}
		}
	}
}

func TestFieldEncoderRefusesBadNames(t *testing.T) {
	var e fieldEncoder
	for _, k := range []string{"", "Bad Name", "Colon:", "Nul\x00", "Caf\xc3\xa9", ":status"} {
		if _, ok := e.name(k); ok {
			t.Errorf("name(%q) = true, want false: no token", k)
		}
	}
}

func equalFields(a, b []hpack.HeaderField) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Value != b[i].Value {
			return false
		}
	}
	return true
}

// FuzzFieldEncoder encodes any field as a response's and decodes it with
// x/net's decoder: it must come back as it went in.
func FuzzFieldEncoder(f *testing.F) {
	f.Add(200, "content-type", "text/html", "x-forwarded-for", "10.0.0.1")
	f.Add(999, strings.Repeat("n", 200), strings.Repeat("\xff", 200), "", "")
	f.Fuzz(func(t *testing.T, status int, n1, v1, n2, v2 string) {
		if status < 100 || status > 999 {
			status = 200
		}
		var e fieldEncoder
		var want []hpack.HeaderField
		var blocks [][]byte
		for range 2 { // a second block: no size update again
			e.reset()
			e.status(status)
			want = append(want[:0], hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)})
			for _, kv := range [][2]string{{n1, v1}, {n2, v2}} {
				n, ok := e.name(kv[0])
				if !ok {
					if httpguts.ValidHeaderFieldName(kv[0]) {
						t.Fatalf("name(%q) = false, want true", kv[0])
					}
					continue
				}
				e.field(n, kv[1])
				want = append(want, hpack.HeaderField{Name: strings.ToLower(kv[0]), Value: kv[1]})
			}
			blocks = append(blocks, append([]byte(nil), e.b...))
		}
		for i, got := range decodeBlocks(t, 0, blocks...) {
			if !equalFields(got, want) {
				t.Fatalf("block %d: decoded %v, want %v", i, got, want)
			}
		}
	})
}

// TestClientWithoutDynamicTable serves responses to nghttp2's h2load with
// a decoder table of 0 (SETTINGS_HEADER_TABLE_SIZE 0): nghttp2 fails a
// response that uses a table the client did not allow, or that lacks the
// size update it expects.
func TestClientWithoutDynamicTable(t *testing.T) {
	if _, err := exec.LookPath("h2load"); err != nil {
		t.Skip("h2load is not installed (apt-get install nghttp2-client)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("hello\n"))
	})}
	defer s.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.ServeConn(context.Background(), c)
		}
	}()
	for _, size := range []string{"0", "4096"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, "h2load", "--header-table-size="+size, "-n", "200", "-c", "2", "-m", "10",
			"http://"+ln.Addr().String()+"/x").CombinedOutput()
		cancel()
		// h2load counts a 418 as done (and failed), a response it cannot
		// decode as errored.
		if err != nil || !strings.Contains(string(out), "200 done") || !strings.Contains(string(out), " 0 errored") ||
			!strings.Contains(string(out), "0 2xx, 0 3xx, 200 4xx") {
			t.Errorf("h2load --header-table-size=%s: want 200 answered 418, got %v:\n%s", size, err, out)
		}
	}
}
