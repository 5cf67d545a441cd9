package discovery

import (
	"slices"
	"strings"
	"testing"
)

// --provider takes docker, swarm or both, each once; anything else gets an
// error saying what the list must be.
func TestParseProviders(t *testing.T) {
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
		got, err := ParseProviders(tt.value)
		if tt.wantErr == "" {
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("%q: got %q, %v; want %q", tt.value, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: got error %v, want one saying %q", tt.value, err, tt.wantErr)
		}
	}
}
