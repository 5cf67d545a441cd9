package proxy

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want "" means 400
	}{
		{"plain", "/v2/users", "/v2/users"},
		{"root", "/", "/"},
		{"dots in names stay", "/v2/a.b/...x/.well-known", "/v2/a.b/...x/.well-known"},
		{"three dots is a name", "/v2/...", "/v2/..."},
		{"trailing slash kept", "/v2/", "/v2/"},
		{"empty segments kept", "/v2//x", "/v2//x"},
		{"OPTIONS *", "*", "*"},
		{"dot-dot leaves the prefix", "/v2/../admin", "/admin"},
		{"dot-dot within the prefix", "/v2/a/../b", "/v2/b"},
		{"single dot", "/v2/./x", "/v2/x"},
		{"trailing dot-dot", "/v2/a/..", "/v2/"},
		{"trailing dot", "/v2/.", "/v2/"},
		{"dot-dot to root", "/v2/..", "/"},
		{"encoded dots", "/v2/%2e%2e/admin", "/admin"},
		{"upper-case encoded dots", "/v2/%2E%2E/admin", "/admin"},
		{"mixed encoded dot", "/v2/.%2e/admin", "/admin"},
		{"encoded unreserved decoded", "/v2/%41%7e", "/v2/A~"},
		{"other escapes upper-cased", "/v2/a%2fb%3f", "/v2/a%2Fb%3F"},
		{"encoded slash without dots stays", "/api/projects/group%2Fproject", "/api/projects/group%2Fproject"},
		{"semicolon then dot-dot", "/v2;/../admin", "/admin"},
		{"params in a name stay", "/v2/a;jsessionid=1", "/v2/a;jsessionid=1"},
		{"above the root", "/../etc/passwd", ""},
		{"encoded above the root", "/%2e%2e/x", ""},
		{"encoded slash hides dot-dot", "/v2/..%2fadmin", ""},
		{"upper encoded slash hides dot-dot", "/v2/..%2Fadmin", ""},
		{"encoded backslash hides dot-dot", "/v2/..%5cadmin", ""},
		{"literal backslash hides dot-dot", "/v2/..\\admin", ""},
		{"dot-dot with params", "/v2/..;x/admin", ""},
		{"dot with params", "/v2/.;x/admin", ""},
		{"dot-dot after an empty segment", "/v2//../admin", ""},
		{"bad escape", "/v2/%zz", ""},
		{"short escape", "/v2/%2", ""},
		{"encoded NUL", "/v2/a%00", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := normalizePath(tc.in)
			if tc.want == "" {
				if ok {
					t.Fatalf("normalizePath(%q) = %q, ok; want it refused (400)", tc.in, got)
				}
				return
			}
			if !ok || got != tc.want {
				t.Fatalf("normalizePath(%q) = %q, %v; want %q, true", tc.in, got, ok, tc.want)
			}
		})
	}
}

func TestNormalizePathPlainDoesNotAllocate(t *testing.T) {
	n := testing.AllocsPerRun(100, func() { normalizePath("/api/v1/users/42/profile.json") })
	if n != 0 {
		t.Fatalf("normalizePath of a plain path: %v allocations, want 0", n)
	}
}

// replicaView is the path the most eager replica serves for an escaped path:
// every escape decoded, '\' taken as '/', ";params" dropped from each
// segment, empty segments merged and dot-segments resolved.
func replicaView(escaped string) string {
	dec, err := url.PathUnescape(escaped)
	if err != nil {
		return "<undecodable>"
	}
	dec = strings.ReplaceAll(dec, "\\", "/")
	segs := strings.Split(dec, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		segs[i] = s
	}
	return path.Clean("/" + strings.Join(segs, "/"))
}

// FuzzNormalizePath checks, for any path net/url accepts, that what dlb
// routes on (the path decoded as net/url decodes it) is what even the most
// eager replica serves: the same segments, so a route's prefix cannot be
// left. It also checks that normalizing is idempotent and agrees with
// path.Clean on paths without escapes, parameters or empty segments.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/v2/../admin", "/v2/%2e%2e/admin", "/v2/..%2fadmin", "/v2;/../admin",
		"/a/b/./c/..", "/a//b", "/a%2Fb", "/.%2e/", "/a/..;/b", "/..", "/a\\..\\b", "/%41", "/a/.../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		u, err := url.Parse(in)
		if err != nil || u.Opaque != "" || u.Host != "" || u.Scheme != "" {
			return
		}
		escaped := u.EscapedPath()
		out, ok := normalizePath(escaped)
		if !ok || out == "" || out == "*" {
			return
		}
		routed, err := url.PathUnescape(out)
		if err != nil {
			t.Fatalf("normalizePath(%q) = %q, which does not decode: %v", escaped, out, err)
		}
		// What dlb routes on has no dot-segment, even split as a replica
		// might split it.
		for _, seg := range strings.FieldsFunc(routed, func(r rune) bool { return r == '/' || r == '\\' }) {
			seg, _, _ = strings.Cut(seg, ";")
			if seg == "." || seg == ".." {
				t.Fatalf("normalizePath(%q) = %q: routed as %q, which keeps a dot-segment", escaped, out, routed)
			}
		}
		if !strings.Contains(routed, "//") && !strings.Contains(routed, ";") && !strings.Contains(routed, "\\") {
			// The segments dlb routes on are the ones a replica serves.
			if v, r := replicaView(out), path.Clean(routed); v != r {
				t.Fatalf("normalizePath(%q) = %q: dlb routes on %q, a replica serves %q", escaped, out, r, v)
			}
		}
		if again, ok := normalizePath(out); !ok || again != out {
			t.Fatalf("normalizePath(%q) = %q, but normalizing that again gives %q, %v", escaped, out, again, ok)
		}
		if !strings.ContainsAny(escaped, "%;\\") && !strings.Contains(escaped, "//") {
			want := path.Clean(escaped)
			if want != "/" && (strings.HasSuffix(escaped, "/") || strings.HasSuffix(escaped, "/.") || strings.HasSuffix(escaped, "/..")) {
				want += "/"
			}
			if out != want {
				t.Fatalf("normalizePath(%q) = %q; path.Clean gives %q", escaped, out, want)
			}
		}
	})
}

// FuzzRequestRouting sends any request net/http can parse through the
// proxy in front of a /v2 service and a catch-all one (both with no
// replica, so the answer says which service was chosen): it never panics,
// and a request is routed to /v2 only if the path the most eager replica
// would serve is inside /v2.
func FuzzRequestRouting(f *testing.F) {
	for _, s := range []string{"/v2/x", "/v2/../admin", "/v2/%2e%2e/admin", "/v2/..%2fadmin", "/v2;/../admin", "/x/../v2/y", "*"} {
		f.Add("GET " + s + " HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	v2, _ := poolRoute("v2")
	v2.Path = "/v2"
	other, _ := poolRoute("other")
	rt := &Router{}
	rt.Set([]Route{v2, other})
	px := New(rt, Options{})
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		escaped := req.URL.EscapedPath()
		rec := httptest.NewRecorder()
		px.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"v2"`) {
			return
		}
		if v := replicaView(escaped); v != "/v2" && !strings.HasPrefix(v, "/v2/") {
			t.Fatalf("%q was routed to /v2, but a replica would serve %q", raw, v)
		}
	})
}
