package discovery_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/docker/docker/api/types"
	dc "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/rs/zerolog"
)

// fakeEngine is the Docker engine as the Watcher sees it, for a unit test
// of the Watcher's logic (the real-engine tests of cmd/dlb drive a real
// one): containers by ID, and one event stream per subscription, which the
// test feeds and breaks.
type fakeEngine struct {
	mu         sync.Mutex
	containers map[string]dc.InspectResponse
	streams    chan fakeStream // each Events call's stream
}

type fakeStream struct {
	msgs chan events.Message
	errs chan error
}

var _ discovery.Docker = (*fakeEngine)(nil)

func newFakeEngine(cs ...dc.InspectResponse) *fakeEngine {
	e := &fakeEngine{containers: map[string]dc.InspectResponse{}, streams: make(chan fakeStream, 8)}
	for _, c := range cs {
		e.containers[c.ID] = c
	}
	return e
}

// set puts c in the engine as it is now; remove takes a container out.
func (e *fakeEngine) set(c dc.InspectResponse) { e.mu.Lock(); e.containers[c.ID] = c; e.mu.Unlock() }
func (e *fakeEngine) remove(id string)         { e.mu.Lock(); delete(e.containers, id); e.mu.Unlock() }

func (e *fakeEngine) ContainerList(context.Context, dc.ListOptions) ([]dc.Summary, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []dc.Summary
	for _, c := range e.containers {
		if c.State.Running {
			out = append(out, dc.Summary{ID: c.ID, Names: []string{c.Name}, Labels: c.Config.Labels})
		}
	}
	return out, nil
}

func (e *fakeEngine) ContainerInspect(_ context.Context, id string) (dc.InspectResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[id]
	if !ok {
		return dc.InspectResponse{}, fmt.Errorf("no such container %s: %w", id, cerrdefs.ErrNotFound)
	}
	return c, nil
}

func (e *fakeEngine) Events(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) {
	s := fakeStream{msgs: make(chan events.Message, 64), errs: make(chan error, 1)}
	e.streams <- s
	return s.msgs, s.errs
}

func (e *fakeEngine) Ping(context.Context) (types.Ping, error) { return types.Ping{}, nil }

// stream waits for the Watcher's next subscription.
func (e *fakeEngine) stream(t *testing.T) fakeStream {
	t.Helper()
	select {
	case s := <-e.streams:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("the Watcher did not subscribe to events within 5s")
		return fakeStream{}
	}
}

// event is a container event as the engine sends it.
func event(action events.Action, c dc.InspectResponse) events.Message {
	attrs := maps.Clone(c.Config.Labels)
	attrs["name"] = c.Name[1:]
	return events.Message{Type: events.ContainerEventType, Action: action,
		Actor: events.Actor{ID: c.ID, Attributes: attrs}, TimeNano: time.Now().UnixNano()}
}

// recordingSink is a discovery.Sink that holds replica states by
// container name, counts Sync and Lost calls and keeps the events' actions.
type recordingSink struct {
	mu      sync.Mutex
	names   map[string]string // ID -> name
	state   map[string]string // name -> "up", "draining", "stopped"
	syncs   int
	losses  int
	actions []string // of the events the Watcher handled, in order
}

func newRecordingSink() *recordingSink {
	return &recordingSink{names: map[string]string{}, state: map[string]string{}}
}

func (s *recordingSink) Sync(rs []discovery.Replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	s.state = map[string]string{}
	for _, r := range rs {
		s.names[r.ID], s.state[r.Name] = r.Name, "up"
	}
}
func (s *recordingSink) Update(r discovery.Replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names[r.ID], s.state[r.Name] = r.Name, "up"
}
func (s *recordingSink) Drain(id string)  { s.mark(id, "draining") }
func (s *recordingSink) Stop(id string)   { s.mark(id, "stopped") }
func (s *recordingSink) Remove(id string) { s.mark(id, "") }
func (s *recordingSink) Lost()            { s.mu.Lock(); s.losses++; s.mu.Unlock() }
func (s *recordingSink) Event(action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions = append(s.actions, action)
}

// handled reports whether the Watcher began handling an event of action.
func (s *recordingSink) handled(action string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.actions, action)
}

func (s *recordingSink) mark(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == "" {
		delete(s.state, s.names[id])
		return
	}
	s.state[s.names[id]] = state
}

// show is the sink's replicas as "name=state", sorted.
func (s *recordingSink) show() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n, st := range s.state {
		out = append(out, n+"="+st)
	}
	slices.Sort(out)
	return out
}

// waitFor polls until the sink holds exactly want, failing after 5s.
func (s *recordingSink) waitFor(t *testing.T, step string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(s.show(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: sink holds %q after 5s, want %q", step, s.show(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// app is a running, dlb-enabled container named name on appnet.
func app(name, ip string, opts ...option) dc.InspectResponse {
	return container(append([]option{withName(name), enabled, withNetwork("appnet", ip)}, opts...)...)
}

func exited(c *dc.InspectResponse) {
	c.State = &dc.State{Status: dc.StateExited}
}

// The Watcher against a fake engine: it lists and syncs, trusts the
// engine's inspect over a stale event, and when the stream breaks in the
// middle of a burst it says so and resyncs, dropping a container that went
// away meanwhile.
func TestWatcherFollowsAFakeEngine(t *testing.T) {
	engine := newFakeEngine(app("web-1", "10.0.0.2"), app("web-2", "10.0.0.3"))
	sink := newRecordingSink()
	w := discovery.NewWatcher(engine, sink, discovery.Options{}, zerolog.Nop())
	w.MinBackoff, w.MaxBackoff = time.Millisecond, time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	s := engine.stream(t)
	sink.waitFor(t, "first list", "web-1=up", "web-2=up")

	// Out of order: web-3's start event comes after it already exited
	// (its die event is still on the way). The inspect says exited: no
	// replica. Its next start, running, brings it.
	web3 := app("web-3", "10.0.0.4", exited)
	engine.set(web3)
	s.msgs <- event(events.ActionStart, web3)
	s.msgs <- event(events.ActionDie, web3)
	// One container's events are handled in order: once the die is, the
	// stale start was.
	deadline := time.Now().Add(5 * time.Second)
	for !sink.handled("die") {
		if time.Now().After(deadline) {
			t.Fatal("the Watcher did not handle web-3's die event within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	if got, want := sink.show(), []string{"web-1=up", "web-2=up"}; !slices.Equal(got, want) {
		t.Errorf("after a start event for a container that already exited: sink holds %q, want %q", got, want)
	}
	web3 = app("web-3", "10.0.0.4")
	engine.set(web3)
	s.msgs <- event(events.ActionStart, web3)
	sink.waitFor(t, "web-3 started after a stale start", "web-1=up", "web-2=up", "web-3=up")

	// A burst of events, and the stream breaks in the middle of it; web-1
	// is removed meanwhile, and its destroy event is lost with the stream.
	web1 := app("web-1", "10.0.0.2")
	s.msgs <- event(events.ActionKill, web1)
	s.msgs <- event(events.ActionStop, web1)
	engine.remove(web1.ID)
	syncsBefore := func() int { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.syncs }()
	s.errs <- io.ErrUnexpectedEOF
	engine.stream(t) // the Watcher subscribes again
	sink.waitFor(t, "after the resync", "web-2=up", "web-3=up")
	sink.mu.Lock()
	syncs, losses := sink.syncs, sink.losses
	sink.mu.Unlock()
	if losses < 1 || syncs <= syncsBefore {
		t.Errorf("after the stream broke: got %d Lost and %d Sync (%d before), want Lost and another Sync", losses, syncs, syncsBefore)
	}
}
