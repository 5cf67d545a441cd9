package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// Compose labels on the containers Compose creates.
const (
	labelProject = "com.docker.compose.project"
	labelService = "com.docker.compose.service"
	labelOneOff  = "com.docker.compose.oneoff"
	labelNumber  = "com.docker.compose.container-number"
)

// FindCompose returns the Compose command: `docker compose` (v2) when the
// Docker CLI has it, else `docker-compose` (v1, or v2 standalone).
func FindCompose(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, errors.New("found neither docker compose (Compose v2) nor docker-compose (v1): install Docker Compose")
}

// ComposeEngine is the Engine of one Compose service: Compose (with the
// user's files, project and env file) starts replicas, the Docker Engine
// does the rest.
type ComposeEngine struct {
	Command []string // from FindCompose
	// Global are Compose's options as the user gives them to up: -f FILE,
	// -p PROJECT, --env-file FILE.
	Global  []string
	Service string
	Docker  client.APIClient
	project string // learned by Project
}

// compose runs Compose with the global options and args; the error holds
// the command and the end of its output.
func (e *ComposeEngine) compose(ctx context.Context, args ...string) (string, error) {
	full := append(append(append([]string{}, e.Command[1:]...), e.Global...), args...)
	cmd := exec.CommandContext(ctx, e.Command[0], full...)
	// Interrupted, Compose gets SIGINT as from a terminal, and time to stop.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", e.Command[0], strings.Join(full, " "), err, lastLines(out.String(), 10))
	}
	return out.String(), nil
}

// Project asks Compose for the service's containers and learns the project
// name from their labels; no container is an error saying to start the
// service.
func (e *ComposeEngine) Project(ctx context.Context) (string, error) {
	if e.project != "" {
		return e.project, nil
	}
	out, err := e.compose(ctx, "ps", "-a", "-q", e.Service)
	if err != nil {
		return "", err
	}
	for _, id := range strings.Fields(out) {
		c, err := e.Docker.ContainerInspect(ctx, id)
		if err != nil || c.Config == nil || c.Config.Labels[labelOneOff] == "True" {
			continue
		}
		e.project = c.Config.Labels[labelProject]
		return e.project, nil
	}
	return "", fmt.Errorf("service %s has no container: start it first (compose up -d %s)", e.Service, e.Service)
}

// Containers implements Engine from the Docker Engine's list, by Compose's
// labels.
func (e *ComposeEngine) Containers(ctx context.Context) ([]Container, error) {
	project, err := e.Project(ctx)
	if err != nil {
		return nil, err
	}
	list, err := e.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", labelProject+"="+project), filters.Arg("label", labelService+"="+e.Service))})
	if err != nil {
		return nil, fmt.Errorf("listing the containers of %s: %v", e.Service, err)
	}
	var out []Container
	for _, c := range list {
		if c.Labels[labelOneOff] == "True" {
			continue
		}
		n, _ := strconv.Atoi(c.Labels[labelNumber])
		name := c.ID[:12]
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, Container{ID: c.ID, Name: name, Number: n, State: c.State, Image: c.Image})
	}
	return out, nil
}

// ScaleCommand implements Engine.
func (e *ComposeEngine) ScaleCommand(n int) string {
	return strings.Join(append(append(append([]string{}, e.Command...), e.Global...), e.scaleArgs(n)...), " ")
}

func (e *ComposeEngine) scaleArgs(n int) []string {
	return []string{"up", "-d", "--no-deps", "--no-recreate", "--scale", fmt.Sprintf("%s=%d", e.Service, n), e.Service}
}

// Scale implements Engine: `compose up -d --no-deps --no-recreate --scale
// SERVICE=n SERVICE` creates the missing replicas with the file's
// configuration (so a later `up` does not recreate them: their config hash
// is the file's) and leaves the running ones and other services alone.
func (e *ComposeEngine) Scale(ctx context.Context, n int) error {
	_, err := e.compose(ctx, e.scaleArgs(n)...)
	return err
}

// Inspect implements Engine.
func (e *ComposeEngine) Inspect(ctx context.Context, id string) (Container, error) {
	c, err := e.Docker.ContainerInspect(ctx, id)
	if err != nil {
		return Container{}, err
	}
	out := Container{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/")}
	if c.Config != nil {
		out.Image = c.Config.Image
		out.Number, _ = strconv.Atoi(c.Config.Labels[labelNumber])
	}
	if s := c.State; s != nil {
		out.State, out.ExitCode = s.Status, s.ExitCode
		if s.Health != nil {
			out.Health = s.Health.Status
		}
	}
	return out, nil
}

// Stop implements Engine: no timeout is given, so the engine uses the
// container's own (Compose sets it from stop_grace_period).
func (e *ComposeEngine) Stop(ctx context.Context, id string) error {
	return e.Docker.ContainerStop(ctx, id, container.StopOptions{})
}

// Remove implements Engine. Anonymous volumes stay, as with docker rm.
func (e *ComposeEngine) Remove(ctx context.Context, id string) error {
	return e.Docker.ContainerRemove(ctx, id, container.RemoveOptions{})
}

// Logs implements Engine; it is empty when the logs cannot be read.
func (e *ComposeEngine) Logs(ctx context.Context, id string, lines int) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := e.Docker.ContainerInspect(ctx, id)
	if err != nil {
		return ""
	}
	rc, err := e.Docker.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out bytes.Buffer
	if info.Config != nil && info.Config.Tty {
		out.ReadFrom(rc)
	} else {
		stdcopy.StdCopy(&out, &out, rc)
	}
	return lastLines(out.String(), lines)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
