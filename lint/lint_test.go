package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// lintDir holds the fixtures: one Compose file per finding, and clean ones.
const lintDir = "testdata/lint"

// short renders findings as "line service key", the part the table tests pin down.
func short(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%d %s %s", f.Line, f.Service, f.Key))
	}
	return out
}

// lintFixture lints testdata/lint/file.
func lintFixture(t *testing.T, file string) ([]Finding, error) {
	t.Helper()
	path := filepath.Join(lintDir, file)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Compose(path, data)
}

func TestLintCompose(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // "line service key"
	}{
		{"clean", "clean.yaml", []string{}},
		{"other syntaxes, clean", "variants.yaml", []string{}},
		{"host ports on an app", "ports.yaml", []string{"7 app ports"}},
		{"container_name on an app", "container_name.yaml", []string{"4 app container_name"}},
		{"several exposed ports, no dlb.port", "expose.yaml", []string{"6 app expose"}},
		{"dlb without the Docker socket", "socket.yaml", []string{"10 dlb volumes"}},
		{"app and dlb share no network", "network_shared.yaml", []string{"3 app networks"}},
		{"--network names no network", "network_flag.yaml", []string{"12 dlb command"}},
		{"DLB_NETWORK names no network", "network_env.yaml", []string{"11 dlb environment"}},
		{"the classic example", "classic.yaml", []string{"14 app ports"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := lintFixture(t, tt.file)
			if err != nil {
				t.Fatalf("Compose(%s): got error %v, want findings %q", tt.file, err, tt.want)
			}
			if got := short(fs); !slices.Equal(got, tt.want) {
				t.Errorf("Compose(%s):\n got  %q\n want %q\nfull: %v", tt.file, got, tt.want, fs)
			}
			for _, f := range fs {
				if f.Message == "" || !strings.HasSuffix(f.Fix, ".") || f.File != filepath.Join(lintDir, tt.file) {
					t.Errorf("finding %+v: got empty message, fix not a sentence or wrong file; want all set", f)
				}
			}
		})
	}
}

// TestLintClassicText pins the full one-line form of the ports finding.
func TestLintClassicText(t *testing.T) {
	fs, err := lintFixture(t, "classic.yaml")
	if err != nil || len(fs) != 1 {
		t.Fatalf("got %v, %v; want one finding", fs, err)
	}
	want := `testdata/lint/classic.yaml:14: service "app": ports: publishes host port 8080:80; with --scale 2 or dlb rollout the second replica fails with "port is already allocated". Remove ports: from app; dlb publishes the port.`
	if got := fs[0].String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestLintRepoCompose checks that the repository's own example passes its own lint.
func TestLintRepoCompose(t *testing.T) {
	data, err := os.ReadFile("../docker-compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := Compose("docker-compose.yaml", data)
	if err != nil || len(fs) != 0 {
		t.Errorf("lint of the repo's docker-compose.yaml: got %v, %v; want no findings, no error", fs, err)
	}
}

func TestLintComposeErrors(t *testing.T) {
	invalid, err := os.ReadFile(filepath.Join(lintDir, "invalid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data string
		want string // in the error
	}{
		{"invalid.yaml", string(invalid), "f.yaml:6: cannot parse YAML: mapping values are not allowed in this context; fix the YAML syntax at or after line 6"},
		{"tab indentation", "services:\n  app:\n\timage: x\n", "f.yaml:3: cannot parse YAML:"},
		{"error on line 1", "a: b: c\n", "f.yaml:1: cannot parse YAML:"},
		{"control character", "services:\n  app:\n    image: x\x01\n", "f.yaml:3: cannot parse YAML: control characters"},
		{"empty", "", "f.yaml:1: not a Compose file"},
		{"top level a list", "- a\n- b\n", "f.yaml:1: not a Compose file"},
		{"no services", "networks: {}\n", "f.yaml:1: not a Compose file: services:"},
		{"services a list", "x: 1\nservices: [a]\n", "f.yaml:2: not a Compose file: services:"},
		{"service not a mapping", "services:\n  app:\n", `f.yaml:2: service "app" is not a mapping`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compose("f.yaml", []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestLintSyntax covers the less common spellings in small inline files.
func TestLintSyntax(t *testing.T) {
	const app = "services:\n  app:\n    image: a\n    labels: [dlb.enable=true, dlb.port=80]\n"
	tests := []struct {
		name string
		data string
		want []string
	}{
		{"random host port is fine", app + "    ports: [\"80\", \"127.0.0.1::81\"]\n", []string{}},
		{"host IP and port", app + "    ports: [\"127.0.0.1:8000:80/tcp\"]\n", []string{"5 app ports"}},
		{"IPv6 host", app + "    ports: [\"[::1]:8000:80\"]\n", []string{"5 app ports"}},
		{"host port range", app + "    ports: [\"8000-8003:80\"]\n", []string{"5 app ports"}},
		{"interpolated host port", app + "    ports: [\"${P:-8000}:80\"]\n", []string{"5 app ports"}},
		{"interpolated container port only", app + "    ports: [\"${P:-80}\"]\n", []string{}},
		{"not enabled: ports fine", "services:\n  db:\n    image: pg\n    ports: [\"5432:5432\"]\n    container_name: db\n", []string{}},
		{"enable as 1, as the watcher reads it", "services:\n  a:\n    image: a\n    labels: {dlb.enable: \"1\"}\n    ports: [\"80:80\"]\n", []string{"5 a ports"}},
		{"enable not true", "services:\n  a:\n    image: a\n    labels: {dlb.enable: \"false\"}\n    ports: [\"80:80\"]\n", []string{}},
		{"expose range", "services:\n  a:\n    image: a\n    labels: {dlb.enable: \"true\"}\n    expose: [\"8000-8001\"]\n", []string{"5 a expose"}},
		{"expose one port", "services:\n  a:\n    image: a\n    labels: {dlb.enable: \"true\"}\n    expose: [80]\n", []string{}},
		{"dlb by service name", "services:\n  dlb:\n    build: .\n", []string{"2 dlb volumes"}},
		{"dlb-demo is no dlb", "services:\n  d:\n    image: dlb-demo:dev\n", []string{}},
		{"registry with port", "services:\n  d:\n    image: reg:5000/dlb\n", []string{"2 d volumes"}},
		{"socket via DOCKER_HOST list", "services:\n  d:\n    image: dlb\n    environment: [DOCKER_HOST=tcp://p:2375]\n", []string{}},
		{"rootless socket", "services:\n  d:\n    image: dlb\n    volumes: [\"${XDG_RUNTIME_DIR}/docker.sock:/var/run/docker.sock\"]\n", []string{}},
		{"--network in a string", "services:\n  d:\n    image: dlb\n    volumes: [/var/run/docker.sock:/s]\n    command: --network nope\n", []string{"5 d command"}},
		{"--network interpolated", "services:\n  d:\n    image: dlb\n    volumes: [/var/run/docker.sock:/s]\n    command: --network=${NET}\n", []string{}},
		{"--network project prefix", "services:\n  d:\n    image: dlb\n    volumes: [/var/run/docker.sock:/s]\n    command: [--network=proj_default]\n", []string{}},
		{"name: override, as named", "services:\n  d:\n    image: dlb\n    environment: [DOCKER_HOST=x, DLB_NETWORK=lb]\nnetworks: {s: {name: lb}}\n", []string{}},
		{"name: override, project prefix", "services:\n  d:\n    image: dlb\n    environment: [DOCKER_HOST=x, DLB_NETWORK=p_s]\nnetworks: {s: {name: lb}}\n", []string{"4 d environment"}},
		{"network_mode is not checked", app + "    network_mode: host\n  dlb:\n    image: dlb\n    volumes: [/var/run/docker.sock:/s]\n    networks: [x]\nnetworks: {x: {}}\n", []string{}},
		{"merge key labels", "x: &l {dlb.enable: \"true\"}\nservices:\n  a:\n    image: a\n    labels: {<<: *l}\n    container_name: a\n", []string{"6 a container_name"}},
		{"self-referencing merge", "services:\n  a: &a\n    image: a\n    <<: *a\n", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := Compose("f.yaml", []byte(tt.data))
			if err != nil {
				t.Fatalf("got error %v, want findings %q", err, tt.want)
			}
			if got := short(fs); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q\nfull: %v\nfile:\n%s", got, tt.want, fs, tt.data)
			}
		})
	}
}

// TestSideBySide: the checks dlb rollout refuses a service on, for the named
// service only, whether or not it is labelled dlb.enable.
func TestSideBySide(t *testing.T) {
	const file = "services:\n" +
		"  app:\n    image: a\n    ports: [\"8000:80\"]\n    container_name: shop\n" +
		"  web:\n    image: w\n    labels: [dlb.enable=true]\n    ports: [\"80\"]\n" +
		"  db:\n    image: pg\n    ports: [\"5432:5432\"]\n"
	tests := []struct {
		service string
		want    []string
	}{
		{"app", []string{"4 app ports", "5 app container_name"}},
		{"web", []string{}},
		{"db", []string{"12 db ports"}},
		{"absent", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			fs, err := SideBySide("f.yaml", []byte(file), tt.service)
			if err != nil {
				t.Fatalf("SideBySide(%s): got error %v, want findings %q", tt.service, err, tt.want)
			}
			if got := short(fs); !slices.Equal(got, tt.want) {
				t.Errorf("SideBySide(%s): got %q, want %q\nfull: %v", tt.service, got, tt.want, fs)
			}
		})
	}
	if _, err := SideBySide("f.yaml", []byte("services: [a]\n"), "a"); err == nil || !strings.Contains(err.Error(), "f.yaml:1: not a Compose file") {
		t.Errorf("SideBySide of a list: got error %v, want f.yaml:1: not a Compose file", err)
	}
}
