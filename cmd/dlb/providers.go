package main

import (
	"context"
	"slices"
	"sync"

	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/discovery/swarm"
	"github.com/dlb-lb/dlb/fleet"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"
)

// sources are the sources of replicas that --provider asks for, each
// reporting to its own Fleet.Source.
type sources []interface{ Run(context.Context) error }

// newSources makes the sources of cfg.providers; cfg.discovery has dlb's
// own container filled in.
func newSources(cfg *config, docker *client.Client, f *fleet.Fleet, log zerolog.Logger) sources {
	var s sources
	opts := cfg.discovery
	// With both, a task's container on this node is the Swarm source's:
	// the watcher would report it a second time.
	opts.SwarmTasks = slices.Contains(cfg.providers, discovery.ProviderSwarm)
	if slices.Contains(cfg.providers, discovery.ProviderDocker) {
		s = append(s, discovery.NewWatcher(docker, f.Source(discovery.ProviderDocker), opts, log.With().Str("component", "discovery").Logger()))
	}
	if opts.SwarmTasks {
		s = append(s, swarm.New(docker, f.Source(discovery.ProviderSwarm), swarm.Options{Discovery: opts,
			Log: log.With().Str("component", "swarm").Logger()}))
	}
	return s
}

// run runs every source until ctx ends; the channel is closed when all
// have returned.
func (s sources) run(ctx context.Context) <-chan struct{} {
	var wg sync.WaitGroup
	for _, src := range s {
		wg.Go(func() { src.Run(ctx) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}
