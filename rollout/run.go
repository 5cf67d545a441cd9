package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Engine is what a rollout does to the service: Compose starts new
// replicas, the Docker Engine inspects, stops and removes containers.
type Engine interface {
	// Containers lists the service's containers in any state, one-off
	// containers (compose run) left out.
	Containers(ctx context.Context) ([]Container, error)
	// Scale asks Compose for n replicas of the service without recreating
	// any: the missing ones are created with the file's configuration.
	Scale(ctx context.Context, n int) error
	// ScaleCommand is the command line of Scale(n), for messages.
	ScaleCommand(n int) string
	// Inspect returns one container's state.
	Inspect(ctx context.Context, id string) (Container, error)
	// Stop stops a container within its own stop timeout (stop_grace_period).
	Stop(ctx context.Context, id string) error
	// Remove removes a stopped container.
	Remove(ctx context.Context, id string) error
	// Logs returns the last lines of a container's output.
	Logs(ctx context.Context, id string, lines int) string
}

// Runner carries out plans. Engine, Gate and Out are required.
type Runner struct {
	Engine  Engine
	Gate    Gate
	Out     io.Writer     // one progress line per step
	Timeout time.Duration // how long new replicas may take to be ready; 0: 2 min
	Poll    time.Duration // how often the wait looks; 0: 200 ms
	// LogLines is how many of a failed replica's last log lines the error
	// shows; 0: 10.
	LogLines int
}

// DefaultTimeout is how long new replicas may take to be ready by default.
const DefaultTimeout = 2 * time.Minute

// ReplicaError is a new replica that failed: it exited, turned unhealthy,
// or was not ready in time.
type ReplicaError struct {
	Container Container
	Reason    string // e.g. "exited with code 1"
	Logs      string // its last log lines
}

func (e *ReplicaError) Error() string {
	msg := fmt.Sprintf("new replica %s %s", e.Container.Name, e.Reason)
	if logs := strings.TrimRight(e.Logs, "\n"); logs != "" {
		msg += "; its last log lines:\n  " + strings.ReplaceAll(logs, "\n", "\n  ")
	} else {
		msg += "; it logged nothing"
	}
	return msg
}

// ErrInterrupted is the cause of a rollout stopped by its context (Ctrl-C).
var ErrInterrupted = errors.New("interrupted")

// Error is a rollout that did not finish. Replaced counts the old replicas
// already replaced (earlier batches, and the failed batch's when only its
// old replicas' stop or removal failed); PutBack says the failed batch's
// new replicas were removed again.
type Error struct {
	Service  string
	Replaced int
	PutBack  bool
	Err      error // what went wrong: a *ReplicaError, ErrInterrupted, or the engine's error
	Cleanup  error // a failure to remove the new replicas, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rollout of %s failed: %v", e.Service, e.Err)
	switch {
	case e.Cleanup != nil:
		fmt.Fprintf(&b, "\nremoving its new replicas failed too: %v; remove them by hand (docker rm -f NAME)", e.Cleanup)
	case e.PutBack:
		b.WriteString("\nthe new replicas are removed; the old ones keep serving")
	}
	if e.Replaced > 0 {
		fmt.Fprintf(&b, "\n%d old replicas were replaced, and their new ones serve beside the remaining old ones; roll out again to finish", e.Replaced)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Run carries plan p out, printing a line per step. When a new replica
// fails or ctx ends while new replicas are starting, it removes the
// batch's new replicas and returns an *Error; once the old replicas of a
// batch are being stopped, it finishes that batch and stops before the next.
func (r *Runner) Run(ctx context.Context, p Plan) error {
	r.defaults()
	total := len(p.Steps())
	step := 0
	do := func(s Step, fresh []string, f func() error) error {
		step++
		fmt.Fprintf(r.Out, "[%d/%d] %s ... ", step, total, p.Describe(s, r.Engine.ScaleCommand(s.Scale), fresh, r.Timeout))
		start := time.Now()
		err := f()
		if err != nil {
			fmt.Fprintf(r.Out, "failed after %s\n", round(time.Since(start)))
		} else {
			fmt.Fprintf(r.Out, "done in %s\n", round(time.Since(start)))
		}
		return err
	}
	replaced := 0
	steps := p.Steps()
	for i := 0; i < len(steps); i += 4 {
		start, wait, stop, remove := steps[i], steps[i+1], steps[i+2], steps[i+3]
		if ctx.Err() != nil {
			return &Error{Service: p.Service, Replaced: replaced, PutBack: replaced == 0, Err: ErrInterrupted}
		}
		before, err := r.Engine.Containers(ctx)
		if err != nil {
			return &Error{Service: p.Service, Replaced: replaced, Err: err}
		}
		var fresh []Container
		err = do(start, nil, func() error {
			if err := r.Engine.Scale(ctx, start.Scale); err != nil {
				return err
			}
			after, err := r.Engine.Containers(ctx)
			fresh = added(before, after)
			return err
		})
		if err == nil {
			err = do(wait, containerNames(fresh), func() error { return r.wait(ctx, fresh) })
		}
		if err != nil {
			if ctx.Err() != nil {
				err = ErrInterrupted
			}
			cleanup := r.removeNew(before)
			return &Error{Service: p.Service, Replaced: replaced, PutBack: cleanup == nil, Err: err, Cleanup: cleanup}
		}
		// From here the new replicas serve: the old ones go even when ctx
		// ends, so that the batch does not stop half-way.
		keep := context.WithoutCancel(ctx)
		replaced += len(stop.Old)
		if err := do(stop, nil, func() error { return r.each(keep, stop.Old, r.Engine.Stop) }); err != nil {
			return &Error{Service: p.Service, Replaced: replaced, Err: err}
		}
		if err := do(remove, nil, func() error { return r.each(keep, remove.Old, r.Engine.Remove) }); err != nil {
			return &Error{Service: p.Service, Replaced: replaced, Err: err}
		}
	}
	return nil
}

func (r *Runner) defaults() {
	if r.Timeout <= 0 {
		r.Timeout = DefaultTimeout
	}
	if r.Poll <= 0 {
		r.Poll = 200 * time.Millisecond
	}
	if r.LogLines <= 0 {
		r.LogLines = 10
	}
}

// wait returns once dlb reports every fresh replica ready, or a
// *ReplicaError for the first that exits, turns unhealthy, or is not ready
// within the timeout.
func (r *Runner) wait(ctx context.Context, fresh []Container) error {
	if len(fresh) == 0 {
		return errors.New("Compose started no new replica")
	}
	ids := make([]string, len(fresh))
	for i, c := range fresh {
		ids[i] = c.ID
	}
	deadline := time.Now().Add(r.Timeout)
	tick := time.NewTicker(r.Poll)
	defer tick.Stop()
	var states map[string]string
	var lastErr error
	for {
		for i, c := range fresh {
			now, err := r.Engine.Inspect(ctx, c.ID)
			if err != nil {
				if ctx.Err() != nil {
					return ErrInterrupted
				}
				return fmt.Errorf("new replica %s cannot be inspected: %v", c.Name, err)
			}
			fresh[i] = now
			if reason := failed(now); reason != "" {
				return &ReplicaError{Container: now, Reason: reason, Logs: r.Engine.Logs(context.WithoutCancel(ctx), now.ID, r.LogLines)}
			}
		}
		s, err := r.Gate.States(ctx, ids)
		if err == nil {
			states, lastErr = s, nil
			if allReady(states, ids) {
				return nil
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			for _, c := range fresh {
				if states[c.ID] != "ready" {
					return &ReplicaError{Container: c, Reason: notReady(c, states[c.ID], r.Timeout, lastErr), Logs: r.Engine.Logs(context.WithoutCancel(ctx), c.ID, r.LogLines)}
				}
			}
		}
		select {
		case <-ctx.Done():
			return ErrInterrupted
		case <-tick.C:
		}
	}
}

// failed says why a new replica cannot become ready, or is empty.
func failed(c Container) string {
	switch {
	case c.State == "exited" || c.State == "dead":
		return fmt.Sprintf("exited with code %d (state %s)", c.ExitCode, c.State)
	case c.State == "restarting":
		return fmt.Sprintf("keeps restarting (state restarting, last exit code %d)", c.ExitCode)
	case c.Health == "unhealthy":
		return fmt.Sprintf("is unhealthy (state %s, health unhealthy)", c.State)
	}
	return ""
}

// notReady says how a replica stood when the wait ran out.
func notReady(c Container, state string, timeout time.Duration, gateErr error) string {
	health := ""
	if c.Health != "" {
		health = ", health " + c.Health
	}
	in := "dlb reports it " + state
	switch {
	case gateErr != nil:
		in = fmt.Sprintf("dlb's admin API answered no more: %v", gateErr)
	case state == "":
		in = "it is not in dlb's pools (is it on dlb's --network, labelled dlb.enable? dlb's log says why it skips a container)"
	}
	return fmt.Sprintf("is not ready after %s (state %s%s; %s)", timeout, c.State, health, in)
}

func allReady(states map[string]string, ids []string) bool {
	for _, id := range ids {
		if states[id] != "ready" {
			return false
		}
	}
	return true
}

// removeNew stops and removes every container of the service that is not
// in before, all at once; it runs on after ctx ended, to put the service
// back as it was.
func (r *Runner) removeNew(before []Container) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	now, err := r.Engine.Containers(ctx)
	if err != nil {
		return err
	}
	fresh := added(before, now)
	if len(fresh) == 0 {
		return nil
	}
	start := time.Now()
	fmt.Fprintf(r.Out, "      remove the new replicas %s ... ", names(fresh))
	err = r.each(ctx, fresh, func(ctx context.Context, id string) error {
		if err := r.Engine.Stop(ctx, id); err != nil {
			return err
		}
		return r.Engine.Remove(ctx, id)
	})
	if err != nil {
		fmt.Fprintf(r.Out, "failed after %s\n", round(time.Since(start)))
	} else {
		fmt.Fprintf(r.Out, "done in %s\n", round(time.Since(start)))
	}
	return err
}

// each calls f on every container at once and returns the first error,
// naming the container.
func (r *Runner) each(ctx context.Context, cs []Container, f func(context.Context, string) error) error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx, c.ID); err != nil {
				errs[i] = fmt.Errorf("%s: %w", c.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// added returns the containers of after that are not in before, by number.
func added(before, after []Container) []Container {
	var out []Container
	for _, c := range after {
		if !slices.ContainsFunc(before, func(b Container) bool { return b.ID == c.ID }) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// containerNames lists the containers' names.
func containerNames(cs []Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// round shortens a duration for a progress line.
func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
