package swarm

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/dlb-lb/dlb/discovery"
	"github.com/docker/docker/api/types/swarm"
)

// ServiceError is what the Source says of a Swarm service whose tasks it
// cannot use, or uses with a caveat: the service's name, as data, and what
// to change.
type ServiceError struct {
	Service string // the Swarm service's name (stack_web)
	Err     error  // what is wrong, and what to change
}

// Error reads "swarm service NAME: what is wrong".
func (e *ServiceError) Error() string { return "swarm service " + e.Service + ": " + e.Err.Error() }

// Unwrap is Err, so that errors.Is finds discovery.ErrNotSelected.
func (e *ServiceError) Unwrap() error { return e.Err }

// Labels are a service's labels as dlb reads them: the task containers'
// labels (a compose file's `labels:`), with the service's own
// (`deploy.labels`) over them.
func Labels(s swarm.Service) map[string]string {
	out := map[string]string{}
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		maps.Copy(out, cs.Labels)
	}
	maps.Copy(out, s.Spec.Labels)
	return out
}

// ServiceName is the pool a Swarm service's tasks serve when it has no
// dlb.service label. A stack's service (`docker stack deploy -c f.yaml
// shop` names it shop_web) gets the name Compose gives the same service of
// project shop, shop-web, so that moving a compose file to a stack keeps
// its pools' names (dashboards, metrics). Any other service keeps its name.
func ServiceName(s swarm.Service) string {
	name := s.Spec.Name
	if ns := s.Spec.Labels[discovery.LabelStackNamespace]; ns != "" && strings.HasPrefix(name, ns+"_") {
		return ns + "-" + strings.TrimPrefix(name, ns+"_")
	}
	return name
}

// config is what dlb makes of one service, shared by its tasks.
type config struct {
	service string // the pool
	project string // the stack, or ""
	labels  discovery.LabelConfig
	port    int
}

// serviceConfig reads a service's labels: whether dlb balances it, and
// how. The error wraps discovery.ErrNotSelected for a service that is not
// one of dlb's; any other error names the label to fix. This function and
// taskReplica are where the Swarm source calls the label and network
// parsing it shares with the container watcher.
func serviceConfig(s swarm.Service, o discovery.Options) (config, error) {
	labels := Labels(s)
	c := config{project: labels[discovery.LabelStackNamespace]}
	fail := func(format string, args ...any) (config, error) {
		return config{}, &ServiceError{Service: s.Spec.Name, Err: fmt.Errorf(format, args...)}
	}
	if s.Spec.TaskTemplate.ContainerSpec == nil {
		return fail("runs no containers (a plugin or attachment): %w", discovery.ErrNotSelected)
	}
	if o.Project != "" && c.project != o.Project {
		return fail("stack %q is not --project %q: %w", c.project, o.Project, discovery.ErrNotSelected)
	}
	if enabled, err := discovery.Enabled(labels, o.ExposedByDefault); err != nil {
		return fail("%w; service skipped", err)
	} else if !enabled {
		return fail("no %s=true label: %w", discovery.LabelEnable, discovery.ErrNotSelected)
	}
	cfg, err := discovery.ParseLabels(labels)
	if err != nil {
		return fail("%w; service skipped", err)
	}
	c.labels = cfg
	c.service = cfg.Service
	if c.service == "" {
		c.service = ServiceName(s)
	}
	c.port = cfg.Port
	if c.port == 0 {
		c.port = 80
		// The image's EXPOSE is not in the service's spec; the one port it
		// publishes is the best guess after dlb.port.
		if es := s.Spec.EndpointSpec; es != nil && len(es.Ports) == 1 && es.Ports[0].Protocol != swarm.PortConfigProtocolUDP {
			c.port = int(es.Ports[0].TargetPort)
		}
	}
	return c, nil
}

// taskName is the task's name for logs, as docker service ps shows it:
// service.slot (service.node for a global service) and the task ID's first
// 12 characters.
func taskName(s swarm.Service, t swarm.Task) string {
	if t.Slot > 0 {
		return fmt.Sprintf("%s.%d.%.12s", s.Spec.Name, t.Slot, t.ID)
	}
	return fmt.Sprintf("%s.%.12s.%.12s", s.Spec.Name, t.NodeID, t.ID)
}

// taskReplica is the replica of one running task of a service dlb
// balances: its address on a network dlb shares with it, never the
// service's VIP nor the ingress mesh. The error (a *ServiceError) says
// why the task cannot be reached and what to change; the warning, when
// not "", is a caveat about a replica that is used anyway.
func taskReplica(s swarm.Service, c config, t swarm.Task, o discovery.Options) (r discovery.Replica, warning string, err error) {
	r = discovery.Replica{
		ID: t.ID, Name: taskName(s, t), Service: c.service, Project: c.project,
		Hosts: c.labels.Hosts, Path: c.labels.Path, Port: c.port, Labels: c.labels,
		Running: t.Status.State == swarm.TaskStateRunning,
	}
	nets := map[string]string{}
	var names []string
	for _, a := range t.NetworksAttachments {
		if a.Network.Spec.Ingress || len(a.Addresses) == 0 {
			continue // the routing mesh: never a way to one task
		}
		p, err := netip.ParsePrefix(a.Addresses[0])
		if err != nil {
			continue
		}
		name := a.Network.Spec.Name
		nets[name] = p.Addr().String()
		names = append(names, name)
	}
	slices.Sort(names)
	fail := func(err error) (discovery.Replica, string, error) {
		return discovery.Replica{}, "", &ServiceError{Service: s.Spec.Name, Err: err}
	}
	shared := false
	for _, n := range names {
		shared = shared || slices.Contains(o.SelfNetworks, n)
	}
	switch {
	case len(names) == 0:
		return fail(errors.New("its tasks are on no overlay network (only the ingress mesh, which dlb does not use): attach the service and dlb to one attachable overlay network (docker network create -d overlay --attachable NET; docker service update --network-add NET SERVICE); service skipped"))
	case len(o.SelfNetworks) > 0 && !shared:
		return fail(fmt.Errorf("its tasks share no network with dlb (dlb is on %s; the tasks are on %s): attach the service and dlb to one attachable overlay network, and pass it as --network if dlb is on several; service skipped",
			strings.Join(o.SelfNetworks, ", "), strings.Join(names, ", ")))
	}
	choice, err := discovery.ChooseNetwork(nets, c.project, o)
	if err != nil {
		return fail(err)
	}
	r.Network, r.IP = choice.Network, choice.IP
	return r, choice.Warning, nil
}
