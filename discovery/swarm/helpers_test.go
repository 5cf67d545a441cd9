package swarm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/internal/nettest"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/rs/zerolog"
)

// fakeEngine is a swarm as a manager would list it. err, when set, fails
// every list call (a lost engine, a lost leader, a worker's 503).
type fakeEngine struct {
	mu       sync.Mutex
	info     swarm.Info
	services []swarm.Service
	tasks    []swarm.Task
	nodes    []swarm.Node
	err      error
	lists    int // ServiceList calls
	listed   int // tasks TaskList returned
	// afterServiceList, if set, changes the swarm once, right after the
	// next service list (a race with the next call).
	afterServiceList func(e *fakeEngine)
	events           chan events.Message
}

func newEngine() *fakeEngine {
	return &fakeEngine{
		info:  swarm.Info{NodeID: "node-1", LocalNodeState: swarm.LocalNodeStateActive, ControlAvailable: true, Managers: 1, Nodes: 2},
		nodes: []swarm.Node{node("node-1", swarm.NodeStateReady), node("node-2", swarm.NodeStateReady)},
	}
}

func (e *fakeEngine) Info(context.Context) (system.Info, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return system.Info{Swarm: e.info}, nil
}

func (e *fakeEngine) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lists++
	out := slices.Clone(e.services)
	if after := e.afterServiceList; after != nil {
		e.afterServiceList = nil
		after(e)
	}
	return out, e.err
}

func (e *fakeEngine) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, e.err
	}
	// As the engine does: a service filter that names no service is an
	// error, an ID that names no task is not.
	for _, id := range o.Filters.Get("service") {
		if !slices.ContainsFunc(e.services, func(s swarm.Service) bool { return s.ID == id }) {
			return nil, fmt.Errorf("service %s not found: %w", id, cerrdefs.ErrNotFound)
		}
	}
	var out []swarm.Task
	for _, t := range e.tasks {
		if (o.Filters.Contains("service") && o.Filters.ExactMatch("service", t.ServiceID) ||
			o.Filters.Contains("id") && o.Filters.ExactMatch("id", t.ID)) &&
			o.Filters.ExactMatch("desired-state", string(t.DesiredState)) {
			out = append(out, t)
		}
	}
	e.listed += len(out)
	return out, nil
}

func (e *fakeEngine) NodeList(context.Context, swarm.NodeListOptions) ([]swarm.Node, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.nodes), e.err
}

func (e *fakeEngine) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.events == nil {
		e.events = make(chan events.Message, 16)
	}
	return e.events, make(chan error)
}

// set changes the swarm under the lock.
func (e *fakeEngine) set(change func(e *fakeEngine)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	change(e)
}

// task returns a pointer to the task with this ID, to change it.
func (e *fakeEngine) task(id string) *swarm.Task {
	for i := range e.tasks {
		if e.tasks[i].ID == id {
			return &e.tasks[i]
		}
	}
	panic("no task " + id)
}

// recorder is a discovery.Sink that writes down every call, one string each.
type recorder struct {
	mu    sync.Mutex
	calls []string
	last  map[string]discovery.Replica // by ID, from Update and Sync
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recorder) Sync(rs []discovery.Replica) {
	var ids []string
	r.mu.Lock()
	if r.last == nil {
		r.last = map[string]discovery.Replica{}
	}
	for _, x := range rs {
		ids = append(ids, x.ID)
		r.last[x.ID] = x
	}
	r.mu.Unlock()
	slices.Sort(ids)
	r.add("sync %s", strings.Join(ids, ","))
}
func (r *recorder) Update(x discovery.Replica) {
	r.mu.Lock()
	if r.last == nil {
		r.last = map[string]discovery.Replica{}
	}
	r.last[x.ID] = x
	r.mu.Unlock()
	r.add("update %s %s", x.ID, x.Address())
}
func (r *recorder) Drain(id string)  { r.add("drain %s", id) }
func (r *recorder) Stop(id string)   { r.add("stop %s", id) }
func (r *recorder) Remove(id string) { r.add("remove %s", id) }
func (r *recorder) Lost()            { r.add("lost") }
func (r *recorder) Event(a string)   { r.add("event %s", a) }

// take returns the calls since the last take, sorted (the order of calls
// about different tasks in one poll is a map's).
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	slices.Sort(out)
	return out
}

// service builds a Swarm service; by default one dlb balances, on network
// appnet, with no other label.
func service(id string, opts ...func(*swarm.Service)) swarm.Service {
	s := swarm.Service{ID: id}
	s.Spec.Name = id
	s.Spec.Labels = map[string]string{discovery.LabelEnable: "true"}
	s.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{Image: "demo"}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func serviceLabels(kv ...string) func(*swarm.Service) {
	return func(s *swarm.Service) {
		for i := 0; i+1 < len(kv); i += 2 {
			s.Spec.Labels[kv[i]] = kv[i+1]
		}
	}
}

func containerLabels(kv ...string) func(*swarm.Service) {
	return func(s *swarm.Service) {
		s.Spec.TaskTemplate.ContainerSpec.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Spec.TaskTemplate.ContainerSpec.Labels[kv[i]] = kv[i+1]
		}
	}
}

func noServiceLabels(s *swarm.Service) { s.Spec.Labels = map[string]string{} }

// task builds a running task of service on node-1 at 10.0.1.<n> on appnet.
func task(id, svc string, slot int, opts ...func(*swarm.Task)) swarm.Task {
	t := swarm.Task{ID: id, ServiceID: svc, Slot: slot, NodeID: "node-1", DesiredState: swarm.TaskStateRunning}
	t.Status.State = swarm.TaskStateRunning
	t.Status.Timestamp = time.Now()
	t.UpdatedAt = time.Now()
	t.NetworksAttachments = []swarm.NetworkAttachment{attach("appnet", fmt.Sprintf("10.0.1.%d/24", 10+slot))}
	for _, o := range opts {
		o(&t)
	}
	return t
}

func attach(name, cidr string) swarm.NetworkAttachment {
	a := swarm.NetworkAttachment{Addresses: []string{cidr}}
	a.Network.Spec.Name = name
	a.Network.Spec.Ingress = name == "ingress"
	return a
}

func onNode(n string) func(*swarm.Task) { return func(t *swarm.Task) { t.NodeID = n } }

func inState(st swarm.TaskState) func(*swarm.Task) {
	return func(t *swarm.Task) { t.Status.State = st }
}

func node(id string, st swarm.NodeState) swarm.Node {
	n := swarm.Node{ID: id}
	n.Status.State = st
	return n
}

// logBuffer is a zerolog.Logger writing into a buffer a test reads.
type logBuffer struct{ nettest.Buffer }

func (b *logBuffer) count(s string) int { return strings.Count(b.String(), s) }

// newTestSource is a Source on a fake engine, dlb in a container on appnet.
func newTestSource(t *testing.T) (*Source, *fakeEngine, *recorder, *logBuffer) {
	t.Helper()
	e, rec, logs := newEngine(), &recorder{}, &logBuffer{}
	s := New(e, rec, Options{Discovery: discovery.Options{SelfNetworks: []string{"appnet"}}, Log: zerolog.New(logs)})
	return s, e, rec, logs
}

var errNotManager = errors.New("Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.")

var errNoLeader = errors.New("Error response from daemon: rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.")
