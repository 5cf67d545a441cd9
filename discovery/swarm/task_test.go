package swarm

import (
	"errors"
	"strings"
	"testing"

	"github.com/dlb-lb/dlb/discovery"
	"github.com/docker/docker/api/types/swarm"
)

// A compose file's deploy.labels (the service's) and labels (the task
// containers') both count; the service's win where both set a label.
func TestServiceConfigMergesLabels(t *testing.T) {
	tests := []struct {
		name      string
		svc       swarm.Service
		wantHosts string
		wantPort  int
		wantErr   string // "" none; "not selected": wraps ErrNotSelected
	}{
		{"service labels only", service("web", serviceLabels(discovery.LabelHost, "a.test")), "a.test", 80, ""},
		{"container labels only",
			service("web", noServiceLabels, containerLabels(discovery.LabelEnable, "true", discovery.LabelHost, "c.test", discovery.LabelPort, "8080")),
			"c.test", 8080, ""},
		{"service over container",
			service("web", serviceLabels(discovery.LabelHost, "s.test"), containerLabels(discovery.LabelHost, "c.test", discovery.LabelPort, "8080")),
			"s.test", 8080, ""},
		{"service disables what the container enables",
			service("web", serviceLabels(discovery.LabelEnable, "false"), containerLabels(discovery.LabelEnable, "true")), "", 0, "not selected"},
		{"not enabled anywhere", service("web", noServiceLabels), "", 0, "not selected"},
		{"malformed label names the label", service("web", serviceLabels(discovery.LabelPort, "http")), "", 0, `swarm service web: label dlb.port="http"`},
		{"the one published port when no dlb.port", service("web", func(s *swarm.Service) {
			s.Spec.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{TargetPort: 3000, PublishedPort: 8000}}}
		}), "", 3000, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := serviceConfig(tt.svc, discovery.Options{})
			switch {
			case tt.wantErr == "not selected":
				if !errors.Is(err, discovery.ErrNotSelected) {
					t.Fatalf("got %v, want an error wrapping ErrNotSelected", err)
				}
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, discovery.ErrNotSelected) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("got error %v, want none", err)
			}
			if got := strings.Join(c.labels.Hosts, ","); got != tt.wantHosts {
				t.Errorf("hosts: got %q, want %q", got, tt.wantHosts)
			}
			if c.port != tt.wantPort {
				t.Errorf("port: got %d, want %d", c.port, tt.wantPort)
			}
		})
	}
}

// A stack's service serves the pool Compose would name for the same
// service; dlb.service overrides both.
func TestServiceNames(t *testing.T) {
	stack := func(ns string) func(*swarm.Service) {
		return serviceLabels(discovery.LabelStackNamespace, ns)
	}
	tests := []struct {
		name string
		svc  swarm.Service
		want string
	}{
		{"plain service", service("web"), "web"},
		{"stack service", service("shop_web", stack("shop")), "shop-web"},
		{"stack service with a name of its own", service("other", stack("shop")), "other"},
		{"dlb.service wins", service("shop_web", stack("shop"), serviceLabels(discovery.LabelService, "front")), "front"},
	}
	for _, tt := range tests {
		c, err := serviceConfig(tt.svc, discovery.Options{})
		if err != nil || c.service != tt.want {
			t.Errorf("%s: got %q (%v), want %q", tt.name, c.service, err, tt.want)
		}
	}
}

// --project keeps only the services of that stack.
func TestServiceConfigProjectIsTheStack(t *testing.T) {
	o := discovery.Options{Project: "shop"}
	if _, err := serviceConfig(service("shop_web", serviceLabels(discovery.LabelStackNamespace, "shop")), o); err != nil {
		t.Errorf("a service of stack shop: got %v, want it selected", err)
	}
	if _, err := serviceConfig(service("blog_web", serviceLabels(discovery.LabelStackNamespace, "blog")), o); !errors.Is(err, discovery.ErrNotSelected) {
		t.Errorf("a service of stack blog: got %v, want it not selected", err)
	}
}

// A task is reached at its own address on a network dlb shares with it:
// never the ingress mesh; --network chooses among several; anything else
// is a warning that names the fix.
func TestTaskNetworkChoice(t *testing.T) {
	tests := []struct {
		name    string
		nets    []swarm.NetworkAttachment
		opts    discovery.Options
		want    string // network=ip, or "" for an error
		wantErr string
		// wantWarning is the caveat of a replica used anyway.
		wantWarning string
	}{
		{"the shared overlay, not ingress",
			[]swarm.NetworkAttachment{attach("ingress", "10.0.0.5/24"), attach("appnet", "10.0.1.5/24")},
			discovery.Options{SelfNetworks: []string{"appnet"}}, "appnet=10.0.1.5", "", ""},
		{"--network picks among shared ones",
			[]swarm.NetworkAttachment{attach("a", "10.0.1.5/24"), attach("b", "10.0.2.5/24")},
			discovery.Options{SelfNetworks: []string{"a", "b"}, Network: "b"}, "b=10.0.2.5", "", ""},
		{"the first shared one without --network",
			[]swarm.NetworkAttachment{attach("b", "10.0.2.5/24"), attach("a", "10.0.1.5/24")},
			discovery.Options{SelfNetworks: []string{"a", "b"}}, "a=10.0.1.5", "", ""},
		{"no shared network names the fix",
			[]swarm.NetworkAttachment{attach("other", "10.0.3.5/24")},
			discovery.Options{SelfNetworks: []string{"appnet"}}, "", "share no network with dlb (dlb is on appnet; the tasks are on other): attach the service and dlb to one attachable overlay network", ""},
		{"only the ingress mesh",
			[]swarm.NetworkAttachment{attach("ingress", "10.0.0.5/24")},
			discovery.Options{SelfNetworks: []string{"appnet"}}, "", "only the ingress mesh, which dlb does not use", ""},
		{"dlb on the host: its one network",
			[]swarm.NetworkAttachment{attach("appnet", "10.0.1.5/24")},
			discovery.Options{}, "appnet=10.0.1.5", "", ""},
		{"a stack's short name in --network",
			[]swarm.NetworkAttachment{attach("shop_appnet", "10.0.1.5/24"), attach("x", "10.0.2.5/24")},
			discovery.Options{Network: "appnet"}, "shop_appnet=10.0.1.5", "", ""},
		{"dlb on the host, tasks on several networks: the first, with a warning that names --network",
			[]swarm.NetworkAttachment{attach("b", "10.0.2.5/24"), attach("a", "10.0.1.5/24")},
			discovery.Options{}, "a=10.0.1.5", "", "is on several networks (a, b); using a: set --network to choose"},
	}
	svc := service("shop_web", serviceLabels(discovery.LabelStackNamespace, "shop"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := serviceConfig(svc, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			tk := task("t1", "shop_web", 1, func(t *swarm.Task) { t.NetworksAttachments = tt.nets })
			r, warning, err := taskReplica(svc, c, tk, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "swarm service shop_web: ") {
					t.Fatalf("got %v, want an error for service shop_web containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got := r.Network + "=" + r.IP; got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if warning != tt.wantWarning {
				t.Errorf("warning: got %q, want %q", warning, tt.wantWarning)
			}
		})
	}
}

// A replica's name says service, slot and task, for logs.
func TestTaskName(t *testing.T) {
	svc := service("shop_web")
	if got, want := taskName(svc, task("abcdefghijklmnopq", "shop_web", 2)), "shop_web.2.abcdefghijkl"; got != want {
		t.Errorf("replicated: got %q, want %q", got, want)
	}
	global := task("abcdefghijklmnopq", "shop_web", 0, onNode("nodenodenodenode"))
	if got, want := taskName(svc, global), "shop_web.nodenodenode.abcdefghijkl"; got != want {
		t.Errorf("global: got %q, want %q", got, want)
	}
}
