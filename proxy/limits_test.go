package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// TestMaxBody checks dlb.max_body: a declared Content-Length above the limit
// is answered 413 before any replica is contacted; a body of unknown length
// is cut where it passes the limit, also with 413; bodies within the limit
// pass whole. The replica is not blamed for a client's body.
func TestMaxBody(t *testing.T) {
	const limit = 1000
	for _, scheme := range []string{"http", SchemeH2C} {
		for _, useTLS := range []bool{false, true} {
			t.Run(scheme+" replica, "+frontName(useTLS), func(t *testing.T) {
				var reached atomic.Int64
				count := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					reached.Add(1)
					n, err := io.Copy(io.Discard, r.Body)
					if err != nil {
						http.Error(w, err.Error(), http.StatusBadRequest)
						return
					}
					fmt.Fprintf(w, "%d", n)
				})
				front := newTestFront(t, count, Route{RouteOptions: RouteOptions{Scheme: scheme, MaxBody: limit}}, Options{Retries: 2}, useTLS)
				up := front.Config.Handler.(*Proxy).router.Lookup("app.test", "/").Pool.Get("r1")
				for _, tc := range []struct {
					name        string
					size        int
					chunked     bool
					want        int
					wantReached bool
				}{
					{name: "declared length at the limit", size: limit, want: 200, wantReached: true},
					{name: "declared length over the limit", size: limit + 1, want: 413, wantReached: false},
					{name: "declared length far over the limit", size: 4 << 20, want: 413, wantReached: false},
					{name: "unknown length within the limit", size: limit, chunked: true, want: 200, wantReached: true},
					{name: "unknown length over the limit", size: limit + 1, chunked: true, want: 413},
					{name: "unknown length far over the limit", size: 1 << 20, chunked: true, want: 413},
				} {
					reached.Store(0)
					var body io.Reader = bytes.NewReader(make([]byte, tc.size))
					if tc.chunked {
						body = io.MultiReader(body) // hides the length: sent chunked
					}
					req := mustRequest(t, "POST", front.URL+"/upload", body)
					req.Host = "app.test"
					resp := doTest(t, front.Client(), req)
					got, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != tc.want {
						t.Errorf("%s: %d bytes got %d %q, want %d", tc.name, tc.size, resp.StatusCode, got, tc.want)
						continue
					}
					switch {
					case tc.want == 200 && string(got) != fmt.Sprint(tc.size):
						t.Errorf("%s: the replica read %s bytes, want %d", tc.name, got, tc.size)
					case tc.want == 413 && !strings.Contains(string(got), "at most 1000 bytes (dlb.max_body)"):
						t.Errorf("%s: 413 body = %q, want it to name the limit and the label", tc.name, got)
					}
					if tc.wantReached != (reached.Load() > 0) && (tc.want == 200 || !tc.chunked) {
						t.Errorf("%s: the replica was reached %d times, want reached=%v", tc.name, reached.Load(), tc.wantReached)
					}
				}
				if f := up.Failures(); f != 0 {
					t.Errorf("the replica has %d failures after clients sent too much, want 0", f)
				}
			})
		}
	}
}
