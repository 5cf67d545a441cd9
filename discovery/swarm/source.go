// Package swarm is dlb's Docker Swarm source: it follows the tasks of the
// Swarm services labelled dlb.enable=true, from a manager, and reports each
// running task as a discovery.Replica to a discovery.Sink (the Fleet's
// Source("swarm")), beside the container watcher of package discovery.
//
// Swarm (Engine 20.10) sends events for services and nodes but none for
// tasks: an event says that something changed, the task list says what. So
// the Source polls the tasks: at once on every service or node event, every
// FastPoll while anything changes (a task starting or draining, an update
// rolling), and every IdlePoll when nothing does.
//
// A task's life as the Source reports it:
//   - running, DesiredState running: Update (the fleet's readiness gate then
//     admits it; a task with a HEALTHCHECK turns running only once healthy);
//   - running, DesiredState no longer running (scale-down, update, rollback),
//     or its service removed: Drain, at once: Swarm stops the container
//     seconds later;
//   - no longer running, gone from the list, or on a node that is down:
//     Remove.
//
// A poll that fails (engine lost, no leader, not a manager) changes
// nothing: the pools keep what they had, the Source says Lost, retries with
// capped backoff, and resyncs once a poll succeeds.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/rs/zerolog"
)

// Engine is the part of the Docker Engine API the Source uses; every call
// only reads. *client.Client satisfies it.
type Engine interface {
	Info(ctx context.Context) (system.Info, error)
	ServiceList(ctx context.Context, options swarm.ServiceListOptions) ([]swarm.Service, error)
	TaskList(ctx context.Context, options swarm.TaskListOptions) ([]swarm.Task, error)
	NodeList(ctx context.Context, options swarm.NodeListOptions) ([]swarm.Node, error)
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
}

// Options configure a Source. The zero value works, with the defaults
// below.
type Options struct {
	// Discovery are the user's choices shared with the container watcher:
	// --network, --exposed-by-default, --project (a stack's name here), and
	// dlb's own container and networks.
	Discovery discovery.Options
	// FastPoll is how often the tasks are listed while something changes;
	// zero means 200ms.
	FastPoll time.Duration
	// IdlePoll is how often they are listed when nothing has changed for
	// BusyFor; zero means 2s.
	IdlePoll time.Duration
	// BusyFor is how long polling stays fast after the last change or
	// event; zero means 5s.
	BusyFor time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed polls; zero
	// means 200ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Log gets the Source's lines; the zero value logs nothing.
	Log zerolog.Logger
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.FastPoll, 200*time.Millisecond)
	def(&o.IdlePoll, 2*time.Second)
	def(&o.BusyFor, 5*time.Second)
	def(&o.MinBackoff, 200*time.Millisecond)
	def(&o.MaxBackoff, 5*time.Second)
}

// Source follows a swarm's tasks and keeps a Sink up to date. Create one
// with New and call Run; its methods are not for concurrent use.
type Source struct {
	engine Engine
	sink   discovery.Sink
	o      Options
	log    zerolog.Logger

	synced    bool                // the sink has this session's full list
	known     map[string]reported // task ID -> what the sink was told
	warned    map[string]string   // swarm service ID -> the warning last logged
	busyUntil time.Time           // poll fast until then
	failures  int                 // polls failed in a row
	// events are when the engine last reported an event of a service (by
	// service ID), to log how long a drain took since the user's change.
	events map[string]time.Time
}

// reported is what the Source last told the sink of a task.
type reported struct {
	r        discovery.Replica
	draining bool
	service  string // the Swarm service's ID
}

// New returns a Source that reads engine and reports to sink.
func New(engine Engine, sink discovery.Sink, o Options) *Source {
	o.defaults()
	return &Source{engine: engine, sink: sink, o: o, log: o.Log,
		known: map[string]reported{}, warned: map[string]string{}, events: map[string]time.Time{}}
}

// Run follows the swarm until ctx ends; it returns nil then.
func (s *Source) Run(ctx context.Context) error {
	s.checkRole(ctx)
	var (
		msgs   <-chan events.Message
		errs   <-chan error
		cancel context.CancelFunc = func() {}
	)
	defer func() { cancel() }()
	subscribe := func() {
		cancel()
		var ectx context.Context
		ectx, cancel = context.WithCancel(ctx)
		f := filters.NewArgs(filters.Arg("type", string(events.ServiceEventType)), filters.Arg("type", string(events.NodeEventType)))
		msgs, errs = s.engine.Events(ectx, events.ListOptions{Filters: f})
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				msgs, errs = nil, nil
				continue
			}
			s.sink.Event(string(m.Type) + " " + string(m.Action))
			s.log.Debug().Str("type", string(m.Type)).Str("action", string(m.Action)).Str("actor", m.Actor.Attributes["name"]).Msg("swarm event: listing tasks")
			s.busyUntil = time.Now().Add(s.o.BusyFor)
			if m.Type == events.ServiceEventType && m.TimeNano > 0 {
				s.events[m.Actor.ID] = time.Unix(0, m.TimeNano)
			}
			resetTimer(timer, 0)
		case err := <-errs:
			// Resubscribed at the next poll, which also catches what the
			// broken stream missed.
			s.log.Debug().Err(err).Msg("swarm event stream ended; polling until it is back")
			msgs, errs = nil, nil
		case <-timer.C:
			if msgs == nil {
				subscribe()
			}
			resetTimer(timer, s.pollOnce(ctx))
		}
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// pollOnce lists the swarm and applies what changed; it returns how long
// to wait before the next poll.
func (s *Source) pollOnce(ctx context.Context) time.Duration {
	if ctx.Err() != nil {
		return s.o.IdlePoll
	}
	now := time.Now()
	err := s.poll(ctx, now)
	if cerrdefs.IsNotFound(err) {
		// A service went between the service list and the task list that
		// names it: the next list no longer has it.
		err = s.poll(ctx, now)
	}
	if err != nil && s.inNoSwarm(ctx) {
		// An engine in no swarm runs no task: that is a full list, so
		// that the other sources' pools are served and /healthz is not
		// held back (checkRole said so at start).
		s.apply(nil)
		err = nil
	}
	if err == nil {
		if s.failures > 0 {
			s.log.Info().Int("failed_polls", s.failures).Msg("swarm answers again; resynced")
		}
		s.failures = 0
		if now.Before(s.busyUntil) {
			return s.o.FastPoll
		}
		return s.o.IdlePoll
	}
	if ctx.Err() != nil {
		return s.o.IdlePoll
	}
	s.failures++
	wait := s.o.MinBackoff << min(s.failures-1, 16)
	wait = min(wait, s.o.MaxBackoff)
	if s.synced || s.failures == 1 {
		s.sink.Lost()
		s.synced = false
		s.log.Warn().Err(err).Dur("retry_in_ms", wait).Msg(advice(err) + "; serving the last known swarm pools, retrying")
	} else {
		s.log.Debug().Err(err).Dur("retry_in_ms", wait).Msg("swarm poll failed again")
	}
	return wait
}

// inNoSwarm reports whether the engine says it is in no swarm (its Swarm
// API then fails as a worker's does).
func (s *Source) inNoSwarm(ctx context.Context) bool {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := s.engine.Info(ictx)
	return err == nil && info.Swarm.LocalNodeState == swarm.LocalNodeStateInactive
}

// advice says what a failed poll means for the user.
func advice(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "not a swarm manager"):
		return "this engine is not a Swarm manager: the Swarm API (services, tasks) answers only on managers; run dlb on a manager (placement constraint node.role==manager) or pass --docker-host of a manager's engine"
	case strings.Contains(msg, "This node is not part of a swarm") || strings.Contains(msg, "not part of a swarm"):
		return "this engine is in no swarm: docker swarm init (or join) it, or leave swarm out of --provider"
	case strings.Contains(msg, "does not have a leader") || strings.Contains(msg, "no leader"):
		return "the swarm has no leader (managers lost quorum, or an election is under way)"
	}
	return "cannot list the swarm's tasks"
}

// checkRole says at start, once, when the engine cannot answer the Swarm
// API: in no swarm, or a worker. The Source keeps trying either way: the
// node may be promoted, or join.
func (s *Source) checkRole(ctx context.Context) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := s.engine.Info(ictx)
	if err != nil {
		return // the first poll says why
	}
	sw := info.Swarm
	switch {
	case sw.LocalNodeState == swarm.LocalNodeStateLocked:
		s.log.Warn().Msg("--provider swarm: this engine's swarm is locked (autolock) and answers nothing until it is unlocked: docker swarm unlock")
	case sw.LocalNodeState != swarm.LocalNodeStateActive:
		s.log.Warn().Str("state", string(sw.LocalNodeState)).Msg("--provider swarm: this engine is in no swarm, so there are no tasks to follow: docker swarm init (or join) it, or leave swarm out of --provider")
	case !sw.ControlAvailable:
		s.log.Warn().Str("node", sw.NodeID).Msg("--provider swarm: this engine is a Swarm worker, and the Swarm API (services, tasks) answers only on managers: run dlb on a manager (placement constraint node.role==manager in the stack file) or pass --docker-host of a manager's engine")
	default:
		s.log.Info().Str("node", sw.NodeID).Int("managers", sw.Managers).Int("nodes", sw.Nodes).Msg("following Docker Swarm services from this manager")
	}
}

// want is what a poll says of one task that runs.
type want struct {
	r        discovery.Replica
	draining bool      // its DesiredState is no longer running
	changed  time.Time // when the task last changed (its DesiredState, for a draining one)
	service  string    // the Swarm service's ID
	desired  swarm.TaskState
}

// poll lists the services, their tasks that should run and the nodes, and
// then the known tasks that left that list, and tells the sink what
// changed (or everything, with Sync, after a failure).
//
// The task list asks for DesiredState running only: Swarm keeps the ended
// tasks of every slot (--task-history-limit, 5 by default), which would
// otherwise make up most of every list, and of what the manager encodes
// for it.
func (s *Source) poll(ctx context.Context, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	services, err := s.engine.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return fmt.Errorf("listing swarm services: %w", err)
	}
	var tasks []swarm.Task
	var nodes []swarm.Node
	sel := s.selected(services)
	if len(sel) > 0 {
		f := filters.NewArgs(filters.Arg("desired-state", string(swarm.TaskStateRunning)))
		for id := range sel {
			f.Add("service", id)
		}
		if tasks, err = s.engine.TaskList(ctx, swarm.TaskListOptions{Filters: f}); err != nil {
			return fmt.Errorf("listing swarm tasks: %w", err)
		}
		if nodes, err = s.engine.NodeList(ctx, swarm.NodeListOptions{}); err != nil {
			return fmt.Errorf("listing swarm nodes: %w", err)
		}
	}
	down := downNodes(nodes)
	wants, busy := s.plan(sel, tasks, down)
	leaving, err := s.leaving(ctx, services, sel, tasks, down)
	if err != nil {
		return fmt.Errorf("listing the swarm tasks that no longer should run: %w", err)
	}
	for id, w := range leaving {
		wants[id], busy = w, true
	}
	for _, svc := range sel {
		if u := svc.s.UpdateStatus; u != nil && (u.State == swarm.UpdateStateUpdating || u.State == swarm.UpdateStateRollbackStarted) {
			busy = true // an update rolls: more tasks will come and go
		}
	}
	if s.apply(wants) || busy {
		s.busyUntil = now.Add(s.o.BusyFor)
	}
	return nil
}

// downNodes says which nodes are down (or disconnected): their tasks are
// gone, whatever the list says.
func downNodes(nodes []swarm.Node) map[string]bool {
	down := map[string]bool{}
	for _, n := range nodes {
		down[n.ID] = n.Status.State == swarm.NodeStateDown || n.Status.State == swarm.NodeStateDisconnected
	}
	return down
}

// leaving lists, by ID, the known tasks missing from tasks (those that
// should run), and returns those that still run: they drain, rather than
// leave with their requests in flight. Their DesiredState left running
// (scale-down, update, rollback, a drained node), or their service is gone
// (docker service rm, docker stack rm; Swarm 20.10 leaves their
// DesiredState running meanwhile, and stops them seconds later). The tasks
// of a service that is there but no longer balanced, those that ended, and
// those on a node that is down are left out, and so removed.
func (s *Source) leaving(ctx context.Context, services []swarm.Service, sel map[string]selectedService, tasks []swarm.Task, down map[string]bool) (map[string]want, error) {
	listed := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		listed[t.ID] = true
	}
	f := filters.NewArgs()
	for id := range s.known {
		if !listed[id] {
			f.Add("id", id)
		}
	}
	if f.Len() == 0 {
		return nil, nil
	}
	gone, err := s.engine.TaskList(ctx, swarm.TaskListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	exists := make(map[string]bool, len(services))
	for _, svc := range services {
		exists[svc.ID] = true
	}
	out := map[string]want{}
	for _, t := range gone {
		k, ok := s.known[t.ID]
		_, balanced := sel[t.ServiceID]
		if !ok || t.Status.State != swarm.TaskStateRunning || down[t.NodeID] ||
			exists[t.ServiceID] && (!balanced || t.DesiredState == swarm.TaskStateRunning) {
			continue
		}
		out[t.ID] = want{r: k.r, draining: true, changed: t.UpdatedAt, desired: t.DesiredState, service: t.ServiceID}
	}
	return out, nil
}

// selectedService is a service dlb balances, and what its labels say.
type selectedService struct {
	s   swarm.Service
	cfg config
}

// selected keeps the services dlb balances, and warns once per service and
// message about those whose labels are wrong.
func (s *Source) selected(services []swarm.Service) map[string]selectedService {
	out := map[string]selectedService{}
	seen := map[string]bool{}
	for _, svc := range services {
		seen[svc.ID] = true
		cfg, err := serviceConfig(svc, s.o.Discovery)
		if err != nil {
			if !errors.Is(err, discovery.ErrNotSelected) {
				s.warn(svc.ID, err)
			}
			continue
		}
		out[svc.ID] = selectedService{s: svc, cfg: cfg}
	}
	for id := range s.warned {
		if !seen[id] {
			delete(s.warned, id)
		}
	}
	for id := range s.events {
		if !seen[id] {
			delete(s.events, id)
		}
	}
	return out
}

// warn logs err once per service and message.
func (s *Source) warn(serviceID string, err error) {
	msg := err.Error()
	if s.warned[serviceID] == msg {
		return
	}
	s.warned[serviceID] = msg
	ev := s.log.Warn()
	if se := (*ServiceError)(nil); errors.As(err, &se) {
		ev = ev.Str("swarm_service", se.Service)
	}
	ev.Msg(msg)
}

// plan turns a task list into the tasks that run and may serve. busy says
// that something is on its way (a task starting, or draining).
func (s *Source) plan(sel map[string]selectedService, tasks []swarm.Task, down map[string]bool) (map[string]want, bool) {
	out := map[string]want{}
	busy := false
	for _, t := range tasks {
		svc, ok := sel[t.ServiceID]
		if !ok {
			continue
		}
		switch t.Status.State {
		case swarm.TaskStateRunning:
		case swarm.TaskStateNew, swarm.TaskStateAllocated, swarm.TaskStatePending, swarm.TaskStateAssigned,
			swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady, swarm.TaskStateStarting:
			if t.DesiredState == swarm.TaskStateRunning {
				busy = true // it will run soon: list again fast, to admit it within a poll
			}
			continue
		default:
			continue // ended: if it was known, it leaves
		}
		if down[t.NodeID] {
			continue // its node is gone: so is the task, whatever the list says
		}
		if cs := t.Status.ContainerStatus; cs != nil && cs.ContainerID != "" && cs.ContainerID == s.o.Discovery.SelfID {
			continue
		}
		r, warning, err := taskReplica(svc.s, svc.cfg, t, s.o.Discovery)
		if err != nil {
			s.warn(t.ServiceID, err)
			continue
		}
		if warning != "" {
			s.warn(t.ServiceID, &ServiceError{Service: svc.s.Spec.Name, Err: errors.New(warning)})
		}
		r.EventTime = t.Status.Timestamp // when it turned running: how fast dlb admits it is measured from there
		w := want{r: r, draining: t.DesiredState != swarm.TaskStateRunning, changed: t.UpdatedAt, desired: t.DesiredState, service: t.ServiceID}
		busy = busy || w.draining
		out[t.ID] = w
	}
	return out, busy
}

// apply tells the sink how wants differ from what it was told, and
// reports whether anything did.
func (s *Source) apply(wants map[string]want) bool {
	if !s.synced {
		return s.resync(wants)
	}
	changed := false
	for id, k := range s.known {
		if _, ok := wants[id]; !ok {
			s.log.Debug().Str("task", k.r.Name).Msg("swarm task gone, ended or on a node that is down: removing")
			delete(s.known, id)
			s.sink.Remove(id)
			changed = true
		}
	}
	for id, w := range wants {
		k, ok := s.known[id]
		switch {
		case !ok && w.draining:
			// Never served, and on its way out: nothing to tell.
		case !ok:
			s.known[id] = reported{r: w.r, service: w.service}
			s.sink.Update(w.r)
			changed = true
		case w.draining && !k.draining:
			s.known[id] = reported{r: k.r, draining: true, service: k.service}
			s.sink.Drain(id)
			drained := time.Now() // after the lists: the poll's start may precede the change
			ev := s.log.Info().Str("service", k.r.Service).Str("task", k.r.Name).Str("desired_state", string(w.desired))
			if !w.changed.IsZero() {
				// The task's UpdatedAt is when the orchestrator changed its
				// DesiredState: how long the drain took is measured from it.
				ev = ev.Dur("since_change_ms", drained.Sub(w.changed)).Time("changed", w.changed)
			}
			// The service's event, if it is the one that made this change
			// (a scale-down changes its tasks within milliseconds; a rolling
			// update's later tasks change seconds after its event).
			if at, ok := s.events[w.service]; ok && !w.changed.IsZero() && at.After(w.changed.Add(-time.Second)) {
				ev = ev.Dur("since_service_event_ms", drained.Sub(at))
			}
			ev.Msg("swarm task draining")
			changed = true
		case !w.draining && !sameReplica(k.r, w.r):
			s.known[id] = reported{r: w.r, draining: k.draining, service: k.service}
			s.sink.Update(w.r)
			changed = true
		}
	}
	return changed
}

// resync gives the sink the full list: every task that serves, and those
// draining that it knew of (then drained again at once, so that requests
// in flight to them finish).
func (s *Source) resync(wants map[string]want) bool {
	var rs []discovery.Replica
	var drain []string
	known := map[string]reported{}
	for id, w := range wants {
		if w.draining {
			if _, ok := s.known[id]; !ok {
				continue
			}
			drain = append(drain, id)
		}
		w.r.EventTime = time.Time{} // a full list, as the container watcher's: no event to time from
		rs = append(rs, w.r)
		known[id] = reported{r: w.r, draining: w.draining, service: w.service}
	}
	s.sink.Sync(rs)
	for _, id := range drain {
		s.sink.Drain(id)
	}
	s.known, s.synced = known, true
	pools := map[string]bool{}
	for _, r := range rs {
		pools[r.Service] = true
	}
	s.log.Info().Int("tasks", len(rs)).Int("pools", len(pools)).Msg("synced with Docker Swarm; following services and nodes")
	return true
}

// sameReplica reports whether two reports of one task say the same, but
// for their time.
func sameReplica(a, b discovery.Replica) bool {
	a.EventTime, b.EventTime = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}
