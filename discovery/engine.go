package discovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"github.com/rs/zerolog"
)

// NewClient connects to the Docker Engine as the Docker CLI does: DOCKER_HOST,
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, or host when set; the API version
// is negotiated, since the engine may be older than this client.
func NewClient(host string) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("Docker client: %v (check DOCKER_HOST, DOCKER_CERT_PATH or --docker-host)", err)
	}
	return c, nil
}

// FindSelf fills in dlb's own container and its networks when dlb runs in a
// container, so that replicas are reached on a network dlb shares with them.
// The container is the one /proc names (ContainerID), else the one whose
// ID starts with the host name.
func FindSelf(ctx context.Context, docker Docker, o *Options, log zerolog.Logger) error {
	if _, err := os.Stat("/.dockerenv"); err != nil {
		return err
	}
	id := ContainerID()
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return err
		}
		id = host
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := docker.ContainerInspect(ictx, id)
	if err != nil || !strings.HasPrefix(info.ID, id) || info.NetworkSettings == nil {
		if err == nil {
			err = errors.New("neither /proc nor the host name names this container")
		}
		log.Debug().Err(err).Msg("running in a container, but could not find which; set --network")
		return err
	}
	o.SelfID = info.ID
	if info.Config != nil {
		o.SelfProject = info.Config.Labels[LabelComposeProject]
		if o.SelfProject == "" { // a stack's (docker stack deploy) short names work as a project's
			o.SelfProject = info.Config.Labels[LabelStackNamespace]
		}
	}
	if info.HostConfig != nil {
		o.SelfRestart = string(info.HostConfig.RestartPolicy.Name)
	}
	for n := range info.NetworkSettings.Networks {
		o.SelfNetworks = append(o.SelfNetworks, n)
	}
	if !o.inContainer() {
		log.Info().Str("container", strings.TrimPrefix(info.Name, "/")).Str("project", o.SelfProject).
			Msg("running in a container on the host's network: replicas are reached on the network --network names")
		return nil
	}
	log.Info().Str("container", strings.TrimPrefix(info.Name, "/")).Str("project", o.SelfProject).Strs("networks", o.SelfNetworks).
		Msg("running in a container: replicas are reached over these networks only")
	return nil
}
