package discovery_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/proxy"
	dc "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
)

// option changes one thing of a container's inspect data.
type option func(*dc.InspectResponse)

// container is the inspect data of a running container named web-1, with no
// labels, no network and no exposed port, changed by opts.
func container(opts ...option) dc.InspectResponse {
	c := dc.InspectResponse{
		ContainerJSONBase: &dc.ContainerJSONBase{
			ID: "id-web-1", Name: "/web-1",
			State: &dc.State{Status: dc.StateRunning, Running: true},
		},
		Config:          &dc.Config{Labels: map[string]string{}},
		NetworkSettings: &dc.NetworkSettings{Networks: map[string]*network.EndpointSettings{}},
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// withName names the container and gives it the ID "id-<name>".
func withName(name string) option {
	return func(c *dc.InspectResponse) { c.Name, c.ID = "/"+name, "id-"+name }
}

func withLabel(k, v string) option {
	return func(c *dc.InspectResponse) { c.Config.Labels[k] = v }
}

// enabled is the dlb.enable=true label.
var enabled = withLabel(discovery.LabelEnable, "true")

// withCompose sets the labels Compose puts on its containers.
func withCompose(project, service string) option {
	return func(c *dc.InspectResponse) {
		c.Config.Labels[discovery.LabelComposeProject] = project
		c.Config.Labels[discovery.LabelComposeService] = service
	}
}

func withNetwork(name, ip string) option {
	return func(c *dc.InspectResponse) {
		c.NetworkSettings.Networks[name] = &network.EndpointSettings{IPAddress: ip}
	}
}

// withExposed exposes ports such as "80/tcp", as EXPOSE or --expose do.
func withExposed(ports ...string) option {
	return func(c *dc.InspectResponse) { c.Config.ExposedPorts = addPorts(c.Config.ExposedPorts, ports) }
}

// addPorts adds ports to a port set (nat.PortSet, named by its shape so that
// the tests do not import go-connections, which dlb only uses indirectly).
func addPorts[M ~map[K]struct{}, K ~string](set M, ports []string) M {
	if set == nil {
		set = M{}
	}
	for _, p := range ports {
		set[K(p)] = struct{}{}
	}
	return set
}

// withHealth gives the container a HEALTHCHECK whose status is status.
func withHealth(status dc.HealthStatus) option {
	return func(c *dc.InspectResponse) {
		c.Config.Healthcheck = &dc.HealthConfig{Test: []string{"CMD", "true"}}
		c.State.Health = &dc.Health{Status: status}
	}
}

// withHealthcheck configures a HEALTHCHECK that has no status yet.
func withHealthcheck(test ...string) option {
	return func(c *dc.InspectResponse) { c.Config.Healthcheck = &dc.HealthConfig{Test: test} }
}

func stopped() option {
	return func(c *dc.InspectResponse) { c.State = &dc.State{Status: dc.StateExited, ExitCode: 0} }
}

func paused() option {
	return func(c *dc.InspectResponse) { c.State.Status, c.State.Paused = dc.StatePaused, true }
}

// replica is the Replica Build makes of container(withName("web-1"),
// withNetwork("appnet", "10.0.0.2")), changed by fs.
func replica(fs ...func(*discovery.Replica)) discovery.Replica {
	r := discovery.Replica{
		ID: "id-web-1", Name: "web-1", Service: "web-1", Path: "/",
		Network: "appnet", IP: "10.0.0.2", Port: 80, Running: true,
	}
	for _, f := range fs {
		f(&r)
	}
	return r
}

func TestBuild(t *testing.T) {
	onAppnet := withNetwork("appnet", "10.0.0.2")
	tests := []struct {
		name    string
		input   dc.InspectResponse
		opts    discovery.Options
		want    discovery.Replica
		wantIs  error    // the error must wrap it
		wantErr []string // the error must contain each; nil with wantIs nil: no error
	}{
		{
			name:  "enabled, every default",
			input: container(enabled, onAppnet),
			want:  replica(),
		},
		{
			name:   "no dlb.enable",
			input:  container(onAppnet),
			wantIs: discovery.ErrNotSelected,
		},
		{
			name:   "dlb.enable=false",
			input:  container(withLabel(discovery.LabelEnable, "false"), onAppnet),
			wantIs: discovery.ErrNotSelected,
		},
		{
			name:   "dlb.enable=false, exposed by default",
			input:  container(withLabel(discovery.LabelEnable, "false"), onAppnet),
			opts:   discovery.Options{ExposedByDefault: true},
			wantIs: discovery.ErrNotSelected,
		},
		{
			name:  "no dlb.enable, exposed by default",
			input: container(onAppnet),
			opts:  discovery.Options{ExposedByDefault: true},
			want:  replica(),
		},
		{
			name:   "no dlb.enable and a malformed label: quietly not selected",
			input:  container(withLabel(discovery.LabelPort, "http"), onAppnet),
			wantIs: discovery.ErrNotSelected,
		},
		{
			name:    "malformed dlb.enable",
			input:   container(withLabel(discovery.LabelEnable, "garbage"), onAppnet),
			wantErr: []string{"container web-1", discovery.LabelEnable, `"garbage"`, "true or false"},
		},
		{
			name:    "malformed dlb.port",
			input:   container(enabled, withLabel(discovery.LabelPort, "http"), onAppnet),
			wantErr: []string{"container web-1", discovery.LabelPort, `"http"`, "1-65535"},
		},
		{
			name:    "malformed dlb.host, exposed by default",
			input:   container(withLabel(discovery.LabelHost, "a b"), onAppnet),
			opts:    discovery.Options{ExposedByDefault: true},
			wantErr: []string{"container web-1", discovery.LabelHost, `"a b"`},
		},
		{
			name:  "--project keeps its own",
			input: container(enabled, withCompose("shop", "web"), onAppnet),
			opts:  discovery.Options{Project: "shop"},
			want:  replica(func(r *discovery.Replica) { r.Project, r.Service = "shop", "shop-web" }),
		},
		{
			name:   "--project drops another project",
			input:  container(enabled, withCompose("blog", "web"), onAppnet),
			opts:   discovery.Options{Project: "shop"},
			wantIs: discovery.ErrNotSelected,
		},
		{
			name:   "--project drops a container of no project",
			input:  container(enabled, onAppnet),
			opts:   discovery.Options{Project: "shop"},
			wantIs: discovery.ErrNotSelected,
		},
		{
			name:   "dlb's own container",
			input:  container(enabled, onAppnet),
			opts:   discovery.Options{SelfID: "id-web-1", ExposedByDefault: true},
			wantIs: discovery.ErrNotSelected,
		},
		{
			name:  "another container than dlb's own",
			input: container(enabled, onAppnet),
			opts:  discovery.Options{SelfID: "id-dlb"},
			want:  replica(),
		},
		{
			name:  "service: Compose project and service",
			input: container(enabled, withCompose("shop", "api"), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Project, r.Service = "shop", "shop-api" }),
		},
		{
			name:  "service: Compose service without a project is the container name",
			input: container(enabled, withLabel(discovery.LabelComposeService, "api"), onAppnet),
			want:  replica(),
		},
		{
			name:  "service: dlb.service wins",
			input: container(enabled, withCompose("shop", "api"), withLabel(discovery.LabelService, "checkout"), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Project, r.Service = "shop", "checkout" }),
		},
		{
			name:  "port: nothing exposed is 80",
			input: container(enabled, onAppnet),
			want:  replica(),
		},
		{
			name:  "port: the one exposed",
			input: container(enabled, withExposed("8080/tcp"), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Port = 8080 }),
		},
		{
			name:  "port: UDP ports do not count",
			input: container(enabled, withExposed("8080/tcp", "53/udp"), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Port = 8080 }),
		},
		{
			name:  "port: only UDP exposed is 80",
			input: container(enabled, withExposed("53/udp"), onAppnet),
			want:  replica(),
		},
		{
			name:    "port: several exposed",
			input:   container(enabled, withExposed("443/tcp", "80/tcp"), onAppnet),
			wantErr: []string{"container web-1", "443/tcp, 80/tcp", "set " + discovery.LabelPort},
		},
		{
			name:  "port: several exposed and dlb.port",
			input: container(enabled, withExposed("443/tcp", "80/tcp"), withLabel(discovery.LabelPort, "443"), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Port = 443 }),
		},
		{
			name:  "port: dlb.port beats the exposed one",
			input: container(enabled, withExposed("8080/tcp"), withLabel(discovery.LabelPort, "9000"), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Port = 9000 }),
		},
		{
			name:  "hosts and path from the labels",
			input: container(enabled, withLabel(discovery.LabelHost, "B.example.com,a.example.com"), withLabel(discovery.LabelPath, "/api/"), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Hosts, r.Path = []string{"a.example.com", "b.example.com"}, "/api" }),
		},
		{
			name:    "not running",
			input:   container(enabled, stopped(), onAppnet),
			wantIs:  discovery.ErrNotRunning,
			wantErr: []string{"container web-1", "not running"},
		},
		{
			name:  "paused is returned, not serving",
			input: container(enabled, paused(), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Paused = true }),
		},
		{
			name:  "health: healthy",
			input: container(enabled, withHealth(dc.Healthy), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Health = "healthy" }),
		},
		{
			name:  "health: unhealthy",
			input: container(enabled, withHealth(dc.Unhealthy), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Health = "unhealthy" }),
		},
		{
			name:  "health: starting",
			input: container(enabled, withHealth(dc.Starting), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Health = "starting" }),
		},
		{
			name:  "health: a HEALTHCHECK with no status yet is starting",
			input: container(enabled, withHealthcheck("CMD", "curl", "-f", "localhost"), onAppnet),
			want:  replica(func(r *discovery.Replica) { r.Health = "starting" }),
		},
		{
			name:  "health: HEALTHCHECK NONE is no health check",
			input: container(enabled, withHealthcheck("NONE"), onAppnet),
			want:  replica(),
		},
		{
			name:  "network: --network by Compose short name",
			input: container(enabled, withCompose("shop", "web"), withNetwork("shop_front", "10.0.1.2"), withNetwork("shop_back", "10.0.2.2")),
			opts:  discovery.Options{Network: "back"},
			want: replica(func(r *discovery.Replica) {
				r.Project, r.Service, r.Network, r.IP = "shop", "shop-web", "shop_back", "10.0.2.2"
			}),
		},
		{
			name:    "network: none",
			input:   container(enabled),
			wantErr: []string{"container web-1", "no network"},
		},
		{
			name:    "network: not on --network",
			input:   container(enabled, onAppnet),
			opts:    discovery.Options{Network: "other"},
			wantErr: []string{"container web-1", `"other"`, "appnet", "--network"},
		},
		{
			name:  "no inspect data",
			input: dc.InspectResponse{},
			opts:  discovery.Options{ExposedByDefault: true},
			// A container that vanished between list and inspect.
			wantIs: discovery.ErrNotSelected,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := discovery.Build(tt.input, tt.opts)
			if tt.wantIs == nil && tt.wantErr == nil {
				if err != nil || len(warnings) > 0 {
					t.Fatalf("Build: got error %v, warnings %v, want %+v", err, warnings, tt.want)
				}
				got.Labels = discovery.LabelConfig{} // checked by TestParseLabels
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Build:\n got %+v\nwant %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Build: got %+v and no error, want an error (is %v, containing %q)", got, tt.wantIs, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Build: got error %q, want one that wraps %q", err, tt.wantIs)
			}
			if tt.wantIs == nil && errors.Is(err, discovery.ErrNotSelected) {
				t.Errorf("Build: got error %q that wraps ErrNotSelected, want a warning (a mistake to fix)", err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Build: got error %q, want it to contain %q", err, s)
				}
			}
			if got.ID != "" || len(warnings) > 0 {
				t.Errorf("Build: got replica %+v, warnings %v with error %v, want no replica and no warning", got, warnings, err)
			}
		})
	}
}

// A guess among several networks is usable, and comes with a warning that
// says how to make the choice.
func TestBuildWarnsAboutAGuessedNetwork(t *testing.T) {
	c := container(enabled, withNetwork("b-net", "10.0.2.2"), withNetwork("a-net", "10.0.1.2"))
	got, warnings, err := discovery.Build(c, discovery.Options{})
	if err != nil {
		t.Fatalf("Build: got error %v, want a usable replica and a warning", err)
	}
	if got.Network != "a-net" || got.IP != "10.0.1.2" {
		t.Errorf("Build: got network %q ip %q, want a-net 10.0.1.2 (the first by name)", got.Network, got.IP)
	}
	if len(warnings) != 1 {
		t.Fatalf("Build: got warnings %v, want one", warnings)
	}
	if warnings[0].Container != "web-1" {
		t.Errorf("Build: got a warning about container %q, want web-1", warnings[0].Container)
	}
	for _, s := range []string{"container web-1", "a-net, b-net", "--network"} {
		if !strings.Contains(warnings[0].String(), s) {
			t.Errorf("Build: got warning %q, want it to contain %q", warnings[0], s)
		}
	}
}

func TestBuildKeepsTheLabels(t *testing.T) {
	c := container(enabled, withLabel(discovery.LabelPort, "8080"), withNetwork("appnet", "10.0.0.2"))
	got, _, err := discovery.Build(c, discovery.Options{})
	want := discovery.LabelConfig{Enable: true, EnableSet: true, Port: 8080, Path: "/", Weight: 1, RouteOptions: proxy.RouteOptions{Scheme: "http"}, HealthInterval: 5 * time.Second, HealthTimeout: 2 * time.Second}
	if err != nil || !reflect.DeepEqual(got.Labels, want) {
		t.Errorf("Build: got labels %+v, %v; want %+v", got.Labels, err, want)
	}
}

func TestReplicaAddressAndServing(t *testing.T) {
	tests := []struct {
		name        string
		input       discovery.Replica
		wantAddress string
		wantServing bool
	}{
		{"IPv4", discovery.Replica{IP: "10.0.0.2", Port: 80, Running: true}, "10.0.0.2:80", true},
		{"IPv6", discovery.Replica{IP: "fd00::2", Port: 8080, Running: true}, "[fd00::2]:8080", true},
		{"paused", discovery.Replica{IP: "10.0.0.2", Port: 80, Running: true, Paused: true}, "10.0.0.2:80", false},
		{"stopped", discovery.Replica{IP: "10.0.0.2", Port: 80}, "10.0.0.2:80", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.input.Address(); got != tt.wantAddress {
				t.Errorf("Address: got %q, want %q", got, tt.wantAddress)
			}
			if got := tt.input.Serving(); got != tt.wantServing {
				t.Errorf("Serving: got %v, want %v", got, tt.wantServing)
			}
		})
	}
}

func TestChooseNetwork(t *testing.T) {
	tests := []struct {
		name    string
		nets    map[string]string
		project string
		opts    discovery.Options
		want    discovery.NetworkChoice
		warning []string // the warning must contain each
		wantErr []string // the error must contain each
	}{
		{
			name: "--network by exact name",
			nets: map[string]string{"shop_appnet": "10.0.1.2", "other": "10.0.2.2"},
			opts: discovery.Options{Network: "shop_appnet"},
			want: discovery.NetworkChoice{Network: "shop_appnet", IP: "10.0.1.2"},
		},
		{
			name:    "--network by Compose short name",
			nets:    map[string]string{"shop_appnet": "10.0.1.2", "other": "10.0.2.2"},
			project: "shop",
			opts:    discovery.Options{Network: "appnet"},
			want:    discovery.NetworkChoice{Network: "shop_appnet", IP: "10.0.1.2"},
		},
		{
			name:    "--network exact name beats the short name",
			nets:    map[string]string{"appnet": "10.0.1.2", "shop_appnet": "10.0.2.2"},
			project: "shop",
			opts:    discovery.Options{Network: "appnet"},
			want:    discovery.NetworkChoice{Network: "appnet", IP: "10.0.1.2"},
		},
		{
			name:    "--network short name needs a project",
			nets:    map[string]string{"shop_appnet": "10.0.1.2"},
			opts:    discovery.Options{Network: "appnet"},
			wantErr: []string{`"appnet"`, "shop_appnet", "--network"},
		},
		{
			name:    "not on --network",
			nets:    map[string]string{"zeta": "10.0.1.2", "alpha": "10.0.2.2"},
			project: "shop",
			opts:    discovery.Options{Network: "appnet"},
			wantErr: []string{`"appnet"`, "alpha, zeta", "--network"},
		},
		{
			name: "shares a network with dlb",
			nets: map[string]string{"a-private": "10.0.1.2", "shared": "10.0.2.2"},
			opts: discovery.Options{SelfNetworks: []string{"front", "shared"}},
			want: discovery.NetworkChoice{Network: "shared", IP: "10.0.2.2"},
		},
		{
			name:    "shares no network with dlb: skipped",
			nets:    map[string]string{"b-net": "10.0.2.2", "a-net": "10.0.1.2"},
			opts:    discovery.Options{SelfNetworks: []string{"front"}},
			wantErr: []string{"dlb is on front", "a-net, b-net", "--network", "skipped"},
		},
		{
			name:    "in a container, a short name means dlb's own project's network",
			nets:    map[string]string{"two_appnet": "10.0.2.2"},
			project: "two",
			opts:    discovery.Options{Network: "appnet", SelfNetworks: []string{"one_appnet"}, SelfProject: "one"},
			wantErr: []string{`"appnet"`, "dlb is on one_appnet", "two_appnet", "--project", "skipped"},
		},
		{
			name:    "in a container, the short name of dlb's own project",
			nets:    map[string]string{"one_appnet": "10.0.1.2"},
			project: "one",
			opts:    discovery.Options{Network: "appnet", SelfNetworks: []string{"one_appnet"}, SelfProject: "one"},
			want:    discovery.NetworkChoice{Network: "one_appnet", IP: "10.0.1.2"},
		},
		{
			name:    "in a container, --network names a network dlb is not on",
			nets:    map[string]string{"appnet": "10.0.1.2"},
			opts:    discovery.Options{Network: "appnet", SelfNetworks: []string{"front"}},
			wantErr: []string{"dlb is on front", "skipped"},
		},
		{
			name:    "dlb in a container on the host's network reaches any bridge",
			nets:    map[string]string{"shop_appnet": "10.0.1.2"},
			opts:    discovery.Options{Network: "appnet", SelfNetworks: []string{"host"}},
			wantErr: []string{`"appnet"`}, // no project: the short name cannot match
		},
		{
			name:    "dlb in a container on the host's network, short name",
			nets:    map[string]string{"shop_appnet": "10.0.1.2"},
			project: "shop",
			opts:    discovery.Options{Network: "appnet", SelfNetworks: []string{"host"}},
			want:    discovery.NetworkChoice{Network: "shop_appnet", IP: "10.0.1.2"},
		},
		{
			name: "its only network",
			nets: map[string]string{"appnet": "10.0.1.2"},
			want: discovery.NetworkChoice{Network: "appnet", IP: "10.0.1.2"},
		},
		{
			name:    "several networks: the first by name, with a warning",
			nets:    map[string]string{"zeta": "10.0.3.2", "beta": "10.0.2.2", "alpha": "10.0.1.2"},
			want:    discovery.NetworkChoice{Network: "alpha", IP: "10.0.1.2"},
			warning: []string{"alpha, beta, zeta", "using alpha", "--network"},
		},
		{
			name:    "host network mode",
			nets:    map[string]string{"host": ""},
			wantErr: []string{"host network", "--network"},
		},
		{
			name:    "no IP address",
			nets:    map[string]string{"appnet": ""},
			wantErr: []string{"no IP address on network appnet"},
		},
		{
			name:    "no network",
			nets:    map[string]string{},
			wantErr: []string{"no network"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := discovery.ChooseNetwork(tt.nets, tt.project, tt.opts)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ChooseNetwork(%v): got %+v, want an error containing %q", tt.nets, got, tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("ChooseNetwork(%v): got error %q, want it to contain %q", tt.nets, err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ChooseNetwork(%v): got error %v, want %+v", tt.nets, err, tt.want)
			}
			warning := got.Warning
			got.Warning = ""
			if got != tt.want {
				t.Errorf("ChooseNetwork(%v): got %+v, want %+v", tt.nets, got, tt.want)
			}
			if (warning != "") != (tt.warning != nil) {
				t.Errorf("ChooseNetwork(%v): got warning %q, want one containing %q", tt.nets, warning, tt.warning)
			}
			for _, s := range tt.warning {
				if !strings.Contains(warning, s) {
					t.Errorf("ChooseNetwork(%v): got warning %q, want it to contain %q", tt.nets, warning, s)
				}
			}
		})
	}
}

// A container labelled dlb.enable=false has opted out: whatever its other
// dlb.* labels say is none of dlb's business, so Build must not turn them
// into a warning ("container skipped") for a container nobody asked dlb to
// use. The watcher inspects such containers on network events, and for
// spellings of false its cheap label filter does not catch ("False", "FALSE",
// "f"), so the warning reaches the log.
func TestBuildDisabledContainerIsQuietWhateverItsLabels(t *testing.T) {
	tests := []struct {
		name  string
		input dc.InspectResponse
		opts  discovery.Options
	}{
		{"dlb.enable=false, malformed dlb.port", container(withLabel(discovery.LabelEnable, "false"), withLabel(discovery.LabelPort, "http"), withNetwork("appnet", "10.0.0.2")), discovery.Options{}},
		{"dlb.enable=False, malformed dlb.host", container(withLabel(discovery.LabelEnable, "False"), withLabel(discovery.LabelHost, "a b"), withNetwork("appnet", "10.0.0.2")), discovery.Options{}},
		{"dlb.enable=false, exposed by default, malformed dlb.path", container(withLabel(discovery.LabelEnable, "false"), withLabel(discovery.LabelPath, "api"), withNetwork("appnet", "10.0.0.2")), discovery.Options{ExposedByDefault: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := discovery.Build(tt.input, tt.opts)
			if !errors.Is(err, discovery.ErrNotSelected) {
				t.Errorf("Build: got error %v, want one that wraps ErrNotSelected (the container opted out with dlb.enable=false)", err)
			}
		})
	}
}
