package discovery

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/rs/zerolog"
)

// NetworkLister is the one Docker call WatchNetwork makes; *client.Client
// satisfies it.
type NetworkLister interface {
	NetworkList(ctx context.Context, options network.ListOptions) ([]network.Summary, error)
}

// WatchNetwork checks that --network (want) names a network of the engine,
// by its exact name or as a Compose short name (<project>_want). When none
// exists it says so once, since dlb will find no replica and nothing else
// would tell why; it keeps checking every interval (the network may be
// created later, by the Compose project that uses it) and says when one
// appears. It returns then, or when ctx ends.
func WatchNetwork(ctx context.Context, docker NetworkLister, want string, interval time.Duration, log zerolog.Logger) {
	if want == "" {
		return
	}
	warned := false
	for {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		nets, err := docker.NetworkList(lctx, network.ListOptions{})
		cancel()
		if err == nil { // an unreachable engine is the watcher's to report
			if found := networksNamed(nets, want); len(found) > 0 {
				if warned {
					log.Info().Strs("networks", found).Msgf("--network %s: the network exists now", want)
				}
				return
			}
			if !warned {
				log.Warn().Msgf("--network %s: the engine has no network of that name, nor <project>_%s: dlb finds no replica until it exists; check the name (docker network ls) and --network", want, want)
				warned = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// networksNamed returns the names of the networks that want names: exactly,
// or as a Compose short name.
func networksNamed(nets []network.Summary, want string) []string {
	var found []string
	for _, n := range nets {
		if n.Name == want || strings.HasSuffix(n.Name, "_"+want) {
			found = append(found, n.Name)
		}
	}
	slices.Sort(found)
	return found
}
