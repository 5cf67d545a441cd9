package discovery_test

import (
	"errors"
	"testing"

	"github.com/dlb-lb/dlb/discovery"
)

// With the swarm provider on, a Swarm task's container is the Swarm
// source's: the container watcher does not report it a second time.
// Without it, the container is one like any other.
func TestBuildLeavesSwarmTasksToTheSwarmSource(t *testing.T) {
	c := container(enabled, withNetwork("appnet", "10.0.1.5"), withLabel(discovery.LabelSwarmTask, "task-1"))
	if _, _, err := discovery.Build(c, discovery.Options{SwarmTasks: true}); !errors.Is(err, discovery.ErrNotSelected) {
		t.Errorf("with SwarmTasks: got %v, want an error wrapping ErrNotSelected", err)
	}
	if r, _, err := discovery.Build(c, discovery.Options{}); err != nil || r.IP != "10.0.1.5" {
		t.Errorf("without SwarmTasks: got %+v, %v; want the replica at 10.0.1.5", r, err)
	}
}
