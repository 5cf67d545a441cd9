package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/fleet"
)

// fixedSource is an admin.Source with fixed pools.
type fixedSource []fleet.PoolStatus

func (s fixedSource) Pools() []fleet.PoolStatus { return s }
func (s fixedSource) Healthy() (bool, string)   { return true, "" }
func (s fixedSource) Changed() <-chan struct{}  { return make(chan struct{}) }

func replica(name, addr, state string, inFlight, requests int64) fleet.ReplicaStatus {
	return fleet.ReplicaStatus{ID: name + "-id", Name: name, Address: addr, State: state, InFlight: inFlight, Requests: requests}
}

// runStatus runs `dlb status` with args and returns its exit code, stdout
// and stderr.
func runStatus(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(append([]string{"dlb", "status"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestStatusTable(t *testing.T) {
	srv := httptest.NewServer(admin.Handler(fixedSource{
		{Name: "shop-api", Host: "api.example.com", Path: "/v1", Policy: "round_robin", Replicas: []fleet.ReplicaStatus{
			replica("shop-api-1", "172.18.0.3:8080", "ready", 2, 1500),
			replica("shop-api-2", "172.18.0.4:8080", "draining", 0, 1499),
		}},
		{Name: "shop-web", Path: "/", Policy: "round_robin", Replicas: []fleet.ReplicaStatus{
			replica("shop-web-1", "172.18.0.5:80", "ready", 0, 7),
		}},
	}))
	defer srv.Close()

	code, out, errOut := runStatus("--admin-url", srv.URL)
	want := `SERVICE    HOST/PATH            REPLICA      ADDRESS           STATE      IN FLIGHT   REQUESTS
shop-api   api.example.com/v1   shop-api-1   172.18.0.3:8080   ready      2           1500
shop-api   api.example.com/v1   shop-api-2   172.18.0.4:8080   draining   0           1499
shop-web   */                   shop-web-1   172.18.0.5:80     ready      0           7
`
	if code != 0 || out != want || errOut != "" {
		t.Errorf("dlb status: exit %d, stderr %q, stdout:\n%s\nwant exit 0, no stderr, stdout:\n%s", code, errOut, out, want)
	}

	// A trailing slash and the environment variable work too.
	t.Setenv("DLB_ADMIN_URL", srv.URL+"/")
	if code, out, _ := runStatus(); code != 0 || out != want {
		t.Errorf("dlb status with DLB_ADMIN_URL=%s/: exit %d, stdout:\n%s", srv.URL, code, out)
	}
}

func TestStatusExitCodes(t *testing.T) {
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }))
	defer notJSON.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name   string
		pools  fixedSource
		url    string // instead of a server with pools
		code   int
		stderr []string // each must be in stderr
	}{
		{name: "all ready", pools: fixedSource{{Name: "a", Replicas: []fleet.ReplicaStatus{replica("a-1", "10.0.0.1:80", "ready", 0, 0)}}}, code: 0},
		{name: "no pools at all", pools: fixedSource{}, code: 0},
		{name: "one service without a ready replica",
			pools: fixedSource{
				{Name: "a", Replicas: []fleet.ReplicaStatus{replica("a-1", "10.0.0.1:80", "ready", 0, 0)}},
				{Name: "b", Replicas: []fleet.ReplicaStatus{replica("b-1", "10.0.0.2:80", "starting", 0, 0), replica("b-2", "10.0.0.3:80", "down", 0, 0)}},
			},
			code: 1, stderr: []string{"service b (0 of 2 ready) has no ready replica"}},
		{name: "two services, one scaled to zero",
			pools: fixedSource{{Name: "a", Replicas: []fleet.ReplicaStatus{}}, {Name: "b", Replicas: []fleet.ReplicaStatus{replica("b-1", "10.0.0.2:80", "draining", 0, 0)}}},
			code:  1, stderr: []string{"services a (0 of 0 ready), b (0 of 1 ready) have no ready replica"}},
		{name: "nothing listens", url: closed, code: 2, stderr: []string{"cannot reach dlb's admin API at " + closed, "--admin-url", "connection refused"}},
		{name: "not an URL", url: "127.0.0.1:8080", code: 2, stderr: []string{`--admin-url "127.0.0.1:8080": not an admin address: use http://host:port`}},
		{name: "not dlb: 404", url: notFound.URL, code: 2, stderr: []string{"404 Not Found", "--admin-url " + notFound.URL}},
		{name: "not dlb: not JSON", url: notJSON.URL, code: 2, stderr: []string{"not dlb's pools", "--admin-url " + notJSON.URL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if url == "" {
				srv := httptest.NewServer(admin.Handler(tc.pools))
				defer srv.Close()
				url = srv.URL
			}
			code, out, errOut := runStatus("--admin-url", url)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tc.code, out, errOut)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr %q, want it to contain %q", errOut, s)
				}
			}
			if tc.code == 2 && out != "" {
				t.Errorf("stdout %q, want nothing when the admin API cannot be read", out)
			}
			if tc.code != 2 && !strings.HasPrefix(out, "SERVICE ") {
				t.Errorf("stdout %q, want the table", out)
			}
		})
	}
}

// A service at its limits: in flight against the limit, and a line on its
// queue that says how many replicas the load needs.
func TestStatusQueue(t *testing.T) {
	r1 := replica("shop-1", "172.18.0.3:80", "ready", 8, 900)
	r1.Limit = 8
	r2 := replica("shop-2", "172.18.0.4:80", "ready", 5, 800)
	r2.Limit, r2.Adaptive = 5, true
	srv := httptest.NewServer(admin.Handler(fixedSource{
		{Name: "shop", Path: "/", Policy: "round_robin", Replicas: []fleet.ReplicaStatus{r1, r2},
			Queue: fleet.QueueStatus{Queued: 40, Max: 1024, Shed: 12, ArrivalPerS: 1600, PerReplicaPerS: 400, ReplicasNeeded: 4}},
	}))
	defer srv.Close()
	code, out, _ := runStatus("--admin-url", srv.URL)
	for _, want := range []string{"8/8 ", "5/5 auto", "shop: 40 queued (at most 1024), 12 shed with 503; the offered load (1600/s, 400/s per replica) needs about 4 replicas\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("dlb status: exit %d, stdout:\n%s\nwant exit 0 and %q in it", code, out, want)
		}
	}
}
