// Package rollout replaces the replicas of a Compose service with new ones
// (a new image or configuration) behind dlb, without a stall: it starts the
// new replicas beside the old, waits until dlb reports them ready, then
// stops the old ones (dlb drains them) and removes them.
//
// Plan is the pure part: which old replicas go in which batch, and the steps.
// Runner carries a plan out against an Engine (Compose and the Docker
// Engine, or a fake in tests) and a Gate (dlb's admin API), and puts the
// service back as it was when a new replica fails or the run is interrupted.
package rollout

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Container is one container of the service, as the Docker Engine reports it.
type Container struct {
	ID       string
	Name     string // without the leading slash
	Number   int    // Compose's container number (com.docker.compose.container-number)
	State    string // created, running, restarting, exited, dead, ...
	ExitCode int    // the last exit code, when it exited
	Health   string // empty without a HEALTHCHECK, else starting, healthy or unhealthy
	Image    string // the image as configured, e.g. shop:2
}

// Running reports whether the container runs (and is not restarting).
func (c Container) Running() bool { return c.State == "running" }

// Plan is what a rollout of one service does: its old replicas, replaced a
// batch at a time. The zero value plans nothing.
type Plan struct {
	Service string
	Old     []Container   // the running replicas, by container number
	Batches [][]Container // Old, cut in batches replaced one after another
}

// NewPlan plans the rollout of service, whose containers (any state) are cs,
// batch replicas at a time (0 or more than there are: all at once). It
// refuses a service with no running replica, and one with stopped
// containers, since Compose would start those again beside the new ones.
func NewPlan(service string, cs []Container, batch int) (Plan, error) {
	if batch < 0 {
		return Plan{}, fmt.Errorf("--batch %d: must be a number of replicas (0: all at once)", batch)
	}
	var old []Container
	var stopped []string
	for _, c := range cs {
		if c.Running() {
			old = append(old, c)
		} else {
			stopped = append(stopped, fmt.Sprintf("%s (%s)", c.Name, c.State))
		}
	}
	if len(stopped) > 0 {
		return Plan{}, fmt.Errorf("service %s has containers that do not run: %s; Compose would start them again beside the new replicas: "+
			"remove them (docker rm NAME) or start them, then roll out again", service, strings.Join(stopped, ", "))
	}
	if len(old) == 0 {
		return Plan{}, fmt.Errorf("service %s has no running replica to replace: start it first (compose up -d %s)", service, service)
	}
	sort.Slice(old, func(i, j int) bool { return old[i].Number < old[j].Number })
	if batch == 0 || batch > len(old) {
		batch = len(old)
	}
	p := Plan{Service: service, Old: old}
	for i := 0; i < len(old); i += batch {
		p.Batches = append(p.Batches, old[i:min(i+batch, len(old))])
	}
	return p, nil
}

// StepKind is what a step does.
type StepKind int

// The four steps of a batch, in order.
const (
	StepStart  StepKind = iota // start as many new replicas as the batch has, beside every old one
	StepWait                   // wait until dlb has the new replicas ready
	StepStop                   // stop the batch's old replicas (dlb drains them)
	StepRemove                 // remove them
)

// Step is one step of a plan.
type Step struct {
	Kind  StepKind
	Batch int         // 0-based index in Plan.Batches
	Old   []Container // the batch's old replicas
	Scale int         // StepStart: the number of replicas Compose is asked for
}

// Steps returns the plan's steps, four per batch. The replica count stays
// len(Old) between batches, so a batch of k scales to len(Old)+k.
func (p Plan) Steps() []Step {
	var steps []Step
	for i, b := range p.Batches {
		for _, k := range []StepKind{StepStart, StepWait, StepStop, StepRemove} {
			s := Step{Kind: k, Batch: i, Old: b}
			if k == StepStart {
				s.Scale = len(p.Old) + len(b)
			}
			steps = append(steps, s)
		}
	}
	return steps
}

// Describe says what step s does, for the progress line and --dry-run:
// compose is the command line that starts new replicas, fresh the names of
// the new replicas once known (nil: not started yet), timeout the wait's
// limit.
func (p Plan) Describe(s Step, compose string, fresh []string, timeout time.Duration) string {
	n := len(s.Old)
	newOnes := plural(n, "new replica")
	if len(fresh) > 0 {
		newOnes = strings.Join(fresh, ", ")
	}
	switch s.Kind {
	case StepStart:
		return fmt.Sprintf("start %s of %s beside the %d running (%s)", plural(n, "new replica"), p.Service, len(p.Old), compose)
	case StepWait:
		return fmt.Sprintf("wait until dlb has %s ready (at most %s)", newOnes, timeout)
	case StepStop:
		return fmt.Sprintf("stop %s (dlb drains them; each stops within its stop_grace_period)", names(s.Old))
	case StepRemove:
		return "remove " + names(s.Old)
	}
	return fmt.Sprintf("step %d", s.Kind)
}

// names lists the containers' names, comma-separated.
func names(cs []Container) string { return strings.Join(containerNames(cs), ", ") }

// plural is "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
