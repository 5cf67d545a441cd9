package h2

import (
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// step is one header block of a connection: before it, when limit >= 0,
// the client sets SETTINGS_HEADER_TABLE_SIZE to it.
type step struct {
	limit  int
	status int      // 0: none (trailers)
	fields []string // name, value, ...: names as http.Header keys
}

// session encodes steps as one connection's blocks with one encoder and
// decodes them with one x/net decoder, as the client does; it returns the
// decoded fields and the blocks.
func session(t testing.TB, steps []step) ([][]hpack.HeaderField, [][]byte) {
	t.Helper()
	e := newFieldEncoder()
	d := hpack.NewDecoder(defaultTable, nil)
	var got [][]hpack.HeaderField
	var blocks [][]byte
	for i, s := range steps {
		if s.limit >= 0 {
			e.setLimit(uint32(s.limit))
			d.SetAllowedMaxDynamicTableSize(uint32(s.limit))
		}
		e.reset()
		if s.status != 0 {
			e.status(s.status)
		}
		for j := 0; j < len(s.fields); j += 2 {
			n, ok := e.name(s.fields[j])
			if !ok {
				t.Fatalf("block %d: name(%q) = false, want true", i, s.fields[j])
			}
			e.field(n, s.fields[j+1])
		}
		fields, err := d.DecodeFull(e.b)
		if err != nil {
			t.Fatalf("block %d (% x): %v", i, e.b, err)
		}
		got = append(got, fields)
		blocks = append(blocks, append([]byte(nil), e.b...))
	}
	return got, blocks
}

// wantFields is what a client decodes of s.
func wantFields(s step) []hpack.HeaderField {
	var want []hpack.HeaderField
	if s.status != 0 {
		want = append(want, hpack.HeaderField{Name: ":status", Value: strconv.Itoa(s.status)})
	}
	for j := 0; j < len(s.fields); j += 2 {
		want = append(want, hpack.HeaderField{Name: strings.ToLower(s.fields[j]), Value: s.fields[j+1]})
	}
	return want
}

func TestFieldEncoder(t *testing.T) {
	long := strings.Repeat("v", 300) // lengths past a prefix's first byte, an entry too big to index
	cases := []struct {
		name string
		step
	}{
		{"static status, static names", step{-1, 200, []string{"Content-Type", "text/plain; charset=utf-8", "Content-Length", "12", "Date", "Sun, 06 Dec 2026 01:02:03 GMT"}}},
		{"the same again", step{-1, 200, []string{"Content-Type", "text/plain; charset=utf-8", "Content-Length", "12", "Date", "Sun, 06 Dec 2026 01:02:03 GMT"}}},
		{"status not in the table, a new name", step{-1, 418, []string{"X-Replica", "app-1"}}},
		{"1xx", step{-1, 100, nil}},
		{"a static status, a static name", step{-1, 304, []string{"Etag", `"abc"`}}},
		{"long name and value", step{-1, 404, []string{"X-" + long, long}}},
		{"what Huffman does not shorten", step{-1, 500, []string{"x-binary", "{}|~^`\\<>"}}},
		{"empty value, set-cookie twice, a common name", step{-1, 204, []string{"Set-Cookie", "a=1", "Set-Cookie", "b=2", "x-empty", "", "X-Forwarded-For", "10.0.0.1"}}},
		{"names in any case", step{-1, 200, []string{"x-lower", "1", "X-MiXeD-case", "2", "content-type", "text/plain; charset=utf-8", "X-Replica", "app-1", "SET-COOKIE", "c=3"}}},
		{"the client shrinks the table", step{100, 200, []string{"X-Replica", "app-1", "Content-Type", "text/plain; charset=utf-8"}}},
		{"and grows it again: dlb keeps it small", step{4096, 200, []string{"X-Replica", "app-1"}}},
		{"and to nothing", step{0, 200, []string{"X-Replica", "app-1"}}},
		{"trailers: no status", step{-1, 0, []string{"Grpc-Status", "0", "Www-Authenticate", "Basic"}}},
	}
	var steps []step
	for _, c := range cases {
		steps = append(steps, c.step)
	}
	got, blocks := session(t, steps)
	for i, c := range cases {
		if want := wantFields(c.step); !equalFields(got[i], want) {
			t.Errorf("%s: decoded %v, want %v", c.name, got[i], want)
		}
	}
	if len(blocks[0]) < 40 || len(blocks[1]) > 8 {
		t.Errorf("the same response twice took %d then %d bytes, want the second to be its table's indices (at most 8)", len(blocks[0]), len(blocks[1]))
	}
	for _, fields := range got {
		for _, f := range fields {
			if f.Name == "set-cookie" && !f.Sensitive {
				t.Errorf("%v went out indexable, want never indexed", f)
			}
		}
	}
}

func TestFieldEncoderRefusesBadNames(t *testing.T) {
	e := newFieldEncoder()
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

// FuzzFieldEncoder encodes any fields as a connection's responses, with
// the client's table limit changing between them, and decodes them with
// x/net's decoder: they must come back as they went in.
func FuzzFieldEncoder(f *testing.F) {
	f.Add(200, "content-type", "text/html", "x-forwarded-for", "10.0.0.1", uint16(4096))
	f.Add(999, strings.Repeat("n", 200), strings.Repeat("\xff", 200), "", "", uint16(0))
	f.Add(418, "X-A", "1", "x-a", "1", uint16(40))
	f.Fuzz(func(t *testing.T, status int, n1, v1, n2, v2 string, limit uint16) {
		if status < 100 || status > 999 {
			status = 200
		}
		var fields []string
		e := newFieldEncoder()
		for _, kv := range [][2]string{{n1, v1}, {n2, v2}} {
			if _, ok := e.name(kv[0]); !ok {
				if httpguts.ValidHeaderFieldName(kv[0]) {
					t.Fatalf("name(%q) = false, want true", kv[0])
				}
				continue
			}
			fields = append(fields, kv[0], kv[1])
		}
		steps := []step{{-1, status, fields}, {-1, status, fields}, {int(limit), status, fields}, {-1, status, fields}}
		got, _ := session(t, steps)
		for i, s := range steps {
			if want := wantFields(s); !equalFields(got[i], want) {
				t.Fatalf("block %d: decoded %v, want %v", i, got[i], want)
			}
		}
	})
}

// TestClientWithoutDynamicTable serves responses to nghttp2's h2load with
// its decoder's table at the default and at 0 (SETTINGS_HEADER_TABLE_SIZE
// 0): nghttp2 fails a response that refers to an entry it does not hold,
// or that lacks the size update it expects after a smaller setting.
func TestClientWithoutDynamicTable(t *testing.T) {
	if _, err := exec.LookPath("h2load"); err != nil {
		t.Skip("h2load is not installed (apt-get install nghttp2-client)")
	}
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("hello\n"))
	}))
	for _, size := range []string{"0", "4096"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, "h2load", "--header-table-size="+size, "-n", "200", "-c", "2", "-m", "10",
			"http://"+ts.addr+"/x").CombinedOutput()
		cancel()
		// h2load counts a 418 as done (and failed), a response it cannot
		// decode as errored.
		if err != nil || !strings.Contains(string(out), "200 done") || !strings.Contains(string(out), " 0 errored") ||
			!strings.Contains(string(out), "0 2xx, 0 3xx, 200 4xx") {
			t.Errorf("h2load --header-table-size=%s: want 200 answered 418, got %v:\n%s", size, err, out)
		}
	}
}
