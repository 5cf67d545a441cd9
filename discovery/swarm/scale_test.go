package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/discovery"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/rs/zerolog"
)

// jsonEngine answers the Source's lists as a manager does, in JSON that the
// Source decodes on every call, as the Docker client does: a poll's cost
// here includes the decoding, and sent counts what a manager encodes and
// sends. Every service is one dlb balances, so a task list filtered by
// those services is all the tasks (or all that should run, filtered by
// desired-state, as the engine does).
type jsonEngine struct {
	services, tasks, running, nodes []byte
	sent                            int // bytes answered
}

func (e *jsonEngine) answer(b []byte, out any) error {
	e.sent += len(b)
	return json.Unmarshal(b, out)
}

func (e *jsonEngine) Info(context.Context) (system.Info, error) {
	return system.Info{Swarm: swarm.Info{LocalNodeState: swarm.LocalNodeStateActive, ControlAvailable: true}}, nil
}

func (e *jsonEngine) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	var out []swarm.Service
	return out, e.answer(e.services, &out)
}

func (e *jsonEngine) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	var out []swarm.Task
	if o.Filters.Contains("id") {
		return nil, fmt.Errorf("the benchmark's swarm does not change: no task should be asked for by ID")
	}
	if o.Filters.ExactMatch("desired-state", string(swarm.TaskStateRunning)) && o.Filters.Contains("desired-state") {
		return out, e.answer(e.running, &out)
	}
	return out, e.answer(e.tasks, &out)
}

func (e *jsonEngine) NodeList(context.Context, swarm.NodeListOptions) ([]swarm.Node, error) {
	var out []swarm.Node
	return out, e.answer(e.nodes, &out)
}

func (e *jsonEngine) Events(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) {
	return nil, nil
}

// largeSwarm is a swarm of nodes nodes and services services of perService
// running tasks each, spread over the nodes; every slot also keeps history
// ended tasks, as Swarm does (its task history limit is 5 by default: the
// running task and 4 ended ones). Tasks carry what a manager sends for one:
// the network attachment with the network's spec, the container spec with
// its labels, the status with the container's.
func largeSwarm(tb testing.TB, nodes, services, perService, history int) *jsonEngine {
	tb.Helper()
	var ns []swarm.Node
	for i := range nodes {
		n := node(fmt.Sprintf("node%022d", i), swarm.NodeStateReady)
		n.Description.Hostname = fmt.Sprintf("host-%d", i)
		n.Spec.Role, n.Spec.Availability = swarm.NodeRoleWorker, swarm.NodeAvailabilityActive
		n.Status.Addr = fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
		n.Description.Engine.EngineVersion = "20.10.24"
		n.Description.Resources.NanoCPUs, n.Description.Resources.MemoryBytes = 4e9, 16<<30
		ns = append(ns, n)
	}
	var ss []swarm.Service
	var ts []swarm.Task
	network := func(t *swarm.Task, ip int) {
		a := attach("appnet", fmt.Sprintf("10.0.%d.%d/16", ip/250, ip%250+2))
		a.Network.ID = "appnetid0000000000000000a"
		a.Network.Spec.Labels = map[string]string{"com.docker.stack.namespace": "shop"}
		a.Network.Spec.DriverConfiguration = &swarm.Driver{Name: "overlay"}
		a.Network.Spec.IPAMOptions = &swarm.IPAMOptions{Driver: swarm.Driver{Name: "default"}, Configs: []swarm.IPAMConfig{{Subnet: "10.0.0.0/16", Gateway: "10.0.0.1"}}}
		a.Network.DriverState = swarm.Driver{Name: "overlay", Options: map[string]string{"com.docker.network.driver.overlay.vxlanid_list": "4097"}}
		t.NetworksAttachments = []swarm.NetworkAttachment{a}
	}
	for s := range services {
		id := fmt.Sprintf("svc%022d", s)
		svc := service(id, serviceLabels("com.docker.stack.namespace", "shop", "dlb.port", "80"),
			containerLabels("dlb.enable", "true", "com.docker.stack.namespace", "shop"))
		svc.Spec.Name = fmt.Sprintf("shop_app%d", s)
		svc.Spec.TaskTemplate.ContainerSpec.Image = "registry.example.com/shop/app:1.4.2@sha256:4a5d3b4c2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b"
		svc.Spec.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR}
		replicas := uint64(perService)
		svc.Spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &replicas}
		svc.Spec.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "appnetid0000000000000000a"}}
		ss = append(ss, svc)
		for slot := 1; slot <= perService; slot++ {
			for h := 0; h <= history; h++ {
				t := task(fmt.Sprintf("task%06d%02d%02d%011d", s, slot, h, 0), id, slot, onNode(ns[(s*perService+slot)%nodes].ID))
				t.Spec.ContainerSpec = svc.Spec.TaskTemplate.ContainerSpec
				t.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: fmt.Sprintf("%064d", s*10000+slot*10+h), PID: 4242}
				t.Status.Message = "started"
				network(&t, s*perService+slot)
				if h > 0 { // an ended task of the slot's history
					t.Status.State, t.DesiredState = swarm.TaskStateShutdown, swarm.TaskStateShutdown
					t.Status.Message, t.Status.Err = "shutdown", ""
				}
				ts = append(ts, t)
			}
		}
	}
	var running []swarm.Task
	for _, t := range ts {
		if t.DesiredState == swarm.TaskStateRunning {
			running = append(running, t)
		}
	}
	e := &jsonEngine{}
	var err error
	for _, m := range []struct {
		to *[]byte
		v  any
	}{{&e.services, ss}, {&e.tasks, ts}, {&e.running, running}, {&e.nodes, ns}} {
		if *m.to, err = json.Marshal(m.v); err != nil {
			tb.Fatal(err)
		}
	}
	return e
}

// nullSink is a discovery.Sink that does nothing: the benchmark measures
// the Source alone.
type nullSink struct{}

func (nullSink) Sync([]discovery.Replica) {}
func (nullSink) Update(discovery.Replica) {}
func (nullSink) Drain(string)             {}
func (nullSink) Stop(string)              {}
func (nullSink) Remove(string)            {}
func (nullSink) Lost()                    {}
func (nullSink) Event(string)             {}

// BenchmarkPollLargeSwarm is one poll of a swarm of 100 nodes and 100
// services of 10 tasks (1,000 running, 4,000 ended in the slots' history),
// where nothing changed: what dlb spends on each poll (every 2 s when idle,
// every 200 ms while anything changes), decoding included, and what the
// manager sends for it (manager-bytes/poll). The history is not listed
// (the task list asks for DesiredState running), so it costs nothing.
func BenchmarkPollLargeSwarm(b *testing.B) {
	for _, c := range []struct{ nodes, services, perService, history int }{
		{10, 10, 10, 4},   // 100 tasks
		{100, 100, 10, 4}, // 1,000 tasks
		{100, 100, 10, 0}, // 1,000 tasks, no history (a fresh swarm)
		{100, 500, 10, 0}, // 5,000 tasks
	} {
		name := fmt.Sprintf("nodes=%d/tasks=%d/history=%d", c.nodes, c.services*c.perService, c.history)
		b.Run(name, func(b *testing.B) {
			e := largeSwarm(b, c.nodes, c.services, c.perService, c.history)
			s := New(e, nullSink{}, Options{Discovery: discovery.Options{SelfNetworks: []string{"appnet"}}, Log: zerolog.Nop()})
			ctx := context.Background()
			if err := s.poll(ctx, time.Now()); err != nil {
				b.Fatal(err)
			}
			if got := len(s.known); got != c.services*c.perService {
				b.Fatalf("the first poll found %d running tasks, want %d", got, c.services*c.perService)
			}
			b.ReportAllocs()
			e.sent = 0
			b.ResetTimer()
			for range b.N {
				if err := s.poll(ctx, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(e.sent)/float64(b.N), "manager-bytes/poll")
		})
	}
}
