package main

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/discovery/swarm"
	"github.com/dlb-lb/dlb/fleet"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"
)

// The sources of replicas --provider chooses among.
const (
	providerDocker = "docker" // containers, through the container watcher
	providerSwarm  = "swarm"  // Docker Swarm services' tasks, from a manager
)

// parseProviders checks --provider: a comma-separated list of docker and
// swarm, each at most once.
func parseProviders(v string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		switch {
		case p == "":
			continue
		case p != providerDocker && p != providerSwarm:
			return nil, badFlag("provider", v, "must be a comma-separated list of docker (containers) and swarm (Docker Swarm services), e.g. docker,swarm")
		case slices.Contains(out, p):
			return nil, badFlag("provider", v, "names "+p+" twice")
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, badFlag("provider", v, "names no provider: use docker, swarm, or docker,swarm")
	}
	return out, nil
}

// sources are the sources of replicas that --provider asks for, each
// reporting to its own Fleet.Source.
type sources struct {
	watcher *discovery.Watcher // nil without the docker provider
	swarm   *swarm.Source      // nil without the swarm provider
}

// newSources makes the sources of cfg.providers. opts are the discovery
// options with dlb's own container filled in.
func newSources(cfg *config, docker *client.Client, f *fleet.Fleet, log zerolog.Logger) sources {
	var s sources
	opts := cfg.discovery
	// With both, a task's container on this node is the Swarm source's:
	// the watcher would report it a second time.
	opts.SwarmTasks = slices.Contains(cfg.providers, providerSwarm)
	if slices.Contains(cfg.providers, providerDocker) {
		s.watcher = discovery.NewWatcher(docker, f.Source(providerDocker), opts, log.With().Str("component", "discovery").Logger())
	}
	if opts.SwarmTasks {
		s.swarm = swarm.New(docker, f.Source(providerSwarm), swarm.Options{Discovery: opts,
			Log: log.With().Str("component", "swarm").Logger()})
	}
	return s
}

// run runs every source until ctx ends; the channel is closed when all
// have returned.
func (s sources) run(ctx context.Context) <-chan struct{} {
	var wg sync.WaitGroup
	if s.watcher != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.watcher.Run(ctx) }()
	}
	if s.swarm != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.swarm.Run(ctx) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}
