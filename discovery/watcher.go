package discovery

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/rs/zerolog"
)

// Docker is the part of the Docker Engine API that the Watcher uses: list,
// inspect and events, and ping to notice a connection that hangs without
// breaking. *client.Client satisfies it; every call only reads, so a
// read-only socket proxy in front of the engine is enough.
type Docker interface {
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	Ping(ctx context.Context) (types.Ping, error)
}

// Sink receives the Watcher's changes. Calls about one container come in the
// order the engine reported its events; calls about different containers
// may come at the same time, from different goroutines.
type Sink interface {
	// Sync replaces everything known with the replicas of a full list
	// (at start and after every reconnect).
	Sync(replicas []Replica)
	// Update adds a replica or changes one already known (its address,
	// health or labels changed, or it was started again).
	Update(r Replica)
	// Drain says the container is being stopped (or paused): no new requests.
	Drain(id string)
	// Stop says the container's process exited; the container may be
	// started again (docker restart, a restart policy).
	Stop(id string)
	// Remove says the container is gone, or no longer one of dlb's.
	Remove(id string)
	// Lost says the Watcher lost the engine: what it reported stays, but
	// is not known to be current until the next Sync.
	Lost()
	// Event says the Watcher is handling an engine event with this action
	// ("start", "die", "health_status: healthy", "connect"...), for
	// metrics. It is called on the Watcher's goroutines and must not block.
	Event(action string)
}

// Watcher follows the Docker Engine and keeps a Sink up to date. Create one
// with NewWatcher and call Run.
type Watcher struct {
	docker Docker
	sink   Sink
	opts   Options
	log    zerolog.Logger

	// MinBackoff and MaxBackoff bound the wait between reconnects; zero
	// values mean 100ms and 1s.
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how often the engine is pinged while the event stream
	// is quiet, so that a connection that hangs without breaking is noticed
	// (zero means 5s); a ping gets as long again to answer.
	PingInterval time.Duration

	synced atomic.Bool

	mu      sync.Mutex        // guards the maps below: events are handled in parallel
	known   map[string]bool   // IDs given to the sink with Update or Sync
	warned  map[string]string // the last warning logged per container ID
	running map[string]bool   // IDs of containers seen running, selected or not
	// matched are the networks a Compose short name in --network was found
	// as (dlb on the host); more than one is worth one warning.
	matched map[string]bool
}

// eventWorkers is how many containers' events are handled at once. Events
// of one container are handled in order, by one worker; a slow inspect
// (the engine holds a container's lock while it starts it) delays only
// that container's events, not the others'.
const eventWorkers = 32

// NewWatcher returns a Watcher that reads from docker and reports to sink.
func NewWatcher(docker Docker, sink Sink, opts Options, log zerolog.Logger) *Watcher {
	return &Watcher{docker: docker, sink: sink, opts: opts, log: log,
		known: map[string]bool{}, warned: map[string]string{}, running: map[string]bool{}, matched: map[string]bool{}}
}

// Synced reports whether the Watcher is connected to the engine and has
// finished its full list since it last connected.
func (w *Watcher) Synced() bool { return w.synced.Load() }

// Run lists the containers, then follows the event stream until ctx ends.
// When the stream breaks it keeps what the sink has, reconnects with capped
// exponential backoff and lists again. It returns nil when ctx is done.
func (w *Watcher) Run(ctx context.Context) error {
	minB, maxB := w.MinBackoff, w.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = time.Second
	}
	backoff := minB
	failures := 0
	for {
		synced, err := w.session(ctx)
		w.synced.Store(false)
		w.sink.Lost()
		if ctx.Err() != nil {
			return nil
		}
		if synced {
			backoff, failures = minB, 0
			w.log.Warn().Err(err).Msg("lost the Docker event stream; serving the last known pools while reconnecting")
		} else {
			failures++
			ev := w.log.Debug()
			if failures == 1 {
				ev = w.log.Warn()
			}
			ev.Err(err).Dur("retry_in_ms", backoff).Msg("cannot reach Docker; serving the last known pools, will keep retrying (check DOCKER_HOST or the socket mount)")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxB)
	}
}

// session subscribes to events, lists and syncs, then applies events until
// the stream fails. synced says whether the full list got through.
func (w *Watcher) session(ctx context.Context) (synced bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("type", string(events.NetworkEventType)),
	)
	for _, a := range []events.Action{
		events.ActionStart, events.ActionDie, events.ActionStop, events.ActionKill,
		events.ActionDestroy, events.ActionPause, events.ActionUnPause,
		events.ActionHealthStatus, events.ActionConnect, events.ActionDisconnect,
	} {
		f.Add("event", string(a))
	}
	// Events from a second before the list are replayed: applying an event
	// twice is harmless, missing one between list and subscribe is not.
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	msgs, errs := w.docker.Events(ctx, events.ListOptions{Filters: f, Since: since})

	start := time.Now()
	replicas, err := w.list(ctx)
	if err != nil {
		return false, err
	}
	w.sink.Sync(replicas)
	w.synced.Store(true)
	pools := map[string]bool{}
	for _, r := range replicas {
		pools[r.Service] = true
	}
	w.log.Info().Int("replicas", len(replicas)).Int("pools", len(pools)).
		Dur("took_ms", time.Since(start)).Msg("synced with Docker; following events")

	pingEvery := w.PingInterval
	if pingEvery <= 0 {
		pingEvery = 5 * time.Second
	}
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()

	queues := make([]chan events.Message, eventWorkers)
	failed := make(chan error, 1)
	var workers sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan events.Message, 1024)
		workers.Add(1)
		go func(q <-chan events.Message) {
			defer workers.Done()
			for m := range q {
				if err := w.handle(ctx, m); err != nil {
					select {
					case failed <- err:
					default:
					}
				}
			}
		}(queues[i])
	}
	defer func() {
		cancel() // unblock inspects in flight before waiting for the workers
		for _, q := range queues {
			close(q)
		}
		workers.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, pingEvery)
			_, err := w.docker.Ping(pctx)
			pcancel()
			if err != nil && ctx.Err() == nil {
				return true, fmt.Errorf("the engine stopped answering pings: %w", err)
			}
		case err := <-errs:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return true, err
		case err := <-failed:
			return true, err
		case m, ok := <-msgs:
			if !ok {
				return true, errors.New("event stream closed")
			}
			h := fnv.New32a()
			h.Write([]byte(containerOf(m)))
			queues[h.Sum32()%eventWorkers] <- m
			ping.Reset(pingEvery)
		}
	}
}

// list inspects every running container and builds the replicas among them.
func (w *Watcher) list(ctx context.Context) ([]Replica, error) {
	cs, err := w.docker.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	type result struct {
		r        Replica
		warnings []Warning
		err      error
	}
	results := make([]result, len(cs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, c := range cs {
		if !w.mayBeSelected(c.Labels) {
			results[i].err = ErrNotSelected
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			info, err := w.docker.ContainerInspect(ctx, c.ID)
			if err != nil {
				results[i].err = err
				return
			}
			results[i].r, results[i].warnings, results[i].err = Build(info, w.opts)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	known, running := map[string]bool{}, map[string]bool{}
	for _, c := range cs {
		running[c.ID] = true
	}
	var out []Replica
	for i, res := range results {
		if !w.accept(cs[i].ID, res.r, res.warnings, res.err) {
			continue
		}
		out = append(out, res.r)
		known[res.r.ID] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.warned {
		if !running[id] { // a container still there keeps its warning: not one per list
			delete(w.warned, id)
		}
	}
	w.known, w.running = known, running
	return out, nil
}

// accept logs what Build said of container id (its error, or its
// warnings) and reports whether the replica is usable. What is wrong is
// logged once per container and message, however many events and lists
// bring the container back.
func (w *Watcher) accept(id string, r Replica, warnings []Warning, err error) bool {
	if err != nil {
		if errors.Is(err, ErrNotSelected) {
			return false
		}
		name := ""
		if ce := (*ContainerError)(nil); errors.As(err, &ce) {
			name = ce.Container
		}
		w.warnOnce(id, name, err.Error())
		return false
	}
	for _, wn := range warnings {
		w.warnOnce(id, wn.Container, wn.String())
	}
	w.noteNetwork(r)
	return r.Serving()
}

// warnOnce logs msg about container id (named name) unless it was the last
// thing logged about it.
func (w *Watcher) warnOnce(id, name, msg string) {
	w.mu.Lock()
	fresh := w.warned[id] != msg
	w.warned[id] = msg
	w.mu.Unlock()
	if !fresh {
		return
	}
	ev := w.log.Warn()
	if name != "" {
		ev = ev.Str("container", name)
	}
	ev.Msg(msg)
}

// noteNetwork warns, once, when dlb runs on the host and the Compose short
// name in --network has matched the networks of several projects: their
// containers would all serve one pool per service name, mixed.
func (w *Watcher) noteNetwork(r Replica) {
	if w.opts.Network == "" || r.Network == w.opts.Network || w.opts.Project != "" || w.opts.inContainer() {
		return
	}
	w.mu.Lock()
	if w.matched[r.Network] || len(w.matched) > 1 {
		w.mu.Unlock()
		return
	}
	w.matched[r.Network] = true
	var nets []string
	for n := range w.matched {
		nets = append(nets, n)
	}
	w.mu.Unlock()
	if len(nets) < 2 {
		return
	}
	slices.Sort(nets)
	w.log.Warn().Strs("networks", nets).Msgf("--network %s matches the networks of several Compose projects (%s): dlb balances the containers of all of them; pass --project to choose one",
		w.opts.Network, strings.Join(nets, ", "))
}

// mayBeSelected is a cheap look at a container's labels (from a list or an
// event) that avoids inspecting containers dlb will never use.
func (w *Watcher) mayBeSelected(labels map[string]string) bool {
	if w.opts.Project != "" && labels[LabelComposeProject] != w.opts.Project {
		return false
	}
	enabled, err := Enabled(labels, w.opts.ExposedByDefault)
	return enabled || err != nil // a malformed value is inspected, and warned about
}

// containerOf is the container an event concerns.
func containerOf(m events.Message) string {
	if m.Type == events.NetworkEventType {
		return m.Actor.Attributes["container"]
	}
	return m.Actor.ID
}

// handle applies one event: it changes only the replica it concerns. An
// error means the engine could not be asked about it: the session ends and
// a full resync follows. Events of one container come in order; those of
// different containers may be handled at the same time.
func (w *Watcher) handle(ctx context.Context, m events.Message) error {
	id, attrs := containerOf(m), m.Actor.Attributes
	action := string(m.Action)
	w.log.Debug().Str("type", string(m.Type)).Str("action", action).Str("actor", attrs["name"]).
		Str("container", attrs["container"]).Msg("docker event")
	w.sink.Event(action)
	if id == "" || id == w.opts.SelfID {
		return nil
	}
	if m.Type == events.NetworkEventType {
		// A container being created is connected before it starts, and the
		// engine answers an inspect of it only once the start is done:
		// its start event will bring it. Only a running container's
		// networks are worth a look.
		if !w.is(w.running, id) {
			return nil
		}
		return w.refresh(ctx, id, m.TimeNano)
	}
	switch action {
	case string(events.ActionKill):
		if w.is(w.known, id) && w.isStopSignal(ctx, id, attrs["signal"]) {
			w.log.Debug().Str("container", attrs["name"]).Str("signal", attrs["signal"]).Msg("stopping: draining")
			w.sink.Drain(id)
		}
	case string(events.ActionStop), string(events.ActionPause):
		if w.is(w.known, id) {
			w.sink.Drain(id)
		}
	case string(events.ActionDie):
		w.set(w.running, id, false)
		if w.is(w.known, id) {
			w.sink.Stop(id)
		}
	case string(events.ActionDestroy):
		w.mu.Lock()
		delete(w.warned, id)
		delete(w.running, id)
		w.mu.Unlock()
		w.forget(id)
	default: // start, unpause, health_status: *
		if action == string(events.ActionStart) {
			w.set(w.running, id, true)
		}
		if w.is(w.known, id) || w.mayBeSelected(attrs) {
			return w.refresh(ctx, id, m.TimeNano)
		}
	}
	return nil
}

// is reads one of the watcher's sets of container IDs.
func (w *Watcher) is(set map[string]bool, id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return set[id]
}

// set adds id to, or removes it from, one of the watcher's sets.
func (w *Watcher) set(set map[string]bool, id string, in bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if in {
		set[id] = true
	} else {
		delete(set, id)
	}
}

// refresh inspects one container and updates, or removes, its replica. A
// container that is gone is forgotten; any other failure to inspect it is
// returned, and changes nothing: the engine is not answering.
func (w *Watcher) refresh(ctx context.Context, id string, eventNano int64) error {
	info, err := w.docker.ContainerInspect(ctx, id)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			w.forget(id)
			return nil
		}
		return fmt.Errorf("inspecting container %.12s: %w", id, err)
	}
	r, warnings, err := Build(info, w.opts)
	if errors.Is(err, ErrNotRunning) {
		if w.is(w.known, id) {
			w.sink.Stop(id)
		}
		return nil
	}
	if !w.accept(id, r, warnings, err) {
		w.forget(id)
		return nil
	}
	if eventNano > 0 {
		r.EventTime = time.Unix(0, eventNano)
	}
	w.set(w.known, id, true)
	w.sink.Update(r)
	return nil
}

func (w *Watcher) forget(id string) {
	w.mu.Lock()
	was := w.known[id]
	delete(w.known, id)
	w.mu.Unlock()
	if was {
		w.sink.Remove(id)
	}
}

// isStopSignal reports whether a kill event's signal stops the container:
// TERM, INT, QUIT and KILL always do, any other only when it is the
// container's own STOPSIGNAL (docker stop sends that one).
func (w *Watcher) isStopSignal(ctx context.Context, id, sig string) bool {
	switch strings.TrimPrefix(strings.ToUpper(sig), "SIG") {
	case "15", "TERM", "2", "INT", "3", "QUIT", "9", "KILL":
		return true
	case "":
		return false
	}
	info, err := w.docker.ContainerInspect(ctx, id)
	if err != nil || info.Config == nil || info.Config.StopSignal == "" {
		return false
	}
	want := strings.TrimPrefix(strings.ToUpper(info.Config.StopSignal), "SIG")
	got := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	return want == got || signalNumbers[want] == got
}

// signalNumbers maps the names a STOPSIGNAL may use to the numbers that kill
// events report on Linux.
var signalNumbers = map[string]string{
	"HUP": "1", "USR1": "10", "USR2": "12", "WINCH": "28", "PWR": "30", "TERM": "15", "QUIT": "3", "INT": "2",
}
