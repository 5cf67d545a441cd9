package discovery

import (
	"errors"
	"slices"
	"strings"
)

// The sources of replicas dlb can follow (--provider).
const (
	ProviderDocker = "docker" // containers, through the Watcher
	ProviderSwarm  = "swarm"  // Docker Swarm services' tasks, from a manager (package swarm)
)

// ParseProviders reads a comma-separated list of providers, each at most
// once, case and spaces aside. Its error says what the list must be.
func ParseProviders(v string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		switch {
		case p == "":
			continue
		case p != ProviderDocker && p != ProviderSwarm:
			return nil, errors.New("must be a comma-separated list of docker (containers) and swarm (Docker Swarm services), e.g. docker,swarm")
		case slices.Contains(out, p):
			return nil, errors.New("names " + p + " twice")
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("names no provider: use docker, swarm, or docker,swarm")
	}
	return out, nil
}
