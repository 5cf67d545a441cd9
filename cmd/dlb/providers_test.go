package main

import (
	"strings"
	"testing"
)

// A bad --provider exits 2 with a line naming the flag and what it takes
// (discovery.ParseProviders' test has the cases).
func TestProviderFlag(t *testing.T) {
	code, _, stderr := runDLB(t, "--provider", "swarm,k8s", "--log-format", "guard")
	if code != 2 || !strings.Contains(stderr, `--provider "swarm,k8s": must be`) {
		t.Errorf("dlb --provider swarm,k8s: exit %d, stderr %q; want 2 and a line naming --provider", code, stderr)
	}
}
