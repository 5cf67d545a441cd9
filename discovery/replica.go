// Package discovery finds the containers dlb balances across. Its Watcher
// lists containers once, then follows the Docker Engine's event stream and
// turns each event into a small change, reported to a Sink. The pure function
// Build turns one container's inspect data into a Replica, or an error that
// says what to fix.
package discovery

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Replica is one container that can serve a pool, as dlb sees it.
type Replica struct {
	ID      string // full container ID: the key of the replica
	Name    string // container name, without the leading slash
	Service string // the pool it belongs to
	Project string // Compose project, or ""

	Hosts []string // host names the pool serves; empty: any
	Path  string   // path prefix the pool serves

	Network string // the network whose address is used
	IP      string
	Port    int

	Running bool
	Paused  bool
	// Health is Docker's HEALTHCHECK status: "" when the container has none,
	// else "starting", "healthy" or "unhealthy".
	Health string

	// Labels is everything the container's dlb.* labels said.
	Labels LabelConfig

	// EventTime is when the engine reported the event this replica comes
	// from (zero for a full list): the start of the clock that measures how
	// fast dlb follows the fleet.
	EventTime time.Time
}

// Address is the replica's ip:port.
func (r Replica) Address() string { return net.JoinHostPort(r.IP, strconv.Itoa(r.Port)) }

// Serving reports whether the container's process runs and is not paused.
func (r Replica) Serving() bool { return r.Running && !r.Paused }

// Options are the user's choices that decide which containers dlb uses, and how.
type Options struct {
	// Network is --network: an exact network name or a Compose short name.
	Network string
	// ExposedByDefault registers containers without dlb.enable=true.
	ExposedByDefault bool
	// Project, when set, keeps only containers of that Compose project.
	Project string
	// SelfID is dlb's own container ID when it runs in a container; that
	// container is never a replica.
	SelfID string
	// SelfNetworks are the networks of dlb's own container, if any. When
	// set (and not the host network), replicas are reached only over one
	// of them: no other network routes to dlb.
	SelfNetworks []string
	// SelfProject is the Compose project of dlb's own container, if any: a
	// Compose short name in Network means that project's network.
	SelfProject string
	// SelfRestart is the restart policy of dlb's own container, if any
	// (no, always, unless-stopped, on-failure).
	SelfRestart string
	// SwarmTasks says a Swarm source follows the tasks of Swarm services
	// (--provider swarm): their containers are not replicas of their own.
	SwarmTasks bool
}

// inContainer reports whether dlb runs in a container with networks of its
// own (not the host's network, from which every bridge is reachable).
func (o Options) inContainer() bool {
	return len(o.SelfNetworks) > 0 && !slices.Contains(o.SelfNetworks, "host")
}

// ErrNotSelected is wrapped by Build's error for a container that dlb is not
// asked to balance (not enabled, another project, dlb itself). It is not a
// mistake and deserves no warning.
var ErrNotSelected = errors.New("not selected")

// ErrNotRunning is wrapped by Build's error for a container of dlb's whose
// process does not run (created, exited, restarting). It wraps ErrNotSelected.
var ErrNotRunning = fmt.Errorf("not running: %w", ErrNotSelected)

// ContainerError is what Build says of one container: its name, as data
// for whoever logs or shows it, and what is wrong with it.
type ContainerError struct {
	Container string // the container's name, without Docker's leading slash
	Err       error  // what is wrong, and what to change
}

// Error reads "container NAME: what is wrong".
func (e *ContainerError) Error() string { return "container " + e.Container + ": " + e.Err.Error() }

// Unwrap is Err, so that errors.Is finds ErrNotSelected and ErrNotRunning.
func (e *ContainerError) Unwrap() error { return e.Err }

// Warning is a caveat about a container that dlb uses anyway: its name, as
// data, and what may be wrong and how to make sure.
type Warning struct {
	Container string // the container's name, without Docker's leading slash
	Text      string // what may be wrong, and what to change
}

// String reads "container NAME: text", as a ContainerError does.
func (w Warning) String() string { return "container " + w.Container + ": " + w.Text }

// Build turns one container's inspect data into a Replica, with the
// caveats of a usable one as warnings. The error says why the container
// cannot be used and what to change (a *ContainerError, once the
// container's name is known); it wraps ErrNotSelected when the container is
// simply not one of dlb's. With an error, the Replica is the zero value and
// there is no warning.
func Build(c container.InspectResponse, o Options) (Replica, []Warning, error) {
	if c.ContainerJSONBase == nil || c.Config == nil {
		return Replica{}, nil, fmt.Errorf("container with no inspect data: %w", ErrNotSelected)
	}
	r := Replica{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/")}
	labels := c.Config.Labels
	r.Project = labels[LabelComposeProject]
	fail := func(format string, args ...any) (Replica, []Warning, error) {
		return Replica{}, nil, &ContainerError{Container: r.Name, Err: fmt.Errorf(format, args...)}
	}
	if c.ID == o.SelfID && o.SelfID != "" {
		return fail("dlb itself: %w", ErrNotSelected)
	}
	if o.SwarmTasks && labels[LabelSwarmTask] != "" {
		return fail("a Swarm task's container, followed by the swarm provider: %w", ErrNotSelected)
	}
	if o.Project != "" && r.Project != o.Project {
		return fail("Compose project %q is not --project %q: %w", r.Project, o.Project, ErrNotSelected)
	}
	// Whether dlb should use the container at all comes first: a container
	// that is not enabled gets no warning about its other labels.
	if enabled, err := Enabled(labels, o.ExposedByDefault); err != nil {
		return fail("%w; container skipped", err)
	} else if !enabled {
		if _, ok := labels[LabelEnable]; ok {
			return fail("%s is not true: %w", LabelEnable, ErrNotSelected)
		}
		return fail("no %s label: %w", LabelEnable, ErrNotSelected)
	}
	cfg, err := ParseLabels(labels)
	if err != nil {
		return fail("%w; container skipped", err)
	}
	r.Labels = cfg
	r.Hosts, r.Path = cfg.Hosts, cfg.Path

	r.Service = cfg.Service
	if r.Service == "" {
		if svc := labels[LabelComposeService]; svc != "" && r.Project != "" {
			r.Service = r.Project + "-" + svc
		} else {
			r.Service = r.Name
		}
	}

	r.Port = cfg.Port
	if r.Port == 0 {
		if r.Port, err = defaultPort(c.Config); err != nil {
			return fail("%v", err)
		}
	}

	if s := c.State; s != nil {
		r.Running, r.Paused = s.Running, s.Paused
		if s.Health != nil {
			r.Health = string(s.Health.Status)
		}
	}
	if r.Health == "" && c.Config.Healthcheck != nil && len(c.Config.Healthcheck.Test) > 0 && c.Config.Healthcheck.Test[0] != "NONE" {
		r.Health = string(container.Starting)
	}

	if !r.Running {
		return fail("%w", ErrNotRunning)
	}

	var nets map[string]string
	if c.NetworkSettings != nil {
		nets = make(map[string]string, len(c.NetworkSettings.Networks))
		for name, ep := range c.NetworkSettings.Networks {
			if ep != nil {
				nets[name] = ep.IPAddress
			}
		}
	}
	choice, err := ChooseNetwork(nets, r.Project, o)
	if err != nil {
		return fail("%v", err)
	}
	r.Network, r.IP = choice.Network, choice.IP
	var warnings []Warning
	if choice.Warning != "" {
		warnings = append(warnings, Warning{Container: r.Name, Text: choice.Warning})
	}
	return r, warnings, nil
}

// Enabled reports whether labels ask dlb to balance the container: the
// dlb.enable label as a boolean (true, 1, t...), or exposedByDefault
// without one. A malformed value is a *LabelError. The watcher and dlb lint
// both decide with it.
func Enabled(labels map[string]string, exposedByDefault bool) (bool, error) {
	v, ok := labels[LabelEnable]
	if !ok {
		return exposedByDefault, nil
	}
	var enabled bool
	if want := parseBool(v, &enabled, nil); want != "" {
		return false, &LabelError{LabelEnable, v, want}
	}
	return enabled, nil
}

// defaultPort is the port to use when dlb.port is not set: the one exposed
// TCP port, or 80 when none is exposed.
func defaultPort(cfg *container.Config) (int, error) {
	var ports []string
	for p := range cfg.ExposedPorts {
		if p.Proto() == "tcp" {
			ports = append(ports, string(p))
		}
	}
	switch len(ports) {
	case 0:
		return 80, nil
	case 1:
		for p := range cfg.ExposedPorts {
			if p.Proto() == "tcp" {
				return p.Int(), nil
			}
		}
	}
	sort.Strings(ports)
	return 0, fmt.Errorf("exposes several ports (%s) and has no %s label: set %s to the one that serves HTTP; container skipped",
		strings.Join(ports, ", "), LabelPort, LabelPort)
}

// NetworkChoice is the network whose address dlb uses for a container.
// Warning, when set, says why the choice may be wrong and how to fix it.
type NetworkChoice struct {
	Network, IP, Warning string
}

// ChooseNetwork picks the network, among a container's networks (name to IP
// address), through which dlb reaches it:
//   - when dlb runs in a container, only a network dlb is attached to: with
//     --network, that one (a Compose short name means dlb's own project's
//     network), else the first shared one by name; a container on none of
//     them is skipped (dlb could not reach it);
//   - with --network, that network, by exact name or as the Compose short name
//     (appnet finds <project>_appnet);
//   - else the container's only network;
//   - else the first by name, with a warning that names --network.
//
// Its errors say what to fix and end "skipped", not naming what is: the
// container watcher and the Swarm source (a service) both use it, and name
// the container or the service in front.
func ChooseNetwork(nets map[string]string, project string, o Options) (NetworkChoice, error) {
	names := make([]string, 0, len(nets))
	for n := range nets {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return NetworkChoice{}, errors.New("is on no network (network mode none, or not started): attach it to a bridge network shared with dlb; skipped")
	}
	pick := func(n, warning string) (NetworkChoice, error) {
		ip := nets[n]
		if ip == "" {
			if n == "host" {
				return NetworkChoice{}, errors.New("uses the host network, which gives it no address of its own: put it on a bridge network and pass that as --network; skipped")
			}
			return NetworkChoice{}, fmt.Errorf("has no IP address on network %s (not running yet?); skipped", n)
		}
		return NetworkChoice{Network: n, IP: ip, Warning: warning}, nil
	}
	want := o.Network
	if o.inContainer() {
		for _, n := range names {
			if slices.Contains(o.SelfNetworks, n) && (want == "" || n == want || o.SelfProject != "" && n == o.SelfProject+"_"+want) {
				return pick(n, "")
			}
		}
		if want != "" {
			return NetworkChoice{}, fmt.Errorf("is not on dlb's network %q (--network; dlb is on %s); it is on %s: dlb reaches replicas only over a network it is attached to; connect the two, or set --project to keep other projects out; skipped",
				want, strings.Join(o.SelfNetworks, ", "), strings.Join(names, ", "))
		}
		return NetworkChoice{}, fmt.Errorf("shares no network with dlb's own container (dlb is on %s; it is on %s): connect the two to one network and pass it as --network; skipped",
			strings.Join(o.SelfNetworks, ", "), strings.Join(names, ", "))
	}
	if want != "" {
		if _, ok := nets[want]; ok {
			return pick(want, "")
		}
		if project != "" {
			if _, ok := nets[project+"_"+want]; ok {
				return pick(project+"_"+want, "")
			}
		}
		return NetworkChoice{}, fmt.Errorf("is not on network %q (--network); it is on %s: connect it to that network or change --network; skipped",
			want, strings.Join(names, ", "))
	}
	if len(names) == 1 {
		return pick(names[0], "")
	}
	return pick(names[0], fmt.Sprintf("is on several networks (%s); using %s: set --network to choose", strings.Join(names, ", "), names[0]))
}
