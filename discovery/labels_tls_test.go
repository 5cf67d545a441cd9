package discovery_test

import (
	"strings"
	"testing"

	"github.com/dlb-lb/dlb/discovery"
)

func TestParseTLSLabels(t *testing.T) {
	tests := []struct {
		name    string
		labels  map[string]string
		off     bool
		hsts    string
		wantErr string
	}{
		{name: "none", labels: nil},
		{name: "tls off", labels: map[string]string{discovery.LabelTLS: "off"}, off: true},
		{name: "tls OFF spaced", labels: map[string]string{discovery.LabelTLS: " OFF "}, off: true},
		{name: "tls false", labels: map[string]string{discovery.LabelTLS: "false"}, off: true},
		{name: "tls on", labels: map[string]string{discovery.LabelTLS: "on"}},
		{name: "tls garbage", labels: map[string]string{discovery.LabelTLS: "maybe"}, wantErr: "not on or off"},
		{name: "hsts true", labels: map[string]string{discovery.LabelHSTS: "true"}, hsts: discovery.DefaultHSTS},
		{name: "hsts false", labels: map[string]string{discovery.LabelHSTS: "false"}},
		{name: "hsts value", labels: map[string]string{discovery.LabelHSTS: "max-age=600; includeSubDomains"}, hsts: "max-age=600; includeSubDomains"},
		{name: "hsts no max-age", labels: map[string]string{discovery.LabelHSTS: "includeSubDomains"}, wantErr: "Strict-Transport-Security value"},
		{name: "hsts bad age", labels: map[string]string{discovery.LabelHSTS: "max-age=soon"}, wantErr: "Strict-Transport-Security value"},
		{name: "hsts header injection", labels: map[string]string{discovery.LabelHSTS: "max-age=1\r\nX-Evil: 1"}, wantErr: "contains a control character"},
		{name: "hsts with a quote", labels: map[string]string{discovery.LabelHSTS: `max-age=1; x="y"`}, wantErr: "Strict-Transport-Security value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := discovery.ParseLabels(tt.labels)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLabels(%q): got error %v, want one with %q", tt.labels, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLabels(%q): got error %v", tt.labels, err)
			}
			if got.TLSOff != tt.off || got.HSTS != tt.hsts {
				t.Errorf("ParseLabels(%q): got TLSOff %v HSTS %q, want %v %q", tt.labels, got.TLSOff, got.HSTS, tt.off, tt.hsts)
			}
		})
	}
}
