package swarm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/discovery"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"
)

// A task's life, as the source reports it, poll after poll: what one node
// cannot show (tasks on other nodes, a node going down) included.
func TestSourceFollowsTasks(t *testing.T) {
	s, e, rec, logs := newTestSource(t)
	e.set(func(e *fakeEngine) {
		e.services = []swarm.Service{service("web"), service("off", noServiceLabels)}
		e.tasks = []swarm.Task{
			task("t1", "web", 1), task("t2", "web", 2),
			task("t3", "web", 3, onNode("node-2")), // on another node: reached over the overlay all the same
			task("x1", "off", 1),
		}
	})
	steps := []struct {
		name   string
		change func(e *fakeEngine)
		want   []string
	}{
		{"first list", nil, []string{"sync t1,t2,t3"}},
		{"nothing changed", nil, nil},
		{"a new task is pending", func(e *fakeEngine) {
			e.tasks = append(e.tasks, task("t4", "web", 4, inState(swarm.TaskStatePending)))
		}, nil},
		{"it runs", func(e *fakeEngine) { e.task("t4").Status.State = swarm.TaskStateRunning },
			[]string{"update t4 10.0.1.14:80"}},
		{"scale-down: DesiredState remove while it runs", func(e *fakeEngine) { e.task("t2").DesiredState = swarm.TaskStateRemove },
			[]string{"drain t2"}},
		{"still running, still draining: said once", nil, nil},
		{"it stopped", func(e *fakeEngine) { e.task("t2").Status.State = swarm.TaskStateShutdown },
			[]string{"remove t2"}},
		{"update: DesiredState shutdown", func(e *fakeEngine) { e.task("t1").DesiredState = swarm.TaskStateShutdown },
			[]string{"drain t1"}},
		{"the task vanished from the list", func(e *fakeEngine) {
			e.tasks = slices.DeleteFunc(e.tasks, func(t swarm.Task) bool { return t.ID == "t1" })
		}, []string{"remove t1"}},
		{"node-2 goes down: its task leaves though listed running", func(e *fakeEngine) {
			e.nodes[1] = node("node-2", swarm.NodeStateDown)
		}, []string{"remove t3"}},
		{"node-2 is back", func(e *fakeEngine) { e.nodes[1] = node("node-2", swarm.NodeStateReady) },
			[]string{"update t3 10.0.1.13:80"}},
		{"a task moved to another address", func(e *fakeEngine) {
			e.task("t4").NetworksAttachments = []swarm.NetworkAttachment{attach("appnet", "10.0.1.99/24")}
		}, []string{"update t4 10.0.1.99:80"}},
		{"a task failed", func(e *fakeEngine) { e.task("t4").Status.State = swarm.TaskStateFailed },
			[]string{"remove t4"}},
		{"the service is no longer enabled", func(e *fakeEngine) {
			e.services[0] = service("web", serviceLabels(discovery.LabelEnable, "false"))
		}, []string{"remove t3"}},
	}
	for _, st := range steps {
		if st.change != nil {
			e.set(st.change)
		}
		if err := s.poll(context.Background(), time.Now()); err != nil {
			t.Fatalf("%s: poll: %v", st.name, err)
		}
		if got := rec.take(); !slices.Equal(got, st.want) {
			t.Errorf("%s: sink got %q, want %q", st.name, got, st.want)
		}
	}
	if !strings.Contains(logs.String(), `"message":"swarm task draining"`) || !strings.Contains(logs.String(), `"since_change_ms"`) {
		t.Errorf("no drain line with since_change_ms in the log:\n%s", logs)
	}
}

// A draining task's replica is the one that served: its drain is not
// undone, and the sink is told once.
func TestSourceDrainsOnceAndNeverAdmitsADrainingTask(t *testing.T) {
	s, e, rec, _ := newTestSource(t)
	e.set(func(e *fakeEngine) {
		e.services = []swarm.Service{service("web")}
		// Already on its way out at the first list: never admitted.
		e.tasks = []swarm.Task{task("t1", "web", 1), task("old", "web", 2, func(t *swarm.Task) { t.DesiredState = swarm.TaskStateShutdown })}
	})
	for i := 0; i < 3; i++ {
		if err := s.poll(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := rec.take(), []string{"sync t1"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Failed polls (the engine lost, the leader lost) keep every pool: the
// sink hears Lost, never Remove; the first poll that works resyncs.
func TestSourceKeepsPoolsWhenPollsFail(t *testing.T) {
	for _, failure := range []error{errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock"), errNoLeader} {
		t.Run(failure.Error()[:30], func(t *testing.T) {
			s, e, rec, logs := newTestSource(t)
			e.set(func(e *fakeEngine) {
				e.services = []swarm.Service{service("web")}
				e.tasks = []swarm.Task{task("t1", "web", 1), task("t2", "web", 2)}
			})
			ctx := context.Background()
			s.pollOnce(ctx)
			if got, want := rec.take(), []string{"sync t1,t2"}; !slices.Equal(got, want) {
				t.Fatalf("first poll: got %q, want %q", got, want)
			}
			e.set(func(e *fakeEngine) { e.err = failure })
			waits := []time.Duration{}
			for i := 0; i < 8; i++ {
				waits = append(waits, s.pollOnce(ctx))
			}
			if got, want := rec.take(), []string{"lost"}; !slices.Equal(got, want) {
				t.Errorf("while polls fail: sink got %q, want %q (the pools are kept)", got, want)
			}
			if waits[0] != s.o.MinBackoff || waits[1] != 2*s.o.MinBackoff || waits[len(waits)-1] != s.o.MaxBackoff {
				t.Errorf("backoff: got %v, want doubling from %v, capped at %v", waits, s.o.MinBackoff, s.o.MaxBackoff)
			}
			if n := logs.count(`"level":"warn"`); n != 1 {
				t.Errorf("got %d warnings for one outage, want 1:\n%s", n, logs)
			}
			if errors.Is(failure, errNoLeader) && !strings.Contains(logs.String(), "the swarm has no leader") {
				t.Errorf("the warning does not say the leader is lost:\n%s", logs)
			}
			// While it was away, t1 went and t3 came.
			e.set(func(e *fakeEngine) {
				e.err = nil
				e.tasks = []swarm.Task{task("t2", "web", 2), task("t3", "web", 3)}
			})
			if wait := s.pollOnce(ctx); wait != s.o.FastPoll {
				t.Errorf("after a resync: next poll in %v, want the fast %v (things changed)", wait, s.o.FastPoll)
			}
			if got, want := rec.take(), []string{"sync t2,t3"}; !slices.Equal(got, want) {
				t.Errorf("back: got %q, want %q", got, want)
			}
		})
	}
}

// A task that drained before the engine was lost is drained again after
// the resync, not admitted afresh nor dropped with its requests in flight.
func TestSourceResyncKeepsDrains(t *testing.T) {
	s, e, rec, _ := newTestSource(t)
	e.set(func(e *fakeEngine) {
		e.services = []swarm.Service{service("web")}
		e.tasks = []swarm.Task{task("t1", "web", 1), task("t2", "web", 2)}
	})
	ctx := context.Background()
	s.pollOnce(ctx)
	e.set(func(e *fakeEngine) { e.task("t2").DesiredState = swarm.TaskStateRemove })
	s.pollOnce(ctx)
	e.set(func(e *fakeEngine) { e.err = errNoLeader })
	s.pollOnce(ctx)
	e.set(func(e *fakeEngine) { e.err = nil })
	s.pollOnce(ctx)
	if got, want := rec.take(), []string{"drain t2", "drain t2", "lost", "sync t1,t2", "sync t1,t2"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// On a worker the Swarm API answers 503: dlb says at start what to do, and
// warns once, not once a poll.
func TestSourceOnAWorker(t *testing.T) {
	s, e, rec, logs := newTestSource(t)
	e.set(func(e *fakeEngine) {
		e.info.ControlAvailable = false
		e.err = errNotManager
	})
	ctx, cancel := context.WithCancel(context.Background())
	s.o.MinBackoff, s.o.MaxBackoff = time.Millisecond, 2*time.Millisecond
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for e.listCount() < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if n := e.listCount(); n < 20 {
		t.Fatalf("only %d polls in 5s: the source does not retry", n)
	}
	for _, want := range []string{
		"this engine is a Swarm worker, and the Swarm API (services, tasks) answers only on managers: run dlb on a manager (placement constraint node.role==manager in the stack file) or pass --docker-host",
		"this engine is not a Swarm manager",
	} {
		if n := logs.count(want); n != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, n, logs)
		}
	}
	for _, c := range rec.take() {
		if c != "lost" {
			t.Errorf("sink got %q from a worker, want only lost", c)
		}
	}
}

func (e *fakeEngine) listCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lists
}

// A service or node event lists the tasks at once, however long the idle
// poll; the event is counted.
func TestSourceEventWakesThePoll(t *testing.T) {
	s, e, rec, _ := newTestSource(t)
	s.o.IdlePoll, s.o.FastPoll = time.Hour, time.Hour
	e.set(func(e *fakeEngine) { e.services = []swarm.Service{service("web")} })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	waitCalls(t, rec, "sync ")
	e.set(func(e *fakeEngine) { e.tasks = []swarm.Task{task("t1", "web", 1)} })
	e.mu.Lock()
	ch := e.events
	e.mu.Unlock()
	ch <- events.Message{Type: events.ServiceEventType, Action: events.ActionUpdate}
	waitCalls(t, rec, "update t1 ")
	if got := rec.take(); !slices.Contains(got, "event service update") {
		t.Errorf("calls %q: the event was not counted", got)
	}
}

// waitCalls waits up to 5s for a sink call starting with prefix.
func waitCalls(t *testing.T, rec *recorder, prefix string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rec.mu.Lock()
		found := slices.ContainsFunc(rec.calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
		rec.mu.Unlock()
		if found {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no sink call %q within 5s; got %q", prefix, rec.take())
}

// A service whose labels are wrong is warned about once, however many
// polls see it; its tasks are not used.
func TestSourceWarnsOncePerService(t *testing.T) {
	s, e, rec, logs := newTestSource(t)
	e.set(func(e *fakeEngine) {
		e.services = []swarm.Service{service("web", serviceLabels(discovery.LabelPort, "http")), service("lost")}
		e.tasks = []swarm.Task{task("t1", "web", 1),
			task("l1", "lost", 1, func(t *swarm.Task) { t.NetworksAttachments = []swarm.NetworkAttachment{attach("other", "10.9.0.2/24")} }),
			task("l2", "lost", 2, func(t *swarm.Task) { t.NetworksAttachments = []swarm.NetworkAttachment{attach("other", "10.9.0.3/24")} })}
	})
	for i := 0; i < 3; i++ {
		s.poll(context.Background(), time.Now())
	}
	if got, want := rec.take(), []string{"sync "}; !slices.Equal(got, want) {
		t.Errorf("sink got %q, want %q", got, want)
	}
	if n := logs.count(`label dlb.port=\"http\"`); n != 1 {
		t.Errorf("the label warning was logged %d times, want once:\n%s", n, logs)
	}
	if n := logs.count("share no network with dlb"); n != 1 {
		t.Errorf("the network warning was logged %d times, want once:\n%s", n, logs)
	}
}

// Polls are fast while something changes (a task pending, a drain, an
// update rolling) and slow when idle.
func TestSourcePollsFastWhileBusy(t *testing.T) {
	s, e, _, _ := newTestSource(t)
	e.set(func(e *fakeEngine) {
		e.services = []swarm.Service{service("web")}
		e.tasks = []swarm.Task{task("t1", "web", 1)}
	})
	ctx := context.Background()
	s.pollOnce(ctx)
	s.busyUntil = time.Time{} // the first list is a change; pretend it is old
	if got := s.pollOnce(ctx); got != s.o.IdlePoll {
		t.Errorf("idle: next poll in %v, want %v", got, s.o.IdlePoll)
	}
	e.set(func(e *fakeEngine) { e.tasks = append(e.tasks, task("t2", "web", 2, inState(swarm.TaskStateStarting))) })
	if got := s.pollOnce(ctx); got != s.o.FastPoll {
		t.Errorf("a task starting: next poll in %v, want %v", got, s.o.FastPoll)
	}
	s.busyUntil = time.Time{}
	e.set(func(e *fakeEngine) {
		e.tasks = e.tasks[:1]
		e.services[0].UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateUpdating}
	})
	if got := s.pollOnce(ctx); got != s.o.FastPoll {
		t.Errorf("an update rolling: next poll in %v, want %v", got, s.o.FastPoll)
	}
}

// docker service rm: the service is gone from the list at once, its tasks
// run for seconds more. They drain, and leave once they stop.
func TestSourceDrainsTheTasksOfARemovedService(t *testing.T) {
	s, e, rec, _ := newTestSource(t)
	e.set(func(e *fakeEngine) {
		e.services = []swarm.Service{service("web"), service("api")}
		e.tasks = []swarm.Task{task("t1", "web", 1), task("a1", "api", 1)}
	})
	ctx := context.Background()
	steps := []struct {
		name   string
		change func(e *fakeEngine)
		want   []string
	}{
		{"first list", nil, []string{"sync a1,t1"}},
		{"web removed, its task still runs", func(e *fakeEngine) {
			e.services = e.services[1:]
			e.task("t1").DesiredState = swarm.TaskStateRemove
		}, []string{"drain t1"}},
		{"still running", nil, nil},
		{"it stopped", func(e *fakeEngine) { e.task("t1").Status.State = swarm.TaskStateShutdown }, []string{"remove t1"}},
		{"api removed between the service and the task lists", func(e *fakeEngine) {
			e.afterServiceList = func(e *fakeEngine) {
				e.services = nil
				e.task("a1").DesiredState = swarm.TaskStateRemove
			}
		}, []string{"drain a1"}},
	}
	for _, st := range steps {
		if st.change != nil {
			e.set(st.change)
		}
		s.pollOnce(ctx)
		if got := rec.take(); !slices.Equal(got, st.want) {
			t.Errorf("%s: sink got %q, want %q", st.name, got, st.want)
		}
	}
}

// An engine in no swarm runs no task: the source syncs an empty list (so
// that dlb with --provider docker,swarm serves its containers), and
// follows the swarm once the engine joins one.
func TestSourceOnAnEngineInNoSwarm(t *testing.T) {
	s, e, rec, logs := newTestSource(t)
	e.set(func(e *fakeEngine) {
		e.info.LocalNodeState, e.info.ControlAvailable = swarm.LocalNodeStateInactive, false
		e.err = errNotManager // what 20.10 answers in no swarm too
	})
	s.checkRole(context.Background())
	s.pollOnce(context.Background())
	s.pollOnce(context.Background())
	if got, want := rec.take(), []string{"sync "}; !slices.Equal(got, want) {
		t.Errorf("in no swarm: sink got %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), "this engine is in no swarm") || logs.count(`"level":"warn"`) != 1 {
		t.Errorf("want one warning saying the engine is in no swarm; log:\n%s", logs)
	}
	e.set(func(e *fakeEngine) {
		e.info.LocalNodeState, e.info.ControlAvailable, e.err = swarm.LocalNodeStateActive, true, nil
		e.services = []swarm.Service{service("web")}
		e.tasks = []swarm.Task{task("t1", "web", 1)}
	})
	s.pollOnce(context.Background())
	if got, want := rec.take(), []string{"update t1 10.0.1.11:80"}; !slices.Equal(got, want) {
		t.Errorf("after swarm init: sink got %q, want %q", got, want)
	}
}

// Swarm keeps the ended tasks of every slot (its task history): a poll
// lists only the tasks that should run, and asks for a known task that left
// that list by its ID, so that a scale-down still drains it, and a
// manager's answers do not grow with the history.
func TestSourceListsOnlyTasksThatShouldRun(t *testing.T) {
	s, e, rec, _ := newTestSource(t)
	ended := func(t *swarm.Task) { t.DesiredState, t.Status.State = swarm.TaskStateShutdown, swarm.TaskStateShutdown }
	e.set(func(e *fakeEngine) {
		e.services = []swarm.Service{service("web")}
		e.tasks = []swarm.Task{task("t1", "web", 1), task("t2", "web", 2)}
		for i := range 8 { // four ended tasks in each slot's history
			e.tasks = append(e.tasks, task(fmt.Sprintf("old%d", i), "web", 1+i%2, ended))
		}
	})
	ctx := context.Background()
	steps := []struct {
		name   string
		change func(e *fakeEngine)
		want   []string
		listed int // tasks the engine returned for the poll
	}{
		{"first list", nil, []string{"sync t1,t2"}, 2},
		{"nothing changed", nil, nil, 2},
		{"scale-down: t2's DesiredState is remove", func(e *fakeEngine) { e.task("t2").DesiredState = swarm.TaskStateRemove },
			[]string{"drain t2"}, 2}, // t1, then t2 by its ID
		{"t2 still runs, still draining", nil, nil, 2},
		{"t2 stopped", func(e *fakeEngine) { e.task("t2").Status.State = swarm.TaskStateShutdown }, []string{"remove t2"}, 2},
		{"t2 is history", nil, nil, 1},
	}
	for _, st := range steps {
		if st.change != nil {
			e.set(st.change)
		}
		e.set(func(e *fakeEngine) { e.listed = 0 })
		if err := s.poll(ctx, time.Now()); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := rec.take(); !slices.Equal(got, st.want) {
			t.Errorf("%s: got %q, want %q", st.name, got, st.want)
		}
		if e.listed != st.listed {
			t.Errorf("%s: the engine listed %d tasks for the poll, want %d (the history is not asked for)", st.name, e.listed, st.listed)
		}
	}
}
