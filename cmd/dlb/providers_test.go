package main

import (
	"slices"
	"strings"
	"testing"
)

// --provider takes docker, swarm or both; anything else exits 2 with a
// line naming the flag and what it takes.
func TestProviderFlag(t *testing.T) {
	tests := []struct {
		value   string
		want    []string
		wantErr string
	}{
		{"docker", []string{"docker"}, ""},
		{"swarm", []string{"swarm"}, ""},
		{"docker,swarm", []string{"docker", "swarm"}, ""},
		{" Swarm , docker ", []string{"swarm", "docker"}, ""},
		{"kubernetes", nil, "must be a comma-separated list of docker (containers) and swarm (Docker Swarm services)"},
		{"swarm,swarm", nil, "names swarm twice"},
		{",", nil, "names no provider"},
	}
	for _, tt := range tests {
		got, err := parseProviders(tt.value)
		if tt.wantErr == "" {
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("--provider %q: got %q, %v; want %q", tt.value, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("--provider %q: got error %v, want one saying %q", tt.value, err, tt.wantErr)
		}
	}
	code, _, stderr := runDLB(t, "--provider", "swarm,k8s", "--log-format", "guard")
	if code != 2 || !strings.Contains(stderr, `--provider "swarm,k8s": must be`) {
		t.Errorf("dlb --provider swarm,k8s: exit %d, stderr %q; want 2 and a line naming --provider", code, stderr)
	}
}
