package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/admin"
)

// fakeEngine is a service under Compose, in memory: Scale creates
// containers of image newImage; hooks change what the new ones do.
type fakeEngine struct {
	mu         sync.Mutex
	cs         []Container
	next       int
	newImage   string
	newState   func(c Container, inspections int) Container // what a new container turns into; nil: running
	inspected  map[string]int
	scales     []int
	scaleErr   error
	onScale    func()
	minServing int // the fewest running containers seen at a Stop, less the one stopped
}

func newFakeEngine(n int) *fakeEngine {
	e := &fakeEngine{newImage: "shop:2", inspected: map[string]int{}, minServing: 1 << 30}
	for i := 0; i < n; i++ {
		e.add("shop:1")
	}
	return e
}

func (e *fakeEngine) add(image string) Container {
	e.next++
	c := Container{ID: fmt.Sprintf("id%d", e.next), Name: fmt.Sprintf("p_app_%d", e.next), Number: e.next, State: "running", Image: image}
	e.cs = append(e.cs, c)
	return c
}

func (e *fakeEngine) Containers(ctx context.Context) ([]Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.cs), nil
}

func (e *fakeEngine) Scale(ctx context.Context, n int) error {
	e.mu.Lock()
	e.scales = append(e.scales, n)
	if e.scaleErr == nil {
		for len(e.cs) < n {
			e.add(e.newImage)
		}
	}
	e.mu.Unlock()
	if e.onScale != nil {
		e.onScale()
	}
	return e.scaleErr
}

func (e *fakeEngine) ScaleCommand(n int) string { return fmt.Sprintf("up --scale app=%d", n) }

func (e *fakeEngine) Inspect(ctx context.Context, id string) (Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, c := range e.cs {
		if c.ID == id {
			e.inspected[id]++
			if c.Image == e.newImage && e.newState != nil {
				e.cs[i] = e.newState(c, e.inspected[id])
			}
			return e.cs[i], nil
		}
	}
	return Container{}, errors.New("no such container " + id)
}

func (e *fakeEngine) Stop(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	running := 0
	for _, c := range e.cs {
		if c.Running() {
			running++
		}
	}
	e.minServing = min(e.minServing, running-1)
	for i, c := range e.cs {
		if c.ID == id {
			e.cs[i].State = "exited"
			return nil
		}
	}
	return errors.New("no such container " + id)
}

func (e *fakeEngine) Remove(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, c := range e.cs {
		if c.ID == id {
			if c.Running() {
				return errors.New("cannot remove a running container " + c.Name)
			}
			e.cs = slices.Delete(e.cs, i, i+1)
			return nil
		}
	}
	return errors.New("no such container " + id)
}

func (e *fakeEngine) Logs(ctx context.Context, id string, lines int) string {
	return "listening\nlast words of " + id
}

// images counts the containers by image and state, as "shop:1 running".
func (e *fakeEngine) images() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := map[string]int{}
	for _, c := range e.cs {
		m[c.Image+" "+c.State]++
	}
	return m
}

// fakeGate is dlb: it reports each id the state state(id) gives.
type fakeGate struct{ state func(id string) string }

func (g fakeGate) States(ctx context.Context, ids []string) (map[string]string, error) {
	m := map[string]string{}
	for _, id := range ids {
		if s := g.state(id); s != "" {
			m[id] = s
		}
	}
	return m, nil
}

var everyReady = fakeGate{func(string) string { return "ready" }}

func plan(t *testing.T, e *fakeEngine, batch int) Plan {
	t.Helper()
	cs, _ := e.Containers(context.Background())
	p, err := NewPlan("app", cs, batch)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunReplaces(t *testing.T) {
	for _, tt := range []struct {
		name       string
		old, batch int
		wantScales []int
		wantLines  int
	}{
		{"3 at once", 3, 0, []int{6}, 4},
		{"4 one at a time", 4, 1, []int{5, 5, 5, 5}, 16},
		{"3 two at a time", 3, 2, []int{5, 4}, 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEngine(tt.old)
			var out bytes.Buffer
			r := &Runner{Engine: e, Gate: everyReady, Out: &out, Poll: time.Millisecond}
			if err := r.Run(context.Background(), plan(t, e, tt.batch)); err != nil {
				t.Fatalf("Run: got %v, want nil\n%s", err, out.String())
			}
			if got, want := e.images(), map[string]int{"shop:2 running": tt.old}; !maps.Equal(got, want) {
				t.Errorf("containers after the rollout: got %v, want %v", got, want)
			}
			if !slices.Equal(e.scales, tt.wantScales) {
				t.Errorf("Compose scales: got %v, want %v", e.scales, tt.wantScales)
			}
			if e.minServing < tt.old {
				t.Errorf("running replicas while old ones were stopped: as few as %d, want at least %d", e.minServing, tt.old)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != tt.wantLines {
				t.Errorf("progress: got %d lines, want %d:\n%s", len(lines), tt.wantLines, out.String())
			}
			for _, l := range lines {
				if !strings.Contains(l, " ... done in ") {
					t.Errorf("progress line %q: want it to say how long the step took", l)
				}
			}
		})
	}
}

// A new replica that fails leaves the service as it was: the new replicas
// are removed, the old ones run, and the error names the replica, its
// state and its last log lines.
func TestRunPutsBack(t *testing.T) {
	tests := []struct {
		name     string
		newState func(Container, int) Container
		gate     Gate
		timeout  time.Duration
		want     []string
	}{
		{
			name:     "exits",
			newState: func(c Container, n int) Container { c.State, c.ExitCode = "exited", 3; return c },
			gate:     everyReady,
			want:     []string{"new replica p_app_4 exited with code 3 (state exited)", "last words of id4", "the new replicas are removed; the old ones keep serving"},
		},
		{
			name: "turns unhealthy on the third look",
			newState: func(c Container, n int) Container {
				if c.Health = "starting"; n >= 3 {
					c.Health = "unhealthy"
				}
				return c
			},
			gate: fakeGate{func(string) string { return "starting" }},
			want: []string{"new replica p_app_4 is unhealthy (state running, health unhealthy)", "last words of id4"},
		},
		{
			name:    "never ready",
			gate:    fakeGate{func(string) string { return "starting" }},
			timeout: 30 * time.Millisecond,
			want:    []string{"new replica p_app_4 is not ready after 30ms (state running; dlb reports it starting)", "last words of id4"},
		},
		{
			name:    "not in dlb's pools",
			gate:    fakeGate{func(string) string { return "" }},
			timeout: 30 * time.Millisecond,
			want:    []string{"p_app_4 is not ready after 30ms", "it is not in dlb's pools (is it on dlb's --network"},
		},
		{
			name: "one of three not ready",
			gate: fakeGate{func(id string) string {
				if id == "id5" {
					return "starting"
				}
				return "ready"
			}},
			timeout: 30 * time.Millisecond,
			want:    []string{"new replica p_app_5 is not ready"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEngine(3)
			e.newState = tt.newState
			var out bytes.Buffer
			r := &Runner{Engine: e, Gate: tt.gate, Out: &out, Timeout: tt.timeout, Poll: time.Millisecond}
			err := r.Run(context.Background(), plan(t, e, 0))
			var re *ReplicaError
			if !errors.As(err, &re) {
				t.Fatalf("Run: got %v, want a *ReplicaError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run: got error\n%v\nwant it to contain %q", err, w)
				}
			}
			if got, want := e.images(), map[string]int{"shop:1 running": 3}; !maps.Equal(got, want) {
				t.Errorf("containers after the failed rollout: got %v, want %v\n%s", got, want, out.String())
			}
			if !strings.Contains(out.String(), "remove the new replicas p_app_4, p_app_5, p_app_6 ... done in") {
				t.Errorf("progress: got\n%s\nwant a line removing the new replicas", out.String())
			}
		})
	}
}

// Interrupted while the new replicas start, Run puts the service back.
func TestRunInterrupted(t *testing.T) {
	e := newFakeEngine(3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.onScale = cancel
	r := &Runner{Engine: e, Gate: fakeGate{func(string) string { return "starting" }}, Out: &bytes.Buffer{}, Poll: time.Millisecond}
	err := r.Run(ctx, plan(t, e, 0))
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "the new replicas are removed; the old ones keep serving") {
		t.Errorf("Run: got %v, want ErrInterrupted, saying the old ones keep serving", err)
	}
	if got, want := e.images(), map[string]int{"shop:1 running": 3}; !maps.Equal(got, want) {
		t.Errorf("containers after the interrupted rollout: got %v, want %v", got, want)
	}
}

// A batch whose old replicas cannot be stopped keeps its new ones and
// says so, without claiming the service was put back.
func TestRunStopFails(t *testing.T) {
	e := newFakeEngine(2)
	err := (&Runner{Engine: stopFails{e}, Gate: everyReady, Out: &bytes.Buffer{}, Poll: time.Millisecond}).Run(context.Background(), plan(t, e, 0))
	var re *Error
	if !errors.As(err, &re) || re.PutBack || re.Replaced != 2 || strings.Contains(err.Error(), "the old ones keep serving") ||
		!strings.Contains(err.Error(), "p_app_1: engine says no") || !strings.Contains(err.Error(), "2 old replicas were replaced") {
		t.Errorf("Run: got %v, want an *Error naming the old replica that did not stop, 2 replaced, not put back", err)
	}
}

// stopFails is an engine that cannot stop containers.
type stopFails struct{ *fakeEngine }

func (stopFails) Stop(ctx context.Context, id string) error { return errors.New("engine says no") }

// Compose failing to start replicas (a port taken, say) leaves the service
// as it was too, and says what Compose said.
func TestRunComposeFails(t *testing.T) {
	e := newFakeEngine(2)
	e.scaleErr = errors.New(`docker-compose up: exit status 1: port is already allocated`)
	err := (&Runner{Engine: e, Gate: everyReady, Out: &bytes.Buffer{}}).Run(context.Background(), plan(t, e, 0))
	if err == nil || !strings.Contains(err.Error(), "port is already allocated") {
		t.Errorf("Run: got %v, want Compose's error", err)
	}
}

// A failure in a later batch says how many old replicas were replaced.
func TestRunFailsInSecondBatch(t *testing.T) {
	e := newFakeEngine(2)
	e.newState = func(c Container, n int) Container {
		if c.Number == 4 {
			c.State = "exited"
		}
		return c
	}
	err := (&Runner{Engine: e, Gate: everyReady, Out: &bytes.Buffer{}, Poll: time.Millisecond}).Run(context.Background(), plan(t, e, 1))
	var re *Error
	if !errors.As(err, &re) || re.Replaced != 1 || !strings.Contains(err.Error(), "1 old replicas were replaced, and their new ones serve") {
		t.Fatalf("Run: got %v, want an *Error with 1 replaced", err)
	}
	if got, want := e.images(), map[string]int{"shop:1 running": 1, "shop:2 running": 1}; !maps.Equal(got, want) {
		t.Errorf("containers: got %v, want %v", got, want)
	}
}

// fakeAdmin is a dlb's admin API: its pools, and /api/self when self is set.
type fakeAdmin struct {
	pools []admin.Pool
	self  *admin.Self
	err   error
}

func (a fakeAdmin) Pools(ctx context.Context) ([]admin.Pool, error) { return a.pools, a.err }
func (a fakeAdmin) Self(ctx context.Context) (admin.Self, bool, error) {
	if a.self == nil {
		return admin.Self{}, false, a.err
	}
	return *a.self, true, a.err
}

func TestChooseGate(t *testing.T) {
	old := []Container{replica(1, "running"), replica(2, "running")}
	pools := []admin.Pool{{Name: "p-app", Replicas: []admin.Replica{{ID: "id1", State: "ready"}, {ID: "id2", State: "ready"}}}}
	tests := []struct {
		name     string
		admin    fakeAdmin
		wantSelf bool
		wantErr  string
	}{
		{"an app behind dlb, no /api/self", fakeAdmin{pools: pools}, false, ""},
		{"an app behind dlb, /api/self of a dlb outside", fakeAdmin{pools: pools, self: &admin.Self{ID: "", Serving: true}}, false, ""},
		{"an app behind dlb, /api/self of another container", fakeAdmin{pools: pools, self: &admin.Self{ID: "dlbid", Serving: true}}, false, ""},
		{"dlb itself", fakeAdmin{self: &admin.Self{ID: "id2", Serving: true}}, true, ""},
		{"not behind this dlb", fakeAdmin{pools: []admin.Pool{{Name: "other"}}}, false, "service app is not behind the dlb at http://a: none of its replicas (p_app_1, p_app_2) is in its pools"},
		{"admin API unreachable", fakeAdmin{err: errors.New("cannot reach dlb's admin API")}, false, "cannot reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, self, err := ChooseGate(context.Background(), tt.admin, "http://a", "app", old)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ChooseGate: got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || self != tt.wantSelf {
				t.Fatalf("ChooseGate: got self %v, error %v; want self %v, no error", self, err, tt.wantSelf)
			}
			_, isSelf := g.(SelfGate)
			if isSelf != tt.wantSelf {
				t.Errorf("ChooseGate: got gate %T, want SelfGate %v", g, tt.wantSelf)
			}
		})
	}
}

// A new dlb is ready when /api/self answers with its id and it serves; it
// never shows in the pools.
func TestSelfGate(t *testing.T) {
	ids := []string{"new1"}
	tests := []struct {
		name string
		self *admin.Self
		want map[string]string
	}{
		{"the old dlb still answers", &admin.Self{ID: "old1", Serving: true}, map[string]string{}},
		{"the new dlb answers, not serving yet", &admin.Self{ID: "new1"}, map[string]string{"new1": "starting"}},
		{"the new dlb serves", &admin.Self{ID: "new1", Serving: true}, map[string]string{"new1": "ready"}},
		{"no /api/self", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelfGate{fakeAdmin{self: tt.self, pools: []admin.Pool{{Replicas: []admin.Replica{{ID: "new1", State: "ready"}}}}}}.States(context.Background(), ids)
			if err != nil || len(got) != len(tt.want) || got["new1"] != tt.want["new1"] {
				t.Errorf("States: got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	// Run with SelfGate: the new dlb replaces the old once it serves.
	e := newFakeEngine(1)
	a := &switchingAdmin{engine: e}
	if err := (&Runner{Engine: e, Gate: SelfGate{a}, Out: &bytes.Buffer{}, Poll: time.Millisecond}).Run(context.Background(), plan(t, e, 1)); err != nil {
		t.Fatalf("Run with SelfGate: %v", err)
	}
	if got, want := e.images(), map[string]int{"shop:2 running": 1}; !maps.Equal(got, want) {
		t.Errorf("containers: got %v, want %v", got, want)
	}
}

// switchingAdmin answers /api/self as the newest dlb container once it has
// been asked three times: a new dlb taking the admin socket over.
type switchingAdmin struct {
	engine *fakeEngine
	asked  int
}

func (a *switchingAdmin) Pools(ctx context.Context) ([]admin.Pool, error) { return nil, nil }
func (a *switchingAdmin) Self(ctx context.Context) (admin.Self, bool, error) {
	a.asked++
	cs, _ := a.engine.Containers(ctx)
	id := cs[0].ID
	if a.asked >= 3 {
		id = cs[len(cs)-1].ID
	}
	return admin.Self{ID: id, Serving: true}, true, nil
}
