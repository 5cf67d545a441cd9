package discovery_test

import (
	"errors"
	"testing"

	"github.com/dlb-lb/dlb/discovery"
)

// Build's errors and warnings carry the container's name as data, not only
// in the text.
func TestBuildErrorNamesTheContainer(t *testing.T) {
	tests := []struct {
		name        string
		opts        []option
		notSelected bool
	}{
		{"malformed label", []option{withName("shop-1"), enabled, withLabel(discovery.LabelPort, "http"), withNetwork("appnet", "10.0.0.2")}, false},
		{"not enabled", []option{withName("shop-1"), withNetwork("appnet", "10.0.0.2")}, true},
	}
	for _, tt := range tests {
		_, _, err := discovery.Build(container(tt.opts...), discovery.Options{})
		var ce *discovery.ContainerError
		if !errors.As(err, &ce) || ce.Container != "shop-1" {
			t.Errorf("%s: Build error %v: got no *ContainerError naming shop-1 (%+v)", tt.name, err, ce)
			continue
		}
		if got := errors.Is(err, discovery.ErrNotSelected); got != tt.notSelected {
			t.Errorf("%s: errors.Is(%v, ErrNotSelected) = %v, want %v", tt.name, err, got, tt.notSelected)
		}
	}
}

func TestBuildWarningNamesTheContainer(t *testing.T) {
	c := container(withName("shop-1"), enabled, withNetwork("b", "10.0.2.2"), withNetwork("a", "10.0.1.2"))
	_, warnings, err := discovery.Build(c, discovery.Options{})
	if err != nil || len(warnings) != 1 || warnings[0].Container != "shop-1" {
		t.Errorf("Build of a container on two networks: got warnings %+v, error %v; want one warning naming shop-1 and no error", warnings, err)
	}
}
